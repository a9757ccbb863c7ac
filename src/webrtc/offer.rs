//! What a browser's SDP offer asks for: a first look, before the WebRTC
//! stack reads it whole.
//!
//! This module owns the few facts of an offer (RFC 8866 SDP, as JSEP,
//! RFC 8829, has browsers write it) that the server needs to decide how
//! to answer, and whether it can: that there is a video section, how the
//! browser wants it (`a=recvonly` from Fluidd and OctoPrint, `a=sendrecv`
//! from Mainsail), whether audio is offered too (camloop has none, so the
//! answer rejects it), and which H.264 formats the browser takes with
//! `packetization-mode=1` (RFC 6184 §8.1; FU-A, what [`crate::rtsp::rtp`]
//! sends), with their `profile-level-id`. The answer sends video only
//! (`sendonly`) in the format whose profile matches the camera's, else
//! the one for `42e01f` (Constrained Baseline 3.1, which every browser
//! decodes).
//!
//! It reads line by line, CRLF or LF, within [`MAX_BODY_BYTES`], and
//! passes over every line it has no use for; it never builds the answer
//! (str0m will).

use super::{SignallingError, MAX_BODY_BYTES};

/// The highest RTP payload type (RFC 3550 §5.1: 7 bits); dynamic ones,
/// which H.264 uses, are 96 to 127.
pub const MAX_PAYLOAD_TYPE: u8 = 127;

/// The `profile-level-id` an H.264 format without one means (RFC 6184
/// §8.1): Baseline, no constraints, level 1.0.
pub const DEFAULT_PROFILE_LEVEL_ID: [u8; 3] = [0x42, 0x00, 0x0a];

/// A media section's direction (RFC 8866 §6.7), from the offerer's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv`, also what a section without a direction means.
    SendRecv,
    /// `a=sendonly`: the browser sends, and wants nothing.
    SendOnly,
    /// `a=recvonly`: the browser only receives.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// Whether the offerer takes media (`sendrecv`, `recvonly`): only then
    /// can the answer send the camera's video (`sendonly`).
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn from_line(line: &str) -> Option<Direction> {
        match line {
            "a=sendrecv" => Some(Direction::SendRecv),
            "a=sendonly" => Some(Direction::SendOnly),
            "a=recvonly" => Some(Direction::RecvOnly),
            "a=inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// One H.264 format the offer takes with `packetization-mode=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Format {
    /// Its RTP payload type, from the `m=video` line.
    pub payload_type: u8,
    /// `profile-level-id` (RFC 6184 §8.1): `profile_idc`, the constraint
    /// flags (`profile-iop`) and `level_idc`, as in the SPS; `42e01f` is
    /// `[0x42, 0xe0, 0x1f]`. [`DEFAULT_PROFILE_LEVEL_ID`] when the format
    /// has none.
    pub profile_level_id: [u8; 3],
}

/// What an offer asks for, as far as the answer depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferSummary {
    /// The direction of the first `m=video` section (the one the camera's
    /// video goes to; further video sections are answered as rejected).
    pub video_direction: Direction,
    /// The H.264 formats of that section with `packetization-mode=1`, in
    /// the offer's order of preference (its `m=` line). Empty when the
    /// browser takes no H.264 this way.
    pub h264: Vec<H264Format>,
    /// Whether there is an `m=audio` section (to be rejected: camloop
    /// has no audio).
    pub has_audio: bool,
}

/// Reads what an SDP offer asks for (see [`OfferSummary`]). It must start
/// with `v=0` and have an `m=video` section; anything else about it is
/// left to the WebRTC stack. A section's attributes are read in any order
/// (Firefox writes every `a=fmtp` before the `a=rtpmap`s), and a format
/// counts only if its payload type is on the section's `m=` line.
///
/// ```
/// use camloop::webrtc::{check_offer, Direction};
///
/// let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
///            m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=recvonly\r\n\
///            a=rtpmap:102 H264/90000\r\n\
///            a=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";
/// let offer = check_offer(sdp.as_bytes()).unwrap();
/// assert_eq!(offer.video_direction, Direction::RecvOnly);
/// assert_eq!(offer.h264[0].payload_type, 102);
/// assert!(!offer.has_audio);
/// ```
pub fn check_offer(sdp: &[u8]) -> Result<OfferSummary, SignallingError> {
    if sdp.len() > MAX_BODY_BYTES {
        return Err(SignallingError::TooLarge);
    }
    let text =
        std::str::from_utf8(sdp).map_err(|_| SignallingError::Invalid("SDP is not UTF-8"))?;
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    if lines.next() != Some("v=0") {
        return Err(SignallingError::Invalid("SDP does not start with v=0"));
    }

    let mut session_direction = None;
    let mut video: Option<VideoSection> = None;
    let mut has_audio = false;
    // Where the lines being read belong: before the first `m=`, in the
    // first video section, or in another section (passed over).
    let mut level = Level::Session;
    for line in lines {
        if let Some(media) = line.strip_prefix("m=") {
            let mut fields = media.split_ascii_whitespace();
            level = match fields.next() {
                Some("video") if video.is_none() => {
                    // Port and protocol, then the payload types.
                    video = Some(VideoSection::new(fields.skip(2)));
                    Level::FirstVideo
                }
                Some("audio") => {
                    has_audio = true;
                    Level::Other
                }
                _ => Level::Other,
            };
            continue;
        }
        match (level, &mut video) {
            (Level::Session, _) => {
                if let Some(direction) = Direction::from_line(line) {
                    session_direction = Some(direction);
                }
            }
            (Level::FirstVideo, Some(section)) => section.read(line),
            _ => {}
        }
    }

    let Some(video) = video else {
        return Err(SignallingError::Invalid("SDP offers no video"));
    };
    Ok(OfferSummary {
        video_direction: video
            .direction
            .or(session_direction)
            .unwrap_or(Direction::SendRecv),
        h264: video.h264_formats(),
        has_audio,
    })
}

/// Which part of the SDP a line is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Session,
    FirstVideo,
    Other,
}

/// What the first video section says, gathered line by line.
struct VideoSection {
    /// The payload types of the `m=` line, in order, each once.
    payload_types: Vec<u8>,
    /// Its own direction attribute, if any.
    direction: Option<Direction>,
    /// `a=rtpmap:PT H264/90000`, by payload type.
    is_h264: [bool; MAX_PAYLOAD_TYPE as usize + 1],
    /// The `profile-level-id` of an `a=fmtp:PT` with
    /// `packetization-mode=1` and a valid (or no) `profile-level-id`, by
    /// payload type.
    mode_1_profile: [Option<[u8; 3]>; MAX_PAYLOAD_TYPE as usize + 1],
}

impl VideoSection {
    fn new<'a>(formats: impl Iterator<Item = &'a str>) -> Self {
        let mut payload_types = Vec::new();
        for payload_type in formats.filter_map(payload_type) {
            // At most 128 entries, however long the line.
            if !payload_types.contains(&payload_type) {
                payload_types.push(payload_type);
            }
        }
        VideoSection {
            payload_types,
            direction: None,
            is_h264: [false; MAX_PAYLOAD_TYPE as usize + 1],
            mode_1_profile: [None; MAX_PAYLOAD_TYPE as usize + 1],
        }
    }

    fn read(&mut self, line: &str) {
        if let Some(direction) = Direction::from_line(line) {
            self.direction = Some(direction);
        } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
            // `96 H264/90000`: encoding names are case-insensitive.
            let Some((pt, encoding)) = rtpmap.split_once(' ') else {
                return;
            };
            let mut parts = encoding.trim().split('/');
            if let (Some(pt), Some(name), Some("90000")) =
                (payload_type(pt), parts.next(), parts.next())
            {
                self.is_h264[usize::from(pt)] = name.eq_ignore_ascii_case("H264");
            }
        } else if let Some(fmtp) = line.strip_prefix("a=fmtp:") {
            let Some((pt, parameters)) = fmtp.split_once(' ') else {
                return;
            };
            if let Some(pt) = payload_type(pt) {
                self.mode_1_profile[usize::from(pt)] = mode_1_profile(parameters);
            }
        }
    }

    fn h264_formats(&self) -> Vec<H264Format> {
        self.payload_types
            .iter()
            .filter(|&&pt| self.is_h264[usize::from(pt)])
            .filter_map(|&pt| {
                Some(H264Format {
                    payload_type: pt,
                    profile_level_id: self.mode_1_profile[usize::from(pt)]?,
                })
            })
            .collect()
    }
}

/// A payload type: 0 to [`MAX_PAYLOAD_TYPE`], digits only.
fn payload_type(text: &str) -> Option<u8> {
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&pt| pt <= MAX_PAYLOAD_TYPE)
}

/// The `profile-level-id` of H.264 fmtp parameters
/// (`level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f`)
/// if they say `packetization-mode=1` (absent means 0, RFC 6184 §8.1):
/// the given one if it is six hex digits, [`DEFAULT_PROFILE_LEVEL_ID`] if
/// there is none, `None` for a malformed one (a format the answer cannot
/// match a camera to).
fn mode_1_profile(parameters: &str) -> Option<[u8; 3]> {
    let mut mode_1 = false;
    let mut profile = Some(DEFAULT_PROFILE_LEVEL_ID);
    for parameter in parameters.split(';') {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("packetization-mode") {
            mode_1 = value == "1";
        } else if name.eq_ignore_ascii_case("profile-level-id") {
            profile = hex_triplet(value);
        }
    }
    mode_1.then_some(profile).flatten()
}

/// Six hex digits into three bytes.
fn hex_triplet(text: &str) -> Option<[u8; 3]> {
    let bytes = text.as_bytes();
    if bytes.len() != 6 {
        return None;
    }
    let mut triplet = [0; 3];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let high = crate::text::hex_digit_value(pair[0])?;
        let low = crate::text::hex_digit_value(pair[1])?;
        triplet[i] = high << 4 | low;
    }
    Some(triplet)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::fixtures::{
        FLUIDD_FIREFOX_OFFER, MAINSAIL_CHROMIUM_OFFER, OCTOPRINT_CHROMIUM_OFFER,
    };
    use super::*;

    fn h264(payload_type: u8, profile_level_id: u32) -> H264Format {
        let [_, a, b, c] = profile_level_id.to_be_bytes();
        H264Format {
            payload_type,
            profile_level_id: [a, b, c],
        }
    }

    fn invalid(sdp: &[u8]) -> &'static str {
        match check_offer(sdp) {
            Err(SignallingError::Invalid(reason)) => reason,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(sdp)),
        }
    }

    #[test]
    fn mainsails_offer_from_chromium() {
        let offer = check_offer(MAINSAIL_CHROMIUM_OFFER.as_bytes()).unwrap();
        assert_eq!(
            offer,
            OfferSummary {
                video_direction: Direction::SendRecv,
                // Mode 0 (104, 108) and RTX (103, 107, ...) left out; the
                // m= line's order kept (127 before 39).
                h264: vec![
                    h264(102, 0x42001f),
                    h264(106, 0x42e01f),
                    h264(127, 0x4d001f),
                    h264(39, 0x64001f),
                ],
                has_audio: true,
            }
        );
        assert!(offer.video_direction.receives());
    }

    #[test]
    fn fluidds_offer_from_firefox() {
        let offer = check_offer(FLUIDD_FIREFOX_OFFER.as_bytes()).unwrap();
        assert_eq!(
            offer,
            OfferSummary {
                video_direction: Direction::RecvOnly,
                h264: vec![h264(126, 0x42e01f)],
                has_audio: false,
            }
        );
    }

    #[test]
    fn octoprints_offer_with_its_candidates() {
        let offer = check_offer(OCTOPRINT_CHROMIUM_OFFER.as_bytes()).unwrap();
        assert_eq!(
            offer,
            OfferSummary {
                video_direction: Direction::RecvOnly,
                h264: vec![h264(102, 0x42001f), h264(106, 0x42e01f)],
                has_audio: true,
            }
        );
    }

    #[test]
    fn lf_line_ends_read_the_same() {
        for sdp in [
            MAINSAIL_CHROMIUM_OFFER,
            FLUIDD_FIREFOX_OFFER,
            OCTOPRINT_CHROMIUM_OFFER,
        ] {
            let lf = sdp.replace("\r\n", "\n");
            assert_eq!(check_offer(lf.as_bytes()), check_offer(sdp.as_bytes()));
        }
    }

    #[test]
    fn directions_by_section_then_session_then_sendrecv() {
        let offer = |session: &str, media: &str| {
            let sdp = format!("v=0\r\n{session}m=video 9 RTP/AVP 96\r\n{media}");
            check_offer(sdp.as_bytes()).unwrap().video_direction
        };
        assert_eq!(offer("", ""), Direction::SendRecv);
        assert_eq!(offer("a=sendonly\r\n", ""), Direction::SendOnly);
        assert_eq!(
            offer("a=sendonly\r\n", "a=recvonly\r\n"),
            Direction::RecvOnly
        );
        assert_eq!(offer("", "a=inactive\r\n"), Direction::Inactive);
        assert!(!Direction::SendOnly.receives() && !Direction::Inactive.receives());
        // The direction of an audio section is not the video's.
        let sdp = "v=0\nm=video 9 RTP/AVP 96\na=recvonly\nm=audio 9 RTP/AVP 0\na=sendrecv\n";
        assert_eq!(
            check_offer(sdp.as_bytes()).unwrap().video_direction,
            Direction::RecvOnly
        );
    }

    #[test]
    fn which_h264_formats_count() {
        let formats = |media: &str| {
            let sdp = format!("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r\n{media}");
            check_offer(sdp.as_bytes()).unwrap().h264
        };
        // No profile-level-id: Baseline level 1.0.
        assert_eq!(
            formats("a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n"),
            [h264(96, 0x42000a)]
        );
        // The encoding name in any case, parameters spaced and upper-case.
        assert_eq!(
            formats("a=rtpmap:97 h264/90000\r\na=fmtp:97 Packetization-Mode = 1 ; PROFILE-LEVEL-ID=42E01F\r\n"),
            [h264(97, 0x42e01f)]
        );
        for media in [
            // No rtpmap, no fmtp, mode 0, mode 2.
            "a=fmtp:96 packetization-mode=1\r\n",
            "a=rtpmap:96 H264/90000\r\n",
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f\r\n",
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=2\r\n",
            // Not six hex digits.
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01\r\n",
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e0zz\r\n",
            // Another clock rate, another codec.
            "a=rtpmap:96 H264/48000\r\na=fmtp:96 packetization-mode=1\r\n",
            "a=rtpmap:96 H265/90000\r\na=fmtp:96 packetization-mode=1\r\n",
            // Not on the m= line, not a payload type.
            "a=rtpmap:100 H264/90000\r\na=fmtp:100 packetization-mode=1\r\n",
            "a=rtpmap:+96 H264/90000\r\na=fmtp:+96 packetization-mode=1\r\n",
            "a=rtpmap:300 H264/90000\r\na=fmtp:300 packetization-mode=1\r\n",
            "a=rtpmap:96H264/90000\r\na=fmtp:96packetization-mode=1\r\n",
        ] {
            assert_eq!(formats(media), [], "{media}");
        }
        // Only the first video section is read.
        let sdp = "v=0\nm=video 9 RTP/AVP 96\nm=video 9 RTP/AVP 97\n\
                   a=rtpmap:97 H264/90000\na=fmtp:97 packetization-mode=1\n";
        assert_eq!(check_offer(sdp.as_bytes()).unwrap().h264, []);
        // A payload type listed twice counts once.
        let sdp = "v=0\nm=video 9 RTP/AVP 96 96\n\
                   a=rtpmap:96 H264/90000\na=fmtp:96 packetization-mode=1\n";
        assert_eq!(check_offer(sdp.as_bytes()).unwrap().h264.len(), 1);
    }

    #[test]
    fn offers_that_are_refused() {
        assert_eq!(invalid(b""), "SDP does not start with v=0");
        assert_eq!(
            invalid(b"v=1\r\nm=video 9 RTP/AVP 96\r\n"),
            "SDP does not start with v=0"
        );
        assert_eq!(
            invalid(b" v=0\r\nm=video 9 RTP/AVP 96\r\n"),
            "SDP does not start with v=0"
        );
        assert_eq!(
            invalid(b"v=0 \r\nm=video 9 RTP/AVP 96\r\n"),
            "SDP does not start with v=0"
        );
        assert_eq!(
            invalid(br#"{"type":"offer","sdp":"v=0"}"#),
            "SDP does not start with v=0"
        );
        assert_eq!(invalid(b"v=0\r\n"), "SDP offers no video");
        assert_eq!(
            invalid(b"v=0\r\nm=audio 9 RTP/AVP 0\r\n"),
            "SDP offers no video"
        );
        assert_eq!(
            invalid(b"v=0\r\na=m=video 9 RTP/AVP 96\r\n"),
            "SDP offers no video"
        );
        assert_eq!(
            invalid(b"v=0\r\nm=videos 9 RTP/AVP 96\r\n"),
            "SDP offers no video"
        );
        assert_eq!(
            invalid(b"v=0\r\nm=video 9 RTP/AVP 96\r\n\xff"),
            "SDP is not UTF-8"
        );
        let mut huge = MAINSAIL_CHROMIUM_OFFER.as_bytes().to_vec();
        huge.resize(MAX_BODY_BYTES, b'\n');
        assert!(check_offer(&huge).is_ok());
        huge.push(b'\n');
        assert_eq!(check_offer(&huge), Err(SignallingError::TooLarge));
    }

    proptest! {
        #[test]
        fn any_bytes_are_an_offer_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = check_offer(&bytes);
        }

        #[test]
        fn any_sdp_like_lines_are_an_offer_or_an_error(
            lines in prop::collection::vec(
                "m=(video|audio) [0-9]{1,2} RTP/AVP( [0-9+]{1,3}){0,6}|a=(rtpmap|fmtp):[0-9]{1,3}[ -~]{0,30}|a=(sendrecv|recvonly|inactive)|[ -~]{0,20}",
                0..30,
            )
        ) {
            let sdp = format!("v=0\r\n{}", lines.join("\r\n"));
            if let Ok(offer) = check_offer(sdp.as_bytes()) {
                let mut seen = Vec::new();
                for format in &offer.h264 {
                    prop_assert!(format.payload_type <= MAX_PAYLOAD_TYPE);
                    prop_assert!(!seen.contains(&format.payload_type));
                    seen.push(format.payload_type);
                }
            }
        }
    }
}
