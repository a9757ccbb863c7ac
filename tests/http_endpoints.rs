//! The non-stream HTTP endpoints against the real server over loopback:
//! fresh snapshots, captures on disk, `/state` and `/metrics`, and the
//! status code of every kind of bad request.
//!
//! Requests are written as raw bytes, so each test shows exactly what went
//! over the wire.

mod http_support;

use std::fs;
use std::io::{BufReader, Write};

use http_support::{
    decoded_size, frame_number, lossy, metric, read_response, read_until_closed, Server,
    READ_TIMEOUT,
};

// ------------------------------------------------------------ snapshots

#[test]
fn snapshot_is_a_frame_newer_than_the_one_fetched_before_it() {
    let server = Server::synthetic(&[]);
    let first = server.get("/snapshot.jpg");
    let second = server.get("/snapshot.jpg");
    assert_eq!((first.status, second.status), (200, 200));
    let (before, after) = (frame_number(&first.body), frame_number(&second.body));
    assert!(after > before, "frame {after} is not newer than {before}");
}

#[test]
fn snapshot_is_a_valid_uncacheable_jpeg() {
    let server = Server::synthetic(&[]);
    let response = server.get("/snapshot.jpg");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("image/jpeg"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(decoded_size(&response.body), (640, 480));
}

#[test]
fn capture_writes_the_jpeg_it_describes() {
    let server = Server::synthetic(&[]);
    let response = server.post("/capture");
    assert_eq!(response.status, 200, "{}", response.text());
    let json = response.json();
    assert_eq!(json.str("file"), "pic2.jpg");
    assert_eq!((json.u64("width"), json.u64("height")), (640, 480));
    let on_disk = fs::read(server.snapshot_dir.join("pic2.jpg")).expect("the snapshot file");
    assert_eq!(json.u64("bytes"), on_disk.len() as u64);
    assert_eq!(decoded_size(&on_disk), (640, 480));
}

#[test]
fn capture_takes_a_frame_newer_than_an_earlier_snapshot() {
    let server = Server::synthetic(&[]);
    let before = frame_number(&server.get("/snapshot.jpg").body);
    assert_eq!(server.post("/capture").status, 200);
    let on_disk = fs::read(server.snapshot_dir.join("pic2.jpg")).expect("the snapshot file");
    let captured = frame_number(&on_disk);
    assert!(captured > before, "captured frame {captured} <= {before}");
}

#[test]
fn latest_snapshot_is_404_before_any_capture() {
    let server = Server::synthetic(&[]);
    assert_eq!(server.get("/snapshots/latest.jpg").status, 404);
}

#[test]
fn latest_snapshot_serves_the_file_capture_wrote() {
    let server = Server::synthetic(&[]);
    assert_eq!(server.post("/capture").status, 200);
    let latest = server.get("/snapshots/latest.jpg");
    assert_eq!(latest.status, 200);
    let on_disk = fs::read(server.snapshot_dir.join("pic2.jpg")).expect("the snapshot file");
    assert!(latest.body == on_disk, "latest.jpg differs from pic2.jpg");
}

#[test]
fn capture_without_a_camera_is_503_with_a_json_error() {
    let server = Server::start(&["--camera", "none"]);
    let response = server.post("/capture");
    assert_eq!(response.status, 503);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(
        response.json().str("error").contains("no camera"),
        "{}",
        response.text()
    );
}

#[test]
fn snapshot_without_a_camera_is_503() {
    let server = Server::start(&["--camera", "none"]);
    assert_eq!(server.get("/snapshot.jpg").status, 503);
}

// ------------------------------------------------------ state and metrics

#[test]
fn state_counts_a_snapshot_after_a_capture() {
    let server = Server::synthetic(&[]);
    assert_eq!(server.post("/capture").status, 200);
    let state = server.state();
    assert_eq!(state.u64("snapshots"), 1);
    assert_eq!(state.str("last_snapshot"), "pic2.jpg");
    assert_eq!(state.str("camera"), "synthetic");
    // The synthetic camera grabs nothing while nobody waits for a frame:
    // the capture is the only grab, and it was encoded once.
    assert_eq!(
        (state.u64("frames_grabbed"), state.u64("frames_encoded")),
        (1, 1),
        "{:?}",
        state.0
    );
}

#[test]
fn metrics_expose_frame_counters_and_histograms() {
    let server = Server::synthetic(&[]);
    assert_eq!(server.get("/snapshot.jpg").status, 200);
    let text = server.metrics();
    for name in [
        "camloop_frames_grabbed_total",
        "camloop_frames_encoded_total",
        "camloop_frames_sent_total",
        "camloop_frames_dropped_total",
        "camloop_viewers_dropped_total",
    ] {
        assert!(metric(&text, name).is_some(), "no {name} in:\n{text}");
    }
    assert!(metric(&text, "camloop_frames_encoded_total") >= Some(1));
    for histogram in ["camloop_grab_seconds", "camloop_encode_seconds"] {
        assert!(
            text.contains(&format!("# TYPE {histogram} histogram")),
            "no {histogram} histogram"
        );
        assert!(metric(&text, &format!("{histogram}_count")) >= Some(1));
    }
}

// ------------------------------------------------ methods and connections

#[test]
fn head_gets_the_get_headers_and_no_body() {
    let server = Server::synthetic(&[]);
    let get = server.get("/state");
    // Sent together with a GET on one connection: if HEAD carried a body,
    // the second response would start in the middle of it.
    let mut stream = server.connect();
    stream
        .write_all(
            b"HEAD /state HTTP/1.1\r\nHost: test\r\n\r\n\
              GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .expect("send");
    let mut reader = BufReader::new(&mut stream);
    let head = read_response(&mut reader, true).expect("the HEAD response");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert!(head.header("content-length").is_some());
    let next = read_response(&mut reader, false).expect("the GET response right after");
    assert_eq!(next.status, 200);
    assert!(next.text().starts_with("# HELP"), "{}", lossy(&next.body));
}

#[test]
fn head_of_a_snapshot_gives_the_jpeg_length_and_no_body() {
    let server = Server::synthetic(&[]);
    let mut stream = server.connect();
    // As above: a body after the HEAD answer would break the next response.
    stream
        .write_all(
            b"HEAD /snapshot.jpg HTTP/1.1\r\nHost: test\r\n\r\n\
              GET /snapshot.jpg HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .expect("send");
    let mut reader = BufReader::new(&mut stream);
    let head = read_response(&mut reader, true).expect("the HEAD response");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("image/jpeg"));
    let length: usize = head
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .expect("a Content-Length");
    assert!(length > 0, "the length of the JPEG a GET would get");
    let get = read_response(&mut reader, false).expect("the GET response right after");
    assert_eq!(decoded_size(&get.body), (640, 480));
}

#[test]
fn head_of_the_stream_sends_the_header_and_closes() {
    let server = Server::synthetic(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"HEAD /stream.mjpg HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    let mut bytes = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n") && !text.contains("--camloopframe"),
        "no parts after the head: {text:?}"
    );
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = Server::synthetic(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /state HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send the first request");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let first = read_response(&mut reader, false).expect("the first response");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("connection"), Some("keep-alive"));
    // Only after the first answer: the same connection takes another.
    stream
        .write_all(b"GET /snapshot.jpg HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send the second request");
    let second = read_response(&mut reader, false).expect("the second response");
    assert_eq!(second.status, 200);
    assert_eq!(decoded_size(&second.body), (640, 480));
}

#[test]
fn pipelined_requests_behind_a_snapshot_are_answered_in_order() {
    let server = Server::synthetic(&[]);
    let mut stream = server.connect();
    // The snapshot waits for a grab; the two requests behind it must wait
    // too, and come out after it, in order.
    stream
        .write_all(
            b"GET /snapshot.jpg HTTP/1.1\r\nHost: test\r\n\r\n\
              GET /state HTTP/1.1\r\nHost: test\r\n\r\n\
              GET /nope HTTP/1.1\r\nHost: test\r\n\r\n",
        )
        .expect("send three requests at once");
    let mut reader = BufReader::new(&mut stream);
    let snapshot = read_response(&mut reader, false).expect("the snapshot");
    assert_eq!(snapshot.header("content-type"), Some("image/jpeg"));
    assert_eq!(decoded_size(&snapshot.body), (640, 480));
    let state = read_response(&mut reader, false).expect("the state");
    assert_eq!(state.header("content-type"), Some("application/json"));
    // One grab, encoded once, and the state is read after it.
    assert_eq!(state.json().u64("frames_encoded"), 1);
    let missing = read_response(&mut reader, false).expect("the 404");
    assert_eq!(missing.status, 404);
}

// ----------------------------------------------------------- bad requests

/// Sends `raw`, expects `status` with `Connection: close`, and then the
/// server closing the connection.
fn assert_refused(server: &Server, raw: &[u8], status: u16) -> http_support::Response {
    let mut stream = server.connect();
    stream.write_all(raw).expect("send");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let response = read_response(&mut reader, raw.starts_with(b"HEAD "))
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", lossy(raw)));
    assert_eq!(response.status, status, "for {:?}", lossy(raw));
    assert_eq!(response.header("connection"), Some("close"));
    assert!(
        read_until_closed(&mut stream, READ_TIMEOUT).is_ok(),
        "the server closes after {status}"
    );
    response
}

#[test]
fn garbage_is_400() {
    let server = Server::synthetic(&[]);
    assert_refused(&server, b"\x16\x03\x01 hello there\r\n\r\n", 400);
}

#[test]
fn http11_request_without_host_is_400() {
    let server = Server::synthetic(&[]);
    assert_refused(&server, b"GET /state HTTP/1.1\r\n\r\n", 400);
}

#[test]
fn unknown_path_is_404() {
    let server = Server::synthetic(&[]);
    assert_refused(&server, b"GET /nope HTTP/1.1\r\nHost: test\r\n\r\n", 404);
}

#[test]
fn post_to_a_read_only_endpoint_is_405_allowing_get_and_head() {
    let server = Server::synthetic(&[]);
    let raw = b"POST /state HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n";
    let response = assert_refused(&server, raw, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
}

#[test]
fn get_of_capture_is_405_allowing_post() {
    let server = Server::synthetic(&[]);
    let response = assert_refused(&server, b"GET /capture HTTP/1.1\r\nHost: test\r\n\r\n", 405);
    assert_eq!(response.header("allow"), Some("POST"));
}

#[test]
fn body_over_64_kib_is_413() {
    // The bound is WebRTC signalling's (a browser's SDP offer is about
    // 5-10 KiB): a body is read whole before its request is handled.
    let server = Server::synthetic(&[]);
    let raw = b"POST /capture HTTP/1.1\r\nHost: test\r\nContent-Length: 65537\r\n\r\n";
    assert_refused(&server, raw, 413);
}

#[test]
fn head_over_eight_kib_is_431() {
    let server = Server::synthetic(&[]);
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    assert_refused(&server, raw.as_bytes(), 431);
}

#[test]
fn unfinished_head_over_eight_kib_is_431_without_waiting_for_its_end() {
    let server = Server::synthetic(&[]);
    let raw = format!("GET / HTTP/1.1\r\nX-Padding: {}", "a".repeat(9 * 1024));
    assert_refused(&server, raw.as_bytes(), 431);
}

// ------------------------------------------------------------------ token

const TOKEN: &str = "s3cret";

#[test]
fn missing_token_is_401_with_a_basic_challenge() {
    let server = Server::synthetic(&["--token", TOKEN]);
    let response = assert_refused(&server, b"GET /state HTTP/1.1\r\nHost: test\r\n\r\n", 401);
    assert_eq!(
        response.header("www-authenticate"),
        Some("Basic realm=\"camloop\"")
    );
    assert_eq!(response.text(), r#"{"error":"auth: token required"}"#);
}

#[test]
fn wrong_bearer_token_is_401() {
    let server = Server::synthetic(&["--token", TOKEN]);
    let raw = b"GET /state HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer wrong\r\n\r\n";
    assert_refused(&server, raw, 401);
}

#[test]
fn wrong_query_token_is_401() {
    let server = Server::synthetic(&["--token", TOKEN]);
    assert_refused(
        &server,
        b"GET /state?token=wrong HTTP/1.1\r\nHost: test\r\n\r\n",
        401,
    );
}

#[test]
fn right_bearer_token_is_served() {
    let server = Server::synthetic(&["--token", TOKEN]);
    let raw = format!(
        "GET /state HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    assert_eq!(server.exchange(raw.as_bytes()).status, 200);
}

#[test]
fn right_query_token_is_served() {
    let server = Server::synthetic(&["--token", TOKEN]);
    assert_eq!(server.get(&format!("/state?token={TOKEN}")).status, 200);
}
