//! What every connection's session shares: the configuration, the cameras
//! (each with its snapshot writer), the counters and the lists of deferred
//! work.
//!
//! [`Core`] is borrowed next to the slab of connections, so a session can
//! reach a camera while the loop holds its connection. It holds no socket
//! and imports nothing from the loop or the sessions (only the `ConnRef`
//! name from `connection`); the sessions and the loop's other child
//! modules depend on it, never the other way round.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::cameras::{FrameWaiter, ServedCamera};
use super::connection::ConnRef;
use super::rtp_stream::RtpAu;
use super::webrtc_peers::WebrtcPeers;
use crate::camera::h264_stream::SharedAu;
use crate::camera::pipeline::SharedFrame;
use crate::camera::CameraError;
use crate::output::SpareBuffers;
use crate::protocol::Framing;
use crate::snapshot::SavedSnapshot;
use crate::stats::{Counters, TimingHistogram};

/// Everything `serve` needs, resolved from the CLI.
pub struct ServerConfig {
    /// Control-port addresses to listen on.
    pub control_addrs: Vec<SocketAddr>,
    /// `--unix PATH`: a Unix socket for the control port.
    pub unix_path: Option<PathBuf>,
    /// HTTP addresses to listen on; empty for `--http off`.
    pub http_addrs: Vec<SocketAddr>,
    /// RTSP addresses to listen on; empty for `--rtsp off`.
    pub rtsp_addrs: Vec<SocketAddr>,
    /// An RTSP session that hears no request and no RTCP for this long is
    /// closed (`--rtsp-session-timeout`, announced in `Session:`).
    pub rtsp_session_timeout: Duration,
    /// The largest RTP payload sent (`--rtp-mtu`).
    pub rtp_mtu_bytes: usize,
    /// `--rtsp-udp-ports`: the RTP and RTCP ports of RTSP over UDP (0, 0:
    /// any two); None for `off`.
    pub rtsp_udp_ports: Option<(u16, u16)>,
    /// A stream viewer whose socket stays busy this long is dropped.
    pub stream_stall_timeout: Duration,
    /// Any other client whose pending output makes no progress this long is
    /// dropped (it stopped reading).
    pub output_stall_timeout: Duration,
    /// Close control clients silent for this long (off by default: the
    /// classic clients hold connections open indefinitely).
    pub control_idle_timeout: Option<Duration>,
    /// A started HTTP request head must be complete within this (408 after).
    pub http_head_timeout: Duration,
    /// An idle keep-alive HTTP connection is closed after this.
    pub http_idle_timeout: Duration,
    /// Framing for control connections.
    pub framing: Framing,
    /// `--token`: clients must `auth` with it first.
    pub token: Option<String>,
    /// `--insecure-public`: serve non-loopback listeners without a token.
    pub insecure_public: bool,
    /// `--max-clients`; None means "from the descriptor limit".
    pub max_clients: Option<usize>,
    /// `--cors-origin`: the `Access-Control-Allow-Origin` value (an origin
    /// or `*`) for the stream, snapshots, state, capture and controls; None is off.
    pub cors_origin: Option<String>,
    /// `--webrtc`: WebRTC's UDP address; None for `off`.
    pub webrtc_addr: Option<SocketAddr>,
    /// Whether `--webrtc` was given: then failing to bind stops the start;
    /// the default address failing is a warning (WebRTC is then off).
    pub webrtc_explicit: bool,
    /// `--webrtc-host`: more addresses to offer as candidates (NAT, port
    /// forwarding), each with the bound port.
    pub webrtc_hosts: Vec<std::net::IpAddr>,
    /// `--webrtc-max-peers`: a new peer past this gets 503.
    pub webrtc_max_peers: usize,
}

/// The result of one grab, shared by every waiter.
pub struct FrameOutcome {
    /// The frame, or why there is none.
    pub frame: Result<SharedFrame, CameraError>,
    /// The snapshot written for it, if any waiter wanted one.
    pub snapshot: Option<Result<SavedSnapshot, String>>,
}

/// What happened when a frame or an access unit was offered to a viewer.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Not a viewer (of this kind of stream).
    NotViewing,
    /// It was queued.
    Sent,
    /// Skipped: the socket is still busy, the viewer's own rate says wait,
    /// or it waits for the next IDR.
    Skipped,
}

/// One access unit as it is offered to a camera's viewers: the shared
/// Annex-B bytes (`/stream.h264`), the same packetised for RTSP (when the
/// camera has an RTP stream) and, for RTSP viewers due one, the sender
/// report of this moment.
pub struct AuOffer<'a> {
    /// The access unit.
    pub au: &'a SharedAu,
    /// Its RTP packets; None for an AU already sent with the GOP cache, or
    /// when nobody asked for RTSP yet.
    pub rtp: Option<&'a RtpAu>,
    /// A compound sender report (RTCP) for now.
    pub sender_report: Option<&'a [u8]>,
}

/// Where RTSP over UDP is served from, once its sockets are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPorts {
    /// The RTP port (`server_port`'s first).
    pub rtp: u16,
    /// The RTCP port.
    pub rtcp: u16,
    /// The sockets' family: a peer of the other one cannot have UDP.
    pub ipv6: bool,
}

/// State shared by all connections.
pub struct Core {
    /// The configuration.
    pub config: ServerConfig,
    /// The cameras, never empty: the first is the default one (with
    /// `--camera none` it has no source).
    pub cameras: Vec<ServedCamera>,
    /// The process-wide counters for `stats`, `/state` and `/metrics`
    /// (each camera has its own, too).
    pub counters: Counters,
    /// When the server started (uptime).
    pub started_at: Instant,
    /// A waiter was added since the waiters were last served: the loop must
    /// not sleep before serving it.
    pub new_waiters: bool,
    /// A stream viewer left: the cameras' demand must be told again on the
    /// next pass (a converter nobody needs starts its linger), even if no
    /// other event wakes the loop.
    pub demand_changed: bool,
    /// Wall time from `poll()` returning to the next `poll()` call: how long
    /// the loop kept every client waiting, whatever the cause.
    pub loop_stall: TimingHistogram,
    /// Per viewer and frame: from the frame being ready to send (encoded,
    /// or arrived from a push source) to its part's last byte handed to
    /// the kernel. H.264 IDRs are apart (`idr_send_age`).
    pub frame_send_age: TimingHistogram,
    /// The same for H.264 IDRs, and for the GOP cache a viewer starts
    /// with: many times the size of the other access units, so they take
    /// longer, and would hide the others' figure.
    pub idr_send_age: TimingHistogram,
    /// Set by `shutdown` or a signal; the loop begins the shutdown at the
    /// end of the iteration.
    pub shutdown_requested: bool,
    /// Connections in the slab.
    pub clients: usize,
    /// Connections with output the kernel would not take (see
    /// `Connection::write_blocked_since`); the stall sweep runs while any exist.
    pub blocked_writers: usize,
    /// Control connections.
    pub control_clients: usize,
    /// HTTP connections, viewers included.
    pub http_clients: usize,
    /// RTSP connections, playing or not.
    pub rtsp_clients: usize,
    /// RTSP over UDP, if its sockets are bound (else UDP `SETUP`s get 461).
    pub rtsp_udp: Option<UdpPorts>,
    /// `--max-clients`, resolved.
    pub max_clients: usize,
    /// Drained output buffers, lent to the next connection that answers.
    pub spare_output: SpareBuffers,
    /// The WebRTC peers, once WebRTC's socket is bound (else the
    /// signalling answers 503).
    pub webrtc: Option<WebrtcPeers>,
}

/// Where a connection's writes are booked: the loop's spare buffers, the
/// bytes-out counter and the send-age histograms. Borrowed from [`Core`]
/// apart from its cameras, so that a camera's fan-out can write to a
/// viewer while it holds the camera ([`Core::cameras_and_books`]).
pub struct WriteBooks<'a> {
    /// Drained output buffers (see [`SpareBuffers`]).
    pub spares: &'a mut SpareBuffers,
    /// [`Counters::bytes_out`].
    pub bytes_out: &'a mut u64,
    /// [`Core::frame_send_age`].
    pub frame_send_age: &'a mut TimingHistogram,
    /// [`Core::idr_send_age`].
    pub idr_send_age: &'a mut TimingHistogram,
}

impl Core {
    /// The cameras, and beside them the books a write goes to.
    pub fn cameras_and_books(&mut self) -> (&mut [ServedCamera], WriteBooks<'_>) {
        let books = WriteBooks {
            spares: &mut self.spare_output,
            bytes_out: &mut self.counters.bytes_out,
            frame_send_age: &mut self.frame_send_age,
            idr_send_age: &mut self.idr_send_age,
        };
        (&mut self.cameras, books)
    }

    /// A core with nothing connected yet; `cameras` must not be empty.
    pub fn new(
        config: ServerConfig,
        cameras: Vec<ServedCamera>,
        max_clients: usize,
        now: Instant,
    ) -> Self {
        assert!(
            !cameras.is_empty(),
            "a server has at least its default camera"
        );
        Core {
            config,
            cameras,
            counters: Counters::default(),
            started_at: now,
            new_waiters: false,
            demand_changed: false,
            loop_stall: TimingHistogram::default(),
            frame_send_age: TimingHistogram::default(),
            idr_send_age: TimingHistogram::default(),
            shutdown_requested: false,
            clients: 0,
            blocked_writers: 0,
            control_clients: 0,
            http_clients: 0,
            rtsp_clients: 0,
            rtsp_udp: None,
            max_clients,
            spare_output: SpareBuffers::default(),
            webrtc: None,
        }
    }

    /// Queues `conn` for camera `camera`'s next fresh frame (a capture
    /// when `wants_snapshot`, else `frame` or `/snapshot.jpg`).
    pub fn wait_for_frame(
        &mut self,
        camera: usize,
        conn: ConnRef,
        wants_snapshot: bool,
        now: Instant,
    ) {
        let served = &mut self.cameras[camera];
        served.frame_waiters.push(FrameWaiter {
            conn,
            seen_seq: served.camera.frames_grabbed,
            requested_at: now,
            wants_snapshot,
        });
        self.new_waiters = true;
    }

    /// The nearest deadline of the shared work: every camera's timer, and
    /// the moments requests waiting for a push camera give up.
    pub fn next_deadline(&self) -> Option<Instant> {
        let peers = self.webrtc.as_ref().and_then(WebrtcPeers::next_deadline);
        self.cameras
            .iter()
            .filter_map(ServedCamera::next_deadline)
            .chain(peers)
            .min()
    }

    /// The camera called `name` (case-insensitive: names are lowercase).
    pub fn camera_named(&self, name: &str) -> Option<usize> {
        self.cameras
            .iter()
            .position(|served| served.camera.name().eq_ignore_ascii_case(name))
    }

    /// Stream viewers of every camera.
    pub fn viewer_count(&self) -> usize {
        self.cameras.iter().map(|served| served.viewers.len()).sum()
    }
}

/// A core for the sessions' unit tests: a synthetic 64x48 camera (or none),
/// snapshots into a fresh directory under the system temp dir, `token`.
#[cfg(test)]
pub fn test_core(with_camera: bool, token: Option<&str>) -> Core {
    use crate::camera::pipeline::{Camera, CameraSettings};
    use crate::camera::synthetic::SyntheticSource;
    use crate::snapshot::{SnapshotSettings, SnapshotWriter};
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);
    let now = Instant::now();
    let dir = std::env::temp_dir().join(format!(
        "camloop-unit-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    let settings = CameraSettings {
        name: "cam0".to_string(),
        fps: 30,
        idle_fps: 5,
        jpeg_quality: 70,
        width: 64,
        height: 48,
        camera_timeout: Duration::from_secs(5),
        gop_cache_bytes: 1 << 20,
        converters: crate::camera::converter::ConverterSettings::default(),
    };
    let source: Option<Box<dyn crate::camera::FrameSource>> =
        with_camera.then(|| Box::new(SyntheticSource::new(64, 48)) as _);
    let config = ServerConfig {
        control_addrs: Vec::new(),
        unix_path: None,
        http_addrs: Vec::new(),
        rtsp_addrs: Vec::new(),
        rtsp_session_timeout: Duration::from_secs(60),
        rtp_mtu_bytes: crate::rtsp::DEFAULT_RTP_MTU_BYTES,
        rtsp_udp_ports: None,
        stream_stall_timeout: Duration::from_secs(10),
        output_stall_timeout: Duration::from_secs(30),
        control_idle_timeout: None,
        http_head_timeout: Duration::from_secs(10),
        http_idle_timeout: Duration::from_secs(60),
        framing: Framing::Auto,
        token: token.map(str::to_string),
        insecure_public: false,
        max_clients: None,
        cors_origin: None,
        webrtc_addr: None,
        webrtc_explicit: false,
        webrtc_hosts: Vec::new(),
        webrtc_max_peers: super::webrtc_peers::DEFAULT_MAX_PEERS,
    };
    let snapshots = SnapshotWriter::new(SnapshotSettings {
        dir,
        name_pattern: "pic2.jpg".into(),
        fsync: false,
        keep: None,
    })
    .expect("snapshot dir in the temp dir");
    let camera = ServedCamera::new(Camera::new(source, settings, now), snapshots);
    Core::new(config, vec![camera], 100, now)
}
