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
//! - `mjpeg_splitter`: byte 0 picks the splitter (`byte % 4`: 0 detects the
//!   framing, 1 and 2 are told the boundary `camloopframe` or `--ffmpeg`,
//!   3 takes the stream's first line as an HTTP `Content-Type` value and
//!   makes the splitter as the `http://` camera and `camloop load --mjpeg`
//!   do), byte 1 seeds the read sizes, byte 2 picks the frame cap (even:
//!   the default, odd: 32 times the byte, so `a` is 3104 bytes), the rest
//!   is the stream (in mode 3: after that first line).
//! - `annexb_splitter`: byte 0 seeds the read sizes, byte 1 picks the AU cap
//!   (even: the default, odd: 32 times the byte), the rest is the H.264
//!   Annex-B stream.
//! - `rtsp_request`: byte 0 seeds the read sizes, the rest is what an RTSP
//!   client sends (requests with `$`-framed binary between them).
//! - `webrtc_signalling`: the whole input is a body for every signalling
//!   parser (camera-streamer's and OctoPrint's JSON, an SDP offer, a WHEP
//!   trickle-ICE fragment); its first line is also a request path (WHEP's
//!   and the JSON endpoint's routes) and an `If-Match` value, and its
//!   second line the `ETag` that value is checked against. A seed is a
//!   client's message as sent, or a path and two header values.
//!
//! Each harness cuts the stream into reads the way a socket might, feeds
//! them to the sans-IO parser the server uses, and panics when an invariant
//! the event loop relies on breaks. Besides "no panic", two oracles need no
//! second implementation: in line framing, and for HTTP, the result must not
//! depend on how the stream was cut, so a cut stream is compared with the
//! same stream fed whole. The MJPEG and H.264 splitters and the RTSP reader
//! get the same oracle.
//!
//! The harnesses reach the request vocabulary only through the public
//! functions the server calls ([`Decoder`] and its `parse_command`, and
//! [`route`]), and compare results only with `==`, so a request or route
//! added to those (`c NAME`, `/cam/NAME/stream.mjpg`, `?action=stream_1`)
//! is fuzzed as soon as it exists, without a change here. What they check
//! of the vocabulary is what the manual promises of every request
//! (docs/control-protocol.md and docs/http.md):
//!
//! - control: surrounding whitespace is ignored, and the keyword is
//!   case-insensitive (its arguments, such as a token, are not touched);
//! - HTTP: HEAD routes as GET does, unknown query parameters are ignored, a
//!   CORS preflight is an `OPTIONS` the route table answers with 405, and
//!   an `Authorization: Basic` header (any user name) carries exactly the
//!   password that was encoded into it (checked against a base64 encoder
//!   here, a second implementation).

use camloop::h264::nal::{
    is_corrupt_header, is_vcl, nal_unit_type, IDR_SLICE, PPS, SPS, START_CODE,
};
use camloop::h264::{
    detect_stream, parse_sps, AccessUnit, AnnexBSplitter, ParameterSets, Refusal, StreamKind,
    DEFAULT_MAX_AU_BYTES,
};
use camloop::http::request::{
    HttpError, Method, RequestHead, RequestReader, MAX_BODY_BYTES, MAX_HEAD_BYTES,
};
use camloop::http::{is_preflight, route, Route};
use camloop::mjpeg::multipart::{MAX_BOUNDARY_LINE_BYTES, MAX_PART_HEAD_BYTES};
use camloop::mjpeg::{
    boundary_from_content_type, jpeg_end, parse_header, Frame, Splitter, SplitterStats,
    DEFAULT_MAX_FRAME_BYTES,
};
use camloop::protocol::{
    parse_command, DecodeError, Decoder, Framing, Request, Terminator, MAX_LINE_BYTES,
    MAX_RAW_MESSAGE_BYTES,
};
use camloop::rtsp::request::{
    parse_target, parse_transport, LowerTransport, RtspEvent, RtspReader, RtspTarget,
    TransportSpec, MAX_BODY_BYTES as RTSP_MAX_BODY_BYTES, MAX_HEAD_BYTES as RTSP_MAX_HEAD_BYTES,
    MAX_INTERLEAVED_FRAME_BYTES,
};
use camloop::webrtc::offer::MAX_PAYLOAD_TYPE;
use camloop::webrtc::{
    check_offer, etag_matches, is_peer_id, offer_json, parse_trickle_fragment,
    parse_webrtc_message, webrtc_route, whep_location, whep_route, Candidate, SignallingError,
    WebrtcMessage, WhepRoute, MAX_BODY_BYTES as WEBRTC_MAX_BODY_BYTES, MAX_CANDIDATES_PER_MESSAGE,
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
    for line in stream.split(|&b| b == b'\n').take(64) {
        check_spellings(&line[..line.len().min(MAX_LINE_BYTES)]);
    }
}

/// What docs/control-protocol.md promises of every request: surrounding
/// whitespace is ignored, and the keyword (the first word) is
/// case-insensitive. Only the keyword's case is changed: an argument (a
/// token, a camera name) may be case-sensitive.
fn check_spellings(message: &[u8]) {
    let command = parse_command(message);
    let mut padded = b" \t".to_vec();
    padded.extend_from_slice(message);
    padded.extend_from_slice(b"\r ");
    assert_eq!(parse_command(&padded), command, "padded {message:?}");
    let trimmed = message.trim_ascii_start();
    let keyword_end = trimmed
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(trimmed.len());
    let start = message.len() - trimmed.len();
    for change in [<[u8]>::make_ascii_uppercase, <[u8]>::make_ascii_lowercase] {
        let mut respelt = message.to_vec();
        change(&mut respelt[start..start + keyword_end]);
        assert_eq!(parse_command(&respelt), command, "respelt {message:?}");
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
    for (route, head) in cut.iter().flatten() {
        check_route(*route, head);
    }
    check_basic_credentials(stream);
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
        // Between reads at most one unfinished request is held: a head the
        // reader refuses (431) before it reaches the head cap, or a whole
        // head with the part of its body (413 past its cap) that arrived.
        assert!(reader.buffered_bytes() < MAX_HEAD_BYTES + MAX_BODY_BYTES);
    }
    outcomes
}

/// What the rest of the server may assume about a parsed head.
fn check_head(head: &RequestHead) {
    assert!(head.path.starts_with('/'), "path {:?}", head.path);
    assert!(head.content_length <= MAX_BODY_BYTES);
    assert_eq!(head.body.len(), head.content_length, "the body comes whole");
}

/// What docs/http.md promises of every route: HEAD works where GET does,
/// unknown query parameters (and a `token`, which only authenticates) do
/// not change the route, and a preflight is an `OPTIONS` on a path the
/// table knows, which it answers with 405 for any other purpose.
fn check_route(routed: Route, head: &RequestHead) {
    let _ = routed.allows_cors();
    let with_method = |method| RequestHead {
        method,
        ..head.clone()
    };
    if head.method == Method::Get || head.method == Method::Head {
        assert_eq!(route(&with_method(Method::Get)), routed, "{head:?}");
        assert_eq!(route(&with_method(Method::Head)), routed, "{head:?}");
    }
    let mut extra = head.clone();
    extra
        .query
        .push(("camloop-fuzz-unknown".into(), "1".into()));
    extra.query.push(("token".into(), "x".into()));
    assert_eq!(route(&extra), routed, "unknown parameters: {head:?}");
    if is_preflight(head) {
        assert_eq!(head.method, Method::Options);
        assert!(
            matches!(routed, Route::MethodNotAllowed { .. }),
            "{routed:?}"
        );
    }
}

/// Sends the stream's bytes as HTTP Basic credentials (up to the first
/// `:` the user name, the rest the password, at most 1 KiB) and checks
/// that the parsed head offers exactly that password.
fn check_basic_credentials(stream: &[u8]) {
    let credentials = &stream[..stream.len().min(1024)];
    let colon = credentials.iter().position(|&b| b == b':');
    let (user, password) = match colon {
        Some(at) => (&credentials[..at], &credentials[at + 1..]),
        None => (&b"camloop"[..], credentials),
    };
    let mut pair = user.to_vec();
    pair.push(b':');
    pair.extend_from_slice(password);
    let mut request = b"GET /stream.mjpg HTTP/1.1\r\nHost: cam\r\nAuthorization: BASIC ".to_vec();
    request.extend_from_slice(base64(&pair).as_bytes());
    request.extend_from_slice(b"\r\n\r\n");
    let mut reader = RequestReader::new();
    reader.push(&request);
    let head = match reader.next_request() {
        Some(Ok(head)) => head,
        other => panic!("a Basic request did not parse: {other:?}"),
    };
    let expected = String::from_utf8_lossy(password);
    assert_eq!(head.basic_password.as_deref(), Some(&*expected));
    assert_eq!(head.offered_tokens().collect::<Vec<_>>(), [&*expected]);
}

/// Standard base64 with padding (RFC 4648 §4), written out here so that
/// the parser's decoder is checked against a second implementation.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
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
    // Mode 3: the first line is the `Content-Type` an HTTP camera answered.
    let (content_type, stream) = match (mode % 4, stream.iter().position(|&b| b == b'\n')) {
        (3, Some(end)) => (String::from_utf8_lossy(&stream[..end]), &stream[end + 1..]),
        (3, None) => (String::from_utf8_lossy(stream), &b""[..]),
        _ => (Default::default(), stream),
    };
    let new_splitter = || match mode % 4 {
        0 => Splitter::new(cap),
        1 => Splitter::with_boundary("camloopframe", cap),
        2 => Splitter::with_boundary("--ffmpeg", cap),
        // As `camera::http_source` and `load::viewers` make theirs.
        _ => match boundary_from_content_type(&content_type) {
            Some(boundary) => Splitter::with_boundary(boundary, cap),
            None => Splitter::new(cap),
        },
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

// ---------------------------------------------------------------------------
// H.264

/// What splitting an Annex-B stream gives: the AUs, the parameter sets
/// after each, and the splitter's state at the end.
#[derive(Debug, PartialEq)]
struct AnnexBSplit {
    aus: Vec<AccessUnit>,
    sets: Vec<Option<ParameterSets>>,
    stats: camloop::h264::SplitterStats,
    refusal: Option<Refusal>,
}

/// Fuzzes [`AnnexBSplitter`] as a push camera drives it: push one read,
/// take AUs out until `None`, finish at the end of the stream.
pub fn annexb_splitter(data: &[u8]) {
    let [seed, cap_byte, stream @ ..] = data else {
        return;
    };
    let cap = if cap_byte % 2 == 0 {
        DEFAULT_MAX_AU_BYTES
    } else {
        32 * usize::from(*cap_byte)
    };
    let cut = aus_in_reads(stream, &mut ReadSizes::new(*seed), cap);
    let whole = aus_in_reads(stream, &mut Whole, cap);
    assert!(cut == whole, "splitting must not depend on the read sizes");
    let split = cut;
    let stats = split.stats;
    assert_eq!(stats.access_units, split.aus.len() as u64);
    assert_eq!(
        stats.au_bytes,
        split.aus.iter().map(|au| au.data.len() as u64).sum::<u64>()
    );
    assert_eq!(
        stats.keyframes,
        split.aus.iter().filter(|au| au.keyframe).count() as u64
    );
    for au in &split.aus {
        check_au(au, cap);
    }
    for sets in split.sets.iter().flatten() {
        assert_eq!(nal_unit_type(sets.sps[0]), SPS);
        assert_eq!(nal_unit_type(sets.pps[0]), PPS);
        assert_eq!(parse_sps(&sets.sps), Ok(sets.info));
        assert_eq!(sets.info.max_num_reorder_frames.unwrap_or(0), 0);
    }
    // Nothing lost, no gap.
    let lost = stats.garbage_bytes
        + stats.oversize_dropped
        + stats.corrupt_dropped
        + stats.truncated_dropped;
    if lost == 0 {
        assert!(split.aus.iter().all(|au| !au.follows_gap));
    }
    // What detection calls H.265 the splitter refuses.
    if detect_stream(stream) == StreamKind::H265 {
        assert_eq!(split.refusal, Some(Refusal::H265));
        assert!(split.aus.is_empty());
    }
}

fn aus_in_reads(mut stream: &[u8], sizes: &mut dyn NextRead, cap: usize) -> AnnexBSplit {
    let mut splitter = AnnexBSplitter::new(cap);
    let mut split = AnnexBSplit {
        aus: Vec::new(),
        sets: Vec::new(),
        stats: Default::default(),
        refusal: None,
    };
    while !stream.is_empty() {
        let (read, rest) = stream.split_at(sizes.next().min(stream.len()));
        stream = rest;
        splitter.push(read);
        while let Some(au) = splitter.next_au() {
            assert!(splitter.refusal().is_none(), "no AU after a refusal");
            split.sets.push(splitter.parameter_sets().cloned());
            split.aus.push(au);
        }
        // One unfinished AU under the cap, and the first two bytes of the
        // NAL unit that will tell whether it starts the next.
        assert!(splitter.buffered_bytes() <= cap + 2);
    }
    splitter.finish();
    assert_eq!(splitter.buffered_bytes(), 0);
    assert!(splitter.next_au().is_none());
    split.stats = *splitter.stats();
    split.refusal = splitter.refusal();
    split
}

/// What a consumer of the splitter may assume about an AU.
fn check_au(au: &AccessUnit, cap: usize) {
    assert!(au.data.starts_with(&START_CODE));
    assert!(au.data.len() <= cap);
    let nals: Vec<&[u8]> = au.nal_units().collect();
    // Rebuilt from its NAL units with four-byte start codes, it is itself:
    // no empty NAL unit, no stray zero bytes.
    let rebuilt: Vec<u8> = nals
        .iter()
        .flat_map(|nal| START_CODE.iter().chain(nal.iter()))
        .copied()
        .collect();
    assert_eq!(rebuilt, au.data);
    assert!(nals.iter().all(|nal| !is_corrupt_header(nal[0])));
    let types: Vec<u8> = nals.iter().map(|nal| nal_unit_type(nal[0])).collect();
    assert_eq!(au.keyframe, types.contains(&IDR_SLICE), "{types:?}");
    // One picture: exactly one slice that starts at macroblock 0
    // (`first_mb_in_slice` 0 is the single bit 1), and no slice before it.
    let slices: Vec<&[u8]> = nals
        .iter()
        .copied()
        .filter(|nal| is_vcl(nal_unit_type(nal[0])))
        .collect();
    assert!(slices.iter().all(|slice| slice.len() >= 2));
    assert!(slices[0][1] & 0x80 != 0, "{types:?}");
    assert_eq!(
        slices.iter().filter(|slice| slice[1] & 0x80 != 0).count(),
        1,
        "{types:?}"
    );
}

// ---------------------------------------------------------------------------
// RTSP

/// Fuzzes [`RtspReader`] as the RTSP server will drive it: push one read,
/// take events out until `None`. The events must not depend on how the
/// stream was cut, the buffer must stay bounded, a failed reader is spent,
/// and the small parsers the server applies to a request (its URL, its
/// `Transport`) must take whatever the request carries.
pub fn rtsp_request(data: &[u8]) {
    let [seed, stream @ ..] = data else {
        return;
    };
    let cut = rtsp_events_in_reads(stream, &mut ReadSizes::new(*seed));
    let whole = rtsp_events_in_reads(stream, &mut Whole);
    assert_eq!(cut, whole, "RTSP reading must not depend on the read sizes");
    for event in &cut {
        match event {
            RtspEvent::Request(request) => {
                assert!(request.body.len() <= RTSP_MAX_BODY_BYTES);
                if let Some(target) = parse_target(&request.url) {
                    check_rtsp_target(&target);
                }
                for (_, value) in request
                    .headers
                    .iter()
                    .filter(|(name, _)| name.eq_ignore_ascii_case("transport"))
                {
                    for spec in parse_transport(value) {
                        check_transport_spec(&spec);
                    }
                }
            }
            RtspEvent::Interleaved { payload, .. } => {
                assert!(payload.len() <= MAX_INTERLEAVED_FRAME_BYTES);
            }
            RtspEvent::Error { .. } => {}
        }
    }
}

fn rtsp_events_in_reads(mut stream: &[u8], sizes: &mut dyn NextRead) -> Vec<RtspEvent> {
    let mut reader = RtspReader::new();
    let mut events = Vec::new();
    while !stream.is_empty() {
        let (read, rest) = stream.split_at(sizes.next().min(stream.len()));
        stream = rest;
        reader.push(read);
        while let Some(event) = reader.next_event() {
            let failed = matches!(event, RtspEvent::Error { .. });
            events.push(event);
            if failed {
                assert!(reader.next_event().is_none(), "a failed reader is spent");
                reader.push(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
                assert!(reader.next_event().is_none(), "a failed reader is spent");
                return events;
            }
        }
        // Between reads at most one unfinished message is held: a head
        // under its bound with the part of its body that has arrived, or a
        // part of one interleaved frame.
        assert!(reader.buffered_bytes() < RTSP_MAX_HEAD_BYTES + RTSP_MAX_BODY_BYTES);
    }
    events
}

/// The track URL a client builds for a camera (`/cam/NAME/trackID=N`, or
/// `/trackID=N` for the default camera) names that camera and track again.
fn check_rtsp_target(target: &RtspTarget) {
    let track = target.track.unwrap_or(0);
    let url = match &target.camera {
        Some(name) => format!("rtsp://127.0.0.1:8554/cam/{name}/trackID={track}"),
        None => format!("rtsp://127.0.0.1:8554/trackID={track}"),
    };
    let expected = RtspTarget {
        camera: target.camera.clone(),
        track: Some(track),
    };
    assert_eq!(parse_target(&url), Some(expected), "{url}");
}

/// A `Transport` alternative written out again, as the SETUP reply will
/// echo it, parses back to itself.
fn check_transport_spec(spec: &TransportSpec) {
    let mut text = String::from(match spec.lower {
        LowerTransport::Tcp => "RTP/AVP/TCP",
        LowerTransport::Udp => "RTP/AVP",
    });
    text.push_str(if spec.multicast {
        ";multicast"
    } else {
        ";unicast"
    });
    if let Some((rtp, rtcp)) = spec.interleaved {
        text.push_str(&format!(";interleaved={rtp}-{rtcp}"));
    }
    if let Some((rtp, rtcp)) = spec.client_port {
        text.push_str(&format!(";client_port={rtp}-{rtcp}"));
    }
    assert_eq!(parse_transport(&text), std::slice::from_ref(spec), "{text}");
}

// ---------------------------------------------------------------------------
// WebRTC signalling

/// Fuzzes every WebRTC signalling parser with the same bytes: as a body
/// (a JSON message, an SDP offer, a trickle-ICE fragment), and its first
/// two lines as a path and as `If-Match` and `ETag` values. Besides "no
/// panic": what a parser returns holds to the checks and bounds the
/// server will rely on, whitespace around JSON and CRLF for LF change
/// nothing, and a route written out again names the same thing.
pub fn webrtc_signalling(data: &[u8]) {
    check_webrtc_message(data);
    check_sdp_offer(data);
    check_trickle_fragment(data);
    let text = String::from_utf8_lossy(data);
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let first = lines.next().unwrap_or("");
    let second = lines.next().unwrap_or("");
    check_whep_route(first);
    check_webrtc_route(first);
    check_etag(first, second);
}

/// Every error is a 400 or, for an oversize body only, a 413, with a JSON
/// body saying `webrtc`.
fn check_signalling_error(error: &SignallingError, body: &[u8]) {
    let too_large = body.len() > WEBRTC_MAX_BODY_BYTES;
    assert_eq!(*error == SignallingError::TooLarge, too_large, "{error:?}");
    assert_eq!(error.status(), if too_large { 413 } else { 400 });
    assert!(error.error_json().starts_with("{\"error\":\"webrtc: "));
}

/// What the server may assume of a candidate from either kind of message.
fn check_candidate(candidate: &Candidate) {
    let text = &candidate.candidate;
    assert!(
        text.is_empty() || text.starts_with("candidate:"),
        "{text:?}"
    );
    assert_eq!(candidate.is_end_of_candidates(), text.is_empty());
    assert!(!text.chars().any(char::is_control), "{text:?}");
    if let Some(mid) = &candidate.sdp_mid {
        assert!(!mid.is_empty() && mid.bytes().all(|b| b.is_ascii_graphic()));
    }
}

fn check_webrtc_message(data: &[u8]) {
    let message = match parse_webrtc_message(data) {
        Ok(message) => message,
        Err(error) => return check_signalling_error(&error, data),
    };
    assert!(data.len() <= WEBRTC_MAX_BODY_BYTES);
    // Whitespace around a JSON text is insignificant (RFC 8259 §2).
    let mut padded = b" \r\n".to_vec();
    padded.extend_from_slice(data);
    padded.extend_from_slice(b"\t\n");
    if padded.len() <= WEBRTC_MAX_BODY_BYTES {
        assert_eq!(parse_webrtc_message(&padded).as_ref(), Ok(&message));
    }
    match message {
        WebrtcMessage::Request { .. } => {}
        WebrtcMessage::Offer { sdp } => {
            assert!(!sdp.is_empty());
            let _ = check_offer(sdp.as_bytes());
            // The server's own offer, read back as a client's, is the SDP.
            let built = offer_json(&sdp, "0a1b2c3d");
            if built.len() <= WEBRTC_MAX_BODY_BYTES {
                let again = parse_webrtc_message(built.as_bytes());
                assert_eq!(again, Ok(WebrtcMessage::Offer { sdp }));
            }
        }
        WebrtcMessage::Answer { id, sdp } => {
            assert!(is_peer_id(&id), "{id:?}");
            assert!(!sdp.is_empty());
        }
        WebrtcMessage::RemoteCandidates { id, candidates } => {
            assert!(is_peer_id(&id), "{id:?}");
            assert!(candidates.len() <= MAX_CANDIDATES_PER_MESSAGE);
            candidates.iter().for_each(check_candidate);
        }
    }
}

/// `data` with every LF made CRLF, if it has no CR of its own and stays
/// within the body bound: the same text to a line-by-line SDP reader.
fn with_crlf(data: &[u8]) -> Option<Vec<u8>> {
    if data.contains(&b'\r') {
        return None;
    }
    let mut crlf = Vec::with_capacity(data.len() * 2);
    for &byte in data {
        if byte == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(byte);
    }
    (crlf.len() <= WEBRTC_MAX_BODY_BYTES).then_some(crlf)
}

fn check_sdp_offer(data: &[u8]) {
    let result = check_offer(data);
    if let Some(crlf) = with_crlf(data) {
        assert_eq!(check_offer(&crlf), result, "CRLF and LF read the same");
    }
    let offer = match result {
        Ok(offer) => offer,
        Err(error) => return check_signalling_error(&error, data),
    };
    assert!(data.starts_with(b"v=0\n") || data.starts_with(b"v=0\r\n") || data == b"v=0");
    let mut seen = Vec::new();
    for format in &offer.h264 {
        assert!(format.payload_type <= MAX_PAYLOAD_TYPE);
        assert!(!seen.contains(&format.payload_type), "listed once");
        seen.push(format.payload_type);
    }
}

fn check_trickle_fragment(data: &[u8]) {
    let result = parse_trickle_fragment(data);
    if let Some(crlf) = with_crlf(data) {
        assert_eq!(
            parse_trickle_fragment(&crlf),
            result,
            "CRLF and LF read the same"
        );
    }
    let fragment = match result {
        Ok(fragment) => fragment,
        Err(error) => return check_signalling_error(&error, data),
    };
    assert!(fragment.candidates.len() <= MAX_CANDIDATES_PER_MESSAGE);
    for candidate in &fragment.candidates {
        check_candidate(candidate);
        assert!(!candidate.is_end_of_candidates());
        assert_eq!(candidate.sdp_m_line_index, None);
    }
    for credential in [&fragment.ice_ufrag, &fragment.ice_pwd]
        .into_iter()
        .flatten()
    {
        let is_ice_char = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        assert!(!credential.is_empty() && credential.bytes().all(is_ice_char));
    }
}

/// A WHEP route written out the canonical way (`/cam/NAME/whep`, or
/// `/whep`, then the session's `Location` resolved against it, as a
/// browser does) names the same camera and session again.
fn check_whep_route(path: &str) {
    let Some(route) = whep_route(path) else {
        return;
    };
    let endpoint = match &route.camera {
        Some(name) => format!("/cam/{name}/whep"),
        None => "/whep".to_owned(),
    };
    let expected = WhepRoute {
        camera: route.camera.clone(),
        resource: None,
    };
    assert_eq!(whep_route(&endpoint), Some(expected), "{endpoint}");
    if let Some(id) = &route.resource {
        assert!(is_peer_id(id) && id != "whep", "{id:?}");
        // Relative to the endpoint: its last segment is replaced.
        let session = format!(
            "{}{}",
            &endpoint[..endpoint.len() - "whep".len()],
            whep_location(id)
        );
        assert_eq!(whep_route(&session), Some(route), "{session}");
    }
}

/// The JSON endpoint's route, likewise.
fn check_webrtc_route(path: &str) {
    let Some(route) = webrtc_route(path) else {
        return;
    };
    let canonical = match &route.camera {
        Some(name) => format!("/cam/{name}/webrtc"),
        None => "/webrtc".to_owned(),
    };
    assert_eq!(webrtc_route(&canonical), Some(route), "{canonical}");
}

/// `If-Match` against an `ETag`: a tag matches itself exactly when `*`
/// matches it (it is well formed), and naming it first in a list keeps
/// it matching whatever follows.
fn check_etag(if_match: &str, etag: &str) {
    let _ = etag_matches(if_match, etag);
    let well_formed = etag_matches("*", etag);
    assert_eq!(etag_matches(etag, etag), well_formed, "{etag:?}");
    let listed = format!("{etag}, {if_match}");
    assert_eq!(etag_matches(&listed, etag), well_formed, "{listed:?}");
}
