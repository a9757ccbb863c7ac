//! The synthetic camera: a moving test pattern with the frame number and
//! the UTC time drawn in.
//!
//! Deterministic apart from the clock stamp, needs no hardware, and is what
//! the tests and load tests use. `grab()` only counts; the pixels are drawn
//! in `retrieve()`, so frames nobody looks at cost nothing.

use super::controls::{Control, ControlError};
use super::font::{text_width, Canvas};
use super::{CameraError, Frame, FrameData, FrameSource};
use crate::timefmt::UtcTime;

/// How many pixels the pattern moves per frame, so consecutive frames differ
/// visibly and a frozen stream is obvious.
const DRIFT_PIXELS_PER_FRAME: usize = 4;

/// Range of the synthetic brightness and contrast controls; the middle
/// leaves the pattern as drawn.
const LEVEL_MIN: i64 = 0;
/// See [`LEVEL_MIN`].
const LEVEL_MAX: i64 = 100;
/// The neutral brightness and contrast.
const LEVEL_NEUTRAL: i64 = 50;
/// How far brightness 0 or 100 moves every channel, in 8-bit steps: far
/// enough to see, not so far that the frame is only black or white.
const BRIGHTNESS_SHIFT_AT_EXTREMES: i64 = 128;

/// A generated test pattern of a fixed size.
pub struct SyntheticSource {
    width: u32,
    height: u32,
    frame_number: u64,
    /// `brightness`, applied to the rendered pixels. Kept by `close` and
    /// `open`, like a device that remembers its settings.
    brightness: i64,
    /// `contrast`, likewise.
    contrast: i64,
}

impl SyntheticSource {
    /// A source producing `width` x `height` frames.
    pub fn new(width: u32, height: u32) -> Self {
        SyntheticSource {
            width,
            height,
            frame_number: 0,
            brightness: LEVEL_NEUTRAL,
            contrast: LEVEL_NEUTRAL,
        }
    }

    fn level(&self, name: &'static str, value: i64) -> Control {
        Control {
            name,
            value,
            min: LEVEL_MIN,
            max: LEVEL_MAX,
        }
    }
}

/// Applies brightness and contrast to 8-bit pixels through one lookup
/// table: contrast scales the distance from mid-grey (0 flat grey, 50 as
/// drawn, 100 twice the spread), brightness then shifts every value.
pub fn apply_levels(pixels: &mut [u8], brightness: i64, contrast: i64) {
    if brightness == LEVEL_NEUTRAL && contrast == LEVEL_NEUTRAL {
        return;
    }
    let shift = (brightness - LEVEL_NEUTRAL) * BRIGHTNESS_SHIFT_AT_EXTREMES / LEVEL_NEUTRAL;
    let mut table = [0u8; 256];
    for (input, out) in table.iter_mut().enumerate() {
        let spread = (input as i64 - 128) * contrast / LEVEL_NEUTRAL;
        *out = (128 + spread + shift).clamp(0, 255) as u8;
    }
    for pixel in pixels {
        *pixel = table[usize::from(*pixel)];
    }
}

impl FrameSource for SyntheticSource {
    fn name(&self) -> String {
        "synthetic".to_string()
    }

    fn frame_size(&self) -> Option<(u32, u32)> {
        Some((self.width, self.height))
    }

    fn open(&mut self) -> Result<(), CameraError> {
        if self.width < 16 || self.height < 16 {
            return Err(CameraError::new("synthetic frames must be at least 16x16"));
        }
        Ok(())
    }

    fn grab(&mut self) -> Result<(), CameraError> {
        self.frame_number += 1;
        Ok(())
    }

    fn retrieve(&mut self) -> Result<Frame, CameraError> {
        let mut pixels = render_test_pattern(
            self.width as usize,
            self.height as usize,
            self.frame_number,
            &[
                &format!("CAMLOOP FRAME {}", self.frame_number),
                &UtcTime::now().display(),
            ],
        );
        apply_levels(&mut pixels, self.brightness, self.contrast);
        Ok(Frame {
            width: self.width,
            height: self.height,
            data: FrameData::Bgr(pixels),
        })
    }

    fn wants_idle_grabs(&self) -> bool {
        false
    }

    fn controls(&mut self) -> Result<Vec<Control>, ControlError> {
        Ok(vec![
            self.level("brightness", self.brightness),
            self.level("contrast", self.contrast),
        ])
    }

    fn set_control(&mut self, name: &'static str, value: i64) -> Result<Control, ControlError> {
        let value = value.clamp(LEVEL_MIN, LEVEL_MAX);
        match name {
            "brightness" => self.brightness = value,
            "contrast" => self.contrast = value,
            other => return Err(ControlError::Unknown(other.to_string())),
        }
        Ok(self.level(name, value))
    }
}

/// Draws the test pattern for frame `frame_number` with `lines` of text in
/// a box in the middle. Also used for the "no signal" frame.
pub fn render_test_pattern(
    width: usize,
    height: usize,
    frame_number: u64,
    lines: &[&str],
) -> Vec<u8> {
    let mut pixels = vec![0u8; width * height * 3];
    let drift = (frame_number as usize).wrapping_mul(DRIFT_PIXELS_PER_FRAME);
    for (y, row) in pixels.chunks_exact_mut(width * 3).enumerate() {
        for (x, pixel) in row.chunks_exact_mut(3).enumerate() {
            let diagonal = (x + y + drift) % 256;
            pixel.copy_from_slice(&[diagonal as u8, (y * 255 / height) as u8, 96]);
        }
    }
    let mut canvas = Canvas {
        pixels: &mut pixels,
        width,
        height,
    };
    // Eight colour bars across the bottom, and a square that sweeps across
    // them: motion anyone can see at a glance.
    let bar_height = height / 6;
    const BARS: [[u8; 3]; 8] = [
        [255, 255, 255],
        [0, 255, 255],
        [255, 255, 0],
        [0, 255, 0],
        [255, 0, 255],
        [0, 0, 255],
        [255, 0, 0],
        [0, 0, 0],
    ];
    let bar_width = width.div_ceil(BARS.len());
    for (index, colour) in BARS.iter().enumerate() {
        canvas.fill_rect(
            index * bar_width,
            height - bar_height,
            bar_width,
            bar_height,
            *colour,
        );
    }
    let square = bar_height;
    let square_x = drift % width.saturating_sub(square).max(1);
    canvas.fill_rect(
        square_x,
        height - 2 * bar_height,
        square,
        square,
        [40, 40, 40],
    );

    let scale = (width / 200).max(1);
    let line_height = 10 * scale;
    let box_width = lines
        .iter()
        .map(|l| text_width(l, scale))
        .max()
        .unwrap_or(0)
        + 4 * scale;
    let box_height = lines.len() * line_height + 3 * scale;
    let box_x = width.saturating_sub(box_width) / 2;
    let box_y = height.saturating_sub(box_height) / 3;
    canvas.fill_rect(box_x, box_y, box_width, box_height, [0, 0, 0]);
    for (index, line) in lines.iter().enumerate() {
        let y = box_y + 2 * scale + index * line_height;
        canvas.draw_text(box_x + 2 * scale, y, scale, line, [255, 255, 255]);
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_configured_size_and_move() {
        let mut source = SyntheticSource::new(64, 48);
        source.open().unwrap();
        source.grab().unwrap();
        let first = source.retrieve().unwrap();
        source.grab().unwrap();
        let second = source.retrieve().unwrap();
        let (FrameData::Bgr(a), FrameData::Bgr(b)) = (&first.data, &second.data) else {
            panic!("synthetic frames are BGR");
        };
        assert_eq!(a.len(), 64 * 48 * 3);
        assert_ne!(a, b);
    }

    /// Mean and standard deviation of a frame's luminance, decoded from
    /// the JPEG the pipeline would send.
    fn luma_stats(source: &mut SyntheticSource) -> (f64, f64) {
        source.grab().unwrap();
        let frame = source.retrieve().unwrap();
        let (jpeg, _) = crate::jpeg::frame_to_jpeg(frame, 90).unwrap();
        let mut decoder = jpeg_decoder::Decoder::new(&jpeg[..]);
        let rgb = decoder.decode().unwrap();
        let luma: Vec<f64> = rgb
            .chunks_exact(3)
            .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
            .collect();
        let mean = luma.iter().sum::<f64>() / luma.len() as f64;
        let variance = luma.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / luma.len() as f64;
        (mean, variance.sqrt())
    }

    #[test]
    fn brightness_moves_the_mean_and_contrast_the_spread() {
        let mut source = SyntheticSource::new(64, 48);
        source.open().unwrap();
        let (mean, spread) = luma_stats(&mut source);
        source.set_control("brightness", 80).unwrap();
        let (brighter, _) = luma_stats(&mut source);
        assert!(brighter > mean + 20.0, "{brighter} vs {mean}");
        source.set_control("brightness", 20).unwrap();
        let (darker, _) = luma_stats(&mut source);
        assert!(darker < mean - 20.0, "{darker} vs {mean}");
        source.set_control("brightness", 50).unwrap();
        source.set_control("contrast", 10).unwrap();
        let (_, flat) = luma_stats(&mut source);
        assert!(flat < spread / 2.0, "{flat} vs {spread}");
        // Much of the pattern is already at 0 or 255, where more contrast
        // clips, so the spread grows less than it shrinks.
        source.set_control("contrast", 90).unwrap();
        let (_, steep) = luma_stats(&mut source);
        assert!(steep > spread + 3.0, "{steep} vs {spread}");
    }

    #[test]
    fn controls_survive_close_and_open() {
        let mut source = SyntheticSource::new(64, 48);
        source.open().unwrap();
        assert_eq!(source.set_control("brightness", 70).unwrap().value, 70);
        source.set_control("contrast", 30).unwrap();
        source.close();
        source.open().unwrap();
        let values: Vec<_> = source
            .controls()
            .unwrap()
            .iter()
            .map(|c| (c.name, c.value))
            .collect();
        assert_eq!(values, [("brightness", 70), ("contrast", 30)]);
    }

    #[test]
    fn a_degenerate_size_is_refused_at_open() {
        assert!(SyntheticSource::new(8, 8).open().is_err());
    }
}
