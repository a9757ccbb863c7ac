//! One snapshot of the server's numbers, and the control port's `stats`
//! line formatted from it.
//!
//! [`numbers`] copies everything `stats`, `/state` and `/metrics` report out
//! of the [`Core`] at one moment; the three formats are then pure functions
//! of that copy ([`stats_line`] here, `state_json` in
//! [`crate::http::response`] and `metrics_text` in [`crate::http::metrics`]), so a number can never mean one thing in one
//! place and another elsewhere. Nothing here does I/O.

use std::time::{Duration, Instant};

use super::cameras::ServedCamera;
use super::connection::{OUTPUT_HARD_CAP_BYTES, OUTPUT_SOFT_CAP_BYTES};
use super::core::Core;
use crate::camera::converter::Converter;
use crate::http::metrics::{Reading, Unit};
use crate::http::response::{CameraView, HistogramView, StateView, LATENCY_BUCKETS_US};
use crate::stats::TimingHistogram;

/// Everything the three reports need, copied at one moment.
pub struct Numbers {
    /// What `/state` and `/metrics` show (the `stats` line shows it too).
    pub state: StateView,
    /// Connections of every kind.
    pub clients: u64,
    /// Per camera, in the same order as `state.cameras`: its grab and
    /// encode percentiles for the `stats` line.
    pub timings: Vec<CameraTimings>,
}

/// One camera's grab and encode percentiles, µs.
#[derive(Default, Clone, Copy)]
pub struct CameraTimings {
    /// Grab time percentiles and maximum.
    pub grab_us_p50: u64,
    /// See `grab_us_p50`.
    pub grab_us_p99: u64,
    /// See `grab_us_p50`.
    pub grab_us_max: u64,
    /// Encode time 99th percentile.
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

impl Detail {
    fn histogram(self, timing: &TimingHistogram) -> HistogramView {
        match self {
            Detail::Full => HistogramView::from_timing(timing, LATENCY_BUCKETS_US),
            Detail::Line => HistogramView::default(),
        }
    }
}

/// Copies the numbers out of `core`.
pub fn numbers(core: &Core, now: Instant, detail: Detail) -> Numbers {
    let counters = &core.counters;
    let config = &core.config;
    let seconds = |d: Option<Duration>| d.map_or(0, |d| d.as_secs());
    // Limits and the rarer counters: keys in `/state` and the `stats` line
    // (0 means "off"), each beside the family `/metrics` shows it as.
    let more = vec![
        Reading::gauge(
            "clients_max",
            core.max_clients as u64,
            "camloop_clients_max",
            "Connections served at most at once (--max-clients, kept below the descriptor limit).",
        ),
        Reading::gauge(
            "clients_peak",
            counters.clients_peak,
            "camloop_clients_peak",
            "The most connections open at once since start.",
        ),
        Reading::counter(
            "clients_dropped",
            counters.clients_dropped,
            "camloop_clients_dropped_total",
            "Connections closed by the server for breaking a limit (output hard cap, stall or idle timeout).",
        ),
        Reading::counter(
            "connections_refused",
            counters.connections_refused,
            "camloop_connections_refused_total",
            "Connections refused because --max-clients were open.",
        ),
        Reading::counter(
            "auth_failures",
            counters.auth_failures,
            "camloop_auth_failures_total",
            "Requests with a wrong or missing token, on both ports.",
        ),
        Reading::gauge(
            "max_line_bytes",
            crate::protocol::MAX_LINE_BYTES as u64,
            "camloop_max_line_bytes",
            "The longest request line the control port accepts.",
        ),
        Reading::gauge(
            "max_http_head_bytes",
            crate::http::request::MAX_HEAD_BYTES as u64,
            "camloop_max_http_head_bytes",
            "The largest HTTP request head accepted (431 past it).",
        ),
        Reading::gauge(
            "output_soft_cap_bytes",
            OUTPUT_SOFT_CAP_BYTES as u64,
            "camloop_output_soft_cap_bytes",
            "Unsent reply bytes past which a connection's requests wait (backpressure).",
        ),
        Reading::gauge(
            "output_hard_cap_bytes",
            OUTPUT_HARD_CAP_BYTES as u64,
            "camloop_output_hard_cap_bytes",
            "Unsent reply bytes past which a control client is dropped.",
        ),
        Reading::gauge(
            "idle_timeout_s",
            seconds(config.control_idle_timeout),
            "camloop_idle_timeout_seconds",
            "A control connection silent this long is closed (--idle-timeout; 0: never).",
        ),
        Reading::gauge(
            "output_stall_timeout_s",
            config.output_stall_timeout.as_secs(),
            "camloop_output_stall_timeout_seconds",
            "A client whose pending replies make no progress this long is dropped.",
        ),
        Reading::gauge(
            "stream_stall_timeout_s",
            config.stream_stall_timeout.as_secs(),
            "camloop_stream_stall_timeout_seconds",
            "A stream viewer that takes no bytes this long is dropped (--stream-stall-timeout).",
        ),
        Reading::gauge(
            "http_head_timeout_s",
            config.http_head_timeout.as_secs(),
            "camloop_http_head_timeout_seconds",
            "Time allowed for an HTTP request head to arrive (408 after it).",
        ),
        Reading::gauge(
            "http_idle_timeout_s",
            config.http_idle_timeout.as_secs(),
            "camloop_http_idle_timeout_seconds",
            "A kept-alive HTTP connection idle this long is closed.",
        ),
        // What the loop cost everybody per iteration, camera calls included:
        // the histogram camloop_loop_stall_seconds gives any quantile.
        Reading::answered_elsewhere("loop_stall_us_p99", core.loop_stall.quantile_micros(0.99)),
        Reading::gauge_in(
            "loop_stall_us_max",
            core.loop_stall.max_micros(),
            Unit::Micros,
            "camloop_loop_stall_max_seconds",
            "The longest loop iteration since start; a gauge because \
             camloop_loop_stall_seconds' buckets cannot say how long the longest was.",
        ),
        Reading::answered_elsewhere(
            "frame_send_age_us_p99",
            core.frame_send_age.quantile_micros(0.99),
        ),
        Reading::answered_elsewhere(
            "idr_send_age_us_p99",
            core.idr_send_age.quantile_micros(0.99),
        ),
        // The RTSP figures of all cameras together (the default camera's
        // own are the keys without `all_`); /metrics has them per camera
        // and sums them.
        Reading::answered_elsewhere("all_rtsp_sessions", sum(core, |c| c.rtsp_viewers as u64)),
        Reading::answered_elsewhere(
            "all_rtsp_packets_sent",
            sum(core, |c| c.counters.rtsp_packets_sent),
        ),
        Reading::answered_elsewhere(
            "all_rtsp_bytes_sent",
            sum(core, |c| c.counters.rtsp_bytes_sent),
        ),
        // WebRTC's, the same way.
        Reading::answered_elsewhere("all_webrtc_peers", sum(core, |c| c.webrtc.peers())),
        Reading::answered_elsewhere(
            "all_webrtc_packets_sent",
            sum(core, |c| c.webrtc.packets_sent),
        ),
        Reading::answered_elsewhere(
            "all_webrtc_packets_dropped",
            sum(core, |c| c.webrtc.packets_dropped),
        ),
    ];
    let state = StateView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_s: now.duration_since(core.started_at).as_secs(),
        cameras: core
            .cameras
            .iter()
            .map(|served| camera_view(served, now, detail))
            .collect(),
        control_clients: core.control_clients as u64,
        http_clients: core.http_clients as u64,
        rtsp_clients: core.rtsp_clients as u64,
        requests: counters.requests,
        errors: counters.errors,
        bytes_in: counters.bytes_in,
        bytes_out: counters.bytes_out,
        more,
        frame_send_age_us: detail.histogram(&core.frame_send_age),
        idr_send_age_us: detail.histogram(&core.idr_send_age),
        loop_stall_us: detail.histogram(&core.loop_stall),
    };
    let timings = core
        .cameras
        .iter()
        .map(|served| {
            let (grab, encode) = (&served.camera.grab_time, &served.camera.encode_time);
            CameraTimings {
                grab_us_p50: grab.quantile_micros(0.5),
                grab_us_p99: grab.quantile_micros(0.99),
                grab_us_max: grab.max_micros(),
                encode_us_p99: encode.quantile_micros(0.99),
            }
        })
        .collect();
    Numbers {
        state,
        clients: core.clients as u64,
        timings,
    }
}

/// One figure summed over every camera.
fn sum(core: &Core, figure: impl Fn(&ServedCamera) -> u64) -> u64 {
    core.cameras.iter().map(figure).sum()
}

/// One camera's numbers.
fn camera_view(served: &ServedCamera, now: Instant, detail: Detail) -> CameraView {
    let camera = &served.camera;
    let h264 = camera.h264_feed();
    let converter = camera.converter();
    let converted = converter.map(|c| c.counters).unwrap_or_default();
    let status = camera.status(now);
    let counters = &served.counters;
    CameraView {
        name: camera.name().to_string(),
        source: status.name,
        ok: status.ok,
        error: status.error,
        width: status.width,
        height: status.height,
        fps_x100: status.fps_x100,
        stream_viewers: served.viewers.len() as u64,
        frames_grabbed: camera.frames_grabbed,
        frames_encoded: camera.frames_encoded,
        frames_sent: counters.frames_sent,
        frames_dropped: counters.frames_dropped,
        viewers_dropped: counters.viewers_dropped,
        snapshots: counters.snapshots,
        snapshot_errors: counters.snapshot_errors,
        last_snapshot: served.snapshots.last_saved().map(|s| s.file_name.clone()),
        more: vec![
            Reading::counter(
                "frames_passthrough",
                camera.frames_passthrough,
                "camloop_frames_passthrough_total",
                "Frames served as the camera encoded them, without a JPEG encode of camloop's.",
            ),
            Reading::counter(
                "camera_restarts",
                camera.camera_restarts,
                "camloop_camera_restarts_total",
                "Times the camera was closed after a failure and opened again.",
            ),
            Reading::gauge_in(
                "camera_open_us_max",
                camera.open_us_max,
                Unit::Micros,
                "camloop_camera_open_max_seconds",
                "The longest camera open since start: it blocks the loop, and there are too \
                 few opens for a histogram.",
            ),
            Reading::gauge_in(
                "camera_timeout_ms",
                camera.timeout().as_millis() as u64,
                Unit::Millis,
                "camloop_camera_timeout_seconds",
                "A camera that delivers no frame this long is restarted (--camera-timeout).",
            ),
            Reading::counter(
                "keyframes",
                h264.map_or(0, |feed| feed.keyframes),
                "camloop_keyframes_total",
                "IDR access units an H.264 camera sent (0 for JPEG cameras).",
            ),
            Reading::gauge(
                "gop_frames",
                h264.map_or(0, |feed| feed.gop.last_gop_frames),
                "camloop_gop_frames",
                "Access units in an H.264 camera's last complete GOP, its IDR included.",
            ),
            // The bitrate is `rate()` over the byte counter in /metrics.
            Reading::answered_elsewhere(
                "bitrate_bps",
                h264.map_or(0, |feed| feed.bitrate_bps(now)),
            ),
            Reading::counter(
                "h264_bytes",
                h264.map_or(0, |feed| feed.bytes_total),
                "camloop_h264_received_bytes_total",
                "Bytes of H.264 access units the camera sent (rate() is its bitrate).",
            ),
            Reading::answered_elsewhere(
                "au_complete_delay_us_p99",
                h264.map_or(0, |feed| feed.complete_delay.quantile_micros(0.99)),
            ),
            Reading::counter(
                "converter_frames_in",
                converted.frames_in,
                "camloop_converter_frames_in_total",
                "Frames or access units written to the camera's converter child.",
            ),
            Reading::counter(
                "converter_frames_out",
                converted.frames_out,
                "camloop_converter_frames_out_total",
                "JPEGs or access units that came out of the camera's converter child.",
            ),
            Reading::counter(
                "converter_frames_dropped",
                converted.frames_dropped,
                "camloop_converter_frames_dropped_total",
                "Frames or access units not fed to the converter: its input was busy, or it \
                 waited for an IDR.",
            ),
            Reading::counter(
                "converter_restarts",
                converted.restarts,
                "camloop_converter_restarts_total",
                "Times the converter child was started again after it ended, failed or stopped.",
            ),
            Reading::counter_in(
                "converter_cpu_us",
                converter.map_or(0, Converter::cpu_us),
                Unit::Micros,
                "camloop_converter_cpu_seconds_total",
                "CPU time (user and system) of the camera's converter children.",
            ),
            Reading::gauge(
                "rtsp_sessions",
                served.rtsp_viewers as u64,
                "camloop_rtsp_sessions",
                "RTSP sessions playing the camera.",
            ),
            Reading::counter(
                "rtsp_packets_sent",
                counters.rtsp_packets_sent,
                "camloop_rtsp_packets_sent_total",
                "RTP packets sent to the camera's RTSP viewers (one per viewer per packet).",
            ),
            Reading::counter(
                "rtsp_bytes_sent",
                counters.rtsp_bytes_sent,
                "camloop_rtsp_sent_bytes_total",
                "Bytes of RTP packets sent to the camera's RTSP viewers, interleave headers included.",
            ),
            Reading::gauge(
                "rtsp_udp_sessions",
                served.udp_viewers.len() as u64,
                "camloop_rtsp_udp_sessions",
                "RTSP sessions playing the camera over UDP (the rest are TCP interleaved).",
            ),
            Reading::counter(
                "rtsp_udp_packets_dropped",
                counters.rtsp_udp_packets_dropped,
                "camloop_rtsp_udp_packets_dropped_total",
                "RTP packets for UDP viewers the kernel would not take, dropped (the viewer then waits for an IDR).",
            ),
            Reading::gauge(
                "webrtc_peers_connecting",
                served.webrtc.connecting,
                "camloop_webrtc_peers_connecting",
                "WebRTC peers of the camera made by signalling, ICE and DTLS not up yet.",
            ),
            Reading::gauge(
                "webrtc_peers_connected",
                served.webrtc.connected,
                "camloop_webrtc_peers_connected",
                "WebRTC peers of the camera receiving its video.",
            ),
            Reading::counter(
                "webrtc_packets_sent",
                served.webrtc.packets_sent,
                "camloop_webrtc_packets_sent_total",
                "UDP datagrams sent to the camera's WebRTC peers (media, RTCP, ICE and DTLS).",
            ),
            Reading::counter(
                "webrtc_bytes_sent",
                served.webrtc.bytes_sent,
                "camloop_webrtc_sent_bytes_total",
                "Bytes of those datagrams.",
            ),
            Reading::counter(
                "webrtc_packets_dropped",
                served.webrtc.packets_dropped,
                "camloop_webrtc_packets_dropped_total",
                "Datagrams for the camera's WebRTC peers the kernel would not take, dropped.",
            ),
            Reading::counter(
                "webrtc_nacks",
                served.webrtc.nacks,
                "camloop_webrtc_nacks_total",
                "NACKs the camera's WebRTC peers sent (lost packets they asked for again).",
            ),
            Reading::counter(
                "webrtc_keyframe_requests",
                served.webrtc.keyframe_requests,
                "camloop_webrtc_keyframe_requests_total",
                "PLIs and FIRs the camera's WebRTC peers sent (counted only: the camera's GOP decides).",
            ),
        ],
        grab_us: detail.histogram(&camera.grab_time),
        encode_us: detail.histogram(&camera.encode_time),
        codec: camera.codec().name(),
        converter: converter.map_or("off", Converter::state_name),
        converter_direction: converter.map_or("none", |c| c.direction().name()),
        au_complete_delay_us: h264.map_or_else(HistogramView::default, |feed| {
            detail.histogram(&feed.complete_delay)
        }),
    }
}

/// Text as one word of a reply: a source may contain spaces (a GStreamer
/// pipeline), and a reply is a whitespace-separated `key=value` list.
fn one_word(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// The one-line `stats` reply, about the default camera. Keys are stable;
/// new ones are only added (at the end, so a reader splitting on spaces
/// keeps its positions).
pub fn stats_line(numbers: &Numbers) -> String {
    camera_line(numbers, 0)
}

/// `stats CAM`: the same line about camera `camera`, ending in
/// `camera_name=<name>`.
pub fn camera_stats_line(numbers: &Numbers, camera: usize) -> String {
    let name = numbers
        .state
        .cameras
        .get(camera)
        .map_or(String::new(), |c| one_word(&c.name));
    format!("{} camera_name={name}", camera_line(numbers, camera))
}

fn camera_line(numbers: &Numbers, camera: usize) -> String {
    let s = &numbers.state;
    let c = s.cameras.get(camera).cloned().unwrap_or_default();
    let t = numbers.timings.get(camera).copied().unwrap_or_default();
    let clients_max = s
        .more
        .iter()
        .find(|reading| reading.key == "clients_max")
        .map_or(0, |reading| reading.value);
    // The camera's rarer keys go where they always were: frames_passthrough
    // after clients_peak, the camera_* ones after http_idle_timeout_s.
    let camera_more = |key: &str| {
        c.more
            .iter()
            .find(|reading| reading.key == key)
            .map_or(0, |reading| reading.value)
    };
    let mut more: Vec<(&str, u64)> = Vec::with_capacity(s.more.len() + c.more.len());
    for &Reading { key, value, .. } in s.more.iter().filter(|r| r.key != "clients_max") {
        more.push((key, value));
        match key {
            "clients_peak" => more.push(("frames_passthrough", camera_more("frames_passthrough"))),
            "http_idle_timeout_s" => {
                for key in ["camera_restarts", "camera_open_us_max", "camera_timeout_ms"] {
                    more.push((key, camera_more(key)));
                }
            }
            _ => {}
        }
    }
    // Keys added later go at the end, in the order the camera lists them.
    let placed = |key: &str| more.iter().any(|(k, _)| *k == key);
    let later: Vec<(&str, u64)> = c
        .more
        .iter()
        .filter(|reading| !placed(reading.key))
        .map(|reading| (reading.key, reading.value))
        .collect();
    let mut rest: String = [
        ("frames_sent", c.frames_sent),
        ("frames_dropped", c.frames_dropped),
        ("viewers_dropped", c.viewers_dropped),
    ]
    .into_iter()
    .chain(more.iter().copied())
    .chain(later)
    .map(|(key, value)| format!(" {key}={value}"))
    .collect();
    rest.push_str(&format!(
        " codec={} converter={} converter_direction={}",
        c.codec, c.converter, c.converter_direction
    ));
    format!(
        "OK clients={} clients_max={clients_max} uptime_s={} camera={} camera_ok={} \
         width={} height={} fps_x100={} frames_grabbed={} frames_encoded={} snapshots={} \
         snapshot_errors={} bytes_in={} bytes_out={} requests={} errors={} grab_us_p50={} \
         grab_us_p99={} grab_us_max={} encode_us_p99={}{rest}",
        numbers.clients,
        s.uptime_s,
        one_word(&c.source),
        u8::from(c.ok),
        c.width,
        c.height,
        c.fps_x100,
        c.frames_grabbed,
        c.frames_encoded,
        c.snapshots,
        c.snapshot_errors,
        s.bytes_in,
        s.bytes_out,
        s.requests,
        s.errors,
        t.grab_us_p50,
        t.grab_us_p99,
        t.grab_us_max,
        t.encode_us_p99,
    )
}

/// The `cameras` reply: `OK cam0=synthetic cam1=exec:ffmpeg_-f_v4l2…`, each
/// camera's name and source (whitespace as `_`, credentials hidden).
pub fn cameras_line(core: &Core) -> String {
    let mut line = String::from("OK");
    for served in &core.cameras {
        line.push(' ');
        line.push_str(served.camera.name());
        line.push('=');
        line.push_str(&one_word(&served.camera.source_name()));
    }
    line
}
