//! Per-connection state and the socket work for one readiness event.
//!
//! A [`Connection`] is one slab entry: the socket, what the OS last said
//! about it ([`Readiness`]), its pending output and its protocol session.
//! [`Connection::desired_interest`] derives the mio interest from that
//! state, so interest is never toggled by hand in scattered places.

use std::io::{self, Read};
use std::time::Instant;

use mio::Interest;

use super::control::ControlSession;
use super::http_session::HttpSession;
use super::listener::Stream;
use super::output::OutputQueue;
use super::{Core, FrameOutcome};

/// Above this much pending output a connection is not read from (nor are
/// its queued requests run): a client that pipelines without reading is
/// slowed down, not dropped, and its memory stays bounded.
pub const OUTPUT_SOFT_CAP_BYTES: usize = 256 * 1024;

/// A connection whose pending output passes this is dropped at once. The
/// soft cap stops a client's requests from running long before that, so
/// only a pathological reply could get here; it is the last safety net
/// (like redis' client-output-buffer-limit hard limit).
pub const OUTPUT_HARD_CAP_BYTES: usize = 8 * 1024 * 1024;

/// At most this much unread input is drained before a close (see
/// [`Connection::discard_pending_input`]).
pub const LINGER_DRAIN_BYTES: usize = 64 * 1024;

/// Bytes read from one connection per readiness event before the loop
/// moves on to the others; the connection is then revisited right after
/// (fairness: one busy client cannot starve the rest).
pub const READ_BUDGET_BYTES: usize = 64 * 1024;

/// What the OS has told us about the socket and we have not used up yet.
/// With edge-triggered readiness, "readable" stays true until a read
/// returns `WouldBlock`: that, not the event, is the proof it is drained.
#[derive(Debug, Default, Clone, Copy)]
pub struct Readiness {
    /// Data (or EOF) may be waiting.
    pub readable: bool,
    /// The send buffer may have room.
    pub writable: bool,
}

/// Why a connection ends.
#[derive(Debug)]
pub enum CloseReason {
    /// The conversation is over (exit, EOF after the last reply).
    Done,
    /// The peer broke the connection (reset, broken pipe).
    Io(io::Error),
    /// We dropped it for cause; the text is logged.
    Dropped(&'static str),
}

/// The protocol spoken on a connection.
pub enum Session {
    /// The control port.
    Control(ControlSession),
    /// The HTTP port.
    Http(HttpSession),
}

/// One client connection.
pub struct Connection {
    /// Unique for the life of the process; a slab key is reused, this is not,
    /// so work queued for a connection can check it still exists.
    pub id: u64,
    /// The socket.
    pub socket: Stream,
    /// The peer's address, for logs.
    pub peer: String,
    /// What the OS reported.
    pub readiness: Readiness,
    /// The interest currently registered with the poller.
    pub registered: Interest,
    /// Replies not yet written.
    pub output: OutputQueue,
    /// The peer sent EOF; finish what is pending, then close.
    pub input_closed: bool,
    /// Close once the output is written (after `exit`, an error, shutdown).
    pub close_after_flush: bool,
    /// Marked for removal at the end of this loop iteration.
    pub closed: bool,
    /// Last time bytes moved either way.
    pub last_activity: Instant,
    /// Since when output has been pending without the kernel taking any of
    /// it (reset on every write that makes progress). A client stuck like
    /// this past its stall timeout has stopped reading and is dropped.
    pub write_blocked_since: Option<Instant>,
    /// The protocol state.
    pub session: Session,
}

impl Connection {
    /// Whether the loop should read from the socket now.
    pub fn wants_read(&self) -> bool {
        !self.input_closed
            && !self.close_after_flush
            && self.output.pending_bytes() < OUTPUT_SOFT_CAP_BYTES
            && match &self.session {
                Session::Control(control) => control.accepts_input(),
                Session::Http(http) => http.accepts_input(),
            }
    }

    /// The interest this connection's state calls for: readable unless it
    /// is backpressured or done reading, writable only while output is
    /// pending. mio needs a non-empty interest; READABLE is the harmless
    /// default (a spurious event only sets a flag).
    pub fn desired_interest(&self) -> Interest {
        match (self.wants_read(), !self.output.is_empty()) {
            (_, false) => Interest::READABLE,
            (false, true) => Interest::WRITABLE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
        }
    }

    /// Whether everything is said and the socket can be closed.
    pub fn is_finished(&self) -> bool {
        let idle_session = match &self.session {
            Session::Control(control) => control.is_idle(),
            Session::Http(http) => http.is_idle(),
        };
        (self.close_after_flush || self.input_closed) && self.output.is_empty() && idle_session
    }

    /// Whether this connection receives the MJPEG stream.
    pub fn is_viewer(&self) -> bool {
        matches!(&self.session, Session::Http(http) if http.is_viewer())
    }

    /// How much the next `read()` may take.
    pub fn max_read_bytes(&self) -> usize {
        match &self.session {
            Session::Control(control) => control.max_read_bytes(),
            Session::Http(_) => READ_BUDGET_BYTES,
        }
    }

    /// Hands one read's bytes to the protocol session.
    pub fn session_input(&mut self, core: &mut Core, key: usize, bytes: &[u8], now: Instant) {
        match self.session {
            Session::Control(_) => self.control_input(core, key, bytes, now),
            Session::Http(_) => self.http_input(core, key, bytes, now),
        }
    }

    /// Lets the session run requests that had to wait.
    pub fn session_run_queued(&mut self, core: &mut Core, key: usize, now: Instant) {
        match self.session {
            Session::Control(_) => self.control_run_queued(core, key, now),
            Session::Http(_) => self.http_run_queued(core, key, now),
        }
    }

    /// Completes the request that waited for a fresh frame.
    pub fn frame_ready(&mut self, core: &mut Core, outcome: &FrameOutcome) {
        match self.session {
            Session::Control(_) => self.control_frame_ready(core, outcome),
            Session::Http(_) => self.http_frame_ready(core, outcome),
        }
    }

    /// Writes pending output if the socket may take it. Returns the bytes
    /// written.
    pub fn flush(&mut self, now: Instant) -> Result<usize, CloseReason> {
        if !self.readiness.writable || self.output.is_empty() {
            return Ok(0);
        }
        let progress = self
            .output
            .write_to(&mut self.socket)
            .map_err(CloseReason::Io)?;
        if progress.blocked {
            self.readiness.writable = false;
        }
        if progress.written > 0 {
            self.last_activity = now;
            if self.write_blocked_since.is_some() {
                self.write_blocked_since = Some(now);
            }
        }
        Ok(progress.written)
    }

    /// Reads and drops input already waiting (at most
    /// [`LINGER_DRAIN_BYTES`]) and shuts down our sending side, so that
    /// closing does not turn into a reset that loses the last reply.
    pub fn discard_pending_input(&mut self) {
        let mut scratch = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_DRAIN_BYTES {
            match self.socket.read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.socket.shutdown_write();
    }

    /// One `read()` into `buf`, retrying `Interrupted`. Returns the bytes
    /// read, with `Ok(0)` meaning "nothing now" (the readable flag is
    /// cleared on `WouldBlock`, `input_closed` set on EOF).
    pub fn read_into(&mut self, buf: &mut [u8], now: Instant) -> Result<usize, CloseReason> {
        loop {
            match self.socket.read(buf) {
                Ok(0) => {
                    self.input_closed = true;
                    self.readiness.readable = false;
                    return Ok(0);
                }
                Ok(n) => {
                    self.last_activity = now;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readiness.readable = false;
                    return Ok(0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CloseReason::Io(e)),
            }
        }
    }
}

/// Whether an I/O error is the peer simply going away, which is logged at
/// debug level only: a client leaving is not an incident.
pub fn is_peer_gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::WriteZero
    )
}
