//! Hostile input (issue 8): proptest sends random bytes in random chunks to
//! a real server, one fresh connection per case, and checks the server
//! still answers. Few cases, since each one is a real conversation; the
//! fuzz targets (`fuzz/`) cover the parsers themselves in depth.
//!
//! Each test runs its cases against one shared server, with proptest's
//! `TestRunner` driven by hand so the server outlives the cases and is
//! killed when the test ends.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use camloop::protocol::MAX_LINE_BYTES;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::{Client, TempDir, CAMLOOP, HELP_REPLY, TIMEOUT};

/// Cases per test: each is a real connection with up to ~100 KB of junk.
const CASES: u32 = 24;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        // The runner is driven by hand, so there is no source file to
        // record regressions next to; a failure prints its minimal input.
        failure_persistence: None,
        ..Config::default()
    })
}

// ---------------------------------------------------------------------------
// What hostile clients send

/// Bytes that are not what the protocol expects, with the shapes that
/// matter to a line or HTTP parser overrepresented.
fn junk_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..512),
        2 => (1usize..12_000).prop_map(|n| vec![b'x'; n]),
        1 => prop::collection::vec(0x80u8..=0xff, 1..2_000),
        2 => prop::sample::select(vec!["\r", "\0", "\n", "\r\n", "\r\r\n", "\0\n", "\n\n\n"])
            .prop_map(|s| s.as_bytes().to_vec()),
        2 => prop::sample::select(vec![
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /capture HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
            "POST /capture HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HEAD /metrics HTTP/1.0\r\n",
            "Content-Length: 99999999999999999999\r\n",
            "Host: a\r\nHost: b\r\n\r\n",
            "X-Long: ",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        // Real requests too, so junk lands between them. Never `shutdown`,
        // and never `help`, which marks the end of a case (see below).
        2 => prop::sample::select(vec![
            "ping\n", "PING\r\n", "stats\n", "frame\n", "c\n", "c", "auth x\n", "exit\n", "quit",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

/// A case: the junk, and the sizes of the writes it is cut into.
fn hostile_case() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    (
        prop::collection::vec(junk_piece(), 1..16).prop_map(|pieces| pieces.concat()),
        prop::collection::vec(1usize..2_048, 1..32),
    )
}

/// Sends `junk` in writes whose sizes cycle through `sizes`. Stops quietly
/// if the server closes the connection (an over-long line, `exit`).
fn send_in_chunks(stream: &mut TcpStream, junk: &[u8], sizes: &[usize]) {
    let mut rest = junk;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            return;
        }
        let (chunk, after) = rest.split_at((*size).min(rest.len()));
        if stream.write_all(chunk).is_err() {
            return;
        }
        rest = after;
    }
}

/// Everything the server sent on one connection, read by a helper thread
/// so the server never waits on us (it would stop reading a client whose
/// replies pile up).
struct Drain {
    received: Arc<Mutex<Vec<u8>>>,
    closed: mpsc::Receiver<()>,
}

impl Drain {
    fn start(stream: &TcpStream) -> Drain {
        let mut reader = stream.try_clone().expect("clone socket");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        let (closed_tx, closed) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            // EOF, a reset, or our own shutdown() ends it.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = closed_tx.send(());
        });
        Drain { received, closed }
    }

    /// Waits until what was received ends with `tail` (true) or the server
    /// closed the connection (false).
    fn wait_for_tail_or_close(&self, tail: &[u8]) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if self.received.lock().unwrap().ends_with(tail) {
                return true;
            }
            match self.closed.recv_timeout(Duration::from_millis(10)) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return self.received.lock().unwrap().ends_with(tail);
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the connection neither answered nor closed")
                }
            }
        }
    }
}

/// A connection ready for junk: small writes go out as they are.
fn hostile_connection(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

// ---------------------------------------------------------------------------
// The control port

/// Ends every case on the junk connection: a newline finishes whatever line
/// the junk left open (or switches raw framing to lines), then `ping`, then
/// `help`, whose reply the junk cannot produce, to know the `PONG` is ours.
const MARKER: &[u8] = b"\nping\nhelp\n";

fn marker_replies() -> Vec<u8> {
    format!("PONG\n{HELP_REPLY}\n").into_bytes()
}

/// Whether the junk holds a reason for the server to close the connection:
/// `exit` or `quit`, or a line over the limit (which needs a stretch
/// without newline at least that long). Generous on purpose: it only has
/// to rule out closing for no reason.
fn closing_is_explained(junk: &[u8]) -> bool {
    let lower = junk.to_ascii_lowercase();
    let says = |word: &[u8]| lower.windows(word.len()).any(|w| w == word);
    let longest_line = junk.split(|&b| b == b'\n').map(<[u8]>::len).max();
    says(b"exit") || says(b"quit") || longest_line.unwrap_or(0) > MAX_LINE_BYTES
}

#[test]
fn random_bytes_on_the_control_port_never_stop_it_answering_ping() {
    let server = support::ServerBuilder::new().camera("synthetic").spawn();
    let mut watcher = server.client();
    runner()
        .run(&hostile_case(), |(junk, sizes)| {
            let mut stream = hostile_connection(server.addr);
            let drain = Drain::start(&stream);
            send_in_chunks(&mut stream, &junk, &sizes);
            // If the junk left the connection open, it still answers.
            let _ = stream.write_all(MARKER);
            let answered = drain.wait_for_tail_or_close(&marker_replies());
            let _ = stream.shutdown(Shutdown::Both);

            prop_assert!(
                answered || closing_is_explained(&junk),
                "the server closed a connection it had no reason to close"
            );

            // A new connection is served whatever happened to this one.
            let mut fresh = server.client();
            prop_assert_eq!(fresh.request("ping"), "PONG");
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}\nserver log:\n{}", server.log()));
    assert_eq!(watcher.request("ping"), "PONG");
    assert_eq!(watcher.wait_for_clients(1).get("clients"), 1);
}

// ---------------------------------------------------------------------------
// The HTTP port

/// `camloop serve` with both a control and an HTTP listener on loopback
/// (the support module's builder only knows `--http off`). Killed on drop.
struct HttpServer {
    child: Child,
    control: SocketAddr,
    http: SocketAddr,
    _snapshots: TempDir,
}

impl HttpServer {
    fn start() -> HttpServer {
        let snapshots = TempDir::new("hostile-http");
        let mut child = Command::new(CAMLOOP)
            .args(support::SERVE_ON_LOOPBACK)
            .args(["--camera", "synthetic", "--snapshot-dir"])
            .arg(snapshots.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn camloop serve");
        let addrs = support::read_listening_line(&mut child)
            .and_then(|(control, http)| Some((control.parse().ok()?, http.parse().ok()?)));
        let Some((control, http)) = addrs else {
            let _ = child.kill();
            panic!("expected `listening control=ADDR http=ADDR`");
        };
        HttpServer {
            child,
            control,
            http,
            _snapshots: snapshots,
        }
    }

    /// `GET path` on a new connection; the whole response.
    fn get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(self.http).expect("connect to HTTP");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .expect("send request");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read response");
        String::from_utf8_lossy(&response).into_owned()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn random_bytes_on_the_http_port_never_stop_it_serving() {
    let server = HttpServer::start();
    let mut watcher = Client::connect(server.control);
    watcher.expect("Welcome");
    runner()
        .run(&hostile_case(), |(junk, sizes)| {
            let mut stream = hostile_connection(server.http);
            let _drain = Drain::start(&stream);
            send_in_chunks(&mut stream, &junk, &sizes);
            // The junk may have left a head half sent or started a stream;
            // either way this connection is done.
            let _ = stream.shutdown(Shutdown::Both);

            let response = server.get("/state");
            prop_assert!(response.starts_with("HTTP/1.1 200 "), "{}", response);
            let mut control = Client::connect(server.control);
            control.expect("Welcome");
            prop_assert_eq!(control.request("ping"), "PONG");
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(watcher.wait_for_clients(1).get("clients"), 1);
}
