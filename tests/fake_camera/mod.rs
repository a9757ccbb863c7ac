//! A network camera that misbehaves on purpose, one way each, for the
//! tests of `--camera http://…`. It runs on threads of the *test* process
//! (the server under test may have none; the test may), one per connection.
//!
//! Every camera counts the bytes it sent, so a test can say "it has sent
//! nothing since" as an ordering fact, and misbehaves until the test calls
//! [`FakeCamera::resume`]: from then on every new connection gets a healthy
//! MJPEG stream (connections it is already holding stay as they are, like
//! a camera that rebooted).

#![allow(dead_code)] // each test binary uses a part

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// The multipart boundary the fake camera uses.
pub const BOUNDARY: &str = "fakeframe";
/// Pause between two frames of a healthy stream (about 30 fps).
const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// How often a held connection checks whether the test is over.
const HOLD_POLL: Duration = Duration::from_millis(20);

/// How the camera misbehaves until [`FakeCamera::resume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts and never answers.
    Silent,
    /// Sends a multipart response head, then nothing.
    HeadThenStop,
    /// Streams three frames, then half of one, then nothing.
    StopMidFrame,
    /// Answers with bytes that are not HTTP, again and again.
    Garbage,
    /// Trickles a response head that never ends, one byte every 50 ms, so
    /// a client with only a read timeout never times out: only a deadline
    /// for the whole head ends the wait.
    Trickle,
    /// Sends the head and one frame, then closes the connection.
    CloseAfterEachFrame,
    /// 401 without these Basic credentials, a healthy stream with them.
    BasicAuth {
        /// The user name expected.
        user: String,
        /// The password expected.
        password: String,
    },
    /// An `image/jpeg` snapshot URL: one JPEG per request, kept alive.
    Snapshot,
    /// A healthy stream from the start.
    Healthy,
}

#[derive(Default)]
struct Shared {
    resumed: AtomicBool,
    over: AtomicBool,
    bytes_sent: AtomicU64,
    connections: AtomicU64,
    requests: AtomicU64,
    frames_sent: AtomicU64,
    /// Connections that reached their silence (see [`FakeCamera::wait_for_silence`]).
    holding: AtomicU64,
}

/// A fake camera listening on a loopback port.
pub struct FakeCamera {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The JPEGs it sends, in turn.
    pub frames: Arc<Vec<Vec<u8>>>,
}

impl FakeCamera {
    /// Listens on a free port and serves `behaviour`; multipart parts carry
    /// a `Content-Length` when `with_length`.
    pub fn start(behaviour: Behaviour, with_length: bool) -> FakeCamera {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake camera");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let frames = Arc::new(test_frames());
        let (thread_shared, thread_frames) = (shared.clone(), frames.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if thread_shared.over.load(Ordering::SeqCst) {
                    return;
                }
                thread_shared.connections.fetch_add(1, Ordering::SeqCst);
                let conn = Conn {
                    stream,
                    shared: thread_shared.clone(),
                    frames: thread_frames.clone(),
                    with_length,
                };
                let behaviour = behaviour.clone();
                thread::spawn(move || conn.serve(&behaviour));
            }
        });
        FakeCamera {
            addr,
            shared,
            frames,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT{path}`.
    pub fn url_with(&self, user: &str, password: &str, path: &str) -> String {
        format!("http://{user}:{password}@{}{path}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes sent so far, on every connection.
    pub fn bytes_sent(&self) -> u64 {
        self.shared.bytes_sent.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests read so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Complete frames sent so far.
    pub fn frames_sent(&self) -> u64 {
        self.shared.frames_sent.load(Ordering::SeqCst)
    }

    /// Whether [`FakeCamera::resume`] was called.
    pub fn resumed(&self) -> bool {
        self.shared.resumed.load(Ordering::SeqCst)
    }

    /// Stops misbehaving: new connections get a healthy stream.
    pub fn resume(&self) {
        self.shared.resumed.store(true, Ordering::SeqCst);
    }

    /// Waits until a connection has sent all it will and gone silent (for
    /// the behaviours that do); false after 10 s.
    pub fn wait_for_silence(&self) -> bool {
        for _ in 0..500 {
            if self.shared.holding.load(Ordering::SeqCst) > 0 {
                return true;
            }
            thread::sleep(HOLD_POLL);
        }
        false
    }

    /// Waits until the camera has accepted `n` connections; false after 10 s.
    pub fn wait_for_connections(&self, n: u64) -> bool {
        for _ in 0..500 {
            if self.connections() >= n {
                return true;
            }
            thread::sleep(HOLD_POLL);
        }
        false
    }
}

impl Drop for FakeCamera {
    fn drop(&mut self) {
        self.shared.over.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `over`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Eight small JPEGs, each a different grey, so they can be told apart.
pub fn test_frames() -> Vec<Vec<u8>> {
    (0..8u8)
        .map(|i| {
            let pixels = vec![i * 30; 32 * 24 * 3];
            camloop::jpeg::encode_bgr(32, 24, &pixels, 80).expect("encode a test frame")
        })
        .collect()
}

struct Conn {
    stream: TcpStream,
    shared: Arc<Shared>,
    frames: Arc<Vec<Vec<u8>>>,
    with_length: bool,
}

impl Conn {
    fn serve(mut self, behaviour: &Behaviour) {
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(30)));
        if self.shared.resumed.load(Ordering::SeqCst) {
            if self.read_request().is_some() {
                self.stream_frames(usize::MAX);
            }
            return;
        }
        match behaviour {
            Behaviour::Silent => self.hold(),
            Behaviour::HeadThenStop => {
                if self.read_request().is_some() && self.send(stream_head().as_bytes()) {
                    self.hold();
                }
            }
            Behaviour::StopMidFrame => {
                if self.read_request().is_some() && self.stream_frames(3) {
                    let part = self.part(0);
                    if self.send(&part[..part.len() / 2]) {
                        self.hold();
                    }
                }
            }
            Behaviour::Garbage => {
                let _ = self.read_request();
                while !self.over() && self.send(b"\x00\xffthis is not HTTP at all\r\n\r\n") {
                    thread::sleep(Duration::from_millis(50));
                }
            }
            Behaviour::Trickle => {
                if self.read_request().is_some() && self.send(b"HTTP/1.0 200 OK\r\nX-Pad: ") {
                    while !self.over() && !self.shared.resumed.load(Ordering::SeqCst) {
                        if !self.send(b"a") {
                            return;
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            Behaviour::CloseAfterEachFrame => {
                if self.read_request().is_some() {
                    self.stream_frames(1);
                }
                let _ = self.stream.shutdown(Shutdown::Both);
            }
            Behaviour::BasicAuth { user, password } => {
                let Some(request) = self.read_request() else {
                    return;
                };
                let expected = basic(user, password);
                let authorized = request.lines().any(|line| {
                    line.split_once(':').is_some_and(|(name, value)| {
                        name.eq_ignore_ascii_case("authorization") && value.trim() == expected
                    })
                });
                if authorized {
                    self.stream_frames(usize::MAX);
                } else {
                    self.send(
                        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\
                          Content-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
            Behaviour::Snapshot => {
                let mut i = 0;
                while self.read_request().is_some() {
                    let jpeg = self.frames[i % self.frames.len()].clone();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                        jpeg.len()
                    );
                    if !self.send(head.as_bytes()) || !self.send(&jpeg) {
                        return;
                    }
                    self.shared.frames_sent.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            }
            Behaviour::Healthy => {
                if self.read_request().is_some() {
                    self.stream_frames(usize::MAX);
                }
            }
        }
    }

    fn over(&self) -> bool {
        self.shared.over.load(Ordering::SeqCst)
    }

    /// Keeps the connection open, sending nothing, until the test is over.
    fn hold(&mut self) {
        self.shared.holding.fetch_add(1, Ordering::SeqCst);
        while !self.over() {
            thread::sleep(HOLD_POLL);
        }
    }

    /// Reads one request head; None at EOF or on an error.
    fn read_request(&mut self) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match self.stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return None,
            }
        }
        self.shared.requests.fetch_add(1, Ordering::SeqCst);
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        let ok = self.stream.write_all(bytes).is_ok();
        if ok {
            self.shared
                .bytes_sent
                .fetch_add(bytes.len() as u64, Ordering::SeqCst);
        }
        ok
    }

    fn part(&self, i: usize) -> Vec<u8> {
        let jpeg = &self.frames[i % self.frames.len()];
        let mut part = format!("--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n").into_bytes();
        if self.with_length {
            part.extend_from_slice(format!("Content-Length: {}\r\n", jpeg.len()).as_bytes());
        }
        part.extend_from_slice(b"\r\n");
        part.extend_from_slice(jpeg);
        part.extend_from_slice(b"\r\n");
        part
    }

    /// The head and up to `count` frames; false once the peer is gone.
    fn stream_frames(&mut self, count: usize) -> bool {
        if !self.send(stream_head().as_bytes()) {
            return false;
        }
        for i in 0..count {
            if self.over() || !self.send(&self.part(i)) {
                return false;
            }
            self.shared.frames_sent.fetch_add(1, Ordering::SeqCst);
            if i + 1 < count {
                thread::sleep(FRAME_INTERVAL);
            }
        }
        true
    }
}

fn stream_head() -> String {
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\
         Cache-Control: no-cache\r\n\r\n"
    )
}

/// The `Authorization` value for Basic credentials.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
