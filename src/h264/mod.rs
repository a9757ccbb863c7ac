//! H.264, sans-IO: what kind of stream a source sends, NAL units, sequence
//! parameter sets, and an Annex-B byte stream split into access units.
//!
//! This module owns everything camloop knows about the bytes of an H.264
//! stream, without decoding a single picture:
//!
//! - [`detect`]: a stream's kind (H.264, H.265, JPEG) from its first bytes
//!   ([`detect_stream`]).
//! - [`nal`]: NAL unit types, headers, and the NAL units of Annex-B bytes
//!   ([`nal::nal_units`]).
//! - [`sps`]: a sequence parameter set's picture size, profile, level and
//!   frame reordering ([`parse_sps`]).
//! - [`splitter`]: [`AnnexBSplitter`], bytes of a stream in (a child
//!   process's stdout), one complete access unit (one picture with the
//!   parameter sets and SEI that go with it) after another out, and the
//!   streams camloop refuses to pass on ([`Refusal`]).
//! - [`follow`]: the skip-to-IDR rule every H.264 consumer follows
//!   ([`follow::AuFollower`]).
//!
//! Like [`crate::mjpeg`], it must never touch a socket, a pipe, a clock or
//! OpenCV, so it is built without the `opencv` feature too and every part of
//! it can be tested, and fuzzed, with plain byte slices.
//!
//! Section numbers (§) refer to ITU-T H.264 (08/2021).

pub mod detect;
pub mod follow;
pub mod nal;
pub mod splitter;
pub mod sps;

pub use detect::{detect_stream, StreamKind};
pub use splitter::{AccessUnit, AnnexBSplitter, Refusal, SplitterStats, DEFAULT_MAX_AU_BYTES};
pub use sps::{parse_sps, ParameterSets, SpsError, SpsInfo};
