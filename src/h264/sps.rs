//! Sequence parameter sets: the picture size, profile, level and frame
//! reordering a stream declares ([`parse_sps`]), and the SPS/PPS pair a
//! consumer needs before it can decode anything ([`ParameterSets`]).
//!
//! The SPS (§7.3.2.1) is a bit string of exp-Golomb codes whose layout
//! depends on earlier fields (high profiles add chroma format, bit depths and
//! scaling lists; three kinds of picture order count; interlacing; cropping;
//! the VUI with its HRD parameters before the bitstream restrictions we
//! want). Reading it is left to the `h264-reader` crate, which handles all of
//! that and the emulation prevention bytes; this module owns the choice of
//! what camloop takes from it and the error a caller sees. The values are
//! checked against ffprobe's in `tests/h264_splitter.rs`.

use std::fmt;

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};

use super::nal::{nal_unit_type, SPS};

/// What camloop takes from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// Which SPS this is (0 to 31); picture parameter sets refer to it.
    pub seq_parameter_set_id: u32,
    /// `profile_idc`: 66 Baseline, 77 Main, 100 High, ...
    pub profile_idc: u8,
    /// The `constraint_set0_flag` to `constraint_set5_flag` bits and the two
    /// reserved bits, as in the SPS (and in RFC 6381's `avc1.PPCCLL`).
    pub constraint_flags: u8,
    /// `level_idc`: ten times the level (31 is level 3.1).
    pub level_idc: u8,
    /// Picture width in pixels, after frame cropping.
    pub width: u32,
    /// Picture height in pixels, after frame cropping (1080, not the 1088
    /// that is coded).
    pub height: u32,
    /// The VUI's `max_num_reorder_frames`: how many frames may come before
    /// one that is shown earlier (B-frames make it > 0). `None` when the SPS
    /// has no VUI bitstream restrictions, which leaves it unsaid.
    pub max_num_reorder_frames: Option<u32>,
}

/// Why [`parse_sps`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpsError {
    /// The NAL unit is not an SPS (or is empty: `nal_unit_type` 0).
    NotAnSps {
        /// The type it has instead.
        nal_unit_type: u8,
    },
    /// The SPS is cut short, or has values H.264 does not allow.
    Malformed {
        /// What `h264-reader` found wrong, for a log line.
        reason: String,
    },
}

impl fmt::Display for SpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpsError::NotAnSps { nal_unit_type } => {
                write!(f, "not an SPS (nal_unit_type {nal_unit_type})")
            }
            SpsError::Malformed { reason } => write!(f, "malformed SPS: {reason}"),
        }
    }
}

impl std::error::Error for SpsError {}

/// Parses an SPS NAL unit: `nal` from its header byte on, emulation
/// prevention bytes still in, no start code.
///
/// ```
/// use camloop::h264::parse_sps;
///
/// // 1280x720 Constrained Baseline, as x264 writes it.
/// let sps = [
///     0x67, 0x42, 0xC0, 0x1F, 0xDA, 0x01, 0x40, 0x16, 0xEC, 0x04, 0x40, 0x00,
///     0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0F, 0x23, 0xC6, 0x0C, 0xA8,
/// ];
/// let info = parse_sps(&sps)?;
/// assert_eq!((info.width, info.height, info.profile_idc), (1280, 720, 66));
/// # Ok::<(), camloop::h264::SpsError>(())
/// ```
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, SpsError> {
    let header = nal.first().copied().unwrap_or(0);
    if nal_unit_type(header) != SPS {
        return Err(SpsError::NotAnSps {
            nal_unit_type: nal_unit_type(header),
        });
    }
    let malformed = |error| SpsError::Malformed {
        reason: format!("{error:?}"),
    };
    // `complete: true`: the NAL unit ends here, so a field running past its
    // end is an error rather than a request for more bytes.
    let sps =
        SeqParameterSet::from_bits(RefNal::new(nal, &[], true).rbsp_bits()).map_err(malformed)?;
    let (width, height) = sps.pixel_dimensions().map_err(malformed)?;
    let max_num_reorder_frames = sps
        .vui_parameters
        .as_ref()
        .and_then(|vui| vui.bitstream_restrictions.as_ref())
        .map(|restrictions| restrictions.max_num_reorder_frames);
    Ok(SpsInfo {
        seq_parameter_set_id: u32::from(sps.seq_parameter_set_id.id()),
        profile_idc: sps.profile_idc.into(),
        constraint_flags: sps.constraint_flags.into(),
        level_idc: sps.level_idc,
        width,
        height,
        max_num_reorder_frames,
    })
}

/// The parameter sets a decoder needs before the first picture: the latest
/// SPS that parsed and the latest PPS, as NAL units without start codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSets {
    /// The SPS NAL unit, header byte first.
    pub sps: Vec<u8>,
    /// The PPS NAL unit, header byte first.
    pub pps: Vec<u8>,
    /// What the SPS says.
    pub info: SpsInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_an_sps_is_refused() {
        assert_eq!(
            parse_sps(&[0x68, 0xCE, 0x3C, 0x80]),
            Err(SpsError::NotAnSps { nal_unit_type: 8 })
        );
        assert_eq!(parse_sps(&[]), Err(SpsError::NotAnSps { nal_unit_type: 0 }));
        // Cut short inside the picture size.
        let error = parse_sps(&[0x67, 0x42, 0xC0, 0x1F, 0xDA]).unwrap_err();
        assert!(matches!(error, SpsError::Malformed { .. }), "{error}");
    }
}
