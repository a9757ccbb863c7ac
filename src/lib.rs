//! camloop: a single-threaded `mio` camera server.
//!
//! One hand-rolled event loop ([`server`]) owns every socket and the
//! camera. The pieces around it each have one job:
//!
//! - [`protocol`]: the control protocol, sans-IO (bytes in, requests out).
//! - [`camera`]: frame sources and the grab/encode pipeline.
//! - [`jpeg`]: encoding, once per frame.
//! - [`mjpeg`]: MJPEG bytes, sans-IO: JPEG headers, camera buffers, a
//!   stream split into frames.
//! - [`h264`]: H.264 bytes, sans-IO: an Annex-B stream split into AUs.
//! - [`rtsp`]: RTSP, RTP and RTCP bytes, sans-IO: the RTSP server
//!   (`server::rtsp_session`) and its clients speak through it.
//! - [`webrtc`]: WebRTC signalling, sans-IO: WHEP paths and trickle-ICE
//!   fragments, camera-streamer's and OctoPrint's JSON, the facts of an
//!   SDP offer (the server wiring and the WebRTC stack come later).
//! - [`output`]: bytes waiting to be written, with a cursor: a
//!   connection's replies and frames, a converter child's input.
//! - [`snapshot`]: atomic snapshot files.
//! - [`http`]: HTTP requests and responses, sans-IO.
//! - [`stats`]: counters and timing histograms.
//! - [`client`]: `camloop ctl`.
//! - [`load`]: `camloop load`, a load generator on its own mio loop.
//! - [`cli`]: flags to settings; `main.rs` only sets up logging, parses
//!   the command line ([`cli::parse_command_line`]) and calls [`cli::run`].
//! - [`sys`]: the few OS calls that need `unsafe` (rlimits, signals, CPU
//!   time, systemd, the V4L2 control query).
//! - [`text`]: byte-text helpers (hex digits) shared by [`http`], [`load`]
//!   and [`webrtc`].
//! - [`timefmt`]: UTC timestamps for snapshot names, without a time crate.
//!
//! See `ARCHITECTURE.md` for the life of a request and of a frame.

#![warn(missing_docs)]

pub mod camera;
pub mod cli;
pub mod client;
pub mod h264;
pub mod http;
pub mod jpeg;
pub mod load;
pub mod mjpeg;
pub mod output;
pub mod protocol;
pub mod rtsp;
pub mod server;
pub mod snapshot;
pub mod stats;
pub mod sys;
pub mod text;
pub mod timefmt;
pub mod webrtc;
