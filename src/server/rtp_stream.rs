//! One camera's RTP stream, shared by all of its RTSP viewers: the
//! packetiser (SSRC, sequence numbers), the 90 kHz clock, every access unit
//! packetised once, the RTP form of the GOP cache, and the sender report.
//!
//! Each access unit becomes one [`RtpAu`]: all of its packets, each behind
//! its 4-byte interleave header, in one shared buffer. A viewer's whole
//! share of an access unit is then one `Rc` clone queued on its
//! connection, however many viewers and packets there are; only a viewer
//! on other channels than `interleaved=0-1` (none of the clients camloop
//! was tested with) costs a copy.
//!
//! The stream starts on a camera's first `DESCRIBE` or `SETUP` and then
//! packetises every access unit, watched or not: the sequence numbers of
//! the GOP cache's packets must come before those of the next access unit,
//! so the GOP cache cannot be packetised later, when a viewer arrives. It
//! is not the server's I/O: [`frames`](super::frames) hands the packets to
//! the sessions, which queue them.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::camera::h264_stream::SharedAu;
use crate::rtsp::response::{push_interleaved, INTERLEAVED_HEADER_BYTES};
use crate::rtsp::rtcp::{ntp_timestamp, sender_report, SenderInfo};
use crate::rtsp::rtp::{rtp_ticks, Packetizer, DYNAMIC_PAYLOAD_TYPE};

/// How often a playing viewer gets a sender report: RFC 3550 allows
/// anything from one per second up, and a client needs one soon after
/// `PLAY` (sent then) and another now and then to follow clock drift.
pub const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(2);

/// How far a timestamp moves from its prediction towards the access
/// unit's arrival: an eighth, so that a few milliseconds of arrival jitter
/// become a fraction of one.
const SMOOTHING_GAIN: f64 = 1.0 / 8.0;
/// The weight of a new interval in the mean interval.
const INTERVAL_WEIGHT: f64 = 1.0 / 16.0;

/// Evens out arrival jitter in a camera's timestamps.
///
/// An access unit is dated by the read that brought its first byte, and a
/// pipe or socket delivers frames a few milliseconds early or late (ffmpeg
/// `-re` writes a 30 fps clip at 30 and 40 ms intervals). A player that
/// times its output by those dates drops or repeats frames (ffmpeg:
/// `non monotonically increasing dts`). A camera captures at a steady
/// rate, so each timestamp is the last one plus the mean interval, moved
/// an eighth of the way towards the arrival; an arrival more than half an
/// interval from that prediction (a lost frame, a restart, another rate)
/// is taken as it is. Sans-IO: ticks in, ticks out.
#[derive(Debug, Default)]
struct JitterSmoother {
    mean_interval: Option<f64>,
    last_arrival: Option<u64>,
    last_stamp: Option<u64>,
}

impl JitterSmoother {
    /// The timestamp (in ticks) of an access unit that arrived at
    /// `arrival` ticks: after the previous one, always.
    fn stamp(&mut self, arrival: u64) -> u64 {
        let stamp = match (self.last_stamp, self.last_arrival) {
            (Some(last_stamp), Some(last_arrival)) => {
                let interval = arrival.saturating_sub(last_arrival) as f64;
                self.mean_interval = match self.mean_interval {
                    // Two units of one read say nothing of the rate yet.
                    None => (interval > 0.0).then_some(interval),
                    // A pause (a restart) is not the camera's rate.
                    Some(mean) if interval > 4.0 * mean => Some(mean),
                    Some(mean) => Some(mean + (interval - mean) * INTERVAL_WEIGHT),
                };
                let smoothed = match self.mean_interval {
                    Some(mean) => {
                        let predicted = last_stamp as f64 + mean;
                        let error = arrival as f64 - predicted;
                        if error.abs() > mean / 2.0 {
                            arrival
                        } else {
                            (predicted + error * SMOOTHING_GAIN).round() as u64
                        }
                    }
                    None => arrival,
                };
                smoothed.max(last_stamp + 1)
            }
            _ => arrival,
        };
        self.last_arrival = Some(arrival);
        self.last_stamp = Some(stamp);
        stamp
    }
}

/// One access unit, packetised: what every RTSP viewer of it is sent.
#[derive(Debug)]
pub struct RtpAu {
    /// The camera's sequence number of the access unit.
    pub au_seq: u64,
    /// It starts with an IDR: decoding may start here.
    pub keyframe: bool,
    /// Something before it was lost.
    pub follows_gap: bool,
    /// When the access unit was ready to send (for `frame_send_age`).
    pub ready_at: Instant,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// The sequence number of its first packet.
    pub first_sequence_number: u16,
    /// How many packets it is.
    pub packets: u32,
    /// The packets, each framed for interleaved channel 0.
    framed: Rc<[u8]>,
}

impl RtpAu {
    /// The packets framed for the viewer's RTP channel: shared for channel
    /// 0, a copy with the other channel byte otherwise.
    pub fn framed_on(&self, channel: u8) -> Rc<[u8]> {
        if channel == 0 {
            return self.framed.clone();
        }
        let mut copy = self.framed.to_vec();
        let mut at = 0;
        while at + INTERLEAVED_HEADER_BYTES <= copy.len() {
            copy[at + 1] = channel;
            let length = u16::from_be_bytes([copy[at + 2], copy[at + 3]]) as usize;
            at += INTERLEAVED_HEADER_BYTES + length;
        }
        copy.into()
    }

    /// Bytes sent per viewer, interleave headers included.
    pub fn framed_bytes(&self) -> usize {
        self.framed.len()
    }

    /// The packets themselves, without their interleave headers: what a
    /// viewer over UDP gets, one datagram each.
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.framed[..];
        std::iter::from_fn(move || {
            let header = rest.get(..INTERLEAVED_HEADER_BYTES)?;
            let length = u16::from_be_bytes([header[2], header[3]]) as usize;
            let end = INTERLEAVED_HEADER_BYTES + length;
            let packet = rest.get(INTERLEAVED_HEADER_BYTES..end)?;
            rest = &rest[end..];
            Some(packet)
        })
    }
}

/// A camera's RTP stream.
pub struct CameraRtp {
    packetizer: Packetizer,
    /// The monotonic instant the RTP clock reads `timestamp_base` at.
    clock_start: Instant,
    timestamp_base: u32,
    /// Each access unit's ticks since `clock_start`, evened out.
    smoother: JitterSmoother,
    /// The camera's sequence number of the last access unit packetised.
    last_au_seq: Option<u64>,
    /// The RTP form of the camera's GOP cache, in order.
    gop: Vec<Rc<RtpAu>>,
    /// Packets of one access unit, reused.
    scratch: Vec<Vec<u8>>,
    /// The SDES CNAME of the sender reports: `camloop-NAME`.
    cname: String,
}

impl CameraRtp {
    /// A stream for camera `name` with packets of at most
    /// `max_payload_bytes`, starting with the camera's GOP cache
    /// `cached` (packetised now, so that it is ready for the first viewer).
    /// The SSRC, the first sequence number and the timestamp base are
    /// random (RFC 3550 §5.1); the clock starts at the oldest cached access
    /// unit, so that every timestamp lies after it.
    pub fn new(name: &str, max_payload_bytes: usize, cached: &[SharedAu], now: Instant) -> Self {
        let clock_start = cached.first().map_or(now, |au| au.started_at.min(now));
        let mut stream = CameraRtp {
            packetizer: Packetizer::new(
                crate::sys::random_u32(),
                DYNAMIC_PAYLOAD_TYPE,
                max_payload_bytes,
                crate::sys::random_u32() as u16,
            ),
            clock_start,
            timestamp_base: crate::sys::random_u32(),
            smoother: JitterSmoother::default(),
            last_au_seq: None,
            gop: Vec::new(),
            scratch: Vec::new(),
            cname: format!("camloop-{name}"),
        };
        for au in cached {
            let rtp = stream.packetize(au);
            stream.gop.push(rtp);
        }
        stream
    }

    /// The SSRC of every packet, for `SETUP`'s `Transport`.
    pub fn ssrc(&self) -> u32 {
        self.packetizer.ssrc()
    }

    /// The RTP form of the GOP cache: what a new viewer is sent at once.
    pub fn gop(&self) -> &[Rc<RtpAu>] {
        &self.gop
    }

    /// The sequence number and RTP time a viewer starting now begins at,
    /// for `PLAY`'s `RTP-Info`: the GOP cache's first packet, or the next
    /// packet to be made.
    pub fn start_point(&self, now: Instant) -> (u16, u32) {
        match self.gop.first() {
            Some(first) => (first.first_sequence_number, first.timestamp),
            None => (
                self.packetizer.next_sequence_number(),
                self.timestamp_at(now),
            ),
        }
    }

    /// Packetises the camera's next access unit, and keeps the RTP form of
    /// the GOP cache in step with `gop_first_seq`, the camera's GOP cache's
    /// first access unit (None: the cache is empty). None for an access
    /// unit packetised already: one the stream found in the GOP cache when
    /// it started, before the server took it as new.
    pub fn push(&mut self, au: &SharedAu, gop_first_seq: Option<u64>) -> Option<Rc<RtpAu>> {
        if self.last_au_seq.is_some_and(|last| au.seq <= last) {
            return None;
        }
        let rtp = self.packetize(au);
        self.gop.push(rtp.clone());
        match gop_first_seq {
            Some(first) => self.gop.retain(|cached| cached.au_seq >= first),
            None => self.gop.clear(),
        }
        Some(rtp)
    }

    fn packetize(&mut self, au: &SharedAu) -> Rc<RtpAu> {
        self.last_au_seq = Some(au.seq);
        let ticks = self
            .smoother
            .stamp(rtp_ticks(self.clock_start, au.started_at));
        // Keeping the low 32 bits is the wrap RTP timestamps are made for.
        let timestamp = self.timestamp_base.wrapping_add(ticks as u32);
        let first_sequence_number = self.packetizer.next_sequence_number();
        self.scratch.clear();
        // An IDR without its SPS and PPS gets them in front, so that every
        // keyframe a viewer gets starts a decoder, whatever the SDP said
        // (the camera may have restarted with another size since).
        let prefix = if au.keyframe {
            au.parameter_sets_prefix()
        } else {
            Vec::new()
        };
        if prefix.is_empty() {
            self.packetizer
                .packetize(&au.data, timestamp, &mut self.scratch);
        } else {
            let whole = [prefix.as_slice(), &au.data].concat();
            self.packetizer
                .packetize(&whole, timestamp, &mut self.scratch);
        }
        let framed_bytes: usize = self
            .scratch
            .iter()
            .map(|packet| INTERLEAVED_HEADER_BYTES + packet.len())
            .sum();
        let mut framed = Vec::with_capacity(framed_bytes);
        for packet in &self.scratch {
            push_interleaved(&mut framed, 0, packet);
        }
        Rc::new(RtpAu {
            au_seq: au.seq,
            keyframe: au.keyframe,
            follows_gap: au.follows_gap,
            ready_at: au.ready_at,
            timestamp,
            first_sequence_number,
            packets: self.scratch.len() as u32,
            framed: framed.into(),
        })
    }

    /// The RTP time of instant `at` on this stream's clock.
    fn timestamp_at(&self, at: Instant) -> u32 {
        let ticks = rtp_ticks(self.clock_start, at);
        self.timestamp_base.wrapping_add(ticks as u32)
    }

    /// A sender report and SDES CNAME (one compound RTCP packet) for
    /// instant `now`, whose wall clock is `unix_us`: the mapping a client
    /// places each frame's RTP time in wall-clock time with, and the
    /// stream's packet and octet counts.
    pub fn sender_report(&self, now: Instant, unix_us: u64) -> Vec<u8> {
        sender_report(
            &SenderInfo {
                ssrc: self.ssrc(),
                ntp_timestamp: ntp_timestamp(unix_us),
                rtp_timestamp: self.timestamp_at(now),
                packet_count: self.packetizer.packet_count(),
                octet_count: self.packetizer.octet_count(),
            },
            &self.cname,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::response::INTERLEAVED_MAGIC;

    fn au(seq: u64, keyframe: bool, bytes: usize, started_at: Instant) -> SharedAu {
        let mut data = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
        data.resize(bytes, 0xAB);
        SharedAu {
            seq,
            data: data.into(),
            keyframe,
            follows_gap: false,
            started_at,
            started_unix_us: 0,
            ready_at: started_at,
            parameter_sets: None,
        }
    }

    /// The packets of `framed`, as (channel, packet) pairs.
    fn frames(framed: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < framed.len() {
            assert_eq!(framed[at], INTERLEAVED_MAGIC);
            let length = u16::from_be_bytes([framed[at + 2], framed[at + 3]]) as usize;
            out.push((framed[at + 1], framed[at + 4..at + 4 + length].to_vec()));
            at += 4 + length;
        }
        assert_eq!(at, framed.len(), "frames end where the buffer ends");
        out
    }

    #[test]
    fn timestamps_strictly_increase_even_for_access_units_of_one_read() {
        let start = Instant::now();
        let mut stream = CameraRtp::new("door", 1400, &[], start);
        let first = stream.push(&au(1, true, 100, start), Some(1)).unwrap();
        let same_read = stream.push(&au(2, false, 100, start), Some(1)).unwrap();
        let later = stream
            .push(
                &au(3, false, 100, start + Duration::from_millis(100)),
                Some(1),
            )
            .unwrap();
        assert_eq!(same_read.timestamp.wrapping_sub(first.timestamp), 1);
        // 100 ms later, within the tick the second unit was moved by.
        let later_by = later.timestamp.wrapping_sub(first.timestamp);
        assert!((9000..=9001).contains(&later_by), "{later_by}");
        assert_eq!(
            later.first_sequence_number,
            same_read.first_sequence_number.wrapping_add(1)
        );
    }

    #[test]
    fn arrival_jitter_is_evened_out_and_a_gap_is_taken_as_it_is() {
        let mut smoother = JitterSmoother::default();
        // 30 fps arriving at 30 and 40 ms intervals (2700 and 3600 ticks).
        let mut arrival = 0;
        let mut stamps = vec![smoother.stamp(arrival)];
        for step in 0..60 {
            arrival += if step % 3 == 2 { 3600 } else { 2700 };
            stamps.push(smoother.stamp(arrival));
        }
        let late: Vec<u64> = stamps[30..].windows(2).map(|w| w[1] - w[0]).collect();
        let (min, max) = (late.iter().min().unwrap(), late.iter().max().unwrap());
        assert!(*min > 2850 && *max < 3150, "intervals {late:?}");
        // Half a second without frames: the next stamp is its arrival.
        arrival += 45_000;
        assert_eq!(smoother.stamp(arrival), arrival);
        // Two access units of one read still get distinct stamps.
        let same = smoother.stamp(arrival);
        assert!(same > arrival);
    }

    #[test]
    fn the_gop_follows_the_cameras_cache_and_a_new_viewer_starts_at_its_idr() {
        let start = Instant::now();
        let mut stream = CameraRtp::new("door", 1400, &[], start);
        stream.push(&au(1, true, 3000, start), Some(1)).unwrap();
        stream.push(&au(2, false, 100, start), Some(1)).unwrap();
        assert_eq!(stream.gop().len(), 2);
        let idr = stream.push(&au(3, true, 100, start), Some(3)).unwrap();
        assert_eq!(stream.gop().len(), 1);
        assert_eq!(
            stream.start_point(start),
            (idr.first_sequence_number, idr.timestamp)
        );
        stream.push(&au(4, false, 100, start), None).unwrap();
        assert!(stream.gop().is_empty(), "the camera's cache was emptied");
    }

    #[test]
    fn a_stream_started_late_packetises_the_cached_gop_first() {
        let start = Instant::now();
        let cached = [
            au(7, true, 3000, start),
            au(8, false, 100, start + Duration::from_millis(33)),
        ];
        let mut stream = CameraRtp::new("door", 1400, &cached, start + Duration::from_secs(1));
        assert_eq!(stream.gop().len(), 2);
        assert_eq!(stream.gop()[0].packets, 3, "3000 bytes in FU-A fragments");
        assert!(
            stream.push(&cached[1], Some(7)).is_none(),
            "an access unit of the cache is not packetised twice"
        );
        let next = stream
            .push(
                &au(9, false, 100, start + Duration::from_millis(66)),
                Some(7),
            )
            .unwrap();
        let (first_seq, _) = stream.start_point(start);
        assert_eq!(next.first_sequence_number, first_seq.wrapping_add(4));
        assert!(next.timestamp.wrapping_sub(stream.gop()[0].timestamp) > 0);
    }

    #[test]
    fn framing_names_the_viewers_channel_and_keeps_the_packets() {
        let start = Instant::now();
        let mut stream = CameraRtp::new("door", 1000, &[], start);
        let rtp = stream.push(&au(1, true, 2500, start), Some(1)).unwrap();
        let on_zero = frames(&rtp.framed_on(0));
        let on_four = frames(&rtp.framed_on(4));
        assert_eq!(on_zero.len(), rtp.packets as usize);
        assert!(on_zero.iter().all(|(channel, _)| *channel == 0));
        assert!(on_four.iter().all(|(channel, _)| *channel == 4));
        let packets = |f: &[(u8, Vec<u8>)]| f.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>();
        assert_eq!(packets(&on_zero), packets(&on_four));
        assert_eq!(rtp.framed_bytes(), rtp.framed_on(0).len());
        let bare: Vec<Vec<u8>> = rtp.packets().map(<[u8]>::to_vec).collect();
        assert_eq!(bare, packets(&on_zero), "the same packets, unframed");
    }
}
