//! The MJPEG splitter against real JPEGs in every framing, cut into reads
//! every way proptest can think of, and against real ffmpeg output.
//!
//! The pictures come from `jpeg-encoder` and cover what makes finding the
//! end of a JPEG hard: restart markers in the picture data, a progressive
//! picture (several scans with tables between them), an EXIF thumbnail
//! (a complete JPEG with its own EOI inside APP1), a COM segment.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use camloop::mjpeg::multipart::{MAX_BOUNDARY_LINE_BYTES, MAX_PART_HEAD_BYTES};
use camloop::mjpeg::{parse_header, Frame, Splitter, SplitterStats, DEFAULT_MAX_FRAME_BYTES};
use proptest::prelude::*;

/// The boundary of the multipart streams built here.
const BOUNDARY: &str = "camloopframe";

/// A picture of `width` x `height` with some texture, so that the picture
/// data is more than a few bytes and holds `FF 00` stuffing.
fn encode(
    width: u16,
    height: u16,
    seed: u32,
    setup: impl FnOnce(&mut jpeg_encoder::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut state = seed | 1;
    let pixels: Vec<u8> = (0..usize::from(width) * usize::from(height) * 3)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // Mostly smooth, some noise.
            ((i % 97) as u32 * 2 + state % 24) as u8
        })
        .collect();
    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 85);
    setup(&mut encoder);
    encoder
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .expect("encode test picture");
    jpeg
}

/// `jpeg` with an APP1 (EXIF) segment right after SOI holding `thumbnail`.
fn with_thumbnail(jpeg: &[u8], thumbnail: &[u8]) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(thumbnail);
    let length = u16::try_from(payload.len() + 2).expect("thumbnail fits a segment");
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Index of the picture with an EXIF thumbnail in [`pictures`].
const EXIF: usize = 4;
/// Index of the progressive picture in [`pictures`].
const PROGRESSIVE: usize = 3;
/// Index of the picture over every cap used here, in [`pictures`].
const BIG: usize = 6;

/// The pictures streams are made of, encoded once.
fn pictures() -> &'static [Vec<u8>] {
    static PICTURES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PICTURES.get_or_init(|| {
        let thumbnail = encode(16, 16, 9, |_| {});
        let pictures = vec![
            encode(64, 48, 1, |_| {}),
            encode(8, 8, 2, |_| {}),
            encode(48, 48, 3, |e| e.set_restart_interval(1)),
            encode(40, 32, 4, |e| e.set_progressive(true)),
            with_thumbnail(&encode(56, 40, 5, |_| {}), &thumbnail),
            camloop::jpeg::stamp_comment(&encode(32, 24, 6, |_| {}), "camloop frame=7").to_vec(),
            encode(320, 240, 7, |_| {}),
        ];
        // The thumbnail's EOI comes long before the picture's: a plain
        // search for FF D9 would cut the picture there.
        let exif = &pictures[EXIF];
        let first_eoi = exif.windows(2).position(|w| w == [0xFF, 0xD9]).unwrap();
        assert!(
            first_eoi + 2 < exif.len() / 2,
            "the thumbnail's EOI is early"
        );
        // The restart markers are there.
        assert!(pictures[2].windows(2).any(|w| w == [0xFF, 0xD3]));
        let biggest_other = pictures[..BIG].iter().map(Vec::len).max().unwrap();
        assert!(pictures[BIG].len() > 2 * biggest_other);
        pictures
    })
}

/// The cap used where the big picture must be dropped: every other picture
/// fits.
fn small_cap() -> usize {
    pictures()[..BIG].iter().map(Vec::len).max().unwrap()
}

/// How a test stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Concatenated,
    /// Multipart, each part with a `Content-Length`.
    WithLength,
    /// Multipart, parts without `Content-Length` (found by their EOI).
    WithoutLength,
}

fn any_framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::Concatenated),
        Just(Framing::WithLength),
        Just(Framing::WithoutLength),
    ]
}

/// Builds a stream. Each item is some garbage to put before the picture,
/// the picture, and how many of its bytes to send (all of them, or fewer
/// for a picture cut short). For multipart the part head still announces
/// the whole picture's length, as a sender that died mid-part would have.
fn build(framing: Framing, items: &[(Vec<u8>, &[u8], usize)]) -> Vec<u8> {
    let mut stream = Vec::new();
    for (number, (garbage, picture, sent)) in items.iter().enumerate() {
        stream.extend_from_slice(garbage);
        if framing == Framing::Concatenated {
            stream.extend_from_slice(&picture[..*sent]);
            continue;
        }
        if !garbage.is_empty() {
            // A boundary line must start a line.
            stream.extend_from_slice(b"\r\n");
        }
        // Header names as ffmpeg writes them (lower case after the first
        // letter) and as camloop does.
        write!(stream, "--{BOUNDARY}\r\nContent-type: image/jpeg\r\n").unwrap();
        if framing == Framing::WithLength {
            write!(stream, "Content-Length: {}\r\n", picture.len()).unwrap();
        }
        write!(
            stream,
            "X-Frame: {number}\r\nX-Timestamp: {number}.25\r\n\r\n"
        )
        .unwrap();
        stream.extend_from_slice(&picture[..*sent]);
        stream.extend_from_slice(b"\r\n");
    }
    stream
}

/// What splitting a stream gave.
struct Split {
    frames: Vec<Frame>,
    stats: SplitterStats,
}

/// Feeds `stream` in reads of the given sizes (repeated as needed), takes
/// frames out after each read, checks the memory bound, and ends the
/// stream with `finish`.
fn split(mut splitter: Splitter, stream: &[u8], reads: &[usize], cap: usize) -> Split {
    let mut frames = Vec::new();
    let mut rest = stream;
    for &size in reads.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, tail) = rest.split_at(size.clamp(1, rest.len()));
        rest = tail;
        splitter.push(read);
        while let Some(frame) = splitter.next_frame() {
            frames.push(frame);
        }
        let bound = cap.max(MAX_PART_HEAD_BYTES) + MAX_BOUNDARY_LINE_BYTES;
        assert!(
            splitter.buffered_bytes() <= bound,
            "{} bytes buffered, bound {bound}",
            splitter.buffered_bytes()
        );
    }
    splitter.finish();
    let stats = splitter.stats();
    assert_eq!(splitter.buffered_bytes(), 0);
    assert_eq!(
        stats.frame_bytes + stats.framing_bytes + stats.skipped_bytes,
        stream.len() as u64,
        "every byte is accounted for: {stats:?}"
    );
    Split { frames, stats }
}

/// A splitter for `framing`: detecting it, or (for multipart, when
/// `known_boundary`) told the boundary, with or without dashes.
fn splitter(framing: Framing, known_boundary: bool, cap: usize) -> Splitter {
    if framing != Framing::Concatenated && known_boundary {
        Splitter::with_boundary(&format!("--{BOUNDARY}"), cap)
    } else {
        Splitter::new(cap)
    }
}

/// Checks that `frames` are exactly `expected`, byte for byte, with their
/// sizes, and for multipart with their part headers.
fn assert_frames(framing: Framing, frames: &[Frame], expected: &[(usize, &[u8])]) {
    assert_eq!(frames.len(), expected.len(), "frame count");
    for (frame, &(number, picture)) in frames.iter().zip(expected) {
        assert!(frame.jpeg == picture, "frame {number} differs");
        let header = parse_header(picture).unwrap();
        assert_eq!((frame.width, frame.height), (header.width, header.height));
        match (&frame.part, framing) {
            (None, Framing::Concatenated) => {}
            (Some(part), Framing::WithLength | Framing::WithoutLength) => {
                assert_eq!(part.frame_number, Some(number as u64));
                assert_eq!(
                    part.timestamp_micros,
                    Some(number as u64 * 1_000_000 + 250_000)
                );
                let length = (framing == Framing::WithLength).then_some(picture.len());
                assert_eq!(part.content_length, length);
                assert_eq!(part.get("content-type"), Some("image/jpeg"));
            }
            (part, _) => panic!("{framing:?} frame with part headers {part:?}"),
        }
    }
}

/// Garbage that cannot start a frame or a boundary line by itself: no `FF`,
/// no line ends, no dashes.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("not FF, CR, LF or -", |b| {
            !matches!(b, 0xFF | b'\r' | b'\n' | b'-')
        }),
        0..40,
    )
}

fn reads() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1usize..4, 1usize..64, 1usize..5000], 1..40)
}

/// Pictures that are not the big one.
fn picture_list() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..BIG, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_chunking_yields_the_same_frames(
        framing in any_framing(),
        known_boundary in any::<bool>(),
        list in picture_list(),
        reads in reads(),
    ) {
        let items: Vec<_> = list.iter().map(|&i| (Vec::new(), &pictures()[i][..], pictures()[i].len())).collect();
        let stream = build(framing, &items);
        let out = split(splitter(framing, known_boundary, DEFAULT_MAX_FRAME_BYTES), &stream, &reads, DEFAULT_MAX_FRAME_BYTES);
        let expected: Vec<_> = items.iter().enumerate().map(|(n, item)| (n, item.1)).collect();
        assert_frames(framing, &out.frames, &expected);
        prop_assert_eq!(out.stats.frames, list.len() as u64);
        prop_assert_eq!(out.stats.skipped_bytes, 0);
        prop_assert_eq!(out.stats.malformed_frames + out.stats.oversize_frames, 0);
    }

    #[test]
    fn garbage_between_frames_is_skipped(
        framing in any_framing(),
        known_boundary in any::<bool>(),
        list in prop::collection::vec((garbage(), 0..BIG), 1..8),
        reads in reads(),
    ) {
        let items: Vec<_> = list.iter().map(|(g, i)| (g.clone(), &pictures()[*i][..], pictures()[*i].len())).collect();
        let stream = build(framing, &items);
        let out = split(splitter(framing, known_boundary, DEFAULT_MAX_FRAME_BYTES), &stream, &reads, DEFAULT_MAX_FRAME_BYTES);
        let expected: Vec<_> = items.iter().enumerate().map(|(n, item)| (n, item.1)).collect();
        assert_frames(framing, &out.frames, &expected);
        let garbage: usize = list.iter().map(|(g, _)| g.len()).sum();
        prop_assert_eq!(out.stats.skipped_bytes, garbage as u64);
        prop_assert_eq!(out.stats.malformed_frames + out.stats.oversize_frames, 0);
    }

    #[test]
    fn a_frame_cut_short_does_not_swallow_the_next(
        framing in any_framing(),
        known_boundary in any::<bool>(),
        list in picture_list(),
        cut_at in 0..8usize,
        cut_picture in prop_oneof![Just(0usize), Just(2), Just(EXIF), Just(5)],
        cut_fraction in 0.0..1.0f64,
        reads in reads(),
    ) {
        let picture = &pictures()[cut_picture][..];
        // Concatenated JPEGs are cut inside the picture data: there a new
        // SOI cannot be mistaken for anything else. (Cut inside a header
        // segment, a jump over the segment's length might by chance land
        // on a marker of the next picture.) Multipart parts are cut
        // anywhere after the SOI: the next boundary line ends them.
        let from = if framing == Framing::Concatenated {
            let header = parse_header(picture).unwrap();
            let sos = header.scan_offset;
            sos + 2 + usize::from(u16::from_be_bytes([picture[sos + 2], picture[sos + 3]]))
        } else {
            2
        };
        let to = picture.len() - 2;
        let sent = from + ((to - from) as f64 * cut_fraction) as usize;
        let mut items: Vec<_> = list.iter().map(|&i| (Vec::new(), &pictures()[i][..], pictures()[i].len())).collect();
        let cut_at = cut_at.min(items.len());
        items.insert(cut_at, (Vec::new(), picture, sent));
        let stream = build(framing, &items);
        let out = split(splitter(framing, known_boundary, DEFAULT_MAX_FRAME_BYTES), &stream, &reads, DEFAULT_MAX_FRAME_BYTES);
        let expected: Vec<_> = items.iter().enumerate().filter(|&(n, _)| n != cut_at).map(|(n, item)| (n, item.1)).collect();
        assert_frames(framing, &out.frames, &expected);
        prop_assert_eq!(out.stats.malformed_frames, 1);
        prop_assert_eq!(out.stats.oversize_frames, 0);
        prop_assert!(out.stats.skipped_bytes >= sent as u64);
    }

    #[test]
    fn a_frame_over_the_cap_is_dropped_and_the_next_ones_still_come(
        framing in any_framing(),
        known_boundary in any::<bool>(),
        list in picture_list(),
        big_at in 0..8usize,
        reads in reads(),
    ) {
        let cap = small_cap();
        let mut items: Vec<_> = list.iter().map(|&i| (Vec::new(), &pictures()[i][..], pictures()[i].len())).collect();
        let big_at = big_at.min(items.len());
        items.insert(big_at, (Vec::new(), &pictures()[BIG][..], pictures()[BIG].len()));
        let stream = build(framing, &items);
        let out = split(splitter(framing, known_boundary, cap), &stream, &reads, cap);
        let expected: Vec<_> = items.iter().enumerate().filter(|&(n, _)| n != big_at).map(|(n, item)| (n, item.1)).collect();
        assert_frames(framing, &out.frames, &expected);
        prop_assert_eq!(out.stats.oversize_frames, 1);
        prop_assert_eq!(out.stats.malformed_frames, 0);
    }
}

/// One read per byte: the slowest a pipe can be.
#[test]
fn pictures_with_a_thumbnail_restart_markers_or_several_scans_come_out_whole() {
    for framing in [Framing::Concatenated, Framing::WithoutLength] {
        for index in [EXIF, 2, PROGRESSIVE] {
            let picture = &pictures()[index][..];
            let items = vec![(Vec::new(), picture, picture.len()); 2];
            let stream = build(framing, &items);
            let out = split(
                Splitter::new(DEFAULT_MAX_FRAME_BYTES),
                &stream,
                &[1],
                DEFAULT_MAX_FRAME_BYTES,
            );
            assert_frames(framing, &out.frames, &[(0, picture), (1, picture)]);
        }
    }
}

/// A picture over the cap in a part with a `Content-Length` is skipped as
/// it arrives, never buffered.
#[test]
fn an_oversize_part_with_a_length_is_not_buffered() {
    let cap = small_cap();
    let big = &pictures()[BIG][..];
    let stream = build(Framing::WithLength, &[(Vec::new(), big, big.len())]);
    let mut splitter = Splitter::new(cap);
    for read in stream.chunks(512) {
        splitter.push(read);
        assert!(splitter.next_frame().is_none());
        assert!(
            splitter.buffered_bytes() < 512,
            "{}",
            splitter.buffered_bytes()
        );
    }
    assert_eq!(splitter.stats().oversize_frames, 1);
}

/// Runs ffmpeg's test source for five 160x120 frames into `muxer` on stdout.
fn ffmpeg_output(muxer: &str) -> Vec<u8> {
    const FFMPEG: &str = "/usr/bin/ffmpeg";
    let output = Command::new(FFMPEG)
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args(["-i", "testsrc=size=160x120:rate=10", "-frames:v", "5"])
        .args(["-f", muxer, "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs ffmpeg at {FFMPEG} (scripts/setup.sh installs it): {e}")
        });
    assert!(
        output.status.success(),
        "ffmpeg -f {muxer} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn real_ffmpeg_output_splits_into_its_five_frames() {
    for (muxer, multipart) in [("mjpeg", false), ("mpjpeg", true)] {
        let stream = ffmpeg_output(muxer);
        let out = split(
            Splitter::new(DEFAULT_MAX_FRAME_BYTES),
            &stream,
            &[1000, 7, 1],
            DEFAULT_MAX_FRAME_BYTES,
        );
        assert_eq!(out.frames.len(), 5, "ffmpeg -f {muxer}: {:?}", out.stats);
        assert_eq!(
            out.stats.skipped_bytes, 0,
            "ffmpeg -f {muxer}: {:?}",
            out.stats
        );
        for frame in &out.frames {
            assert_eq!((frame.width, frame.height), (160, 120));
            assert_eq!(frame.part.is_some(), multipart);
            if let Some(part) = &frame.part {
                assert_eq!(part.content_length, Some(frame.jpeg.len()));
            }
            let pixels = jpeg_decoder::Decoder::new(&frame.jpeg[..])
                .decode()
                .unwrap_or_else(|e| panic!("ffmpeg -f {muxer} frame does not decode: {e}"));
            assert_eq!(pixels.len(), 160 * 120 * 3);
        }
    }
}
