//! One `ping` round trip through a real `camloop serve` over loopback, and
//! a pipelined batch of 100. Starts the server binary on port 0 and stops
//! it at the end. Run: `cargo bench --bench loopback`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server and returns it with its control address.
fn start_server() -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_camloop"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "off",
            "--rtsp",
            "off",
            "--camera",
            "none",
        ])
        .args(["--framing", "line", "--snapshot-dir"])
        .arg(std::env::temp_dir())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start camloop serve");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("control="))
        .expect("control address")
        .to_string();
    (Server(child), addr)
}

fn round_trips(c: &mut Criterion) {
    let (_server, addr) = start_server();
    let stream = TcpStream::connect(&addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut greeting = [0u8; 8];
    reader.read_exact(&mut greeting).expect("greeting"); // "Welcome\n"

    let mut group = c.benchmark_group("loopback");
    let mut line = String::new();
    group.bench_function("ping_round_trip", |b| {
        b.iter(|| {
            writer.write_all(b"ping\n").expect("send");
            line.clear();
            reader.read_line(&mut line).expect("reply");
            assert_eq!(line, "PONG\n");
        })
    });
    let batch = b"ping\n".repeat(100);
    group.throughput(Throughput::Elements(100));
    group.bench_function("ping_pipelined_100", |b| {
        b.iter(|| {
            writer.write_all(&batch).expect("send");
            for _ in 0..100 {
                line.clear();
                reader.read_line(&mut line).expect("reply");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
