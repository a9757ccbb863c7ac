//! Turning one MJPEG buffer from a camera into a JPEG file anybody can open.
//!
//! A USB camera in MJPEG mode hands over one compressed picture per buffer,
//! but not always a tidy one: the driver may report the whole buffer as
//! used (zero padding after the picture), and many cameras leave out the
//! Huffman tables because the AVI/MJPEG convention says "use the standard
//! ones" (JPEG Annex K.3). Browsers cope with that; many image viewers and
//! libraries do not. This module checks the picture, cuts the padding and
//! adds the standard tables when they are missing, so a passed-through frame
//! is as good a JPEG as one we encoded ourselves.
//!
//! It only inspects the headers in front of the compressed data (with
//! [`parse_header`]): no decoding, so it stays cheap enough to run on every
//! frame. Pure Rust, no OpenCV, so the OpenCV camera and any other source of
//! camera JPEGs can share it.

use super::markers::{parse_header, JpegHeader, DHT_MARKER, EOI};

/// Checks one buffer from an MJPEG camera and returns it as a complete JPEG
/// together with its size: bytes after the last EOI (driver padding) are cut
/// off, and the standard Huffman tables are inserted if the camera left them
/// out. Returns why not when the buffer is not a JPEG at all, which happens
/// with a damaged frame or a camera that does not deliver what it claims.
pub fn complete_jpeg(buffer: &[u8]) -> Result<(JpegHeader, Vec<u8>), String> {
    let header = parse_header(buffer).ok_or_else(|| {
        let start: Vec<String> = buffer.iter().take(4).map(|b| format!("{b:02X}")).collect();
        format!(
            "MJPEG frame is not a JPEG ({} bytes starting {})",
            buffer.len(),
            start.join(" ")
        )
    })?;
    let end = last_eoi_end(buffer, header.scan_offset).ok_or_else(|| {
        format!(
            "MJPEG frame is cut short ({} bytes, no end marker)",
            buffer.len()
        )
    })?;
    let picture = &buffer[..end];
    if header.has_huffman_tables {
        return Ok((header, picture.to_vec()));
    }
    let tables = standard_huffman_tables_segment();
    let mut jpeg = Vec::with_capacity(picture.len() + tables.len());
    jpeg.extend_from_slice(&picture[..header.scan_offset]);
    jpeg.extend_from_slice(&tables);
    jpeg.extend_from_slice(&picture[header.scan_offset..]);
    Ok((header, jpeg))
}

/// The end of the last EOI marker after the scan starts. Searching backwards
/// skips the padding in one short pass; the compressed data itself cannot
/// contain FF D9 (an 0xFF there is always followed by 0x00 or a restart marker).
fn last_eoi_end(buffer: &[u8], scan_offset: usize) -> Option<usize> {
    buffer
        .windows(EOI.len())
        .rposition(|pair| pair == EOI)
        .filter(|&at| at > scan_offset)
        .map(|at| at + EOI.len())
}

/// The four standard Huffman tables of JPEG Annex K.3 as one DHT segment,
/// in the order libjpeg writes them: luminance DC, luminance AC, chrominance
/// DC, chrominance AC. Each table is its class/id byte, 16 code-length
/// counts and the symbols.
pub fn standard_huffman_tables_segment() -> Vec<u8> {
    const TABLES: [(u8, [u8; 16], &[u8]); 4] = [
        (0x00, LUMA_DC_BITS, &DC_SYMBOLS),
        (0x10, LUMA_AC_BITS, &LUMA_AC_SYMBOLS),
        (0x01, CHROMA_DC_BITS, &DC_SYMBOLS),
        (0x11, CHROMA_AC_BITS, &CHROMA_AC_SYMBOLS),
    ];
    let mut payload = Vec::new();
    for (class_and_id, bits, symbols) in TABLES {
        payload.push(class_and_id);
        payload.extend_from_slice(&bits);
        payload.extend_from_slice(symbols);
    }
    // The length field counts itself but not the marker. The payload is a
    // few hundred bytes, far below u16::MAX.
    let length = (payload.len() + 2) as u16;
    let mut segment = vec![0xFF, DHT_MARKER];
    segment.extend_from_slice(&length.to_be_bytes());
    segment.extend_from_slice(&payload);
    segment
}

const LUMA_DC_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const CHROMA_DC_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

const LUMA_AC_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
#[rustfmt::skip]
const LUMA_AC_SYMBOLS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

const CHROMA_AC_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
#[rustfmt::skip]
const CHROMA_AC_SYMBOLS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

#[cfg(test)]
mod tests {
    use super::*;

    const WIDTH: u16 = 48;
    const HEIGHT: u16 = 32;

    /// A small JPEG with standard tables, from the pure-Rust encoder.
    fn sample_jpeg() -> Vec<u8> {
        let pixels: Vec<u8> = (0..usize::from(WIDTH) * usize::from(HEIGHT) * 3)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut jpeg = Vec::new();
        let encoder = jpeg_encoder::Encoder::new(&mut jpeg, 80);
        encoder
            .encode(&pixels, WIDTH, HEIGHT, jpeg_encoder::ColorType::Rgb)
            .expect("encode sample");
        jpeg
    }

    /// Removes every DHT segment, as a camera that relies on the standard
    /// tables would send the picture.
    fn without_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
        let header = parse_header(jpeg).expect("header");
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        while pos < header.scan_offset {
            let length = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if jpeg[pos + 1] != DHT_MARKER {
                out.extend_from_slice(&jpeg[pos..pos + 2 + length]);
            }
            pos += 2 + length;
        }
        out.extend_from_slice(&jpeg[header.scan_offset..]);
        out
    }

    fn decode(jpeg: &[u8]) -> Vec<u8> {
        jpeg_decoder::Decoder::new(jpeg).decode().expect("decodes")
    }

    #[test]
    fn complete_jpeg_passes_a_good_picture_through_unchanged() {
        let jpeg = sample_jpeg();
        let (_, out) = complete_jpeg(&jpeg).expect("valid");
        assert_eq!(out, jpeg);
    }

    #[test]
    fn complete_jpeg_cuts_driver_padding() {
        let jpeg = sample_jpeg();
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0u8; 4096]);
        let (_, out) = complete_jpeg(&padded).expect("valid");
        assert_eq!(out, jpeg);
    }

    #[test]
    fn complete_jpeg_restores_missing_standard_tables() {
        let jpeg = sample_jpeg();
        let stripped = without_huffman_tables(&jpeg);
        assert!(!parse_header(&stripped).expect("header").has_huffman_tables);
        let (header, out) = complete_jpeg(&stripped).expect("valid");
        assert_eq!((header.width, header.height), (48, 32));
        assert_eq!(decode(&out), decode(&jpeg));
    }

    #[test]
    fn complete_jpeg_rejects_what_is_not_a_jpeg() {
        let err = complete_jpeg(&[0x00, 0x10, 0x80, 0x10, 0x00]).expect_err("not a JPEG");
        assert!(err.contains("not a JPEG"), "{err}");
    }

    #[test]
    fn complete_jpeg_rejects_a_picture_cut_short() {
        let jpeg = sample_jpeg();
        let cut = &jpeg[..jpeg.len() - 10];
        let err = complete_jpeg(cut).expect_err("truncated");
        assert!(err.contains("cut short"), "{err}");
    }
}
