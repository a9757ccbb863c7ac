//! Frames to the connections that want them: requests waiting for a fresh
//! grab, and stream viewers.
//!
//! Both follow the same rule: one grab and one encode (or, from a push
//! camera, one stamp) serve everybody who wants that frame, and the JPEG bytes are shared (`Rc`), never copied
//! per consumer. This module changes sessions and queues output; it never
//! writes to a socket: every connection it touched is listed in `to_drive`
//! for the loop, which does the I/O.

use std::time::Instant;

use mio::{Registry, Token};
use slab::Slab;

use super::connection::ConnRef;
use super::core::{Core, FrameOutcome};
use super::http_session::Offer;
use super::session::{live_entry, Entry};
use crate::camera::pipeline::{Fresh, SharedFrame};
use crate::camera::CameraError;
use crate::snapshot::SavedSnapshot;

/// Serves every request waiting for a fresh frame that can be served now.
/// From a timed camera one grab (or a reused newer frame) serves them all;
/// from a push camera each request takes the first frame that started
/// arriving after it, or keeps waiting until `--camera-timeout`. At most one
/// snapshot file is written per frame, whoever wanted it.
pub fn serve_waiters(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) {
    core.new_waiters = false;
    if core.frame_waiters.is_empty() {
        return;
    }
    let waiters = std::mem::take(&mut core.frame_waiters);
    let newer_than = waiters.iter().map(|w| w.seen_seq).max().unwrap_or(0);
    // The snapshot written for a frame, by sequence number, shared by all.
    let mut snapshot: Option<(u64, Result<SavedSnapshot, String>)> = None;
    for waiter in waiters {
        let frame = match core.camera.fresh_for(now, newer_than, waiter.requested_at) {
            Fresh::Ready(frame) => Ok(frame),
            Fresh::Failed(error) => Err(error),
            Fresh::Pending if now < waiter.requested_at + core.camera.timeout() => {
                core.frame_waiters.push(waiter);
                continue;
            }
            Fresh::Pending => Err(CameraError::new(format!(
                "{}: no frame for {} s",
                core.camera.name(),
                core.camera.timeout().as_secs_f64()
            ))),
        };
        let saved = match &frame {
            Ok(frame) if waiter.wants_snapshot => {
                if snapshot.as_ref().is_none_or(|(seq, _)| *seq != frame.seq) {
                    snapshot = Some((frame.seq, write_snapshot(core, frame)));
                }
                snapshot.as_ref().map(|(_, saved)| saved.clone())
            }
            _ => None,
        };
        let outcome = FrameOutcome {
            frame,
            snapshot: saved,
        };
        // The requester may have left meanwhile.
        if let Some(Entry { conn, session }) = live_entry(connections, waiter.conn) {
            session.frame_ready(&mut conn.context(waiter.conn.key), core, &outcome);
            to_drive.push(waiter.conn);
        }
    }
}

/// Writes one snapshot of `frame`, counts and logs it.
fn write_snapshot(core: &mut Core, frame: &SharedFrame) -> Result<SavedSnapshot, String> {
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
    saved
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

/// A push camera's descriptor is readable: the camera takes what arrived,
/// and a new frame goes to the viewers (waiters are served after the events).
pub fn camera_ready(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    registry: &Registry,
    token: Token,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) {
    let streaming = core.is_streaming();
    if let Some(frame) = core.camera.on_ready(registry, token, now, streaming) {
        broadcast(connections, core, &frame, now, to_drive);
    }
}
