//! Response bytes: the status line, `CSeq`, `Session` and the other header
//! fields of an RTSP 1.0 response (RFC 2326 §7), with an optional body.
//!
//! This module owns the exact bytes camloop answers an RTSP client with.
//! Like [`crate::http::response`], every function builds a fresh `Vec<u8>`
//! from plain values, touches nothing else and cannot fail. Which status a
//! request gets, and the values of `Transport`, `RTP-Info` or `Public`, are
//! the server's (issue 28); this module writes what it is given.

use std::fmt::Write as _;

/// The content type of a `DESCRIBE` answer's body.
pub const CONTENT_TYPE_SDP: &str = "application/sdp";

/// The `Session` timeout camloop announces by default, in seconds
/// (RFC 2326 §12.37: a client sends a request, or RTCP, within it to keep
/// its session); `--rtsp-session-timeout` changes it.
pub const DEFAULT_SESSION_TIMEOUT_SECS: u32 = 60;

/// `$`, the channel and two bytes of length: what precedes every RTP or
/// RTCP packet sent over the RTSP connection (RFC 2326 §10.12).
pub const INTERLEAVED_HEADER_BYTES: usize = 4;

/// The byte that starts an interleaved binary frame instead of a message.
pub const INTERLEAVED_MAGIC: u8 = b'$';

/// The methods camloop answers, for the `Public` header of `OPTIONS`.
pub const PUBLIC_METHODS: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER";

/// The reason phrase of RFC 2326 §7.1.1 for `status`; empty for codes
/// camloop never sends (a client reads only the code).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        451 => "Parameter Not Understood",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        456 => "Header Field Not Valid for Resource",
        457 => "Invalid Range",
        459 => "Aggregate Operation Not Allowed",
        460 => "Only Aggregate Operation Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        551 => "Option not supported",
        _ => "",
    }
}

/// What goes into a response besides its status and `CSeq`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFields<'a> {
    /// The session id and its timeout in seconds, written as
    /// `Session: ID;timeout=60`.
    pub session: Option<(&'a str, u32)>,
    /// `Content-Base` of a `DESCRIBE` answer; it must end in `/` for the
    /// client to append the SDP's `a=control` to it.
    pub content_base: Option<&'a str>,
    /// Any other header fields (`Public`, `Transport`, `RTP-Info`, `Range`,
    /// `WWW-Authenticate`, `Unsupported`), in order.
    pub extra: &'a [(&'a str, &'a str)],
    /// The body and its content type (an SDP).
    pub body: Option<(&'a str, &'a [u8])>,
}

/// A whole response: status line, `CSeq` (omitted when the request had
/// none, as for a 400 about exactly that), the fields, `Content-Length`
/// when there is a body, the blank line and the body.
pub fn response(status: u16, cseq: Option<u32>, fields: &ResponseFields<'_>) -> Vec<u8> {
    let mut head = String::with_capacity(160);
    // Writing to a String cannot fail; `fmt::Write` just has to say it might.
    let _ = write!(head, "RTSP/1.0 {status} {}\r\n", reason_phrase(status));
    if let Some(cseq) = cseq {
        let _ = write!(head, "CSeq: {cseq}\r\n");
    }
    let mut field = |name: &str, value: &dyn std::fmt::Display| {
        let _ = write!(head, "{name}: {value}\r\n");
    };
    field("Server", &"camloop");
    if let Some((session, timeout_secs)) = fields.session {
        field("Session", &format_args!("{session};timeout={timeout_secs}"));
    }
    if let Some(base) = fields.content_base {
        field("Content-Base", &base);
    }
    for (name, value) in fields.extra {
        // Values come from the server's own code or are checked by it; a
        // line break in one would split the response.
        debug_assert!(!name.contains(['\r', '\n']) && !value.contains(['\r', '\n']));
        field(name, value);
    }
    if let Some((content_type, body)) = fields.body {
        field("Content-Type", &content_type);
        field("Content-Length", &body.len());
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some((_, body)) = fields.body {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// Appends `payload` (an RTP or RTCP packet) framed for `channel` of an
/// RTSP connection: `$`, the channel, the length, the packet.
///
/// # Panics
///
/// If `payload` is over 65535 bytes, which the 16-bit length cannot say:
/// `--rtp-mtu` keeps every packet far under it.
pub fn push_interleaved(out: &mut Vec<u8>, channel: u8, payload: &[u8]) {
    let length = u16::try_from(payload.len()).expect("an RTP packet fits 16 bits of length");
    out.push(INTERLEAVED_MAGIC);
    out.push(channel);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An answer with no fields but `CSeq`: an error (`454`, `455`, `461`, ...)
/// or a bare `200` to a keepalive.
pub fn status_response(status: u16, cseq: Option<u32>) -> Vec<u8> {
    response(status, cseq, &ResponseFields::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::request::{RtspEvent, RtspReader};

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn an_error_is_a_status_line_and_cseq() {
        assert_eq!(
            text(&status_response(455, Some(7))),
            "RTSP/1.0 455 Method Not Valid in This State\r\nCSeq: 7\r\nServer: camloop\r\n\r\n"
        );
        // A request without CSeq gets a 400 without one.
        assert_eq!(
            text(&status_response(400, None)),
            "RTSP/1.0 400 Bad Request\r\nServer: camloop\r\n\r\n"
        );
    }

    #[test]
    fn every_status_camloop_sends_has_its_reason_phrase() {
        for (status, reason) in [
            (200, "OK"),
            (401, "Unauthorized"),
            (404, "Not Found"),
            (454, "Session Not Found"),
            (455, "Method Not Valid in This State"),
            (459, "Aggregate Operation Not Allowed"),
            (461, "Unsupported Transport"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (505, "RTSP Version Not Supported"),
            (551, "Option not supported"),
        ] {
            assert_eq!(reason_phrase(status), reason, "{status}");
            let line = format!("RTSP/1.0 {status} {reason}\r\n");
            assert!(text(&status_response(status, Some(1))).starts_with(&line));
        }
        assert_eq!(reason_phrase(299), "");
    }

    #[test]
    fn a_describe_answer_with_its_sdp() {
        let sdp = b"v=0\r\ns=camloop\r\n";
        let bytes = response(
            200,
            Some(2),
            &ResponseFields {
                content_base: Some("rtsp://127.0.0.1:8554/door/"),
                body: Some((CONTENT_TYPE_SDP, sdp)),
                ..Default::default()
            },
        );
        assert_eq!(
            text(&bytes),
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nServer: camloop\r\n\
             Content-Base: rtsp://127.0.0.1:8554/door/\r\n\
             Content-Type: application/sdp\r\nContent-Length: 16\r\n\r\n\
             v=0\r\ns=camloop\r\n"
        );
    }

    #[test]
    fn a_setup_answer_with_session_and_transport() {
        let transport = "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1A2B3C4D;mode=\"PLAY\"";
        let bytes = response(
            200,
            Some(3),
            &ResponseFields {
                session: Some(("5F3A9C01", 60)),
                extra: &[("Transport", transport)],
                ..Default::default()
            },
        );
        assert_eq!(
            text(&bytes),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 3\r\nServer: camloop\r\n\
                 Session: 5F3A9C01;timeout=60\r\nTransport: {transport}\r\n\r\n"
            )
        );
    }

    /// The writer's output is what the reader's parser takes, framing and
    /// all: a response is a request head with another first line.
    #[test]
    fn the_length_frames_the_body() {
        let body = b"a=x\r\n\r\n$\x00\x00\x01";
        let bytes = response(
            200,
            Some(9),
            &ResponseFields {
                body: Some((CONTENT_TYPE_SDP, body)),
                ..Default::default()
            },
        );
        let as_request = [
            &b"ANNOUNCE * RTSP/1.0"[..],
            &bytes[bytes.iter().position(|&b| b == b'\r').unwrap()..],
        ]
        .concat();
        let mut reader = RtspReader::new();
        reader.push(&as_request);
        match reader.next_event() {
            Some(RtspEvent::Request(request)) => {
                assert_eq!(request.cseq, 9);
                assert_eq!(request.body, body);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reader.next_event(), None);
    }
}
