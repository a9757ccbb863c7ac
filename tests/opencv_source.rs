//! The OpenCV source against a real clip written by OpenCV: frame size,
//! fresh frames, looping, errors, JPEG encoding and the thread count.
//! No camera is needed; the V4L2-only paths (mode requests, MJPEG
//! passthrough) are covered by unit tests of their parts.

#![cfg(feature = "opencv")]

#[path = "support/clip.rs"]
mod clip;

use std::path::Path;
use std::process::Command;

use camloop::camera::opencv_source::{
    encode_bgr, single_threaded_opencv, OpenCvOptions, OpenCvSource, OpenCvTarget,
};
use camloop::camera::{FrameData, FrameSource};
use clip::{CLIP_FRAMES, CLIP_HEIGHT, CLIP_WIDTH};

fn options() -> OpenCvOptions {
    OpenCvOptions {
        width: 640,
        height: 480,
        fps: 30,
        fourcc: None,
    }
}

fn opened(path: &Path) -> OpenCvSource {
    let mut source = OpenCvSource::new(OpenCvTarget::File(path.to_path_buf()), options());
    source.open().expect("open clip");
    source
}

/// Grabs and retrieves one frame and reads its index from the pixels.
fn next_index(source: &mut OpenCvSource) -> u32 {
    source.grab().expect("grab");
    let frame = source.retrieve().expect("retrieve");
    assert_eq!((frame.width, frame.height), (CLIP_WIDTH, CLIP_HEIGHT));
    let FrameData::Bgr(bgr) = frame.data else {
        panic!("a file gives pixels, not passthrough JPEG");
    };
    clip::read_index_from_bgr(frame.width, frame.height, &bgr).expect("frame shows its index")
}

#[test]
fn clip_frames_have_the_clip_size_and_count_up() {
    let dir = clip::TempDir::new("opencv-count");
    let mut source = opened(&clip::write_test_clip(dir.path()));
    let indices: Vec<u32> = (0..CLIP_FRAMES).map(|_| next_index(&mut source)).collect();
    assert_eq!(indices, (0..CLIP_FRAMES).collect::<Vec<_>>());
}

#[test]
fn grab_without_retrieve_skips_frames() {
    let dir = clip::TempDir::new("opencv-skip");
    let mut source = opened(&clip::write_test_clip(dir.path()));
    assert_eq!(next_index(&mut source), 0);
    source.grab().expect("grab");
    source.grab().expect("grab");
    assert_eq!(next_index(&mut source), 3);
}

#[test]
fn clip_loops_back_to_the_first_frame_after_the_last() {
    let dir = clip::TempDir::new("opencv-loop");
    let mut source = opened(&clip::write_test_clip(dir.path()));
    for _ in 0..CLIP_FRAMES {
        source.grab().expect("grab");
    }
    for round in 0..2 {
        let indices: Vec<u32> = (0..CLIP_FRAMES).map(|_| next_index(&mut source)).collect();
        assert_eq!(
            indices,
            (0..CLIP_FRAMES).collect::<Vec<_>>(),
            "round {round}"
        );
    }
}

#[test]
fn reopening_starts_the_clip_again() {
    let dir = clip::TempDir::new("opencv-reopen");
    let mut source = opened(&clip::write_test_clip(dir.path()));
    assert_eq!(next_index(&mut source), 0);
    assert_eq!(next_index(&mut source), 1);
    source.close();
    assert!(source.grab().is_err(), "a closed source cannot grab");
    source.open().expect("reopen");
    assert_eq!(next_index(&mut source), 0);
}

#[test]
fn missing_file_fails_to_open_naming_the_path() {
    let dir = clip::TempDir::new("opencv-missing");
    let path = dir.path().join("no-such-clip.avi");
    let mut source = OpenCvSource::new(OpenCvTarget::File(path.clone()), options());
    let err = source.open().expect_err("missing file");
    assert!(err.0.contains(&path.display().to_string()), "{err}");
    assert!(err.0.contains("No such file"), "{err}");
}

#[test]
fn a_file_that_is_not_a_video_fails_to_open() {
    let dir = clip::TempDir::new("opencv-garbage");
    let path = dir.path().join("notes.avi");
    std::fs::write(&path, b"this is not a video").expect("write");
    let mut source = OpenCvSource::new(OpenCvTarget::File(path.clone()), options());
    let err = source.open().expect_err("not a video");
    assert!(err.0.contains(&path.display().to_string()), "{err}");
}

#[test]
fn a_file_that_appears_later_opens_on_retry() {
    let dir = clip::TempDir::new("opencv-later");
    let path = dir.path().join("clip.avi");
    let mut source = OpenCvSource::new(OpenCvTarget::File(path.clone()), options());
    assert!(source.open().is_err());
    clip::write_clip(&path, CLIP_WIDTH, CLIP_HEIGHT, 10, 3).expect("write clip");
    source.open().expect("open once the file exists");
    assert_eq!(next_index(&mut source), 0);
}

#[test]
fn retrieve_before_any_grab_is_an_error() {
    let dir = clip::TempDir::new("opencv-nograb");
    let mut source = opened(&clip::write_test_clip(dir.path()));
    assert!(source.retrieve().is_err());
}

#[test]
fn a_file_source_is_named_after_its_path_and_never_passes_jpeg_through() {
    let dir = clip::TempDir::new("opencv-name");
    let path = clip::write_test_clip(dir.path());
    let source = opened(&path);
    assert_eq!(source.name(), format!("opencv:{}", path.display()));
    assert!(!source.is_passthrough());
    assert!(source.wants_idle_grabs());
}

#[test]
fn encode_bgr_gives_a_jpeg_opencv_reads_back_at_its_size() {
    let frame = clip::draw_index_frame(640, 480, 0b1010_0110).expect("draw");
    let bgr = opencv::core::MatTraitConstManual::data_bytes(&frame)
        .expect("pixels")
        .to_vec();
    let jpeg = encode_bgr(640, 480, &bgr, 80).expect("encode");
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "starts with SOI");
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9], "ends with EOI");
    let (width, height, _) = clip::decode_jpeg(&jpeg).expect("decodes");
    assert_eq!((width, height), (640, 480));
    assert_eq!(clip::read_index_from_jpeg(&jpeg), Some(0b1010_0110));
}

#[test]
fn encode_bgr_rejects_a_buffer_of_the_wrong_size() {
    let err = encode_bgr(4, 4, &[0u8; 47], 80).expect_err("one byte short");
    assert!(err.0.contains("4x4"), "{err}");
}

#[test]
fn lower_quality_gives_a_smaller_jpeg() {
    let frame = clip::draw_index_frame(320, 240, 77).expect("draw");
    let bgr = opencv::core::MatTraitConstManual::data_bytes(&frame)
        .expect("pixels")
        .to_vec();
    let high = encode_bgr(320, 240, &bgr, 95).expect("encode");
    let low = encode_bgr(320, 240, &bgr, 20).expect("encode");
    assert!(low.len() < high.len(), "{} >= {}", low.len(), high.len());
}

/// Set in the child process that does the actual thread counting.
const THREAD_PROBE_CLIP: &str = "CAMLOOP_THREAD_PROBE_CLIP";

/// The test harness runs tests on threads of its own, so the count is taken
/// in a child process running only this test, and compared before and after
/// OpenCV did its work: what must not grow is the number OpenCV adds.
#[test]
fn reading_a_clip_starts_no_threads() {
    match std::env::var_os(THREAD_PROBE_CLIP) {
        Some(clip_path) => count_threads_while_reading(Path::new(&clip_path)),
        None => {
            let dir = clip::TempDir::new("opencv-threads");
            let path = clip::write_test_clip(dir.path());
            let exe = std::env::current_exe().expect("test binary path");
            let output = Command::new(exe)
                .args([
                    "reading_a_clip_starts_no_threads",
                    "--exact",
                    "--test-threads=1",
                    "--nocapture",
                ])
                .env(THREAD_PROBE_CLIP, &path)
                .output()
                .expect("run the probe");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "probe failed:\n{stdout}\n{stderr}");
            assert!(stdout.contains("1 passed"), "probe did not run:\n{stdout}");
        }
    }
}

fn count_threads_while_reading(path: &Path) {
    single_threaded_opencv();
    let before = threads_in_this_process();
    let mut source = opened(path);
    for _ in 0..CLIP_FRAMES * 2 {
        source.grab().expect("grab");
        let frame = source.retrieve().expect("retrieve");
        if let FrameData::Bgr(bgr) = &frame.data {
            encode_bgr(frame.width, frame.height, bgr, 80).expect("encode");
        }
    }
    let during = threads_in_this_process();
    source.close();
    println!("threads: {before} before opening, {during} after reading and encoding");
    assert_eq!(during, before, "OpenCV or FFmpeg started threads");
}

fn threads_in_this_process() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("Threads: line")
}
