//! What a camera sends, told from its first bytes: [`detect_stream`].
//!
//! A command's stdout (an `exec:` camera) may be H.264, H.265, concatenated
//! JPEGs or a multipart MJPEG stream, and the command line does not say
//! which. The first few bytes do: an Annex-B stream starts with a start code
//! and a NAL unit header, a JPEG with SOI (`FF D8`), a multipart stream with
//! a boundary line (`--`). This module owns that decision; it only looks,
//! and leaves what to do with an undecided or unknown stream to the caller.

/// The kind of a stream, as far as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Too few bytes to tell yet, or bytes that are none of the others
    /// (the caller gives up after some number of bytes).
    Unknown,
    /// JPEGs: concatenated, or parts of a multipart stream.
    Jpeg,
    /// An H.264 Annex-B byte stream.
    H264,
    /// An H.265 (HEVC) Annex-B byte stream.
    H265,
}

/// The first two bytes of the H.265 NAL unit headers a stream starts with:
/// a video parameter set (`40 01`), a sequence parameter set (`42 01`) or an
/// access unit delimiter (`46 01`). H.265 headers are two bytes, the second
/// `01` for the base layer; as H.264 headers these first bytes would be an
/// unspecified type (0), a data partition (2, in no camera profile) or an
/// SEI with `nal_ref_idc` set, which H.264 forbids.
pub(crate) fn is_h265_start(header: u8, second: u8) -> bool {
    matches!(header, 0x40 | 0x42 | 0x46) && second == 0x01
}

/// Whether the second byte of a NAL unit is needed to tell H.265 from
/// H.264 at the start of a stream.
pub(crate) fn may_be_h265_start(header: u8) -> bool {
    matches!(header, 0x40 | 0x42 | 0x46)
}

/// The kind of the stream that starts with `first_bytes`:
///
/// - a start code (`00 00 01` after at least two zero bytes, so also
///   `00 00 00 01`): [`StreamKind::H265`] if the first NAL unit header is
///   `40 01`, `42 01` or `46 01`, else [`StreamKind::H264`];
/// - SOI (`FF D8`): [`StreamKind::Jpeg`], concatenated JPEGs;
/// - `--`, possibly after blank lines: [`StreamKind::Jpeg`], a multipart
///   stream's first boundary line;
/// - too few bytes to tell, or anything else: [`StreamKind::Unknown`].
///
/// ```
/// use camloop::h264::{detect_stream, StreamKind};
///
/// assert_eq!(detect_stream(&[0, 0, 0, 1, 0x67, 0x64]), StreamKind::H264);
/// assert_eq!(detect_stream(&[0, 0, 0, 1, 0x40, 0x01]), StreamKind::H265);
/// assert_eq!(detect_stream(b"\r\n--ffmpeg\r\n"), StreamKind::Jpeg);
/// assert_eq!(detect_stream(&[0, 0]), StreamKind::Unknown);
/// ```
pub fn detect_stream(first_bytes: &[u8]) -> StreamKind {
    let zeros = first_bytes.iter().take_while(|&&b| b == 0).count();
    if zeros > 0 {
        return match &first_bytes[zeros..] {
            [1, rest @ ..] if zeros >= 2 => annex_b_kind(rest),
            // Only zeros so far, or zeros that are not a start code.
            _ => StreamKind::Unknown,
        };
    }
    if first_bytes.starts_with(&[0xFF, 0xD8]) {
        return StreamKind::Jpeg;
    }
    let blank_lines = first_bytes
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if first_bytes[blank_lines..].starts_with(b"--") {
        return StreamKind::Jpeg;
    }
    StreamKind::Unknown
}

/// The kind of an Annex-B stream whose first NAL unit starts with `nal`.
fn annex_b_kind(nal: &[u8]) -> StreamKind {
    match nal {
        [] => StreamKind::Unknown,
        [header] if may_be_h265_start(*header) => StreamKind::Unknown,
        [header, second, ..] if is_h265_start(*header, *second) => StreamKind::H265,
        _ => StreamKind::H264,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::nal::{is_vcl, nal_unit_type};

    #[test]
    fn annex_b_streams() {
        for start in [&[0, 0, 1][..], &[0, 0, 0, 1], &[0, 0, 0, 0, 0, 1]] {
            let mut stream = start.to_vec();
            assert_eq!(detect_stream(&stream), StreamKind::Unknown);
            stream.push(0x67);
            assert_eq!(detect_stream(&stream), StreamKind::H264);
            for hevc in [0x40, 0x42, 0x46] {
                let mut stream = start.to_vec();
                stream.push(hevc);
                assert_eq!(detect_stream(&stream), StreamKind::Unknown);
                stream.push(0x01);
                assert_eq!(detect_stream(&stream), StreamKind::H265, "{stream:02x?}");
                stream[start.len() + 1] = 0x0C;
                assert_eq!(detect_stream(&stream), StreamKind::H264);
            }
        }
        assert_eq!(detect_stream(&[0, 1, 0x67]), StreamKind::Unknown);
        assert_eq!(detect_stream(&[0, 0, 2, 0x67]), StreamKind::Unknown);
        assert_eq!(detect_stream(&[0, 0, 0]), StreamKind::Unknown);
        // `42` as an H.264 header is a slice (a data partition, type 2):
        // only the second byte tells it from H.265.
        assert!(is_vcl(nal_unit_type(0x42)));
    }

    #[test]
    fn jpeg_streams() {
        assert_eq!(detect_stream(&[0xFF, 0xD8, 0xFF, 0xE0]), StreamKind::Jpeg);
        assert_eq!(detect_stream(&[0xFF, 0xD8]), StreamKind::Jpeg);
        assert_eq!(detect_stream(&[0xFF]), StreamKind::Unknown);
        assert_eq!(detect_stream(&[0xFF, 0x00]), StreamKind::Unknown);
        assert_eq!(detect_stream(b"--frame\r\n"), StreamKind::Jpeg);
        assert_eq!(detect_stream(b"\r\n\r\n--"), StreamKind::Jpeg);
        assert_eq!(detect_stream(b"\n-"), StreamKind::Unknown);
        assert_eq!(detect_stream(b"\r\n"), StreamKind::Unknown);
        assert_eq!(detect_stream(b" --frame"), StreamKind::Unknown);
        assert_eq!(detect_stream(b"HTTP/1.1 200 OK"), StreamKind::Unknown);
        assert_eq!(detect_stream(b""), StreamKind::Unknown);
    }
}
