//! `camloop load` end to end over real loopback sockets, against tiny
//! in-test servers (plain threads) that count what arrived or send MJPEG
//! parts of their choosing, and against a real `camloop serve`, plus the
//! sans-IO framing with arbitrary chunking.
//!
//! Assertions are on counts and contents only, never on timing.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use camloop::load::{
    parse_escapes, run, run_viewers, Expect, Greeting, LoadArgs, ReplyCounter, ViewerReport,
};
use clap::Parser;
use proptest::prelude::*;
use support::{read_listening_line, Client, CAMLOOP};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    load: LoadArgs,
}

/// Parses the flags of a `camloop load` command line as a user would type
/// them (without quotes: words are split at whitespace).
fn load_args(target: SocketAddr, flags: &str) -> LoadArgs {
    let target = target.to_string();
    let line = ["load", target.as_str()]
        .into_iter()
        .chain(flags.split_whitespace());
    Cli::try_parse_from(line).expect("valid flags").load
}

/// What the in-test server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicU64,
    bytes: AtomicU64,
    lines: AtomicU64,
}

/// A thread-per-connection line server: sends `greeting` on connect, then
/// answers every `\n`-terminated line with `reply`. Lines are counted before
/// they are answered, so a reply the client holds proves its line is counted.
fn line_server(greeting: &'static [u8], reply: &'static [u8]) -> (SocketAddr, Arc<Seen>) {
    serve(move |mut stream, seen| {
        if stream.write_all(greeting).is_err() {
            return;
        }
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buffer) {
            let lines = buffer[..n].iter().filter(|&&b| b == b'\n').count();
            seen.bytes.fetch_add(n as u64, Ordering::SeqCst);
            seen.lines.fetch_add(lines as u64, Ordering::SeqCst);
            if stream.write_all(&reply.repeat(lines)).is_err() {
                return;
            }
        }
    })
}

/// A line server that answers each batch of lines only after `delay`: a
/// server (or a machine) slower than the run itself.
fn slow_line_server(delay: Duration, reply: &'static [u8]) -> (SocketAddr, Arc<Seen>) {
    serve(move |mut stream, seen| {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buffer) {
            let lines = buffer[..n].iter().filter(|&&b| b == b'\n').count();
            seen.lines.fetch_add(lines as u64, Ordering::SeqCst);
            thread::sleep(delay);
            if stream.write_all(&reply.repeat(lines)).is_err() {
                return;
            }
        }
    })
}

/// A server that reads the first request of each connection and then resets it.
fn resetting_server() -> (SocketAddr, Arc<Seen>) {
    serve(|mut stream, seen| {
        let mut buffer = [0u8; 64];
        if let Ok(n) = stream.read(&mut buffer) {
            seen.bytes.fetch_add(n as u64, Ordering::SeqCst);
        }
        // A zero linger turns the close into a RST.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    })
}

fn serve(
    handle: impl Fn(TcpStream, &Seen) + Send + Sync + Clone + 'static,
) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let seen = Arc::new(Seen::default());
    let server_seen = Arc::clone(&seen);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            server_seen.connections.fetch_add(1, Ordering::SeqCst);
            let (seen, handle) = (Arc::clone(&server_seen), handle.clone());
            thread::spawn(move || handle(stream, &seen));
        }
    });
    (addr, seen)
}

/// Waits (boundedly) until the server thread has caught up with `expected`.
fn eventually(counter: &AtomicU64, expected: u64) -> u64 {
    let give_up = Instant::now() + Duration::from_secs(2);
    while counter.load(Ordering::SeqCst) != expected && Instant::now() < give_up {
        thread::sleep(Duration::from_millis(5));
    }
    counter.load(Ordering::SeqCst)
}

#[test]
fn pipelined_run_gets_one_reply_per_request() {
    let (addr, seen) = line_server(b"", b"PONG\n");
    let args = load_args(addr, r"--conns 4 --pipeline 8 --warmup 0.1 --duration 0.3");
    let report = run(&args).expect("run");

    assert!(report.requests > 0, "some replies fell in the window");
    assert_eq!(report.errors, 0);
    assert_eq!(report.unanswered, 0);
    assert_eq!(report.connected, 4);
    assert_eq!(report.replies_received, report.requests_sent);
    assert_eq!(seen.lines.load(Ordering::SeqCst), report.requests_sent);
    assert_eq!(
        report.bytes_sent,
        report.requests_sent * b"PING\r\n".len() as u64
    );
    assert!(report.reply_sample.starts_with(b"PONG\nPONG\n"));
}

#[test]
fn bare_greeting_of_7_bytes_is_skipped_before_replies_are_counted() {
    // camloop's classic greeting: `Welcome` with no terminator.
    let (addr, seen) = line_server(b"Welcome", b"Received\n");
    let args = load_args(
        addr,
        r"--conns 3 --greeting bytes:7 --request hello\n --warmup 0.1 --duration 0.3",
    );
    let report = run(&args).expect("run");

    assert_eq!(report.errors, 0);
    assert_eq!(report.replies_received, report.requests_sent);
    assert_eq!(seen.lines.load(Ordering::SeqCst), report.requests_sent);
    assert!(report.reply_sample.starts_with(b"Received\n"));
}

#[test]
fn fixed_size_replies_are_counted_with_expect_bytes() {
    let (addr, seen) = line_server(b"Welcome\n", b"Received");
    let args = load_args(
        addr,
        r"--conns 2 --pipeline 4 --greeting line --expect bytes:8 --request hello\r\n --warmup 0.1 --duration 0.3",
    );
    let report = run(&args).expect("run");

    assert_eq!(report.errors, 0);
    assert_eq!(report.replies_received, report.requests_sent);
    assert_eq!(seen.lines.load(Ordering::SeqCst), report.requests_sent);
}

#[test]
fn server_pid_adds_the_servers_cpu_per_request_and_is_checked_first() {
    // The in-test server runs in this process, so its pid is ours.
    let (addr, _seen) = line_server(b"", b"PONG\n");
    let flags = format!(
        "--conns 2 --warmup 0.1 --duration 0.3 --server-pid {}",
        std::process::id()
    );
    let report = run(&load_args(addr, &flags)).expect("run");
    assert!(report.requests > 0);
    assert!(
        report.server_cpu_us_per_request.is_some(),
        "{}",
        report.to_json()
    );
    assert!(report.to_json().contains("\"server_cpu_us_per_request\":"));

    let without = run(&load_args(addr, "--conns 1 --warmup 0 --duration 0.1")).expect("run");
    assert_eq!(without.server_cpu_us_per_request, None);

    // No such process (above the kernel's pid_max): refused before connecting.
    let error = run(&load_args(addr, "--server-pid 4294967295")).expect_err("no such pid");
    assert!(error.contains("--server-pid"), "{error}");
}

#[test]
fn rate_caps_the_requests_sent() {
    let (addr, _seen) = line_server(b"", b"+PONG\r\n");
    let args = load_args(addr, r"--conns 2 --rate 40 --warmup 0 --duration 0.5");
    let report = run(&args).expect("run");

    // The pacer issues one request per 1/40 s from the start, none after the window.
    assert!(
        report.requests_sent <= 40 / 2 + 1,
        "sent {}",
        report.requests_sent
    );
    assert_eq!(report.replies_received, report.requests_sent);
}

#[test]
fn replies_that_come_well_after_the_window_are_still_counted() {
    // Every reply takes 1.5 s, longer than the whole run: all of them
    // arrive during the drain, which must wait for them.
    let (addr, seen) = slow_line_server(Duration::from_millis(1500), b"+PONG\r\n");
    let args = load_args(addr, r"--conns 2 --rate 20 --warmup 0 --duration 0.3");
    let report = run(&args).expect("run");

    assert!(report.requests_sent >= 2, "sent {}", report.requests_sent);
    assert_eq!(report.unanswered, 0, "{report:?}");
    assert_eq!(report.replies_received, report.requests_sent);
    assert_eq!(seen.lines.load(Ordering::SeqCst), report.requests_sent);
}

#[test]
fn hold_opens_exactly_n_idle_connections() {
    let (addr, seen) = line_server(b"Welcome", b"");
    let args = load_args(addr, r"--hold 25 --duration 0.2");
    let report = run(&args).expect("run");

    assert_eq!(report.connected, 25);
    assert_eq!(report.errors, 0);
    assert_eq!(report.requests_sent, 0);
    assert_eq!(eventually(&seen.connections, 25), 25);
    assert_eq!(
        seen.bytes.load(Ordering::SeqCst),
        0,
        "a held connection sends nothing"
    );
}

/// A child process, killed and reaped on drop, so a failing test leaves
/// nothing running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Established IPv4 connections of process `pid` whose remote end is
/// loopback port `port`, from the kernel's table (`/proc/net/tcp`: `sl
/// local rem st … inode`, ports in hex, state 01 = ESTABLISHED), kept to
/// the sockets among `pid`'s descriptors (`/proc/PID/fd`, `socket:[INODE]`).
/// On the client's side of each socket, so it shows which listening port
/// every connection went to. Without the process filter another test's
/// connection could count: its server side has the remote port of its
/// client, which the kernel may have picked equal to `port`.
fn established_to_port(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the load tool's descriptors")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let remote = format!("0100007F:{port:04X}");
    // Counted by inode: /proc/net/tcp is read in pieces while other tests
    // open and close connections, and a socket can then be listed twice.
    let established: std::collections::HashSet<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let inode = *fields.get(9)?;
            (fields.get(2) == Some(&remote.as_str())
                && fields.get(3) == Some(&"01")
                && inodes.contains(inode))
            .then_some(inode)
        })
        .collect();
    established.len()
}

#[test]
fn hold_spreads_idle_connections_over_two_listening_ports_of_camloop() {
    // More than a soft descriptor limit of 1024 allows, so the tool must
    // raise its own limit to hold them all.
    const HELD: usize = 1100;
    let mut server = Reaped(
        Command::new(CAMLOOP)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--camera", "none", "--http", "off", "--rtsp", "off"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn camloop serve"),
    );
    let listening = read_listening_line(&mut server.0);
    let addrs: Vec<SocketAddr> = match &listening {
        Some((control, http)) if http == "off" => control
            .split(',')
            .map(|addr| addr.parse().expect("a control address"))
            .collect(),
        _ => panic!("expected `listening control=ADDR,ADDR http=off`, got {listening:?}"),
    };
    assert_eq!(addrs.len(), 2, "{listening:?}");

    // The shell lowers the soft limit to 1024 for the tool alone.
    let load = Reaped(
        Command::new("sh")
            .args([
                "-c",
                r#"ulimit -S -n 1024 && exec "$0" "$@""#,
                CAMLOOP,
                "load",
            ])
            .args([addrs[0].to_string(), addrs[1].to_string()])
            .args(["--hold", &HELD.to_string(), "--greeting", "bytes:7"])
            // Longer than the test; it is killed at the end.
            .args(["--duration", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn camloop load"),
    );

    let mut control = Client::connect(addrs[0]);
    control.expect("Welcome");
    // The control connection itself is one of the clients.
    let stats = control.wait_for_clients(HELD as u64 + 1);
    assert_eq!(stats.get("clients"), HELD as u64 + 1, "{stats:?}");
    // Half of the tool's connections on each port.
    let pid = load.0.id();
    assert_eq!(established_to_port(pid, addrs[0].port()), HELD / 2);
    assert_eq!(established_to_port(pid, addrs[1].port()), HELD / 2);
    drop(load);
}

#[test]
fn auth_sends_the_token_first_so_pings_get_pong_from_a_server_with_a_token() {
    let server = support::ServerBuilder::new()
        .args(["--token", "s3cret"])
        .spawn();
    let flags =
        r"--conns 3 --pipeline 2 --request ping\n --greeting bytes:7 --warmup 0.1 --duration 0.3";

    let report = run(&load_args(server.addr, &format!("{flags} --auth s3cret"))).expect("run");
    assert_eq!(report.errors, 0, "{}", report.to_json());
    assert!(report.requests > 0, "{}", report.to_json());
    assert_eq!(report.replies_received, report.requests_sent);
    // The `OK` to `auth` is not counted as a reply: the first one is a PONG.
    assert!(
        report.reply_sample.starts_with(b"PONG\nPONG\n"),
        "{}",
        report.to_json()
    );
    // Three auth lines besides the pings.
    let auth_bytes = 3 * b"auth s3cret\n".len() as u64;
    assert_eq!(
        report.bytes_sent,
        report.requests_sent * b"ping\n".len() as u64 + auth_bytes
    );

    // Without --auth every request is refused, which the reply shows.
    let refused = run(&load_args(server.addr, flags)).expect("run");
    assert!(
        refused.reply_sample.starts_with(b"ERR auth: required\n"),
        "{}",
        refused.to_json()
    );

    // A wrong token is an auth failure per connection, and no request is
    // sent after it: neither with requests nor holding connections.
    let wrong = run(&load_args(server.addr, &format!("{flags} --auth nope"))).expect("run");
    assert_eq!(wrong.auth_failures, 3, "{}", wrong.to_json());
    assert_eq!(wrong.errors, 3);
    assert_eq!(wrong.requests_sent, 0);
    assert!(
        wrong
            .first_error
            .as_deref()
            .unwrap_or("")
            .contains("wrong token"),
        "{}",
        wrong.to_json()
    );
    let hold = "--hold 2 --greeting bytes:7 --warmup 0 --duration 0.3 --auth nope";
    let held = run(&load_args(server.addr, hold)).expect("run");
    assert_eq!(held.auth_failures, 2, "{}", held.to_json());

    let mut control = server.client();
    assert_eq!(control.request("auth s3cret"), "OK");
    // Only the refused pings and the wrong tokens failed: each of the
    // three runs without a good token counts, the right one never did.
    assert_eq!(
        control.stats().get("auth_failures"),
        refused.replies_received + 3 + 2
    );
}

#[test]
fn too_many_connections_for_the_local_ports_are_refused_before_connecting() {
    // One destination gets only as many connections as there are local ports.
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("read ip_local_port_range");
    let bounds: Vec<usize> = range
        .split_ascii_whitespace()
        .map(|bound| bound.parse().expect("a port"))
        .collect();
    let ports = bounds[1] + 1 - bounds[0];
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let error = run(&load_args(addr, &format!("--hold {}", ports + 1)))
        .expect_err("more connections than local ports");
    assert!(error.contains("local ports"), "{error}");
}

#[test]
fn server_resets_are_counted_as_errors_not_panics() {
    let (addr, _seen) = resetting_server();
    let args = load_args(addr, r"--conns 5 --warmup 0 --duration 1");
    let report = run(&args).expect("connections were made, so the run reports");

    assert_eq!(report.connected, 5);
    assert_eq!(
        report.errors, 5,
        "one error per reset connection: {report:?}"
    );
    assert_eq!(report.replies_received, 0);
}

#[test]
fn refused_connects_end_the_run_with_an_error() {
    let unused = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = unused.local_addr().expect("local addr");
    drop(unused);
    let args = load_args(addr, r"--conns 3 --warmup 0 --duration 0.2");

    let error = run(&args).expect_err("nothing listens there");
    assert!(error.contains("no connection"), "{error}");
}

#[test]
fn bad_flags_are_rejected_before_connecting() {
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    for flags in ["--pipeline 0", "--duration 0", r"--request \q", "--rate 0"] {
        assert!(run(&load_args(addr, flags)).is_err(), "{flags:?}");
    }
}

// ---------------------------------------------------------------------------
// --mjpeg: viewers of an MJPEG stream

/// Parses `camloop load --mjpeg URL FLAGS` as a user would type it.
fn mjpeg_args(url: &str, flags: &str) -> LoadArgs {
    let line = ["load", "--mjpeg", url]
        .into_iter()
        .chain(flags.split_whitespace());
    Cli::try_parse_from(line).expect("valid flags").load
}

/// A small real JPEG, so the splitter finds its frame header.
fn test_jpeg() -> Vec<u8> {
    let pixels: Vec<u8> = (0..16 * 16 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 80)
        .encode(&pixels, 16, 16, jpeg_encoder::ColorType::Rgb)
        .expect("encode");
    jpeg
}

/// One part as camloop sends it, with `Content-Length: length`.
fn mjpeg_part(frame: u64, length: usize, body: &[u8]) -> Vec<u8> {
    let mut part = format!(
        "--testframe\r\nContent-Type: image/jpeg\r\nContent-Length: {length}\r\n\
         X-Timestamp: 1.000000\r\nX-Frame: {frame}\r\n\r\n"
    )
    .into_bytes();
    part.extend_from_slice(body);
    part.extend_from_slice(b"\r\n");
    part
}

/// What the in-test MJPEG server does after the parts.
#[derive(Clone, Copy)]
enum AfterParts {
    /// Closes the connection.
    Close,
    /// Writes nothing more but keeps the connection open until the viewer
    /// closes it.
    Stall,
}

/// A thread-per-connection MJPEG server: reads the request head, answers
/// 200 with a multipart body made of `body`, then closes or stalls.
fn mjpeg_server(body: Vec<u8>, after: AfterParts) -> String {
    let (addr, _seen) = serve(move |mut stream, _seen| {
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => request.push(byte[0]),
                _ => return,
            }
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=testframe\r\n\r\n";
        if stream.write_all(head.as_bytes()).is_err() || stream.write_all(&body).is_err() {
            return;
        }
        if let AfterParts::Stall = after {
            // Blocks until the viewer closes; the client sends nothing more.
            let _ = stream.read(&mut byte);
        }
    });
    format!("http://{addr}/stream.mjpg")
}

/// `"viewer_frames":[..]` of a JSON report, as numbers.
fn json_viewer_frames(json: &str) -> Vec<u64> {
    let (_, rest) = json
        .split_once("\"viewer_frames\":[")
        .expect("viewer_frames");
    let (list, _) = rest.split_once(']').expect("closing bracket");
    list.split(',')
        .filter(|n| !n.is_empty())
        .map(|n| n.parse().expect("a count"))
        .collect()
}

/// A JSON report's integer field.
fn json_u64(json: &str, name: &str) -> u64 {
    let key = format!("\"{name}\":");
    let (_, rest) = json
        .split_once(&key)
        .unwrap_or_else(|| panic!("{name} in {json}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{name} in {json}"))
}

#[test]
fn every_viewer_counts_every_part_and_a_server_close_is_a_drop() {
    const VIEWERS: usize = 4;
    const PARTS: u64 = 5;
    let jpeg = test_jpeg();
    let body: Vec<u8> = (1..=PARTS)
        .flat_map(|n| mjpeg_part(n, jpeg.len(), &jpeg))
        .collect();
    let url = mjpeg_server(body, AfterParts::Close);
    // Every viewer is dropped after its parts, which ends the run early.
    let flags = format!("--viewers {VIEWERS} --warmup 0 --duration 60");
    let report = run_viewers(&mjpeg_args(&url, &flags)).expect("run");

    assert_eq!(report.viewing.connected, VIEWERS as u64);
    assert_eq!(
        report.viewing.viewer_frames,
        vec![PARTS; VIEWERS],
        "{report:?}"
    );
    assert_eq!(report.viewing.frames, PARTS * VIEWERS as u64);
    assert_eq!(report.viewing.frames_run, report.viewing.frames);
    assert_eq!(report.viewing.dropped_viewers, VIEWERS as u64);
    assert_eq!(report.errors, VIEWERS as u64, "the drops only: {report:?}");
    assert_eq!(
        (
            report.malformed_parts,
            report.frame_order_errors,
            report.frames_skipped
        ),
        (0, 0, 0)
    );
    // Every part carried an X-Timestamp (of 1970, so very old).
    let ages = report.viewing.frame_age_us.expect("ages");
    assert_eq!(ages.count, report.viewing.frames);
}

#[test]
fn a_viewer_the_server_stops_writing_to_is_stalled_not_dropped() {
    const VIEWERS: usize = 3;
    let jpeg = test_jpeg();
    let body: Vec<u8> = (1..=3)
        .flat_map(|n| mjpeg_part(n, jpeg.len(), &jpeg))
        .collect();
    let url = mjpeg_server(body, AfterParts::Stall);
    // The run lasts its whole duration, five times --stall-after.
    let flags = format!("--viewers {VIEWERS} --warmup 0 --duration 1 --stall-after 0.2 --json");
    let report = run_viewers(&mjpeg_args(&url, &flags)).expect("run");

    assert_eq!(report.viewing.viewer_frames, vec![3; VIEWERS], "{report:?}");
    assert_eq!(report.viewing.stalled_viewers, VIEWERS as u64, "{report:?}");
    assert_eq!(report.viewing.stalled_at_end, VIEWERS as u64);
    assert_eq!(
        report.viewing.stalls, VIEWERS as u64,
        "one stall each, never over"
    );
    assert_eq!(report.viewing.dropped_viewers, 0);
    assert_eq!(report.errors, 0, "a stall is not an error: {report:?}");
    assert!(report.to_json().contains("\"stalled_viewers\":3"));
}

#[test]
fn malformed_parts_are_counted_and_the_good_ones_still_arrive() {
    let jpeg = test_jpeg();
    let mut body = mjpeg_part(1, jpeg.len(), &jpeg);
    // Content-Length shorter than the JPEG: the part ends inside it.
    body.extend(mjpeg_part(2, 40, &jpeg));
    // Not a JPEG at all, with a correct length.
    body.extend(mjpeg_part(3, 18, b"garbage, no JPEG!!"));
    // Garbage between parts, with no boundary: skipped.
    body.extend_from_slice(b"\x00\xffnot a part\r\n");
    // Content-Length longer than the JPEG: the next boundary cuts it.
    body.extend(mjpeg_part(4, jpeg.len() + 500, &jpeg));
    body.extend(mjpeg_part(5, jpeg.len(), &jpeg));
    let url = mjpeg_server(body, AfterParts::Close);
    let report =
        run_viewers(&mjpeg_args(&url, "--viewers 2 --warmup 0 --duration 60")).expect("run");

    assert_eq!(
        report.viewing.viewer_frames,
        vec![2, 2],
        "parts 1 and 5: {report:?}"
    );
    assert_eq!(report.malformed_parts, 2 * 3, "{report:?}");
    assert!(report.skipped_bytes > 0);
    assert_eq!(report.errors, 2 * 3 + 2, "malformed parts and the drops");
    // Frames 2 to 4 never arrived whole.
    assert_eq!(report.frames_skipped, 2 * 3);
}

#[test]
fn mjpeg_viewers_of_camloop_each_get_frames_and_the_totals_add_up() {
    const VIEWERS: usize = 5;
    let snapshots = support::TempDir::new("mjpeg-load");
    let mut server = Reaped(
        Command::new(CAMLOOP)
            .args(support::SERVE_ON_LOOPBACK)
            .args(["--camera", "synthetic", "--width", "160", "--height", "120"])
            .args(["--token", "s3cret", "--snapshot-dir"])
            .arg(snapshots.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn camloop serve"),
    );
    let http = match read_listening_line(&mut server.0) {
        Some((_, http)) => http,
        None => panic!("no listening line"),
    };
    let url = format!("http://{http}/stream.mjpg");

    let flags = format!("--viewers {VIEWERS} --warmup 0.5 --duration 1 --auth s3cret --json");
    let report: ViewerReport = run_viewers(&mjpeg_args(&url, &flags)).expect("run");
    let json = report.to_json();
    assert_eq!(report.errors, 0, "{json}");
    let per_viewer = json_viewer_frames(&json);
    assert_eq!(per_viewer.len(), VIEWERS, "{json}");
    assert!(
        per_viewer.iter().all(|&n| n > 0),
        "every viewer got frames: {json}"
    );
    assert_eq!(per_viewer.iter().sum::<u64>(), json_u64(&json, "frames"));
    assert!(json_u64(&json, "frames_run") >= json_u64(&json, "frames"));
    // camloop stamps every part: one age per part in the window.
    assert_eq!(json_u64(&json, "frame_ages"), json_u64(&json, "frames"));
    assert_eq!(report.viewing.untimed_frames, 0);

    // Everything the viewers counted, the server sent.
    let mut state = TcpStream::connect(&http).expect("connect");
    state
        .write_all(b"GET /state?token=s3cret HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    state.read_to_string(&mut reply).expect("read /state");
    let (_, body) = reply.split_once("\r\n\r\n").expect("a body");
    assert!(
        json_u64(body, "frames_sent") >= report.viewing.frames_run,
        "{body}"
    );

    // Without the token every viewer is refused, and the report says why.
    let refused = run_viewers(&mjpeg_args(&url, "--viewers 2 --warmup 0 --duration 1"))
        .expect("the viewers connected");
    assert_eq!(refused.http_errors, 2, "{refused:?}");
    assert!(
        refused
            .viewing
            .first_error
            .as_deref()
            .unwrap_or("")
            .contains("401"),
        "{refused:?}"
    );
}

#[test]
fn mjpeg_flags_are_checked_before_connecting() {
    let url = "http://127.0.0.1:9/stream.mjpg";
    for flags in ["--viewers 0", "--stall-after 0", "--duration 0"] {
        assert!(run_viewers(&mjpeg_args(url, flags)).is_err(), "{flags:?}");
    }
    for bad in [
        "https://127.0.0.1:9/",
        "http://u:p@127.0.0.1:9/",
        "127.0.0.1:9",
    ] {
        assert!(run_viewers(&mjpeg_args(bad, "")).is_err(), "{bad:?}");
    }
    // The line-mode flags do not mix with --mjpeg.
    let error = run_viewers(&mjpeg_args(url, "127.0.0.1:9")).expect_err("a TARGET too");
    assert!(error.contains("drop 127.0.0.1:9"), "{error}");
    let extras: [&[&str]; 2] = [&["--hold", "5"], &["--conns", "5"]];
    for extra in extras {
        let line = ["load", "--mjpeg", url]
            .into_iter()
            .chain(extra.iter().copied());
        assert!(Cli::try_parse_from(line).is_err(), "{extra:?}");
    }
    // And the viewer flags need --mjpeg.
    assert!(Cli::try_parse_from(["load", "127.0.0.1:9", "--viewers", "3"]).is_err());
}

#[test]
fn escapes_cover_cr_lf_tab_backslash_and_hex() {
    assert_eq!(parse_escapes(r"PING\r\n").unwrap(), b"PING\r\n");
    assert_eq!(parse_escapes(r"a\tb\\c").unwrap(), b"a\tb\\c");
    assert_eq!(parse_escapes(r"\x00\x7F\xff").unwrap(), [0x00, 0x7f, 0xff]);
    assert_eq!(parse_escapes("plain").unwrap(), b"plain");
}

#[test]
fn unknown_truncated_or_dangling_escapes_are_rejected() {
    assert!(parse_escapes(r"\q").is_err());
    assert!(parse_escapes(r"\x4").is_err());
    assert!(parse_escapes(r"\xzz").is_err());
    assert!(parse_escapes("ends in \\").is_err());
}

#[test]
fn expect_and_greeting_parse_their_flag_values() {
    assert_eq!("line".parse::<Expect>(), Ok(Expect::Line));
    assert_eq!("bytes:8".parse::<Expect>(), Ok(Expect::Bytes(8)));
    assert!("bytes:0".parse::<Expect>().is_err());
    assert!("none".parse::<Expect>().is_err());
    assert_eq!("none".parse::<Greeting>(), Ok(Greeting::None));
    assert_eq!("line".parse::<Greeting>(), Ok(Greeting::Line));
    assert_eq!("bytes:7".parse::<Greeting>(), Ok(Greeting::Bytes(7)));
    assert!("bytes:x".parse::<Greeting>().is_err());
}

/// Feeds `stream` in chunks cut at `cuts` through a greeting and a reply
/// counter, as a connection does; returns (greeting bytes, replies).
fn feed_chunked(
    stream: &[u8],
    cuts: &[usize],
    greeting: Greeting,
    expect: Expect,
) -> (usize, usize) {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
    cuts.push(stream.len());
    cuts.sort_unstable();
    let (mut greeting, mut counter) = (greeting, ReplyCounter::new(expect));
    let (mut greeting_bytes, mut replies, mut from) = (0, 0, 0);
    for to in cuts {
        let chunk = &stream[from..to];
        let skipped = greeting.consume(chunk);
        greeting_bytes += skipped;
        replies += counter.feed(&chunk[skipped..]);
        from = to;
    }
    (greeting_bytes, replies)
}

proptest! {
    #[test]
    fn line_replies_after_a_line_greeting_survive_any_chunking(
        lines in proptest::collection::vec("[ -~]{0,12}", 0..20),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut stream = b"Welcome\n".to_vec();
        for line in &lines {
            stream.extend_from_slice(line.as_bytes());
            stream.push(b'\n');
        }
        let counted = feed_chunked(&stream, &cuts, Greeting::Line, Expect::Line);
        prop_assert_eq!(counted, (8, lines.len()));
    }

    #[test]
    fn fixed_size_replies_after_a_bare_greeting_survive_any_chunking(
        replies in 0usize..40,
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let stream = [&b"Welcome"[..], &b"Received".repeat(replies)].concat();
        let counted = feed_chunked(&stream, &cuts, Greeting::Bytes(7), Expect::Bytes(8));
        prop_assert_eq!(counted, (7, replies));
    }
}
