//! Fuzzes the WebRTC signalling parsers (camera-streamer's and OctoPrint's
//! JSON, SDP offers, WHEP trickle-ICE fragments, paths and `If-Match`)
//! with arbitrary bytes. The harness is shared with `tests/fuzz_corpus.rs`;
//! see `fuzz/harness.rs`.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::webrtc_signalling(data));
