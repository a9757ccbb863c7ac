//! Connection deadlines: the once-a-second sweep for stalled writers and
//! timed-out clients, and the two steps of a graceful shutdown around its
//! grace period.
//!
//! The sweep runs only while some connection is held to a deadline, so an
//! idle server still sleeps in `epoll_wait` without any timer. This module
//! decides who is past a deadline; it changes sessions and flags, and
//! hands the loop two lists: connections to drive, connections to close.
//! While the loop runs it never closes a connection itself (the loop does,
//! in one place); only [`finish_shutdown`], after the loop, drops the rest.

use std::time::{Duration, Instant};

use mio::Registry;
use signal_hook::consts::SIGINT;
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use super::connection::{CloseReason, ConnRef};
use super::core::Core;
use super::session::{live_entry, Entry};

/// How often connection deadlines are checked while any exist.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long shutdown waits for clients to read what they are owed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why a connection is past a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// Its output made no progress for its stall timeout.
    Stalled,
    /// A protocol deadline passed (idle, or a half-received HTTP head).
    TimedOut,
}

/// When the next sweep is due: None while no connection is held to a
/// deadline (so an idle server needs no timer). An existing sweep time is
/// kept: rescheduling it on every iteration would push it forward forever
/// on a busy loop.
pub fn next_sweep(scheduled: Option<Instant>, core: &Core, now: Instant) -> Option<Instant> {
    if !needs_sweep(core) {
        None
    } else {
        Some(scheduled.unwrap_or(now + SWEEP_INTERVAL))
    }
}

/// Whether any connection is held to a deadline: HTTP header and idle
/// timeouts (viewers have none), RTSP session timeouts (every RTSP
/// connection has one), stalled writers, the optional control idle timeout.
fn needs_sweep(core: &Core) -> bool {
    core.rtsp_clients > 0
        || core.http_clients > core.viewer_count()
        || core.blocked_writers > 0
        || (core.config.control_idle_timeout.is_some() && core.control_clients > 0)
}

/// Finds the connections past a deadline and deals with them: a timed-out
/// one is told so and closes after its output; a stalled one is dropped
/// unless a write attempt now moves something. Returns the connections to
/// close (every one of them still live).
pub fn sweep(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) -> Vec<(ConnRef, CloseReason)> {
    let mut to_close = Vec::new();
    let expired: Vec<(ConnRef, Expiry)> = connections
        .iter()
        .filter_map(|(key, entry)| expiry(entry, core, now).map(|e| (entry.conn.conn_ref(key), e)))
        .collect();
    for (conn_ref, expiry) in expired {
        let Some(Entry { conn, session }) = live_entry(connections, conn_ref) else {
            continue;
        };
        match expiry {
            Expiry::TimedOut => {
                log::debug!("client {} timed out", conn.peer);
                session.timed_out(&mut conn.context(conn_ref.key), core);
                to_drive.push(conn_ref);
            }
            Expiry::Stalled => {
                // Linux raises WRITABLE only once a third of the send buffer
                // is free, which a slow but steady reader may not reach
                // within the timeout. Events are hints: try the write, and
                // judge by whether it moved anything.
                conn.readiness.writable = true;
                match conn.flush(now, &mut core.spare_output) {
                    Ok(0) => {
                        let why = if let Some(camera) = session.viewed_camera() {
                            core.cameras[camera].counters.viewers_dropped += 1;
                            "stream viewer stalled"
                        } else {
                            core.counters.clients_dropped += 1;
                            "stopped reading its replies"
                        };
                        to_close.push((conn_ref, CloseReason::Dropped(why)));
                    }
                    Ok(written) => {
                        core.counters.bytes_out += written as u64;
                        to_drive.push(conn_ref);
                    }
                    Err(reason) => to_close.push((conn_ref, reason)),
                }
            }
        }
    }
    to_close
}

fn expiry(entry: &Entry, core: &Core, now: Instant) -> Option<Expiry> {
    let Entry { conn, session } = entry;
    if conn.is_closed() {
        return None;
    }
    let stall_limit = if session.is_viewer() {
        core.config.stream_stall_timeout
    } else {
        core.config.output_stall_timeout
    };
    if conn
        .write_blocked_since
        .is_some_and(|since| now >= since + stall_limit)
    {
        return Some(Expiry::Stalled);
    }
    if conn.is_draining() {
        return None; // already on its way out
    }
    session
        .deadline(conn.last_activity, core)
        .is_some_and(|deadline| now >= deadline)
        .then_some(Expiry::TimedOut)
}

/// Shutdown, first step: every connection finishes what it has queued and
/// reads nothing more.
pub fn drain_all(connections: &mut Slab<Entry>, to_drive: &mut Vec<ConnRef>) {
    for (key, entry) in connections.iter_mut() {
        entry.conn.close_after_flush();
        to_drive.push(entry.conn.conn_ref(key));
    }
}

/// SIGINT or SIGTERM arrived (through `signal-hook-mio`): the loop begins
/// the shutdown after this iteration, the same way as for `shutdown`.
pub fn on_signals(signals: &mut Signals, core: &mut Core) {
    for signal in signals.pending() {
        let name = if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        log::info!("{name} received, shutting down");
        core.shutdown_requested = true;
    }
}

/// Shutdown, last step once the grace is over: close whatever is left
/// (saying how many clients did not get all they were owed) and the camera.
pub fn finish_shutdown(connections: &mut Slab<Entry>, core: &mut Core, registry: &Registry) {
    let mut unflushed = 0;
    for (_, Entry { conn, .. }) in connections.iter_mut() {
        if !conn.is_closed() {
            unflushed += usize::from(!conn.output.is_empty());
            let _ = registry.deregister(&mut conn.socket);
        }
    }
    if unflushed > 0 {
        log::warn!("{unflushed} clients had unread output when the shutdown grace ended");
    }
    connections.clear();
    // Each camera's children get the grace in turn; they were asked to
    // stop (SIGTERM) one after the other, and most exit at once.
    for served in &mut core.cameras {
        served.camera.close(registry, SHUTDOWN_GRACE);
    }
    let (uptime, counters) = (core.started_at.elapsed(), &core.counters);
    let (accepted, requests) = (counters.connections_accepted, counters.requests);
    let uptime_s = uptime.as_secs();
    log::info!("stopped after {uptime_s} s: {accepted} connections, {requests} requests");
}
