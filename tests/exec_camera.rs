//! `--camera exec:…`: a child process writing MJPEG to a pipe in the
//! server's poll. Real ffmpeg replays a clip the test encodes first; small
//! `sh` children misbehave on purpose. While a child is stopped or silent,
//! the assertions are about order ("the reply came while the child was
//! still stopped"), never about how long something took.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use camloop::mjpeg::splitter::Splitter;
use support::{
    live_children, process_state, signal_process, Server, ServerBuilder, TempDir, TIMEOUT,
};

/// Encodes a 2 s, 320x240, 15 fps MJPEG clip (each frame a complete JPEG,
/// concatenated) with ffmpeg's test pattern, and returns it with its frames.
fn make_clip(dir: &Path) -> (PathBuf, Vec<Vec<u8>>) {
    let clip = dir.join("clip.mjpeg");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc=size=320x240:rate=15", "-frames:v", "30"])
        .args(["-c:v", "mjpeg", "-q:v", "5", "-f", "mjpeg"])
        .arg(&clip)
        .status()
        .expect("ffmpeg must be installed (scripts/setup.sh test installs it)");
    assert!(status.success(), "ffmpeg could not encode the test clip");
    let mut splitter = Splitter::new(1 << 22);
    splitter.push(&fs::read(&clip).unwrap());
    let frames: Vec<Vec<u8>> = std::iter::from_fn(|| splitter.next_frame())
        .map(|f| f.jpeg)
        .collect();
    assert_eq!(frames.len(), 30, "the clip has its 30 frames");
    (clip, frames)
}

/// ffmpeg replaying `clip` in real time, forever (well, 300 s), without
/// re-encoding: `-c copy` keeps ffmpeg's encoder off the test machine's cores.
fn replay(clip: &Path) -> String {
    format!(
        "exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i {} -c copy -f mjpeg -t 300 -",
        clip.display()
    )
}

/// The JPEG without camloop's stamp: the COM segment right after SOI.
fn unstamped(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[2..4], [0xFF, 0xFE], "stamped right after SOI");
    let length = usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    let mut plain = jpeg[..2].to_vec();
    plain.extend_from_slice(&jpeg[4 + length..]);
    plain
}

/// The one child of `server` (waits until there is exactly one, alive and
/// not `skip`), for up to [`TIMEOUT`].
fn camera_child(server: &Server, skip: Option<i32>) -> i32 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let children: Vec<i32> = live_children(server.pid())
            .into_iter()
            .filter(|&pid| Some(pid) != skip)
            .collect();
        if let [child] = children[..] {
            return child;
        }
        assert!(
            Instant::now() < deadline,
            "children: {children:?}\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn exec_server(camera: &str, extra: &[&str]) -> Server {
    ServerBuilder::new()
        .framing("line")
        .camera(camera)
        .args(extra)
        .spawn()
}

#[test]
fn a_snapshot_from_ffmpeg_is_one_of_the_clips_frames_plus_the_stamp() {
    let dir = TempDir::new("exec-clip");
    let (clip, frames) = make_clip(dir.path());
    let server = exec_server(&replay(&clip), &[]);
    let mut client = server.client();
    let capture = client.capture();
    assert_eq!((capture.width, capture.height), (320, 240));
    let saved = fs::read(server.snapshot_dir().join("pic2.jpg")).unwrap();
    assert!(
        frames.contains(&unstamped(&saved)),
        "the bytes ffmpeg wrote, untouched"
    );
    let jpeg = client.frame();
    assert!(frames.contains(&unstamped(&jpeg)));
    let stats = client.stats();
    assert_eq!(
        stats.get("frames_encoded"),
        0,
        "passed through, never re-encoded"
    );
    assert!(stats.get("frames_passthrough") >= 1);
}

#[test]
fn a_killed_child_is_respawned_and_counted() {
    let dir = TempDir::new("exec-kill");
    let (clip, _) = make_clip(dir.path());
    let server = exec_server(&replay(&clip), &["--camera-timeout", "2"]);
    let mut client = server.client();
    client.capture();
    let first = camera_child(&server, None);
    signal_process(first, libc::SIGKILL);
    let second = camera_child(&server, Some(first));
    assert_ne!(first, second);
    let deadline = Instant::now() + TIMEOUT;
    while client.stats().get("camera_restarts") < 1 {
        assert!(Instant::now() < deadline, "camera_restarts never rose");
        thread::sleep(Duration::from_millis(20));
    }
    let capture = client.capture();
    assert_eq!(capture.width, 320, "frames flow again");
}

#[test]
fn a_stopped_child_gets_captures_an_error_keeps_pings_answered_and_is_replaced() {
    let dir = TempDir::new("exec-stop");
    let (clip, _) = make_clip(dir.path());
    let server = exec_server(&replay(&clip), &["--camera-timeout", "2"]);
    let mut client = server.client();
    client.capture();
    let child = camera_child(&server, None);
    signal_process(child, libc::SIGSTOP);
    while process_state(child) != Some('T') {
        thread::sleep(Duration::from_millis(5));
    }
    let mut others: Vec<_> = (0..3).map(|_| server.client()).collect();
    client.send("c\n");
    // While the child is stopped, every other client is answered.
    for other in &mut others {
        assert_eq!(other.request("ping"), "PONG");
    }
    assert_eq!(
        process_state(child),
        Some('T'),
        "still stopped while the pings came back"
    );
    // The answer is the camera timeout: no frame came after the stop, so the
    // server answered without the stopped child's help.
    let reply = client.read_line();
    assert!(
        reply.starts_with("ERR camera: ") && reply.contains("no frame for 2 s"),
        "{reply}"
    );
    let replacement = camera_child(&server, Some(child));
    assert_ne!(replacement, child);
    assert!(client.stats().get("camera_restarts") >= 1);
    assert_eq!(client.capture().width, 320, "the new child delivers");
}

#[test]
fn sigterm_and_kill_9_of_camloop_leave_no_child() {
    let dir = TempDir::new("exec-exit");
    let (clip, _) = make_clip(dir.path());
    for signal_to_server in [libc::SIGTERM, libc::SIGKILL] {
        let mut server = exec_server(&replay(&clip), &[]);
        server.client().capture();
        let child = camera_child(&server, None);
        server.signal(signal_to_server);
        let status = server.wait_for_exit();
        if signal_to_server == libc::SIGTERM {
            assert!(status.success(), "graceful exit 0 on SIGTERM: {status:?}");
        }
        let deadline = Instant::now() + TIMEOUT;
        while !matches!(process_state(child), None | Some('Z')) {
            assert!(Instant::now() < deadline, "child {child} outlived camloop");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_child_that_writes_garbage_gives_errors_not_frames_and_is_restarted() {
    let garbage = "exec:sh -c 'while true; do echo not a jpeg; sleep 0.05; done'";
    let server = exec_server(garbage, &["--camera-timeout", "1"]);
    let mut client = server.client();
    let reply = client.request("c");
    assert!(reply.starts_with("ERR camera: "), "{reply}");
    assert_eq!(client.request("ping"), "PONG");
    let deadline = Instant::now() + TIMEOUT;
    while client.stats().get("camera_restarts") < 1 {
        assert!(
            Instant::now() < deadline,
            "the silent child was never replaced"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(client.stats().get("frames_grabbed"), 0);
}

#[test]
fn a_child_that_exits_at_once_is_an_error_and_restarted_with_backoff() {
    let server = exec_server("exec:true", &["--camera-timeout", "1"]);
    let mut client = server.client();
    let reply = client.request("c");
    assert!(reply.starts_with("ERR camera: "), "{reply}");
    let deadline = Instant::now() + TIMEOUT;
    while client.stats().get("camera_restarts") < 2 {
        assert!(Instant::now() < deadline, "never restarted");
        thread::sleep(Duration::from_millis(50));
    }
    let stats = client.stats();
    assert!(
        stats.text("camera").starts_with("exec:true"),
        "{:?}",
        stats.0
    );
    assert_eq!(client.request("ping"), "PONG");
    // A process closes its descriptors before it becomes a zombie, so the
    // loop may see the pipe's EOF before the exit status exists: both
    // words are true, and either names the command as the cause.
    let log = server.log();
    assert!(
        log.contains("exec:true: the command exited")
            || log.contains("exec:true: the command closed its output"),
        "{log}"
    );
}

#[test]
fn a_child_that_writes_one_frame_and_stops_serves_no_stale_frame() {
    let dir = TempDir::new("exec-one");
    let (_, frames) = make_clip(dir.path());
    let one = dir.path().join("one.jpg");
    fs::write(&one, &frames[0]).unwrap();
    let camera = format!("exec:sh -c 'cat {}; exec sleep 600'", one.display());
    let server = exec_server(&camera, &["--camera-timeout", "1"]);
    let mut client = server.client();
    let deadline = Instant::now() + TIMEOUT;
    while client.stats().get("frames_grabbed") < 1 {
        assert!(Instant::now() < deadline, "the one frame never arrived");
        thread::sleep(Duration::from_millis(20));
    }
    // The frame came before the request: a capture must not use it.
    let reply = client.request("c");
    assert!(reply.starts_with("ERR camera: "), "{reply}");
    assert!(
        server.snapshot_entries().is_empty(),
        "no stale snapshot written"
    );
}
