//! `camloop load --whep` end to end over real loopback sockets: against the
//! real `camloop serve` (an `exec:` camera replaying the main H.264 clip,
//! WebRTC on `127.0.0.1:0`), with and without `--token`, with its camera
//! child stopped; and against the test's own HTTP server, which answers
//! the WHEP offer with garbage.
//!
//! Assertions are on counts and contents only, never on timing. Every
//! tool a test needs is checked first; a missing one fails the test with
//! the reason (`scripts/setup.sh test` installs them all), never skips it.

#[path = "support/h264_clip.rs"]
mod h264_clip;
mod http_support;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use camloop::load::{run_whep_viewers, LoadArgs, WhepReport};
use clap::Parser;
use h264_clip::{main_clip, replay_camera};
use http_support::Server;
use support::{live_children, process_state, signal_process};

/// How long the test waits for the server to reach a state (hang
/// protection only).
const WAIT: Duration = Duration::from_secs(20);

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    load: LoadArgs,
}

/// Parses `camloop load --whep URL FLAGS` as a user would type it.
fn whep_args(url: &str, flags: &str) -> LoadArgs {
    let line = ["load", "--whep", url]
        .into_iter()
        .chain(flags.split_whitespace());
    Cli::try_parse_from(line).expect("valid flags").load
}

/// Runs the viewers; the report's JSON goes with every failed assertion.
fn run(url: &str, flags: &str) -> (WhepReport, String) {
    let report = run_whep_viewers(&whep_args(url, flags)).expect("the viewers connected");
    let json = report.to_json();
    (report, json)
}

/// A camloop with one `exec:` camera replaying the 720p clip (and `extra`).
fn camloop(extra: &[&str]) -> Server {
    let camera = replay_camera(&main_clip().mkv, "h264");
    let mut args = vec!["--camera", camera.as_str(), "--camera-timeout", "30"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// What every viewer of a healthy run must have: ICE up, frames each, a
/// first picture each, every frame dated, no drop and no error, and the
/// session deleted at the end.
fn assert_every_viewer_played(report: &WhepReport, viewers: usize, json: &str) {
    let viewing = &report.viewing;
    assert_eq!(report.errors, 0, "{json}");
    assert_eq!(report.ice_connected, viewers as u64, "{json}");
    assert_eq!(viewing.viewer_frames.len(), viewers, "{json}");
    assert!(
        viewing.viewer_frames.iter().all(|&frames| frames > 0),
        "every viewer got frames: {json}"
    );
    assert_eq!(viewing.viewer_frames.iter().sum::<u64>(), viewing.frames);
    assert!(viewing.frames_run >= viewing.frames, "{json}");
    assert!(viewing.fps_per_viewer_min > 0.0, "{json}");
    let first = report.ages.first_idr_us.expect("a first picture");
    assert_eq!(
        first.count, viewers as u64,
        "each viewer's first picture: {json}"
    );
    let dated = viewing.frame_age_us.map_or(0, |age| age.count);
    assert_eq!(dated + viewing.untimed_frames, viewing.frames, "{json}");
    let split = [report.ages.idr_us, report.ages.non_idr_us]
        .iter()
        .map(|age| age.map_or(0, |age| age.count))
        .sum::<u64>();
    assert_eq!(split, dated, "{json}");
    assert_eq!(
        report.dated_by_capture_time + report.dated_by_sender_report,
        dated,
        "{json}"
    );
    assert!(report.datagrams > viewing.frames_run, "{json}");
    assert_eq!(report.sessions_deleted, viewers as u64, "{json}");
    // The same keys as --mjpeg for what every viewer run measures.
    for key in [
        "\"fps_per_viewer_min\":",
        "\"fps_per_viewer_mean\":",
        "\"frame_age_p99_us\":",
        "\"stalled_viewers\":",
        "\"dropped_viewers\":",
        "\"viewer_frames\":",
        "\"first_picture_p50_us\":",
        "\"nacks_sent\":",
        "\"kernel_drops\":",
    ] {
        assert!(json.contains(key), "{key} in {json}");
    }
}

/// Waits until the server's `/state` says `key` is `wanted`.
fn wait_for_state(server: &Server, key: &str, wanted: u64) {
    wait_until(server, key, |value| value == wanted);
}

/// Waits until the server's `/state` value `key` passes `test`.
fn wait_until(server: &Server, key: &str, test: impl Fn(u64) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !test(server.state_u64(key)) {
        assert!(Instant::now() < deadline, "{key} never got there");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn whep_viewers_of_camloop_get_frames_a_first_picture_each_and_delete_their_sessions() {
    const VIEWERS: usize = 3;
    let server = camloop(&[]);
    let url = format!("{}/whep", server.base_url());
    let flags = format!("--viewers {VIEWERS} --warmup 1 --duration 2 --json");

    let (report, json) = run(&url, &flags);
    assert_every_viewer_played(&report, VIEWERS, &json);
    // camloop's answer takes the offered abs-capture-time: every frame is
    // dated by it.
    assert_eq!(report.dated_by_sender_report, 0, "{json}");
    assert!(report.dated_by_capture_time > 0, "{json}");
    // The DELETEs freed the server's peers.
    wait_for_state(&server, "webrtc_peers_connected", 0);
    wait_for_state(&server, "webrtc_peers_connecting", 0);

    // Without abs-capture-time the sender reports date the frames.
    let (report, json) = run(&url, &format!("{flags} --no-abs-capture-time"));
    assert_every_viewer_played(&report, VIEWERS, &json);
    assert_eq!(report.dated_by_capture_time, 0, "{json}");
    assert!(report.dated_by_sender_report > 0, "{json}");
}

#[test]
fn auth_sends_the_token_and_a_missing_or_wrong_one_is_an_error() {
    const VIEWERS: usize = 2;
    let server = camloop(&["--token", "s3cret"]);
    let url = format!("{}/whep", server.base_url());
    let flags = format!("--viewers {VIEWERS} --warmup 1 --duration 1 --json");

    let (report, json) = run(&url, &format!("{flags} --auth s3cret"));
    assert_every_viewer_played(&report, VIEWERS, &json);
    assert_eq!(report.auth_failures, 0, "{json}");

    // The token in the URL works too, and the DELETE keeps it.
    let (report, json) = run(&format!("{url}?token=s3cret"), &flags);
    assert_every_viewer_played(&report, VIEWERS, &json);

    for (extra, hint) in [("--auth nope", "refused"), ("", "--auth")] {
        let (refused, json) = run(&url, &format!("{flags} {extra}"));
        assert_eq!(refused.auth_failures, VIEWERS as u64, "{json}");
        assert_eq!(refused.errors, VIEWERS as u64, "{json}");
        assert_eq!(refused.viewing.frames_run, 0, "{json}");
        let error = refused.viewing.first_error.clone().unwrap_or_default();
        assert!(error.contains("401") && error.contains(hint), "{json}");
    }
}

#[test]
fn a_viewer_whose_camera_is_stopped_is_reported_stalled() {
    let server = camloop(&[]);
    let url = format!("{}/whep", server.base_url());
    let viewers = thread::spawn(move || {
        run(
            &url,
            "--viewers 1 --warmup 1 --duration 4 --stall-after 1 --json",
        )
    });
    // Once the peer is up and a second of media went to it (30 AUs are
    // more than 100 datagrams), the camera child stops for the rest of
    // the run.
    wait_for_state(&server, "webrtc_peers_connected", 1);
    wait_until(&server, "webrtc_packets_sent", |sent| sent > 100);
    thread::sleep(Duration::from_secs(1));
    let server_pid = server.pid() as i32;
    let child = match live_children(server_pid)[..] {
        [child] => child,
        ref children => panic!("one camera child, not {children:?}\n{}", server.log()),
    };
    signal_process(child, libc::SIGSTOP);
    while process_state(child) != Some('T') {
        thread::sleep(Duration::from_millis(5));
    }
    let (report, json) = viewers.join().expect("the run ended");
    signal_process(child, libc::SIGCONT);
    let viewing = &report.viewing;
    assert!(
        viewing.frames_run > 0,
        "frames came before the stop: {json}"
    );
    assert_eq!(viewing.stalled_viewers, 1, "{json}");
    assert_eq!(viewing.stalled_at_end, 1, "{json}");
    assert_eq!(viewing.dropped_viewers, 0, "a stall is not a drop: {json}");
    assert_eq!(report.ice_connected, 1, "{json}");
}

// ---------------------------------------------------------------------------
// The test's own WHEP server

/// An HTTP server that answers every request it reads (head and
/// `Content-Length` body) with `reply`, then keeps the connection open
/// until the client closes it. Returns its `/whep` URL.
fn fake_whep_server(reply: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("local addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut writer = stream;
                loop {
                    let mut length = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return; // closed
                        }
                        if let Some(value) =
                            line.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() || writer.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/whep")
}

#[test]
fn malformed_answers_are_errors_in_the_report_not_a_crash() {
    const VIEWERS: usize = 2;
    let cases: [(&[u8], &str); 4] = [
        (
            b"HTTP/1.1 201 Created\r\nLocation: whep/0123456789abcdef\r\n\
              Content-Type: application/sdp\r\nContent-Length: 13\r\n\r\nnot an answer",
            "SDP",
        ),
        (
            b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            "no Location",
        ),
        (
            b"\x00\x01garbage that is not HTTP\r\n\r\n",
            "bad response head",
        ),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nfull",
            "503",
        ),
    ];
    for (reply, expected) in cases {
        let url = fake_whep_server(reply);
        // Through the binary: the exit status and that nothing panicked.
        let output = Command::new(env!("CARGO_BIN_EXE_camloop"))
            .args(["load", "--whep", &url, "--viewers", &VIEWERS.to_string()])
            .args(["--warmup", "0", "--duration", "1", "--json"])
            .output()
            .expect("run camloop load");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the report is printed and the run exits 0: {stdout}\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stdout.contains(&format!("\"whep_errors\":{VIEWERS}")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("\"errors\":{VIEWERS}")),
            "{stdout}"
        );
        assert!(stdout.contains("\"frames_run\":0"), "{stdout}");
        let first_error = stdout.split("\"first_error\":").nth(1).unwrap_or_default();
        assert!(first_error.contains(expected), "{expected}: {stdout}");
    }
}

#[test]
fn no_server_at_all_fails_the_run() {
    // A port nothing listens on: no viewer's connection opens.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/whep", listener.local_addr().expect("addr"));
    drop(listener);
    let error = run_whep_viewers(&whep_args(&url, "--viewers 2 --warmup 0 --duration 1"))
        .expect_err("nothing to connect to");
    assert!(error.contains("no viewer could connect"), "{error}");
}
