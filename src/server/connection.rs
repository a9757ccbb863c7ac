//! One client connection as the event loop sees it: the socket, what the OS
//! last said about it, its pending output and where it is in its life.
//!
//! This module owns the socket-facing rules of a connection: edge-triggered
//! readiness kept as flags until a call proves them stale ([`Readiness`]),
//! interest derived from state ([`Connection::desired_interest`]), reads that
//! say which of three things happened ([`ReadOutcome`]), writes that keep a
//! cursor ([`Connection::flush`]), and the [`Lifecycle`] that replaces a
//! handful of booleans. It also defines the two small types the protocol
//! sessions get instead of a `Connection`: [`ConnRef`] (who) and
//! [`Context`] (where replies go).
//!
//! It never decides what bytes mean: that is the sessions' job, and this
//! module imports nothing from them.

use std::io::{self, Read};
use std::time::Instant;

use mio::event::Event;
use mio::Interest;

use super::listener::Stream;
use crate::output::{OutputQueue, SpareBuffers};
use crate::stats::Counters;

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
const LINGER_DRAIN_BYTES: usize = 64 * 1024;

/// Bytes read from one connection per readiness event before the loop
/// moves on to the others; the connection is then listed to be driven
/// again once the others had their turn (fairness: one busy client cannot
/// starve the rest).
pub const READ_BUDGET_BYTES: usize = 64 * 1024;

/// A connection named the way deferred work must name it: a slab key is
/// reused once its connection is gone, the id never is, so work queued for
/// a connection (a frame waiter, a turn on the to-drive list, a viewer) checks both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnRef {
    /// The slab key, which is also the mio token.
    pub key: usize,
    /// Unique for the life of the process.
    pub id: u64,
}

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

impl Readiness {
    /// Adds what one event reports. Events are hints: they only set flags,
    /// and the next read or write finds out what is really possible. An
    /// error or a closed side makes both worth trying (the call reports it).
    pub fn record(&mut self, event: &Event) {
        self.readable |= event.is_readable() || event.is_read_closed() || event.is_error();
        self.writable |= event.is_writable() || event.is_write_closed() || event.is_error();
    }
}

/// Where a connection is in its life. Moves only forward:
/// `Open → InputClosed → Draining → Closed`, skipping steps as needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Reading requests and answering them.
    Open,
    /// The peer sent EOF: requests already read still run and are answered
    /// (a client may send `c` and shut down its side), then we close.
    InputClosed,
    /// We decided to close (`exit`, an error, shutdown): what is queued is
    /// still written, nothing more is read or run.
    Draining,
    /// Deregistered; the slab entry goes at the end of this iteration.
    Closed,
}

/// What one `read()` found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes arrived.
    Data(usize),
    /// Nothing more for now: the socket is drained.
    WouldBlock,
    /// The peer closed its sending side.
    Eof,
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

impl CloseReason {
    /// One log line (a client leaving is debug, an error info, a drop a
    /// warning), and a drop counts as an error.
    pub fn record(&self, peer: &str, counters: &mut Counters) {
        if matches!(self, CloseReason::Dropped(_)) {
            counters.errors += 1;
        }
        match self {
            CloseReason::Done => log::debug!("client {peer} disconnected"),
            CloseReason::Io(e) if is_peer_gone(e) => log::debug!("client {peer} went away: {e}"),
            CloseReason::Io(e) => log::info!("client {peer} closed on error: {e}"),
            CloseReason::Dropped(why) => log::warn!("dropped client {peer}: {why}"),
        }
    }
}

/// What a protocol session may touch while it handles input: the output
/// queue, the request to close, and who it is. Sessions never see a
/// [`Connection`] or a socket, so they cannot do I/O behind the loop's back
/// (and tests drive them with bytes in and an output queue out).
pub struct Context<'a> {
    /// Who this is, for deferred work (frame waiters, viewer lists).
    pub conn: ConnRef,
    /// The peer's address, for logs.
    pub peer: &'a str,
    /// Replies go here; the loop writes them.
    pub output: &'a mut OutputQueue,
    lifecycle: &'a mut Lifecycle,
}

impl<'a> Context<'a> {
    /// A context over a connection's parts.
    pub fn new(
        conn: ConnRef,
        peer: &'a str,
        output: &'a mut OutputQueue,
        lifecycle: &'a mut Lifecycle,
    ) -> Self {
        Context {
            conn,
            peer,
            output,
            lifecycle,
        }
    }

    /// Asks the loop to close the connection once the output is written.
    pub fn close_after_flush(&mut self) {
        if matches!(*self.lifecycle, Lifecycle::Open | Lifecycle::InputClosed) {
            *self.lifecycle = Lifecycle::Draining;
        }
    }

    /// Whether the connection is on its way out (nothing more may run).
    pub fn is_draining(&self) -> bool {
        matches!(*self.lifecycle, Lifecycle::Draining | Lifecycle::Closed)
    }

    /// Whether the next request may run now: not closing, and the output
    /// under its soft cap (backpressure).
    pub fn may_run_request(&self) -> bool {
        !self.is_draining() && self.output.pending_bytes() < OUTPUT_SOFT_CAP_BYTES
    }

    /// Queues `text` followed by `terminator` bytes.
    #[inline]
    pub fn reply(&mut self, text: &str, terminator: &[u8]) {
        self.output.push_reply(text.as_bytes(), terminator);
    }
}

/// One client connection.
pub struct Connection {
    /// Unique for the life of the process.
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
    /// Where the connection is in its life.
    pub lifecycle: Lifecycle,
    /// Last time bytes moved either way.
    pub last_activity: Instant,
    /// Since when output has been pending without the kernel taking any of
    /// it (reset on every write that makes progress). A client stuck like
    /// this past its stall timeout has stopped reading and is dropped.
    pub write_blocked_since: Option<Instant>,
    /// Whether the socket already keeps unsent data short (stream viewers).
    pub unsent_limited: bool,
}

impl Connection {
    /// A connection for a socket just accepted. It starts out readable and
    /// writable: with edge-triggered readiness, bytes the client sent
    /// before we registered raise no new edge, so only trying the read
    /// finds them; and a fresh socket has an empty send buffer, so the
    /// greeting goes out without waiting for a WRITABLE event.
    pub fn new(id: u64, socket: Stream, peer: String, now: Instant) -> Self {
        Connection {
            id,
            socket,
            peer,
            readiness: Readiness {
                readable: true,
                writable: true,
            },
            registered: Interest::READABLE,
            output: OutputQueue::default(),
            lifecycle: Lifecycle::Open,
            last_activity: now,
            write_blocked_since: None,
            unsent_limited: false,
        }
    }

    /// This connection's reference for deferred work.
    pub fn conn_ref(&self, key: usize) -> ConnRef {
        ConnRef { key, id: self.id }
    }

    /// The context a session works through, for the connection at `key`.
    pub fn context(&mut self, key: usize) -> Context<'_> {
        let conn = ConnRef { key, id: self.id };
        Context::new(conn, &self.peer, &mut self.output, &mut self.lifecycle)
    }

    /// Whether the socket side allows reading: still open and not over the
    /// output soft cap. (The session may still say no.)
    pub fn may_read(&self) -> bool {
        self.lifecycle == Lifecycle::Open && self.output.pending_bytes() < OUTPUT_SOFT_CAP_BYTES
    }

    /// Whether the connection is on its way out: nothing more is run.
    pub fn is_draining(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Draining | Lifecycle::Closed)
    }

    /// Whether it was closed in this iteration (its slab entry is about to go).
    pub fn is_closed(&self) -> bool {
        self.lifecycle == Lifecycle::Closed
    }

    /// Asks for a close once the output is written.
    pub fn close_after_flush(&mut self) {
        if matches!(self.lifecycle, Lifecycle::Open | Lifecycle::InputClosed) {
            self.lifecycle = Lifecycle::Draining;
        }
    }

    /// Whether everything is said and the socket can be closed, given
    /// whether the session still waits for something (a frame).
    pub fn is_finished(&self, session_idle: bool) -> bool {
        matches!(self.lifecycle, Lifecycle::InputClosed | Lifecycle::Draining)
            && self.output.is_empty()
            && session_idle
    }

    /// The interest this connection's state calls for: readable unless it
    /// is backpressured or done reading, writable only while output is
    /// pending. mio needs a non-empty interest; READABLE is the harmless
    /// default (a spurious event only sets a flag).
    pub fn desired_interest(&self, wants_read: bool) -> Interest {
        match (wants_read, !self.output.is_empty()) {
            (_, false) => Interest::READABLE,
            (false, true) => Interest::WRITABLE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
        }
    }

    /// Writes pending output if the socket may take it. Returns the bytes
    /// written.
    #[inline]
    pub fn flush(&mut self, now: Instant, spares: &mut SpareBuffers) -> Result<usize, CloseReason> {
        // Asked several times per turn, usually with nothing to write: the
        // check stays inline, the write does not.
        if !self.readiness.writable || self.output.is_empty() {
            return Ok(0);
        }
        self.write_pending(now, spares)
    }

    fn write_pending(
        &mut self,
        now: Instant,
        spares: &mut SpareBuffers,
    ) -> Result<usize, CloseReason> {
        let progress = self
            .output
            .write_to(&mut self.socket, spares)
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

    /// Keeps [`Connection::write_blocked_since`] right after a round of
    /// work: set when output is left that the kernel would not take,
    /// cleared once all is written. Returns `Some(true)` when it became
    /// blocked, `Some(false)` when it stopped being blocked.
    pub fn track_write_blocked(&mut self, now: Instant) -> Option<bool> {
        match (self.output.is_empty(), self.write_blocked_since) {
            (false, None) => {
                self.write_blocked_since = Some(now);
                Some(true)
            }
            (true, Some(_)) => {
                self.write_blocked_since = None;
                Some(false)
            }
            _ => None,
        }
    }

    /// One `read()` into `buf`, retrying `Interrupted`. `WouldBlock` clears
    /// the readable flag; EOF moves the lifecycle to `InputClosed`.
    pub fn read_into(&mut self, buf: &mut [u8], now: Instant) -> Result<ReadOutcome, CloseReason> {
        loop {
            match self.socket.read(buf) {
                Ok(0) => {
                    self.readiness.readable = false;
                    if self.lifecycle == Lifecycle::Open {
                        self.lifecycle = Lifecycle::InputClosed;
                    }
                    return Ok(ReadOutcome::Eof);
                }
                Ok(n) => {
                    self.last_activity = now;
                    return Ok(ReadOutcome::Data(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readiness.readable = false;
                    return Ok(ReadOutcome::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CloseReason::Io(e)),
            }
        }
    }

    /// Marks the connection closed. Closing with unread input makes the
    /// kernel send a reset, which can destroy the last reply (an `ERR`, a
    /// 4xx) before the client reads it; so on a clean close, read what is
    /// already there (at most [`LINGER_DRAIN_BYTES`]) and send FIN first.
    /// Returns false if it was closed already.
    pub fn mark_closed(&mut self, reason: &CloseReason) -> bool {
        if self.lifecycle == Lifecycle::Closed {
            return false;
        }
        let input_open = matches!(self.lifecycle, Lifecycle::Open | Lifecycle::Draining);
        self.lifecycle = Lifecycle::Closed;
        if matches!(reason, CloseReason::Done) && input_open {
            self.discard_pending_input();
        }
        true
    }

    fn discard_pending_input(&mut self) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A connected pair: our side as a [`Connection`], the peer as a plain
    /// blocking Unix stream the test writes to.
    fn pair() -> (Connection, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let stream = Stream::Unix(mio::net::UnixStream::from_std(ours));
        (
            Connection::new(1, stream, "test".into(), Instant::now()),
            theirs,
        )
    }

    #[test]
    fn read_into_tells_data_wouldblock_and_eof_apart() {
        let (mut conn, mut peer) = pair();
        let mut buf = [0u8; 16];
        let now = Instant::now();
        assert_eq!(
            conn.read_into(&mut buf, now).unwrap(),
            ReadOutcome::WouldBlock
        );
        assert!(!conn.readiness.readable);
        peer.write_all(b"ping\n").unwrap();
        assert_eq!(conn.read_into(&mut buf, now).unwrap(), ReadOutcome::Data(5));
        assert_eq!(&buf[..5], b"ping\n");
        assert_eq!(conn.lifecycle, Lifecycle::Open);
        drop(peer);
        assert_eq!(conn.read_into(&mut buf, now).unwrap(), ReadOutcome::Eof);
        assert_eq!(conn.lifecycle, Lifecycle::InputClosed);
    }

    #[test]
    fn lifecycle_only_moves_forward() {
        let (mut conn, _peer) = pair();
        assert!(conn.may_read());
        assert!(
            !conn.is_finished(true),
            "an open connection is not finished"
        );
        conn.close_after_flush();
        assert_eq!(conn.lifecycle, Lifecycle::Draining);
        assert!(!conn.may_read());
        assert!(conn.is_finished(true));
        assert!(!conn.is_finished(false), "a session still waiting holds it");
        assert!(conn.mark_closed(&CloseReason::Done));
        assert!(conn.is_closed());
        // Nothing brings a closed connection back, and closing twice is a no-op.
        conn.close_after_flush();
        assert_eq!(conn.lifecycle, Lifecycle::Closed);
        assert!(!conn.mark_closed(&CloseReason::Done));
    }

    #[test]
    fn eof_keeps_queued_work_but_stops_reading() {
        let (mut conn, peer) = pair();
        drop(peer);
        let mut buf = [0u8; 4];
        conn.read_into(&mut buf, Instant::now()).unwrap();
        assert_eq!(conn.lifecycle, Lifecycle::InputClosed);
        assert!(!conn.may_read());
        let context = conn.context(0);
        assert!(!context.is_draining(), "requests already read still run");
        assert!(context.may_run_request());
    }

    #[test]
    fn interest_follows_output_and_read_wish() {
        let (mut conn, _peer) = pair();
        assert_eq!(conn.desired_interest(true), Interest::READABLE);
        assert_eq!(conn.desired_interest(false), Interest::READABLE);
        conn.output.push_bytes(b"Welcome");
        assert_eq!(
            conn.desired_interest(true),
            Interest::READABLE | Interest::WRITABLE
        );
        assert_eq!(conn.desired_interest(false), Interest::WRITABLE);
    }
}
