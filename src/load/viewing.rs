//! What the viewer modes (`--mjpeg`, `--rtsp`, `--whep`) share: the checks
//! of the flags every viewer run has, the URL of the stream, the clock that
//! finds stalled viewers, the tally of frames per viewer, bytes and frame
//! ages that every report starts from, the ages of H.264 access units
//! (IDRs apart) and the time to each viewer's first picture that the two
//! H.264 modes report, and the reading of an HTTP response head (MJPEG's
//! stream, WHEP's answer).
//!
//! A viewer mode keeps a [`StallClock`] per viewer and one [`ViewerRun`]
//! (its stall checks, its [`FrameTally`], how its viewers ended) for the
//! run; what a frame is (an MJPEG part, an H.264 access unit) and where its
//! age comes from is the mode's.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::driver::{Close, Measured, Moment, Progress, Schedule, WindowStart};
use super::report::{
    microseconds_histogram, per_second, AuAgeSpreads, FrameAge, KeyframesAfterGaps, Viewing,
};
use super::{check_server_pid, seconds, window_from_args, LoadArgs};

/// The user name `--auth` sends with the token (HTTP Basic, RTSP Digest
/// or Basic); camloop ignores it and checks the token.
pub(super) const AUTH_USER: &str = "camloop";

/// Stalls are looked for this many times per `--stall-after`, so one is
/// noticed at most a tenth late.
const STALL_CHECKS_PER_PERIOD: u32 = 10;
/// Bounds of the interval between stall checks: often enough for a short
/// `--stall-after`, rarely enough that scanning every viewer costs nothing.
const MIN_STALL_CHECK_INTERVAL: Duration = Duration::from_millis(10);
const MAX_STALL_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The flags every viewer run has, checked.
#[derive(Debug, Clone)]
pub(super) struct ViewerFlags {
    pub(super) viewers: usize,
    pub(super) warmup: Duration,
    pub(super) duration: Duration,
    pub(super) stall_after: Duration,
    pub(super) server_pid: Option<u32>,
}

impl ViewerFlags {
    /// Checks the flags of a viewer run (`flag`: `--mjpeg` or `--rtsp`,
    /// for the messages), before anything connects.
    pub(super) fn from_args(args: &LoadArgs, flag: &str) -> Result<ViewerFlags, String> {
        // Not a clap conflict: that would switch off the `requires` of the
        // viewer flags.
        if !args.targets.is_empty() {
            return Err(format!(
                "{flag} takes its address from the URL; drop {}",
                args.targets.join(" ")
            ));
        }
        let (warmup, duration) = window_from_args(args)?;
        let stall_after = seconds("stall-after", args.stall_after)?;
        if stall_after.is_zero() {
            return Err("--stall-after must be more than 0".to_string());
        }
        if args.viewers == 0 {
            return Err("--viewers must be at least 1".to_string());
        }
        check_server_pid(args)?;
        Ok(ViewerFlags {
            viewers: args.viewers,
            warmup,
            duration,
            stall_after,
            server_pid: args.server_pid,
        })
    }
}

impl ViewerFlags {
    /// The driver's schedule: one connection per viewer to `target`, the
    /// window after the warmup, no drain.
    pub(super) fn schedule(&self, target: SocketAddr) -> Schedule {
        Schedule {
            targets: vec![target],
            connections: self.viewers,
            warmup: self.warmup,
            duration: self.duration,
            window_start: WindowStart::AfterWarmup,
            drain: None,
            server_pid: self.server_pid,
        }
    }
}

/// A stream's URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamUrl {
    /// `HOST:PORT`, the port filled in when the URL has none.
    pub(super) authority: String,
    /// `/PATH` and any query; `/` when the URL has none.
    pub(super) path: String,
}

impl StreamUrl {
    /// `SCHEME://HOST[:PORT][/PATH]` (`scheme`: `http` or `rtsp`) with
    /// `default_port` when none is given. No user info: a token goes in
    /// `--auth`. `flag` names the flag in the messages.
    pub(super) fn parse(
        flag: &str,
        url: &str,
        scheme: &str,
        default_port: u16,
    ) -> Result<StreamUrl, String> {
        let expected = format!("{flag} {url}: expected {scheme}://HOST:PORT/PATH");
        let rest = url
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .ok_or_else(|| expected.clone())?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_string()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{expected} (a token goes in --auth)"));
        }
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(format!("{flag} {url}: the path may not contain spaces"));
        }
        // A port is present unless the authority ends in a bare host (an
        // IPv6 literal ends in `]`).
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.contains(']'));
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{default_port}")
        };
        Ok(StreamUrl { authority, path })
    }

    /// The address to connect to: the first the host resolves to.
    pub(super) fn address(&self, flag: &str, url: &str) -> Result<SocketAddr, String> {
        let authority = &self.authority;
        authority
            .to_socket_addrs()
            .map_err(|e| format!("{flag} {url}: bad host `{authority}`: {e}"))?
            .next()
            .ok_or_else(|| format!("{flag} {url}: `{authority}` resolves to no address"))
    }
}

/// Largest HTTP response head accepted; camloop's are about 120 bytes.
const MAX_RESPONSE_HEAD_BYTES: usize = 8 * 1024;
/// Most header fields in an HTTP response head.
const MAX_RESPONSE_HEADERS: usize = 32;

/// An HTTP response head: the status and the header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResponseHead {
    pub(super) status: u16,
    pub(super) reason: String,
    /// Names and values, in order (values read as UTF-8, lossily).
    pub(super) fields: Vec<(String, String)>,
    /// Bytes of the head, up to and with the blank line: the body follows.
    pub(super) length: usize,
}

impl ResponseHead {
    /// Parses a complete head at the front of `bytes`: `None` while it is
    /// incomplete, `Err` (why, for the report) if it is not HTTP or larger
    /// than 8 KiB.
    pub(super) fn parse(bytes: &[u8]) -> Result<Option<ResponseHead>, String> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut response = httparse::Response::new(&mut fields);
        let length = match response.parse(bytes) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if bytes.len() <= MAX_RESPONSE_HEAD_BYTES => {
                return Ok(None)
            }
            Ok(httparse::Status::Partial) => return Err("response head over 8 KiB".to_string()),
            Err(e) => return Err(format!("bad response head: {e}")),
        };
        Ok(Some(ResponseHead {
            status: response.code.unwrap_or(0),
            reason: response.reason.unwrap_or("").to_string(),
            fields: response
                .headers
                .iter()
                .map(|field| {
                    let value = String::from_utf8_lossy(field.value).into_owned();
                    (field.name.to_string(), value)
                })
                .collect(),
            length,
        }))
    }

    /// The first field named `name` (any case).
    pub(super) fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// `HTTP 401 Unauthorized`, for the report.
    pub(super) fn status_line(&self) -> String {
        format!("HTTP {} {}", self.status, self.reason)
    }
}

/// The ages of the H.264 access units in the window, IDRs apart from the
/// others (a GOP cache's IDR is old by design), and the wait from each
/// viewer's start (RTSP: `PLAY`; WHEP: its offer) to its first IDR, the
/// first picture it can show.
#[derive(Debug)]
pub(super) struct AuAges {
    idr_us: Histogram<u64>,
    non_idr_us: Histogram<u64>,
    first_idr_us: Histogram<u64>,
}

impl AuAges {
    pub(super) fn new() -> Result<AuAges, String> {
        Ok(AuAges {
            idr_us: microseconds_histogram("IDR age")?,
            non_idr_us: microseconds_histogram("non-IDR age")?,
            first_idr_us: microseconds_histogram("first IDR")?,
        })
    }

    /// An AU in the window, `age_us` old (negative: dated in this
    /// machine's future): into the run's frame ages and the split.
    pub(super) fn record(&mut self, tally: &mut FrameTally, keyframe: bool, age_us: i64) {
        let age_us = tally.age(age_us);
        let split = if keyframe {
            &mut self.idr_us
        } else {
            &mut self.non_idr_us
        };
        split.saturating_record(age_us);
    }

    /// A viewer's first IDR, `waited` after it started.
    pub(super) fn first_idr(&mut self, waited: Duration) {
        self.first_idr_us
            .saturating_record(waited.as_micros() as u64);
    }

    /// The percentiles of the three, for the report.
    pub(super) fn spreads(&self) -> AuAgeSpreads {
        AuAgeSpreads {
            idr_us: FrameAge::from_histogram(&self.idr_us),
            non_idr_us: FrameAge::from_histogram(&self.non_idr_us),
            first_idr_us: FrameAge::from_histogram(&self.first_idr_us),
        }
    }
}

/// One viewer's wait for a keyframe after a gap in its stream: from a
/// gap (packets lost on the way, or not sent) a decoder has nothing sound
/// to show until the next IDR.
#[derive(Debug, Default)]
pub(super) struct KeyframeWait {
    since: Option<Instant>,
}

/// How the gaps in a run's streams ended: each followed by a keyframe,
/// or the run ended first; and the longest wait, so that "a keyframe came
/// after every gap" is a figure a soak can check, not a hope.
#[derive(Debug, Default)]
pub(super) struct GapRecovery {
    tally: KeyframesAfterGaps,
}

impl GapRecovery {
    /// A gap in the stream of the viewer that waits in `wait`, `now`. More
    /// gaps before the keyframe are the same wait.
    pub(super) fn gap(&mut self, wait: &mut KeyframeWait, now: Instant) {
        wait.since.get_or_insert(now);
    }

    /// An access unit of that viewer: a keyframe ends its wait.
    pub(super) fn access_unit(&mut self, wait: &mut KeyframeWait, keyframe: bool, now: Instant) {
        if !keyframe {
            return;
        }
        if let Some(since) = wait.since.take() {
            self.tally.followed += 1;
            self.waited(now.saturating_duration_since(since));
        }
    }

    /// The viewer's run ended `now`: a wait still open counts as one, as
    /// long as it has lasted.
    pub(super) fn end(&mut self, wait: &KeyframeWait, now: Instant) {
        if let Some(since) = wait.since {
            self.tally.awaiting_at_end += 1;
            self.waited(now.saturating_duration_since(since));
        }
    }

    fn waited(&mut self, wait: Duration) {
        let wait_us = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        self.tally.longest_wait_us = self.tally.longest_wait_us.max(wait_us);
    }

    /// The figures, for the report.
    pub(super) fn summary(&self) -> KeyframesAfterGaps {
        self.tally
    }
}

/// The driver's `unsent` and `on_written` for a mode whose connections
/// keep their requests in an [`Outbox`] field `out` (RTSP, WHEP): one line
/// in the mode's `impl Mode` instead of the same two methods in each.
macro_rules! requests_from_outbox {
    ($conn:ty) => {
        fn unsent<'v>(&'v self, conn: &'v $conn) -> &'v [u8] {
            conn.out.unsent()
        }

        fn on_written(&mut self, conn: &mut $conn, written: usize) {
            conn.out.written(written);
        }
    };
}
pub(super) use requests_from_outbox;

/// Requests a viewer has queued on its connection and not yet written
/// (RTSP's, WHEP's), for the driver's `unsent` and `on_written`.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    bytes: Vec<u8>,
    written: usize,
}

impl Outbox {
    /// Queues `bytes` after what is queued.
    pub(super) fn queue(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// What is queued and not yet written.
    pub(super) fn unsent(&self) -> &[u8] {
        &self.bytes[self.written..]
    }

    /// The first `count` bytes of `unsent` went out.
    pub(super) fn written(&mut self, count: usize) {
        self.written += count;
        if self.written == self.bytes.len() {
            self.bytes.clear();
            self.written = 0;
        }
    }
}

/// One viewer's stall clock.
#[derive(Debug, Clone)]
pub(super) struct StallClock {
    /// When the last frame arrived (at first: when the clock started).
    last_frame_at: Instant,
    /// No frame for `--stall-after` right now.
    stalled: bool,
    /// Stalled at least once.
    ever_stalled: bool,
}

impl StallClock {
    /// A clock that counts from `now`, as if a frame had arrived then.
    pub(super) fn new(now: Instant) -> StallClock {
        StallClock {
            last_frame_at: now,
            stalled: false,
            ever_stalled: false,
        }
    }

    /// A frame arrived (or the stream started) `now`: not stalled.
    pub(super) fn restart(&mut self, now: Instant) {
        self.last_frame_at = now;
        self.stalled = false;
    }

    /// Stalled right now.
    pub(super) fn is_stalled(&self) -> bool {
        self.stalled
    }
}

/// The stall checks of a run and what they found.
#[derive(Debug)]
pub(super) struct StallWatch {
    stall_after: Duration,
    interval: Duration,
    next_check: Instant,
    /// Stall events; each viewer is in `stalled_viewers` once.
    pub(super) stalls: u64,
    pub(super) stalled_viewers: u64,
}

impl StallWatch {
    pub(super) fn new(stall_after: Duration) -> StallWatch {
        let interval = (stall_after / STALL_CHECKS_PER_PERIOD)
            .clamp(MIN_STALL_CHECK_INTERVAL, MAX_STALL_CHECK_INTERVAL);
        StallWatch {
            stall_after,
            interval,
            // Set again when the run starts.
            next_check: Instant::now() + interval,
            stalls: 0,
            stalled_viewers: 0,
        }
    }

    /// Checks run from `start` on, every tenth of `--stall-after` (within
    /// bounds): the interval a mode's other timers may share.
    pub(super) fn start(&mut self, start: Instant) {
        self.next_check = start + self.interval;
    }

    /// When the next check is due.
    pub(super) fn next_check(&self) -> Instant {
        self.next_check
    }

    /// Whether a check is due `now`.
    pub(super) fn is_due(&self, now: Instant) -> bool {
        now >= self.next_check
    }

    /// Marks the viewers that have had no frame for `--stall-after`.
    pub(super) fn check<'c>(
        &mut self,
        now: Instant,
        clocks: impl Iterator<Item = &'c mut StallClock>,
    ) {
        for clock in clocks {
            if !clock.stalled
                && now.saturating_duration_since(clock.last_frame_at) >= self.stall_after
            {
                clock.stalled = true;
                self.stalls += 1;
                if !clock.ever_stalled {
                    clock.ever_stalled = true;
                    self.stalled_viewers += 1;
                }
            }
        }
        self.next_check = now + self.interval;
    }
}

/// Frames per viewer inside the window, frames of the whole run, bytes in
/// the window and the ages of the frames in the window.
#[derive(Debug)]
pub(super) struct FrameTally {
    /// Frames per viewer inside the window, indexed like the connections.
    pub(super) window_frames: Vec<u64>,
    pub(super) frames_run: u64,
    pub(super) bytes_in_window: u64,
    pub(super) frame_age_us: Histogram<u64>,
    /// Frames in the window that could not be dated.
    pub(super) untimed_frames: u64,
    /// Frames dated after this machine's clock (their age counts as 0).
    pub(super) future_timestamps: u64,
}

impl FrameTally {
    pub(super) fn new(viewers: usize) -> Result<FrameTally, String> {
        Ok(FrameTally {
            window_frames: vec![0; viewers],
            frames_run: 0,
            bytes_in_window: 0,
            frame_age_us: microseconds_histogram("frame age")?,
            untimed_frames: 0,
            future_timestamps: 0,
        })
    }

    /// Viewer `index` received a frame at `at`; whether it falls in the
    /// window (and so should be dated).
    pub(super) fn frame(&mut self, index: usize, at: &Moment) -> bool {
        self.frames_run += 1;
        if !at.in_window() {
            return false;
        }
        self.window_frames[index] += 1;
        true
    }

    /// Bytes received at `at`.
    pub(super) fn bytes(&mut self, count: usize, at: &Moment) {
        if at.in_window() {
            self.bytes_in_window += count as u64;
        }
    }

    /// A frame in the window, `age_us` old on arrival (negative: dated in
    /// this machine's future); returns the age recorded.
    pub(super) fn age(&mut self, age_us: i64) -> u64 {
        if age_us < 0 {
            self.future_timestamps += 1;
        }
        let age_us = age_us.max(0) as u64;
        self.frame_age_us.saturating_record(age_us);
        age_us
    }

    /// Frames in the window so far, all viewers.
    pub(super) fn frames(&self) -> u64 {
        self.window_frames.iter().sum()
    }
}

/// What a viewer run counts alike, beside the driver: its frames, its
/// stall checks, and how its viewers ended.
#[derive(Debug)]
pub(super) struct ViewerRun {
    pub(super) tally: FrameTally,
    stall_watch: StallWatch,
    /// Viewers the server closed or reset while they streamed.
    pub(super) dropped: u64,
    /// Viewers stalled when the run ended.
    stalled_at_end: u64,
}

impl ViewerRun {
    pub(super) fn new(flags: &ViewerFlags) -> Result<ViewerRun, String> {
        Ok(ViewerRun {
            tally: FrameTally::new(flags.viewers)?,
            stall_watch: StallWatch::new(flags.stall_after),
            dropped: 0,
            stalled_at_end: 0,
        })
    }

    /// The run starts: the stall checks count from `start`.
    pub(super) fn start(&mut self, start: Instant) {
        self.stall_watch.start(start);
    }

    /// When the next stall check is due: the clock of a mode's timers.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        Some(self.stall_watch.next_check())
    }

    /// Checks the viewers' `clocks` for stalls if a check is due `now`;
    /// whether it was (a mode runs its other timers on the same clock).
    pub(super) fn check_stalls<'c>(
        &mut self,
        now: Instant,
        clocks: impl Iterator<Item = &'c mut StallClock>,
    ) -> bool {
        let due = self.stall_watch.is_due(now);
        if due {
            self.stall_watch.check(now, clocks);
        }
        due
    }

    /// A viewer whose clock is `clock` closed for `reason`: a drop when it
    /// is the mode's `dropped` reason; at the end of the run, stalled or not.
    pub(super) fn closed<R: PartialEq>(
        &mut self,
        clock: &StallClock,
        reason: Close<R>,
        dropped: R,
    ) {
        if reason == Close::Mode(dropped) {
            self.dropped += 1;
        } else if reason == Close::RunOver {
            self.stalled_at_end += u64::from(clock.is_stalled());
        }
    }

    /// The once-a-second progress line of a viewer run.
    pub(super) fn progress_line(&self, progress: &Progress) -> String {
        format!(
            "{:6.1} s  viewers {} of {}  frames {} (run {})  stalled {}  dropped {}  ({})",
            progress.elapsed_s,
            progress.live,
            self.tally.window_frames.len(),
            self.tally.frames(),
            self.tally.frames_run,
            self.stall_watch.stalled_viewers,
            self.dropped,
            progress.phase.name(),
        )
    }

    /// What every viewer run reports, from these counts and what the
    /// driver measured. `extra_bytes` are bytes the mode received itself,
    /// beside the driver's connections (RTP over UDP).
    pub(super) fn into_viewing(self, url: &str, extra_bytes: u64, measured: &Measured) -> Viewing {
        let ViewerRun {
            tally,
            stall_watch,
            dropped,
            stalled_at_end,
        } = self;
        let measured_s = measured.measured_s;
        let frames = tally.frames();
        let per_viewer = |frames: u64| per_second(frames, measured_s);
        let counts = &measured.counts;
        Viewing {
            url: url.to_string(),
            viewers: tally.window_frames.len(),
            measured_s,
            frames,
            frames_per_s: per_second(frames, measured_s),
            fps_per_viewer_mean: per_viewer(frames) / tally.window_frames.len().max(1) as f64,
            fps_per_viewer_min: per_viewer(tally.window_frames.iter().copied().min().unwrap_or(0)),
            fps_per_viewer_max: per_viewer(tally.window_frames.iter().copied().max().unwrap_or(0)),
            bytes_per_s: per_second(tally.bytes_in_window, measured_s),
            frame_age_us: FrameAge::from_histogram(&tally.frame_age_us),
            untimed_frames: tally.untimed_frames,
            future_timestamps: tally.future_timestamps,
            frames_run: tally.frames_run,
            bytes_received: counts.bytes_received + extra_bytes,
            connected: counts.connected,
            connect_s: measured.connect_s,
            stalled_viewers: stall_watch.stalled_viewers,
            stalled_at_end,
            stalls: stall_watch.stalls,
            dropped_viewers: dropped,
            connect_failures: counts.connect_failures,
            io_errors: counts.io_errors,
            first_error: counts.first_error.clone(),
            tool_cpu_percent: measured.tool_cpu_percent,
            // The driver reads the server's CPU only over a window that is
            // not empty, so the division is safe.
            server_cpu_percent: measured
                .server_cpu
                .map(|cpu| 100.0 * cpu.as_secs_f64() / measured_s),
            viewer_frames: tally.window_frames,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let split = |url: &str, scheme: &str, port: u16| {
            StreamUrl::parse("--x", url, scheme, port)
                .map(|url| (url.authority, url.path))
                .map_err(|_| ())
        };
        let http = |url: &str| split(url, "http", 80);
        assert_eq!(
            http("http://127.0.0.1:8080/stream.mjpg"),
            Ok(("127.0.0.1:8080".into(), "/stream.mjpg".into()))
        );
        assert_eq!(
            http("http://cam/?action=stream"),
            Ok(("cam:80".into(), "/?action=stream".into()))
        );
        assert_eq!(http("http://[::1]"), Ok(("[::1]:80".into(), "/".into())));
        assert_eq!(
            http("http://[::1]:81/s"),
            Ok(("[::1]:81".into(), "/s".into()))
        );
        assert!(http("https://cam/").is_err());
        assert!(http("http://user:pw@cam/").is_err());
        assert!(http("http:///x").is_err());
        assert!(http("rtsp://cam/").is_err());
        assert_eq!(
            split("rtsp://cam/door", "rtsp", 554),
            Ok(("cam:554".into(), "/door".into()))
        );
        assert!(split("rtsps://cam/door", "rtsp", 554).is_err());
    }

    #[test]
    fn a_viewer_stalls_once_per_silence_and_counts_once() {
        let start = Instant::now();
        let mut watch = StallWatch::new(Duration::from_secs(1));
        watch.start(start);
        let mut clocks = [StallClock::new(start), StallClock::new(start)];
        watch.check(start + Duration::from_millis(500), clocks.iter_mut());
        assert_eq!(watch.stalls, 0);
        let later = start + Duration::from_secs(2);
        watch.check(later, clocks.iter_mut());
        watch.check(later, clocks.iter_mut());
        assert_eq!((watch.stalls, watch.stalled_viewers), (2, 2));
        clocks[0].restart(later);
        assert!(!clocks[0].is_stalled() && clocks[1].is_stalled());
        watch.check(later + Duration::from_secs(2), clocks.iter_mut());
        assert_eq!((watch.stalls, watch.stalled_viewers), (3, 2));
    }
}
