//! The fuzz harnesses, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and by `tests/fuzz_corpus.rs`, which replays
//! the corpus as ordinary tests. Both include this file with
//! `#[path = ...] mod harness;`, so a corpus file means the same thing to
//! the fuzzer and to `cargo test`.
//!
//! Input layout (kept printable, so seed files are easy to write by hand):
//!
//! - `control_parser`: byte 0 picks the framing (`byte % 3`: 0 auto, 1 line,
//!   2 raw), byte 1 seeds the read sizes, the rest is the byte stream.
//! - `http_request`: byte 0 seeds the read sizes, the rest is the stream.
//! - `mjpeg_splitter`: byte 0 picks the splitter (`byte % 3`: 0 detects the
//!   framing, 1 and 2 are told the boundary `camloopframe` or `--ffmpeg`),
//!   byte 1 seeds the read sizes, byte 2 picks the frame cap (even: the
//!   default, odd: 32 times the byte, so `a` is 3104 bytes), the rest is
//!   the stream.
//!
//! Each harness cuts the stream into reads the way a socket might, feeds
//! them to the sans-IO parser the server uses, and panics when an invariant
//! the event loop relies on breaks. Besides "no panic", two oracles need no
//! second implementation: in line framing, and for HTTP, the result must not
//! depend on how the stream was cut, so a cut stream is compared with the
//! same stream fed whole.

use camloop::http::request::{
    HttpError, RequestHead, RequestReader, MAX_BODY_BYTES, MAX_HEAD_BYTES,
};
use camloop::http::{route, Route};
use camloop::mjpeg::multipart::{MAX_BOUNDARY_LINE_BYTES, MAX_PART_HEAD_BYTES};
use camloop::mjpeg::{
    jpeg_end, parse_header, Frame, Splitter, SplitterStats, DEFAULT_MAX_FRAME_BYTES,
};
use camloop::protocol::{
    DecodeError, Decoder, Framing, Request, Terminator, MAX_LINE_BYTES, MAX_RAW_MESSAGE_BYTES,
};

/// Largest read the harnesses simulate; the server reads at most 64 KiB at
/// once, and smaller reads find more chunking bugs.
const MAX_READ_BYTES: usize = 4096;

/// Read sizes from a one-byte seed: a small xorshift, so the same corpus
/// file always means the same cut. Sizes are 1 to [`MAX_READ_BYTES`], small
/// ones far more often.
struct ReadSizes(u32);

impl ReadSizes {
    fn new(seed: u8) -> Self {
        ReadSizes(u32::from(seed).wrapping_mul(2_654_435_761) | 1)
    }

    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        match self.0 % 4 {
            0 => 1,
            1 => 1 + (self.0 >> 8) as usize % 16,
            2 => 1 + (self.0 >> 8) as usize % 512,
            _ => 1 + (self.0 >> 8) as usize % MAX_READ_BYTES,
        }
    }
}

// ---------------------------------------------------------------------------
// The control protocol

/// What decoding a stream yields: the requests, and the error that ended it.
type Decoded = (Vec<Request>, Option<DecodeError>);

/// Fuzzes [`Decoder`] as the event loop drives it: each read is at most
/// `max_read_bytes()` long, and after an error it is not fed again.
pub fn control_parser(data: &[u8]) {
    let [framing_byte, seed, stream @ ..] = data else {
        return;
    };
    let framing = match framing_byte % 3 {
        0 => Framing::Auto,
        1 => Framing::Line,
        _ => Framing::Raw,
    };
    let mut sizes = ReadSizes::new(*seed);
    let cut = decode_in_reads(framing, stream, &mut sizes);
    if framing == Framing::Line {
        let whole = decode_in_reads(framing, stream, &mut Whole);
        assert_eq!(cut, whole, "line framing must not depend on the read sizes");
    }
}

/// Something that says how long the next read is.
trait NextRead {
    fn next(&mut self) -> usize;
}

impl NextRead for ReadSizes {
    fn next(&mut self) -> usize {
        ReadSizes::next(self)
    }
}

/// Everything in one read (still capped by the decoder's own limit).
struct Whole;

impl NextRead for Whole {
    fn next(&mut self) -> usize {
        usize::MAX
    }
}

fn decode_in_reads(framing: Framing, mut stream: &[u8], sizes: &mut dyn NextRead) -> Decoded {
    let mut decoder = Decoder::new(framing);
    let mut requests = Vec::new();
    while !stream.is_empty() {
        let limit = decoder.max_read_bytes().unwrap_or(usize::MAX);
        let (read, rest) = stream.split_at(sizes.next().min(limit).min(stream.len()));
        stream = rest;
        let was_line_mode = decoder.is_line_mode();
        let before = requests.len();
        let result = decoder.feed(read, &mut requests);
        let new = &requests[before..];
        if !decoder.is_line_mode() {
            // A raw read is exactly one message, and raw replies are bare.
            assert!(read.len() <= MAX_RAW_MESSAGE_BYTES);
            assert_eq!(new.len(), 1, "one raw read, one request");
            assert_eq!(new[0].terminator, Terminator::Bare);
        } else {
            // Auto framing switches for good, on a read holding a newline.
            assert!(was_line_mode || framing == Framing::Auto);
            assert!(was_line_mode || read.contains(&b'\n'));
            // At most one request per newline, and each with a line ending.
            let newlines = read.iter().filter(|&&b| b == b'\n').count();
            assert!(new.len() <= newlines);
            assert!(result.is_err() || new.len() == newlines);
            assert!(new.iter().all(|r| r.terminator != Terminator::Bare));
        }
        if let Err(error) = result {
            return (requests, Some(error));
        }
        // What is held between reads is one unfinished line, within the cap
        // (+1 for a `\r` that may still turn out to end it).
        assert!(decoder.buffered_bytes() <= MAX_LINE_BYTES + 1);
    }
    (requests, None)
}

// ---------------------------------------------------------------------------
// HTTP

/// What the server sees of one request: its route and its head, or the
/// error that ended the connection.
type HttpOutcome = Result<(Route, RequestHead), HttpError>;

/// Fuzzes [`RequestReader`] and [`route`] as the event loop drives them:
/// push one read, take requests out until `None`, route each one.
pub fn http_request(data: &[u8]) {
    let [seed, stream @ ..] = data else {
        return;
    };
    let cut = requests_in_reads(stream, &mut ReadSizes::new(*seed));
    let whole = requests_in_reads(stream, &mut Whole);
    assert_eq!(cut, whole, "HTTP parsing must not depend on the read sizes");
}

fn requests_in_reads(mut stream: &[u8], sizes: &mut dyn NextRead) -> Vec<HttpOutcome> {
    let mut reader = RequestReader::new();
    let mut outcomes = Vec::new();
    while !stream.is_empty() {
        let (read, rest) = stream.split_at(sizes.next().min(stream.len()));
        stream = rest;
        reader.push(read);
        while let Some(outcome) = reader.next_request() {
            let failed = outcome.is_err();
            outcomes.push(outcome.map(|head| {
                check_head(&head);
                (route(&head), head)
            }));
            if failed {
                assert!(reader.next_request().is_none(), "a failed reader is spent");
                return outcomes;
            }
        }
        // Between reads at most one unfinished head is held, and the
        // reader refuses it (431) before it reaches the head cap.
        assert!(reader.buffered_bytes() < MAX_HEAD_BYTES);
    }
    outcomes
}

/// What the rest of the server may assume about a parsed head.
fn check_head(head: &RequestHead) {
    assert!(head.path.starts_with('/'), "path {:?}", head.path);
    assert!(head.content_length <= MAX_BODY_BYTES);
}

// ---------------------------------------------------------------------------
// MJPEG

/// Fuzzes [`Splitter`] as a stream reader drives it: push one read, take
/// frames out until `None`. What comes out must be JPEGs within the cap,
/// every byte must be accounted for, the buffer must stay bounded, and the
/// result must not depend on how the stream was cut.
pub fn mjpeg_splitter(data: &[u8]) {
    let [mode, seed, cap_byte, stream @ ..] = data else {
        return;
    };
    let cap = if cap_byte % 2 == 0 {
        DEFAULT_MAX_FRAME_BYTES
    } else {
        32 * usize::from(*cap_byte)
    };
    let new_splitter = || match mode % 3 {
        0 => Splitter::new(cap),
        1 => Splitter::with_boundary("camloopframe", cap),
        _ => Splitter::with_boundary("--ffmpeg", cap),
    };
    let cut = frames_in_reads(new_splitter(), stream, &mut ReadSizes::new(*seed), cap);
    let whole = frames_in_reads(new_splitter(), stream, &mut Whole, cap);
    assert!(cut == whole, "splitting must not depend on the read sizes");
    let (frames, stats) = cut;
    assert_eq!(stats.frames, frames.len() as u64);
    assert_eq!(
        stats.frame_bytes + stats.framing_bytes + stats.skipped_bytes,
        stream.len() as u64,
        "every byte is a frame's, framing or skipped: {stats:?}"
    );
    for frame in &frames {
        check_frame(frame, cap);
    }
}

fn frames_in_reads(
    mut splitter: Splitter,
    mut stream: &[u8],
    sizes: &mut dyn NextRead,
    cap: usize,
) -> (Vec<Frame>, SplitterStats) {
    let mut frames = Vec::new();
    while !stream.is_empty() {
        let (read, rest) = stream.split_at(sizes.next().min(stream.len()));
        stream = rest;
        splitter.push(read);
        while let Some(frame) = splitter.next_frame() {
            frames.push(frame);
        }
        // At most one unfinished frame (and the boundary line after it) or
        // part head is held.
        let bound = cap.max(MAX_PART_HEAD_BYTES) + MAX_BOUNDARY_LINE_BYTES;
        assert!(splitter.buffered_bytes() <= bound);
    }
    splitter.finish();
    assert_eq!(splitter.buffered_bytes(), 0);
    (frames, splitter.stats())
}

/// What a consumer of the splitter may assume about a frame.
fn check_frame(frame: &Frame, cap: usize) {
    assert!(frame.jpeg.len() <= cap);
    let header = parse_header(&frame.jpeg).expect("a frame has a JPEG header");
    assert_eq!((frame.width, frame.height), (header.width, header.height));
    // A frame found by its EOI ends exactly there; only a part with a
    // Content-Length is taken as long as it says.
    let by_length = frame
        .part
        .as_ref()
        .is_some_and(|part| part.content_length.is_some());
    if !by_length {
        assert_eq!(jpeg_end(&frame.jpeg), Some(frame.jpeg.len()));
    }
}
