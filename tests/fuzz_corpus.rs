//! Replays every file of the fuzz corpus (`fuzz/corpus/<target>/`) through
//! the same harness the cargo-fuzz targets run (`fuzz/harness.rs`), so what
//! the fuzzer once found stays fixed without a nightly toolchain or
//! cargo-fuzz. Run the fuzzers themselves with `scripts/fuzz.sh`.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

/// The files of one target's corpus, sorted so failures are reproducible.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no seed files", dir.display());
    files
}

/// Runs `harness` on every corpus file of `target` and reports every file
/// that fails, not just the first.
fn replay(target: &str, harness: fn(&[u8])) {
    let failures: Vec<String> = corpus_files(target)
        .into_iter()
        .filter_map(|path| {
            let data = fs::read(&path).expect("read corpus file");
            panic::catch_unwind(|| harness(&data))
                .err()
                .map(|_| path.display().to_string())
        })
        .collect();
    assert!(failures.is_empty(), "failing corpus files: {failures:#?}");
}

#[test]
fn control_parser_corpus_replays_cleanly() {
    replay("control_parser", harness::control_parser);
}

#[test]
fn http_request_corpus_replays_cleanly() {
    replay("http_request", harness::http_request);
}

#[test]
fn mjpeg_splitter_corpus_replays_cleanly() {
    replay("mjpeg_splitter", harness::mjpeg_splitter);
}

#[test]
fn annexb_splitter_corpus_replays_cleanly() {
    replay("annexb_splitter", harness::annexb_splitter);
}

#[test]
fn rtsp_request_corpus_replays_cleanly() {
    replay("rtsp_request", harness::rtsp_request);
}

#[test]
fn webrtc_signalling_corpus_replays_cleanly() {
    replay("webrtc_signalling", harness::webrtc_signalling);
}

#[test]
fn every_corpus_directory_has_a_replay_test() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut targets: Vec<String> = fs::read_dir(corpus)
        .expect("fuzz/corpus")
        .map(|entry| {
            entry
                .expect("corpus dir")
                .file_name()
                .into_string()
                .unwrap()
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "annexb_splitter",
            "control_parser",
            "http_request",
            "mjpeg_splitter",
            "rtsp_request",
            "webrtc_signalling"
        ]
    );
}
