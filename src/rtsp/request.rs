//! What an RTSP client sends over its TCP connection, sans-IO: bytes in,
//! [`RtspEvent`]s out, and the small parsers of what a request says
//! ([`parse_transport`], [`parse_target`]).
//!
//! This module owns RTSP 1.0 request parsing (RFC 2326 §6), the `$`-framed
//! binary data a client interleaves with its requests (§10.12: RTCP
//! receiver reports, on the channels `SETUP` agreed on), the size limits of
//! both, and the per-connection [`RtspReader`] that turns an arbitrarily
//! chunked byte stream into one event after another.
//!
//! `httparse` reads the header fields, as for HTTP ([`crate::http::request`]),
//! but not the request line: it accepts only `HTTP/1.x` as a version, so the
//! request line (`METHOD URL RTSP/1.0`) is read here and the fields after it
//! with [`httparse::parse_headers`].

use std::fmt;

use super::response::{INTERLEAVED_HEADER_BYTES, INTERLEAVED_MAGIC};

/// Largest request head (request line plus header fields) buffered: the
/// HTTP reader's bound ([`crate::http::request::MAX_HEAD_BYTES`]). RTSP
/// heads are smaller than a browser's HTTP ones; a client that sends more
/// without ending its head is answered 400 and closed.
pub const MAX_HEAD_BYTES: usize = crate::http::request::MAX_HEAD_BYTES;

/// Most header fields in one head, as for HTTP
/// ([`crate::http::request::MAX_HEADERS`]); ffmpeg and GStreamer send under
/// ten.
pub const MAX_HEADERS: usize = crate::http::request::MAX_HEADERS;

/// Largest request body accepted. No request camloop serves needs one, but
/// `GET_PARAMETER` and `SET_PARAMETER` may carry a few lines and a client
/// must be able to send them; a body is read whole and ignored, so it is
/// held to the same bound as a head. Past it the answer is 413 and close.
pub const MAX_BODY_BYTES: usize = MAX_HEAD_BYTES;

/// Largest `$`-framed payload accepted from a client. What clients send this
/// way is RTCP: a receiver report with an SDES CNAME, under 200 bytes, a few
/// of them compounded at most. A frame over this is not a receiver report,
/// and closes the connection.
pub const MAX_INTERLEAVED_FRAME_BYTES: usize = 2048;

/// What is too large (see [`RtspError::TooLarge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// A head over [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`] fields.
    Head,
    /// A `Content-Length` over [`MAX_BODY_BYTES`].
    Body,
    /// An interleaved frame over [`MAX_INTERLEAVED_FRAME_BYTES`].
    Interleaved,
}

/// Why a client's input cannot be read on. After any of these the reader is
/// spent: where the next message would start is no longer known, so the
/// connection is answered ([`status`](RtspError::status), if any) and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspError {
    /// 400: not an RTSP request (the reason is for logs), or one without a
    /// valid `CSeq`.
    BadRequest(&'static str),
    /// 505: an RTSP version other than 1.0 (RTSP/2.0, RFC 7826).
    VersionNotSupported,
    /// A head, body or interleaved frame over its bound.
    TooLarge(Oversize),
}

impl RtspError {
    /// The status code the error is answered with, or `None` for a client
    /// to be closed without an answer: one that sent an oversize binary
    /// frame is not reading RTSP responses at that point.
    pub fn status(&self) -> Option<u16> {
        match self {
            // RTSP 1.0 has no 431; 400 is what servers answer an endless head.
            RtspError::BadRequest(_) | RtspError::TooLarge(Oversize::Head) => Some(400),
            RtspError::TooLarge(Oversize::Body) => Some(413),
            RtspError::VersionNotSupported => Some(505),
            RtspError::TooLarge(Oversize::Interleaved) => None,
        }
    }
}

impl fmt::Display for RtspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtspError::BadRequest(reason) => write!(f, "bad request: {reason}"),
            RtspError::VersionNotSupported => write!(f, "only RTSP/1.0"),
            RtspError::TooLarge(Oversize::Head) => write!(
                f,
                "request head over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields"
            ),
            RtspError::TooLarge(Oversize::Body) => {
                write!(f, "request body over {MAX_BODY_BYTES} bytes")
            }
            RtspError::TooLarge(Oversize::Interleaved) => write!(
                f,
                "interleaved frame over {MAX_INTERLEAVED_FRAME_BYTES} bytes"
            ),
        }
    }
}

impl std::error::Error for RtspError {}

/// The request method. Methods are case-sensitive (RFC 2326 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// OPTIONS: which methods there are; also a keepalive.
    Options,
    /// DESCRIBE: the SDP of a camera.
    Describe,
    /// SETUP: a transport for a track, and a session.
    Setup,
    /// PLAY: start sending.
    Play,
    /// PAUSE: stop sending, keep the session.
    Pause,
    /// TEARDOWN: end the session.
    Teardown,
    /// GET_PARAMETER: a keepalive (ffmpeg sends one every half timeout).
    GetParameter,
    /// SET_PARAMETER.
    SetParameter,
    /// ANNOUNCE: a client that wants to publish, which camloop refuses.
    Announce,
    /// RECORD: likewise refused.
    Record,
    /// Anything else, as sent, for a 501 and a log line.
    Other(String),
}

impl Method {
    /// The method as it is written on the request line (what a Digest
    /// response hashes).
    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Announce => "ANNOUNCE",
            Method::Record => "RECORD",
            Method::Other(token) => token,
        }
    }

    fn from_token(token: &str) -> Method {
        match token {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            "ANNOUNCE" => Method::Announce,
            "RECORD" => Method::Record,
            other => Method::Other(other.to_owned()),
        }
    }
}

/// One request. Owned, so the server can keep it while it waits (a
/// `DESCRIBE` waiting for the camera's SPS and PPS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspRequest {
    /// The method.
    pub method: Method,
    /// The request URL as sent: `rtsp://host:8554/door/trackID=0`, or `*`.
    pub url: String,
    /// `CSeq`, which every response echoes.
    pub cseq: u32,
    /// The header fields in order, names as sent, values trimmed (not valid
    /// UTF-8 becomes U+FFFD).
    pub headers: Vec<(String, String)>,
    /// The body, if the request had one; ignored by the server.
    pub body: Vec<u8>,
}

impl RtspRequest {
    /// The value of the first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What the reader found next in a client's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtspEvent {
    /// A complete request, body included.
    Request(RtspRequest),
    /// A `$`-framed binary frame: RTCP from the client on `channel`.
    Interleaved {
        /// The channel, as agreed by `SETUP`'s `interleaved=`.
        channel: u8,
        /// The frame's bytes.
        payload: Vec<u8>,
    },
    /// The input cannot be read on; see [`RtspError`]. `cseq` is the
    /// request's `CSeq` when its head got far enough to have one, for the
    /// answer to echo.
    Error {
        /// What went wrong.
        error: RtspError,
        /// The `CSeq` of the request at fault, if known.
        cseq: Option<u32>,
    },
}

/// The result of looking at the start of a buffer.
#[derive(Debug)]
enum Parsed {
    /// Not enough bytes yet.
    Incomplete,
    /// An event and the bytes it used.
    Complete(RtspEvent, usize),
    /// The input is bad; the reader is spent.
    Error(RtspError, Option<u32>),
}

/// One connection's input side: bytes received and not yet consumed.
///
/// The loop pushes every read and then takes events until
/// [`next_event`](RtspReader::next_event) returns `None`. Requests and
/// interleaved frames come out one by one, in order, whatever the chunking.
/// After an error the reader reports it once and then nothing more.
#[derive(Debug, Default)]
pub struct RtspReader {
    input: Unread,
}

impl RtspReader {
    /// An empty reader; it allocates nothing until bytes arrive.
    pub fn new() -> Self {
        RtspReader::default()
    }

    /// Appends bytes received from the client.
    ///
    /// Like [`crate::http::request::RequestReader::push`], the caller bounds
    /// the memory by pushing one read at a time, and only once
    /// `next_event` returned `None`: then the buffer holds at most one read
    /// plus one unfinished message, itself bounded by the limits above.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.push(bytes);
    }

    /// The next event, or `None` when more bytes are needed (or after an
    /// error).
    pub fn next_event(&mut self) -> Option<RtspEvent> {
        // An unfinished message is parsed again from its start after every
        // push: quadratic for a client trickling one byte at a time, but
        // bounded by the limits, like the HTTP reader.
        match parse_message(self.input.next_message()?) {
            Parsed::Incomplete => None,
            Parsed::Complete(event, consumed) => {
                self.input.consume(consumed);
                Some(event)
            }
            Parsed::Error(error, cseq) => {
                self.input.spend();
                Some(RtspEvent::Error { error, cseq })
            }
        }
    }

    /// Whether part of a message has arrived but not all of it: the loop
    /// runs its slow-head deadline only while this is true.
    pub fn is_mid_message(&self) -> bool {
        self.input.buffered_bytes() > 0
    }

    /// Bytes currently held, for accounting.
    pub fn buffered_bytes(&self) -> usize {
        self.input.buffered_bytes()
    }
}

/// The bytes a reader has received and not yet consumed, taken one message
/// at a time off the front: the buffering of [`RtspReader`] and of the
/// client's [`super::client::ResponseReader`] alike. Once
/// [`spend`](Unread::spend)t (after an error) it holds and takes nothing.
#[derive(Debug, Default)]
pub(crate) struct Unread {
    /// Received bytes; `buf[start..]` has not been consumed yet.
    buf: Vec<u8>,
    /// Cursor into `buf`; consumed bytes are dropped at the next `push`.
    start: usize,
    spent: bool,
}

impl Unread {
    /// Appends one read's bytes.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.spent || bytes.is_empty() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Where the next message starts: the unread bytes after any empty
    /// lines, which are skipped (RFC 2326 §15.1 lets a peer end a body with
    /// a stray CRLF) and, consumed at once, count towards no bound. `None`
    /// once spent.
    pub(crate) fn next_message(&mut self) -> Option<&[u8]> {
        if self.spent {
            return None;
        }
        let blank = self.buf[self.start..]
            .iter()
            .take_while(|&&byte| byte == b'\r' || byte == b'\n')
            .count();
        self.consume(blank);
        Some(&self.buf[self.start..])
    }

    /// The first `count` unread bytes are one message, now handled.
    pub(crate) fn consume(&mut self, count: usize) {
        self.start += count;
        if self.start == self.buf.len() {
            // An idle connection costs no heap.
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// The input cannot be read on: drop it, and take no more.
    pub(crate) fn spend(&mut self) {
        self.spent = true;
        self.buf = Vec::new();
        self.start = 0;
    }

    /// Bytes held and not yet consumed.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Parses the message at the start of `buf`: an interleaved frame or a
/// request with its body.
fn parse_message(buf: &[u8]) -> Parsed {
    match buf.first() {
        None => Parsed::Incomplete,
        Some(&INTERLEAVED_MAGIC) => parse_interleaved(buf),
        Some(_) => parse_request(buf),
    }
}

/// A client's interleaved frame, refused over
/// [`MAX_INTERLEAVED_FRAME_BYTES`].
fn parse_interleaved(buf: &[u8]) -> Parsed {
    match interleaved_frame(buf, MAX_INTERLEAVED_FRAME_BYTES) {
        Frame::Incomplete => Parsed::Incomplete,
        Frame::TooLarge => Parsed::Error(RtspError::TooLarge(Oversize::Interleaved), None),
        Frame::Complete {
            channel,
            payload,
            consumed,
        } => Parsed::Complete(
            RtspEvent::Interleaved {
                channel,
                payload: payload.to_vec(),
            },
            consumed,
        ),
    }
}

/// What is at the start of a buffer that starts with `$`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// Not all of it has arrived.
    Incomplete,
    /// Its length is over the caller's bound.
    TooLarge,
    /// A whole frame, `consumed` bytes with its header.
    Complete {
        channel: u8,
        payload: &'a [u8],
        consumed: usize,
    },
}

/// `$`, channel, length (u16, big-endian), payload (§10.12). A length over
/// `max_payload` is refused as soon as it is known, without waiting for the
/// bytes.
pub(crate) fn interleaved_frame(buf: &[u8], max_payload: usize) -> Frame<'_> {
    let Some(header) = buf.get(..INTERLEAVED_HEADER_BYTES) else {
        return Frame::Incomplete;
    };
    let channel = header[1];
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if length > max_payload {
        return Frame::TooLarge;
    }
    let end = INTERLEAVED_HEADER_BYTES + length;
    match buf.get(INTERLEAVED_HEADER_BYTES..end) {
        Some(payload) => Frame::Complete {
            channel,
            payload,
            consumed: end,
        },
        None => Frame::Incomplete,
    }
}

/// A request: the request line, the header fields, the body.
fn parse_request(buf: &[u8]) -> Parsed {
    let (line, fields_start) = match first_line(buf) {
        Ok(Some(found)) => found,
        Ok(None) => return Parsed::Incomplete,
        Err(oversize) => return Parsed::Error(RtspError::TooLarge(oversize), None),
    };
    let request_line = match parse_request_line(line) {
        Ok(request_line) => request_line,
        Err(error) => return Parsed::Error(error, None),
    };

    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let head_end = match header_fields(buf, fields_start, &mut fields) {
        Ok(Some(head_end)) => head_end,
        Ok(None) => return Parsed::Incomplete,
        Err(HeadFault::TooLarge) => {
            return Parsed::Error(RtspError::TooLarge(Oversize::Head), None)
        }
        Err(HeadFault::BadField) => {
            return Parsed::Error(RtspError::BadRequest("invalid header field"), None)
        }
    };
    let fields: Vec<&httparse::Header<'_>> = fields
        .iter()
        .take_while(|field| !field.name.is_empty())
        .collect();

    let cseq = match header_value(&fields, "cseq").map(parse_number) {
        Some(Some(cseq)) => cseq,
        Some(None) => return Parsed::Error(RtspError::BadRequest("invalid CSeq"), None),
        None => return Parsed::Error(RtspError::BadRequest("no CSeq"), None),
    };
    let error = |error| Parsed::Error(error, Some(cseq));
    if request_line.version != b"RTSP/1.0" {
        return error(RtspError::VersionNotSupported);
    }

    let body_length = match content_length(&fields) {
        Ok(length) => length,
        Err(reason) => return error(RtspError::BadRequest(reason)),
    };
    if body_length > MAX_BODY_BYTES {
        return error(RtspError::TooLarge(Oversize::Body));
    }
    let Some(body) = buf.get(head_end..head_end + body_length) else {
        return Parsed::Incomplete;
    };

    let request = RtspRequest {
        method: Method::from_token(request_line.method),
        url: request_line.url.to_owned(),
        cseq,
        headers: owned_fields(&fields),
        body: body.to_vec(),
    };
    Parsed::Complete(RtspEvent::Request(request), head_end + body_length)
}

/// A message's first line (a request line, or a response's status line) at
/// the start of `buf`, without its line end, and where the header fields
/// after it start; `None` until the line has ended. Looks no further than
/// [`MAX_HEAD_BYTES`].
pub(crate) fn first_line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, Oversize> {
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let Some(line_end) = window.iter().position(|&byte| byte == b'\n') else {
        return if buf.len() >= MAX_HEAD_BYTES {
            Err(Oversize::Head)
        } else {
            Ok(None)
        };
    };
    let line = &window[..line_end];
    Ok(Some((
        line.strip_suffix(b"\r").unwrap_or(line),
        line_end + 1,
    )))
}

/// Why a message's header fields cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadFault {
    /// A head over [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`] fields.
    TooLarge,
    /// A field that does not parse.
    BadField,
}

/// Reads the header fields from `fields_start` to the empty line that ends
/// the head into `fields`, with [`httparse::parse_headers`]; returns where
/// the head ends, `None` until it has.
pub(crate) fn header_fields<'b>(
    buf: &'b [u8],
    fields_start: usize,
    fields: &mut [httparse::Header<'b>],
) -> Result<Option<usize>, HeadFault> {
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    match httparse::parse_headers(&window[fields_start..], fields) {
        Ok(httparse::Status::Complete((length, _))) => Ok(Some(fields_start + length)),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => Err(HeadFault::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadFault::TooLarge),
        Err(_) => Err(HeadFault::BadField),
    }
}

/// The body's length from `Content-Length` (0 without one); `Err` says why
/// the field is wrong.
pub(crate) fn content_length(fields: &[&httparse::Header<'_>]) -> Result<usize, &'static str> {
    let mut content_length: Option<u32> = None;
    for field in fields {
        if field.name.eq_ignore_ascii_case("content-length") {
            let length = parse_number(field.value).ok_or("invalid Content-Length")?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err("conflicting Content-Length");
            }
            content_length = Some(length);
        }
    }
    Ok(content_length.map_or(0, |length| length as usize))
}

/// The header fields in order, names as sent, values trimmed (not valid
/// UTF-8 becomes U+FFFD).
pub(crate) fn owned_fields(fields: &[&httparse::Header<'_>]) -> Vec<(String, String)> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes.trim_ascii()).into_owned();
    fields
        .iter()
        .map(|field| (field.name.to_owned(), text(field.value)))
        .collect()
}

/// The three parts of `METHOD URL RTSP/1.0`.
struct RequestLine<'a> {
    method: &'a str,
    url: &'a str,
    version: &'a [u8],
}

/// Splits a request line at its two single spaces. The version is checked
/// by the caller once `CSeq` is known, for the 505 to echo it; here only
/// whether it looks like an RTSP version at all.
fn parse_request_line(line: &[u8]) -> Result<RequestLine<'_>, RtspError> {
    const BAD_LINE: RtspError = RtspError::BadRequest("invalid request line");
    let mut parts = line.split(|&byte| byte == b' ');
    let (Some(method), Some(url), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_LINE);
    };
    // A method is a token (RFC 2326 §15.1); a URL is printable ASCII.
    let is_token = |byte: &u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(byte);
    if method.is_empty() || !method.iter().all(is_token) {
        return Err(BAD_LINE);
    }
    if url.is_empty() || !url.iter().all(u8::is_ascii_graphic) {
        return Err(BAD_LINE);
    }
    if !version.starts_with(b"RTSP/") {
        // HTTP (an RTSP-over-HTTP tunnel, or a browser) is not served here.
        return Err(RtspError::BadRequest("not an RTSP request"));
    }
    // Both were checked to be ASCII.
    let (Ok(method), Ok(url)) = (std::str::from_utf8(method), std::str::from_utf8(url)) else {
        return Err(BAD_LINE);
    };
    Ok(RequestLine {
        method,
        url,
        version,
    })
}

pub(crate) fn header_value<'a>(fields: &[&httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|field| field.name.eq_ignore_ascii_case(name))
        .map(|field| field.value)
}

/// `1*DIGIT` into a u32 (`CSeq`, `Content-Length`): no sign, no spaces
/// inside, no overflow.
pub(crate) fn parse_number(value: &[u8]) -> Option<u32> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u32, |number, digit| {
        number.checked_mul(10)?.checked_add(u32::from(digit - b'0'))
    })
}

/// The lower transport a `Transport` alternative asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowerTransport {
    /// RTP over the RTSP connection, `$`-framed: `RTP/AVP/TCP`.
    Tcp,
    /// RTP over UDP: `RTP/AVP` or `RTP/AVP/UDP`.
    Udp,
}

/// One alternative of a `Transport` header (RFC 2326 §12.39), with what the
/// server looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportSpec {
    /// TCP interleaved or UDP.
    pub lower: LowerTransport,
    /// `multicast` was asked for (camloop serves unicast only).
    pub multicast: bool,
    /// `interleaved=a-b`: the channels of RTP and RTCP on the connection.
    /// `interleaved=a` alone means `a` and `a+1`.
    pub interleaved: Option<(u8, u8)>,
    /// `client_port=a-b`: the client's UDP ports for RTP and RTCP.
    /// `client_port=a` alone means `a` and `a+1`.
    pub client_port: Option<(u16, u16)>,
    /// `server_port=c-d`, in a reply to `SETUP` over UDP: the server's
    /// ports for RTP and RTCP, where a client sends its receiver reports.
    pub server_port: Option<(u16, u16)>,
}

/// The alternatives of a `Transport` header in the client's order of
/// preference (or the one a server's reply holds). Alternatives that are
/// not RTP/AVP (SRTP's `RTP/SAVP`, raw UDP) or have a malformed
/// `interleaved`, `client_port` or `server_port` are left out; other
/// parameters (`unicast`, `mode`, `ssrc`, `ttl`, ...) are ignored.
///
/// ```
/// use camloop::rtsp::request::{parse_transport, LowerTransport};
///
/// let specs = parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1");
/// assert_eq!(specs[0].lower, LowerTransport::Tcp);
/// assert_eq!(specs[0].interleaved, Some((0, 1)));
/// ```
pub fn parse_transport(value: &str) -> Vec<TransportSpec> {
    value.split(',').filter_map(parse_transport_spec).collect()
}

fn parse_transport_spec(spec: &str) -> Option<TransportSpec> {
    let mut parameters = spec.split(';').map(str::trim);
    let protocol = parameters.next()?;
    let lower = if protocol.eq_ignore_ascii_case("RTP/AVP/TCP") {
        LowerTransport::Tcp
    } else if protocol.eq_ignore_ascii_case("RTP/AVP")
        || protocol.eq_ignore_ascii_case("RTP/AVP/UDP")
    {
        LowerTransport::Udp
    } else {
        return None;
    };
    let mut transport = TransportSpec {
        lower,
        multicast: false,
        interleaved: None,
        client_port: None,
        server_port: None,
    };
    for parameter in parameters {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("multicast") {
            transport.multicast = true;
        } else if name.eq_ignore_ascii_case("unicast") {
            transport.multicast = false;
        } else if name.eq_ignore_ascii_case("interleaved") {
            transport.interleaved = Some(parse_pair(value, u8::checked_add)?);
        } else if name.eq_ignore_ascii_case("client_port") {
            transport.client_port = Some(parse_pair(value, u16::checked_add)?);
        } else if name.eq_ignore_ascii_case("server_port") {
            transport.server_port = Some(parse_pair(value, u16::checked_add)?);
        }
    }
    Some(transport)
}

/// `a-b`, or `a` meaning `a` and `a+1` (RFC 2326 §12.39).
fn parse_pair<T>(value: &str, checked_add: fn(T, T) -> Option<T>) -> Option<(T, T)>
where
    T: std::str::FromStr + From<u8> + Copy,
{
    let number = |text: &str| -> Option<T> {
        let text = text.trim();
        // `FromStr` for integers takes a leading `+`; RFC 2326 does not.
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    match value.split_once('-') {
        Some((first, second)) => Some((number(first)?, number(second)?)),
        None => {
            let first = number(value)?;
            Some((first, checked_add(first, T::from(1))?))
        }
    }
}

/// What a request URL names: a camera and, for `SETUP`, a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspTarget {
    /// The camera's name, or `None` for the default camera.
    pub camera: Option<String>,
    /// The track number of a trailing `trackID=N`, or `None` for the whole
    /// presentation.
    pub track: Option<u32>,
}

/// Which camera and track a request URL names, or `None` for a path that
/// names none (a 404). The rule of issue 28: `rtsp://host:8554/` is the
/// default camera, `/NAME` and `/cam/NAME` camera `NAME`; a client builds a
/// track URL by appending `/` and the SDP's `a=control` (`trackID=0`) to
/// that, so `/trackID=0` is the default camera's track and
/// `/NAME/trackID=0` camera `NAME`'s. `*` (as in `OPTIONS *`) is the default
/// camera. The query, if any, is ignored; names are not percent-decoded
/// (camera names are plain ASCII).
///
/// ```
/// use camloop::rtsp::request::parse_target;
///
/// let target = parse_target("rtsp://10.0.0.2:8554/cam/door/trackID=0").unwrap();
/// assert_eq!(target.camera.as_deref(), Some("door"));
/// assert_eq!(target.track, Some(0));
/// ```
pub fn parse_target(url: &str) -> Option<RtspTarget> {
    if url == "*" {
        return Some(RtspTarget {
            camera: None,
            track: None,
        });
    }
    let path = match strip_scheme(url) {
        // The path starts at the first `/` after the authority; none is `/`.
        Some(after_scheme) => after_scheme.find('/').map_or("", |at| &after_scheme[at..]),
        None if url.starts_with('/') => url,
        None => return None,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut track = None;
    if let Some(last) = segments.last() {
        if let Some(number) = strip_prefix_ignore_case(last, "trackID=") {
            track = Some(number.parse::<u32>().ok()?);
            segments.pop();
        }
    }
    let camera = match segments.as_slice() {
        [] => None,
        [name] => Some(*name),
        ["cam", name] => Some(*name),
        _ => return None,
    };
    Some(RtspTarget {
        camera: camera.map(str::to_owned),
        track,
    })
}

fn strip_scheme(url: &str) -> Option<&str> {
    strip_prefix_ignore_case(url, "rtsp://")
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `stream` cut into chunks at `cuts` (positions anywhere, in any
/// order): for the readers' tests that any chunking gives the same events.
#[cfg(test)]
pub(crate) fn cut_at<'s>(stream: &'s [u8], cuts: &[proptest::sample::Index]) -> Vec<&'s [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for cut in cuts {
        chunks.push(&stream[from..cut]);
        from = cut;
    }
    chunks.push(&stream[from..]);
    chunks
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every event of `bytes`, pushed in one piece.
    fn events(bytes: &[u8]) -> Vec<RtspEvent> {
        events_in_chunks(&[bytes])
    }

    fn events_in_chunks(chunks: &[&[u8]]) -> Vec<RtspEvent> {
        let mut reader = RtspReader::new();
        let mut events = Vec::new();
        for chunk in chunks {
            reader.push(chunk);
            events.extend(std::iter::from_fn(|| reader.next_event()));
        }
        events
    }

    fn request(event: &RtspEvent) -> &RtspRequest {
        match event {
            RtspEvent::Request(request) => request,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn error(error: RtspError, cseq: Option<u32>) -> RtspEvent {
        RtspEvent::Error { error, cseq }
    }

    /// Why the request line is read here: httparse takes only HTTP/1.x.
    #[test]
    fn httparse_refuses_an_rtsp_request_line() {
        let mut fields = [httparse::EMPTY_HEADER; 4];
        let mut request = httparse::Request::new(&mut fields);
        let parsed = request.parse(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        assert_eq!(parsed, Err(httparse::Error::Version));
    }

    #[test]
    fn a_request_as_ffmpeg_sends_it() {
        let events = events(
            b"DESCRIBE rtsp://127.0.0.1:8554/door RTSP/1.0\r\n\
              Accept: application/sdp\r\n\
              CSeq: 2\r\n\
              User-Agent: Lavf61.7.100\r\n\r\n",
        );
        assert_eq!(events.len(), 1);
        let request = request(&events[0]);
        assert_eq!(request.method, Method::Describe);
        assert_eq!(request.url, "rtsp://127.0.0.1:8554/door");
        assert_eq!(request.cseq, 2);
        assert_eq!(request.header("accept"), Some("application/sdp"));
        assert_eq!(request.header("USER-AGENT"), Some("Lavf61.7.100"));
        assert_eq!(request.header("Session"), None);
        assert!(request.body.is_empty());
    }

    #[test]
    fn requests_bodies_and_interleaved_frames_come_out_in_order() {
        let mut stream = Vec::new();
        stream.extend_from_slice(
            b"GET_PARAMETER rtsp://h/ RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 6\r\n\r\nabc\r\n\n",
        );
        stream.extend_from_slice(&[b'$', 1, 0, 3, 0x81, 0xC9, 0x00]);
        stream.extend_from_slice(b"\r\nOPTIONS * RTSP/1.0\r\nCSeq: 6\r\n\r\n");
        stream.extend_from_slice(&[b'$', 3, 0, 0]);
        let events = events(&stream);
        assert_eq!(events.len(), 4, "{events:?}");
        let get_parameter = request(&events[0]);
        assert_eq!(get_parameter.method, Method::GetParameter);
        assert_eq!(get_parameter.body, b"abc\r\n\n");
        assert_eq!(
            events[1],
            RtspEvent::Interleaved {
                channel: 1,
                payload: vec![0x81, 0xC9, 0x00]
            }
        );
        assert_eq!(request(&events[2]).method, Method::Options);
        assert_eq!(request(&events[2]).cseq, 6);
        assert_eq!(
            events[3],
            RtspEvent::Interleaved {
                channel: 3,
                payload: vec![]
            }
        );
    }

    #[test]
    fn a_missing_or_invalid_cseq_is_a_bad_request() {
        for head in [
            &b"OPTIONS * RTSP/1.0\r\n\r\n"[..],
            b"OPTIONS * RTSP/1.0\r\nCSeq: one\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nCSeq: -1\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nCSeq: 99999999999\r\n\r\n",
        ] {
            let events = events(head);
            assert!(
                matches!(
                    events[..],
                    [RtspEvent::Error {
                        error: RtspError::BadRequest(_),
                        cseq: None
                    }]
                ),
                "{events:?}"
            );
            if let [RtspEvent::Error { error, .. }] = &events[..] {
                assert_eq!(error.status(), Some(400));
            }
        }
    }

    #[test]
    fn rtsp_2_is_a_505_that_echoes_cseq() {
        let events = events(b"OPTIONS * RTSP/2.0\r\nCSeq: 3\r\n\r\n");
        assert_eq!(events, [error(RtspError::VersionNotSupported, Some(3))]);
        assert_eq!(RtspError::VersionNotSupported.status(), Some(505));
    }

    #[test]
    fn what_is_not_an_rtsp_request_is_a_bad_request() {
        for head in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"OPTIONS  * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            b"OPTIONS *\r\nCSeq: 1\r\n\r\n",
            b"OPT(ONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", // TLS
        ] {
            let events = events(head);
            assert!(
                matches!(
                    events[..],
                    [RtspEvent::Error {
                        error: RtspError::BadRequest(_),
                        ..
                    }]
                ),
                "{head:?}: {events:?}"
            );
        }
    }

    #[test]
    fn a_reader_is_spent_after_an_error() {
        let mut reader = RtspReader::new();
        reader.push(b"OPTIONS * RTSP/1.0\r\n\r\nOPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        assert!(matches!(reader.next_event(), Some(RtspEvent::Error { .. })));
        assert_eq!(reader.next_event(), None);
        reader.push(b"OPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n");
        assert_eq!(reader.next_event(), None);
        assert_eq!(reader.buffered_bytes(), 0);
    }

    #[test]
    fn bounds_on_heads_bodies_and_interleaved_frames() {
        // A head that never ends.
        let mut endless = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n".to_vec();
        while endless.len() < MAX_HEAD_BYTES {
            endless.extend_from_slice(b"X-Filler: 0123456789\r\n");
        }
        assert_eq!(
            events(&endless),
            [error(RtspError::TooLarge(Oversize::Head), None)]
        );
        // A request line that never ends.
        assert_eq!(
            events(&vec![b'A'; MAX_HEAD_BYTES]),
            [error(RtspError::TooLarge(Oversize::Head), None)]
        );
        // Just under the bound is fine.
        let mut long = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: ".to_vec();
        long.resize(MAX_HEAD_BYTES - 4, b'x');
        long.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(events(&long)[..], [RtspEvent::Request(_)]));
        // Too many fields.
        let mut many = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n".to_vec();
        for _ in 0..MAX_HEADERS {
            many.extend_from_slice(b"A: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            events(&many),
            [error(RtspError::TooLarge(Oversize::Head), None)]
        );

        let body = format!(
            "SET_PARAMETER * RTSP/1.0\r\nCSeq: 4\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        let oversize_body = error(RtspError::TooLarge(Oversize::Body), Some(4));
        assert_eq!(events(body.as_bytes()), [oversize_body]);
        assert_eq!(RtspError::TooLarge(Oversize::Body).status(), Some(413));
        let body = format!(
            "SET_PARAMETER * RTSP/1.0\r\nCSeq: 4\r\nContent-Length: {MAX_BODY_BYTES}\r\n\r\n{}",
            "b".repeat(MAX_BODY_BYTES)
        );
        assert!(matches!(
            events(body.as_bytes())[..],
            [RtspEvent::Request(_)]
        ));

        // An oversize frame is refused from its length alone.
        let [hi, lo] = (MAX_INTERLEAVED_FRAME_BYTES as u16 + 1).to_be_bytes();
        assert_eq!(
            events(&[b'$', 0, hi, lo]),
            [error(RtspError::TooLarge(Oversize::Interleaved), None)]
        );
        assert_eq!(RtspError::TooLarge(Oversize::Interleaved).status(), None);
        let [hi, lo] = (MAX_INTERLEAVED_FRAME_BYTES as u16).to_be_bytes();
        let mut largest = vec![b'$', 0, hi, lo];
        largest.resize(4 + MAX_INTERLEAVED_FRAME_BYTES, 7);
        assert!(matches!(
            events(&largest)[..],
            [RtspEvent::Interleaved { .. }]
        ));
    }

    #[test]
    fn content_length_must_be_a_number_and_agree() {
        for head in [
            &b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: +1\r\n\r\n"[..],
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            let events = events(head);
            assert!(
                matches!(
                    events[..],
                    [RtspEvent::Error {
                        error: RtspError::BadRequest(_),
                        cseq: Some(1)
                    }]
                ),
                "{events:?}"
            );
        }
    }

    #[test]
    fn mid_message_only_while_a_message_is_unfinished() {
        let mut reader = RtspReader::new();
        assert!(!reader.is_mid_message());
        reader.push(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n\r\n");
        assert!(reader.next_event().is_some());
        assert_eq!(reader.next_event(), None);
        assert!(!reader.is_mid_message(), "a stray CRLF is not a message");
        reader.push(b"$\x00");
        assert_eq!(reader.next_event(), None);
        assert!(reader.is_mid_message());
    }

    /// A stream of everything a client sends, with the events it must give.
    fn mixed_stream() -> (Vec<u8>, Vec<RtspEvent>) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        let requests: [&[u8]; 4] = [
            b"OPTIONS rtsp://127.0.0.1:8554/ RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: GStreamer\r\n\r\n",
            b"SETUP rtsp://127.0.0.1:8554/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
            b"GET_PARAMETER rtsp://127.0.0.1:8554/ RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 2\r\n\r\n$\x01",
            b"TEARDOWN rtsp://127.0.0.1:8554/ RTSP/1.0\r\nCSeq: 4\r\nSession: 12345678\r\n\r\n",
        ];
        for (i, bytes) in requests.iter().enumerate() {
            stream.extend_from_slice(bytes);
            expected.extend(events(bytes));
            // An RTCP receiver report between requests.
            let payload = vec![0x80 | i as u8, 201, 0, 1, b'\r', b'\n', b'$', 0];
            stream.extend_from_slice(&[b'$', 1, 0, payload.len() as u8]);
            stream.extend_from_slice(&payload);
            expected.push(RtspEvent::Interleaved {
                channel: 1,
                payload,
            });
        }
        assert_eq!(expected.len(), 8);
        assert!(expected
            .iter()
            .step_by(2)
            .all(|e| matches!(e, RtspEvent::Request(_))));
        (stream, expected)
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40)) {
            let (stream, expected) = mixed_stream();
            prop_assert_eq!(events_in_chunks(&cut_at(&stream, &cuts)), expected);
        }

        #[test]
        fn any_bytes_give_events_within_the_bounds(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut reader = RtspReader::new();
            reader.push(&bytes);
            while let Some(event) = reader.next_event() {
                if let RtspEvent::Interleaved { payload, .. } = event {
                    prop_assert!(payload.len() <= MAX_INTERLEAVED_FRAME_BYTES);
                }
            }
            prop_assert!(reader.buffered_bytes() <= bytes.len());
        }
    }

    #[test]
    fn transports_as_clients_send_them() {
        let tcp = parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1");
        assert_eq!(
            tcp,
            [TransportSpec {
                lower: LowerTransport::Tcp,
                multicast: false,
                interleaved: Some((0, 1)),
                client_port: None,
                server_port: None,
            }]
        );
        let udp = parse_transport("RTP/AVP;unicast;client_port=5000-5001");
        assert_eq!(udp[0].lower, LowerTransport::Udp);
        assert_eq!(udp[0].client_port, Some((5000, 5001)));
        let udp = parse_transport("RTP/AVP/UDP;unicast;client_port=6970;mode=\"PLAY\"");
        assert_eq!(udp[0].lower, LowerTransport::Udp);
        assert_eq!(udp[0].client_port, Some((6970, 6971)));
        // A server's reply, as camloop writes it.
        let reply = parse_transport("RTP/AVP;unicast;client_port=5000-5001;server_port=8556-8557;ssrc=1A2B3C4D;mode=\"PLAY\"");
        assert_eq!(reply[0].client_port, Some((5000, 5001)));
        assert_eq!(reply[0].server_port, Some((8556, 8557)));
        // GStreamer offers several, in its order of preference.
        let offers = parse_transport(
            "RTP/AVP;multicast;ttl=16, rtp/avp/tcp;unicast;interleaved=2, RTP/SAVP;unicast;client_port=1-2",
        );
        assert_eq!(offers.len(), 2, "{offers:?}");
        assert!(offers[0].multicast && offers[0].lower == LowerTransport::Udp);
        assert_eq!(offers[1].lower, LowerTransport::Tcp);
        assert_eq!(offers[1].interleaved, Some((2, 3)));
    }

    #[test]
    fn malformed_transport_alternatives_are_left_out() {
        for value in [
            "",
            "RTP/AVP/TCP;interleaved=0-256",
            "RTP/AVP/TCP;interleaved=255",
            "RTP/AVP/TCP;interleaved=+0-1",
            "RTP/AVP;client_port=a-b",
            "RTP/AVP;client_port=65535",
            "RAW/RAW/UDP;unicast",
        ] {
            assert_eq!(parse_transport(value), [], "{value}");
        }
    }

    fn target(camera: Option<&str>, track: Option<u32>) -> Option<RtspTarget> {
        Some(RtspTarget {
            camera: camera.map(str::to_owned),
            track,
        })
    }

    #[test]
    fn which_camera_and_track_a_url_names() {
        for (url, expected) in [
            ("rtsp://h:8554/", target(None, None)),
            ("rtsp://h:8554", target(None, None)),
            ("*", target(None, None)),
            ("RTSP://h:8554/door", target(Some("door"), None)),
            ("rtsp://h:8554/door/", target(Some("door"), None)),
            ("rtsp://user:pw@h:8554/cam/door", target(Some("door"), None)),
            ("rtsp://h:8554/trackID=0", target(None, Some(0))),
            (
                "rtsp://h:8554/door/trackID=0",
                target(Some("door"), Some(0)),
            ),
            (
                "rtsp://h:8554/cam/door/trackID=1",
                target(Some("door"), Some(1)),
            ),
            ("rtsp://[::1]:8554/door?token=x", target(Some("door"), None)),
            ("/door", target(Some("door"), None)),
            ("rtsp://h:8554/a/b", None),
            ("rtsp://h:8554/cam/a/b", None),
            ("rtsp://h:8554/door/trackID=x", None),
            ("http://h/door", None),
            ("door", None),
        ] {
            assert_eq!(parse_target(url), expected, "{url}");
        }
    }
}
