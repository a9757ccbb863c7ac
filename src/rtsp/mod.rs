//! RTSP, sans-IO: the pieces of the RTSP server (and of its clients: the
//! load tool, the tests) that need no socket and no clock.
//!
//! This module owns the bytes of RTSP 1.0 (RFC 2326) as camloop speaks it
//! and of the media it sends:
//!
//! - [`rtp`]: an H.264 access unit into RTP packets (RFC 6184: single NAL
//!   unit packets and FU-A fragments), and the 90 kHz RTP clock.
//! - [`sdp`]: the session description a `DESCRIBE` is answered with, from
//!   the camera's SPS and PPS.
//! - [`request`]: a client's input, requests and `$`-framed RTCP
//!   interleaved, into events ([`RtspReader`]); what a `Transport` header
//!   offers and which camera and track a URL names.
//! - [`response`]: the bytes of a response, `CSeq`, `Session` and body,
//!   and a packet framed for an interleaved channel.
//! - [`rtcp`]: sender reports (and receiver reports, for test clients) in
//!   compound packets with a CNAME, the walk through a compound packet,
//!   and RTCP told from RTP on one channel.
//! - [`depacketize`]: the receiving side of [`rtp`], RTP packets back into
//!   access units with what was lost, for the load tool and the tests.
//! - [`client`]: a server's input, responses and `$`-framed RTP and RTCP,
//!   into events ([`client::ResponseReader`]), and what a client reads in a
//!   `Session` header and an SDP, for the load tool and the tests.
//! - [`auth`]: the `401` challenge (Digest and Basic against `--token`), the
//!   check of a client's `Authorization`, and a client's answer.
//!
//! Like [`crate::h264`], it never touches a socket, a pipe or a clock, so
//! every part of it can be tested, and fuzzed, with plain byte slices (the
//! one exception, [`auth::new_nonce`], asks the OS for random bytes). The
//! server wiring (listeners, sessions, when to challenge, RTCP timing,
//! one camera's shared RTP stream) sits on top of these pieces, in
//! `server::rtsp_session`, `server::rtp_stream` and `server::rtp_udp`.

pub mod auth;
pub mod client;
pub mod depacketize;
pub mod request;
pub mod response;
pub mod rtcp;
pub mod rtp;
pub mod sdp;

pub use request::{RtspError, RtspEvent, RtspReader, RtspRequest};
pub use rtp::{rtp_timestamp, Packetizer, DEFAULT_RTP_MTU_BYTES};
pub use sdp::{session_description, SdpSession};
