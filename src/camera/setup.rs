//! From configuration to cameras: names, per-camera settings, snapshot
//! names, and the source each `--camera` text means.
//!
//! A server serves one or more cameras. Each comes from a `--camera
//! [NAME=]SOURCE` flag or a `[[camera]]` table of the config file; settings
//! a camera does not give itself come from the global flags. This module
//! turns that into one [`CameraPlan`] per camera (checking names and
//! snapshot names against each other) and a plan into a running
//! [`Camera`]. It knows nothing of clap or the loop.

use std::time::{Duration, Instant};

use super::controls::{self, ControlError};
use super::converter::ConverterSettings;
use super::exec::ExecSource;
use super::http_source::HttpSource;
use super::pipeline::{Camera, CameraSettings};
use super::push::CameraCodec;
use super::push::PushSource;
use super::synthetic::SyntheticSource;
use super::{without_credentials, FrameSource};
use crate::snapshot::patterns_overlap;

/// Longest camera name.
pub const MAX_NAME_BYTES: usize = 32;
/// Placeholder for the camera's name in a snapshot name.
pub const CAMERA_PLACEHOLDER: &str = "{camera}";

/// Whether `text` can be a camera's name: `[a-z0-9_-]{1,32}`, so it fits
/// in a URL path, a reply word, a metric label and a file name as it is.
pub fn is_camera_name(text: &str) -> bool {
    (1..=MAX_NAME_BYTES).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Splits `--camera [NAME=]SOURCE`: the text before the first `=` is a name
/// only if it can be one, otherwise all of it is the source
/// (`http://c/x?res=640`, `exec:ffmpeg … -vf scale=640:-1 -`).
pub fn split_name(text: &str) -> (Option<&str>, &str) {
    match text.split_once('=') {
        Some((name, source)) if is_camera_name(name) => (Some(name), source),
        _ => (None, text),
    }
}

/// One camera as the configuration gives it: a `--camera` flag (name and
/// source only) or a `[[camera]]` table. Unset settings come from the
/// global flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraEntry {
    /// `name`; None: `cam<position>`.
    pub name: Option<String>,
    /// `source`: what `--camera` takes.
    pub source: String,
    /// `fps`.
    pub fps: Option<u32>,
    /// `idle-fps`.
    pub idle_fps: Option<u32>,
    /// `width`.
    pub width: Option<u32>,
    /// `height`.
    pub height: Option<u32>,
    /// `jpeg-quality`.
    pub jpeg_quality: Option<u8>,
    /// `fourcc`.
    pub fourcc: Option<String>,
    /// `snapshot-name`.
    pub snapshot_name: Option<String>,
    /// `control`: replaces the global `--control` list for this camera.
    pub control: Option<Vec<String>>,
    /// `camera-timeout`, seconds.
    pub camera_timeout: Option<f64>,
    /// `camera-codec`: `auto`, `mjpeg` or `h264`.
    pub codec: Option<String>,
}

impl CameraEntry {
    /// The entry a `--camera [NAME=]SOURCE` flag means.
    pub fn from_flag(text: &str) -> Self {
        let (name, source) = split_name(text);
        CameraEntry {
            name: name.map(str::to_string),
            source: source.to_string(),
            ..CameraEntry::default()
        }
    }
}

/// How a camera's frames are taken: per camera, or the global flags.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameOptions {
    /// Grab rate while somebody streams (`--fps`).
    pub fps: u32,
    /// Grab rate otherwise (`--idle-fps`).
    pub idle_fps: u32,
    /// Requested frame size (`--width`).
    pub width: u32,
    /// See `width` (`--height`).
    pub height: u32,
    /// JPEG quality (`--jpeg-quality`).
    pub jpeg_quality: u8,
    /// Pixel format to ask a device for (`--fourcc`).
    pub fourcc: Option<String>,
}

/// The global flags: every camera's settings unless it gives its own.
#[derive(Debug, Clone)]
pub struct CameraDefaults {
    /// `--fps`, `--idle-fps`, `--width`, `--height`, `--jpeg-quality`, `--fourcc`.
    pub frames: FrameOptions,
    /// `--snapshot-name`.
    pub snapshot_name: String,
    /// `--control`.
    pub control: Vec<String>,
    /// `--camera-timeout`, seconds.
    pub camera_timeout: f64,
    /// `--max-frame-bytes` (push sources).
    pub max_frame_bytes: usize,
    /// `--camera-codec`.
    pub codec: String,
    /// `--gop-cache-bytes`.
    pub gop_cache_bytes: usize,
    /// `--h264-decoder`, `--h264-encoder`, `--converter-linger`.
    pub converters: ConverterSettings,
}

/// Everything needed to start one camera, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraPlan {
    /// Its name.
    pub name: String,
    /// Its source text.
    pub source: String,
    /// How its frames are taken.
    pub frames: FrameOptions,
    /// Its snapshot name pattern, `{camera}` replaced.
    pub snapshot_name: String,
    /// Controls to set at start.
    pub control: Vec<String>,
    /// Whether `control` is the camera's own list (else the global one).
    pub own_control: bool,
    /// A push camera silent this long is restarted.
    pub camera_timeout: Duration,
    /// Largest frame a push camera may send.
    pub max_frame_bytes: usize,
    /// What a push camera sends.
    pub codec: CameraCodec,
    /// An H.264 camera's GOP cache size.
    pub gop_cache_bytes: usize,
    /// Its converters.
    pub converters: ConverterSettings,
}

/// Resolves every camera: names (`cam<position>` for unnamed ones, no
/// duplicates), settings (the entry's, else the global ones) and snapshot
/// names (`{camera}` replaced; after the first camera the global
/// `--snapshot-name` without `{camera}` gets `.NAME` before its extension,
/// while a camera's own name is used as given). Refuses snapshot names that could
/// match another camera's files in the shared directory: retention and
/// `{seq}` continuation must never reach across cameras.
pub fn plan_cameras(
    entries: &[CameraEntry],
    defaults: &CameraDefaults,
) -> Result<Vec<CameraPlan>, String> {
    if entries.is_empty() {
        return Err("no camera configured (give --camera none for none)".to_string());
    }
    if entries.len() > crate::server::MAX_CAMERAS {
        return Err(format!(
            "{} cameras; at most {}",
            entries.len(),
            crate::server::MAX_CAMERAS
        ));
    }
    let global = &defaults.frames;
    let mut plans: Vec<CameraPlan> = Vec::with_capacity(entries.len());
    for (position, entry) in entries.iter().enumerate() {
        let name = match &entry.name {
            Some(name) if is_camera_name(name) => name.clone(),
            Some(name) => {
                return Err(format!(
                    "camera name {name:?}: a name is 1 to {MAX_NAME_BYTES} of a-z, 0-9, _ and -"
                ))
            }
            None => format!("cam{position}"),
        };
        let clash = entries
            .iter()
            .enumerate()
            .any(|(other, e)| other != position && entry_name(e, other) == name);
        if clash {
            return Err(format!("duplicate camera name {name}"));
        }
        // A camera's own snapshot name is used as given; the global one is
        // shared, so it is made the camera's own.
        let snapshot_name = match &entry.snapshot_name {
            Some(own) => own.replace(CAMERA_PLACEHOLDER, &name),
            None => camera_snapshot_name(&defaults.snapshot_name, &name, position),
        };
        let camera_timeout = entry.camera_timeout.unwrap_or(defaults.camera_timeout);
        let codec = CameraCodec::parse(entry.codec.as_deref().unwrap_or(&defaults.codec))
            .map_err(|e| format!("camera {name}: {e}"))?;
        plans.push(CameraPlan {
            snapshot_name,
            name,
            source: entry.source.clone(),
            frames: FrameOptions {
                fps: entry.fps.unwrap_or(global.fps),
                idle_fps: entry.idle_fps.unwrap_or(global.idle_fps),
                width: entry.width.unwrap_or(global.width),
                height: entry.height.unwrap_or(global.height),
                jpeg_quality: entry.jpeg_quality.unwrap_or(global.jpeg_quality),
                fourcc: entry.fourcc.clone().or_else(|| global.fourcc.clone()),
            },
            control: entry
                .control
                .clone()
                .unwrap_or_else(|| defaults.control.clone()),
            own_control: entry.control.is_some(),
            camera_timeout: camera_timeout_duration(camera_timeout)?,
            max_frame_bytes: defaults.max_frame_bytes,
            codec,
            gop_cache_bytes: defaults.gop_cache_bytes,
            converters: defaults.converters.clone(),
        });
    }
    for (later, plan) in plans.iter().enumerate() {
        if let Some(earlier) = plans[..later]
            .iter()
            .find(|p| patterns_overlap(&p.snapshot_name, &plan.snapshot_name))
        {
            return Err(format!(
                "camera {}: snapshot name {:?} could match the files of camera {} ({:?}) in the \
                 same --snapshot-dir; put {CAMERA_PLACEHOLDER} in the snapshot names",
                plan.name, plan.snapshot_name, earlier.name, earlier.snapshot_name
            ));
        }
    }
    Ok(plans)
}

/// The name entry `position` ends up with, for the duplicate check.
fn entry_name(entry: &CameraEntry, position: usize) -> String {
    entry
        .name
        .clone()
        .unwrap_or_else(|| format!("cam{position}"))
}

/// A camera's snapshot name: `{camera}` replaced by its name; without one,
/// every camera after the first gets `.NAME` before the extension, so the
/// classic `pic2.jpg` stays the first camera's.
pub fn camera_snapshot_name(pattern: &str, name: &str, position: usize) -> String {
    if pattern.contains(CAMERA_PLACEHOLDER) {
        return pattern.replace(CAMERA_PLACEHOLDER, name);
    }
    if position == 0 {
        return pattern.to_string();
    }
    match pattern.rfind('.') {
        Some(dot) if dot > 0 => format!("{}.{name}{}", &pattern[..dot], &pattern[dot..]),
        _ => format!("{pattern}.{name}"),
    }
}

/// `--camera-timeout`: a positive number of seconds.
pub fn camera_timeout_duration(seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("--camera-timeout {seconds}: needs a positive number of seconds"))
}

/// The ffmpeg command an `rtsp://` camera means: TCP transport (UDP loses
/// packets on Wi-Fi) and the camera's H.264 passed through untouched
/// (`-c:v copy`; `dump_extra` repeats SPS and PPS before every IDR, so a
/// consumer can start at any keyframe). No probing: with ffmpeg's default
/// analysis the child sends nothing for 2 s and then a burst. With
/// `--camera-codec mjpeg` the child decodes and sends MJPEG instead, as
/// camloop did before it spoke H.264 (a core or more at 1080p).
pub fn rtsp_command(url: &str, codec: CameraCodec) -> String {
    let quoted = shell_words::quote(url);
    match codec {
        CameraCodec::Mjpeg => format!(
            "ffmpeg -nostdin -loglevel error -rtsp_transport tcp -i {quoted} -f mjpeg -q:v 5 -"
        ),
        CameraCodec::Auto | CameraCodec::H264 => format!(
            "ffmpeg -nostdin -loglevel error -analyzeduration 0 -probesize 32 \
             -rtsp_transport tcp -i {quoted} -map 0:v:0 -c:v copy -bsf:v dump_extra -f h264 -"
        ),
    }
}

/// Starts the camera `plan` describes (a source that fails to open is
/// retried by the loop) and sets its start controls.
pub fn build_camera(plan: &CameraPlan) -> Result<Camera, String> {
    let settings = CameraSettings {
        name: plan.name.clone(),
        fps: plan.frames.fps,
        idle_fps: plan.frames.idle_fps,
        jpeg_quality: plan.frames.jpeg_quality,
        width: plan.frames.width,
        height: plan.frames.height,
        camera_timeout: plan.camera_timeout,
        gop_cache_bytes: plan.gop_cache_bytes,
        converters: plan.converters.clone(),
    };
    let mut camera = match push_source(plan)? {
        Some(push) => Camera::new_push(push, settings, Instant::now()),
        None => Camera::new(timed_source(plan)?, settings, Instant::now()),
    };
    apply_start_controls(&mut camera, plan)?;
    Ok(camera)
}

/// The plan's start controls, in order: an unknown name or a value out of
/// range stops the start with a message naming it. A device that is not
/// open yet gets the (integer) values when it opens. The global list skips
/// a camera that has no controls at all (one info line); a camera's own
/// list may not name controls it cannot have.
fn apply_start_controls(camera: &mut Camera, plan: &CameraPlan) -> Result<(), String> {
    let name = &plan.name;
    for assignment in &plan.control {
        let (control, value) = controls::parse_assignment(assignment)?;
        match camera.set_control(control, &value) {
            Ok(set) => log::info!("camera {name}: control {}={}", set.name, set.value),
            Err(ControlError::NotSupported) if !plan.own_control => {
                log::info!(
                    "camera {name} ({}) has no controls: --control {} left out for it",
                    without_credentials(&plan.source),
                    plan.control.join(" --control ")
                );
                return Ok(());
            }
            Err(ControlError::NotSupported) => {
                return Err(format!(
                    "camera {name}: control {assignment}: {} has no controls (set them in its \
                     command or on the upstream camera)",
                    without_credentials(&plan.source)
                ))
            }
            Err(ControlError::Camera(reason)) => {
                let value: i64 = value.parse().map_err(|_| {
                    format!("camera {name}: --control {assignment}: {value:?} is not an integer")
                })?;
                log::warn!(
                    "camera {name}: --control {assignment}: camera not open ({reason}); set when it opens"
                );
                camera.remember_control(control, value);
            }
            Err(error) => return Err(format!("camera {name}: --control {assignment}: {error}")),
        }
    }
    Ok(())
}

/// The cameras that can wait, as push sources in the loop's poll; None
/// for the timed ones.
fn push_source(plan: &CameraPlan) -> Result<Option<Box<dyn PushSource>>, String> {
    let source = plan.source.as_str();
    if source.starts_with("http://") || source.starts_with("https://") {
        // Native and nonblocking; `opencv:http://…` still reaches OpenCV.
        let source = HttpSource::parse(
            source,
            plan.max_frame_bytes,
            Duration::from_secs(1) / plan.frames.fps.max(1),
            plan.camera_timeout,
        )?;
        return Ok(Some(Box::new(source)));
    }
    let command = if let Some(command) = source.strip_prefix("exec:") {
        command.to_string()
    } else if source.starts_with("rtsp://") || source.starts_with("rtsps://") {
        log::info!(
            "camera {}: {} runs `{}`",
            plan.name,
            without_credentials(source),
            rtsp_command(&without_credentials(source), plan.codec)
        );
        rtsp_command(source, plan.codec)
    } else {
        return Ok(None);
    };
    // An rtsp:// child is told what it sends; an exec: one may be either.
    let codec = match plan.codec {
        CameraCodec::Auto if !source.starts_with("exec:") => CameraCodec::H264,
        codec => codec,
    };
    let source = ExecSource::parse(&command, plan.max_frame_bytes, codec)?;
    Ok(Some(Box::new(source)))
}

/// The timed sources: none, synthetic, and whatever OpenCV opens.
fn timed_source(plan: &CameraPlan) -> Result<Option<Box<dyn FrameSource>>, String> {
    let synthetic = || -> Box<dyn FrameSource> {
        Box::new(SyntheticSource::new(plan.frames.width, plan.frames.height))
    };
    match plan.source.as_str() {
        "none" => Ok(None),
        "synthetic" => Ok(Some(synthetic())),
        #[cfg(feature = "opencv")]
        "auto" => {
            use super::opencv_source::OpenCvTarget;
            let mut device = opencv_source(plan, OpenCvTarget::Device(0));
            match device.open() {
                Ok(()) => Ok(Some(device)),
                Err(error) => {
                    log::warn!(
                        "camera {}: auto: no usable camera 0 ({error}); using the synthetic camera",
                        plan.name
                    );
                    Ok(Some(synthetic()))
                }
            }
        }
        #[cfg(not(feature = "opencv"))]
        "auto" => Ok(Some(synthetic())),
        #[cfg(feature = "opencv")]
        spec => {
            use super::opencv_source::OpenCvTarget;
            // `opencv:URL` reaches OpenCV's own (blocking) URL support, and
            // only by that name: a bare URL of another scheme would block
            // the loop without the user having asked for it.
            let spec = match spec.strip_prefix("opencv:") {
                Some(spec) => spec,
                None if spec.contains("://") && !spec.contains('!') => {
                    let shown = without_credentials(spec);
                    return Err(format!(
                        "--camera {shown}: camloop reads http:// and rtsp:// cameras itself; \
                         for OpenCV's own (blocking) client write opencv:{shown}, or run \
                         'exec:ffmpeg -nostdin -loglevel error -i {shown} -c copy -f mjpeg -'"
                    ));
                }
                None => spec,
            };
            Ok(Some(opencv_source(plan, OpenCvTarget::parse(spec))))
        }
        #[cfg(not(feature = "opencv"))]
        spec => Err(format!(
            "--camera {spec}: this build has no OpenCV backend (rebuild with the `opencv` feature)"
        )),
    }
}

#[cfg(feature = "opencv")]
fn opencv_source(
    plan: &CameraPlan,
    target: super::opencv_source::OpenCvTarget,
) -> Box<dyn FrameSource> {
    use super::opencv_source::{OpenCvOptions, OpenCvSource, OpenCvTarget};
    // USB cameras that offer MJPEG deliver it at full rate and it passes
    // through without a decode; ask for it unless told otherwise.
    let fourcc = match (&plan.frames.fourcc, &target) {
        (Some(fourcc), _) if fourcc == "default" => None,
        (Some(fourcc), _) => Some(fourcc.clone()),
        (None, OpenCvTarget::Device(_)) => Some("MJPG".to_string()),
        (None, _) => None,
    };
    Box::new(OpenCvSource::new(
        target,
        OpenCvOptions {
            width: plan.frames.width,
            height: plan.frames.height,
            fps: plan.frames.fps,
            fourcc,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> CameraDefaults {
        CameraDefaults {
            frames: FrameOptions {
                fps: 30,
                idle_fps: 5,
                width: 640,
                height: 480,
                jpeg_quality: 80,
                fourcc: None,
            },
            snapshot_name: "pic2.jpg".to_string(),
            control: Vec::new(),
            camera_timeout: 5.0,
            codec: "auto".to_string(),
            gop_cache_bytes: 1 << 20,
            converters: ConverterSettings::default(),
            max_frame_bytes: 1 << 20,
        }
    }

    fn plan(flags: &[&str]) -> Result<Vec<CameraPlan>, String> {
        let entries: Vec<CameraEntry> = flags.iter().map(|f| CameraEntry::from_flag(f)).collect();
        plan_cameras(&entries, &defaults())
    }

    #[test]
    fn a_name_is_the_text_before_the_first_equals_only_if_it_can_be_one() {
        assert_eq!(split_name("cam1=synthetic"), (Some("cam1"), "synthetic"));
        assert_eq!(
            split_name("http://c/x?res=640"),
            (None, "http://c/x?res=640")
        );
        let exec = "exec:ffmpeg -i x -vf scale=640:-1 -f mjpeg -";
        assert_eq!(split_name(exec), (None, exec));
        let gst = "v4l2src device=/dev/video0 ! jpegdec ! appsink";
        assert_eq!(split_name(gst), (None, gst));
        assert_eq!(split_name("cam0=a=b.mp4"), (Some("cam0"), "a=b.mp4"));
        assert_eq!(split_name("a=b.mp4"), (Some("a"), "b.mp4"));
        assert_eq!(
            split_name("Door=x"),
            (None, "Door=x"),
            "names are lowercase"
        );
        let long = format!("{}=x", "a".repeat(33));
        assert_eq!(split_name(&long), (None, long.as_str()));
    }

    #[test]
    fn unnamed_cameras_are_numbered_by_position_and_clashes_are_refused() {
        let names: Vec<String> = plan(&["synthetic", "door=synthetic", "synthetic"])
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["cam0", "door", "cam2"]);
        assert_eq!(
            plan(&["cam1=synthetic", "synthetic"]).unwrap_err(),
            "duplicate camera name cam1"
        );
        assert_eq!(
            plan(&["a=synthetic", "a=none"]).unwrap_err(),
            "duplicate camera name a"
        );
    }

    #[test]
    fn later_cameras_get_their_name_in_the_snapshot_name() {
        let names: Vec<String> = plan(&["synthetic", "synthetic", "door=none"])
            .unwrap()
            .into_iter()
            .map(|p| p.snapshot_name)
            .collect();
        assert_eq!(names, ["pic2.jpg", "pic2.cam1.jpg", "pic2.door.jpg"]);
        assert_eq!(
            camera_snapshot_name("snap-{seq}.jpg", "b", 1),
            "snap-{seq}.b.jpg"
        );
        assert_eq!(
            camera_snapshot_name("{camera}-{seq}.jpg", "a", 0),
            "a-{seq}.jpg"
        );
        assert_eq!(camera_snapshot_name("noext", "b", 1), "noext.b");
    }

    #[test]
    fn snapshot_names_that_could_match_each_other_are_refused() {
        let entries = [
            CameraEntry {
                snapshot_name: Some("snap{seq}.jpg".into()),
                ..CameraEntry::from_flag("a=synthetic")
            },
            CameraEntry {
                snapshot_name: Some("snap1{seq}.jpg".into()),
                ..CameraEntry::from_flag("b=synthetic")
            },
        ];
        assert_eq!(
            plan_cameras(&entries, &defaults()).unwrap_err(),
            "camera b: snapshot name \"snap1{seq}.jpg\" could match the files of camera a \
             (\"snap{seq}.jpg\") in the same --snapshot-dir; put {camera} in the snapshot names"
        );
        let fine = [
            CameraEntry::from_flag("a=synthetic"),
            CameraEntry {
                snapshot_name: Some("{camera}-{seq}.jpg".into()),
                ..CameraEntry::from_flag("b=synthetic")
            },
        ];
        assert!(plan_cameras(&fine, &defaults()).is_ok());
    }

    #[test]
    fn a_cameras_own_settings_win_over_the_global_ones() {
        let entries = [
            CameraEntry::from_flag("synthetic"),
            CameraEntry {
                fps: Some(10),
                width: Some(320),
                control: Some(vec!["brightness=10".into()]),
                ..CameraEntry::from_flag("synthetic")
            },
        ];
        let mut global = defaults();
        global.control = vec!["contrast=5".into()];
        let plans = plan_cameras(&entries, &global).unwrap();
        assert_eq!((plans[0].frames.fps, plans[0].frames.width), (30, 640));
        assert_eq!((plans[1].frames.fps, plans[1].frames.width), (10, 320));
        assert_eq!(plans[0].control, ["contrast=5"]);
        assert!(!plans[0].own_control);
        assert_eq!(plans[1].control, ["brightness=10"]);
        assert!(plans[1].own_control);
    }
}
