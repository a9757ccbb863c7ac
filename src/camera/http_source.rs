//! `--camera http://…`: a network camera read natively, as a nonblocking
//! socket in the event loop's poll.
//!
//! Two kinds of URL work. One that answers `multipart/x-mixed-replace`
//! (an MJPEG stream: mjpg-streamer, another camloop, most IP cameras) is
//! read whenever the socket is readable, whatever the grab rate, and only
//! the newest complete frame is kept, so nothing queues upstream. One that
//! answers `image/jpeg` (a snapshot URL) is asked again at the grab rate
//! (`--fps`), one request in flight, on a kept-alive connection.
//!
//! Nothing here waits for the camera: the connect is nonblocking with a
//! deadline, the response head has a deadline, and the gap between frames
//! is the pipeline's watchdog (`--camera-timeout`). Any failure is an
//! error the pipeline answers by stopping the source and starting it again
//! with backoff. The host name is resolved once, in [`HttpSource::parse`],
//! before the loop runs, because resolving blocks; reconnects reuse the
//! address.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use base64::Engine as _;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::push::{FrameClock, PushSink, PushSource, PushedFrame, SourceTokens};
use super::{without_credentials, CameraError};
use crate::mjpeg::markers::parse_header;
use crate::mjpeg::multipart::boundary_from_content_type;
use crate::mjpeg::splitter::Splitter;

/// Bytes read from the socket per `read()`.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A response head longer than this is not a camera's.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Header fields parsed in a response head.
const MAX_HEADERS: usize = 64;
/// How long a connect may take (capped at `--camera-timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the camera may take to answer a request with its head (capped
/// at `--camera-timeout`); for a snapshot URL, the whole response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to connect and what to ask, from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// `host` or `host:port` as the URL has it, for the `Host` header.
    host_header: String,
    host: String,
    port: u16,
    /// Path and query, `/` if the URL has none.
    path: String,
    /// `Basic …` from the URL's `user:password@`.
    authorization: Option<String>,
}

/// The `http://` source.
pub struct HttpSource {
    /// The URL without its password: the name in `stats`, logs and errors.
    url: String,
    target: Target,
    addr: SocketAddr,
    max_frame_bytes: usize,
    /// Time between two requests to a snapshot URL (1 / `--fps`).
    poll_interval: Duration,
    connect_timeout: Duration,
    response_timeout: Duration,
    tokens: Option<SourceTokens>,
    conn: Option<Conn>,
    /// Snapshot URL between two responses: when to ask again.
    next_request_at: Option<Instant>,
    read_buffer: Vec<u8>,
}

struct Conn {
    stream: TcpStream,
    state: State,
    /// The request bytes not written yet.
    out: Vec<u8>,
    /// Until when the current step (connect, response) may take.
    deadline: Option<Instant>,
    /// When the current request was written: a snapshot answering it was
    /// taken after this, so this is its (conservative) time.
    requested_at: Instant,
}

enum State {
    Connecting,
    Head(Vec<u8>),
    /// A multipart stream: every readable event feeds the splitter.
    Stream(Box<FrameClock>),
    /// A snapshot's body; `length` from `Content-Length`, or None when the
    /// camera closes the connection after it.
    Body {
        jpeg: Vec<u8>,
        length: Option<usize>,
        keep_alive: bool,
    },
    /// A snapshot URL between two requests, the connection kept alive.
    Idle,
}

/// What a read led to.
enum Fed {
    More,
    /// A snapshot is complete; the connection can be reused or not.
    Snapshot {
        keep_alive: bool,
    },
}

impl HttpSource {
    /// Parses `http://[user:password@]host[:port][/path]` and resolves the
    /// host (this blocks: call it before the loop runs). `https://` is
    /// refused with a hint. `poll_interval` is the time between requests
    /// to a snapshot URL; `camera_timeout` caps the connect and response
    /// timeouts.
    pub fn parse(
        url: &str,
        max_frame_bytes: usize,
        poll_interval: Duration,
        camera_timeout: Duration,
    ) -> Result<Self, String> {
        let shown = without_credentials(url);
        if url.starts_with("https://") {
            return Err(format!(
                "--camera {shown}: camloop has no TLS; run ffmpeg for it: \
                 'exec:ffmpeg -nostdin -loglevel error -i {shown} -c copy -f mjpeg -'"
            ));
        }
        let target = parse_url(url).map_err(|e| format!("--camera {shown}: {e}"))?;
        let addr = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|e| format!("--camera {shown}: cannot resolve {}: {e}", target.host))?
            .next()
            .ok_or_else(|| format!("--camera {shown}: {} has no address", target.host))?;
        log::info!("camera {shown}: {} is {addr}", target.host);
        Ok(HttpSource {
            url: shown,
            target,
            addr,
            max_frame_bytes,
            poll_interval,
            connect_timeout: CONNECT_TIMEOUT.min(camera_timeout),
            response_timeout: RESPONSE_TIMEOUT.min(camera_timeout),
            tokens: None,
            conn: None,
            next_request_at: None,
            read_buffer: vec![0; READ_CHUNK_BYTES],
        })
    }

    /// The address the host name resolved to.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    fn error(&self, what: impl std::fmt::Display) -> CameraError {
        CameraError::new(format!("{}: {what}", self.url))
    }

    fn request(&self) -> Vec<u8> {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: camloop/{}\r\nAccept: */*\r\n",
            self.target.path,
            self.target.host_header,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(authorization) = &self.target.authorization {
            request.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        request.push_str("\r\n");
        request.into_bytes()
    }

    fn connect(&mut self, registry: &Registry, now: Instant) -> Result<(), CameraError> {
        self.disconnect(registry);
        let tokens = self.tokens.ok_or_else(|| self.error("not attached"))?;
        let mut stream =
            TcpStream::connect(self.addr).map_err(|e| self.error(format!("connect: {e}")))?;
        registry
            .register(
                &mut stream,
                tokens.frames,
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| self.error(format!("cannot watch the socket: {e}")))?;
        self.next_request_at = None;
        self.conn = Some(Conn {
            stream,
            state: State::Connecting,
            out: Vec::new(),
            deadline: Some(now + self.connect_timeout),
            requested_at: now,
        });
        Ok(())
    }

    fn disconnect(&mut self, registry: &Registry) {
        if let Some(mut conn) = self.conn.take() {
            let _ = registry.deregister(&mut conn.stream);
        }
    }

    /// Queues the request on the open connection and writes what it can.
    fn send_request(&mut self, now: Instant) -> Result<(), CameraError> {
        let request = self.request();
        let response_timeout = self.response_timeout;
        if let Some(conn) = self.conn.as_mut() {
            conn.out = request;
            conn.state = State::Head(Vec::new());
            conn.deadline = Some(now + response_timeout);
            conn.requested_at = now;
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<(), CameraError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        while !conn.out.is_empty() {
            match conn.stream.write(&conn.out) {
                Ok(0) => return Err(self.error("the connection closed")),
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(format!("sending the request: {e}"))),
            }
        }
        Ok(())
    }

    /// Whether a nonblocking connect has finished (an error if it failed).
    fn connected(&self) -> Result<bool, CameraError> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(false);
        };
        if let Ok(Some(e)) | Err(e) = conn.stream.take_error() {
            return Err(self.error(format!("connect to {}: {e}", self.addr)));
        }
        match conn.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(self.error(format!("connect to {}: {e}", self.addr))),
        }
    }

    fn drive(
        &mut self,
        registry: &Registry,
        now: Instant,
        newest: &mut Option<PushedFrame>,
    ) -> Result<(), CameraError> {
        if matches!(
            self.conn.as_ref().map(|c| &c.state),
            Some(State::Connecting)
        ) {
            if !self.connected()? {
                return Ok(());
            }
            self.send_request(now)?;
        }
        self.flush()?;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(());
            };
            let n = match conn.stream.read(&mut self.read_buffer) {
                Ok(0) => return self.on_eof(registry, now, newest),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(format!("reading: {e}"))),
            };
            let fed = feed(
                conn,
                &self.read_buffer[..n],
                now,
                self.max_frame_bytes,
                newest,
            )
            .map_err(|e| self.error(e))?;
            if let Fed::Snapshot { keep_alive } = fed {
                self.snapshot_done(registry, keep_alive, now);
            }
        }
    }

    /// A snapshot arrived: ask again one interval after the last request.
    fn snapshot_done(&mut self, registry: &Registry, keep_alive: bool, now: Instant) {
        let requested_at = self.conn.as_ref().map_or(now, |c| c.requested_at);
        self.next_request_at = Some((requested_at + self.poll_interval).max(now));
        if keep_alive {
            if let Some(conn) = self.conn.as_mut() {
                conn.state = State::Idle;
                conn.deadline = None;
            }
        } else {
            self.disconnect(registry);
        }
    }

    fn on_eof(
        &mut self,
        registry: &Registry,
        now: Instant,
        newest: &mut Option<PushedFrame>,
    ) -> Result<(), CameraError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        match &mut conn.state {
            // A kept-alive connection the camera closed between requests:
            // the next request opens another one.
            State::Idle => {
                self.disconnect(registry);
                Ok(())
            }
            State::Body {
                jpeg, length: None, ..
            } => {
                let jpeg = std::mem::take(jpeg);
                let frame = snapshot_frame(jpeg, conn.requested_at).map_err(|e| self.error(e))?;
                *newest = Some(frame);
                self.snapshot_done(registry, false, now);
                Ok(())
            }
            State::Stream(_) => Err(self.error("the camera closed the stream")),
            State::Body { .. } => Err(self.error("the camera closed the connection mid-image")),
            State::Head(_) | State::Connecting => {
                Err(self.error("the camera closed the connection without answering"))
            }
        }
    }
}

/// Feeds one read to the connection's current state.
fn feed(
    conn: &mut Conn,
    mut bytes: &[u8],
    now: Instant,
    max_frame_bytes: usize,
    newest: &mut Option<PushedFrame>,
) -> Result<Fed, String> {
    if let State::Head(head) = &mut conn.state {
        head.extend_from_slice(bytes);
        let Some((next, used)) = parse_head(head, max_frame_bytes)? else {
            return Ok(Fed::More);
        };
        // What followed the head in this read belongs to the body.
        let body_in_head = head.len() - used;
        bytes = &bytes[bytes.len() - body_in_head.min(bytes.len())..];
        conn.state = next;
        if matches!(conn.state, State::Stream(_)) {
            // The frame gap is the pipeline's watchdog from here on.
            conn.deadline = None;
        }
    }
    match &mut conn.state {
        State::Stream(clock) => {
            let dropped = clock.push(bytes, now, newest);
            if dropped > 0 {
                log::warn!("dropped {dropped} frame(s) over --max-frame-bytes {max_frame_bytes}");
            }
            Ok(Fed::More)
        }
        State::Body {
            jpeg,
            length,
            keep_alive,
        } => {
            if bytes.is_empty() {
                return Ok(Fed::More);
            }
            let want = length.map_or(usize::MAX, |l| l - jpeg.len());
            jpeg.extend_from_slice(&bytes[..bytes.len().min(want)]);
            if jpeg.len() > max_frame_bytes {
                return Err(format!(
                    "the image is over --max-frame-bytes {max_frame_bytes}"
                ));
            }
            if *length != Some(jpeg.len()) {
                return Ok(Fed::More);
            }
            let keep_alive = *keep_alive;
            *newest = Some(snapshot_frame(std::mem::take(jpeg), conn.requested_at)?);
            Ok(Fed::Snapshot { keep_alive })
        }
        State::Idle if !bytes.is_empty() => Err("the camera sent bytes nobody asked for".into()),
        _ => Ok(Fed::More),
    }
}

/// A complete response head: the state it leads to and its length; None
/// while it is incomplete.
fn parse_head(head: &[u8], max_frame_bytes: usize) -> Result<Option<(State, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let used = match response.parse(head) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) if head.len() > MAX_HEAD_BYTES => {
            return Err(format!("a response head over {MAX_HEAD_BYTES} bytes"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP response ({e})")),
    };
    let code = response.code.unwrap_or(0);
    if code == 401 {
        return Err(
            "401 Unauthorized: give user:password@ in the URL (HTTP Basic), or check them".into(),
        );
    }
    if code != 200 {
        return Err(format!(
            "the camera answered {code} {}",
            response.reason.unwrap_or("")
        ));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    if header("transfer-encoding").is_some_and(|te| !te.eq_ignore_ascii_case("identity")) {
        return Err("a chunked response, which camloop does not decode".into());
    }
    let content_type = header("content-type").unwrap_or_default();
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("multipart/") {
        let splitter = match boundary_from_content_type(&content_type) {
            Some(boundary) => Splitter::with_boundary(boundary, max_frame_bytes),
            None => Splitter::new(max_frame_bytes),
        };
        return Ok(Some((
            State::Stream(Box::new(FrameClock::new(splitter))),
            used,
        )));
    }
    if lower.starts_with("image/jpeg") || lower.starts_with("image/jpg") {
        let length = match header("content-length") {
            Some(text) => Some(
                text.parse::<usize>()
                    .map_err(|_| format!("Content-Length {text:?}"))?,
            ),
            None => None,
        };
        let connection = header("connection").unwrap_or_default();
        let keep_alive = length.is_some()
            && if response.version == Some(0) {
                connection.eq_ignore_ascii_case("keep-alive")
            } else {
                !connection.eq_ignore_ascii_case("close")
            };
        let state = State::Body {
            jpeg: Vec::new(),
            length,
            keep_alive,
        };
        return Ok(Some((state, used)));
    }
    Err(format!(
        "Content-Type {content_type:?}: neither an MJPEG stream (multipart/x-mixed-replace) nor image/jpeg"
    ))
}

fn snapshot_frame(jpeg: Vec<u8>, requested_at: Instant) -> Result<PushedFrame, String> {
    let header = parse_header(&jpeg).ok_or("the camera's image is not a JPEG")?;
    Ok(PushedFrame {
        width: header.width,
        height: header.height,
        jpeg,
        started_at: requested_at,
    })
}

impl PushSource for HttpSource {
    fn name(&self) -> String {
        self.url.clone()
    }

    fn start(
        &mut self,
        registry: &Registry,
        tokens: SourceTokens,
        now: Instant,
    ) -> Result<(), CameraError> {
        self.tokens = Some(tokens);
        self.connect(registry, now)
    }

    fn on_ready(
        &mut self,
        registry: &Registry,
        _token: Token,
        now: Instant,
        sink: &mut PushSink,
    ) -> Result<(), CameraError> {
        // An HTTP camera is MJPEG: the newest frame is all that matters.
        self.drive(registry, now, &mut sink.newest)
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.conn {
            Some(Conn {
                state: State::Idle, ..
            })
            | None => self.next_request_at,
            Some(conn) => conn.deadline,
        }
    }

    fn on_deadline(&mut self, registry: &Registry, now: Instant) -> Result<(), CameraError> {
        if self.deadline().is_none_or(|deadline| now < deadline) {
            return Ok(());
        }
        let seconds = |d: Duration| d.as_secs_f64();
        match self.conn.as_ref().map(|c| &c.state) {
            None => self.connect(registry, now),
            Some(State::Idle) => self.send_request(now),
            Some(State::Connecting) => Err(self.error(format!(
                "connect to {} timed out after {} s",
                self.addr,
                seconds(self.connect_timeout)
            ))),
            Some(State::Head(_)) => Err(self.error(format!(
                "no response within {} s",
                seconds(self.response_timeout)
            ))),
            Some(State::Body { .. }) => Err(self.error(format!(
                "the image did not arrive within {} s",
                seconds(self.response_timeout)
            ))),
            Some(State::Stream(_)) => Ok(()),
        }
    }

    fn stop(&mut self, registry: &Registry) {
        self.disconnect(registry);
        self.next_request_at = None;
    }
}

/// Splits an `http://` URL; the password is percent-decoded.
fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("the URL must start with http://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let end = bracketed.find(']').ok_or("an unclosed [ in the host")?;
        let port = bracketed[end + 1..].strip_prefix(':');
        (&bracketed[..end], port)
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| format!("port {port:?} is not a number"))?,
        None => 80,
    };
    let authorization = userinfo.map(|userinfo| {
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let pair = format!("{}:{}", percent_decode(user), percent_decode(password));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    });
    Ok(Target {
        host_header: host_port.to_string(),
        host: host.to_string(),
        port,
        path,
        authorization,
    })
}

/// `%40` becomes `@`; anything that is not a valid escape stays as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_and_credentials_become_basic_auth() {
        let target = parse_url("http://admin:p%40ss@cam.local:8081/video?x=1").unwrap();
        assert_eq!(target.host, "cam.local");
        assert_eq!(target.port, 8081);
        assert_eq!(target.host_header, "cam.local:8081");
        assert_eq!(target.path, "/video?x=1");
        let expected = base64::engine::general_purpose::STANDARD.encode("admin:p@ss");
        assert_eq!(target.authorization, Some(format!("Basic {expected}")));
        let bare = parse_url("http://192.0.2.1").unwrap();
        assert_eq!((bare.port, bare.path.as_str()), (80, "/"));
        assert_eq!(bare.authorization, None);
        let v6 = parse_url("http://[::1]:9000/?action=stream").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9000));
        assert_eq!(v6.path, "/?action=stream");
        assert!(parse_url("http://cam:http/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn https_is_refused_with_a_hint_and_without_the_password() {
        let error = match HttpSource::parse(
            "https://u:secret@cam/x",
            1024,
            Duration::from_millis(100),
            Duration::from_secs(5),
        ) {
            Err(error) => error,
            Ok(_) => panic!("https accepted"),
        };
        assert!(error.contains("exec:ffmpeg"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn a_head_decides_between_stream_and_snapshot() {
        let stream = b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n--frame";
        let (state, used) = parse_head(stream, 1024).unwrap().unwrap();
        assert!(matches!(state, State::Stream(_)));
        assert_eq!(used, stream.len() - b"--frame".len());
        let snapshot = b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 10\r\n\r\n";
        let (state, _) = parse_head(snapshot, 1024).unwrap().unwrap();
        assert!(matches!(
            state,
            State::Body {
                length: Some(10),
                keep_alive: false,
                ..
            }
        ));
        let refused = parse_head(b"HTTP/1.1 401 Unauthorized\r\n\r\n", 1024);
        assert!(refused.err().unwrap().contains("401"));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n", 1024).is_err());
        assert!(parse_head(b"garbage\r\n\r\n", 1024).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n", 1024).unwrap().is_none());
    }
}
