//! Camera controls at run time (issue 17), end to end: `controls`, `get`
//! and `set` on the control port, `GET`/`POST /controls`, `--control` and
//! the `control = [...]` config key, against a real `camloop serve` with
//! the synthetic camera, whose brightness and contrast change the pixels.

mod http_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use http_support::{Server, TempDir, READ_TIMEOUT};

/// A line-mode control client.
struct Control {
    reader: BufReader<TcpStream>,
}

impl Control {
    fn connect(server: &Server) -> Control {
        let stream = TcpStream::connect(server.control.expect("a control port")).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut reader = BufReader::new(stream);
        let mut greeting = [0u8; 7];
        std::io::Read::read_exact(&mut reader, &mut greeting).unwrap();
        assert_eq!(&greeting, b"Welcome");
        Control { reader }
    }

    /// Sends one line and returns its one-line reply, without the `\n`.
    fn request(&mut self, line: &str) -> String {
        let stream = self.reader.get_mut();
        stream.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        self.reader.read_line(&mut reply).unwrap();
        reply
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("no reply line to {line:?}: {reply:?}"))
            .to_string()
    }
}

/// Mean and standard deviation of a JPEG's luminance.
fn luma_stats(jpeg: &[u8]) -> (f64, f64) {
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    let pixels = decoder.decode().expect("a valid JPEG");
    let luma: Vec<f64> = match decoder.info().expect("info").pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels
            .chunks_exact(3)
            .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
            .collect(),
        _ => pixels.iter().map(|&p| f64::from(p)).collect(),
    };
    let mean = luma.iter().sum::<f64>() / luma.len() as f64;
    let variance = luma.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / luma.len() as f64;
    (mean, variance.sqrt())
}

fn snapshot_stats(server: &Server) -> (f64, f64) {
    let response = server.get("/snapshot.jpg");
    assert_eq!(response.status, 200);
    luma_stats(&response.body)
}

#[test]
fn set_brightness_changes_the_mean_of_the_next_snapshot() {
    let server = Server::synthetic(&[]);
    let mut control = Control::connect(&server);
    let (neutral, _) = snapshot_stats(&server);
    assert_eq!(control.request("set brightness 85"), "OK brightness=85");
    let (brighter, _) = snapshot_stats(&server);
    assert!(brighter > neutral + 30.0, "{brighter} vs {neutral}");
    assert_eq!(control.request("set brightness 15"), "OK brightness=15");
    let (darker, _) = snapshot_stats(&server);
    assert!(darker < neutral - 30.0, "{darker} vs {neutral}");
}

#[test]
fn set_contrast_changes_the_spread_of_the_next_snapshot() {
    let server = Server::synthetic(&[]);
    let mut control = Control::connect(&server);
    let (_, neutral) = snapshot_stats(&server);
    assert_eq!(control.request("set contrast 15"), "OK contrast=15");
    let (_, flat) = snapshot_stats(&server);
    assert!(flat < neutral * 0.5, "{flat} vs {neutral}");
    assert_eq!(control.request("set contrast 90"), "OK contrast=90");
    let (_, steep) = snapshot_stats(&server);
    assert!(steep > neutral + 3.0, "{steep} vs {neutral}");
}

#[test]
fn every_control_reply_is_exact_in_line_mode() {
    let server = Server::synthetic(&[]);
    let mut control = Control::connect(&server);
    let exchanges = [
        ("controls", "OK brightness=50/0..100 contrast=50/0..100"),
        ("get brightness", "OK brightness=50"),
        ("SET Contrast 64", "OK contrast=64"),
        ("get contrast", "OK contrast=64"),
        ("get zoom", "ERR request: unknown control zoom"),
        ("set hue 3", "ERR request: unknown control hue"),
        (
            "set brightness 101",
            "ERR request: brightness must be 0..100",
        ),
        (
            "set brightness bright",
            "ERR request: brightness must be 0..100",
        ),
        ("set brightness", "ERR request: usage: set <name> <value>"),
        ("controls", "OK brightness=50/0..100 contrast=64/0..100"),
    ];
    for (request, reply) in exchanges {
        assert_eq!(control.request(request), reply, "{request}");
    }
}

#[test]
fn a_push_source_has_no_controls_on_either_port() {
    let server = Server::start(&["--camera", "exec:sleep 30"]);
    let mut control = Control::connect(&server);
    let refusal = "ERR camera: controls not supported by this source";
    for request in ["controls", "get brightness", "set brightness 1"] {
        assert_eq!(control.request(request), refusal, "{request}");
    }
    let listed = server.get("/controls");
    assert_eq!(listed.status, 501);
    assert_eq!(
        listed.text(),
        r#"{"error":"camera: controls not supported by this source"}"#
    );
    assert_eq!(server.post("/controls?name=brightness&value=1").status, 501);
}

#[test]
fn http_and_the_control_port_agree() {
    let server = Server::synthetic(&["--cors-origin", "*"]);
    let mut control = Control::connect(&server);
    assert_eq!(control.request("set brightness 61"), "OK brightness=61");
    let listed = server.get("/controls");
    assert_eq!(listed.status, 200);
    assert_eq!(listed.header("content-type"), Some("application/json"));
    assert_eq!(listed.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        listed.text(),
        r#"{"brightness":{"value":61,"min":0,"max":100},"contrast":{"value":50,"min":0,"max":100}}"#
    );
    let set = server.post("/controls?name=contrast&value=44");
    assert_eq!(set.status, 200);
    assert_eq!(set.text(), r#"{"contrast":{"value":44,"min":0,"max":100}}"#);
    assert_eq!(control.request("get contrast"), "OK contrast=44");
    assert_eq!(
        control.request("controls"),
        "OK brightness=61/0..100 contrast=44/0..100"
    );
    // The errors say the same thing on both ports.
    let unknown = server.post("/controls?name=x&value=1");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.text(), r#"{"error":"request: unknown control x"}"#);
    assert_eq!(control.request("set x 1"), "ERR request: unknown control x");
    let out_of_range = server.post("/controls?name=brightness&value=101");
    assert_eq!(out_of_range.status, 400);
    assert_eq!(
        out_of_range.text(),
        r#"{"error":"request: brightness must be 0..100"}"#
    );
    assert_eq!(
        control.request("set brightness 101"),
        "ERR request: brightness must be 0..100"
    );
    assert_eq!(control.request("get brightness"), "OK brightness=61");
}

#[test]
fn with_a_token_both_ports_want_it_first() {
    let server = Server::synthetic(&["--token", "s3cret"]);
    let mut control = Control::connect(&server);
    for request in ["controls", "get brightness", "set brightness 70"] {
        assert_eq!(control.request(request), "ERR auth: required", "{request}");
    }
    assert_eq!(server.get("/controls").status, 401);
    assert_eq!(
        server.post("/controls?name=brightness&value=70").status,
        401
    );
    assert_eq!(control.request("auth s3cret"), "OK");
    assert_eq!(control.request("get brightness"), "OK brightness=50");
    let set = server.post("/controls?name=brightness&value=70&token=s3cret");
    assert_eq!(set.status, 200);
    assert_eq!(control.request("get brightness"), "OK brightness=70");
}

#[test]
fn control_flags_at_start_show_in_controls() {
    let server = Server::synthetic(&["--control", "brightness=60", "--control", "Contrast=40"]);
    let mut control = Control::connect(&server);
    assert_eq!(
        control.request("controls"),
        "OK brightness=60/0..100 contrast=40/0..100"
    );
}

#[test]
fn control_settings_in_a_config_file_show_in_controls() {
    let dir = TempDir::new("controls-config");
    let config = dir.path().join("camloop.toml");
    std::fs::write(&config, "control = [\"brightness=65\", \"contrast=35\"]\n").unwrap();
    let server = Server::synthetic(&["--config", config.to_str().unwrap()]);
    let mut control = Control::connect(&server);
    assert_eq!(
        control.request("controls"),
        "OK brightness=65/0..100 contrast=35/0..100"
    );
}

/// Runs `camloop serve` with `args`, which must refuse to start, and
/// returns its exit code and stderr. A server that starts anyway prints its
/// `listening` line (and is killed, and the test fails); one that refuses
/// exits, which closes its stdout: either way nothing here waits on a clock.
fn failed_start(args: &[&str]) -> (Option<i32>, String) {
    let dir = TempDir::new("controls-start");
    let mut child = Command::new(env!("CARGO_BIN_EXE_camloop"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--rtsp",
            "off",
        ])
        .arg("--snapshot-dir")
        .arg(dir.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run camloop");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    if line.starts_with("listening") {
        let _ = child.kill();
        let _ = child.wait();
        panic!("camloop started with {args:?}: {line}");
    }
    let output = child.wait_with_output().expect("camloop's exit");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_bad_control_at_start_stops_the_start_and_names_it() {
    let synthetic = ["--camera", "synthetic"];
    let (code, stderr) = failed_start(&[&synthetic[..], &["--control", "focus=3"]].concat());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--control focus=3: request: unknown control focus"),
        "{stderr}"
    );
    let (code, stderr) = failed_start(&[&synthetic[..], &["--control", "hue=3"]].concat());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown control hue"), "{stderr}");
    let (code, stderr) = failed_start(&[&synthetic[..], &["--control", "brightness=500"]].concat());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--control brightness=500: request: brightness must be 0..100"),
        "{stderr}"
    );
    // A camera's own control list may not name controls its source cannot
    // have (a child process owns its camera's settings).
    let dir = TempDir::new("controls-own");
    let config = dir.path().join("camloop.toml");
    std::fs::write(
        &config,
        "[[camera]]\nsource = \"exec:sleep 30\"\ncontrol = [\"gain=1\"]\n",
    )
    .expect("write config");
    let config = config.to_string_lossy().into_owned();
    let (code, stderr) = failed_start(&["--config", &config]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("camera cam0: control gain=1: exec:sleep 30 has no controls"),
        "{stderr}"
    );
}

#[test]
fn global_controls_skip_a_camera_without_controls_with_one_line() {
    let server = Server::start(&[
        "--camera",
        "synthetic",
        "--camera",
        "exec:sleep 30",
        "--control",
        "brightness=20",
    ]);
    let mut control = Control::connect(&server);
    assert_eq!(control.request("get brightness"), "OK brightness=20");
    assert_eq!(
        control.request("get cam1 brightness"),
        "ERR camera: controls not supported by this source"
    );
    let log = server.log();
    let skipped = "camera cam1 (exec:sleep 30) has no controls: --control brightness=20 left out";
    assert_eq!(log.matches(skipped).count(), 1, "{log}");
}

#[test]
fn camloop_ctl_sets_a_control_given_as_one_quoted_word() {
    let server = Server::synthetic(&[]);
    let addr = server.control.expect("a control port").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_camloop"))
        .args([
            "ctl",
            &addr,
            "set brightness 58",
            "get brightness",
            "get nope",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run camloop ctl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "Welcome",
            "OK brightness=58",
            "OK brightness=58",
            "ERR request: unknown control nope"
        ]
    );
    assert_eq!(output.status.code(), Some(1), "an ERR reply exits 1");
}
