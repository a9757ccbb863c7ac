//! The camera as the event loop sees it: grab scheduling, one encode per
//! frame, and reopening a failed source with backoff.
//!
//! [`Camera`] owns the source, of one of two shapes. A timed
//! [`FrameSource`] is grabbed on a fixed-rate timer (`--fps` while somebody
//! streams, `--idle-fps` otherwise, none at all for a source that does not
//! need idle grabs) and turned into shared JPEG bytes only when somebody
//! needs pixels. A [`PushSource`] (a child process, a network camera) owns
//! descriptors in the loop's poll and hands over what completed when they
//! are readable ([`Camera::on_ready`]): of JPEGs the camera keeps only the
//! newest and stamps it only when somebody wants it; of H.264 it keeps
//! every access unit for the server ([`Camera::take_access_units`]) and
//! the GOP cache ([`Camera::gop_cache`]). It kills and restarts a source
//! that sends nothing for `--camera-timeout`. The camera never touches a
//! client socket and never sleeps: the loop asks for
//! [`Camera::next_deadline`], puts it into its poll timeout, and calls
//! [`Camera::on_timer`] when it has passed.

use std::collections::VecDeque;
use std::os::unix::io::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::child::ChildTokens;
use super::controls::{self, Control, ControlError};
use super::converter::{Converted, Converter, ConverterSettings, Direction, Fed};
use super::h264_stream::{GopCache, H264Feed, SharedAu};
use super::push::{PushSink, PushSource, PushedFrame, SourceTokens, REFUSED_RETRY_INTERVAL};
use super::synthetic::render_test_pattern;
use super::{CameraError, FrameSource};
use crate::h264::ParameterSets;
use crate::jpeg;
use crate::stats::TimingHistogram;

/// First wait before reopening a failed source; doubled per failure.
const REOPEN_BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest wait between reopen attempts, so a replugged camera is back
/// within a second.
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How many recent grabs the measured frame rate is computed over.
const FPS_WINDOW_GRABS: usize = 32;
/// A device descriptor that has not signalled for this long although the
/// timer is due is given up on: grabs go back to the timer alone (with one
/// warning). A driver whose poll never fires while OpenCV holds its only
/// buffer would otherwise never be grabbed again; a grab on the timer is
/// what camloop did before watching the descriptor.
const DEVICE_SILENCE_FALLBACK: Duration = Duration::from_secs(2);
/// A measured rate older than this reads as 0: nobody is grabbing.
const FPS_STALE_AFTER: Duration = Duration::from_secs(2);

/// How the camera should run (from the CLI).
#[derive(Debug, Clone)]
pub struct CameraSettings {
    /// The camera's name (`cam0`): stamped into every frame's comment, so
    /// frames of different cameras can be told apart.
    pub name: String,
    /// Grab rate while somebody streams.
    pub fps: u32,
    /// Grab rate otherwise, for sources that want idle grabs.
    pub idle_fps: u32,
    /// JPEG quality, 1..=100.
    pub jpeg_quality: u8,
    /// Size of the "no signal" frame when the source never opened.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// A push source that sends no frame for this long is restarted, and a
    /// request waiting for a frame from it gives up after this long.
    pub camera_timeout: Duration,
    /// An H.264 camera's GOP cache holds at most this much.
    pub gop_cache_bytes: usize,
    /// The converter commands and linger.
    pub converters: ConverterSettings,
}

/// What a camera's consumers need, as the server sees them: the camera
/// runs a converter when they need the codec it does not send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    /// JPEGs: a capture, `frame` or `/snapshot.jpg` waiting, or an MJPEG
    /// viewer.
    pub jpeg: bool,
    /// H.264: a `/stream.h264` viewer.
    pub h264: bool,
}

/// The tokens a camera's descriptors are registered with in the loop's
/// poll: its source's, and a converter child's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraTokens {
    /// The source's (a push source's pipe or socket, a device).
    pub source: SourceTokens,
    /// A converter child's pipes.
    pub converter: ChildTokens,
}

/// What a camera's frames are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Not known yet (a push source that has sent nothing), or no camera.
    Unknown,
    /// JPEG pictures, each standing alone.
    Jpeg,
    /// H.264 access units, most of which need the ones before them.
    H264,
}

impl Codec {
    /// The name `stats` and `/state` show.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Unknown => "none",
            Codec::Jpeg => "mjpeg",
            Codec::H264 => "h264",
        }
    }
}

/// What a request waiting for a fresh frame gets now.
#[derive(Debug)]
pub enum Fresh {
    /// A frame taken after the request arrived.
    Ready(SharedFrame),
    /// None can come (no camera, or it is failing).
    Failed(CameraError),
    /// A push source is running but its next frame has not arrived yet.
    Pending,
}

/// An encoded frame, shared by every consumer.
#[derive(Debug, Clone)]
pub struct SharedFrame {
    /// Grab sequence number (1 for the first grab), stamped into the JPEG.
    pub seq: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The JPEG bytes; cloning shares them.
    pub jpeg: Rc<[u8]>,
    /// Wall-clock time of the grab, µs since the Unix epoch (`X-Timestamp`,
    /// the comment's `ts=`); 0 for the "no signal" frame, which was never
    /// grabbed.
    pub grabbed_unix_us: u64,
    /// When the frame was ready to send (encoded, or arrived complete from
    /// a push source): where a viewer's `frame_send_age_us` starts.
    pub ready_at: Instant,
}

/// What `stats` and `/state` say about the camera.
#[derive(Debug, Clone)]
pub struct CameraStatus {
    /// Source name, `none` without a camera.
    pub name: String,
    /// Whether the source is open and delivering.
    pub ok: bool,
    /// The last error while it is not.
    pub error: Option<String>,
    /// Frame size: as soon as the source knows it, the last known one while
    /// it is failing, 0 only before anything was known.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Measured grab rate times 100.
    pub fps_x100: u64,
}

enum SourceState {
    Open,
    Failed {
        error: CameraError,
        retry_at: Instant,
        backoff: Duration,
    },
}

/// The push half of a camera: the source, its tokens once attached to the
/// poll, and the newest frame it delivered (kept raw until somebody wants it).
struct PushDriver {
    source: Box<dyn PushSource>,
    tokens: Option<SourceTokens>,
    latest: Option<PushedFrame>,
    /// The sequence number `latest` got.
    latest_seq: u64,
    /// Wall-clock time `latest` arrived, µs since the Unix epoch.
    latest_unix_us: u64,
    /// When `latest` arrived complete (ready to send).
    latest_ready_at: Instant,
    /// When the last frame arrived (or the source started): the watchdog.
    last_frame_at: Instant,
    /// Whether it has been started before: each further start is a restart.
    started_once: bool,
    /// Wait before the next restart; back to the start on every frame.
    backoff: Duration,
    /// What the source has sent so far.
    codec: Codec,
    /// Why the stream was last refused, until it delivers again: a retry
    /// that is refused for the same reason is not logged again.
    refused: Option<String>,
    /// Corrupt access units were logged at warn since the source started.
    corrupt_warned: bool,
}

/// A timed source's descriptor (a V4L2 device) in the loop's poll: mio is
/// edge-triggered, so `readable` remembers that an event came since the
/// last grab.
#[derive(Default)]
struct DeviceGate {
    /// The token for it (the camera's `aux`), once attached.
    token: Option<Token>,
    /// The descriptor registered, if any.
    registered: Option<RawFd>,
    /// Whether it signalled readable since the last grab.
    readable: bool,
    /// The last grab, or the registration: when the wait for an event began.
    quiet_since: Option<Instant>,
    /// It stayed silent for [`DEVICE_SILENCE_FALLBACK`]: grab on the timer.
    gave_up: bool,
}

/// The camera pipeline.
pub struct Camera {
    source: Option<Box<dyn FrameSource>>,
    push: Option<PushDriver>,
    state: SourceState,
    settings: CameraSettings,
    /// When the last timed grab was *scheduled*; the next one is due one
    /// interval later, so timing jitter never accumulates into drift.
    last_scheduled_grab: Instant,
    last_encoded: Option<SharedFrame>,
    /// The last size the source reported or a frame had; kept through a
    /// failure, so `stats` shows what the camera was delivering.
    known_size: Option<(u32, u32)>,
    no_signal: Option<SharedFrame>,
    recent_grabs: VecDeque<Instant>,
    /// Grabs since start; also the sequence number of the newest grab.
    pub frames_grabbed: u64,
    /// JPEG encodes since start (passthrough frames are not counted).
    pub frames_encoded: u64,
    /// Frames delivered by the camera as JPEG and used unchanged.
    pub frames_passthrough: u64,
    /// Push sources started again after they ended, broke or went silent.
    pub camera_restarts: u64,
    /// The longest a source's `open()`, or a push source's start (a
    /// child's spawn, a connect), took, in µs (both run on the loop).
    pub open_us_max: u64,
    device: DeviceGate,
    /// Time the loop spent blocked in `grab()`.
    pub grab_time: TimingHistogram,
    /// Time the loop spent in `retrieve()` plus encoding.
    pub encode_time: TimingHistogram,
    /// Every control set so far (`set`, `POST /controls`, `--control`),
    /// last value per name: re-applied after each reopen, because a device
    /// opened again may start from its defaults.
    applied_controls: Vec<(&'static str, i64)>,
    /// Where a converter child's pipes go in the poll, once attached.
    converter_tokens: Option<ChildTokens>,
    /// H.264 access units (the camera's own, or its encoder's), the GOP
    /// cache and their numbers.
    h264: H264Feed,
    /// The converter to the other codec, once a consumer needed one.
    converter: Option<Converter>,
    /// The decoder's newest JPEG, and when the access unit it shows
    /// started arriving (a capture needs one that started after it).
    decoded: Option<(SharedFrame, Instant)>,
}

impl Camera {
    /// Wraps `source` (None for `--camera none`) and opens it. A source
    /// that fails to open is retried in the background of the loop.
    pub fn new(
        source: Option<Box<dyn FrameSource>>,
        settings: CameraSettings,
        now: Instant,
    ) -> Self {
        let gop_cache_bytes = settings.gop_cache_bytes;
        let mut camera = Camera {
            source,
            push: None,
            state: SourceState::Open,
            settings,
            last_scheduled_grab: now,
            last_encoded: None,
            known_size: None,
            no_signal: None,
            recent_grabs: VecDeque::new(),
            frames_grabbed: 0,
            frames_encoded: 0,
            frames_passthrough: 0,
            camera_restarts: 0,
            open_us_max: 0,
            device: DeviceGate::default(),
            grab_time: TimingHistogram::default(),
            encode_time: TimingHistogram::default(),
            applied_controls: Vec::new(),
            converter_tokens: None,
            h264: H264Feed::new(gop_cache_bytes),
            converter: None,
            decoded: None,
        };
        if camera.source.is_some() {
            camera.try_open(now, REOPEN_BACKOFF_INITIAL);
        }
        camera
    }

    /// A camera around a push source. It starts once the loop gives it
    /// tokens in its poll ([`Camera::attach`]).
    pub fn new_push(source: Box<dyn PushSource>, settings: CameraSettings, now: Instant) -> Self {
        let mut camera = Camera::new(None, settings, now);
        camera.push = Some(PushDriver {
            source,
            tokens: None,
            latest: None,
            latest_seq: 0,
            latest_unix_us: 0,
            latest_ready_at: now,
            last_frame_at: now,
            started_once: false,
            backoff: REOPEN_BACKOFF_INITIAL,
            codec: Codec::Unknown,
            refused: None,
            corrupt_warned: false,
        });
        camera.state = SourceState::Failed {
            error: CameraError::new("starting"),
            retry_at: now,
            backoff: REOPEN_BACKOFF_INITIAL,
        };
        camera
    }

    /// Gives a push source its tokens in the loop's poll and starts it. A
    /// timed source with a descriptor (a V4L2 device) has it watched with
    /// the `aux` token.
    pub fn attach(&mut self, registry: &Registry, tokens: CameraTokens, now: Instant) {
        self.converter_tokens = Some(tokens.converter);
        if let Some(push) = self.push.as_mut() {
            push.tokens = Some(tokens.source);
            self.restart_push(registry, now);
        } else {
            self.device.token = Some(tokens.source.aux);
            self.watch_descriptor(registry, now);
        }
    }

    /// Brings the poll's registration in line with the source's current
    /// descriptor (after an open, a close or a reopen).
    fn watch_descriptor(&mut self, registry: &Registry, now: Instant) {
        let Some(token) = self.device.token else {
            return;
        };
        let current = match &self.state {
            SourceState::Open => self.source.as_ref().and_then(|s| s.descriptor()),
            SourceState::Failed { .. } => None,
        };
        if current == self.device.registered {
            return;
        }
        if let Some(old) = self.device.registered.take() {
            // Fails harmlessly when the close already took it out of epoll.
            let _ = registry.deregister(&mut SourceFd(&old));
        }
        self.device.readable = false;
        self.device.quiet_since = Some(now);
        self.device.gave_up = false;
        if let Some(fd) = current {
            match registry.register(&mut SourceFd(&fd), token, Interest::READABLE) {
                Ok(()) => self.device.registered = Some(fd),
                Err(e) => log::warn!(
                    "camera {}: cannot watch its descriptor ({e}); grabbing on the timer alone",
                    self.source_name()
                ),
            }
        }
    }

    /// Whether a grab now could wait for the device: it has a descriptor
    /// in the poll that has not signalled readable since the last grab.
    fn device_not_ready(&self) -> bool {
        self.device.registered.is_some() && !self.device.readable && !self.device.gave_up
    }

    /// Whether `token` belongs to this camera's descriptors.
    pub fn owns_token(&self, token: Token) -> bool {
        match &self.push {
            Some(push) => push.tokens.is_some_and(|tokens| tokens.contains(token)),
            None => self.device.registered.is_some() && self.device.token == Some(token),
        }
    }

    /// Whether there is a camera at all (not `--camera none`).
    pub fn is_present(&self) -> bool {
        self.source.is_some() || self.push.is_some()
    }

    /// The camera's name (`cam0`, or the name it was given).
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The source's name, `none` without one.
    pub fn source_name(&self) -> String {
        match (&self.source, &self.push) {
            (Some(source), _) => source.name(),
            (None, Some(push)) => push.source.name(),
            (None, None) => "none".to_string(),
        }
    }

    /// The grab interval while streaming (1 / `--fps`).
    pub fn stream_interval(&self) -> Duration {
        self.grab_interval(true)
    }

    fn grab_interval(&self, streaming: bool) -> Duration {
        let fps = if streaming {
            self.settings.fps
        } else {
            self.settings.idle_fps
        };
        Duration::from_secs(1) / fps.max(1)
    }

    /// When [`Camera::on_timer`] must run next, or None when the camera
    /// needs no timer at all (so the loop can sleep indefinitely).
    pub fn next_deadline(&self, streaming: bool) -> Option<Instant> {
        let converter = self.converter.as_ref().and_then(Converter::deadline);
        let source = self.source_deadline(streaming);
        source.into_iter().chain(converter).min()
    }

    fn source_deadline(&self, streaming: bool) -> Option<Instant> {
        if let Some(push) = &self.push {
            push.tokens?;
            return match &self.state {
                SourceState::Failed { retry_at, .. } => Some(*retry_at),
                SourceState::Open => {
                    let watchdog = push.last_frame_at + self.settings.camera_timeout;
                    Some(push.source.deadline().map_or(watchdog, |d| d.min(watchdog)))
                }
            };
        }
        let source = self.source.as_ref()?;
        match &self.state {
            SourceState::Failed { retry_at, .. } => Some(*retry_at),
            // Nothing to do until the device's readiness event (the loop
            // sleeps instead of spinning on a due timer), or the fallback.
            SourceState::Open if self.device_not_ready() => self
                .device
                .quiet_since
                .map(|since| since + DEVICE_SILENCE_FALLBACK),
            SourceState::Open if streaming || source.wants_idle_grabs() => {
                Some(self.last_scheduled_grab + self.grab_interval(streaming))
            }
            SourceState::Open => None,
        }
    }

    /// Runs whatever is due: a reopen attempt or a timed grab. Returns a
    /// frame for stream viewers when `streaming` (the "no signal" frame
    /// while the source is down).
    pub fn on_timer(
        &mut self,
        registry: &Registry,
        now: Instant,
        streaming: bool,
    ) -> Option<SharedFrame> {
        if let Some(converter) = self.converter.as_mut() {
            converter.on_timer(registry, now);
        }
        self.forget_stopped_encoder_output();
        let frame = self.source_on_timer(registry, now, streaming);
        self.feed_encoder(frame.as_ref());
        self.flush_converter(registry, now);
        frame
    }

    fn source_on_timer(
        &mut self,
        registry: &Registry,
        now: Instant,
        streaming: bool,
    ) -> Option<SharedFrame> {
        if self.push.is_some() {
            return self.push_on_timer(registry, now, streaming);
        }
        let deadline = self.source_deadline(streaming)?;
        if now < deadline {
            return None;
        }
        if let SourceState::Failed { backoff, .. } = self.state {
            self.try_open(now, (backoff * 2).min(REOPEN_BACKOFF_MAX));
            self.watch_descriptor(registry, now);
            if !matches!(self.state, SourceState::Open) {
                return streaming.then(|| self.no_signal_frame());
            }
            self.last_scheduled_grab = now;
            if self.device_not_ready() {
                return None; // the first grab waits for the device's event
            }
        } else if self.device_not_ready() {
            // Due only because the device stayed silent too long.
            log::warn!(
                "camera {}: its descriptor has not signalled for {} s; grabbing on the timer alone \
                 (a grab may wait up to OpenCV's select() timeout)",
                self.source_name(),
                DEVICE_SILENCE_FALLBACK.as_secs()
            );
            self.device.gave_up = true;
        }
        let interval = self.grab_interval(streaming);
        self.last_scheduled_grab = if now.duration_since(deadline) > interval {
            // Fell more than a frame behind (a slow camera call, a stopped
            // process): skip the missed ticks instead of bursting to catch up.
            now
        } else {
            deadline
        };
        let result = if streaming {
            match self.grab_and_encode(now) {
                Ok(frame) => Some(frame),
                Err(_) => Some(self.no_signal_frame()),
            }
        } else {
            let _ = self.grab(now);
            None
        };
        // A failed grab closed the device: stop watching its descriptor.
        self.watch_descriptor(registry, now);
        result
    }

    /// A push source's descriptor is readable: take what it sent. Returns
    /// the newest frame, stamped, when somebody streams (else it is kept
    /// raw until a request wants it).
    pub fn on_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        streaming: bool,
    ) -> Option<SharedFrame> {
        if self.converter.as_ref().is_some_and(|c| c.owns_token(token)) {
            return self.converter_ready(registry, token, now, streaming);
        }
        let frame = self.source_on_ready(registry, token, now, streaming);
        self.feed_encoder(frame.as_ref());
        self.flush_converter(registry, now);
        frame
    }

    fn source_on_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        streaming: bool,
    ) -> Option<SharedFrame> {
        let Some(push) = self.push.as_mut() else {
            // A timed source's device has a frame ready: the next due
            // timer (or a waiting request) may grab.
            if self.device.token == Some(token) {
                self.device.readable = true;
            }
            return None;
        };
        if !matches!(self.state, SourceState::Open) {
            return None; // a stale event for a source already stopped
        }
        let mut sink = PushSink::default();
        let result = push.source.on_ready(registry, token, now, &mut sink);
        // What completed before an error is still good: H.264 consumers
        // get every access unit that arrived.
        self.take_sink_access_units(&mut sink, now);
        if let Err(error) = result {
            // The source ended or broke (EOF, a refused connect, a bad
            // answer): its viewers see "no signal" now, as when the
            // watchdog gives up, not a stream that just stops. A stream
            // refused for what it is (H.265, B-frames) is retried slowly.
            if sink.refused {
                self.refuse_push(registry, now, error);
            } else {
                self.fail_push(registry, now, error);
            }
            return streaming.then(|| self.no_signal_frame());
        }
        let frame = sink.newest?;
        let push = self.push.as_mut()?;
        push.codec = Codec::Jpeg;
        push.refused = None;
        push.last_frame_at = now;
        push.backoff = REOPEN_BACKOFF_INITIAL;
        self.frames_grabbed += 1;
        push.latest_seq = self.frames_grabbed;
        push.latest_unix_us = crate::timefmt::unix_micros(std::time::SystemTime::now());
        push.latest_ready_at = now;
        self.known_size = Some((frame.width, frame.height));
        push.latest = Some(frame);
        self.count_grab(now);
        streaming.then(|| self.stamped_push_frame()).flatten()
    }

    /// Numbers the access units a read completed and keeps them for the
    /// server and the GOP cache.
    fn take_sink_access_units(&mut self, sink: &mut PushSink, now: Instant) {
        if sink.corrupt_dropped > 0 {
            // Once per stretch at warn: a broken stream must not flood the log.
            let first = self
                .push
                .as_mut()
                .is_some_and(|p| !std::mem::replace(&mut p.corrupt_warned, true));
            let level = if first {
                log::Level::Warn
            } else {
                log::Level::Debug
            };
            log::log!(
                level,
                "camera {}: dropped {} corrupt H.264 access unit(s); viewers wait for the next IDR",
                self.settings.name,
                sink.corrupt_dropped
            );
        }
        if sink.access_units.is_empty() {
            return;
        }
        let Some(push) = self.push.as_mut() else {
            return;
        };
        push.codec = Codec::H264;
        push.refused = None;
        push.last_frame_at = now;
        push.backoff = REOPEN_BACKOFF_INITIAL;
        let unix_us = crate::timefmt::unix_micros(std::time::SystemTime::now());
        let sets = push.source.parameter_sets();
        if let Some(sets) = &sets {
            self.known_size = Some((sets.info.width, sets.info.height));
        }
        let arrived = sink.access_units.len();
        for timed in sink.access_units.drain(..) {
            self.frames_grabbed += 1;
            let au = self.h264.accept(
                timed,
                self.frames_grabbed,
                sets.as_ref(),
                unix_us,
                now,
                &self.settings.name,
            );
            if let Some(decoder) = self.converter.as_mut() {
                decoder.feed_access_unit(&au, self.h264.gop.last_idr_bytes, now);
            }
        }
        // An intra-refresh stream has no IDR at all: a new consumer could
        // never start. Say so once per stretch.
        let limit = 2 * self.settings.camera_timeout;
        let feed = &mut self.h264;
        if feed.without_idr_for(now).is_some_and(|d| d >= limit) && !feed.idr_missing_warned {
            feed.idr_missing_warned = true;
            log::warn!(
                "camera {}: no IDR for {} s (intra refresh?): new H.264 viewers cannot start; \
                 give the encoder a keyframe interval",
                self.settings.name,
                limit.as_secs_f64()
            );
        }
        for _ in 0..arrived {
            self.count_grab(now);
        }
    }

    /// Writes what the converter's input holds, once per camera event,
    /// whatever fed it (access units to a decoder, a JPEG to an encoder).
    fn flush_converter(&mut self, registry: &Registry, now: Instant) {
        if let Some(converter) = self.converter.as_mut() {
            converter.flush(registry, now);
        }
    }

    /// Counts a frame or access unit for the measured rate.
    fn count_grab(&mut self, now: Instant) {
        if self.recent_grabs.len() == FPS_WINDOW_GRABS {
            self.recent_grabs.pop_front();
        }
        self.recent_grabs.push_back(now);
    }

    /// The H.264 access units that arrived since the last call, in order
    /// (none from a JPEG camera).
    pub fn take_access_units(&mut self) -> Vec<SharedAu> {
        self.h264.take_pending()
    }

    /// The GOP cache of the camera's H.264 (its own, or its encoder's):
    /// what a new consumer starts with.
    pub fn gop_cache(&self) -> Option<&GopCache> {
        Some(&self.h264.gop)
    }

    /// What the camera's frames are.
    pub fn codec(&self) -> Codec {
        match &self.push {
            Some(push) => push.codec,
            None if self.is_present() => Codec::Jpeg,
            None => Codec::Unknown,
        }
    }

    /// An H.264 camera's numbers, `None` for the others.
    pub fn h264_feed(&self) -> Option<&H264Feed> {
        (self.codec() == Codec::H264 || self.h264.is_flowing()).then_some(&self.h264)
    }

    /// The SPS and PPS of the camera's H.264 (its own, or its encoder's),
    /// once they arrived: what an RTSP `DESCRIBE` is answered with.
    pub fn parameter_sets(&self) -> Option<Rc<ParameterSets>> {
        self.h264.parameter_sets()
    }

    /// The frame rate to announce to a stream's consumers (the SDP's
    /// `a=framerate`): a timed camera's `--fps`; a push camera's measured
    /// rate, rounded, or its `--fps` until there is a measure (a
    /// `DESCRIBE` right after start).
    pub fn stream_fps(&self, now: Instant) -> u32 {
        let measured_x100 = match self.push {
            Some(_) => self.measured_fps_x100(now),
            None => 0,
        };
        match measured_x100 {
            0 => self.settings.fps,
            measured => ((measured + 50) / 100).max(1) as u32,
        }
    }

    /// The converter, once a consumer needed one.
    pub fn converter(&self) -> Option<&Converter> {
        self.converter.as_ref()
    }

    /// The server says what the camera's consumers need; the camera runs
    /// a converter for the codec it does not send, and lets one nobody
    /// needs stop after its linger.
    pub fn set_demand(&mut self, demand: Demand, registry: &Registry, now: Instant) {
        let wanted = match self.codec() {
            Codec::H264 if demand.jpeg => Some(Direction::H264ToJpeg),
            Codec::Jpeg if demand.h264 => Some(Direction::JpegToH264),
            _ => None,
        };
        if let (Some(direction), Some(converter)) = (wanted, &mut self.converter) {
            if converter.direction() != direction {
                // The camera changed codec: the old converter is of no use.
                converter.shutdown(registry, Duration::ZERO);
                self.converter = None;
            }
        }
        if self.converter.is_none() {
            let Some(direction) = wanted else {
                return;
            };
            let settings = &self.settings;
            match Converter::new(
                direction,
                &settings.converters,
                &settings.name,
                settings.fps,
            ) {
                Ok(converter) => self.converter = Some(converter),
                Err(reason) => {
                    log::warn!("camera {}: {reason}", self.settings.name);
                    return;
                }
            }
        }
        let (Some(converter), Some(tokens)) = (self.converter.as_mut(), self.converter_tokens)
        else {
            return;
        };
        let gop = match converter.direction() {
            Direction::H264ToJpeg => self.h264.gop.units(),
            Direction::JpegToH264 => &[],
        };
        converter.set_needed(wanted.is_some(), registry, tokens, gop, now);
    }

    /// A converter's pipe is ready: feed it, or take what it made. A JPEG
    /// from the decoder is returned for the MJPEG viewers when somebody
    /// streams; access units from the encoder join the camera's H.264.
    fn converter_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        streaming: bool,
    ) -> Option<SharedFrame> {
        let converter = self.converter.as_mut()?;
        let mut out = Vec::new();
        converter.on_ready(registry, token, now, &mut out);
        self.forget_stopped_encoder_output();
        let mut newest = None;
        for converted in out {
            match converted {
                Converted::Jpeg { frame, source } => {
                    let size = (frame.width, frame.height);
                    let shared = stamp(
                        &self.settings.name,
                        source.seq,
                        size,
                        &frame.jpeg,
                        source.unix_us,
                        now,
                    );
                    self.frames_encoded += 1;
                    self.decoded = Some((shared.clone(), source.started_at));
                    newest = Some(shared);
                }
                Converted::AccessUnit {
                    mut au,
                    source,
                    parameter_sets,
                } => {
                    // The access unit is as old as the picture it encodes.
                    au.started_at = source.started_at;
                    self.h264.accept(
                        au,
                        source.seq,
                        parameter_sets.as_ref(),
                        source.unix_us,
                        now,
                        &self.settings.name,
                    );
                }
            }
        }
        if streaming {
            newest
        } else {
            None
        }
    }

    /// An encoder that stopped (its linger passed, or it failed) leaves
    /// nothing a new H.264 viewer could start from: its GOP cache and
    /// numbers go, and the next encoder's stream starts afresh.
    fn forget_stopped_encoder_output(&mut self) {
        let encoder_stopped = self
            .converter
            .as_ref()
            .is_some_and(|c| c.direction() == Direction::JpegToH264 && !c.is_running());
        if encoder_stopped && self.h264.is_flowing() {
            self.h264.reset();
        }
    }

    /// Why the converter this camera's consumers need cannot start (no
    /// ffmpeg, say), and which way it converts.
    pub fn converter_start_error(&self) -> Option<(Direction, &CameraError)> {
        let converter = self.converter.as_ref()?;
        Some((converter.direction(), converter.start_error()?))
    }

    /// Hands a JPEG the camera made to its encoder, if one runs (the
    /// caller writes it with `flush_converter`).
    fn feed_encoder(&mut self, frame: Option<&SharedFrame>) {
        let (Some(frame), Some(encoder)) = (frame, self.converter.as_mut()) else {
            return;
        };
        if frame.seq > 0 && encoder.direction() == Direction::JpegToH264 {
            let source = Fed {
                seq: frame.seq,
                started_at: frame.ready_at,
                unix_us: frame.grabbed_unix_us,
            };
            encoder.feed_jpeg(&frame.jpeg, source);
        }
    }

    /// Restarts a push source when due, and gives up on one that has sent
    /// nothing for `--camera-timeout`.
    fn push_on_timer(
        &mut self,
        registry: &Registry,
        now: Instant,
        streaming: bool,
    ) -> Option<SharedFrame> {
        let deadline = self.source_deadline(streaming)?;
        if let Some(push) = self.push.as_mut() {
            push.source.reap();
        }
        if now < deadline {
            return None;
        }
        match &self.state {
            SourceState::Failed { .. } => self.restart_push(registry, now),
            SourceState::Open => {
                let push = self.push.as_mut()?;
                let silent_for = now.duration_since(push.last_frame_at);
                let error = if silent_for >= self.settings.camera_timeout {
                    Some(CameraError::new(format!(
                        "{}: no frame for {} s",
                        push.source.name(),
                        self.settings.camera_timeout.as_secs_f64()
                    )))
                } else {
                    push.source.on_deadline(registry, now).err()
                };
                if let Some(error) = error {
                    self.fail_push(registry, now, error);
                }
            }
        }
        let down = !matches!(self.state, SourceState::Open);
        (streaming && down).then(|| self.no_signal_frame())
    }

    fn restart_push(&mut self, registry: &Registry, now: Instant) {
        let Some(push) = self.push.as_mut() else {
            return;
        };
        let Some(tokens) = push.tokens else {
            return;
        };
        if push.started_once {
            self.camera_restarts += 1;
        }
        push.started_once = true;
        // Starting runs on the loop too (a fork and exec, or a connect):
        // it counts as an open.
        let started_at = Instant::now();
        let started = push.source.start(registry, tokens, now);
        let took_us = started_at.elapsed().as_micros() as u64;
        self.open_us_max = self.open_us_max.max(took_us);
        match started {
            Ok(()) => {
                push.last_frame_at = now;
                match &self.state {
                    // A retry of a refused stream is not news until it
                    // delivers (or is refused for another reason).
                    SourceState::Failed { .. } if push.refused.is_some() => {}
                    SourceState::Failed { error, .. } => {
                        log::info!("camera {} started (after: {error})", push.source.name());
                    }
                    SourceState::Open => {}
                }
                self.state = SourceState::Open;
            }
            Err(error) => self.fail_push(registry, now, error),
        }
    }

    /// Stops the push source and forgets what it delivered: nothing that
    /// was cached or decoded leads on to what a restart will send.
    fn stop_push_source(&mut self, registry: &Registry) {
        if let Some(push) = self.push.as_mut() {
            push.source.stop(registry);
            push.latest = None;
            push.corrupt_warned = false;
        }
        self.h264.reset();
        self.decoded = None;
        self.last_encoded = None;
    }

    /// Stops a push source that ended, broke or went silent, and schedules
    /// its restart with backoff.
    fn fail_push(&mut self, registry: &Registry, now: Instant, error: CameraError) {
        self.stop_push_source(registry);
        let Some(push) = self.push.as_mut() else {
            return;
        };
        if matches!(self.state, SourceState::Open) {
            log::warn!("camera {} failed: {error}; restarting", push.source.name());
        }
        let backoff = push.backoff;
        push.backoff = (backoff * 2).min(REOPEN_BACKOFF_MAX);
        self.state = SourceState::Failed {
            error,
            retry_at: now + backoff,
            backoff,
        };
    }

    /// Stops a push source whose stream camloop cannot serve (H.265,
    /// B-frames): one log line, and a retry only every
    /// [`REFUSED_RETRY_INTERVAL`], since the stream will not change soon.
    fn refuse_push(&mut self, registry: &Registry, now: Instant, error: CameraError) {
        self.stop_push_source(registry);
        let Some(push) = self.push.as_mut() else {
            return;
        };
        let already_refused = push.refused.as_deref() == Some(error.0.as_str());
        push.refused = Some(error.0.clone());
        if !already_refused {
            log::warn!(
                "camera {} refused: {error}; trying again every {} s",
                self.settings.name,
                REFUSED_RETRY_INTERVAL.as_secs()
            );
        }
        self.state = SourceState::Failed {
            error,
            retry_at: now + REFUSED_RETRY_INTERVAL,
            backoff: REFUSED_RETRY_INTERVAL,
        };
    }

    /// The newest pushed frame with camloop's stamp, made once per frame.
    fn stamped_push_frame(&mut self) -> Option<SharedFrame> {
        let push = self.push.as_ref()?;
        let latest = push.latest.as_ref()?;
        if let Some(frame) = self
            .last_encoded
            .as_ref()
            .filter(|f| f.seq == push.latest_seq)
        {
            return Some(frame.clone());
        }
        let size = (latest.width, latest.height);
        let frame = stamp(
            &self.settings.name,
            push.latest_seq,
            size,
            &latest.jpeg,
            push.latest_unix_us,
            push.latest_ready_at,
        );
        self.frames_passthrough += 1;
        self.last_encoded = Some(frame.clone());
        Some(frame)
    }

    /// A frame for a request that arrived at `requested_at` having seen
    /// `newer_than` grabs: from a timed source one grab serves every
    /// request that saw the same count; from a push source only a frame
    /// whose first byte arrived after the request will do.
    pub fn fresh_for(&mut self, now: Instant, newer_than: u64, requested_at: Instant) -> Fresh {
        let Some(push) = &self.push else {
            let reusable = self
                .last_encoded
                .as_ref()
                .is_some_and(|f| f.seq > newer_than);
            if !reusable && matches!(self.state, SourceState::Open) && self.device_not_ready() {
                // The device has no frame yet; grabbing now would wait in
                // OpenCV's select(). The readiness event comes first.
                return Fresh::Pending;
            }
            return match self.fresh_frame(now, newer_than) {
                Ok(frame) => Fresh::Ready(frame),
                Err(error) => Fresh::Failed(error),
            };
        };
        if let SourceState::Failed { error, .. } = &self.state {
            return Fresh::Failed(error.clone());
        }
        if push.codec == Codec::H264 {
            // A JPEG from the decoder, of an access unit that started
            // arriving after the request; the decoder runs while a request
            // waits (the server's demand).
            if let Some((frame, started_at)) = &self.decoded {
                if *started_at > requested_at {
                    return Fresh::Ready(frame.clone());
                }
            }
            return match self.converter.as_ref().and_then(Converter::start_error) {
                Some(error) => Fresh::Failed(error.clone()),
                None => Fresh::Pending,
            };
        }
        let fresh = push
            .latest
            .as_ref()
            .is_some_and(|frame| frame.started_at > requested_at);
        match fresh.then(|| self.stamped_push_frame()).flatten() {
            Some(frame) => Fresh::Ready(frame),
            None => Fresh::Pending,
        }
    }

    /// How long a request may wait for a push source's next frame.
    pub fn timeout(&self) -> Duration {
        self.settings.camera_timeout
    }

    /// A frame grabbed now, for a capture, `frame` or a snapshot request.
    /// `newer_than` lets requests share a frame: if the newest encoded frame
    /// was grabbed after the request arrived (its sequence number is higher
    /// than the one seen then), it is reused instead of grabbing again.
    pub fn fresh_frame(
        &mut self,
        now: Instant,
        newer_than: u64,
    ) -> Result<SharedFrame, CameraError> {
        if let Some(frame) = &self.last_encoded {
            if frame.seq > newer_than && matches!(self.state, SourceState::Open) {
                return Ok(frame.clone());
            }
        }
        if self.source.is_none() {
            return Err(CameraError::new("no camera"));
        }
        if let SourceState::Failed { error, .. } = &self.state {
            return Err(error.clone());
        }
        self.grab_and_encode(now)
    }

    fn grab(&mut self, now: Instant) -> Result<(), CameraError> {
        let source = self
            .source
            .as_mut()
            .ok_or_else(|| CameraError::new("no camera"))?;
        let started = Instant::now();
        let result = source.grab();
        self.grab_time.record(started.elapsed());
        // Edge-triggered: the next grab waits for the next readiness event.
        self.device.readable = false;
        self.device.quiet_since = Some(now);
        match result {
            Ok(()) => {
                self.frames_grabbed += 1;
                if self.recent_grabs.len() == FPS_WINDOW_GRABS {
                    self.recent_grabs.pop_front();
                }
                self.recent_grabs.push_back(now);
                Ok(())
            }
            Err(error) => Err(self.fail(now, error)),
        }
    }

    fn grab_and_encode(&mut self, now: Instant) -> Result<SharedFrame, CameraError> {
        self.grab(now)?;
        let grabbed_unix_us = crate::timefmt::unix_micros(std::time::SystemTime::now());
        let source = self
            .source
            .as_mut()
            .ok_or_else(|| CameraError::new("no camera"))?;
        let started = Instant::now();
        let encoded = source.retrieve().and_then(|frame| {
            let (width, height) = (frame.width, frame.height);
            jpeg::frame_to_jpeg(frame, self.settings.jpeg_quality)
                .map(|(bytes, encoded)| (bytes, encoded, width, height))
        });
        self.encode_time.record(started.elapsed());
        let (bytes, encoded, width, height) = encoded.map_err(|error| self.fail(now, error))?;
        if encoded {
            self.frames_encoded += 1;
        } else {
            self.frames_passthrough += 1;
        }
        let size = (width, height);
        let frame = stamp(
            &self.settings.name,
            self.frames_grabbed,
            size,
            &bytes,
            grabbed_unix_us,
            Instant::now(),
        );
        self.known_size = Some((width, height));
        self.last_encoded = Some(frame.clone());
        Ok(frame)
    }

    /// Marks the source failed: close it and schedule a reopen. Logs only
    /// on the change from working to failed, not on every retry.
    fn fail(&mut self, now: Instant, error: CameraError) -> CameraError {
        if matches!(self.state, SourceState::Open) {
            log::warn!("camera {} failed: {error}; reopening", self.source_name());
        }
        if let Some(source) = self.source.as_mut() {
            source.close();
        }
        // Closing the descriptor took it out of the poll.
        self.device.registered = None;
        self.device.readable = false;
        self.state = SourceState::Failed {
            error: error.clone(),
            retry_at: now + REOPEN_BACKOFF_INITIAL,
            backoff: REOPEN_BACKOFF_INITIAL,
        };
        self.last_encoded = None;
        error
    }

    fn try_open(&mut self, now: Instant, next_backoff: Duration) {
        let Some(source) = self.source.as_mut() else {
            return;
        };
        let started = Instant::now();
        let opened = source.open();
        let took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.open_us_max = self.open_us_max.max(took_us);
        match opened {
            Ok(()) => {
                if let Some(size) = source.frame_size() {
                    self.known_size = Some(size);
                }
                if let SourceState::Failed { .. } = self.state {
                    log::info!("camera {} recovered", source.name());
                } else {
                    log::info!("camera {} open", source.name());
                }
                self.state = SourceState::Open;
                self.reapply_controls();
            }
            Err(error) => {
                let was_failing = matches!(self.state, SourceState::Failed { .. });
                let same_error =
                    matches!(&self.state, SourceState::Failed { error: e, .. } if *e == error);
                if !was_failing || !same_error {
                    log::warn!(
                        "camera {} unavailable: {error}; retrying every {} ms at most",
                        source.name(),
                        REOPEN_BACKOFF_MAX.as_millis()
                    );
                }
                source.close();
                self.state = SourceState::Failed {
                    error,
                    retry_at: now + next_backoff,
                    backoff: next_backoff,
                };
            }
        }
    }

    /// A "NO SIGNAL" frame for viewers while the source is down; rendered
    /// and encoded once.
    pub fn no_signal_frame(&mut self) -> SharedFrame {
        if let Some(frame) = &self.no_signal {
            return frame.clone();
        }
        let (width, height) = self
            .last_encoded
            .as_ref()
            .map_or((self.settings.width, self.settings.height), |f| {
                (f.width, f.height)
            });
        let pixels = render_test_pattern(width as usize, height as usize, 0, &["NO SIGNAL"]);
        let bytes = jpeg::encode_bgr(width, height, &pixels, self.settings.jpeg_quality)
            .unwrap_or_default();
        let frame = SharedFrame {
            seq: 0,
            width,
            height,
            jpeg: jpeg::stamp_comment(
                &bytes,
                &format!("camloop frame=0 no-signal camera={}", self.settings.name),
            ),
            grabbed_unix_us: 0,
            ready_at: Instant::now(),
        };
        self.no_signal = Some(frame.clone());
        frame
    }

    /// The current status for `stats` and `/state`.
    pub fn status(&self, now: Instant) -> CameraStatus {
        let (ok, error) = match &self.state {
            _ if !self.is_present() => (false, Some("no camera".to_string())),
            // A push source counts as ok once it delivers, not when it
            // merely started (a camera that accepts and never answers).
            SourceState::Open
                if self
                    .push
                    .as_ref()
                    .is_some_and(|p| p.latest.is_none() && !self.h264.is_flowing()) =>
            {
                (false, Some("waiting for the first frame".to_string()))
            }
            SourceState::Open if self.idr_overdue(now) => (
                false,
                Some(format!(
                    "no IDR for {} s (intra refresh?): new H.264 viewers cannot start",
                    (2 * self.settings.camera_timeout).as_secs_f64()
                )),
            ),
            SourceState::Open => (true, None),
            SourceState::Failed { error, .. } => (false, Some(error.to_string())),
        };
        let (width, height) = self.known_size.unwrap_or((0, 0));
        CameraStatus {
            name: self.source_name(),
            ok,
            error,
            width,
            height,
            fps_x100: self.measured_fps_x100(now),
        }
    }

    /// An H.264 stream that has gone twice `--camera-timeout` without an
    /// IDR: frames flow, but no new consumer can start.
    fn idr_overdue(&self, now: Instant) -> bool {
        self.h264_feed()
            .and_then(|feed| feed.without_idr_for(now))
            .is_some_and(|d| d >= 2 * self.settings.camera_timeout)
    }

    fn measured_fps_x100(&self, now: Instant) -> u64 {
        let (Some(first), Some(last)) = (self.recent_grabs.front(), self.recent_grabs.back())
        else {
            return 0;
        };
        let span = last.duration_since(*first);
        if now.duration_since(*last) > FPS_STALE_AFTER || span.is_zero() {
            return 0;
        }
        let intervals = (self.recent_grabs.len() - 1) as u128;
        (intervals * 100 * 1_000_000 / span.as_micros().max(1)) as u64
    }

    /// Closes the source at shutdown; a push source's child gets up to
    /// `grace` to exit after SIGTERM (the loop has ended, so waiting is fine).
    pub fn close(&mut self, registry: &Registry, grace: Duration) {
        if let Some(source) = self.source.as_mut() {
            source.close();
        }
        if let Some(push) = self.push.as_mut() {
            push.source.shutdown(registry, grace);
        }
        if let Some(converter) = self.converter.as_mut() {
            converter.shutdown(registry, grace);
        }
    }
}

/// A frame with camloop's stamp: a JPEG comment `camloop frame=N ts=T
/// camera=NAME` (one allocation, one copy), so a snapshot says which grab
/// of which camera it came from.
fn stamp(
    camera: &str,
    seq: u64,
    size: (u32, u32),
    jpeg: &[u8],
    grabbed_unix_us: u64,
    ready_at: Instant,
) -> SharedFrame {
    let ts = crate::timefmt::unix_micros_text(grabbed_unix_us);
    SharedFrame {
        seq,
        width: size.0,
        height: size.1,
        jpeg: jpeg::stamp_comment(
            jpeg,
            &format!("camloop frame={seq} ts={ts} camera={camera}"),
        ),
        grabbed_unix_us,
        ready_at,
    }
}

/// Camera controls: one place validates them for the control port, HTTP
/// and `--control`, so all three give the same answers.
impl Camera {
    /// The source's controls with their values now. Push sources have none
    /// (their child or remote camera owns the settings), nor has `none`.
    pub fn controls(&mut self) -> Result<Vec<Control>, ControlError> {
        if self.push.is_some() {
            return Err(ControlError::NotSupported);
        }
        let source = self.source.as_mut().ok_or(ControlError::NotSupported)?;
        let listed = source.controls()?;
        if let SourceState::Failed { error, .. } = &self.state {
            return Err(ControlError::Camera(error.to_string()));
        }
        Ok(listed)
    }

    /// One control by name (case-insensitive).
    pub fn control(&mut self, name: &str) -> Result<Control, ControlError> {
        let listed = self.controls()?;
        controls::find(&listed, name)
    }

    /// Sets `name` to `value` (text, as the request sent it) after checking
    /// the name and the range; returns the value the source reports back.
    pub fn set_control(&mut self, name: &str, value: &str) -> Result<Control, ControlError> {
        const USAGE: &str = "set <name> <value>";
        if name.is_empty() {
            self.controls()?;
            return Err(ControlError::Usage(USAGE));
        }
        let control = self.control(name)?;
        if value.is_empty() {
            return Err(ControlError::Usage(USAGE));
        }
        let value = controls::check_value(&control, value)?;
        let source = self.source.as_mut().ok_or(ControlError::NotSupported)?;
        let taken = source.set_control(control.name, value)?;
        self.remember_control(control.name, value);
        Ok(taken)
    }

    /// Records a value to apply at every (re)open without applying it now:
    /// for `--control` while a device is not open yet.
    pub fn remember_control(&mut self, name: &'static str, value: i64) {
        self.applied_controls.retain(|(known, _)| *known != name);
        self.applied_controls.push((name, value));
    }

    fn reapply_controls(&mut self) {
        let Some(source) = self.source.as_mut() else {
            return;
        };
        for &(name, value) in &self.applied_controls {
            if let Err(error) = source.set_control(name, value) {
                log::warn!(
                    "camera {}: cannot set {name}={value}: {error}",
                    source.name()
                );
            }
        }
    }
}

/// Tokens for a camera under test: the source's 1 and 2, a converter's 3 to 5.
#[cfg(test)]
fn test_tokens() -> CameraTokens {
    CameraTokens {
        source: SourceTokens {
            frames: Token(1),
            aux: Token(2),
        },
        converter: ChildTokens {
            stdin: Some(Token(3)),
            stdout: Token(4),
            stderr: Token(5),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::synthetic::SyntheticSource;
    use crate::camera::Frame;

    /// A poller for the calls that take a registry (timed sources ignore it).
    fn poll() -> mio::Poll {
        mio::Poll::new().expect("epoll")
    }

    fn settings() -> CameraSettings {
        CameraSettings {
            name: "cam0".to_string(),
            fps: 10,
            idle_fps: 2,
            jpeg_quality: 70,
            width: 64,
            height: 48,
            camera_timeout: Duration::from_secs(5),
            gop_cache_bytes: 1 << 20,
            converters: crate::camera::converter::ConverterSettings::default(),
        }
    }

    #[test]
    fn an_idle_synthetic_camera_needs_no_timer() {
        let now = Instant::now();
        let camera = Camera::new(
            Some(Box::new(SyntheticSource::new(64, 48))),
            settings(),
            now,
        );
        assert_eq!(camera.next_deadline(false), None);
        assert_eq!(
            camera.next_deadline(true),
            Some(now + Duration::from_millis(100))
        );
    }

    #[test]
    fn status_knows_the_size_before_the_first_frame() {
        let camera = Camera::new(
            Some(Box::new(SyntheticSource::new(64, 48))),
            settings(),
            Instant::now(),
        );
        assert_eq!(camera.frames_encoded, 0);
        let status = camera.status(Instant::now());
        assert_eq!((status.width, status.height), (64, 48));
    }

    #[test]
    fn no_camera_means_no_timer_and_a_clear_error() {
        let mut camera = Camera::new(None, settings(), Instant::now());
        assert_eq!(camera.next_deadline(true), None);
        assert_eq!(
            camera
                .fresh_frame(Instant::now(), 0)
                .unwrap_err()
                .to_string(),
            "no camera"
        );
    }

    #[test]
    fn timed_grabs_keep_a_fixed_rate_without_drift() {
        let start = Instant::now();
        let mut camera = Camera::new(
            Some(Box::new(SyntheticSource::new(64, 48))),
            settings(),
            start,
        );
        // Run the timer a little late each time; deadlines stay on the grid.
        for tick in 1..=5u32 {
            let late = start + Duration::from_millis(100) * tick + Duration::from_millis(7);
            assert!(camera.on_timer(poll().registry(), late, true).is_some());
            assert_eq!(
                camera.next_deadline(true),
                Some(start + Duration::from_millis(100) * (tick + 1))
            );
        }
        assert_eq!(camera.frames_encoded, 5);
    }

    #[test]
    fn a_fresh_frame_is_reused_only_if_grabbed_after_the_request() {
        let now = Instant::now();
        let mut camera = Camera::new(
            Some(Box::new(SyntheticSource::new(64, 48))),
            settings(),
            now,
        );
        let first = camera.fresh_frame(now, 0).unwrap();
        let shared = camera.fresh_frame(now, 0).unwrap();
        assert_eq!(shared.seq, first.seq);
        let newer = camera.fresh_frame(now, first.seq).unwrap();
        assert!(newer.seq > first.seq);
        assert_eq!(jpeg::stamped_frame_number(&newer.jpeg), Some(newer.seq));
        assert_eq!(camera.frames_encoded, 2);
    }

    /// A source that fails to open until told otherwise.
    struct Flaky {
        up: Rc<std::cell::Cell<bool>>,
    }

    impl FrameSource for Flaky {
        fn name(&self) -> String {
            "flaky".into()
        }
        fn open(&mut self) -> Result<(), CameraError> {
            if self.up.get() {
                Ok(())
            } else {
                Err(CameraError::new("unplugged"))
            }
        }
        fn grab(&mut self) -> Result<(), CameraError> {
            self.open()
        }
        fn retrieve(&mut self) -> Result<Frame, CameraError> {
            SyntheticSource::new(32, 32).retrieve()
        }
    }

    #[test]
    fn a_failed_source_is_reopened_with_backoff_and_recovers() {
        let up = Rc::new(std::cell::Cell::new(false));
        let start = Instant::now();
        let mut camera = Camera::new(Some(Box::new(Flaky { up: up.clone() })), settings(), start);
        assert_eq!(
            camera.fresh_frame(start, 0).unwrap_err().to_string(),
            "unplugged"
        );
        assert!(!camera.status(start).ok);
        let retry_at = camera.next_deadline(false).unwrap();
        assert_eq!(retry_at, start + REOPEN_BACKOFF_INITIAL);
        // While down, viewers get the no-signal frame.
        let frame = camera.on_timer(poll().registry(), retry_at, true).unwrap();
        assert_eq!(frame.seq, 0);
        assert_eq!(
            camera.next_deadline(false),
            Some(retry_at + REOPEN_BACKOFF_INITIAL * 2)
        );
        up.set(true);
        let later = retry_at + REOPEN_BACKOFF_MAX;
        camera.on_timer(poll().registry(), later, false);
        assert!(camera.status(later).ok);
        assert!(camera.fresh_frame(later, 0).is_ok());
        // Down again: the last known size stays, with ok = false.
        up.set(false);
        assert!(camera.fresh_frame(later, u64::MAX).is_err());
        let status = camera.status(later);
        assert!(!status.ok);
        assert_eq!((status.width, status.height), (32, 32));
    }

    /// A timed source standing in for a V4L2 device: its descriptor is one
    /// end of a socket pair whose readability the test controls.
    struct Gated {
        descriptor: RawFd,
        grabs: Rc<std::cell::Cell<u32>>,
    }

    impl FrameSource for Gated {
        fn name(&self) -> String {
            "gated".into()
        }
        fn open(&mut self) -> Result<(), CameraError> {
            Ok(())
        }
        fn grab(&mut self) -> Result<(), CameraError> {
            self.grabs.set(self.grabs.get() + 1);
            Ok(())
        }
        fn retrieve(&mut self) -> Result<Frame, CameraError> {
            SyntheticSource::new(32, 32).retrieve()
        }
        fn descriptor(&self) -> Option<RawFd> {
            Some(self.descriptor)
        }
    }

    /// Waits (bounded) for the poll's events and hands the camera's to it.
    fn deliver_events(poll: &mut mio::Poll, camera: &mut Camera, now: Instant) -> usize {
        let mut events = mio::Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .expect("poll");
        let mut delivered = 0;
        for event in events.iter() {
            if camera.owns_token(event.token()) {
                camera.on_ready(poll.registry(), event.token(), now, false);
                delivered += 1;
            }
        }
        delivered
    }

    #[test]
    fn a_device_is_grabbed_only_after_its_descriptor_became_readable() {
        use std::io::Write;
        use std::os::unix::io::AsRawFd;

        let (device_end, mut test_end) = std::os::unix::net::UnixStream::pair().unwrap();
        device_end.set_nonblocking(true).unwrap();
        let grabs = Rc::new(std::cell::Cell::new(0));
        let source = Gated {
            descriptor: device_end.as_raw_fd(),
            grabs: grabs.clone(),
        };
        let mut poll = poll();
        let start = Instant::now();
        let mut camera = Camera::new(Some(Box::new(source)), settings(), start);
        camera.attach(poll.registry(), test_tokens(), start);
        assert!(camera.owns_token(Token(2)));

        // Not readable yet: the only timer is the fallback, a due grab
        // tick grabs nothing, and a capture waits instead of grabbing.
        assert_eq!(
            camera.next_deadline(true),
            Some(start + DEVICE_SILENCE_FALLBACK)
        );
        let late = start + Duration::from_secs(1);
        assert!(camera.on_timer(poll.registry(), late, true).is_none());
        assert!(matches!(camera.fresh_for(late, 0, late), Fresh::Pending));
        assert_eq!(grabs.get(), 0);

        // Readable: the timer is due again and the grab happens.
        test_end.write_all(b"f").unwrap();
        assert_eq!(deliver_events(&mut poll, &mut camera, late), 1);
        assert!(camera.next_deadline(true).is_some_and(|d| d <= late));
        assert!(camera.on_timer(poll.registry(), late, true).is_some());
        assert_eq!(grabs.get(), 1);

        // It has not signalled again since: the next due timer waits.
        let later = late + Duration::from_secs(1);
        assert_eq!(
            camera.next_deadline(true),
            Some(late + DEVICE_SILENCE_FALLBACK)
        );
        assert!(camera.on_timer(poll.registry(), later, true).is_none());
        assert!(matches!(
            camera.fresh_for(later, u64::MAX, later),
            Fresh::Pending
        ));
        assert_eq!(grabs.get(), 1);

        // The next readiness edge lets a waiting capture grab.
        test_end.write_all(b"f").unwrap();
        assert_eq!(deliver_events(&mut poll, &mut camera, later), 1);
        assert!(matches!(
            camera.fresh_for(later, u64::MAX, later),
            Fresh::Ready(_)
        ));
        assert_eq!(grabs.get(), 2);

        // Silent past the fallback: back to grabbing on the timer alone.
        let silent = later + DEVICE_SILENCE_FALLBACK;
        assert!(camera.on_timer(poll.registry(), silent, true).is_some());
        assert_eq!(grabs.get(), 3);
        assert_eq!(
            camera.next_deadline(true),
            Some(silent + Duration::from_millis(100))
        );
    }
}

#[cfg(test)]
mod control_tests {
    use super::*;
    use crate::camera::synthetic::SyntheticSource;
    use crate::camera::Frame;
    use std::cell::Cell;

    fn settings() -> CameraSettings {
        CameraSettings {
            name: "cam0".to_string(),
            fps: 10,
            idle_fps: 2,
            jpeg_quality: 70,
            width: 64,
            height: 48,
            camera_timeout: Duration::from_secs(5),
            gop_cache_bytes: 1 << 20,
            converters: crate::camera::converter::ConverterSettings::default(),
        }
    }

    /// A device that forgets its brightness on every open, and can be
    /// unplugged: what a reopen must cope with.
    struct Forgetful {
        brightness: Rc<Cell<i64>>,
        up: Rc<Cell<bool>>,
    }

    impl FrameSource for Forgetful {
        fn name(&self) -> String {
            "forgetful".into()
        }
        fn open(&mut self) -> Result<(), CameraError> {
            self.brightness.set(10);
            if self.up.get() {
                Ok(())
            } else {
                Err(CameraError::new("unplugged"))
            }
        }
        fn grab(&mut self) -> Result<(), CameraError> {
            if self.up.get() {
                Ok(())
            } else {
                Err(CameraError::new("unplugged"))
            }
        }
        fn retrieve(&mut self) -> Result<Frame, CameraError> {
            SyntheticSource::new(32, 32).retrieve()
        }
        fn controls(&mut self) -> Result<Vec<Control>, ControlError> {
            Ok(vec![Control {
                name: "brightness",
                value: self.brightness.get(),
                min: 0,
                max: 20,
            }])
        }
        fn set_control(&mut self, name: &'static str, value: i64) -> Result<Control, ControlError> {
            // Like a device with a step of 2: it takes the even value below.
            self.brightness.set(value - value % 2);
            Ok(self
                .controls()?
                .into_iter()
                .find(|c| c.name == name)
                .unwrap())
        }
    }

    #[test]
    fn set_values_are_checked_read_back_and_reapplied_after_a_reopen() {
        let brightness = Rc::new(Cell::new(0));
        let up = Rc::new(Cell::new(true));
        let start = Instant::now();
        let source = Forgetful {
            brightness: brightness.clone(),
            up: up.clone(),
        };
        let mut camera = Camera::new(Some(Box::new(source)), settings(), start);
        assert_eq!(camera.control("brightness").unwrap().value, 10);
        assert_eq!(
            camera
                .set_control("brightness", "21")
                .unwrap_err()
                .to_string(),
            "request: brightness must be 0..20"
        );
        assert_eq!(
            camera.set_control("zoom", "1").unwrap_err().to_string(),
            "request: unknown control zoom"
        );
        assert_eq!(camera.set_control("Brightness", "15").unwrap().value, 14);
        // Unplugged and back: the reopen resets the device, the camera
        // sets what was asked for again.
        up.set(false);
        assert!(camera.fresh_frame(start, u64::MAX).is_err());
        assert!(camera.controls().is_err(), "down: no controls to show");
        up.set(true);
        let later = start + REOPEN_BACKOFF_MAX;
        camera.on_timer(poll().registry(), later, false);
        assert!(camera.status(later).ok);
        assert_eq!(camera.control("brightness").unwrap().value, 14);
    }

    fn poll() -> mio::Poll {
        mio::Poll::new().unwrap()
    }

    #[test]
    fn synthetic_values_survive_the_camera_reopening() {
        let start = Instant::now();
        let mut camera = Camera::new(
            Some(Box::new(SyntheticSource::new(64, 48))),
            settings(),
            start,
        );
        camera.set_control("contrast", "70").unwrap();
        camera.try_open(start, REOPEN_BACKOFF_INITIAL);
        assert_eq!(camera.control("contrast").unwrap().value, 70);
    }

    #[test]
    fn no_camera_has_no_controls() {
        let mut camera = Camera::new(None, settings(), Instant::now());
        assert_eq!(
            camera.controls().unwrap_err().to_string(),
            "camera: controls not supported by this source"
        );
    }
}

#[cfg(test)]
mod h264_tests {
    use super::*;
    use crate::camera::h264_stream::TimedAu;
    use crate::h264::AccessUnit;
    use std::cell::RefCell;

    /// What a scripted source hands out on its next readiness event.
    enum Script {
        Units(Vec<(bool, bool)>),
        Refuse,
    }

    /// A push source that hands out scripted H.264 access units
    /// (`(keyframe, follows_gap)`), one batch per `on_ready`.
    struct Scripted {
        batches: Rc<RefCell<VecDeque<Script>>>,
    }

    impl PushSource for Scripted {
        fn name(&self) -> String {
            "scripted".to_string()
        }
        fn start(&mut self, _: &Registry, _: SourceTokens, _: Instant) -> Result<(), CameraError> {
            Ok(())
        }
        fn on_ready(
            &mut self,
            _: &Registry,
            _: Token,
            now: Instant,
            sink: &mut PushSink,
        ) -> Result<(), CameraError> {
            match self.batches.borrow_mut().pop_front() {
                Some(Script::Units(units)) => {
                    for (keyframe, follows_gap) in units {
                        let nal_type = if keyframe { 0x65 } else { 0x41 };
                        sink.access_units.push(TimedAu {
                            au: AccessUnit {
                                data: vec![0, 0, 0, 1, nal_type, 0x88],
                                keyframe,
                                follows_gap,
                                parameter_sets_changed: false,
                            },
                            started_at: now,
                            complete_delay: Duration::from_millis(33),
                        });
                    }
                    Ok(())
                }
                Some(Script::Refuse) => {
                    sink.refused = true;
                    Err(CameraError::new("H.265 is not supported"))
                }
                None => Ok(()),
            }
        }
        fn stop(&mut self, _: &Registry) {}
    }

    fn settings() -> CameraSettings {
        CameraSettings {
            name: "cam0".to_string(),
            fps: 30,
            idle_fps: 5,
            jpeg_quality: 70,
            width: 64,
            height: 48,
            camera_timeout: Duration::from_secs(1),
            gop_cache_bytes: 1 << 20,
            converters: crate::camera::converter::ConverterSettings::default(),
        }
    }

    fn scripted_camera(script: Vec<Script>, poll: &mio::Poll, start: Instant) -> Camera {
        let batches = Rc::new(RefCell::new(script.into_iter().collect()));
        let mut camera = Camera::new_push(Box::new(Scripted { batches }), settings(), start);
        camera.attach(poll.registry(), test_tokens(), start);
        camera
    }

    #[test]
    fn every_access_unit_reaches_the_server_in_order_and_the_gop_cache_starts_at_an_idr() {
        let poll = mio::Poll::new().unwrap();
        let start = Instant::now();
        let script = vec![
            Script::Units(vec![(false, false), (true, false), (false, false)]),
            Script::Units(vec![(false, false)]),
        ];
        let mut camera = scripted_camera(script, &poll, start);
        assert_eq!(camera.codec(), Codec::Unknown);
        assert!(camera
            .on_ready(poll.registry(), Token(1), start, true)
            .is_none());
        let first: Vec<u64> = camera.take_access_units().iter().map(|au| au.seq).collect();
        assert_eq!(first, vec![1, 2, 3], "every one, not only the newest");
        camera.on_ready(poll.registry(), Token(1), start, true);
        assert_eq!(camera.take_access_units().len(), 1);
        assert!(camera.take_access_units().is_empty(), "handed out once");
        assert_eq!(camera.codec(), Codec::H264);
        let cached: Vec<u64> = camera
            .gop_cache()
            .unwrap()
            .units()
            .iter()
            .map(|au| au.seq)
            .collect();
        assert_eq!(cached, vec![2, 3, 4], "from the IDR on");
        assert!(camera.status(start).ok);
        assert_eq!(camera.h264_feed().unwrap().keyframes, 1);
        // A JPEG of an H.264 camera comes from its decoder, which only
        // the server's demand starts: until then a capture waits.
        assert!(matches!(camera.fresh_for(start, 0, start), Fresh::Pending));
    }

    #[test]
    fn no_idr_for_twice_the_camera_timeout_is_not_ok() {
        let poll = mio::Poll::new().unwrap();
        let start = Instant::now();
        let script = vec![
            Script::Units(vec![(true, false)]),
            Script::Units(vec![(false, false)]),
        ];
        let mut camera = scripted_camera(script, &poll, start);
        camera.on_ready(poll.registry(), Token(1), start, false);
        let late = start + 2 * settings().camera_timeout;
        camera.on_ready(poll.registry(), Token(1), late, false);
        let status = camera.status(late);
        assert!(!status.ok);
        assert!(status.error.unwrap().contains("no IDR"));
        assert!(camera.status(late - Duration::from_millis(1)).ok);
    }

    #[test]
    fn a_refused_stream_is_retried_after_the_refusal_interval_not_the_backoff() {
        let poll = mio::Poll::new().unwrap();
        let start = Instant::now();
        let mut camera = scripted_camera(vec![Script::Refuse], &poll, start);
        camera.on_ready(poll.registry(), Token(1), start, false);
        let status = camera.status(start);
        assert!(!status.ok);
        assert!(status.error.unwrap().contains("H.265"));
        assert_eq!(
            camera.next_deadline(false),
            Some(start + REFUSED_RETRY_INTERVAL)
        );
    }
}
