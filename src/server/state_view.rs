//! One snapshot of the server's numbers, and the control port's `stats`
//! line formatted from it.
//!
//! [`numbers`] copies everything `stats`, `/state` and `/metrics` report out
//! of the [`Core`] at one moment; the three formats are then pure functions
//! of that copy ([`stats_line`] here, `state_json` and `metrics_text` in
//! [`crate::http::response`]), so a number can never mean one thing in one
//! place and another elsewhere. Nothing here does I/O.

use std::time::{Duration, Instant};

use super::connection::{OUTPUT_HARD_CAP_BYTES, OUTPUT_SOFT_CAP_BYTES};
use super::core::Core;
use crate::http::response::{HistogramView, StateView, LATENCY_BUCKETS_US};

/// Everything the three reports need, copied at one moment.
pub struct Numbers {
    /// What `/state` and `/metrics` show (the `stats` line shows it too).
    pub state: StateView,
    /// Connections of every kind.
    pub clients: u64,
    /// Grab time percentiles and maximum, µs.
    pub grab_us_p50: u64,
    /// See `grab_us_p50`.
    pub grab_us_p99: u64,
    /// See `grab_us_p50`.
    pub grab_us_max: u64,
    /// Encode time 99th percentile, µs.
    pub encode_us_p99: u64,
}

/// How much to copy: the `stats` line shows no histogram buckets, and a
/// pipelining client may ask for it thousands of times a second.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Everything but the histograms' buckets (the `stats` line).
    Line,
    /// Everything (`/state`, `/metrics`).
    Full,
}

/// Copies the numbers out of `core`.
pub fn numbers(core: &Core, now: Instant, detail: Detail) -> Numbers {
    let camera = core.camera.status(now);
    let counters = &core.counters;
    let config = &core.config;
    let seconds = |d: Option<Duration>| d.map_or(0, |d| d.as_secs());
    // Limits and the rarer counters: keys in `/state` and the `stats`
    // line, `camloop_<key>` gauges in `/metrics` (0 means "off").
    let more = vec![
        ("clients_max", core.max_clients as u64),
        ("clients_peak", counters.clients_peak),
        ("frames_passthrough", core.camera.frames_passthrough),
        ("clients_dropped", counters.clients_dropped),
        ("connections_refused", counters.connections_refused),
        ("auth_failures", counters.auth_failures),
        ("max_line_bytes", crate::protocol::MAX_LINE_BYTES as u64),
        (
            "max_http_head_bytes",
            crate::http::request::MAX_HEAD_BYTES as u64,
        ),
        ("output_soft_cap_bytes", OUTPUT_SOFT_CAP_BYTES as u64),
        ("output_hard_cap_bytes", OUTPUT_HARD_CAP_BYTES as u64),
        ("idle_timeout_s", seconds(config.control_idle_timeout)),
        (
            "output_stall_timeout_s",
            config.output_stall_timeout.as_secs(),
        ),
        (
            "stream_stall_timeout_s",
            config.stream_stall_timeout.as_secs(),
        ),
        ("http_head_timeout_s", config.http_head_timeout.as_secs()),
        ("http_idle_timeout_s", config.http_idle_timeout.as_secs()),
        ("camera_restarts", core.camera.camera_restarts),
        ("camera_open_us_max", core.camera.open_us_max),
        (
            "camera_timeout_ms",
            core.camera.timeout().as_millis() as u64,
        ),
        // What the loop cost everybody per iteration, camera calls included.
        ("loop_stall_us_p99", core.loop_stall.quantile_micros(0.99)),
        ("loop_stall_us_max", core.loop_stall.max_micros()),
        (
            "frame_send_age_us_p99",
            core.frame_send_age.quantile_micros(0.99),
        ),
    ];
    let grab = &core.camera.grab_time;
    let encode = &core.camera.encode_time;
    let view = |timing| match detail {
        Detail::Full => HistogramView::from_timing(timing, LATENCY_BUCKETS_US),
        Detail::Line => HistogramView::default(),
    };
    let state = StateView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_s: now.duration_since(core.started_at).as_secs(),
        camera: camera.name,
        camera_ok: camera.ok,
        camera_error: camera.error,
        width: camera.width,
        height: camera.height,
        fps_x100: camera.fps_x100,
        control_clients: core.control_clients as u64,
        http_clients: core.http_clients as u64,
        stream_viewers: core.viewers.len() as u64,
        frames_grabbed: core.camera.frames_grabbed,
        frames_encoded: core.camera.frames_encoded,
        frames_sent: counters.frames_sent,
        frames_dropped: counters.frames_dropped,
        viewers_dropped: counters.viewers_dropped,
        snapshots: counters.snapshots,
        snapshot_errors: counters.snapshot_errors,
        last_snapshot: core.snapshots.last_saved().map(|s| s.file_name.clone()),
        requests: counters.requests,
        errors: counters.errors,
        bytes_in: counters.bytes_in,
        bytes_out: counters.bytes_out,
        grab_us: view(grab),
        more,
        encode_us: view(encode),
        frame_send_age_us: view(&core.frame_send_age),
        loop_stall_us: view(&core.loop_stall),
    };
    Numbers {
        state,
        clients: core.clients as u64,
        grab_us_p50: grab.quantile_micros(0.5),
        grab_us_p99: grab.quantile_micros(0.99),
        grab_us_max: grab.max_micros(),
        encode_us_p99: encode.quantile_micros(0.99),
    }
}

/// The one-line `stats` reply. Keys are stable; new ones are only added
/// (at the end, so a reader splitting on spaces keeps its positions).
pub fn stats_line(numbers: &Numbers) -> String {
    let s = &numbers.state;
    // A source name may contain spaces (a GStreamer pipeline); keep the
    // reply one whitespace-separated key=value list.
    let camera_name: String = s
        .camera
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    let clients_max = s
        .more
        .iter()
        .find(|(key, _)| *key == "clients_max")
        .map_or(0, |(_, value)| *value);
    let rest: String = [
        ("frames_sent", s.frames_sent),
        ("frames_dropped", s.frames_dropped),
        ("viewers_dropped", s.viewers_dropped),
    ]
    .into_iter()
    .chain(
        s.more
            .iter()
            .copied()
            .filter(|(key, _)| *key != "clients_max"),
    )
    .map(|(key, value)| format!(" {key}={value}"))
    .collect();
    format!(
        "OK clients={} clients_max={clients_max} uptime_s={} camera={camera_name} camera_ok={} \
         width={} height={} fps_x100={} frames_grabbed={} frames_encoded={} snapshots={} \
         snapshot_errors={} bytes_in={} bytes_out={} requests={} errors={} grab_us_p50={} \
         grab_us_p99={} grab_us_max={} encode_us_p99={}{rest}",
        numbers.clients,
        s.uptime_s,
        u8::from(s.camera_ok),
        s.width,
        s.height,
        s.fps_x100,
        s.frames_grabbed,
        s.frames_encoded,
        s.snapshots,
        s.snapshot_errors,
        s.bytes_in,
        s.bytes_out,
        s.requests,
        s.errors,
        numbers.grab_us_p50,
        numbers.grab_us_p99,
        numbers.grab_us_max,
        numbers.encode_us_p99,
    )
}
