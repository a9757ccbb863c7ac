//! `/metrics` by Prometheus' own rules: Debian's `promtool check metrics`
//! (the `prometheus` package, installed by `scripts/setup.sh test`) reads a
//! live server's `/metrics` with every kind of push and timed camera
//! present, and must find nothing.

mod http_support;

use std::fs;
use std::io::Write as _;
use std::process::{Command, Stdio};

use http_support::{Server, TempDir};

/// Each `# TYPE` line's family name and type, in order.
fn families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect()
}

/// The samples of family `name` (lines starting with `name{` or `name `).
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

/// A server with three cameras of three kinds: the synthetic one (timed),
/// an `exec:` child (a pipe in the poll) and an `http://` camera (a socket
/// in the poll, here another camloop), each having served a capture, so
/// every histogram has observations.
fn server_with_every_camera_kind(upstream: &Server, dir: &TempDir) -> Server {
    let jpeg = upstream.get("/snapshot.jpg");
    assert_eq!(jpeg.status, 200, "the upstream's snapshot");
    let frame = dir.path().join("frame.jpg");
    fs::write(&frame, &jpeg.body).expect("write the exec camera's frame");
    // The same JPEG ten times a second: a fresh frame for every capture.
    let exec = format!(
        "pipe=exec:sh -c 'while cat {}; do sleep 0.1; done'",
        frame.display()
    );
    let http = format!("net=http://{}/stream.mjpg", upstream.http);
    Server::start(&[
        "--camera",
        "cam0=synthetic",
        "--camera",
        &exec,
        "--camera",
        &http,
    ])
}

#[test]
fn promtool_finds_nothing_in_metrics_with_every_camera_kind() {
    let upstream = Server::synthetic(&[]);
    let dir = TempDir::new("metrics-promtool");
    let server = server_with_every_camera_kind(&upstream, &dir);
    for path in [
        "/snapshot.jpg",
        "/cam/pipe/snapshot.jpg",
        "/cam/net/snapshot.jpg",
    ] {
        let response = server.get(path);
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
    }
    let text = server.metrics();
    for camera in ["cam0", "pipe", "net"] {
        assert!(
            text.contains(&format!("camloop_camera_up{{camera=\"{camera}\"}} ")),
            "camera {camera} in:\n{text}"
        );
    }

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool could not be run ({e}); scripts/setup.sh test installs Debian's prometheus package, which has it")
        });
    promtool
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = promtool.wait_with_output().expect("promtool ran");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && findings.trim().is_empty(),
        "promtool check metrics: {}\n{findings}\n/metrics was:\n{text}",
        output.status
    );
}

#[test]
fn counters_end_in_total_and_only_counters_do() {
    let upstream = Server::synthetic(&[]);
    let dir = TempDir::new("metrics-counters");
    let server = server_with_every_camera_kind(&upstream, &dir);
    let text = server.metrics();
    let families = families(&text);
    let counters: Vec<&str> = families
        .iter()
        .filter(|(_, kind)| kind == "counter")
        .map(|(name, _)| name.as_str())
        .collect();
    for (name, kind) in &families {
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}: a counter's name ends in _total, and only a counter's"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no # HELP"
        );
    }
    // The counts that were gauges before the conventions pass.
    for name in [
        "camloop_auth_failures_total",
        "camloop_camera_restarts_total",
        "camloop_connections_refused_total",
        "camloop_clients_dropped_total",
        "camloop_frames_passthrough_total",
    ] {
        assert!(
            counters.contains(&name),
            "{name} is a counter: {counters:?}"
        );
    }
    // Per camera: one sample for each of the three cameras.
    assert_eq!(samples(&text, "camloop_camera_restarts_total").len(), 3);
    // No quantile gauge beside the histograms that answer it.
    assert!(!text.contains("_p99"), "a p99 gauge in:\n{text}");
    // Durations in seconds, whatever unit camloop keeps them in.
    assert_eq!(
        samples(&text, "camloop_camera_timeout_seconds")[0],
        "camloop_camera_timeout_seconds{camera=\"cam0\"} 5"
    );
}
