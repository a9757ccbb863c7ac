//! Frames to the connections that want them: requests waiting for a fresh
//! grab, and stream viewers, camera by camera.
//!
//! Both follow the same rule: one grab and one encode (or, from a push
//! camera, one stamp) serve everybody who wants that camera's frame, and
//! the JPEG bytes are shared (`Rc`), never copied per consumer. A camera's
//! frames and failures reach its own viewers and waiters only.
//!
//! This module changes sessions and queues output. It writes to a socket
//! in one case only: a stream frame just queued for a viewer is written at
//! once ([`Entry::write_fan_out`]), as the kernel nearly always takes it
//! whole. Every other connection it touched, and a viewer with output
//! left, is listed in `to_drive` for the loop, which does the rest of the
//! I/O (partial writes, WRITABLE interest, errors, closing).

use std::rc::Rc;
use std::time::{Instant, SystemTime};

use mio::{Registry, Token};
use slab::Slab;

use super::cameras::{camera_of_token, ServedCamera};
use super::connection::ConnRef;
use super::core::{AuOffer, Core, FrameOutcome, Offer};
use super::rtp_stream::{RtpAu, SENDER_REPORT_INTERVAL};
use super::rtp_udp::RtpUdp;
use super::session::{live_entry, Entry};
use crate::camera::converter::Direction;
use crate::camera::h264_stream::SharedAu;
use crate::camera::pipeline::{Codec, Fresh, SharedFrame};
use crate::camera::CameraError;
use crate::snapshot::SavedSnapshot;
use crate::timefmt::unix_micros;

/// Serves every request waiting for a fresh frame that can be served now,
/// for every camera. From a timed camera one grab (or a reused newer
/// frame) serves them all; from a push camera each request takes the first
/// frame that started arriving after it, or keeps waiting until
/// `--camera-timeout`. At most one snapshot file is written per frame,
/// whoever wanted it.
pub fn serve_waiters(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    registry: &Registry,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) {
    core.new_waiters = false;
    for camera in 0..core.cameras.len() {
        if !core.cameras[camera].frame_waiters.is_empty() {
            // A waiting request may need the decoder: start it now rather
            // than on the next timer pass.
            core.cameras[camera].update_demand(registry, now);
            serve_camera_waiters(connections, core, camera, now, to_drive);
        }
    }
}

fn serve_camera_waiters(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    camera: usize,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) {
    let waiters = std::mem::take(&mut core.cameras[camera].frame_waiters);
    let newer_than = waiters.iter().map(|w| w.seen_seq).max().unwrap_or(0);
    // The snapshot written for a frame, by sequence number, shared by all.
    let mut snapshot: Option<(u64, Result<SavedSnapshot, String>)> = None;
    for waiter in waiters {
        let served = &mut core.cameras[camera];
        let frame = match served
            .camera
            .fresh_for(now, newer_than, waiter.requested_at)
        {
            Fresh::Ready(frame) => Ok(frame),
            Fresh::Failed(error) => Err(error),
            Fresh::Pending if now < waiter.requested_at + served.camera.timeout() => {
                served.frame_waiters.push(waiter);
                continue;
            }
            // The camera may be fine and its decoder the one that is stuck:
            // say which waited in vain.
            Fresh::Pending if served.camera.codec() == Codec::H264 => {
                Err(CameraError::new(format!(
                    "{}: its H.264 decoder gave no JPEG for {} s",
                    served.camera.name(),
                    served.camera.timeout().as_secs_f64()
                )))
            }
            Fresh::Pending => Err(CameraError::new(format!(
                "{}: no frame for {} s",
                served.camera.source_name(),
                served.camera.timeout().as_secs_f64()
            ))),
        };
        let saved = match &frame {
            Ok(frame) if waiter.wants_snapshot => {
                if snapshot.as_ref().is_none_or(|(seq, _)| *seq != frame.seq) {
                    snapshot = Some((frame.seq, write_snapshot(served, frame)));
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

/// Writes one snapshot of `frame` for `served`, counts and logs it.
fn write_snapshot(served: &mut ServedCamera, frame: &SharedFrame) -> Result<SavedSnapshot, String> {
    let saved = served.snapshots.write(&frame.jpeg);
    let name = served.camera.name();
    match &saved {
        Ok(s) => {
            served.counters.snapshots += 1;
            log::info!(
                "camera {name}: snapshot {} ({}x{}, {} bytes, frame {})",
                s.file_name,
                frame.width,
                frame.height,
                frame.jpeg.len(),
                frame.seq
            );
        }
        Err(reason) => {
            served.counters.snapshot_errors += 1;
            log::warn!("camera {name}: snapshot failed: {reason}");
        }
    }
    saved
}

/// Offers a new frame of camera `camera` to each of its stream viewers:
/// one encode, shared bytes, and a viewer that is still busy with the
/// previous frame skips this one.
pub fn broadcast(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    camera: usize,
    frame: &SharedFrame,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) {
    let (cameras, mut books) = core.cameras_and_books();
    let served = &mut cameras[camera];
    let camera_interval = served.camera.stream_interval();
    for &viewer in &served.viewers {
        let Some(entry) = live_entry(connections, viewer) else {
            continue;
        };
        let mut cx = entry.conn.context(viewer.key);
        match entry
            .session
            .offer_frame(&mut cx, frame, now, camera_interval)
        {
            Offer::NotViewing => {}
            Offer::Sent => {
                served.counters.frames_sent += 1;
                if entry.write_fan_out(&mut books, now) {
                    to_drive.push(viewer);
                }
            }
            Offer::Skipped => served.counters.frames_dropped += 1,
        }
    }
}

/// A push camera's descriptor is readable: that camera takes what arrived,
/// and a new frame goes to its viewers (waiters are served after the events).
pub fn camera_ready(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    registry: &Registry,
    token: Token,
    udp: Option<&RtpUdp>,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) {
    let Some((camera, _)) = camera_of_token(token).filter(|&(c, _)| c < core.cameras.len()) else {
        return;
    };
    let served = &mut core.cameras[camera];
    let streaming = served.is_streaming();
    if let Some(frame) = served.camera.on_ready(registry, token, now, streaming) {
        broadcast(connections, core, camera, &frame, now, to_drive);
    }
    let access_units = core.cameras[camera].camera.take_access_units();
    if !access_units.is_empty() {
        broadcast_access_units(connections, core, camera, &access_units, udp, now, to_drive);
        if let Some(peers) = &mut core.webrtc {
            peers.send_access_units(camera, &access_units, now);
        }
        serve_describe_waiters(connections, core, camera, now, to_drive);
    }
}

/// Offers a camera's new H.264 access units, in order, to each of its
/// H.264 viewers (`/stream.h264` and RTSP): every one, or none until the
/// next IDR for a viewer that fell behind (the skip-to-IDR rule). The
/// bytes are shared, never copied: each access unit is packetised once for
/// all RTSP viewers, and one sender report serves those due one.
pub fn broadcast_access_units(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    camera: usize,
    access_units: &[SharedAu],
    udp: Option<&RtpUdp>,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) {
    let (cameras, mut books) = core.cameras_and_books();
    let served = &mut cameras[camera];
    let gop = served.camera.gop_cache();
    let last_idr_bytes = gop.map_or(0, |gop| gop.last_idr_bytes);
    let gop_first_seq = gop.and_then(|gop| gop.units().first()).map(|au| au.seq);
    let packetised: Vec<Option<Rc<RtpAu>>> = match &mut served.rtp {
        Some(rtp) => access_units
            .iter()
            .map(|au| rtp.push(au, gop_first_seq))
            .collect(),
        None => Vec::new(),
    };
    let sender_report = match &served.rtp {
        Some(rtp) if served.rtsp_viewers > 0 => {
            Some(rtp.sender_report(now, unix_micros(SystemTime::now())))
        }
        _ => None,
    };
    for &viewer in &served.viewers {
        let Some(entry) = live_entry(connections, viewer) else {
            continue;
        };
        let Entry { conn, session } = &mut *entry;
        let mut cx = conn.context(viewer.key);
        let mut sent_any = false;
        for (index, au) in access_units.iter().enumerate() {
            let rtp = packetised.get(index).and_then(Option::as_deref);
            let offer = AuOffer {
                au,
                rtp,
                sender_report: sender_report.as_deref(),
            };
            match session.offer_au(&mut cx, &offer, last_idr_bytes, now) {
                Offer::NotViewing => break,
                Offer::Sent => {
                    served.counters.frames_sent += 1;
                    if let (Some(rtp), true) = (rtp, session.is_rtsp()) {
                        served.counters.rtsp_packets_sent += u64::from(rtp.packets);
                        served.counters.rtsp_bytes_sent += rtp.framed_bytes() as u64;
                    }
                    sent_any = true;
                }
                Offer::Skipped => served.counters.frames_dropped += 1,
            }
        }
        if sent_any && entry.write_fan_out(&mut books, now) {
            to_drive.push(viewer);
        }
    }
    if let Some(udp) = udp {
        let units: Vec<&RtpAu> = packetised.iter().flatten().map(Rc::as_ref).collect();
        send_to_udp_viewers(served, udp, &units, sender_report.as_deref(), now);
    }
}

/// Sends a camera's new access units to its RTSP viewers over UDP: a
/// datagram per packet, never queued (as few sends as [`RtpUdp`] can make
/// of them). A viewer starts at an IDR; one whose packets the kernel would
/// not take (counted) waits for the next IDR, as after a gap in the
/// camera's stream. The first viewer served rotates.
fn send_to_udp_viewers(
    served: &mut ServedCamera,
    udp: &RtpUdp,
    units: &[&RtpAu],
    sender_report: Option<&[u8]>,
    now: Instant,
) {
    let count = served.udp_viewers.len();
    if count == 0 || units.is_empty() {
        return;
    }
    served.udp_first = (served.udp_first + 1) % count;
    let counters = &mut served.counters;
    let packets: Vec<Vec<&[u8]>> = units.iter().map(|rtp| rtp.packets().collect()).collect();
    for turn in 0..count {
        let viewer = &mut served.udp_viewers[(served.udp_first + turn) % count];
        for (rtp, packets) in units.iter().zip(&packets) {
            if rtp.follows_gap && !rtp.keyframe {
                viewer.waiting_for_idr = true;
            }
            if viewer.waiting_for_idr && !rtp.keyframe {
                counters.frames_dropped += 1;
                continue;
            }
            viewer.waiting_for_idr = false;
            if let Some(report) = sender_report.filter(|_| now >= viewer.next_report_at) {
                udp.send_rtcp(report, viewer.rtcp_to);
                viewer.next_report_at = now + SENDER_REPORT_INTERVAL;
            }
            let sent = udp.send_rtp_packets(packets, viewer.rtp_to);
            counters.rtsp_packets_sent += sent.packets;
            counters.rtsp_bytes_sent += sent.bytes;
            if sent.dropped > 0 {
                counters.rtsp_udp_packets_dropped += sent.dropped;
                viewer.waiting_for_idr = true;
            }
            counters.frames_sent += 1;
        }
    }
}

/// Receiver reports arrived on the RTCP port from `sources`: each keeps
/// alive the session of the UDP viewer whose RTCP port it came from.
pub fn rtcp_heard(
    connections: &mut Slab<Entry>,
    core: &Core,
    sources: &[std::net::SocketAddr],
    now: Instant,
) {
    for from in sources {
        let viewers = core.cameras.iter().flat_map(|served| &served.udp_viewers);
        for viewer in viewers.filter(|viewer| viewer.rtcp_to == *from) {
            if let Some(entry) = live_entry(connections, viewer.conn) {
                entry.session.heard(now);
            }
        }
    }
}

/// Answers the RTSP `DESCRIBE`s waiting for camera `camera`'s SPS and PPS:
/// all of them once it has them, and each one whose `--camera-timeout`
/// passed (with 503).
pub fn serve_describe_waiters(
    connections: &mut Slab<Entry>,
    core: &mut Core,
    camera: usize,
    now: Instant,
    to_drive: &mut Vec<ConnRef>,
) {
    let served = &mut core.cameras[camera];
    if served.describe_waiters.is_empty() {
        return;
    }
    let has_sets = served.camera.parameter_sets().is_some();
    let timeout = served.camera.timeout();
    let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut served.describe_waiters)
        .into_iter()
        .partition(|&(_, since)| has_sets || now >= since + timeout);
    served.describe_waiters = waiting;
    if due.is_empty() {
        return;
    }
    // Fewer waiters may mean no more need for the encoder.
    core.demand_changed = true;
    for (waiter, _) in due {
        // The requester may have left meanwhile.
        if let Some(Entry { conn, session }) = live_entry(connections, waiter) {
            session.describe_ready(&mut conn.context(waiter.key), core);
            to_drive.push(waiter);
        }
    }
}

/// The stream viewers of `served` whose stream needs a converter that
/// cannot start: MJPEG viewers of an H.264 camera without its decoder,
/// H.264 viewers of an MJPEG camera without its encoder.
pub fn viewers_without_converter(
    connections: &mut Slab<Entry>,
    served: &ServedCamera,
) -> Vec<ConnRef> {
    let Some((direction, _)) = served.camera.converter_start_error() else {
        return Vec::new();
    };
    let wants_h264 = direction == Direction::JpegToH264;
    served
        .viewers
        .iter()
        .copied()
        .filter(|&viewer| {
            live_entry(connections, viewer)
                .is_some_and(|e| e.session.is_h264_viewer() == wants_h264)
        })
        .collect()
}
