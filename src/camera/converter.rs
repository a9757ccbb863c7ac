//! Converter children: the other codec, only while somebody needs it.
//!
//! A camera passes through whatever it encodes. When a consumer wants the
//! other codec (a snapshot of an H.264 camera, H.264 from an MJPEG one),
//! the camera runs a [`Converter`]: a child process (ffmpeg by default,
//! replaceable with `--h264-decoder` / `--h264-encoder`) fed through a
//! nonblocking pipe registered WRITABLE and read through another registered
//! READABLE. It starts with the first consumer that needs it and stops
//! `--converter-linger` after the last, so a camera nobody converts costs
//! nothing (go2rtc keeps its transcoder running).
//!
//! This module owns the child's feeding and reading, never when it is
//! needed: the camera says so ([`Converter::set_needed`]), from what the
//! server told it of its consumers.
//!
//! - **Input**: whole units (access units to a decoder, JPEGs to an
//!   encoder) queued in an [`OutputQueue`], written as far as the pipe
//!   takes them. A unit is dropped only before its first byte is queued;
//!   one partly written is always finished. A decoder is fed under the
//!   skip-to-IDR rule ([`AuFollower`]); an encoder whose input is still
//!   busy skips the new JPEG (counted), as a slow MJPEG viewer does.
//! - **Output**: JPEGs (the MJPEG splitter) or access units (the Annex-B
//!   splitter). Neither converter reorders (camloop refuses B-frames, and
//!   the encoder is told `-bf 0`), so output *n* is input *n*: each output
//!   keeps its input's sequence number and grab time ([`Fed`]), which is
//!   how a capture knows a JPEG came from an access unit that arrived after
//!   it, and how frame age stays measurable through the encoder.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::{Registry, Token};

use super::child::{Child, ChildTokens, Graveyard};
use super::h264_stream::{AuClock, SharedAu, TimedAu};
use super::CameraError;
use crate::h264::follow::{Admit, AuFollower, Offered};
use crate::h264::ParameterSets;
use crate::mjpeg::splitter::{Frame, Splitter};
use crate::output::{OutputQueue, SpareBuffers};

/// The decoder camloop runs unless told otherwise. No probing (without
/// `-probesize 32 -analyzeduration 0` ffmpeg sends its first JPEG only
/// after 154 access units); `-flags low_delay` and `-fps_mode passthrough`
/// keep one JPEG per access unit, two behind. (ffmpeg before 5.1 spells
/// `-fps_mode passthrough` as `-vsync passthrough`.)
pub const DEFAULT_H264_DECODER: &str = "ffmpeg -nostdin -loglevel error -probesize 32 \
     -analyzeduration 0 -flags low_delay -f h264 -i pipe:0 -fps_mode passthrough \
     -f mjpeg -q:v 5 pipe:1";

/// The encoder camloop runs unless told otherwise, `{fps}` replaced by the
/// camera's rate: without `-framerate` the demuxer assumes 25 fps for
/// x264's rate control; without `-pix_fmt yuv420p` a webcam's 4:2:2 JPEGs
/// become High 4:2:2 H.264, which no browser decodes; `-bf 0` keeps output
/// in input order; `-g {fps}` puts an IDR every second, so a new viewer
/// starts within a second and the GOP cache stays small.
pub const DEFAULT_H264_ENCODER: &str = "ffmpeg -nostdin -loglevel error -f mjpeg \
     -framerate {fps} -i pipe:0 -fps_mode passthrough -c:v libx264 -preset ultrafast \
     -tune zerolatency -pix_fmt yuv420p -bf 0 -g {fps} -f h264 pipe:1";

/// `--converter-linger` by default: a converter outlives its last consumer
/// this long, so a page reload or a second capture finds it warm.
pub const DEFAULT_CONVERTER_LINGER: Duration = Duration::from_secs(10);

/// Bytes read from a converter per `read()`.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// First wait before starting a failed converter again; doubled per failure.
const RESTART_BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest wait between starts.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Units fed and not yet converted, at most: a converter that takes input
/// and gives nothing back (stopped, or stuck) must not grow this forever.
const MAX_UNITS_IN_FLIGHT: usize = 256;

/// Which way a converter converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// H.264 access units in, JPEGs out: an H.264 camera's JPEG consumers.
    H264ToJpeg,
    /// JPEGs in, H.264 access units out: an MJPEG camera's H.264 consumers.
    JpegToH264,
}

impl Direction {
    /// `h264-to-jpeg` or `jpeg-to-h264`, as `stats` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Direction::H264ToJpeg => "h264-to-jpeg",
            Direction::JpegToH264 => "jpeg-to-h264",
        }
    }
}

/// The converter commands and linger, from the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct ConverterSettings {
    /// `--h264-decoder` (without `exec:`): H.264 on stdin, MJPEG on stdout.
    pub decoder: String,
    /// `--h264-encoder` (without `exec:`): MJPEG on stdin, H.264 on stdout;
    /// `{fps}` is replaced by the camera's rate.
    pub encoder: String,
    /// `--converter-linger`.
    pub linger: Duration,
}

impl Default for ConverterSettings {
    fn default() -> Self {
        ConverterSettings {
            decoder: DEFAULT_H264_DECODER.to_string(),
            encoder: DEFAULT_H264_ENCODER.to_string(),
            linger: DEFAULT_CONVERTER_LINGER,
        }
    }
}

/// What one fed unit stands for: its output carries the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// The camera's sequence number of the input.
    pub seq: u64,
    /// When the read that carried the input's first byte happened (or, for
    /// a timed camera's frame, when it was ready).
    pub started_at: Instant,
    /// The input's grab time, µs since the Unix epoch.
    pub unix_us: u64,
}

/// What came out of a converter.
#[derive(Debug)]
pub enum Converted {
    /// A JPEG of the access unit `source`.
    Jpeg {
        /// The JPEG and its size.
        frame: Frame,
        /// The access unit it is a picture of.
        source: Fed,
    },
    /// An access unit encoded from the JPEG `source`.
    AccessUnit {
        /// The access unit, with its times.
        au: TimedAu,
        /// The JPEG it encodes.
        source: Fed,
        /// The encoder's SPS and PPS in force.
        parameter_sets: Option<ParameterSets>,
    },
}

/// What a converter counts, for `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConverterCounters {
    /// Units written to it.
    pub frames_in: u64,
    /// Units that came out.
    pub frames_out: u64,
    /// Units not fed (its input busy, or the skip-to-IDR rule).
    pub frames_dropped: u64,
    /// Times it was started again after it ended or failed.
    pub restarts: u64,
    /// CPU time of the children that have ended, µs.
    pub ended_cpu_us: u64,
}

/// The output splitter of a running converter.
enum Output {
    Jpeg(Splitter),
    H264(AuClock),
}

/// A running converter child and its two queues.
struct Running {
    child: Child,
    input: OutputQueue,
    spares: SpareBuffers,
    /// Units queued to the child and not yet out of it, oldest first.
    in_flight: VecDeque<Fed>,
    output: Output,
    /// A decoder's place in the H.264 stream.
    follower: AuFollower,
    /// Whether anything came out yet (`starting` until then).
    produced: bool,
}

enum State {
    Off,
    Running(Box<Running>),
    /// It ended or failed: started again at `retry_at` if still needed.
    Failed {
        error: CameraError,
        retry_at: Instant,
        /// It could not even start (no ffmpeg, say): a consumer waiting
        /// for its output is told at once instead of waiting in vain.
        at_start: bool,
    },
}

/// One camera's converter.
pub struct Converter {
    direction: Direction,
    argv: Vec<String>,
    /// Who it is in the log: `camera cam0 h264-to-jpeg`.
    label: String,
    linger: Duration,
    state: State,
    /// When its last consumer went away (it stops `linger` later).
    unneeded_since: Option<Instant>,
    backoff: Duration,
    started_once: bool,
    /// The last reason its child could not start (logged once).
    last_start_error: Option<String>,
    graveyard: Graveyard,
    read_buffer: Vec<u8>,
    /// Its counters.
    pub counters: ConverterCounters,
}

impl Converter {
    /// A converter of camera `camera` that is not running yet. `fps` is
    /// the camera's rate (the encoder's `{fps}`).
    pub fn new(
        direction: Direction,
        settings: &ConverterSettings,
        camera: &str,
        fps: u32,
    ) -> Result<Self, String> {
        let command = match direction {
            Direction::H264ToJpeg => settings.decoder.clone(),
            Direction::JpegToH264 => settings.encoder.replace("{fps}", &fps.to_string()),
        };
        let argv = super::child::split_command(&command)
            .map_err(|e| format!("{} converter: {e}", direction.name()))?;
        Ok(Converter {
            direction,
            argv,
            label: format!("camera {camera} {}", direction.name()),
            linger: settings.linger,
            state: State::Off,
            unneeded_since: None,
            backoff: RESTART_BACKOFF_INITIAL,
            started_once: false,
            last_start_error: None,
            graveyard: Graveyard::default(),
            read_buffer: vec![0; READ_CHUNK_BYTES],
            counters: ConverterCounters::default(),
        })
    }

    /// Which way it converts.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// `off`, `starting` (running, nothing out yet) or `running`; a
    /// converter waiting to be started again after a failure is `off`.
    pub fn state_name(&self) -> &'static str {
        match &self.state {
            State::Running(running) if running.produced => "running",
            State::Running(_) => "starting",
            _ => "off",
        }
    }

    /// Whether its child runs.
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running(_))
    }

    /// Why it cannot run: set when its child could not even start. (One
    /// that ended while running is started again, and whoever waits for
    /// its output goes on waiting, up to `--camera-timeout`.)
    pub fn start_error(&self) -> Option<&CameraError> {
        match &self.state {
            State::Failed {
                error,
                at_start: true,
                ..
            } => Some(error),
            _ => None,
        }
    }

    /// The running child's process id.
    pub fn child_id(&self) -> Option<u32> {
        match &self.state {
            State::Running(running) => Some(running.child.id()),
            _ => None,
        }
    }

    /// CPU time of every child it ran so far, µs (`/proc/PID/stat`).
    pub fn cpu_us(&self) -> u64 {
        let running = self
            .child_id()
            .and_then(|pid| crate::sys::process_cpu_time(pid).ok())
            .map_or(0, |d| d.as_micros() as u64);
        self.counters.ended_cpu_us + running
    }

    /// Whether `token` is one of its pipes'.
    pub fn owns_token(&self, token: Token) -> bool {
        match &self.state {
            State::Running(running) => {
                let tokens = running.child.tokens;
                token == tokens.stdout || token == tokens.stderr || Some(token) == tokens.stdin
            }
            _ => false,
        }
    }

    /// The camera says whether a consumer needs this converter now. A
    /// needed converter that is off starts (a decoder is then fed `gop`,
    /// the camera's GOP cache, so its first JPEG comes from the cached
    /// IDR); one no longer needed stops `linger` later
    /// ([`Converter::on_timer`]). Errors are the start's; the converter
    /// then waits before trying again.
    pub fn set_needed(
        &mut self,
        needed: bool,
        registry: &Registry,
        tokens: ChildTokens,
        gop: &[SharedAu],
        now: Instant,
    ) {
        if !needed {
            match self.state {
                State::Running(_) if self.unneeded_since.is_none() => {
                    self.unneeded_since = Some(now);
                }
                // Nobody needs a retry of a failed one: no deadline for it.
                State::Failed { .. } => self.state = State::Off,
                _ => {}
            }
            return;
        }
        self.unneeded_since = None;
        let due = match &self.state {
            State::Off => true,
            State::Failed { retry_at, .. } => now >= *retry_at,
            State::Running(_) => false,
        };
        if due {
            self.start(registry, tokens, gop, now);
        }
    }

    fn start(&mut self, registry: &Registry, tokens: ChildTokens, gop: &[SharedAu], now: Instant) {
        if self.started_once {
            self.counters.restarts += 1;
        }
        self.started_once = true;
        let child = match Child::spawn(&self.argv, registry, tokens, &self.label) {
            Ok(child) => child,
            Err(error) => {
                let error = self.explain_start_failure(error);
                self.fail_with(registry, now, error);
                return;
            }
        };
        let output = match self.direction {
            Direction::H264ToJpeg => {
                Output::Jpeg(Splitter::new(crate::mjpeg::DEFAULT_MAX_FRAME_BYTES))
            }
            Direction::JpegToH264 => Output::H264(AuClock::new(crate::h264::DEFAULT_MAX_AU_BYTES)),
        };
        self.state = State::Running(Box::new(Running {
            child,
            input: OutputQueue::default(),
            spares: SpareBuffers::default(),
            in_flight: VecDeque::new(),
            output,
            follower: AuFollower::new(),
            produced: false,
        }));
        // A GOP longer than the child may hold in flight is not fed: the
        // decoder starts at the camera's next IDR instead.
        let gop = if gop.len() <= MAX_UNITS_IN_FLIGHT {
            gop
        } else {
            &[]
        };
        if let Some(first) = gop.first() {
            if let State::Running(running) = &mut self.state {
                running.input.push_bytes(&first.parameter_sets_prefix());
                for au in gop {
                    running.input.push_shared(au.data.clone());
                    running.in_flight.push_back(fed_of(au));
                }
                self.counters.frames_in += gop.len() as u64;
                running
                    .follower
                    .started_with_cache(running.input.queued_total(), now);
            }
            self.flush(registry, now);
        }
    }

    /// The error a consumer sees when the child cannot start: the one
    /// that matters on a fresh machine is a missing ffmpeg.
    fn explain_start_failure(&self, error: CameraError) -> CameraError {
        let missing = error.0.contains("No such file") && self.argv[0] == "ffmpeg";
        match (missing, self.direction) {
            (true, Direction::H264ToJpeg) => CameraError::new(
                "converting H.264 to JPEG needs ffmpeg (install it or set --h264-decoder)",
            ),
            (true, Direction::JpegToH264) => CameraError::new(
                "converting JPEG to H.264 needs ffmpeg (install it or set --h264-encoder)",
            ),
            _ => CameraError::new(format!("{}: {error}", self.label)),
        }
    }

    /// A decoder's input: the camera's next access unit, under the
    /// skip-to-IDR rule.
    pub fn feed_access_unit(&mut self, au: &SharedAu, last_idr_bytes: usize, now: Instant) {
        let State::Running(running) = &mut self.state else {
            return;
        };
        let offered = Offered {
            keyframe: au.keyframe,
            follows_gap: au.follows_gap,
        };
        if running.in_flight.len() >= MAX_UNITS_IN_FLIGHT {
            // The child takes input but gives nothing back: as behind as a
            // consumer can be. Its next unit must be an IDR.
            running.follower.fall_behind();
        }
        let (unsent, written) = (running.input.pending_bytes(), running.input.written_total());
        let admitted = running.in_flight.len() < MAX_UNITS_IN_FLIGHT
            && running
                .follower
                .offer(offered, unsent, written, last_idr_bytes, now)
                == Admit::Queue;
        if !admitted {
            self.counters.frames_dropped += 1;
            return;
        }
        if running.input.queued_total() == 0 {
            running.input.push_bytes(&au.parameter_sets_prefix());
        }
        running.input.push_shared(au.data.clone());
        running.in_flight.push_back(fed_of(au));
        running
            .follower
            .queued(running.input.queued_total(), au.ready_at, au.keyframe);
        self.counters.frames_in += 1;
    }

    /// An encoder's input: the camera's next JPEG (the shared bytes, and
    /// what its access unit will carry), skipped (counted) while the
    /// previous one is still being written: a converter never makes the
    /// camera wait.
    pub fn feed_jpeg(&mut self, jpeg: &Rc<[u8]>, source: Fed) {
        let State::Running(running) = &mut self.state else {
            return;
        };
        if !running.input.is_empty() || running.in_flight.len() >= MAX_UNITS_IN_FLIGHT {
            self.counters.frames_dropped += 1;
            return;
        }
        running.input.push_shared(jpeg.clone());
        running.in_flight.push_back(source);
        self.counters.frames_in += 1;
    }

    /// Writes what its input queue holds, as far as the pipe takes it.
    pub fn flush(&mut self, registry: &Registry, now: Instant) {
        let State::Running(running) = &mut self.state else {
            return;
        };
        let Some(stdin) = running.child.stdin.as_mut() else {
            return;
        };
        if running.input.is_empty() {
            return;
        }
        match running.input.write_to(stdin, &mut running.spares) {
            // What the child took whole no longer counts as unsent for the
            // skip-to-IDR rule.
            Ok(_) => running
                .follower
                .written(running.input.written_total(), |_| {}),
            Err(e) => {
                let error = CameraError::new(format!("{}: writing to it: {e}", self.label));
                self.fail_with(registry, now, error);
            }
        }
    }

    /// One of its pipes is ready: feed, read or log. What came out is
    /// appended to `out`, in order.
    pub fn on_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        out: &mut Vec<Converted>,
    ) {
        let State::Running(running) = &mut self.state else {
            return;
        };
        let tokens = running.child.tokens;
        if token == tokens.stderr {
            running
                .child
                .on_stderr(registry, &mut self.read_buffer, now);
        } else if Some(token) == tokens.stdin {
            self.flush(registry, now);
        } else if token == tokens.stdout {
            if let Err(error) = self.read_output(now, out) {
                self.fail_with(registry, now, error);
            }
        }
    }

    fn read_output(&mut self, now: Instant, out: &mut Vec<Converted>) -> Result<(), CameraError> {
        let State::Running(running) = &mut self.state else {
            return Ok(());
        };
        loop {
            let n = match running.child.stdout.read(&mut self.read_buffer) {
                Ok(0) => {
                    let how = running.child.end_description();
                    return Err(CameraError::new(format!(
                        "{}: the command {how}",
                        self.label
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(CameraError::new(format!("{}: reading: {e}", self.label)));
                }
            };
            let bytes = &self.read_buffer[..n];
            let before = out.len();
            match &mut running.output {
                Output::Jpeg(splitter) => {
                    splitter.push(bytes);
                    while let Some(frame) = splitter.next_frame() {
                        // An output without an input to pair it with (a
                        // child that makes up frames) says nothing about
                        // when its picture was taken: it is no answer.
                        if let Some(source) = running.in_flight.pop_front() {
                            out.push(Converted::Jpeg { frame, source });
                        }
                    }
                }
                Output::H264(clock) => {
                    let mut units = Vec::new();
                    clock.push(bytes, now, &mut units);
                    let sets = clock.splitter().parameter_sets().cloned();
                    for au in units {
                        if let Some(source) = running.in_flight.pop_front() {
                            out.push(Converted::AccessUnit {
                                au,
                                source,
                                parameter_sets: sets.clone(),
                            });
                        }
                    }
                }
            }
            let produced = (out.len() - before) as u64;
            if produced > 0 {
                running.produced = true;
                self.counters.frames_out += produced;
                self.backoff = RESTART_BACKOFF_INITIAL;
            }
        }
    }

    /// Stops a converter no longer needed once its linger has passed, and
    /// collects ended children. Returns when it next wants to be called.
    pub fn on_timer(&mut self, registry: &Registry, now: Instant) {
        self.graveyard.reap();
        let linger_over = self
            .unneeded_since
            .is_some_and(|since| now >= since + self.linger);
        if linger_over {
            self.unneeded_since = None;
            if self.is_running() {
                log::info!("{}: stopped, nobody needs it", self.label);
            }
            self.stop(registry);
            self.state = State::Off;
        }
    }

    /// When [`Converter::on_timer`] has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        let linger = self.unneeded_since.map(|since| since + self.linger);
        let retry = match &self.state {
            State::Failed { retry_at, .. } => Some(*retry_at),
            _ => None,
        };
        linger
            .into_iter()
            .chain(retry)
            .chain(self.graveyard.next_check())
            .min()
    }

    /// The child ended or broke: stop it, and start it again after a
    /// backoff if it is still needed then.
    pub fn fail_with(&mut self, registry: &Registry, now: Instant, error: CameraError) {
        let was_running = self.is_running();
        let repeated = self.last_start_error.as_deref() == Some(error.0.as_str());
        self.stop(registry);
        if was_running {
            log::warn!("{} failed: {error}; restarting", self.label);
            self.last_start_error = None;
        } else {
            // A child that cannot start is said once, not at every retry.
            if !repeated {
                log::warn!("{}: {error}", self.label);
            }
            self.last_start_error = Some(error.0.clone());
        }
        let backoff = self.backoff;
        self.backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
        self.state = State::Failed {
            error,
            retry_at: now + backoff,
            at_start: !was_running,
        };
    }

    /// Kills the child (if any); never waits.
    fn stop(&mut self, registry: &Registry) {
        if let State::Running(running) = std::mem::replace(&mut self.state, State::Off) {
            self.counters.ended_cpu_us += crate::sys::process_cpu_time(running.child.id())
                .map_or(0, |d| d.as_micros() as u64);
            running.child.kill(registry, &mut self.graveyard);
        }
    }

    /// The last stop, after the loop has ended.
    pub fn shutdown(&mut self, registry: &Registry, grace: Duration) {
        if let State::Running(running) = std::mem::replace(&mut self.state, State::Off) {
            running
                .child
                .shut_down(registry, &mut self.graveyard, grace);
        }
        self.graveyard.reap_all();
    }
}

/// What an access unit fed to a decoder stands for.
fn fed_of(au: &SharedAu) -> Fed {
    Fed {
        seq: au.seq,
        started_at: au.started_at,
        unix_us: au.started_unix_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_command_gets_the_cameras_rate() {
        let converter = Converter::new(
            Direction::JpegToH264,
            &ConverterSettings::default(),
            "cam0",
            15,
        )
        .unwrap();
        let words = converter.argv.join(" ");
        assert!(words.contains("-framerate 15 "), "{words}");
        assert!(words.contains("-g 15 "), "{words}");
        assert!(words.contains("-pix_fmt yuv420p"), "{words}");
        assert_eq!(converter.state_name(), "off");
    }

    #[test]
    fn a_missing_ffmpeg_is_named_with_the_flag_that_replaces_it() {
        let converter = Converter::new(
            Direction::H264ToJpeg,
            &ConverterSettings::default(),
            "cam0",
            30,
        )
        .unwrap();
        let error = converter.explain_start_failure(CameraError::new(
            "cannot start ffmpeg: No such file or directory (os error 2)",
        ));
        assert_eq!(
            error.0,
            "converting H.264 to JPEG needs ffmpeg (install it or set --h264-decoder)"
        );
    }

    fn access_unit(seq: u64, keyframe: bool, at: Instant) -> SharedAu {
        let nal_type = if keyframe { 0x65 } else { 0x41 };
        SharedAu {
            seq,
            data: vec![0, 0, 0, 1, nal_type, 0x88, 0x84].into(),
            keyframe,
            follows_gap: false,
            started_at: at,
            started_unix_us: 0,
            ready_at: at,
            parameter_sets: None,
        }
    }

    #[test]
    fn a_decoder_that_keeps_up_is_fed_every_access_unit_for_as_long_as_it_runs() {
        let poll = mio::Poll::new().unwrap();
        let settings = ConverterSettings {
            decoder: "sh -c 'cat > /dev/null'".to_string(),
            ..ConverterSettings::default()
        };
        let mut decoder = Converter::new(Direction::H264ToJpeg, &settings, "cam0", 30).unwrap();
        let tokens = ChildTokens {
            stdout: Token(1),
            stderr: Token(2),
            stdin: Some(Token(3)),
        };
        let start = Instant::now();
        decoder.set_needed(true, poll.registry(), tokens, &[], start);
        // Three seconds of a 30 fps stream, each unit written at once: what
        // the child took never counts as falling behind, however long ago
        // it was fed.
        for seq in 0..90 {
            let at = start + Duration::from_millis(33 * seq);
            decoder.feed_access_unit(&access_unit(seq, seq % 30 == 0, at), 7, at);
            decoder.flush(poll.registry(), at);
        }
        assert_eq!(decoder.counters.frames_in, 90);
        assert_eq!(decoder.counters.frames_dropped, 0);
        decoder.shutdown(poll.registry(), Duration::ZERO);
    }

    #[test]
    fn a_converter_not_needed_stops_after_its_linger() {
        let poll = mio::Poll::new().unwrap();
        let settings = ConverterSettings {
            decoder: "sleep 600".to_string(),
            linger: Duration::from_secs(10),
            ..ConverterSettings::default()
        };
        let mut converter = Converter::new(Direction::H264ToJpeg, &settings, "cam0", 30).unwrap();
        let tokens = ChildTokens {
            stdout: Token(1),
            stderr: Token(2),
            stdin: Some(Token(3)),
        };
        let start = Instant::now();
        converter.set_needed(true, poll.registry(), tokens, &[], start);
        assert!(converter.is_running());
        assert_eq!(converter.state_name(), "starting");
        assert_eq!(converter.deadline(), None, "needed: no deadline");
        converter.set_needed(false, poll.registry(), tokens, &[], start);
        assert_eq!(converter.deadline(), Some(start + Duration::from_secs(10)));
        converter.on_timer(poll.registry(), start + Duration::from_secs(9));
        assert!(converter.is_running(), "still lingering");
        // Needed again within the linger: it keeps running.
        converter.set_needed(
            true,
            poll.registry(),
            tokens,
            &[],
            start + Duration::from_secs(9),
        );
        converter.on_timer(poll.registry(), start + Duration::from_secs(20));
        assert!(converter.is_running());
        converter.set_needed(
            false,
            poll.registry(),
            tokens,
            &[],
            start + Duration::from_secs(20),
        );
        converter.on_timer(poll.registry(), start + Duration::from_secs(30));
        assert!(!converter.is_running());
        assert_eq!(converter.state_name(), "off");
        converter.shutdown(poll.registry(), Duration::ZERO);
    }
}
