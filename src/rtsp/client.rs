//! The client's side of an RTSP connection, sans-IO: what a server sends
//! ([`ResponseReader`]: responses and `$`-framed RTP and RTCP, into
//! [`ServerEvent`]s) and the small parsers a client needs to go from
//! `DESCRIBE` to `PLAY` ([`parse_session`], [`sdp_video`], [`control_url`]).
//!
//! This module owns reading RTSP 1.0 responses (RFC 2326 §7): the status
//! line `RTSP/1.0 NNN reason`, the header fields, a body by
//! `Content-Length`, and the binary frames a server interleaves with them
//! once it plays (§10.12), with their bounds. The server never reads a
//! response; this is for the load tool (`camloop load --rtsp`) and the
//! tests. It shares the request reader's buffering and head parsing
//! ([`super::request`]); only the first line and the bounds differ.

use std::fmt;

use super::request::{
    content_length, first_line, header_fields, header_value, interleaved_frame, owned_fields,
    parse_number, Frame, HeadFault, Oversize, Unread, MAX_HEADERS,
};
use super::response::INTERLEAVED_MAGIC;

/// Largest response body accepted: a `DESCRIBE`'s SDP, camloop's about
/// 400 bytes, a multi-track camera's a few KiB. Past it the reader is
/// spent.
pub const MAX_RESPONSE_BODY_BYTES: usize = 64 * 1024;

/// Largest interleaved frame from a server: whatever the 16-bit length can
/// say, so the bound is the framing's own (an RTP packet over TCP may be
/// that large).
pub const MAX_SERVER_FRAME_BYTES: usize = u16::MAX as usize;

/// The `Session` timeout when a server's `Session` header gives none
/// (RFC 2326 §12.37).
pub const DEFAULT_SESSION_TIMEOUT_SECS: u32 = 60;

/// One response, body included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspResponse {
    /// The status code: 200, 401, 454, ...
    pub status: u16,
    /// The reason phrase as sent (may be empty).
    pub reason: String,
    /// `CSeq`, echoing the request's; a server may leave it out of an
    /// answer to a request it could not read.
    pub cseq: Option<u32>,
    /// The header fields in order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (an SDP), empty if none.
    pub body: Vec<u8>,
}

impl RtspResponse {
    /// The value of the first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every value of the fields called `name`, in order: a `401` may carry
    /// several `WWW-Authenticate` challenges.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why a server's input cannot be read on. After any of these the reader
/// is spent: where the next message would start is no longer known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// Not an RTSP/1.0 response (the reason says what is wrong).
    Malformed(&'static str),
    /// A head over [`super::request::MAX_HEAD_BYTES`] or
    /// [`MAX_HEADERS`] fields, or a body over [`MAX_RESPONSE_BODY_BYTES`].
    TooLarge(Oversize),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(reason) => write!(f, "bad RTSP response: {reason}"),
            ResponseError::TooLarge(Oversize::Body) => {
                write!(f, "RTSP response body over {MAX_RESPONSE_BODY_BYTES} bytes")
            }
            ResponseError::TooLarge(_) => write!(f, "RTSP response head too large"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// What the reader found next in a server's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A complete response.
    Response(RtspResponse),
    /// A `$`-framed packet: RTP or RTCP on `channel`, as `SETUP` agreed.
    Interleaved {
        /// The channel.
        channel: u8,
        /// The packet.
        payload: Vec<u8>,
    },
    /// The input cannot be read on; see [`ResponseError`].
    Error(ResponseError),
}

/// One connection's input from a server, as [`super::RtspReader`] is for a
/// client's: push every read, then take events until
/// [`next_event`](ResponseReader::next_event) returns `None`. Responses and
/// frames come out one by one, in order, whatever the chunking; after an
/// error the reader reports it once and then nothing more.
///
/// ```
/// use camloop::rtsp::client::{ResponseReader, ServerEvent};
///
/// let mut reader = ResponseReader::new();
/// reader.push(b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 5F3A;timeout=60\r\n\r\n$\x00\x00\x02hi");
/// let Some(ServerEvent::Response(response)) = reader.next_event() else { panic!() };
/// assert_eq!((response.status, response.cseq), (200, Some(3)));
/// assert_eq!(response.header("session"), Some("5F3A;timeout=60"));
/// assert_eq!(
///     reader.next_event(),
///     Some(ServerEvent::Interleaved { channel: 0, payload: b"hi".to_vec() })
/// );
/// assert_eq!(reader.next_event(), None);
/// ```
#[derive(Debug, Default)]
pub struct ResponseReader {
    input: Unread,
}

impl ResponseReader {
    /// An empty reader; it allocates nothing until bytes arrive.
    pub fn new() -> Self {
        ResponseReader::default()
    }

    /// Appends bytes received from the server. As for
    /// [`super::RtspReader::push`], push one read at a time and only once
    /// `next_event` returned `None`, so the buffer holds at most one read
    /// and one unfinished message.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.push(bytes);
    }

    /// The next event, or `None` when more bytes are needed (or after an
    /// error).
    pub fn next_event(&mut self) -> Option<ServerEvent> {
        match parse_server_message(self.input.next_message()?) {
            Ok(None) => None,
            Ok(Some((event, consumed))) => {
                self.input.consume(consumed);
                Some(event)
            }
            Err(error) => {
                self.input.spend();
                Some(ServerEvent::Error(error))
            }
        }
    }

    /// Bytes currently held, for accounting.
    pub fn buffered_bytes(&self) -> usize {
        self.input.buffered_bytes()
    }
}

/// The message at the start of `buf` and the bytes it used, `None` if it
/// is not all there yet.
fn parse_server_message(buf: &[u8]) -> Result<Option<(ServerEvent, usize)>, ResponseError> {
    match buf.first() {
        None => Ok(None),
        Some(&INTERLEAVED_MAGIC) => match interleaved_frame(buf, MAX_SERVER_FRAME_BYTES) {
            Frame::Incomplete => Ok(None),
            Frame::TooLarge => Err(ResponseError::TooLarge(Oversize::Interleaved)),
            Frame::Complete {
                channel,
                payload,
                consumed,
            } => {
                let payload = payload.to_vec();
                Ok(Some((
                    ServerEvent::Interleaved { channel, payload },
                    consumed,
                )))
            }
        },
        Some(_) => parse_response(buf),
    }
}

/// A response: the status line, the header fields, the body.
fn parse_response(buf: &[u8]) -> Result<Option<(ServerEvent, usize)>, ResponseError> {
    let Some((line, fields_start)) = first_line(buf).map_err(ResponseError::TooLarge)? else {
        return Ok(None);
    };
    let (status, reason) = parse_status_line(line)?;
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let head_end = match header_fields(buf, fields_start, &mut fields) {
        Ok(Some(head_end)) => head_end,
        Ok(None) => return Ok(None),
        Err(HeadFault::TooLarge) => return Err(ResponseError::TooLarge(Oversize::Head)),
        Err(HeadFault::BadField) => return Err(ResponseError::Malformed("invalid header field")),
    };
    let fields: Vec<&httparse::Header<'_>> = fields
        .iter()
        .take_while(|field| !field.name.is_empty())
        .collect();
    let cseq = match header_value(&fields, "cseq") {
        None => None,
        Some(value) => Some(parse_number(value).ok_or(ResponseError::Malformed("invalid CSeq"))?),
    };
    let body_length = content_length(&fields).map_err(ResponseError::Malformed)?;
    if body_length > MAX_RESPONSE_BODY_BYTES {
        return Err(ResponseError::TooLarge(Oversize::Body));
    }
    let Some(body) = buf.get(head_end..head_end + body_length) else {
        return Ok(None);
    };
    let response = RtspResponse {
        status,
        reason: reason.to_owned(),
        cseq,
        headers: owned_fields(&fields),
        body: body.to_vec(),
    };
    Ok(Some((
        ServerEvent::Response(response),
        head_end + body_length,
    )))
}

/// `RTSP/1.0 NNN reason`: the status code and the reason phrase (which may
/// be empty and may hold spaces).
fn parse_status_line(line: &[u8]) -> Result<(u16, &str), ResponseError> {
    let line =
        std::str::from_utf8(line).map_err(|_| ResponseError::Malformed("status line not UTF-8"))?;
    let rest = line
        .strip_prefix("RTSP/1.0 ")
        .ok_or(ResponseError::Malformed("not an RTSP/1.0 status line"))?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = match code.as_bytes() {
        [b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => code.parse().ok(),
        _ => None,
    };
    let status = status.ok_or(ResponseError::Malformed("not a status code"))?;
    Ok((status, reason))
}

/// A `Session` header of a response: the session id and its timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHeader {
    /// What the client sends back in its `Session` header.
    pub id: String,
    /// Seconds the server keeps the session without hearing from the
    /// client ([`DEFAULT_SESSION_TIMEOUT_SECS`] when not given).
    pub timeout_secs: u32,
}

/// `ID` or `ID;timeout=N` (RFC 2326 §12.37); `None` without an id. A
/// timeout that is not a number counts as not given.
pub fn parse_session(value: &str) -> Option<SessionHeader> {
    let mut parts = value.split(';').map(str::trim);
    let id = parts.next().filter(|id| !id.is_empty())?;
    let timeout_secs = parts
        .filter_map(|parameter| parameter.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("timeout"))
        .and_then(|(_, secs)| secs.trim().parse().ok())
        .unwrap_or(DEFAULT_SESSION_TIMEOUT_SECS);
    Some(SessionHeader {
        id: id.to_owned(),
        timeout_secs,
    })
}

/// What a client needs of an SDP's first video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpVideo {
    /// The first payload type of its `m=` line.
    pub payload_type: u8,
    /// The encoding `a=rtpmap` names for that payload type (`H264`), if
    /// it has one.
    pub encoding: Option<String>,
    /// Its `a=control`, if any: what `SETUP` goes to ([`control_url`]).
    pub control: Option<String>,
}

/// The first `m=video` section of an SDP, `None` if there is none (or its
/// `m=` line has no payload type).
pub fn sdp_video(sdp: &str) -> Option<SdpVideo> {
    let mut lines = sdp.lines().map(str::trim_end);
    let media = lines.find_map(|line| line.strip_prefix("m=video "))?;
    let payload_type = media.split_whitespace().nth(2)?.parse().ok()?;
    let mut video = SdpVideo {
        payload_type,
        encoding: None,
        control: None,
    };
    for line in lines.take_while(|line| !line.starts_with("m=")) {
        if let Some(control) = line.strip_prefix("a=control:") {
            video
                .control
                .get_or_insert_with(|| control.trim().to_owned());
        } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
            let (pt, format) = rtpmap.split_once(' ').unwrap_or((rtpmap, ""));
            if pt.trim().parse() == Ok(payload_type) {
                let encoding = format.split('/').next().unwrap_or("").trim();
                video.encoding = Some(encoding.to_owned());
            }
        }
    }
    Some(video)
}

/// The URL an `a=control` names against `base` (the `Content-Base`, or
/// the `DESCRIBE` URL): `base` itself for none or `*`, the control as it
/// is when absolute, else the control after `base` and a `/` (RFC 2326
/// §C.1.1; clients add the `/` when the base lacks it).
pub fn control_url(base: &str, control: Option<&str>) -> String {
    match control {
        None | Some("*") => base.to_owned(),
        Some(control)
            if control
                .get(..7)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rtsp://")) =>
        {
            control.to_owned()
        }
        Some(control) if base.ends_with('/') => format!("{base}{control}"),
        Some(control) => format!("{base}/{control}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::rtsp::request::{cut_at, MAX_HEAD_BYTES};
    use crate::rtsp::response::{push_interleaved, response, ResponseFields, CONTENT_TYPE_SDP};

    fn events_in_chunks(chunks: &[&[u8]]) -> Vec<ServerEvent> {
        let mut reader = ResponseReader::new();
        let mut events = Vec::new();
        for chunk in chunks {
            reader.push(chunk);
            events.extend(std::iter::from_fn(|| reader.next_event()));
        }
        events
    }

    fn events(bytes: &[u8]) -> Vec<ServerEvent> {
        events_in_chunks(&[bytes])
    }

    fn only_response(bytes: &[u8]) -> RtspResponse {
        match &events(bytes)[..] {
            [ServerEvent::Response(response)] => response.clone(),
            other => panic!("not one response: {other:?}"),
        }
    }

    fn malformed(bytes: &[u8]) -> bool {
        matches!(
            events(bytes)[..],
            [ServerEvent::Error(ResponseError::Malformed(_))]
        )
    }

    /// What camloop's server writes is what the client reads: a
    /// `DESCRIBE` answer, a `SETUP` answer, then RTCP and RTP frames.
    fn camloop_stream() -> (Vec<u8>, Vec<ServerEvent>) {
        let sdp = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=0\r\n";
        let describe = response(
            200,
            Some(2),
            &ResponseFields {
                content_base: Some("rtsp://10.0.0.2:8554/door/"),
                body: Some((CONTENT_TYPE_SDP, sdp)),
                ..Default::default()
            },
        );
        let setup = response(
            200,
            Some(3),
            &ResponseFields {
                session: Some(("5F3A9C01", 60)),
                extra: &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
                ..Default::default()
            },
        );
        let mut stream = [describe, setup].concat();
        let (rtcp, rtp) = (vec![0x80, 200, 0, 0], vec![0x80, 96, 0, 1, b'$', b'\r']);
        push_interleaved(&mut stream, 1, &rtcp);
        push_interleaved(&mut stream, 0, &rtp);
        stream.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n");
        let expected = events(&stream);
        (stream, expected)
    }

    #[test]
    fn what_camloop_sends_comes_out_as_responses_and_frames() {
        let (_, events) = camloop_stream();
        assert_eq!(events.len(), 5, "{events:?}");
        let ServerEvent::Response(describe) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!((describe.status, describe.reason.as_str()), (200, "OK"));
        assert_eq!(describe.cseq, Some(2));
        assert_eq!(
            describe.header("content-base"),
            Some("rtsp://10.0.0.2:8554/door/")
        );
        assert!(describe.body.ends_with(b"a=control:trackID=0\r\n"));
        let ServerEvent::Response(setup) = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!(setup.header("Session"), Some("5F3A9C01;timeout=60"));
        assert!(setup.body.is_empty());
        assert_eq!(
            events[2],
            ServerEvent::Interleaved {
                channel: 1,
                payload: vec![0x80, 200, 0, 0]
            }
        );
        assert!(
            matches!(&events[3], ServerEvent::Interleaved { channel: 0, payload } if payload.len() == 6)
        );
        assert!(matches!(&events[4], ServerEvent::Response(r) if r.cseq == Some(4)));
    }

    #[test]
    fn a_401_carries_every_challenge_and_reasons_may_be_anything() {
        let response = only_response(
            b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n\
              WWW-Authenticate: Digest realm=\"camloop\", nonce=\"ab\"\r\n\
              WWW-Authenticate: Basic realm=\"camloop\"\r\n\r\n",
        );
        assert_eq!(response.status, 401);
        let challenges: Vec<&str> = response.headers_named("www-authenticate").collect();
        assert_eq!(challenges.len(), 2);
        assert!(challenges[0].starts_with("Digest") && challenges[1].starts_with("Basic"));
        // No reason, or one with spaces; no CSeq (an answer to garbage).
        assert_eq!(only_response(b"RTSP/1.0 454\r\n\r\n").reason, "");
        let odd = only_response(b"RTSP/1.0 503 Service Unavailable Now\r\n\r\n");
        assert_eq!((odd.status, odd.cseq), (503, None));
        assert_eq!(odd.reason, "Service Unavailable Now");
    }

    #[test]
    fn what_is_not_an_rtsp_1_0_response_is_malformed() {
        for bytes in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"RTSP/2.0 200 OK\r\n\r\n",
            b"RTSP/1.0 20 OK\r\n\r\n",
            b"RTSP/1.0 2000 OK\r\n\r\n",
            b"RTSP/1.0 OK\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nCSeq: x\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nCSeq 1\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"RTSP/1.0 200 \xff\r\n\r\n",
        ] {
            assert!(malformed(bytes), "{:?}", bytes.escape_ascii().to_string());
        }
    }

    #[test]
    fn bounds_on_heads_and_bodies_and_a_spent_reader() {
        let mut endless = b"RTSP/1.0 200 OK\r\n".to_vec();
        while endless.len() < MAX_HEAD_BYTES {
            endless.extend_from_slice(b"X-Filler: 0123456789\r\n");
        }
        assert_eq!(
            events(&endless),
            [ServerEvent::Error(ResponseError::TooLarge(Oversize::Head))]
        );
        let mut many = b"RTSP/1.0 200 OK\r\n".to_vec();
        many.extend_from_slice(&b"A: b\r\n".repeat(MAX_HEADERS + 1));
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            events(&many),
            [ServerEvent::Error(ResponseError::TooLarge(Oversize::Head))]
        );
        // Refused from the length alone, before the body arrives.
        let oversize = format!(
            "RTSP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_RESPONSE_BODY_BYTES + 1
        );
        let mut reader = ResponseReader::new();
        reader.push(oversize.as_bytes());
        assert_eq!(
            reader.next_event(),
            Some(ServerEvent::Error(ResponseError::TooLarge(Oversize::Body)))
        );
        reader.push(b"RTSP/1.0 200 OK\r\n\r\n");
        assert_eq!(reader.next_event(), None, "spent");
        assert_eq!(reader.buffered_bytes(), 0);
        // The largest frame the 16-bit length can say is taken whole.
        let mut largest = vec![b'$', 0, 0xFF, 0xFF];
        largest.resize(4 + MAX_SERVER_FRAME_BYTES, 7);
        assert!(
            matches!(&events(&largest)[..], [ServerEvent::Interleaved { payload, .. }] if payload.len() == MAX_SERVER_FRAME_BYTES)
        );
    }

    #[test]
    fn an_unfinished_message_waits_for_the_rest() {
        let mut reader = ResponseReader::new();
        reader.push(b"RTSP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nv=");
        assert_eq!(reader.next_event(), None);
        reader.push(b"0\n\r\n$\x01\x00");
        assert!(
            matches!(reader.next_event(), Some(ServerEvent::Response(r)) if r.body == b"v=0\n")
        );
        // A stray CRLF after the body is skipped; the frame is unfinished.
        assert_eq!(reader.next_event(), None);
        assert_eq!(reader.buffered_bytes(), 3);
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40)) {
            let (stream, expected) = camloop_stream();
            prop_assert_eq!(events_in_chunks(&cut_at(&stream, &cuts)), expected);
        }

        #[test]
        fn any_bytes_give_events_within_the_bounds(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut reader = ResponseReader::new();
            reader.push(&bytes);
            while let Some(event) = reader.next_event() {
                if let ServerEvent::Response(response) = event {
                    prop_assert!(response.body.len() <= MAX_RESPONSE_BODY_BYTES);
                }
            }
            prop_assert!(reader.buffered_bytes() <= bytes.len());
        }
    }

    #[test]
    fn session_headers_give_the_id_and_the_timeout() {
        let session = |value| parse_session(value).map(|s| (s.id, s.timeout_secs));
        assert_eq!(
            session("5F3A9C01;timeout=60"),
            Some(("5F3A9C01".into(), 60))
        );
        assert_eq!(session("abc ; Timeout = 30"), Some(("abc".into(), 30)));
        assert_eq!(session("abc"), Some(("abc".into(), 60)));
        assert_eq!(session("abc;timeout=soon"), Some(("abc".into(), 60)));
        assert_eq!(session(";timeout=5"), None);
        assert_eq!(session(""), None);
    }

    #[test]
    fn the_video_track_of_an_sdp_and_its_control_url() {
        let sdp = "v=0\r\na=control:*\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=9\r\n\
                   m=video 0 RTP/AVP 96 97\r\na=rtpmap:97 VP8/90000\r\na=rtpmap:96 H264/90000\r\n\
                   a=control:trackID=0\r\na=control:other\r\nm=video 0 RTP/AVP 98\r\n";
        assert_eq!(
            sdp_video(sdp),
            Some(SdpVideo {
                payload_type: 96,
                encoding: Some("H264".into()),
                control: Some("trackID=0".into()),
            })
        );
        let bare = sdp_video("m=video 0 RTP/AVP 96\n").expect("a video track");
        assert_eq!((bare.encoding, bare.control), (None, None));
        assert_eq!(sdp_video("v=0\r\nm=audio 0 RTP/AVP 0\r\n"), None);
        assert_eq!(sdp_video("m=video 0 RTP/AVP\r\n"), None);

        let base = "rtsp://h:8554/door/";
        assert_eq!(
            control_url(base, Some("trackID=0")),
            "rtsp://h:8554/door/trackID=0"
        );
        assert_eq!(
            control_url("rtsp://h:8554/door", Some("trackID=0")),
            "rtsp://h:8554/door/trackID=0"
        );
        assert_eq!(control_url(base, Some("*")), base);
        assert_eq!(control_url(base, None), base);
        assert_eq!(control_url(base, Some("RTSP://other/t")), "RTSP://other/t");
    }
}
