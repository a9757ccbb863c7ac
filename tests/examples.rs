//! The examples, run for real (issue 9): `minimal_loop` is talked to over
//! loopback the way the classic client talks, and `classic_client` talks to
//! a real `camloop serve` and to `minimal_loop`.
//!
//! A plain `cargo test` builds the examples next to the `camloop` binary
//! (`target/<profile>/examples/`) and these tests run those binaries.
//! Filtering to this file alone (`cargo test --test examples`) does not
//! build them: run `cargo build --examples` first.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;

use support::{Client, ServerBuilder, TIMEOUT};

/// The path of a built example, or a panic that says how to build it.
fn example(name: &str) -> PathBuf {
    let bin_dir = Path::new(support::CAMLOOP)
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

/// A running `minimal_loop`, killed on drop.
struct MinimalLoop {
    child: Child,
    addr: SocketAddr,
}

impl MinimalLoop {
    /// Starts it on a free loopback port and reads the real address from
    /// its `listening ADDR` line.
    fn start() -> MinimalLoop {
        let mut child = Command::new(example("minimal_loop"))
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start minimal_loop");
        // Read the line on a helper thread so an example that never prints
        // it cannot hang the test.
        let stdout = child.stdout.take().expect("piped stdout");
        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = line_tx.send(line);
        });
        let line = line_rx.recv_timeout(TIMEOUT).unwrap_or_default();
        let addr = line.trim_end().strip_prefix("listening ");
        match addr.and_then(|addr| addr.parse().ok()) {
            Some(addr) => MinimalLoop { child, addr },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("expected `listening ADDR` from minimal_loop, got {line:?}")
            }
        }
    }

    /// Connects and checks the bare greeting.
    fn client(&self) -> Client {
        let mut client = Client::connect(self.addr);
        client.expect("Welcome");
        client
    }
}

impl Drop for MinimalLoop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `classic_client` to completion.
fn classic_client(args: &[&str]) -> Output {
    Command::new(example("classic_client"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run classic_client")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// minimal_loop, spoken to like the classic client: send one message, wait
// for its reply, so that one server read is exactly one message.

#[test]
fn minimal_loop_greets_and_answers_every_message_with_received() {
    let server = MinimalLoop::start();
    let mut client = server.client();
    for message in ["hello", "c", "anything at all"] {
        client.send(message);
        client.expect("Received");
    }
}

#[test]
fn minimal_loop_closes_the_connection_on_exit_without_a_reply() {
    let server = MinimalLoop::start();
    let mut client = server.client();
    client.send("hello");
    client.expect("Received");
    client.send("exit");
    client.expect_eof();
}

#[test]
fn minimal_loop_serves_clients_independently() {
    let server = MinimalLoop::start();
    let mut first = server.client();
    let mut second = server.client();
    second.send("one");
    second.expect("Received");
    first.send("two");
    first.expect("Received");
    // One client leaving does not disturb the other.
    first.send("exit");
    first.expect_eof();
    second.send("three");
    second.expect("Received");
    // EOF from the client (a half-close) ends its connection too.
    second.stream().shutdown(Shutdown::Write).unwrap();
    second.expect_eof();
    // And the loop still accepts.
    server.client();
}

#[test]
fn minimal_loop_answers_ping_with_pong_in_raw_mode() {
    let server = MinimalLoop::start();
    let mut client = server.client();
    // No newline yet: one read is one message, and the reply is bare.
    client.send("ping");
    client.expect("PONG");
    client.send("hello");
    client.expect("Received");
}

#[test]
fn minimal_loop_answers_pipelined_and_split_ping_lines_with_pong() {
    let server = MinimalLoop::start();
    let mut client = server.client();
    // Pipelined: two lines in one write, two replies in order. The first
    // `\n` also switches the connection to lines.
    client.send("ping\nPING\n");
    client.expect("PONG\nPONG\n");
    // Split: `pi` rides in the same read as a whole line (that line's reply
    // proves the read happened) and must wait there for the rest of it.
    client.send("ping\npi");
    client.expect("PONG\n");
    client.send("NG\r\nhello\n");
    client.expect("PONG\nReceived\n");
    // A line cut into single bytes.
    for byte in ["p", "I", "n", "G", "\n"] {
        client.send(byte);
    }
    client.expect("PONG\n");
    // `exit` closes at once; the line after it is never answered.
    client.send("exit\nping\n");
    client.expect_eof();
}

#[test]
fn minimal_loop_closes_a_connection_whose_line_never_ends() {
    let server = MinimalLoop::start();
    let mut client = server.client();
    client.send("ping\n");
    client.expect("PONG\n");
    // Over the 4 KiB line limit without a `\n`: buffering stops there.
    client.send("x".repeat(5000));
    client.expect_eof();
}

// ---------------------------------------------------------------------------
// classic_client

#[test]
fn classic_client_talks_to_the_minimal_loop() {
    let server = MinimalLoop::start();
    let output = classic_client(&[&server.addr.to_string(), "hello", "exit"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout_lines(&output),
        ["Welcome", "Received", "(connection closed)"]
    );
}

#[test]
fn classic_client_default_session_against_camloop_saves_pic2_jpg() {
    let mut server = ServerBuilder::new().camera("synthetic").spawn();
    // The default session: hello, c, exit.
    let output = classic_client(&[&server.addr.to_string()]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout_lines(&output),
        ["Welcome", "Received", "Received", "(connection closed)"]
    );
    // `c` is answered only once the file is in place.
    let jpeg = std::fs::read(server.snapshot_dir().join("pic2.jpg")).expect("pic2.jpg written");
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "pic2.jpg is a JPEG");

    // Stop the server the way the classic camera controller does.
    let mut control = server.client();
    control.send("shutdown");
    control.expect_eof();
    assert_eq!(server.wait_for_exit().code(), Some(0));
}

#[test]
fn classic_client_exits_1_with_a_message_when_nobody_listens() {
    // A socket that is bound but not listening holds its port, so nothing
    // else can take it meanwhile, and refuses every connection.
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&loopback.into()).expect("bind");
    let addr = socket
        .local_addr()
        .unwrap()
        .as_socket()
        .expect("an IP address");
    let output = classic_client(&[&addr.to_string()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("classic_client: {addr}: ")),
        "{stderr}"
    );
}
