//! Fuzzes the H.264 Annex-B splitter with arbitrary bytes, read sizes and
//! AU caps. The harness is shared with `tests/fuzz_corpus.rs`; see
//! `fuzz/harness.rs`.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::annexb_splitter(data));
