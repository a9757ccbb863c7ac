//! The one event loop every `camloop load` mode runs on: one `mio::Poll`,
//! every connection in one `Vec`, no threads.
//!
//! The driver owns what every mode does alike: opening the connections
//! (dealt out over the targets in turn), finishing their nonblocking
//! connects, reading until `WouldBlock` (with a budget, so that one busy
//! connection cannot starve the others), writing what a connection has
//! queued, keeping each registration's interest in step with that, closing,
//! the phases of the run with their deadlines (warmup, the measurement
//! window with the CPU clocks read at its edges, an optional drain) and the
//! progress line.
//!
//! A [`Mode`] owns what its connections say: the state of each one, what it
//! queues to write, what it makes of the bytes it reads, its own timers (a
//! request pacer, stall checks) and how its counts become its report.
//!
//! Timeline of a run: warmup (connecting happens here too), the measurement
//! window, then, if the schedule asks for one, a drain in which no new work
//! starts and what is still in flight is collected. With
//! [`WindowStart::AfterConnects`] the warmup is replaced by a connecting
//! phase that ends when every connect has settled.
//!
//! Tokens `0..connections` are the connections' indexes. A mode may have
//! sources of its own in the same poll (RTSP over UDP: an RTP and an RTCP
//! socket per viewer): it registers them in
//! [`register_sources`](Mode::register_sources) under tokens from
//! `connections` up, the loop hands every event for such a token to
//! [`on_source_ready`](Mode::on_source_ready), and a connection's close
//! lets the mode [deregister](Mode::deregister_sources) the sources that
//! belong to it. The mode reads and writes its sources itself; the driver
//! only routes their events and gives a source that spent its read budget
//! another turn, as it does a connection.

use std::io::{self, IsTerminal, Read, Write};
use std::mem;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

use super::process_cpu_time;
use crate::sys::cpu_time;

/// The one read buffer every connection shares.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// How much one connection may read per turn before the others get theirs.
const READ_BUDGET_BYTES: usize = 4 * READ_BUFFER_BYTES;
/// Readiness events taken from the kernel per poll.
const EVENTS_PER_POLL: usize = 1024;
/// How often the progress line is printed (only when stdout is a terminal).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What one mode of `camloop load` does with its connections; the
/// [`drive`]r does the rest. Hooks get the connection's state (never its
/// socket) and return what should close it; all I/O on the connections is
/// the driver's (that on a mode's own sources is the mode's).
///
/// A connection's life: [`open`](Mode::open) when its connect is issued;
/// then, each time it is ready, its bytes go to
/// [`on_bytes`](Mode::on_bytes), [`queue_output`](Mode::queue_output) may
/// queue more, and what [`unsent`](Mode::unsent) returns is written (and
/// acknowledged through [`on_written`](Mode::on_written)) until the socket
/// is full; at last [`on_close`](Mode::on_close). A protocol that writes
/// request after request as replies arrive (RTSP: DESCRIBE, SETUP, PLAY)
/// moves its own stage in `on_bytes` and queues the next request there or
/// in `queue_output`; a request on a timer (an RTSP keepalive every N
/// seconds) is queued in `on_timers`, which wakes its connection for a
/// write turn.
pub(super) trait Mode {
    /// The state of one connection.
    type Conn;
    /// Why the mode closes a connection, beyond the driver's own reasons.
    type Reason: Copy;
    /// What the run reports.
    type Report;

    /// The run starts at `start`, before the first connect is issued: the
    /// mode's own clocks (line mode's request pacer) count from it.
    fn on_start(&mut self, _start: Instant) {}

    /// The state of connection `index`, whose connect was issued `now`.
    fn open(&mut self, index: usize, now: Instant) -> Self::Conn;

    /// Queues on `conn` what is due (line mode: requests, up to the
    /// pipeline depth); called before each write turn. Nothing by default.
    fn queue_output(&mut self, _index: usize, _conn: &mut Self::Conn, _at: &Moment) {}

    /// What `conn` has queued and not yet written; empty when nothing.
    /// The connection waits for writability while this is not empty.
    fn unsent<'a>(&'a self, conn: &'a Self::Conn) -> &'a [u8];

    /// The first `written` bytes of what `unsent` returned went out.
    fn on_written(&mut self, conn: &mut Self::Conn, written: usize);

    /// Bytes read from connection `index`.
    fn on_bytes(
        &mut self,
        index: usize,
        conn: &mut Self::Conn,
        bytes: &[u8],
        at: &Moment,
    ) -> Result<(), Closing<Self::Reason>>;

    /// The server closed the connection (a read returned 0): why it closes.
    fn on_peer_closed(&self, conn: &Self::Conn) -> Closing<Self::Reason>;

    /// A read failed: why the connection closes (an I/O error by default).
    fn on_read_error(&self, _conn: &Self::Conn, error: io::Error) -> Closing<Self::Reason> {
        Closing::io(error)
    }

    /// The connection is closed: counts what it still held and why it
    /// closed. Connect failures and I/O errors the driver counts itself.
    fn on_close(&mut self, conn: Self::Conn, reason: Close<Self::Reason>);

    /// When the mode's next timer is due, if it has one.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// Runs the mode's timers that are due (called once per loop turn, so a
    /// mode checks its own clocks): line mode hands out the pacer's request
    /// slots, viewer mode checks for stalls. Each connection pushed onto
    /// `wake` then gets a write turn.
    fn on_timers(
        &mut self,
        _at: &Moment,
        _conns: &mut Connections<Self::Conn>,
        _wake: &mut Vec<usize>,
    ) {
    }

    /// Registers the mode's own sources with `registry`, under tokens from
    /// `first_token` (the number of connections) up; called once, before
    /// the first connect is issued. `Err` stops the run before it starts.
    /// None by default.
    fn register_sources(&mut self, _registry: &Registry, _first_token: usize) -> io::Result<()> {
        Ok(())
    }

    /// Source `token` (one [`register_sources`](Mode::register_sources)
    /// registered) is ready: the mode reads it, until `WouldBlock` or a
    /// budget of its own; `conns` are the connections, for the state a
    /// source feeds.
    fn on_source_ready(
        &mut self,
        _token: usize,
        _at: &Moment,
        _conns: &mut Connections<Self::Conn>,
    ) -> SourceTurn {
        SourceTurn::Drained
    }

    /// Connection `index` is closing: deregisters the sources that belong
    /// to it (before they are dropped, as mio asks). Called before
    /// [`on_close`](Mode::on_close).
    fn deregister_sources(&mut self, _index: usize, _registry: &Registry) {}

    /// Whether replies are still due: a drain lasts until this is false.
    fn awaiting_replies(&self) -> bool {
        false
    }

    /// The progress line printed once a second on a terminal.
    fn progress_line(&mut self, progress: &Progress) -> String;

    /// The report, from the mode's counts and what the driver measured.
    fn report(self, measured: Measured) -> Self::Report;
}

/// How a mode's read turn of one of its sources ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceTurn {
    /// It read until `WouldBlock`: the next event says when there is more.
    Drained,
    /// It spent its budget first: the source gets another turn after the
    /// next poll, since no new edge will say that data is waiting.
    MoreLeft,
}

/// What the driver runs: which connections, and the timeline.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    /// Connection `i` goes to `targets[i % targets.len()]`.
    pub(super) targets: Vec<SocketAddr>,
    /// Connections opened, all at the start.
    pub(super) connections: usize,
    pub(super) warmup: Duration,
    /// Length of the measurement window.
    pub(super) duration: Duration,
    pub(super) window_start: WindowStart,
    /// After the window: the longest wait while the mode is
    /// [awaiting replies](Mode::awaiting_replies); `None` ends the run with
    /// the window.
    pub(super) drain: Option<Duration>,
    /// `--server-pid`: the process whose CPU time the window measures.
    pub(super) server_pid: Option<u32>,
}

/// When the measurement window opens.
#[derive(Debug, Clone, Copy)]
pub(super) enum WindowStart {
    /// After the warmup, counted from the start.
    AfterWarmup,
    /// Once every connect has completed or failed, or when `connect_timeout`
    /// has passed since the last connect was issued, whichever is first; the
    /// connects still pending then count as failed (`--hold`).
    AfterConnects { connect_timeout: Duration },
}

/// Where the run is; each phase ends at a deadline or when its work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// [`WindowStart::AfterConnects`]: waiting for every connect to settle.
    Connecting,
    /// Work flows but is not measured.
    Warmup,
    /// Work flows and is measured.
    Measuring,
    /// No new work; collecting the replies still in flight.
    Draining,
    Done,
}

impl Phase {
    /// The phase as the progress line names it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Warmup => "warmup",
            Phase::Measuring => "measuring",
            Phase::Draining => "draining",
            Phase::Done => "done",
        }
    }
}

/// The measurement window: from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

/// The instant a hook runs at and where the run is then.
#[derive(Debug, Clone, Copy)]
pub(super) struct Moment {
    /// The clock as the hook should read it.
    pub(super) now: Instant,
    phase: Phase,
    window: Window,
}

impl Moment {
    /// Whether what happens now is measured.
    pub(super) fn in_window(&self) -> bool {
        self.window.start <= self.now && self.now < self.window.end
    }

    /// Whether new work (a request) may still start: in the warmup or the
    /// window. The phase advances only at the top of the loop; the clock
    /// check keeps a long loop turn from starting work past the window's end.
    pub(super) fn may_start_work(&self) -> bool {
        matches!(self.phase, Phase::Warmup | Phase::Measuring) && self.now < self.window.end
    }
}

/// Why a connection closes; all but [`Close::RunOver`] are errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Close<R> {
    /// The connect failed, or was still pending when the wait for it ended.
    ConnectFailed,
    /// A read, a write or a registration failed.
    IoError,
    /// The run is over.
    RunOver,
    /// A reason of the mode's own (a refused `auth`, an HTTP error, ...).
    Mode(R),
}

/// A connection that must close: why, and the error behind it, if any
/// (the first one of the run is reported).
#[derive(Debug)]
pub(super) struct Closing<R> {
    pub(super) reason: Close<R>,
    pub(super) error: Option<String>,
}

impl<R> Closing<R> {
    /// A close for one of the mode's own reasons.
    pub(super) fn mode(reason: R, error: Option<String>) -> Self {
        Closing {
            reason: Close::Mode(reason),
            error,
        }
    }

    /// A close for a failed read, write or registration.
    pub(super) fn io(error: io::Error) -> Self {
        Closing {
            reason: Close::IoError,
            error: Some(error.to_string()),
        }
    }
}

/// What the driver counts for every mode, over the whole run.
#[derive(Debug, Clone, Default)]
pub(super) struct Counts {
    /// Connections whose connect completed.
    pub(super) connected: u64,
    /// Connects refused, reset, impossible to start or still pending at the
    /// end.
    pub(super) connect_failures: u64,
    /// Connections closed by a failed read, write or registration.
    pub(super) io_errors: u64,
    /// When the last connect completed or failed.
    last_connect_at: Option<Instant>,
    /// The first error seen, for the message a person reads.
    pub(super) first_error: Option<String>,
    pub(super) bytes_sent: u64,
    pub(super) bytes_received: u64,
}

impl Counts {
    /// The errors the driver counts; a mode adds its own.
    pub(super) fn errors(&self) -> u64 {
        self.connect_failures + self.io_errors
    }

    fn note_error(&mut self, error: &str) {
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }

    fn note_connect_settled(&mut self) {
        self.last_connect_at = Some(Instant::now());
    }
}

/// What the driver measured, for the mode's report.
#[derive(Debug, Clone)]
pub(super) struct Measured {
    pub(super) counts: Counts,
    /// Length of the measurement window actually run (shorter if every
    /// connection was gone before its end), in seconds.
    pub(super) measured_s: f64,
    /// From the start until the last connect completed or failed.
    pub(super) connect_s: f64,
    /// CPU time of this process in the window, in percent of one core.
    pub(super) tool_cpu_percent: f64,
    /// `--server-pid`: the server's CPU time in the window; `None` without
    /// the flag, without a reading or for an empty window.
    pub(super) server_cpu: Option<Duration>,
}

/// What the once-a-second progress line may tell.
pub(super) struct Progress<'a> {
    /// Since the start of the run.
    pub(super) elapsed_s: f64,
    /// Since the line before (or the start), for rates.
    pub(super) since_last_s: f64,
    /// Connections not yet closed.
    pub(super) live: usize,
    pub(super) phase: Phase,
    pub(super) counts: &'a Counts,
}

/// The connections of a run, indexed by token; `None` once closed. Slots
/// are never reused, so a stale event for a closed connection finds `None`
/// and is ignored.
pub(super) struct Connections<C> {
    links: Vec<Option<Link<C>>>,
}

impl<C> Connections<C> {
    /// The mode's state of connection `index`, if it is still open.
    pub(super) fn get_mut(&mut self, index: usize) -> Option<&mut C> {
        let link = self.links.get_mut(index)?.as_mut()?;
        Some(&mut link.state)
    }

    /// The mode's state of every open connection.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut C> {
        self.links.iter_mut().flatten().map(|link| &mut link.state)
    }

    /// Every open connection's index and the mode's state of it.
    pub(super) fn iter_indexed_mut(&mut self) -> impl Iterator<Item = (usize, &mut C)> {
        let links = self.links.iter_mut().enumerate();
        links.filter_map(|(index, link)| Some((index, &mut link.as_mut()?.state)))
    }
}

/// One connection as the driver holds it.
struct Link<C> {
    stream: TcpStream,
    /// Set once the nonblocking connect has completed.
    connected: bool,
    /// The interest currently registered with the poll.
    interest: Interest,
    /// The mode's state of this connection.
    state: C,
}

/// When the progress line is next due and when it was last printed.
struct ProgressClock {
    next_at: Instant,
    last_at: Instant,
}

/// The whole run: the mode and everything the driver keeps for it.
struct Driver<'s, M: Mode> {
    mode: M,
    schedule: &'s Schedule,
    poll: Poll,
    conns: Connections<M::Conn>,
    /// Connections not yet closed.
    live: usize,
    read_buffer: Vec<u8>,
    /// Connections (and the mode's sources) that spent their read budget
    /// before `WouldBlock`: they may still hold data and no new edge will
    /// say so, so they get another turn after the events of the next poll.
    still_readable: Vec<usize>,
    /// Connections the mode's timers woke for a write turn (kept between
    /// turns for its allocation).
    woken: Vec<usize>,
    phase: Phase,
    phase_end: Instant,
    start: Instant,
    window: Window,
    counts: Counts,
    /// CPU time of this process when the window started.
    cpu_at_window_start: Duration,
    tool_cpu_percent: f64,
    /// `--server-pid`: the server's CPU time when the window started, then
    /// how much it used in the window (`None` if it could not be read).
    server_cpu_at_window_start: Option<Duration>,
    server_cpu_in_window: Option<Duration>,
    progress: Option<ProgressClock>,
}

/// Runs `mode` on the connections `schedule` asks for until the run is
/// over, and returns its report. `Err` only when the poll cannot be
/// created or fails; what the network does is part of the report.
pub(super) fn drive<M: Mode>(mode: M, schedule: &Schedule) -> Result<M::Report, String> {
    let mut driver = Driver::new(mode, schedule)?;
    driver
        .mode
        .register_sources(driver.poll.registry(), schedule.connections)
        .map_err(|e| format!("cannot set up the mode's sockets: {e}"))?;
    driver.mode.on_start(driver.start);
    driver.open_connections();
    if let WindowStart::AfterConnects { connect_timeout } = schedule.window_start {
        // The connect timeout runs from the last connect() issued: with
        // tens of thousands to one port, finding each a local port makes
        // issuing them take seconds, and those must not eat the timeout.
        driver.phase_end = Instant::now() + connect_timeout;
    }
    driver.run()?;
    Ok(driver.finish())
}

impl<'s, M: Mode> Driver<'s, M> {
    fn new(mode: M, schedule: &'s Schedule) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create the poll: {e}"))?;
        let start = Instant::now();
        let window_start = start + schedule.warmup;
        let window = Window {
            start: window_start,
            end: window_start + schedule.duration,
        };
        let (phase, phase_end) = match schedule.window_start {
            // Set again once the last connect has been issued (`drive`).
            WindowStart::AfterConnects { connect_timeout } => {
                (Phase::Connecting, start + connect_timeout)
            }
            WindowStart::AfterWarmup => (Phase::Warmup, window_start),
        };
        let progress = io::stdout().is_terminal().then(|| ProgressClock {
            next_at: start + PROGRESS_INTERVAL,
            last_at: start,
        });
        Ok(Driver {
            mode,
            schedule,
            poll,
            conns: Connections {
                links: Vec::with_capacity(schedule.connections),
            },
            live: 0,
            read_buffer: vec![0; READ_BUFFER_BYTES],
            still_readable: Vec::new(),
            woken: Vec::new(),
            phase,
            phase_end,
            start,
            window,
            counts: Counts::default(),
            cpu_at_window_start: cpu_time(),
            tool_cpu_percent: 0.0,
            server_cpu_at_window_start: None,
            server_cpu_in_window: None,
            progress,
        })
    }

    /// The instant `now` as hooks see it.
    fn moment(&self, now: Instant) -> Moment {
        Moment {
            now,
            phase: self.phase,
            window: self.window,
        }
    }

    /// Starts every connect at once; they complete in the loop. Opening them
    /// all together is what measures the server's accept rate in `--hold`.
    fn open_connections(&mut self) {
        let targets = &self.schedule.targets;
        for index in 0..self.schedule.connections {
            let target = targets[index % targets.len()];
            let opened = TcpStream::connect(target).and_then(|mut stream| {
                let interest = Interest::READABLE | Interest::WRITABLE;
                self.poll
                    .registry()
                    .register(&mut stream, Token(index), interest)?;
                Ok(Link {
                    stream,
                    connected: false,
                    interest,
                    state: self.mode.open(index, Instant::now()),
                })
            });
            match opened {
                Ok(link) => {
                    self.conns.links.push(Some(link));
                    self.live += 1;
                }
                Err(e) => {
                    // EMFILE, EADDRNOTAVAIL (out of ports), ...: an error of
                    // the run, not of the program.
                    self.conns.links.push(None);
                    self.counts.connect_failures += 1;
                    self.counts.note_connect_settled();
                    self.counts.note_error(&e.to_string());
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
            self.run_mode_timers(now);
            self.print_progress(now);

            let leftovers = mem::take(&mut self.still_readable);
            let timeout = if leftovers.is_empty() {
                self.next_deadline().saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                // A signal: no events this turn (mio clears them first).
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("poll failed: {e}")),
            }
            for event in events.iter() {
                // Events are hints: the handler finds out what is really
                // possible by trying until WouldBlock.
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                self.on_event(event.token().0, readable);
            }
            for token in leftovers {
                self.on_event(token, true);
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
                    self.window = Window {
                        start: now,
                        end: now + self.schedule.duration,
                    };
                    self.start_window_clocks();
                    Some((Phase::Measuring, self.window.end))
                }
                Phase::Warmup if over => {
                    self.start_window_clocks();
                    Some((Phase::Measuring, self.window.end))
                }
                Phase::Measuring if over || self.live == 0 => {
                    self.end_window(now);
                    match self.schedule.drain {
                        Some(grace) => Some((Phase::Draining, now + grace)),
                        None => Some((Phase::Done, now)),
                    }
                }
                Phase::Draining if over || self.live == 0 || !self.mode.awaiting_replies() => {
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
        self.counts.connected + self.counts.connect_failures == self.schedule.connections as u64
    }

    /// Connects still pending when the wait for them ends count as failed.
    fn close_unconnected(&mut self) {
        for index in 0..self.conns.links.len() {
            if matches!(&self.conns.links[index], Some(link) if !link.connected) {
                self.close(index, close_for(Close::ConnectFailed));
            }
        }
    }

    /// Reads the CPU clocks the window is measured against: this process's
    /// and, with `--server-pid`, the server's. Taken in the same loop turn
    /// as the phase change, so warmup and connecting are left out.
    fn start_window_clocks(&mut self) {
        self.cpu_at_window_start = cpu_time();
        self.server_cpu_at_window_start = self
            .schedule
            .server_pid
            .and_then(|pid| process_cpu_time(pid).ok());
    }

    fn end_window(&mut self, now: Instant) {
        // A window cut short by the last connection closing ends then; one
        // that never started (every connection gone in the warmup) is empty.
        self.window.end = now.min(self.window.end).max(self.window.start);
        let wall = self.window.end.saturating_duration_since(self.window.start);
        if wall.is_zero() {
            return;
        }
        let cpu = cpu_time().saturating_sub(self.cpu_at_window_start);
        self.tool_cpu_percent = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64();
        if let (Some(pid), Some(at_start)) =
            (self.schedule.server_pid, self.server_cpu_at_window_start)
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
        if let Some(mode_deadline) = self.mode.next_deadline() {
            deadline = deadline.min(mode_deadline);
        }
        deadline
    }

    /// Runs the mode's timers and gives the connections they woke their
    /// write turn (no read happened, so only the write half of `on_ready`).
    fn run_mode_timers(&mut self, now: Instant) {
        let at = self.moment(now);
        let mut woken = mem::take(&mut self.woken);
        self.mode.on_timers(&at, &mut self.conns, &mut woken);
        for index in woken.drain(..) {
            let outcome = self
                .write_until_blocked(index, &at)
                .and_then(|()| self.update_interest(index));
            if let Err(closing) = outcome {
                self.close(index, closing);
            }
        }
        self.woken = woken;
    }

    /// Routes readiness (or a leftover read turn): a connection's to
    /// [`on_ready`](Self::on_ready), one of the mode's sources' to the mode.
    fn on_event(&mut self, token: usize, readable: bool) {
        if token < self.schedule.connections {
            self.on_ready(token, readable);
            return;
        }
        let at = self.moment(Instant::now());
        let turn = self.mode.on_source_ready(token, &at, &mut self.conns);
        if turn == SourceTurn::MoreLeft {
            self.still_readable.push(token);
        }
    }

    /// Handles readiness (or a leftover read turn) of one connection.
    fn on_ready(&mut self, index: usize, readable: bool) {
        let Some(link) = self.conns.links.get_mut(index).and_then(Option::as_mut) else {
            return; // closed earlier in this turn: a stale event
        };
        if !link.connected {
            match connect_finished(&link.stream) {
                Ok(true) => {
                    link.connected = true;
                    self.counts.connected += 1;
                    self.counts.note_connect_settled();
                }
                Ok(false) => return,
                Err(e) => {
                    let closing = Closing {
                        reason: Close::ConnectFailed,
                        error: Some(e.to_string()),
                    };
                    self.close(index, closing);
                    return;
                }
            }
        }
        // Read first: what arrives (a reply) may be what lets the
        // connection write more (the next request).
        let outcome = if readable {
            self.read_until_blocked(index)
        } else {
            Ok(())
        };
        let at = self.moment(Instant::now());
        let outcome = outcome
            .and_then(|()| self.write_until_blocked(index, &at))
            .and_then(|()| self.update_interest(index));
        if let Err(closing) = outcome {
            self.close(index, closing);
        }
    }

    /// Reads until `WouldBlock` or until the read budget is spent, handing
    /// every chunk to the mode.
    fn read_until_blocked(&mut self, index: usize) -> Result<(), Closing<M::Reason>> {
        let Some(link) = self.conns.links[index].as_mut() else {
            return Ok(());
        };
        let mut budget_bytes = READ_BUDGET_BYTES;
        loop {
            if budget_bytes == 0 {
                self.still_readable.push(index);
                return Ok(());
            }
            match link.stream.read(&mut self.read_buffer) {
                Ok(0) => return Err(self.mode.on_peer_closed(&link.state)),
                Ok(n) => {
                    budget_bytes = budget_bytes.saturating_sub(n);
                    self.counts.bytes_received += n as u64;
                    let at = Moment {
                        now: Instant::now(),
                        phase: self.phase,
                        window: self.window,
                    };
                    let bytes = &self.read_buffer[..n];
                    self.mode.on_bytes(index, &mut link.state, bytes, &at)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.mode.on_read_error(&link.state, e)),
            }
        }
    }

    /// Lets the mode queue what is due, then writes what it has queued
    /// until done or `WouldBlock`.
    fn write_until_blocked(&mut self, index: usize, at: &Moment) -> Result<(), Closing<M::Reason>> {
        let Some(link) = self.conns.links[index].as_mut() else {
            return Ok(());
        };
        if !link.connected {
            // A timer woke it before its connect completed: its first write
            // turn comes with the event that completes the connect.
            return Ok(());
        }
        self.mode.queue_output(index, &mut link.state, at);
        loop {
            let unsent = self.mode.unsent(&link.state);
            if unsent.is_empty() {
                return Ok(());
            }
            match link.stream.write(unsent) {
                Ok(0) => return Err(Closing::io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.counts.bytes_sent += n as u64;
                    self.mode.on_written(&mut link.state, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Closing::io(e)),
            }
        }
    }

    /// Readable always, so a close or reset is noticed even on an idle
    /// connection; writable only while connecting or while output is
    /// pending (otherwise every write would wake the loop for nothing).
    /// Re-registers only when that differs from the registered interest.
    fn update_interest(&mut self, index: usize) -> Result<(), Closing<M::Reason>> {
        let Some(link) = self.conns.links[index].as_mut() else {
            return Ok(());
        };
        let wanted = if !link.connected || !self.mode.unsent(&link.state).is_empty() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if wanted != link.interest {
            self.poll
                .registry()
                .reregister(&mut link.stream, Token(index), wanted)
                .map_err(Closing::io)?;
            link.interest = wanted;
        }
        Ok(())
    }

    /// Deregisters and drops a connection, counting why it closed.
    fn close(&mut self, index: usize, closing: Closing<M::Reason>) {
        let Some(mut link) = self.conns.links[index].take() else {
            return;
        };
        // Deregister before the drop closes the descriptor (mio's contract).
        let _ = self.poll.registry().deregister(&mut link.stream);
        self.mode.deregister_sources(index, self.poll.registry());
        self.live -= 1;
        if let Some(error) = &closing.error {
            self.counts.note_error(error);
        }
        match closing.reason {
            Close::ConnectFailed => {
                self.counts.connect_failures += 1;
                self.counts.note_connect_settled();
            }
            Close::IoError => self.counts.io_errors += 1,
            Close::RunOver | Close::Mode(_) => {}
        }
        self.mode.on_close(link.state, closing.reason);
    }

    fn print_progress(&mut self, now: Instant) {
        let Some(clock) = &mut self.progress else {
            return;
        };
        if now < clock.next_at {
            return;
        }
        let progress = Progress {
            elapsed_s: now.duration_since(self.start).as_secs_f64(),
            since_last_s: now.duration_since(clock.last_at).as_secs_f64(),
            live: self.live,
            phase: self.phase,
            counts: &self.counts,
        };
        println!("{}", self.mode.progress_line(&progress));
        clock.last_at = now;
        clock.next_at = now + PROGRESS_INTERVAL;
    }

    /// Closes what is left and has the mode build the report.
    fn finish(mut self) -> M::Report {
        for index in 0..self.conns.links.len() {
            let reason = match &self.conns.links[index] {
                None => continue,
                Some(link) if !link.connected => Close::ConnectFailed,
                Some(_) => Close::RunOver,
            };
            self.close(index, close_for(reason));
        }
        let measured_s = self
            .window
            .end
            .saturating_duration_since(self.window.start)
            .as_secs_f64();
        let connect_s = self
            .counts
            .last_connect_at
            .map_or(0.0, |at| at.duration_since(self.start).as_secs_f64());
        self.mode.report(Measured {
            counts: self.counts,
            measured_s,
            connect_s,
            tool_cpu_percent: self.tool_cpu_percent,
            server_cpu: self.server_cpu_in_window,
        })
    }
}

/// A close with no error message behind it.
fn close_for<R>(reason: Close<R>) -> Closing<R> {
    Closing {
        reason,
        error: None,
    }
}

/// Checks a nonblocking connect after a readiness event, as the
/// `mio::net::TcpStream::connect` docs prescribe: `Ok(false)` means the
/// event was spurious and the connect is still in progress.
fn connect_finished(stream: &TcpStream) -> io::Result<bool> {
    if let Some(error) = stream.take_error()? {
        return Err(error);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e)
            if e.kind() == io::ErrorKind::NotConnected
                || e.raw_os_error() == Some(libc::EINPROGRESS) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
