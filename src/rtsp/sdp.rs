//! The session description (SDP, RFC 8866) a `DESCRIBE` is answered with:
//! one H.264 video track, described from the camera's parameter sets.
//!
//! This module owns the text of that description: the session lines, the
//! `m=video` line with RTP/AVP and the dynamic payload type, and the H.264
//! format parameters of RFC 6184 §8.1 (`packetization-mode=1`,
//! `profile-level-id`, `sprop-parameter-sets`) that let a client set up its
//! decoder before the first IDR arrives. What the values are (the session
//! id, the address, the frame rate) is the caller's; this module only
//! writes them. Lines end in CRLF, as SDP requires.

use std::fmt::Write as _;
use std::net::IpAddr;

use base64::Engine as _;

use super::rtp::{DYNAMIC_PAYLOAD_TYPE, RTP_CLOCK_HZ};
use crate::h264::ParameterSets;

/// The `a=control` value of camloop's one track. A client appends it, after
/// a `/`, to the `Content-Base` to get the URL it sends `SETUP` to.
pub const TRACK_CONTROL: &str = "trackID=0";

/// What a description needs besides the parameter sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpSession {
    /// The `o=` line's session id: any number unique to this server's
    /// sessions (RFC 8866 §5.2 suggests an NTP timestamp; the camera's
    /// start time will do).
    pub session_id: u64,
    /// The address of the server the client connected to, for `o=`.
    pub server_address: IpAddr,
    /// The camera's frame rate, when it has one (`a=framerate`); an H.264
    /// camera's stream may not say.
    pub frames_per_second: Option<u32>,
}

/// `profile-level-id` (RFC 6184 §8.1): the three bytes after the SPS's NAL
/// unit header, `profile_idc`, the constraint flags and `level_idc`, as six
/// hex digits. Taken from the SPS bytes themselves rather than from
/// [`crate::h264::SpsInfo`] so that it is exactly what the stream says.
/// `None` for an SPS too short to have them.
pub fn profile_level_id(sps: &[u8]) -> Option<String> {
    let bytes = sps.get(1..4)?;
    Some(bytes.iter().map(|byte| format!("{byte:02X}")).collect())
}

/// `sprop-parameter-sets` (RFC 6184 §8.1): the SPS and PPS NAL units,
/// emulation prevention bytes and all, each in base64, comma-separated.
pub fn sprop_parameter_sets(parameter_sets: &ParameterSets) -> String {
    let base64 = base64::engine::general_purpose::STANDARD;
    format!(
        "{},{}",
        base64.encode(&parameter_sets.sps),
        base64.encode(&parameter_sets.pps)
    )
}

/// The whole description: session lines, then the one video track.
///
/// The track's port is 0 and its connection address unspecified: with RTSP
/// the transport is agreed on by `SETUP`, not here (RFC 2326 Appendix C.1).
pub fn session_description(parameter_sets: &ParameterSets, session: &SdpSession) -> String {
    let (address_type, unspecified) = match session.server_address {
        IpAddr::V4(_) => ("IP4", "0.0.0.0"),
        IpAddr::V6(_) => ("IP6", "::"),
    };
    let pt = DYNAMIC_PAYLOAD_TYPE;
    let mut sdp = String::new();
    // `fmt::Write` for a String cannot fail; the results are ignored.
    let mut line = |text: std::fmt::Arguments<'_>| {
        let _ = sdp.write_fmt(text);
        sdp.push_str("\r\n");
    };
    line(format_args!("v=0"));
    line(format_args!(
        "o=- {} 1 IN {address_type} {}",
        session.session_id, session.server_address
    ));
    line(format_args!("s=camloop"));
    line(format_args!("c=IN {address_type} {unspecified}"));
    line(format_args!("t=0 0"));
    line(format_args!("a=control:*"));
    line(format_args!("m=video 0 RTP/AVP {pt}"));
    line(format_args!("a=rtpmap:{pt} H264/{RTP_CLOCK_HZ}"));
    let mut fmtp = format!("a=fmtp:{pt} packetization-mode=1");
    if let Some(id) = profile_level_id(&parameter_sets.sps) {
        let _ = write!(fmtp, ";profile-level-id={id}");
    }
    let _ = write!(
        fmtp,
        ";sprop-parameter-sets={}",
        sprop_parameter_sets(parameter_sets)
    );
    line(format_args!("{fmtp}"));
    line(format_args!("a=control:{TRACK_CONTROL}"));
    if let Some(fps) = session.frames_per_second {
        line(format_args!("a=framerate:{fps}"));
    }
    let (width, height) = (parameter_sets.info.width, parameter_sets.info.height);
    line(format_args!("a=x-dimensions:{width},{height}"));
    sdp
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::h264::parse_sps;

    /// x264's SPS and PPS for 640x480 High profile, level 3.0:
    /// `ffmpeg -f lavfi -i testsrc2=size=640x480:rate=25 -frames:v 1
    /// -c:v libx264 -profile:v high -f h264 x.h264`.
    const HIGH_SPS: [u8; 25] = [
        0x67, 0x64, 0x00, 0x1E, 0xAC, 0xD9, 0x40, 0xA0, 0x3D, 0xB0, 0x11, 0x00, 0x00, 0x03, 0x00,
        0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0F, 0x16, 0x2D, 0x96,
    ];
    const HIGH_PPS: [u8; 6] = [0x68, 0xEB, 0xE3, 0xCB, 0x22, 0xC0];

    /// What ffmpeg's own RTP muxer announces for the same stream (`-flags
    /// +global_header -f rtp rtp://127.0.0.1:5004 -sdp_file x.sdp`): the
    /// oracle for both format parameters.
    const FFMPEG_PROFILE_LEVEL_ID: &str = "64001E";
    const FFMPEG_SPROP: &str = "Z2QAHqzZQKA9sBEAAAMAAQAAAwAyDxYtlg==,aOvjyyLA";

    fn high() -> ParameterSets {
        ParameterSets {
            sps: HIGH_SPS.to_vec(),
            pps: HIGH_PPS.to_vec(),
            info: parse_sps(&HIGH_SPS).expect("x264's SPS parses"),
        }
    }

    #[test]
    fn format_parameters_are_what_ffmpeg_announces() {
        let parameter_sets = high();
        assert_eq!(
            profile_level_id(&parameter_sets.sps).as_deref(),
            Some(FFMPEG_PROFILE_LEVEL_ID)
        );
        assert_eq!(sprop_parameter_sets(&parameter_sets), FFMPEG_SPROP);
        // The SPS parser agrees with the bytes profile-level-id is made of.
        let info = parameter_sets.info;
        assert_eq!((info.profile_idc, info.level_idc), (100, 30));
        assert_eq!((info.width, info.height), (640, 480));
        assert_eq!(profile_level_id(&[0x67, 0x42]), None);
    }

    #[test]
    fn the_description_of_a_camera() {
        let session = SdpSession {
            session_id: 1_700_000_000,
            server_address: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)),
            frames_per_second: Some(25),
        };
        let sdp = session_description(&high(), &session);
        let expected = [
            "v=0",
            "o=- 1700000000 1 IN IP4 192.168.1.20",
            "s=camloop",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            "m=video 0 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
            &format!(
                "a=fmtp:96 packetization-mode=1;profile-level-id={FFMPEG_PROFILE_LEVEL_ID};\
                 sprop-parameter-sets={FFMPEG_SPROP}"
            ),
            "a=control:trackID=0",
            "a=framerate:25",
            "a=x-dimensions:640,480",
        ];
        let expected: String = expected.iter().map(|line| format!("{line}\r\n")).collect();
        assert_eq!(sdp, expected);
        assert!(
            !sdp.replace("\r\n", "").contains('\n'),
            "only CRLF line ends"
        );
    }

    #[test]
    fn ipv6_and_no_frame_rate() {
        let session = SdpSession {
            session_id: 7,
            server_address: IpAddr::V6(Ipv6Addr::LOCALHOST),
            frames_per_second: None,
        };
        let sdp = session_description(&high(), &session);
        assert!(sdp.contains("\r\no=- 7 1 IN IP6 ::1\r\n"), "{sdp}");
        assert!(sdp.contains("\r\nc=IN IP6 ::\r\n"), "{sdp}");
        assert!(!sdp.contains("a=framerate"), "{sdp}");
    }
}
