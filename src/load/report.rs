//! The results of a load run (line and hold modes: [`LoadReport`]; MJPEG
//! viewers: [`ViewerReport`]; RTSP viewers: [`RtspReport`]; WebRTC
//! viewers: [`WhepReport`]) and their two
//! forms: a short text report for people and one JSON object for scripts
//! (`benches/compare.sh`).
//!
//! Each report is written once, by its `write_to`, into a `Form`: the text
//! form keeps the lines and the JSON form keeps the fields, so the two
//! cannot drift apart. The parts every mode reports alike have one writer
//! each, used by every report: the window (`write_window`), the connections
//! (`write_connections`), the errors (`write_errors`), the CPU
//! (`write_cpu`) and percentiles (`Percentiles`). The viewer modes
//! also share what every viewer run reports, [`Viewing`], and its writers
//! (frames and bytes per second, frame ages, stalled and dropped viewers),
//! so the same figure has the same JSON key in each; the two H.264 modes
//! share their AU ages ([`AuAgeSpreads`]). A new mode's report is
//! its own lines and fields between calls to these.
//!
//! The JSON is written by hand because every value is a number, a boolean or
//! a short string; a serializer crate would be the larger part of this file.

use std::fmt::{self, Write as _};

use hdrhistogram::Histogram;

use crate::http::response::push_json_string;

/// Highest value the percentile histograms record (60 s); higher ones are
/// clamped to it.
const MAX_RECORDED_US: u64 = 60_000_000;
/// Significant figures the percentile histograms keep.
const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 3;
/// Width of the text form's label column (`errors`, `first error`), before
/// the space that ends it.
const LABEL_COLUMN_CHARS: usize = 12;

/// Latency percentiles of the requests answered inside the measurement
/// window, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

/// Everything one `camloop load` run measured.
///
/// Counts named `*_sent`/`*_received` cover the whole run (warmup, window and
/// the final drain); `requests`, `requests_per_s` and `latency_us` cover only
/// the measurement window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// The addresses that were loaded, comma-separated.
    pub target: String,
    /// Whether this was a `--hold` run (idle connections, no requests).
    pub hold: bool,
    /// Connections asked for (`--conns`, or N of `--hold N`).
    pub conns: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Length of the measurement window (or of the hold) actually run.
    pub measured_s: f64,
    /// Replies received inside the measurement window.
    pub requests: u64,
    /// `requests / measured_s`.
    pub requests_per_s: f64,
    /// Latency of the replies counted in `requests`.
    pub latency_us: Latency,
    /// Requests completely written to a socket, whole run.
    pub requests_sent: u64,
    /// Replies received for them, whole run.
    pub replies_received: u64,
    /// Requests still waiting for a reply when their connection closed or the
    /// final drain gave up.
    pub unanswered: u64,
    /// Connections whose connect completed.
    pub connected: u64,
    /// Time from the start until the last connect completed or failed.
    pub connect_s: f64,
    /// `connected / connect_s`.
    pub connects_per_s: f64,
    /// Sum of the five error counts below.
    pub errors: u64,
    /// Connects refused, reset or still pending at the end.
    pub connect_failures: u64,
    /// Connections the server closed (EOF) while the run still used them.
    pub closed_by_peer: u64,
    /// Reads or writes that failed (connection reset, broken pipe, ...).
    pub io_errors: u64,
    /// Replies that arrived with no request in flight: `--expect` or
    /// `--greeting` does not match the server.
    pub unexpected_replies: u64,
    /// With `--auth`: connections whose `auth` line was answered with
    /// anything but `OK` (then closed; the reply is in `first_error`).
    pub auth_failures: u64,
    /// The first error seen, for the message a person reads.
    pub first_error: Option<String>,
    /// Bytes written, whole run.
    pub bytes_sent: u64,
    /// Bytes read, whole run (greetings included).
    pub bytes_received: u64,
    /// CPU time of this process during the window, in percent of one core: near
    /// 100 means the load tool itself was the bottleneck.
    pub tool_cpu_percent: f64,
    /// With `--server-pid`: the server's CPU time (user + system) during the
    /// window divided by `requests`, in microseconds; `None` without the
    /// flag, without requests, or when the server could not be read.
    pub server_cpu_us_per_request: Option<f64>,
    /// The first bytes received after a greeting, so a reply such as
    /// `-ERR unknown command` shows that the request was wrong.
    pub reply_sample: Vec<u8>,
}

impl LoadReport {
    /// Writes the report into either form. JSON keys keep the order they
    /// have always had, so some fields come before the line that shows them.
    fn write_to(&self, out: &mut dyn Form) -> fmt::Result {
        out.field("target", &JsonString(&self.target))?;
        out.field("hold", &self.hold)?;
        out.field("conns", &self.conns)?;
        out.field("pipeline", &self.pipeline)?;
        let heading = if self.hold {
            format!(
                "hold {}: {} idle connections for {:.1} s",
                self.target, self.conns, self.measured_s
            )
        } else {
            format!(
                "load {}: {} connections x pipeline {}, measured {:.2} s",
                self.target, self.conns, self.pipeline, self.measured_s
            )
        };
        write_window(out, format_args!("{heading}"), self.measured_s)?;
        // A hold sends no requests: JSON still has every key (all 0), the
        // text leaves out the lines about requests.
        let requests = !self.hold;
        let requests_per_s = Decimals(self.requests_per_s, 1);
        if requests {
            let line = format_args!("{} = {requests_per_s} req/s", self.requests);
            out.line("requests", line)?;
        }
        out.field("requests", &self.requests)?;
        out.field("requests_per_s", &requests_per_s)?;
        let latency = self.latency_us.percentiles();
        let mean_us = Decimals(self.latency_us.mean_us, 1);
        if requests {
            let line = format_args!("{}  mean {mean_us}", latency.text());
            out.line("latency us", line)?;
        }
        latency.write_fields(out)?;
        out.field("latency_mean_us", &mean_us)?;
        out.field("requests_sent", &self.requests_sent)?;
        out.field("replies_received", &self.replies_received)?;
        out.field("unanswered", &self.unanswered)?;
        let connects_per_s = format_args!(" ({:.0}/s)", self.connects_per_s);
        write_connections(
            out,
            "connections",
            self.connected,
            self.conns,
            self.connect_s,
            connects_per_s,
        )?;
        out.field("connects_per_s", &Decimals(self.connects_per_s, 1))?;
        let kinds = [
            ErrorCount::new("connect", "connect_failures", self.connect_failures),
            ErrorCount::new("closed by server", "closed_by_peer", self.closed_by_peer),
            ErrorCount::new("io", "io_errors", self.io_errors),
            ErrorCount::new(
                "unexpected replies",
                "unexpected_replies",
                self.unexpected_replies,
            ),
            ErrorCount::new("auth", "auth_failures", self.auth_failures),
        ];
        write_errors(
            out,
            self.errors,
            &kinds,
            format_args!(""),
            self.first_error.as_deref(),
        )?;
        out.field("bytes_sent", &self.bytes_sent)?;
        out.field("bytes_received", &self.bytes_received)?;
        if requests {
            let line = format_args!(
                "{} sent, {} answered, {} unanswered",
                self.requests_sent, self.replies_received, self.unanswered
            );
            out.line("whole run", line)?;
            let sample = self.reply_sample.escape_ascii();
            out.line("first reply", format_args!("\"{sample}\""))?;
        }
        let server_cpu = ServerCpu::UsPerRequest(self.server_cpu_us_per_request);
        write_cpu(out, self.tool_cpu_percent, server_cpu)?;
        // JSON strings are text: a reply that is not UTF-8 shows U+FFFD
        // where its odd bytes were (the text report escapes them instead).
        let sample = String::from_utf8_lossy(&self.reply_sample);
        out.field("reply_sample", &JsonString(&sample))
    }
}

impl Latency {
    /// The percentiles of a latency histogram in microseconds (all 0 when
    /// it recorded nothing).
    pub(super) fn from_histogram(histogram: &Histogram<u64>) -> Latency {
        if histogram.is_empty() {
            return Latency::default();
        }
        Latency {
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
        }
    }

    /// The percentiles as both forms show them (the mean is apart).
    fn percentiles(&self) -> Percentiles {
        Percentiles {
            key_prefix: "latency",
            points: vec![
                Percentile::new("p50", "p50", Some(self.p50_us)),
                Percentile::new("p90", "p90", Some(self.p90_us)),
                Percentile::new("p99", "p99", Some(self.p99_us)),
                Percentile::new("p99.9", "p999", Some(self.p999_us)),
                Percentile::new("max", "max", Some(self.max_us)),
            ],
        }
    }
}

/// Three percentiles of microseconds and how many values they are over:
/// the age of frames at arrival (this machine's wall clock minus the time
/// a frame is dated with), and for RTSP also the wait from `PLAY` to each
/// viewer's first IDR.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameAge {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Oldest (longest).
    pub max_us: u64,
    /// Values the percentiles are over.
    pub count: u64,
}

impl FrameAge {
    /// The percentiles of a histogram in microseconds; `None` when it
    /// recorded nothing.
    pub(super) fn from_histogram(histogram: &Histogram<u64>) -> Option<FrameAge> {
        (!histogram.is_empty()).then(|| FrameAge {
            p50_us: histogram.value_at_quantile(0.50),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
            count: histogram.len(),
        })
    }
}

/// The line of three percentiles (`LABEL us p50 .. p99 .. max ..  (note)`,
/// or `LABEL n/a (none_note)` without them) and their JSON fields
/// `{key_prefix}_p50_us`, `_p99_us` and `_max_us` (`null` without them).
fn write_spread(
    out: &mut dyn Form,
    label: &str,
    key_prefix: &'static str,
    spread: Option<FrameAge>,
    note: fmt::Arguments<'_>,
    none_note: fmt::Arguments<'_>,
) -> fmt::Result {
    let percentiles = Percentiles {
        key_prefix,
        points: vec![
            Percentile::new("p50", "p50", spread.map(|spread| spread.p50_us)),
            Percentile::new("p99", "p99", spread.map(|spread| spread.p99_us)),
            Percentile::new("max", "max", spread.map(|spread| spread.max_us)),
        ],
    };
    match spread {
        Some(_) => {
            let label = format!("{label} us");
            out.line(&label, format_args!("{}  ({note})", percentiles.text()))?;
        }
        None => out.line(label, format_args!("n/a ({none_note})"))?,
    }
    percentiles.write_fields(out)
}

/// What every viewer run reports alike, whatever the stream (`--mjpeg`:
/// its frames are the parts; `--rtsp`: the H.264 access units), with the
/// same JSON keys in both.
///
/// `frames`, the frame rates, `bytes_per_s`, `frame_age_us` and
/// `viewer_frames` cover the measurement window; the other counts cover
/// the whole run. Every figure is a count of what happened: a viewer that
/// stalls or is dropped is reported, never retried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Viewing {
    /// The stream's URL.
    pub url: String,
    /// Viewers asked for (`--viewers`).
    pub viewers: usize,
    /// Length of the measurement window actually run (shorter if every
    /// viewer was gone before its end).
    pub measured_s: f64,
    /// Frames received inside the window, all viewers: the sum of
    /// `viewer_frames`.
    pub frames: u64,
    /// `frames / measured_s`.
    pub frames_per_s: f64,
    /// Mean over the viewers (failed ones included, as 0) of their frames
    /// per second inside the window.
    pub fps_per_viewer_mean: f64,
    /// The slowest viewer's frames per second.
    pub fps_per_viewer_min: f64,
    /// The fastest viewer's frames per second.
    pub fps_per_viewer_max: f64,
    /// Bytes received inside the window (frames and their framing), per
    /// second.
    pub bytes_per_s: f64,
    /// Ages of the frames in the window that could be dated; `None` if
    /// none could.
    pub frame_age_us: Option<FrameAge>,
    /// Frames in the window that could not be dated.
    pub untimed_frames: u64,
    /// Frames dated after this machine's clock (the server's clock
    /// differs; their age counts as 0).
    pub future_timestamps: u64,
    /// Frames received, whole run.
    pub frames_run: u64,
    /// Bytes received, whole run.
    pub bytes_received: u64,
    /// Viewers whose connect completed.
    pub connected: u64,
    /// Time from the start until the last connect completed or failed.
    pub connect_s: f64,
    /// Viewers that went `--stall-after` seconds without a frame at least
    /// once.
    pub stalled_viewers: u64,
    /// Viewers stalled when the run ended.
    pub stalled_at_end: u64,
    /// Stalls (a viewer that recovers and stalls again counts twice).
    pub stalls: u64,
    /// Viewers whose connection the server closed or reset while streaming.
    pub dropped_viewers: u64,
    /// Connects refused, reset or still pending at the end.
    pub connect_failures: u64,
    /// Reads or writes that failed (but for a reset of a stream: a drop).
    pub io_errors: u64,
    /// The first error seen, for the message a person reads.
    pub first_error: Option<String>,
    /// CPU time of this process during the window, in percent of one core:
    /// near 100 means the viewers, not the server, were the bottleneck.
    pub tool_cpu_percent: f64,
    /// With `--server-pid`: the server's CPU (user + system, all its
    /// threads) during the window, in percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// Frames each viewer received inside the window, in viewer order.
    pub viewer_frames: Vec<u64>,
}

impl Viewing {
    /// The mode, the URL and the viewers, and the heading `MODE URL DETAIL:
    /// N viewers, measured S s`.
    fn write_heading(
        &self,
        out: &mut dyn Form,
        mode: &str,
        detail: fmt::Arguments<'_>,
    ) -> fmt::Result {
        out.field("mode", &JsonString(mode))?;
        out.field("url", &JsonString(&self.url))?;
        out.field("viewers", &self.viewers)?;
        let heading = format_args!(
            "{mode} {}{detail}: {} viewers, measured {:.2} s",
            self.url, self.viewers, self.measured_s
        );
        write_window(out, heading, self.measured_s)
    }

    /// The frames line and the bytes line, with the whole run's totals.
    fn write_rates(&self, out: &mut dyn Form) -> fmt::Result {
        let frames_per_s = Decimals(self.frames_per_s, 1);
        let fps_mean = Decimals(self.fps_per_viewer_mean, 2);
        let fps_min = Decimals(self.fps_per_viewer_min, 2);
        let fps_max = Decimals(self.fps_per_viewer_max, 2);
        let line = format_args!(
            "{} = {frames_per_s}/s; per viewer mean {fps_mean}/s, min {fps_min}, max {fps_max}",
            self.frames
        );
        out.line("frames", line)?;
        out.field("frames", &self.frames)?;
        out.field("frames_per_s", &frames_per_s)?;
        out.field("fps_per_viewer_mean", &fps_mean)?;
        out.field("fps_per_viewer_min", &fps_min)?;
        out.field("fps_per_viewer_max", &fps_max)?;
        let line = format_args!(
            "{:.1} MB/s ({:.0} Mbit/s)",
            self.bytes_per_s / 1e6,
            self.bytes_per_s * 8.0 / 1e6
        );
        out.line("bytes", line)?;
        out.field("bytes_per_s", &Decimals(self.bytes_per_s, 0))?;
        out.field("frames_run", &self.frames_run)?;
        out.field("bytes_received", &self.bytes_received)
    }

    /// The frame age line, its percentiles (`null` without a dated frame)
    /// and the counts of frames that could not be dated. `unit` names the
    /// frames in the text (`parts`), `undated` what those that could not
    /// be dated lacked (`without X-Timestamp`).
    fn write_frame_ages(&self, out: &mut dyn Form, unit: &str, undated: &str) -> fmt::Result {
        let age = self.frame_age_us;
        let (dated, untimed) = (age.map_or(0, |age| age.count), self.untimed_frames);
        write_spread(
            out,
            "frame age",
            "frame_age",
            age,
            format_args!("{dated} {unit}; {untimed} {undated}"),
            format_args!("no {unit} dated; {untimed} {undated}"),
        )?;
        out.field("frame_ages", &dated)?;
        out.field("untimed_frames", &untimed)?;
        out.field("future_timestamps", &self.future_timestamps)
    }

    /// The viewers line: how many connected, stalled and were dropped.
    fn write_viewers(&self, out: &mut dyn Form) -> fmt::Result {
        let stalls = format_args!(
            "; stalled {} ({} at the end, {} stalls); dropped by the server {}",
            self.stalled_viewers, self.stalled_at_end, self.stalls, self.dropped_viewers
        );
        write_connections(
            out,
            "viewers",
            self.connected,
            self.viewers,
            self.connect_s,
            stalls,
        )?;
        out.field("stalled_viewers", &self.stalled_viewers)?;
        out.field("stalled_at_end", &self.stalled_at_end)?;
        out.field("stalls", &self.stalls)
    }

    /// The errors line and the first error: the kinds every viewer run
    /// counts with the mode's own, in this order: connects, the mode's
    /// `before` kinds, drops, I/O errors, the mode's `after` kinds; `rest`
    /// ends the line.
    fn write_errors(
        &self,
        out: &mut dyn Form,
        errors: u64,
        (before, after): (&[ErrorCount], &[ErrorCount]),
        rest: fmt::Arguments<'_>,
    ) -> fmt::Result {
        let connect = ErrorCount::new("connect", "connect_failures", self.connect_failures);
        let dropped = ErrorCount::new("dropped", "dropped_viewers", self.dropped_viewers);
        let io = ErrorCount::new("io", "io_errors", self.io_errors);
        let kinds = [&[connect], before, &[dropped, io], after].concat();
        write_errors(out, errors, &kinds, rest, self.first_error.as_deref())
    }

    /// The whole run's line: frames (`unit`) and bytes, then `rest`.
    fn write_whole_run(
        &self,
        out: &mut dyn Form,
        unit: &str,
        rest: fmt::Arguments<'_>,
    ) -> fmt::Result {
        let (frames, bytes) = (self.frames_run, self.bytes_received);
        out.line(
            "whole run",
            format_args!("{frames} {unit}, {bytes} bytes{rest}"),
        )
    }

    /// The CPU lines, then (JSON only) each viewer's frames.
    fn write_cpu_and_viewer_frames(&self, out: &mut dyn Form) -> fmt::Result {
        write_cpu(
            out,
            self.tool_cpu_percent,
            ServerCpu::Percent(self.server_cpu_percent),
        )?;
        let counts: Vec<String> = self.viewer_frames.iter().map(u64::to_string).collect();
        out.field("viewer_frames", &format_args!("[{}]", counts.join(",")))
    }
}

/// Everything one `camloop load --mjpeg` run measured: what every viewer
/// run reports ([`Viewing`], whose frames are the parts) and what is
/// MJPEG's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewerReport {
    /// Frames, rates, ages, stalls and drops, as every viewer run reports
    /// them. A part's age is this machine's clock minus its `X-Timestamp`
    /// (camloop's NO SIGNAL part has none: untimed).
    pub viewing: Viewing,
    /// Frame numbers (`X-Frame`) the viewers never saw between two they
    /// did: frames the server skipped for a viewer that could not keep up
    /// (or that its camera never delivered), whole run.
    pub frames_skipped: u64,
    /// Parts the splitter dropped: not a JPEG, cut short, a `Content-Length`
    /// that is wrong, a part head that does not parse, or over 4 MiB.
    pub malformed_parts: u64,
    /// Bytes the splitter skipped (garbage between parts, dropped parts).
    pub skipped_bytes: u64,
    /// Parts whose `X-Frame` was not above the viewer's previous one.
    pub frame_order_errors: u64,
    /// Responses that were not `200` with a body (status, bad head, closed
    /// before the head).
    pub http_errors: u64,
    /// `connect_failures + http_errors + dropped_viewers + io_errors +
    /// malformed_parts + frame_order_errors`; stalls are not errors.
    pub errors: u64,
}

impl ViewerReport {
    /// Writes the report into either form.
    fn write_to(&self, out: &mut dyn Form) -> fmt::Result {
        let viewing = &self.viewing;
        viewing.write_heading(out, "mjpeg", format_args!(""))?;
        viewing.write_rates(out)?;
        viewing.write_frame_ages(out, "parts", "without X-Timestamp")?;
        out.field("frames_skipped", &self.frames_skipped)?;
        viewing.write_viewers(out)?;
        out.field("skipped_bytes", &self.skipped_bytes)?;
        let http = [ErrorCount::new("http", "http_errors", self.http_errors)];
        let parts = [
            ErrorCount::new("malformed parts", "malformed_parts", self.malformed_parts),
            ErrorCount::new("frame order", "frame_order_errors", self.frame_order_errors),
        ];
        let skipped = format_args!("; skipped bytes {}", self.skipped_bytes);
        viewing.write_errors(out, self.errors, (&http, &parts), skipped)?;
        let skipped = format_args!(", {} frames skipped by the server", self.frames_skipped);
        viewing.write_whole_run(out, "parts", skipped)?;
        viewing.write_cpu_and_viewer_frames(out)
    }
}

/// How the viewers of an RTSP run receive RTP (`--transport`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RtspTransport {
    /// `$`-framed on the RTSP connection (`RTP/AVP/TCP;interleaved=0-1`).
    #[default]
    Tcp,
    /// On two UDP sockets of the viewer's own (`RTP/AVP;client_port=A-B`).
    Udp,
}

impl RtspTransport {
    /// `tcp` or `udp`, as the flag and the report say it.
    pub fn as_str(self) -> &'static str {
        match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        }
    }
}

/// Everything one `camloop load --rtsp` run measured: what every viewer run
/// reports ([`Viewing`], whose frames are H.264 access units put back
/// together from RTP) and what is RTSP's own.
///
/// A frame's age is this machine's clock minus the AU's wall time, which
/// the server's RTCP sender reports give (NTP time beside RTP time); AUs
/// before a viewer's first sender report are untimed. Over TCP camloop
/// starts a viewer with its GOP cache, so the first AUs are old by design.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RtspReport {
    /// Frames, rates, ages, stalls and drops, as every viewer run reports
    /// them.
    pub viewing: Viewing,
    /// How the RTP came.
    pub transport: RtspTransport,
    /// The ages of the IDR access units in the window.
    pub frame_age_idr_us: Option<FrameAge>,
    /// The ages of the other access units in the window.
    pub frame_age_non_idr_us: Option<FrameAge>,
    /// From each viewer's `PLAY` to its first IDR (`count`: the viewers
    /// that got one), whole run.
    pub first_idr_us: Option<FrameAge>,
    /// RTP packets received, whole run.
    pub rtp_packets: u64,
    /// Packets missing from the sequence numbers: lost on the way (UDP),
    /// or not sent to a viewer that could not keep up (the server's
    /// skip-to-IDR).
    pub rtp_packets_lost: u64,
    /// Times a packet's sequence number was not the one expected.
    pub sequence_gaps: u64,
    /// Access units thrown away as incomplete (a gap went through them).
    pub aus_discarded: u64,
    /// Packets that are not RTP of H.264 (packetisation mode 1).
    pub malformed_rtp: u64,
    /// How the sequence gaps ended: a keyframe after each, or not yet.
    pub keyframes_after_gaps: KeyframesAfterGaps,
    /// RTCP sender reports received.
    pub sender_reports: u64,
    /// RTCP receiver reports sent (over UDP: they keep the session alive).
    pub receiver_reports: u64,
    /// `GET_PARAMETER` keepalives sent.
    pub keepalives: u64,
    /// Viewers closed over RTSP: a status other than 200 (but for a 401
    /// answered), a response that does not parse or does not match its
    /// request, an SDP without H.264 video, a server that closed before
    /// `PLAY`'s answer.
    pub rtsp_errors: u64,
    /// Viewers refused with 401 although they sent credentials (a wrong
    /// `--auth`), or without `--auth`.
    pub auth_failures: u64,
    /// `connect_failures + rtsp_errors + auth_failures + dropped_viewers +
    /// io_errors`; stalls and lost packets are not errors.
    pub errors: u64,
}

impl RtspReport {
    /// Writes the report into either form.
    fn write_to(&self, out: &mut dyn Form) -> fmt::Result {
        let viewing = &self.viewing;
        let transport = self.transport.as_str();
        viewing.write_heading(out, "rtsp", format_args!(" over {transport}"))?;
        out.field("transport", &JsonString(transport))?;
        viewing.write_rates(out)?;
        viewing.write_frame_ages(out, "AUs", "before a sender report")?;
        let ages = AuAgeSpreads {
            idr_us: self.frame_age_idr_us,
            non_idr_us: self.frame_age_non_idr_us,
            first_idr_us: self.first_idr_us,
        };
        ages.write_to(out, FirstIdr::RTSP, viewing.viewers)?;
        let line = format_args!(
            "{} packets, {} lost in {} gaps; {} AUs discarded, {} malformed",
            self.rtp_packets,
            self.rtp_packets_lost,
            self.sequence_gaps,
            self.aus_discarded,
            self.malformed_rtp
        );
        out.line("rtp", line)?;
        out.field("rtp_packets", &self.rtp_packets)?;
        out.field("rtp_packets_lost", &self.rtp_packets_lost)?;
        out.field("sequence_gaps", &self.sequence_gaps)?;
        out.field("aus_discarded", &self.aus_discarded)?;
        out.field("malformed_rtp", &self.malformed_rtp)?;
        self.keyframes_after_gaps.write_to(out)?;
        viewing.write_viewers(out)?;
        let rtsp = [
            ErrorCount::new("rtsp", "rtsp_errors", self.rtsp_errors),
            ErrorCount::new("auth", "auth_failures", self.auth_failures),
        ];
        viewing.write_errors(out, self.errors, (&rtsp, &[]), format_args!(""))?;
        let rtcp = format_args!(
            "; {} keepalives, {} receiver reports sent, {} sender reports received",
            self.keepalives, self.receiver_reports, self.sender_reports
        );
        viewing.write_whole_run(out, "AUs", rtcp)?;
        out.field("keepalives", &self.keepalives)?;
        out.field("receiver_reports", &self.receiver_reports)?;
        out.field("sender_reports", &self.sender_reports)?;
        viewing.write_cpu_and_viewer_frames(out)
    }
}

/// How the gaps in the viewers' streams ended (RTSP and WebRTC viewers):
/// a decoder shows nothing sound from a gap to the next keyframe, so
/// each gap should be followed by one, within a GOP or so.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KeyframesAfterGaps {
    /// Gaps followed by a keyframe (more gaps before that keyframe count
    /// as one).
    pub followed: u64,
    /// Viewers still waiting for a keyframe after a gap when their run
    /// ended.
    pub awaiting_at_end: u64,
    /// The longest wait from a gap to its keyframe, in µs, the waits still
    /// open at the end included (as long as they had lasted).
    pub longest_wait_us: u64,
}

impl KeyframesAfterGaps {
    fn write_to(&self, out: &mut dyn Form) -> fmt::Result {
        let line = format_args!(
            "{} gaps followed by a keyframe, {} still waiting at the end; longest wait {:.1} ms",
            self.followed,
            self.awaiting_at_end,
            self.longest_wait_us as f64 / 1000.0
        );
        out.line("keyframes", line)?;
        out.field("gaps_followed_by_keyframe", &self.followed)?;
        out.field("gaps_awaiting_keyframe", &self.awaiting_at_end)?;
        out.field("keyframe_after_gap_max_us", &self.longest_wait_us)
    }
}

/// What the H.264 viewer modes report of their access units beside the
/// frame ages every viewer run has: the ages of the IDRs and of the others
/// apart, and the wait for each viewer's first IDR.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AuAgeSpreads {
    /// The ages of the IDR access units in the window.
    pub idr_us: Option<FrameAge>,
    /// The ages of the other access units in the window.
    pub non_idr_us: Option<FrameAge>,
    /// From each viewer's start to its first IDR (`count`: the viewers
    /// that got one), whole run.
    pub first_idr_us: Option<FrameAge>,
}

/// How a mode names the wait for a viewer's first IDR: its label in the
/// text, its JSON key prefix and the key of how many viewers had one.
#[derive(Clone, Copy)]
struct FirstIdr {
    label: &'static str,
    key: &'static str,
    count_key: &'static str,
}

impl FirstIdr {
    /// From `PLAY`.
    const RTSP: FirstIdr = FirstIdr {
        label: "first IDR",
        key: "first_idr",
        count_key: "first_idrs",
    };
    /// From the WHEP offer: the first picture a browser could show.
    const WHEP: FirstIdr = FirstIdr {
        label: "1st picture",
        key: "first_picture",
        count_key: "first_pictures",
    };
}

impl AuAgeSpreads {
    /// The IDR and non-IDR age lines, then the first-IDR line (`first`
    /// names it) over `viewers`.
    fn write_to(&self, out: &mut dyn Form, first: FirstIdr, viewers: usize) -> fmt::Result {
        // IDRs apart: the first is a GOP cache's, old by design.
        for (label, key, age) in [
            ("  IDR", "frame_age_idr", self.idr_us),
            ("  non-IDR", "frame_age_non_idr", self.non_idr_us),
        ] {
            let count = age.map_or(0, |age| age.count);
            let note = format_args!("{count} AUs");
            write_spread(out, label, key, age, note, note)?;
        }
        let got_one = self.first_idr_us.map_or(0, |wait| wait.count);
        write_spread(
            out,
            first.label,
            first.key,
            self.first_idr_us,
            format_args!("{got_one} of {viewers} viewers"),
            format_args!("none of {viewers} viewers got one"),
        )?;
        out.field(first.count_key, &got_one)
    }
}

/// Everything one `camloop load --whep` run measured: what every viewer
/// run reports ([`Viewing`], whose frames are the H.264 access units str0m
/// put back together) and what is WebRTC's own.
///
/// A frame's age is this machine's clock minus the AU's capture time: from
/// its `abs-capture-time` extension when the answer took it, else from the
/// server's RTCP sender reports (NTP time beside RTP time); AUs with
/// neither are untimed. camloop starts a peer with its GOP cache, so the
/// first AUs are old by design (the IDR ages are apart).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WhepReport {
    /// Frames, rates, ages, stalls and drops, as every viewer run reports
    /// them. `connected` counts the viewers whose WHEP connection opened.
    pub viewing: Viewing,
    /// IDR and non-IDR ages, and from each viewer's offer to its first IDR.
    pub ages: AuAgeSpreads,
    /// Viewers whose ICE and DTLS came up (str0m's `Connected`).
    pub ice_connected: u64,
    /// Viewers that had an answer but whose ICE and DTLS had not come up
    /// by the end of the run.
    pub ice_failures: u64,
    /// AUs in the window dated by their `abs-capture-time` extension.
    pub dated_by_capture_time: u64,
    /// AUs in the window dated by the RTCP sender reports.
    pub dated_by_sender_report: u64,
    /// Datagrams received (STUN, DTLS, SRTP and SRTCP), whole run.
    pub datagrams: u64,
    /// AUs str0m emitted after a gap in the RTP sequence (not contiguous).
    pub discontinuities: u64,
    /// How those gaps ended: a keyframe after each, or not yet.
    pub keyframes_after_gaps: KeyframesAfterGaps,
    /// NACKs the viewers sent (str0m asks for what is missing).
    pub nacks_sent: u64,
    /// PLIs and FIRs the viewers sent.
    pub keyframe_requests_sent: u64,
    /// Datagrams the kernel dropped because a viewer's socket buffer was
    /// full (`SO_RXQ_OVFL`): this machine could not keep up.
    pub kernel_drops: u64,
    /// The receive buffer each viewer's socket got, in bytes (as the
    /// kernel reports it: twice what was set).
    pub receive_buffer_bytes: u64,
    /// WHEP sessions ended with `DELETE` at the end of the run.
    pub sessions_deleted: u64,
    /// Viewers refused or failed in signalling: a status other than 201
    /// (but 401 and 403), an answer without `Location` or that str0m
    /// cannot take, a response that does not parse, a close before it.
    pub whep_errors: u64,
    /// Viewers refused with 401 or 403 (a wrong `--auth`, or none).
    pub auth_failures: u64,
    /// `connect_failures + whep_errors + auth_failures + ice_failures +
    /// dropped_viewers + io_errors`; stalls and gaps are not errors.
    pub errors: u64,
}

impl WhepReport {
    /// Writes the report into either form.
    fn write_to(&self, out: &mut dyn Form) -> fmt::Result {
        let viewing = &self.viewing;
        viewing.write_heading(out, "whep", format_args!(""))?;
        viewing.write_rates(out)?;
        viewing.write_frame_ages(out, "AUs", "undated")?;
        let line = format_args!(
            "{} by abs-capture-time, {} by sender reports",
            self.dated_by_capture_time, self.dated_by_sender_report
        );
        out.line("  dated", line)?;
        out.field("dated_by_capture_time", &self.dated_by_capture_time)?;
        out.field("dated_by_sender_report", &self.dated_by_sender_report)?;
        self.ages.write_to(out, FirstIdr::WHEP, viewing.viewers)?;
        let line = format_args!(
            "{} datagrams, {} kernel drops ({} B buffers); {} AUs after a gap, \
             {} NACKs and {} PLI/FIR sent",
            self.datagrams,
            self.kernel_drops,
            self.receive_buffer_bytes,
            self.discontinuities,
            self.nacks_sent,
            self.keyframe_requests_sent
        );
        out.line("udp", line)?;
        out.field("datagrams", &self.datagrams)?;
        out.field("kernel_drops", &self.kernel_drops)?;
        out.field("receive_buffer_bytes", &self.receive_buffer_bytes)?;
        out.field("discontinuities", &self.discontinuities)?;
        out.field("nacks_sent", &self.nacks_sent)?;
        out.field("keyframe_requests_sent", &self.keyframe_requests_sent)?;
        self.keyframes_after_gaps.write_to(out)?;
        viewing.write_viewers(out)?;
        out.line(
            "ice",
            format_args!("{} of {} connected", self.ice_connected, viewing.viewers),
        )?;
        out.field("ice_connected", &self.ice_connected)?;
        let before = [
            ErrorCount::new("whep", "whep_errors", self.whep_errors),
            ErrorCount::new("auth", "auth_failures", self.auth_failures),
            ErrorCount::new("ice", "ice_failures", self.ice_failures),
        ];
        viewing.write_errors(out, self.errors, (&before, &[]), format_args!(""))?;
        let deleted = format_args!("; {} sessions deleted", self.sessions_deleted);
        viewing.write_whole_run(out, "AUs", deleted)?;
        out.field("sessions_deleted", &self.sessions_deleted)?;
        viewing.write_cpu_and_viewer_frames(out)
    }
}

/// Gives each report its two forms from its `write_to`: `to_json`, and the
/// text form as `Display` (what `println!("{report}")` prints).
macro_rules! text_and_json_forms {
    ($($report:ty),*) => {$(
        impl $report {
            /// The report as one line of JSON.
            pub fn to_json(&self) -> String {
                json_of(|form| self.write_to(form))
            }
        }

        /// The text report.
        impl fmt::Display for $report {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.write_to(&mut TextForm::new(f))
            }
        }
    )*};
}

text_and_json_forms!(LoadReport, ViewerReport, RtspReport, WhepReport);

/// A histogram for percentiles of microseconds (latency, frame age), from
/// 1 µs to 60 s; `what` names it in the error.
pub(super) fn microseconds_histogram(what: &str) -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, MAX_RECORDED_US, HISTOGRAM_SIGNIFICANT_DIGITS)
        .map_err(|e| format!("cannot create the {what} histogram: {e}"))
}

/// `count / seconds`, 0 for an empty interval.
pub(super) fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// One of the two forms a report is written in. A report's writer calls
/// both kinds of method; the text form keeps the lines and ignores the
/// fields, the JSON form keeps the fields and ignores the lines.
trait Form {
    /// The first line of the text form: what was loaded.
    fn heading(&mut self, text: fmt::Arguments<'_>) -> fmt::Result;

    /// A line of the text form: `label` in the label column, then `text`.
    fn line(&mut self, label: &str, text: fmt::Arguments<'_>) -> fmt::Result;

    /// A field of the JSON form; `value` is JSON already (a number, a
    /// boolean, `null`, a [`JsonString`]).
    fn field(&mut self, key: &str, value: &dyn fmt::Display) -> fmt::Result;
}

/// The text form: lines with a label column and no line break after the
/// last one (`println!` adds it).
struct TextForm<'f, 'a> {
    out: &'f mut fmt::Formatter<'a>,
    lines: usize,
}

impl<'f, 'a> TextForm<'f, 'a> {
    fn new(out: &'f mut fmt::Formatter<'a>) -> Self {
        TextForm { out, lines: 0 }
    }

    /// Ends the line before, if any.
    fn start_line(&mut self) -> fmt::Result {
        if self.lines > 0 {
            self.out.write_char('\n')?;
        }
        self.lines += 1;
        Ok(())
    }
}

impl Form for TextForm<'_, '_> {
    fn heading(&mut self, text: fmt::Arguments<'_>) -> fmt::Result {
        self.start_line()?;
        self.out.write_fmt(text)
    }

    fn line(&mut self, label: &str, text: fmt::Arguments<'_>) -> fmt::Result {
        self.start_line()?;
        write!(self.out, "{label:<LABEL_COLUMN_CHARS$} {text}")
    }

    fn field(&mut self, _key: &str, _value: &dyn fmt::Display) -> fmt::Result {
        Ok(())
    }
}

/// The JSON form: one object on one line.
struct JsonForm {
    json: String,
}

impl Form for JsonForm {
    fn heading(&mut self, _text: fmt::Arguments<'_>) -> fmt::Result {
        Ok(())
    }

    fn line(&mut self, _label: &str, _text: fmt::Arguments<'_>) -> fmt::Result {
        Ok(())
    }

    fn field(&mut self, key: &str, value: &dyn fmt::Display) -> fmt::Result {
        self.json.push(if self.json.is_empty() { '{' } else { ',' });
        write!(self.json, "\"{key}\":{value}")
    }
}

/// What `write` puts into the JSON form, as one object.
fn json_of(write: impl FnOnce(&mut dyn Form) -> fmt::Result) -> String {
    let mut form = JsonForm {
        json: String::new(),
    };
    // Writing into a `String` cannot fail.
    let _ = write(&mut form);
    form.json.push('}');
    form.json
}

/// A JSON string literal, escaped by the HTTP side's escaper.
struct JsonString<'a>(&'a str);

impl fmt::Display for JsonString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut literal = String::with_capacity(self.0.len() + 2);
        push_json_string(&mut literal, self.0);
        f.write_str(&literal)
    }
}

/// A number with this many decimals: the same digits in both forms.
#[derive(Clone, Copy)]
struct Decimals(f64, usize);

impl fmt::Display for Decimals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.*}", self.1, self.0)
    }
}

/// A JSON value, or `null` for `None`.
struct OrNull<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for OrNull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("null"),
        }
    }
}

/// The heading (what was loaded, as each mode says it) and the length of
/// the measurement window actually run.
fn write_window(out: &mut dyn Form, heading: fmt::Arguments<'_>, measured_s: f64) -> fmt::Result {
    out.heading(heading)?;
    out.field("measured_s", &Decimals(measured_s, 3))
}

/// The connections line (`label`: what a connection is to the mode):
/// `connected` of `asked` connected within `connect_s` seconds of the
/// start; `rest` ends the line.
fn write_connections(
    out: &mut dyn Form,
    label: &str,
    connected: u64,
    asked: usize,
    connect_s: f64,
    rest: fmt::Arguments<'_>,
) -> fmt::Result {
    let connect_s = Decimals(connect_s, 3);
    let line = format_args!("{connected} of {asked} connected in {connect_s} s{rest}");
    out.line(label, line)?;
    out.field("connected", &connected)?;
    out.field("connect_s", &connect_s)
}

/// One kind of error: its name in the text form, its JSON key, its count.
#[derive(Clone, Copy)]
struct ErrorCount {
    name: &'static str,
    key: &'static str,
    count: u64,
}

impl ErrorCount {
    fn new(name: &'static str, key: &'static str, count: u64) -> Self {
        ErrorCount { name, key, count }
    }
}

/// The errors line: `errors`, the sum, then each kind in `kinds`, and
/// `rest` to end the line; then the first error's message (a line only if
/// there was one; `null` in JSON if not).
fn write_errors(
    out: &mut dyn Form,
    errors: u64,
    kinds: &[ErrorCount],
    rest: fmt::Arguments<'_>,
    first_error: Option<&str>,
) -> fmt::Result {
    let named: Vec<String> = kinds
        .iter()
        .map(|kind| format!("{} {}", kind.name, kind.count))
        .collect();
    out.line(
        "errors",
        format_args!("{errors} ({}){rest}", named.join(", ")),
    )?;
    out.field("errors", &errors)?;
    for kind in kinds {
        out.field(kind.key, &kind.count)?;
    }
    if let Some(error) = first_error {
        out.line("first error", format_args!("{error}"))?;
    }
    out.field("first_error", &OrNull(first_error.map(JsonString)))
}

/// The server's CPU time in the window (`--server-pid`), in the unit its
/// mode reports it in; `None` without the flag or a reading.
#[derive(Clone, Copy)]
enum ServerCpu {
    /// Microseconds per request answered in the window (line mode).
    UsPerRequest(Option<f64>),
    /// Percent of one core (viewer mode).
    Percent(Option<f64>),
}

/// The CPU lines: the server's (only with a reading) and this tool's.
fn write_cpu(out: &mut dyn Form, tool_cpu_percent: f64, server_cpu: ServerCpu) -> fmt::Result {
    // Microseconds show 2 decimals in the text and 3 in JSON.
    let (key, server_cpu, text_places, json_places, unit) = match server_cpu {
        ServerCpu::UsPerRequest(us) => ("server_cpu_us_per_request", us, 2, 3, "us per request"),
        ServerCpu::Percent(percent) => ("server_cpu_percent", percent, 1, 1, "%"),
    };
    if let Some(value) = server_cpu {
        let value = Decimals(value, text_places);
        out.line("server cpu", format_args!("{value} {unit}"))?;
    }
    let tool_cpu_percent = Decimals(tool_cpu_percent, 1);
    out.line("tool cpu", format_args!("{tool_cpu_percent} %"))?;
    out.field("tool_cpu_percent", &tool_cpu_percent)?;
    out.field(
        key,
        &OrNull(server_cpu.map(|value| Decimals(value, json_places))),
    )
}

/// One percentile as the two forms name it: `p99.9` in the text, `p999`
/// in a JSON key.
struct Percentile {
    name: &'static str,
    key: &'static str,
    value_us: Option<u64>,
}

impl Percentile {
    fn new(name: &'static str, key: &'static str, value_us: Option<u64>) -> Self {
        Percentile {
            name,
            key,
            value_us,
        }
    }
}

/// The percentiles of one histogram, in microseconds.
struct Percentiles {
    /// JSON keys are `{key_prefix}_{key}_us`.
    key_prefix: &'static str,
    points: Vec<Percentile>,
}

impl Percentiles {
    /// `p50 310  p99 1100  max 12000`, for the text form's line.
    fn text(&self) -> String {
        let shown: Vec<String> = self
            .points
            .iter()
            .map(|point| format!("{} {}", point.name, OrNull(point.value_us)))
            .collect();
        shown.join("  ")
    }

    /// One JSON field each, `null` without a value.
    fn write_fields(&self, out: &mut dyn Form) -> fmt::Result {
        for point in &self.points {
            let key = format!("{}_{}_us", self.key_prefix, point.key);
            out.field(&key, &OrNull(point.value_us))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_reply_bytes() {
        let report = LoadReport {
            reply_sample: b"+PONG\r\n\"\\\xff".to_vec(),
            ..LoadReport::default()
        };
        assert!(
            report
                .to_json()
                .contains("\"reply_sample\":\"+PONG\\r\\n\\\"\\\\\u{fffd}\""),
            "{}",
            report.to_json()
        );
    }

    #[test]
    fn json_is_one_object_with_the_headline_numbers() {
        let json = LoadReport::default().to_json();
        assert!(json.starts_with('{') && json.ends_with('}'));
        assert!(json.contains("\"requests_per_s\":0.0"));
        assert!(json.contains("\"first_error\":null"));
        assert!(json.contains("\"server_cpu_us_per_request\":null"));
    }
    /// A request run with every field set, so each line of both forms shows.
    fn request_report() -> LoadReport {
        LoadReport {
            target: "127.0.0.1:7000,127.0.0.1:7001".to_string(),
            hold: false,
            conns: 50,
            pipeline: 4,
            measured_s: 10.0004,
            requests: 1_234_567,
            requests_per_s: 123_451.66,
            latency_us: Latency {
                p50_us: 310,
                p90_us: 520,
                p99_us: 1_100,
                p999_us: 4_300,
                max_us: 12_000,
                mean_us: 345.67,
            },
            requests_sent: 1_300_000,
            replies_received: 1_299_990,
            unanswered: 10,
            connected: 49,
            connect_s: 0.0123,
            connects_per_s: 3983.7,
            errors: 6,
            connect_failures: 1,
            closed_by_peer: 2,
            io_errors: 1,
            unexpected_replies: 1,
            auth_failures: 1,
            first_error: Some("Connection refused (os error 111)".to_string()),
            bytes_sent: 7_800_000,
            bytes_received: 6_500_000,
            tool_cpu_percent: 87.25,
            server_cpu_us_per_request: Some(4.5678),
            reply_sample: b"PONG\r\n".to_vec(),
        }
    }

    /// A hold run: no requests, no error message, no server CPU.
    fn hold_report() -> LoadReport {
        LoadReport {
            target: "127.0.0.1:7000".to_string(),
            hold: true,
            conns: 20_000,
            pipeline: 1,
            measured_s: 5.0,
            connected: 20_000,
            connect_s: 1.5,
            connects_per_s: 13_333.3,
            bytes_received: 140_000,
            tool_cpu_percent: 0.5,
            ..LoadReport::default()
        }
    }

    /// What three viewers saw, with frame ages, an error message and
    /// server CPU.
    fn viewing() -> Viewing {
        Viewing {
            url: "http://127.0.0.1:8080/stream.mjpg".to_string(),
            viewers: 3,
            measured_s: 2.0,
            frames: 90,
            frames_per_s: 45.0,
            fps_per_viewer_mean: 15.0,
            fps_per_viewer_min: 14.5,
            fps_per_viewer_max: 15.5,
            bytes_per_s: 2_500_000.0,
            frame_age_us: Some(FrameAge {
                p50_us: 900,
                p99_us: 2_500,
                max_us: 4_000,
                count: 88,
            }),
            untimed_frames: 2,
            future_timestamps: 1,
            frames_run: 120,
            bytes_received: 6_000_000,
            connected: 3,
            connect_s: 0.002,
            stalled_viewers: 1,
            stalled_at_end: 1,
            stalls: 2,
            dropped_viewers: 1,
            connect_failures: 0,
            io_errors: 0,
            first_error: Some("HTTP 401 Unauthorized".to_string()),
            tool_cpu_percent: 12.5,
            server_cpu_percent: Some(33.3),
            viewer_frames: vec![29, 30, 31],
        }
    }

    /// An MJPEG viewer run with every count set.
    fn viewer_report() -> ViewerReport {
        ViewerReport {
            viewing: viewing(),
            frames_skipped: 4,
            malformed_parts: 2,
            skipped_bytes: 333,
            frame_order_errors: 1,
            http_errors: 0,
            errors: 4,
        }
    }

    /// An RTSP viewer run with every count set.
    fn rtsp_report() -> RtspReport {
        let spread = |p50_us, p99_us, max_us, count| {
            Some(FrameAge {
                p50_us,
                p99_us,
                max_us,
                count,
            })
        };
        RtspReport {
            viewing: Viewing {
                url: "rtsp://127.0.0.1:8554/door".to_string(),
                first_error: Some("RTSP 401 Unauthorized".to_string()),
                ..viewing()
            },
            transport: RtspTransport::Udp,
            frame_age_idr_us: spread(30_000, 31_000, 31_000, 3),
            frame_age_non_idr_us: spread(800, 2_400, 4_000, 85),
            first_idr_us: spread(500_000, 900_000, 900_000, 3),
            rtp_packets: 1_000,
            rtp_packets_lost: 5,
            sequence_gaps: 2,
            aus_discarded: 3,
            malformed_rtp: 0,
            keyframes_after_gaps: KeyframesAfterGaps {
                followed: 1,
                awaiting_at_end: 1,
                longest_wait_us: 412_500,
            },
            sender_reports: 4,
            receiver_reports: 6,
            keepalives: 0,
            rtsp_errors: 1,
            auth_failures: 2,
            errors: 4,
        }
    }

    #[test]
    fn text_forms_are_as_people_read_them() {
        assert_eq!(
            request_report().to_string(),
            "load 127.0.0.1:7000,127.0.0.1:7001: 50 connections x pipeline 4, measured 10.00 s\n\
             requests     1234567 = 123451.7 req/s\n\
             latency us   p50 310  p90 520  p99 1100  p99.9 4300  max 12000  mean 345.7\n\
             connections  49 of 50 connected in 0.012 s (3984/s)\n\
             errors       6 (connect 1, closed by server 2, io 1, unexpected replies 1, auth 1)\n\
             first error  Connection refused (os error 111)\n\
             whole run    1300000 sent, 1299990 answered, 10 unanswered\n\
             first reply  \"PONG\\r\\n\"\n\
             server cpu   4.57 us per request\n\
             tool cpu     87.2 %"
        );
        assert_eq!(
            hold_report().to_string(),
            "hold 127.0.0.1:7000: 20000 idle connections for 5.0 s\n\
             connections  20000 of 20000 connected in 1.500 s (13333/s)\n\
             errors       0 (connect 0, closed by server 0, io 0, unexpected replies 0, auth 0)\n\
             tool cpu     0.5 %"
        );
        assert_eq!(
            viewer_report().to_string(),
            "mjpeg http://127.0.0.1:8080/stream.mjpg: 3 viewers, measured 2.00 s\n\
             frames       90 = 45.0/s; per viewer mean 15.00/s, min 14.50, max 15.50\n\
             bytes        2.5 MB/s (20 Mbit/s)\n\
             frame age us p50 900  p99 2500  max 4000  (88 parts; 2 without X-Timestamp)\n\
             viewers      3 of 3 connected in 0.002 s; stalled 1 (1 at the end, 2 stalls); \
             dropped by the server 1\n\
             errors       4 (connect 0, http 0, dropped 1, io 0, malformed parts 2, frame order 1); \
             skipped bytes 333\n\
             first error  HTTP 401 Unauthorized\n\
             whole run    120 parts, 6000000 bytes, 4 frames skipped by the server\n\
             server cpu   33.3 %\n\
             tool cpu     12.5 %"
        );
        assert_eq!(
            rtsp_report().to_string(),
            "rtsp rtsp://127.0.0.1:8554/door over udp: 3 viewers, measured 2.00 s\n\
             frames       90 = 45.0/s; per viewer mean 15.00/s, min 14.50, max 15.50\n\
             bytes        2.5 MB/s (20 Mbit/s)\n\
             frame age us p50 900  p99 2500  max 4000  (88 AUs; 2 before a sender report)\n\
             \x20 IDR us     p50 30000  p99 31000  max 31000  (3 AUs)\n\
             \x20 non-IDR us p50 800  p99 2400  max 4000  (85 AUs)\n\
             first IDR us p50 500000  p99 900000  max 900000  (3 of 3 viewers)\n\
             rtp          1000 packets, 5 lost in 2 gaps; 3 AUs discarded, 0 malformed\n\
             keyframes    1 gaps followed by a keyframe, 1 still waiting at the end; longest wait 412.5 ms\n\
             viewers      3 of 3 connected in 0.002 s; stalled 1 (1 at the end, 2 stalls); \
             dropped by the server 1\n\
             errors       4 (connect 0, rtsp 1, auth 2, dropped 1, io 0)\n\
             first error  RTSP 401 Unauthorized\n\
             whole run    120 AUs, 6000000 bytes; 0 keepalives, 6 receiver reports sent, \
             4 sender reports received\n\
             server cpu   33.3 %\n\
             tool cpu     12.5 %"
        );
        assert_eq!(
            RtspReport::default().to_string(),
            "rtsp  over tcp: 0 viewers, measured 0.00 s\n\
             frames       0 = 0.0/s; per viewer mean 0.00/s, min 0.00, max 0.00\n\
             bytes        0.0 MB/s (0 Mbit/s)\n\
             frame age    n/a (no AUs dated; 0 before a sender report)\n\
             \x20 IDR        n/a (0 AUs)\n\
             \x20 non-IDR    n/a (0 AUs)\n\
             first IDR    n/a (none of 0 viewers got one)\n\
             rtp          0 packets, 0 lost in 0 gaps; 0 AUs discarded, 0 malformed\n\
             keyframes    0 gaps followed by a keyframe, 0 still waiting at the end; longest wait 0.0 ms\n\
             viewers      0 of 0 connected in 0.000 s; stalled 0 (0 at the end, 0 stalls); \
             dropped by the server 0\n\
             errors       0 (connect 0, rtsp 0, auth 0, dropped 0, io 0)\n\
             whole run    0 AUs, 0 bytes; 0 keepalives, 0 receiver reports sent, \
             0 sender reports received\n\
             tool cpu     0.0 %"
        );
        assert_eq!(
            ViewerReport::default().to_string(),
            "mjpeg : 0 viewers, measured 0.00 s\n\
             frames       0 = 0.0/s; per viewer mean 0.00/s, min 0.00, max 0.00\n\
             bytes        0.0 MB/s (0 Mbit/s)\n\
             frame age    n/a (no parts dated; 0 without X-Timestamp)\n\
             viewers      0 of 0 connected in 0.000 s; stalled 0 (0 at the end, 0 stalls); \
             dropped by the server 0\n\
             errors       0 (connect 0, http 0, dropped 0, io 0, malformed parts 0, frame order 0); \
             skipped bytes 0\n\
             whole run    0 parts, 0 bytes, 0 frames skipped by the server\n\
             tool cpu     0.0 %"
        );
    }

    /// The `"key":value` fields of a flat JSON object, sorted: a JSON object
    /// has no order, so two that hold the same fields are the same report.
    fn sorted_fields(json: &str) -> Vec<&str> {
        let body = json
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
            .expect("one object");
        let (mut fields, mut start, mut depth, mut in_string, mut escaped) =
            (Vec::new(), 0, 0, false, false);
        for (at, byte) in body.bytes().enumerate() {
            match byte {
                _ if escaped => escaped = false,
                b'\\' if in_string => escaped = true,
                b'"' => in_string = !in_string,
                b'[' if !in_string => depth += 1,
                b']' if !in_string => depth -= 1,
                b',' if !in_string && depth == 0 => {
                    fields.push(&body[start..at]);
                    start = at + 1;
                }
                _ => {}
            }
        }
        fields.push(&body[start..]);
        fields.sort_unstable();
        fields
    }

    #[test]
    fn json_forms_hold_every_key_with_its_value() {
        let cases = [
            (
                request_report().to_json(),
                r#"{"target":"127.0.0.1:7000,127.0.0.1:7001","hold":false,"conns":50,"pipeline":4,"measured_s":10.000,"requests":1234567,"requests_per_s":123451.7,"latency_p50_us":310,"latency_p90_us":520,"latency_p99_us":1100,"latency_p999_us":4300,"latency_max_us":12000,"latency_mean_us":345.7,"requests_sent":1300000,"replies_received":1299990,"unanswered":10,"connected":49,"connect_s":0.012,"connects_per_s":3983.7,"errors":6,"connect_failures":1,"closed_by_peer":2,"io_errors":1,"unexpected_replies":1,"auth_failures":1,"first_error":"Connection refused (os error 111)","bytes_sent":7800000,"bytes_received":6500000,"tool_cpu_percent":87.2,"server_cpu_us_per_request":4.568,"reply_sample":"PONG\r\n"}"#,
            ),
            (
                hold_report().to_json(),
                r#"{"target":"127.0.0.1:7000","hold":true,"conns":20000,"pipeline":1,"measured_s":5.000,"requests":0,"requests_per_s":0.0,"latency_p50_us":0,"latency_p90_us":0,"latency_p99_us":0,"latency_p999_us":0,"latency_max_us":0,"latency_mean_us":0.0,"requests_sent":0,"replies_received":0,"unanswered":0,"connected":20000,"connect_s":1.500,"connects_per_s":13333.3,"errors":0,"connect_failures":0,"closed_by_peer":0,"io_errors":0,"unexpected_replies":0,"auth_failures":0,"first_error":null,"bytes_sent":0,"bytes_received":140000,"tool_cpu_percent":0.5,"server_cpu_us_per_request":null,"reply_sample":""}"#,
            ),
            (
                viewer_report().to_json(),
                r#"{"mode":"mjpeg","url":"http://127.0.0.1:8080/stream.mjpg","viewers":3,"measured_s":2.000,"frames":90,"frames_per_s":45.0,"fps_per_viewer_mean":15.00,"fps_per_viewer_min":14.50,"fps_per_viewer_max":15.50,"bytes_per_s":2500000,"frame_age_p50_us":900,"frame_age_p99_us":2500,"frame_age_max_us":4000,"frame_ages":88,"untimed_frames":2,"future_timestamps":1,"frames_skipped":4,"frames_run":120,"bytes_received":6000000,"connected":3,"connect_s":0.002,"stalled_viewers":1,"stalled_at_end":1,"stalls":2,"dropped_viewers":1,"malformed_parts":2,"skipped_bytes":333,"frame_order_errors":1,"connect_failures":0,"http_errors":0,"io_errors":0,"errors":4,"first_error":"HTTP 401 Unauthorized","tool_cpu_percent":12.5,"server_cpu_percent":33.3,"viewer_frames":[29,30,31]}"#,
            ),
            (
                rtsp_report().to_json(),
                r#"{"mode":"rtsp","url":"rtsp://127.0.0.1:8554/door","viewers":3,"measured_s":2.000,"transport":"udp","frames":90,"frames_per_s":45.0,"fps_per_viewer_mean":15.00,"fps_per_viewer_min":14.50,"fps_per_viewer_max":15.50,"bytes_per_s":2500000,"frames_run":120,"bytes_received":6000000,"frame_age_p50_us":900,"frame_age_p99_us":2500,"frame_age_max_us":4000,"frame_ages":88,"untimed_frames":2,"future_timestamps":1,"frame_age_idr_p50_us":30000,"frame_age_idr_p99_us":31000,"frame_age_idr_max_us":31000,"frame_age_non_idr_p50_us":800,"frame_age_non_idr_p99_us":2400,"frame_age_non_idr_max_us":4000,"first_idr_p50_us":500000,"first_idr_p99_us":900000,"first_idr_max_us":900000,"first_idrs":3,"rtp_packets":1000,"rtp_packets_lost":5,"sequence_gaps":2,"aus_discarded":3,"malformed_rtp":0,"gaps_followed_by_keyframe":1,"gaps_awaiting_keyframe":1,"keyframe_after_gap_max_us":412500,"connected":3,"connect_s":0.002,"stalled_viewers":1,"stalled_at_end":1,"stalls":2,"errors":4,"connect_failures":0,"rtsp_errors":1,"auth_failures":2,"dropped_viewers":1,"io_errors":0,"first_error":"RTSP 401 Unauthorized","keepalives":0,"receiver_reports":6,"sender_reports":4,"tool_cpu_percent":12.5,"server_cpu_percent":33.3,"viewer_frames":[29,30,31]}"#,
            ),
            (
                ViewerReport::default().to_json(),
                r#"{"mode":"mjpeg","url":"","viewers":0,"measured_s":0.000,"frames":0,"frames_per_s":0.0,"fps_per_viewer_mean":0.00,"fps_per_viewer_min":0.00,"fps_per_viewer_max":0.00,"bytes_per_s":0,"frame_age_p50_us":null,"frame_age_p99_us":null,"frame_age_max_us":null,"frame_ages":0,"untimed_frames":0,"future_timestamps":0,"frames_skipped":0,"frames_run":0,"bytes_received":0,"connected":0,"connect_s":0.000,"stalled_viewers":0,"stalled_at_end":0,"stalls":0,"dropped_viewers":0,"malformed_parts":0,"skipped_bytes":0,"frame_order_errors":0,"connect_failures":0,"http_errors":0,"io_errors":0,"errors":0,"first_error":null,"tool_cpu_percent":0.0,"server_cpu_percent":null,"viewer_frames":[]}"#,
            ),
        ];
        // Where the two viewer modes measure the same thing, the key is the
        // same; the rest are RTSP's own.
        let rtsp = rtsp_report().to_json();
        let mjpeg = viewer_report().to_json();
        let shared = |json: &str| -> Vec<String> {
            sorted_fields(json)
                .iter()
                .map(|field| field.split(':').next().unwrap_or("").to_string())
                .collect()
        };
        let (rtsp_keys, mjpeg_keys) = (shared(&rtsp), shared(&mjpeg));
        for key in [
            "\"frames\"",
            "\"fps_per_viewer_min\"",
            "\"frame_age_p99_us\"",
            "\"frame_ages\"",
            "\"stalled_viewers\"",
            "\"dropped_viewers\"",
            "\"bytes_per_s\"",
            "\"viewer_frames\"",
            "\"server_cpu_percent\"",
        ] {
            assert!(rtsp_keys.iter().any(|k| k == key), "{key} in {rtsp}");
            assert!(mjpeg_keys.iter().any(|k| k == key), "{key} in {mjpeg}");
        }
        // The line and hold reports also keep their key order to the byte.
        assert_eq!(cases[0].0, cases[0].1);
        assert_eq!(cases[1].0, cases[1].1);
        for (json, expected) in cases {
            assert_eq!(sorted_fields(&json), sorted_fields(expected), "{json}");
        }
    }
}
