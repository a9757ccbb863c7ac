//! The HTTP side of camloop, minus the sockets.
//!
//! This module owns what HTTP *means* for camloop: the endpoint table
//! ([`route`]), request parsing ([`request`]), and the exact bytes of every
//! response, the MJPEG framing and the `/state` JSON ([`response`]), the
//! `/metrics` text ([`metrics`]), the numbers both report ([`report`]),
//! plus the web page itself.
//!
//! It never touches a socket, a file or the camera: bytes and plain values go
//! in, decisions and bytes come out. The event loop does the I/O, which keeps
//! all of this testable with any chunking and no network.
//!
//! | method    | path                    | route                    |
//! |-----------|-------------------------|--------------------------|
//! | GET, HEAD | `/`, `/index.html`      | [`Route::Page`]          |
//! | GET, HEAD | `/stream.mjpg[?fps=N]`  | [`Route::Stream`]        |
//! | GET, HEAD | `/stream.h264`          | [`Route::StreamH264`]    |
//! | GET, HEAD | `/snapshot.jpg`         | [`Route::Snapshot`]      |
//! | GET, HEAD | `/snapshots/latest.jpg` | [`Route::LatestSnapshot`]|
//! | POST      | `/capture`              | [`Route::Capture`]       |
//! | GET, HEAD | `/state`                | [`Route::State`]         |
//! | GET, HEAD | `/metrics`              | [`Route::Metrics`]       |
//! | GET, HEAD | `/controls`             | [`Route::Controls`]      |
//! | POST      | `/controls?name=N&value=V` | [`Route::SetControl`] |
//! | GET, HEAD | `…/?action=stream`      | [`Route::Stream`]        |
//! | GET, HEAD | `…/?action=snapshot`    | [`Route::Snapshot`]      |
//! | POST      | `…/whep`                | [`Route::WhepEndpoint`]  |
//! | PATCH     | `…/whep/<id>`           | [`Route::WhepPatch`]     |
//! | DELETE    | `…/whep/<id>`           | [`Route::WhepDelete`]    |
//! | POST      | `…/webrtc`              | [`Route::WebrtcSignal`]  |
//!
//! The WebRTC paths (see [`crate::webrtc`]) work under any prefix a
//! reverse proxy leaves (`/webcam/whep`), and under `/cam/NAME/` for
//! camera `NAME`.
//!
//! Every route above but the page, `/state` and `/metrics` is about one
//! camera: the default one (the first) as written, camera `NAME` under
//! `/cam/NAME/` (`/cam/NAME/stream.mjpg`, `/cam/NAME/?action=snapshot`),
//! and the camera at position N (from 0) as mjpg-streamer's own
//! `?action=stream_N` / `?action=snapshot_N`. [`target`] says which.
//!
//! `OPTIONS` on any of these paths is a CORS preflight ([`is_preflight`]),
//! answered before and without authentication.
//!
//! `?action=stream` and `?action=snapshot` are mjpg-streamer's URLs, which
//! OctoPrint, Mainsail, Fluidd and many other tools default to. They work on
//! any path that is not one of camloop's own (`/?action=stream`,
//! `/webcam/?action=stream`, `/webcam?action=snapshot`), because a reverse
//! proxy may leave its prefix in place. Unknown query parameters and bare
//! cache-busters (`/snapshot.jpg?1701234567`) are ignored everywhere.

pub mod metrics;
pub mod report;
pub mod request;
pub mod response;

use request::{Method, RequestHead};

/// The web page served at `/`: self-contained (no external assets), so it
/// works on a board without internet access.
pub const PAGE_HTML: &str = include_str!("page.html");

/// What a request asks for. Deciding this is separate from serving it, so
/// the table above is the only place that knows paths and methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The web page, [`PAGE_HTML`].
    Page,
    /// The MJPEG stream; `fps` is the viewer's own lower rate (`?fps=N`,
    /// N ≥ 1), if it asked for one. The loop caps it at the camera rate.
    Stream {
        /// `?fps=N`, N ≥ 1.
        fps: Option<u32>,
    },
    /// The H.264 stream as raw Annex-B (`video/h264`): what ffplay,
    /// `ffmpeg -i`, VLC and go2rtc's HTTP source read.
    StreamH264,
    /// A JPEG of a frame grabbed after the request arrived.
    Snapshot,
    /// The last snapshot written to disk.
    LatestSnapshot,
    /// Take a snapshot, like the control port's `c`.
    Capture,
    /// The `/state` JSON.
    State,
    /// The Prometheus text.
    Metrics,
    /// The camera controls as JSON.
    Controls,
    /// Set one camera control (`?name=N&value=V`); answers its JSON.
    SetControl,
    /// `POST …/whep`: a WHEP offer, answered with a new WebRTC peer.
    WhepEndpoint,
    /// `PATCH …/whep/<id>`: trickle-ICE candidates for a WHEP session.
    WhepPatch,
    /// `DELETE …/whep/<id>`: the end of a WHEP session.
    WhepDelete,
    /// `POST …/webrtc`: camera-streamer's and OctoPrint's JSON signalling.
    WebrtcSignal,
    /// 404: no such path.
    NotFound,
    /// 405: the path exists but not for this method; `allow` is the value of
    /// the `Allow` header the response must carry (RFC 9110 §15.5.6).
    MethodNotAllowed {
        /// The `Allow` header value.
        allow: &'static str,
    },
}

/// Which camera a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraChoice {
    /// The default camera: every path outside `/cam/`.
    Default,
    /// `/cam/NAME/…`: the camera of that name (maybe none).
    Named(String),
    /// `?action=stream_N` / `snapshot_N`: the camera at position N.
    Position(usize),
}

impl CameraChoice {
    /// How a request names its camera, for `unknown camera <name>`.
    pub fn describe(&self) -> String {
        match self {
            CameraChoice::Default => "default".to_string(),
            CameraChoice::Named(name) => name.clone(),
            CameraChoice::Position(position) => position.to_string(),
        }
    }
}

/// `Allow` value for the read-only endpoints.
const ALLOW_READ: &str = "GET, HEAD";
/// `Allow` value for `/capture`.
const ALLOW_POST: &str = "POST";
/// `Allow` value for `/controls`: read, or set with POST.
const ALLOW_CONTROLS: &str = "GET, HEAD, POST";
/// `Allow` value for the WebRTC endpoints that take an offer or a message.
const ALLOW_SIGNAL: &str = "OPTIONS, POST";
/// `Allow` value for a WHEP session.
const ALLOW_WHEP_SESSION: &str = "OPTIONS, PATCH, DELETE";

impl Route {
    /// Whether `--cors-origin` applies: the routes a page on another origin
    /// (a dashboard) reads, i.e. the stream, snapshots, state, capture and
    /// the camera controls.
    pub fn allows_cors(&self) -> bool {
        matches!(
            self,
            Route::Stream { .. }
                | Route::StreamH264
                | Route::Snapshot
                | Route::State
                | Route::Capture
                | Route::Controls
                | Route::SetControl
                | Route::WhepEndpoint
                | Route::WhepPatch
                | Route::WhepDelete
                | Route::WebrtcSignal
        )
    }

    /// The methods a preflight allows (`Allow` and
    /// `Access-Control-Allow-Methods`): on the WebRTC paths all those of a
    /// session, which starts with a `POST` and goes on with `PATCH` and
    /// `DELETE` (a client may ask about any of them on either path).
    pub fn allowed_methods(&self) -> &'static str {
        match self {
            Route::WhepEndpoint | Route::WhepPatch | Route::WhepDelete | Route::WebrtcSignal => {
                "OPTIONS, POST, PATCH, DELETE"
            }
            _ => "GET, HEAD, POST, OPTIONS",
        }
    }
}

/// Whether a request is a CORS preflight: `OPTIONS` on a path [`route`]
/// knows. Browsers send preflights without credentials, so the server
/// answers them (with [`response::preflight_response`]) before checking the
/// token; they reveal nothing but which methods and headers are allowed.
pub fn is_preflight(head: &RequestHead) -> bool {
    head.method == Method::Options
        && !matches!(
            route_path(head),
            Route::NotFound | Route::MethodNotAllowed { .. }
        )
}

/// The methods a preflight on `head`'s path allows ([`Route::allowed_methods`]
/// of the path, whatever the preflight's own method).
pub fn preflight_methods(head: &RequestHead) -> &'static str {
    route_path(head).allowed_methods()
}

/// Maps a request to its endpoint. Unknown paths are 404 whatever the
/// method; known paths with the wrong method are 405 (`OPTIONS` too: see
/// [`is_preflight`]).
pub fn route(head: &RequestHead) -> Route {
    target(head).1
}

/// The camera a request is about and its endpoint (see [`route`]).
pub fn target(head: &RequestHead) -> (CameraChoice, Route) {
    let (camera, wanted) = camera_and_path(head);
    let route = match (wanted, head.method) {
        (Route::NotFound, _) => Route::NotFound,
        // Capturing changes state, so it is POST only: a GET would let a
        // link preview or a prefetching browser take pictures.
        (Route::Capture, Method::Post) => Route::Capture,
        (Route::Capture, _) => Route::MethodNotAllowed { allow: ALLOW_POST },
        // Setting a control is POST for the same reason as capturing.
        (Route::Controls, Method::Post) => Route::SetControl,
        (Route::Controls, Method::Get | Method::Head) => Route::Controls,
        (Route::Controls, _) => Route::MethodNotAllowed {
            allow: ALLOW_CONTROLS,
        },
        (Route::WhepEndpoint | Route::WebrtcSignal, Method::Post) => wanted,
        (Route::WhepEndpoint | Route::WebrtcSignal, _) => Route::MethodNotAllowed {
            allow: ALLOW_SIGNAL,
        },
        (Route::WhepPatch | Route::WhepDelete, Method::Patch) => Route::WhepPatch,
        (Route::WhepPatch | Route::WhepDelete, Method::Delete) => Route::WhepDelete,
        (Route::WhepPatch | Route::WhepDelete, _) => Route::MethodNotAllowed {
            allow: ALLOW_WHEP_SESSION,
        },
        (wanted, Method::Get | Method::Head) => wanted,
        _ => Route::MethodNotAllowed { allow: ALLOW_READ },
    };
    (camera, route)
}

/// The endpoint a path and query name, whatever the method.
fn route_path(head: &RequestHead) -> Route {
    camera_and_path(head).1
}

/// The camera and the endpoint a path names: `/cam/NAME/REST` is `REST`
/// of camera `NAME`, everything else is about the default camera.
fn camera_and_path(head: &RequestHead) -> (CameraChoice, Route) {
    if let Some(webrtc) = webrtc_path(&head.path) {
        return webrtc;
    }
    let Some(under_cam) = head.path.strip_prefix("/cam/") else {
        return default_camera_path(head);
    };
    let (name, rest) = under_cam
        .split_once('/')
        .map_or((under_cam, ""), |(name, rest)| (name, rest));
    if name.is_empty() {
        return (CameraChoice::Default, Route::NotFound);
    }
    let camera = CameraChoice::Named(name.to_string());
    let route = match (rest, head.query("action")) {
        ("stream.mjpg", _) => Route::Stream {
            fps: viewer_fps(head),
        },
        ("stream.h264", _) => Route::StreamH264,
        ("snapshot.jpg", _) => Route::Snapshot,
        ("snapshots/latest.jpg", _) => Route::LatestSnapshot,
        ("capture", _) => Route::Capture,
        ("controls", _) => Route::Controls,
        ("" | "index.html", Some("stream")) => Route::Stream {
            fps: viewer_fps(head),
        },
        ("" | "index.html", Some("snapshot")) => Route::Snapshot,
        _ => Route::NotFound,
    };
    (camera, route)
}

/// The WebRTC endpoints, under any prefix: `…/whep` and `…/whep/<id>`
/// (the session's route stands for both `PATCH` and `DELETE` until the
/// method picks one), and `…/webrtc`.
fn webrtc_path(path: &str) -> Option<(CameraChoice, Route)> {
    let camera = |name: Option<String>| name.map_or(CameraChoice::Default, CameraChoice::Named);
    if let Some(whep) = crate::webrtc::whep_route(path) {
        let route = match whep.resource {
            None => Route::WhepEndpoint,
            Some(_) => Route::WhepPatch,
        };
        return Some((camera(whep.camera), route));
    }
    crate::webrtc::webrtc_route(path).map(|route| (camera(route.camera), Route::WebrtcSignal))
}

/// `?fps=N`, N ≥ 1.
fn viewer_fps(head: &RequestHead) -> Option<u32> {
    head.query("fps")
        .and_then(|fps| fps.parse::<u32>().ok())
        .filter(|&fps| fps > 0)
}

/// The paths outside `/cam/`.
fn default_camera_path(head: &RequestHead) -> (CameraChoice, Route) {
    let route = match head.path.as_str() {
        "/stream.mjpg" => Route::Stream {
            fps: viewer_fps(head),
        },
        "/stream.h264" => Route::StreamH264,
        "/snapshot.jpg" => Route::Snapshot,
        "/snapshots/latest.jpg" => Route::LatestSnapshot,
        "/state" => Route::State,
        "/metrics" => Route::Metrics,
        "/capture" => Route::Capture,
        "/controls" => Route::Controls,
        path => match head.query("action") {
            // mjpg-streamer's URLs, under any prefix a proxy leaves.
            Some("stream") => Route::Stream {
                fps: viewer_fps(head),
            },
            Some("snapshot") => Route::Snapshot,
            Some(action) => return mjpg_streamer_numbered(head, action),
            None if path == "/" || path == "/index.html" => Route::Page,
            None => Route::NotFound,
        },
    };
    (CameraChoice::Default, route)
}

/// mjpg-streamer's several-camera form, `?action=stream_N` and
/// `?action=snapshot_N`: camera N, counted from 0.
fn mjpg_streamer_numbered(head: &RequestHead, action: &str) -> (CameraChoice, Route) {
    let numbered = |prefix: &str| {
        action
            .strip_prefix(prefix)
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<usize>().ok())
    };
    match (numbered("stream_"), numbered("snapshot_")) {
        (Some(position), _) => (
            CameraChoice::Position(position),
            Route::Stream {
                fps: viewer_fps(head),
            },
        ),
        (_, Some(position)) => (CameraChoice::Position(position), Route::Snapshot),
        _ => (CameraChoice::Default, Route::NotFound),
    }
}
