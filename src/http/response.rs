//! Response bytes: status lines, headers, MJPEG framing and the `/state`
//! JSON (the `/metrics` text is [`super::metrics`]).
//!
//! This module owns the exact bytes camloop sends over HTTP. Every function
//! returns a fresh `Vec<u8>` or `String` built from plain values; none of them
//! touches a socket, a file or the camera, and none of them can fail.
//!
//! JPEG bytes are never copied in here for the stream: the loop sends
//! [`mjpeg_part_headers`], then the shared frame bytes, then
//! [`MJPEG_PART_END`], so one encoded frame serves every viewer.

use std::fmt::{self, Write as _};

use super::report::hundredths;
pub use super::report::{CameraView, HistogramView, StateView, LATENCY_BUCKETS_US};
use super::request::{Method, RequestHead};

/// HTML pages.
pub const CONTENT_TYPE_HTML: &str = "text/html; charset=utf-8";
/// JSON bodies.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// JPEG images.
pub const CONTENT_TYPE_JPEG: &str = "image/jpeg";
/// Plain-text bodies.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf-8";
/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE_METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Frames must never come from a cache: every request wants the current one.
pub const NO_STORE: (&str, &str) = ("Cache-Control", "no-store");

/// The multipart boundary of the MJPEG stream. RFC 2046 wants a boundary
/// that never occurs inside a part; that a JPEG contains
/// `\r\n--camloopframe` by chance is vanishingly unlikely, and clients that
/// read by `Content-Length` would not even notice.
pub const MJPEG_BOUNDARY: &str = "camloopframe";

/// The standard reason phrase; empty for codes camloop never sends (an
/// empty reason is valid HTTP).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A response head with a known body length. Use it directly to send a body
/// the caller already holds without copying it (a shared JPEG); otherwise see
/// [`response`].
///
/// Always answers as HTTP/1.1 (right for 1.0 clients too, RFC 9110 §6.2),
/// and always says `Connection` explicitly, since an HTTP/1.0 client assumes
/// `close` and a 1.1 client `keep-alive` unless told.
pub fn response_head(
    status: u16,
    content_type: &str,
    content_length: usize,
    keep_alive: bool,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut head = String::with_capacity(160);
    // Writing to a String cannot fail; `fmt::Write` just has to say it might.
    let _ = write!(
        head,
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {content_length}\r\n\
         Connection: {connection}\r\n",
        reason = reason_phrase(status),
        connection = if keep_alive { "keep-alive" } else { "close" },
    );
    for (name, value) in extra_headers {
        // Header values come from our own code, never from the network; a
        // line break in one would split the response.
        debug_assert!(!name.contains(['\r', '\n']) && !value.contains(['\r', '\n']));
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A `204 No Content`: no body, so neither `Content-Type` nor
/// `Content-Length` (RFC 9110 §8.6).
pub fn no_content(keep_alive: bool, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 204 No Content\r\nConnection: {}\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (name, value) in extra_headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A complete response. For `HEAD` the head is the same, `Content-Length`
/// included, but the body is left out (RFC 9110 §9.3.2).
pub fn response(
    method: Method,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut bytes = response_head(status, content_type, body.len(), keep_alive, extra_headers);
    if method != Method::Head {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// An error with a one-line text body (`404 Not Found`), then close.
///
/// Closing after every error keeps the rules simple: after a bad head we do
/// not know where the next request would start anyway. Use
/// [`error_response_to`] when the method is known (no body for `HEAD`) or
/// extra headers are needed (`Allow` on 405).
pub fn error_response(status: u16) -> Vec<u8> {
    error_response_to(Method::Get, status, &[])
}

/// [`error_response`] for a parsed request.
pub fn error_response_to(method: Method, status: u16, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let body = format!("{status} {}\n", reason_phrase(status));
    response(
        method,
        status,
        CONTENT_TYPE_TEXT,
        body.as_bytes(),
        false,
        extra_headers,
    )
}

/// The head of a 200 JPEG response; send the JPEG bytes after it (unless the
/// request was `HEAD`).
pub fn jpeg_response_head(jpeg_len: usize, keep_alive: bool) -> Vec<u8> {
    response_head(200, CONTENT_TYPE_JPEG, jpeg_len, keep_alive, &[NO_STORE])
}

/// A complete 200 JPEG response, for when a copy does not matter.
pub fn jpeg_response(method: Method, jpeg: &[u8], keep_alive: bool) -> Vec<u8> {
    response(
        method,
        200,
        CONTENT_TYPE_JPEG,
        jpeg,
        keep_alive,
        &[NO_STORE],
    )
}

/// The head of an MJPEG stream response, the same for `GET` and `HEAD`. For
/// `GET` send [`MJPEG_FIRST_DELIMITER`] next, then per frame
/// [`mjpeg_part_headers`], the JPEG and [`MJPEG_PART_END`]. Each frame is a
/// self-contained unit, so a viewer that skips frames always stays on a part
/// boundary.
///
/// There is no `Content-Length`, so the stream ends when the connection
/// closes; hence `Connection: close`.
///
/// A multipart reader knows a part is complete at the latest when it sees
/// the delimiter after it, which [`MJPEG_PART_END`] sends at once. ffmpeg
/// reads each part by its `Content-Length` and never lags; Chromium still
/// shows each frame one interval late (see [`MJPEG_PART_END`]).
pub fn mjpeg_stream_head() -> Vec<u8> {
    mjpeg_stream_head_with(&[])
}

/// [`mjpeg_stream_head`] with `extra_headers` (CORS).
pub fn mjpeg_stream_head_with(extra_headers: &[(&str, &str)]) -> Vec<u8> {
    stream_head(
        &format!("multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}"),
        extra_headers,
    )
}

/// A stream's head: 200, never cached, the body runs until the close.
fn stream_head(content_type: &str, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 200 OK\r\n\
         Content-Type: {content_type}\r\n\
         Cache-Control: no-store\r\n\
         Connection: close\r\n"
    );
    for (name, value) in extra_headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// The head of `/stream.h264`: raw Annex-B until the connection closes,
/// no length and no framing (which is what players of an H.264 "file"
/// over HTTP read).
pub fn h264_stream_head_with(extra_headers: &[(&str, &str)]) -> Vec<u8> {
    stream_head(CONTENT_TYPE_H264, extra_headers)
}

/// The H.264 elementary stream, Annex-B byte stream format.
pub const CONTENT_TYPE_H264: &str = "video/h264";

/// The first delimiter of a stream, sent right after [`mjpeg_stream_head`]
/// (for GET, not HEAD). From then on every part is
/// [`mjpeg_part_headers`], the JPEG, and [`MJPEG_PART_END`], which already
/// carries the *next* delimiter.
pub const MJPEG_FIRST_DELIMITER: &[u8] = b"--camloopframe\r\n";

/// Sent right after every JPEG of the stream: the CRLF and `--camloopframe`
/// line that end this part and open the next one (RFC 2046 §5.1.1: the CRLF
/// before a delimiter belongs to the delimiter, not to the JPEG).
///
/// Sending the delimiter at once rather than just before the next frame is
/// what ustreamer does: a reader that waits for the delimiter to know a part
/// is complete can hand the frame on as soon as it arrives instead of one
/// frame interval later. Chromium is not such a reader: it commits a part
/// only once the *next* part's headers are parsed, so it still shows each
/// frame one interval late (checked with Debian's headless chromium at
/// `--fps 1`: the first image appeared only after the second part was sent,
/// in 4 runs of 4). Every part must carry its own `Content-Length`, so those
/// headers cannot go out before their frame exists.
pub const MJPEG_PART_END: &[u8] = b"\r\n--camloopframe\r\n";

/// When and which grab a frame came from, sent with every stream part and
/// `/snapshot.jpg` as `X-Timestamp` and `X-Frame`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStamp {
    /// The camera's grab sequence number (1 for the first grab).
    pub seq: u64,
    /// Wall-clock time of the grab, microseconds since the Unix epoch.
    pub grabbed_unix_us: u64,
}

impl FrameStamp {
    /// `[("X-Timestamp", "1764620000.123456"), ("X-Frame", "42")]`: UNIX
    /// seconds with microseconds, and the sequence number.
    pub fn headers(&self) -> [(&'static str, String); 2] {
        [
            (
                "X-Timestamp",
                crate::timefmt::unix_micros_text(self.grabbed_unix_us),
            ),
            ("X-Frame", self.seq.to_string()),
        ]
    }
}

/// The headers of one stream part, without the delimiter (that came at the
/// end of the part before, or as [`MJPEG_FIRST_DELIMITER`]):
/// `Content-Type: image/jpeg`, `Content-Length: N`, `X-Timestamp`, `X-Frame`
/// (when the frame has a stamp; the "no signal" frame has none), blank line.
/// The length lets a client such as ffmpeg read the JPEG without scanning it
/// for the boundary.
pub fn mjpeg_part_headers(jpeg_len: usize, stamp: Option<FrameStamp>) -> Vec<u8> {
    let mut head = format!("Content-Type: image/jpeg\r\nContent-Length: {jpeg_len}\r\n");
    for (name, value) in stamp.iter().flat_map(FrameStamp::headers) {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// The head of a 200 `/snapshot.jpg` response: [`jpeg_response_head`] plus
/// the frame's stamp and any `extra_headers` (CORS).
pub fn snapshot_response_head(
    jpeg_len: usize,
    keep_alive: bool,
    stamp: Option<FrameStamp>,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let stamp_headers: Vec<(&str, String)> = stamp.iter().flat_map(FrameStamp::headers).collect();
    let mut headers: Vec<(&str, &str)> = vec![NO_STORE];
    headers.extend(stamp_headers.iter().map(|(n, v)| (*n, v.as_str())));
    headers.extend_from_slice(extra_headers);
    response_head(200, CONTENT_TYPE_JPEG, jpeg_len, keep_alive, &headers)
}

/// The `WWW-Authenticate` challenge of a 401 to a request that offered no
/// credentials, or Basic ones. Basic, so that a browser asks for the token
/// once (any user name, the token as password) and ffmpeg, VLC and OpenCV,
/// which send credentials from a URL only when challenged, send them.
pub const AUTH_CHALLENGE: (&str, &str) = ("WWW-Authenticate", "Basic realm=\"camloop\"");

/// The challenge of a 401 to a request that offered only a `?token=` or a
/// Bearer token, and a wrong one: a browser does not prompt for Bearer, so
/// a page opened with a wrong `?token=` (or whose requests carry one) shows
/// its token-required state instead of a login box on top of it.
pub const BEARER_CHALLENGE: (&str, &str) = ("WWW-Authenticate", "Bearer realm=\"camloop\"");

/// Which challenge a refused request gets: [`BEARER_CHALLENGE`] if it
/// offered a query or Bearer token and no Basic credentials, else
/// [`AUTH_CHALLENGE`].
pub fn challenge_for(head: &RequestHead) -> (&'static str, &'static str) {
    if head.basic_password.is_none() && head.offered_tokens().next().is_some() {
        BEARER_CHALLENGE
    } else {
        AUTH_CHALLENGE
    }
}

/// The JSON body of a 401 on every route but the page.
pub const AUTH_REQUIRED_JSON: &str = "{\"error\":\"auth: token required\"}";

/// The page a 401 on `/` shows: what is wrong and a field for the token,
/// which reloads the page as `?token=…`. `id="token-required"` is the
/// element the main page also shows when one of its requests gets a 401.
pub const AUTH_REQUIRED_HTML: &str = "<!doctype html>\n\
<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>camloop: token required</title><link rel=\"icon\" href=\"data:,\"></head>\n\
<body style=\"font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto\">\n\
<h1 id=\"token-required\">camloop: token required</h1>\n\
<p>This camera needs its token: open the page as <code>/?token=TOKEN</code>, \
or log in with any user name and the token as password.</p>\n\
<form method=\"get\"><input name=\"token\" type=\"password\" placeholder=\"token\" \
autocomplete=\"current-password\"> <button type=\"submit\">Open</button></form>\n\
</body></html>\n";

/// A 401 to `head`: [`AUTH_REQUIRED_HTML`] for the page (`html`), else
/// [`AUTH_REQUIRED_JSON`]; with its [`challenge_for`] and `extra_headers`
/// (CORS, so a page on another origin can tell a 401 from a network error).
/// The connection is closed afterwards.
pub fn unauthorized_response(
    head: &RequestHead,
    html: bool,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let method = head.method;
    let (content_type, body) = if html {
        (CONTENT_TYPE_HTML, AUTH_REQUIRED_HTML)
    } else {
        (CONTENT_TYPE_JSON, AUTH_REQUIRED_JSON)
    };
    let mut headers = vec![challenge_for(head), NO_STORE];
    headers.extend_from_slice(extra_headers);
    response(method, 401, content_type, body.as_bytes(), false, &headers)
}

/// The CORS headers of a response on a [`Route::allows_cors`] route when
/// `--cors-origin` is set: `Access-Control-Allow-Origin`, `Vary: Origin`, and
/// `Access-Control-Expose-Headers` so a script can read the frame stamps.
/// Empty when CORS is off.
///
/// [`Route::allows_cors`]: super::Route::allows_cors
pub fn cors_headers(allow_origin: Option<&str>) -> Vec<(&'static str, &str)> {
    match allow_origin {
        Some(origin) => vec![
            ("Access-Control-Allow-Origin", origin),
            ("Vary", "Origin"),
            (
                "Access-Control-Expose-Headers",
                "X-Timestamp, X-Frame, Location, ETag, Link",
            ),
        ],
        None => Vec::new(),
    }
}

/// The answer to an `OPTIONS` request (a CORS preflight, or WHEP's
/// `OPTIONS`): 204 with `Allow: allow` and, when `--cors-origin` is set,
/// the CORS headers plus `Access-Control-Allow-Methods: allow` and
/// `Access-Control-Allow-Headers`: `Authorization` and whatever the
/// browser says the real request carries (`Access-Control-Request-Headers`:
/// OctoPrint's page adds `Cache-Control`, WHEP clients `If-Match`; a fixed
/// list would miss one). A 204 has no body and no `Content-Length` (RFC
/// 9110 §8.6).
pub fn preflight_response(
    allow_origin: Option<&str>,
    allow: &str,
    requested_headers: Option<&str>,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 204 No Content\r\nAllow: {allow}\r\n");
    if allow_origin.is_some() {
        for (name, value) in cors_headers(allow_origin) {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        let _ = write!(
            head,
            "Access-Control-Allow-Methods: {allow}\r\n\
             Access-Control-Allow-Headers: Authorization"
        );
        // Only header names go back (letters, digits, `-`, `,` and spaces):
        // the value is the client's, and must not add lines of its own.
        let names = requested_headers.unwrap_or("").split(',').map(str::trim);
        let wanted =
            |name: &&str| is_header_name(name) && !name.eq_ignore_ascii_case("authorization");
        for name in names.filter(wanted) {
            let _ = write!(head, ", {name}");
        }
        head.push_str("\r\nAccess-Control-Max-Age: 600\r\n");
    }
    let _ = write!(
        head,
        "Connection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    );
    head.into_bytes()
}

/// Whether `name` is a plain header name (`Content-Type`, `If-Match`).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The `POST /capture` success body:
/// `{"file":"pic2.jpg","bytes":N,"width":W,"height":H}`.
pub fn capture_json(file: &str, bytes: usize, width: u32, height: u32) -> String {
    let mut json = String::from("{\"file\":");
    push_json_string(&mut json, file);
    let _ = write!(
        json,
        ",\"bytes\":{bytes},\"width\":{width},\"height\":{height}}}"
    );
    json
}

/// An error body: `{"error":"..."}`.
pub fn error_json(message: &str) -> String {
    let mut json = String::from("{\"error\":");
    push_json_string(&mut json, message);
    json.push('}');
    json
}

/// The `/controls` body: `{"brightness":{"value":50,"min":0,"max":100},…}`,
/// in the order the camera lists them; also the answer of a `POST` (with
/// only the control that was set).
pub fn controls_json(controls: &[crate::camera::controls::Control]) -> String {
    let mut json = String::from("{");
    for (index, control) in controls.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        push_json_string(&mut json, control.name);
        let _ = write!(
            json,
            ":{{\"value\":{},\"min\":{},\"max\":{}}}",
            control.value, control.min, control.max
        );
    }
    json.push('}');
    json
}

/// Appends `text` as a JSON string literal (RFC 8259 §7): quotes, backslash
/// and control characters are escaped; everything else is valid UTF-8 as is.
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The whole response to an HTTP client the server has no room for
/// (`--max-clients`), written once before the connection is closed.
pub const MAX_CLIENTS_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\n\
Connection: close\r\n\r\nmax clients reached\n";

/// The `/state` body: one JSON object whose top-level keys are the
/// default camera's and the process's numbers (the same names the control
/// port's `stats` uses), plus `fps` as a decimal number, and `cameras`: an
/// array with the same camera keys for every camera, each with its `name`.
/// Histograms are left to `/metrics`.
pub fn state_json(state: &StateView) -> String {
    let mut json = String::with_capacity(1024);
    // Writing to a String cannot fail.
    let _ = write_state_json(&mut json, state);
    json
}

fn write_state_json(out: &mut String, s: &StateView) -> fmt::Result {
    let default = s.default_camera();
    out.push_str("{\"version\":");
    push_json_string(out, &s.version);
    write!(out, ",\"uptime_s\":{}", s.uptime_s)?;
    out.push_str(",\"camera\":");
    push_json_string(out, &default.source);
    write_camera_keys(out, &default)?;
    for (key, value) in [
        ("control_clients", s.control_clients),
        ("http_clients", s.http_clients),
        ("rtsp_clients", s.rtsp_clients),
        ("requests", s.requests),
        ("errors", s.errors),
        ("bytes_in", s.bytes_in),
        ("bytes_out", s.bytes_out),
    ] {
        write!(out, ",\"{key}\":{value}")?;
    }
    for reading in &s.more {
        write!(out, ",\"{}\":{}", reading.key, reading.value)?;
    }
    out.push_str(",\"cameras\":[");
    for (index, camera) in s.cameras.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        push_json_string(out, &camera.name);
        out.push_str(",\"source\":");
        push_json_string(out, &camera.source);
        write_camera_keys(out, camera)?;
        out.push('}');
    }
    out.push_str("]}");
    Ok(())
}

/// The keys every camera has, each after a comma.
fn write_camera_keys(out: &mut String, c: &CameraView) -> fmt::Result {
    write!(out, ",\"camera_ok\":{}", c.ok)?;
    out.push_str(",\"camera_error\":");
    push_json_optional_string(out, c.error.as_deref());
    out.push_str(",\"codec\":");
    push_json_string(out, c.codec);
    out.push_str(",\"converter\":");
    push_json_string(out, c.converter);
    out.push_str(",\"converter_direction\":");
    push_json_string(out, c.converter_direction);
    write!(
        out,
        ",\"width\":{},\"height\":{},\"fps\":{},\"fps_x100\":{}",
        c.width,
        c.height,
        hundredths(c.fps_x100),
        c.fps_x100
    )?;
    for (key, value) in [
        ("stream_viewers", c.stream_viewers),
        ("frames_grabbed", c.frames_grabbed),
        ("frames_encoded", c.frames_encoded),
        ("frames_sent", c.frames_sent),
        ("frames_dropped", c.frames_dropped),
        ("viewers_dropped", c.viewers_dropped),
        ("snapshots", c.snapshots),
        ("snapshot_errors", c.snapshot_errors),
    ] {
        write!(out, ",\"{key}\":{value}")?;
    }
    for reading in &c.more {
        write!(out, ",\"{}\":{}", reading.key, reading.value)?;
    }
    out.push_str(",\"last_snapshot\":");
    push_json_optional_string(out, c.last_snapshot.as_deref());
    Ok(())
}

fn push_json_optional_string(out: &mut String, text: Option<&str>) {
    match text {
        Some(text) => push_json_string(out, text),
        None => out.push_str("null"),
    }
}
