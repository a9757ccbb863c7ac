//! The result of a load run and its two renderings: a short text report for
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
    /// Sum of the four error counts below.
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
            "errors       {} (connect {}, closed by server {}, io {}, unexpected replies {})",
            self.errors,
            self.connect_failures,
            self.closed_by_peer,
            self.io_errors,
            self.unexpected_replies
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
}
