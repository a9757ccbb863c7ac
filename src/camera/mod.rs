//! Camera sources and the frame pipeline.
//!
//! This module owns everything between the camera and the encoded JPEG bytes
//! that consumers share: the [`FrameSource`] trait (split into a cheap
//! [`FrameSource::grab`] and an on-demand [`FrameSource::retrieve`], exactly
//! like OpenCV's `VideoCapture`), the sources themselves, and the
//! [`pipeline::Camera`] that schedules grabs, encodes each frame at most once
//! and reopens a failed source with backoff.
//!
//! It never touches a socket: the event loop asks it for frames and hands the
//! shared bytes to connections.

pub mod child;
pub mod controls;
pub mod converter;
pub mod device_fd;
pub mod exec;
pub mod font;
pub mod h264_stream;
pub mod http_source;
pub mod pipeline;
pub mod push;
pub mod setup;
pub mod synthetic;
#[cfg(target_os = "linux")]
pub mod v4l2;

#[cfg(feature = "opencv")]
pub mod opencv_source;

use std::fmt;
use std::os::unix::io::RawFd;

use controls::{Control, ControlError};

/// `rtsp://user:secret@cam/stream` becomes `rtsp://***@cam/stream`.
pub fn without_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    match url[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}***{}",
            &url[..authority_start],
            &url[authority_start + at..]
        ),
        None => url.to_string(),
    }
}

/// Pixels of one retrieved frame, in the form the source naturally has them.
#[derive(Debug, Clone)]
pub enum FrameData {
    /// Packed 8-bit BGR, row-major, `width * height * 3` bytes (OpenCV's native order).
    Bgr(Vec<u8>),
    /// A complete JPEG image the device delivered as-is (MJPEG passthrough):
    /// no decode and no re-encode needed.
    Jpeg(Vec<u8>),
}

/// One retrieved frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels or the passthrough JPEG.
    pub data: FrameData,
}

/// Why a camera call failed; shown to clients as `ERR camera: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraError(pub String);

impl fmt::Display for CameraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CameraError {}

impl CameraError {
    /// Builds an error from anything printable.
    pub fn new(reason: impl fmt::Display) -> Self {
        CameraError(reason.to_string())
    }
}

/// A source of frames, modelled on OpenCV's `grab()` / `retrieve()` split.
///
/// Every call runs on the event loop's thread and blocks it, so an
/// implementation must bound each call (open and read timeouts where the
/// backend has them) and must not start threads of its own.
pub trait FrameSource {
    /// A short name for `stats` and logs, e.g. `synthetic` or `opencv:/dev/video0`.
    fn name(&self) -> String;

    /// Opens (or reopens after a failure) the device, file or stream.
    fn open(&mut self) -> Result<(), CameraError>;

    /// Takes the next frame from the device but does not decode it: cheap,
    /// and called on a timer so the driver's queue never holds stale frames.
    fn grab(&mut self) -> Result<(), CameraError>;

    /// Decodes the most recently grabbed frame. Only called when somebody
    /// needs pixels (a capture, a `frame` request, a stream viewer).
    fn retrieve(&mut self) -> Result<Frame, CameraError>;

    /// Whether the loop should keep grabbing at the idle rate while nobody
    /// watches. A real device needs it (its queue would go stale); a
    /// synthetic source does not, so an idle server with one sleeps in
    /// `epoll_wait` with no timer at all.
    fn wants_idle_grabs(&self) -> bool {
        true
    }

    /// The frame size, once the source knows it (after `open`), so `stats`
    /// can report it before the first encode.
    fn frame_size(&self) -> Option<(u32, u32)> {
        None
    }

    /// A descriptor that becomes readable when a frame is ready, so that
    /// `grab()` will not wait (a V4L2 device). While it is Some, the
    /// pipeline watches it in the loop's poll and grabs only when the
    /// timer is due *and* it has signalled readable since the last grab.
    fn descriptor(&self) -> Option<RawFd> {
        None
    }

    /// Releases the device. Called before a reopen and at shutdown.
    fn close(&mut self) {}

    /// The controls this source has, with their current values and ranges
    /// (see [`controls`]). The default: none, [`ControlError::NotSupported`].
    fn controls(&mut self) -> Result<Vec<Control>, ControlError> {
        Err(ControlError::NotSupported)
    }

    /// Sets one control to a value [`crate::camera::pipeline::Camera`] has
    /// already checked against the range [`FrameSource::controls`] gave,
    /// and returns it as read back (a device may round or refuse).
    fn set_control(&mut self, _name: &'static str, _value: i64) -> Result<Control, ControlError> {
        Err(ControlError::NotSupported)
    }
}
