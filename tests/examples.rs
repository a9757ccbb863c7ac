//! The examples, run for real: `minimal_loop` is talked to over loopback
//! like the classic client would, and `classic_client` talks to a real
//! `camloop serve` and to `minimal_loop`.
//!
//! A plain `cargo test` builds the examples next to the `camloop` binary
//! (`target/<profile>/examples/`); these tests run those binaries. Filtering
//! to this file alone (`cargo test --test examples`) does not build them:
//! run `cargo build --examples` first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest wait for any reply; generous, because it only matters when
/// something is broken.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The path of a built example, or a panic that says how to build it.
fn example(name: &str) -> PathBuf {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_camloop"))
        .parent()
        .expect("the camloop binary lives in a directory");
    let path = bin_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "example `{name}` is not built ({} is missing): a plain `cargo test` builds the \
         examples, `cargo test --test examples` alone does not; run `cargo build --examples`",
        path.display()
    );
    path
}

/// A child process that is killed if the test ends early (a failed assert).
struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Running {
    /// Starts `program` and returns it with the rest of its first stdout
    /// line, which must start with `listening `.
    fn start(program: &Path, args: &[&str]) -> (Running, String) {
        let mut child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "warn") // keep the test output for real trouble
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut running = Running {
            child,
            stdout: BufReader::new(stdout),
        };
        let mut line = String::new();
        running.stdout.read_line(&mut line).expect("read stdout");
        let listening = line
            .trim_end()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("expected a `listening ...` line first, got {line:?}"))
            .to_string();
        (running, listening)
    }

    /// Waits for the process to exit by itself and returns its status code.
    fn wait(mut self) -> Option<i32> {
        self.child.wait().expect("wait for the child").code()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Only does something if the test failed before the child exited.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A directory of its own under the system temp dir, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "camloop-examples-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn connect(addr: &str) -> TcpStream {
    let socket = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    socket.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    socket
}

/// Reads exactly `expected.len()` bytes and checks them.
fn expect_bytes(socket: &mut TcpStream, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    socket.read_exact(&mut got).expect("read the reply");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// Sends one raw message (no newline) and waits for its reply, the way the
/// classic client does, so that one server read is exactly one message.
fn exchange(socket: &mut TcpStream, message: &[u8], reply: &[u8]) {
    socket.write_all(message).unwrap();
    expect_bytes(socket, reply);
}

fn expect_eof(socket: &mut TcpStream) {
    let mut rest = Vec::new();
    socket.read_to_end(&mut rest).expect("read until EOF");
    assert_eq!(String::from_utf8_lossy(&rest), "", "nothing after exit");
}

fn start_minimal_loop() -> (Running, String) {
    Running::start(&example("minimal_loop"), &["127.0.0.1:0"])
}

fn run_classic_client(args: &[&str]) -> Output {
    Command::new(example("classic_client"))
        .args(args)
        .output()
        .expect("run classic_client")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn minimal_loop_greets_and_answers_every_message_with_received() {
    let (_server, addr) = start_minimal_loop();
    let mut client = connect(&addr);
    expect_bytes(&mut client, b"Welcome");
    exchange(&mut client, b"hello", b"Received");
    exchange(&mut client, b"c", b"Received");
    exchange(&mut client, b"anything at all", b"Received");
}

#[test]
fn minimal_loop_closes_the_connection_on_exit_without_a_reply() {
    let (_server, addr) = start_minimal_loop();
    let mut client = connect(&addr);
    expect_bytes(&mut client, b"Welcome");
    exchange(&mut client, b"hello", b"Received");
    client.write_all(b"exit").unwrap();
    expect_eof(&mut client);
}

#[test]
fn minimal_loop_serves_clients_independently() {
    let (_server, addr) = start_minimal_loop();
    let mut first = connect(&addr);
    let mut second = connect(&addr);
    expect_bytes(&mut second, b"Welcome");
    expect_bytes(&mut first, b"Welcome");
    exchange(&mut second, b"one", b"Received");
    exchange(&mut first, b"two", b"Received");
    // One client leaving does not disturb the other.
    first.write_all(b"exit").unwrap();
    expect_eof(&mut first);
    exchange(&mut second, b"three", b"Received");
    // EOF from the client (a half-close) ends the connection too.
    second.shutdown(Shutdown::Write).unwrap();
    expect_eof(&mut second);
    // And the loop still accepts new clients.
    let mut third = connect(&addr);
    expect_bytes(&mut third, b"Welcome");
}

#[test]
fn classic_client_talks_to_the_minimal_loop() {
    let (_server, addr) = start_minimal_loop();
    let output = run_classic_client(&[&addr, "hello", "exit"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout_lines(&output),
        ["Welcome", "Received", "(connection closed)"]
    );
}

#[test]
fn classic_client_session_against_camloop_saves_pic2_jpg() {
    let snapshots = TempDir::new("classic");
    let snapshot_dir = snapshots.0.to_str().expect("temp dir path is UTF-8");
    let (server, addr) = Running::start(
        Path::new(env!("CARGO_BIN_EXE_camloop")),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "off",
            "--camera",
            "synthetic",
            "--snapshot-dir",
            snapshot_dir,
        ],
    );
    // `control=ADDR http=off` (and whatever else may be listed one day).
    let addr = addr
        .split_whitespace()
        .find_map(|word| word.strip_prefix("control="))
        .unwrap_or_else(|| panic!("no control address in {addr:?}"))
        .to_string();

    // The default session: hello, c, exit.
    let output = run_classic_client(&[&addr]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout_lines(&output),
        ["Welcome", "Received", "Received", "(connection closed)"]
    );
    // `c` is answered only once the file is in place.
    let jpeg = std::fs::read(snapshots.0.join("pic2.jpg")).expect("pic2.jpg was written");
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "pic2.jpg is a JPEG");

    // Stop the server the way the classic camera controller does.
    let mut control = connect(&addr);
    expect_bytes(&mut control, b"Welcome");
    control.write_all(b"shutdown").unwrap();
    expect_eof(&mut control);
    assert_eq!(server.wait(), Some(0), "graceful shutdown exits 0");
}

#[test]
fn classic_client_fails_clearly_when_nobody_listens() {
    // Bind and drop a listener to get a port that is (almost surely) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let output = run_classic_client(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("classic_client: 127.0.0.1:"), "{stderr}");
}
