//! The OpenCV backend end to end: a real `camloop serve --camera <clip>`
//! (a clip OpenCV's `VideoWriter` writes, each frame's index drawn as bars)
//! checked over loopback sockets. Counts and contents only, no timing.

#![cfg(feature = "opencv")]

#[path = "support/clip.rs"]
mod clip;
mod support;

use std::fs;
use std::thread;
use std::time::Duration;

use clip::{read_index_from_jpeg, write_test_clip, CLIP_FRAMES, CLIP_HEIGHT, CLIP_WIDTH};
use support::{Capture, ServerBuilder, TempDir};

/// Pause between polls while waiting for the camera to come back; only the
/// number of polls is bounded, nothing asserts how long it took.
const RECOVERY_POLL: Duration = Duration::from_millis(200);
const RECOVERY_POLLS_MAX: usize = 100;

fn clip_server(dir: &TempDir) -> support::Server {
    let clip = write_test_clip(dir.path());
    ServerBuilder::new()
        .camera(clip.to_str().expect("utf-8 temp path"))
        .framing("line")
        .spawn()
}

#[test]
fn snapshots_of_a_clip_are_valid_jpegs_of_its_size_with_increasing_indices() {
    let dir = TempDir::new("clip-snapshots");
    let server = clip_server(&dir);
    let mut client = server.client();
    let mut indices = Vec::new();
    for _ in 0..2 {
        let capture = Capture::parse(&client.request("c"));
        assert_eq!((capture.width, capture.height), (CLIP_WIDTH, CLIP_HEIGHT));
        let jpeg = fs::read(server.snapshot_dir().join(&capture.file)).expect("snapshot file");
        assert_eq!(jpeg.len(), capture.bytes);
        let image = support::decode_jpeg(&jpeg);
        assert_eq!(
            (u32::from(image.width), u32::from(image.height)),
            (CLIP_WIDTH, CLIP_HEIGHT)
        );
        indices.push(read_index_from_jpeg(&jpeg).expect("the clip's index bars"));
        thread::sleep(Duration::from_millis(300));
    }
    // Fresh frames, not the first frame over and over (the classic bug).
    assert!(indices[1] > indices[0], "indices {indices:?} must increase");
}

#[test]
fn the_clip_loops_at_its_end() {
    let dir = TempDir::new("clip-loop");
    let server = clip_server(&dir);
    let mut client = server.client();
    // Every `frame` grabs a new frame, so 2.5 clip lengths of requests must
    // run past the end at least twice.
    let indices: Vec<u32> = (0..CLIP_FRAMES * 5 / 2)
        .map(|_| read_index_from_jpeg(&client.frame()).expect("index bars"))
        .collect();
    assert!(indices.iter().all(|&i| i < CLIP_FRAMES), "{indices:?}");
    let wraps = indices.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(
        wraps >= 2,
        "expected the clip to loop twice, indices {indices:?}"
    );
}

#[test]
fn the_server_stays_one_thread_with_opencv_reading_a_clip() {
    let dir = TempDir::new("clip-threads");
    let server = clip_server(&dir);
    let mut client = server.client();
    for _ in 0..5 {
        client.frame();
    }
    Capture::parse(&client.request("c"));
    let status = fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("status");
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .map(|n| n.trim().to_string());
    assert_eq!(threads.as_deref(), Some("1"), "{status}");
}

#[test]
fn a_missing_clip_gives_err_camera_others_keep_working_and_it_recovers_when_created() {
    let dir = TempDir::new("clip-missing");
    let clip_path = dir.path().join("late.avi");
    let server = ServerBuilder::new()
        .camera(clip_path.to_str().expect("utf-8 temp path"))
        .framing("line")
        .spawn();
    let mut capturer = server.client();
    let mut other = server.client();
    let reply = capturer.request("c");
    assert!(reply.starts_with("ERR camera: "), "{reply}");
    assert!(
        reply.contains("late.avi"),
        "the error names the file: {reply}"
    );
    assert_eq!(other.request("ping"), "PONG");
    assert_eq!(other.stats().get("camera_ok"), 0);

    // Write the clip elsewhere and move it in whole, so the server never
    // opens a half-written file.
    let staging = TempDir::new("clip-staging");
    fs::rename(write_test_clip(staging.path()), &clip_path).expect("move clip in place");
    let recovered = (0..RECOVERY_POLLS_MAX).find_map(|_| {
        let reply = capturer.request("c");
        if reply.starts_with("OK ") {
            Some(reply)
        } else {
            thread::sleep(RECOVERY_POLL);
            None
        }
    });
    let reply = recovered.expect("the camera came back without a restart");
    assert_eq!(Capture::parse(&reply).width, CLIP_WIDTH);
    assert_eq!(other.stats().get("camera_ok"), 1);
    assert_eq!(other.request("ping"), "PONG");
}

/// A file's settings are the file's: OpenCV's controls are for devices.
#[test]
fn a_clip_has_no_camera_controls() {
    let dir = TempDir::new("clip-controls");
    let server = clip_server(&dir);
    let mut client = server.client();
    let refusal = "ERR camera: controls not supported by this source";
    assert_eq!(client.request("controls"), refusal);
    assert_eq!(client.request("set brightness 1"), refusal);
}
