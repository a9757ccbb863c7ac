//! The synthetic camera: a moving test pattern with the frame number and
//! the UTC time drawn in.
//!
//! Deterministic apart from the clock stamp, needs no hardware, and is what
//! the tests and load tests use. `grab()` only counts; the pixels are drawn
//! in `retrieve()`, so frames nobody looks at cost nothing.

use super::font::{text_width, Canvas};
use super::{CameraError, Frame, FrameData, FrameSource};
use crate::timefmt::UtcTime;

/// How many pixels the pattern moves per frame, so consecutive frames differ
/// visibly and a frozen stream is obvious.
const DRIFT_PIXELS_PER_FRAME: usize = 4;

/// A generated test pattern of a fixed size.
pub struct SyntheticSource {
    width: u32,
    height: u32,
    frame_number: u64,
}

impl SyntheticSource {
    /// A source producing `width` x `height` frames.
    pub fn new(width: u32, height: u32) -> Self {
        SyntheticSource {
            width,
            height,
            frame_number: 0,
        }
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
        let pixels = render_test_pattern(
            self.width as usize,
            self.height as usize,
            self.frame_number,
            &[
                &format!("CAMLOOP FRAME {}", self.frame_number),
                &UtcTime::now().display(),
            ],
        );
        Ok(Frame {
            width: self.width,
            height: self.height,
            data: FrameData::Bgr(pixels),
        })
    }

    fn wants_idle_grabs(&self) -> bool {
        false
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

    #[test]
    fn a_degenerate_size_is_refused_at_open() {
        assert!(SyntheticSource::new(8, 8).open().is_err());
    }
}
