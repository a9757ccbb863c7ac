//! Several cameras in one server, against the real `camloop serve` binary.
//!
//! The first test puts three kinds of camera in one loop (a 640x480
//! synthetic one, a 320x240 `exec:` ffmpeg, and an `http://` camera pulled
//! from a 160x120 upstream camloop) and checks that every route and
//! request reaches the camera it names: the three sizes and the `camera=`
//! of each JPEG's COM stamp tell them apart, and the snapshot names, the
//! counters and the metric labels must match.
//!
//! The other tests make one camera fail (a stopped child, a child that
//! exits at once, an upstream that never answers, one sending garbage)
//! next to a working one, and check that the working one does not notice:
//! a viewer's frame numbers stay contiguous, its `frames_sent` delta equals
//! its `frames_grabbed` delta, its captures succeed and are answered while
//! the failing camera's capture is still pending. Those are assertions
//! about order and counts, never about how long something took; every wait
//! has a generous deadline that only protects against a hang.

mod http_support;
mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use http_support::{decoded_size, frame_number, wait_until, Json, Server};
use support::{live_children, process_state, signal_process, Capture, Client, Stats};

/// Longest wait for a state the server must reach (hang protection only).
const PATIENCE: Duration = Duration::from_secs(20);

/// ffmpeg's test pattern, `WxH` at 10 fps, encoded live to MJPEG on stdout.
fn ffmpeg_camera(size: &str) -> String {
    format!(
        "exec:ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc=size={size}:rate=10 \
         -f mjpeg -q:v 5 -"
    )
}

// ---------------------------------------------------------------------------
// Control port

/// A control connection (auto framing: `Welcome` bare, then line mode from
/// the first request on).
fn control(server: &Server) -> Client {
    let mut client = Client::connect(server.control.expect("a control port"));
    client.expect("Welcome");
    client
}

/// `stats NAME`, parsed; checks that it is that camera's line.
fn stats_of(client: &mut Client, camera: &str) -> Stats {
    let reply = client.request(&format!("stats {camera}"));
    let stats = Stats::parse(&reply);
    assert!(
        reply.ends_with(&format!(" camera_name={camera}")),
        "camera_name= ends the line: {reply}"
    );
    stats
}

/// Whether anything (or EOF) can be read from `client` right now, without
/// waiting: false means the server has not answered yet.
fn has_input(client: &Client) -> bool {
    let stream = client.stream();
    stream.set_nonblocking(true).unwrap();
    let result = stream.peek(&mut [0u8; 1]);
    stream.set_nonblocking(false).unwrap();
    match result {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("peek: {e}"),
    }
}

// ---------------------------------------------------------------------------
// JPEG stamps

/// The COM stamp camloop put in a JPEG: `camloop frame=N ts=T camera=NAME`.
fn stamp(jpeg: &[u8]) -> String {
    let comment = camloop::jpeg::comment(jpeg).expect("a COM segment");
    String::from_utf8(comment.to_vec()).expect("a UTF-8 comment")
}

/// The `camera=` of a JPEG's stamp.
fn stamped_camera(jpeg: &[u8]) -> String {
    let text = stamp(jpeg);
    assert!(text.starts_with("camloop frame="), "{text}");
    text.split_whitespace()
        .find_map(|word| word.strip_prefix("camera="))
        .unwrap_or_else(|| panic!("no camera= in {text:?}"))
        .to_string()
}

/// Checks that `jpeg` is a complete `width`x`height` JPEG from `camera`.
fn assert_from(jpeg: &[u8], camera: &str, (width, height): (u16, u16), what: &str) {
    assert_eq!(stamped_camera(jpeg), camera, "{what}: the stamp's camera");
    assert_eq!(decoded_size(jpeg), (width, height), "{what}: the size");
}

// ---------------------------------------------------------------------------
// MJPEG streams on any path

/// One part of a stream.
struct Part {
    headers: Vec<(String, String)>,
    jpeg: Vec<u8>,
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `X-Frame`, which must be there and agree with the JPEG's stamp.
    fn x_frame(&self) -> u64 {
        let n: u64 = self
            .header("x-frame")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no X-Frame in {:?}", self.headers));
        assert_eq!(frame_number(&self.jpeg), n, "X-Frame and the stamp agree");
        n
    }
}

/// A `multipart/x-mixed-replace` response read part by part, from any path
/// (`/cam/NAME/stream.mjpg`, `/?action=stream_N`, …).
struct PartReader {
    reader: BufReader<TcpStream>,
}

fn crlf_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    reader.take(8192).read_until(b'\n', &mut line)?;
    match line.strip_suffix(b"\r\n") {
        Some(line) => Ok(String::from_utf8_lossy(line).into_owned()),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a CRLF line: {:?}", String::from_utf8_lossy(&line)),
        )),
    }
}

fn header_lines(reader: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = crlf_line(reader)?;
        if line.is_empty() {
            return Ok(headers);
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
}

impl PartReader {
    fn open(server: &Server, path: &str) -> PartReader {
        let stream = server.connect();
        (&stream)
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .unwrap();
        let mut reader = BufReader::new(stream);
        let status = crlf_line(&mut reader).expect("a status line");
        assert_eq!(status, "HTTP/1.1 200 OK", "GET {path}");
        let headers = header_lines(&mut reader).expect("response headers");
        let content_type = headers.iter().find(|(n, _)| n == "content-type");
        assert_eq!(
            content_type.map(|(_, v)| v.as_str()),
            Some("multipart/x-mixed-replace; boundary=camloopframe"),
            "GET {path}"
        );
        PartReader { reader }
    }

    fn next(&mut self) -> io::Result<Part> {
        let delimiter = crlf_line(&mut self.reader)?;
        if delimiter != "--camloopframe" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected the delimiter, got {delimiter:?}"),
            ));
        }
        let headers = header_lines(&mut self.reader)?;
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Content-Length"))?;
        let mut jpeg = vec![0; length];
        self.reader.read_exact(&mut jpeg)?;
        let mut crlf = [0; 2];
        self.reader.read_exact(&mut crlf)?;
        assert_eq!(&crlf, b"\r\n", "a part ends in CRLF");
        Ok(Part { headers, jpeg })
    }
}

// ---------------------------------------------------------------------------
// /state and /metrics

/// `/state`'s `cameras` array, each camera a flat object.
fn state_cameras(state: &Json) -> Vec<Json> {
    let raw = state.str("cameras");
    let inner = raw
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or_else(|| panic!("cameras is not an array: {raw}"));
    let (mut objects, mut current) = (Vec::new(), String::new());
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for c in inner.chars() {
        if depth == 0 && c == ',' {
            continue;
        }
        current.push(c);
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_string = !in_string,
            (false, _, '{') => depth += 1,
            (false, _, '}') => {
                depth -= 1;
                if depth == 0 {
                    objects.push(Json::parse(&std::mem::take(&mut current)));
                }
            }
            _ => {}
        }
    }
    objects
}

/// The value of the sample `series` (name and labels exactly as written).
fn sample<'a>(metrics: &'a str, series: &str) -> Option<&'a str> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then_some(value)
    })
}

fn assert_sample(metrics: &str, series: &str, expected: &str) {
    assert_eq!(
        sample(metrics, series),
        Some(expected),
        "{series} in\n{metrics}"
    );
}

// ---------------------------------------------------------------------------
// Three cameras, every route

/// One camera of the three-camera server, as the test expects it.
struct Expected {
    name: &'static str,
    source: String,
    size: (u16, u16),
    file: &'static str,
}

#[test]
fn three_kinds_of_camera_in_one_server_each_route_and_request_reaches_its_own() {
    let upstream = Server::start(&[
        "--camera",
        "synthetic",
        "--width",
        "160",
        "--height",
        "120",
        "--fps",
        "10",
    ]);
    let up_url = format!("http://{}/stream.mjpg", upstream.http);
    let exec = ffmpeg_camera("320x240");
    let up_camera = format!("up={up_url}");
    let server = Server::start(&[
        "--camera",
        "synthetic",
        "--camera",
        &exec,
        "--camera",
        &up_camera,
        "--fps",
        "10",
    ]);
    let cams = [
        Expected {
            name: "cam0",
            source: "synthetic".into(),
            size: (640, 480),
            file: "pic2.jpg",
        },
        Expected {
            name: "cam1",
            source: exec.clone(),
            size: (320, 240),
            file: "pic2.cam1.jpg",
        },
        Expected {
            name: "up",
            source: up_url.clone(),
            size: (160, 120),
            file: "pic2.up.jpg",
        },
    ];
    let all_ok = || {
        let state = server.state();
        state_cameras(&state)
            .iter()
            .all(|c| c.str("camera_ok") == "true")
    };
    assert!(
        wait_until(PATIENCE, all_ok),
        "every camera delivers: {}\n{}",
        server.get("/state").text(),
        server.log()
    );
    let mut ctl = control(&server);

    // `cameras`: names in order, sources with whitespace as `_`.
    assert_eq!(
        ctl.request("cameras"),
        format!(
            "OK cam0=synthetic cam1={} up={up_url}",
            exec.replace(' ', "_")
        )
    );

    // Snapshots over HTTP, by every way of naming a camera.
    let snapshot_routes = [
        ("/snapshot.jpg", 0),
        ("/?action=snapshot", 0),
        ("/cam/cam0/snapshot.jpg", 0),
        ("/?action=snapshot_0", 0),
        ("/cam/cam1/snapshot.jpg", 1),
        ("/cam/cam1/?action=snapshot", 1),
        ("/?action=snapshot_1", 1),
        ("/webcam/?action=snapshot_1", 1),
        ("/cam/up/snapshot.jpg", 2),
        ("/cam/up/?action=snapshot", 2),
        ("/?action=snapshot_2", 2),
    ];
    for (path, index) in snapshot_routes {
        let cam = &cams[index];
        let response = server.get(path);
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        assert_eq!(
            response.header("content-type"),
            Some("image/jpeg"),
            "{path}"
        );
        assert_from(&response.body, cam.name, cam.size, path);
        let x_frame = response.header("x-frame").and_then(|v| v.parse().ok());
        assert_eq!(x_frame, Some(frame_number(&response.body)), "{path}");
    }

    // Streams: the first parts come from the camera the path names.
    let stream_routes = [
        ("/stream.mjpg", 0),
        ("/?action=stream", 0),
        ("/cam/cam0/?action=stream", 0),
        ("/cam/cam1/stream.mjpg", 1),
        ("/cam/cam1/?action=stream", 1),
        ("/?action=stream_1", 1),
        ("/cam/up/stream.mjpg", 2),
        ("/cam/up/?action=stream", 2),
        ("/?action=stream_2", 2),
    ];
    for (path, index) in stream_routes {
        let cam = &cams[index];
        let mut stream = PartReader::open(&server, path);
        let first = stream.next().unwrap_or_else(|e| panic!("{path}: {e}"));
        let second = stream.next().unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_from(&first.jpeg, cam.name, cam.size, path);
        assert_from(&second.jpeg, cam.name, cam.size, path);
        assert!(second.x_frame() > first.x_frame(), "{path}: X-Frame rises");
    }
    let no_viewers = || {
        let state = server.state();
        state_cameras(&state)
            .iter()
            .all(|c| c.u64("stream_viewers") == 0)
    };
    assert!(wait_until(PATIENCE, no_viewers), "the viewers left");

    // Captures: cam0 three times, cam1 once, up twice, so that each
    // camera's count is its own.
    let check_file = |cam: &Expected, file: &str, bytes: usize, what: &str| {
        assert_eq!(file, cam.file, "{what}: the snapshot's name");
        let saved = fs::read(server.snapshot_dir.join(file)).expect("the snapshot file");
        assert_eq!(saved.len(), bytes, "{what}: the size in the reply");
        assert_from(&saved, cam.name, cam.size, what);
    };
    let check_reply = |cam: &Expected, reply: &str, what: &str| {
        let capture = Capture::parse(reply);
        let (width, height) = cam.size;
        assert_eq!(
            (capture.width, capture.height),
            (u32::from(width), u32::from(height)),
            "{what}: {reply}"
        );
        check_file(cam, &capture.file, capture.bytes, what);
    };
    let check_post = |cam: &Expected, path: &str| {
        let response = server.post(path);
        assert_eq!(response.status, 200, "POST {path}: {}", response.text());
        let json = response.json();
        assert_eq!(json.u64("width"), u64::from(cam.size.0), "POST {path}");
        assert_eq!(json.u64("height"), u64::from(cam.size.1), "POST {path}");
        check_file(cam, json.str("file"), json.u64("bytes") as usize, path);
    };
    check_reply(&cams[0], &ctl.request("c"), "c");
    check_reply(&cams[0], &ctl.request("c cam0"), "c cam0");
    check_post(&cams[0], "/capture");
    check_post(&cams[1], "/cam/cam1/capture");
    check_reply(&cams[2], &ctl.request("c up"), "c up");
    check_reply(&cams[2], &ctl.request("capture up"), "capture up");
    let snapshots = [3, 1, 2];

    // The last snapshot of each camera, over HTTP.
    for (path, cam) in [
        ("/snapshots/latest.jpg", &cams[0]),
        ("/cam/cam0/snapshots/latest.jpg", &cams[0]),
        ("/cam/cam1/snapshots/latest.jpg", &cams[1]),
        ("/cam/up/snapshots/latest.jpg", &cams[2]),
    ] {
        let response = server.get(path);
        assert_eq!(response.status, 200, "GET {path}");
        let saved = fs::read(server.snapshot_dir.join(cam.file)).unwrap();
        assert_eq!(response.body, saved, "GET {path} is {}", cam.file);
    }

    // A raw-mode client: a keyword with a camera is a plain message.
    let mut raw = control(&server);
    raw.send("c cam1");
    raw.expect("Received");
    raw.send("stats up");
    raw.expect("Received");

    // Unknown cameras, on both ports: refused, nothing captured.
    for request in [
        "c nope",
        "capture nope",
        "frame nope",
        "stats nope",
        "controls nope",
        "get nope brightness",
        "set nope brightness 60",
    ] {
        assert_eq!(
            ctl.request(request),
            "ERR request: unknown camera nope",
            "{request}"
        );
    }
    let unknown = |response: http_support::Response, what: &str, name: &str| {
        assert_eq!(response.status, 404, "{what}");
        assert_eq!(
            response.text(),
            format!("{{\"error\":\"request: unknown camera {name}\"}}"),
            "{what}"
        );
    };
    for path in [
        "/cam/nope/snapshot.jpg",
        "/cam/nope/stream.mjpg",
        "/cam/nope/?action=stream",
        "/cam/nope/controls",
        "/cam/nope/snapshots/latest.jpg",
    ] {
        unknown(server.get(path), path, "nope");
    }
    unknown(
        server.post("/cam/nope/capture"),
        "POST /cam/nope/capture",
        "nope",
    );
    unknown(server.get("/?action=snapshot_3"), "snapshot_3", "3");
    unknown(server.get("/?action=stream_3"), "stream_3", "3");

    // Controls: the synthetic camera has them, the others do not.
    assert_eq!(ctl.request("set cam0 brightness 60"), "OK brightness=60");
    assert_eq!(ctl.request("get brightness"), "OK brightness=60");
    assert_eq!(ctl.request("get cam0 brightness"), "OK brightness=60");
    for name in ["cam1", "up"] {
        let refused = "ERR camera: controls not supported by this source";
        assert_eq!(ctl.request(&format!("controls {name}")), refused);
        assert_eq!(ctl.request(&format!("get {name} brightness")), refused);
        assert_eq!(ctl.request(&format!("set {name} brightness 60")), refused);
        let response = server.get(&format!("/cam/{name}/controls"));
        assert_eq!(response.status, 501, "/cam/{name}/controls");
    }
    let controls = server.get("/cam/cam0/controls");
    assert_eq!(controls.status, 200);
    assert!(
        controls.text().contains("\"brightness\":{\"value\":60,"),
        "{}",
        controls.text()
    );

    // Nothing but the six captures wrote a file.
    assert_eq!(
        snapshot_files(&server),
        ["pic2.cam1.jpg", "pic2.jpg", "pic2.up.jpg"]
    );

    // `stats NAME`: that camera's numbers; plain `stats` is cam0's.
    let mut frames_sent = Vec::new();
    for (cam, snapshots) in cams.iter().zip(snapshots) {
        let stats = stats_of(&mut ctl, cam.name);
        assert_eq!(stats.text("camera"), cam.source.replace(' ', "_"));
        assert_eq!(stats.get("camera_ok"), 1, "{}", cam.name);
        assert_eq!(stats.get("width"), u64::from(cam.size.0), "{}", cam.name);
        assert_eq!(stats.get("height"), u64::from(cam.size.1), "{}", cam.name);
        assert_eq!(stats.get("snapshots"), snapshots, "{}", cam.name);
        assert_eq!(stats.get("snapshot_errors"), 0, "{}", cam.name);
        assert!(stats.get("frames_sent") >= 2, "{}: streamed", cam.name);
        frames_sent.push(stats.get("frames_sent"));
    }
    let plain = Stats::parse(&ctl.request("stats"));
    assert!(!plain.0.contains_key("camera_name"), "{:?}", plain.0);
    assert_eq!(plain.text("camera"), "synthetic");
    assert_eq!(plain.get("width"), 640);
    assert_eq!(plain.get("snapshots"), 3);
    assert_eq!(plain.get("frames_sent"), frames_sent[0]);

    // `/state`: the default camera at the top, every camera in `cameras`.
    let state = server.state();
    assert_eq!(state.str("camera"), "synthetic");
    assert_eq!(state.u64("width"), 640);
    assert_eq!(state.u64("snapshots"), 3);
    let listed = state_cameras(&state);
    assert_eq!(listed.len(), 3, "{}", state.str("cameras"));
    for (i, (cam, json)) in cams.iter().zip(&listed).enumerate() {
        assert_eq!(json.str("name"), cam.name);
        assert_eq!(json.str("source"), cam.source);
        assert_eq!(json.str("camera_ok"), "true", "{}", cam.name);
        assert_eq!(json.u64("width"), u64::from(cam.size.0), "{}", cam.name);
        assert_eq!(json.u64("height"), u64::from(cam.size.1), "{}", cam.name);
        assert_eq!(json.u64("snapshots"), snapshots[i], "{}", cam.name);
        assert_eq!(json.str("last_snapshot"), cam.file, "{}", cam.name);
        assert_eq!(json.u64("frames_sent"), frames_sent[i], "{}", cam.name);
        assert!(json.u64("frames_grabbed") >= frames_sent[i], "{}", cam.name);
    }

    // `/metrics`: per-camera series labelled, process-wide ones not.
    let metrics = server.metrics();
    for (i, cam) in cams.iter().enumerate() {
        let label = format!("{{camera=\"{}\"}}", cam.name);
        assert_sample(
            &metrics,
            &format!(
                "camloop_camera_info{{camera=\"{}\",source=\"{}\",codec=\"mjpeg\",converter=\"none\"}}",
                cam.name, cam.source
            ),
            "1",
        );
        let count = snapshots[i].to_string();
        assert_sample(&metrics, &format!("camloop_snapshots_total{label}"), &count);
        let sent = frames_sent[i].to_string();
        assert_sample(
            &metrics,
            &format!("camloop_frames_sent_total{label}"),
            &sent,
        );
        let width = cam.size.0.to_string();
        assert_sample(
            &metrics,
            &format!("camloop_frame_width_pixels{label}"),
            &width,
        );
        assert_sample(&metrics, &format!("camloop_camera_up{label}"), "1");
        assert!(
            sample(&metrics, &format!("camloop_frames_grabbed_total{label}")).is_some(),
            "{label}"
        );
        assert!(
            sample(
                &metrics,
                &format!(
                    "camloop_grab_seconds_bucket{{camera=\"{}\",le=\"0.001\"}}",
                    cam.name
                )
            )
            .is_some(),
            "{label}"
        );
    }
    assert!(sample(&metrics, "camloop_requests_total").is_some());
    assert!(sample(&metrics, "camloop_uptime_seconds").is_some());
    assert!(
        !metrics.contains("camloop_requests_total{"),
        "a process-wide series has no camera label"
    );
    assert!(!metrics.contains("camera=\"nope\""));
}

/// The snapshot directory's entries, hidden files (temporaries) included.
fn snapshot_files(server: &Server) -> Vec<String> {
    support::dir_entries(&server.snapshot_dir)
}

// ---------------------------------------------------------------------------
// Isolation: one camera fails, the other does not notice

/// How the second camera, `bad`, fails.
enum Failure {
    /// A working ffmpeg child, SIGSTOPped by the test.
    Stopped,
    /// A child that exits at once, again and again.
    ExitsAtOnce,
    /// An `http://` camera whose listener accepts (the kernel does) and
    /// never answers.
    NeverAnswers(TcpListener),
    /// A child that writes text, never a JPEG.
    Garbage,
}

impl Failure {
    fn source(&self) -> String {
        match self {
            Failure::Stopped => ffmpeg_camera("160x120"),
            Failure::ExitsAtOnce => "exec:true".to_string(),
            Failure::NeverAnswers(listener) => {
                format!("http://{}/stream.mjpg", listener.local_addr().unwrap())
            }
            Failure::Garbage => {
                "exec:sh -c 'while true; do echo garbage; sleep 0.05; done'".to_string()
            }
        }
    }

    /// What the camera's errors name it by.
    fn error_names(&self) -> String {
        match self {
            Failure::Stopped => "exec:ffmpeg".to_string(),
            Failure::ExitsAtOnce => "exec:true".to_string(),
            Failure::Garbage => "exec:sh".to_string(),
            Failure::NeverAnswers(_) => self.source(),
        }
    }

    /// Whether a capture of the failing camera can be pending (its source
    /// is up and has sent no frame yet) rather than refused at once: not
    /// for a child that exits at once, which is down nearly all the time.
    fn can_pend(&self) -> bool {
        !matches!(self, Failure::ExitsAtOnce)
    }

    /// Gets the failing camera into the state where a capture waits: the
    /// current child stopped; the source started and waiting for its first
    /// frame. Called before the window and before each ordering round.
    fn arm(&self, server: &Server, ctl: &mut Client) {
        match self {
            Failure::Stopped => {
                // A child that delivers (after a restart, the new one) ...
                let delivering = || stats_of(ctl, "bad").get("camera_ok") == 1;
                assert!(wait_until(PATIENCE, delivering), "{}", server.log());
                let child = camera_child(server);
                signal_process(child, libc::SIGSTOP);
                // ... now stopped.
                let stopped = || process_state(child) == Some('T');
                assert!(wait_until(PATIENCE, stopped), "child {child} stopped");
            }
            Failure::NeverAnswers(_) | Failure::Garbage => {
                let waiting = || {
                    let state = server.state();
                    state_cameras(&state)[1].str("camera_error") == "waiting for the first frame"
                };
                assert!(wait_until(PATIENCE, waiting), "{}", server.log());
            }
            Failure::ExitsAtOnce => {}
        }
    }
}

/// The server's one live child (waits until there is exactly one).
fn camera_child(server: &Server) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let [child] = live_children(server.pid() as i32)[..] {
            return child;
        }
        assert!(
            Instant::now() < deadline,
            "no single child\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A stream viewer on a thread of its own, reading every part as it comes
/// and keeping the `X-Frame` numbers (0 for the "no signal" frame, which
/// has none): reading never waits for the test's other requests, so the
/// viewer's socket never fills. Every part must come from `camera`.
struct Viewer {
    seqs: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    socket: TcpStream,
    thread: Option<JoinHandle<()>>,
}

impl Viewer {
    /// Watches `path`, which must show only `camera`'s frames; with
    /// `only_grabbed`, only grabbed ones (each with its `X-Frame`), never
    /// a "no signal" frame.
    fn start(server: &Server, path: &str, camera: &'static str, only_grabbed: bool) -> Viewer {
        let mut stream = PartReader::open(server, path);
        let socket = stream.reader.get_ref().try_clone().unwrap();
        // Longer than any wait of the test: a viewer that gets nothing for
        // a while is for the test to judge, not for its read to fail.
        socket.set_read_timeout(Some(2 * PATIENCE)).unwrap();
        let seqs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_seqs, thread_stop) = (seqs.clone(), stop.clone());
        let path = path.to_string();
        let thread = thread::spawn(move || loop {
            let part = match stream.next() {
                Ok(part) => part,
                Err(_) if thread_stop.load(Ordering::SeqCst) => return,
                Err(e) => panic!("the next part of {path}: {e}"),
            };
            assert_eq!(
                stamped_camera(&part.jpeg),
                camera,
                "{path}: only its frames"
            );
            let seq = if only_grabbed || part.header("x-frame").is_some() {
                part.x_frame()
            } else {
                assert!(stamp(&part.jpeg).contains("no-signal"), "{path}");
                0
            };
            if only_grabbed {
                assert_eq!(decoded_size(&part.jpeg), (160, 120), "{path}");
            }
            thread_seqs.lock().unwrap().push(seq);
        });
        Viewer {
            seqs,
            stop,
            socket,
            thread: Some(thread),
        }
    }

    fn last(&self) -> u64 {
        self.seqs.lock().unwrap().last().copied().unwrap_or(0)
    }

    /// Whether the thread ended (it does so only by a panic, or once stopped).
    fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits until the viewer has received a part numbered at least `n`.
    fn wait_for(&self, n: u64, server: &Server) {
        let got = wait_until(PATIENCE, || self.last() >= n || self.finished());
        assert!(
            got && !self.finished(),
            "the viewer got up to {} of {n}\n{}",
            self.last(),
            server.log()
        );
    }

    /// Stops the thread (closing the socket under it) and returns every
    /// number it received; a panic on the thread fails the test here.
    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        if let Err(panic) = self.thread.take().expect("not finished yet").join() {
            std::panic::resume_unwind(panic);
        }
        let seqs = self.seqs.lock().unwrap().clone();
        seqs
    }
}

impl Drop for Viewer {
    /// A test that failed leaves its viewers quietly: the server is about
    /// to go, and their end of stream is not the failure to report.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

/// cam0's `frames_grabbed` and `frames_sent`, from one `stats cam0` (the
/// server computes the line in one go, so the two are from one moment).
fn grabbed_and_sent(ctl: &mut Client) -> (u64, u64, u64) {
    let stats = stats_of(ctl, "cam0");
    (
        stats.get("frames_grabbed"),
        stats.get("frames_sent"),
        stats.get("frames_dropped"),
    )
}

/// Frames the viewer must see in the window (1 s at 10 fps).
const WINDOW_FRAMES: u64 = 10;
/// Ordering rounds tried before giving up on seeing one.
const ROUNDS: usize = 6;

/// cam0 (synthetic, 160x120, 10 fps) next to `bad`, which fails as
/// `failure` says.
///
/// **The window** has exactly one viewer on cam0 and no request about
/// cam0 but `stats`; meanwhile `bad` gets a capture (answered `ERR
/// camera: …`), fails and restarts at least once, and shows its own
/// viewer the "no signal" frame (which cam0's viewer must never get:
/// every part it gets is stamped `camera=cam0`). Then, exactly:
/// cam0's `frames_sent` delta equals its `frames_grabbed` delta, and the
/// viewer received every number in between. Why it is exact: `stats` is
/// computed within one loop iteration; a timed camera's grab and its offer
/// to the viewers happen in one iteration too, so at each `stats` every
/// frame grabbed so far has been offered. With one viewer an offer is a
/// send unless the viewer's previous part is still queued in user space,
/// which with 160x120 parts and a viewer reading on its own thread would
/// take the kernel's socket buffers filling up (`frames_dropped` is in
/// the message if it ever happens). A capture of cam0 would break both:
/// it grabs a frame of its own that no viewer is offered (docs/http.md:
/// `X-Frame` is strictly increasing, not contiguous), so there is none in
/// the window.
///
/// **The ordering rounds** come after, the viewer still watching: `c bad`
/// on one connection, then `c` on another; the cam0 reply must be `OK`,
/// and at least once (the failing source may be between restarts, when
/// its capture is refused at once) the `bad` connection must still have
/// nothing to read when the cam0 reply is already there. A server that
/// made cam0's capture wait behind `bad`'s could never show that. The
/// viewer's numbers then still increase strictly, and every number
/// missing is the frame one of those captures grabbed.
fn isolation(failure: Failure) {
    let bad_source = failure.source();
    let bad_camera = format!("bad={bad_source}");
    let server = Server::start(&[
        "--camera",
        "synthetic",
        "--camera",
        &bad_camera,
        "--camera-timeout",
        "2",
        "--fps",
        "10",
        "--width",
        "160",
        "--height",
        "120",
    ]);
    let mut ctl = control(&server);
    let expect_bad_error = |reply: &str, what: &str| {
        assert!(
            reply.starts_with("ERR camera: ") && reply.contains(&failure.error_names()),
            "{what}: {reply}\n{}",
            server.log()
        );
    };
    failure.arm(&server, &mut ctl);

    let viewer = Viewer::start(&server, "/stream.mjpg", "cam0", true);
    viewer.wait_for(1, &server);
    // The failing camera has a viewer too: what it gets (the "no signal"
    // frame, and frames of a restarted child) must stay its own.
    let bad_viewer = Viewer::start(&server, "/cam/bad/stream.mjpg", "bad", false);

    // The window.
    let (grabbed_before, sent_before, dropped_before) = grabbed_and_sent(&mut ctl);
    let restarts_before = stats_of(&mut ctl, "bad").get("camera_restarts");
    let mut bad = control(&server);
    expect_bad_error(&bad.request("c bad"), "c bad in the window");
    let restarted = || stats_of(&mut ctl, "bad").get("camera_restarts") > restarts_before;
    assert!(wait_until(PATIENCE, restarted), "{}", server.log());
    let no_signal = || bad_viewer.seqs.lock().unwrap().contains(&0);
    assert!(
        wait_until(PATIENCE, no_signal),
        "bad's viewer was shown its \"no signal\" frame\n{}",
        server.log()
    );
    viewer.wait_for(grabbed_before + WINDOW_FRAMES, &server);
    let (grabbed_after, sent_after, dropped_after) = grabbed_and_sent(&mut ctl);
    // Every frame up to `grabbed_after` that was sent has arrived once a
    // later one has.
    viewer.wait_for(grabbed_after + 1, &server);
    assert_eq!(
        sent_after - sent_before,
        grabbed_after - grabbed_before,
        "cam0 sent every frame it grabbed in the window (frames_dropped {dropped_before} -> \
         {dropped_after})"
    );
    let window: Vec<u64> = viewer
        .seqs
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|&n| n > grabbed_before && n <= grabbed_after)
        .collect();
    let all: Vec<u64> = (grabbed_before + 1..=grabbed_after).collect();
    assert_eq!(
        window, all,
        "the viewer got every frame of the window, in order"
    );

    // The ordering rounds.
    let mut capturer = control(&server);
    let mut captured = BTreeSet::new();
    let mut answered_while_pending = 0;
    let rounds = if failure.can_pend() { ROUNDS } else { 2 };
    for round in 0..rounds {
        failure.arm(&server, &mut ctl);
        bad.send("c bad\n");
        capturer.send("c\n");
        let reply = capturer.read_line();
        let capture = Capture::parse(reply.trim_end());
        assert_eq!(capture.file, "pic2.jpg", "round {round}");
        assert_eq!((capture.width, capture.height), (160, 120), "round {round}");
        let saved = fs::read(server.snapshot_dir.join("pic2.jpg")).unwrap();
        assert_eq!(saved.len(), capture.bytes);
        assert_eq!(stamped_camera(&saved), "cam0");
        captured.insert(frame_number(&saved));
        let bad_pending = !has_input(&bad);
        expect_bad_error(bad.read_line().trim_end(), &format!("round {round}"));
        if bad_pending {
            answered_while_pending += 1;
            break;
        }
    }
    if failure.can_pend() {
        assert_eq!(
            answered_while_pending, 1,
            "in {rounds} rounds, cam0's capture was never answered while bad's was pending"
        );
    }
    let captures = captured.len() as u64;
    // One more part after the last capture, then stop watching.
    let (grabbed_end, _, _) = grabbed_and_sent(&mut ctl);
    viewer.wait_for(grabbed_end + 1, &server);
    let seqs = viewer.finish();
    let bad_seqs = bad_viewer.finish();
    for pair in seqs.windows(2) {
        assert!(pair[0] < pair[1], "X-Frame strictly increasing: {pair:?}");
        for missing in pair[0] + 1..pair[1] {
            assert!(
                captured.contains(&missing) && missing > grabbed_after,
                "frame {missing} was neither sent to the viewer nor a capture's own grab \
                 (captures got {captured:?}; viewer: {seqs:?})"
            );
        }
    }

    // Counters: cam0 has every capture, bad none.
    let cam0 = stats_of(&mut ctl, "cam0");
    assert_eq!(cam0.get("snapshots"), captures);
    assert_eq!(cam0.get("snapshot_errors"), 0);
    assert_eq!(cam0.get("camera_ok"), 1);
    let bad_stats = stats_of(&mut ctl, "bad");
    assert_eq!(bad_stats.get("snapshots"), 0);
    assert!(bad_stats.get("frames_sent") >= bad_seqs.len() as u64);
    assert!(bad_stats.get("camera_restarts") >= 1);
    assert_eq!(snapshot_files(&server), ["pic2.jpg"]);
}

#[test]
fn a_stopped_exec_child_leaves_the_other_camera_untouched() {
    isolation(Failure::Stopped);
}

#[test]
fn a_child_that_exits_at_once_leaves_the_other_camera_untouched() {
    isolation(Failure::ExitsAtOnce);
}

#[test]
fn an_upstream_that_never_answers_leaves_the_other_camera_untouched() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    isolation(Failure::NeverAnswers(listener));
}

#[test]
fn a_child_that_sends_garbage_leaves_the_other_camera_untouched() {
    isolation(Failure::Garbage);
}
