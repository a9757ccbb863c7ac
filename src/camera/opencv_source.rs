//! OpenCV's `VideoCapture` as a [`FrameSource`]: a V4L2 camera, a video file
//! (looped), an RTSP/HTTP stream or a GStreamer pipeline.
//!
//! This module owns one `VideoCapture` and everything specific to OpenCV:
//! picking the backend for a `--camera` argument ([`OpenCvTarget::parse`]),
//! opening with timeouts, asking a camera for the size, rate and pixel format
//! the user wanted (and logging what it gave), looping a file at its end,
//! handing MJPEG pictures through untouched, and converting everything else
//! to packed BGR, and a device's controls (`CAP_PROP_BRIGHTNESS` and the
//! rest, with the ranges [`super::v4l2`] asks the driver for). It also
//! provides [`encode_bgr`] (libjpeg through `imgcodecs::imencode`) and
//! [`single_threaded_opencv`].
//!
//! Every call here runs on the event loop's only thread, so this module must
//! never start a thread of its own (OpenCV's are turned off as far as OpenCV
//! allows, see [`single_threaded_opencv`]), never block without a bound where
//! the backend offers one, and never `unwrap` anything the camera returns: a
//! panic or a hang here is a panic or a hang for every client. It knows nothing of sockets or of
//! when frames are needed; the pipeline decides that.
//!
//! Where the blocking happens differs by backend: V4L2 waits for the camera in
//! `grab()` and converts in `retrieve()`, while FFmpeg (files, URLs) already
//! decodes in `grab()` and only converts colours in `retrieve()`.

use std::env;
use std::os::unix::io::RawFd;
use std::path::PathBuf;

use opencv::core::{
    self, Mat, MatTraitConst, MatTraitConstManual, ToInputArray, Vec3b, Vector, VectorToVec, CV_8U,
};
use opencv::prelude::{VideoCaptureTrait, VideoCaptureTraitConst};
use opencv::{imgcodecs, imgproc, videoio};

use super::controls::{Control, ControlError};
use super::v4l2::{self, DeviceRange};
use super::{device_fd, without_credentials, CameraError, Frame, FrameData, FrameSource};
use crate::mjpeg;

/// How long FFmpeg may take to connect to a stream or open a file.
pub const OPEN_TIMEOUT_MS: i32 = 2000;
/// How long FFmpeg may wait for the next packet of a stream.
pub const READ_TIMEOUT_MS: i32 = 2000;
/// How long OpenCV's V4L2 backend waits in `select()` for a camera's frame
/// (default 10 s). It has no per-capture read timeout, only this variable.
/// Not lower: some cameras take over a second for their first frame.
pub const V4L2_SELECT_TIMEOUT_S: u32 = 2;
/// Driver buffers on V4L2. With one, a grab always waits for a frame taken
/// after the previous grab released the buffer, so frames are never older
/// than one grab interval; the cost is that a grab may wait up to one frame
/// period. The default of 4 would hand out frames up to 4 periods stale.
pub const V4L2_BUFFER_COUNT: u32 = 1;

/// OpenCV reads its V4L2 `select()` timeout (in seconds) from this variable.
const V4L2_SELECT_TIMEOUT_VAR: &str = "OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT";

/// `CAP_PROP_N_THREADS`: FFmpeg's decoder thread count, an open parameter
/// since OpenCV 4.7. Spelled out because the 4.6 bindings lack it, and only
/// passed to 4.7 or later, since 4.6 refuses to open with a parameter it
/// does not know.
const CAP_PROP_N_THREADS: i32 = 70;
const FIRST_OPENCV_WITH_N_THREADS: (i32, i32) = (4, 7);

/// The FourCC of Motion-JPEG, the format whose frames are passed through.
const MJPEG_FOURCC: &str = "MJPG";

/// Keeps OpenCV on the calling thread as far as OpenCV allows.
///
/// Call once at server start, before the first capture is opened and before
/// any other thread exists: OpenCV reads the V4L2 timeout from the
/// environment when it opens its first camera, and changing the environment
/// is only sound while the process is single-threaded. A value the user
/// already set is kept.
///
/// What stays multi-threaded, because OpenCV offers no switch for it:
/// - FFmpeg decoders that decode several frames in parallel (H.264, HEVC,
///   MPEG-4) start one thread per CPU under OpenCV 4.6. From 4.7 on,
///   [`FrameSource::open`] limits them to one. MJPEG files and streams
///   decode on the calling thread with any version. (The often-quoted
///   `OPENCV_FFMPEG_CAPTURE_OPTIONS=threads;1` does not help: OpenCV hands
///   those options to the demuxer, never to the decoder.)
/// - A GStreamer pipeline runs its own streaming threads.
///
/// `open()` logs a warning when opening a capture started threads.
pub fn single_threaded_opencv() {
    // 0 turns OpenCV's parallel_for pool off: colour conversions then run on
    // the caller's thread instead of waking a worker per CPU.
    if let Err(e) = core::set_num_threads(0) {
        log::warn!("could not turn off OpenCV's thread pool: {e}");
    }
    if env::var_os(V4L2_SELECT_TIMEOUT_VAR).is_none() {
        env::set_var(V4L2_SELECT_TIMEOUT_VAR, V4L2_SELECT_TIMEOUT_S.to_string());
    }
}

/// Makes FFmpeg read its log level from this variable; -8 is `AV_LOG_QUIET`.
const FFMPEG_LOG_LEVEL_VAR: &str = "OPENCV_FFMPEG_LOGLEVEL";
const FFMPEG_LOG_LEVEL_QUIET: &str = "-8";

/// Keeps OpenCV's and FFmpeg's own messages off stderr unless `RUST_LOG`
/// asks for debug output.
///
/// Both print a line of their own for every failed open, so a camera that
/// stays unplugged would print one per reconnect attempt; the
/// [`CameraError`] already says what went wrong, once per state change.
/// Call it once at start, after the logger is set up and, like
/// [`single_threaded_opencv`], before any thread exists.
pub fn quiet_opencv_logging() {
    if log::log_enabled!(log::Level::Debug) {
        return;
    }
    if let Err(e) = core::set_log_level(core::LogLevel::LOG_LEVEL_ERROR) {
        log::warn!("could not lower OpenCV's log level: {e}");
    }
    if env::var_os(FFMPEG_LOG_LEVEL_VAR).is_none() {
        env::set_var(FFMPEG_LOG_LEVEL_VAR, FFMPEG_LOG_LEVEL_QUIET);
    }
}

/// What to open, decided from the `--camera` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenCvTarget {
    /// A camera by index, `/dev/video<N>`, through the V4L2 backend.
    Device(i32),
    /// A video file, played in a loop, through FFmpeg.
    File(PathBuf),
    /// A network stream such as `rtsp://` or `http://`, through FFmpeg.
    Url(String),
    /// A GStreamer pipeline ending in `appsink`.
    Gstreamer(String),
}

impl OpenCvTarget {
    /// Reads a `--camera` argument: digits (or `/dev/video<digits>`) are a
    /// device index, anything with a `!` is a GStreamer pipeline (its element
    /// separator, never in a sane path), anything with `scheme://` is a URL,
    /// the rest is a file path.
    pub fn parse(spec: &str) -> OpenCvTarget {
        let spec = spec.trim();
        let index = spec.strip_prefix("/dev/video").unwrap_or(spec);
        if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(index) = index.parse() {
                return OpenCvTarget::Device(index);
            }
        }
        if spec.contains('!') {
            OpenCvTarget::Gstreamer(spec.to_string())
        } else if spec.contains("://") {
            OpenCvTarget::Url(spec.to_string())
        } else {
            OpenCvTarget::File(PathBuf::from(spec))
        }
    }

    /// The OpenCV backend to open this target with. Naming it instead of
    /// letting OpenCV try each one makes failures quick and their messages
    /// clear, and FFmpeg is the backend that honours the timeouts.
    fn backend(&self) -> i32 {
        match self {
            OpenCvTarget::Device(_) => videoio::CAP_V4L2,
            OpenCvTarget::File(_) | OpenCvTarget::Url(_) => videoio::CAP_FFMPEG,
            OpenCvTarget::Gstreamer(_) => videoio::CAP_GSTREAMER,
        }
    }

    /// How the target appears in `stats` and logs: no spaces (stats are
    /// `key=value` pairs) and no password from a URL.
    fn describe(&self) -> String {
        match self {
            OpenCvTarget::Device(index) => format!("/dev/video{index}"),
            OpenCvTarget::File(path) => path.display().to_string(),
            OpenCvTarget::Url(url) => without_credentials(url),
            OpenCvTarget::Gstreamer(_) => "gstreamer".to_string(),
        }
    }
}

/// What to ask a camera for. Files and streams have their own size and rate
/// and ignore these; zero means "whatever the camera defaults to".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCvOptions {
    /// Requested width in pixels.
    pub width: u32,
    /// Requested height in pixels.
    pub height: u32,
    /// Requested frames per second.
    pub fps: u32,
    /// Requested pixel format, e.g. `MJPG` (which enables passthrough) or
    /// `YUYV`; `None` keeps the camera's default.
    pub fourcc: Option<String>,
}

/// A [`FrameSource`] backed by an OpenCV `VideoCapture`.
pub struct OpenCvSource {
    target: OpenCvTarget,
    options: OpenCvOptions,
    /// `None` while closed.
    capture: Option<videoio::VideoCapture>,
    /// Whether the open camera delivers MJPEG and `retrieve()` hands out its
    /// JPEG bytes instead of pixels.
    passthrough: bool,
    /// Reused by every `retrieve()` so that OpenCV does not allocate a new
    /// image per frame.
    retrieved: Mat,
    /// The device's descriptor, found after OpenCV opened it (see
    /// [`crate::camera::device_fd`]), so the loop grabs only when a frame
    /// is ready instead of waiting in OpenCV's `select()`.
    device_fd: Option<RawFd>,
    /// The controls an open device has, with the ranges its driver reported
    /// (see [`v4l2`]); empty for files, streams and pipelines.
    device_controls: Vec<DeviceRange>,
}

impl OpenCvSource {
    /// Creates the source without opening anything; [`FrameSource::open`] does.
    pub fn new(target: OpenCvTarget, options: OpenCvOptions) -> Self {
        OpenCvSource {
            target,
            options,
            capture: None,
            passthrough: false,
            retrieved: Mat::default(),
            device_fd: None,
            device_controls: Vec::new(),
        }
    }

    /// Whether the open camera's MJPEG pictures are passed through as they are.
    pub fn is_passthrough(&self) -> bool {
        self.passthrough
    }

    fn open_capture(&self) -> Result<videoio::VideoCapture, CameraError> {
        let backend = self.target.backend();
        let opened = match &self.target {
            // OpenCV 4.6's V4L2 backend takes no timeout parameters; its wait
            // is bounded by V4L2_SELECT_TIMEOUT_VAR (see single_threaded_opencv).
            OpenCvTarget::Device(index) => videoio::VideoCapture::new(*index, backend),
            OpenCvTarget::File(path) => {
                // Ask the file system first: its answer ("No such file or
                // directory", "Permission denied") is clearer than OpenCV's.
                std::fs::metadata(path).map_err(|e| {
                    CameraError::new(format!("cannot open video file {}: {e}", path.display()))
                })?;
                videoio::VideoCapture::from_file_with_params(path, backend, &ffmpeg_params())
            }
            OpenCvTarget::Url(url) => {
                videoio::VideoCapture::from_file_with_params(url, backend, &ffmpeg_params())
            }
            // OpenCV 4.6's GStreamer backend rejects the timeout parameters.
            OpenCvTarget::Gstreamer(pipeline) => {
                videoio::VideoCapture::from_file(pipeline, backend)
            }
        };
        let capture = opened.map_err(|e| self.error(format!("cannot open: {e}")))?;
        if !capture.is_opened().unwrap_or(false) {
            let hint = match &self.target {
                OpenCvTarget::Device(_) => "no such camera, or it is busy",
                OpenCvTarget::File(_) => "not a video FFmpeg can read",
                OpenCvTarget::Url(_) => "unreachable, refused, or not a video stream",
                OpenCvTarget::Gstreamer(_) => "the pipeline does not start or has no appsink",
            };
            return Err(self.error(format!("cannot open ({hint})")));
        }
        Ok(capture)
    }

    /// Asks a camera for the format, size and rate in the options, in the
    /// order V4L2 needs them: the pixel format decides which sizes exist, and
    /// the size which rates do. A camera that cannot comply picks something
    /// close (or refuses, which `set` reports as `false`, not as an error);
    /// what it picked is logged by `open()`.
    fn request_camera_mode(&self, capture: &mut videoio::VideoCapture) -> Result<(), CameraError> {
        let request = |capture: &mut videoio::VideoCapture, property: i32, value: f64| {
            capture
                .set(property, value)
                .map_err(|e| self.error(format!("cannot configure the camera: {e}")))
        };
        // Fewer queued frames mean fresher frames; see V4L2_BUFFER_COUNT.
        request(
            capture,
            videoio::CAP_PROP_BUFFERSIZE,
            f64::from(V4L2_BUFFER_COUNT),
        )?;
        if let Some(fourcc) = &self.options.fourcc {
            let code = fourcc_code(fourcc).ok_or_else(|| {
                self.error(format!(
                    "pixel format must be four characters, like MJPG, not {fourcc:?}"
                ))
            })?;
            request(capture, videoio::CAP_PROP_FOURCC, f64::from(code))?;
        }
        if self.options.width > 0 && self.options.height > 0 {
            request(
                capture,
                videoio::CAP_PROP_FRAME_WIDTH,
                f64::from(self.options.width),
            )?;
            request(
                capture,
                videoio::CAP_PROP_FRAME_HEIGHT,
                f64::from(self.options.height),
            )?;
        }
        if self.options.fps > 0 {
            request(capture, videoio::CAP_PROP_FPS, f64::from(self.options.fps))?;
        }
        Ok(())
    }

    /// Back to the first frame of a file that has reached its end. Seeking
    /// is cheap; a container that cannot seek is opened again instead.
    fn rewind(&mut self) -> Result<(), CameraError> {
        if let Some(capture) = self.capture.as_mut() {
            let rewound = capture
                .set(videoio::CAP_PROP_POS_FRAMES, 0.0)
                .unwrap_or(false)
                && capture.grab().unwrap_or(false);
            if rewound {
                return Ok(());
            }
        }
        self.open()?;
        match self.capture.as_mut().map(|capture| capture.grab()) {
            Some(Ok(true)) => Ok(()),
            Some(Err(e)) => Err(self.error(format!("cannot read the first frame: {e}"))),
            _ => Err(self.error("the file has no frames OpenCV can read")),
        }
    }

    /// What the capture delivers, for the log: size, rate, format, backend.
    fn describe_mode(&self, capture: &videoio::VideoCapture, format: &str) -> String {
        let get = |property| capture.get(property).unwrap_or(0.0);
        format!(
            "{}x{} at {:.1} fps, format {}, backend {}{}",
            get(videoio::CAP_PROP_FRAME_WIDTH),
            get(videoio::CAP_PROP_FRAME_HEIGHT),
            get(videoio::CAP_PROP_FPS),
            if format.is_empty() { "?" } else { format },
            capture.get_backend_name().unwrap_or_default(),
            if self.passthrough {
                ", MJPEG passthrough"
            } else {
                ""
            },
        )
    }

    /// What was asked of a camera, to compare with what it gave.
    fn describe_request(&self) -> String {
        let options = &self.options;
        format!(
            " (asked for {}x{} at {} fps, format {})",
            options.width,
            options.height,
            options.fps,
            options.fourcc.as_deref().unwrap_or("default")
        )
    }

    /// One warning when opening started threads OpenCV gives no switch for
    /// (see [`single_threaded_opencv`]), so the reason is in the log.
    fn warn_if_threads_started(&self, before: Option<u32>, capture: &videoio::VideoCapture) {
        if let (Some(before), Some(after)) = (before, threads_in_process()) {
            if after > before {
                log::warn!(
                    "camera {}: the {} backend started {} thread(s) that this OpenCV cannot \
                     turn off; the process is no longer single-threaded",
                    self.name(),
                    capture.get_backend_name().unwrap_or_default(),
                    after - before
                );
            }
        }
    }

    fn error(&self, reason: impl std::fmt::Display) -> CameraError {
        CameraError::new(format!("{}: {reason}", self.target.describe()))
    }
}

impl FrameSource for OpenCvSource {
    fn name(&self) -> String {
        format!("opencv:{}", self.target.describe())
    }

    fn open(&mut self) -> Result<(), CameraError> {
        self.close();
        let threads_before = threads_in_process();
        let descriptors_before = device_fd::open_descriptors();
        let mut capture = self.open_capture()?;
        self.warn_if_threads_started(threads_before, &capture);
        let is_device = matches!(self.target, OpenCvTarget::Device(_));
        if is_device {
            self.request_camera_mode(&mut capture)?;
        }
        let format = capture
            .get(videoio::CAP_PROP_FOURCC)
            .map(|code| fourcc_text(code as u32))
            .unwrap_or_default();
        // Passthrough only where OpenCV can hand out the camera's own buffer:
        // V4L2 with conversion off. FFmpeg has always decoded already.
        self.passthrough = is_device
            && format == MJPEG_FOURCC
            && capture
                .set(videoio::CAP_PROP_CONVERT_RGB, 0.0)
                .unwrap_or(false);
        log::info!(
            "camera {} open: {}{}",
            self.name(),
            self.describe_mode(&capture, &format),
            if is_device {
                self.describe_request()
            } else {
                String::new()
            },
        );
        // Looked up after the mode request, in case it made OpenCV reopen.
        if let OpenCvTarget::Device(index) = self.target {
            let path = PathBuf::from(format!("/dev/video{index}"));
            self.device_fd = device_fd::descriptor_opened_for(&path, &descriptors_before);
            if self.device_fd.is_none() {
                log::warn!(
                    "camera {}: cannot find the device's descriptor; grabs may wait up to \
                     OpenCV's select() timeout",
                    self.name()
                );
            }
        }
        self.capture = Some(capture);
        if let OpenCvTarget::Device(index) = self.target {
            self.device_controls = v4l2::device_ranges(index);
        }
        Ok(())
    }

    fn grab(&mut self) -> Result<(), CameraError> {
        let capture = self
            .capture
            .as_mut()
            .ok_or_else(|| CameraError::new("camera is not open"))?;
        match capture.grab() {
            Ok(true) => Ok(()),
            Err(e) => Err(self.error(format!("grab failed: {e}"))),
            // The end of a file: start it again so the clip plays in a loop.
            Ok(false) if matches!(self.target, OpenCvTarget::File(_)) => self.rewind(),
            Ok(false) => Err(self.error("no frame (camera unplugged or stream ended?)")),
        }
    }

    fn retrieve(&mut self) -> Result<Frame, CameraError> {
        let capture = self
            .capture
            .as_mut()
            .ok_or_else(|| CameraError::new("camera is not open"))?;
        match capture.retrieve(&mut self.retrieved, 0) {
            Ok(true) => {}
            Ok(false) => return Err(self.error("no frame to retrieve (grab first)")),
            Err(e) => return Err(self.error(format!("retrieve failed: {e}"))),
        }
        if self.passthrough {
            passthrough_frame(&self.retrieved).map_err(|e| self.error(e))
        } else {
            bgr_frame(&self.retrieved).map_err(|e| self.error(e))
        }
    }

    fn wants_idle_grabs(&self) -> bool {
        true
    }

    fn frame_size(&self) -> Option<(u32, u32)> {
        let capture = self.capture.as_ref()?;
        let get = |property| capture.get(property).ok().filter(|v| *v >= 1.0);
        let width = get(videoio::CAP_PROP_FRAME_WIDTH)?;
        let height = get(videoio::CAP_PROP_FRAME_HEIGHT)?;
        Some((width as u32, height as u32))
    }

    fn descriptor(&self) -> Option<RawFd> {
        self.capture.as_ref().and(self.device_fd)
    }

    fn close(&mut self) {
        self.device_fd = None;
        if let Some(mut capture) = self.capture.take() {
            if let Err(e) = capture.release() {
                log::warn!("camera {}: release failed: {e}", self.name());
            }
        }
        self.passthrough = false;
        self.device_controls.clear();
    }

    fn controls(&mut self) -> Result<Vec<Control>, ControlError> {
        if !matches!(self.target, OpenCvTarget::Device(_)) {
            return Err(ControlError::NotSupported);
        }
        let capture = self
            .capture
            .as_ref()
            .ok_or_else(|| ControlError::Camera(self.error("not open").to_string()))?;
        Ok(self
            .device_controls
            .iter()
            .map(|range| device_control(capture, range))
            .collect())
    }

    /// Through OpenCV's `set`, then read back with `get`: the driver may
    /// round to its step, and the reply says what the camera really took.
    fn set_control(&mut self, name: &'static str, value: i64) -> Result<Control, ControlError> {
        self.controls()?; // not a device, or not open
        let range = self
            .device_controls
            .iter()
            .find(|range| range.name == name)
            .copied()
            .ok_or_else(|| ControlError::Unknown(name.to_string()))?;
        // Checked again here because values from --control are re-applied
        // at open without the pipeline's check.
        if !(range.min..=range.max).contains(&value) {
            return Err(ControlError::OutOfRange {
                name,
                min: range.min,
                max: range.max,
            });
        }
        let describe = self.target.describe();
        let capture = self
            .capture
            .as_mut()
            .ok_or_else(|| ControlError::Camera(format!("{describe}: not open")))?;
        let device_value = v4l2::to_device(name, value);
        let property =
            device_property(name).ok_or_else(|| ControlError::Unknown(name.to_string()))?;
        match capture.set(property, device_value as f64) {
            Ok(true) => Ok(device_control(capture, &range)),
            Ok(false) => Err(ControlError::Camera(format!(
                "{describe}: the camera refused {name}={value}"
            ))),
            Err(e) => Err(ControlError::Camera(format!(
                "{describe}: cannot set {name}: {e}"
            ))),
        }
    }
}

/// The OpenCV property OpenCV's V4L2 backend maps to the V4L2 control of
/// each name in [`v4l2::DEVICE_CONTROL_IDS`].
fn device_property(name: &str) -> Option<i32> {
    Some(match name {
        "brightness" => videoio::CAP_PROP_BRIGHTNESS,
        "contrast" => videoio::CAP_PROP_CONTRAST,
        "saturation" => videoio::CAP_PROP_SATURATION,
        "sharpness" => videoio::CAP_PROP_SHARPNESS,
        "gain" => videoio::CAP_PROP_GAIN,
        "exposure" => videoio::CAP_PROP_EXPOSURE,
        "auto_exposure" => videoio::CAP_PROP_AUTO_EXPOSURE,
        "white_balance" => videoio::CAP_PROP_WB_TEMPERATURE,
        "auto_white_balance" => videoio::CAP_PROP_AUTO_WB,
        "focus" => videoio::CAP_PROP_FOCUS,
        "autofocus" => videoio::CAP_PROP_AUTOFOCUS,
        "zoom" => videoio::CAP_PROP_ZOOM,
        _ => return None,
    })
}

/// One device control as OpenCV reads it now, in camloop's terms.
fn device_control(capture: &videoio::VideoCapture, range: &DeviceRange) -> Control {
    let read = device_property(range.name)
        .and_then(|property| capture.get(property).ok())
        .unwrap_or(f64::NAN);
    let value = if read.is_finite() {
        v4l2::from_device(range.name, read.round() as i64)
    } else {
        range.min
    };
    Control {
        name: range.name,
        value,
        min: range.min,
        max: range.max,
    }
}

/// The open parameters for FFmpeg: bounded connect and read, and one
/// decoder thread where this OpenCV lets us say so.
fn ffmpeg_params() -> Vector<i32> {
    let mut params = Vector::from_slice(&[
        videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
        OPEN_TIMEOUT_MS,
        videoio::CAP_PROP_READ_TIMEOUT_MSEC,
        READ_TIMEOUT_MS,
    ]);
    let version = (core::get_version_major(), core::get_version_minor());
    if version >= FIRST_OPENCV_WITH_N_THREADS {
        params.push(CAP_PROP_N_THREADS);
        params.push(1);
    }
    params
}

/// Threads in this process, from `/proc/self/status` (Linux).
fn threads_in_process() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let count = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))?;
    count.trim().parse().ok()
}

/// `MJPG` -> the little-endian code OpenCV and V4L2 use.
fn fourcc_code(fourcc: &str) -> Option<u32> {
    let bytes: [u8; 4] = fourcc.as_bytes().try_into().ok()?;
    bytes
        .iter()
        .all(|b| b.is_ascii_graphic() || *b == b' ')
        .then(|| u32::from_le_bytes(bytes))
}

/// The reverse of [`fourcc_code`]; empty if the backend reports no format.
fn fourcc_text(code: u32) -> String {
    let bytes = code.to_le_bytes();
    if code == 0 || !bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return String::new();
    }
    String::from_utf8_lossy(&bytes).trim_end().to_string()
}

/// The camera's JPEG as it came (a 1xN byte row from V4L2), made complete.
fn passthrough_frame(raw: &Mat) -> Result<Frame, String> {
    let bytes = raw
        .data_bytes()
        .map_err(|e| format!("unreadable MJPEG buffer: {e}"))?;
    let (header, jpeg) = mjpeg::complete_jpeg(bytes)?;
    Ok(Frame {
        width: header.width,
        height: header.height,
        data: FrameData::Jpeg(jpeg),
    })
}

/// The retrieved image as packed, continuous 8-bit BGR. Backends normally
/// give exactly that; a GStreamer pipeline may end in grey or BGRA.
fn bgr_frame(image: &(impl MatTraitConst + ToInputArray)) -> Result<Frame, String> {
    if image.depth() != CV_8U {
        return Err(format!(
            "unsupported pixel depth (OpenCV type {})",
            image.typ()
        ));
    }
    let conversion = match image.channels() {
        3 => return packed_frame(image),
        1 => imgproc::COLOR_GRAY2BGR,
        4 => imgproc::COLOR_BGRA2BGR,
        n => return Err(format!("unsupported image with {n} channels")),
    };
    let mut bgr = Mat::default();
    imgproc::cvt_color_def(image, &mut bgr, conversion)
        .map_err(|e| format!("colour conversion failed: {e}"))?;
    packed_frame(&bgr)
}

/// Copies an 8-bit BGR image out of OpenCV, row after row with no gaps.
fn packed_frame(bgr: &impl MatTraitConst) -> Result<Frame, String> {
    let size = bgr
        .size()
        .map_err(|e| format!("image without a size: {e}"))?;
    // data_bytes() needs one unbroken block; a region of a larger image is
    // not one, so it is first copied into a packed image of its own.
    let data = if bgr.is_continuous() {
        bgr.data_bytes().map(<[u8]>::to_vec)
    } else {
        bgr.try_clone()
            .and_then(|packed| packed.data_bytes().map(<[u8]>::to_vec))
    }
    .map_err(|e| format!("cannot read the pixels: {e}"))?;
    Ok(Frame {
        width: u32::try_from(size.width).map_err(|_| "negative width".to_string())?,
        height: u32::try_from(size.height).map_err(|_| "negative height".to_string())?,
        data: FrameData::Bgr(data),
    })
}

/// Encodes packed 8-bit BGR (`width * height * 3` bytes) as a baseline JPEG
/// with libjpeg through OpenCV. `quality` is 1..=100.
pub fn encode_bgr(
    width: u32,
    height: u32,
    bgr: &[u8],
    quality: u8,
) -> Result<Vec<u8>, CameraError> {
    let expected = width as usize * height as usize * 3;
    if bgr.len() != expected || expected == 0 {
        return Err(CameraError::new(format!(
            "cannot encode {width}x{height}: {} bytes of BGR, expected {expected}",
            bgr.len()
        )));
    }
    let rows = i32::try_from(height).map_err(|_| CameraError::new("image too tall to encode"))?;
    let cols = i32::try_from(width).map_err(|_| CameraError::new("image too wide to encode"))?;
    // A view of the caller's bytes as a rows x cols image of 3-byte pixels: no copy.
    let image = Mat::new_rows_cols_with_bytes::<Vec3b>(rows, cols, bgr)
        .map_err(|e| CameraError::new(format!("cannot wrap the pixels: {e}")))?;
    let params = Vector::from_slice(&[
        imgcodecs::IMWRITE_JPEG_QUALITY,
        i32::from(quality.clamp(1, 100)),
    ]);
    let mut jpeg = Vector::<u8>::new();
    match imgcodecs::imencode(".jpg", &image, &mut jpeg, &params) {
        Ok(true) => Ok(jpeg.to_vec()),
        Ok(false) => Err(CameraError::new("JPEG encoder refused the image")),
        Err(e) => Err(CameraError::new(format!("JPEG encoding failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_control_maps_to_an_opencv_property() {
        for (name, _) in v4l2::DEVICE_CONTROL_IDS {
            assert!(device_property(name).is_some(), "{name}");
        }
        let mut properties: Vec<_> = v4l2::DEVICE_CONTROL_IDS
            .iter()
            .filter_map(|(name, _)| device_property(name))
            .collect();
        properties.sort_unstable();
        properties.dedup();
        assert_eq!(properties.len(), v4l2::DEVICE_CONTROL_IDS.len());
    }

    #[test]
    fn a_file_has_no_controls() {
        let mut source = OpenCvSource::new(
            OpenCvTarget::File(PathBuf::from("clip.mp4")),
            OpenCvOptions {
                width: 0,
                height: 0,
                fps: 0,
                fourcc: None,
            },
        );
        assert_eq!(source.controls(), Err(ControlError::NotSupported));
    }

    #[test]
    fn digits_are_a_device() {
        assert_eq!(OpenCvTarget::parse("0"), OpenCvTarget::Device(0));
        assert_eq!(OpenCvTarget::parse(" 2 "), OpenCvTarget::Device(2));
        assert_eq!(OpenCvTarget::parse("/dev/video1"), OpenCvTarget::Device(1));
    }

    #[test]
    fn a_pipeline_has_an_exclamation_mark() {
        let spec = "v4l2src ! videoconvert ! appsink";
        assert_eq!(
            OpenCvTarget::parse(spec),
            OpenCvTarget::Gstreamer(spec.into())
        );
    }

    #[test]
    fn a_scheme_makes_a_url() {
        let spec = "rtsp://cam.local:554/stream";
        assert_eq!(OpenCvTarget::parse(spec), OpenCvTarget::Url(spec.into()));
    }

    #[test]
    fn anything_else_is_a_file() {
        assert_eq!(
            OpenCvTarget::parse("clip.avi"),
            OpenCvTarget::File("clip.avi".into())
        );
        assert_eq!(OpenCvTarget::parse("-1"), OpenCvTarget::File("-1".into()));
        assert_eq!(
            OpenCvTarget::parse("/dev/videos"),
            OpenCvTarget::File("/dev/videos".into())
        );
    }

    #[test]
    fn names_hide_url_passwords() {
        let source = OpenCvSource::new(
            OpenCvTarget::parse("rtsp://admin:secret@10.0.0.5:554/live"),
            OpenCvOptions {
                width: 0,
                height: 0,
                fps: 0,
                fourcc: None,
            },
        );
        assert_eq!(source.name(), "opencv:rtsp://***@10.0.0.5:554/live");
        assert_eq!(without_credentials("http://cam/a@b"), "http://cam/a@b");
    }

    /// The tables inserted into passed-through pictures must be exactly the
    /// ones libjpeg uses by default, byte for byte.
    #[test]
    fn standard_huffman_tables_are_libjpegs() {
        let jpeg = encode_bgr(16, 16, &[90u8; 16 * 16 * 3], 80).expect("encode");
        let header = mjpeg::parse_header(&jpeg).expect("header");
        let mut libjpeg_tables = Vec::new();
        let mut pos = 2;
        while pos < header.scan_offset {
            let length = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if jpeg[pos + 1] == 0xC4 {
                libjpeg_tables.extend_from_slice(&jpeg[pos + 4..pos + 2 + length]);
            }
            pos += 2 + length;
        }
        let ours = mjpeg::standard_huffman_tables_segment();
        assert_eq!(&ours[4..], &libjpeg_tables[..]);
    }

    /// What V4L2 hands out with conversion off: the camera's buffer as one
    /// row of bytes, here with driver padding after the picture.
    fn device_buffer(bytes: &[u8]) -> Mat {
        Mat::from_slice(bytes)
            .and_then(|row| row.try_clone())
            .expect("1xN byte Mat")
    }

    #[test]
    fn passthrough_hands_out_the_cameras_jpeg_without_padding() {
        let jpeg = encode_bgr(32, 16, &[50u8; 32 * 16 * 3], 80).expect("encode");
        let mut buffer = jpeg.clone();
        buffer.extend_from_slice(&[0u8; 512]);
        let frame = passthrough_frame(&device_buffer(&buffer)).expect("a JPEG");
        assert_eq!((frame.width, frame.height), (32, 16));
        let FrameData::Jpeg(bytes) = frame.data else {
            panic!("passthrough gives JPEG");
        };
        assert_eq!(bytes, jpeg);
    }

    #[test]
    fn passthrough_rejects_a_buffer_that_is_not_a_jpeg() {
        let yuyv = [0x10u8, 0x80, 0x10, 0x80, 0x10, 0x80];
        let err = passthrough_frame(&device_buffer(&yuyv)).expect_err("not a JPEG");
        assert!(err.contains("10 80 10 80"), "{err}");
    }

    #[test]
    fn grey_images_become_packed_bgr() {
        let grey = Mat::new_rows_cols_with_default(3, 5, core::CV_8UC1, core::Scalar::all(42.0))
            .expect("grey image");
        let frame = bgr_frame(&grey).expect("converted");
        assert_eq!((frame.width, frame.height), (5, 3));
        let FrameData::Bgr(bgr) = frame.data else {
            panic!("pixels");
        };
        assert_eq!(bgr, vec![42u8; 5 * 3 * 3]);
    }

    #[test]
    fn a_region_of_a_larger_image_is_copied_out_packed() {
        let image = Mat::new_rows_cols_with_default(4, 8, core::CV_8UC3, core::Scalar::all(9.0))
            .expect("image");
        // A view into the image: its rows are not next to each other.
        let region = Mat::roi(&image, core::Rect::new(2, 1, 3, 2)).expect("region");
        assert!(!region.is_continuous());
        let frame = bgr_frame(&region).expect("copied");
        assert_eq!((frame.width, frame.height), (3, 2));
        assert!(matches!(frame.data, FrameData::Bgr(ref bgr) if bgr.len() == 3 * 2 * 3));
    }

    #[test]
    fn fourcc_round_trips() {
        let code = fourcc_code("MJPG").expect("valid");
        assert_eq!(code, 0x4750_4A4D);
        assert_eq!(fourcc_text(code), "MJPG");
        assert_eq!(fourcc_code("MJPEG"), None);
        assert_eq!(fourcc_text(0), "");
    }
}
