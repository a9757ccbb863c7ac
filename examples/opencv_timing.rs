//! How long the OpenCV source blocks the loop at 640x480, and what MJPEG
//! passthrough saves over decoding and re-encoding, plus the thread count.
//!
//!     cargo run --release --example opencv_timing [-- --threads-default]
//!
//! Each step is timed twice: wall clock (what the loop waits) and this
//! thread's CPU time (what it costs, and less disturbed by other processes
//! on a busy machine).

#[cfg(feature = "opencv")]
#[path = "../tests/support/clip.rs"]
mod clip;

#[cfg(not(feature = "opencv"))]
fn main() {
    eprintln!("opencv_timing needs the `opencv` feature");
}

#[cfg(feature = "opencv")]
fn main() {
    timing::run();
}

#[cfg(feature = "opencv")]
mod timing {
    use std::time::{Duration, Instant};

    use camloop::camera::opencv_source::{
        encode_bgr, single_threaded_opencv, OpenCvOptions, OpenCvSource, OpenCvTarget,
    };
    use camloop::camera::{FrameData, FrameSource};
    use camloop::mjpeg;

    use super::clip;

    const WIDTH: u32 = 640;
    const HEIGHT: u32 = 480;
    const CLIP_FPS: u32 = 30;
    const CLIP_FRAMES: u32 = 100;
    const ROUNDS: usize = 300;
    const JPEG_QUALITY: u8 = 80;

    /// Wall and CPU time of each repetition of one step.
    #[derive(Default)]
    struct Samples {
        wall: Vec<Duration>,
        cpu: Vec<Duration>,
    }

    impl Samples {
        fn measure<T>(&mut self, step: impl FnOnce() -> T) -> T {
            let (wall, cpu) = (Instant::now(), thread_cpu_time());
            let out = step();
            self.cpu.push(thread_cpu_time().saturating_sub(cpu));
            self.wall.push(wall.elapsed());
            out
        }

        fn report(&mut self, what: &str) {
            self.wall.sort();
            self.cpu.sort();
            let at = |samples: &[Duration], q: f64| {
                samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6
            };
            println!(
                "{what:<32} wall p50 {:>6.0} us  p99 {:>6.0} us   cpu p50 {:>6.0} us",
                at(&self.wall, 0.5),
                at(&self.wall, 0.99),
                at(&self.cpu, 0.5),
            );
        }
    }

    pub fn run() {
        let default_threads = std::env::args().any(|a| a == "--threads-default");
        if !default_threads {
            single_threaded_opencv();
        }
        let dir = clip::TempDir::new("opencv-timing");
        let path = dir.path().join("clip640.avi");
        clip::write_clip(&path, WIDTH, HEIGHT, CLIP_FPS, CLIP_FRAMES).expect("write clip");
        let threads_before = threads();

        let options = OpenCvOptions {
            width: WIDTH,
            height: HEIGHT,
            fps: CLIP_FPS,
            fourcc: None,
        };
        let mut source = OpenCvSource::new(OpenCvTarget::File(path), options);
        let mut open = Samples::default();
        open.measure(|| source.open().expect("open"));

        let (mut grab, mut retrieve, mut encode) =
            (Samples::default(), Samples::default(), Samples::default());
        let mut clip_jpeg = Vec::new();
        for _ in 0..ROUNDS {
            grab.measure(|| source.grab().expect("grab"));
            let frame = retrieve.measure(|| source.retrieve().expect("retrieve"));
            let FrameData::Bgr(bgr) = frame.data else {
                panic!("a file gives pixels");
            };
            clip_jpeg = encode.measure(|| {
                encode_bgr(frame.width, frame.height, &bgr, JPEG_QUALITY).expect("encode")
            });
        }
        let threads_after = threads();

        // The clip's bars compress unusually well, so a textured picture
        // (gradients plus noise, closer to a real camera) is measured too,
        // and used for what an MJPEG camera costs per frame: passthrough
        // checks and copies its JPEG; without it, decode and encode again.
        let textured_bgr = textured_picture(WIDTH, HEIGHT);
        let textured_jpeg = encode_bgr(WIDTH, HEIGHT, &textured_bgr, JPEG_QUALITY).expect("encode");
        let (mut textured_encode, mut passthrough, mut reencode) =
            (Samples::default(), Samples::default(), Samples::default());
        for _ in 0..ROUNDS {
            textured_encode.measure(|| {
                encode_bgr(WIDTH, HEIGHT, &textured_bgr, JPEG_QUALITY).expect("encode")
            });
            passthrough.measure(|| mjpeg::complete_jpeg(&textured_jpeg).expect("valid"));
            reencode.measure(|| {
                let (w, h, bgr) = clip::decode_jpeg(&textured_jpeg).expect("decode");
                encode_bgr(w, h, &bgr, JPEG_QUALITY).expect("encode")
            });
        }

        println!(
            "{WIDTH}x{HEIGHT} MJPEG clip (flat bars, {} bytes per frame at quality {JPEG_QUALITY}), {ROUNDS} frames",
            clip_jpeg.len()
        );
        open.report("open");
        grab.report("grab (FFmpeg demux + decode)");
        retrieve.report("retrieve (to packed BGR)");
        encode.report("encode_bgr");
        println!(
            "textured {WIDTH}x{HEIGHT} picture ({} bytes as JPEG)",
            textured_jpeg.len()
        );
        textured_encode.report("encode_bgr");
        passthrough.report("MJPEG passthrough (check+copy)");
        reencode.report("MJPEG decode + encode_bgr");
        println!(
            "threads: {threads_before} before opening, {threads_after} after reading ({})",
            if default_threads {
                "OpenCV defaults"
            } else {
                "single_threaded_opencv()"
            }
        );
    }

    /// Smooth gradients with a little noise: compresses like a camera image.
    fn textured_picture(width: u32, height: u32) -> Vec<u8> {
        let mut seed = 0x2545_f491_u32;
        let mut bgr = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                for channel in 0..3u32 {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let noise = (seed >> 16) % 24;
                    bgr.push(((x * (channel + 1) + y * 2) / 5 + noise) as u8);
                }
            }
        }
        bgr
    }

    fn thread_cpu_time() -> Duration {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
    }

    fn threads() -> String {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Threads:"))
                    .map(|n| n.trim().to_string())
            })
            .unwrap_or_else(|| "?".into())
    }
}
