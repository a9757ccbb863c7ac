//! The control protocol end to end (issue 3): each test starts its own
//! `camloop serve` on port 0 and talks to it over real loopback sockets.
//! Tests follow the request table in docs/control-protocol.md, one
//! behaviour each.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use socket2::SockRef;
use support::{Client, Server, ServerBuilder, Stats, HELP_REPLY, STATS_KEYS};

// ---------------------------------------------------------------------------
// The classic client and the three framings

#[test]
fn classic_python_client_gets_welcome_then_received_then_eof_after_exit() {
    let server = Server::start();
    let mut client = server.connect();
    // sock.recv(1024) == b"Welcome": bare, no terminator.
    client.expect("Welcome");
    client.send("hello");
    client.expect("Received");
    client.send("exit");
    client.expect_eof();
}

#[test]
fn raw_framing_answers_each_message_bare() {
    let server = ServerBuilder::new().framing("raw").spawn();
    let mut client = server.client();
    client.send("ping");
    client.expect("PONG");
    // A newline does not switch a raw connection to lines: still one
    // message, whitespace trimmed, reply bare.
    client.send("ping\n");
    client.expect("PONG");
    client.send("hello");
    client.expect("Received");
    client.send("exit\n");
    client.expect_eof();
}

#[test]
fn line_framing_greets_with_a_newline_and_terminates_every_reply() {
    let server = ServerBuilder::new().framing("line").spawn();
    let mut client = server.connect();
    client.expect("Welcome\n");
    assert_eq!(client.request("ping"), "PONG");
    assert_eq!(client.request("hello"), "Received");
    assert_eq!(client.request("exit"), "Bye");
    client.expect_eof();
}

#[test]
fn auto_framing_is_raw_until_a_read_contains_a_newline() {
    let server = Server::start();
    let mut client = server.client();
    client.send("hello");
    client.expect("Received");
    client.send("ping");
    client.expect("PONG");
    // From the first read with a newline on, replies carry a terminator.
    assert_eq!(client.request("ping"), "PONG");
    assert_eq!(client.request("hello"), "Received");
    assert_eq!(client.request("exit"), "Bye");
    client.expect_eof();
}

#[test]
fn raw_exit_closes_without_a_reply() {
    let server = ServerBuilder::new().framing("raw").spawn();
    let mut client = server.client();
    client.send("quit");
    client.expect_eof();
}

// ---------------------------------------------------------------------------
// Requests

#[test]
fn help_lists_the_requests() {
    let server = Server::start();
    let mut client = server.client();
    assert_eq!(client.request("help"), HELP_REPLY);
}

#[test]
fn an_empty_line_is_received() {
    let server = Server::start();
    let mut client = server.client();
    client.send("\n");
    client.expect("Received\n");
    client.send("\r\n");
    client.expect("Received\r\n");
}

#[test]
fn replies_carry_the_terminator_of_their_request() {
    let server = Server::start();
    let mut client = server.client();
    client.send("ping\r\nping\nhello\r\n");
    client.expect("PONG\r\nPONG\nReceived\r\n");
    client.send("stats\r\n");
    let line = client.read_line();
    assert!(
        line.starts_with("OK ") && line.ends_with("\r\n"),
        "{line:?}"
    );
    assert_eq!(line.matches('\n').count(), 1, "{line:?}");
}

#[test]
fn keywords_are_case_insensitive() {
    let server = Server::start();
    let mut client = server.client();
    assert_eq!(client.request("PING"), "PONG");
    assert_eq!(client.request("Help"), HELP_REPLY);
    assert_eq!(client.request("QUIT"), "Bye");
    client.expect_eof();
}

#[test]
fn stats_is_one_line_with_every_documented_key() {
    let server = Server::start();
    let mut client = server.client();
    let stats = client.stats();
    for key in STATS_KEYS {
        if *key == "camera" {
            assert_eq!(stats.text("camera"), "none");
        } else {
            stats.get(key); // present and an integer
        }
    }
    assert_eq!(stats.get("clients"), 1);
    assert_eq!(stats.get("camera_ok"), 0);
    assert_eq!(stats.get("frames_grabbed"), 0);
}

#[test]
fn capture_without_a_camera_is_an_error_in_line_mode_and_received_in_raw_mode() {
    let server = Server::start();
    let mut raw = server.client();
    raw.send("c");
    raw.expect("Received");
    let mut line = server.client();
    assert_eq!(line.request("c"), "ERR camera: no camera");
    assert_eq!(line.request("capture"), "ERR camera: no camera");
    assert!(server.snapshot_entries().is_empty());
}

// ---------------------------------------------------------------------------
// Pipelining and many clients

#[test]
fn a_thousand_pipelined_pings_in_one_write_get_a_thousand_pongs() {
    let server = ServerBuilder::new().framing("line").spawn();
    let mut client = server.client();
    client.send("ping\n".repeat(1000));
    client.expect(&"PONG\n".repeat(1000));
    // Nothing extra was sent: the next reply is the next request's.
    assert_eq!(client.request("exit"), "Bye");
    client.expect_eof();
}

#[test]
fn pipelined_mixed_requests_are_answered_in_order() {
    let server = ServerBuilder::new().framing("line").spawn();
    let mut client = server.client();
    let round = "ping\nhello\r\nhelp\n\n";
    let replies = format!("PONG\nReceived\r\n{HELP_REPLY}\nReceived\n");
    client.send(round.repeat(300));
    client.expect(&replies.repeat(300));
}

#[test]
fn two_hundred_clients_connecting_at_once_all_get_their_replies() {
    const CLIENTS: usize = 200;
    let server = Server::start();
    let addr = server.addr;
    let start = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut client = Client::connect(addr);
                client.expect("Welcome");
                client.send(format!("hello {i}"));
                client.expect("Received");
                assert_eq!(client.request("ping"), "PONG");
                let stats = client.stats();
                assert!(stats.get("clients") >= 1);
                assert_eq!(client.request(&format!("client {i}")), "Received");
                assert_eq!(client.request("exit"), "Bye");
                client.expect_eof();
            })
        })
        .collect();
    let failed = threads
        .into_iter()
        .map(|t| t.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(failed, 0, "{failed} of {CLIENTS} clients failed");
    // Five requests per client, plus this `stats`.
    let stats = server.client().stats();
    assert_eq!(stats.get("requests"), CLIENTS as u64 * 5 + 1);
    assert_eq!(stats.get("errors"), 0);
}

// ---------------------------------------------------------------------------
// Clients that go away

#[test]
fn a_client_that_disconnects_mid_request_does_not_affect_others() {
    let server = Server::start();
    let mut other = server.client();
    assert_eq!(other.request("ping"), "PONG");

    let mut leaver = server.client();
    leaver.send("pin");
    drop(leaver);

    assert_eq!(other.wait_for_clients(1).get("clients"), 1);
    assert_eq!(other.request("ping"), "PONG");
    let mut newcomer = server.client();
    assert_eq!(newcomer.request("ping"), "PONG");
}

#[test]
fn a_client_that_resets_does_not_affect_others() {
    let server = Server::start();
    let mut other = server.client();
    assert_eq!(other.request("ping"), "PONG");

    // Half a request, plus replies the server is still sending when the
    // reset arrives.
    let mut resetter = server.client();
    resetter.send("stats\n".repeat(2000));
    resetter.send("pin");
    SockRef::from(resetter.stream())
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(resetter); // SO_LINGER 0: close() sends RST

    assert_eq!(other.wait_for_clients(1).get("clients"), 1);
    assert_eq!(other.request("ping"), "PONG");
    let mut newcomer = server.client();
    assert_eq!(newcomer.request("ping"), "PONG");
}

#[test]
fn an_over_long_line_is_refused_and_the_connection_closed() {
    let server = ServerBuilder::new().framing("line").spawn();
    let mut client = server.client();
    let mut input = b"ping\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.push(b'\n');
    client.send(&input);
    client.expect("PONG\n");
    client.expect("ERR request: line too long\n");
    client.expect_eof();
    // The server itself is fine.
    assert_eq!(server.client().request("ping"), "PONG");
}

#[test]
fn an_over_long_line_without_newline_is_refused_too() {
    let server = ServerBuilder::new().framing("line").spawn();
    let mut client = server.client();
    client.send(vec![b'x'; 64 * 1024]);
    client.expect("ERR request: line too long\n");
    // The server closes with part of the line unread, so the kernel ends
    // the connection with a reset rather than a FIN; either way it is over.
    client.expect_closed();
}

// ---------------------------------------------------------------------------
// Backpressure

/// Most bytes the slow client offers; the server must stop taking them
/// long before.
const SLOW_CLIENT_MAX_BYTES: usize = 20 * 1024 * 1024;

/// Writes `stats\n` without reading until the socket stops taking bytes,
/// reports the bytes written, then finishes the request it cut in the
/// middle and sends `exit`. Returns how many `stats` requests it sent.
fn write_until_blocked(mut stream: TcpStream, blocked: mpsc::Sender<usize>) -> usize {
    const REQUEST: &[u8] = b"stats\n";
    let chunk = REQUEST.repeat(64 * 1024 / REQUEST.len());
    stream.set_nonblocking(true).unwrap();
    let mut written = 0;
    let mut idle_rounds = 0;
    // "Blocked" means no progress for 50 consecutive tries 10 ms apart,
    // so a momentarily full send buffer is not mistaken for backpressure.
    while written < SLOW_CLIENT_MAX_BYTES && idle_rounds < 50 {
        let at = written % chunk.len();
        match stream.write(&chunk[at..]) {
            Ok(n) => {
                written += n;
                idle_rounds = 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                idle_rounds += 1;
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("slow client write: {e}"),
        }
    }
    stream.set_nonblocking(false).unwrap();
    let requests = written.div_ceil(REQUEST.len());
    blocked.send(written).unwrap();
    // Complete the request cut in the middle, then say goodbye; this
    // blocks until the main thread reads.
    let partial = written % REQUEST.len();
    if partial != 0 {
        stream.write_all(&REQUEST[partial..]).unwrap();
    }
    stream.write_all(b"exit\n").unwrap();
    requests
}

#[test]
fn a_client_that_writes_without_reading_is_slowed_and_others_are_not() {
    let server = ServerBuilder::new().framing("line").spawn();
    let mut slow = Client::connect_with_small_buffers(server.addr);
    slow.expect("Welcome\n");
    let mut other = server.client();

    let (blocked_tx, blocked_rx) = mpsc::channel();
    let writer_stream = slow.stream().try_clone().unwrap();
    let writer = thread::spawn(move || write_until_blocked(writer_stream, blocked_tx));
    let written = blocked_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the slow client's writer finished");
    assert!(
        written < SLOW_CLIENT_MAX_BYTES,
        "the server took all {written} bytes without the client reading a reply"
    );

    // The slow client is stuck; everybody else is served as usual.
    for _ in 0..3 {
        assert_eq!(other.request("ping"), "PONG");
    }
    let stats = other.stats();
    assert!(
        stats.get("bytes_in") < written as u64,
        "server read {} of the {written} bytes offered",
        stats.get("bytes_in")
    );

    // When the slow client finally reads, it gets one correct reply per
    // request, in order (the server's request counter only goes up).
    let mut replies = 0;
    let mut last_request_count = 0;
    loop {
        let line = slow.read_line();
        if line == "Bye\n" {
            break;
        }
        let reply = line.strip_suffix('\n').unwrap();
        let request_count = Stats::parse(reply).get("requests");
        assert!(
            request_count > last_request_count,
            "reply {replies} out of order: requests={request_count} after {last_request_count}"
        );
        last_request_count = request_count;
        replies += 1;
    }
    slow.expect_eof();
    let sent = writer.join().expect("writer thread");
    assert_eq!(replies, sent, "one reply per request");
}

// ---------------------------------------------------------------------------
// --idle-timeout

/// Most pings the active client sends while waiting for the silent one to
/// be closed (hang protection: 200 pings 50 ms apart).
const IDLE_TEST_MAX_PINGS: usize = 200;

#[test]
fn idle_timeout_closes_a_silent_client_while_an_active_one_is_served() {
    let server = ServerBuilder::new()
        .framing("line")
        .args(["--idle-timeout", "1"])
        .spawn();
    let mut active = server.client();
    let silent = server.client();
    // The silent client only waits for the end of its connection.
    let (closed_tx, closed_rx) = mpsc::channel();
    let silent_stream = silent.stream().try_clone().expect("clone socket");
    thread::spawn(move || {
        let mut rest = Vec::new();
        let result = (&silent_stream).read_to_end(&mut rest).map(|_| rest);
        let _ = closed_tx.send(result);
    });
    // Meanwhile the active client keeps talking; it is served throughout,
    // and still is once the silent one has been closed.
    let mut pings = 0;
    let ended = loop {
        assert_eq!(active.request("ping"), "PONG", "after {pings} pings");
        pings += 1;
        if let Ok(ended) = closed_rx.try_recv() {
            break ended;
        }
        assert!(
            pings < IDLE_TEST_MAX_PINGS,
            "the silent client was not closed during {pings} pings"
        );
        thread::sleep(Duration::from_millis(50));
    };
    match ended {
        Ok(rest) => assert!(rest.is_empty(), "the silent client got {rest:?}"),
        Err(e) => panic!("the silent client's connection did not end cleanly: {e}"),
    }
    assert_eq!(active.request("ping"), "PONG");
    assert_eq!(active.wait_for_clients(1).get("clients"), 1);
    drop(silent);
}

// ---------------------------------------------------------------------------
// Stopping the server

#[test]
fn sigterm_stops_the_server_with_exit_code_0() {
    let mut server = Server::start();
    let mut idle = server.client();
    assert_eq!(idle.request("ping"), "PONG");
    server.signal(libc::SIGTERM);
    idle.expect_eof();
    let status = server.wait_for_exit();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn sigint_stops_the_server_with_exit_code_0() {
    let mut server = Server::start();
    let mut idle = server.client();
    assert_eq!(idle.request("ping"), "PONG");
    server.signal(libc::SIGINT);
    idle.expect_eof();
    let status = server.wait_for_exit();
    // Killed by the signal, the status would have no code at all.
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(server.log().contains("SIGINT received"), "{}", server.log());
}

#[test]
fn shutdown_replies_then_the_server_exits_with_code_0() {
    let mut server = Server::start();
    let mut bystander = server.client();
    let mut client = server.client();
    assert_eq!(client.request("shutdown"), "OK shutting down");
    client.expect_eof();
    bystander.expect_eof();
    let status = server.wait_for_exit();
    assert_eq!(status.code(), Some(0), "{status}");
}

// ---------------------------------------------------------------------------
// camloop ctl

fn stdout_lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn ctl_one_shot_prints_the_greeting_and_each_reply() {
    let server = Server::start();
    let output = support::ctl(&[&server.addr.to_string(), "ping", "stats"], "");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], "Welcome");
    assert_eq!(lines[1], "PONG");
    assert_eq!(Stats::parse(&lines[2]).text("camera"), "none");
}

#[test]
fn ctl_one_shot_exits_1_on_an_err_reply() {
    let server = Server::start();
    let output = support::ctl(&[&server.addr.to_string(), "c"], "");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(stdout_lines(&output), ["Welcome", "ERR camera: no camera"]);
}

#[test]
fn ctl_without_a_server_fails_with_a_message() {
    let output = support::ctl(&["127.0.0.1:1", "ping"], "");
    assert!(!output.status.success(), "{output:?}");
    assert_ne!(output.status.code(), Some(1), "1 is for ERR replies");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("127.0.0.1:1"),
        "message should name the address: {stderr:?}"
    );
    assert!(stdout_lines(&output).is_empty());
}

#[test]
fn ctl_reads_requests_from_piped_stdin() {
    let server = Server::start();
    let output = support::ctl(&[&server.addr.to_string()], "ping\nexit\n");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(stdout_lines(&output), ["Welcome", "PONG", "Bye"]);
}

#[test]
fn ctl_works_against_a_line_framing_server() {
    let server = ServerBuilder::new().framing("line").spawn();
    let output = support::ctl(&[&server.addr.to_string(), "ping", "help"], "");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(stdout_lines(&output), ["Welcome", "PONG", HELP_REPLY]);
}
