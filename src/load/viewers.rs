//! The event loop of `camloop load --mjpeg`: N viewers of one MJPEG stream
//! on one `mio::Poll`, every viewer in one `Vec`, no threads.
//!
//! A viewer goes connect → request written → response head read → parts.
//! Parts are cut out of the body by camloop's own [`Splitter`], so the tool
//! accepts exactly what camloop's clients must accept, and counts as
//! malformed what the splitter drops. The viewer only reads: the server sets
//! the pace, and a viewer that reads slowly (because this loop is busy) is
//! what a slow client looks like to the server.
//!
//! Timeline: warmup (connecting and the first parts), then the measurement
//! window; frames per viewer, bytes/s and frame ages count only parts that
//! arrive inside it. Stalls, drops and malformed parts count over the whole
//! run, since a viewer that stalls while the run warms up stalled all the
//! same.

use std::io::{self, IsTerminal, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::report::{FrameAge, ViewerReport};
use super::{process_cpu_time, LoadArgs};
use crate::mjpeg::{boundary_from_content_type, Splitter, DEFAULT_MAX_FRAME_BYTES};
use crate::sys::cpu_time;

/// The one read buffer every viewer shares.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// How much one viewer may read per turn before the others get theirs.
const READ_BUDGET_BYTES: usize = 4 * READ_BUFFER_BYTES;
/// Readiness events taken from the kernel per poll.
const EVENTS_PER_POLL: usize = 1024;
/// Largest response head accepted; camloop's is about 120 bytes.
const MAX_RESPONSE_HEAD_BYTES: usize = 8 * 1024;
/// Most header fields in the response head.
const MAX_RESPONSE_HEADERS: usize = 32;
/// How often the progress line is printed (only when stdout is a terminal).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Stalls are looked for this many times per `--stall-after`, so one is
/// noticed at most a tenth late.
const STALL_CHECKS_PER_PERIOD: u32 = 10;
/// Bounds of the interval between stall checks: often enough for a short
/// `--stall-after`, rarely enough that scanning every viewer costs nothing.
const MIN_STALL_CHECK_INTERVAL: Duration = Duration::from_millis(10);
const MAX_STALL_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Highest frame age the histogram records (60 s); older ones are clamped.
const MAX_FRAME_AGE_US: u64 = 60_000_000;
/// Significant figures the frame age histogram keeps.
const FRAME_AGE_SIGNIFICANT_DIGITS: u8 = 3;
/// HTTP Basic needs a user name; camloop ignores it and checks the password.
const BASIC_AUTH_USER: &str = "camloop";

/// The checked, parsed form of the `--mjpeg` flags.
#[derive(Debug, Clone)]
pub(super) struct ViewerPlan {
    /// The URL as given, for the report.
    pub(super) url: String,
    pub(super) target: SocketAddr,
    /// The request every viewer sends.
    request: Vec<u8>,
    pub(super) viewers: usize,
    duration: Duration,
    warmup: Duration,
    stall_after: Duration,
    server_pid: Option<u32>,
}

impl ViewerPlan {
    pub(super) fn from_args(args: &LoadArgs) -> Result<ViewerPlan, String> {
        let url = args.mjpeg.clone().ok_or("--mjpeg URL is missing")?;
        // Not a clap conflict: that would switch off the `requires` of the
        // viewer flags.
        if !args.targets.is_empty() {
            return Err(format!(
                "--mjpeg takes its address from the URL; drop {}",
                args.targets.join(" ")
            ));
        }
        let (authority, path) = split_http_url(&url)?;
        let target = authority
            .to_socket_addrs()
            .map_err(|e| format!("--mjpeg {url}: bad host `{authority}`: {e}"))?
            .next()
            .ok_or_else(|| format!("--mjpeg {url}: `{authority}` resolves to no address"))?;
        let seconds = |name: &str, value: f64| {
            Duration::try_from_secs_f64(value)
                .map_err(|_| format!("--{name} must be a number of seconds >= 0, got {value}"))
        };
        let duration = seconds("duration", args.duration)?;
        let warmup = seconds("warmup", args.warmup)?;
        let stall_after = seconds("stall-after", args.stall_after)?;
        if duration.is_zero() {
            return Err("--duration must be more than 0".to_string());
        }
        if stall_after.is_zero() {
            return Err("--stall-after must be more than 0".to_string());
        }
        if args.viewers == 0 {
            return Err("--viewers must be at least 1".to_string());
        }
        if let Some(pid) = args.server_pid {
            process_cpu_time(pid).map_err(|e| format!("--server-pid {pid}: {e}"))?;
        }
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: camloop-load\r\n\
             Accept: multipart/x-mixed-replace, image/jpeg\r\n"
        );
        if let Some(token) = &args.auth {
            let credentials = base64::engine::general_purpose::STANDARD
                .encode(format!("{BASIC_AUTH_USER}:{token}"));
            request.push_str(&format!("Authorization: Basic {credentials}\r\n"));
        }
        request.push_str("\r\n");
        Ok(ViewerPlan {
            url,
            target,
            request: request.into_bytes(),
            viewers: args.viewers,
            duration,
            warmup,
            stall_after,
            server_pid: args.server_pid,
        })
    }
}

/// `http://HOST[:PORT][/PATH]` as (`HOST:PORT`, `/PATH`), port 80 by
/// default. Only plain HTTP: the tool loads servers on your own network.
fn split_http_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--mjpeg {url}: expected http://HOST:PORT/PATH"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_string()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "--mjpeg {url}: expected http://HOST:PORT/PATH (a token goes in --auth)"
        ));
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("--mjpeg {url}: the path may not contain spaces"));
    }
    // A port is present unless the authority ends in a bare host (an IPv6
    // literal ends in `]`).
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.contains(']'));
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path))
}

/// Where a viewer is.
enum Stage {
    /// The nonblocking connect has not completed.
    Connecting,
    /// Writing the request: bytes of it already written.
    Requesting { written: usize },
    /// Reading the response head: what has arrived of it.
    ReadingHead { head: Vec<u8> },
    /// Reading parts. Boxed: the splitter is large beside the other stages.
    Streaming { splitter: Box<Splitter> },
}

/// Why a viewer was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    ConnectFailed,
    /// Not a 200 MJPEG response, or no response at all.
    HttpError,
    /// The server closed (or reset) a streaming connection.
    Dropped,
    IoError,
    RunOver,
}

/// A viewer that must close: why, and the error behind it if any.
type Closing = (Close, Option<String>);

/// One viewer connection.
struct Viewer {
    stream: TcpStream,
    stage: Stage,
    /// The interest currently registered with the poll.
    interest: Interest,
    /// When the last part arrived (at first: when the connect started).
    last_part_at: Instant,
    /// No part for `--stall-after` right now.
    stalled: bool,
    /// Stalled at least once.
    ever_stalled: bool,
    /// The last `X-Frame`, to check the order and count skipped frames.
    last_frame_number: Option<u64>,
}

impl Viewer {
    /// As `mio::net::TcpStream::connect` prescribes: `Ok(false)` means the
    /// event was spurious and the connect is still in progress.
    fn finish_connect(&mut self) -> io::Result<bool> {
        super::connect_finished(&self.stream)
    }

    /// Writable only until the request is out; readable always, so a close
    /// is noticed on a viewer the server has stopped writing to.
    fn wanted_interest(&self) -> Interest {
        match self.stage {
            Stage::Connecting | Stage::Requesting { .. } => Interest::READABLE | Interest::WRITABLE,
            _ => Interest::READABLE,
        }
    }
}

/// Counters of the whole run and of the window.
struct Tally {
    window_start: Instant,
    window_end: Instant,
    /// Parts per viewer inside the window, indexed like `Engine::viewers`.
    window_frames: Vec<u64>,
    frames_run: u64,
    bytes_received: u64,
    bytes_in_window: u64,
    frame_age_us: Histogram<u64>,
    /// Parts in the window without an `X-Timestamp` (camloop's NO SIGNAL).
    untimed_frames: u64,
    /// Parts whose `X-Timestamp` lies after this machine's clock.
    future_timestamps: u64,
    /// Frames the `X-Frame` numbers skipped: frames the server did not send
    /// this viewer because its socket was full.
    frames_skipped: u64,
    /// Parts whose `X-Frame` was not above the one before.
    frame_order_errors: u64,
    connected: u64,
    /// When the last connect completed or failed.
    last_connect_at: Option<Instant>,
    connect_failures: u64,
    http_errors: u64,
    dropped: u64,
    io_errors: u64,
    /// Stall events; each viewer is in `stalled_viewers` once.
    stalls: u64,
    stalled_viewers: u64,
    /// Splitter drops of closed viewers (the live ones are added at the end).
    malformed_parts: u64,
    skipped_bytes: u64,
    first_error: Option<String>,
}

impl Tally {
    fn note_error(&mut self, error: &str) {
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }

    fn in_window(&self, now: Instant) -> bool {
        self.window_start <= now && now < self.window_end
    }
}

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Measuring,
    Done,
}

/// The whole viewer run.
struct Engine<'a> {
    plan: &'a ViewerPlan,
    poll: Poll,
    /// Indexed by token; `None` once closed. Slots are never reused, so a
    /// stale event for a closed viewer finds `None` and is ignored.
    viewers: Vec<Option<Viewer>>,
    live: usize,
    read_buffer: Vec<u8>,
    /// Viewers that spent their read budget before `WouldBlock` and get
    /// another turn after the next poll's events.
    still_readable: Vec<usize>,
    phase: Phase,
    phase_end: Instant,
    start: Instant,
    next_stall_check: Instant,
    stall_check_interval: Duration,
    next_progress: Option<Instant>,
    tally: Tally,
    cpu_at_window_start: Duration,
    tool_cpu_percent: f64,
    server_cpu_at_window_start: Option<Duration>,
    server_cpu_percent: Option<f64>,
}

/// Runs the plan to the end and returns what it measured.
pub(super) fn drive(plan: &ViewerPlan) -> Result<ViewerReport, String> {
    let mut engine = Engine::new(plan)?;
    engine.open_viewers();
    engine.run()?;
    Ok(engine.finish())
}

impl<'a> Engine<'a> {
    fn new(plan: &'a ViewerPlan) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create the poll: {e}"))?;
        let frame_age_us =
            Histogram::new_with_bounds(1, MAX_FRAME_AGE_US, FRAME_AGE_SIGNIFICANT_DIGITS)
                .map_err(|e| format!("cannot create the frame age histogram: {e}"))?;
        let start = Instant::now();
        let window_start = start + plan.warmup;
        let stall_check_interval = (plan.stall_after / STALL_CHECKS_PER_PERIOD)
            .clamp(MIN_STALL_CHECK_INTERVAL, MAX_STALL_CHECK_INTERVAL);
        Ok(Engine {
            plan,
            poll,
            viewers: Vec::with_capacity(plan.viewers),
            live: 0,
            read_buffer: vec![0; READ_BUFFER_BYTES],
            still_readable: Vec::new(),
            phase: Phase::Warmup,
            phase_end: window_start,
            start,
            next_stall_check: start + stall_check_interval,
            stall_check_interval,
            next_progress: io::stdout()
                .is_terminal()
                .then_some(start + PROGRESS_INTERVAL),
            tally: Tally {
                window_start,
                window_end: window_start + plan.duration,
                window_frames: vec![0; plan.viewers],
                frames_run: 0,
                bytes_received: 0,
                bytes_in_window: 0,
                frame_age_us,
                untimed_frames: 0,
                future_timestamps: 0,
                frames_skipped: 0,
                frame_order_errors: 0,
                connected: 0,
                last_connect_at: None,
                connect_failures: 0,
                http_errors: 0,
                dropped: 0,
                io_errors: 0,
                stalls: 0,
                stalled_viewers: 0,
                malformed_parts: 0,
                skipped_bytes: 0,
                first_error: None,
            },
            cpu_at_window_start: cpu_time(),
            tool_cpu_percent: 0.0,
            server_cpu_at_window_start: None,
            server_cpu_percent: None,
        })
    }

    /// Starts every connect at once; they complete in the loop.
    fn open_viewers(&mut self) {
        for index in 0..self.plan.viewers {
            let opened = TcpStream::connect(self.plan.target).and_then(|mut stream| {
                let interest = Interest::READABLE | Interest::WRITABLE;
                self.poll
                    .registry()
                    .register(&mut stream, Token(index), interest)?;
                Ok(Viewer {
                    stream,
                    stage: Stage::Connecting,
                    interest,
                    last_part_at: Instant::now(),
                    stalled: false,
                    ever_stalled: false,
                    last_frame_number: None,
                })
            });
            match opened {
                Ok(viewer) => {
                    self.viewers.push(Some(viewer));
                    self.live += 1;
                }
                Err(e) => {
                    // EMFILE, EADDRNOTAVAIL, ...: an error of the run.
                    self.viewers.push(None);
                    self.tally.connect_failures += 1;
                    self.tally.last_connect_at = Some(Instant::now());
                    self.tally.note_error(&e.to_string());
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
            if now >= self.next_stall_check {
                self.check_stalls(now);
            }
            self.print_progress(now);
            let leftovers = std::mem::take(&mut self.still_readable);
            let timeout = if leftovers.is_empty() {
                self.next_deadline().saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    self.still_readable = leftovers;
                    continue;
                }
                return Err(format!("poll failed: {e}"));
            }
            for event in events.iter() {
                // Events are hints: the handler tries until WouldBlock.
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                self.on_ready(event.token().0, readable);
            }
            for index in leftovers {
                self.on_ready(index, true);
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let deadline = self.phase_end.min(self.next_stall_check);
        self.next_progress.map_or(deadline, |at| deadline.min(at))
    }

    /// Moves to the next phase when the current one is over, or when every
    /// viewer is gone (nothing left to measure).
    fn advance(&mut self, now: Instant) {
        if self.phase == Phase::Warmup && (now >= self.phase_end || self.live == 0) {
            self.phase = Phase::Measuring;
            self.phase_end = self.tally.window_end;
            self.start_window_clocks();
        }
        if self.phase == Phase::Measuring && (now >= self.phase_end || self.live == 0) {
            self.end_window(now);
            self.phase = Phase::Done;
        }
    }

    fn start_window_clocks(&mut self) {
        self.cpu_at_window_start = cpu_time();
        self.server_cpu_at_window_start = self
            .plan
            .server_pid
            .and_then(|pid| process_cpu_time(pid).ok());
    }

    fn end_window(&mut self, now: Instant) {
        // A window cut short by the last viewer leaving ends then; one that
        // never started (every viewer gone in the warmup) is empty.
        let end = now.min(self.tally.window_end).max(self.tally.window_start);
        self.tally.window_end = end;
        let wall = end.saturating_duration_since(self.tally.window_start);
        if wall.is_zero() {
            return;
        }
        let cpu = cpu_time().saturating_sub(self.cpu_at_window_start);
        self.tool_cpu_percent = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64();
        if let (Some(pid), Some(at_start)) = (self.plan.server_pid, self.server_cpu_at_window_start)
        {
            self.server_cpu_percent = process_cpu_time(pid).ok().map(|at_end| {
                100.0 * at_end.saturating_sub(at_start).as_secs_f64() / wall.as_secs_f64()
            });
        }
    }

    /// Marks the viewers that have had no part for `--stall-after`.
    fn check_stalls(&mut self, now: Instant) {
        let stall_after = self.plan.stall_after;
        for viewer in self.viewers.iter_mut().flatten() {
            if !viewer.stalled && now.saturating_duration_since(viewer.last_part_at) >= stall_after
            {
                viewer.stalled = true;
                self.tally.stalls += 1;
                if !viewer.ever_stalled {
                    viewer.ever_stalled = true;
                    self.tally.stalled_viewers += 1;
                }
            }
        }
        self.next_stall_check = now + self.stall_check_interval;
    }

    fn on_ready(&mut self, index: usize, readable: bool) {
        let Some(viewer) = self.viewers.get_mut(index).and_then(Option::as_mut) else {
            return; // closed earlier in this iteration: a stale event
        };
        if matches!(viewer.stage, Stage::Connecting) {
            match viewer.finish_connect() {
                Ok(true) => {
                    viewer.stage = Stage::Requesting { written: 0 };
                    self.tally.connected += 1;
                    self.tally.last_connect_at = Some(Instant::now());
                }
                Ok(false) => return,
                Err(e) => {
                    self.close(index, (Close::ConnectFailed, Some(e.to_string())));
                    return;
                }
            }
        }
        let outcome = self
            .write_request(index)
            .and_then(|()| {
                if readable {
                    self.read_until_blocked(index)
                } else {
                    Ok(())
                }
            })
            .and_then(|()| self.update_interest(index));
        if let Err(closing) = outcome {
            self.close(index, closing);
        }
    }

    fn write_request(&mut self, index: usize) -> Result<(), Closing> {
        let Some(viewer) = self.viewers[index].as_mut() else {
            return Ok(());
        };
        let request = &self.plan.request;
        while let Stage::Requesting { written } = &mut viewer.stage {
            match viewer.stream.write(&request[*written..]) {
                Ok(0) => return Err((Close::IoError, Some("write returned 0".to_string()))),
                Ok(n) => {
                    *written += n;
                    if *written == request.len() {
                        viewer.stage = Stage::ReadingHead { head: Vec::new() };
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((Close::IoError, Some(e.to_string()))),
            }
        }
        Ok(())
    }

    /// Reads until `WouldBlock` or until the read budget is spent.
    fn read_until_blocked(&mut self, index: usize) -> Result<(), Closing> {
        let Some(viewer) = self.viewers[index].as_mut() else {
            return Ok(());
        };
        if matches!(viewer.stage, Stage::Connecting | Stage::Requesting { .. }) {
            return Ok(()); // nothing is expected before the request is out
        }
        let mut budget_bytes = READ_BUDGET_BYTES;
        loop {
            if budget_bytes == 0 {
                self.still_readable.push(index);
                return Ok(());
            }
            match viewer.stream.read(&mut self.read_buffer) {
                Ok(0) => {
                    return Err(match viewer.stage {
                        Stage::Streaming { .. } => (Close::Dropped, None),
                        _ => (
                            Close::HttpError,
                            Some("the server closed before the response head".to_string()),
                        ),
                    })
                }
                Ok(n) => {
                    budget_bytes = budget_bytes.saturating_sub(n);
                    let now = Instant::now();
                    self.tally.bytes_received += n as u64;
                    if self.tally.in_window(now) {
                        self.tally.bytes_in_window += n as u64;
                    }
                    on_bytes(&mut self.tally, index, viewer, &self.read_buffer[..n], now)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // A reset of a stream is the server dropping the viewer.
                    let reason = match viewer.stage {
                        Stage::Streaming { .. } if e.kind() == io::ErrorKind::ConnectionReset => {
                            Close::Dropped
                        }
                        _ => Close::IoError,
                    };
                    return Err((reason, Some(e.to_string())));
                }
            }
        }
    }

    fn update_interest(&mut self, index: usize) -> Result<(), Closing> {
        let Some(viewer) = self.viewers[index].as_mut() else {
            return Ok(());
        };
        let wanted = viewer.wanted_interest();
        if wanted != viewer.interest {
            self.poll
                .registry()
                .reregister(&mut viewer.stream, Token(index), wanted)
                .map_err(|e| (Close::IoError, Some(e.to_string())))?;
            viewer.interest = wanted;
        }
        Ok(())
    }

    /// Deregisters and drops a viewer, counting why it closed.
    fn close(&mut self, index: usize, (reason, error): Closing) {
        let Some(mut viewer) = self.viewers[index].take() else {
            return;
        };
        // Deregister before the drop closes the descriptor (mio's contract).
        let _ = self.poll.registry().deregister(&mut viewer.stream);
        self.live -= 1;
        if let Some(error) = error {
            self.tally.note_error(&error);
        }
        // The part a closed viewer was in the middle of is not malformed:
        // the drop is counted, so the splitter is not `finish`ed.
        if let Stage::Streaming { splitter } = &viewer.stage {
            let stats = splitter.stats();
            self.tally.malformed_parts += stats.malformed_frames + stats.oversize_frames;
            self.tally.skipped_bytes += stats.skipped_bytes;
        }
        let tally = &mut self.tally;
        match reason {
            Close::ConnectFailed => {
                tally.connect_failures += 1;
                tally.last_connect_at = Some(Instant::now());
            }
            Close::HttpError => tally.http_errors += 1,
            Close::Dropped => tally.dropped += 1,
            Close::IoError => tally.io_errors += 1,
            Close::RunOver => {}
        }
    }

    fn print_progress(&mut self, now: Instant) {
        let Some(next) = self.next_progress else {
            return;
        };
        if now < next {
            return;
        }
        let frames: u64 = self.tally.window_frames.iter().sum();
        println!(
            "{:6.1} s  viewers {} of {}  frames {} (run {})  stalled {}  dropped {}  ({})",
            now.duration_since(self.start).as_secs_f64(),
            self.live,
            self.plan.viewers,
            frames,
            self.tally.frames_run,
            self.tally.stalled_viewers,
            self.tally.dropped,
            if self.phase == Phase::Warmup {
                "warmup"
            } else {
                "measuring"
            },
        );
        self.next_progress = Some(now + PROGRESS_INTERVAL);
    }

    /// Closes what is left and builds the report.
    fn finish(mut self) -> ViewerReport {
        let mut stalled_at_end = 0;
        for index in 0..self.viewers.len() {
            let reason = match &self.viewers[index] {
                None => continue,
                Some(viewer) if matches!(viewer.stage, Stage::Connecting) => Close::ConnectFailed,
                Some(viewer) => {
                    stalled_at_end += u64::from(viewer.stalled);
                    Close::RunOver
                }
            };
            self.close(index, (reason, None));
        }
        let tally = self.tally;
        let measured_s = tally
            .window_end
            .saturating_duration_since(tally.window_start)
            .as_secs_f64();
        let connect_s = tally
            .last_connect_at
            .map_or(0.0, |at| at.duration_since(self.start).as_secs_f64());
        let frames: u64 = tally.window_frames.iter().sum();
        let per_viewer = |frames: u64| per_second(frames, measured_s);
        let histogram = &tally.frame_age_us;
        let frame_age_us = (!histogram.is_empty()).then(|| FrameAge {
            p50_us: histogram.value_at_quantile(0.50),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
            count: histogram.len(),
        });
        let errors = tally.connect_failures
            + tally.http_errors
            + tally.dropped
            + tally.io_errors
            + tally.malformed_parts
            + tally.frame_order_errors;
        ViewerReport {
            url: self.plan.url.clone(),
            viewers: self.plan.viewers,
            measured_s,
            frames,
            frames_per_s: per_second(frames, measured_s),
            fps_per_viewer_mean: per_viewer(frames) / self.plan.viewers as f64,
            fps_per_viewer_min: per_viewer(tally.window_frames.iter().copied().min().unwrap_or(0)),
            fps_per_viewer_max: per_viewer(tally.window_frames.iter().copied().max().unwrap_or(0)),
            bytes_per_s: per_second(tally.bytes_in_window, measured_s),
            frame_age_us,
            untimed_frames: tally.untimed_frames,
            future_timestamps: tally.future_timestamps,
            frames_skipped: tally.frames_skipped,
            frames_run: tally.frames_run,
            bytes_received: tally.bytes_received,
            connected: tally.connected,
            connect_s,
            stalled_viewers: tally.stalled_viewers,
            stalled_at_end,
            stalls: tally.stalls,
            dropped_viewers: tally.dropped,
            malformed_parts: tally.malformed_parts,
            skipped_bytes: tally.skipped_bytes,
            frame_order_errors: tally.frame_order_errors,
            connect_failures: tally.connect_failures,
            http_errors: tally.http_errors,
            io_errors: tally.io_errors,
            errors,
            first_error: tally.first_error,
            tool_cpu_percent: self.tool_cpu_percent,
            server_cpu_percent: self.server_cpu_percent,
            viewer_frames: tally.window_frames,
        }
    }
}

/// Accounts for bytes read by viewer `index`: the response head first, then
/// parts through the splitter.
fn on_bytes(
    tally: &mut Tally,
    index: usize,
    viewer: &mut Viewer,
    bytes: &[u8],
    now: Instant,
) -> Result<(), Closing> {
    let after_head: Vec<u8>;
    let body = match &mut viewer.stage {
        Stage::ReadingHead { head } => {
            head.extend_from_slice(bytes);
            let Some((splitter, head_len)) = parse_response_head(head)? else {
                return Ok(());
            };
            after_head = head.split_off(head_len);
            viewer.stage = Stage::Streaming {
                splitter: Box::new(splitter),
            };
            // A stall is counted from the response on, not from the connect.
            viewer.last_part_at = now;
            &after_head[..]
        }
        Stage::Streaming { .. } => bytes,
        Stage::Connecting | Stage::Requesting { .. } => return Ok(()),
    };
    let Stage::Streaming { splitter } = &mut viewer.stage else {
        return Ok(());
    };
    splitter.push(body);
    while let Some(frame) = splitter.next_frame() {
        viewer.last_part_at = now;
        viewer.stalled = false;
        tally.frames_run += 1;
        let part = frame.part.unwrap_or_default();
        if let Some(number) = part.frame_number {
            match viewer.last_frame_number {
                Some(last) if number <= last => tally.frame_order_errors += 1,
                Some(last) => tally.frames_skipped += number - last - 1,
                None => {}
            }
            viewer.last_frame_number = Some(number);
        }
        if !tally.in_window(now) {
            continue;
        }
        tally.window_frames[index] += 1;
        match part.timestamp_micros {
            Some(sent_us) => {
                let now_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| since.as_micros() as u64);
                if sent_us > now_us {
                    tally.future_timestamps += 1;
                }
                tally
                    .frame_age_us
                    .saturating_record(now_us.saturating_sub(sent_us));
            }
            None => tally.untimed_frames += 1,
        }
    }
    Ok(())
}

/// Parses a complete response head at the front of `head`: the splitter for
/// the body and the head's length, `None` if incomplete, `Err` if it is not
/// a 200 response.
fn parse_response_head(head: &[u8]) -> Result<Option<(Splitter, usize)>, Closing> {
    let http_error = |message: String| (Close::HttpError, Some(message));
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let head_len = match response.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if head.len() <= MAX_RESPONSE_HEAD_BYTES => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(http_error("response head over 8 KiB".to_string()))
        }
        Err(e) => return Err(http_error(format!("bad response head: {e}"))),
    };
    if response.code != Some(200) {
        return Err(http_error(format!(
            "HTTP {} {}",
            response.code.unwrap_or(0),
            response.reason.unwrap_or("")
        )));
    }
    let content_type = response
        .headers
        .iter()
        .find(|field| field.name.eq_ignore_ascii_case("content-type"))
        .map(|field| String::from_utf8_lossy(field.value).into_owned())
        .unwrap_or_default();
    // Without a boundary parameter the splitter learns it from the body.
    let splitter = match boundary_from_content_type(&content_type) {
        Some(boundary) => Splitter::with_boundary(boundary, DEFAULT_MAX_FRAME_BYTES),
        None => Splitter::new(DEFAULT_MAX_FRAME_BYTES),
    };
    Ok(Some((splitter, head_len)))
}

/// `count / seconds`, 0 for an empty interval.
fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let split = |url: &str| split_http_url(url).map_err(|_| ());
        assert_eq!(
            split("http://127.0.0.1:8080/stream.mjpg"),
            Ok(("127.0.0.1:8080".into(), "/stream.mjpg".into()))
        );
        assert_eq!(
            split("http://cam/?action=stream"),
            Ok(("cam:80".into(), "/?action=stream".into()))
        );
        assert_eq!(split("http://[::1]"), Ok(("[::1]:80".into(), "/".into())));
        assert_eq!(
            split("http://[::1]:81/s"),
            Ok(("[::1]:81".into(), "/s".into()))
        );
        assert!(split("https://cam/").is_err());
        assert!(split("http://user:pw@cam/").is_err());
        assert!(split("http:///x").is_err());
    }

    #[test]
    fn only_a_200_response_starts_the_parts() {
        let ok =
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n--b";
        let parsed = parse_response_head(ok).expect("a 200");
        assert_eq!(parsed.map(|(_, len)| len), Some(ok.len() - 3));
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 200 OK\r\n"),
            Ok(None)
        ));
        let refused = parse_response_head(b"HTTP/1.1 401 Unauthorized\r\n\r\n");
        assert!(matches!(refused, Err((Close::HttpError, Some(m))) if m.contains("401")));
        assert!(parse_response_head(b"garbage\r\n\r\n").is_err());
    }
}
