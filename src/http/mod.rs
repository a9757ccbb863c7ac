//! The HTTP side of camloop, minus the sockets.
//!
//! This module owns what HTTP *means* for camloop: the endpoint table
//! ([`route`]), request parsing ([`request`]), and the exact bytes of every
//! response, the MJPEG framing, the `/state` JSON and the `/metrics` text
//! ([`response`]), plus the web page itself.
//!
//! It never touches a socket, a file or the camera: bytes and plain values go
//! in, decisions and bytes come out. The event loop does the I/O, which keeps
//! all of this testable with any chunking and no network.
//!
//! | method    | path                    | route                    |
//! |-----------|-------------------------|--------------------------|
//! | GET, HEAD | `/`, `/index.html`      | [`Route::Page`]          |
//! | GET, HEAD | `/stream.mjpg[?fps=N]`  | [`Route::Stream`]        |
//! | GET, HEAD | `/snapshot.jpg`         | [`Route::Snapshot`]      |
//! | GET, HEAD | `/snapshots/latest.jpg` | [`Route::LatestSnapshot`]|
//! | POST      | `/capture`              | [`Route::Capture`]       |
//! | GET, HEAD | `/state`                | [`Route::State`]         |
//! | GET, HEAD | `/metrics`              | [`Route::Metrics`]       |
//! | GET, HEAD | `/controls`             | [`Route::Controls`]      |
//! | POST      | `/controls?name=N&value=V` | [`Route::SetControl`] |
//! | GET, HEAD | `…/?action=stream`      | [`Route::Stream`]        |
//! | GET, HEAD | `…/?action=snapshot`    | [`Route::Snapshot`]      |
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
    /// 404: no such path.
    NotFound,
    /// 405: the path exists but not for this method; `allow` is the value of
    /// the `Allow` header the response must carry (RFC 9110 §15.5.6).
    MethodNotAllowed {
        /// The `Allow` header value.
        allow: &'static str,
    },
}

/// `Allow` value for the read-only endpoints.
const ALLOW_READ: &str = "GET, HEAD";
/// `Allow` value for `/capture`.
const ALLOW_POST: &str = "POST";
/// `Allow` value for `/controls`: read, or set with POST.
const ALLOW_CONTROLS: &str = "GET, HEAD, POST";

impl Route {
    /// Whether `--cors-origin` applies: the routes a page on another origin
    /// (a dashboard) reads, i.e. the stream, snapshots, state, capture and
    /// the camera controls.
    pub fn allows_cors(&self) -> bool {
        matches!(
            self,
            Route::Stream { .. }
                | Route::Snapshot
                | Route::State
                | Route::Capture
                | Route::Controls
                | Route::SetControl
        )
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

/// Maps a request to its endpoint. Unknown paths are 404 whatever the
/// method; known paths with the wrong method are 405 (`OPTIONS` too: see
/// [`is_preflight`]).
pub fn route(head: &RequestHead) -> Route {
    let wanted = route_path(head);
    match (wanted, head.method) {
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
        (wanted, Method::Get | Method::Head) => wanted,
        _ => Route::MethodNotAllowed { allow: ALLOW_READ },
    }
}

/// The endpoint a path and query name, whatever the method.
fn route_path(head: &RequestHead) -> Route {
    let fps = || {
        head.query("fps")
            .and_then(|fps| fps.parse::<u32>().ok())
            .filter(|&fps| fps > 0)
    };
    match head.path.as_str() {
        "/stream.mjpg" => Route::Stream { fps: fps() },
        "/snapshot.jpg" => Route::Snapshot,
        "/snapshots/latest.jpg" => Route::LatestSnapshot,
        "/state" => Route::State,
        "/metrics" => Route::Metrics,
        "/capture" => Route::Capture,
        "/controls" => Route::Controls,
        path => match head.query("action") {
            // mjpg-streamer's URLs, under any prefix a proxy leaves.
            Some("stream") => Route::Stream { fps: fps() },
            Some("snapshot") => Route::Snapshot,
            Some(_) => Route::NotFound,
            None if path == "/" || path == "/index.html" => Route::Page,
            None => Route::NotFound,
        },
    }
}
