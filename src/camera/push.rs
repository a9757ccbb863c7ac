//! Cameras that can wait: sources driven by readiness instead of a timer.
//!
//! A [`PushSource`] owns descriptors (a child's stdout pipe, a socket to a
//! network camera) registered with the event loop's poll. The loop calls
//! [`PushSource::on_ready`] when one of them is readable; the source reads
//! until `WouldBlock`, feeds the bytes to a splitter and puts what came out
//! into the [`PushSink`]: the newest complete JPEG (a JPEG viewer behind
//! may skip to the newest), or every complete H.264 access unit in order
//! (an H.264 consumer may not). Nothing here ever blocks on the outside
//! world: a camera that stops sending simply produces no events, and the
//! pipeline's deadlines (`--camera-timeout`) decide when to give up on it.
//!
//! This module also owns [`FrameClock`], the splitter plus the one fact
//! the splitter cannot know: *when* a frame's first byte arrived, which is
//! what decides whether a frame is fresh enough for a capture; and
//! [`StreamClock`], which tells a byte stream's codec from its first bytes
//! (or is told it, `--camera-codec`) and feeds the right splitter.

use std::time::{Duration, Instant};

use mio::{Registry, Token};

use super::h264_stream::{AuClock, TimedAu};
use super::CameraError;
use crate::h264::{detect_stream, ParameterSets, StreamKind};
use crate::mjpeg::splitter::Splitter;

/// Bytes looked at to tell a stream's codec; a stream that is neither
/// Annex-B nor JPEG by then is read as MJPEG, whose splitter skips garbage
/// to the next picture (what camloop did before it knew H.264).
const CODEC_DETECTION_BYTES: usize = 4096;
/// How long a camera refused for its stream (H.265, B-frames) waits before
/// trying again: the stream will not change by itself soon, and a restart
/// every second would flood the log.
pub const REFUSED_RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// The codec a push camera's bytes are in (`--camera-codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CameraCodec {
    /// Told from the first bytes: Annex-B start codes or a JPEG.
    #[default]
    Auto,
    /// Concatenated JPEGs or multipart MJPEG.
    Mjpeg,
    /// H.264 Annex-B.
    H264,
}

impl CameraCodec {
    /// `auto`, `mjpeg` or `h264`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(CameraCodec::Auto),
            "mjpeg" => Ok(CameraCodec::Mjpeg),
            "h264" => Ok(CameraCodec::H264),
            other => Err(format!("camera codec {other:?}: give auto, mjpeg or h264")),
        }
    }
}

/// What one readiness event delivered.
#[derive(Debug, Default)]
pub struct PushSink {
    /// A JPEG source's newest complete frame (older ones in the same read
    /// are skipped: a picture stands alone).
    pub newest: Option<PushedFrame>,
    /// An H.264 source's complete access units, every one, in order.
    pub access_units: Vec<TimedAu>,
    /// Set with the error when the stream itself was refused (H.265,
    /// frame reordering): retry after [`REFUSED_RETRY_INTERVAL`], not at
    /// once.
    pub refused: bool,
    /// H.264 access units the splitter dropped as corrupt (a forbidden
    /// bit, a reserved NAL type, a picture without its first slice).
    pub corrupt_dropped: u64,
}

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
    /// what completed into `sink`. An error means the source ended or
    /// broke; the pipeline stops it and starts it again.
    fn on_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        sink: &mut PushSink,
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

    /// An H.264 source's SPS and PPS in force (none for the others).
    fn parameter_sets(&self) -> Option<ParameterSets> {
        None
    }

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

/// A push source's byte stream in either codec: told apart by its first
/// bytes unless the codec was given, then fed to the MJPEG splitter or the
/// Annex-B splitter.
#[derive(Debug)]
pub enum StreamClock {
    /// Not known yet: the first bytes are held until they tell.
    Detecting {
        /// The bytes so far (at most 4 KiB: past that, MJPEG is assumed).
        held: Vec<u8>,
        /// The frame or access-unit cap for the splitter to come.
        max_frame_bytes: usize,
    },
    /// MJPEG: the newest frame only.
    Jpeg(FrameClock),
    /// H.264: every access unit.
    H264(AuClock),
}

impl StreamClock {
    /// A stream in `codec` (detected when [`CameraCodec::Auto`]).
    pub fn new(codec: CameraCodec, max_frame_bytes: usize) -> Self {
        match codec {
            CameraCodec::Auto => StreamClock::Detecting {
                held: Vec::new(),
                max_frame_bytes,
            },
            CameraCodec::Mjpeg => {
                StreamClock::Jpeg(FrameClock::new(Splitter::new(max_frame_bytes)))
            }
            CameraCodec::H264 => StreamClock::H264(AuClock::new(max_frame_bytes)),
        }
    }

    /// Feeds one read that happened at `now` into `sink`. Returns how many
    /// frames over the cap were dropped (the caller logs them), or the
    /// reason the stream is refused (`sink.refused` is set then).
    pub fn push(&mut self, bytes: &[u8], now: Instant, sink: &mut PushSink) -> Result<u64, String> {
        if let StreamClock::Detecting {
            held,
            max_frame_bytes,
        } = self
        {
            held.extend_from_slice(bytes);
            let max = *max_frame_bytes;
            let next = match detect_stream(held) {
                StreamKind::H264 => StreamClock::H264(AuClock::new(max)),
                StreamKind::Jpeg => StreamClock::Jpeg(FrameClock::new(Splitter::new(max))),
                StreamKind::H265 => {
                    sink.refused = true;
                    return Err(crate::h264::Refusal::H265.to_string());
                }
                StreamKind::Unknown if held.len() >= CODEC_DETECTION_BYTES => {
                    StreamClock::Jpeg(FrameClock::new(Splitter::new(max)))
                }
                StreamKind::Unknown => return Ok(0),
            };
            let first_bytes = std::mem::take(held);
            *self = next;
            return self.push(&first_bytes, now, sink);
        }
        match self {
            StreamClock::Jpeg(clock) => Ok(clock.push(bytes, now, &mut sink.newest)),
            StreamClock::H264(clock) => {
                let stats = clock.splitter().stats();
                let (dropped_before, corrupt_before) =
                    (stats.oversize_dropped, stats.corrupt_dropped);
                clock.push(bytes, now, &mut sink.access_units);
                sink.corrupt_dropped += clock.splitter().stats().corrupt_dropped - corrupt_before;
                if let Some(refusal) = clock.refusal() {
                    sink.refused = true;
                    return Err(refusal.to_string());
                }
                Ok(clock.splitter().stats().oversize_dropped - dropped_before)
            }
            StreamClock::Detecting { .. } => Ok(0),
        }
    }

    /// The H.264 side, once the stream is known to be H.264.
    pub fn h264(&self) -> Option<&AuClock> {
        match self {
            StreamClock::H264(clock) => Some(clock),
            _ => None,
        }
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
