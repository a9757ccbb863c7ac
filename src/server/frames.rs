//! Frames to the connections that want them: requests waiting for a fresh
//! grab, and stream viewers.
//!
//! Both follow the same rule: one grab and one encode serve everybody who
//! wants that frame, and the JPEG bytes are shared (`Rc`), never copied
//! per consumer. This module changes sessions and queues output; it never
//! writes to a socket: every connection it touched is listed in `to_drive`
//! for the loop, which does the I/O.

use std::time::Instant;

use slab::Slab;

use super::connection::ConnRef;
use super::core::{Core, FrameOutcome};
use super::http_session::Offer;
use super::session::{live_entry, Entry};
use crate::camera::pipeline::SharedFrame;

/// One grab (or a reused newer frame) for every request waiting, at most
/// one snapshot write, then each waiter is answered in turn.
pub fn serve_waiters(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) {
    if core.frame_waiters.is_empty() {
        return;
    }
    let waiters = std::mem::take(&mut core.frame_waiters);
    let newer_than = waiters.iter().map(|w| w.seen_seq).max().unwrap_or(0);
    let frame = core.camera.fresh_frame(now, newer_than);
    let snapshot = match &frame {
        Ok(frame) if waiters.iter().any(|w| w.wants_snapshot) => {
            let saved = core.snapshots.write(&frame.jpeg);
            match &saved {
                Ok(s) => {
                    core.counters.snapshots += 1;
                    log::info!(
                        "snapshot {} ({}x{}, {} bytes, frame {})",
                        s.file_name,
                        frame.width,
                        frame.height,
                        frame.jpeg.len(),
                        frame.seq
                    );
                }
                Err(reason) => {
                    core.counters.snapshot_errors += 1;
                    log::warn!("snapshot failed: {reason}");
                }
            }
            Some(saved)
        }
        _ => None,
    };
    let outcome = FrameOutcome { frame, snapshot };
    for waiter in waiters {
        // The requester may have left meanwhile.
        if let Some(Entry { conn, session }) = live_entry(connections, waiter.conn) {
            session.frame_ready(&mut conn.context(waiter.conn.key), core, &outcome);
            to_drive.push(waiter.conn);
        }
    }
}

/// Offers a new frame to every stream viewer: one encode, shared bytes,
/// and a viewer that is still busy with the previous frame skips this one.
pub fn broadcast(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    frame: &SharedFrame,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) {
    let camera_interval = core.camera.stream_interval();
    for &viewer in &core.viewers {
        let Some(Entry { conn, session }) = live_entry(connections, viewer) else {
            continue;
        };
        match session.offer_frame(&mut conn.context(viewer.key), frame, now, camera_interval) {
            Offer::NotViewing => {}
            Offer::Sent => {
                core.counters.frames_sent += 1;
                to_drive.push(viewer);
            }
            Offer::Skipped => core.counters.frames_dropped += 1,
        }
    }
}
