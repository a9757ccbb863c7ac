//! A slab entry: one [`Connection`] and its protocol [`Session`], side by
//! side, and the one `match` per operation that picks the protocol.
//!
//! The loop borrows the two halves separately: the connection for socket
//! work, the session (with a [`Context`] cut from the connection) for what
//! the bytes mean. That is what keeps the sessions ignorant of sockets;
//! they never see a `Connection`, only the context. This module decides
//! nothing about a protocol itself: each `match` only picks the session.

use std::io;
use std::time::{Duration, Instant};

use mio::{Registry, Token};
use slab::Slab;

use super::connection::{
    CloseReason, ConnRef, Connection, Context, ReadOutcome, OUTPUT_HARD_CAP_BYTES,
    OUTPUT_SOFT_CAP_BYTES, READ_BUDGET_BYTES,
};
use super::control::ControlSession;
use super::core::{AuOffer, Core, FrameOutcome, Offer, WriteBooks};
use super::http_session::{HttpSession, VIEWER_UNSENT_LIMIT_BYTES};
use super::rtsp_session::RtspSession;
use crate::camera::pipeline::SharedFrame;
use crate::h264::follow::Sent;

/// The protocol spoken on a connection.
///
/// The HTTP and RTSP sessions are boxed: they are the bigger ones, and the slab slot of
/// every connection is as big as its biggest variant. Boxed, an idle
/// control connection's whole slot stays within the 256 bytes per idle
/// connection that `benches/connections.sh` holds camloop to (a unit test
/// checks the slot against 240, leaving the allocator its share).
pub enum Session {
    /// The control port.
    Control(ControlSession),
    /// The HTTP port.
    Http(Box<HttpSession>),
    /// The RTSP port.
    Rtsp(Box<RtspSession>),
}

impl Session {
    /// Whether the session wants more input now (it does not while a
    /// request waits for the camera: the socket's buffer is then the queue).
    pub fn accepts_input(&self) -> bool {
        match self {
            Session::Control(control) => control.accepts_input(),
            Session::Http(http) => http.accepts_input(),
            Session::Rtsp(rtsp) => rtsp.accepts_input(),
        }
    }

    /// Nothing is waiting for the camera and nothing is queued.
    pub fn is_idle(&self) -> bool {
        match self {
            Session::Control(control) => control.is_idle(),
            Session::Http(http) => http.is_idle(),
            Session::Rtsp(rtsp) => rtsp.is_idle(),
        }
    }

    /// Whether this connection receives a stream (MJPEG, H.264, RTSP).
    pub fn is_viewer(&self) -> bool {
        self.viewed_camera().is_some()
    }

    /// The camera whose stream this connection receives, if any.
    pub fn viewed_camera(&self) -> Option<usize> {
        match self {
            Session::Http(http) => http.viewed_camera(),
            Session::Rtsp(rtsp) => rtsp.viewed_camera(),
            Session::Control(_) => None,
        }
    }

    /// Whether this is an RTSP connection.
    pub fn is_rtsp(&self) -> bool {
        matches!(self, Session::Rtsp(_))
    }

    /// How much the next `read()` may take.
    pub fn max_read_bytes(&self) -> usize {
        match self {
            Session::Control(control) => control.max_read_bytes(),
            Session::Http(_) | Session::Rtsp(_) => READ_BUDGET_BYTES,
        }
    }

    /// Handles one read's bytes.
    pub fn input(&mut self, cx: &mut Context, core: &mut Core, bytes: &[u8], now: Instant) {
        match self {
            Session::Control(control) => control.input(cx, core, bytes, now),
            Session::Http(http) => http.input(cx, core, bytes, now),
            Session::Rtsp(rtsp) => rtsp.input(cx, core, bytes, now),
        }
    }

    /// Runs requests that had to wait (for output room, or for a frame).
    #[inline]
    pub fn run_queued(&mut self, cx: &mut Context, core: &mut Core, now: Instant) {
        match self {
            Session::Control(control) => control.run_queued(cx, core, now),
            Session::Http(http) => http.run_queued(cx, core, now),
            Session::Rtsp(rtsp) => rtsp.run_queued(cx, core, now),
        }
    }

    /// Completes the request that waited for a fresh frame.
    pub fn frame_ready(&mut self, cx: &mut Context, core: &mut Core, outcome: &FrameOutcome) {
        match self {
            Session::Control(control) => control.frame_ready(cx, core, outcome),
            Session::Http(http) => http.frame_ready(cx, core, outcome),
            Session::Rtsp(_) => {}
        }
    }

    /// Answers the RTSP `DESCRIBE` that waited for its camera's SPS and PPS.
    pub fn describe_ready(&mut self, cx: &mut Context, core: &mut Core) {
        if let Session::Rtsp(rtsp) = self {
            rtsp.describe_ready(cx, core);
        }
    }

    /// An RTSP session's receiver report arrived over UDP.
    pub fn heard(&mut self, now: Instant) {
        if let Session::Rtsp(rtsp) = self {
            rtsp.heard(now);
        }
    }

    /// Whether this connection receives H.264: `/stream.h264`, or RTSP.
    pub fn is_h264_viewer(&self) -> bool {
        match self {
            Session::Http(http) => http.is_h264_viewer(),
            Session::Rtsp(rtsp) => rtsp.is_playing(),
            Session::Control(_) => false,
        }
    }

    /// Offers an H.264 access unit; only H.264 viewers take it.
    pub fn offer_au(
        &mut self,
        cx: &mut Context,
        offer: &AuOffer,
        last_idr_bytes: usize,
        now: Instant,
    ) -> Offer {
        match self {
            Session::Http(http) => http.offer_au(cx, offer, last_idr_bytes, now),
            Session::Rtsp(rtsp) => rtsp.offer_au(cx, offer, last_idr_bytes, now),
            Session::Control(_) => Offer::NotViewing,
        }
    }

    /// After a write: for each frame or access unit now handed to the
    /// kernel whole, how long after it was ready that happened, and
    /// whether it was an IDR (or the GOP cache). The clock is read here,
    /// after the write, and only if something was sent: the unit may have
    /// been made later in the same iteration.
    pub fn parts_sent(&mut self, written_total: u64, mut sent: impl FnMut(Duration, bool)) {
        let mut now = None;
        let mut record = |unit: Sent| {
            let now = *now.get_or_insert_with(Instant::now);
            sent(now.saturating_duration_since(unit.ready_at), unit.keyframe);
        };
        match self {
            Session::Http(http) => http.parts_sent(written_total, &mut record),
            Session::Rtsp(rtsp) => rtsp.parts_sent(written_total, &mut record),
            Session::Control(_) => {}
        }
    }

    /// Offers a stream frame; only HTTP viewers take it.
    pub fn offer_frame(
        &mut self,
        cx: &mut Context,
        frame: &SharedFrame,
        now: Instant,
        camera_interval: Duration,
    ) -> Offer {
        match self {
            Session::Http(http) => http.offer_frame(cx, frame, now, camera_interval),
            Session::Control(_) | Session::Rtsp(_) => Offer::NotViewing,
        }
    }

    /// The deadline the connection is held to now (header, idle), if any.
    pub fn deadline(&self, last_activity: Instant, core: &Core) -> Option<Instant> {
        match self {
            Session::Control(_) => core
                .config
                .control_idle_timeout
                .map(|idle| last_activity + idle),
            Session::Http(http) => http.deadline(last_activity, &core.config),
            Session::Rtsp(rtsp) => rtsp.deadline(&core.config),
        }
    }

    /// The deadline passed: say so if the protocol has words for it, then close.
    pub fn timed_out(&mut self, cx: &mut Context, core: &mut Core) {
        match self {
            Session::Http(http) => http.timed_out(cx, core),
            Session::Rtsp(rtsp) => rtsp.timed_out(cx, core),
            Session::Control(_) => {}
        }
        cx.close_after_flush();
    }
}

/// What one slab key holds.
pub struct Entry {
    /// The socket side.
    pub conn: Connection,
    /// The protocol side.
    pub session: Session,
}

impl Entry {
    /// Whether the loop should read now: the connection allows it (open,
    /// under its output cap) and the session wants input.
    pub fn wants_read(&self) -> bool {
        self.conn.may_read() && self.session.accepts_input()
    }

    /// Whether everything is said and the socket can be closed.
    pub fn is_finished(&self) -> bool {
        self.conn.is_finished(self.session.is_idle())
    }

    /// Re-registers the socket if its state calls for a different interest.
    pub fn update_interest(&mut self, registry: &Registry, key: usize) -> io::Result<()> {
        let desired = self.conn.desired_interest(self.wants_read());
        if desired != self.conn.registered {
            registry.reregister(&mut self.conn.socket, Token(key), desired)?;
            self.conn.registered = desired;
        }
        Ok(())
    }

    /// Takes a connection removed from the slab off the shared counts.
    pub fn forget(self, core: &mut Core) {
        core.clients -= 1;
        if self.conn.write_blocked_since.is_some() {
            core.blocked_writers -= 1;
        }
        match &self.session {
            Session::Control(_) => core.control_clients -= 1,
            Session::Http(_) => core.http_clients -= 1,
            Session::Rtsp(rtsp) => {
                core.rtsp_clients -= 1;
                if let Some(camera) = rtsp.awaited_camera() {
                    let waiters = &mut core.cameras[camera].describe_waiters;
                    waiters.retain(|(waiter, _)| waiter.id != self.conn.id);
                    core.demand_changed = true;
                }
            }
        }
        if let Some(camera) = self.session.viewed_camera() {
            let served = &mut core.cameras[camera];
            served.viewers.retain(|viewer| viewer.id != self.conn.id);
            if self.session.is_h264_viewer() {
                served.h264_viewers -= 1;
            }
            if self.session.is_rtsp() {
                served.rtsp_viewers -= 1;
                served
                    .udp_viewers
                    .retain(|viewer| viewer.conn.id != self.conn.id);
            }
            core.demand_changed = true;
        }
    }

    /// The socket work for one readiness event: flush, run what is queued,
    /// read within the budget and hand the input to the session, flush
    /// again; until the socket is drained, the session stops wanting input
    /// or [`READ_BUDGET_BYTES`] are spent (then the loop comes back later).
    /// A connection that became a stream viewer gets its socket's unsent
    /// limit. Afterwards the output caps are applied: a connection over the hard
    /// cap is dropped, one left with output the kernel would not take is
    /// counted as blocked (the stall sweep watches those).
    pub fn service(
        &mut self,
        core: &mut Core,
        key: usize,
        read_buffer: &mut [u8],
        now: Instant,
    ) -> Result<(), CloseReason> {
        let result = self.socket_work(core, key, read_buffer, now);
        // Whatever this turn stocked and did not use goes back to the loop.
        self.after_writes(&mut core.cameras_and_books().1);
        if self.session.is_viewer() && !self.conn.unsent_limited {
            self.conn
                .socket
                .limit_unsent_bytes(VIEWER_UNSENT_LIMIT_BYTES);
            self.conn.unsent_limited = true;
        }
        match self.conn.track_write_blocked(now) {
            Some(true) => core.blocked_writers += 1,
            Some(false) => core.blocked_writers -= 1,
            None => {}
        }
        if result.is_ok() && self.conn.output.pending_bytes() > OUTPUT_HARD_CAP_BYTES {
            core.counters.clients_dropped += 1;
            return Err(CloseReason::Dropped("output over its hard cap"));
        }
        result
    }

    /// Writes what a camera's fan-out just queued for this viewer, there
    /// and then, and returns whether the loop must still drive the
    /// connection: yes when the kernel did not take it all (the loop
    /// waits for WRITABLE and counts a blocked writer), when the loop
    /// counted it blocked before (only the loop's turn uncounts it and
    /// drops the WRITABLE interest), or when the write failed (the loop's
    /// own write fails the same way and closes it).
    ///
    /// Why not leave it all to the loop: a viewer is handed a frame every
    /// frame interval, and the kernel almost always takes it whole. Written
    /// here, while the viewer's state is still in the cache, it costs one
    /// `send()`; listed for the loop, a second pass over every viewer
    /// (read, requests, interest) that finds nothing else to do.
    pub fn write_fan_out(&mut self, books: &mut WriteBooks, now: Instant) -> bool {
        let Ok(written) = self.conn.flush(now, books.spares) else {
            return true;
        };
        *books.bytes_out += written as u64;
        self.after_writes(books);
        !self.conn.output.is_empty() || self.conn.write_blocked_since.is_some()
    }

    /// After writing: drained buffers go back to the loop, and each part
    /// now handed to the kernel whole has its send age recorded.
    fn after_writes(&mut self, books: &mut WriteBooks) {
        self.conn.output.release(books.spares);
        let (frame_send_age, idr_send_age) = (&mut *books.frame_send_age, &mut *books.idr_send_age);
        self.session
            .parts_sent(self.conn.output.written_total(), |age, keyframe| {
                if keyframe {
                    idr_send_age.record(age);
                } else {
                    frame_send_age.record(age);
                }
            });
    }

    fn socket_work(
        &mut self,
        core: &mut Core,
        key: usize,
        read_buffer: &mut [u8],
        now: Instant,
    ) -> Result<(), CloseReason> {
        let Entry { conn, session } = self;
        let mut budget = READ_BUDGET_BYTES;
        loop {
            core.counters.bytes_out += conn.flush(now, &mut core.spare_output)? as u64;
            let queued_before = conn.output.queued_total();
            session.run_queued(&mut conn.context(key), core, now);
            let ran_queued = conn.output.queued_total() > queued_before;
            core.counters.bytes_out += conn.flush(now, &mut core.spare_output)? as u64;
            let room = conn.output.pending_bytes() < OUTPUT_SOFT_CAP_BYTES;
            if ran_queued && room && !conn.is_draining() {
                // Queued requests stopped at the output soft cap and the
                // kernel then took it all: run the rest now. No event would
                // come for them (nothing pending to write, nothing new to
                // read), so stopping here would leave them queued forever.
                continue;
            }
            let wants_read = conn.may_read() && session.accepts_input();
            if !conn.readiness.readable || !wants_read || budget == 0 {
                return Ok(());
            }
            let limit = session.max_read_bytes().min(budget).min(read_buffer.len());
            match conn.read_into(&mut read_buffer[..limit], now)? {
                ReadOutcome::Data(read) => {
                    budget -= read;
                    core.counters.bytes_in += read as u64;
                    let bytes = &read_buffer[..read];
                    conn.output.stock(&mut core.spare_output);
                    session.input(&mut conn.context(key), core, bytes, now);
                }
                // Drained, or the peer is done. Nothing the loop's first
                // steps look at has changed since they last ran (the output
                // was flushed and the queue run before this read), so
                // another round would only find that out: stop here.
                ReadOutcome::WouldBlock | ReadOutcome::Eof => return Ok(()),
            }
        }
    }
}

/// The slab entry `conn` names, if that connection is still there: the one
/// place that checks a deferred reference (key *and* id, not closed).
pub fn live_entry(connections: &mut Slab<Entry>, conn: ConnRef) -> Option<&mut Entry> {
    connections
        .get_mut(conn.key)
        .filter(|entry| entry.conn.id == conn.id && !entry.conn.is_closed())
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
