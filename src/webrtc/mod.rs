//! WebRTC signalling, sans-IO: what browsers and their web UIs send to set
//! up a WebRTC viewer, read and checked, and the replies they expect
//! (issue 30).
//!
//! This module owns the signalling of the three kinds of client camloop
//! will serve, and nothing of WebRTC itself:
//!
//! - [`whep`]: WHEP (draft-ietf-wish-whep: Mainsail, Fluidd): which camera
//!   and which session a `…/whep` path names, the `If-Match` check of a
//!   `PATCH`, and the trickle-ICE fragment (RFC 8840) a `PATCH` carries.
//! - [`json`]: camera-streamer's JSON at `…/webrtc` (Mainsail, Fluidd) and
//!   OctoPrint's one-shot offer: the messages read, the replies built.
//! - [`offer`]: what a browser's SDP offer asks for (video, audio, the
//!   direction, the H.264 formats), for the answer to be made from.
//! - `fixtures.rs` (tests only): what the clients send, written out once.
//!
//! Here, in this file: the bounds every parser holds to, the
//! [`SignallingError`] they all return (answered `400`, or `413` for a
//! body over the bound, with `{"error":"webrtc: …"}`), and [`Candidate`],
//! the one shape of an ICE candidate whichever way it came.
//!
//! Like [`crate::rtsp`], it never touches a socket or a clock: bytes and
//! paths go in, plain values come out, so all of it is tested, and fuzzed
//! (`fuzz/fuzz_targets/webrtc_signalling.rs`), with byte slices. The server
//! wiring (the HTTP routes, sessions and their timeouts) and the WebRTC
//! stack (str0m: ICE, DTLS, SRTP, the answer itself) come later.

use std::fmt;

#[cfg(test)]
mod fixtures;
pub mod json;
pub mod offer;
pub mod whep;

pub use json::{
    answer_json, empty_json, offer_json, parse_webrtc_message, webrtc_route, WebrtcMessage,
    WebrtcRoute,
};
pub use offer::{check_offer, Direction, H264Format, OfferSummary};
pub use whep::{
    etag_matches, parse_trickle_fragment, whep_location, whep_route, TrickleFragment, WhepRoute,
};

/// Largest signalling body read: an SDP offer, a JSON message carrying
/// one, or a trickle-ICE fragment. A browser's offer is 3 to 6 KiB, and
/// one sent after gathering completed (OctoPrint's) adds a line of about
/// 100 bytes per candidate per media section; 64 KiB is ten times what a
/// browser on a host with many interfaces sends, and small enough to hold
/// whole. Past it the answer is `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Most ICE candidates in one message (a `remote_candidate` list, a
/// trickle-ICE fragment). Browsers trickle one candidate per message; a
/// whole gathering is a candidate per interface, per address family and
/// per protocol (UDP and TCP), plus server-reflexive and relayed ones: a
/// dozen, a few dozen on a host with many interfaces.
pub const MAX_CANDIDATES_PER_MESSAGE: usize = 64;

/// Longest ICE candidate accepted (`candidate:…`, RFC 8839 §5.1). One with
/// an IPv6 address, a related address and every extension a browser adds
/// (`generation`, `ufrag`, `network-id`, `network-cost`) is under 250
/// bytes.
pub const MAX_CANDIDATE_BYTES: usize = 1024;

/// Longest media id (`a=mid`, `sdpMid`) accepted. Browsers number their
/// media sections: `0`, `1`.
pub const MAX_MID_BYTES: usize = 32;

/// Longest session id (a WHEP resource, camera-streamer's `id`) accepted.
/// The server makes them; anything longer is not one of its own.
pub const MAX_PEER_ID_BYTES: usize = 64;

/// Longest reason kept from `serde_json`'s message in
/// [`SignallingError::Json`]: a message can quote the client's input (an
/// unknown `type`), which is not sent back at any length.
pub const MAX_REASON_BYTES: usize = 120;

/// Why a signalling request cannot be used. The server answers
/// [`status`](SignallingError::status) with
/// [`error_json`](SignallingError::error_json) and forgets the request;
/// a session it names, if any, is left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignallingError {
    /// 413: a body over [`MAX_BODY_BYTES`].
    TooLarge,
    /// 400: over [`MAX_CANDIDATES_PER_MESSAGE`] candidates in one message.
    TooManyCandidates,
    /// 400: a body or field that is not what the exchange carries; the
    /// reason is sent back.
    Invalid(&'static str),
    /// 400: JSON that is not one of the messages, with `serde_json`'s
    /// reason (`missing field `id` at line 1 column 30`), at most
    /// [`MAX_REASON_BYTES`] long.
    Json(String),
}

impl SignallingError {
    /// `serde_json`'s error, its message cut to [`MAX_REASON_BYTES`].
    fn json(error: &serde_json::Error) -> Self {
        let mut reason = error.to_string();
        if reason.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        SignallingError::Json(reason)
    }

    /// The status code the error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            SignallingError::TooLarge => 413,
            SignallingError::TooManyCandidates
            | SignallingError::Invalid(_)
            | SignallingError::Json(_) => 400,
        }
    }

    /// The body of the answer: `{"error":"webrtc: …"}`, the JSON error
    /// body of every other endpoint ([`crate::http::response::error_json`]).
    pub fn error_json(&self) -> String {
        crate::http::response::error_json(&format!("webrtc: {self}"))
    }
}

impl fmt::Display for SignallingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignallingError::TooLarge => write!(f, "body over {MAX_BODY_BYTES} bytes"),
            SignallingError::TooManyCandidates => {
                write!(f, "over {MAX_CANDIDATES_PER_MESSAGE} candidates")
            }
            SignallingError::Invalid(reason) => f.write_str(reason),
            SignallingError::Json(reason) => write!(f, "JSON: {reason}"),
        }
    }
}

impl std::error::Error for SignallingError {}

/// One remote ICE candidate, as a browser's `RTCIceCandidate` has it,
/// whether it came in a camera-streamer `remote_candidate` message or in a
/// WHEP trickle-ICE fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The candidate attribute without its `a=`:
    /// `candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host`.
    /// Empty for a browser's end-of-candidates (see
    /// [`is_end_of_candidates`](Candidate::is_end_of_candidates)).
    pub candidate: String,
    /// The media section it is for, by `a=mid` (`"0"`), if given.
    pub sdp_mid: Option<String>,
    /// The media section it is for, by position from 0, if given.
    pub sdp_m_line_index: Option<u16>,
}

impl Candidate {
    /// Whether this is the empty candidate a browser may send when its
    /// gathering is done (Firefox fires one, and Mainsail posts what it
    /// is given): nothing to add, no more to come.
    pub fn is_end_of_candidates(&self) -> bool {
        self.candidate.is_empty()
    }
}

/// Checks the text of a candidate: empty (end of candidates), or
/// `candidate:` and something after it, within [`MAX_CANDIDATE_BYTES`].
/// No control characters: the text goes into an SDP line and a log line,
/// and a CR or LF would end either.
fn check_candidate(text: &str) -> Result<(), SignallingError> {
    if text.is_empty() {
        return Ok(());
    }
    if text.len() > MAX_CANDIDATE_BYTES {
        return Err(SignallingError::Invalid("candidate too long"));
    }
    if text.chars().any(char::is_control) {
        return Err(SignallingError::Invalid("control character in a candidate"));
    }
    match text.strip_prefix("candidate:") {
        Some(rest) if !rest.trim().is_empty() => Ok(()),
        _ => Err(SignallingError::Invalid("not a candidate:")),
    }
}

/// Checks a media id: 1 to [`MAX_MID_BYTES`] printable ASCII characters,
/// no spaces (RFC 8843 §15: a `token`).
fn check_mid(mid: &str) -> Result<(), SignallingError> {
    if mid.is_empty() || mid.len() > MAX_MID_BYTES || !mid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SignallingError::Invalid("invalid mid"));
    }
    Ok(())
}

/// Whether `id` can be a session id: 1 to [`MAX_PEER_ID_BYTES`] of
/// `A-Z a-z 0-9 - _`. The server's own ids are of that form; holding
/// clients to it keeps what they echo plain in paths, JSON and logs.
pub fn is_peer_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PEER_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The non-empty segments of a request path, with a query or fragment (if
/// the caller left one on) cut off. `/webcam//whep/` is `["webcam",
/// "whep"]`.
fn path_segments(path: &str) -> Vec<&str> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The camera named by the path segments in front of an endpoint (`whep`,
/// `webrtc`), by the rule of the HTTP routes: `…/cam/NAME` is camera
/// `NAME`, a trailing `cam` with no name is no route (`None`), and
/// anything else is the default camera (`Some(None)`) behind whatever
/// prefix a reverse proxy left (`/webcam/whep`).
fn camera_in_prefix(prefix: &[&str]) -> Option<Option<String>> {
    match prefix {
        [.., "cam", name] => Some(Some((*name).to_owned())),
        [.., "cam"] => None,
        _ => Some(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_answered_with_json_saying_webrtc() {
        let error = SignallingError::Invalid("SDP offers no video");
        assert_eq!(error.status(), 400);
        assert_eq!(
            error.error_json(),
            r#"{"error":"webrtc: SDP offers no video"}"#
        );
        assert_eq!(SignallingError::TooLarge.status(), 413);
        assert_eq!(
            SignallingError::TooLarge.error_json(),
            r#"{"error":"webrtc: body over 65536 bytes"}"#
        );
        assert_eq!(SignallingError::TooManyCandidates.status(), 400);
        assert_eq!(
            SignallingError::TooManyCandidates.to_string(),
            "over 64 candidates"
        );
    }

    #[test]
    fn a_json_reason_is_cut_short_on_a_char_boundary() {
        // serde_json quotes an unknown `type` whole; `é` is two bytes, so
        // byte 120 falls inside one (17 bytes of "unknown variant `" and
        // then 2 per `é`).
        let body = format!(r#"{{"type":"{}"}}"#, "é".repeat(200));
        let Err(SignallingError::Json(reason)) = parse_webrtc_message(body.as_bytes()) else {
            panic!("an unknown type is a JSON error");
        };
        assert!(reason.starts_with("unknown variant `éé"), "{reason}");
        assert_eq!(reason.len(), MAX_REASON_BYTES - 1);
    }

    #[test]
    fn peer_ids_are_short_plain_tokens() {
        assert!(is_peer_id("0a1b2c3d4e5f6071"));
        assert!(is_peer_id("3f9e-Ab_1"));
        assert!(is_peer_id(&"a".repeat(MAX_PEER_ID_BYTES)));
        for id in ["", "a b", "a/b", "a?b", "é", "a\r\n"] {
            assert!(!is_peer_id(id), "{id:?}");
        }
        assert!(!is_peer_id(&"a".repeat(MAX_PEER_ID_BYTES + 1)));
    }

    #[test]
    fn candidates_and_mids_are_checked() {
        assert_eq!(check_candidate(""), Ok(()));
        assert_eq!(
            check_candidate("candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host"),
            Ok(())
        );
        for bad in [
            "candidate:",
            "candidate: ",
            "a=candidate:1 1 udp 1 192.0.2.1 1 typ host",
            "1 1 udp 1 192.0.2.1 1 typ host",
            "candidate:1 1 udp 1 192.0.2.1 1 typ host\r\na=evil",
        ] {
            assert!(check_candidate(bad).is_err(), "{bad:?}");
        }
        let long = format!("candidate:{}", "1".repeat(MAX_CANDIDATE_BYTES));
        assert!(check_candidate(&long).is_err());
        assert_eq!(check_mid("0"), Ok(()));
        for bad in ["", "a b", "\u{7f}", &"m".repeat(MAX_MID_BYTES + 1)] {
            assert!(check_mid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_camera_in_front_of_an_endpoint() {
        let camera = |path: &str| camera_in_prefix(&path_segments(path));
        assert_eq!(camera(""), Some(None));
        assert_eq!(camera("/webcam"), Some(None));
        assert_eq!(camera("/cam/door"), Some(Some("door".into())));
        assert_eq!(camera("/printer/cam/door/"), Some(Some("door".into())));
        assert_eq!(camera("/cam"), None);
        assert_eq!(camera("/cam/"), None);
        assert_eq!(camera("/cam/door?x=/cam"), Some(Some("door".into())));
    }
}
