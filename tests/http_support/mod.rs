//! Helpers for the HTTP integration tests: run the real `camloop` binary on
//! loopback, send raw requests, read responses and the MJPEG stream, and
//! look at `/state`, `/metrics` and the server's memory.
//!
//! Everything here is deliberately small and strict: the response and
//! multipart parsers accept exactly what camloop is documented to send, so a
//! framing mistake in the server shows up as a clear parse error. Every
//! socket has a generous read timeout, so a server that stops answering
//! fails the test instead of hanging it.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any read may block before the test gives up on the server.
/// Generous on purpose: this is hang protection, not a timing assertion.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The MJPEG multipart boundary camloop uses.
pub const BOUNDARY: &str = "camloopframe";

/// A scratch directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new, empty directory whose name says which test made it.
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "camloop-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create a temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// With `CAMLOOP_TEST_EXTRA_CAMERA=SOURCE` in the environment, every
/// server also gets `--camera extra=SOURCE` after its own (and `--camera
/// auto` first if it named none, so its default camera stays the same):
/// `scripts/test.sh` runs the endpoint suite that way once more, to show
/// that a second camera changes nothing for clients of the default one. A
/// server started from a config file is left alone (a `--camera` flag
/// would replace the file's cameras).
pub fn extra_camera_args(args: &[&str]) -> Vec<String> {
    let from_config = args.contains(&"--config");
    match std::env::var("CAMLOOP_TEST_EXTRA_CAMERA") {
        Ok(source) if !from_config => {
            let mut extra = Vec::new();
            if !args.contains(&"--camera") {
                extra.extend(["--camera".to_string(), "auto".to_string()]);
            }
            extra.extend(["--camera".to_string(), format!("extra={source}")]);
            extra
        }
        _ => Vec::new(),
    }
}

/// A running `camloop serve` on loopback ports chosen by the kernel,
/// killed when dropped.
pub struct Server {
    child: Child,
    /// The HTTP address the server printed.
    pub http: SocketAddr,
    /// The (first) control-port address the server printed.
    pub control: Option<SocketAddr>,
    /// The (first) RTSP address the server printed (none with `--rtsp off`).
    pub rtsp: Option<SocketAddr>,
    /// The (first) WebRTC UDP address the server printed (none with
    /// `--webrtc off`).
    pub webrtc: Option<SocketAddr>,
    /// Where snapshots go (inside `dir`).
    pub snapshot_dir: PathBuf,
    log_path: PathBuf,
    // Declared last so it is removed after the child is gone.
    dir: TempDir,
}

impl Server {
    /// A server with the synthetic camera at 640x480, 30 fps, plus `extra`
    /// flags (later flags win, so `extra` can override these).
    pub fn synthetic(extra: &[&str]) -> Server {
        let mut args = vec!["--camera", "synthetic", "--fps", "30"];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    /// A server started with `serve --listen 127.0.0.1:0 --http
    /// 127.0.0.1:0 --snapshot-dir DIR` and then `args`. Returns once the
    /// server has printed its `listening` line.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// [`Server::start`] with `env` set for the server (a test that takes a
    /// tool away from it sets `PATH`).
    pub fn start_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Server {
        let dir = TempDir::new("http-test");
        let snapshot_dir = dir.path().join("snapshots");
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path).expect("create the server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_camloop"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--rtsp",
                "127.0.0.1:0",
                "--rtsp-udp-ports",
                "0",
                "--webrtc",
                "127.0.0.1:0",
            ])
            .arg("--snapshot-dir")
            .arg(&snapshot_dir)
            .args(args)
            .args(extra_camera_args(args))
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start camloop");
        // The server prints its line once bound; if it fails to start it
        // exits, stdout closes and read_line returns, so this cannot hang.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        let http = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("http="))
            .and_then(|addr| addr.parse().ok());
        let control = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("control="))
            .and_then(|addrs| addrs.split(',').next()?.parse().ok());
        let rtsp = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("rtsp="))
            .and_then(|addrs| addrs.split(',').next()?.parse().ok());
        let webrtc = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("webrtc="))
            .and_then(|addrs| addrs.split(',').next()?.parse().ok());
        let Some(http) = http else {
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            panic!("camloop did not print its listening line (got {line:?}); its log:\n{log}");
        };
        Server {
            child,
            http,
            control,
            rtsp,
            webrtc,
            snapshot_dir,
            log_path,
            dir,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// What the server logged so far (stderr), for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A new connection to the HTTP port with the read timeout set.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.http).expect("connect to the HTTP port");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set a read timeout");
        stream
    }

    /// Sends `raw` on a new connection and reads one response.
    pub fn exchange(&self, raw: &[u8]) -> Response {
        let stream = self.connect();
        (&stream).write_all(raw).expect("send the request");
        let head_request = raw.starts_with(b"HEAD ");
        read_response(&mut BufReader::new(stream), head_request)
            .unwrap_or_else(|e| panic!("reading the response to {:?}: {e}", lossy(raw)))
    }

    /// `GET path` as a complete HTTP/1.1 request that closes afterwards.
    pub fn get(&self, path: &str) -> Response {
        self.exchange(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// `POST path` with an empty body.
    pub fn post(&self, path: &str) -> Response {
        self.exchange(
            format!(
                "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    }

    /// `/state` as a map from key to raw JSON value.
    pub fn state(&self) -> Json {
        let response = self.get("/state");
        assert_eq!(response.status, 200, "GET /state: {}", response.text());
        Json::parse(&response.text())
    }

    /// One integer from `/state`.
    pub fn state_u64(&self, key: &str) -> u64 {
        self.state().u64(key)
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let response = self.get("/metrics");
        assert_eq!(response.status, 200, "GET /metrics");
        response.text()
    }

    /// Opens `/stream.mjpg` (plus `query`) and checks the response head.
    pub fn open_stream(&self, query: &str) -> MjpegStream {
        MjpegStream::open(self.connect(), query).unwrap_or_else(|e| {
            panic!(
                "opening /stream.mjpg{query}: {e}\nserver log:\n{}",
                self.log()
            )
        })
    }

    /// The server's private resident memory in KiB (`RssAnon` in /proc:
    /// heap and stacks, not the shared libraries, which with OpenCV linked
    /// are some 60 MiB that no client can make grow).
    pub fn anon_rss_kib(&self) -> u64 {
        anon_rss_kib(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `RssAnon` of a process, in KiB.
pub fn anon_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("an RssAnon line in kB")
}

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as a flat JSON object.
    pub fn json(&self) -> Json {
        Json::parse(&self.text())
    }
}

/// Reads one response: status line, headers, then exactly `Content-Length`
/// body bytes (none for a HEAD request). camloop always sends
/// `Content-Length` on non-stream responses, so a missing one is an error.
pub fn read_response<R: BufRead>(reader: &mut R, head_request: bool) -> io::Result<Response> {
    let status_line = read_crlf_line(reader)?;
    let mut words = status_line.splitn(3, ' ');
    let (version, code) = (words.next(), words.next());
    if version != Some("HTTP/1.1") {
        return Err(invalid(format!("bad status line {status_line:?}")));
    }
    let status = code
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers = read_headers(reader)?;
    let response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    // A 204 has no body and no Content-Length (RFC 9110 §8.6).
    if status == 204 {
        return Ok(response);
    }
    let length: usize = response
        .header("content-length")
        .ok_or_else(|| invalid("no Content-Length".into()))?
        .parse()
        .map_err(|_| invalid("bad Content-Length".into()))?;
    let mut body = vec![0; if head_request { 0 } else { length }];
    reader.read_exact(&mut body)?;
    Ok(Response { body, ..response })
}

/// Reads header lines up to the blank line; names are lowercased.
fn read_headers<R: BufRead>(reader: &mut R) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_crlf_line(reader)?;
        if line.is_empty() {
            return Ok(headers);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
}

/// One line that must end in CRLF, without the CRLF. At most 8 KiB, so
/// garbage cannot make the test buffer forever.
fn read_crlf_line<R: BufRead>(reader: &mut R) -> io::Result<String> {
    let mut line = Vec::new();
    reader.take(8 * 1024).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(invalid(format!("line without CRLF: {:?}", lossy(&line))));
    };
    String::from_utf8(line.to_vec()).map_err(|_| invalid("line is not UTF-8".into()))
}

/// Reads (and discards) until the peer closes. `Ok(n)` is how many bytes
/// came before the close (EOF or reset); an error means it did not close
/// within `limit` (a server that keeps sending is caught too) or a read
/// failed otherwise.
pub fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> io::Result<usize> {
    let deadline = Instant::now() + limit;
    let mut buf = [0; 64 * 1024];
    let mut total = 0;
    loop {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("still open after {limit:?} and {total} bytes"),
            ));
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(total),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Bytes as text for messages.
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
}

/// A `/stream.mjpg` response being read part by part.
pub struct MjpegStream {
    reader: BufReader<TcpStream>,
    /// The response headers.
    pub headers: Vec<(String, String)>,
}

impl MjpegStream {
    /// Sends the request on `stream` and reads the response head, which must
    /// be a 200 `multipart/x-mixed-replace` with camloop's boundary.
    pub fn open(stream: TcpStream, query: &str) -> io::Result<MjpegStream> {
        let request = format!("GET /stream.mjpg{query} HTTP/1.1\r\nHost: test\r\n\r\n");
        (&stream).write_all(request.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let status_line = read_crlf_line(&mut reader)?;
        if status_line != "HTTP/1.1 200 OK" {
            return Err(invalid(format!("status line {status_line:?}")));
        }
        let headers = read_headers(&mut reader)?;
        let content_type = headers
            .iter()
            .find(|(name, _)| name == "content-type")
            .map(|(_, value)| value.as_str());
        let expected = format!("multipart/x-mixed-replace; boundary={BOUNDARY}");
        if content_type != Some(expected.as_str()) {
            return Err(invalid(format!("Content-Type {content_type:?}")));
        }
        Ok(MjpegStream { reader, headers })
    }

    /// Reads the next part and returns its JPEG: the delimiter line
    /// `--camloopframe`, headers with `Content-Type: image/jpeg` and
    /// `Content-Length: N`, a blank line, N bytes, then CRLF.
    pub fn next_jpeg(&mut self) -> io::Result<Vec<u8>> {
        let delimiter = read_crlf_line(&mut self.reader)?;
        if delimiter != format!("--{BOUNDARY}") {
            return Err(invalid(format!(
                "expected the delimiter, got {delimiter:?}"
            )));
        }
        let headers = read_headers(&mut self.reader)?;
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        if find("content-type") != Some("image/jpeg") {
            return Err(invalid(format!("part headers {headers:?}")));
        }
        let length: usize = find("content-length")
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| invalid(format!("part headers {headers:?}")))?;
        let mut jpeg = vec![0; length];
        self.reader.read_exact(&mut jpeg)?;
        let mut tail = [0; 2];
        self.reader.read_exact(&mut tail)?;
        if &tail != b"\r\n" {
            return Err(invalid(format!("part not followed by CRLF: {tail:?}")));
        }
        Ok(jpeg)
    }

    /// The socket, e.g. to check that the server closed it.
    pub fn into_inner(self) -> TcpStream {
        self.reader.into_inner()
    }
}

/// The frame number camloop stamped into a JPEG; panics if there is none.
pub fn frame_number(jpeg: &[u8]) -> u64 {
    camloop::jpeg::stamped_frame_number(jpeg)
        .unwrap_or_else(|| panic!("no `camloop frame=` comment in a {}-byte JPEG", jpeg.len()))
}

/// Decodes a JPEG completely and returns its size; panics if it is invalid.
pub fn decoded_size(jpeg: &[u8]) -> (u16, u16) {
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    let pixels = decoder
        .decode()
        .unwrap_or_else(|e| panic!("a {}-byte JPEG does not decode: {e}", jpeg.len()));
    let info = decoder.info().expect("info after decoding");
    assert_eq!(
        pixels.len(),
        usize::from(info.width) * usize::from(info.height) * info.pixel_format.pixel_bytes(),
        "decoded pixel count matches the header"
    );
    (info.width, info.height)
}

/// A flat JSON object (what `/state`, `/capture` and the browser script
/// print): keys to raw values, strings unquoted, an array of strings kept
/// as its raw text. Enough for those, not a general JSON parser: nested
/// objects are rejected.
#[derive(Debug)]
pub struct Json(pub HashMap<String, String>);

impl Json {
    /// Parses `{"key":value,...}`; panics on anything else.
    pub fn parse(text: &str) -> Json {
        let inner = text
            .trim()
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or_else(|| panic!("not a JSON object: {text:?}"));
        let mut map = HashMap::new();
        let mut chars = inner.chars().peekable();
        while chars.peek().is_some() {
            let key = json_string(&mut chars, text);
            assert_eq!(chars.next(), Some(':'), "a colon after a key in {text:?}");
            let value = if chars.peek() == Some(&'"') {
                json_string(&mut chars, text)
            } else if chars.peek() == Some(&'[') {
                json_raw_array(&mut chars, text)
            } else {
                let mut raw = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    assert!(!"{[".contains(c), "nested values in {text:?}");
                    raw.push(c);
                    chars.next();
                }
                raw.trim().to_string()
            };
            map.insert(key, value);
            if chars.peek() == Some(&',') {
                chars.next();
            }
        }
        Json(map)
    }

    /// A value as text; panics if the key is missing.
    pub fn str(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("no {key:?} in {:?}", self.0))
    }

    /// A value as an unsigned integer; panics if missing or not one.
    pub fn u64(&self, key: &str) -> u64 {
        let value = self.str(key);
        value
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not an integer: {value:?}"))
    }
}

/// `[...]` as written (strings, or objects such as `/state`'s `cameras`):
/// a `]` inside a string is kept, not taken as the end, and nested
/// brackets are matched.
fn json_raw_array(chars: &mut std::iter::Peekable<std::str::Chars>, text: &str) -> String {
    let mut raw = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut depth = 0usize;
    for c in chars.by_ref() {
        raw.push(c);
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_string = !in_string,
            (false, _, '[' | '{') => depth += 1,
            (false, _, ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return raw;
                }
            }
            _ => {}
        }
    }
    panic!("unterminated array in {text:?}")
}

fn json_string(chars: &mut std::iter::Peekable<std::str::Chars>, text: &str) -> String {
    assert_eq!(chars.next(), Some('"'), "a string in {text:?}");
    let mut out = String::new();
    loop {
        match chars.next() {
            Some('"') => return out,
            Some('\\') => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(c) => out.push(c), // \" \\ \/ ; \u escapes are not expected here
                None => panic!("unterminated string in {text:?}"),
            },
            Some(c) => out.push(c),
            None => panic!("unterminated string in {text:?}"),
        }
    }
}

/// The value of a sample in Prometheus text: the unlabelled one of a
/// process-wide series (`camloop_requests_total 12`), or the default
/// camera's (the first listed) of a per-camera one
/// (`camloop_viewers_dropped_total{camera="cam0"} 1`).
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let bare = series
                .strip_prefix(name)
                .filter(|labels| labels.is_empty() || labels.starts_with("{camera=\""))?;
            let only_camera_label = bare.is_empty() || !bare.contains(',');
            only_camera_label.then(|| value.trim().parse().ok())?
        })
}

/// Polls `condition` every 100 ms until it holds or `limit` passes; returns
/// whether it held. Used to wait for the server to reach a state, never to
/// assert how fast it got there.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A loopback port nobody listened on a moment ago, for a listener that
/// must be named before it exists (a second origin the server is started
/// with, or an address that should refuse connections).
///
/// Taken below the kernel's ephemeral range: a port from that range, let
/// go, can be handed to the next listener bound to port 0 (a server of the
/// same test, which then held webrtc.mjs's origin port: EADDRINUSE). Below
/// it, only another caller of this function could take it, and each
/// starts its search somewhere else.
pub fn unused_port() -> u16 {
    let ephemeral_low = camloop::sys::ephemeral_port_range().map_or(32768, |(low, _)| low);
    const LOWEST: u16 = 10_000;
    assert!(
        ephemeral_low > LOWEST,
        "ephemeral ports start at {ephemeral_low}"
    );
    let span = u32::from(ephemeral_low - LOWEST);
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
    let start = seed % span;
    (0..span)
        .map(|step| LOWEST + ((start + step) % span) as u16)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free loopback port below the ephemeral range")
}
