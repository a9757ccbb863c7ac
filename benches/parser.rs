//! Control-protocol parser throughput over a pipelined stream, fed in
//! reads of typical sizes. Run: `cargo bench --bench parser`.

use std::hint::black_box;

use camloop::protocol::{Decoder, Framing};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// A pipelined stream of mixed requests, as a load generator sends it.
fn pipelined_stream(requests: usize) -> Vec<u8> {
    let mix: [&[u8]; 4] = [b"ping\r\n", b"stats\n", b"hello there\n", b"PING\r\n"];
    mix.iter()
        .cycle()
        .take(requests)
        .flat_map(|r| r.iter().copied())
        .collect()
}

fn parser_throughput(c: &mut Criterion) {
    let stream = pipelined_stream(10_000);
    let mut group = c.benchmark_group("parser");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    for read_size in [64usize, 4096] {
        group.bench_with_input(
            BenchmarkId::new("line_mode_read_bytes", read_size),
            &read_size,
            |b, &read_size| {
                let mut requests = Vec::with_capacity(16_384);
                b.iter(|| {
                    let mut decoder = Decoder::new(Framing::Line);
                    requests.clear();
                    for read in stream.chunks(read_size) {
                        decoder
                            .feed(black_box(read), &mut requests)
                            .expect("valid stream");
                    }
                    black_box(requests.len())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, parser_throughput);
criterion_main!(benches);
