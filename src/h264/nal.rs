//! NAL units: their header byte, the types camloop acts on, and finding them
//! in Annex-B bytes.
//!
//! An H.264 stream is a sequence of NAL units. Each starts with a one-byte
//! header (§7.3.1): `forbidden_zero_bit` (1 bit, always 0), `nal_ref_idc`
//! (2 bits) and `nal_unit_type` (5 bits). In the Annex-B byte stream format
//! (what `ffmpeg -f h264`, `rpicam-vid --codec h264` and IP cameras' raw
//! streams are) each NAL unit is preceded by a start code, `00 00 01`,
//! often with one more zero byte in front (`00 00 00 01`), and nothing says
//! how long a NAL unit is: it ends where the next start code begins. Inside
//! a NAL unit the encoder breaks up every `00 00 0x` (x ≤ 3) with an
//! emulation prevention byte (`00 00 03 0x`), so a start code cannot occur
//! there by accident.
//!
//! This module owns that vocabulary; [`super::splitter`] uses it to cut a
//! stream into access units and [`super::sps`] to read a parameter set.

/// The start code camloop writes before every NAL unit it hands on: the
/// four-byte form, which every reader accepts and which the first NAL unit
/// of an access unit must have anyway (§B.1.2, `zero_byte`).
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// `nal_unit_type` of a slice of a non-IDR picture (P or B).
pub const SLICE: u8 = 1;
/// `nal_unit_type` of a slice of an IDR picture: a decoder can start here.
pub const IDR_SLICE: u8 = 5;
/// `nal_unit_type` of supplemental enhancement information (SEI).
pub const SEI: u8 = 6;
/// `nal_unit_type` of a sequence parameter set (picture size, profile).
pub const SPS: u8 = 7;
/// `nal_unit_type` of a picture parameter set.
pub const PPS: u8 = 8;
/// `nal_unit_type` of an access unit delimiter (AUD).
pub const AUD: u8 = 9;
/// `nal_unit_type` of an end of sequence NAL unit.
pub const END_OF_SEQUENCE: u8 = 10;
/// `nal_unit_type` of an end of stream NAL unit.
pub const END_OF_STREAM: u8 = 11;
/// `nal_unit_type` of filler data, padding a constant bit rate.
pub const FILLER: u8 = 12;

/// The `nal_unit_type` of a NAL unit header byte.
pub fn nal_unit_type(header: u8) -> u8 {
    header & 0x1F
}

/// Whether a NAL unit of this type holds a slice of the picture (a VCL NAL
/// unit, types 1 to 5), as opposed to parameters or metadata about it.
pub fn is_vcl(nal_unit_type: u8) -> bool {
    (SLICE..=IDR_SLICE).contains(&nal_unit_type)
}

/// Whether a header byte cannot start a NAL unit of a valid H.264 stream:
/// the forbidden bit is set, or the type is 0 or 24 to 31, which H.264
/// leaves unspecified (RTP uses 24 to 31 for its own packets, so seeing them
/// here means bytes that are not an Annex-B stream, or a broken one).
pub fn is_corrupt_header(header: u8) -> bool {
    let nal_unit_type = nal_unit_type(header);
    header & 0x80 != 0 || nal_unit_type == 0 || nal_unit_type >= 24
}

/// The NAL units of Annex-B bytes (with 3- or 4-byte start codes), each
/// from its header byte on, without start codes and without the zero bytes
/// that may follow a NAL unit. Bytes before the first start code and empty
/// NAL units are skipped.
///
/// ```
/// use camloop::h264::nal::nal_units;
///
/// let stream = [0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88];
/// let nals: Vec<&[u8]> = nal_units(&stream).collect();
/// assert_eq!(nals, [&[0x67, 0x42][..], &[0x68, 0xCE], &[0x65, 0x88]]);
/// ```
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match find_start_code(stream) {
        Some((_, after)) => &stream[after..],
        None => &[][..],
    };
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let nal = match find_start_code(rest) {
                Some((at, after)) => {
                    let nal = &rest[..at];
                    rest = &rest[after..];
                    nal
                }
                None => std::mem::take(&mut rest),
            };
            let nal = trim_trailing_zeros(nal);
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    })
}

/// The first `00 00 01` in `bytes`: where its first zero is, and where the
/// byte after it is.
fn find_start_code(bytes: &[u8]) -> Option<(usize, usize)> {
    // memchr's search looks at many bytes per instruction: every access
    // unit sent is scanned once here, to be packetised.
    let at = memchr::memmem::find(bytes, &[0, 0, 1])?;
    Some((at, at + 3))
}

/// `nal` without the zero bytes at its end (`trailing_zero_8bits`, §B.1.2,
/// and the first byte of a four-byte start code).
fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
    &nal[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_units_accept_both_start_codes_and_skip_what_is_not_a_nal_unit() {
        let stream = [
            9, 9, // before the first start code
            0, 0, 1, 0x09, 0xF0, // AUD, three-byte start code
            0, 0, 0, 1, // an empty NAL unit
            0, 0, 0, 1, 0x67, 0, 0, 3, 1, 0, 0, // SPS with trailing zeros
            0, 0, 1, 0x65, // a one-byte NAL unit at the end
        ];
        let nals: Vec<&[u8]> = nal_units(&stream).collect();
        assert_eq!(nals, [&[0x09, 0xF0][..], &[0x67, 0, 0, 3, 1], &[0x65]]);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(nal_units(&[]).count(), 0);
    }

    #[test]
    fn headers() {
        assert_eq!(nal_unit_type(0x65), IDR_SLICE);
        assert!(is_vcl(nal_unit_type(0x41)) && !is_vcl(nal_unit_type(0x67)));
        assert!(is_corrupt_header(0x80 | 0x65));
        assert!(is_corrupt_header(0x60) && is_corrupt_header(0x7C));
        assert!(!is_corrupt_header(0x67) && !is_corrupt_header(0x17));
    }
}
