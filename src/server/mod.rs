//! The event loop: one `mio::Poll` that owns every socket and the camera.
//!
//! Each iteration waits for readiness (or the nearest deadline), handles
//! the events, revisits connections whose read budget ran out, runs the
//! camera timer, serves every request waiting for a fresh frame with one
//! grab, and finally removes the connections closed during the iteration
//! (deferred, so a stale event can never reach a reused slab key).
//!
//! Rules this module keeps (DESIGN.md, "Event-loop rules"): drain to
//! `WouldBlock` within a per-connection budget; interest derived from
//! state; write at once and keep a cursor; backpressure instead of
//! unbounded buffers; deadlines from the nearest timer on the monotonic
//! clock; accept errors never end the server; graceful shutdown.

mod connection;
mod control;
mod http_session;
mod listener;
mod output;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::camera::pipeline::{Camera, SharedFrame};
use crate::camera::CameraError;
use crate::protocol::Framing;
use crate::snapshot::{SavedSnapshot, SnapshotWriter};
use crate::stats::Counters;
use connection::{
    is_peer_gone, CloseReason, Connection, Readiness, Session, OUTPUT_HARD_CAP_BYTES,
    READ_BUDGET_BYTES,
};
use control::ControlSession;
use http_session::{HttpSession, Offer};

pub use listener::{bind_listener, ListenerKind, ListenerSocket, Stream, LISTEN_BACKLOG};
pub use output::OutputQueue;

/// The shared read buffer: every socket is read into this one buffer, so
/// an idle connection owns no input buffer at all.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// How long accepting pauses after the process ran out of descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long shutdown waits for clients to read what they are owed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How often connection deadlines are checked while any exist.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Events fetched per `poll()`.
const EVENTS_CAPACITY: usize = 1024;

/// Tokens at the top of the range belong to listeners and signals; slab
/// keys (connections) count up from 0 and never get there.
const SIGNAL_TOKEN: Token = Token(usize::MAX);
const FIRST_LISTENER_TOKEN: usize = usize::MAX - 64;

/// Everything `serve` needs, resolved from the CLI.
pub struct ServerConfig {
    /// Control-port addresses to listen on.
    pub control_addrs: Vec<SocketAddr>,
    /// `--unix PATH`: a Unix socket for the control port.
    pub unix_path: Option<std::path::PathBuf>,
    /// HTTP addresses to listen on; empty for `--http off`.
    pub http_addrs: Vec<SocketAddr>,
    /// A stream viewer whose socket stays busy this long is dropped.
    pub stream_stall_timeout: Duration,
    /// Any other client whose pending output makes no progress this long is
    /// dropped (it stopped reading).
    pub output_stall_timeout: Duration,
    /// Close control clients silent for this long (off by default: the
    /// classic clients hold connections open indefinitely).
    pub control_idle_timeout: Option<Duration>,
    /// Framing for control connections.
    pub framing: Framing,
    /// `--token`: clients must `auth` with it first.
    pub token: Option<String>,
    /// `--max-clients`; None means "from the descriptor limit".
    pub max_clients: Option<usize>,
}

/// A request waiting for a fresh frame.
pub(crate) struct FrameWaiter {
    key: usize,
    conn_id: u64,
    /// The camera's grab count when the request arrived: the frame it gets
    /// must be newer.
    seen_seq: u64,
    wants_snapshot: bool,
}

/// The result of one grab shared by every waiter.
pub(crate) struct FrameOutcome {
    frame: Result<SharedFrame, CameraError>,
    snapshot: Option<Result<SavedSnapshot, String>>,
}

/// State shared by all connections, borrowed alongside the slab.
pub(crate) struct Core {
    config: ServerConfig,
    camera: Camera,
    snapshots: SnapshotWriter,
    counters: Counters,
    started_at: Instant,
    frame_waiters: Vec<FrameWaiter>,
    shutdown_requested: bool,
    clients: usize,
    /// Connections with output the kernel would not take (see
    /// `Connection::write_blocked_since`); the stall sweep runs while any exist.
    blocked_writers: usize,
    control_clients: usize,
    http_clients: usize,
    /// Stream viewers as (slab key, connection id): a frame is offered to
    /// these only, not to every connection.
    viewers: Vec<(usize, u64)>,
    max_clients: usize,
    /// Reused by the decoder so decoding allocates nothing per read.
    scratch_requests: Vec<crate::protocol::Request>,
}

impl Core {
    /// Limits and the rarer counters, reported the same way by `stats`,
    /// `/state` and `/metrics` (0 means "off" for the optional timeouts).
    /// The stream counters `/state` has anyway are added for `stats` only.
    fn more_stats(&self) -> Vec<(&'static str, u64)> {
        let counters = &self.counters;
        let seconds = |d: Option<Duration>| d.map_or(0, |d| d.as_secs());
        vec![
            ("clients_peak", counters.clients_peak),
            ("frames_passthrough", self.camera.frames_passthrough),
            ("clients_dropped", counters.clients_dropped),
            ("connections_refused", counters.connections_refused),
            ("auth_failures", counters.auth_failures),
            ("max_line_bytes", crate::protocol::MAX_LINE_BYTES as u64),
            (
                "max_http_head_bytes",
                crate::http::request::MAX_HEAD_BYTES as u64,
            ),
            (
                "output_soft_cap_bytes",
                connection::OUTPUT_SOFT_CAP_BYTES as u64,
            ),
            ("output_hard_cap_bytes", OUTPUT_HARD_CAP_BYTES as u64),
            ("idle_timeout_s", seconds(self.config.control_idle_timeout)),
            (
                "output_stall_timeout_s",
                self.config.output_stall_timeout.as_secs(),
            ),
            (
                "stream_stall_timeout_s",
                self.config.stream_stall_timeout.as_secs(),
            ),
            (
                "http_head_timeout_s",
                http_session::HTTP_HEAD_TIMEOUT.as_secs(),
            ),
            (
                "http_idle_timeout_s",
                http_session::HTTP_IDLE_TIMEOUT.as_secs(),
            ),
        ]
    }

    /// A copy of everything `/state` and `/metrics` report.
    fn state_view(&self, now: Instant) -> crate::http::response::StateView {
        use crate::http::response::{HistogramView, StateView, LATENCY_BUCKETS_US};
        let camera = self.camera.status(now);
        let counters = &self.counters;
        StateView {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: now.duration_since(self.started_at).as_secs(),
            camera: camera.name,
            camera_ok: camera.ok,
            camera_error: camera.error,
            width: camera.width,
            height: camera.height,
            fps_x100: camera.fps_x100,
            control_clients: self.control_clients as u64,
            http_clients: self.http_clients as u64,
            stream_viewers: self.viewers.len() as u64,
            frames_grabbed: self.camera.frames_grabbed,
            frames_encoded: self.camera.frames_encoded,
            frames_sent: counters.frames_sent,
            frames_dropped: counters.frames_dropped,
            viewers_dropped: counters.viewers_dropped,
            snapshots: counters.snapshots,
            snapshot_errors: counters.snapshot_errors,
            last_snapshot: self.snapshots.last_saved().map(|s| s.file_name.clone()),
            requests: counters.requests,
            errors: counters.errors,
            bytes_in: counters.bytes_in,
            bytes_out: counters.bytes_out,
            grab_us: HistogramView::from_hdr(self.camera.grab_time.histogram(), LATENCY_BUCKETS_US),
            more: [("clients_max", self.max_clients as u64)]
                .into_iter()
                .chain(self.more_stats())
                .collect(),
            encode_us: HistogramView::from_hdr(
                self.camera.encode_time.histogram(),
                LATENCY_BUCKETS_US,
            ),
        }
    }
}

struct Listener {
    socket: ListenerSocket,
    kind: ListenerKind,
    /// For logs and the `listening` line.
    addr: String,
}

/// The server: the poller, the listeners, the connections and the core.
pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    signals: Signals,
    connections: Slab<Connection>,
    core: Core,
    read_buffer: Box<[u8]>,
    next_conn_id: u64,
    /// Connections whose read budget ran out while still readable.
    revisit: Vec<(usize, u64)>,
    /// Connections closed this iteration, removed at its end.
    closing: Vec<usize>,
    accept_paused_until: Option<Instant>,
    /// Inside an episode of accept failures for lack of descriptors.
    accept_exhausted: bool,
    shutdown_deadline: Option<Instant>,
    next_sweep_at: Option<Instant>,
}

impl Server {
    /// Binds every listener and registers them; nothing is served until
    /// [`Server::run`].
    pub fn bind(
        config: ServerConfig,
        camera: Camera,
        snapshots: SnapshotWriter,
    ) -> io::Result<Server> {
        let poll = Poll::new()?;
        let descriptor_limit = crate::sys::raise_descriptor_limit().unwrap_or(1024);
        crate::sys::ignore_file_size_signal();
        let fd_budget = descriptor_limit
            .saturating_sub(crate::sys::RESERVED_DESCRIPTORS)
            .max(1) as usize;
        let max_clients = match config.max_clients {
            Some(requested) if requested > fd_budget => {
                log::warn!(
                    "--max-clients {requested} is above the descriptor limit; the server \
                     pauses accepting when descriptors run out"
                );
                requested
            }
            Some(requested) => requested,
            None => fd_budget,
        };
        // Sockets from systemd take the place of the flags for their kind.
        let mut listeners: Vec<Listener> = listener::systemd_listeners()?
            .into_iter()
            .map(|(kind, socket)| Listener {
                addr: socket.describe(),
                socket,
                kind,
            })
            .collect();
        let activated = |kind| listeners.iter().any(|l: &Listener| l.kind == kind);
        let (control_activated, http_activated) = (
            activated(ListenerKind::Control),
            activated(ListenerKind::Http),
        );
        let control_addrs = config.control_addrs.iter().filter(|_| !control_activated);
        let http_addrs = config.http_addrs.iter().filter(|_| !http_activated);
        let wanted = (control_addrs.map(|a| (*a, ListenerKind::Control)))
            .chain(http_addrs.map(|a| (*a, ListenerKind::Http)));
        for (addr, kind) in wanted {
            let socket = bind_listener(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            let socket = ListenerSocket::Tcp(socket);
            listeners.push(Listener {
                addr: socket.describe(),
                socket,
                kind,
            });
        }
        if let Some(path) = &config.unix_path {
            let socket = listener::bind_unix(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", path.display()),
                )
            })?;
            listeners.push(Listener {
                addr: socket.describe(),
                socket,
                kind: ListenerKind::Control,
            });
        }
        for (index, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(
                &mut listener.socket,
                Token(FIRST_LISTENER_TOKEN + index),
                Interest::READABLE,
            )?;
        }
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        Ok(Server {
            poll,
            listeners,
            signals,
            connections: Slab::new(),
            core: Core {
                config,
                camera,
                snapshots,
                counters: Counters::default(),
                started_at: Instant::now(),
                frame_waiters: Vec::new(),
                shutdown_requested: false,
                clients: 0,
                blocked_writers: 0,
                control_clients: 0,
                http_clients: 0,
                viewers: Vec::new(),
                max_clients,
                scratch_requests: Vec::new(),
            },
            read_buffer: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            next_conn_id: 0,
            revisit: Vec::new(),
            closing: Vec::new(),
            accept_paused_until: None,
            accept_exhausted: false,
            shutdown_deadline: None,
            next_sweep_at: None,
        })
    }

    /// The control addresses actually bound (real ports when 0 was asked).
    pub fn control_addrs(&self) -> Vec<String> {
        self.bound_addrs(ListenerKind::Control)
    }

    /// The HTTP addresses actually bound.
    pub fn http_addrs(&self) -> Vec<String> {
        self.bound_addrs(ListenerKind::Http)
    }

    fn bound_addrs(&self, kind: ListenerKind) -> Vec<String> {
        self.listeners
            .iter()
            .filter(|l| l.kind == kind)
            .map(|l| l.addr.clone())
            .collect()
    }

    /// Runs the loop until a signal or `shutdown` ends it gracefully.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    SIGNAL_TOKEN => self.on_signal(),
                    Token(t) if t >= FIRST_LISTENER_TOKEN => {
                        self.accept_all(t - FIRST_LISTENER_TOKEN, now)
                    }
                    Token(key) => {
                        // Events are hints: record them and let the state
                        // machine find out what is really possible.
                        if let Some(conn) = self.connections.get_mut(key) {
                            let r = &mut conn.readiness;
                            r.readable |=
                                event.is_readable() || event.is_read_closed() || event.is_error();
                            r.writable |=
                                event.is_writable() || event.is_write_closed() || event.is_error();
                            self.drive(key, now);
                        }
                    }
                }
            }
            // A connection driven twice this iteration is listed twice; and
            // a key may have been reused since, hence the id check.
            let mut revisit = std::mem::take(&mut self.revisit);
            revisit.sort_unstable();
            revisit.dedup();
            for (key, id) in revisit {
                if self.connections.get(key).is_some_and(|c| c.id == id) {
                    self.drive(key, now);
                }
            }
            self.run_timers(now);
            self.serve_frame_waiters(now);
            if self.core.shutdown_requested && self.shutdown_deadline.is_none() {
                self.begin_shutdown(now);
            }
            self.remove_closed();
            if let Some(deadline) = self.shutdown_deadline {
                if self.connections.is_empty() || Instant::now() >= deadline {
                    break;
                }
            }
        }
        self.finish_shutdown();
        Ok(())
    }

    /// The time until the nearest deadline; zero when work is already
    /// waiting; None (sleep until an event) when there is no deadline at all.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.revisit.is_empty() || !self.core.frame_waiters.is_empty() {
            return Some(Duration::ZERO);
        }
        [
            self.core.camera.next_deadline(self.is_streaming()),
            self.accept_paused_until,
            self.shutdown_deadline,
            self.next_sweep_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|deadline| deadline.saturating_duration_since(now))
    }

    /// Whether anybody wants frames continuously (stream viewers).
    fn is_streaming(&self) -> bool {
        !self.core.viewers.is_empty()
    }

    fn run_timers(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|until| now >= until) {
            self.accept_paused_until = None;
            // No new edge will come for connections already waiting in the
            // backlog, so try accepting now.
            for index in 0..self.listeners.len() {
                self.accept_all(index, now);
            }
        }
        let streaming = self.is_streaming();
        if let Some(frame) = self.core.camera.on_timer(now, streaming) {
            self.broadcast(&frame, now);
        }
        if self.next_sweep_at.is_some_and(|at| now >= at) {
            self.next_sweep_at = None;
            self.sweep_timeouts(now);
        }
        // Keep an existing sweep time: rescheduling it on every iteration
        // would push it forward forever on a busy loop.
        if !self.needs_sweep() {
            self.next_sweep_at = None;
        } else if self.next_sweep_at.is_none() {
            self.next_sweep_at = Some(now + SWEEP_INTERVAL);
        }
    }

    /// Whether any connection is held to a deadline (HTTP header and idle
    /// timeouts, the optional control idle timeout).
    fn needs_sweep(&self) -> bool {
        self.core.http_clients > self.core.viewers.len()
            || self.core.blocked_writers > 0
            || (self.core.config.control_idle_timeout.is_some() && self.core.control_clients > 0)
    }

    /// Closes connections past their deadline. Runs once per
    /// [`SWEEP_INTERVAL`], and only while some connection has a deadline,
    /// so an idle server still sleeps without any timer.
    fn sweep_timeouts(&mut self, now: Instant) {
        let config = &self.core.config;
        let expired: Vec<(usize, bool)> = self
            .connections
            .iter()
            .filter(|(_, conn)| !conn.closed)
            .filter_map(|(key, conn)| {
                let stall_limit = if conn.is_viewer() {
                    config.stream_stall_timeout
                } else {
                    config.output_stall_timeout
                };
                if conn
                    .write_blocked_since
                    .is_some_and(|since| now >= since + stall_limit)
                {
                    return Some((key, true));
                }
                if conn.close_after_flush {
                    return None;
                }
                let deadline = match &conn.session {
                    Session::Http(http) => http.deadline(conn.last_activity),
                    Session::Control(_) => config
                        .control_idle_timeout
                        .map(|idle| conn.last_activity + idle),
                };
                deadline
                    .is_some_and(|deadline| now >= deadline)
                    .then_some((key, false))
            })
            .collect();
        for (key, stalled) in expired {
            let Some(conn) = self.connections.get_mut(key) else {
                continue;
            };
            if stalled {
                // Linux raises WRITABLE only once a third of the send buffer
                // is free, which a slow but steady reader may not reach
                // within the timeout. Events are hints: try the write, and
                // judge by whether it moved anything.
                conn.readiness.writable = true;
                let stalled_since = conn.write_blocked_since;
                self.drive(key, now);
                let Some(conn) = self.connections.get_mut(key) else {
                    continue;
                };
                if conn.closed || conn.write_blocked_since != stalled_since {
                    continue; // it wrote something (or finished): not stalled
                }
                let why = if conn.is_viewer() {
                    self.core.counters.viewers_dropped += 1;
                    "stream viewer stalled"
                } else {
                    self.core.counters.clients_dropped += 1;
                    "stopped reading its replies"
                };
                self.close(key, CloseReason::Dropped(why));
                continue;
            }
            log::debug!("client {} timed out", conn.peer);
            if matches!(conn.session, Session::Http(_)) {
                conn.http_timeout(&mut self.core);
            } else {
                conn.close_after_flush = true;
            }
            self.drive(key, now);
        }
    }

    /// Offers a new frame to every stream viewer: one encode, shared bytes,
    /// and a viewer that is still busy with the previous frame skips this one.
    fn broadcast(&mut self, frame: &SharedFrame, now: Instant) {
        let camera_interval = self.core.camera.stream_interval();
        // A copy, because driving a viewer may close it (and so change the list).
        for (key, id) in self.core.viewers.clone() {
            let Some(conn) = self.connections.get_mut(key) else {
                continue;
            };
            if conn.closed || conn.id != id {
                continue;
            }
            match conn.offer_frame(frame, now, camera_interval) {
                Offer::NotViewing => {}
                Offer::Sent => {
                    self.core.counters.frames_sent += 1;
                    self.drive(key, now);
                }
                Offer::Skipped => self.core.counters.frames_dropped += 1,
            }
        }
    }

    /// Records SIGINT/SIGTERM; the loop begins the shutdown after this
    /// iteration, the same way as for the `shutdown` request.
    fn on_signal(&mut self) {
        for signal in self.signals.pending() {
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            log::info!("{name} received, shutting down");
            self.core.shutdown_requested = true;
        }
    }

    /// Accepts until `WouldBlock`. Errors never end the server: running
    /// out of descriptors pauses accepting briefly; anything else concerns
    /// one connection and is skipped.
    fn accept_all(&mut self, index: usize, now: Instant) {
        if self.accept_paused_until.is_some() || self.shutdown_deadline.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            let accepted = listener.socket.accept();
            let kind = listener.kind;
            match accepted {
                Ok((socket, peer, is_local)) => {
                    if self.accept_exhausted {
                        self.accept_exhausted = false;
                        log::info!("accepting again ({} clients connected)", self.core.clients);
                    }
                    self.add_connection(socket, peer, kind, is_local, now)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if crate::sys::is_resource_exhaustion(&e) => {
                    // One line per episode, not one per retry.
                    if !self.accept_exhausted {
                        log::warn!(
                            "accept on {} failed: {e}; pausing accepts for {} ms at a time until \
                             descriptors free up ({} clients connected)",
                            self.listeners[index].addr,
                            ACCEPT_PAUSE.as_millis(),
                            self.core.clients
                        );
                        self.accept_exhausted = true;
                    }
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
                Err(e) => log::debug!("accept on {} failed: {e}", self.listeners[index].addr),
            }
        }
    }

    fn add_connection(
        &mut self,
        mut socket: Stream,
        peer: String,
        kind: ListenerKind,
        is_local: bool,
        now: Instant,
    ) {
        self.core.counters.connections_accepted += 1;
        if self.core.clients >= self.core.max_clients {
            self.core.counters.connections_refused += 1;
            // Best effort, one nonblocking write: the socket is new, so its
            // send buffer is empty and this short line fits.
            let refusal: &[u8] = match kind {
                ListenerKind::Control => b"ERR limit: max clients reached\n",
                ListenerKind::Http => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\nConnection: close\r\n\r\nmax clients reached\n",
            };
            let _ = io::Write::write(&mut socket, refusal);
            log::debug!(
                "refused {peer}: max clients ({}) reached",
                self.core.max_clients
            );
            return;
        }
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        if key >= FIRST_LISTENER_TOKEN {
            return; // cannot happen before memory runs out; never alias a listener token
        }
        let framing = self.core.config.framing;
        let session = match kind {
            ListenerKind::Control => {
                self.core.control_clients += 1;
                Session::Control(ControlSession::new(framing, is_local))
            }
            ListenerKind::Http => {
                self.core.http_clients += 1;
                Session::Http(HttpSession::new())
            }
        };
        self.next_conn_id += 1;
        let mut conn = Connection {
            id: self.next_conn_id,
            socket,
            peer: peer.clone(),
            readiness: Readiness {
                readable: true, // data may have arrived before we registered
                writable: true,
            },
            registered: Interest::READABLE,
            output: OutputQueue::default(),
            input_closed: false,
            close_after_flush: false,
            closed: false,
            last_activity: now,
            write_blocked_since: None,
            session,
        };
        if kind == ListenerKind::Control {
            conn.output.push_bytes(ControlSession::greeting(framing));
        }
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut conn.socket, Token(key), Interest::READABLE)
        {
            log::warn!("cannot register {peer}: {e}");
            self.forget_connection(&conn);
            return;
        }
        entry.insert(conn);
        self.core.clients += 1;
        self.core.counters.clients_peak = self
            .core
            .counters
            .clients_peak
            .max(self.core.clients as u64);
        log::debug!("client {peer} connected (key {key})");
        self.drive(key, now);
    }

    /// Does everything a connection can do right now: write, run queued
    /// requests, read (within the budget) and handle what was read; then
    /// re-register interest if the state calls for a different one.
    fn drive(&mut self, key: usize, now: Instant) {
        let Server {
            connections,
            core,
            read_buffer,
            revisit,
            ..
        } = self;
        let Some(conn) = connections.get_mut(key) else {
            return;
        };
        if conn.closed {
            return;
        }
        let result = service(conn, core, key, read_buffer, now);
        // Track "output the kernel will not take": the stall sweep drops a
        // connection that stays that way (a client that stopped reading).
        match (conn.output.is_empty(), conn.write_blocked_since) {
            (false, None) => {
                conn.write_blocked_since = Some(now);
                core.blocked_writers += 1;
            }
            (true, Some(_)) => {
                conn.write_blocked_since = None;
                core.blocked_writers -= 1;
            }
            _ => {}
        }
        let over_hard_cap = conn.output.pending_bytes() > OUTPUT_HARD_CAP_BYTES;
        match result {
            Ok(()) if over_hard_cap => {
                core.counters.clients_dropped += 1;
                self.close(key, CloseReason::Dropped("output over its hard cap"))
            }
            Ok(()) if conn.is_finished() => self.close(key, CloseReason::Done),
            Ok(()) => {
                if conn.readiness.readable && conn.wants_read() {
                    revisit.push((key, conn.id));
                }
                self.update_interest(key);
            }
            Err(reason) => self.close(key, reason),
        }
    }

    fn update_interest(&mut self, key: usize) {
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        let desired = conn.desired_interest();
        if desired != conn.registered {
            match self
                .poll
                .registry()
                .reregister(&mut conn.socket, Token(key), desired)
            {
                Ok(()) => conn.registered = desired,
                Err(e) => {
                    log::warn!("cannot reregister {}: {e}", conn.peer);
                    self.close(key, CloseReason::Dropped("reregister failed"));
                }
            }
        }
    }

    /// Deregisters now, removes from the slab at the end of the iteration.
    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        if conn.closed {
            return;
        }
        conn.closed = true;
        let _ = self.poll.registry().deregister(&mut conn.socket);
        if matches!(reason, CloseReason::Done) && !conn.input_closed {
            // Closing with unread input makes the kernel send a reset,
            // which can destroy the last reply (an `ERR`, a 4xx) before the
            // client reads it. Read what is already there, then close.
            conn.discard_pending_input();
        }
        match reason {
            CloseReason::Done => log::debug!("client {} disconnected", conn.peer),
            CloseReason::Io(e) if is_peer_gone(&e) => {
                log::debug!("client {} went away: {e}", conn.peer)
            }
            CloseReason::Io(e) => log::info!("client {} closed on error: {e}", conn.peer),
            CloseReason::Dropped(why) => {
                self.core.counters.errors += 1;
                log::warn!("dropped client {}: {why}", conn.peer)
            }
        }
        self.closing.push(key);
    }

    fn remove_closed(&mut self) {
        for key in std::mem::take(&mut self.closing) {
            if let Some(conn) = self.connections.try_remove(key) {
                self.core.clients -= 1;
                self.forget_connection(&conn);
            }
        }
    }

    /// Keeps the per-kind client counts right when a connection goes.
    fn forget_connection(&mut self, conn: &Connection) {
        if conn.write_blocked_since.is_some() {
            self.core.blocked_writers -= 1;
        }
        match &conn.session {
            Session::Control(_) => self.core.control_clients -= 1,
            Session::Http(http) => {
                self.core.http_clients -= 1;
                if http.is_viewer() {
                    self.core.viewers.retain(|&(_, id)| id != conn.id);
                }
            }
        }
    }

    /// One grab (or a reused newer frame) for every request waiting, at
    /// most one snapshot write, then each waiter is answered in turn.
    fn serve_frame_waiters(&mut self, now: Instant) {
        if self.core.frame_waiters.is_empty() {
            return;
        }
        let waiters = std::mem::take(&mut self.core.frame_waiters);
        let newer_than = waiters.iter().map(|w| w.seen_seq).max().unwrap_or(0);
        let frame = self.core.camera.fresh_frame(now, newer_than);
        let snapshot = match &frame {
            Ok(frame) if waiters.iter().any(|w| w.wants_snapshot) => {
                let saved = self.core.snapshots.write(&frame.jpeg);
                match &saved {
                    Ok(s) => {
                        self.core.counters.snapshots += 1;
                        log::info!(
                            "snapshot {} ({}x{}, {} bytes, frame {})",
                            s.file_name,
                            frame.width,
                            frame.height,
                            frame.jpeg.len(),
                            frame.seq
                        );
                    }
                    Err(reason) => {
                        self.core.counters.snapshot_errors += 1;
                        log::warn!("snapshot failed: {reason}");
                    }
                }
                Some(saved)
            }
            _ => None,
        };
        let outcome = FrameOutcome { frame, snapshot };
        for waiter in waiters {
            let Some(conn) = self.connections.get_mut(waiter.key) else {
                continue;
            };
            if conn.id != waiter.conn_id || conn.closed {
                continue; // the requester left meanwhile
            }
            conn.frame_ready(&mut self.core, &outcome);
            self.drive(waiter.key, now);
        }
    }

    /// Stops accepting and asks every connection to finish: what is
    /// already queued for a client is still written, for up to
    /// [`SHUTDOWN_GRACE`].
    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(now + SHUTDOWN_GRACE);
        crate::sys::notify_systemd("STOPPING=1");
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        self.listeners.clear();
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            if let Some(conn) = self.connections.get_mut(key) {
                conn.close_after_flush = true;
            }
            self.drive(key, now);
        }
    }

    fn finish_shutdown(&mut self) {
        let unflushed = self
            .connections
            .iter()
            .filter(|(_, c)| !c.closed && !c.output.is_empty())
            .count();
        if unflushed > 0 {
            log::warn!("{unflushed} clients had unread output when the shutdown grace ended");
        }
        for (_, conn) in self.connections.iter_mut() {
            if !conn.closed {
                let _ = self.poll.registry().deregister(&mut conn.socket);
            }
        }
        self.connections.clear();
        self.core.camera.close();
        log::info!(
            "stopped after {} s: {} connections, {} requests",
            self.core.started_at.elapsed().as_secs(),
            self.core.counters.connections_accepted,
            self.core.counters.requests
        );
    }
}

/// The socket work for one connection: flush, run what is queued, read
/// within the budget and handle the input, flush again.
fn service(
    conn: &mut Connection,
    core: &mut Core,
    key: usize,
    read_buffer: &mut [u8],
    now: Instant,
) -> Result<(), CloseReason> {
    let mut budget = READ_BUDGET_BYTES;
    loop {
        core.counters.bytes_out += conn.flush(now)? as u64;
        conn.session_run_queued(core, key, now);
        core.counters.bytes_out += conn.flush(now)? as u64;
        if !conn.readiness.readable || !conn.wants_read() || budget == 0 {
            return Ok(());
        }
        let limit = conn.max_read_bytes().min(budget).min(read_buffer.len());
        let read = conn.read_into(&mut read_buffer[..limit], now)?;
        if read == 0 {
            continue; // WouldBlock or EOF: flags updated, loop ends above
        }
        budget -= read;
        core.counters.bytes_in += read as u64;
        conn.session_input(core, key, &read_buffer[..read], now);
    }
}
