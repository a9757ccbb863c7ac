//! The results of a load run (line and hold modes: [`LoadReport`]; MJPEG
//! viewers: [`ViewerReport`]) and their two renderings: a short text report for
//! people and one JSON object for scripts (`benches/compare.sh`).
//!
//! The JSON is written by hand because every value is a number, a boolean or
//! a short string; a serializer crate would be the larger part of this file.

use std::fmt::{self, Write as _};

use crate::http::response::push_json_string;

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
    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        let mut json = String::from("{");
        let mut field = |name: &str, value: String| {
            if json.len() > 1 {
                json.push(',');
            }
            let _ = write!(json, "\"{name}\":{value}");
        };
        field("target", json_string(&self.target));
        field("hold", self.hold.to_string());
        field("conns", self.conns.to_string());
        field("pipeline", self.pipeline.to_string());
        field("measured_s", format!("{:.3}", self.measured_s));
        field("requests", self.requests.to_string());
        field("requests_per_s", format!("{:.1}", self.requests_per_s));
        field("latency_p50_us", self.latency_us.p50_us.to_string());
        field("latency_p90_us", self.latency_us.p90_us.to_string());
        field("latency_p99_us", self.latency_us.p99_us.to_string());
        field("latency_p999_us", self.latency_us.p999_us.to_string());
        field("latency_max_us", self.latency_us.max_us.to_string());
        field("latency_mean_us", format!("{:.1}", self.latency_us.mean_us));
        field("requests_sent", self.requests_sent.to_string());
        field("replies_received", self.replies_received.to_string());
        field("unanswered", self.unanswered.to_string());
        field("connected", self.connected.to_string());
        field("connect_s", format!("{:.3}", self.connect_s));
        field("connects_per_s", format!("{:.1}", self.connects_per_s));
        field("errors", self.errors.to_string());
        field("connect_failures", self.connect_failures.to_string());
        field("closed_by_peer", self.closed_by_peer.to_string());
        field("io_errors", self.io_errors.to_string());
        field("unexpected_replies", self.unexpected_replies.to_string());
        field("auth_failures", self.auth_failures.to_string());
        field(
            "first_error",
            match &self.first_error {
                Some(error) => json_string(error),
                None => "null".to_string(),
            },
        );
        field("bytes_sent", self.bytes_sent.to_string());
        field("bytes_received", self.bytes_received.to_string());
        field("tool_cpu_percent", format!("{:.1}", self.tool_cpu_percent));
        field(
            "server_cpu_us_per_request",
            match self.server_cpu_us_per_request {
                Some(us) => format!("{us:.3}"),
                None => "null".to_string(),
            },
        );
        // JSON strings are text: a reply that is not UTF-8 shows U+FFFD
        // where its odd bytes were (the text report escapes them instead).
        field(
            "reply_sample",
            json_string(&String::from_utf8_lossy(&self.reply_sample)),
        );
        json.push('}');
        json
    }
}

/// Frame age at arrival (this machine's wall clock minus the part's
/// `X-Timestamp`) of the parts received inside the window, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameAge {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Oldest.
    pub max_us: u64,
    /// Parts the percentiles are over.
    pub count: u64,
}

/// Everything one `camloop load --mjpeg` run measured.
///
/// `frames`, the frame rates, `bytes_per_s`, `frame_age_us` and
/// `viewer_frames` cover the measurement window; the other counts cover the
/// whole run. Every figure is a count of what happened: a viewer that
/// stalls or is dropped is reported, never retried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewerReport {
    /// The stream's URL.
    pub url: String,
    /// Viewers asked for (`--viewers`).
    pub viewers: usize,
    /// Length of the measurement window actually run (shorter if every
    /// viewer was gone before its end).
    pub measured_s: f64,
    /// Parts received inside the window, all viewers: the sum of
    /// `viewer_frames`.
    pub frames: u64,
    /// `frames / measured_s`.
    pub frames_per_s: f64,
    /// Mean over the viewers (failed ones included, as 0) of their parts
    /// per second inside the window.
    pub fps_per_viewer_mean: f64,
    /// The slowest viewer's parts per second.
    pub fps_per_viewer_min: f64,
    /// The fastest viewer's parts per second.
    pub fps_per_viewer_max: f64,
    /// Bytes read inside the window (parts and their framing), per second.
    pub bytes_per_s: f64,
    /// Ages of the parts in the window that carried an `X-Timestamp`;
    /// `None` if none did.
    pub frame_age_us: Option<FrameAge>,
    /// Parts in the window without an `X-Timestamp` (camloop's NO SIGNAL
    /// frame has none).
    pub untimed_frames: u64,
    /// Parts whose `X-Timestamp` was ahead of this machine's clock (the
    /// server's clock differs; their age counts as 0).
    pub future_timestamps: u64,
    /// Frame numbers (`X-Frame`) the viewers never saw between two they
    /// did: frames the server skipped for a viewer that could not keep up
    /// (or that its camera never delivered), whole run.
    pub frames_skipped: u64,
    /// Parts received, whole run.
    pub frames_run: u64,
    /// Bytes read, whole run (response heads included).
    pub bytes_received: u64,
    /// Viewers whose connect completed.
    pub connected: u64,
    /// Time from the start until the last connect completed or failed.
    pub connect_s: f64,
    /// Viewers that went `--stall-after` seconds without a part at least once.
    pub stalled_viewers: u64,
    /// Viewers stalled when the run ended.
    pub stalled_at_end: u64,
    /// Stalls (a viewer that recovers and stalls again counts twice).
    pub stalls: u64,
    /// Viewers whose connection the server closed or reset while streaming.
    pub dropped_viewers: u64,
    /// Parts the splitter dropped: not a JPEG, cut short, a `Content-Length`
    /// that is wrong, a part head that does not parse, or over 4 MiB.
    pub malformed_parts: u64,
    /// Bytes the splitter skipped (garbage between parts, dropped parts).
    pub skipped_bytes: u64,
    /// Parts whose `X-Frame` was not above the viewer's previous one.
    pub frame_order_errors: u64,
    /// Connects refused, reset or still pending at the end.
    pub connect_failures: u64,
    /// Responses that were not `200` with a body (status, bad head, closed
    /// before the head).
    pub http_errors: u64,
    /// Reads or writes that failed before the stream started.
    pub io_errors: u64,
    /// `connect_failures + http_errors + dropped_viewers + io_errors +
    /// malformed_parts + frame_order_errors`; stalls are not errors.
    pub errors: u64,
    /// The first error seen, for the message a person reads.
    pub first_error: Option<String>,
    /// CPU time of this process during the window, in percent of one core:
    /// near 100 means the viewers, not the server, were the bottleneck.
    pub tool_cpu_percent: f64,
    /// With `--server-pid`: the server's CPU (user + system, all its
    /// threads) during the window, in percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// Parts each viewer received inside the window, in viewer order.
    pub viewer_frames: Vec<u64>,
}

impl ViewerReport {
    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        let mut json = String::from("{");
        let mut field = |name: &str, value: String| {
            if json.len() > 1 {
                json.push(',');
            }
            let _ = write!(json, "\"{name}\":{value}");
        };
        let optional = |value: Option<String>| value.unwrap_or_else(|| "null".to_string());
        let age = self.frame_age_us;
        field("mode", json_string("mjpeg"));
        field("url", json_string(&self.url));
        field("viewers", self.viewers.to_string());
        field("measured_s", format!("{:.3}", self.measured_s));
        field("frames", self.frames.to_string());
        field("frames_per_s", format!("{:.1}", self.frames_per_s));
        field(
            "fps_per_viewer_mean",
            format!("{:.2}", self.fps_per_viewer_mean),
        );
        field(
            "fps_per_viewer_min",
            format!("{:.2}", self.fps_per_viewer_min),
        );
        field(
            "fps_per_viewer_max",
            format!("{:.2}", self.fps_per_viewer_max),
        );
        field("bytes_per_s", format!("{:.0}", self.bytes_per_s));
        field(
            "frame_age_p50_us",
            optional(age.map(|a| a.p50_us.to_string())),
        );
        field(
            "frame_age_p99_us",
            optional(age.map(|a| a.p99_us.to_string())),
        );
        field(
            "frame_age_max_us",
            optional(age.map(|a| a.max_us.to_string())),
        );
        field("frame_ages", age.map_or(0, |a| a.count).to_string());
        field("untimed_frames", self.untimed_frames.to_string());
        field("future_timestamps", self.future_timestamps.to_string());
        field("frames_skipped", self.frames_skipped.to_string());
        field("frames_run", self.frames_run.to_string());
        field("bytes_received", self.bytes_received.to_string());
        field("connected", self.connected.to_string());
        field("connect_s", format!("{:.3}", self.connect_s));
        field("stalled_viewers", self.stalled_viewers.to_string());
        field("stalled_at_end", self.stalled_at_end.to_string());
        field("stalls", self.stalls.to_string());
        field("dropped_viewers", self.dropped_viewers.to_string());
        field("malformed_parts", self.malformed_parts.to_string());
        field("skipped_bytes", self.skipped_bytes.to_string());
        field("frame_order_errors", self.frame_order_errors.to_string());
        field("connect_failures", self.connect_failures.to_string());
        field("http_errors", self.http_errors.to_string());
        field("io_errors", self.io_errors.to_string());
        field("errors", self.errors.to_string());
        field(
            "first_error",
            optional(self.first_error.as_deref().map(json_string)),
        );
        field("tool_cpu_percent", format!("{:.1}", self.tool_cpu_percent));
        field(
            "server_cpu_percent",
            optional(self.server_cpu_percent.map(|p| format!("{p:.1}"))),
        );
        let counts: Vec<String> = self.viewer_frames.iter().map(u64::to_string).collect();
        field("viewer_frames", format!("[{}]", counts.join(",")));
        json.push('}');
        json
    }
}

/// The text report of a viewer run.
impl fmt::Display for ViewerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "mjpeg {}: {} viewers, measured {:.2} s",
            self.url, self.viewers, self.measured_s
        )?;
        writeln!(
            f,
            "frames       {} = {:.1}/s; per viewer mean {:.2}/s, min {:.2}, max {:.2}",
            self.frames,
            self.frames_per_s,
            self.fps_per_viewer_mean,
            self.fps_per_viewer_min,
            self.fps_per_viewer_max
        )?;
        writeln!(
            f,
            "bytes        {:.1} MB/s ({:.0} Mbit/s)",
            self.bytes_per_s / 1e6,
            self.bytes_per_s * 8.0 / 1e6
        )?;
        match self.frame_age_us {
            Some(age) => writeln!(
                f,
                "frame age us p50 {}  p99 {}  max {}  ({} parts; {} without X-Timestamp)",
                age.p50_us, age.p99_us, age.max_us, age.count, self.untimed_frames
            )?,
            None => writeln!(
                f,
                "frame age    n/a (no part with X-Timestamp; {} without)",
                self.untimed_frames
            )?,
        }
        writeln!(
            f,
            "viewers      {} of {} connected in {:.3} s; stalled {} ({} at the end, {} stalls); \
             dropped by the server {}",
            self.connected,
            self.viewers,
            self.connect_s,
            self.stalled_viewers,
            self.stalled_at_end,
            self.stalls,
            self.dropped_viewers
        )?;
        writeln!(
            f,
            "errors       {} (connect {}, http {}, dropped {}, io {}, malformed parts {}, \
             frame order {}); skipped bytes {}",
            self.errors,
            self.connect_failures,
            self.http_errors,
            self.dropped_viewers,
            self.io_errors,
            self.malformed_parts,
            self.frame_order_errors,
            self.skipped_bytes
        )?;
        if let Some(error) = &self.first_error {
            writeln!(f, "first error  {error}")?;
        }
        writeln!(
            f,
            "whole run    {} parts, {} bytes, {} frames skipped by the server",
            self.frames_run, self.bytes_received, self.frames_skipped
        )?;
        if let Some(percent) = self.server_cpu_percent {
            writeln!(f, "server cpu   {percent:.1} %")?;
        }
        write!(f, "tool cpu     {:.1} %", self.tool_cpu_percent)
    }
}

/// A JSON string literal, escaped by the HTTP side's escaper.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_json_string(&mut out, text);
    out
}

/// The text report.
impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hold {
            writeln!(
                f,
                "hold {}: {} idle connections for {:.1} s",
                self.target, self.conns, self.measured_s
            )?;
        } else {
            writeln!(
                f,
                "load {}: {} connections x pipeline {}, measured {:.2} s",
                self.target, self.conns, self.pipeline, self.measured_s
            )?;
            writeln!(
                f,
                "requests     {} = {:.1} req/s",
                self.requests, self.requests_per_s
            )?;
            let l = &self.latency_us;
            writeln!(
                f,
                "latency us   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.1}",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.mean_us
            )?;
        }
        writeln!(
            f,
            "connections  {} of {} connected in {:.3} s ({:.0}/s)",
            self.connected, self.conns, self.connect_s, self.connects_per_s
        )?;
        writeln!(
            f,
            "errors       {} (connect {}, closed by server {}, io {}, unexpected replies {}, auth {})",
            self.errors,
            self.connect_failures,
            self.closed_by_peer,
            self.io_errors,
            self.unexpected_replies,
            self.auth_failures
        )?;
        if let Some(error) = &self.first_error {
            writeln!(f, "first error  {error}")?;
        }
        if !self.hold {
            writeln!(
                f,
                "whole run    {} sent, {} answered, {} unanswered",
                self.requests_sent, self.replies_received, self.unanswered
            )?;
            writeln!(f, "first reply  \"{}\"", self.reply_sample.escape_ascii())?;
        }
        if let Some(us) = self.server_cpu_us_per_request {
            writeln!(f, "server cpu   {us:.2} us per request")?;
        }
        write!(f, "tool cpu     {:.1} %", self.tool_cpu_percent)
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

    /// A viewer run with frame ages, an error message and server CPU.
    fn viewer_report() -> ViewerReport {
        ViewerReport {
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
            frames_skipped: 4,
            frames_run: 120,
            bytes_received: 6_000_000,
            connected: 3,
            connect_s: 0.002,
            stalled_viewers: 1,
            stalled_at_end: 1,
            stalls: 2,
            dropped_viewers: 1,
            malformed_parts: 2,
            skipped_bytes: 333,
            frame_order_errors: 1,
            connect_failures: 0,
            http_errors: 0,
            io_errors: 0,
            errors: 4,
            first_error: Some("HTTP 401 Unauthorized".to_string()),
            tool_cpu_percent: 12.5,
            server_cpu_percent: Some(33.3),
            viewer_frames: vec![29, 30, 31],
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
            ViewerReport::default().to_string(),
            "mjpeg : 0 viewers, measured 0.00 s\n\
             frames       0 = 0.0/s; per viewer mean 0.00/s, min 0.00, max 0.00\n\
             bytes        0.0 MB/s (0 Mbit/s)\n\
             frame age    n/a (no part with X-Timestamp; 0 without)\n\
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
                ViewerReport::default().to_json(),
                r#"{"mode":"mjpeg","url":"","viewers":0,"measured_s":0.000,"frames":0,"frames_per_s":0.0,"fps_per_viewer_mean":0.00,"fps_per_viewer_min":0.00,"fps_per_viewer_max":0.00,"bytes_per_s":0,"frame_age_p50_us":null,"frame_age_p99_us":null,"frame_age_max_us":null,"frame_ages":0,"untimed_frames":0,"future_timestamps":0,"frames_skipped":0,"frames_run":0,"bytes_received":0,"connected":0,"connect_s":0.000,"stalled_viewers":0,"stalled_at_end":0,"stalls":0,"dropped_viewers":0,"malformed_parts":0,"skipped_bytes":0,"frame_order_errors":0,"connect_failures":0,"http_errors":0,"io_errors":0,"errors":0,"first_error":null,"tool_cpu_percent":0.0,"server_cpu_percent":null,"viewer_frames":[]}"#,
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(sorted_fields(&json), sorted_fields(expected), "{json}");
        }
    }
}
