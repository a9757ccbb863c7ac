//! An H.264 camera's stream inside the pipeline: access units with their
//! times, shared by every consumer, and the GOP cache.
//!
//! This module owns the camera side of H.264 (the bytes themselves are
//! [`crate::h264`]'s, which never sees a clock):
//!
//! - [`AuClock`]: the Annex-B splitter plus the times the splitter cannot
//!   know: when the read that carried an access unit's first byte happened,
//!   and how long after its last byte it was known to be complete. Annex-B
//!   carries no lengths, so an access unit is complete only when the next
//!   one's first NAL unit arrives: about one frame interval late.
//! - [`SharedAu`]: one access unit as every consumer shares it (`Rc`
//!   bytes, never copied per consumer).
//! - [`GopCache`]: the access units from the last IDR on, so a new
//!   consumer's first picture is immediate instead of up to a GOP away.
//! - [`H264Feed`]: what a push camera keeps of its H.264 stream: the GOP
//!   cache, the access units not yet handed to the server, the current
//!   parameter sets and the stream's own numbers (keyframes, GOP length,
//!   bitrate, the completion delay).

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::h264::nal::nal_units;
use crate::h264::{AccessUnit, AnnexBSplitter, ParameterSets, Refusal};
use crate::stats::TimingHistogram;

/// `--gop-cache-bytes` by default: a 1080p GOP of a few seconds fits, and
/// it stays half of a viewer's output hard cap (8 MiB).
pub const DEFAULT_GOP_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// The window the bitrate is measured over.
const BITRATE_WINDOW: Duration = Duration::from_secs(2);

/// One access unit, shared by every consumer.
#[derive(Debug, Clone)]
pub struct SharedAu {
    /// The camera's sequence number for it (the same counter as frames).
    pub seq: u64,
    /// Annex-B bytes, 4-byte start codes; cloning shares them.
    pub data: Rc<[u8]>,
    /// It holds an IDR: decoding may start here.
    pub keyframe: bool,
    /// Something before it was lost: the reference chain is broken.
    pub follows_gap: bool,
    /// When the read that carried its first byte happened.
    pub started_at: Instant,
    /// The wall clock of that read, µs since the Unix epoch.
    pub started_unix_us: u64,
    /// When it was known complete: ready to send.
    pub ready_at: Instant,
    /// The camera's SPS and PPS when it arrived.
    pub parameter_sets: Option<Rc<ParameterSets>>,
}

impl SharedAu {
    /// Whether its own NAL units include an SPS (type 7) and a PPS (type 8):
    /// a decoder starting here needs nothing before it.
    pub fn carries_parameter_sets(&self) -> bool {
        let (mut sps, mut pps) = (false, false);
        for nal in nal_units(&self.data) {
            match nal.first().map(|header| header & 0x1F) {
                Some(7) => sps = true,
                Some(8) => pps = true,
                _ => {}
            }
        }
        sps && pps
    }

    /// The SPS and PPS as Annex-B bytes (4-byte start codes), to put before
    /// this access unit for a consumer that starts here and would otherwise
    /// lack them; empty when it carries its own, or none are known.
    pub fn parameter_sets_prefix(&self) -> Vec<u8> {
        match &self.parameter_sets {
            Some(sets) if !self.carries_parameter_sets() => {
                let mut prefix = Vec::with_capacity(sets.sps.len() + sets.pps.len() + 8);
                for nal in [&sets.sps, &sets.pps] {
                    prefix.extend_from_slice(&[0, 0, 0, 1]);
                    prefix.extend_from_slice(nal);
                }
                prefix
            }
            _ => Vec::new(),
        }
    }
}

/// An access unit as it came out of [`AuClock`].
#[derive(Debug)]
pub struct TimedAu {
    /// The access unit.
    pub au: AccessUnit,
    /// When the read that carried its first byte happened.
    pub started_at: Instant,
    /// From the read that brought its last byte to the read that showed it
    /// complete (the next access unit's first NAL unit).
    pub complete_delay: Duration,
}

/// The Annex-B splitter with arrival times.
///
/// The splitter only says how many bytes it holds. When it holds none, the
/// next read starts an access unit. An access unit completes when the next
/// one's first NAL unit arrives, so the access unit after it started in
/// the same read. Its last byte came with the read before (when it was
/// held before this read), which is exact when the writer writes an access
/// unit in one piece (ffmpeg does, up to 32 KiB) and at most one read
/// early otherwise.
#[derive(Debug)]
pub struct AuClock {
    splitter: AnnexBSplitter,
    current_started_at: Option<Instant>,
    last_read_at: Option<Instant>,
}

impl AuClock {
    /// A clock around a new splitter with this access-unit cap.
    pub fn new(max_au_bytes: usize) -> Self {
        AuClock {
            splitter: AnnexBSplitter::new(max_au_bytes),
            current_started_at: None,
            last_read_at: None,
        }
    }

    /// The splitter (its counters, parameter sets, refusal).
    pub fn splitter(&self) -> &AnnexBSplitter {
        &self.splitter
    }

    /// Why the stream cannot be served, once the splitter knows.
    pub fn refusal(&self) -> Option<Refusal> {
        self.splitter.refusal()
    }

    /// Feeds one read that happened at `now`; complete access units are
    /// appended to `out` in order.
    pub fn push(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<TimedAu>) {
        let held_before = self.splitter.buffered_bytes();
        if held_before == 0 {
            self.current_started_at = Some(now);
        }
        self.splitter.push(bytes);
        let mut first = true;
        while let Some(au) = self.splitter.next_au() {
            let complete_delay = match (first && held_before > 0, self.last_read_at) {
                (true, Some(last)) => now.saturating_duration_since(last),
                _ => Duration::ZERO,
            };
            first = false;
            out.push(TimedAu {
                au,
                started_at: self.current_started_at.unwrap_or(now),
                complete_delay,
            });
            self.current_started_at = Some(now);
        }
        if self.splitter.buffered_bytes() == 0 {
            self.current_started_at = None;
        }
        self.last_read_at = Some(now);
    }
}

/// Why the GOP cache stopped caching until the next IDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GopCacheEvent {
    /// The GOP grew past `--gop-cache-bytes`.
    Overflowed,
}

/// The access units from the last IDR on, bounded in bytes.
#[derive(Debug)]
pub struct GopCache {
    units: Vec<SharedAu>,
    bytes: usize,
    /// `--gop-cache-bytes`.
    pub max_bytes: usize,
    /// Over the cap, or after a gap: nothing is cached until the next IDR.
    suspended: bool,
    /// Access units since the last IDR (that one included), whatever was
    /// cached: the current GOP's length so far.
    since_idr: u64,
    /// The last complete GOP's length.
    pub last_gop_frames: u64,
    /// The last IDR's size in bytes (the skip rule's yardstick).
    pub last_idr_bytes: usize,
}

impl GopCache {
    /// An empty cache holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        GopCache {
            units: Vec::new(),
            bytes: 0,
            max_bytes,
            suspended: false,
            since_idr: 0,
            last_gop_frames: 0,
            last_idr_bytes: 0,
        }
    }

    /// Takes the camera's next access unit.
    pub fn push(&mut self, au: &SharedAu) -> Option<GopCacheEvent> {
        if au.keyframe {
            if self.since_idr > 0 {
                self.last_gop_frames = self.since_idr;
            }
            self.since_idr = 1;
            self.last_idr_bytes = au.data.len();
            self.clear();
            self.suspended = false;
        } else {
            self.since_idr += u64::from(self.since_idr > 0);
            if au.follows_gap {
                // The chain is broken: what is cached no longer leads here.
                self.clear();
                self.suspended = true;
            }
        }
        if self.suspended || (self.units.is_empty() && !au.keyframe) {
            return None;
        }
        if self.bytes + au.data.len() > self.max_bytes {
            self.clear();
            self.suspended = true;
            return Some(GopCacheEvent::Overflowed);
        }
        self.bytes += au.data.len();
        self.units.push(au.clone());
        None
    }

    /// The cached access units, an IDR first (empty when there is none).
    pub fn units(&self) -> &[SharedAu] {
        &self.units
    }

    /// Bytes cached.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Empties it (the camera stopped or restarted).
    pub fn clear(&mut self) {
        self.units.clear();
        self.bytes = 0;
    }

    /// Forgets what is cached and where the GOP stands (a new stream); the
    /// last complete GOP's figures stay until the new stream replaces them.
    pub fn reset(&mut self) {
        self.clear();
        self.suspended = false;
        self.since_idr = 0;
    }
}

/// What a push camera keeps of its H.264 stream.
pub struct H264Feed {
    /// The access units from the last IDR on.
    pub gop: GopCache,
    /// Access units arrived since the server last took them.
    pending: Vec<SharedAu>,
    /// The SPS and PPS in force, shared by every access unit that came
    /// under them.
    parameter_sets: Option<Rc<ParameterSets>>,
    /// IDRs received since start.
    pub keyframes: u64,
    /// Bytes of access units received since start.
    pub bytes_total: u64,
    /// When the last IDR came, or the stream started.
    last_idr_at: Option<Instant>,
    /// The missing-IDR warning was logged for this stretch.
    pub idr_missing_warned: bool,
    /// Recent access units' arrival and size, for the bitrate.
    recent: VecDeque<(Instant, usize)>,
    /// From an access unit's last byte to its being known complete.
    pub complete_delay: TimingHistogram,
    /// The GOP overflow warning was logged for this GOP.
    gop_overflow_warned: bool,
    /// The stream stopped and started again: its first access unit follows
    /// a gap for consumers that were watching before, whatever the new
    /// splitter says (a restarted child may begin on a P-frame).
    after_restart: bool,
}

impl H264Feed {
    /// An empty feed with a GOP cache of `gop_cache_bytes`.
    pub fn new(gop_cache_bytes: usize) -> Self {
        H264Feed {
            gop: GopCache::new(gop_cache_bytes),
            pending: Vec::new(),
            parameter_sets: None,
            keyframes: 0,
            bytes_total: 0,
            last_idr_at: None,
            idr_missing_warned: false,
            recent: VecDeque::new(),
            complete_delay: TimingHistogram::default(),
            gop_overflow_warned: false,
            after_restart: false,
        }
    }

    /// Whether any access unit arrived since the stream (re)started.
    pub fn is_flowing(&self) -> bool {
        self.last_idr_at.is_some()
    }

    /// Takes one access unit as number `seq` of camera `camera`, with the
    /// splitter's current parameter sets. Returns it as shared.
    pub fn accept(
        &mut self,
        timed: TimedAu,
        seq: u64,
        current_sets: Option<&ParameterSets>,
        unix_us: u64,
        now: Instant,
        camera: &str,
    ) -> SharedAu {
        if timed.au.parameter_sets_changed || self.parameter_sets.is_none() {
            self.parameter_sets = current_sets.cloned().map(Rc::new);
        }
        self.complete_delay.record(timed.complete_delay);
        let au = SharedAu {
            seq,
            keyframe: timed.au.keyframe,
            follows_gap: timed.au.follows_gap || std::mem::take(&mut self.after_restart),
            data: timed.au.data.into(),
            started_at: timed.started_at,
            started_unix_us: unix_us,
            ready_at: now,
            parameter_sets: self.parameter_sets.clone(),
        };
        if au.keyframe {
            self.keyframes += 1;
            self.last_idr_at = Some(now);
            self.idr_missing_warned = false;
            self.gop_overflow_warned = false;
        } else if self.last_idr_at.is_none() {
            // The stream's start counts as the wait's start.
            self.last_idr_at = Some(now);
        }
        if self.gop.push(&au) == Some(GopCacheEvent::Overflowed) && !self.gop_overflow_warned {
            self.gop_overflow_warned = true;
            log::warn!(
                "camera {camera}: the GOP grew past --gop-cache-bytes {}; new viewers wait for \
                 the next IDR",
                self.gop.max_bytes
            );
        }
        while self
            .recent
            .front()
            .is_some_and(|&(at, _)| now.duration_since(at) > BITRATE_WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.push_back((now, au.data.len()));
        self.bytes_total += au.data.len() as u64;
        self.pending.push(au.clone());
        au
    }

    /// The SPS and PPS in force, once the stream sent them.
    pub fn parameter_sets(&self) -> Option<Rc<ParameterSets>> {
        self.parameter_sets.clone()
    }

    /// The access units that arrived since the last call, in order.
    pub fn take_pending(&mut self) -> Vec<SharedAu> {
        std::mem::take(&mut self.pending)
    }

    /// Bits per second over the last 2 s.
    pub fn bitrate_bps(&self, now: Instant) -> u64 {
        let bytes: usize = self
            .recent
            .iter()
            .filter(|&&(at, _)| now.duration_since(at) <= BITRATE_WINDOW)
            .map(|&(_, bytes)| bytes)
            .sum();
        (bytes as u128 * 8 * 1000 / BITRATE_WINDOW.as_millis()) as u64
    }

    /// How long the stream has gone without an IDR, while it flows.
    pub fn without_idr_for(&self, now: Instant) -> Option<Duration> {
        self.last_idr_at.map(|at| now.saturating_duration_since(at))
    }

    /// The stream stopped: what was cached no longer leads anywhere, and
    /// what comes next does not follow what came before.
    pub fn reset(&mut self) {
        self.after_restart = true;
        self.gop.reset();
        self.pending.clear();
        self.parameter_sets = None;
        self.last_idr_at = None;
        self.idr_missing_warned = false;
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(seq: u64, keyframe: bool, follows_gap: bool, bytes: usize) -> SharedAu {
        let now = Instant::now();
        SharedAu {
            seq,
            data: vec![0u8; bytes].into(),
            keyframe,
            follows_gap,
            started_at: now,
            started_unix_us: 0,
            ready_at: now,
            parameter_sets: None,
        }
    }

    #[test]
    fn the_cache_holds_the_gop_from_the_last_idr() {
        let mut cache = GopCache::new(1_000);
        assert_eq!(cache.push(&au(1, false, false, 10)), None);
        assert!(
            cache.units().is_empty(),
            "no IDR yet: nothing to start from"
        );
        cache.push(&au(2, true, false, 100));
        cache.push(&au(3, false, false, 10));
        cache.push(&au(4, false, false, 10));
        let seqs: Vec<u64> = cache.units().iter().map(|u| u.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        cache.push(&au(5, true, false, 50));
        assert_eq!(cache.units().len(), 1);
        assert_eq!(cache.last_gop_frames, 3);
        assert_eq!(cache.last_idr_bytes, 50);
    }

    #[test]
    fn past_its_cap_or_after_a_gap_the_cache_waits_for_the_next_idr() {
        let mut cache = GopCache::new(100);
        cache.push(&au(1, true, false, 60));
        assert_eq!(
            cache.push(&au(2, false, false, 50)),
            Some(GopCacheEvent::Overflowed)
        );
        assert!(cache.units().is_empty());
        assert_eq!(cache.push(&au(3, false, false, 1)), None);
        assert!(cache.units().is_empty());
        cache.push(&au(4, true, false, 10));
        cache.push(&au(5, false, true, 10));
        assert!(cache.units().is_empty(), "a gap broke the chain");
        cache.push(&au(6, false, false, 10));
        assert!(cache.units().is_empty());
        cache.push(&au(7, true, true, 10));
        assert_eq!(cache.units().len(), 1);
    }

    #[test]
    fn an_idr_with_sps_and_pps_needs_no_prefix() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        let shared = SharedAu {
            data: data.to_vec().into(),
            ..au(1, true, false, 0)
        };
        assert!(shared.carries_parameter_sets());
        assert!(shared.parameter_sets_prefix().is_empty());
        let idr_alone = SharedAu {
            data: data[12..].to_vec().into(),
            ..au(1, true, false, 0)
        };
        assert!(!idr_alone.carries_parameter_sets());
    }
}
