//! The numbers `/state` and `/metrics` report, as plain values.
//!
//! [`StateView`] is what the server copies out of itself at the moment of
//! a request (`server/state_view.rs` builds it); `response::state_json`
//! and `metrics::metrics_text` are pure functions of it. The rarer numbers
//! are [`Reading`]s: the key `stats` and `/state` use, the value, and how
//! `/metrics` exposes it, side by side so the two names cannot drift apart.
//! Nothing here formats or does I/O.

/// Upper bounds for the grab and encode time histograms, in microseconds:
/// from 100 µs (a passthrough MJPEG grab) to 1 s (a camera that hangs).
pub const LATENCY_BUCKETS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// A histogram of durations as Prometheus wants it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramView {
    /// `(upper bound in µs, observations ≤ that bound)`, bounds ascending.
    /// The counts are cumulative, so they never decrease; the `+Inf` bucket
    /// is `count` and is not listed.
    pub buckets_le_us: Vec<(u64, u64)>,
    /// Sum of all observations, in µs.
    pub sum_us: u64,
    /// Number of observations.
    pub count: u64,
}

impl HistogramView {
    /// Reads the buckets out of a timing histogram, with its exact sum.
    pub fn from_timing(timing: &crate::stats::TimingHistogram, bounds_us: &[u64]) -> Self {
        HistogramView {
            buckets_le_us: timing.cumulative_counts(bounds_us),
            sum_us: timing.sum_micros(),
            count: timing.count(),
        }
    }
}

/// What `/state` and `/metrics` report about one camera.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraView {
    /// The camera's name (`cam0`).
    pub name: String,
    /// Its source (`synthetic`, `/dev/video0`, ...), credentials hidden.
    pub source: String,
    /// Whether it delivers frames.
    pub ok: bool,
    /// Why it is not ok, while it is not.
    pub error: Option<String>,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Measured grab rate in frames per second, times 100.
    pub fps_x100: u64,
    /// HTTP connections receiving its stream.
    pub stream_viewers: u64,
    /// Grabs since start.
    pub frames_grabbed: u64,
    /// JPEG encodes; at most one per grabbed frame, whatever the viewers.
    pub frames_encoded: u64,
    /// Frames written to its stream viewers (one per viewer per frame).
    pub frames_sent: u64,
    /// Frames a slow viewer skipped because its socket was not writable.
    pub frames_dropped: u64,
    /// Viewers dropped after --stream-stall-timeout without write progress.
    pub viewers_dropped: u64,
    /// Snapshots written.
    pub snapshots: u64,
    /// Snapshot writes that failed.
    pub snapshot_errors: u64,
    /// Base name of the last snapshot written.
    pub last_snapshot: Option<String>,
    /// More integer keys (the rarer counters and limits), in `/state` as
    /// they are, in `/metrics` as each [`Reading`] says (with
    /// `camera="…"`).
    pub more: Vec<Reading>,
    /// Time blocked in grab(), µs.
    pub grab_us: HistogramView,
    /// Time in retrieve() plus encode, µs.
    pub encode_us: HistogramView,
    /// What its frames are: `mjpeg`, `h264`, or `none` before a push
    /// camera has sent anything.
    pub codec: &'static str,
    /// Its converter: `off`, `starting` or `running`.
    pub converter: &'static str,
    /// Which way: `h264-to-jpeg`, `jpeg-to-h264`, or `none` before a
    /// consumer needed one.
    pub converter_direction: &'static str,
    /// An H.264 camera's access units: from the read that brought the last
    /// byte to the one that showed it complete, µs.
    pub au_complete_delay_us: HistogramView,
}

/// Everything `/state` and `/metrics` report, copied out of the server at the
/// moment of the request. Plain values only, so formatting it is pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateView {
    /// The crate version.
    pub version: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Every camera, the default one first (never empty in a server).
    pub cameras: Vec<CameraView>,
    /// Connections on the control port.
    pub control_clients: u64,
    /// HTTP connections, stream viewers included.
    pub http_clients: u64,
    /// RTSP connections, playing or not.
    pub rtsp_clients: u64,
    /// Requests served, both ports.
    pub requests: u64,
    /// Requests answered with an error, both ports.
    pub errors: u64,
    /// Bytes received, both ports.
    pub bytes_in: u64,
    /// Bytes sent, both ports.
    pub bytes_out: u64,
    /// More integer keys (limits and rarer counters), in `/state` as they
    /// are, in `/metrics` as each [`Reading`] says.
    pub more: Vec<Reading>,
    /// Per viewer and frame: ready to send → last byte to the kernel, µs.
    pub frame_send_age_us: HistogramView,
    /// The same for H.264 IDRs and the GOP cache a viewer starts with, µs.
    pub idr_send_age_us: HistogramView,
    /// Each loop iteration: `poll()` returning → the next `poll()`, µs.
    pub loop_stall_us: HistogramView,
}

impl StateView {
    /// The default camera's view (an empty one in a view built without
    /// cameras, as a unit test may).
    pub fn default_camera(&self) -> CameraView {
        self.cameras.first().cloned().unwrap_or_default()
    }

    /// Stream viewers of every camera.
    pub fn stream_viewers(&self) -> u64 {
        self.cameras.iter().map(|c| c.stream_viewers).sum()
    }
}

/// One of the rarer numbers of `stats` and `/state` (the key and value
/// there), and how `/metrics` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// The key in the `stats` line and `/state`, units in the name
    /// (`idle_timeout_s`): stable, never renamed.
    pub key: &'static str,
    /// The value, in the unit the key names.
    pub value: u64,
    /// How `/metrics` shows it.
    pub exposure: Exposure,
}

/// How a [`Reading`] appears in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// A gauge, its value converted from `unit` to the base unit.
    Gauge {
        /// The family name, base unit last (`camloop_idle_timeout_seconds`).
        name: &'static str,
        /// The `# HELP` text.
        help: &'static str,
        /// The unit the reading's value is in.
        unit: Unit,
    },
    /// A count that only grows: a `counter`, its name ending in `_total`,
    /// its value converted from `unit` to the base unit.
    Counter {
        /// The family name (`camloop_auth_failures_total`).
        name: &'static str,
        /// The `# HELP` text.
        help: &'static str,
        /// The unit the reading's value is in.
        unit: Unit,
    },
    /// Not a family of its own: another family answers the same question
    /// the Prometheus way (a histogram for a p99 kept for the `stats`
    /// line, a byte counter's `rate()` for a bitrate).
    Elsewhere,
}

/// The unit a reading's value is kept in; `/metrics` shows the base unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A plain number, or already a base unit (bytes, seconds, clients).
    Base,
    /// Milliseconds, shown as seconds.
    Millis,
    /// Microseconds, shown as seconds.
    Micros,
}

impl Reading {
    /// A gauge of a plain number or a number already in base units.
    pub fn gauge(key: &'static str, value: u64, name: &'static str, help: &'static str) -> Self {
        Self::gauge_in(key, value, Unit::Base, name, help)
    }

    /// A gauge kept in `unit`, shown in the base unit.
    pub fn gauge_in(
        key: &'static str,
        value: u64,
        unit: Unit,
        name: &'static str,
        help: &'static str,
    ) -> Self {
        Reading {
            key,
            value,
            exposure: Exposure::Gauge { name, help, unit },
        }
    }

    /// A count that only grows.
    pub fn counter(key: &'static str, value: u64, name: &'static str, help: &'static str) -> Self {
        Self::counter_in(key, value, Unit::Base, name, help)
    }

    /// A count that only grows, kept in `unit` (CPU time in µs), shown in
    /// the base unit.
    pub fn counter_in(
        key: &'static str,
        value: u64,
        unit: Unit,
        name: &'static str,
        help: &'static str,
    ) -> Self {
        Reading {
            key,
            value,
            exposure: Exposure::Counter { name, help, unit },
        }
    }

    /// A number `/metrics` answers with another family instead.
    pub fn answered_elsewhere(key: &'static str, value: u64) -> Self {
        Reading {
            key,
            value,
            exposure: Exposure::Elsewhere,
        }
    }
}

/// `2997` → `29.97`: exact, where going through `f64` could print `29.969999`.
pub(super) fn hundredths(value_x100: u64) -> String {
    format!("{}.{:02}", value_x100 / 100, value_x100 % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundredths_keep_two_digits() {
        assert_eq!(hundredths(2997), "29.97");
        assert_eq!(hundredths(500), "5.00");
        assert_eq!(hundredths(7), "0.07");
    }
}
