//! The skip-to-IDR rule: what an H.264 consumer that falls behind does.
//!
//! A JPEG viewer behind skips to the newest frame: every JPEG stands alone.
//! An H.264 consumer must never resume on a P-frame, whose picture is
//! garbage without the frames before it. So it gets every access unit in
//! order, or, once it is *behind*, nothing until the next IDR. This module
//! is that rule, in one place: `/stream.h264` uses it, and so does every
//! later H.264 consumer (the decoder child, RTSP, WebRTC).
//!
//! *Behind* means either of:
//! - its unsent bytes exceed `max(2 × the last IDR's size,
//!   `[`BEHIND_MIN_BYTES`]`)`: the next GOP would only pile up behind them;
//! - its oldest unsent access unit became ready more than [`BEHIND_AGE`]
//!   ago: what it would show is already stale.
//!
//! An access unit that follows a gap in the camera's stream (one was
//! dropped: too large, corrupt, cut short) breaks the reference chain for
//! everybody: a consumer waits for the next IDR then too. What was queued
//! is never taken back, so an access unit partly written is always
//! finished, and the stream stays valid Annex-B.
//!
//! Sans-IO: the caller says how much it has unsent and passes the clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Unsent bytes below this never count as behind, however small the IDRs:
/// a consumer may hold a few frames in its socket without losing any.
pub const BEHIND_MIN_BYTES: usize = 512 * 1024;
/// An unsent access unit older than this means the consumer is behind.
pub const BEHIND_AGE: Duration = Duration::from_secs(1);

/// What a consumer does with an access unit offered to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Queue it.
    Queue,
    /// Leave it out: the consumer waits for the next IDR.
    Skip,
}

/// The facts about an access unit the rule needs.
#[derive(Debug, Clone, Copy)]
pub struct Offered {
    /// It holds an IDR: decoding may start here.
    pub keyframe: bool,
    /// Something before it was lost in the camera's stream.
    pub follows_gap: bool,
}

/// An access unit written whole: when it was ready, and whether it was an
/// IDR (whose send time is reported apart: it is many times the size of
/// the others, and the GOP cache a consumer starts with counts as one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// When it was ready to send.
    pub ready_at: Instant,
    /// It was an IDR, or the GOP cache sent at the start.
    pub keyframe: bool,
}

/// One consumer's place in the stream: following, or waiting for an IDR.
#[derive(Debug, Clone)]
pub struct AuFollower {
    waiting_for_idr: bool,
    /// Access units queued and not yet written whole: where each ends in
    /// the consumer's output (its running byte count), when it was ready
    /// and whether it was an IDR.
    unsent: VecDeque<(u64, Sent)>,
    /// Where the GOP cache sent at the start ends in the output: those
    /// bytes are a deliberate burst, not a sign of falling behind, so the
    /// byte rule leaves them out (the age rule still applies to them).
    cache_end: u64,
}

impl Default for AuFollower {
    fn default() -> Self {
        Self::new()
    }
}

impl AuFollower {
    /// A new consumer: it starts at an IDR (the GOP cache's first, or the
    /// camera's next).
    pub fn new() -> Self {
        AuFollower {
            waiting_for_idr: true,
            unsent: VecDeque::new(),
            cache_end: 0,
        }
    }

    /// Whether it is waiting for the next IDR.
    pub fn is_waiting_for_idr(&self) -> bool {
        self.waiting_for_idr
    }

    /// The GOP cache, an IDR first, was queued for a new consumer and ends
    /// at `end` in its output: it follows from there, and those bytes do
    /// not count against it.
    pub fn started_with_cache(&mut self, end: u64, now: Instant) {
        self.waiting_for_idr = false;
        self.cache_end = end;
        let sent = Sent {
            ready_at: now,
            keyframe: true,
        };
        self.unsent.push_back((end, sent));
    }

    /// Decides whether `au` is queued, given the consumer's output now
    /// (`unsent_bytes` still queued, `written_total` written since it
    /// started) and the size of the camera's last IDR.
    pub fn offer(
        &mut self,
        au: Offered,
        unsent_bytes: usize,
        written_total: u64,
        last_idr_bytes: usize,
        now: Instant,
    ) -> Admit {
        let cache_unsent = self.cache_end.saturating_sub(written_total) as usize;
        let live_unsent = unsent_bytes.saturating_sub(cache_unsent);
        let too_many_bytes = live_unsent > BEHIND_MIN_BYTES.max(2 * last_idr_bytes);
        let too_old = self
            .unsent
            .front()
            .is_some_and(|(_, sent)| now.saturating_duration_since(sent.ready_at) > BEHIND_AGE);
        let behind = too_many_bytes || too_old;
        if behind || (au.follows_gap && !au.keyframe) {
            self.waiting_for_idr = true;
        }
        // Only an IDR, offered while not behind, ends the wait.
        let can_resume = au.keyframe && !behind;
        if self.waiting_for_idr && !can_resume {
            return Admit::Skip;
        }
        self.waiting_for_idr = false;
        Admit::Queue
    }

    /// The consumer lost something the rule did not see (its own bound):
    /// it waits for the next IDR.
    pub fn fall_behind(&mut self) {
        self.waiting_for_idr = true;
    }

    /// Notes an access unit queued: it ends at `end` in the consumer's
    /// output (bytes queued in all), was ready at `ready_at`, and is an IDR
    /// or not.
    pub fn queued(&mut self, end: u64, ready_at: Instant, keyframe: bool) {
        self.unsent.push_back((end, Sent { ready_at, keyframe }));
    }

    /// After a write reached `written_total` bytes: calls `sent` for each
    /// access unit now written whole.
    pub fn written(&mut self, written_total: u64, mut sent: impl FnMut(Sent)) {
        while let Some(&(end, unit)) = self.unsent.front() {
            if written_total < end {
                break;
            }
            self.unsent.pop_front();
            sent(unit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Offered = Offered {
        keyframe: false,
        follows_gap: false,
    };
    const IDR: Offered = Offered {
        keyframe: true,
        follows_gap: false,
    };

    #[test]
    fn a_new_consumer_starts_at_an_idr() {
        let mut follower = AuFollower::new();
        let now = Instant::now();
        assert_eq!(follower.offer(P, 0, 0, 0, now), Admit::Skip);
        assert_eq!(follower.offer(IDR, 0, 0, 0, now), Admit::Queue);
        assert_eq!(follower.offer(P, 0, 0, 0, now), Admit::Queue);
    }

    #[test]
    fn too_many_unsent_bytes_mean_waiting_for_the_next_idr() {
        let mut follower = AuFollower::new();
        let now = Instant::now();
        assert_eq!(follower.offer(IDR, 0, 0, 100_000, now), Admit::Queue);
        // The threshold is max(2 × 300 KB, 512 KiB) = 600 KB.
        assert_eq!(follower.offer(P, 599_999, 0, 300_000, now), Admit::Queue);
        assert_eq!(follower.offer(P, 600_001, 0, 300_000, now), Admit::Skip);
        // Caught up, but a P-frame still cannot resume the picture.
        assert_eq!(follower.offer(P, 0, 0, 300_000, now), Admit::Skip);
        // An IDR while still behind is skipped too.
        assert_eq!(follower.offer(IDR, 700_000, 0, 300_000, now), Admit::Skip);
        assert_eq!(follower.offer(IDR, 0, 0, 300_000, now), Admit::Queue);
        // Small IDRs: 512 KiB still applies.
        assert_eq!(follower.offer(P, 500_000, 0, 1_000, now), Admit::Queue);
        assert_eq!(follower.offer(P, 530_000, 0, 1_000, now), Admit::Skip);
    }

    #[test]
    fn an_old_unsent_access_unit_means_behind() {
        let mut follower = AuFollower::new();
        let t0 = Instant::now();
        assert_eq!(follower.offer(IDR, 0, 0, 0, t0), Admit::Queue);
        follower.queued(1_000, t0, true);
        let later = t0 + BEHIND_AGE / 2;
        assert_eq!(follower.offer(P, 1_000, 0, 0, later), Admit::Queue);
        follower.queued(2_000, later, false);
        let mut sent = Vec::new();
        follower.written(1_000, |unit| sent.push(unit));
        let idr = Sent {
            ready_at: t0,
            keyframe: true,
        };
        assert_eq!(
            sent,
            vec![idr],
            "the first is written whole, the second not"
        );
        let late = later + BEHIND_AGE + Duration::from_millis(1);
        assert_eq!(follower.offer(P, 1_000, 0, 0, late), Admit::Skip);
        assert!(follower.is_waiting_for_idr());
        follower.written(2_000, |unit| sent.push(unit));
        assert!(!sent[1].keyframe, "the P-frame is told apart");
    }

    #[test]
    fn the_gop_cache_sent_at_the_start_is_not_falling_behind() {
        let mut follower = AuFollower::new();
        let t0 = Instant::now();
        // 3 MB of cache queued, nothing written yet.
        follower.started_with_cache(3_000_000, t0);
        assert_eq!(follower.offer(P, 3_000_000, 0, 100_000, t0), Admit::Queue);
        // Live bytes beyond the cache still count.
        assert_eq!(follower.offer(P, 3_600_000, 0, 100_000, t0), Admit::Skip);
        // So does age: the cache not written within BEHIND_AGE is behind.
        let mut slow = AuFollower::new();
        slow.started_with_cache(3_000_000, t0);
        let late = t0 + BEHIND_AGE + Duration::from_millis(1);
        assert_eq!(slow.offer(P, 3_000_000, 0, 0, late), Admit::Skip);
    }

    #[test]
    fn a_gap_in_the_camera_stream_waits_for_the_next_idr() {
        let mut follower = AuFollower::new();
        let now = Instant::now();
        assert_eq!(follower.offer(IDR, 0, 0, 0, now), Admit::Queue);
        let gap = Offered {
            keyframe: false,
            follows_gap: true,
        };
        assert_eq!(follower.offer(gap, 0, 0, 0, now), Admit::Skip);
        assert_eq!(follower.offer(P, 0, 0, 0, now), Admit::Skip);
        let idr_after_gap = Offered {
            keyframe: true,
            follows_gap: true,
        };
        assert_eq!(follower.offer(idr_after_gap, 0, 0, 0, now), Admit::Queue);
    }
}
