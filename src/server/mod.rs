//! The event loop: one `mio::Poll` that owns every socket and every camera.
//!
//! Read this file next to `examples/minimal_loop.rs`: it is the same loop
//! with camloop's work plugged in. Each iteration waits for readiness or
//! the nearest deadline, drives the connection of each event, drives those
//! that still have work (read budget spent, just accepted, handed a frame),
//! runs the timers, serves the requests waiting for a fresh frame, and
//! removes the connections closed during the iteration (deferred, so a
//! stale event never reaches a reused slab key). The rules it keeps, and a
//! map of the child modules, are in ARCHITECTURE.md.

mod accept;
mod cameras;
mod connection;
mod control;
mod core;
mod deadlines;
mod frames;
mod http_session;
mod listener;
mod rtp_stream;
mod rtp_udp;
mod rtsp_session;
mod session;
mod state_view;
mod webrtc_peers;
mod webrtc_signalling;
mod webrtc_udp;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use accept::{Acceptor, Admission, FIRST_LISTENER_TOKEN};
use cameras::{camera_of_token, camera_tokens};
use connection::{CloseReason, ConnRef};
use listener::ListenerKind;
use rtp_udp::RtpUdp;
use session::{live_entry, Entry};
use webrtc_peers::WebrtcPeers;
use webrtc_udp::WebrtcUdp;

pub use self::cameras::{ServedCamera, MAX_CAMERAS};
pub use self::core::ServerConfig;
use self::core::{Core, UdpPorts};
pub use self::webrtc_peers::DEFAULT_MAX_PEERS as DEFAULT_WEBRTC_MAX_PEERS;

/// The shared read buffer: every socket is read into this one buffer, so
/// an idle connection owns no input buffer at all.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Events fetched per `poll()`.
const EVENTS_CAPACITY: usize = 1024;
/// The signal pipe's token, above every other.
const SIGNAL_TOKEN: Token = Token(usize::MAX);
/// The RTSP-over-UDP sockets' tokens, just below the listeners' (slab
/// keys never get that far).
const RTP_UDP_TOKEN: Token = Token(FIRST_LISTENER_TOKEN - 1);
/// See [`RTP_UDP_TOKEN`].
const RTCP_UDP_TOKEN: Token = Token(FIRST_LISTENER_TOKEN - 2);
/// WebRTC's UDP sockets' tokens, below RTSP's: socket `i` has
/// `WEBRTC_FIRST_TOKEN - i`.
const WEBRTC_FIRST_TOKEN: usize = FIRST_LISTENER_TOKEN - 3;

/// The token of WebRTC socket `index`.
fn webrtc_token(index: usize) -> Token {
    Token(WEBRTC_FIRST_TOKEN - index)
}

/// Which WebRTC socket a token is, if it is one.
fn webrtc_socket_of(token: Token) -> Option<usize> {
    let index = WEBRTC_FIRST_TOKEN.checked_sub(token.0)?;
    (index < webrtc_udp::MAX_SOCKETS).then_some(index)
}

/// The server: the poller, the listeners, the connections and the core.
pub struct Server {
    poll: Poll,
    signals: Signals,
    acceptor: Acceptor,
    connections: Slab<Entry>,
    core: Core,
    read_buffer: Box<[u8]>,
    last_conn_id: u64,
    /// Connections to drive again before the next `poll()`: their read
    /// budget ran out, they were just accepted, or they were handed work.
    to_drive: Vec<ConnRef>,
    /// Connections closed this iteration, removed from the slab at its end.
    closing: Vec<usize>,
    shutdown_deadline: Option<Instant>,
    next_sweep_at: Option<Instant>,
    /// RTSP over UDP's two sockets, if bound.
    rtp_udp: Option<RtpUdp>,
    /// A UDP socket's read budget ran out: read it again before sleeping
    /// (edge-triggered: no new event comes for what is already queued).
    udp_unread: [bool; 2],
    /// WebRTC's UDP sockets, if bound (the peers are in `core.webrtc`).
    webrtc_udp: Option<WebrtcUdp>,
    /// The same as `udp_unread`, per WebRTC socket.
    webrtc_unread: Vec<bool>,
}

impl Server {
    /// Binds every listener and registers them; nothing is served until
    /// [`Server::run`].
    pub fn bind(config: ServerConfig, cameras: Vec<ServedCamera>) -> io::Result<Server> {
        let poll = Poll::new()?;
        crate::sys::ignore_file_size_signal();
        let max_clients = accept::client_limit(config.max_clients);
        let acceptor = Acceptor::bind(&config, poll.registry())?;
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        let rtp_udp = bind_rtp_udp(&config, &acceptor, poll.registry());
        let mut acceptor = acceptor;
        let webrtc_udp = bind_webrtc(&config, &mut acceptor, poll.registry())?;
        let camera_count = cameras.len();
        let mut core = Core::new(config, cameras, max_clients, Instant::now());
        if let Some(udp) = &webrtc_udp {
            let mut addrs = udp.local_addrs();
            let port = addrs.first().map_or(0, SocketAddr::port);
            addrs.extend(
                core.config
                    .webrtc_hosts
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, port)),
            );
            let max_peers = core.config.webrtc_max_peers;
            let peers = WebrtcPeers::new(addrs, max_peers, camera_count, Instant::now())
                .map_err(io::Error::other)?;
            core.webrtc = Some(peers);
        }
        core.rtsp_udp = rtp_udp.as_ref().map(|udp| UdpPorts {
            rtp: udp.ports.0,
            rtcp: udp.ports.1,
            ipv6: udp.is_ipv6(),
        });
        for (index, served) in core.cameras.iter_mut().enumerate() {
            served
                .camera
                .attach(poll.registry(), camera_tokens(index), Instant::now());
        }
        Ok(Server {
            poll,
            signals,
            acceptor,
            connections: Slab::new(),
            core,
            read_buffer: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            last_conn_id: 0,
            to_drive: Vec::new(),
            closing: Vec::new(),
            shutdown_deadline: None,
            next_sweep_at: None,
            rtp_udp,
            udp_unread: [false; 2],
            webrtc_unread: vec![false; webrtc_udp.as_ref().map_or(0, WebrtcUdp::len)],
            webrtc_udp,
        })
    }

    /// What is served: `control=ADDR[,ADDR…] http=ADDR[,ADDR…]|off
    /// rtsp=ADDR[,ADDR…]|off webrtc=ADDR[,ADDR…]|off`, real ports.
    pub fn listening(&self) -> String {
        let webrtc = match &self.webrtc_udp {
            Some(udp) => {
                let addrs: Vec<String> = udp.local_addrs().iter().map(|a| a.to_string()).collect();
                addrs.join(",")
            }
            None => "off".to_string(),
        };
        format!("{} webrtc={webrtc}", self.acceptor.describe())
    }

    /// Runs the loop until a signal or `shutdown` ends it gracefully.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut done_at = Instant::now();
        loop {
            let timeout = self.poll_timeout(done_at);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    SIGNAL_TOKEN => deadlines::on_signals(&mut self.signals, &mut self.core),
                    RTP_UDP_TOKEN => self.udp_unread[0] = true,
                    RTCP_UDP_TOKEN => self.udp_unread[1] = true,
                    token if webrtc_socket_of(token).is_some() => {
                        if let Some(unread) = webrtc_socket_of(token)
                            .and_then(|index| self.webrtc_unread.get_mut(index))
                        {
                            *unread = true;
                        }
                    }
                    token if camera_of_token(token).is_some() => self.camera_ready(token, now),
                    Token(t) if t >= FIRST_LISTENER_TOKEN => self.accept_all(t, now),
                    Token(key) => {
                        if let Some(entry) = self.connections.get_mut(key) {
                            entry.conn.readiness.record(event);
                            self.drive(key, now);
                        }
                    }
                }
            }
            self.read_udp(now);
            // The access units the events gave WebRTC peers leave before
            // the peers' own datagrams are read (DTLS handshakes cost).
            self.flush_webrtc();
            self.read_webrtc(now);
            self.drive_pending(now);
            self.run_timers(now);
            frames::serve_waiters(
                &mut self.connections,
                &mut self.core,
                self.poll.registry(),
                now,
                &mut self.to_drive,
            );
            self.drive_pending(now);
            self.webrtc_turn(now);
            if self.core.shutdown_requested {
                self.begin_shutdown(now);
            }
            self.remove_closed();
            done_at = Instant::now(); // the stall's end, and the next timeout's start
            self.core.loop_stall.record(done_at - now);
            if let Some(deadline) = self.shutdown_deadline {
                if self.connections.is_empty() || done_at >= deadline {
                    break;
                }
            }
        }
        deadlines::finish_shutdown(&mut self.connections, &mut self.core, self.poll.registry());
        Ok(())
    }

    /// The time until the nearest deadline; zero when work is already
    /// waiting; None (sleep until an event) when there is no deadline at all.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let udp_unread = self.udp_unread.contains(&true) || self.webrtc_unread.contains(&true);
        if !self.to_drive.is_empty()
            || self.core.new_waiters
            || self.core.demand_changed
            || udp_unread
        {
            return Some(Duration::ZERO);
        }
        [
            self.core.next_deadline(),
            self.acceptor.paused_until(),
            self.shutdown_deadline,
            self.next_sweep_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|deadline| deadline.saturating_duration_since(now))
    }

    fn run_timers(&mut self, now: Instant) {
        if self.acceptor.resume_if_due(now) {
            for index in 0..self.acceptor.len() {
                self.accept_all(FIRST_LISTENER_TOKEN + index, now);
            }
        }
        let (connections, core) = (&mut self.connections, &mut self.core);
        let registry = self.poll.registry();
        core.demand_changed = false;
        let mut unconvertible = Vec::new();
        for camera in 0..core.cameras.len() {
            let served = &mut core.cameras[camera];
            served.update_demand(registry, now);
            unconvertible.extend(frames::viewers_without_converter(connections, served));
            let streaming = served.is_streaming();
            if let Some(frame) = served.camera.on_timer(registry, now, streaming) {
                frames::broadcast(connections, core, camera, &frame, now, &mut self.to_drive);
            }
            frames::serve_describe_waiters(connections, core, camera, now, &mut self.to_drive);
        }
        if self.next_sweep_at.is_some_and(|at| now >= at) {
            self.next_sweep_at = None;
            for (conn, reason) in deadlines::sweep(connections, core, now, &mut self.to_drive) {
                self.close(conn.key, reason);
            }
        }
        self.next_sweep_at = deadlines::next_sweep(self.next_sweep_at, &self.core, now);
        // Their stream cannot come (its converter cannot start): they were
        // answered 200 before that was known, so closing is all that is
        // left to tell them; new requests get 503.
        for viewer in unconvertible {
            self.close(
                viewer.key,
                CloseReason::Dropped("its camera's converter cannot start"),
            );
        }
    }

    /// Accepts on the listener with `token` (none are left once shutdown began).
    fn accept_all(&mut self, token: usize, now: Instant) {
        let mut admission = Admission {
            connections: &mut self.connections,
            core: &mut self.core,
            registry: self.poll.registry(),
            last_conn_id: &mut self.last_conn_id,
            to_drive: &mut self.to_drive,
        };
        self.acceptor
            .accept_all(token - FIRST_LISTENER_TOKEN, now, &mut admission);
    }

    /// Drives, once each, the connections listed so far. A connection that
    /// lists itself again (its budget ran out again) waits for the next
    /// round, so one busy client cannot keep the loop to itself.
    fn drive_pending(&mut self, now: Instant) {
        let mut pending = std::mem::take(&mut self.to_drive);
        pending.sort_unstable();
        pending.dedup();
        for conn in pending {
            if live_entry(&mut self.connections, conn).is_some() {
                self.drive(conn.key, now);
            }
        }
    }

    /// Does everything a connection can do right now: write, run queued
    /// requests, read (within the budget) and handle what was read; then
    /// re-register interest if the state calls for a different one.
    fn drive(&mut self, key: usize, now: Instant) {
        let live = self
            .connections
            .get_mut(key)
            .filter(|e| !e.conn.is_closed());
        let Some(entry) = live else {
            return;
        };
        match entry.service(&mut self.core, key, &mut self.read_buffer, now) {
            Ok(()) if entry.is_finished() => self.close(key, CloseReason::Done),
            Ok(()) => {
                if entry.conn.readiness.readable && entry.wants_read() {
                    self.to_drive.push(entry.conn.conn_ref(key));
                }
                if let Err(e) = entry.update_interest(self.poll.registry(), key) {
                    log::warn!("cannot reregister {}: {e}", entry.conn.peer);
                    self.close(key, CloseReason::Dropped("reregister failed"));
                }
            }
            Err(reason) => self.close(key, reason),
        }
    }

    /// Deregisters now, removes from the slab at the end of the iteration.
    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(Entry { conn, .. }) = self.connections.get_mut(key) else {
            return;
        };
        if !conn.mark_closed(&reason) {
            return;
        }
        let _ = self.poll.registry().deregister(&mut conn.socket);
        reason.record(&conn.peer, &mut self.core.counters);
        self.closing.push(key);
    }

    /// Removes the connections closed in this iteration.
    fn remove_closed(&mut self) {
        for key in std::mem::take(&mut self.closing) {
            if let Some(entry) = self.connections.try_remove(key) {
                entry.forget(&mut self.core);
            }
        }
    }

    /// Stops accepting and asks every connection to finish: what is
    /// already queued for a client is still written, for up to
    /// [`deadlines::SHUTDOWN_GRACE`].
    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(now + deadlines::SHUTDOWN_GRACE);
        crate::sys::notify_systemd("STOPPING=1");
        self.acceptor.close_all(self.poll.registry());
        deadlines::drain_all(&mut self.connections, &mut self.to_drive);
        self.drive_pending(now);
    }

    /// A push camera's descriptor is readable.
    fn camera_ready(&mut self, token: Token, now: Instant) {
        let registry = self.poll.registry();
        let (conns, core) = (&mut self.connections, &mut self.core);
        let udp = self.rtp_udp.as_ref();
        frames::camera_ready(conns, core, registry, token, udp, now, &mut self.to_drive);
    }

    /// Reads WebRTC's sockets within their budget, each datagram to its
    /// peer.
    fn read_webrtc(&mut self, now: Instant) {
        let (Some(udp), Some(peers)) = (&self.webrtc_udp, &mut self.core.webrtc) else {
            return;
        };
        for (index, unread) in self.webrtc_unread.iter_mut().enumerate() {
            if *unread {
                *unread = udp.read(index, |from, to, bytes| peers.receive(from, to, bytes, now));
            }
        }
    }

    /// The WebRTC peers' turn, after everything else of the iteration:
    /// their timeouts, the GOP cache to those just connected, the cameras'
    /// demand when peers came or went, and every datagram they queued
    /// sent (or dropped, counted, if the kernel will not take it).
    fn webrtc_turn(&mut self, now: Instant) {
        let Some(peers) = &mut self.core.webrtc else {
            return;
        };
        peers.run_timers(now);
        // What the timers and this iteration's access units made goes out
        // before any new peer's GOP cache, which may be hundreds of packets.
        self.flush_webrtc();
        let core = &mut self.core;
        if let Some(peers) = &mut core.webrtc {
            start_webrtc_peers(peers, &core.cameras, now);
        }
        self.flush_webrtc();
        let core = &mut self.core;
        if let Some(peers) = &mut core.webrtc {
            for (served, counters) in core.cameras.iter_mut().zip(&peers.counters) {
                served.webrtc.clone_from(counters);
            }
            if peers.take_changed() {
                core.demand_changed = true;
            }
        }
    }

    /// Sends every datagram the WebRTC peers queued (one the kernel will
    /// not take is dropped and counted), and ends the send age of the
    /// access units they were made of: per peer, from ready to here (an
    /// upper bound for the peers sent to first).
    fn flush_webrtc(&mut self) {
        let Core {
            webrtc,
            frame_send_age,
            idr_send_age,
            ..
        } = &mut self.core;
        let (Some(peers), Some(udp)) = (webrtc, &self.webrtc_udp) else {
            return;
        };
        for datagram in peers.take_outbox() {
            if !udp.send(&datagram) {
                peers.count_dropped(datagram.camera);
            }
        }
        let sent_at = Instant::now();
        for (ready_at, keyframe, count) in peers.take_written() {
            let histogram = if keyframe {
                &mut *idr_send_age
            } else {
                &mut *frame_send_age
            };
            histogram.record_n(sent_at.saturating_duration_since(ready_at), count);
        }
    }

    /// Reads the RTSP-over-UDP sockets within their budget: the RTP port's
    /// datagrams (NAT openers) are dropped, the RTCP port's receiver
    /// reports keep their sessions alive.
    fn read_udp(&mut self, now: Instant) {
        let Some(udp) = &self.rtp_udp else {
            return;
        };
        if self.udp_unread[0] {
            self.udp_unread[0] = udp.drain_rtp();
        }
        if self.udp_unread[1] {
            let heard = udp.read_rtcp();
            self.udp_unread[1] = heard.more;
            frames::rtcp_heard(&mut self.connections, &self.core, &heard.rtcp_from, now);
        }
    }
}

/// Frees the WebRTC peers of a camera whose encoder cannot start (their
/// video cannot come), and sends newly connected peers their camera's GOP
/// cache.
fn start_webrtc_peers(peers: &mut WebrtcPeers, cameras: &[ServedCamera], now: Instant) {
    for (index, served) in cameras.iter().enumerate() {
        if served.encoder_start_error().is_some() && served.webrtc.peers() > 0 {
            let freed = peers.remove_camera(index);
            log::warn!(
                "camera {}: {freed} WebRTC peers freed: its encoder cannot start",
                served.camera.name()
            );
        }
    }
    let gop = |camera: usize| {
        cameras[camera]
            .camera
            .gop_cache()
            .map_or(&[][..], |gop| gop.units())
    };
    peers.start_new_peers(gop, now);
}

/// Binds WebRTC's UDP socket (`--webrtc`; systemd's socket named
/// `webrtc` instead, if it passed one). A non-loopback address needs a
/// token, like every listener. Failing to bind an address `--webrtc`
/// named stops the start, like a listener's; failing to bind the default
/// one only turns WebRTC off (signalling answers 503), with a warning.
fn bind_webrtc(
    config: &ServerConfig,
    acceptor: &mut Acceptor,
    registry: &Registry,
) -> io::Result<Option<WebrtcUdp>> {
    let udp = if let Some(socket) = acceptor.inherited_webrtc.take() {
        let udp = WebrtcUdp::from_std(socket, registry, webrtc_token(0))?;
        for addr in udp.local_addrs() {
            accept::check_protected_mode(addr, config)?;
        }
        udp
    } else if let Some(addr) = config.webrtc_addr {
        accept::check_protected_mode(addr, config)?;
        match WebrtcUdp::bind(addr, registry, webrtc_token) {
            Ok(udp) => udp,
            Err(e) if config.webrtc_explicit => {
                let message = format!("cannot bind WebRTC's UDP socket {addr}: {e}");
                return Err(io::Error::new(e.kind(), message));
            }
            Err(e) => {
                log::warn!(
                    "cannot bind WebRTC's default UDP socket {addr}: {e}; WebRTC is off \
                     (--webrtc ADDR to choose another)"
                );
                return Ok(None);
            }
        }
    } else {
        return Ok(None);
    };
    log::info!(
        "WebRTC on UDP {}",
        udp.local_addrs()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(Some(udp))
}

/// Binds RTSP over UDP's two sockets on the first RTSP listener's address
/// (`--rtsp-udp-ports`). A failure is a warning, not an error: UDP
/// `SETUP`s then get 461, and TCP keeps working.
fn bind_rtp_udp(config: &ServerConfig, acceptor: &Acceptor, registry: &Registry) -> Option<RtpUdp> {
    let ports = config.rtsp_udp_ports?;
    let rtsp = acceptor.first_tcp_addr(ListenerKind::Rtsp)?;
    match RtpUdp::bind(rtsp.ip(), ports, registry, (RTP_UDP_TOKEN, RTCP_UDP_TOKEN)) {
        Ok(udp) => {
            log::info!(
                "RTSP over UDP from {}, ports {}-{}",
                rtsp.ip(),
                udp.ports.0,
                udp.ports.1
            );
            Some(udp)
        }
        Err(e) => {
            log::warn!(
                "cannot bind the RTSP UDP ports {}-{} on {}: {e}; UDP SETUPs get 461, TCP works",
                ports.0,
                ports.1,
                rtsp.ip()
            );
            None
        }
    }
}
