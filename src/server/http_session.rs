//! The HTTP session of one connection: requests in, responses out, and the
//! MJPEG viewer state.
//!
//! Parsing and response bytes come from [`crate::http`]; this module
//! decides what each route does to the server (a fresh frame, a snapshot,
//! the state) and keeps a stream viewer bounded: a viewer whose socket is
//! still busy when a frame comes skips it and gets the newest one later,
//! so its queue never grows past one frame. Like the control session it
//! works through a [`Context`] and never sees the socket.

use std::time::{Duration, Instant};

use super::connection::Context;
use super::core::{AuOffer, Core, FrameOutcome, Offer, ServerConfig};
use super::state_view;
use super::webrtc_signalling;
use crate::camera::controls::ControlError;
use crate::camera::converter::Direction;
use crate::camera::pipeline::SharedFrame;
use crate::h264::follow::{Admit, AuFollower, Offered, Sent};
use crate::http::request::{Method, RequestHead, RequestReader};
use crate::http::response::{
    self, capture_json, cors_headers, error_json, error_response, error_response_to,
    h264_stream_head_with, mjpeg_part_headers, mjpeg_stream_head_with, preflight_response,
    snapshot_response_head, unauthorized_response, FrameStamp, CONTENT_TYPE_HTML,
    CONTENT_TYPE_JSON, CONTENT_TYPE_METRICS, MJPEG_FIRST_DELIMITER, MJPEG_PART_END, NO_STORE,
};
use crate::http::{is_preflight, preflight_methods, target, CameraChoice, Route, PAGE_HTML};
use crate::text::constant_time_eq;

/// How much of a stream the kernel may hold unsent for one viewer. Without
/// a limit Linux autotunes the send buffer to megabytes, which a slow
/// viewer would watch seconds or minutes behind; with it, the socket stops
/// taking data early, the viewer skips frames and always sees recent ones.
pub const VIEWER_UNSENT_LIMIT_BYTES: u32 = 128 * 1024;

/// What a `POST /controls` without a name or a value is told.
const SET_CONTROL_USAGE: &str = "POST /controls?name=N&value=V";

/// What an HTTP connection is doing.
enum HttpState {
    /// Reading requests (keep-alive between them).
    Requests,
    /// Waiting for a fresh frame for `/snapshot.jpg` or `/capture`.
    AwaitingFrame {
        method: Method,
        keep_alive: bool,
        capture: bool,
        /// Whether the answer carries the `--cors-origin` headers.
        cors: bool,
    },
    /// Receiving `/stream.mjpg` until it disconnects.
    Streaming(Viewer),
    /// Receiving `/stream.h264` until it disconnects: every access unit in
    /// order, or none until the next IDR (the skip-to-IDR rule).
    StreamingH264 {
        /// The camera it watches.
        camera: usize,
        /// Its place in the stream.
        follower: AuFollower,
        /// Whether anything was sent yet: the first access unit carries the
        /// SPS and PPS a decoder needs to start.
        started: bool,
    },
}

/// Per-viewer stream state.
pub struct Viewer {
    /// The camera it watches.
    camera: usize,
    /// `?fps=N`: the viewer's own lower rate.
    min_interval: Option<Duration>,
    last_sent: Option<Instant>,
    /// The last camera frame sent: `X-Frame` only ever increases, so a
    /// frame offered twice is not sent twice.
    last_seq: u64,
    /// The part being written: where it ends in the output queue, and when
    /// its frame was ready to send (for `frame_send_age_us`).
    in_flight: Option<(u64, Instant)>,
}

/// A frame's `X-Timestamp` / `X-Frame`; none for the "no signal" frame,
/// which was never grabbed.
fn stamp(frame: &SharedFrame) -> Option<FrameStamp> {
    (frame.seq > 0).then_some(FrameStamp {
        seq: frame.seq,
        grabbed_unix_us: frame.grabbed_unix_us,
    })
}

/// Protocol state of one HTTP connection.
pub struct HttpSession {
    reader: RequestReader,
    state: HttpState,
    /// When the unfinished request head started arriving.
    head_started: Option<Instant>,
}

impl HttpSession {
    /// A session for a new connection.
    pub fn new() -> Self {
        HttpSession {
            reader: RequestReader::new(),
            state: HttpState::Requests,
            head_started: None,
        }
    }

    /// Whether reading more makes sense now. A viewer is read from too (its
    /// input is discarded) so that its disconnect is noticed at once.
    pub fn accepts_input(&self) -> bool {
        !matches!(self.state, HttpState::AwaitingFrame { .. })
    }

    /// Nothing is waiting for the camera.
    pub fn is_idle(&self) -> bool {
        !matches!(self.state, HttpState::AwaitingFrame { .. })
    }

    /// Whether this connection receives a stream (MJPEG or H.264).
    pub fn is_viewer(&self) -> bool {
        self.viewed_camera().is_some()
    }

    /// Whether this connection receives `/stream.h264`.
    pub fn is_h264_viewer(&self) -> bool {
        matches!(self.state, HttpState::StreamingH264 { .. })
    }

    /// The camera whose stream this connection receives, if any.
    pub fn viewed_camera(&self) -> Option<usize> {
        match &self.state {
            HttpState::Streaming(viewer) => Some(viewer.camera),
            HttpState::StreamingH264 { camera, .. } => Some(*camera),
            _ => None,
        }
    }

    /// The deadline this connection is held to now: the header deadline
    /// while a request is half received, the idle timeout between requests,
    /// none while streaming or waiting for the camera.
    /// (`--http-head-timeout`: slowloris clients that trickle a header
    /// forever are cut off; `--http-idle-timeout` between requests.)
    pub fn deadline(&self, last_activity: Instant, config: &ServerConfig) -> Option<Instant> {
        match (&self.state, self.head_started) {
            (HttpState::Requests, Some(started)) => Some(started + config.http_head_timeout),
            (HttpState::Requests, None) => Some(last_activity + config.http_idle_timeout),
            _ => None,
        }
    }
}

impl HttpSession {
    /// Takes one read's bytes and answers every complete request in them.
    pub fn input(&mut self, cx: &mut Context, core: &mut Core, bytes: &[u8], now: Instant) {
        if self.is_viewer() {
            return; // a viewer has nothing more to say; its bytes are dropped
        }
        self.reader.push(bytes);
        self.run_queued(cx, core, now);
    }

    /// Answers buffered requests while nothing blocks them.
    pub fn run_queued(&mut self, cx: &mut Context, core: &mut Core, now: Instant) {
        while cx.may_run_request() && matches!(self.state, HttpState::Requests) {
            match self.reader.next_request() {
                None => break,
                Some(Err(error)) => {
                    log::debug!("http client {}: {error}", cx.peer);
                    fail(cx, core, &error_response(error.status()));
                }
                Some(Ok(head)) => self.request(cx, core, head, now),
            }
        }
        self.head_started = match (self.reader.is_mid_request(), self.head_started) {
            (true, None) => Some(now),
            (true, started) => started,
            (false, _) => None,
        };
    }

    /// The deadline passed: a half-received request head gets 408 (the
    /// loop closes the connection either way).
    pub fn timed_out(&mut self, cx: &mut Context, core: &mut Core) {
        if self.head_started.is_some() {
            log::debug!("http client {}: request head timed out", cx.peer);
            fail(cx, core, &error_response(408));
        }
    }

    fn request(&mut self, cx: &mut Context, core: &mut Core, head: RequestHead, now: Instant) {
        core.counters.requests += 1;
        let (method, keep_alive) = (head.method, head.keep_alive);
        let cors_origin = core.config.cors_origin.clone();
        // Browsers send preflights without credentials: answer them first.
        if is_preflight(&head) {
            let allow = preflight_methods(&head);
            let requested = head.access_control_request_headers.as_deref();
            let preflight =
                preflight_response(cors_origin.as_deref(), allow, requested, keep_alive);
            cx.output.push_bytes(&preflight);
            if !keep_alive {
                cx.close_after_flush();
            }
            return;
        }
        let (choice, route) = target(&head);
        let cors = route.allows_cors() && cors_origin.is_some();
        let cors_headers = if cors {
            cors_headers(cors_origin.as_deref())
        } else {
            Vec::new()
        };
        if let Some(expected) = &core.config.token {
            // Every offered credential is compared in constant time; the
            // request passes if one is right.
            let authorized = head
                .offered_tokens()
                .any(|t| constant_time_eq(expected.as_bytes(), t.as_bytes()));
            if !authorized {
                core.counters.auth_failures += 1;
                log::warn!("http client {}: missing or wrong token", cx.peer);
                let html = route == Route::Page;
                fail(cx, core, &unauthorized_response(&head, html, &cors_headers));
                return;
            }
        }
        let mut headers = vec![NO_STORE];
        headers.extend_from_slice(&cors_headers);
        let respond = |cx: &mut Context, status, content_type, body: &[u8]| {
            let bytes =
                response::response(method, status, content_type, body, keep_alive, &headers);
            cx.output.push_bytes(&bytes);
            if !keep_alive {
                cx.close_after_flush();
            }
        };
        let camera = match choice {
            CameraChoice::Default => Some(0),
            CameraChoice::Named(ref name) => core.camera_named(name),
            CameraChoice::Position(position) => (position < core.cameras.len()).then_some(position),
        };
        let Some(camera) = camera else {
            core.counters.errors += 1;
            let message = format!("request: unknown camera {}", choice.describe());
            respond(cx, 404, CONTENT_TYPE_JSON, error_json(&message).as_bytes());
            return;
        };
        let served = &mut core.cameras[camera];
        match route {
            Route::Page => respond(cx, 200, CONTENT_TYPE_HTML, PAGE_HTML.as_bytes()),
            Route::State => {
                let json = response::state_json(
                    &state_view::numbers(core, now, state_view::Detail::Full).state,
                );
                respond(cx, 200, CONTENT_TYPE_JSON, json.as_bytes());
            }
            Route::Metrics => {
                let text = crate::http::metrics::metrics_text(
                    &state_view::numbers(core, now, state_view::Detail::Full).state,
                );
                respond(cx, 200, CONTENT_TYPE_METRICS, text.as_bytes());
            }
            Route::Controls | Route::SetControl => {
                let answer = if route == Route::SetControl {
                    let name = head.query("name").unwrap_or("");
                    let value = head.query("value").unwrap_or("");
                    match served.camera.set_control(name, value) {
                        Ok(control) => {
                            log::info!(
                                "http client {} set {}={}",
                                cx.peer,
                                control.name,
                                control.value
                            );
                            Ok(vec![control])
                        }
                        Err(ControlError::Usage(_)) => Err(ControlError::Usage(SET_CONTROL_USAGE)),
                        Err(error) => Err(error),
                    }
                } else {
                    served.camera.controls()
                };
                match answer {
                    Ok(listed) => {
                        let json = response::controls_json(&listed);
                        respond(cx, 200, CONTENT_TYPE_JSON, json.as_bytes());
                    }
                    Err(error) => {
                        core.counters.errors += 1;
                        let body = error_json(&error.to_string());
                        respond(cx, error.http_status(), CONTENT_TYPE_JSON, body.as_bytes());
                    }
                }
            }
            Route::LatestSnapshot => match served.snapshots.latest_jpeg() {
                Some(jpeg) => respond(cx, 200, response::CONTENT_TYPE_JPEG, &jpeg),
                _ => fail(cx, core, &error_response_to(method, 404, &[])),
            },
            // Without a camera there will never be a frame: say so rather
            // than leave a viewer waiting on an empty stream.
            Route::Snapshot | Route::Capture | Route::Stream { .. } | Route::StreamH264
                if !served.camera.is_present() =>
            {
                core.counters.errors += 1;
                let body = error_json("camera: no camera");
                respond(cx, 503, CONTENT_TYPE_JSON, body.as_bytes());
            }
            route @ (Route::Snapshot | Route::Capture) => {
                let capture = route == Route::Capture;
                core.wait_for_frame(camera, cx.conn, capture, now);
                self.state = HttpState::AwaitingFrame {
                    method,
                    keep_alive,
                    capture,
                    cors,
                };
            }
            Route::Stream { .. } | Route::StreamH264
                if served
                    .camera
                    .converter_start_error()
                    .is_some_and(|(direction, _)| {
                        (direction == Direction::JpegToH264) == (route == Route::StreamH264)
                    }) =>
            {
                core.counters.errors += 1;
                let reason = served
                    .camera
                    .converter_start_error()
                    .map_or(String::new(), |(_, error)| error.to_string());
                let body = error_json(&format!("camera: {reason}"));
                respond(cx, 503, CONTENT_TYPE_JSON, body.as_bytes());
            }
            Route::Stream { fps } => {
                cx.output.push_bytes(&mjpeg_stream_head_with(&cors_headers));
                if method == Method::Head {
                    cx.close_after_flush();
                    return;
                }
                // The first delimiter now; every part then ends with the
                // next one (early boundary, see MJPEG_PART_END).
                cx.output.push_bytes(MJPEG_FIRST_DELIMITER);
                served.viewers.push(cx.conn);
                log::debug!(
                    "http client {} started streaming camera {}",
                    cx.peer,
                    served.camera.name()
                );
                self.state = HttpState::Streaming(Viewer {
                    camera,
                    min_interval: fps.map(|fps| Duration::from_secs(1) / fps),
                    last_sent: None,
                    last_seq: 0,
                    in_flight: None,
                });
            }
            Route::StreamH264 => {
                cx.output.push_bytes(&h264_stream_head_with(&cors_headers));
                if method == Method::Head {
                    cx.close_after_flush();
                    return;
                }
                served.viewers.push(cx.conn);
                served.h264_viewers += 1;
                log::debug!(
                    "http client {} started an H.264 stream of camera {}",
                    cx.peer,
                    served.camera.name()
                );
                self.state = HttpState::StreamingH264 {
                    camera,
                    follower: AuFollower::new(),
                    started: false,
                };
                // The GOP cache at once: the viewer's first picture is the
                // cached IDR, not the next one. It is a burst by design, so
                // it does not count as falling behind.
                if let Some(cached) = served.camera.gop_cache().map(|gop| gop.units()) {
                    if let Some(first) = cached.first() {
                        cx.output.push_bytes(&first.parameter_sets_prefix());
                        for au in cached {
                            cx.output.push_shared(au.data.clone());
                        }
                        served.counters.frames_sent += cached.len() as u64;
                        if let HttpState::StreamingH264 {
                            follower, started, ..
                        } = &mut self.state
                        {
                            follower.started_with_cache(cx.output.queued_total(), now);
                            *started = true;
                        }
                    }
                }
            }
            Route::WhepEndpoint | Route::WhepPatch | Route::WhepDelete | Route::WebrtcSignal => {
                let reply = webrtc_signalling::handle(route, &head, camera, core, now);
                if reply.status >= 400 {
                    core.counters.errors += 1;
                    log::info!("http client {}: {} {}", cx.peer, reply.status, reply.body);
                }
                let mut all_headers = headers.clone();
                all_headers.extend(reply.headers.iter().map(|(n, v)| (*n, v.as_str())));
                let bytes = if reply.status == 204 {
                    response::no_content(keep_alive, &all_headers)
                } else {
                    let body = reply.body.as_bytes();
                    response::response(
                        method,
                        reply.status,
                        reply.content_type,
                        body,
                        keep_alive,
                        &all_headers,
                    )
                };
                cx.output.push_bytes(&bytes);
                if !keep_alive {
                    cx.close_after_flush();
                }
            }
            Route::NotFound => fail(cx, core, &error_response_to(method, 404, &[])),
            Route::MethodNotAllowed { allow } => {
                let response = error_response_to(method, 405, &[("Allow", allow)]);
                fail(cx, core, &response);
            }
        }
    }

    /// Completes `/snapshot.jpg` or `/capture` with the shared grab.
    pub fn frame_ready(&mut self, cx: &mut Context, core: &mut Core, outcome: &FrameOutcome) {
        let HttpState::AwaitingFrame {
            method,
            keep_alive,
            capture,
            cors,
        } = self.state
        else {
            return;
        };
        self.state = HttpState::Requests;
        let cors_headers = if cors {
            cors_headers(core.config.cors_origin.as_deref())
        } else {
            Vec::new()
        };
        let mut headers = vec![NO_STORE];
        headers.extend_from_slice(&cors_headers);
        let json = |cx: &mut Context, status, json: &str| {
            let bytes = response::response(
                method,
                status,
                CONTENT_TYPE_JSON,
                json.as_bytes(),
                keep_alive,
                &headers,
            );
            cx.output.push_bytes(&bytes);
        };
        let failure = match (&outcome.frame, capture) {
            (Err(error), _) => Some(format!("camera: {error}")),
            (Ok(frame), false) => {
                cx.output.push_bytes(&snapshot_response_head(
                    frame.jpeg.len(),
                    keep_alive,
                    stamp(frame),
                    &cors_headers,
                ));
                if method != Method::Head {
                    cx.output.push_shared(frame.jpeg.clone());
                }
                None
            }
            (Ok(frame), true) => match &outcome.snapshot {
                Some(Ok(saved)) => {
                    let body = capture_json(
                        &saved.file_name,
                        frame.jpeg.len(),
                        frame.width,
                        frame.height,
                    );
                    json(cx, 200, &body);
                    None
                }
                Some(Err(reason)) => Some(format!("snapshot: {reason}")),
                None => Some("snapshot: not written".to_string()),
            },
        };
        if let Some(message) = failure {
            core.counters.errors += 1;
            json(cx, 503, &error_json(&message));
        }
        if !keep_alive {
            cx.close_after_flush();
        }
    }

    /// Offers a new frame to a stream viewer. It is queued only if the
    /// previous one has been written completely: a slow viewer skips frames
    /// instead of growing a queue (and the loop's stall sweep drops one
    /// that stops reading altogether).
    pub fn offer_frame(
        &mut self,
        cx: &mut Context,
        frame: &SharedFrame,
        now: Instant,
        camera_interval: Duration,
    ) -> Offer {
        // An H.264 viewer of an MJPEG camera gets the encoder's access
        // units (`offer_au`), not the JPEGs.
        let HttpState::Streaming(viewer) = &mut self.state else {
            return Offer::NotViewing;
        };
        if !cx.output.is_empty() {
            return Offer::Skipped;
        }
        if let (Some(min_interval), Some(last)) = (viewer.min_interval, viewer.last_sent) {
            // Half a camera interval of slack, so a 10 fps viewer of a
            // 30 fps camera gets every third frame, not every fourth.
            if now.duration_since(last) + camera_interval / 2 < min_interval {
                return Offer::Skipped;
            }
        }
        if frame.seq > 0 && frame.seq <= viewer.last_seq {
            return Offer::Skipped;
        }
        viewer.last_sent = Some(now);
        viewer.last_seq = viewer.last_seq.max(frame.seq);
        cx.output
            .push_bytes(&mjpeg_part_headers(frame.jpeg.len(), stamp(frame)));
        cx.output.push_shared(frame.jpeg.clone());
        cx.output.push_bytes(MJPEG_PART_END);
        // The "no signal" frame is made once and reused: its age means nothing.
        if frame.seq > 0 {
            viewer.in_flight = Some((cx.output.queued_total(), frame.ready_at));
        }
        Offer::Sent
    }

    /// Offers an H.264 access unit to an H.264 viewer, under the
    /// skip-to-IDR rule ([`AuFollower`]). `unsent_bytes` is what the viewer
    /// has queued beyond `cx`'s output (0: the output says it all).
    pub fn offer_au(
        &mut self,
        cx: &mut Context,
        offer: &AuOffer,
        last_idr_bytes: usize,
        now: Instant,
    ) -> Offer {
        let au = offer.au;
        let HttpState::StreamingH264 {
            follower, started, ..
        } = &mut self.state
        else {
            return Offer::NotViewing;
        };
        let offered = Offered {
            keyframe: au.keyframe,
            follows_gap: au.follows_gap,
        };
        let (unsent, written) = (cx.output.pending_bytes(), cx.output.written_total());
        if follower.offer(offered, unsent, written, last_idr_bytes, now) == Admit::Skip {
            return Offer::Skipped;
        }
        if !*started {
            *started = true;
            let prefix = au.parameter_sets_prefix();
            if !prefix.is_empty() {
                cx.output.push_bytes(&prefix);
            }
        }
        cx.output.push_shared(au.data.clone());
        follower.queued(cx.output.queued_total(), au.ready_at, au.keyframe);
        Offer::Sent
    }

    /// After a write: each frame or access unit now handed to the kernel
    /// whole (a JPEG is never a keyframe: only H.264 IDRs are told apart).
    pub fn parts_sent(&mut self, written_total: u64, mut sent: impl FnMut(Sent)) {
        match &mut self.state {
            HttpState::Streaming(viewer) => {
                let Some((end, ready_at)) = viewer.in_flight else {
                    return;
                };
                if written_total >= end {
                    viewer.in_flight = None;
                    sent(Sent {
                        ready_at,
                        keyframe: false,
                    });
                }
            }
            HttpState::StreamingH264 { follower, .. } => follower.written(written_total, sent),
            _ => {}
        }
    }
}

/// Counts an error, queues the error response and closes after it: the
/// one way every refused HTTP request ends.
fn fail(cx: &mut Context, core: &mut Core, response: &[u8]) {
    core.counters.errors += 1;
    cx.output.push_bytes(response);
    cx.close_after_flush();
}

impl Default for HttpSession {
    fn default() -> Self {
        Self::new()
    }
}
