//! The HTTP request parser, router and response builders, without sockets.
//!
//! One behaviour per test, named after it; a property test at the end checks
//! that no chunking of a pipelined byte stream changes what is parsed.

use camloop::http::metrics::{metrics_text, Reading};
use camloop::http::request::{
    parse_head, HttpError, Method, ParseOutcome, RequestHead, RequestReader, MAX_BODY_BYTES,
    MAX_HEADERS, MAX_HEAD_BYTES,
};
use camloop::http::response::{
    capture_json, challenge_for, cors_headers, error_json, error_response, error_response_to,
    jpeg_response_head, mjpeg_part_headers, mjpeg_stream_head, preflight_response, response,
    snapshot_response_head, state_json, unauthorized_response, CameraView, FrameStamp,
    HistogramView, StateView, MJPEG_FIRST_DELIMITER, MJPEG_PART_END,
};
use camloop::http::{is_preflight, route, Route, PAGE_HTML};
use proptest::prelude::*;

// ---------------------------------------------------------------- helpers

/// Parses a buffer that must hold exactly one complete head.
fn head(raw: &str) -> RequestHead {
    match parse_head(raw.as_bytes()) {
        ParseOutcome::Complete { head, consumed } => {
            assert_eq!(consumed, raw.len(), "the whole buffer is one head");
            head
        }
        other => panic!("expected a complete head for {raw:?}, got {other:?}"),
    }
}

fn error(raw: &[u8]) -> HttpError {
    match parse_head(raw) {
        ParseOutcome::Error(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn status_of(raw: &[u8]) -> u16 {
    error(raw).status()
}

fn route_of(method: &str, target: &str) -> Route {
    route(&head(&format!(
        "{method} {target} HTTP/1.1\r\nHost: cam\r\n\r\n"
    )))
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("responses are ASCII")
}

/// Splits a response into its head (without the blank line) and body.
fn split_response(bytes: &[u8]) -> (&str, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head ends with an empty line");
    (text(&bytes[..end]), &bytes[end + 4..])
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

// ---------------------------------------------------------------- routes

#[test]
fn root_and_index_are_the_page() {
    assert_eq!(route_of("GET", "/"), Route::Page);
    assert_eq!(route_of("GET", "/index.html"), Route::Page);
}

#[test]
fn stream_without_fps_has_no_rate() {
    assert_eq!(route_of("GET", "/stream.mjpg"), Route::Stream { fps: None });
}

#[test]
fn stream_fps_query_sets_the_viewer_rate() {
    assert_eq!(
        route_of("GET", "/stream.mjpg?fps=5"),
        Route::Stream { fps: Some(5) }
    );
}

#[test]
fn stream_fps_that_is_zero_or_not_a_number_is_ignored() {
    for target in [
        "/stream.mjpg?fps=0",
        "/stream.mjpg?fps=abc",
        "/stream.mjpg?fps=-3",
    ] {
        assert_eq!(
            route_of("GET", target),
            Route::Stream { fps: None },
            "{target}"
        );
    }
}

#[test]
fn snapshot_routes() {
    assert_eq!(route_of("GET", "/snapshot.jpg"), Route::Snapshot);
    assert_eq!(
        route_of("GET", "/snapshots/latest.jpg"),
        Route::LatestSnapshot
    );
}

#[test]
fn state_and_metrics_routes() {
    assert_eq!(route_of("GET", "/state"), Route::State);
    assert_eq!(route_of("GET", "/metrics"), Route::Metrics);
}

#[test]
fn post_capture_captures() {
    assert_eq!(route_of("POST", "/capture"), Route::Capture);
}

#[test]
fn head_is_allowed_wherever_get_is() {
    assert_eq!(route_of("HEAD", "/"), Route::Page);
    assert_eq!(
        route_of("HEAD", "/stream.mjpg"),
        Route::Stream { fps: None }
    );
    assert_eq!(route_of("HEAD", "/snapshot.jpg"), Route::Snapshot);
    assert_eq!(route_of("HEAD", "/state"), Route::State);
    assert_eq!(route_of("HEAD", "/metrics"), Route::Metrics);
}

#[test]
fn get_or_head_capture_is_405_allowing_post() {
    for method in ["GET", "HEAD", "PUT"] {
        assert_eq!(
            route_of(method, "/capture"),
            Route::MethodNotAllowed { allow: "POST" },
            "{method}"
        );
    }
}

#[test]
fn post_to_a_read_only_endpoint_is_405_allowing_get_and_head() {
    for path in ["/", "/stream.mjpg", "/snapshot.jpg", "/state", "/metrics"] {
        assert_eq!(
            route_of("POST", path),
            Route::MethodNotAllowed { allow: "GET, HEAD" },
            "{path}"
        );
    }
}

#[test]
fn methods_are_case_sensitive() {
    let head = head("get / HTTP/1.1\r\nHost: cam\r\n\r\n");
    assert_eq!(head.method, Method::Other);
    assert_eq!(route(&head), Route::MethodNotAllowed { allow: "GET, HEAD" });
}

#[test]
fn unknown_path_is_404_whatever_the_method() {
    assert_eq!(route_of("GET", "/nope"), Route::NotFound);
    assert_eq!(route_of("POST", "/nope"), Route::NotFound);
    assert_eq!(route_of("GET", "/favicon.ico"), Route::NotFound);
    // Paths are matched exactly: no trailing slash, no decoding.
    assert_eq!(route_of("GET", "/state/"), Route::NotFound);
    assert_eq!(route_of("GET", "/stat%65"), Route::NotFound);
}

#[test]
fn absolute_form_target_routes_by_its_path() {
    assert_eq!(route_of("GET", "http://cam:8080/state"), Route::State);
    assert_eq!(route_of("GET", "http://cam:8080"), Route::Page);
    assert_eq!(
        route_of("GET", "HTTP://cam/stream.mjpg?fps=2"),
        Route::Stream { fps: Some(2) }
    );
}

// ---------------------------------------------------------------- statuses

#[test]
fn garbage_is_400() {
    assert_eq!(status_of(b"hello there\r\n\r\n"), 400);
    assert_eq!(
        status_of(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        400
    );
    assert_eq!(status_of(b"GET /\r\n\r\n"), 400);
}

#[test]
fn header_line_without_colon_is_400() {
    assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost cam\r\n\r\n"), 400);
}

#[test]
fn target_not_starting_with_slash_is_400() {
    assert_eq!(status_of(b"GET state HTTP/1.1\r\nHost: cam\r\n\r\n"), 400);
}

#[test]
fn http11_without_host_is_400() {
    assert_eq!(status_of(b"GET / HTTP/1.1\r\n\r\n"), 400);
}

#[test]
fn two_host_headers_are_400() {
    assert_eq!(
        status_of(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
        400
    );
}

#[test]
fn http10_may_omit_host() {
    assert_eq!(head("GET / HTTP/1.0\r\n\r\n").path, "/");
}

#[test]
fn invalid_content_length_is_400() {
    for value in ["-1", "+5", "five", "1 2", ""] {
        let raw = format!("POST /capture HTTP/1.1\r\nHost: cam\r\nContent-Length: {value}\r\n\r\n");
        assert_eq!(status_of(raw.as_bytes()), 400, "{value:?}");
    }
}

#[test]
fn conflicting_content_lengths_are_400() {
    assert_eq!(
        status_of(b"POST /capture HTTP/1.1\r\nHost: cam\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        400
    );
}

#[test]
fn repeated_equal_content_length_is_accepted() {
    let head = head(
        "POST /capture HTTP/1.1\r\nHost: cam\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
    );
    assert_eq!(head.content_length, 3);
}

#[test]
fn body_over_the_cap_is_413() {
    let raw = format!(
        "POST /capture HTTP/1.1\r\nHost: cam\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY_BYTES + 1
    );
    assert_eq!(error(raw.as_bytes()), HttpError::BodyTooLarge);
    assert_eq!(status_of(raw.as_bytes()), 413);
}

#[test]
fn content_length_that_overflows_is_413() {
    let raw =
        "POST /capture HTTP/1.1\r\nHost: cam\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    assert_eq!(status_of(raw.as_bytes()), 413);
}

#[test]
fn body_at_the_cap_is_accepted() {
    let raw =
        format!("POST /capture HTTP/1.1\r\nHost: cam\r\nContent-Length: {MAX_BODY_BYTES}\r\n\r\n");
    assert_eq!(head(&raw).content_length, MAX_BODY_BYTES);
}

#[test]
fn head_that_never_ends_is_431_at_the_limit() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: cam\r\nX-Filler: ".to_vec();
    raw.resize(MAX_HEAD_BYTES - 1, b'a');
    assert_eq!(parse_head(&raw), ParseOutcome::Incomplete);
    raw.push(b'a');
    assert_eq!(status_of(&raw), 431);
}

#[test]
fn complete_head_longer_than_the_limit_is_431() {
    let filler = "a".repeat(MAX_HEAD_BYTES);
    let raw = format!("GET / HTTP/1.1\r\nHost: cam\r\nX-Filler: {filler}\r\n\r\n");
    assert_eq!(status_of(raw.as_bytes()), 431);
}

#[test]
fn long_request_line_is_431() {
    let raw = format!("GET /{} HTTP/1.1\r\n", "x".repeat(MAX_HEAD_BYTES));
    assert_eq!(status_of(raw.as_bytes()), 431);
}

#[test]
fn too_many_headers_is_431() {
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: cam\r\n");
    for i in 0..MAX_HEADERS {
        raw.push_str(&format!("X-{i}: {i}\r\n"));
    }
    raw.push_str("\r\n");
    assert_eq!(status_of(raw.as_bytes()), 431);
}

#[test]
fn transfer_encoding_is_501() {
    assert_eq!(
        status_of(b"POST /capture HTTP/1.1\r\nHost: cam\r\nTransfer-Encoding: chunked\r\n\r\n"),
        501
    );
}

#[test]
fn http2_and_http09_versions_are_rejected() {
    assert_eq!(status_of(b"GET / HTTP/2.0\r\nHost: cam\r\n\r\n"), 505);
    assert_eq!(status_of(b"GET / HTTP/0.9\r\n\r\n"), 505);
}

// ---------------------------------------------------------------- parsing

#[test]
fn partial_head_is_incomplete() {
    for raw in [
        "",
        "GE",
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: cam\r\n",
    ] {
        assert_eq!(
            parse_head(raw.as_bytes()),
            ParseOutcome::Incomplete,
            "{raw:?}"
        );
    }
}

#[test]
fn empty_lines_before_a_request_are_ignored() {
    // RFC 9112 §2.2: some clients send a CRLF after a POST body.
    let head = head("\r\nGET /state HTTP/1.1\r\nHost: cam\r\n\r\n");
    assert_eq!(head.path, "/state");
}

#[test]
fn http11_keeps_alive_by_default() {
    assert!(head("GET / HTTP/1.1\r\nHost: cam\r\n\r\n").keep_alive);
}

#[test]
fn http11_with_connection_close_closes() {
    assert!(!head("GET / HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!head("GET / HTTP/1.1\r\nHost: cam\r\nconnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
}

#[test]
fn http10_closes_by_default() {
    let head = head("GET / HTTP/1.0\r\n\r\n");
    assert!(!head.http11);
    assert!(!head.keep_alive);
}

#[test]
fn http10_with_keep_alive_keeps_alive() {
    assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
}

#[test]
fn query_values_are_percent_decoded() {
    let head = head(
        "GET /stream.mjpg?fps=5&name=a%20b+c&flag&bad=%zz&&x=%C3%A9 HTTP/1.1\r\nHost: cam\r\n\r\n",
    );
    assert_eq!(head.path, "/stream.mjpg");
    assert_eq!(head.query("fps"), Some("5"));
    assert_eq!(head.query("name"), Some("a b c"));
    assert_eq!(head.query("flag"), Some(""));
    assert_eq!(head.query("bad"), Some("%zz"));
    assert_eq!(head.query("x"), Some("é"));
    assert_eq!(head.query("missing"), None);
}

#[test]
fn bearer_token_is_taken_from_authorization() {
    let head = head("GET /state HTTP/1.1\r\nHost: cam\r\nAuthorization: bearer  s3cret \r\n\r\n");
    assert_eq!(head.bearer_token.as_deref(), Some("s3cret"));
}

#[test]
fn other_authorization_schemes_give_no_token() {
    let head =
        head("GET /state HTTP/1.1\r\nHost: cam\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n");
    assert_eq!(head.bearer_token, None);
}

#[test]
fn pipelined_heads_are_parsed_one_at_a_time() {
    let first = "GET /state HTTP/1.1\r\nHost: cam\r\n\r\n";
    let raw = format!("{first}GET /metrics HTTP/1.1\r\nHost: cam\r\n\r\n");
    match parse_head(raw.as_bytes()) {
        ParseOutcome::Complete { head, consumed } => {
            assert_eq!(head.path, "/state");
            assert_eq!(consumed, first.len());
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- reader

fn drain(reader: &mut RequestReader) -> Vec<Result<RequestHead, HttpError>> {
    std::iter::from_fn(|| reader.next_request()).collect()
}

#[test]
fn reader_hands_over_a_body_that_arrives_with_its_head() {
    let mut reader = RequestReader::new();
    reader.push(b"POST /capture HTTP/1.1\r\nHost: cam\r\nContent-Length: 5\r\n\r\nhelloGET /state HTTP/1.1\r\nHost: cam\r\n\r\n");
    let heads: Vec<RequestHead> = drain(&mut reader)
        .into_iter()
        .map(|r| r.expect("valid"))
        .collect();
    let paths: Vec<&str> = heads.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["/capture", "/state"]);
    assert_eq!(heads[0].body, b"hello");
    assert!(heads[1].body.is_empty());
    assert!(!reader.is_mid_request());
    assert_eq!(reader.buffered_bytes(), 0);
}

#[test]
fn reader_waits_for_a_body_that_arrives_later() {
    let mut reader = RequestReader::new();
    reader.push(b"POST /whep HTTP/1.1\r\nHost: cam\r\nContent-Length: 5\r\n\r\nhe");
    assert_eq!(drain(&mut reader).len(), 0, "the head waits for its body");
    assert!(reader.is_mid_request(), "three body bytes still to come");
    reader.push(b"l");
    reader.push(b"loGET /state HTTP/1.1\r\nHost: cam\r\n\r\n");
    let next = drain(&mut reader);
    assert_eq!(next.len(), 2);
    assert_eq!(
        next[0].as_ref().map(|h| h.body.as_slice()),
        Ok(&b"hello"[..])
    );
    assert_eq!(next[1].as_ref().map(|h| h.path.as_str()), Ok("/state"));
}

#[test]
fn reader_reports_an_error_once_and_then_nothing() {
    let mut reader = RequestReader::new();
    reader.push(b"GET /state HTTP/1.1\r\nHost: cam\r\n\r\nnonsense\r\n\r\n");
    let results = drain(&mut reader);
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert_eq!(
        results[1],
        Err(HttpError::BadRequest("invalid request line"))
    );
    reader.push(b"GET /state HTTP/1.1\r\nHost: cam\r\n\r\n");
    assert_eq!(reader.next_request(), None);
}

#[test]
fn reader_is_idle_between_requests() {
    let mut reader = RequestReader::new();
    assert!(!reader.is_mid_request());
    reader.push(b"GET / HTTP/1.1\r\n");
    assert_eq!(reader.next_request(), None);
    assert!(reader.is_mid_request());
    reader.push(b"Host: cam\r\n\r\n");
    assert!(matches!(reader.next_request(), Some(Ok(_))));
    assert!(!reader.is_mid_request());
}

#[test]
fn reader_answers_431_to_a_head_that_grows_past_the_limit() {
    let mut reader = RequestReader::new();
    reader.push(b"GET / HTTP/1.1\r\nX-Filler: ");
    let filler = [b'a'; 1024];
    let mut outcome = None;
    for _ in 0..(MAX_HEAD_BYTES / filler.len() + 1) {
        reader.push(&filler);
        outcome = reader.next_request();
        if outcome.is_some() {
            break;
        }
    }
    assert_eq!(outcome, Some(Err(HttpError::HeadTooLarge)));
}

// ---------------------------------------------------------------- responses

#[test]
fn response_has_status_length_and_connection() {
    let bytes = response(Method::Get, 200, "application/json", b"{}", true, &[]);
    let (head, body) = split_response(&bytes);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(head, "Content-Type"), Some("application/json"));
    assert_eq!(header(head, "Content-Length"), Some("2"));
    assert_eq!(header(head, "Connection"), Some("keep-alive"));
    assert_eq!(body, b"{}");
}

#[test]
fn head_response_has_the_same_headers_and_no_body() {
    let get = response(
        Method::Get,
        200,
        "text/plain",
        b"hello",
        false,
        &[("X-A", "1")],
    );
    let head = response(
        Method::Head,
        200,
        "text/plain",
        b"hello",
        false,
        &[("X-A", "1")],
    );
    let (get_head, get_body) = split_response(&get);
    let (head_head, head_body) = split_response(&head);
    assert_eq!(get_head, head_head);
    assert_eq!(get_body, b"hello");
    assert!(head_body.is_empty());
    assert_eq!(header(head_head, "Content-Length"), Some("5"));
    assert_eq!(header(head_head, "Connection"), Some("close"));
    assert_eq!(header(head_head, "X-A"), Some("1"));
}

#[test]
fn error_response_has_a_short_body_and_closes() {
    for status in [400, 404, 405, 408, 413, 431, 500, 501, 503, 505] {
        let bytes = error_response(status);
        let (head, body) = split_response(&bytes);
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert_eq!(header(head, "Connection"), Some("close"));
        assert_eq!(
            header(head, "Content-Length"),
            Some(body.len().to_string().as_str())
        );
        assert!(text(body).starts_with(&status.to_string()));
        assert!(body.len() < 64);
    }
}

#[test]
fn method_not_allowed_carries_allow() {
    let bytes = error_response_to(Method::Post, 405, &[("Allow", "GET, HEAD")]);
    let (head, _) = split_response(&bytes);
    assert!(head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_eq!(header(head, "Allow"), Some("GET, HEAD"));
}

#[test]
fn jpeg_response_is_never_cached() {
    let bytes = jpeg_response_head(1234, true);
    let (head, body) = split_response(&bytes);
    assert_eq!(header(head, "Content-Type"), Some("image/jpeg"));
    assert_eq!(header(head, "Content-Length"), Some("1234"));
    assert_eq!(header(head, "Cache-Control"), Some("no-store"));
    assert!(body.is_empty());
}

#[test]
fn mjpeg_stream_head_announces_the_boundary_and_closes() {
    let bytes = mjpeg_stream_head();
    let (head, body) = split_response(&bytes);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(
        header(head, "Content-Type"),
        Some("multipart/x-mixed-replace; boundary=camloopframe")
    );
    assert_eq!(header(head, "Cache-Control"), Some("no-store"));
    assert_eq!(header(head, "Connection"), Some("close"));
    assert_eq!(header(head, "Content-Length"), None);
    assert!(body.is_empty(), "parts follow, one per frame");
}

fn split_on<'a>(mut bytes: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    while let Some(at) = bytes.windows(delimiter.len()).position(|w| w == delimiter) {
        pieces.push(&bytes[..at]);
        bytes = &bytes[at + delimiter.len()..];
    }
    pieces.push(bytes);
    pieces
}

fn split_response_part(part: &[u8]) -> (&str, &[u8]) {
    let end = part
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("part headers end with an empty line");
    (text(&part[..end]), &part[end + 4..])
}

#[test]
fn capture_json_has_file_bytes_and_size() {
    assert_eq!(
        capture_json("pic2.jpg", 34567, 640, 480),
        r#"{"file":"pic2.jpg","bytes":34567,"width":640,"height":480}"#
    );
}

#[test]
fn json_strings_are_escaped() {
    assert_eq!(
        error_json("bad \"device\"\\\n\u{1}é"),
        r#"{"error":"bad \"device\"\\\n\u0001é"}"#
    );
}

fn sample_camera() -> CameraView {
    CameraView {
        name: "cam0".into(),
        source: "synthetic".into(),
        ok: false,
        error: Some("device \"gone\"".into()),
        width: 640,
        height: 480,
        fps_x100: 2997,
        stream_viewers: 2,
        frames_grabbed: 100,
        frames_encoded: 99,
        frames_sent: 190,
        frames_dropped: 8,
        viewers_dropped: 1,
        snapshots: 4,
        snapshot_errors: 0,
        last_snapshot: Some("pic2.jpg".into()),
        more: vec![Reading::counter(
            "camera_restarts",
            3,
            "camloop_camera_restarts_total",
            "Restarts.",
        )],
        grab_us: HistogramView {
            buckets_le_us: vec![(1_000, 50), (10_000, 98)],
            sum_us: 250_000,
            count: 100,
        },
        encode_us: HistogramView::default(),
        codec: "mjpeg",
        converter: "off",
        converter_direction: "none",
        au_complete_delay_us: HistogramView::default(),
    }
}

fn sample_state() -> StateView {
    StateView {
        version: "0.1.0".into(),
        uptime_s: 42,
        cameras: vec![sample_camera()],
        control_clients: 1,
        http_clients: 3,
        rtsp_clients: 2,
        requests: 20,
        errors: 2,
        bytes_in: 1000,
        bytes_out: 2_000_000,
        frame_send_age_us: HistogramView::default(),
        idr_send_age_us: HistogramView::default(),
        loop_stall_us: HistogramView::default(),
        more: vec![
            Reading::gauge("clients_max", 100, "camloop_clients_max", "The limit."),
            Reading::answered_elsewhere("loop_stall_us_p99", 7),
        ],
    }
}

#[test]
fn state_json_has_the_default_cameras_keys_on_top_and_every_camera_in_cameras() {
    let json = state_json(&sample_state());
    let camera_keys = concat!(
        r#""camera_ok":false,"camera_error":"device \"gone\"","codec":"mjpeg","#,
        r#""converter":"off","converter_direction":"none","#,
        r#""width":640,"height":480,"#,
        r#""fps":29.97,"fps_x100":2997,"stream_viewers":2,"frames_grabbed":100,"#,
        r#""frames_encoded":99,"frames_sent":190,"frames_dropped":8,"viewers_dropped":1,"#,
        r#""snapshots":4,"snapshot_errors":0,"camera_restarts":3,"last_snapshot":"pic2.jpg""#
    );
    assert_eq!(
        json,
        format!(
            "{}{camera_keys}{}{camera_keys}{}",
            r#"{"version":"0.1.0","uptime_s":42,"camera":"synthetic","#,
            concat!(
                r#","control_clients":1,"http_clients":3,"rtsp_clients":2,"requests":20,"errors":2,"#,
                r#""bytes_in":1000,"bytes_out":2000000,"clients_max":100,"#,
                r#""loop_stall_us_p99":7,"#,
                r#""cameras":[{"name":"cam0","source":"synthetic","#
            ),
            "}]}"
        )
    );
}

#[test]
fn state_json_writes_null_for_absent_values() {
    let state = StateView {
        cameras: vec![CameraView {
            ok: true,
            ..CameraView::default()
        }],
        ..StateView::default()
    };
    let json = state_json(&state);
    assert!(
        json.contains(r#""camera_ok":true,"camera_error":null"#),
        "{json}"
    );
    assert!(json.ends_with(r#""last_snapshot":null}]}"#), "{json}");
}

#[test]
fn metrics_every_sample_follows_its_help_and_type() {
    let metrics = metrics_text(&sample_state());
    let mut typed: Vec<(String, String)> = Vec::new();
    let mut helped: Vec<String> = Vec::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().unwrap_or_default().to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            typed.push((name.to_owned(), kind.to_owned()));
        } else {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let (family, kind) = typed.last().expect("a TYPE line comes first");
            assert!(helped.contains(family), "{family} has HELP");
            match kind.as_str() {
                "counter" => assert!(name == family && name.ends_with("_total"), "{line}"),
                "gauge" => assert!(name == family && !name.ends_with("_total"), "{line}"),
                "histogram" => assert!(
                    ["_bucket", "_sum", "_count"]
                        .map(|s| format!("{family}{s}"))
                        .contains(&name.to_owned()),
                    "{line}"
                ),
                other => panic!("unexpected type {other}"),
            }
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "numeric value in {line}");
        }
    }
    assert!(metrics.ends_with('\n'));
}

#[test]
fn metrics_histograms_are_cumulative_in_seconds() {
    let metrics = metrics_text(&sample_state());
    let expected = "camloop_grab_seconds_bucket{camera=\"cam0\",le=\"0.001\"} 50\n\
                    camloop_grab_seconds_bucket{camera=\"cam0\",le=\"0.01\"} 98\n\
                    camloop_grab_seconds_bucket{camera=\"cam0\",le=\"+Inf\"} 100\n\
                    camloop_grab_seconds_sum{camera=\"cam0\"} 0.25\n\
                    camloop_grab_seconds_count{camera=\"cam0\"} 100\n";
    assert!(metrics.contains(expected), "{metrics}");
    assert!(metrics.contains("camloop_encode_seconds_count{camera=\"cam0\"} 0\n"));
    assert!(metrics.contains("camloop_loop_stall_seconds_count 0\n"));
}

#[test]
fn metrics_show_encodes_next_to_frames_sent() {
    let metrics = metrics_text(&sample_state());
    assert!(metrics.contains("\ncamloop_frames_encoded_total{camera=\"cam0\"} 99\n"));
    assert!(metrics.contains("\ncamloop_frames_sent_total{camera=\"cam0\"} 190\n"));
    assert!(metrics.contains("\ncamloop_viewers_dropped_total{camera=\"cam0\"} 1\n"));
    assert!(metrics.contains(
        "# TYPE camloop_camera_restarts_total counter\n\
         camloop_camera_restarts_total{camera=\"cam0\"} 3\n"
    ));
    // A p99 is the histogram's to answer: only `/state` and `stats` keep it.
    assert!(!metrics.contains("p99"), "{metrics}");
    assert!(metrics.contains(
        "\ncamloop_camera_info{camera=\"cam0\",source=\"synthetic\",codec=\"mjpeg\",converter=\"none\"} 1\n"
    ));
    assert!(metrics.contains("camloop_clients{kind=\"stream\"} 2\n"));
    assert!(metrics.contains("camloop_info{version=\"0.1.0\",camera=\"synthetic\"} 1\n"));
}

#[test]
fn histogram_view_reads_a_timing_histogram_with_its_exact_sum() {
    let mut timing = camloop::stats::TimingHistogram::default();
    for us in [100, 200, 5_000] {
        timing.record(std::time::Duration::from_micros(us));
    }
    let view = HistogramView::from_timing(&timing, &[150, 1_000, 10_000]);
    assert_eq!(view.buckets_le_us, vec![(150, 1), (1_000, 2), (10_000, 3)]);
    assert_eq!(view.count, 3);
    assert_eq!(view.sum_us, 5_300);
}

#[test]
fn page_has_the_elements_the_browser_test_uses() {
    for id in [
        "live",
        "capture",
        "capture-result",
        "fps",
        "frames",
        "token-required",
    ] {
        assert!(PAGE_HTML.contains(&format!("id=\"{id}\"")), "#{id}");
    }
    // The stream URL is built by the script, so that it carries ?token=.
    assert!(PAGE_HTML
        .contains("liveView($(\"tile-default\"), live, $(\"live-video\"), \"stream.mjpg\""));
    assert!(PAGE_HTML.contains("name=\"viewport\""));
    // No external assets: the one absolute URL is the name of an RTP
    // header extension, which nothing fetches.
    let extension = "\"http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time\"";
    let without_extension = PAGE_HTML.replace(extension, "");
    assert!(
        !without_extension.contains("http://") && !without_extension.contains("https://"),
        "no external assets"
    );
}

// ---------------------------------------------------------------- chunking

/// One generated request and the head it must parse to.
#[derive(Debug, Clone)]
struct Generated {
    bytes: Vec<u8>,
    head: RequestHead,
}

fn generated_request() -> impl Strategy<Value = Generated> {
    (
        prop::sample::select(vec![
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("DELETE", Method::Delete),
            ("PUT", Method::Other),
        ]),
        prop::sample::select(vec!["/", "/state", "/stream.mjpg", "/capture", "/x/y.jpg"]),
        prop::option::of(("[a-z]{1,5}", "[a-zA-Z0-9 ]{0,8}")),
        any::<bool>(),
        prop::sample::select(vec![None, Some("close"), Some("keep-alive")]),
        prop::collection::vec(any::<u8>(), 0..40),
        prop::option::of("[A-Za-z0-9._~-]{1,16}"),
        "[ -~]{0,30}",
    )
        .prop_map(
            |(method, path, query, http11, connection, body, token, filler)| {
                let mut target = path.to_owned();
                let mut expected_query = Vec::new();
                if let Some((key, value)) = query {
                    target.push_str(&format!("?{key}={}", value.replace(' ', "%20")));
                    expected_query.push((key, value));
                }
                let mut raw = format!(
                    "{} {target} HTTP/1.{}\r\nHost: cam\r\nX-Filler: {filler}\r\n",
                    method.0,
                    u8::from(http11)
                );
                if let Some(connection) = connection {
                    raw.push_str(&format!("Connection: {connection}\r\n"));
                }
                if let Some(token) = &token {
                    raw.push_str(&format!("Authorization: Bearer {token}\r\n"));
                }
                if !body.is_empty() {
                    raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                raw.push_str("\r\n");
                let mut bytes = raw.into_bytes();
                bytes.extend_from_slice(&body);
                let keep_alive = match connection {
                    Some("close") => false,
                    Some(_) => true,
                    None => http11,
                };
                Generated {
                    bytes,
                    head: RequestHead {
                        method: method.1,
                        path: path.to_owned(),
                        query: expected_query,
                        http11,
                        keep_alive,
                        bearer_token: token,
                        basic_password: None,
                        content_length: body.len(),
                        body: body.clone(),
                        content_type: None,
                        if_match: None,
                        access_control_request_headers: None,
                    },
                }
            },
        )
}

/// Feeds `stream` to a reader in the pieces between `cuts`, taking out
/// requests after every piece, as the event loop does after every read.
fn parse_in_pieces(stream: &[u8], cuts: &[usize]) -> Vec<Result<RequestHead, HttpError>> {
    let mut cuts = cuts.to_vec();
    cuts.sort_unstable();
    let mut reader = RequestReader::new();
    let mut results = Vec::new();
    let mut from = 0;
    for to in cuts.into_iter().chain([stream.len()]) {
        reader.push(&stream[from..to]);
        from = to;
        results.extend(std::iter::from_fn(|| reader.next_request()));
    }
    results
}

fn cut_points(len: usize, indices: &[prop::sample::Index]) -> Vec<usize> {
    indices.iter().map(|i| i.index(len + 1)).collect()
}

proptest! {
    #[test]
    fn any_split_of_pipelined_requests_parses_the_same_heads(
        requests in prop::collection::vec(generated_request(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let stream: Vec<u8> = requests.iter().flat_map(|r| r.bytes.clone()).collect();
        let expected: Vec<_> = requests.iter().map(|r| Ok(r.head.clone())).collect();
        prop_assert_eq!(parse_in_pieces(&stream, &[]), expected.clone());
        prop_assert_eq!(parse_in_pieces(&stream, &cut_points(stream.len(), &cuts)), expected);
    }

    #[test]
    fn one_byte_at_a_time_parses_the_same_heads(
        requests in prop::collection::vec(generated_request(), 1..4),
    ) {
        let stream: Vec<u8> = requests.iter().flat_map(|r| r.bytes.clone()).collect();
        let every_byte: Vec<usize> = (1..stream.len()).collect();
        let expected: Vec<_> = requests.iter().map(|r| Ok(r.head.clone())).collect();
        prop_assert_eq!(parse_in_pieces(&stream, &every_byte), expected);
    }

    #[test]
    fn garbage_after_valid_requests_is_one_error_whatever_the_split(
        requests in prop::collection::vec(generated_request(), 0..4),
        garbage in "[a-z]{1,10} [a-z]{1,10}\r\n\r\n",
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let mut stream: Vec<u8> = requests.iter().flat_map(|r| r.bytes.clone()).collect();
        stream.extend_from_slice(garbage.as_bytes());
        let whole = parse_in_pieces(&stream, &[]);
        prop_assert_eq!(whole.len(), requests.len() + 1);
        prop_assert_eq!(whole.last().cloned(), Some(Err(HttpError::BadRequest("invalid request line"))));
        prop_assert_eq!(parse_in_pieces(&stream, &cut_points(stream.len(), &cuts)), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_chunking_never_matters(
        stream in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let whole = parse_in_pieces(&stream, &[]);
        prop_assert!(whole.iter().filter(|r| r.is_err()).count() <= 1);
        prop_assert_eq!(parse_in_pieces(&stream, &cut_points(stream.len(), &cuts)), whole);
    }
}

// ------------------------------------------- integrations (issue 16)

fn head_with_auth(value: &str) -> RequestHead {
    head(&format!(
        "GET /state HTTP/1.1\r\nHost: cam\r\nAuthorization: {value}\r\n\r\n"
    ))
}

#[test]
fn basic_auth_password_is_the_token_whatever_the_user() {
    // base64("any:s3cret"), as `curl -u any:s3cret` sends it.
    let head = head_with_auth("Basic YW55OnMzY3JldA==");
    assert_eq!(head.basic_password.as_deref(), Some("s3cret"));
    assert_eq!(head.bearer_token, None);
    assert_eq!(head.offered_tokens().collect::<Vec<_>>(), ["s3cret"]);
    // An empty user name (":s3cret") is as good as any.
    assert_eq!(
        head_with_auth("Basic OnMzY3JldA==")
            .basic_password
            .as_deref(),
        Some("s3cret")
    );
}

#[test]
fn basic_auth_scheme_is_case_insensitive_and_the_password_may_hold_colons() {
    // base64("u:a:b")
    let head = head_with_auth("bAsIc   dTphOmI=  ");
    assert_eq!(head.basic_password.as_deref(), Some("a:b"));
}

#[test]
fn broken_basic_credentials_are_no_credentials() {
    for value in [
        "Basic !!!notbase64",
        "Basic dXNlcm5hbWU=", // "username": no colon
        "Basic ",
        "Basicdxx",
        "Digest username=\"x\"",
    ] {
        let head = head_with_auth(value);
        assert_eq!(head.basic_password, None, "{value}");
        assert_eq!(head.offered_tokens().count(), 0, "{value}");
    }
}

#[test]
fn offered_tokens_lists_the_header_then_the_query() {
    let head = head(
        "GET /state?token=fromquery HTTP/1.1\r\nHost: cam\r\n\
         Authorization: Bearer fromheader\r\n\r\n",
    );
    assert_eq!(
        head.offered_tokens().collect::<Vec<_>>(),
        ["fromheader", "fromquery"]
    );
}

#[test]
fn mjpg_streamer_action_urls_route_to_stream_and_snapshot() {
    for target in [
        "/?action=stream",
        "/webcam/?action=stream",
        "/webcam?action=stream",
        "/a/b/c/?action=stream&foo=bar",
        "/?action=stream&token=T",
        "/?1701234567&action=stream",
    ] {
        assert_eq!(
            route_of("GET", target),
            Route::Stream { fps: None },
            "{target}"
        );
        assert_eq!(
            route_of("HEAD", target),
            Route::Stream { fps: None },
            "{target}"
        );
    }
    assert_eq!(
        route_of("GET", "/?action=stream&fps=5"),
        Route::Stream { fps: Some(5) }
    );
    for target in [
        "/?action=snapshot",
        "/webcam/?action=snapshot",
        "/webcam/?action=snapshot&n=1701234567",
        "/?action=snapshot&1701234567",
    ] {
        assert_eq!(route_of("GET", target), Route::Snapshot, "{target}");
    }
}

#[test]
fn unknown_actions_are_404_and_actions_do_not_override_camloop_paths() {
    assert_eq!(route_of("GET", "/?action=command"), Route::NotFound);
    assert_eq!(route_of("GET", "/webcam/?action="), Route::NotFound);
    assert_eq!(route_of("GET", "/webcam/"), Route::NotFound);
    assert_eq!(route_of("GET", "/state?action=stream"), Route::State);
    assert_eq!(
        route_of("POST", "/?action=snapshot"),
        Route::MethodNotAllowed { allow: "GET, HEAD" }
    );
}

#[test]
fn cache_busters_and_unknown_parameters_are_ignored() {
    assert_eq!(route_of("GET", "/snapshot.jpg?1701234567"), Route::Snapshot);
    assert_eq!(
        route_of("GET", "/snapshot.jpg?_=1701234567&x"),
        Route::Snapshot
    );
    assert_eq!(
        route_of("GET", "/stream.mjpg?1701234567&fps=2"),
        Route::Stream { fps: Some(2) }
    );
    assert_eq!(route_of("GET", "/state?ts=1&token=T"), Route::State);
    assert_eq!(route_of("GET", "/?token=T"), Route::Page);
}

#[test]
fn options_on_a_known_path_is_a_preflight_and_on_others_not() {
    let preflight = |target: &str| {
        is_preflight(&head(&format!(
            "OPTIONS {target} HTTP/1.1\r\nHost: cam\r\n\r\n"
        )))
    };
    for target in [
        "/stream.mjpg",
        "/snapshot.jpg",
        "/state",
        "/capture",
        "/?action=stream",
        "/webcam/?action=snapshot",
    ] {
        assert!(preflight(target), "{target}");
    }
    assert!(!preflight("/nope"));
    assert!(!preflight("/?action=command"));
    assert!(!is_preflight(&head(
        "GET /state HTTP/1.1\r\nHost: cam\r\n\r\n"
    )));
    // Routed as anything else, OPTIONS is not a method the endpoint serves.
    assert_eq!(
        route_of("OPTIONS", "/state"),
        Route::MethodNotAllowed { allow: "GET, HEAD" }
    );
    assert_eq!(route_of("OPTIONS", "/nope"), Route::NotFound);
}

#[test]
fn cors_applies_to_stream_snapshot_state_and_capture_only() {
    for route in [
        Route::Stream { fps: None },
        Route::Snapshot,
        Route::State,
        Route::Capture,
    ] {
        assert!(route.allows_cors(), "{route:?}");
    }
    for route in [
        Route::Page,
        Route::Metrics,
        Route::LatestSnapshot,
        Route::NotFound,
    ] {
        assert!(!route.allows_cors(), "{route:?}");
    }
    assert!(cors_headers(None).is_empty());
    assert_eq!(
        cors_headers(Some("https://ha.example")),
        [
            ("Access-Control-Allow-Origin", "https://ha.example"),
            ("Vary", "Origin"),
            (
                "Access-Control-Expose-Headers",
                "X-Timestamp, X-Frame, Location, ETag, Link"
            ),
        ]
    );
}

#[test]
fn preflight_response_is_204_with_the_cors_headers_when_configured() {
    let bytes = preflight_response(
        Some("*"),
        "GET, HEAD, POST, OPTIONS",
        Some("content-type, Cache-Control, bad\r\nline"),
        true,
    );
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"));
    assert!(text.ends_with("\r\n\r\n"), "no body");
    let head = text.trim_end();
    assert_eq!(header(head, "Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        header(head, "Access-Control-Allow-Methods"),
        Some("GET, HEAD, POST, OPTIONS")
    );
    assert_eq!(
        header(head, "Access-Control-Allow-Headers"),
        Some("Authorization, content-type, Cache-Control"),
        "the headers the page asked for, nothing that is not a header name"
    );
    assert_eq!(header(head, "Content-Length"), None, "a 204 has none");

    let bytes = preflight_response(None, "GET, HEAD, POST, OPTIONS", None, false);
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"));
    assert!(!text.contains("Access-Control-"), "{text}");
    assert_eq!(header(text.trim_end(), "Connection"), Some("close"));
}

#[test]
fn unauthorized_is_an_html_page_for_the_page_and_json_elsewhere() {
    let bare = head("GET / HTTP/1.1\r\nHost: cam\r\n\r\n");
    let bytes = unauthorized_response(&bare, true, &[]);
    let (head_text, body) = split_response(&bytes);
    assert!(head_text.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    assert_eq!(
        header(head_text, "WWW-Authenticate"),
        Some("Basic realm=\"camloop\"")
    );
    assert_eq!(
        header(head_text, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let body = std::str::from_utf8(body).unwrap();
    assert!(body.contains("id=\"token-required\""), "{body}");

    let state = head("GET /state HTTP/1.1\r\nHost: cam\r\n\r\n");
    let bytes = unauthorized_response(&state, false, &[("Vary", "Origin")]);
    let (head_text, body) = split_response(&bytes);
    assert!(head_text.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    assert_eq!(header(head_text, "Content-Type"), Some("application/json"));
    assert_eq!(header(head_text, "Vary"), Some("Origin"));
    assert_eq!(body, br#"{"error":"auth: token required"}"#);

    let head_request = head("HEAD /state HTTP/1.1\r\nHost: cam\r\n\r\n");
    let bytes = unauthorized_response(&head_request, false, &[]);
    let (head_text, body) = split_response(&bytes);
    assert_eq!(header(head_text, "Content-Length"), Some("32"));
    assert!(body.is_empty());
}

/// Basic when nothing or Basic was offered (so browsers prompt and ffmpeg
/// retries with the URL's credentials); Bearer, which no browser prompts
/// for, when only a wrong `?token=` or Bearer was.
#[test]
fn the_challenge_is_basic_unless_a_query_or_bearer_token_was_offered() {
    let challenge = |raw: &str| challenge_for(&head(raw)).1;
    assert_eq!(
        challenge("GET / HTTP/1.1\r\nHost: cam\r\n\r\n"),
        "Basic realm=\"camloop\""
    );
    assert_eq!(
        challenge("GET / HTTP/1.1\r\nHost: cam\r\nAuthorization: Basic YTpi\r\n\r\n"),
        "Basic realm=\"camloop\""
    );
    assert_eq!(
        challenge("GET /?token=x HTTP/1.1\r\nHost: cam\r\n\r\n"),
        "Bearer realm=\"camloop\""
    );
    assert_eq!(
        challenge("GET /state HTTP/1.1\r\nHost: cam\r\nAuthorization: Bearer x\r\n\r\n"),
        "Bearer realm=\"camloop\""
    );
}

#[test]
fn stream_parts_carry_length_timestamp_and_frame_then_the_next_delimiter() {
    let stamp = FrameStamp {
        seq: 42,
        grabbed_unix_us: 1_764_620_000_012_345,
    };
    assert_eq!(
        mjpeg_part_headers(17935, Some(stamp)),
        b"Content-Type: image/jpeg\r\nContent-Length: 17935\r\n\
          X-Timestamp: 1764620000.012345\r\nX-Frame: 42\r\n\r\n"
    );
    assert_eq!(
        mjpeg_part_headers(5, None),
        b"Content-Type: image/jpeg\r\nContent-Length: 5\r\n\r\n"
    );
    assert_eq!(MJPEG_FIRST_DELIMITER, b"--camloopframe\r\n");
    assert_eq!(MJPEG_PART_END, b"\r\n--camloopframe\r\n");
}

/// Builds a stream the way the loop does and reads it back the way a
/// multipart parser does (RFC 2046 §5.1.1): the body is split on
/// CRLF "--boundary" (the very first delimiter needs no CRLF); each part is
/// headers, an empty line, then the data. In the early-boundary framing the stream is
/// the first delimiter, then parts separated by CRLF--boundary; the last
/// delimiter (sent before a frame that has not come yet) opens an empty
/// tail.
#[test]
fn early_boundary_stream_splits_back_into_the_same_frames() {
    let frames: [&[u8]; 3] = [
        b"\xff\xd8first\xff\xd9",
        b"\xff\xd8\r\n--camloop\r\n\xff\xd9",
        b"\xff\xd8third\xff\xd9",
    ];
    let mut stream = mjpeg_stream_head();
    stream.extend_from_slice(MJPEG_FIRST_DELIMITER);
    for (i, frame) in frames.iter().enumerate() {
        let stamp = FrameStamp {
            seq: i as u64 + 1,
            grabbed_unix_us: 1_000_000 * (i as u64 + 1),
        };
        stream.extend_from_slice(&mjpeg_part_headers(frame.len(), Some(stamp)));
        stream.extend_from_slice(frame);
        stream.extend_from_slice(MJPEG_PART_END);
    }
    let (_, body) = split_response(&stream);
    let body = body
        .strip_prefix(b"--camloopframe\r\n")
        .expect("the body opens with the first delimiter");
    let parts: Vec<&[u8]> = split_on(body, b"\r\n--camloopframe\r\n");
    assert_eq!(parts.len(), frames.len() + 1);
    assert!(
        parts[frames.len()].is_empty(),
        "nothing after the last delimiter"
    );
    for (i, (part, frame)) in parts.iter().zip(frames).enumerate() {
        let (head, data) = split_response_part(part);
        assert_eq!(
            head,
            format!(
                "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}.000000\r\nX-Frame: {}",
                frame.len(),
                i + 1,
                i + 1
            )
        );
        assert_eq!(data, frame);
    }
}

#[test]
fn snapshot_head_carries_the_stamp_and_extra_headers() {
    let stamp = FrameStamp {
        seq: 7,
        grabbed_unix_us: 1_764_620_000_123_456,
    };
    let bytes = snapshot_response_head(1234, true, Some(stamp), &[("Vary", "Origin")]);
    let (head, body) = split_response(&bytes);
    assert_eq!(header(head, "Content-Length"), Some("1234"));
    assert_eq!(header(head, "Cache-Control"), Some("no-store"));
    assert_eq!(header(head, "X-Timestamp"), Some("1764620000.123456"));
    assert_eq!(header(head, "X-Frame"), Some("7"));
    assert_eq!(header(head, "Vary"), Some("Origin"));
    assert!(body.is_empty());
}
