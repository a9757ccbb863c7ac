//! The listener table and everything that happens between `accept()` and a
//! connection in the slab.
//!
//! [`Acceptor`] binds (or takes from systemd) every listening socket,
//! refuses to serve a non-loopback address without a token whatever
//! created the socket (protected mode), accepts until `WouldBlock`, pauses
//! instead of failing when descriptors run out, and turns away clients
//! past `--max-clients` with one short line. It never reads a request: a
//! new connection goes into the slab and onto the loop's `to_drive` list.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};
use slab::Slab;

use super::cameras::CAMERA_TOKENS_END;
use super::connection::{ConnRef, Connection};
use super::control::{may_shut_down_without_auth, ControlSession};
use super::core::{Core, ServerConfig};
use super::http_session::HttpSession;
use super::listener::{self, Accepted, ListenerKind, ListenerSocket};
use super::rtsp_session::RtspSession;
use super::session::{Entry, Session};
use crate::http::response::MAX_CLIENTS_RESPONSE;

/// What an RTSP client past `--max-clients` reads before the close: it has
/// sent no request yet, so there is no `CSeq` to echo.
const MAX_CLIENTS_RTSP_RESPONSE: &[u8] = b"RTSP/1.0 503 Service Unavailable\r\n\r\n";

/// How long accepting pauses after the process ran out of descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The most listeners (flags, systemd and the Unix socket together), so
/// their tokens stay below the cameras'.
const MAX_LISTENERS: usize = 1000;
/// Listener `i` is registered with token `FIRST_LISTENER_TOKEN + i`. Slab
/// keys (connections) count up from 0 and never get this far; the tokens
/// above the listeners' belong to the cameras and the signal pipe.
pub const FIRST_LISTENER_TOKEN: usize = CAMERA_TOKENS_END - MAX_LISTENERS;

struct Listener {
    socket: ListenerSocket,
    kind: ListenerKind,
    /// For logs and the `listening` line.
    addr: String,
    /// Whether only this machine can reach it.
    loopback: bool,
}

/// Every listening socket, and whether accepting is paused.
pub struct Acceptor {
    listeners: Vec<Listener>,
    paused_until: Option<Instant>,
    /// Inside an episode of accept failures for lack of descriptors.
    exhausted: bool,
    /// WebRTC's UDP socket, if systemd passed one; the loop takes it.
    pub inherited_webrtc: Option<std::net::UdpSocket>,
}

impl Acceptor {
    /// Takes systemd's sockets, binds the configured addresses (a kind
    /// systemd passed sockets for is not bound again), checks protected
    /// mode on every one of them, and registers them.
    pub fn bind(config: &ServerConfig, registry: &Registry) -> io::Result<Acceptor> {
        let inherited = listener::systemd_listeners()?;
        let mut sockets = inherited.listeners;
        let configured = [
            (ListenerKind::Control, &config.control_addrs),
            (ListenerKind::Http, &config.http_addrs),
            (ListenerKind::Rtsp, &config.rtsp_addrs),
        ];
        // A kind systemd passed sockets for is not bound again.
        let wanted: Vec<(SocketAddr, ListenerKind)> = configured
            .into_iter()
            .filter(|(kind, _)| !sockets.iter().any(|(k, _)| k == kind))
            .flat_map(|(kind, addrs)| addrs.iter().map(move |addr| (*addr, kind)))
            .collect();
        for (addr, kind) in wanted {
            // Refuse before binding, so the error names the flag's address.
            check_protected_mode(addr, config)?;
            let socket = listener::bind_tcp(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            sockets.push((kind, socket));
        }
        if let Some(path) = &config.unix_path {
            let socket = listener::bind_unix(path).map_err(|e| {
                let path = path.display();
                io::Error::new(e.kind(), format!("cannot listen on {path}: {e}"))
            })?;
            sockets.push((ListenerKind::Control, socket));
        }
        if sockets.len() > MAX_LISTENERS {
            let message = format!("{} listeners; at most {MAX_LISTENERS}", sockets.len());
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        let mut listeners = Vec::with_capacity(sockets.len());
        for (index, (kind, mut socket)) in sockets.into_iter().enumerate() {
            // Sockets from systemd were bound by somebody else: check them too.
            if let Some(addr) = socket.tcp_addr() {
                check_protected_mode(addr, config)?;
            }
            let token = Token(FIRST_LISTENER_TOKEN + index);
            registry.register(&mut socket, token, Interest::READABLE)?;
            listeners.push(Listener {
                addr: socket.describe(),
                loopback: socket.is_loopback(),
                socket,
                kind,
            });
        }
        Ok(Acceptor {
            listeners,
            paused_until: None,
            exhausted: false,
            inherited_webrtc: inherited.webrtc,
        })
    }

    /// The addresses of one kind actually bound (real ports when 0 was asked).
    fn addrs(&self, kind: ListenerKind) -> Vec<String> {
        self.listeners
            .iter()
            .filter(|l| l.kind == kind)
            .map(|l| l.addr.clone())
            .collect()
    }

    /// `control=ADDR[,ADDR…] http=ADDR[,ADDR…]|off rtsp=ADDR[,ADDR…]|off`,
    /// with real ports.
    pub fn describe(&self) -> String {
        let list = |kind| {
            let addrs = self.addrs(kind);
            if addrs.is_empty() {
                "off".to_string()
            } else {
                addrs.join(",")
            }
        };
        let (control, http) = (list(ListenerKind::Control), list(ListenerKind::Http));
        let rtsp = list(ListenerKind::Rtsp);
        format!("control={control} http={http} rtsp={rtsp}")
    }

    /// The address of the first listener of `kind`, if there is one.
    pub fn first_tcp_addr(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .filter(|listener| listener.kind == kind)
            .find_map(|listener| listener.socket.tcp_addr())
    }

    /// How many listeners there are (their tokens follow
    /// [`FIRST_LISTENER_TOKEN`]).
    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    /// Until when accepting is paused, if it is.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Ends a pause that is over. Returns true if it did: no new edge comes
    /// for clients already waiting in the backlog, so the caller must try
    /// accepting on every listener now.
    pub fn resume_if_due(&mut self, now: Instant) -> bool {
        let due = self.paused_until.is_some_and(|until| now >= until);
        if due {
            self.paused_until = None;
        }
        due
    }

    /// Stops listening (shutdown): deregisters and closes every listener.
    pub fn close_all(&mut self, registry: &Registry) {
        for listener in &mut self.listeners {
            let _ = registry.deregister(&mut listener.socket);
        }
        self.listeners.clear();
    }

    /// Accepts on listener `index` until `WouldBlock`. Errors never end the
    /// server: running out of descriptors pauses accepting briefly;
    /// anything else concerns one connection and is skipped.
    pub fn accept_all(&mut self, index: usize, now: Instant, admit: &mut Admission) {
        if self.paused_until.is_some() {
            return;
        }
        let Some(listener) = self.listeners.get(index) else {
            return;
        };
        loop {
            match listener.socket.accept() {
                Ok(accepted) => {
                    if self.exhausted {
                        self.exhausted = false;
                        log::info!("accepting again ({} clients connected)", admit.core.clients);
                    }
                    admit.add(accepted, listener.kind, listener.loopback, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if crate::sys::is_resource_exhaustion(&e) => {
                    // One line per episode, not one per retry.
                    if !self.exhausted {
                        log::warn!(
                            "accept on {} failed: {e}; pausing accepts for {} ms at a time until \
                             descriptors free up ({} clients connected)",
                            listener.addr,
                            ACCEPT_PAUSE.as_millis(),
                            admit.core.clients
                        );
                        self.exhausted = true;
                    }
                    self.paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
                Err(e) => log::debug!("accept on {} failed: {e}", listener.addr),
            }
        }
    }
}

/// Resolves `--max-clients`: by default as many clients as descriptors
/// allow once the soft RLIMIT_NOFILE is raised to the hard limit, minus a
/// reserve for listeners, the poller, snapshot files and the camera.
pub fn client_limit(requested: Option<usize>) -> usize {
    let descriptor_limit = crate::sys::raise_descriptor_limit().unwrap_or(1024);
    let fd_budget = descriptor_limit
        .saturating_sub(crate::sys::RESERVED_DESCRIPTORS)
        .max(1) as usize;
    match requested {
        Some(requested) if requested > fd_budget => {
            log::warn!(
                "--max-clients {requested} is above the descriptor limit; the server \
                 pauses accepting when descriptors run out"
            );
            requested
        }
        Some(requested) => requested,
        None => fd_budget,
    }
}

/// Protected mode: a listener that other machines can reach needs a token
/// (or `--insecure-public`), like redis' protected mode.
pub fn check_protected_mode(addr: SocketAddr, config: &ServerConfig) -> io::Result<()> {
    if addr.ip().is_loopback() || config.token.is_some() || config.insecure_public {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "refusing to listen on {addr} without a token: anyone who can reach it could \
             capture images and shut the server down. Pass --token (or --token-file), or \
             --insecure-public if the network is trusted"
        ),
    ))
}

/// What adding a connection needs from the loop, borrowed for one accept burst.
pub struct Admission<'a> {
    /// The slab the connection goes into.
    pub connections: &'a mut Slab<Entry>,
    /// For counters, limits and the framing.
    pub core: &'a mut Core,
    /// To register the socket.
    pub registry: &'a Registry,
    /// The last connection id handed out.
    pub last_conn_id: &'a mut u64,
    /// New connections are driven by the loop from this list.
    pub to_drive: &'a mut Vec<ConnRef>,
}

impl Admission<'_> {
    /// Puts a new connection into the slab, or turns it away with one line
    /// when `--max-clients` is reached.
    fn add(
        &mut self,
        accepted: Accepted,
        kind: ListenerKind,
        listener_loopback: bool,
        now: Instant,
    ) {
        let Accepted {
            mut stream,
            peer,
            local_peer,
        } = accepted;
        let core = &mut *self.core;
        core.counters.connections_accepted += 1;
        if core.clients >= core.max_clients {
            core.counters.connections_refused += 1;
            // Best effort, one nonblocking write: the socket is new, so its
            // send buffer is empty and this short line fits.
            let refusal = match kind {
                ListenerKind::Control => core.config.framing.max_clients_refusal(),
                ListenerKind::Http => MAX_CLIENTS_RESPONSE,
                ListenerKind::Rtsp => MAX_CLIENTS_RTSP_RESPONSE,
            };
            let _ = io::Write::write(&mut stream, refusal);
            log::debug!("refused {peer}: max clients ({}) reached", core.max_clients);
            return;
        }
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        if key >= FIRST_LISTENER_TOKEN {
            return; // cannot happen before memory runs out; never alias a listener token
        }
        *self.last_conn_id += 1;
        let mut conn = Connection::new(*self.last_conn_id, stream, peer, now);
        let session = match kind {
            ListenerKind::Control => {
                let framing = core.config.framing;
                conn.output.push_bytes(framing.greeting());
                let may_shut_down = may_shut_down_without_auth(listener_loopback, local_peer);
                Session::Control(ControlSession::new(framing, may_shut_down))
            }
            ListenerKind::Http => Session::Http(Box::<HttpSession>::default()),
            ListenerKind::Rtsp => Session::Rtsp(Box::new(RtspSession::new(now))),
        };
        if let Err(e) = self
            .registry
            .register(&mut conn.socket, Token(key), Interest::READABLE)
        {
            log::warn!("cannot register {}: {e}", conn.peer);
            return;
        }
        match session {
            Session::Control(_) => core.control_clients += 1,
            Session::Http(_) => core.http_clients += 1,
            Session::Rtsp(_) => core.rtsp_clients += 1,
        }
        core.clients += 1;
        core.counters.clients_peak = core.counters.clients_peak.max(core.clients as u64);
        log::debug!("client {} connected (key {key})", conn.peer);
        self.to_drive.push(conn.conn_ref(key));
        entry.insert(Entry { conn, session });
    }
}
