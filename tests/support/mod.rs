//! Shared helpers for the integration tests: start a real `camloop serve`
//! on port 0, talk to it over loopback sockets, run `camloop ctl`, look at
//! snapshot files.
//!
//! Every read has a generous timeout. It is hang protection only: no test
//! asserts anything about time, only about counts and contents.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const CAMLOOP: &str = env!("CARGO_BIN_EXE_camloop");

/// `camloop serve` with the control port and HTTP on free loopback ports
/// and no RTSP: how a test that needs its own command line starts one.
pub const SERVE_ON_LOOPBACK: [&str; 7] = [
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--http",
    "127.0.0.1:0",
    "--rtsp",
    "off",
];

/// Longest wait for anything (a reply, the listening line, an exit).
/// Hang protection only.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The `help` reply, as docs/control-protocol.md's request table spells it.
pub const HELP_REPLY: &str =
    "OK requests: c capture ping stats frame controls get set cameras help auth exit quit shutdown";

/// The `stats` keys docs/control-protocol.md promises (more may follow, none
/// renamed).
pub const STATS_KEYS: &[&str] = &[
    "clients",
    "clients_max",
    "uptime_s",
    "camera",
    "camera_ok",
    "width",
    "height",
    "fps_x100",
    "frames_grabbed",
    "frames_encoded",
    "snapshots",
    "snapshot_errors",
    "bytes_in",
    "bytes_out",
    "requests",
    "errors",
    "grab_us_p50",
    "grab_us_p99",
    "grab_us_max",
    "encode_us_p99",
];

// ---------------------------------------------------------------------------
// Temporary directories

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh, empty directory (mode 0755) whose name contains `tag`.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("camloop-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create temp dir");
        set_mode(&path, 0o755);
        TempDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// `chmod`.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Whether `name` is an executable file in a `PATH` directory, so a test
/// that needs a tool can fail with a useful message instead of "No such
/// file or directory" from spawn.
pub fn command_exists(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Every entry of a directory, hidden ones (temp files) included, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read snapshot dir")
        .map(|entry| entry.expect("dir entry").file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// The server

/// Builds the command line of `camloop serve`. The arguments every test
/// needs are in [`ServerBuilder::new`], in one place.
pub struct ServerBuilder {
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    camera: String,
    line_framing: bool,
    snapshot_dir: Option<PathBuf>,
    envs: Vec<(OsString, OsString)>,
}

impl ServerBuilder {
    /// `camloop serve` on a free loopback port, no camera, snapshots in a
    /// fresh temporary directory.
    pub fn new() -> ServerBuilder {
        ServerBuilder {
            wrapper: Vec::new(),
            args: [
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "off",
                "--rtsp",
                "off",
            ]
            .iter()
            .map(OsString::from)
            .collect(),
            camera: "none".to_string(),
            line_framing: false,
            snapshot_dir: None,
            envs: Vec::new(),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    /// `--camera NAME` instead of `none`.
    pub fn camera(mut self, name: &str) -> Self {
        self.camera = name.to_string();
        self
    }

    /// `--framing MODE`; the builder remembers it to expect the right greeting.
    pub fn framing(mut self, mode: &str) -> Self {
        self.line_framing = mode == "line";
        self.args(["--framing", mode])
    }

    /// `--snapshot-dir DIR` instead of a fresh temporary one.
    pub fn snapshot_dir(mut self, dir: &Path) -> Self {
        self.snapshot_dir = Some(dir.to_path_buf());
        self
    }

    /// Runs the server through a wrapper command (`setpriv ...`, `prlimit ...`).
    pub fn wrapper<I, S>(mut self, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wrapper = command
            .into_iter()
            .map(|s| s.as_ref().to_os_string())
            .collect();
        self
    }

    /// Sets an environment variable for the server.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Starts the server and waits for its `listening` line.
    pub fn spawn(self) -> Server {
        let scratch = TempDir::new("server");
        let (snapshot_dir, own_snapshot_dir) = match self.snapshot_dir {
            Some(dir) => (dir, None),
            None => {
                let dir = TempDir::new("snapshots");
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let log_path = scratch.path().join("server.log");
        let log = fs::File::create(&log_path).expect("create server log");

        let mut command = match self.wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(CAMLOOP);
                command
            }
            None => Command::new(CAMLOOP),
        };
        command
            .args(&self.args)
            .arg("--camera")
            .arg(&self.camera)
            .args(extra_camera_args(&self.args))
            .arg("--snapshot-dir")
            .arg(&snapshot_dir)
            .env("RUST_LOG", "debug")
            .envs(self.envs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = command.spawn().expect("spawn camloop serve");

        let listening = read_listening_line(&mut child);
        let mut server = Server {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            line_framing: self.line_framing,
            snapshot_dir,
            log_path,
            _own_snapshot_dir: own_snapshot_dir,
            _scratch: scratch,
        };
        let addr = listening
            .as_ref()
            .filter(|(_, http)| http == "off")
            .and_then(|(control, _)| control.parse().ok());
        match addr {
            Some(addr) => server.addr = addr,
            None => panic!(
                "expected `listening control=ADDR http=off`, got {listening:?}\nserver log:\n{}",
                server.log()
            ),
        }
        server
    }
}

/// With `CAMLOOP_TEST_EXTRA_CAMERA=SOURCE` in the environment, every
/// server also gets `--camera extra=SOURCE` after its own: `scripts/test.sh`
/// runs the protocol and endpoint suites that way once more, to show that a
/// second camera changes nothing for clients of the default one. A server
/// started from a config file is left alone (a `--camera` flag would
/// replace the file's cameras).
pub fn extra_camera_args<S: AsRef<OsStr>>(args: &[S]) -> Vec<OsString> {
    let from_config = args.iter().any(|a| a.as_ref() == "--config");
    match std::env::var_os("CAMLOOP_TEST_EXTRA_CAMERA") {
        Some(source) if !from_config => {
            let mut camera = OsString::from("extra=");
            camera.push(source);
            vec![OsString::from("--camera"), camera]
        }
        _ => Vec::new(),
    }
}

/// Reads the server's `listening control=ADDR http=ADDR|off rtsp=…` line and
/// returns the two addresses as printed. The line is read on a helper
/// thread, so a server that never prints it cannot hang the test (None
/// after [`TIMEOUT`]); the thread then drains the rest of stdout.
pub fn read_listening_line(child: &mut Child) -> Option<(String, String)> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = line_tx.send(line);
        let _ = io::copy(&mut reader, &mut io::sink());
    });
    let line = line_rx.recv_timeout(TIMEOUT).ok()?;
    let part = |key: &str| {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key))
            .map(str::to_string)
    };
    line.starts_with("listening ")
        .then_some(())
        .and_then(|()| Some((part("control=")?, part("http=")?)))
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder::new()
    }
}

/// A running `camloop serve`, killed on drop. When the test is failing,
/// the server's log is printed (the test harness shows it with the failure).
pub struct Server {
    child: Child,
    /// The control address from the listening line.
    pub addr: SocketAddr,
    line_framing: bool,
    snapshot_dir: PathBuf,
    log_path: PathBuf,
    _own_snapshot_dir: Option<TempDir>,
    _scratch: TempDir,
}

impl Server {
    /// `camloop serve` with the defaults of [`ServerBuilder::new`].
    pub fn start() -> Server {
        ServerBuilder::new().spawn()
    }

    /// The process id (of the wrapper, if one was used).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The snapshot directory.
    pub fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// Everything in the snapshot directory, hidden files included.
    pub fn snapshot_entries(&self) -> Vec<String> {
        dir_entries(&self.snapshot_dir)
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Connects without reading anything.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Connects and checks the greeting (`Welcome`, or `Welcome\n` with
    /// `--framing line`).
    pub fn client(&self) -> Client {
        let mut client = self.connect();
        client.expect(if self.line_framing {
            "Welcome\n"
        } else {
            "Welcome"
        });
        client
    }

    /// Waits for the server to exit by itself.
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                panic!("server did not exit\nserver log:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill() with the pid of our own child has no memory effects.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("---- camloop serve log ----\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// A control-port client

/// Socket buffer size asked for by [`Client::connect_with_small_buffers`]
/// (the kernel doubles it).
pub const SMALL_SOCKET_BUFFER: usize = 16 * 1024;

/// A blocking loopback client with hang-protection timeouts.
pub struct Client {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to camloop");
        Client::from_stream(stream)
    }

    /// Connects with small kernel socket buffers (both directions), so a
    /// client that stops reading fills them, and blocks, after little data.
    pub fn connect_with_small_buffers(addr: SocketAddr) -> Client {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket.set_recv_buffer_size(SMALL_SOCKET_BUFFER).unwrap();
        socket.set_send_buffer_size(SMALL_SOCKET_BUFFER).unwrap();
        socket.connect(&addr.into()).expect("connect to camloop");
        Client::from_stream(socket.into())
    }

    /// Wraps an already connected socket.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let reader = BufReader::new(stream.try_clone().expect("clone socket"));
        Client { reader, stream }
    }

    /// The socket, for tests that need to do something unusual with it.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes all of `bytes` in one call.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("send");
    }

    /// Reads exactly `n` bytes.
    pub fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.reader
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
        buf
    }

    /// Reads exactly `n` bytes as text.
    pub fn read_exact_str(&mut self, n: usize) -> String {
        String::from_utf8(self.read_bytes(n)).expect("UTF-8 reply")
    }

    /// Reads exactly as many bytes as `expected` has and checks them.
    pub fn expect(&mut self, expected: &str) {
        let got = self.read_exact_str(expected.len());
        assert_eq!(got, expected);
    }

    /// Reads one line, terminator included.
    pub fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|e| panic!("reading a line: {e}"));
        assert!(
            line.ends_with(b"\n"),
            "connection closed inside a line: {:?}",
            String::from_utf8_lossy(&line)
        );
        String::from_utf8(line).expect("UTF-8 line")
    }

    /// Sends `line` with `\n` and returns the reply line without its `\n`.
    pub fn request(&mut self, line: &str) -> String {
        self.send(format!("{line}\n"));
        let reply = self.read_line();
        let reply = reply.strip_suffix('\n').unwrap();
        assert!(!reply.ends_with('\r'), "a \\n request got {reply:?}");
        reply.to_string()
    }

    /// Checks that the server closed the connection with nothing more to say.
    pub fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(
                rest.is_empty(),
                "expected EOF, got {:?}",
                String::from_utf8_lossy(&rest)
            ),
            Err(e) => panic!("expected EOF, got {e}"),
        }
    }

    /// Checks that the server closed the connection with nothing more to
    /// say, by a FIN (EOF) or a reset.
    pub fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(
                rest.is_empty(),
                "expected the end, got {:?}",
                String::from_utf8_lossy(&rest)
            ),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the connection to close, got {e}"),
        }
    }

    /// `stats`, parsed.
    pub fn stats(&mut self) -> Stats {
        Stats::parse(&self.request("stats"))
    }

    /// Polls `stats` until `clients` is `expected` (the server notices a
    /// departure on its next loop iteration) or [`TIMEOUT`] passes; returns
    /// the last stats, so the caller's assertion shows what was seen.
    pub fn wait_for_clients(&mut self, expected: u64) -> Stats {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let stats = self.stats();
            if stats.get("clients") == expected || Instant::now() >= deadline {
                return stats;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `frame`: checks the `FRAME <n>` header and returns the n JPEG bytes.
    pub fn frame(&mut self) -> Vec<u8> {
        self.send("frame\n");
        let header = self.read_line();
        let len: usize = header
            .strip_prefix("FRAME ")
            .and_then(|n| n.strip_suffix('\n'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("expected `FRAME <n>`, got {header:?}"));
        self.read_bytes(len)
    }

    /// `c`: returns the parsed `OK <file> <w>x<h> <bytes>` reply.
    pub fn capture(&mut self) -> Capture {
        Capture::parse(&self.request("c"))
    }
}

/// A parsed `stats` reply.
#[derive(Debug, Clone)]
pub struct Stats(pub BTreeMap<String, String>);

impl Stats {
    /// Parses `OK key=value ...`.
    pub fn parse(reply: &str) -> Stats {
        let rest = reply
            .strip_prefix("OK ")
            .unwrap_or_else(|| panic!("stats reply {reply:?}"));
        let map = rest
            .split(' ')
            .map(|pair| {
                let (key, value) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{pair:?} in stats reply {reply:?}"));
                (key.to_string(), value.to_string())
            })
            .collect();
        Stats(map)
    }

    /// An integer value.
    pub fn get(&self, key: &str) -> u64 {
        let value = self.text(key);
        value
            .parse()
            .unwrap_or_else(|_| panic!("stats {key}={value:?} is not an integer"))
    }

    /// A value as text.
    pub fn text(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("stats has no {key}: {:?}", self.0))
    }
}

/// A parsed `OK <file> <w>x<h> <bytes>` capture reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub file: String,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
}

impl Capture {
    /// Parses a line-mode capture reply.
    pub fn parse(reply: &str) -> Capture {
        let fields: Vec<&str> = reply.split(' ').collect();
        let parsed = match fields.as_slice() {
            ["OK", file, size, bytes] => size.split_once('x').and_then(|(w, h)| {
                Some(Capture {
                    file: file.to_string(),
                    width: w.parse().ok()?,
                    height: h.parse().ok()?,
                    bytes: bytes.parse().ok()?,
                })
            }),
            _ => None,
        };
        parsed.unwrap_or_else(|| panic!("expected `OK <file> <w>x<h> <bytes>`, got {reply:?}"))
    }
}

// ---------------------------------------------------------------------------
// JPEG

/// A decoded JPEG.
pub struct Image {
    pub width: u16,
    pub height: u16,
    pub pixels: Vec<u8>,
}

/// Decodes a complete JPEG or panics.
pub fn decode_jpeg(bytes: &[u8]) -> Image {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    let pixels = decoder.decode().expect("a valid JPEG");
    let info = decoder.info().expect("JPEG info");
    Image {
        width: info.width,
        height: info.height,
        pixels,
    }
}

/// The frame number camloop stamped into a JPEG.
pub fn frame_number(jpeg: &[u8]) -> u64 {
    camloop::jpeg::stamped_frame_number(jpeg).expect("JPEG carries `camloop frame=<n>`")
}

// ---------------------------------------------------------------------------
// camloop ctl

/// Runs `camloop ctl ARGS...` with `stdin` piped in, and returns its output.
pub fn ctl(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(CAMLOOP)
        .arg("ctl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn camloop ctl");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).expect("write ctl stdin");
    drop(input);
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(output) => output.expect("camloop ctl output"),
        Err(_) => {
            // SAFETY: kill() on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("camloop ctl {args:?} did not finish");
        }
    }
}

// ---------------------------------------------------------------------------
// /proc

/// Voluntary context switches of every thread of a process.
pub fn voluntary_context_switches(pid: i32) -> u64 {
    proc_status_sum(pid, "voluntary_ctxt_switches:")
}

/// The `Threads:` count of a process.
pub fn thread_count(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status_field(&status, "Threads:")
}

fn proc_status_sum(pid: i32, field: &str) -> u64 {
    fs::read_dir(format!("/proc/{pid}/task"))
        .expect("read /proc/PID/task")
        .map(|task| {
            let path = task.expect("task entry").path().join("status");
            status_field(&fs::read_to_string(path).expect("read task status"), field)
        })
        .sum()
}

fn status_field(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc status"))
}

/// The live (not zombie) children of process `pid`, from /proc: every
/// process whose parent it is.
pub fn live_children(pid: i32) -> Vec<i32> {
    let mut children = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Fields after the `(comm)`: state, ppid, ...
        let mut fields = stat[stat.rfind(')').unwrap() + 2..].split(' ');
        let state = fields.next();
        let ppid: Option<i32> = fields.next().and_then(|p| p.parse().ok());
        if ppid == Some(pid) && state != Some("Z") {
            children.push(child);
        }
    }
    children
}

/// The state letter of a process (R, S, T, Z, ...), None once it is gone.
pub fn process_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Sends `signal` to process `pid` (a child a test watches).
pub fn signal_process(pid: i32, signal: i32) {
    // SAFETY: kill has no memory effects.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}
