//! MJPEG, sans-IO: JPEG marker walking, camera buffers made complete, and a
//! byte stream split into frames.
//!
//! This module owns everything camloop knows about the bytes of an MJPEG
//! picture or stream:
//!
//! - [`markers`]: walking a JPEG's segments, for its size
//!   ([`parse_header`]) and for where it ends ([`JpegWalk`]).
//! - [`complete`]: a camera's MJPEG buffer turned into a JPEG anybody can
//!   open ([`complete_jpeg`]).
//! - [`multipart`]: boundary lines and part headers.
//! - [`splitter`]: [`Splitter`], bytes of a stream in (a child process's
//!   stdout, an HTTP MJPEG body), one complete JPEG after another out.
//!
//! It must never touch a socket, a pipe, a clock or OpenCV, so it is built
//! without the `opencv` feature too and every part of it can be tested, and
//! fuzzed, with plain byte slices.

pub mod complete;
pub mod markers;
pub mod multipart;
pub mod splitter;

pub use complete::{complete_jpeg, standard_huffman_tables_segment};
pub use markers::{jpeg_end, parse_header, JpegHeader, JpegWalk, Walk};
pub use multipart::{boundary_from_content_type, PartHeaders};
pub use splitter::{Frame, Framing, Splitter, SplitterStats, DEFAULT_MAX_FRAME_BYTES};
