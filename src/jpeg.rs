//! JPEG encoding and the few JPEG byte-level operations camloop needs.
//!
//! Frames are encoded here exactly once each; the bytes are then shared.
//! The pure-Rust `jpeg-encoder` is always available (the build without
//! OpenCV uses it); with the `opencv` feature, OpenCV's libjpeg-turbo
//! encoder is used instead because it is several times faster on small
//! boards. Passthrough frames (a camera that already delivers JPEG) are not
//! touched at all.

use std::rc::Rc;

use crate::camera::{CameraError, Frame, FrameData};

/// JPEG markers used below.
const MARKER_SOI: [u8; 2] = [0xFF, 0xD8];
const MARKER_COM: u8 = 0xFE;

/// Encodes packed BGR pixels with the pure-Rust encoder.
pub fn encode_bgr_pure_rust(
    width: u32,
    height: u32,
    bgr: &[u8],
    quality: u8,
) -> Result<Vec<u8>, CameraError> {
    let (w, h) = (
        u16::try_from(width).map_err(|_| CameraError::new("frame too wide for JPEG"))?,
        u16::try_from(height).map_err(|_| CameraError::new("frame too tall for JPEG"))?,
    );
    let mut out = Vec::with_capacity(bgr.len() / 8);
    let encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    encoder
        .encode(bgr, w, h, jpeg_encoder::ColorType::Bgr)
        .map_err(|e| CameraError::new(format!("jpeg encode failed: {e}")))?;
    Ok(out)
}

/// Encodes packed BGR pixels with the best encoder this build has.
pub fn encode_bgr(
    width: u32,
    height: u32,
    bgr: &[u8],
    quality: u8,
) -> Result<Vec<u8>, CameraError> {
    #[cfg(feature = "opencv")]
    {
        crate::camera::opencv_source::encode_bgr(width, height, bgr, quality)
    }
    #[cfg(not(feature = "opencv"))]
    {
        encode_bgr_pure_rust(width, height, bgr, quality)
    }
}

/// Turns a retrieved frame into JPEG bytes: passthrough frames as they are,
/// pixel frames through the encoder. Returns the bytes and whether an
/// encode actually happened.
pub fn frame_to_jpeg(frame: Frame, quality: u8) -> Result<(Vec<u8>, bool), CameraError> {
    match frame.data {
        FrameData::Jpeg(bytes) if bytes.starts_with(&MARKER_SOI) => Ok((bytes, false)),
        FrameData::Jpeg(_) => Err(CameraError::new("camera delivered a corrupt JPEG frame")),
        FrameData::Bgr(pixels) => {
            let expected = frame.width as usize * frame.height as usize * 3;
            if pixels.len() != expected {
                return Err(CameraError::new(format!(
                    "frame has {} bytes, expected {expected} for {}x{} BGR",
                    pixels.len(),
                    frame.width,
                    frame.height
                )));
            }
            Ok((
                encode_bgr(frame.width, frame.height, &pixels, quality)?,
                true,
            ))
        }
    }
}

/// Returns `jpeg` with a comment (COM) segment right after SOI, as the
/// shared bytes every consumer of the frame gets.
///
/// camloop stamps every frame with `camloop frame=<n>`, so anybody (and the
/// tests) can tell which grab a snapshot came from without decoding pixels.
/// The pieces are collected straight into the `Rc`: one allocation and one
/// copy per frame, whatever the number of consumers.
pub fn stamp_comment(jpeg: &[u8], comment: &str) -> Rc<[u8]> {
    let Some(rest) = jpeg.strip_prefix(&MARKER_SOI) else {
        return Rc::from(jpeg);
    };
    // A segment length counts its own two length bytes; it cannot exceed 16 bits.
    let comment = &comment.as_bytes()[..comment.len().min(u16::MAX as usize - 2)];
    let segment_len = ((comment.len() + 2) as u16).to_be_bytes();
    MARKER_SOI
        .iter()
        .chain(&[0xFF, MARKER_COM])
        .chain(&segment_len)
        .chain(comment)
        .chain(rest)
        .copied()
        .collect()
}

/// The first comment segment of a JPEG, if it has one right after SOI or
/// among the header segments before the image data.
pub fn comment(jpeg: &[u8]) -> Option<&[u8]> {
    let mut at = 2;
    if !jpeg.starts_with(&MARKER_SOI) {
        return None;
    }
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        let len = u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize;
        if len < 2 || at + 2 + len > jpeg.len() {
            return None;
        }
        if marker == MARKER_COM {
            return Some(&jpeg[at + 4..at + 2 + len]);
        }
        if marker == 0xDA {
            return None; // start of scan: no more header segments
        }
        at += 2 + len;
    }
    None
}

/// The frame number camloop stamped into a JPEG's comment, if any.
pub fn stamped_frame_number(jpeg: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(comment(jpeg)?).ok()?;
    text.split_whitespace()
        .find_map(|word| word.strip_prefix("frame="))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_rust_encoding_makes_a_complete_jpeg() {
        let pixels = vec![128u8; 32 * 16 * 3];
        let jpeg = encode_bgr_pure_rust(32, 16, &pixels, 80).unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        assert!(jpeg.ends_with(&[0xFF, 0xD9]));
    }

    #[test]
    fn a_comment_round_trips_and_keeps_the_image_valid() {
        let pixels = vec![10u8; 16 * 16 * 3];
        let jpeg = encode_bgr_pure_rust(16, 16, &pixels, 80).unwrap();
        let stamped = stamp_comment(&jpeg, "camloop frame=42");
        assert_eq!(stamped_frame_number(&stamped), Some(42));
        assert_eq!(stamped_frame_number(&jpeg), None);
        let mut decoder = jpeg_decoder::Decoder::new(&stamped[..]);
        let decoded = decoder.decode().expect("stamped JPEG still decodes");
        assert_eq!(decoded.len(), 16 * 16 * 3);
    }

    #[test]
    fn a_pixel_buffer_of_the_wrong_size_is_an_error_not_a_panic() {
        let frame = Frame {
            width: 10,
            height: 10,
            data: FrameData::Bgr(vec![0; 7]),
        };
        assert!(frame_to_jpeg(frame, 80).is_err());
    }
}
