//! The line and hold modes of `camloop load`: clients of a line-protocol
//! server, as a [`Mode`] run by [`super::driver`], the loop every mode
//! shares.
//!
//! A connection goes connect → greeting → (with `--auth`: `auth TOKEN` and
//! its `OK`) → requests. In request mode it keeps `pipeline` requests in
//! flight: each reply that arrives is answered with a new request, so the
//! server, not the tool, sets the pace (unless `--rate` caps it). In hold
//! mode it only connects and then stays idle.
//!
//! A request run ends with a short drain in which no new requests are sent
//! and the replies still in flight are collected, so every request sent is
//! either answered or reported as unanswered. A hold run measures from the
//! moment every connect has settled.

use std::collections::VecDeque;
use std::mem;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::driver::{
    self, Close, Closing, Connections, Counts, Measured, Mode, Moment, Progress, Schedule,
    WindowStart,
};
use super::report::{microseconds_histogram, per_second, Latency, LoadReport};
use super::wire::{Greeting, ReplyCounter};
use super::Plan;

/// Longest wait for `--hold` connects, from the last one issued, before the
/// stragglers count as failed.
const HOLD_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After the window: the longest wait for the replies still in flight. The
/// drain ends as soon as the last one is in, so this bound only matters for
/// a server that never answers; it is generous so that a loaded machine
/// (a reply that takes a second or two) does not turn into "unanswered".
const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// Leading reply bytes kept for the report.
const REPLY_SAMPLE_BYTES: usize = 64;
/// Longest reply to `auth` a connection holds while it waits for the line
/// end; a longer one is a refusal (camloop's are a few bytes).
const MAX_AUTH_REPLY_BYTES: usize = 256;

/// Runs the plan to the end and returns what it measured.
pub(super) fn drive(plan: &Plan) -> Result<LoadReport, String> {
    let schedule = Schedule {
        targets: plan.targets.clone(),
        connections: plan.conns,
        warmup: plan.warmup,
        duration: plan.duration,
        window_start: if plan.hold {
            WindowStart::AfterConnects {
                connect_timeout: HOLD_CONNECT_TIMEOUT,
            }
        } else {
            WindowStart::AfterWarmup
        },
        drain: (!plan.hold).then_some(DRAIN_GRACE),
        server_pid: plan.server_pid,
    };
    driver::drive(LineClients::new(plan)?, &schedule)
}

/// Why the mode closes a connection; each one is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// The server closed the connection while the run still used it.
    PeerClosed,
    /// The reply to `auth` was not `OK`.
    AuthRefused,
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

/// One client connection.
struct Conn {
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
    /// always the last `unsent_bytes` of `LineClients::batch`: that suffix
    /// is the write cursor, and a connection needs no output buffer of its
    /// own.
    unsent_bytes: usize,
    /// Whether this connection sits in `LineClients::pacer_queue`.
    awaiting_pacer: bool,
}

impl Conn {
    /// Takes the reply to `auth` from the front of `bytes` (what follows
    /// the greeting) while one is awaited; returns how many bytes it took.
    /// The reply is one line: `OK` (camloop) or `+OK` (redis), with `\n` or
    /// `\r\n`; anything else is a refusal.
    fn take_auth_reply(&mut self, bytes: &[u8]) -> Result<usize, Closing<Reason>> {
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
}

/// The closing of a connection whose `auth` was answered with `reply`.
fn auth_refused(reply: &[u8]) -> Closing<Reason> {
    let message = format!("auth refused: \"{}\"", reply.escape_ascii());
    Closing::mode(Reason::AuthRefused, Some(message))
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

/// The line and hold modes: the plan, the pacer and the counts of requests
/// and replies (the driver counts connects, I/O errors and bytes).
struct LineClients<'a> {
    plan: &'a Plan,
    /// The request repeated `pipeline` times; see `Conn::unsent_bytes`.
    batch: Vec<u8>,
    pacer: Option<Pacer>,
    /// Connections with room for a request, waiting for the pacer.
    pacer_queue: VecDeque<usize>,
    latency_us: Histogram<u64>,
    /// Replies received inside the window.
    requests: u64,
    requests_sent: u64,
    replies_received: u64,
    in_flight: u64,
    unanswered: u64,
    closed_by_peer: u64,
    unexpected_replies: u64,
    auth_failures: u64,
    reply_sample: Vec<u8>,
    /// `replies_received` when the last progress line was printed.
    replies_at_last_progress: u64,
}

impl<'a> LineClients<'a> {
    fn new(plan: &'a Plan) -> Result<Self, String> {
        Ok(LineClients {
            plan,
            batch: plan.request.repeat(plan.pipeline),
            // Started with the run (`on_start`).
            pacer: None,
            pacer_queue: VecDeque::new(),
            latency_us: microseconds_histogram("latency")?,
            requests: 0,
            requests_sent: 0,
            replies_received: 0,
            in_flight: 0,
            unanswered: 0,
            closed_by_peer: 0,
            unexpected_replies: 0,
            auth_failures: 0,
            reply_sample: Vec::with_capacity(REPLY_SAMPLE_BYTES),
            replies_at_last_progress: 0,
        })
    }

    /// Accounts for reply bytes read from a connection in request mode
    /// (what follows the greeting and the reply to `auth`).
    fn count_replies(&mut self, conn: &mut Conn, bytes: &[u8], at: &Moment) {
        let room = REPLY_SAMPLE_BYTES - self.reply_sample.len();
        self.reply_sample
            .extend_from_slice(&bytes[..room.min(bytes.len())]);
        let in_window = at.in_window();
        for _ in 0..conn.replies.feed(bytes) {
            let Some(sent_at) = conn.sent_at.pop_front() else {
                self.unexpected_replies += 1;
                continue;
            };
            self.replies_received += 1;
            self.in_flight -= 1;
            if in_window {
                self.requests += 1;
                let latency_us = at.now.saturating_duration_since(sent_at).as_micros();
                self.latency_us
                    .saturating_record(u64::try_from(latency_us).unwrap_or(u64::MAX));
            }
        }
    }

    /// Every failure the report calls an error.
    fn errors(&self, counts: &Counts) -> u64 {
        counts.errors() + self.closed_by_peer + self.unexpected_replies + self.auth_failures
    }
}

impl Mode for LineClients<'_> {
    type Conn = Conn;
    type Reason = Reason;
    type Report = LoadReport;

    /// `--rate` spaces requests from the start of the run.
    fn on_start(&mut self, start: Instant) {
        self.pacer = self.plan.rate.map(|requests_per_s| Pacer {
            start,
            requests_per_s,
            issued: 0,
        });
    }

    /// A connection starts by waiting for the greeting; with `--auth` its
    /// `auth` line is queued behind that.
    fn open(&mut self, _index: usize, _now: Instant) -> Conn {
        Conn {
            greeting: self.plan.greeting,
            auth: match &self.plan.auth {
                Some(line) => Auth::Unsent(line.len()),
                None => Auth::Done,
            },
            auth_reply: Vec::new(),
            replies: ReplyCounter::new(self.plan.expect),
            sent_at: VecDeque::with_capacity(self.plan.pipeline),
            unsent_bytes: 0,
            awaiting_pacer: false,
        }
    }

    /// Queues requests up to the pipeline depth, while the run still sends
    /// and the pacer allows.
    fn queue_output(&mut self, index: usize, conn: &mut Conn, at: &Moment) {
        let sending = at.may_start_work()
            && !self.plan.hold
            && conn.greeting.is_done()
            && conn.auth == Auth::Done;
        while sending && conn.sent_at.len() < self.plan.pipeline {
            let stamp = match &mut self.pacer {
                None => at.now,
                Some(pacer) => match pacer.take(at.now) {
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
            self.in_flight += 1;
        }
    }

    /// What is left of the `auth` line once the greeting is in, else the
    /// queued requests.
    fn unsent<'c>(&'c self, conn: &'c Conn) -> &'c [u8] {
        match (&self.plan.auth, conn.auth) {
            (Some(line), Auth::Unsent(left)) if conn.greeting.is_done() => {
                &line[line.len() - left..]
            }
            _ => &self.batch[self.batch.len() - conn.unsent_bytes..],
        }
    }

    fn on_written(&mut self, conn: &mut Conn, written: usize) {
        if let Auth::Unsent(left) = conn.auth {
            conn.auth = if written == left {
                Auth::Awaiting
            } else {
                Auth::Unsent(left - written)
            };
            return;
        }
        // A request counts as sent once its last byte is written.
        let request_bytes = self.plan.request.len();
        let queued_before = conn.unsent_bytes.div_ceil(request_bytes);
        conn.unsent_bytes -= written;
        let queued_after = conn.unsent_bytes.div_ceil(request_bytes);
        self.requests_sent += (queued_before - queued_after) as u64;
    }

    fn on_bytes(
        &mut self,
        _index: usize,
        conn: &mut Conn,
        bytes: &[u8],
        at: &Moment,
    ) -> Result<(), Closing<Reason>> {
        let bytes = &bytes[conn.greeting.consume(bytes)..];
        let bytes = &bytes[conn.take_auth_reply(bytes)?..];
        if !self.plan.hold {
            // An idle connection has nothing more to count.
            self.count_replies(conn, bytes, at);
        }
        Ok(())
    }

    fn on_peer_closed(&self, _conn: &Conn) -> Closing<Reason> {
        Closing::mode(Reason::PeerClosed, None)
    }

    fn on_close(&mut self, conn: Conn, reason: Close<Reason>) {
        let lost = conn.sent_at.len() as u64;
        self.in_flight -= lost;
        self.unanswered += lost;
        match reason {
            Close::Mode(Reason::PeerClosed) => self.closed_by_peer += 1,
            Close::Mode(Reason::AuthRefused) => self.auth_failures += 1,
            Close::ConnectFailed | Close::IoError | Close::RunOver => {}
        }
    }

    /// The pacer's next slot, while a connection waits for one.
    fn next_deadline(&self) -> Option<Instant> {
        let pacer = self.pacer.as_ref()?;
        (!self.pacer_queue.is_empty()).then(|| pacer.next_due())
    }

    /// Gives waiting connections the request slots the pacer has made due.
    fn on_timers(&mut self, at: &Moment, conns: &mut Connections<Conn>, wake: &mut Vec<usize>) {
        while let (Some(pacer), Some(&index)) = (&self.pacer, self.pacer_queue.front()) {
            if pacer.next_due() > at.now {
                return;
            }
            self.pacer_queue.pop_front();
            if let Some(conn) = conns.get_mut(index) {
                conn.awaiting_pacer = false;
                self.queue_output(index, conn, at);
                wake.push(index);
            }
        }
    }

    fn awaiting_replies(&self) -> bool {
        self.in_flight > 0
    }

    fn progress_line(&mut self, progress: &Progress) -> String {
        let counts = progress.counts;
        let elapsed_s = progress.elapsed_s;
        if self.plan.hold {
            return format!(
                "{elapsed_s:6.1} s  connected {} of {}  failed {}  closed by server {}",
                counts.connected, self.plan.conns, counts.connect_failures, self.closed_by_peer
            );
        }
        let replies = self.replies_received - self.replies_at_last_progress;
        self.replies_at_last_progress = self.replies_received;
        format!(
            "{elapsed_s:6.1} s  {:>12.0} req/s  errors {}  connections {} of {}  ({})",
            replies as f64 / progress.since_last_s,
            self.errors(counts),
            progress.live,
            self.plan.conns,
            progress.phase.name(),
        )
    }

    fn report(self, measured: Measured) -> LoadReport {
        let counts = measured.counts;
        let targets: Vec<String> = self.plan.targets.iter().map(|t| t.to_string()).collect();
        let server_cpu_us_per_request = measured
            .server_cpu
            .filter(|_| self.requests > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.requests as f64);
        LoadReport {
            target: targets.join(","),
            hold: self.plan.hold,
            conns: self.plan.conns,
            pipeline: self.plan.pipeline,
            measured_s: measured.measured_s,
            requests: self.requests,
            requests_per_s: per_second(self.requests, measured.measured_s),
            latency_us: Latency::from_histogram(&self.latency_us),
            requests_sent: self.requests_sent,
            replies_received: self.replies_received,
            unanswered: self.unanswered,
            connected: counts.connected,
            connect_s: measured.connect_s,
            connects_per_s: per_second(counts.connected, measured.connect_s),
            errors: self.errors(&counts),
            connect_failures: counts.connect_failures,
            closed_by_peer: self.closed_by_peer,
            io_errors: counts.io_errors,
            unexpected_replies: self.unexpected_replies,
            auth_failures: self.auth_failures,
            first_error: counts.first_error,
            bytes_sent: counts.bytes_sent,
            bytes_received: counts.bytes_received,
            tool_cpu_percent: measured.tool_cpu_percent,
            server_cpu_us_per_request,
            reply_sample: self.reply_sample,
        }
    }
}
