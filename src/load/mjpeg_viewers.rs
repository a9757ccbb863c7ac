//! The MJPEG viewer mode of `camloop load --mjpeg`: N viewers of one MJPEG
//! stream, as a [`Mode`] run by [`super::driver`], the loop every mode
//! shares.
//!
//! A viewer goes connect → request written → response head read → parts.
//! Parts are cut out of the body by camloop's own [`Splitter`], so the tool
//! accepts exactly what camloop's clients must accept, and counts as
//! malformed what the splitter drops. Once its request is out the viewer
//! only reads: the server sets the pace, and a viewer that reads slowly
//! (because this loop is busy) is what a slow client looks like to the
//! server.
//!
//! Frames per viewer, bytes/s and frame ages count only parts that arrive
//! inside the measurement window. Stalls, drops and malformed parts count
//! over the whole run, since a viewer that stalls while the run warms up
//! stalled all the same.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::Histogram;

use super::driver::{
    self, Close, Closing, Connections, Counts, Measured, Mode, Moment, Progress, Schedule,
    WindowStart,
};
use super::report::{microseconds_histogram, per_second, FrameAge, ViewerReport};
use super::{check_server_pid, seconds, window_from_args, LoadArgs};
use crate::mjpeg::{boundary_from_content_type, Splitter, DEFAULT_MAX_FRAME_BYTES};

/// Largest response head accepted; camloop's is about 120 bytes.
const MAX_RESPONSE_HEAD_BYTES: usize = 8 * 1024;
/// Most header fields in the response head.
const MAX_RESPONSE_HEADERS: usize = 32;
/// Stalls are looked for this many times per `--stall-after`, so one is
/// noticed at most a tenth late.
const STALL_CHECKS_PER_PERIOD: u32 = 10;
/// Bounds of the interval between stall checks: often enough for a short
/// `--stall-after`, rarely enough that scanning every viewer costs nothing.
const MIN_STALL_CHECK_INTERVAL: Duration = Duration::from_millis(10);
const MAX_STALL_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// HTTP Basic needs a user name; camloop ignores it and checks the password.
const BASIC_AUTH_USER: &str = "camloop";

/// Runs the plan to the end and returns what it measured.
pub(super) fn drive(plan: &ViewerPlan) -> Result<ViewerReport, String> {
    let schedule = Schedule {
        targets: vec![plan.target],
        connections: plan.viewers,
        warmup: plan.warmup,
        duration: plan.duration,
        window_start: WindowStart::AfterWarmup,
        drain: None,
        server_pid: plan.server_pid,
    };
    driver::drive(MjpegViewers::new(plan)?, &schedule)
}

/// The checked, parsed form of the `--mjpeg` flags.
#[derive(Debug, Clone)]
pub(super) struct ViewerPlan {
    /// The URL as given, for the report.
    pub(super) url: String,
    pub(super) target: SocketAddr,
    /// The request every viewer sends.
    request: Vec<u8>,
    pub(super) viewers: usize,
    duration: Duration,
    warmup: Duration,
    stall_after: Duration,
    server_pid: Option<u32>,
}

impl ViewerPlan {
    pub(super) fn from_args(args: &LoadArgs) -> Result<ViewerPlan, String> {
        let url = args.mjpeg.clone().ok_or("--mjpeg URL is missing")?;
        // Not a clap conflict: that would switch off the `requires` of the
        // viewer flags.
        if !args.targets.is_empty() {
            return Err(format!(
                "--mjpeg takes its address from the URL; drop {}",
                args.targets.join(" ")
            ));
        }
        let (authority, path) = split_http_url(&url)?;
        let target = authority
            .to_socket_addrs()
            .map_err(|e| format!("--mjpeg {url}: bad host `{authority}`: {e}"))?
            .next()
            .ok_or_else(|| format!("--mjpeg {url}: `{authority}` resolves to no address"))?;
        let (warmup, duration) = window_from_args(args)?;
        let stall_after = seconds("stall-after", args.stall_after)?;
        if stall_after.is_zero() {
            return Err("--stall-after must be more than 0".to_string());
        }
        if args.viewers == 0 {
            return Err("--viewers must be at least 1".to_string());
        }
        check_server_pid(args)?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: camloop-load\r\n\
             Accept: multipart/x-mixed-replace, image/jpeg\r\n"
        );
        if let Some(token) = &args.auth {
            let credentials = base64::engine::general_purpose::STANDARD
                .encode(format!("{BASIC_AUTH_USER}:{token}"));
            request.push_str(&format!("Authorization: Basic {credentials}\r\n"));
        }
        request.push_str("\r\n");
        Ok(ViewerPlan {
            url,
            target,
            request: request.into_bytes(),
            viewers: args.viewers,
            duration,
            warmup,
            stall_after,
            server_pid: args.server_pid,
        })
    }
}

/// `http://HOST[:PORT][/PATH]` as (`HOST:PORT`, `/PATH`), port 80 by
/// default. Only plain HTTP: the tool loads servers on your own network.
fn split_http_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--mjpeg {url}: expected http://HOST:PORT/PATH"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_string()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "--mjpeg {url}: expected http://HOST:PORT/PATH (a token goes in --auth)"
        ));
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("--mjpeg {url}: the path may not contain spaces"));
    }
    // A port is present unless the authority ends in a bare host (an IPv6
    // literal ends in `]`).
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.contains(']'));
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path))
}

/// Where a viewer is in reading the response.
enum Stage {
    /// Reading the response head: what has arrived of it. The request may
    /// still be going out (`Viewer::request_written`); a server that
    /// answers early is read all the same.
    ReadingHead { head: Vec<u8> },
    /// Reading parts. Boxed: the splitter is large beside the other stage.
    Streaming { splitter: Box<Splitter> },
}

/// Why the mode closes a viewer; each one is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Not a 200 MJPEG response, or no response at all.
    HttpError,
    /// The server closed (or reset) a streaming connection.
    Dropped,
}

/// One viewer connection.
struct Viewer {
    /// Bytes of `ViewerPlan::request` already written.
    request_written: usize,
    stage: Stage,
    /// When the last part arrived (at first: when the connect started).
    last_part_at: Instant,
    /// No part for `--stall-after` right now.
    stalled: bool,
    /// Stalled at least once.
    ever_stalled: bool,
    /// The last `X-Frame`, to check the order and count skipped frames.
    last_frame_number: Option<u64>,
}

/// The viewer mode: the plan, the stall clock and the counts of parts (the
/// driver counts connects, I/O errors and bytes).
struct MjpegViewers<'a> {
    plan: &'a ViewerPlan,
    next_stall_check: Instant,
    stall_check_interval: Duration,
    /// Parts per viewer inside the window, indexed like the connections.
    window_frames: Vec<u64>,
    frames_run: u64,
    bytes_in_window: u64,
    frame_age_us: Histogram<u64>,
    /// Parts in the window without an `X-Timestamp` (camloop's NO SIGNAL).
    untimed_frames: u64,
    /// Parts whose `X-Timestamp` lies after this machine's clock.
    future_timestamps: u64,
    /// Frames the `X-Frame` numbers skipped: frames the server did not send
    /// this viewer because its socket was full.
    frames_skipped: u64,
    /// Parts whose `X-Frame` was not above the one before.
    frame_order_errors: u64,
    http_errors: u64,
    dropped: u64,
    /// Stall events; each viewer is in `stalled_viewers` once.
    stalls: u64,
    stalled_viewers: u64,
    /// Viewers stalled when the run ended.
    stalled_at_end: u64,
    /// Splitter drops of closed viewers (every viewer is closed at the end).
    malformed_parts: u64,
    skipped_bytes: u64,
}

impl<'a> MjpegViewers<'a> {
    fn new(plan: &'a ViewerPlan) -> Result<Self, String> {
        let stall_check_interval = (plan.stall_after / STALL_CHECKS_PER_PERIOD)
            .clamp(MIN_STALL_CHECK_INTERVAL, MAX_STALL_CHECK_INTERVAL);
        Ok(MjpegViewers {
            plan,
            // Set again when the run starts (`on_start`).
            next_stall_check: Instant::now() + stall_check_interval,
            stall_check_interval,
            window_frames: vec![0; plan.viewers],
            frames_run: 0,
            bytes_in_window: 0,
            frame_age_us: microseconds_histogram("frame age")?,
            untimed_frames: 0,
            future_timestamps: 0,
            frames_skipped: 0,
            frame_order_errors: 0,
            http_errors: 0,
            dropped: 0,
            stalls: 0,
            stalled_viewers: 0,
            stalled_at_end: 0,
            malformed_parts: 0,
            skipped_bytes: 0,
        })
    }

    /// Marks the viewers that have had no part for `--stall-after`.
    fn check_stalls(&mut self, now: Instant, viewers: &mut Connections<Viewer>) {
        let stall_after = self.plan.stall_after;
        for viewer in viewers.iter_mut() {
            if !viewer.stalled && now.saturating_duration_since(viewer.last_part_at) >= stall_after
            {
                viewer.stalled = true;
                self.stalls += 1;
                if !viewer.ever_stalled {
                    viewer.ever_stalled = true;
                    self.stalled_viewers += 1;
                }
            }
        }
        self.next_stall_check = now + self.stall_check_interval;
    }

    /// Counts the parts the splitter has cut out for viewer `index`.
    fn count_parts(&mut self, index: usize, viewer: &mut Viewer, at: &Moment) {
        let Stage::Streaming { splitter } = &mut viewer.stage else {
            return;
        };
        while let Some(frame) = splitter.next_frame() {
            viewer.last_part_at = at.now;
            viewer.stalled = false;
            self.frames_run += 1;
            let part = frame.part.unwrap_or_default();
            if let Some(number) = part.frame_number {
                match viewer.last_frame_number {
                    Some(last) if number <= last => self.frame_order_errors += 1,
                    Some(last) => self.frames_skipped += number - last - 1,
                    None => {}
                }
                viewer.last_frame_number = Some(number);
            }
            if !at.in_window() {
                continue;
            }
            self.window_frames[index] += 1;
            match part.timestamp_micros {
                Some(sent_us) => {
                    let now_us = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |since| since.as_micros() as u64);
                    if sent_us > now_us {
                        self.future_timestamps += 1;
                    }
                    self.frame_age_us
                        .saturating_record(now_us.saturating_sub(sent_us));
                }
                None => self.untimed_frames += 1,
            }
        }
    }

    /// The driver's errors (connect failures, I/O errors) and the mode's:
    /// HTTP errors, drops, malformed parts and frames out of order. Stalls
    /// are not errors.
    fn errors(&self, counts: &Counts) -> u64 {
        counts.errors()
            + self.http_errors
            + self.dropped
            + self.malformed_parts
            + self.frame_order_errors
    }
}

impl Mode for MjpegViewers<'_> {
    type Conn = Viewer;
    type Reason = Reason;
    type Report = ViewerReport;

    /// Stall checks run from the start of the run.
    fn on_start(&mut self, start: Instant) {
        self.next_stall_check = start + self.stall_check_interval;
    }

    /// The request goes out as soon as the connect completes; until a part
    /// arrives, a stall counts from the connect.
    fn open(&mut self, _index: usize, now: Instant) -> Viewer {
        Viewer {
            request_written: 0,
            stage: Stage::ReadingHead { head: Vec::new() },
            last_part_at: now,
            stalled: false,
            ever_stalled: false,
            last_frame_number: None,
        }
    }

    fn unsent<'v>(&'v self, viewer: &'v Viewer) -> &'v [u8] {
        &self.plan.request[viewer.request_written..]
    }

    fn on_written(&mut self, viewer: &mut Viewer, written: usize) {
        viewer.request_written += written;
    }

    /// The response head first, then parts through the splitter.
    fn on_bytes(
        &mut self,
        index: usize,
        viewer: &mut Viewer,
        bytes: &[u8],
        at: &Moment,
    ) -> Result<(), Closing<Reason>> {
        if at.in_window() {
            self.bytes_in_window += bytes.len() as u64;
        }
        match &mut viewer.stage {
            Stage::ReadingHead { head } => {
                head.extend_from_slice(bytes);
                let parsed = parse_response_head(head)
                    .map_err(|message| Closing::mode(Reason::HttpError, Some(message)))?;
                let Some((mut splitter, head_len)) = parsed else {
                    return Ok(());
                };
                splitter.push(&head[head_len..]);
                viewer.stage = Stage::Streaming {
                    splitter: Box::new(splitter),
                };
                // A stall is counted from the response on, not from the connect.
                viewer.last_part_at = at.now;
            }
            Stage::Streaming { splitter } => splitter.push(bytes),
        }
        self.count_parts(index, viewer, at);
        Ok(())
    }

    fn on_peer_closed(&self, viewer: &Viewer) -> Closing<Reason> {
        match viewer.stage {
            Stage::Streaming { .. } => Closing::mode(Reason::Dropped, None),
            Stage::ReadingHead { .. } => {
                let message = "the server closed before the response head".to_string();
                Closing::mode(Reason::HttpError, Some(message))
            }
        }
    }

    /// A reset of a stream is the server dropping the viewer.
    fn on_read_error(&self, viewer: &Viewer, error: io::Error) -> Closing<Reason> {
        match viewer.stage {
            Stage::Streaming { .. } if error.kind() == io::ErrorKind::ConnectionReset => {
                Closing::mode(Reason::Dropped, Some(error.to_string()))
            }
            _ => Closing::io(error),
        }
    }

    fn on_close(&mut self, viewer: Viewer, reason: Close<Reason>) {
        // The part a closed viewer was in the middle of is not malformed:
        // the drop is counted, so the splitter is not `finish`ed.
        if let Stage::Streaming { splitter } = &viewer.stage {
            let stats = splitter.stats();
            self.malformed_parts += stats.malformed_frames + stats.oversize_frames;
            self.skipped_bytes += stats.skipped_bytes;
        }
        match reason {
            Close::Mode(Reason::HttpError) => self.http_errors += 1,
            Close::Mode(Reason::Dropped) => self.dropped += 1,
            Close::RunOver => self.stalled_at_end += u64::from(viewer.stalled),
            Close::ConnectFailed | Close::IoError => {}
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        Some(self.next_stall_check)
    }

    fn on_timers(
        &mut self,
        at: &Moment,
        viewers: &mut Connections<Viewer>,
        _wake: &mut Vec<usize>,
    ) {
        if at.now >= self.next_stall_check {
            self.check_stalls(at.now, viewers);
        }
    }

    fn progress_line(&mut self, progress: &Progress) -> String {
        let frames: u64 = self.window_frames.iter().sum();
        format!(
            "{:6.1} s  viewers {} of {}  frames {} (run {})  stalled {}  dropped {}  ({})",
            progress.elapsed_s,
            progress.live,
            self.plan.viewers,
            frames,
            self.frames_run,
            self.stalled_viewers,
            self.dropped,
            progress.phase.name(),
        )
    }

    fn report(self, measured: Measured) -> ViewerReport {
        let measured_s = measured.measured_s;
        let frames: u64 = self.window_frames.iter().sum();
        let per_viewer = |frames: u64| per_second(frames, measured_s);
        // The driver reads the server's CPU only over a window that is not
        // empty, so the division is safe.
        let server_cpu_percent = measured
            .server_cpu
            .map(|cpu| 100.0 * cpu.as_secs_f64() / measured_s);
        ViewerReport {
            url: self.plan.url.clone(),
            viewers: self.plan.viewers,
            measured_s,
            frames,
            frames_per_s: per_second(frames, measured_s),
            fps_per_viewer_mean: per_viewer(frames) / self.plan.viewers as f64,
            fps_per_viewer_min: per_viewer(self.window_frames.iter().copied().min().unwrap_or(0)),
            fps_per_viewer_max: per_viewer(self.window_frames.iter().copied().max().unwrap_or(0)),
            bytes_per_s: per_second(self.bytes_in_window, measured_s),
            frame_age_us: FrameAge::from_histogram(&self.frame_age_us),
            untimed_frames: self.untimed_frames,
            future_timestamps: self.future_timestamps,
            frames_skipped: self.frames_skipped,
            frames_run: self.frames_run,
            bytes_received: measured.counts.bytes_received,
            connected: measured.counts.connected,
            connect_s: measured.connect_s,
            stalled_viewers: self.stalled_viewers,
            stalled_at_end: self.stalled_at_end,
            stalls: self.stalls,
            dropped_viewers: self.dropped,
            malformed_parts: self.malformed_parts,
            skipped_bytes: self.skipped_bytes,
            frame_order_errors: self.frame_order_errors,
            connect_failures: measured.counts.connect_failures,
            http_errors: self.http_errors,
            io_errors: measured.counts.io_errors,
            errors: self.errors(&measured.counts),
            first_error: measured.counts.first_error,
            tool_cpu_percent: measured.tool_cpu_percent,
            server_cpu_percent,
            viewer_frames: self.window_frames,
        }
    }
}

/// Parses a complete response head at the front of `head`: the splitter for
/// the body and the head's length, `None` if incomplete, `Err` (why, for
/// the report) if it is not a 200 response.
fn parse_response_head(head: &[u8]) -> Result<Option<(Splitter, usize)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let head_len = match response.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if head.len() <= MAX_RESPONSE_HEAD_BYTES => return Ok(None),
        Ok(httparse::Status::Partial) => return Err("response head over 8 KiB".to_string()),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    if response.code != Some(200) {
        return Err(format!(
            "HTTP {} {}",
            response.code.unwrap_or(0),
            response.reason.unwrap_or("")
        ));
    }
    let content_type = response
        .headers
        .iter()
        .find(|field| field.name.eq_ignore_ascii_case("content-type"))
        .map(|field| String::from_utf8_lossy(field.value).into_owned())
        .unwrap_or_default();
    // Without a boundary parameter the splitter learns it from the body.
    let splitter = match boundary_from_content_type(&content_type) {
        Some(boundary) => Splitter::with_boundary(boundary, DEFAULT_MAX_FRAME_BYTES),
        None => Splitter::new(DEFAULT_MAX_FRAME_BYTES),
    };
    Ok(Some((splitter, head_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let split = |url: &str| split_http_url(url).map_err(|_| ());
        assert_eq!(
            split("http://127.0.0.1:8080/stream.mjpg"),
            Ok(("127.0.0.1:8080".into(), "/stream.mjpg".into()))
        );
        assert_eq!(
            split("http://cam/?action=stream"),
            Ok(("cam:80".into(), "/?action=stream".into()))
        );
        assert_eq!(split("http://[::1]"), Ok(("[::1]:80".into(), "/".into())));
        assert_eq!(
            split("http://[::1]:81/s"),
            Ok(("[::1]:81".into(), "/s".into()))
        );
        assert!(split("https://cam/").is_err());
        assert!(split("http://user:pw@cam/").is_err());
        assert!(split("http:///x").is_err());
    }

    #[test]
    fn only_a_200_response_starts_the_parts() {
        let ok =
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n--b";
        let parsed = parse_response_head(ok).expect("a 200");
        assert_eq!(parsed.map(|(_, len)| len), Some(ok.len() - 3));
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 200 OK\r\n"),
            Ok(None)
        ));
        let refused = parse_response_head(b"HTTP/1.1 401 Unauthorized\r\n\r\n");
        assert!(matches!(refused, Err(m) if m.contains("401")));
        assert!(parse_response_head(b"garbage\r\n\r\n").is_err());
    }
}
