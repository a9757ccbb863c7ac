//! JPEG encoding of one 640x480 synthetic frame: the pure-Rust encoder
//! (the build without OpenCV) and, with the `opencv` feature, OpenCV's
//! libjpeg. Run: `cargo bench --bench jpeg`.

use std::hint::black_box;

use camloop::camera::synthetic::render_test_pattern;
use criterion::{criterion_group, criterion_main, Criterion};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
const QUALITY: u8 = 80;

fn encode_640x480(c: &mut Criterion) {
    let pixels = render_test_pattern(WIDTH as usize, HEIGHT as usize, 42, &["CAMLOOP BENCH"]);
    let mut group = c.benchmark_group("jpeg_encode_640x480");
    group.bench_function("pure_rust", |b| {
        b.iter(|| camloop::jpeg::encode_bgr_pure_rust(WIDTH, HEIGHT, black_box(&pixels), QUALITY))
    });
    #[cfg(feature = "opencv")]
    group.bench_function("opencv", |b| {
        b.iter(|| {
            camloop::camera::opencv_source::encode_bgr(WIDTH, HEIGHT, black_box(&pixels), QUALITY)
        })
    });
    group.bench_function("render_synthetic_frame", |b| {
        b.iter(|| render_test_pattern(WIDTH as usize, HEIGHT as usize, black_box(7), &["X"]))
    });
    group.finish();
}

criterion_group!(benches, encode_640x480);
criterion_main!(benches);
