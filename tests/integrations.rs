//! camloop as a drop-in camera for the tools people point at it (issue 16):
//! OctoPrint, Mainsail/Fluidd, Home Assistant, go2rtc and Frigate, which
//! speak mjpg-streamer's `/?action=stream` and `/?action=snapshot`, send the
//! token as HTTP Basic, and read the stream with ffmpeg or OpenCV.
//!
//! Every client here is a real one or written for the test: curl (Basic,
//! Bearer, `?token=`, CORS, preflights), ffprobe and ffmpeg, Debian's
//! `python3-opencv` (`/usr/bin/python3`), and [`StrictMultipart`], a
//! multipart reader that shares no code with camloop. A missing tool fails
//! the test with the reason; `scripts/setup.sh test` installs them all.
//! Nothing here asserts a duration: limits only stop a hung tool.

mod http_support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_support::{Server, READ_TIMEOUT};

const TOKEN: &str = "s3cret-T0ken";
const ORIGIN: &str = "https://dash.example:8123";

/// Any external tool that has not finished after this is killed and the
/// test fails: hang protection, not a timing assertion.
const TOOL_LIMIT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------ the tools

/// Runs `command` to completion (killed after [`TOOL_LIMIT`]); panics with
/// `install` if the program cannot be started at all.
fn run_tool(command: &mut Command, install: &str) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): {install}"));
    // Read both pipes on threads so a chatty tool cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err = thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + TOOL_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the tool") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} did not finish within {TOOL_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// A response as curl saw it (`curl -sS -i`): status, headers, body.
struct Curled {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Curled {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `curl -sS -i ARGS... URL` and the response it printed.
fn curl(server: &Server, target: &str, args: &[&str]) -> Curled {
    let url = format!("{}{target}", server.base_url());
    let output = run_tool(
        Command::new("curl")
            .args(["-sS", "-i", "--max-time", "30"])
            .args(args)
            .arg(&url),
        "install curl (scripts/setup.sh test)",
    );
    assert!(
        output.status.success(),
        "curl {args:?} {url} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let raw = output.stdout;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head from curl: {:?}", lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Curled {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
}

/// An integer from `/state`, read with the token.
fn state_u64(server: &Server, key: &str) -> u64 {
    let response = server.get(&format!("/state?token={TOKEN}"));
    assert_eq!(response.status, 200, "{}", response.text());
    response.json().u64(key)
}

// -------------------------------------------------- a strict multipart reader

/// One part of a `multipart/x-mixed-replace` stream.
struct Part {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A deliberately strict `multipart/x-mixed-replace` reader, written for
/// this test and independent of camloop's own code (it shares neither
/// camloop's response builders nor the other tests' helpers).
///
/// It takes the boundary from the response's `Content-Type` and then
/// accepts exactly `--boundary CRLF` before the first part, and after every
/// part's body exactly `CRLF --boundary CRLF`. It fails on a part without
/// `Content-Length`, on a delimiter with any other boundary, and on any
/// other byte between parts (a stray CRLF, padding, a preamble). Bodies are
/// read by `Content-Length`, never by scanning for the boundary.
///
/// It also notes when each delimiter became complete in what it has read,
/// and how many bytes of what follows had arrived with it, for the
/// early-boundary test.
struct StrictMultipart<R> {
    source: R,
    buf: Vec<u8>,
    boundary: String,
    /// When the last delimiter was complete in `buf`, and how many bytes
    /// after it had been read by then.
    last_delimiter: Option<(SystemTime, usize)>,
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl<R: Read> StrictMultipart<R> {
    /// Reads the response head from `source` (which must be a 200 with a
    /// multipart type) and the first delimiter.
    fn open(source: R) -> io::Result<Self> {
        let mut reader = StrictMultipart {
            source,
            buf: Vec::new(),
            boundary: String::new(),
            last_delimiter: None,
        };
        let head = reader.read_head()?;
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        if !status.starts_with("HTTP/1.1 200 ") {
            return Err(bad(format!("status line {status:?}")));
        }
        let content_type = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.trim().to_string())
            .ok_or_else(|| bad("no Content-Type".into()))?;
        let boundary = content_type
            .strip_prefix("multipart/x-mixed-replace;")
            .and_then(|rest| rest.trim().strip_prefix("boundary="))
            .ok_or_else(|| bad(format!("Content-Type {content_type:?}")))?;
        reader.boundary = boundary.to_string();
        let first = format!("--{}\r\n", reader.boundary);
        reader.expect_exactly(first.as_bytes(), "the first delimiter")?;
        Ok(reader)
    }

    /// One more read into `buf`; end of stream is an error.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0; 16 * 1024];
        let n = self.source.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn fill_to(&mut self, len: usize) -> io::Result<()> {
        while self.buf.len() < len {
            self.fill()?;
        }
        Ok(())
    }

    /// Bytes up to an empty line, which is consumed too.
    fn read_head(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end].to_vec())
                    .map_err(|_| bad("head is not UTF-8".into()))?;
                self.buf.drain(..end + 4);
                return Ok(head);
            }
            if self.buf.len() > 8192 {
                return Err(bad(format!("no end of head in {:?}", lossy(&self.buf))));
            }
            self.fill()?;
        }
    }

    /// The next bytes must be exactly `expected`.
    fn expect_exactly(&mut self, expected: &[u8], what: &str) -> io::Result<()> {
        self.fill_to(expected.len())?;
        if &self.buf[..expected.len()] != expected {
            return Err(bad(format!(
                "expected {what} {:?}, got {:?}",
                lossy(expected),
                lossy(&self.buf[..expected.len().max(40).min(self.buf.len())])
            )));
        }
        self.last_delimiter = Some((SystemTime::now(), self.buf.len() - expected.len()));
        self.buf.drain(..expected.len());
        Ok(())
    }

    /// The next part: headers, `Content-Length` bytes of body, and the
    /// delimiter that must follow at once.
    fn next_part(&mut self) -> io::Result<Part> {
        let head = self.read_head()?;
        let mut headers = Vec::new();
        for line in head.split("\r\n") {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("part header line {line:?}")))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .ok_or_else(|| bad(format!("a part without Content-Length: {head:?}")))?
            .1
            .parse()
            .map_err(|_| bad(format!("bad Content-Length in {head:?}")))?;
        self.fill_to(length)?;
        let body = self.buf.drain(..length).collect();
        let delimiter = format!("\r\n--{}\r\n", self.boundary);
        self.expect_exactly(delimiter.as_bytes(), "CRLF and the delimiter")?;
        Ok(Part { headers, body })
    }
}

/// Opens `target` on the server and reads it with [`StrictMultipart`].
fn open_strict(server: &Server, target: &str) -> StrictMultipart<TcpStream> {
    let stream = server.connect();
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    (&stream)
        .write_all(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .expect("send the request");
    StrictMultipart::open(stream)
        .unwrap_or_else(|e| panic!("opening {target}: {e}\nserver log:\n{}", server.log()))
}

/// `1764620000.123456` as microseconds, exactly (no float).
fn timestamp_us(text: &str) -> u64 {
    let (seconds, micros) = text
        .split_once('.')
        .unwrap_or_else(|| panic!("X-Timestamp {text:?} has no fraction"));
    assert_eq!(micros.len(), 6, "X-Timestamp {text:?}: six digits of µs");
    seconds.parse::<u64>().expect("seconds") * 1_000_000 + micros.parse::<u64>().expect("µs")
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as u64
}

/// The JPEG's COM segment as text (`camloop frame=N ts=… camera=NAME`).
fn jpeg_comment(jpeg: &[u8]) -> String {
    let comment = camloop::jpeg::comment(jpeg).expect("a COM segment");
    String::from_utf8_lossy(comment).into_owned()
}

#[test]
fn strict_reader_reads_100_frames_with_increasing_stamps_from_action_stream() {
    let server = Server::synthetic(&[]);
    let before_us = now_us();
    let mut stream = open_strict(&server, "/?action=stream");
    let mut last: Option<(u64, u64)> = None;
    for i in 0..100 {
        let part = stream
            .next_part()
            .unwrap_or_else(|e| panic!("part {i}: {e}"));
        assert_eq!(part.header("Content-Type"), Some("image/jpeg"), "part {i}");
        assert!(part.body.starts_with(&[0xFF, 0xD8]), "part {i} is a JPEG");
        let ts_text = part.header("X-Timestamp").expect("X-Timestamp");
        let ts = timestamp_us(ts_text);
        let frame: u64 = part
            .header("X-Frame")
            .expect("X-Frame")
            .parse()
            .expect("X-Frame is a number");
        // The JPEG's own stamp says the same.
        assert_eq!(
            jpeg_comment(&part.body),
            format!("camloop frame={frame} ts={ts_text} camera=cam0")
        );
        assert_eq!(camloop::jpeg::stamped_frame_number(&part.body), Some(frame));
        if let Some((last_ts, last_frame)) = last {
            assert!(ts >= last_ts, "X-Timestamp went back: {last_ts} -> {ts}");
            assert!(frame > last_frame, "X-Frame {last_frame} -> {frame}");
        } else {
            assert!(ts >= before_us, "grabbed before the test started?");
        }
        last = Some((ts, frame));
    }
    assert!(last.unwrap().0 <= now_us(), "a grab time in the future");
}

/// The early boundary, as an ordering: with one frame a second, the
/// delimiter after part 1 must be complete in what this reader has read
/// before frame 2 was even grabbed (its `X-Timestamp`), with nothing of
/// part 2 read along with it. Sending the delimiter just before the next
/// frame, as camloop used to, fails both checks every time, since then the
/// delimiter goes out with part 2's headers after grab 2. (The test could
/// only fail wrongly if this thread were kept off the CPU for a whole
/// frame interval, a second, between two reads.)
#[test]
fn the_next_delimiter_arrives_before_the_next_frame_is_grabbed() {
    let server = Server::synthetic(&["--fps", "1"]);
    let mut stream = open_strict(&server, "/stream.mjpg");
    let first = stream.next_part().expect("part 1");
    let (delimiter_seen, read_beyond) = stream.last_delimiter.expect("a delimiter after part 1");
    let second = stream.next_part().expect("part 2");
    let frame = |part: &Part| part.header("X-Frame").unwrap().parse::<u64>().unwrap();
    assert!(frame(&second) > frame(&first));
    let grab2_us = timestamp_us(second.header("X-Timestamp").unwrap());
    let seen_us = delimiter_seen
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(
        seen_us < grab2_us,
        "the delimiter after frame {} was read at {seen_us} µs, after frame {} was grabbed \
         ({grab2_us} µs): it was sent with the next part, not at once",
        frame(&first),
        frame(&second)
    );
    assert_eq!(
        read_beyond, 0,
        "bytes of the next part came with the delimiter"
    );
}

/// The reader itself must be able to fail: fed a stream with each defect,
/// it reports it.
#[test]
fn strict_reader_rejects_what_it_must() {
    const HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=xyz\r\n\r\n";
    let read = |body: &[u8]| -> io::Result<Vec<Part>> {
        let mut bytes = HEAD.to_vec();
        bytes.extend_from_slice(body);
        let mut reader = StrictMultipart::open(io::Cursor::new(bytes))?;
        let mut parts = Vec::new();
        for _ in 0..2 {
            parts.push(reader.next_part()?);
        }
        Ok(parts)
    };
    let good = b"--xyz\r\nContent-Length: 3\r\n\r\nabc\r\n--xyz\r\nContent-Length: 2\r\n\r\nde\r\n--xyz\r\n";
    let parts = read(good).expect("a well-formed stream");
    assert_eq!(parts[1].body, b"de");

    let no_length = b"--xyz\r\nContent-Type: image/jpeg\r\n\r\nabc\r\n--xyz\r\n";
    let error = read(no_length).err().expect("no Content-Length");
    assert!(
        error.to_string().contains("without Content-Length"),
        "{error}"
    );

    let wrong_boundary = b"--xyz\r\nContent-Length: 3\r\n\r\nabc\r\n--xyw\r\n";
    assert!(read(wrong_boundary).is_err(), "wrong boundary accepted");
    let wrong_first = b"--abc\r\nContent-Length: 3\r\n\r\nabc\r\n--xyz\r\n";
    assert!(read(wrong_first).is_err(), "wrong first boundary accepted");

    let extra_crlf = b"--xyz\r\nContent-Length: 3\r\n\r\nabc\r\n\r\n--xyz\r\n";
    assert!(read(extra_crlf).is_err(), "a stray CRLF accepted");
    let padding = b"--xyz\r\nContent-Length: 3\r\n\r\nabcjunk\r\n--xyz\r\n";
    assert!(read(padding).is_err(), "bytes after the body accepted");
    let no_crlf = b"--xyz\r\nContent-Length: 3\r\n\r\nabc--xyz\r\n";
    assert!(read(no_crlf).is_err(), "a delimiter without CRLF accepted");
}

// ----------------------------------------------------------------- curl

#[test]
fn curl_basic_bearer_and_query_token_are_each_served() {
    let server = Server::synthetic(&["--token", TOKEN]);
    let basic = curl(&server, "/state", &["-u", &format!("any:{TOKEN}")]);
    assert_eq!(basic.status, 200, "{}", basic.text());
    let other_user = curl(
        &server,
        "/?action=snapshot",
        &["-u", &format!("octoprint:{TOKEN}")],
    );
    assert_eq!(other_user.status, 200);
    assert_eq!(other_user.header("Content-Type"), Some("image/jpeg"));
    let bearer = curl(
        &server,
        "/snapshot.jpg",
        &["-H", &format!("Authorization: Bearer {TOKEN}")],
    );
    assert_eq!(bearer.status, 200);
    let query = curl(&server, &format!("/?token={TOKEN}"), &[]);
    assert_eq!(query.status, 200);
    assert!(query.text().contains("<img id=\"live\""), "the page");
    assert_eq!(state_u64(&server, "auth_failures"), 0);
}

#[test]
fn curl_wrong_or_missing_credentials_are_401_html_on_the_page_json_elsewhere() {
    let server = Server::synthetic(&["--token", TOKEN]);
    let wrong_basic = format!("any:{TOKEN}x");
    // Basic when nothing or Basic was offered: browsers prompt, ffmpeg
    // retries with the URL's credentials. Bearer after a wrong ?token= or
    // Bearer token, so a browser shows the page instead of a login box.
    let basic = "Basic realm=\"camloop\"";
    let bearer = "Bearer realm=\"camloop\"";
    let cases: [(&str, Vec<&str>, &str); 7] = [
        ("/", vec![], basic),
        ("/", vec!["-u", &wrong_basic], basic),
        ("/?token=wrong", vec![], bearer),
        ("/state", vec!["-u", &wrong_basic], basic),
        ("/?action=snapshot", vec![], basic),
        (
            "/?action=stream",
            vec!["-H", "Authorization: Bearer wrong"],
            bearer,
        ),
        ("/snapshot.jpg?token=wrong", vec![], bearer),
    ];
    for (target, args, challenge) in &cases {
        let response = curl(&server, target, args);
        assert_eq!(response.status, 401, "{target} {args:?}");
        assert_eq!(
            response.header("WWW-Authenticate"),
            Some(*challenge),
            "{target} {args:?}"
        );
        if *target == "/" || target.starts_with("/?token") {
            assert_eq!(
                response.header("Content-Type"),
                Some("text/html; charset=utf-8")
            );
            assert!(
                response.text().contains("token required"),
                "{}",
                response.text()
            );
        } else {
            assert_eq!(response.header("Content-Type"), Some("application/json"));
            assert_eq!(response.text(), r#"{"error":"auth: token required"}"#);
        }
    }
    assert_eq!(state_u64(&server, "auth_failures"), cases.len() as u64);
    assert!(
        !server.log().contains(TOKEN),
        "the log shows the token:\n{}",
        server.log()
    );
}

#[test]
fn curl_preflight_needs_no_token_and_cors_headers_come_when_configured() {
    let server = Server::synthetic(&["--token", TOKEN, "--cors-origin", ORIGIN]);
    let preflight_args = [
        "-X",
        "OPTIONS",
        "-H",
        "Origin: https://dash.example:8123",
        "-H",
        "Access-Control-Request-Method: GET",
        "-H",
        "Access-Control-Request-Headers: authorization",
    ];
    for target in ["/stream.mjpg", "/?action=snapshot", "/state", "/capture"] {
        let preflight = curl(&server, target, &preflight_args);
        assert_eq!(preflight.status, 204, "{target}");
        assert_eq!(
            preflight.header("Access-Control-Allow-Origin"),
            Some(ORIGIN)
        );
        assert_eq!(
            preflight.header("Access-Control-Allow-Methods"),
            Some("GET, HEAD, POST, OPTIONS")
        );
        assert_eq!(
            preflight.header("Access-Control-Allow-Headers"),
            Some("Authorization")
        );
        assert_eq!(preflight.header("Vary"), Some("Origin"));
    }
    assert_eq!(
        state_u64(&server, "auth_failures"),
        0,
        "preflights are not failures"
    );

    let with_token = format!("Authorization: Bearer {TOKEN}");
    let origin = "Origin: https://dash.example:8123";
    for (target, extra) in [
        ("/state", vec![]),
        ("/snapshot.jpg", vec![]),
        ("/stream.mjpg", vec!["-I"]), // HEAD: the head only
        ("/capture", vec!["-X", "POST"]),
    ] {
        let mut args = vec!["-H", with_token.as_str(), "-H", origin];
        args.extend(extra);
        let response = curl(&server, target, &args);
        assert_eq!(response.status, 200, "{target}: {}", response.text());
        assert_eq!(
            response.header("Access-Control-Allow-Origin"),
            Some(ORIGIN),
            "{target}"
        );
        assert_eq!(response.header("Vary"), Some("Origin"), "{target}");
    }
    // A refused request says so to the other origin too.
    let refused = curl(&server, "/state", &["-H", origin]);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("Access-Control-Allow-Origin"), Some(ORIGIN));
    // Not on the page or the metrics.
    for target in ["/", "/metrics"] {
        let response = curl(&server, target, &["-H", with_token.as_str(), "-H", origin]);
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("Access-Control-Allow-Origin"),
            None,
            "{target}"
        );
    }
}

#[test]
fn curl_sees_no_cors_headers_when_not_configured() {
    let server = Server::synthetic(&[]);
    let origin = "Origin: https://dash.example:8123";
    for (target, extra) in [
        ("/state", vec![]),
        ("/snapshot.jpg", vec![]),
        ("/stream.mjpg", vec!["-I"]),
    ] {
        let mut args = vec!["-H", origin];
        args.extend(extra);
        let response = curl(&server, target, &args);
        assert_eq!(response.status, 200, "{target}");
        assert!(
            !response.headers.iter().any(|(n, _)| n
                .to_ascii_lowercase()
                .starts_with("access-control-")
                || n.eq_ignore_ascii_case("vary")),
            "{target}: {:?}",
            response.headers
        );
    }
    let preflight = curl(
        &server,
        "/state",
        &[
            "-X",
            "OPTIONS",
            "-H",
            origin,
            "-H",
            "Access-Control-Request-Method: GET",
        ],
    );
    assert_eq!(preflight.status, 204);
    assert!(
        !preflight
            .headers
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-")),
        "{:?}",
        preflight.headers
    );
}

#[test]
fn curl_snapshot_urls_with_prefixes_and_cache_busters_carry_the_frame_stamp() {
    let server = Server::synthetic(&[]);
    let start_us = now_us();
    for target in [
        "/?action=snapshot",
        "/webcam/?action=snapshot",
        "/webcam/?action=snapshot&1701234567",
        "/snapshot.jpg?1701234567",
        "/snapshot.jpg?_=1701234567&unknown=1",
    ] {
        let response = curl(&server, target, &[]);
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(response.header("Content-Type"), Some("image/jpeg"));
        let ts = timestamp_us(response.header("X-Timestamp").expect("X-Timestamp"));
        assert!(ts >= start_us, "{target}: a fresh grab");
        let frame: u64 = response.header("X-Frame").unwrap().parse().unwrap();
        assert_eq!(
            camloop::jpeg::stamped_frame_number(&response.body),
            Some(frame)
        );
    }
}

// --------------------------------------------------------------- ffmpeg

const FFMPEG_INSTALL: &str = "install Debian's ffmpeg (scripts/setup.sh test)";

#[test]
fn ffprobe_reads_action_stream_as_mjpeg() {
    let server = Server::synthetic(&[]);
    let url = format!("{}/?action=stream", server.base_url());
    let output = run_tool(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=codec_name,width,height"])
            .args(["-of", "csv=p=0", &url]),
        FFMPEG_INSTALL,
    );
    assert!(
        output.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "mjpeg,640,480"
    );
}

/// ffmpeg sends a URL's user and password only after a Basic challenge,
/// so this also checks the `WWW-Authenticate` on the stream's 401.
#[test]
fn ffmpeg_decodes_frames_from_action_stream_with_basic_credentials_in_the_url() {
    let server = Server::synthetic(&["--token", TOKEN]);
    let url = format!("http://go2rtc:{TOKEN}@{}/?action=stream", server.http);
    let output = run_tool(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i", &url])
            .args(["-frames:v", "10", "-f", "framemd5", "-"]),
        FFMPEG_INSTALL,
    );
    assert!(
        output.status.success(),
        "ffmpeg: {}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    let frames = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .count();
    assert_eq!(frames, 10, "{}", String::from_utf8_lossy(&output.stdout));
}

// --------------------------------------------------------------- OpenCV

/// Reads with Debian's python3-opencv: 5 frames from each stream URL, one
/// from the snapshot URL; prints `URL WIDTHxHEIGHT FRAMES` per URL.
const OPENCV_SCRIPT: &str = r#"
import sys
import cv2
for url, wanted in [(sys.argv[1] + "/stream.mjpg", 5),
                    (sys.argv[1] + "/?action=stream", 5),
                    (sys.argv[1] + "/?action=snapshot", 1)]:
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        print(url, "not opened")
        continue
    got, size = 0, "none"
    for _ in range(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        got += 1
        size = "%dx%d" % (frame.shape[1], frame.shape[0])
    cap.release()
    print(url, size, got)
"#;

#[test]
fn opencv_video_capture_reads_the_stream_and_the_snapshot() {
    let python = "/usr/bin/python3";
    let check = run_tool(
        Command::new(python).args(["-c", "import cv2"]),
        "Debian's python3 is missing (apt-get install python3)",
    );
    assert!(
        check.status.success(),
        "{python} cannot import cv2: install Debian's python3-opencv \
         (scripts/setup.sh test): {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let server = Server::synthetic(&[]);
    let base = server.base_url();
    let output = run_tool(
        Command::new(python).args(["-c", OPENCV_SCRIPT, &base]),
        "Debian's python3",
    );
    assert!(
        output.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{base}/stream.mjpg 640x480 5"),
            format!("{base}/?action=stream 640x480 5"),
            format!("{base}/?action=snapshot 640x480 1"),
        ],
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ------------------------------------------------------- the flag itself

/// `cors-origin` in a `--config` file reaches the server like the flag.
#[test]
fn cors_origin_from_a_config_file_is_served() {
    let dir = std::env::temp_dir().join(format!("camloop-cors-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("camloop.toml");
    std::fs::write(&config, "cors-origin = \"*\"\n").expect("write config");
    let config_arg = config.to_string_lossy().into_owned();
    let server = Server::synthetic(&["--config", &config_arg]);
    let response = curl(
        &server,
        "/state",
        &["-H", "Origin: http://elsewhere.example"],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Access-Control-Allow-Origin"), Some("*"));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cors_origin_that_is_not_an_origin_is_refused() {
    for bad in ["homeassistant.local", "http://ha.example/path", ""] {
        let output = run_tool(
            Command::new(env!("CARGO_BIN_EXE_camloop")).args([
                "serve",
                "--camera",
                "none",
                "--cors-origin",
                bad,
            ]),
            "the camloop binary",
        );
        assert_eq!(output.status.code(), Some(2), "{bad:?} was accepted");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("is not an origin"),
            "{bad:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
