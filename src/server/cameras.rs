//! The cameras one server serves: each with its own pipeline, snapshot
//! files, viewers, waiting requests and counters, all in the same loop.
//!
//! A camera is one more source in the poll: a timed one adds a deadline, a
//! push one (and a converter) adds its descriptors under tokens of its own,
//! a fixed block per camera with a role per token ([`camera_tokens`]). Nothing is shared between cameras but the loop, so
//! a camera that fails, stalls or restarts touches only its own viewers and
//! requests. The first camera is the default one: every request and URL
//! that names no camera means it, which keeps the one-camera protocol and
//! URLs unchanged.

use std::net::SocketAddr;
use std::time::Instant;

use mio::Token;

use super::connection::ConnRef;
use super::rtp_stream::CameraRtp;
use super::webrtc_peers::WebrtcCounters;
use crate::camera::child::ChildTokens;
use crate::camera::pipeline::Camera;
use crate::camera::pipeline::{CameraTokens, Demand};
use crate::camera::push::SourceTokens;
use crate::snapshot::SnapshotWriter;

/// The most cameras one server serves. A small board runs two or three;
/// the limit only keeps the token ranges apart.
pub const MAX_CAMERAS: usize = 64;

/// Tokens each camera owns: a fixed block just below the signal pipe's,
/// one token per [`TokenRole`], with room for roles still to come.
pub const TOKENS_PER_CAMERA: usize = 8;

/// The first token below every camera's: the listeners' range ends below it.
pub const CAMERA_TOKENS_END: usize = usize::MAX - 1 - MAX_CAMERAS * TOKENS_PER_CAMERA;

/// What a camera's token is registered for: its position in the camera's
/// block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    /// The source's frames: a child's stdout, a network camera's socket.
    Frames = 0,
    /// The source's second descriptor: a child's stderr, a V4L2 device.
    Aux = 1,
    /// A converter child's stdin (WRITABLE: camloop feeds it).
    ConverterIn = 2,
    /// A converter child's stdout.
    ConverterOut = 3,
    /// A converter child's stderr.
    ConverterErr = 4,
}

impl TokenRole {
    const ALL: [TokenRole; 5] = [
        TokenRole::Frames,
        TokenRole::Aux,
        TokenRole::ConverterIn,
        TokenRole::ConverterOut,
        TokenRole::ConverterErr,
    ];
}

/// The token of camera `index`'s descriptor in `role`.
pub fn camera_token(index: usize, role: TokenRole) -> Token {
    debug_assert!(index < MAX_CAMERAS);
    Token(usize::MAX - 1 - index * TOKENS_PER_CAMERA - role as usize)
}

/// Every token of camera `index`, by what it is for.
pub fn camera_tokens(index: usize) -> CameraTokens {
    CameraTokens {
        source: SourceTokens {
            frames: camera_token(index, TokenRole::Frames),
            aux: camera_token(index, TokenRole::Aux),
        },
        converter: ChildTokens {
            stdout: camera_token(index, TokenRole::ConverterOut),
            stderr: camera_token(index, TokenRole::ConverterErr),
            stdin: Some(camera_token(index, TokenRole::ConverterIn)),
        },
    }
}

/// Which camera a token belongs to and in which role, if it is a camera's.
pub fn camera_of_token(token: Token) -> Option<(usize, TokenRole)> {
    if token.0 <= CAMERA_TOKENS_END || token.0 == usize::MAX {
        return None;
    }
    let offset = usize::MAX - 1 - token.0;
    let role = TokenRole::ALL.get(offset % TOKENS_PER_CAMERA)?;
    Some((offset / TOKENS_PER_CAMERA, *role))
}

/// A request waiting for a fresh frame of one camera.
pub struct FrameWaiter {
    /// Who asked.
    pub conn: ConnRef,
    /// The camera's grab count when the request arrived: the frame it gets
    /// must be newer (timed cameras).
    pub seen_seq: u64,
    /// When the request arrived: a push camera's frame must have started
    /// arriving after this, and the request gives up `--camera-timeout` later.
    pub requested_at: Instant,
    /// Whether a snapshot file must be written (a capture, not a `frame`).
    pub wants_snapshot: bool,
}

/// What one camera counts, next to what its pipeline counts itself.
#[derive(Debug, Default, Clone)]
pub struct CameraCounters {
    /// Frames written to this camera's stream viewers.
    pub frames_sent: u64,
    /// Frames a viewer skipped because its socket was still busy.
    pub frames_dropped: u64,
    /// Viewers dropped after --stream-stall-timeout without write progress.
    pub viewers_dropped: u64,
    /// Snapshot files written.
    pub snapshots: u64,
    /// Snapshot writes that failed.
    pub snapshot_errors: u64,
    /// RTP packets sent to its RTSP viewers (one per viewer per packet).
    pub rtsp_packets_sent: u64,
    /// Bytes of those packets, interleave headers included.
    pub rtsp_bytes_sent: u64,
    /// RTP packets for UDP viewers that the kernel would not take, dropped.
    pub rtsp_udp_packets_dropped: u64,
}

/// An RTSP viewer over UDP: where its packets go, and where it is in the
/// stream. The session (its TCP connection) holds the rest.
#[derive(Debug, Clone)]
pub struct UdpViewer {
    /// Its RTSP connection.
    pub conn: ConnRef,
    /// Its RTP port, at the RTSP peer's own address.
    pub rtp_to: SocketAddr,
    /// Its RTCP port: sender reports go there, receiver reports come from it.
    pub rtcp_to: SocketAddr,
    /// It starts at an IDR, and waits for the next one after a packet of
    /// its was dropped (a burst from the GOP cache would overflow its
    /// receive buffer, so it never gets one).
    pub waiting_for_idr: bool,
    /// When it is due its next sender report.
    pub next_report_at: Instant,
}

/// One camera as the server serves it.
pub struct ServedCamera {
    /// The pipeline (its name, source, timer or descriptors).
    pub camera: Camera,
    /// Where its snapshots go.
    pub snapshots: SnapshotWriter,
    /// Its stream viewers (MJPEG and H.264): a frame or access unit is
    /// offered to these only.
    pub viewers: Vec<ConnRef>,
    /// How many of `viewers` take H.264 (`/stream.h264`, RTSP).
    pub h264_viewers: usize,
    /// How many of `viewers` play it over RTSP.
    pub rtsp_viewers: usize,
    /// Requests waiting for its next fresh frame; served once per
    /// iteration with one grab between them.
    pub frame_waiters: Vec<FrameWaiter>,
    /// RTSP `DESCRIBE`s waiting for its SPS and PPS, and since when.
    pub describe_waiters: Vec<(ConnRef, Instant)>,
    /// Its RTP stream, from the first RTSP request for it on.
    pub rtp: Option<CameraRtp>,
    /// Its RTSP viewers over UDP (also in `viewers`).
    pub udp_viewers: Vec<UdpViewer>,
    /// Which UDP viewer is sent to first next time: it moves on every
    /// access unit, so no viewer is always the one that finds the socket
    /// buffer full.
    pub udp_first: usize,
    /// Its counters.
    pub counters: CameraCounters,
    /// Its WebRTC peers' figures (the peers live in `Core::webrtc`, which
    /// copies them here every iteration): its peers are H.264 demand,
    /// like its H.264 viewers.
    pub webrtc: WebrtcCounters,
}

impl ServedCamera {
    /// A camera with nobody watching yet.
    pub fn new(camera: Camera, snapshots: SnapshotWriter) -> Self {
        ServedCamera {
            camera,
            snapshots,
            viewers: Vec::new(),
            h264_viewers: 0,
            rtsp_viewers: 0,
            frame_waiters: Vec::new(),
            describe_waiters: Vec::new(),
            rtp: None,
            udp_viewers: Vec::new(),
            udp_first: 0,
            counters: CameraCounters::default(),
            webrtc: WebrtcCounters::default(),
        }
    }

    /// Whether anybody wants its frames continuously: stream viewers, and
    /// RTSP `DESCRIBE`s waiting for an encoder's SPS and PPS (which come
    /// only once the encoder is fed frames at the streaming rate).
    pub fn is_streaming(&self) -> bool {
        !self.viewers.is_empty() || !self.describe_waiters.is_empty() || self.webrtc.peers() > 0
    }

    /// What its consumers need now: JPEGs (waiting requests, MJPEG
    /// viewers) and H.264 (`/stream.h264` and RTSP viewers, and a
    /// `DESCRIBE` waiting for the SPS and PPS). The camera runs a
    /// converter for the one it does not send.
    pub fn demand(&self) -> Demand {
        Demand {
            jpeg: !self.frame_waiters.is_empty() || self.viewers.len() > self.h264_viewers,
            h264: self.h264_viewers > 0
                || !self.describe_waiters.is_empty()
                || self.webrtc.peers() > 0,
        }
    }

    /// Its RTP stream, started now if it was not (packets of at most
    /// `max_payload_bytes`).
    pub fn start_rtp(&mut self, max_payload_bytes: usize, now: Instant) -> &CameraRtp {
        let cached = self.camera.gop_cache().map_or(&[][..], |gop| gop.units());
        let name = self.camera.name();
        self.rtp
            .get_or_insert_with(|| CameraRtp::new(name, max_payload_bytes, cached, now))
    }

    /// Why its JPEG → H.264 encoder cannot start, if it cannot: then no
    /// H.264 consumer of this MJPEG camera (RTSP, WebRTC) will get video.
    pub fn encoder_start_error(&self) -> Option<&crate::camera::CameraError> {
        match self.camera.converter_start_error() {
            Some((crate::camera::converter::Direction::JpegToH264, error)) => Some(error),
            _ => None,
        }
    }

    /// Tells the camera what its consumers need (see [`ServedCamera::demand`]).
    pub fn update_demand(&mut self, registry: &mio::Registry, now: Instant) {
        let demand = self.demand();
        self.camera.set_demand(demand, registry, now);
    }

    /// The nearest deadline of this camera: its timer, and the moment the
    /// oldest request waiting for it gives up.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.camera.next_deadline(self.is_streaming());
        let frame_waiters = self.frame_waiters.iter().map(|w| w.requested_at);
        let describe_waiters = self.describe_waiters.iter().map(|&(_, at)| at);
        let oldest_waiter = frame_waiters.chain(describe_waiters).min();
        let give_up = oldest_waiter.map(|at| at + self.camera.timeout());
        timer.into_iter().chain(give_up).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cameras_tokens_map_back_to_it_and_nothing_else_does() {
        for index in 0..MAX_CAMERAS {
            for role in TokenRole::ALL {
                let token = camera_token(index, role);
                assert!(token.0 > CAMERA_TOKENS_END);
                assert_eq!(camera_of_token(token), Some((index, role)));
            }
            let tokens = camera_tokens(index);
            assert_eq!(
                camera_of_token(tokens.source.aux),
                Some((index, TokenRole::Aux))
            );
        }
        assert_eq!(camera_of_token(Token(usize::MAX)), None, "the signal pipe");
        assert_eq!(camera_of_token(Token(CAMERA_TOKENS_END)), None);
        assert_eq!(camera_of_token(Token(0)), None);
        // A reserved slot of a block is nobody's yet.
        assert_eq!(camera_of_token(Token(usize::MAX - 1 - 5)), None);
    }
}
