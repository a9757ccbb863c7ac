//! The raw-mode rule, one test per row of docs/control-protocol.md's
//! request table: a classic client (`send(msg)` without a newline, then
//! `recv(1024)`) gets the replies it knows and never a line starting with
//! `ERR`; where line mode answers `ERR …`, raw mode answers `Received`.

mod support;

use std::io::Read;

use support::{Client, Server, ServerBuilder, HELP_REPLY};

fn raw_server(camera: &str, extra: &[&str]) -> Server {
    ServerBuilder::new()
        .framing("raw")
        .camera(camera)
        .args(extra)
        .spawn()
}

/// Sends one raw message and then `ping`, and returns everything before
/// the `PONG` that must end the stream: raw replies carry no terminator,
/// so the next reply is what marks where this one ends.
fn reply_to(client: &mut Client, message: &str) -> String {
    client.send(message);
    let mut first = [0u8; 1];
    client
        .stream()
        .try_clone()
        .unwrap()
        .read_exact(&mut first)
        .expect("a reply");
    client.send("ping");
    let mut got = vec![first[0]];
    while !got.ends_with(b"PONG") {
        got.extend(client.read_bytes(1));
    }
    got.truncate(got.len() - 4);
    String::from_utf8(got).expect("text")
}

#[test]
fn raw_any_other_text_is_received() {
    let server = raw_server("none", &[]);
    let mut client = server.client();
    assert_eq!(reply_to(&mut client, "hello"), "Received");
}

#[test]
fn raw_ping_is_pong() {
    let server = raw_server("none", &[]);
    let mut client = server.client();
    client.send("ping");
    client.expect("PONG");
}

#[test]
fn raw_capture_is_received_and_saves_the_snapshot() {
    let server = raw_server("synthetic", &[]);
    let mut client = server.client();
    assert_eq!(reply_to(&mut client, "c"), "Received");
    assert_eq!(server.snapshot_entries(), ["pic2.jpg"]);
}

#[test]
fn raw_capture_without_a_camera_is_received_not_err() {
    let server = raw_server("none", &[]);
    let mut client = server.client();
    assert_eq!(reply_to(&mut client, "capture"), "Received");
    assert!(server.snapshot_entries().is_empty());
}

#[test]
fn raw_frame_sends_the_header_and_the_jpeg() {
    let server = raw_server("synthetic", &[]);
    let mut client = server.client();
    client.send("frame");
    let header = client.read_line();
    let length: usize = header
        .strip_prefix("FRAME ")
        .and_then(|n| n.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("expected FRAME <n>, got {header:?}"));
    let jpeg = client.read_bytes(length);
    assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
}

#[test]
fn raw_frame_without_a_camera_is_received_not_err() {
    let server = raw_server("none", &[]);
    let mut client = server.client();
    assert_eq!(reply_to(&mut client, "frame"), "Received");
}

#[test]
fn raw_stats_is_the_ok_line() {
    let server = raw_server("none", &[]);
    let mut client = server.client();
    let stats = reply_to(&mut client, "stats");
    assert!(stats.starts_with("OK clients=1 "), "{stats}");
    assert!(!stats.ends_with('\n'), "raw replies are bare: {stats:?}");
}

#[test]
fn raw_help_lists_the_requests() {
    let server = raw_server("none", &[]);
    let mut client = server.client();
    assert_eq!(reply_to(&mut client, "help"), HELP_REPLY);
}

#[test]
fn raw_auth_is_ok_or_received_and_requests_before_it_are_received() {
    let server = raw_server("none", &["--token", "s3cret"]);
    let mut client = server.client();
    client.send("stats");
    client.expect("Received");
    client.send("auth wrong");
    client.expect("Received");
    client.send("auth s3cret");
    client.expect("OK");
    client.send("ping");
    client.expect("PONG");
}

#[test]
fn raw_auth_without_a_configured_token_is_received() {
    let server = raw_server("none", &[]);
    let mut client = server.client();
    assert_eq!(reply_to(&mut client, "auth anything"), "Received");
}

#[test]
fn raw_exit_and_quit_close_without_a_reply() {
    let server = raw_server("none", &[]);
    for word in ["exit", "quit"] {
        let mut client = server.client();
        client.send(word);
        client.expect_eof();
    }
}

#[test]
fn raw_shutdown_stops_the_server_without_a_reply() {
    let mut server = raw_server("none", &[]);
    let mut client = server.client();
    client.send("shutdown");
    client.expect_eof();
    assert!(server.wait_for_exit().success());
}

#[test]
fn raw_long_input_is_several_messages_never_an_error() {
    let server = raw_server("none", &[]);
    let mut client = server.client();
    client.send("x".repeat(3000));
    let mut received = String::new();
    while received.len() < "Received".len() * 3 {
        received.push_str(&client.read_exact_str(1));
    }
    assert_eq!(received, "Received".repeat(3), "1024-byte messages");
}

#[test]
fn a_full_raw_server_closes_without_a_word_and_an_auto_one_says_why() {
    let raw = raw_server("none", &["--max-clients", "1"]);
    let _only = raw.client();
    let mut refused = raw.connect();
    refused.expect_closed();
    let auto = ServerBuilder::new().args(["--max-clients", "1"]).spawn();
    let _only = auto.client();
    let mut refused = auto.connect();
    assert_eq!(refused.read_line(), "ERR limit: max clients reached\n");
}

#[test]
fn raw_control_requests_answer_bare_and_their_errors_are_received() {
    let server = raw_server("synthetic", &[]);
    let mut client = server.client();
    assert_eq!(
        reply_to(&mut client, "set brightness 60"),
        "OK brightness=60"
    );
    assert_eq!(reply_to(&mut client, "get brightness"), "OK brightness=60");
    assert_eq!(
        reply_to(&mut client, "controls"),
        "OK brightness=60/0..100 contrast=50/0..100"
    );
    for error in ["get focus", "set brightness 101", "set contrast", "get"] {
        assert_eq!(reply_to(&mut client, error), "Received", "{error}");
    }
}

#[test]
fn raw_controls_of_a_source_without_them_are_received() {
    for camera in ["none", "exec:sleep 30"] {
        let server = raw_server(camera, &[]);
        let mut client = server.client();
        assert_eq!(reply_to(&mut client, "controls"), "Received", "{camera}");
        assert_eq!(reply_to(&mut client, "set brightness 1"), "Received");
    }
}

#[test]
fn raw_control_requests_before_auth_are_received() {
    let server = raw_server("synthetic", &["--token", "s3cret"]);
    let mut client = server.client();
    // Not `reply_to`: before `auth` its `ping` is refused too.
    client.send("set brightness 1");
    client.expect("Received");
    client.send("auth s3cret");
    client.expect("OK");
    assert_eq!(reply_to(&mut client, "get brightness"), "OK brightness=50");
}
