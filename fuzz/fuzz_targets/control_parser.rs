//! Fuzzes the control-protocol decoder with arbitrary bytes and read sizes.
//! The harness is shared with `tests/fuzz_corpus.rs`; see `fuzz/harness.rs`.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::control_parser(data));
