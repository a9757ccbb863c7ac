//! Fuzzes the MJPEG splitter with arbitrary bytes, read sizes, framings and
//! frame caps. The harness is shared with `tests/fuzz_corpus.rs`; see
//! `fuzz/harness.rs`.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::mjpeg_splitter(data));
