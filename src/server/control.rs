//! The control-port session: runs decoded requests and produces replies.
//!
//! The byte-level rules live in [`crate::protocol`]; this module decides
//! what each request does to the server (stats, captures, shutdown) and
//! keeps the per-connection order: while a capture or `frame` waits for
//! its grab, later pipelined requests of that connection queue behind it.

use std::collections::VecDeque;
use std::time::Instant;

use super::connection::{Connection, Session, OUTPUT_SOFT_CAP_BYTES};
use super::{Core, FrameOutcome, FrameWaiter};
use crate::protocol::{
    frame_header, Command, DecodeError, Decoder, Framing, Request, Terminator, GREETING, HELP_REPLY,
};

/// The most bytes one `read()` takes on a line-mode control connection.
/// Small on purpose: when a connection has to queue (behind a capture, or
/// over its output cap), at most one read's worth of requests is held.
pub const CONTROL_READ_CHUNK_BYTES: usize = 4 * 1024;

/// Protocol state of one control connection.
pub struct ControlSession {
    decoder: Decoder,
    /// Requests that must wait for the one in `awaiting` (or for output
    /// room). Allocated only when something actually has to wait.
    queued: VecDeque<Request>,
    /// The capture or `frame` request waiting for a fresh grab.
    awaiting: Option<Request>,
    /// Input that broke the protocol, answered once everything before it is.
    refusal: Option<DecodeError>,
    authenticated: bool,
    /// Whether the client came in through a loopback listener, where
    /// `shutdown` needs no `auth`.
    via_loopback: bool,
}

impl ControlSession {
    /// A session for a new connection.
    pub fn new(framing: Framing, via_loopback: bool) -> Self {
        ControlSession {
            decoder: Decoder::new(framing),
            queued: VecDeque::new(),
            awaiting: None,
            refusal: None,
            authenticated: false,
            via_loopback,
        }
    }

    /// The greeting to send on connect.
    pub fn greeting(framing: Framing) -> &'static [u8] {
        if framing == Framing::Line {
            b"Welcome\n"
        } else {
            GREETING
        }
    }

    /// Reading more makes sense only when nothing is waiting; otherwise the
    /// socket's own buffer is the queue (backpressure on the client).
    pub fn accepts_input(&self) -> bool {
        self.is_idle() && self.refusal.is_none()
    }

    /// Nothing waiting and nothing queued.
    pub fn is_idle(&self) -> bool {
        self.awaiting.is_none() && self.queued.is_empty()
    }

    /// How much the next `read()` may take.
    pub fn max_read_bytes(&self) -> usize {
        self.decoder
            .max_read_bytes()
            .unwrap_or(CONTROL_READ_CHUNK_BYTES)
    }
}

impl Connection {
    fn control(&mut self) -> &mut ControlSession {
        match &mut self.session {
            Session::Control(control) => control,
            Session::Http(_) => unreachable!("control() on an HTTP connection"),
        }
    }

    /// Whether the next request may run now.
    fn may_run_request(&mut self) -> bool {
        !self.close_after_flush
            && self.output.pending_bytes() < OUTPUT_SOFT_CAP_BYTES
            && self.control().awaiting.is_none()
    }

    /// Decodes one read's bytes and runs the requests, queueing what has to wait.
    pub fn control_input(&mut self, core: &mut Core, key: usize, bytes: &[u8], now: Instant) {
        let mut requests = std::mem::take(&mut core.scratch_requests);
        let decoded = self.control().decoder.feed(bytes, &mut requests);
        for request in requests.drain(..) {
            if self.may_run_request() && self.control().queued.is_empty() {
                self.run_request(core, key, request, now);
            } else if !self.close_after_flush {
                self.control().queued.push_back(request);
            }
        }
        core.scratch_requests = requests;
        if let Err(error) = decoded {
            // Everything before the bad line is answered first, in order.
            self.control().refusal = Some(error);
            self.control_run_queued(core, key, now);
        }
    }

    /// Runs queued requests while nothing blocks them.
    pub fn control_run_queued(&mut self, core: &mut Core, key: usize, now: Instant) {
        while self.may_run_request() {
            let Some(request) = self.control().queued.pop_front() else {
                break;
            };
            self.run_request(core, key, request, now);
        }
        if self.close_after_flush {
            self.control().queued.clear();
        } else if self.control().is_idle() {
            if let Some(error) = self.control().refusal.take() {
                self.refuse_input(core, error);
            }
        }
    }

    fn refuse_input(&mut self, core: &mut Core, error: DecodeError) {
        core.counters.errors += 1;
        log::info!("control client {}: {error}; closing", self.peer);
        // An over-long line can only happen in line mode, so ERR is allowed.
        self.reply(&format!("ERR {error}"), Terminator::Lf);
        self.close_after_flush = true;
    }

    fn reply(&mut self, text: &str, terminator: Terminator) {
        self.output.push_bytes(text.as_bytes());
        self.output.push_bytes(terminator.as_bytes());
    }

    /// Sends an error: `ERR <area>: <reason>` in line mode, `Received` to
    /// raw clients, which only know that word.
    fn reply_error(&mut self, core: &mut Core, area: &str, reason: &str, terminator: Terminator) {
        core.counters.errors += 1;
        if terminator.is_raw() {
            self.reply("Received", terminator);
        } else {
            self.reply(&format!("ERR {area}: {reason}"), terminator);
        }
    }

    fn run_request(&mut self, core: &mut Core, key: usize, request: Request, now: Instant) {
        core.counters.requests += 1;
        let terminator = request.terminator;
        let needs_auth = core.config.token.is_some() && !self.control().authenticated;
        if needs_auth
            && !matches!(
                request.command,
                Command::Auth(_) | Command::Exit | Command::Help
            )
        {
            core.counters.auth_failures += 1;
            core.counters.errors += 1;
            self.reply("ERR auth: required", terminator);
            return;
        }
        match request.command {
            Command::Message => self.reply("Received", terminator),
            Command::Ping => self.reply("PONG", terminator),
            Command::Help => self.reply(HELP_REPLY, terminator),
            Command::Stats => {
                let line = stats_line(core, now);
                self.reply(&line, terminator);
            }
            Command::Capture | Command::Frame if !core.camera.is_present() => {
                if request.command == Command::Capture && terminator.is_raw() {
                    // The classic client expects `Received` for `c` either way.
                    core.counters.errors += 1;
                    self.reply("Received", terminator);
                } else {
                    self.reply_error(core, "camera", "no camera", terminator);
                }
            }
            Command::Capture | Command::Frame => {
                core.frame_waiters.push(FrameWaiter {
                    key,
                    conn_id: self.id,
                    seen_seq: core.camera.frames_grabbed,
                    wants_snapshot: request.command == Command::Capture,
                });
                self.control().awaiting = Some(request);
            }
            Command::Auth(token) => match &core.config.token {
                None => self.reply_error(core, "auth", "no token configured", terminator),
                Some(expected) if constant_time_eq(expected.as_bytes(), &token) => {
                    self.control().authenticated = true;
                    self.reply("OK", terminator);
                }
                Some(_) => {
                    core.counters.auth_failures += 1;
                    log::warn!("control client {}: wrong auth token", self.peer);
                    self.reply_error(core, "auth", "wrong token", terminator);
                }
            },
            Command::Exit => {
                if !terminator.is_raw() {
                    self.reply("Bye", terminator);
                }
                self.close_after_flush = true;
            }
            Command::Shutdown => {
                let allowed = self.control().via_loopback || self.control().authenticated;
                if !allowed {
                    self.reply_error(
                        core,
                        "auth",
                        "shutdown needs auth on a non-loopback listener",
                        terminator,
                    );
                    return;
                }
                log::info!("shutdown requested by control client {}", self.peer);
                if !terminator.is_raw() {
                    self.reply("OK shutting down", terminator);
                }
                core.shutdown_requested = true;
                self.close_after_flush = true;
            }
        }
    }

    /// Completes the capture or `frame` request that waited for a grab.
    pub fn control_frame_ready(&mut self, core: &mut Core, outcome: &FrameOutcome) {
        let Some(request) = self.control().awaiting.take() else {
            return;
        };
        let terminator = request.terminator;
        match (&request.command, &outcome.frame) {
            (_, Err(error)) => {
                let reason = error.to_string();
                self.reply_error(core, "camera", &reason, terminator);
            }
            (Command::Frame, Ok(frame)) => {
                self.output
                    .push_bytes(frame_header(frame.jpeg.len()).as_bytes());
                self.output.push_shared(frame.jpeg.clone());
            }
            (_, Ok(frame)) => match &outcome.snapshot {
                Some(Ok(saved)) => {
                    let text = format!(
                        "OK {} {}x{} {}",
                        saved.file_name,
                        frame.width,
                        frame.height,
                        frame.jpeg.len()
                    );
                    if terminator.is_raw() {
                        self.reply("Received", terminator);
                    } else {
                        self.reply(&text, terminator);
                    }
                }
                Some(Err(reason)) => self.reply_error(core, "snapshot", reason, terminator),
                None => self.reply_error(core, "snapshot", "not written", terminator),
            },
        }
    }
}

/// The one-line `stats` reply. Keys are stable; new ones are only added.
fn stats_line(core: &Core, now: Instant) -> String {
    let camera = core.camera.status(now);
    let counters = &core.counters;
    // A source name may contain spaces (a GStreamer pipeline); keep the
    // reply one whitespace-separated key=value list.
    let camera_name: String = camera
        .name
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!(
        "OK clients={} clients_max={} uptime_s={} camera={} camera_ok={} width={} height={} \
         fps_x100={} frames_grabbed={} frames_encoded={} snapshots={} snapshot_errors={} \
         bytes_in={} bytes_out={} requests={} errors={} grab_us_p50={} grab_us_p99={} \
         grab_us_max={} encode_us_p99={}{}",
        core.clients,
        core.max_clients,
        now.duration_since(core.started_at).as_secs(),
        camera_name,
        u8::from(camera.ok),
        camera.width,
        camera.height,
        camera.fps_x100,
        core.camera.frames_grabbed,
        core.camera.frames_encoded,
        counters.snapshots,
        counters.snapshot_errors,
        counters.bytes_in,
        counters.bytes_out,
        counters.requests,
        counters.errors,
        core.camera.grab_time.quantile_micros(0.5),
        core.camera.grab_time.quantile_micros(0.99),
        core.camera.grab_time.max_micros(),
        core.camera.encode_time.quantile_micros(0.99),
        [
            ("frames_sent", counters.frames_sent),
            ("frames_dropped", counters.frames_dropped),
            ("viewers_dropped", counters.viewers_dropped),
        ]
        .into_iter()
        .chain(core.more_stats())
        .map(|(key, value)| format!(" {key}={value}"))
        .collect::<String>(),
    )
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    if expected.len() != given.len() {
        return false;
    }
    expected
        .iter()
        .zip(given)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
    }
}
