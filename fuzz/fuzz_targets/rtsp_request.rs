//! Fuzzes the RTSP reader (requests with interleaved binary frames) and the
//! parsers of a request's URL and `Transport`, with arbitrary bytes and
//! read sizes. The harness is shared with `tests/fuzz_corpus.rs`; see
//! `fuzz/harness.rs`.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::rtsp_request(data));
