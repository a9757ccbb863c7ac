//! The event loop of the load generator: one `mio::Poll`, every connection
//! in one `Vec`, no threads.
//!
//! A connection goes connect → greeting → (with `--auth`: `auth TOKEN` and
//! its `OK`) → requests. In request mode it keeps
//! `pipeline` requests in flight: each reply that arrives is answered with a
//! new request, so the server, not the tool, sets the pace (unless `--rate`
//! caps it). In hold mode it only connects and then stays idle.
//!
//! Timeline of a request run: warmup (connecting happens here too), the
//! measurement window, then a short drain in which no new requests are sent
//! and the replies still in flight are collected, so every request sent is
//! either answered or reported as unanswered.

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Read, Write};
use std::mem;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::report::{Latency, LoadReport};
use super::wire::{Greeting, ReplyCounter};
use super::{process_cpu_time, Plan};
use crate::sys::cpu_time;

/// The one read buffer every connection shares.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// How much one connection may read per turn before the others get theirs.
const READ_BUDGET_BYTES: usize = 4 * READ_BUFFER_BYTES;
/// Readiness events taken from the kernel per poll.
const EVENTS_PER_POLL: usize = 1024;
/// How often the progress line is printed (only when stdout is a terminal).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for `--hold` connects, from the last one issued, before the
/// stragglers count as failed.
const HOLD_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After the window: the longest wait for the replies still in flight. The
/// drain ends as soon as the last one is in, so this bound only matters for
/// a server that never answers; it is generous so that a loaded machine
/// (a reply that takes a second or two) does not turn into "unanswered".
const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// Highest latency the histogram records (60 s); slower replies are clamped.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Significant figures the latency histogram keeps.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Leading reply bytes kept for the report.
const REPLY_SAMPLE_BYTES: usize = 64;
/// Longest reply to `auth` a connection holds while it waits for the line
/// end; a longer one is a refusal (camloop's are a few bytes).
const MAX_AUTH_REPLY_BYTES: usize = 256;

/// Where the run is; each phase ends at a deadline or when its work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `--hold`: waiting for every connect to finish.
    Connecting,
    /// Requests flow but are not measured.
    Warmup,
    /// Requests flow and replies are measured (in `--hold`: connections are held).
    Measuring,
    /// No new requests; collecting the replies still in flight.
    Draining,
    Done,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Warmup => "warmup",
            Phase::Measuring => "measuring",
            Phase::Draining => "draining",
            Phase::Done => "done",
        }
    }
}

/// Why a connection was closed; each reason but the last is one error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    ConnectFailed,
    PeerClosed,
    IoError,
    AuthRefused,
    RunOver,
}

/// Where a connection is in authenticating (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No `--auth`, or its `OK` has arrived: requests may flow.
    Done,
    /// The `auth` line (`Plan::auth`) still has this many bytes to write,
    /// the last ones of the line: they go out once the greeting is in.
    Unsent(usize),
    /// Written; the reply line is arriving in `Conn::auth_reply`.
    Awaiting,
}

/// A connection that must close: why, and the I/O error behind it if any.
type Closing = (Close, Option<io::Error>);

/// One client connection.
struct Conn {
    stream: TcpStream,
    /// Set once the nonblocking connect has completed.
    connected: bool,
    /// The part of the server's greeting not yet received.
    greeting: Greeting,
    auth: Auth,
    /// The reply to `auth` received so far, until its line end.
    auth_reply: Vec<u8>,
    replies: ReplyCounter,
    /// When each request in flight was sent (under `--rate`: when it was
    /// due), oldest first; never longer than the pipeline depth.
    sent_at: VecDeque<Instant>,
    /// Bytes of queued requests not yet written. All requests are the same
    /// bytes and at most `pipeline` are queued, so the unwritten output is
    /// always the last `unsent_bytes` of `Engine::batch`: that suffix is the
    /// write cursor, and a connection needs no output buffer of its own.
    unsent_bytes: usize,
    /// The interest currently registered with the poll.
    interest: Interest,
    /// Whether this connection sits in `Engine::pacer_queue`.
    awaiting_pacer: bool,
}

impl Conn {
    /// Checks a nonblocking connect after a readiness event, as the
    /// `mio::net::TcpStream::connect` docs prescribe: `Ok(false)` means the
    /// event was spurious and the connect is still in progress.
    fn finish_connect(&mut self) -> io::Result<bool> {
        super::connect_finished(&self.stream)
    }

    /// Writes queued requests until done or `WouldBlock`; returns the bytes
    /// written.
    fn flush(&mut self, batch: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        while self.unsent_bytes > 0 {
            match self.stream.write(&batch[batch.len() - self.unsent_bytes..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.unsent_bytes -= n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Writes what is left of the `auth` line (`line`, the whole of it)
    /// until done or `WouldBlock`; returns the bytes written.
    fn flush_auth(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        while let Auth::Unsent(left) = self.auth {
            match self.stream.write(&line[line.len() - left..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.auth = if n == left {
                        Auth::Awaiting
                    } else {
                        Auth::Unsent(left - n)
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Takes the reply to `auth` from the front of `bytes` (what follows
    /// the greeting) while one is awaited; returns how many bytes it took.
    /// The reply is one line: `OK` (camloop) or `+OK` (redis), with `\n` or
    /// `\r\n`; anything else is a refusal.
    fn take_auth_reply(&mut self, bytes: &[u8]) -> Result<usize, Closing> {
        if self.auth != Auth::Awaiting {
            return Ok(0);
        }
        let (line_part, taken) = match bytes.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&bytes[..end], end + 1),
            None => (bytes, bytes.len()),
        };
        if self.auth_reply.len() + line_part.len() > MAX_AUTH_REPLY_BYTES {
            return Err(auth_refused(&self.auth_reply));
        }
        self.auth_reply.extend_from_slice(line_part);
        if taken == line_part.len() {
            return Ok(taken); // no line end yet
        }
        let reply = mem::take(&mut self.auth_reply);
        let line = reply.strip_suffix(b"\r").unwrap_or(&reply);
        if line != b"OK" && line != b"+OK" {
            return Err(auth_refused(line));
        }
        self.auth = Auth::Done;
        Ok(taken)
    }

    /// Readable always, so a close or reset is noticed even on an idle
    /// connection; writable only while connecting or while output is pending
    /// (otherwise every write would wake the loop for nothing).
    fn wanted_interest(&self) -> Interest {
        let auth_pending = matches!(self.auth, Auth::Unsent(_)) && self.greeting.is_done();
        if !self.connected || self.unsent_bytes > 0 || auth_pending {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }
}

/// The closing of a connection whose `auth` was answered with `reply`.
fn auth_refused(reply: &[u8]) -> Closing {
    let message = format!("auth refused: \"{}\"", reply.escape_ascii());
    (Close::AuthRefused, Some(io::Error::other(message)))
}

/// Spaces requests evenly at `--rate` per second over all connections.
struct Pacer {
    start: Instant,
    requests_per_s: f64,
    issued: u64,
}

impl Pacer {
    /// When the next request is due.
    fn next_due(&self) -> Instant {
        self.start + Duration::from_secs_f64(self.issued as f64 / self.requests_per_s)
    }

    /// Takes the next request slot if it is due, returning when it was due.
    /// Latency is measured from that instant, not from when a connection was
    /// free to send: a server that stalls then shows its stall in the
    /// latency instead of hiding it by holding back the requests
    /// ("coordinated omission", the correction wrk2 makes).
    fn take(&mut self, now: Instant) -> Option<Instant> {
        let due = self.next_due();
        (due <= now).then(|| {
            self.issued += 1;
            due
        })
    }
}

/// Counters and the latency histogram.
struct Tally {
    window_start: Instant,
    window_end: Instant,
    latency_us: Histogram<u64>,
    requests: u64,
    requests_sent: u64,
    replies_received: u64,
    in_flight: u64,
    unanswered: u64,
    connected: u64,
    /// When the last connect completed or failed.
    last_connect_at: Option<Instant>,
    connect_failures: u64,
    closed_by_peer: u64,
    io_errors: u64,
    unexpected_replies: u64,
    auth_failures: u64,
    first_error: Option<String>,
    bytes_sent: u64,
    bytes_received: u64,
    reply_sample: Vec<u8>,
}

impl Tally {
    fn new(window_start: Instant, window_end: Instant) -> Result<Self, String> {
        let latency_us = Histogram::new_with_bounds(1, MAX_LATENCY_US, LATENCY_SIGNIFICANT_DIGITS)
            .map_err(|e| format!("cannot create the latency histogram: {e}"))?;
        Ok(Tally {
            window_start,
            window_end,
            latency_us,
            requests: 0,
            requests_sent: 0,
            replies_received: 0,
            in_flight: 0,
            unanswered: 0,
            connected: 0,
            last_connect_at: None,
            connect_failures: 0,
            closed_by_peer: 0,
            io_errors: 0,
            unexpected_replies: 0,
            auth_failures: 0,
            first_error: None,
            bytes_sent: 0,
            bytes_received: 0,
            reply_sample: Vec::with_capacity(REPLY_SAMPLE_BYTES),
        })
    }

    /// Accounts for reply bytes read from a connection in request mode
    /// (what follows the greeting and the reply to `auth`).
    fn on_bytes(&mut self, conn: &mut Conn, bytes: &[u8], now: Instant) {
        let room = REPLY_SAMPLE_BYTES - self.reply_sample.len();
        self.reply_sample
            .extend_from_slice(&bytes[..room.min(bytes.len())]);
        let in_window = self.window_start <= now && now < self.window_end;
        for _ in 0..conn.replies.feed(bytes) {
            let Some(sent_at) = conn.sent_at.pop_front() else {
                self.unexpected_replies += 1;
                continue;
            };
            self.replies_received += 1;
            self.in_flight -= 1;
            if in_window {
                self.requests += 1;
                let latency_us = now.saturating_duration_since(sent_at).as_micros();
                self.latency_us
                    .saturating_record(u64::try_from(latency_us).unwrap_or(u64::MAX));
            }
        }
    }

    /// Every failure the report calls an error.
    fn errors(&self) -> u64 {
        self.connect_failures
            + self.closed_by_peer
            + self.io_errors
            + self.unexpected_replies
            + self.auth_failures
    }

    fn note_error(&mut self, error: &io::Error) {
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }
}

/// The whole load run.
struct Engine<'a> {
    plan: &'a Plan,
    poll: Poll,
    /// Indexed by token; `None` once closed. Slots are never reused, so a
    /// stale event for a closed connection finds `None` and is ignored.
    conns: Vec<Option<Conn>>,
    /// Connections not yet closed.
    live: usize,
    /// The request repeated `pipeline` times; see `Conn::unsent_bytes`.
    batch: Vec<u8>,
    read_buffer: Vec<u8>,
    pacer: Option<Pacer>,
    /// Connections with room for a request, waiting for the pacer.
    pacer_queue: VecDeque<usize>,
    /// Connections that spent their read budget before `WouldBlock`: they
    /// may still hold data and no new edge will say so, so they get another
    /// turn after the events of the next poll.
    still_readable: Vec<usize>,
    phase: Phase,
    phase_end: Instant,
    start: Instant,
    tally: Tally,
    /// CPU time of this process when the window started.
    cpu_at_window_start: Duration,
    tool_cpu_percent: f64,
    /// `--server-pid`: the server's CPU time when the window started, then
    /// how much it used in the window (`None` if it could not be read).
    server_cpu_at_window_start: Option<Duration>,
    server_cpu_in_window: Option<Duration>,
    progress: Option<Progress>,
}

/// The once-a-second progress line.
struct Progress {
    next_at: Instant,
    last_at: Instant,
    last_replies: u64,
}

/// Runs the plan to the end and returns what it measured.
pub(super) fn drive(plan: &Plan) -> Result<LoadReport, String> {
    let mut engine = Engine::new(plan)?;
    engine.open_connections();
    if plan.hold {
        // The connect timeout runs from the last connect() issued: with
        // tens of thousands to one port, finding each a local port makes
        // issuing them take seconds, and those must not eat the timeout.
        engine.phase_end = Instant::now() + HOLD_CONNECT_TIMEOUT;
    }
    engine.run()?;
    Ok(engine.finish())
}

impl<'a> Engine<'a> {
    fn new(plan: &'a Plan) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create the poll: {e}"))?;
        let start = Instant::now();
        let window_start = start + plan.warmup;
        let window_end = window_start + plan.duration;
        let (phase, phase_end) = if plan.hold {
            // The hold window is set again once every connect has settled.
            (Phase::Connecting, start + HOLD_CONNECT_TIMEOUT)
        } else {
            (Phase::Warmup, window_start)
        };
        let progress = std::io::stdout().is_terminal().then(|| Progress {
            next_at: start + PROGRESS_INTERVAL,
            last_at: start,
            last_replies: 0,
        });
        Ok(Engine {
            plan,
            poll,
            conns: Vec::with_capacity(plan.conns),
            live: 0,
            batch: plan.request.repeat(plan.pipeline),
            read_buffer: vec![0; READ_BUFFER_BYTES],
            pacer: plan.rate.map(|requests_per_s| Pacer {
                start,
                requests_per_s,
                issued: 0,
            }),
            pacer_queue: VecDeque::new(),
            still_readable: Vec::new(),
            phase,
            phase_end,
            start,
            tally: Tally::new(window_start, window_end)?,
            cpu_at_window_start: cpu_time(),
            tool_cpu_percent: 0.0,
            server_cpu_at_window_start: None,
            server_cpu_in_window: None,
            progress,
        })
    }

    /// Starts every connect at once; they complete in the loop. Opening them
    /// all together is what measures the server's accept rate in `--hold`.
    /// Connections are dealt out over the targets in turn.
    fn open_connections(&mut self) {
        let targets = &self.plan.targets;
        for index in 0..self.plan.conns {
            let target = targets[index % targets.len()];
            let opened = TcpStream::connect(target).and_then(|mut stream| {
                let interest = Interest::READABLE | Interest::WRITABLE;
                self.poll
                    .registry()
                    .register(&mut stream, Token(index), interest)?;
                Ok(Conn {
                    stream,
                    connected: false,
                    greeting: self.plan.greeting,
                    auth: match &self.plan.auth {
                        Some(line) => Auth::Unsent(line.len()),
                        None => Auth::Done,
                    },
                    auth_reply: Vec::new(),
                    replies: ReplyCounter::new(self.plan.expect),
                    sent_at: VecDeque::with_capacity(self.plan.pipeline),
                    unsent_bytes: 0,
                    interest,
                    awaiting_pacer: false,
                })
            });
            match opened {
                Ok(conn) => {
                    self.conns.push(Some(conn));
                    self.live += 1;
                }
                Err(e) => {
                    // EMFILE, EADDRNOTAVAIL (out of ports), ...: an error of
                    // the run, not of the program.
                    self.conns.push(None);
                    self.tally.connect_failures += 1;
                    self.tally.last_connect_at = Some(Instant::now());
                    self.tally.note_error(&e);
                }
            }
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        loop {
            let now = Instant::now();
            self.advance(now);
            if self.phase == Phase::Done {
                return Ok(());
            }
            self.serve_pacer_queue(now);
            self.print_progress(now);

            let leftovers = mem::take(&mut self.still_readable);
            let timeout = if leftovers.is_empty() {
                self.next_deadline().saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("poll failed: {e}")),
            }
            for event in events.iter() {
                // Events are hints: the handler finds out what is really
                // possible by trying until WouldBlock.
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                self.on_ready(event.token().0, readable);
            }
            for index in leftovers {
                self.on_ready(index, true);
            }
        }
    }

    /// Moves to the next phase when the current one is over.
    fn advance(&mut self, now: Instant) {
        loop {
            let over = now >= self.phase_end;
            let next = match self.phase {
                Phase::Connecting if over || self.connects_settled() => {
                    self.close_unconnected();
                    self.tally.window_start = now;
                    self.tally.window_end = now + self.plan.duration;
                    self.start_window_clocks();
                    Some((Phase::Measuring, self.tally.window_end))
                }
                Phase::Warmup if over => {
                    self.start_window_clocks();
                    Some((Phase::Measuring, self.tally.window_end))
                }
                Phase::Measuring if over || self.live == 0 => {
                    self.end_window(now);
                    if self.plan.hold {
                        Some((Phase::Done, now))
                    } else {
                        Some((Phase::Draining, now + DRAIN_GRACE))
                    }
                }
                Phase::Draining if over || self.tally.in_flight == 0 || self.live == 0 => {
                    Some((Phase::Done, now))
                }
                // Nothing left to load: every connection failed or was closed.
                Phase::Warmup if self.live == 0 => Some((Phase::Measuring, now)),
                _ => None,
            };
            match next {
                Some((phase, end)) => {
                    self.phase = phase;
                    self.phase_end = end;
                }
                None => return,
            }
        }
    }

    fn connects_settled(&self) -> bool {
        self.tally.connected + self.tally.connect_failures == self.plan.conns as u64
    }

    /// `--hold`: connects still pending at the timeout count as failed.
    fn close_unconnected(&mut self) {
        for index in 0..self.conns.len() {
            if matches!(&self.conns[index], Some(conn) if !conn.connected) {
                self.close(index, Close::ConnectFailed);
            }
        }
    }

    /// Reads the CPU clocks the window is measured against: this process's
    /// and, with `--server-pid`, the server's. Taken in the same loop turn
    /// as the phase change, so warmup and connecting are left out.
    fn start_window_clocks(&mut self) {
        self.cpu_at_window_start = cpu_time();
        self.server_cpu_at_window_start = self
            .plan
            .server_pid
            .and_then(|pid| process_cpu_time(pid).ok());
    }

    fn end_window(&mut self, now: Instant) {
        let window_end = now.min(self.tally.window_end);
        self.tally.window_end = window_end;
        let wall = window_end.saturating_duration_since(self.tally.window_start);
        let cpu = cpu_time().saturating_sub(self.cpu_at_window_start);
        if !wall.is_zero() {
            self.tool_cpu_percent = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64();
        }
        if let (Some(pid), Some(at_start)) = (self.plan.server_pid, self.server_cpu_at_window_start)
        {
            self.server_cpu_in_window = process_cpu_time(pid)
                .ok()
                .map(|at_end| at_end.saturating_sub(at_start));
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut deadline = self.phase_end;
        if let Some(progress) = &self.progress {
            deadline = deadline.min(progress.next_at);
        }
        if let (Some(pacer), false) = (&self.pacer, self.pacer_queue.is_empty()) {
            deadline = deadline.min(pacer.next_due());
        }
        deadline
    }

    /// Handles readiness (or a leftover read turn) of one connection.
    fn on_ready(&mut self, index: usize, readable: bool) {
        let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
            return; // closed earlier in this iteration: a stale event
        };
        if !conn.connected {
            match conn.finish_connect() {
                Ok(true) => {
                    conn.connected = true;
                    self.tally.connected += 1;
                    self.tally.last_connect_at = Some(Instant::now());
                }
                Ok(false) => return,
                Err(e) => {
                    self.tally.note_error(&e);
                    self.close(index, Close::ConnectFailed);
                    return;
                }
            }
        }
        let outcome = if readable {
            self.read_until_blocked(index)
        } else {
            Ok(())
        };
        let outcome = outcome.and_then(|()| self.send(index, Instant::now()));
        let outcome = outcome.and_then(|()| self.update_interest(index));
        if let Err(closing) = outcome {
            self.close_with(index, closing);
        }
    }

    /// Reads until `WouldBlock` or until the read budget is spent.
    fn read_until_blocked(&mut self, index: usize) -> Result<(), Closing> {
        let Some(conn) = self.conns[index].as_mut() else {
            return Ok(());
        };
        let mut budget_bytes = READ_BUDGET_BYTES;
        loop {
            if budget_bytes == 0 {
                self.still_readable.push(index);
                return Ok(());
            }
            match conn.stream.read(&mut self.read_buffer) {
                Ok(0) => return Err((Close::PeerClosed, None)),
                Ok(n) => {
                    budget_bytes = budget_bytes.saturating_sub(n);
                    self.tally.bytes_received += n as u64;
                    let bytes = &self.read_buffer[..n];
                    let bytes = &bytes[conn.greeting.consume(bytes)..];
                    let bytes = &bytes[conn.take_auth_reply(bytes)?..];
                    if self.plan.hold {
                        // An idle connection has nothing more to count.
                        continue;
                    }
                    self.tally.on_bytes(conn, bytes, Instant::now());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err((Close::IoError, Some(e))),
            }
        }
    }

    /// Queues requests up to the pipeline depth (while the run still sends
    /// and the pacer allows) and writes what is queued.
    fn send(&mut self, index: usize, now: Instant) -> Result<(), Closing> {
        let Some(conn) = self.conns[index].as_mut() else {
            return Ok(());
        };
        // The phase advances only at the top of the loop; the clock check
        // keeps a long iteration from sending past the end of the window.
        if let (Some(line), true) = (&self.plan.auth, conn.greeting.is_done()) {
            let written = conn
                .flush_auth(line)
                .map_err(|e| (Close::IoError, Some(e)))?;
            self.tally.bytes_sent += written as u64;
        }
        let sending = matches!(self.phase, Phase::Warmup | Phase::Measuring)
            && now < self.tally.window_end
            && !self.plan.hold
            && conn.greeting.is_done()
            && conn.auth == Auth::Done;
        while sending && conn.sent_at.len() < self.plan.pipeline {
            let stamp = match &mut self.pacer {
                None => now,
                Some(pacer) => match pacer.take(now) {
                    Some(due) => due,
                    None => {
                        if !conn.awaiting_pacer {
                            conn.awaiting_pacer = true;
                            self.pacer_queue.push_back(index);
                        }
                        break;
                    }
                },
            };
            conn.sent_at.push_back(stamp);
            conn.unsent_bytes += self.plan.request.len();
            self.tally.in_flight += 1;
        }

        let request_bytes = self.plan.request.len();
        let queued_before = conn.unsent_bytes.div_ceil(request_bytes);
        let written = conn
            .flush(&self.batch)
            .map_err(|e| (Close::IoError, Some(e)))?;
        let queued_after = conn.unsent_bytes.div_ceil(request_bytes);
        self.tally.bytes_sent += written as u64;
        self.tally.requests_sent += (queued_before - queued_after) as u64;
        Ok(())
    }

    /// Gives waiting connections the request slots the pacer has made due.
    fn serve_pacer_queue(&mut self, now: Instant) {
        while let (Some(pacer), Some(&index)) = (&self.pacer, self.pacer_queue.front()) {
            if pacer.next_due() > now {
                return;
            }
            self.pacer_queue.pop_front();
            if let Some(conn) = self.conns[index].as_mut() {
                conn.awaiting_pacer = false;
                // No read happened, so only the send half of `on_ready`.
                let outcome = self
                    .send(index, now)
                    .and_then(|()| self.update_interest(index));
                if let Err(closing) = outcome {
                    self.close_with(index, closing);
                }
            }
        }
    }

    /// Re-registers only when the wanted interest differs from the registered one.
    fn update_interest(&mut self, index: usize) -> Result<(), Closing> {
        let Some(conn) = self.conns[index].as_mut() else {
            return Ok(());
        };
        let wanted = conn.wanted_interest();
        if wanted != conn.interest {
            self.poll
                .registry()
                .reregister(&mut conn.stream, Token(index), wanted)
                .map_err(|e| (Close::IoError, Some(e)))?;
            conn.interest = wanted;
        }
        Ok(())
    }

    fn close_with(&mut self, index: usize, (reason, error): Closing) {
        if let Some(error) = error {
            self.tally.note_error(&error);
        }
        self.close(index, reason);
    }

    /// Deregisters and drops a connection, counting why it closed.
    fn close(&mut self, index: usize, reason: Close) {
        let Some(mut conn) = self.conns[index].take() else {
            return;
        };
        // Deregister before the drop closes the descriptor (mio's contract).
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.live -= 1;
        let lost = conn.sent_at.len() as u64;
        self.tally.in_flight -= lost;
        self.tally.unanswered += lost;
        match reason {
            Close::ConnectFailed => {
                self.tally.connect_failures += 1;
                self.tally.last_connect_at = Some(Instant::now());
            }
            Close::PeerClosed => self.tally.closed_by_peer += 1,
            Close::IoError => self.tally.io_errors += 1,
            Close::AuthRefused => self.tally.auth_failures += 1,
            Close::RunOver => {}
        }
    }

    fn print_progress(&mut self, now: Instant) {
        let Some(progress) = &mut self.progress else {
            return;
        };
        if now < progress.next_at {
            return;
        }
        let elapsed_s = now.duration_since(self.start).as_secs_f64();
        let tally = &self.tally;
        if self.plan.hold {
            println!(
                "{elapsed_s:6.1} s  connected {} of {}  failed {}  closed by server {}",
                tally.connected, self.plan.conns, tally.connect_failures, tally.closed_by_peer
            );
        } else {
            let since_last_s = now.duration_since(progress.last_at).as_secs_f64();
            let replies = tally.replies_received - progress.last_replies;
            println!(
                "{elapsed_s:6.1} s  {:>12.0} req/s  errors {}  connections {} of {}  ({})",
                replies as f64 / since_last_s,
                tally.errors(),
                self.live,
                self.plan.conns,
                self.phase.name(),
            );
        }
        progress.last_at = now;
        progress.last_replies = tally.replies_received;
        progress.next_at = now + PROGRESS_INTERVAL;
    }

    /// Closes what is left and builds the report.
    fn finish(mut self) -> LoadReport {
        for index in 0..self.conns.len() {
            let pending_connect = matches!(&self.conns[index], Some(conn) if !conn.connected);
            let reason = if pending_connect {
                Close::ConnectFailed
            } else {
                Close::RunOver
            };
            self.close(index, reason);
        }
        let tally = self.tally;
        let measured_s = tally
            .window_end
            .saturating_duration_since(tally.window_start)
            .as_secs_f64();
        let connect_s = tally
            .last_connect_at
            .map_or(0.0, |at| at.duration_since(self.start).as_secs_f64());
        let histogram = &tally.latency_us;
        let latency_us = if histogram.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50_us: histogram.value_at_quantile(0.50),
                p90_us: histogram.value_at_quantile(0.90),
                p99_us: histogram.value_at_quantile(0.99),
                p999_us: histogram.value_at_quantile(0.999),
                max_us: histogram.max(),
                mean_us: histogram.mean(),
            }
        };
        let targets: Vec<String> = self.plan.targets.iter().map(|t| t.to_string()).collect();
        let server_cpu_us_per_request = self
            .server_cpu_in_window
            .filter(|_| tally.requests > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / tally.requests as f64);
        LoadReport {
            target: targets.join(","),
            hold: self.plan.hold,
            conns: self.plan.conns,
            pipeline: self.plan.pipeline,
            measured_s,
            requests: tally.requests,
            requests_per_s: per_second(tally.requests, measured_s),
            latency_us,
            requests_sent: tally.requests_sent,
            replies_received: tally.replies_received,
            unanswered: tally.unanswered,
            connected: tally.connected,
            connect_s,
            connects_per_s: per_second(tally.connected, connect_s),
            errors: tally.errors(),
            connect_failures: tally.connect_failures,
            closed_by_peer: tally.closed_by_peer,
            io_errors: tally.io_errors,
            unexpected_replies: tally.unexpected_replies,
            auth_failures: tally.auth_failures,
            first_error: tally.first_error,
            bytes_sent: tally.bytes_sent,
            bytes_received: tally.bytes_received,
            tool_cpu_percent: self.tool_cpu_percent,
            server_cpu_us_per_request,
            reply_sample: tally.reply_sample,
        }
    }
}

/// `count / seconds`, 0 for an empty interval.
fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}
