//! The `/metrics` text: camloop's numbers in the Prometheus exposition
//! format, named by Prometheus' conventions.
//!
//! This module owns how every number camloop reports is *exposed* to
//! Prometheus: each family's name, type and `# HELP`. The conventions it
//! follows (prometheus.io, "Metric and label naming" and "Instrumentation"),
//! which `promtool check metrics` enforces in the test suite:
//!
//! - base units in names: durations are `_seconds`, sizes `_bytes`, whatever
//!   unit the number is kept in (`stats` says `idle_timeout_s`, `/metrics`
//!   `camloop_idle_timeout_seconds`);
//! - a count that only grows is a `counter` whose name ends in `_total`, so
//!   `rate()` over it is right;
//! - rates are `rate()` over a counter, not gauges;
//! - no quantile gauges beside histograms: a p99 is
//!   `histogram_quantile(0.99, rate(…_bucket[5m]))` in PromQL, over whatever
//!   window the reader picks. Only a maximum, which buckets cannot give,
//!   stays a gauge (`…_max_seconds`), and its `# HELP` says so;
//! - configuration values are gauges in base units.
//!
//! The control port's `stats` line and `/state` keep their own names (they
//! are camloop's protocol, and none is ever renamed). The rarer numbers that
//! appear in all three are [`Reading`]s: the key `stats` and `/state` use,
//! the value, and the [`Exposure`] here, written side by side where the
//! number is read (`server/state_view.rs`) so the two names cannot drift
//! apart. Like the rest of [`crate::http`], nothing here does I/O.

use std::fmt::{self, Write as _};

use super::report::{hundredths, CameraView, HistogramView, StateView};
pub use super::report::{Exposure, Reading, Unit};

/// A reading's family: its name, type, `# HELP` and value as `/metrics` prints it,
/// or `None` where another family stands in for it.
fn family_of(reading: &Reading) -> Option<(&'static str, &'static str, &'static str, String)> {
    let in_base_unit = |unit| match unit {
        Unit::Base => reading.value.to_string(),
        Unit::Millis => micros_as_seconds(reading.value.saturating_mul(1000)),
        Unit::Micros => micros_as_seconds(reading.value),
    };
    match reading.exposure {
        Exposure::Gauge { name, help, unit } => Some((name, "gauge", help, in_base_unit(unit))),
        Exposure::Counter { name, help, unit } => Some((name, "counter", help, in_base_unit(unit))),
        Exposure::Elsewhere => None,
    }
}

/// The `/metrics` body in the Prometheus text format: every family with its
/// `# HELP` and `# TYPE`, counters ending in `_total`, durations in seconds.
pub fn metrics_text(state: &StateView) -> String {
    let mut text = String::with_capacity(8192);
    // Writing to a String cannot fail.
    let _ = write_metrics(&mut text, state);
    text
}

fn write_metrics(out: &mut String, s: &StateView) -> fmt::Result {
    let default = s.default_camera();
    family(
        out,
        "camloop_info",
        "gauge",
        "Always 1; its labels carry the version and the default camera's source.",
    )?;
    writeln!(
        out,
        "camloop_info{{version=\"{}\",camera=\"{}\"}} 1",
        label_value(&s.version),
        label_value(&default.source)
    )?;
    family(
        out,
        "camloop_camera_info",
        "gauge",
        "Always 1, one series per camera; its labels carry the camera's name, source, codec \
         and which way its converter converts (none: it never needed one).",
    )?;
    for camera in &s.cameras {
        writeln!(
            out,
            "camloop_camera_info{{camera=\"{}\",source=\"{}\",codec=\"{}\",converter=\"{}\"}} 1",
            label_value(&camera.name),
            label_value(&camera.source),
            camera.codec,
            camera.converter_direction
        )?;
    }
    gauge(
        out,
        "camloop_uptime_seconds",
        "Seconds since the server started.",
        s.uptime_s,
    )?;
    for reading in &s.more {
        if let Some((name, kind, help, value)) = family_of(reading) {
            family(out, name, kind, help)?;
            writeln!(out, "{name} {value}")?;
        }
    }

    family(
        out,
        "camloop_clients",
        "gauge",
        "Open connections by kind: control port, HTTP (stream viewers included), RTSP, stream viewers (RTSP viewers included).",
    )?;
    for (kind, clients) in [
        ("control", s.control_clients),
        ("http", s.http_clients),
        ("rtsp", s.rtsp_clients),
        ("stream", s.stream_viewers()),
    ] {
        writeln!(out, "camloop_clients{{kind=\"{kind}\"}} {clients}")?;
    }
    for (name, help, value) in [
        (
            "camloop_requests_total",
            "Requests served on both ports.",
            s.requests,
        ),
        (
            "camloop_errors_total",
            "Requests answered with an error on both ports.",
            s.errors,
        ),
        (
            "camloop_received_bytes_total",
            "Bytes read from clients.",
            s.bytes_in,
        ),
        (
            "camloop_sent_bytes_total",
            "Bytes written to clients.",
            s.bytes_out,
        ),
    ] {
        family(out, name, "counter", help)?;
        writeln!(out, "{name} {value}")?;
    }

    write_camera_metrics(out, &s.cameras)?;

    histogram(
        out,
        "camloop_frame_send_age_seconds",
        "Per viewer and frame (H.264: access unit other than an IDR): from the frame being ready to send to its last byte handed to the kernel.",
        &[("", &s.frame_send_age_us)],
    )?;
    histogram(
        out,
        "camloop_idr_send_age_seconds",
        "The same for H.264 IDRs and the GOP cache a viewer starts with, apart: they are many times larger.",
        &[("", &s.idr_send_age_us)],
    )?;
    histogram(
        out,
        "camloop_loop_stall_seconds",
        "Each loop iteration, from poll() returning to the next poll(): what clients waited.",
        &[("", &s.loop_stall_us)],
    )
}

/// Picks one number out of a camera's view.
type CameraNumber = fn(&CameraView) -> u64;

/// The per-camera series: one family each, one sample per camera, every
/// sample labelled `camera="<name>"`.
fn write_camera_metrics(out: &mut String, cameras: &[CameraView]) -> fmt::Result {
    let labels: Vec<String> = cameras
        .iter()
        .map(|c| format!("camera=\"{}\"", label_value(&c.name)))
        .collect();
    let per_camera = |out: &mut String,
                      name: &str,
                      kind: &str,
                      help: &str,
                      value: &dyn Fn(&CameraView) -> String|
     -> fmt::Result {
        family(out, name, kind, help)?;
        for (camera, label) in cameras.iter().zip(&labels) {
            writeln!(out, "{name}{{{label}}} {}", value(camera))?;
        }
        Ok(())
    };
    per_camera(
        out,
        "camloop_camera_up",
        "gauge",
        "1 while the camera delivers frames, 0 while it is failing or absent.",
        &|c| u64::from(c.ok).to_string(),
    )?;
    per_camera(
        out,
        "camloop_frame_width_pixels",
        "gauge",
        "Width of the camera's frames.",
        &|c| c.width.to_string(),
    )?;
    per_camera(
        out,
        "camloop_frame_height_pixels",
        "gauge",
        "Height of the camera's frames.",
        &|c| c.height.to_string(),
    )?;
    per_camera(
        out,
        "camloop_fps",
        "gauge",
        "Grab rate measured over the last frames, in frames per second.",
        &|c| hundredths(c.fps_x100),
    )?;
    per_camera(
        out,
        "camloop_stream_viewers",
        "gauge",
        "Stream viewers of the camera.",
        &|c| c.stream_viewers.to_string(),
    )?;
    // Every camera has the same readings in the same order; the first one's
    // list names the families.
    let readings = cameras.first().map(|c| c.more.as_slice()).unwrap_or(&[]);
    for (index, reading) in readings.iter().enumerate() {
        if let Some((name, kind, help, _)) = family_of(reading) {
            per_camera(out, name, kind, help, &|c| {
                c.more
                    .get(index)
                    .and_then(family_of)
                    .map_or_else(|| "0".to_string(), |(.., value)| value)
            })?;
        }
    }
    let counters: [(&str, &str, CameraNumber); 7] = [
        (
            "camloop_frames_grabbed_total",
            "Frames grabbed from the camera.",
            |c| c.frames_grabbed,
        ),
        (
            "camloop_frames_encoded_total",
            "JPEG encodes (at most one per grabbed frame, whatever the viewers).",
            |c| c.frames_encoded,
        ),
        (
            "camloop_frames_sent_total",
            "Frames written to stream viewers (one per viewer per frame).",
            |c| c.frames_sent,
        ),
        (
            "camloop_frames_dropped_total",
            "Frames skipped for stream viewers that could not keep up.",
            |c| c.frames_dropped,
        ),
        (
            "camloop_viewers_dropped_total",
            "Stream viewers disconnected for making no progress for the stall timeout.",
            |c| c.viewers_dropped,
        ),
        ("camloop_snapshots_total", "Snapshot files written.", |c| {
            c.snapshots
        }),
        (
            "camloop_snapshot_errors_total",
            "Snapshots that failed (camera or disk).",
            |c| c.snapshot_errors,
        ),
    ];
    for (name, help, value) in counters {
        per_camera(out, name, "counter", help, &|c| value(c).to_string())?;
    }
    let labelled = |pick: fn(&CameraView) -> &HistogramView| -> Vec<(&str, &HistogramView)> {
        cameras
            .iter()
            .zip(&labels)
            .map(|(c, label)| (label.as_str(), pick(c)))
            .collect()
    };
    histogram(
        out,
        "camloop_grab_seconds",
        "Time the camera's grab call blocked the loop.",
        &labelled(|c| &c.grab_us),
    )?;
    histogram(
        out,
        "camloop_encode_seconds",
        "Time one JPEG encode took.",
        &labelled(|c| &c.encode_us),
    )?;
    histogram(
        out,
        "camloop_au_complete_delay_seconds",
        "An H.264 camera's access units: from the read that brought the last byte to the \
         one that showed it complete (Annex-B has no lengths: the next access unit's start \
         ends it).",
        &labelled(|c| &c.au_complete_delay_us),
    )
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}")
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl fmt::Display) -> fmt::Result {
    family(out, name, "gauge", help)?;
    writeln!(out, "{name} {value}")
}

/// One histogram family: a series per `(labels, histogram)`, where
/// `labels` is `name="value"` text (empty for none).
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    series: &[(&str, &HistogramView)],
) -> fmt::Result {
    family(out, name, "histogram", help)?;
    for (labels, h) in series {
        let (open, comma, close) = if labels.is_empty() {
            ("", "", "")
        } else {
            ("{", ",", "}")
        };
        for &(le_us, count) in &h.buckets_le_us {
            writeln!(
                out,
                "{name}_bucket{{{labels}{comma}le=\"{}\"}} {count}",
                micros_as_seconds(le_us)
            )?;
        }
        writeln!(
            out,
            "{name}_bucket{{{labels}{comma}le=\"+Inf\"}} {}",
            h.count
        )?;
        writeln!(
            out,
            "{name}_sum{open}{labels}{close} {}",
            micros_as_seconds(h.sum_us)
        )?;
        writeln!(out, "{name}_count{open}{labels}{close} {}", h.count)?;
    }
    Ok(())
}

/// Microseconds as decimal seconds, exactly and without trailing zeros:
/// `2500` → `0.0025`, `1000000` → `1`.
fn micros_as_seconds(us: u64) -> String {
    let fraction = format!("{:06}", us % 1_000_000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{}", us / 1_000_000)
    } else {
        format!("{}.{fraction}", us / 1_000_000)
    }
}

/// Escapes a label value: backslash, double quote and line feed.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_print_as_exact_seconds() {
        assert_eq!(micros_as_seconds(0), "0");
        assert_eq!(micros_as_seconds(100), "0.0001");
        assert_eq!(micros_as_seconds(2_500), "0.0025");
        assert_eq!(micros_as_seconds(1_000_000), "1");
        assert_eq!(micros_as_seconds(12_345_678), "12.345678");
    }

    #[test]
    fn readings_show_in_base_units_and_by_kind() {
        let timeout = Reading::gauge_in(
            "camera_timeout_ms",
            5_000,
            Unit::Millis,
            "camloop_camera_timeout_seconds",
            "h",
        );
        assert_eq!(family_of(&timeout).map(|f| f.3), Some("5".to_string()));
        let longest = Reading::gauge_in(
            "x_us_max",
            1_500,
            Unit::Micros,
            "camloop_x_max_seconds",
            "h",
        );
        assert_eq!(family_of(&longest).map(|f| f.3), Some("0.0015".to_string()));
        let restarts = Reading::counter("camera_restarts", 3, "camloop_camera_restarts_total", "h");
        assert_eq!(family_of(&restarts).map(|f| f.1), Some("counter"));
        assert_eq!(
            family_of(&Reading::answered_elsewhere("loop_stall_us_p99", 9)),
            None
        );
    }
}
