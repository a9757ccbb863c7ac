//! WebRTC signalling on the HTTP port, request by request, without a
//! browser: what WHEP, camera-streamer's JSON and OctoPrint's offer are
//! answered, the errors, the limits, the token and CORS, and a peer that
//! never connects being freed. The offers are real ones, captured from
//! Chromium 156 (`tests/data/webrtc/`). Playing the video in a browser is
//! `tests/webrtc_browser.rs`'s business.

mod http_support;

use std::time::Duration;

use http_support::{wait_until, Json, Response, Server};

/// Chromium's offer for one `recvonly` video transceiver (WHEP, Fluidd).
const RECVONLY_OFFER: &str = include_str!("data/webrtc/chromium_recvonly_video.sdp");
/// Chromium's offer for `sendrecv` video and audio (Mainsail's MediaMTX mode).
const SENDRECV_OFFER: &str = include_str!("data/webrtc/chromium_sendrecv_video_audio.sdp");

/// How long a never-connected peer may take to leave /state: its 15 s
/// plus room for a slow machine; the wait ends as soon as it is gone.
const FREED_WITHIN: Duration = Duration::from_secs(45);

/// A server of the synthetic camera with WebRTC on 127.0.0.1 and `extra`.
fn server(extra: &[&str]) -> Server {
    Server::synthetic(extra)
}

/// `METHOD path` with `headers` and `body`, closing afterwards.
fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: camloop\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    server.exchange(raw.as_bytes())
}

/// `POST path` of an SDP offer, as WHEP clients send it.
fn post_offer(server: &Server, path: &str, offer: &str) -> Response {
    request(
        server,
        "POST",
        path,
        &[("Content-Type", "application/sdp")],
        offer,
    )
}

/// `POST path` of camera-streamer's JSON; Mainsail sends no Content-Type,
/// so the browser says `text/plain`.
fn post_json(server: &Server, path: &str, json: &str) -> Response {
    request(
        server,
        "POST",
        path,
        &[("Content-Type", "text/plain;charset=UTF-8")],
        json,
    )
}

/// A JSON string written as JSON (quotes and escapes).
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn peers(server: &Server) -> (u64, u64) {
    let state = server.state();
    (
        state.u64("webrtc_peers_connecting"),
        state.u64("webrtc_peers_connected"),
    )
}

#[test]
fn a_whep_offer_is_answered_201_with_a_relative_location_an_etag_and_an_ice_lite_answer() {
    let server = server(&[]);
    let webrtc = server
        .webrtc
        .expect("a webrtc= address in the listening line");
    let reply = post_offer(&server, "/whep", RECVONLY_OFFER);
    assert_eq!(reply.status, 201, "{}\n{}", reply.text(), server.log());
    assert_eq!(reply.header("content-type"), Some("application/sdp"));
    let location = reply.header("location").expect("a Location");
    let id = location.strip_prefix("whep/").expect("relative: whep/<id>");
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{location}"
    );
    let etag = reply.header("etag").expect("an ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{etag}"
    );
    let answer = reply.text();
    assert!(answer.starts_with("v=0"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("a=sendonly"), "{answer}");
    assert!(answer.contains("H264/90000"), "{answer}");
    assert!(
        !answer.contains("abs-capture-time"),
        "not offered (the page did not opt in), not answered: {answer}"
    );
    // Offered by Chromium, refused: its feedback would only feed a
    // bandwidth estimate camloop does not make.
    assert!(RECVONLY_OFFER.contains("transport-wide-cc"));
    assert!(!answer.contains("transport-wide-cc"), "{answer}");
    assert!(answer.contains("sdes:mid"), "{answer}");
    let candidate = format!("{} {} typ host", webrtc.ip(), webrtc.port());
    assert!(
        answer.contains(&candidate),
        "no candidate {candidate}: {answer}"
    );
    assert_eq!(peers(&server), (1, 0), "a peer waiting for its browser");
    // The same session under /cam/NAME/ and behind a proxy's prefix.
    assert_eq!(
        post_offer(&server, "/cam/cam0/whep", RECVONLY_OFFER).status,
        201
    );
    assert_eq!(
        post_offer(&server, "/webcam/whep", RECVONLY_OFFER).status,
        201
    );
    assert_eq!(
        post_offer(&server, "/cam/nosuch/whep", RECVONLY_OFFER).status,
        404
    );
    assert_eq!(peers(&server), (3, 0));
    let deleted = request(&server, "DELETE", &format!("/{location}"), &[], "");
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(peers(&server), (2, 0), "DELETE frees the peer at once");
    let again = request(&server, "DELETE", &format!("/{location}"), &[], "");
    assert_eq!(again.status, 404, "a session deleted twice");
}

#[test]
fn abs_capture_time_is_answered_when_the_page_opts_in() {
    let server = server(&[]);
    let extension = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
    let offer = RECVONLY_OFFER.replacen(
        "a=mid:0\r\n",
        &format!("a=mid:0\r\na=extmap:14 {extension}\r\n"),
        1,
    );
    assert_ne!(offer, RECVONLY_OFFER);
    let reply = post_offer(&server, "/whep", &offer);
    assert_eq!(reply.status, 201, "{}", reply.text());
    let answer = reply.text();
    assert!(
        answer.contains(&format!("a=extmap:14 {extension}")),
        "{answer}"
    );
}

#[test]
fn a_sendrecv_offer_with_audio_is_answered_sendonly_video_and_refused_audio() {
    let server = server(&[]);
    let reply = post_offer(&server, "/whep", SENDRECV_OFFER);
    assert_eq!(reply.status, 201, "{}", reply.text());
    let answer = reply.text();
    let sections: Vec<&str> = answer.split("\r\nm=").skip(1).collect();
    assert_eq!(
        sections.len(),
        2,
        "one answer section per offered one: {answer}"
    );
    assert!(sections[0].starts_with("video 9 "), "{answer}");
    assert!(sections[0].contains("a=sendonly"), "{answer}");
    let audio_line = sections[1].lines().next().unwrap();
    let fields: Vec<&str> = audio_line.split_whitespace().collect();
    assert_eq!(&fields[..2], ["audio", "0"], "audio refused: {audio_line}");
    assert!(
        fields.len() >= 4,
        "a refused section still lists a format (RFC 3264): {audio_line}"
    );
}

#[test]
fn patch_takes_trickle_candidates_under_if_match_and_unknown_sessions_are_404() {
    let server = server(&[]);
    let reply = post_offer(&server, "/whep", RECVONLY_OFFER);
    assert_eq!(reply.status, 201);
    let path = format!("/{}", reply.header("location").unwrap());
    let etag = reply.header("etag").unwrap().to_string();
    let fragment = "a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
                    a=candidate:1387637174 1 udp 2122260223 127.0.0.1 61764 typ host generation 0\r\n";
    let trickle = |if_match: &str| {
        let headers = [
            ("Content-Type", "application/trickle-ice-sdpfrag"),
            ("If-Match", if_match),
        ];
        request(&server, "PATCH", &path, &headers, fragment)
    };
    let wrong = trickle("\"not-it\"");
    assert_eq!(wrong.status, 412, "{}", wrong.text());
    let right = trickle(&etag);
    assert_eq!(right.status, 204, "{}", right.text());
    assert_eq!(
        right.header("content-length"),
        None,
        "a 204 has no Content-Length"
    );
    assert_eq!(trickle("*").status, 204, "Fluidd's If-Match: *");
    let garbage = request(
        &server,
        "PATCH",
        &path,
        &[("If-Match", "*")],
        "{\"not\":\"sdp\"}",
    );
    assert_eq!(garbage.status, 400, "{}", garbage.text());
    assert!(
        garbage.text().contains("\"error\":\"webrtc: "),
        "{}",
        garbage.text()
    );
    let unknown = request(
        &server,
        "PATCH",
        "/whep/0123456789abcdef",
        &[("If-Match", "*")],
        fragment,
    );
    assert_eq!(unknown.status, 404);
    let get = request(&server, "GET", "/whep", &[], "");
    assert_eq!(get.status, 405);
    assert!(get
        .header("allow")
        .is_some_and(|allow| allow.contains("POST")));
}

#[test]
fn bad_sdp_and_json_get_400_with_a_json_error_and_other_peers_go_on() {
    let server = server(&[]);
    assert_eq!(post_offer(&server, "/whep", RECVONLY_OFFER).status, 201);
    for (path, body) in [
        ("/whep", "hello"),
        ("/whep", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"),
        ("/webrtc", "{"),
        ("/webrtc", "{\"type\":\"teleport\"}"),
        (
            "/webrtc",
            "{\"type\":\"answer\",\"id\":\"0123456789abcdef\",\"sdp\":\"v=0\"}",
        ),
    ] {
        let reply = post_offer(&server, path, body);
        assert!(
            reply.status == 400 || reply.status == 404,
            "{path} {body:?}: {} {}",
            reply.status,
            reply.text()
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert!(
            reply.text().starts_with("{\"error\":\"webrtc: "),
            "{}",
            reply.text()
        );
    }
    assert_eq!(peers(&server), (1, 0), "the good peer is still there");
}

#[test]
fn the_peer_limit_answers_503_until_a_peer_leaves() {
    let server = server(&["--webrtc-max-peers", "1"]);
    let first = post_offer(&server, "/whep", RECVONLY_OFFER);
    assert_eq!(first.status, 201);
    let second = post_offer(&server, "/whep", RECVONLY_OFFER);
    assert_eq!(second.status, 503, "{}", second.text());
    assert!(
        second.text().contains("--webrtc-max-peers"),
        "{}",
        second.text()
    );
    let request_too = post_json(&server, "/webrtc", "{\"type\":\"request\"}");
    assert_eq!(request_too.status, 503);
    let path = format!("/{}", first.header("location").unwrap());
    assert_eq!(request(&server, "DELETE", &path, &[], "").status, 200);
    assert_eq!(post_offer(&server, "/whep", RECVONLY_OFFER).status, 201);
}

#[test]
fn camera_streamer_gets_an_offer_candidates_before_the_answer_are_taken_and_an_unanswered_request_is_freed(
) {
    let server = server(&[]);
    let reply = post_json(
        &server,
        "/webrtc",
        "{\"type\":\"request\",\"iceServers\":[{\"urls\":[\"stun:stun.l.google.com:19302\"]}],\"keepAlive\":true}",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let offer = Json::parse(&reply.text());
    assert_eq!(offer.str("type"), "offer");
    let id = offer.str("id").to_string();
    assert!(!id.is_empty());
    assert!(offer.str("sdp").contains("a=sendonly"), "{}", reply.text());
    assert!(
        reply.text().contains("\"iceServers\":[]"),
        "{}",
        reply.text()
    );
    let candidate = format!(
        "{{\"type\":\"remote_candidate\",\"id\":\"{id}\",\"candidates\":[{{\"candidate\":\"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}]}}"
    );
    let taken = post_json(&server, "/cam/cam0/webrtc", &candidate);
    assert_eq!((taken.status, taken.text()), (200, "{}".to_string()));
    assert_eq!(peers(&server), (1, 0));
    // Never answered: freed after 15 s.
    let freed = wait_until(FREED_WITHIN, || peers(&server) == (0, 0));
    assert!(
        freed,
        "the unanswered peer is still in /state: {:?}",
        peers(&server)
    );
    let late = post_json(&server, "/webrtc", &candidate);
    assert_eq!(late.status, 404, "its id is gone: {}", late.text());
}

#[test]
fn octoprint_posts_an_offer_and_gets_the_answer_on_the_same_endpoint() {
    let server = server(&[]);
    let body = format!(
        "{{\"type\":\"offer\",\"sdp\":{}}}",
        json_string(SENDRECV_OFFER)
    );
    let reply = post_json(&server, "/webrtc", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = Json::parse(&reply.text());
    assert_eq!(answer.str("type"), "answer");
    assert!(answer.str("sdp").contains("a=ice-lite"), "{}", reply.text());
    assert_eq!(peers(&server), (1, 0));
}

#[test]
fn preflights_allow_the_methods_and_the_headers_the_page_names_only_with_cors_origin() {
    let ui = "http://printer.local:8081";
    let server = server(&["--cors-origin", ui]);
    let preflight = request(
        &server,
        "OPTIONS",
        "/webrtc",
        &[
            ("Origin", ui),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type,cache-control",
            ),
        ],
        "",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(ui));
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap_or("");
    for method in ["POST", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    let headers = preflight
        .header("access-control-allow-headers")
        .unwrap_or("");
    assert!(
        headers.contains("cache-control"),
        "OctoPrint's header: {headers}"
    );
    assert!(headers.contains("content-type"), "{headers}");
    let posted = post_offer(&server, "/whep", RECVONLY_OFFER);
    let exposed = posted.header("access-control-expose-headers").unwrap_or("");
    for name in ["Location", "ETag", "Link"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    // Without --cors-origin: WHEP's OPTIONS is still 204, but allows no origin.
    let plain = self::server(&[]);
    let options = request(&plain, "OPTIONS", "/whep", &[("Origin", ui)], "");
    assert_eq!(options.status, 204);
    assert_eq!(options.header("access-control-allow-origin"), None);
}

#[test]
fn with_a_token_signalling_needs_it() {
    let server = server(&["--token", "w3bRTC"]);
    assert_eq!(post_offer(&server, "/whep", RECVONLY_OFFER).status, 401);
    assert_eq!(
        post_json(&server, "/webrtc", "{\"type\":\"request\"}").status,
        401
    );
    assert_eq!(
        post_offer(&server, "/whep?token=w3bRTC", RECVONLY_OFFER).status,
        201
    );
    let reply = post_json(&server, "/webrtc?token=w3bRTC", "{\"type\":\"request\"}");
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn with_webrtc_off_signalling_answers_503_and_the_listening_line_says_off() {
    let server = server(&["--webrtc", "off"]);
    assert_eq!(server.webrtc, None);
    let reply = post_offer(&server, "/whep", RECVONLY_OFFER);
    assert_eq!(reply.status, 503, "{}", reply.text());
}

#[test]
fn a_non_loopback_webrtc_address_without_a_token_refuses_to_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_camloop"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--rtsp",
            "off",
            "--camera",
            "synthetic",
            "--webrtc",
            "0.0.0.0:0",
        ])
        .output()
        .expect("run camloop");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without a token"), "{stderr}");
}

#[test]
fn a_wildcard_bind_offers_every_interface_address_and_webrtc_host_adds_one() {
    let server = server(&[
        "--webrtc",
        "0.0.0.0:0",
        "--token",
        "T",
        "--webrtc-host",
        "192.0.2.7",
    ]);
    let log = server.log();
    let line = log
        .lines()
        .find(|line| line.contains("WebRTC on UDP "))
        .unwrap_or_else(|| panic!("no WebRTC line in the log:\n{log}"));
    let addrs: Vec<std::net::SocketAddr> = line
        .split("WebRTC on UDP ")
        .nth(1)
        .unwrap()
        .split(',')
        .map(|addr| addr.trim().parse().expect("an address"))
        .collect();
    assert!(
        addrs.iter().any(|a| a.ip().is_loopback()),
        "loopback is an interface: {addrs:?}"
    );
    let port = addrs[0].port();
    assert!(
        addrs.iter().all(|a| a.port() == port),
        "one port for all: {addrs:?}"
    );
    assert!(addrs.iter().all(|a| !a.ip().is_unspecified()), "{addrs:?}");
    assert!(
        addrs.iter().all(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => !v4.is_link_local(),
            std::net::IpAddr::V6(_) => false,
        }),
        "IPv4 only, no link-local: {addrs:?}"
    );
    let reply = post_offer(&server, "/whep?token=T", RECVONLY_OFFER);
    assert_eq!(reply.status, 201, "{}", reply.text());
    let answer = reply.text();
    for addr in &addrs {
        let candidate = format!(" {} {} typ host", addr.ip(), addr.port());
        assert!(
            answer.contains(&candidate),
            "no candidate for {addr}: {answer}"
        );
    }
    let forwarded = format!(" 192.0.2.7 {port} typ host");
    assert!(answer.contains(&forwarded), "--webrtc-host: {answer}");
}
