//! Cameras that can wait: sources driven by readiness instead of a timer.
//!
//! A [`PushSource`] owns descriptors (a child's stdout pipe, a socket to a
//! network camera) registered with the event loop's poll. The loop calls
//! [`PushSource::on_ready`] when one of them is readable; the source reads
//! until `WouldBlock`, feeds the bytes to the MJPEG splitter and hands back
//! the newest complete frame. Nothing here ever blocks on the outside
//! world: a camera that stops sending simply produces no events, and the
//! pipeline's deadlines (`--camera-timeout`) decide when to give up on it.
//!
//! This module also owns [`FrameClock`], the splitter plus the one fact
//! the splitter cannot know: *when* a frame's first byte arrived, which is
//! what decides whether a frame is fresh enough for a capture.

use std::time::{Duration, Instant};

use mio::{Registry, Token};

use super::CameraError;
use crate::mjpeg::splitter::Splitter;

/// The tokens a push source may register its descriptors with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceTokens {
    /// The main descriptor (frames).
    pub frames: Token,
    /// A second one (a child's stderr).
    pub aux: Token,
}

impl SourceTokens {
    /// Whether `token` is one of these.
    pub fn contains(&self, token: Token) -> bool {
        token == self.frames || token == self.aux
    }
}

/// A complete frame as a push source delivered it.
#[derive(Debug, Clone)]
pub struct PushedFrame {
    /// The JPEG exactly as the source sent it.
    pub jpeg: Vec<u8>,
    /// Width from the SOF header.
    pub width: u32,
    /// Height from the SOF header.
    pub height: u32,
    /// When the read that carried its first byte happened (at the latest).
    pub started_at: Instant,
}

/// A source whose frames arrive when its descriptor is readable.
pub trait PushSource {
    /// A short name for `stats` and logs, e.g. `exec:ffmpeg -i clip.mjpeg …`.
    fn name(&self) -> String;

    /// Starts delivering (spawns the child, connects) and registers the
    /// descriptors with `tokens`. Must not block.
    fn start(
        &mut self,
        registry: &Registry,
        tokens: SourceTokens,
        now: Instant,
    ) -> Result<(), CameraError>;

    /// One of the descriptors is readable: read until `WouldBlock` and put
    /// the newest complete frame (if any) into `newest`. An error means the
    /// source ended or broke; the pipeline stops it and starts it again.
    fn on_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        newest: &mut Option<PushedFrame>,
    ) -> Result<(), CameraError>;

    /// A deadline of the source's own: a connect or response timeout, or
    /// when a source that asks for each frame (a snapshot URL) asks next.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Called once [`PushSource::deadline`] has passed (possibly also a
    /// little early, when the pipeline's own deadline was due: check it).
    /// An error stops the source; the pipeline restarts it with backoff.
    fn on_deadline(&mut self, _registry: &Registry, _now: Instant) -> Result<(), CameraError> {
        Ok(())
    }

    /// Stops at once (kill, close) and deregisters. Must not block.
    fn stop(&mut self, registry: &Registry);

    /// Non-blocking housekeeping on every timer run (reaping exited children).
    fn reap(&mut self) {}

    /// The last stop, after the event loop has ended: may wait up to
    /// `grace` for a child to exit by itself before killing it.
    fn shutdown(&mut self, registry: &Registry, grace: Duration) {
        let _ = grace;
        self.stop(registry);
    }
}

/// The MJPEG splitter with arrival times: a frame counts as started by the
/// read that carried its first byte. The splitter only says how many bytes
/// it still holds; when it holds none, the next read starts a frame; when
/// it still holds some after a frame was taken, the next frame started in
/// this read. (A boundary line held between frames makes the time a little
/// early, which only ever makes a frame look older, never fresher.)
#[derive(Debug)]
pub struct FrameClock {
    splitter: Splitter,
    current_started_at: Option<Instant>,
    oversize_seen: u64,
}

impl FrameClock {
    /// A clock around a new splitter.
    pub fn new(splitter: Splitter) -> Self {
        FrameClock {
            splitter,
            current_started_at: None,
            oversize_seen: 0,
        }
    }

    /// Feeds one read that happened at `now`; the newest complete frame goes
    /// into `newest`. Returns how many frames over the size cap were dropped
    /// in this read (the caller logs them).
    pub fn push(&mut self, bytes: &[u8], now: Instant, newest: &mut Option<PushedFrame>) -> u64 {
        if self.splitter.buffered_bytes() == 0 {
            self.current_started_at = Some(now);
        }
        self.splitter.push(bytes);
        while let Some(frame) = self.splitter.next_frame() {
            *newest = Some(PushedFrame {
                jpeg: frame.jpeg,
                width: frame.width,
                height: frame.height,
                started_at: self.current_started_at.unwrap_or(now),
            });
            self.current_started_at = Some(now);
        }
        if self.splitter.buffered_bytes() == 0 {
            self.current_started_at = None;
        }
        let oversize = self.splitter.stats().oversize_frames;
        let dropped = oversize - self.oversize_seen;
        self.oversize_seen = oversize;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jpeg::encode_bgr;

    fn jpeg() -> Vec<u8> {
        encode_bgr(16, 16, &vec![128; 16 * 16 * 3], 80).unwrap()
    }

    #[test]
    fn a_frame_is_as_old_as_the_read_that_carried_its_first_byte() {
        let frame = jpeg();
        let mut clock = FrameClock::new(Splitter::new(1 << 20));
        let t0 = Instant::now();
        let (t1, t2) = (
            t0 + Duration::from_millis(10),
            t0 + Duration::from_millis(20),
        );
        let mut newest = None;
        // The first half at t0, the rest and half of the next frame at t1.
        let half = frame.len() / 2;
        clock.push(&frame[..half], t0, &mut newest);
        assert!(newest.is_none());
        let mut second = frame[half..].to_vec();
        second.extend_from_slice(&frame[..half]);
        clock.push(&second, t1, &mut newest);
        assert_eq!(newest.take().unwrap().started_at, t0);
        clock.push(&frame[half..], t2, &mut newest);
        assert_eq!(
            newest.take().unwrap().started_at,
            t1,
            "its first byte came at t1"
        );
        // Nothing held now: the next frame starts with the next read.
        clock.push(&frame, t2 + Duration::from_millis(5), &mut newest);
        assert_eq!(newest.unwrap().started_at, t2 + Duration::from_millis(5));
    }

    #[test]
    fn only_the_newest_of_several_frames_in_one_read_is_kept() {
        let frame = jpeg();
        let mut clock = FrameClock::new(Splitter::new(1 << 20));
        let mut newest = None;
        let mut three = Vec::new();
        for _ in 0..3 {
            three.extend_from_slice(&frame);
        }
        clock.push(&three, Instant::now(), &mut newest);
        assert_eq!(newest.unwrap().jpeg, frame);
    }

    #[test]
    fn frames_over_the_cap_are_counted_once() {
        let frame = jpeg();
        let mut clock = FrameClock::new(Splitter::new(frame.len() - 1));
        let mut newest = None;
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        assert_eq!(clock.push(&two, Instant::now(), &mut newest), 2);
        assert!(newest.is_none());
        assert_eq!(clock.push(b"", Instant::now(), &mut newest), 0);
    }
}
