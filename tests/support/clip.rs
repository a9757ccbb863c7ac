//! Test clips whose frames say which frame they are.
//!
//! [`write_clip`] records a short Motion-JPEG AVI with OpenCV's `VideoWriter`.
//! Frame `i` shows `i` in binary as [`INDEX_BITS`] vertical bars across the
//! top three quarters (white = 1, most significant bit on the left), wide
//! enough to survive any JPEG quality, and the number as text in a grey
//! strip below for a human looking at a snapshot. [`read_index_from_bgr`] and
//! [`read_index_from_jpeg`] read the number back, so a test can tell a fresh
//! frame from a repeated one and see the clip loop.
//!
//! Needs the `opencv` feature. Include it from an integration test with
//!
//! ```ignore
//! #[cfg(feature = "opencv")]
//! #[path = "support/clip.rs"]
//! mod clip;
//! ```

#![allow(dead_code)] // each test crate uses a different part of this file

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use opencv::core::{
    Mat, MatTraitConst, MatTraitConstManual, Point, Rect, Scalar, Size, Vector, CV_8UC3,
};
use opencv::prelude::{VideoWriterTrait, VideoWriterTraitConst};
use opencv::{imgcodecs, imgproc, videoio};

/// Size, rate and length of the clip most tests use.
pub const CLIP_WIDTH: u32 = 320;
pub const CLIP_HEIGHT: u32 = 240;
pub const CLIP_FPS: u32 = 10;
pub const CLIP_FRAMES: u32 = 20;

/// Bars in the pattern; indices count modulo 2^INDEX_BITS.
pub const INDEX_BITS: u32 = 8;

/// A bar this dark reads as 0 and this bright as 1 (mean of B, G and R);
/// anything in between means the image is not one of our frames.
const DARK_MAX: u32 = 64;
const BRIGHT_MIN: u32 = 192;

/// A fresh, empty directory under the system temp dir, unique per call,
/// removed with everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("camloop-{label}-{}-{nanos}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the standard test clip (`CLIP_FRAMES` frames of
/// `CLIP_WIDTH`x`CLIP_HEIGHT` at `CLIP_FPS`) as `clip.avi` in `dir`.
pub fn write_test_clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.avi");
    write_clip(&path, CLIP_WIDTH, CLIP_HEIGHT, CLIP_FPS, CLIP_FRAMES).expect("write test clip");
    path
}

/// Writes `frames` frames, numbered from 0, as Motion-JPEG in an AVI file.
/// Uses OpenCV's own MJPEG writer, so it works without FFmpeg's encoders.
pub fn write_clip(
    path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
) -> Result<(), String> {
    let size = Size::new(to_i32(width)?, to_i32(height)?);
    let fourcc = videoio::VideoWriter::fourcc('M', 'J', 'P', 'G').map_err(|e| e.to_string())?;
    let mut writer = videoio::VideoWriter::new_with_backend(
        path,
        videoio::CAP_OPENCV_MJPEG,
        fourcc,
        f64::from(fps),
        size,
        true,
    )
    .map_err(|e| format!("VideoWriter for {}: {e}", path.display()))?;
    if !writer.is_opened().unwrap_or(false) {
        return Err(format!("VideoWriter could not open {}", path.display()));
    }
    for index in 0..frames {
        let frame = draw_index_frame(width, height, index)?;
        writer
            .write(&frame)
            .map_err(|e| format!("writing frame {index}: {e}"))?;
    }
    writer.release().map_err(|e| e.to_string())
}

/// One BGR frame showing `index` as bars and as text.
pub fn draw_index_frame(width: u32, height: u32, index: u32) -> Result<Mat, String> {
    let (w, h) = (to_i32(width)?, to_i32(height)?);
    let mut frame = Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::all(0.0))
        .map_err(|e| e.to_string())?;
    let bar_band_height = h * 3 / 4;
    for bit in 0..INDEX_BITS {
        if index >> (INDEX_BITS - 1 - bit) & 1 == 1 {
            let (left, right) = bar_span(width, bit);
            let bar = Rect::new(left as i32, 0, (right - left) as i32, bar_band_height);
            imgproc::rectangle(
                &mut frame,
                bar,
                Scalar::all(255.0),
                imgproc::FILLED,
                imgproc::LINE_8,
                0,
            )
            .map_err(|e| e.to_string())?;
        }
    }
    let strip = Rect::new(0, bar_band_height, w, h - bar_band_height);
    imgproc::rectangle(
        &mut frame,
        strip,
        Scalar::all(128.0),
        imgproc::FILLED,
        imgproc::LINE_8,
        0,
    )
    .map_err(|e| e.to_string())?;
    let baseline = Point::new(w / 20, h - (h - bar_band_height) / 3);
    let font_scale = f64::from(h) / 300.0;
    imgproc::put_text(
        &mut frame,
        &format!("frame {index}"),
        baseline,
        imgproc::FONT_HERSHEY_SIMPLEX,
        font_scale,
        Scalar::all(255.0),
        2,
        imgproc::LINE_8,
        false,
    )
    .map_err(|e| e.to_string())?;
    Ok(frame)
}

/// Columns `[left, right)` of bar `bit` (0 = leftmost).
fn bar_span(width: u32, bit: u32) -> (u32, u32) {
    (width * bit / INDEX_BITS, width * (bit + 1) / INDEX_BITS)
}

/// Reads the frame index from packed BGR pixels (`width * height * 3` bytes),
/// or `None` if the image does not show the bar pattern (a "no signal" frame,
/// the synthetic source, a frame of another size).
pub fn read_index_from_bgr(width: u32, height: u32, bgr: &[u8]) -> Option<u32> {
    if width < INDEX_BITS * 4 || height < 8 || bgr.len() != (width * height * 3) as usize {
        return None;
    }
    // Sample the middle of each bar, away from its edges (JPEG blurs them)
    // and from the text strip at the bottom.
    let rows = height / 8..height * 5 / 8;
    let mut index = 0;
    for bit in 0..INDEX_BITS {
        let (left, right) = bar_span(width, bit);
        let margin = (right - left) / 4;
        let columns = left + margin..right - margin;
        let mut sum = 0u64;
        let mut count = 0u64;
        for y in rows.clone() {
            for x in columns.clone() {
                let at = ((y * width + x) * 3) as usize;
                sum += u64::from(bgr[at]) + u64::from(bgr[at + 1]) + u64::from(bgr[at + 2]);
                count += 3;
            }
        }
        let mean = (sum / count) as u32;
        let value = if mean <= DARK_MAX {
            0
        } else if mean >= BRIGHT_MIN {
            1
        } else {
            return None;
        };
        index = index << 1 | value;
    }
    Some(index)
}

/// Decodes a JPEG with OpenCV: width, height and packed BGR pixels.
pub fn decode_jpeg(jpeg: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let image =
        imgcodecs::imdecode(&Vector::<u8>::from_slice(jpeg), imgcodecs::IMREAD_COLOR).ok()?;
    if image.empty() || !image.is_continuous() {
        return None;
    }
    let width = u32::try_from(image.cols()).ok()?;
    let height = u32::try_from(image.rows()).ok()?;
    Some((width, height, image.data_bytes().ok()?.to_vec()))
}

/// Reads the frame index from a JPEG, e.g. a snapshot or a `frame` reply.
pub fn read_index_from_jpeg(jpeg: &[u8]) -> Option<u32> {
    let (width, height, bgr) = decode_jpeg(jpeg)?;
    read_index_from_bgr(width, height, &bgr)
}

fn to_i32(value: u32) -> Result<i32, String> {
    i32::try_from(value).map_err(|_| format!("{value} is too large"))
}
