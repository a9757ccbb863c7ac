//! The sessions driven without a socket: bytes in, the output queue's
//! bytes out, and the loop's frame service done by hand. One test per
//! protocol-table row (control port) and per route (HTTP).

use std::time::Instant;

use super::*;
use crate::camera::pipeline::{Demand, SharedFrame};
use crate::output::{OutputQueue, SpareBuffers};
use crate::protocol::{Framing, HELP_REPLY, MAX_LINE_BYTES};
use crate::server::connection::Lifecycle;
use crate::server::core::test_core;

/// One connection's worth of state around a session.
struct Harness {
    session: Session,
    core: Core,
    output: OutputQueue,
    lifecycle: Lifecycle,
}

impl Harness {
    fn control(framing: Framing, core: Core) -> Self {
        Self::with(Session::Control(ControlSession::new(framing, true)), core)
    }

    fn line() -> Self {
        Self::control(Framing::Line, test_core(true, None))
    }

    fn http(core: Core) -> Self {
        Self::with(Session::Http(Box::<HttpSession>::default()), core)
    }

    fn with(session: Session, core: Core) -> Self {
        Harness {
            session,
            core,
            output: OutputQueue::default(),
            lifecycle: Lifecycle::Open,
        }
    }

    /// Feeds `bytes` as one read, serves frame waiters with a real grab as
    /// the loop would, and returns everything queued.
    fn send_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        let conn = ConnRef { key: 0, id: 1 };
        let now = Instant::now();
        let mut cx = Context::new(conn, "test", &mut self.output, &mut self.lifecycle);
        self.session.input(&mut cx, &mut self.core, bytes, now);
        while !self.core.cameras[0].frame_waiters.is_empty() {
            let waiters = std::mem::take(&mut self.core.cameras[0].frame_waiters);
            let frame = self.core.cameras[0].camera.fresh_frame(now, 0);
            let wants_snapshot = waiters.iter().any(|w| w.wants_snapshot);
            let snapshot = wants_snapshot.then(|| match &frame {
                Ok(f) => self.core.cameras[0].snapshots.write(&f.jpeg),
                Err(e) => Err(e.to_string()),
            });
            let outcome = FrameOutcome { frame, snapshot };
            self.session.frame_ready(&mut cx, &mut self.core, &outcome);
            self.session.run_queued(&mut cx, &mut self.core, now);
        }
        drain(&mut self.output)
    }

    /// Offers `frame` as the loop's broadcast would.
    fn offer(&mut self, frame: &SharedFrame) -> Offer {
        let interval = self.core.cameras[0].camera.stream_interval();
        let conn = ConnRef { key: 0, id: 1 };
        let mut cx = Context::new(conn, "test", &mut self.output, &mut self.lifecycle);
        self.session
            .offer_frame(&mut cx, frame, Instant::now(), interval)
    }

    fn send(&mut self, bytes: &[u8]) -> String {
        String::from_utf8(self.send_bytes(bytes)).expect("a text reply")
    }
}

#[test]
fn any_other_text_is_received() {
    assert_eq!(Harness::line().send(b"hello\n\n"), "Received\nReceived\n");
}

#[test]
fn ping_is_pong_with_the_requests_terminator() {
    assert_eq!(Harness::line().send(b"ping\r\nPING\n"), "PONG\r\nPONG\n");
}

#[test]
fn help_lists_the_requests() {
    assert_eq!(Harness::line().send(b"help\n"), format!("{HELP_REPLY}\n"));
}

#[test]
fn stats_is_one_ok_line_of_keys() {
    let reply = Harness::line().send(b"stats\n");
    assert!(
        reply.starts_with("OK clients=0 clients_max=100 "),
        "{reply}"
    );
    assert!(reply.contains(" camera=synthetic camera_ok=1 "), "{reply}");
    assert_eq!(reply.lines().count(), 1);
}

#[test]
fn capture_replies_after_the_snapshot_is_written() {
    let mut harness = Harness::line();
    let reply = harness.send(b"c\n");
    assert!(reply.starts_with("OK pic2.jpg 64x48 "), "{reply}");
    let saved = harness.core.cameras[0]
        .snapshots
        .last_saved()
        .expect("a snapshot");
    assert_eq!(saved.file_name, "pic2.jpg");
}

#[test]
fn capture_in_raw_mode_is_received() {
    let mut harness = Harness::control(Framing::Raw, test_core(true, None));
    assert_eq!(harness.send(b"c"), "Received");
    assert!(
        harness.core.cameras[0].snapshots.last_saved().is_some(),
        "still saved"
    );
}

#[test]
fn capture_without_a_camera_is_an_error_in_line_mode_only() {
    let mut line = Harness::control(Framing::Line, test_core(false, None));
    assert_eq!(line.send(b"c\n"), "ERR camera: no camera\n");
    let mut raw = Harness::control(Framing::Raw, test_core(false, None));
    assert_eq!(raw.send(b"c"), "Received");
}

#[test]
fn frame_sends_a_length_and_then_exactly_that_much_jpeg() {
    let reply = Harness::line().send_bytes(b"frame\n");
    let newline = reply
        .iter()
        .position(|&b| b == b'\n')
        .expect("a header line");
    let header = std::str::from_utf8(&reply[..newline]).expect("text header");
    let length: usize = header
        .strip_prefix("FRAME ")
        .expect("FRAME")
        .parse()
        .expect("n");
    let jpeg = &reply[newline + 1..];
    assert_eq!(jpeg.len(), length);
    assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
}

#[test]
fn requests_queue_behind_a_capture_in_order() {
    let reply = Harness::line().send(b"c\nping\n");
    let lines: Vec<&str> = reply.lines().collect();
    assert!(lines[0].starts_with("OK pic2.jpg"), "{reply}");
    assert_eq!(lines[1], "PONG");
}

#[test]
fn auth_needs_the_right_token_and_gates_the_rest() {
    let mut harness = Harness::control(Framing::Line, test_core(true, Some("s3cret")));
    assert_eq!(harness.send(b"ping\n"), "ERR auth: required\n");
    assert_eq!(harness.send(b"auth nope\n"), "ERR auth: wrong token\n");
    assert_eq!(harness.send(b"auth s3cret\n"), "OK\n");
    assert_eq!(harness.send(b"ping\n"), "PONG\n");
    assert_eq!(harness.core.counters.auth_failures, 2);
}

#[test]
fn auth_without_a_configured_token_is_an_error() {
    let reply = Harness::line().send(b"auth x\n");
    assert_eq!(reply, "ERR auth: no token configured\n");
}

#[test]
fn exit_says_bye_in_line_mode_and_nothing_in_raw_mode() {
    let mut line = Harness::line();
    assert_eq!(
        line.send(b"exit\nping\n"),
        "Bye\n",
        "nothing runs after exit"
    );
    assert_eq!(line.lifecycle, Lifecycle::Draining);
    let mut raw = Harness::control(Framing::Raw, test_core(true, None));
    assert_eq!(raw.send(b"quit"), "");
    assert_eq!(raw.lifecycle, Lifecycle::Draining);
}

#[test]
fn shutdown_from_a_local_peer_stops_the_server() {
    let mut harness = Harness::line();
    assert_eq!(harness.send(b"shutdown\n"), "OK shutting down\n");
    assert!(harness.core.shutdown_requested);
}

#[test]
fn shutdown_from_a_remote_peer_needs_auth() {
    let session = Session::Control(ControlSession::new(Framing::Line, false));
    let mut harness = Harness::with(session, test_core(true, None));
    let reply = harness.send(b"shutdown\n");
    assert_eq!(
        reply,
        "ERR auth: shutdown needs auth from a non-loopback client\n"
    );
    assert!(!harness.core.shutdown_requested);
}

#[test]
fn an_over_long_line_is_answered_then_closed() {
    let mut harness = Harness::line();
    let mut input = b"ping\n".to_vec();
    input.extend(vec![b'x'; MAX_LINE_BYTES + 10]);
    assert_eq!(harness.send(&input), "PONG\nERR request: line too long\n");
    assert_eq!(harness.lifecycle, Lifecycle::Draining);
}

fn http_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

#[test]
fn http_page_state_and_metrics_answer_200() {
    let mut harness = Harness::http(test_core(true, None));
    let page = harness.send(http_get("/").as_bytes());
    assert!(
        page.starts_with("HTTP/1.1 200 OK\r\n") && page.contains("<html"),
        "{page}"
    );
    let state = harness.send(http_get("/state").as_bytes());
    assert!(state.contains("\"camera\":\"synthetic\""), "{state}");
    let metrics = harness.send(http_get("/metrics").as_bytes());
    assert!(
        metrics.contains("\ncamloop_camera_up{camera=\"cam0\"} 1\n"),
        "{metrics}"
    );
    assert_eq!(harness.lifecycle, Lifecycle::Open, "keep-alive");
}

#[test]
fn http_snapshot_is_a_fresh_jpeg() {
    let mut harness = Harness::http(test_core(true, None));
    let reply = harness.send_bytes(http_get("/snapshot.jpg").as_bytes());
    let head_end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&reply[..head_end]);
    assert!(head.contains("Content-Type: image/jpeg"), "{head}");
    assert!(reply[head_end..].starts_with(&[0xFF, 0xD8]));
    assert_eq!(harness.core.cameras[0].camera.frames_grabbed, 1);
}

#[test]
fn http_capture_is_post_only_and_answers_json() {
    let mut harness = Harness::http(test_core(true, None));
    let get = harness.send(http_get("/capture").as_bytes());
    assert!(
        get.starts_with("HTTP/1.1 405 ") && get.contains("Allow: POST"),
        "{get}"
    );
    let mut harness = Harness::http(test_core(true, None));
    let post = "POST /capture HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
    let reply = harness.send(post.as_bytes());
    assert!(reply.contains("\"file\":\"pic2.jpg\""), "{reply}");
}

#[test]
fn http_unknown_path_is_404_and_closes() {
    let mut harness = Harness::http(test_core(true, None));
    let reply = harness.send(http_get("/nope").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 404 "), "{reply}");
    assert_eq!(harness.lifecycle, Lifecycle::Draining);
    assert_eq!(harness.core.counters.errors, 1);
}

#[test]
fn http_stream_without_a_camera_is_503() {
    let mut harness = Harness::http(test_core(false, None));
    let reply = harness.send(http_get("/stream.mjpg").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 503 "), "{reply}");
    assert!(
        reply.ends_with("{\"error\":\"camera: no camera\"}"),
        "{reply}"
    );
}

#[test]
fn http_stream_makes_a_viewer_that_gets_offered_frames() {
    let mut harness = Harness::http(test_core(true, None));
    let head = harness.send(http_get("/stream.mjpg").as_bytes());
    assert!(head.contains("multipart/x-mixed-replace"), "{head}");
    assert!(harness.session.is_viewer());
    assert_eq!(
        harness.core.cameras[0].viewers,
        vec![ConnRef { key: 0, id: 1 }]
    );
    let now = Instant::now();
    let frame = harness.core.cameras[0]
        .camera
        .fresh_frame(now, 0)
        .expect("a frame");
    assert_eq!(harness.offer(&frame), Offer::Sent);
    assert_eq!(
        harness.offer(&frame),
        Offer::Skipped,
        "the first part is not written yet: the second is skipped"
    );
}

#[test]
fn an_h264_viewer_of_an_mjpeg_camera_is_counted_and_takes_no_jpegs() {
    // The synthetic camera sends JPEGs: its H.264 comes from the encoder,
    // which the viewer's demand starts.
    let mut harness = Harness::http(test_core(true, None));
    let reply = harness.send(http_get("/stream.h264").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("Content-Type: video/h264\r\n"), "{reply}");
    assert!(harness.session.is_h264_viewer());
    let served = &harness.core.cameras[0];
    assert_eq!((served.viewers.len(), served.h264_viewers), (1, 1));
    assert_eq!(
        served.demand(),
        Demand {
            jpeg: false,
            h264: true
        }
    );
    let frame = harness.core.cameras[0]
        .camera
        .fresh_frame(Instant::now(), 0)
        .expect("a frame");
    assert_eq!(harness.offer(&frame), Offer::NotViewing);
}

#[test]
fn http_without_the_token_is_401() {
    let mut harness = Harness::http(test_core(true, Some("s3cret")));
    let reply = harness.send(http_get("/state").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 401 "), "{reply}");
    assert_eq!(harness.core.counters.auth_failures, 1);
    let mut harness = Harness::http(test_core(true, Some("s3cret")));
    let reply = harness.send(http_get("/state?token=s3cret").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
}

#[test]
fn a_half_received_head_times_out_with_408() {
    let mut harness = Harness::http(test_core(true, None));
    assert_eq!(harness.send(b"GET / HT"), "");
    let Session::Http(http) = &mut harness.session else {
        panic!("built as HTTP")
    };
    let mut cx = Context::new(
        ConnRef { key: 0, id: 1 },
        "test",
        &mut harness.output,
        &mut harness.lifecycle,
    );
    http.timed_out(&mut cx, &mut harness.core);
    let written = drain(&mut harness.output);
    assert!(String::from_utf8_lossy(&written).starts_with("HTTP/1.1 408 "));
}

/// A control connection's entry on a real nonblocking socket, and the
/// socket's other end (nonblocking too: a read finds what was written or
/// fails at once).
fn entry_on_a_socket_pair() -> (Entry, std::os::unix::net::UnixStream) {
    use crate::server::connection::Connection;
    use crate::server::listener::Stream;
    let (ours, peer) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    peer.set_nonblocking(true).unwrap();
    let stream = Stream::Unix(mio::net::UnixStream::from_std(ours));
    let entry = Entry {
        conn: Connection::new(1, stream, "test".into(), Instant::now()),
        session: Session::Control(ControlSession::new(Framing::Line, true)),
    };
    (entry, peer)
}

#[test]
fn a_connection_past_the_hard_output_cap_is_dropped() {
    use crate::server::connection::OUTPUT_HARD_CAP_BYTES;
    // A real socket whose peer never reads: the kernel takes a little,
    // the rest stays queued.
    let (mut entry, _peer) = entry_on_a_socket_pair();
    let mut core = test_core(false, None);
    let mut read_buffer = vec![0u8; 4096];
    entry.conn.readiness.readable = false;
    entry
        .conn
        .output
        .push_bytes(&vec![b'x'; OUTPUT_HARD_CAP_BYTES / 2]);
    let under = entry.service(&mut core, 0, &mut read_buffer, Instant::now());
    assert!(under.is_ok(), "half the cap is allowed");
    entry
        .conn
        .output
        .push_bytes(&vec![b'x'; OUTPUT_HARD_CAP_BYTES]);
    let over = entry.service(&mut core, 0, &mut read_buffer, Instant::now());
    assert!(
        matches!(over, Err(CloseReason::Dropped("output over its hard cap"))),
        "{over:?}"
    );
    assert_eq!(core.counters.clients_dropped, 1);
    assert_eq!(core.blocked_writers, 1, "counted as blocked meanwhile");
}

/// Drains what is queued, as a socket that takes everything would.
fn drain(output: &mut OutputQueue) -> Vec<u8> {
    let mut written = Vec::new();
    output
        .write_to(&mut written, &mut SpareBuffers::default())
        .expect("a Vec takes everything");
    written
}

#[test]
fn a_viewer_gets_the_first_delimiter_then_stamped_parts_each_ending_in_the_next() {
    let mut harness = Harness::http(test_core(true, None));
    let head = harness.send(http_get("/?action=stream").as_bytes());
    assert!(head.ends_with("\r\n\r\n--camloopframe\r\n"), "{head:?}");
    let now = Instant::now();
    let frame = harness.core.cameras[0]
        .camera
        .fresh_frame(now, 0)
        .expect("a frame");
    assert_eq!(harness.offer(&frame), Offer::Sent);
    let part = drain(&mut harness.output);
    let text = String::from_utf8_lossy(&part);
    assert!(
        text.starts_with(&format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}\r\nX-Frame: {}\r\n\r\n",
            frame.jpeg.len(),
            crate::timefmt::unix_micros_text(frame.grabbed_unix_us),
            frame.seq
        )),
        "{text}"
    );
    assert!(part.ends_with(b"\xff\xd9\r\n--camloopframe\r\n"));
}

#[test]
fn a_viewer_never_gets_the_same_frame_twice_and_no_signal_parts_carry_no_stamp() {
    let mut harness = Harness::http(test_core(true, None));
    harness.send(http_get("/stream.mjpg").as_bytes());
    let now = Instant::now();
    let frame = harness.core.cameras[0]
        .camera
        .fresh_frame(now, 0)
        .expect("a frame");
    let no_signal = harness.core.cameras[0].camera.no_signal_frame();
    assert_eq!(harness.offer(&frame), Offer::Sent);
    drain(&mut harness.output);
    assert_eq!(
        harness.offer(&frame),
        Offer::Skipped,
        "X-Frame would repeat"
    );
    assert_eq!(harness.offer(&no_signal), Offer::Sent);
    let part = String::from_utf8_lossy(&drain(&mut harness.output)).into_owned();
    assert!(
        !part.contains("X-Frame") && !part.contains("X-Timestamp"),
        "{part}"
    );
}

#[test]
fn http_basic_credentials_pass_and_a_wrong_password_is_a_counted_401() {
    // base64("any:s3cret") and base64("any:wrong")
    let request = |credentials: &str| {
        format!("GET /state HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {credentials}\r\n\r\n")
    };
    let mut harness = Harness::http(test_core(true, Some("s3cret")));
    let reply = harness.send(request("YW55OnMzY3JldA==").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let reply = harness.send(request("YW55Ondyb25n").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 401 "), "{reply}");
    assert!(reply.contains("WWW-Authenticate: Basic realm=\"camloop\"\r\n"));
    assert_eq!(harness.core.counters.auth_failures, 1);
}

// --- camera controls -------------------------------------------------------

#[test]
fn controls_lists_the_synthetic_cameras_controls() {
    assert_eq!(
        Harness::line().send(b"controls\n"),
        "OK brightness=50/0..100 contrast=50/0..100\n"
    );
}

#[test]
fn set_replies_the_value_read_back_and_get_agrees() {
    let mut harness = Harness::line();
    assert_eq!(
        harness.send(b"set Brightness 70\r\n"),
        "OK brightness=70\r\n"
    );
    assert_eq!(harness.send(b"get brightness\n"), "OK brightness=70\n");
    assert_eq!(
        harness.send(b"controls\n"),
        "OK brightness=70/0..100 contrast=50/0..100\n"
    );
}

#[test]
fn control_errors_are_exact_in_line_mode() {
    let mut harness = Harness::line();
    let cases: &[(&[u8], &str)] = &[
        (b"get focus\n", "ERR request: unknown control focus\n"),
        (b"set hue 1\n", "ERR request: unknown control hue\n"),
        (
            b"set brightness 101\n",
            "ERR request: brightness must be 0..100\n",
        ),
        (
            b"set contrast -1\n",
            "ERR request: contrast must be 0..100\n",
        ),
        (
            b"set contrast x\n",
            "ERR request: contrast must be 0..100\n",
        ),
        (
            b"set contrast\n",
            "ERR request: usage: set <name> <value>\n",
        ),
        (b"get\n", "ERR request: usage: get <name>\n"),
    ];
    for (request, reply) in cases {
        assert_eq!(harness.send(request), *reply);
    }
    assert_eq!(harness.core.counters.errors, cases.len() as u64);
    assert_eq!(harness.send(b"get brightness\n"), "OK brightness=50\n");
}

#[test]
fn without_a_camera_there_are_no_controls() {
    let mut harness = Harness::control(Framing::Line, test_core(false, None));
    for request in [
        &b"controls\n"[..],
        b"get brightness\n",
        b"set brightness 1\n",
    ] {
        assert_eq!(
            harness.send(request),
            "ERR camera: controls not supported by this source\n"
        );
    }
}

#[test]
fn control_requests_in_raw_mode_follow_the_raw_mode_rule() {
    let mut raw = Harness::control(Framing::Raw, test_core(true, None));
    assert_eq!(raw.send(b"set brightness 60"), "OK brightness=60");
    assert_eq!(raw.send(b"get brightness"), "OK brightness=60");
    assert_eq!(
        raw.send(b"controls"),
        "OK brightness=60/0..100 contrast=50/0..100"
    );
    for error in [&b"get focus"[..], b"set brightness 999", b"set contrast"] {
        assert_eq!(raw.send(error), "Received");
    }
    let mut none = Harness::control(Framing::Raw, test_core(false, None));
    assert_eq!(none.send(b"controls"), "Received");
}

#[test]
fn control_requests_need_auth_when_a_token_is_set() {
    let mut harness = Harness::control(Framing::Line, test_core(true, Some("s3cret")));
    for request in [
        &b"controls\n"[..],
        b"get brightness\n",
        b"set brightness 9\n",
    ] {
        assert_eq!(harness.send(request), "ERR auth: required\n");
    }
    assert_eq!(harness.send(b"auth s3cret\n"), "OK\n");
    assert_eq!(harness.send(b"get brightness\n"), "OK brightness=50\n");
}

fn http_post(path: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
}

/// The body of a response holding exactly one.
fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").expect("a head").1
}

#[test]
fn http_controls_is_json_and_post_sets_one() {
    let mut harness = Harness::http(test_core(true, None));
    let listed = harness.send(http_get("/controls").as_bytes());
    assert!(listed.starts_with("HTTP/1.1 200 "), "{listed}");
    assert_eq!(
        body(&listed),
        r#"{"brightness":{"value":50,"min":0,"max":100},"contrast":{"value":50,"min":0,"max":100}}"#
    );
    let set = harness.send(http_post("/controls?name=contrast&value=65").as_bytes());
    assert!(set.starts_with("HTTP/1.1 200 "), "{set}");
    assert_eq!(body(&set), r#"{"contrast":{"value":65,"min":0,"max":100}}"#);
    assert_eq!(
        harness.core.cameras[0]
            .camera
            .control("contrast")
            .unwrap()
            .value,
        65
    );
}

#[test]
fn http_control_errors_are_json_with_the_right_status() {
    let cases = [
        (
            "/controls?name=x&value=1",
            404,
            "request: unknown control x",
        ),
        (
            "/controls?name=brightness&value=300",
            400,
            "request: brightness must be 0..100",
        ),
        (
            "/controls?name=brightness",
            400,
            "request: usage: POST /controls?name=N&value=V",
        ),
    ];
    for (path, status, error) in cases {
        let mut harness = Harness::http(test_core(true, None));
        let reply = harness.send(http_post(path).as_bytes());
        assert!(reply.starts_with(&format!("HTTP/1.1 {status} ")), "{reply}");
        assert_eq!(body(&reply), format!("{{\"error\":\"{error}\"}}"));
    }
    let mut harness = Harness::http(test_core(false, None));
    let reply = harness.send(http_get("/controls").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 501 "), "{reply}");
    assert_eq!(
        body(&reply),
        r#"{"error":"camera: controls not supported by this source"}"#
    );
}

#[test]
fn http_controls_need_the_token_and_other_methods_are_405() {
    let mut harness = Harness::http(test_core(true, Some("s3cret")));
    let reply = harness.send(http_post("/controls?name=brightness&value=1").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 401 "), "{reply}");
    assert_eq!(
        harness.core.cameras[0]
            .camera
            .control("brightness")
            .unwrap()
            .value,
        50
    );
    let mut harness = Harness::http(test_core(true, Some("s3cret")));
    let path = "/controls?name=brightness&value=1&token=s3cret";
    let reply = harness.send(http_post(path).as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let mut harness = Harness::http(test_core(true, None));
    let reply = harness.send(b"DELETE /controls HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 405 "), "{reply}");
    assert!(reply.contains("Allow: GET, HEAD, POST\r\n"), "{reply}");
}

/// What one slab entry (an idle connection's whole cost in camloop) may
/// take: the 256 bytes per idle connection `benches/connections.sh` checks
/// as RSS, minus a share for the allocator and the slab.
const IDLE_SLOT_BUDGET_BYTES: usize = 240;

#[test]
fn an_idle_connections_slab_slot_fits_its_budget() {
    let slot = std::mem::size_of::<Entry>();
    assert!(
        slot <= IDLE_SLOT_BUDGET_BYTES,
        "a slab entry is {slot} bytes, over the {IDLE_SLOT_BUDGET_BYTES} of the budget"
    );
}

// ---------------------------------------------------------------------------
// RTSP: one request at a time, as a client sends them.

impl Harness {
    fn rtsp(core: Core) -> Self {
        Self::with(
            Session::Rtsp(Box::new(RtspSession::new(Instant::now()))),
            core,
        )
    }

    /// Sends one request (`CSeq` added after its first line; `head` may
    /// end in a blank line and a body) and returns everything queued,
    /// lossily as text (interleaved packets may follow the response).
    fn rtsp_request(&mut self, cseq: u32, head: &str) -> String {
        let (first, rest) = head.split_once("\r\n").unwrap_or((head, ""));
        let end = match rest {
            "" => "",
            _ if rest.contains("\r\n\r\n") => "",
            _ => "\r\n\r\n",
        };
        let blank = if rest.is_empty() { "\r\n" } else { "" };
        let request = format!("{first}\r\nCSeq: {cseq}\r\n{rest}{end}{blank}");
        String::from_utf8_lossy(&self.send_bytes(request.as_bytes())).into_owned()
    }

    fn is_draining(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Draining | Lifecycle::Closed)
    }
}

/// The value of header `name` in the first response of `reply`.
fn rtsp_header<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let head = reply.split("\r\n\r\n").next()?;
    head.lines()
        .filter_map(|line| line.split_once(": "))
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

const URL: &str = "rtsp://127.0.0.1:8554/cam0";

#[test]
fn rtsp_setup_then_play_makes_a_viewer_and_teardown_ends_it() {
    let mut harness = Harness::rtsp(test_core(true, None));
    let reply = harness.rtsp_request(1, &format!("OPTIONS {URL} RTSP/1.0"));
    assert!(
        reply.starts_with("RTSP/1.0 200 OK\r\nCSeq: 1\r\n"),
        "{reply}"
    );
    assert!(rtsp_header(&reply, "Public").is_some_and(|p| p.contains("DESCRIBE")));
    let reply = harness.rtsp_request(2, &format!("PLAY {URL} RTSP/1.0"));
    assert!(
        reply.starts_with("RTSP/1.0 455 "),
        "PLAY before SETUP: {reply}"
    );
    let reply = harness.rtsp_request(
        3,
        &format!(
            "SETUP {URL}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1"
        ),
    );
    assert!(reply.starts_with("RTSP/1.0 200 OK"), "{reply}");
    let transport = rtsp_header(&reply, "Transport").expect("a Transport");
    let ssrc = harness.core.cameras[0].rtp.as_ref().unwrap().ssrc();
    assert_eq!(
        transport,
        format!("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc={ssrc:08X};mode=\"PLAY\"")
    );
    let session = rtsp_header(&reply, "Session").expect("a Session");
    let (id, timeout) = session.split_once(';').unwrap();
    assert_eq!(timeout, "timeout=60");
    assert!(
        harness.core.cameras[0].viewers.is_empty(),
        "not before PLAY"
    );
    let reply = harness.rtsp_request(4, &format!("PLAY {URL} RTSP/1.0\r\nSession: {id}"));
    assert!(reply.starts_with("RTSP/1.0 200 OK"), "{reply}");
    assert_eq!(rtsp_header(&reply, "Range"), Some("npt=0.000-"));
    let rtp_info = rtsp_header(&reply, "RTP-Info").expect("RTP-Info");
    assert!(
        rtp_info.starts_with(&format!("url={URL}/trackID=0;seq=")),
        "{rtp_info}"
    );
    // The sender report follows the response, on the RTCP channel.
    let after = reply.split("\r\n\r\n").nth(1).unwrap();
    assert!(after.starts_with("$\u{1}"), "an SR on channel 1: {after:?}");
    let served = &harness.core.cameras[0];
    assert_eq!(
        (
            served.viewers.len(),
            served.rtsp_viewers,
            served.h264_viewers
        ),
        (1, 1, 1)
    );
    assert!(served.demand().h264, "an RTSP viewer needs H.264");
    let reply = harness.rtsp_request(5, &format!("TEARDOWN {URL} RTSP/1.0\r\nSession: {id}"));
    assert!(reply.starts_with("RTSP/1.0 200 OK"), "{reply}");
    let served = &harness.core.cameras[0];
    assert_eq!(
        (
            served.viewers.len(),
            served.rtsp_viewers,
            served.h264_viewers
        ),
        (0, 0, 0)
    );
    assert!(!harness.is_draining(), "TEARDOWN keeps the connection");
}

#[test]
fn rtsp_packets_go_out_on_the_channels_setup_agreed() {
    let mut harness = Harness::rtsp(test_core(true, None));
    let reply = harness.rtsp_request(
        1,
        &format!("SETUP {URL} RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=4-5"),
    );
    let session = rtsp_header(&reply, "Session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let reply = harness.rtsp_request(2, &format!("PLAY {URL} RTSP/1.0\r\nSession: {session}"));
    assert!(
        reply
            .split("\r\n\r\n")
            .nth(1)
            .unwrap()
            .starts_with("$\u{5}"),
        "{reply:?}"
    );
    let now = Instant::now();
    let mut data = vec![
        0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65,
    ];
    data.resize(3000, 0x88);
    let au = crate::camera::h264_stream::SharedAu {
        seq: 1,
        data: data.into(),
        keyframe: true,
        follows_gap: false,
        started_at: now,
        started_unix_us: 0,
        ready_at: now,
        parameter_sets: None,
    };
    let rtp = harness.core.cameras[0]
        .rtp
        .as_mut()
        .unwrap()
        .push(&au, Some(1))
        .unwrap();
    let offer = AuOffer {
        au: &au,
        rtp: Some(&rtp),
        sender_report: None,
    };
    let conn = ConnRef { key: 0, id: 1 };
    let mut cx = Context::new(conn, "test", &mut harness.output, &mut harness.lifecycle);
    assert_eq!(
        harness.session.offer_au(&mut cx, &offer, 3000, now),
        Offer::Sent
    );
    let bytes = drain(&mut harness.output);
    let mut at = 0;
    let mut packets = 0;
    while at < bytes.len() {
        assert_eq!((bytes[at], bytes[at + 1]), (b'$', 4), "RTP on channel 4");
        let length = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        assert_eq!(bytes[at + 4] >> 6, 2, "RTP version 2");
        at += 4 + length;
        packets += 1;
    }
    assert_eq!(at, bytes.len(), "whole packets only");
    assert_eq!(packets, rtp.packets);
    assert!(packets > 2, "3000 bytes over FU-A fragments");
}

#[test]
fn rtsp_errors_have_their_status_and_only_unreadable_requests_close() {
    let mut harness = Harness::rtsp(test_core(true, None));
    let cases = [
        (
            format!("SETUP {URL} RTSP/1.0\r\nTransport: RTP/AVP;unicast;client_port=5000-5001"),
            "461",
        ),
        (
            format!("SETUP {URL} RTSP/1.0\r\nTransport: RTP/AVP/TCP;multicast"),
            "461",
        ),
        (format!("SETUP {URL} RTSP/1.0"), "461"),
        (
            "DESCRIBE rtsp://127.0.0.1:8554/nope RTSP/1.0".to_string(),
            "404",
        ),
        (
            format!("SETUP {URL}/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/TCP"),
            "404",
        ),
        (format!("OPTIONS {URL} RTSP/1.0\r\nSession: 1234"), "454"),
        (format!("PAUSE {URL} RTSP/1.0"), "455"),
        (format!("ANNOUNCE {URL} RTSP/1.0"), "405"),
        (format!("RECORD {URL} RTSP/1.0"), "405"),
        (format!("FLY {URL} RTSP/1.0"), "501"),
        (
            format!("SET_PARAMETER {URL} RTSP/1.0\r\nContent-Length: 3\r\n\r\nx=1"),
            "451",
        ),
    ];
    for (cseq, (request, status)) in cases.iter().enumerate() {
        let reply = harness.rtsp_request(cseq as u32 + 1, request);
        assert!(
            reply.starts_with(&format!("RTSP/1.0 {status} ")),
            "{request}: {reply}"
        );
        assert!(
            reply.contains(&format!("CSeq: {}\r\n", cseq + 1)),
            "{reply}"
        );
        assert!(!harness.is_draining(), "{request} closed the connection");
    }
    let reply = harness.rtsp_request(
        20,
        &format!("OPTIONS {URL} RTSP/1.0\r\nRequire: play.basic"),
    );
    assert!(reply.starts_with("RTSP/1.0 551 "), "{reply}");
    assert_eq!(rtsp_header(&reply, "Unsupported"), Some("play.basic"));
    // What cannot be read on ends the connection after its answer.
    let reply = harness.rtsp_request(21, &format!("OPTIONS {URL} RTSP/2.0"));
    assert!(reply.starts_with("RTSP/1.0 505 "), "{reply}");
    assert!(harness.is_draining());
    let mut harness = Harness::rtsp(test_core(true, None));
    let reply = String::from_utf8(harness.send_bytes(b"OPTIONS * RTSP/1.0\r\n\r\n")).unwrap();
    assert!(reply.starts_with("RTSP/1.0 400 "), "no CSeq: {reply}");
    assert!(harness.is_draining());
}

#[test]
fn rtsp_with_a_token_challenges_with_digest_then_basic_and_takes_either() {
    use crate::rtsp::auth::{basic_authorization, digest_authorization};
    let mut harness = Harness::rtsp(test_core(true, Some("s3cret")));
    let reply = harness.rtsp_request(1, &format!("OPTIONS {URL} RTSP/1.0"));
    assert!(reply.starts_with("RTSP/1.0 401 "), "{reply}");
    let challenges: Vec<&str> = reply
        .lines()
        .filter_map(|line| line.strip_prefix("WWW-Authenticate: "))
        .collect();
    assert_eq!(challenges.len(), 2, "{reply}");
    assert!(challenges[0].starts_with("Digest ") && challenges[1].starts_with("Basic "));
    let basic = basic_authorization("anyone", "s3cret");
    let reply = harness.rtsp_request(
        2,
        &format!("OPTIONS {URL} RTSP/1.0\r\nAuthorization: {basic}"),
    );
    assert!(reply.starts_with("RTSP/1.0 200 "), "Basic: {reply}");
    let digest = digest_authorization(challenges[0], "OPTIONS", URL, "u", "s3cret", "0a4f113b")
        .expect("an answer to the challenge");
    let reply = harness.rtsp_request(
        3,
        &format!("OPTIONS {URL} RTSP/1.0\r\nAuthorization: {digest}"),
    );
    assert!(reply.starts_with("RTSP/1.0 200 "), "Digest: {reply}");
    let wrong =
        digest_authorization(challenges[0], "OPTIONS", URL, "u", "guess", "0a4f113b").unwrap();
    let reply = harness.rtsp_request(
        4,
        &format!("OPTIONS {URL} RTSP/1.0\r\nAuthorization: {wrong}"),
    );
    assert!(
        reply.starts_with("RTSP/1.0 401 "),
        "a wrong password: {reply}"
    );
    assert_eq!(harness.core.counters.auth_failures, 2);
}

#[test]
fn rtsp_rtcp_from_the_client_keeps_its_session_alive() {
    let mut harness = Harness::rtsp(test_core(true, None));
    let reply = harness.rtsp_request(
        1,
        &format!("SETUP {URL} RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1"),
    );
    assert!(reply.starts_with("RTSP/1.0 200 "), "{reply}");
    let Session::Rtsp(rtsp) = &harness.session else {
        unreachable!()
    };
    let before = rtsp.deadline(&harness.core.config).unwrap();
    let report = crate::rtsp::rtcp::receiver_report(0x1234, "client");
    let mut framed = Vec::new();
    crate::rtsp::response::push_interleaved(&mut framed, 1, &report);
    let later = Instant::now() + std::time::Duration::from_secs(30);
    let conn = ConnRef { key: 0, id: 1 };
    let mut cx = Context::new(conn, "test", &mut harness.output, &mut harness.lifecycle);
    harness
        .session
        .input(&mut cx, &mut harness.core, &framed, later);
    let Session::Rtsp(rtsp) = &harness.session else {
        unreachable!()
    };
    let after = rtsp.deadline(&harness.core.config).unwrap();
    assert!(
        after >= before + std::time::Duration::from_secs(30),
        "RTCP moved the deadline"
    );
    // Anything else on the channel does not.
    let mut framed = Vec::new();
    crate::rtsp::response::push_interleaved(&mut framed, 1, b"not rtcp");
    let much_later = later + std::time::Duration::from_secs(30);
    let mut cx = Context::new(conn, "test", &mut harness.output, &mut harness.lifecycle);
    harness
        .session
        .input(&mut cx, &mut harness.core, &framed, much_later);
    let Session::Rtsp(rtsp) = &harness.session else {
        unreachable!()
    };
    assert_eq!(rtsp.deadline(&harness.core.config).unwrap(), after);
}

#[test]
fn rtsp_a_slow_head_is_held_to_the_head_timeout_and_answered_408() {
    let mut harness = Harness::rtsp(test_core(true, None));
    let Session::Rtsp(rtsp) = &harness.session else {
        unreachable!()
    };
    let idle = rtsp.deadline(&harness.core.config).unwrap();
    assert!(harness.send_bytes(b"OPTIONS * RTSP/1.0\r\nCSe").is_empty());
    let Session::Rtsp(rtsp) = &harness.session else {
        unreachable!()
    };
    let config = &harness.core.config;
    let head_deadline = rtsp.deadline(config).unwrap();
    assert!(
        head_deadline < idle,
        "the head timeout ({:?}) is shorter than the session's ({:?})",
        config.http_head_timeout,
        config.rtsp_session_timeout
    );
    let conn = ConnRef { key: 0, id: 1 };
    let mut cx = Context::new(conn, "test", &mut harness.output, &mut harness.lifecycle);
    harness.session.timed_out(&mut cx, &mut harness.core);
    let reply = String::from_utf8(drain(&mut harness.output)).unwrap();
    assert!(reply.starts_with("RTSP/1.0 408 "), "{reply}");
    assert!(harness.is_draining());
}

#[test]
fn a_fan_out_writes_a_frame_the_kernel_takes_and_leaves_the_rest_to_the_loop() {
    use std::io::Read;
    use std::rc::Rc;

    let (mut entry, mut peer) = entry_on_a_socket_pair();
    let mut core = test_core(false, None);
    let (_, mut books) = core.cameras_and_books();
    // A frame the socket has room for: written there and then.
    entry.conn.output.push_shared(Rc::from(&b"a frame"[..]));
    assert!(!entry.write_fan_out(&mut books, Instant::now()));
    let mut received = [0u8; 7];
    peer.read_exact(&mut received).unwrap();
    assert_eq!(&received, b"a frame");
    // One the socket cannot take whole (its peer is not reading): what is
    // left stays queued, and the loop is asked to drive the connection.
    let big = vec![b'x'; 8 * 1024 * 1024];
    entry.conn.output.push_shared(Rc::from(&big[..]));
    assert!(entry.write_fan_out(&mut books, Instant::now()));
    let left = entry.conn.output.pending_bytes();
    assert!(left > 0 && left < big.len(), "{left} bytes left");
    assert_eq!(core.counters.bytes_out, (7 + big.len() - left) as u64);
}

#[test]
fn a_fan_out_hands_a_viewer_counted_blocked_back_to_the_loop_even_when_drained() {
    use std::rc::Rc;

    let (mut entry, _peer) = entry_on_a_socket_pair();
    let mut core = test_core(false, None);
    // The loop counted it blocked on an earlier turn; only the loop's own
    // turn uncounts it (and drops the WRITABLE interest).
    entry.conn.write_blocked_since = Some(Instant::now());
    let (_, mut books) = core.cameras_and_books();
    entry.conn.output.push_shared(Rc::from(&b"a frame"[..]));
    assert!(entry.write_fan_out(&mut books, Instant::now()));
    assert!(entry.conn.output.is_empty(), "written all the same");
}
