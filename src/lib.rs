//! camloop: a single-threaded `mio` camera server.
//!
//! One hand-rolled event loop ([`server`]) owns every socket and the
//! camera. The pieces around it each have one job:
//!
//! - [`protocol`]: the control protocol, sans-IO (bytes in, requests out).
//! - [`camera`]: frame sources and the grab/encode pipeline.
//! - [`jpeg`]: encoding, once per frame.
//! - [`snapshot`]: atomic snapshot files.
//! - [`http`]: HTTP requests and responses, sans-IO.
//! - [`stats`]: counters and timing histograms.
//! - [`client`]: `camloop ctl`.
//! - [`load`]: `camloop load`, a load generator on its own mio loop.
//! - [`cli`]: flags to settings; `main.rs` only calls [`cli::run`].
//! - [`text`]: byte-text helpers (hex digits) shared by [`http`] and [`load`].
//!
//! See `ARCHITECTURE.md` for the life of a request and of a frame.

#![warn(missing_docs)]

pub mod camera;
pub mod cli;
pub mod client;
pub mod http;
pub mod jpeg;
pub mod load;
pub mod protocol;
pub mod server;
pub mod snapshot;
pub mod stats;
pub mod sys;
pub mod text;
pub mod timefmt;
