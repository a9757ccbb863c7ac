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

/// Maps a request to its endpoint. Unknown paths are 404 whatever the
/// method; known paths with the wrong method are 405.
pub fn route(head: &RequestHead) -> Route {
    let readable = matches!(head.method, Method::Get | Method::Head);
    let wanted = match head.path.as_str() {
        "/" | "/index.html" => Route::Page,
        "/stream.mjpg" => Route::Stream {
            fps: head
                .query("fps")
                .and_then(|fps| fps.parse::<u32>().ok())
                .filter(|&fps| fps > 0),
        },
        "/snapshot.jpg" => Route::Snapshot,
        "/snapshots/latest.jpg" => Route::LatestSnapshot,
        "/state" => Route::State,
        "/metrics" => Route::Metrics,
        "/capture" => {
            // Capturing changes state, so it is POST only: a GET would let a
            // link preview or a prefetching browser take pictures.
            return if head.method == Method::Post {
                Route::Capture
            } else {
                Route::MethodNotAllowed { allow: ALLOW_POST }
            };
        }
        _ => return Route::NotFound,
    };
    if readable {
        wanted
    } else {
        Route::MethodNotAllowed { allow: ALLOW_READ }
    }
}
