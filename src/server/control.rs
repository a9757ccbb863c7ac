//! The control-port session: runs decoded requests and produces replies.
//!
//! The byte-level rules and the reply strings live in [`crate::protocol`];
//! this module decides what each request does to the server (stats,
//! captures, shutdown) and keeps the per-connection order: while a capture
//! or `frame` waits for its grab, later pipelined requests of that
//! connection queue behind it. It works through a [`Context`] and never
//! sees the socket.

use std::collections::VecDeque;
use std::time::Instant;

use super::connection::Context;
use super::core::{Core, FrameOutcome};
use super::state_view::{self, cameras_line};
use crate::camera::controls::{self, ControlError};
use crate::protocol::{
    frame_header, Command, DecodeError, Decoder, Framing, Request, Terminator, BYE, HELP_REPLY, OK,
    PONG, RECEIVED, SHUTTING_DOWN,
};
use crate::text::constant_time_eq;

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
    /// (Boxed: a request can hold strings, and an idle connection's slot
    /// should not pay for them.)
    awaiting: Option<Box<Request>>,
    /// Input that broke the protocol, answered once everything before it is.
    refusal: Option<DecodeError>,
    authenticated: bool,
    /// Whether `shutdown` needs no `auth`: see [`may_shut_down_without_auth`].
    may_shut_down: bool,
}

/// Who may stop the server without `auth`: a *local peer*, that is a
/// client whose own address is loopback or that came in on the Unix socket
/// (whose file permissions already decided who may connect). The listener
/// does not count: a wildcard listener serves loopback clients too, and a
/// loopback listener says nothing about who is behind a port forward.
pub fn may_shut_down_without_auth(_listener_is_loopback: bool, local_peer: bool) -> bool {
    local_peer
}

impl ControlSession {
    /// A session for a new connection; `may_shut_down` is the answer of
    /// [`may_shut_down_without_auth`] for it.
    pub fn new(framing: Framing, may_shut_down: bool) -> Self {
        ControlSession {
            decoder: Decoder::new(framing),
            queued: VecDeque::new(),
            awaiting: None,
            refusal: None,
            authenticated: false,
            may_shut_down,
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

    /// Whether the next request may run now.
    fn may_run_request(&self, cx: &Context) -> bool {
        cx.may_run_request() && self.awaiting.is_none()
    }

    /// Decodes one read's bytes and runs the requests, queueing what has to wait.
    pub fn input(&mut self, cx: &mut Context, core: &mut Core, bytes: &[u8], now: Instant) {
        // The decoder steps out of the session while the read's requests
        // run, one by one as they are decoded: running one needs the rest
        // of the session, and nothing is collected in between.
        let mut decoder = std::mem::replace(&mut self.decoder, Decoder::new(Framing::Line));
        for decoded in decoder.requests(bytes) {
            match decoded {
                Ok(request) if self.may_run_request(cx) && self.queued.is_empty() => {
                    self.run_request(cx, core, request, now);
                }
                Ok(request) => {
                    if !cx.is_draining() {
                        self.queued.push_back(request);
                    }
                }
                // Everything before the bad line is answered first, in order.
                Err(error) => self.refusal = Some(error),
            }
        }
        self.decoder = decoder;
        if self.refusal.is_some() {
            self.run_queued(cx, core, now);
        }
    }

    /// Runs queued requests while nothing blocks them.
    #[inline]
    pub fn run_queued(&mut self, cx: &mut Context, core: &mut Core, now: Instant) {
        // The usual case, asked twice per turn: nothing waits. (Checked
        // inline; the work is not.)
        if !self.queued.is_empty() || self.refusal.is_some() {
            self.run_waiting(cx, core, now);
        }
    }

    fn run_waiting(&mut self, cx: &mut Context, core: &mut Core, now: Instant) {
        while self.may_run_request(cx) {
            let Some(request) = self.queued.pop_front() else {
                break;
            };
            self.run_request(cx, core, request, now);
        }
        if cx.is_draining() {
            self.queued.clear();
        } else if self.is_idle() {
            if let Some(error) = self.refusal.take() {
                core.counters.errors += 1;
                log::info!("control client {}: {error}; closing", cx.peer);
                // An over-long line can only happen in line mode, so ERR is allowed.
                cx.reply(&format!("ERR {error}"), Terminator::Lf.as_bytes());
                cx.close_after_flush();
            }
        }
    }

    fn run_request(&mut self, cx: &mut Context, core: &mut Core, request: Request, now: Instant) {
        core.counters.requests += 1;
        let terminator = request.terminator;
        let reply = |cx: &mut Context, text: &str| cx.reply(text, terminator.as_bytes());
        let needs_auth = core.config.token.is_some() && !self.authenticated;
        if needs_auth
            && !matches!(
                request.command,
                Command::Auth(_) | Command::Exit | Command::Help
            )
        {
            core.counters.auth_failures += 1;
            reply_error(cx, core, "auth", "required", terminator);
            return;
        }
        match request.command {
            Command::Message => reply(cx, RECEIVED),
            Command::Ping => reply(cx, PONG),
            Command::Help => reply(cx, HELP_REPLY),
            Command::Cameras => reply(cx, &cameras_line(core)),
            Command::Auth(ref token) => self.authenticate(cx, core, token, terminator),
            Command::Exit => {
                if !terminator.is_raw() {
                    reply(cx, BYE);
                }
                cx.close_after_flush();
            }
            Command::Shutdown => self.shut_down(cx, core, terminator),
            // Listed, not `_`: a new command must be placed on one side.
            Command::Capture { .. }
            | Command::Stats { .. }
            | Command::Frame { .. }
            | Command::Controls { .. }
            | Command::Get(_)
            | Command::Set(_) => self.run_camera_request(cx, core, request, now),
        }
    }

    /// `auth <token>`.
    fn authenticate(
        &mut self,
        cx: &mut Context,
        core: &mut Core,
        token: &[u8],
        terminator: Terminator,
    ) {
        match &core.config.token {
            None => reply_error(cx, core, "auth", "no token configured", terminator),
            Some(expected) if constant_time_eq(expected.as_bytes(), token) => {
                self.authenticated = true;
                cx.reply(OK, terminator.as_bytes());
            }
            Some(_) => {
                core.counters.auth_failures += 1;
                log::warn!("control client {}: wrong auth token", cx.peer);
                reply_error(cx, core, "auth", "wrong token", terminator);
            }
        }
    }

    /// `shutdown`: from a local peer, or after `auth`.
    fn shut_down(&mut self, cx: &mut Context, core: &mut Core, terminator: Terminator) {
        if !self.may_shut_down && !self.authenticated {
            let reason = "shutdown needs auth from a non-loopback client";
            reply_error(cx, core, "auth", reason, terminator);
            return;
        }
        log::info!("shutdown requested by control client {}", cx.peer);
        if !terminator.is_raw() {
            cx.reply(SHUTTING_DOWN, terminator.as_bytes());
        }
        core.shutdown_requested = true;
        cx.close_after_flush();
    }

    /// Runs a request about one camera: the one it names first, or the
    /// default one.
    fn run_camera_request(
        &mut self,
        cx: &mut Context,
        core: &mut Core,
        request: Request,
        now: Instant,
    ) {
        let terminator = request.terminator;
        let reply = |cx: &mut Context, text: &str| cx.reply(text, terminator.as_bytes());
        let camera = match request.command.camera() {
            None => 0,
            Some(name) => match core.camera_named(name) {
                Some(camera) => camera,
                None => {
                    let reason = format!("unknown camera {name}");
                    reply_error(cx, core, "request", &reason, terminator);
                    return;
                }
            },
        };
        match request.command {
            Command::Stats { .. } => {
                let numbers = state_view::numbers(core, now, state_view::Detail::Line);
                let line = match request.command.camera() {
                    None => state_view::stats_line(&numbers),
                    Some(_) => state_view::camera_stats_line(&numbers, camera),
                };
                reply(cx, &line);
            }
            Command::Capture { .. } | Command::Frame { .. }
                if !core.cameras[camera].camera.is_present() =>
            {
                let capture = matches!(request.command, Command::Capture { .. });
                if capture && terminator.is_raw() {
                    // The classic client expects `Received` for `c` either way.
                    core.counters.errors += 1;
                    reply(cx, RECEIVED);
                } else {
                    reply_error(cx, core, "camera", "no camera", terminator);
                }
            }
            Command::Capture { .. } | Command::Frame { .. } => {
                let capture = matches!(request.command, Command::Capture { .. });
                core.wait_for_frame(camera, cx.conn, capture, now);
                self.awaiting = Some(Box::new(request));
            }
            Command::Controls { .. } => match core.cameras[camera].camera.controls() {
                Ok(listed) => reply(cx, &controls::controls_line(&listed)),
                Err(error) => reply_control_error(cx, core, &error, terminator),
            },
            Command::Get(ref get) => match core.cameras[camera].camera.control(&get.name) {
                Ok(control) => reply(cx, &format!("OK {}={}", control.name, control.value)),
                Err(error) => reply_control_error(cx, core, &error, terminator),
            },
            Command::Set(ref set) => match core.cameras[camera]
                .camera
                .set_control(&set.name, &set.value)
            {
                Ok(control) => {
                    log::info!(
                        "control client {} set {} {}={}",
                        cx.peer,
                        core.cameras[camera].camera.name(),
                        control.name,
                        control.value
                    );
                    reply(cx, &format!("OK {}={}", control.name, control.value));
                }
                Err(error) => reply_control_error(cx, core, &error, terminator),
            },
            // run_request answers the commands that name no camera itself
            // and never passes them here; were one to come, it would be
            // answered as the plain message it is to this function.
            _ => reply(cx, RECEIVED),
        }
    }

    /// Completes the capture or `frame` request that waited for a grab.
    pub fn frame_ready(&mut self, cx: &mut Context, core: &mut Core, outcome: &FrameOutcome) {
        let Some(request) = self.awaiting.take() else {
            return;
        };
        let terminator = request.terminator;
        match (&request.command, &outcome.frame) {
            (_, Err(error)) => {
                let reason = error.to_string();
                reply_error(cx, core, "camera", &reason, terminator);
            }
            (Command::Frame { .. }, Ok(frame)) => {
                cx.output
                    .push_bytes(frame_header(frame.jpeg.len()).as_bytes());
                cx.output.push_shared(frame.jpeg.clone());
            }
            (_, Ok(frame)) => match &outcome.snapshot {
                Some(Ok(_)) if terminator.is_raw() => cx.reply(RECEIVED, terminator.as_bytes()),
                Some(Ok(saved)) => {
                    let text = format!(
                        "OK {} {}x{} {}",
                        saved.file_name,
                        frame.width,
                        frame.height,
                        frame.jpeg.len()
                    );
                    cx.reply(&text, terminator.as_bytes());
                }
                Some(Err(reason)) => reply_error(cx, core, "snapshot", reason, terminator),
                None => reply_error(cx, core, "snapshot", "not written", terminator),
            },
        }
    }
}

/// Sends an error: `ERR <area>: <reason>` in line mode, `Received` to raw
/// clients, which only know that word. Every error reply to a request goes
/// through here, so the raw-mode rule (docs/control-protocol.md: a raw
/// request never gets `ERR`) holds for every request, including those added
/// later. (The one other `ERR`, an over-long line, exists only in line
/// mode.)
fn reply_error(
    cx: &mut Context,
    core: &mut Core,
    area: &str,
    reason: &str,
    terminator: Terminator,
) {
    core.counters.errors += 1;
    if terminator.is_raw() {
        cx.reply(RECEIVED, terminator.as_bytes());
    } else {
        cx.reply(&format!("ERR {area}: {reason}"), terminator.as_bytes());
    }
}

/// A failed `controls`, `get` or `set`, through [`reply_error`] like every error.
fn reply_control_error(
    cx: &mut Context,
    core: &mut Core,
    error: &ControlError,
    terminator: Terminator,
) {
    reply_error(cx, core, error.area(), &error.reason(), terminator);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_without_auth_depends_on_the_peer_only() {
        // (listener is loopback, peer is local) -> allowed
        assert!(may_shut_down_without_auth(true, true));
        assert!(
            may_shut_down_without_auth(false, true),
            "0.0.0.0, peer 127.0.0.1"
        );
        assert!(
            !may_shut_down_without_auth(false, false),
            "0.0.0.0, remote peer"
        );
        assert!(
            !may_shut_down_without_auth(true, false),
            "forwarded to 127.0.0.1"
        );
    }
}
