//! Request heads: bytes in, a parsed [`RequestHead`] or an [`HttpError`] out.
//!
//! This module owns HTTP/1.x request parsing (on top of `httparse`), the
//! keep-alive rules of HTTP/1.0 and 1.1, the request-size limits, and the
//! per-connection [`RequestReader`] that turns an arbitrarily chunked byte
//! stream of pipelined requests into one head after another.
//!
//! It never touches a socket: the event loop reads bytes, pushes them in and
//! acts on what comes out. That is what lets the tests feed it every possible
//! chunking of a byte stream.

use std::fmt;

use crate::text::hex_digit_value;

/// Largest request head (request line plus headers) we buffer. A client that
/// sends more without finishing its head gets 431 and is closed; this is
/// what bounds a connection's input buffer.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Most header fields in one head. Browsers send about 15; more is either a
/// bug or an attack, and is answered like an oversized head (431).
pub const MAX_HEADERS: usize = 32;

/// Largest request body we accept: WebRTC signalling's bound (an SDP offer
/// of a browser with every codec is about 10 KiB). The body is buffered
/// whole before the request is handled, so this also bounds a connection's
/// input buffer. Past this the answer is 413 and the connection is closed
/// instead of reading on.
pub const MAX_BODY_BYTES: usize = crate::webrtc::MAX_BODY_BYTES;

/// Why a request could not be served. Every variant is answered with its
/// [`status`](HttpError::status) and then the connection is closed, because
/// after a bad head we no longer know where the next request would start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// 400: the bytes are not an HTTP/1.x request head; the reason is for logs.
    BadRequest(&'static str),
    /// 413: `Content-Length` over [`MAX_BODY_BYTES`].
    BodyTooLarge,
    /// 431: head over [`MAX_HEAD_BYTES`] or over [`MAX_HEADERS`] fields.
    HeadTooLarge,
    /// 501: a `Transfer-Encoding` (chunked bodies), which we do not decode.
    NotImplemented,
    /// 505: a version other than HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
}

impl HttpError {
    /// The status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::BodyTooLarge => 413,
            HttpError::HeadTooLarge => 431,
            HttpError::NotImplemented => 501,
            HttpError::VersionNotSupported => 505,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(reason) => write!(f, "bad request: {reason}"),
            HttpError::BodyTooLarge => write!(f, "request body over {MAX_BODY_BYTES} bytes"),
            HttpError::HeadTooLarge => write!(
                f,
                "request head over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields"
            ),
            HttpError::NotImplemented => write!(f, "transfer codings are not supported"),
            HttpError::VersionNotSupported => write!(f, "only HTTP/1.0 and HTTP/1.1"),
        }
    }
}

impl std::error::Error for HttpError {}

/// The request method. Methods are case-sensitive (RFC 9110 §9.1), so `get`
/// is [`Method::Other`] and ends up as 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// Like `Get`, but the response carries no body.
    Head,
    /// POST.
    Post,
    /// OPTIONS: a CORS preflight, answered without credentials.
    Options,
    /// PATCH: a WHEP session's trickle-ICE candidates.
    Patch,
    /// DELETE: the end of a WHEP session.
    Delete,
    /// Anything else (PUT, ...): parsed so that it can get a proper 405.
    Other,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }
}

/// What the server needs to know about one request. Owned, so the caller can
/// keep it while the request waits (for example for a fresh frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// GET, HEAD, POST or anything else.
    pub method: Method,
    /// The path without the query, as sent (not percent-decoded: every path we
    /// serve is plain ASCII, so decoding would only add ways to spell them).
    pub path: String,
    /// Query parameters in order, keys and values percent-decoded.
    pub query: Vec<(String, String)>,
    /// `true` for HTTP/1.1, `false` for HTTP/1.0.
    pub http11: bool,
    /// Whether the client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// The token of an `Authorization: Bearer <token>` header.
    pub bearer_token: Option<String>,
    /// The password of an `Authorization: Basic <base64(user:password)>`
    /// header; the user name is ignored (HTTP Basic is how Home Assistant,
    /// OctoPrint and every browser's login prompt send the token).
    pub basic_password: Option<String>,
    /// Body bytes that follow the head; at most [`MAX_BODY_BYTES`].
    pub content_length: usize,
    /// The body, once [`RequestReader`] has it all (`content_length` bytes);
    /// empty from [`parse_head`], which sees the head only.
    pub body: Vec<u8>,
    /// `Content-Type`, as sent.
    pub content_type: Option<String>,
    /// `If-Match` (a WHEP `PATCH`), as sent.
    pub if_match: Option<String>,
    /// `Access-Control-Request-Headers` (a CORS preflight): the headers the
    /// page's real request will carry.
    pub access_control_request_headers: Option<String>,
}

impl RequestHead {
    /// The first value of query parameter `key`, if present.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every token this request offers, in order: an `Authorization` header
    /// (Bearer, or Basic's password), then `?token=`. A request is
    /// authorized if any of them is the right one, so a stale login a
    /// browser keeps sending does not hide a right `?token=`.
    pub fn offered_tokens(&self) -> impl Iterator<Item = &str> {
        self.bearer_token
            .as_deref()
            .into_iter()
            .chain(self.basic_password.as_deref())
            .chain(self.query("token"))
    }
}

/// The result of trying to parse a head from the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseOutcome {
    /// The head is not complete yet; keep the bytes and read more.
    Incomplete,
    /// A full head occupying the first `consumed` bytes of the buffer. Its
    /// body (`head.content_length` bytes) follows and is not included.
    Complete {
        /// The parsed head.
        head: RequestHead,
        /// Bytes of the buffer the head used.
        consumed: usize,
    },
    /// The request is unacceptable; answer `error.status()` and close.
    Error(HttpError),
}

/// Parses one request head from the start of `buf` (everything received so
/// far that has not been consumed yet).
///
/// Only the first [`MAX_HEAD_BYTES`] of `buf` are looked at, so `buf` may
/// safely hold several pipelined requests, and a head that has not ended
/// within the limit is [`HttpError::HeadTooLarge`] no matter how much more
/// arrives.
pub fn parse_head(buf: &[u8]) -> ParseOutcome {
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let consumed = match request.parse(window) {
        Ok(httparse::Status::Complete(consumed)) => consumed,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return ParseOutcome::Error(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return ParseOutcome::Incomplete,
        Err(error) => return ParseOutcome::Error(from_httparse(error)),
    };
    match head_from_parsed(&request) {
        Ok(head) => ParseOutcome::Complete { head, consumed },
        Err(error) => ParseOutcome::Error(error),
    }
}

fn from_httparse(error: httparse::Error) -> HttpError {
    match error {
        httparse::Error::TooManyHeaders => HttpError::HeadTooLarge,
        httparse::Error::Version => HttpError::VersionNotSupported,
        httparse::Error::HeaderName => HttpError::BadRequest("invalid header name"),
        httparse::Error::HeaderValue => HttpError::BadRequest("invalid header value"),
        httparse::Error::NewLine => HttpError::BadRequest("invalid line ending"),
        httparse::Error::Status | httparse::Error::Token => {
            HttpError::BadRequest("invalid request line")
        }
    }
}

/// Applies the HTTP semantics httparse leaves to us: target form, framing
/// headers, keep-alive, credentials.
fn head_from_parsed(request: &httparse::Request<'_, '_>) -> Result<RequestHead, HttpError> {
    // httparse fills these in whenever it reports Complete; checked anyway
    // rather than unwrapped, since they come from the network.
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(HttpError::BadRequest("incomplete request line"));
    };
    let http11 = version == 1;

    let mut content_length: Option<usize> = None;
    let mut host_fields = 0;
    // HTTP/1.1 is persistent unless the client says otherwise; HTTP/1.0 is
    // not unless it asks (RFC 9112 §9.3).
    let mut keep_alive = http11;
    let mut bearer_token = None;
    let mut basic_password = None;
    let mut content_type = None;
    let mut if_match = None;
    let mut access_control_request_headers = None;
    let text = |value: &[u8]| Some(String::from_utf8_lossy(value).into_owned());

    for field in request.headers.iter() {
        let value = field.value.trim_ascii();
        let name = field.name;
        if name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(value)?;
            // Two different lengths would let a proxy and us disagree about
            // where the body ends (request smuggling), so refuse.
            if content_length.is_some_and(|seen| seen != length) {
                return Err(HttpError::BadRequest("conflicting Content-Length"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::NotImplemented);
        } else if name.eq_ignore_ascii_case("host") {
            host_fields += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("authorization") {
            bearer_token = parse_bearer(value);
            basic_password = parse_basic_password(value);
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = text(value);
        } else if name.eq_ignore_ascii_case("if-match") {
            if_match = text(value);
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            access_control_request_headers = text(value);
        }
    }

    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is a 400;
    // an HTTP/1.0 request may omit it but still not repeat it.
    if (http11 && host_fields != 1) || host_fields > 1 {
        return Err(HttpError::BadRequest("need exactly one Host header"));
    }

    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY_BYTES {
        return Err(HttpError::BodyTooLarge);
    }

    let (path, query) = split_target(target)?;
    Ok(RequestHead {
        method: Method::from_token(method),
        path: path.to_owned(),
        query: parse_query(query),
        http11,
        keep_alive,
        bearer_token,
        basic_password,
        content_length,
        body: Vec::new(),
        content_type,
        if_match,
        access_control_request_headers,
    })
}

/// `Content-Length = 1*DIGIT`: no sign, no spaces inside, no overflow.
fn parse_content_length(value: &[u8]) -> Result<usize, HttpError> {
    const INVALID: HttpError = HttpError::BadRequest("invalid Content-Length");
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(INVALID);
    }
    let mut length: usize = 0;
    for digit in value {
        length = length
            .checked_mul(10)
            .and_then(|l| l.checked_add(usize::from(digit - b'0')))
            // Any length that overflows is certainly too large to accept.
            .ok_or(HttpError::BodyTooLarge)?;
    }
    Ok(length)
}

/// `Authorization: Bearer <token>`; the scheme is case-insensitive.
fn parse_bearer(value: &[u8]) -> Option<String> {
    const SCHEME: &[u8] = b"bearer ";
    if value.len() <= SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let token = value[SCHEME.len()..].trim_ascii();
    if token.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(token).into_owned())
}

/// `Authorization: Basic <base64(user:password)>` (RFC 7617): the password,
/// which is everything after the first `:`. The scheme is case-insensitive;
/// bad base64 or a missing `:` is no credential at all.
pub fn parse_basic_password(value: &[u8]) -> Option<String> {
    use base64::Engine as _;
    const SCHEME: &[u8] = b"basic ";
    if value.len() <= SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let encoded = value[SCHEME.len()..].trim_ascii();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(String::from_utf8_lossy(&decoded[colon + 1..]).into_owned())
}

/// Splits a request target into path and raw query. Besides the usual
/// `/path?query` (origin form), servers must accept the absolute form
/// `http://host/path?query` (RFC 9112 §3.2.2), which some clients send.
fn split_target(target: &str) -> Result<(&str, &str), HttpError> {
    let origin_form = match strip_scheme(target) {
        Some(after_scheme) => match after_scheme.find(['/', '?']) {
            Some(path_start) => &after_scheme[path_start..],
            None => "/",
        },
        None => target,
    };
    let (path, query) = origin_form.split_once('?').unwrap_or((origin_form, ""));
    if path.is_empty() {
        // `http://host?x` means the root with a query.
        return Ok(("/", query));
    }
    if !path.starts_with('/') {
        return Err(HttpError::BadRequest("request target must start with /"));
    }
    Ok((path, query))
}

fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    })
}

/// `a=1&b=two%20words` into pairs. Empty pieces are skipped and a key
/// without `=` gets an empty value; nothing here can fail.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// Minimal form decoding: `%XX` becomes the byte, `+` a space. A malformed
/// escape is kept literally, and invalid UTF-8 becomes U+FFFD.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let escaped = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| Some(hex_digit_value(hex[0])? * 16 + hex_digit_value(hex[1])?));
                if let Some(byte) = escaped {
                    decoded.push(byte);
                    i += 3;
                    continue;
                }
                decoded.push(b'%');
            }
            other => decoded.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// One connection's input side: the bytes of a request (head and body)
/// still being received.
///
/// The loop pushes every read into it and then takes requests out until
/// [`next_request`](RequestReader::next_request) returns `None`. Pipelined
/// requests come out one by one, in order, whatever the chunking.
///
/// After an error the reader is spent: it reports the error once and then
/// nothing more, since the connection is to be answered and closed.
#[derive(Debug, Default)]
pub struct RequestReader {
    /// Received bytes; `buf[start..]` has not been consumed yet.
    buf: Vec<u8>,
    /// Cursor into `buf`. Consumed bytes are dropped lazily (at the next
    /// `push`) instead of shifting the buffer after every request.
    start: usize,
    failed: bool,
}

impl RequestReader {
    /// An empty reader; it allocates nothing until bytes arrive.
    pub fn new() -> Self {
        RequestReader::default()
    }

    /// Appends bytes received from the client.
    ///
    /// The caller bounds the memory: push one read at a time, and only after
    /// `next_request` returned `None` (a client whose requests are still
    /// queued is simply not read from). Then at most one read plus one
    /// unfinished head of under [`MAX_HEAD_BYTES`] is buffered.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed || bytes.is_empty() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete request, its error, or `None` when more bytes are
    /// needed.
    pub fn next_request(&mut self) -> Option<Result<RequestHead, HttpError>> {
        if self.failed {
            return None;
        }
        // An unfinished head is parsed again from its start after every push.
        // That is quadratic for a client trickling one byte at a time, but
        // bounded by MAX_HEAD_BYTES (and by the loop's header deadline), and
        // far simpler than a resumable parser.
        match parse_head(&self.buf[self.start..]) {
            ParseOutcome::Incomplete => {
                self.release_if_drained();
                None
            }
            // The body is small (MAX_BODY_BYTES) and read whole before the
            // request is handled; until it is all here, the head waits.
            ParseOutcome::Complete { mut head, consumed } => {
                let body_start = self.start + consumed;
                let body_end = body_start + head.content_length;
                if self.buf.len() < body_end {
                    return None;
                }
                head.body = self.buf[body_start..body_end].to_vec();
                self.start = body_end;
                self.release_if_drained();
                Some(Ok(head))
            }
            ParseOutcome::Error(error) => {
                self.failed = true;
                self.buf = Vec::new();
                self.start = 0;
                Some(Err(error))
            }
        }
    }

    /// Whether part of a request (head or body) has arrived but not all of
    /// it. The loop runs its header deadline (against slowloris) only while
    /// this is true, so an idle keep-alive connection is not timed out as
    /// slow.
    pub fn is_mid_request(&self) -> bool {
        self.start < self.buf.len()
    }

    /// Bytes currently held, for accounting.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() - self.start
    }

    /// An idle keep-alive connection should cost no heap, so the buffer is
    /// freed whenever everything in it has been consumed.
    fn release_if_drained(&mut self) {
        if self.start == self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }
}
