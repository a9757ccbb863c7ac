//! `camloop load --rtsp` end to end over real loopback sockets: against the
//! real `camloop serve` (an `exec:` camera replaying the main H.264 clip,
//! and the synthetic camera through its encoder) over TCP and over UDP,
//! with and without `--token`; and against the test's own RTSP server (a
//! thread per connection, speaking just enough RTSP) that sends a few
//! packets and then nothing, or leaves some out.
//!
//! Assertions are on counts and contents only, never on timing. Every
//! tool a test needs is checked first; a missing one fails the test with
//! the reason (`scripts/setup.sh test` installs them all), never skips it.

#[path = "support/h264_clip.rs"]
mod h264_clip;
mod http_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camloop::load::{run_rtsp_viewers, LoadArgs, RtspReport, RtspTransport};
use camloop::rtsp::auth::{challenge_headers, verify};
use camloop::rtsp::request::Method;
use camloop::rtsp::response::{push_interleaved, response, ResponseFields, CONTENT_TYPE_SDP};
use camloop::rtsp::rtcp::{ntp_timestamp, sender_report, SenderInfo};
use camloop::rtsp::{Packetizer, RtspEvent, RtspReader, RtspRequest};
use clap::Parser;
use h264_clip::{main_clip, replay_camera, require_tool};
use http_support::{unused_port, Server};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    load: LoadArgs,
}

/// Parses `camloop load --rtsp URL FLAGS` as a user would type it.
fn rtsp_args(url: &str, flags: &str) -> LoadArgs {
    let line = ["load", "--rtsp", url]
        .into_iter()
        .chain(flags.split_whitespace());
    Cli::try_parse_from(line).expect("valid flags").load
}

/// Runs the viewers; the report's JSON goes with every failed assertion.
fn run(url: &str, flags: &str) -> (RtspReport, String) {
    let report = run_rtsp_viewers(&rtsp_args(url, flags)).expect("the viewers connected");
    let json = report.to_json();
    (report, json)
}

/// What every viewer of a healthy run must have: frames each, an IDR each,
/// no drop and no error.
fn assert_every_viewer_played(report: &RtspReport, viewers: usize, json: &str) {
    let viewing = &report.viewing;
    assert_eq!(report.errors, 0, "{json}");
    assert_eq!(viewing.connected, viewers as u64, "{json}");
    assert_eq!(viewing.viewer_frames.len(), viewers, "{json}");
    assert!(
        viewing.viewer_frames.iter().all(|&frames| frames > 0),
        "every viewer got frames: {json}"
    );
    assert_eq!(viewing.viewer_frames.iter().sum::<u64>(), viewing.frames);
    assert!(viewing.frames_run >= viewing.frames, "{json}");
    assert_eq!(viewing.dropped_viewers, 0, "{json}");
    let first_idr = report.first_idr_us.expect("a first IDR");
    assert_eq!(
        first_idr.count, viewers as u64,
        "each viewer's first IDR: {json}"
    );
    assert!(report.rtp_packets >= viewing.frames_run, "{json}");
    assert!(report.sender_reports > 0, "{json}");
    // Every AU after a sender report is dated; IDRs and the others apart.
    let dated = viewing.frame_age_us.map_or(0, |age| age.count);
    assert_eq!(dated + viewing.untimed_frames, viewing.frames, "{json}");
    let split = [report.frame_age_idr_us, report.frame_age_non_idr_us]
        .iter()
        .map(|age| age.map_or(0, |age| age.count))
        .sum::<u64>();
    assert_eq!(split, dated, "{json}");
}

#[test]
fn rtsp_viewers_of_camloop_get_frames_and_an_idr_each_over_tcp_and_udp() {
    const VIEWERS: usize = 4;
    let camera = format!("door={}", replay_camera(&main_clip().mkv, "h264"));
    let server = Server::start(&["--camera", &camera, "--camera-timeout", "30"]);
    let url = format!("rtsp://{}/door", server.rtsp.expect("an RTSP address"));

    for transport in ["tcp", "udp"] {
        let flags =
            format!("--viewers {VIEWERS} --transport {transport} --warmup 1 --duration 2 --json");
        let (report, json) = run(&url, &flags);
        assert_every_viewer_played(&report, VIEWERS, &json);
        assert_eq!(report.transport.as_str(), transport);
        assert!(
            json.contains(&format!("\"transport\":\"{transport}\"")),
            "{json}"
        );
        // Everything dated: camloop's sender report comes first over TCP,
        // with the first IDR over UDP (read before the packets).
        assert_eq!(report.viewing.untimed_frames, 0, "{json}");
        if report.transport == RtspTransport::Udp {
            assert!(
                report.viewing.bytes_received > 0,
                "UDP bytes counted: {json}"
            );
        }
    }
}

#[test]
fn auth_answers_camloops_digest_challenge_and_a_wrong_token_is_an_error() {
    require_tool(
        "ffmpeg",
        "camloop encodes the synthetic camera's JPEGs to H.264 with it",
    );
    const VIEWERS: usize = 2;
    let server = Server::synthetic(&["--width", "160", "--height", "120", "--token", "s3cret"]);
    let url = format!("rtsp://{}/", server.rtsp.expect("an RTSP address"));
    let flags = format!("--viewers {VIEWERS} --warmup 1 --duration 1 --json");

    let (report, json) = run(&url, &format!("{flags} --auth s3cret"));
    assert_every_viewer_played(&report, VIEWERS, &json);
    assert_eq!(report.auth_failures, 0, "{json}");

    // A wrong token: refused once answered, per viewer; the run reports it.
    let (wrong, json) = run(&url, &format!("{flags} --auth nope"));
    assert_eq!(wrong.auth_failures, VIEWERS as u64, "{json}");
    assert_eq!(wrong.errors, VIEWERS as u64, "{json}");
    assert_eq!(wrong.viewing.frames_run, 0, "{json}");
    let error = wrong.viewing.first_error.clone().unwrap_or_default();
    assert!(error.contains("401") && error.contains("refused"), "{json}");

    // No token at all: said so.
    let (without, json) = run(&url, &flags);
    assert_eq!(without.auth_failures, VIEWERS as u64, "{json}");
    let error = without.viewing.first_error.clone().unwrap_or_default();
    assert!(error.contains("--auth"), "{json}");
}

// ---------------------------------------------------------------------------
// The test's own RTSP server

/// What the fake server asks of a viewer and sends it after `PLAY`.
#[derive(Clone, Default)]
struct Script {
    /// Access units to send, the first an IDR, each one RTP packet.
    aus: usize,
    /// The AUs whose packets are left out (their sequence numbers are
    /// used all the same, as a packet lost on the way).
    skipped: Vec<usize>,
    /// AUs that are IDRs besides the first.
    idrs: Vec<usize>,
    /// A token every request must carry, checked as camloop checks it;
    /// without it a request gets camloop's 401 (Digest and Basic offered).
    token: Option<&'static str>,
    /// The `Session` timeout announced, in seconds (a viewer keeps its
    /// session alive every half of it).
    timeout_secs: u32,
}

/// The fake server's address, and the methods and schemes of the
/// `Authorization`s it accepted, in order.
struct FakeServer {
    url: String,
    accepted: Arc<Mutex<Vec<(String, String)>>>,
}

/// The interleaved packets of `script`: a sender report, then one packet
/// per AU at 30 fps, those of `skipped` AUs left out.
fn play_bytes(script: &Script) -> Vec<u8> {
    let unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as u64;
    let report = sender_report(
        &SenderInfo {
            ssrc: 0x5EED,
            ntp_timestamp: ntp_timestamp(unix_us),
            rtp_timestamp: 0,
            packet_count: 0,
            octet_count: 0,
        },
        "fake",
    );
    let mut bytes = Vec::new();
    push_interleaved(&mut bytes, 1, &report);
    let mut packetizer = Packetizer::new(0x5EED, 96, 1400, 1000);
    for index in 0..script.aus {
        let idr = index == 0 || script.idrs.contains(&index);
        let nal_type = if idr { 0x65 } else { 0x41 };
        let au = [0, 0, 0, 1, nal_type, 0x88, index as u8, 0x42];
        let mut packets = Vec::new();
        packetizer.packetize(&au, 3000 * index as u32, &mut packets);
        if !script.skipped.contains(&index) {
            for packet in &packets {
                push_interleaved(&mut bytes, 0, packet);
            }
        }
    }
    bytes
}

/// The answer the fake server gives a request; after `PLAY`'s it sends the
/// script's packets.
fn answer(request: &RtspRequest, url: &str, timeout_secs: u32) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake\r\nt=0 0\r\na=control:*\r\n\
               m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n";
    let base = format!("{url}/");
    let transport = [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")];
    let fields = match request.method {
        Method::Describe => ResponseFields {
            content_base: Some(&base),
            body: Some((CONTENT_TYPE_SDP, sdp.as_bytes())),
            ..Default::default()
        },
        Method::Setup => ResponseFields {
            session: Some(("FAKE", timeout_secs)),
            extra: &transport,
            ..Default::default()
        },
        _ => ResponseFields {
            session: Some(("FAKE", timeout_secs)),
            ..Default::default()
        },
    };
    response(200, Some(request.cseq), &fields)
}

/// A thread-per-connection RTSP server that answers `DESCRIBE`, `SETUP`
/// and `PLAY` (and keepalives), sends the script after `PLAY` and then
/// nothing more, keeping the connection until the viewer closes it.
/// Returns its URL.
fn fake_rtsp_server(script: Script) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("local addr");
    let server = FakeServer {
        url: format!("rtsp://{addr}/fake"),
        accepted: Arc::default(),
    };
    let (url, accepted) = (server.url.clone(), Arc::clone(&server.accepted));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (script, url, accepted) = (script.clone(), url.clone(), Arc::clone(&accepted));
            thread::spawn(move || serve_viewer(stream, &script, &url, &accepted));
        }
    });
    server
}

/// With a token: `None` when `request` carries it (the scheme it came in is
/// recorded), else camloop's 401.
fn refusal(
    request: &RtspRequest,
    token: &str,
    accepted: &Mutex<Vec<(String, String)>>,
) -> Option<Vec<u8>> {
    const NONCE: &str = "0123456789abcdef0123456789abcdef";
    let authorization = request.header("Authorization");
    let method = request.method.as_str();
    if verify(authorization, method, &request.url, token, NONCE).is_ok() {
        let scheme = authorization.unwrap_or("").split(' ').next().unwrap_or("");
        let mut accepted = accepted.lock().expect("not poisoned");
        accepted.push((method.to_string(), scheme.to_string()));
        return None;
    }
    let [digest, basic] = challenge_headers(NONCE);
    let challenges = [
        ("WWW-Authenticate", digest.as_str()),
        ("WWW-Authenticate", basic.as_str()),
    ];
    let fields = ResponseFields {
        extra: &challenges,
        ..Default::default()
    };
    Some(response(401, Some(request.cseq), &fields))
}

fn serve_viewer(
    mut stream: TcpStream,
    script: &Script,
    url: &str,
    accepted: &Mutex<Vec<(String, String)>>,
) {
    let mut reader = RtspReader::new();
    let mut buffer = [0u8; 4096];
    // Hang protection only: a viewer closes at the end of its run.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    while let Ok(n @ 1..) = stream.read(&mut buffer) {
        reader.push(&buffer[..n]);
        while let Some(event) = reader.next_event() {
            let RtspEvent::Request(request) = event else {
                continue;
            };
            let refused = script
                .token
                .and_then(|token| refusal(&request, token, accepted));
            if let Some(refusal) = refused {
                if stream.write_all(&refusal).is_err() {
                    return;
                }
                continue;
            }
            let mut out = answer(&request, url, script.timeout_secs);
            if request.method == Method::Play {
                out.extend(play_bytes(script));
            }
            if stream.write_all(&out).is_err() {
                return;
            }
        }
    }
}

#[test]
fn a_viewer_the_server_stops_sending_to_is_stalled_and_every_au_is_counted() {
    const VIEWERS: usize = 3;
    const AUS: usize = 10;
    let url = fake_rtsp_server(Script {
        aus: AUS,
        timeout_secs: 60,
        ..Script::default()
    })
    .url;
    // The run lasts its whole duration, five times --stall-after.
    let flags = format!("--viewers {VIEWERS} --warmup 0 --duration 1 --stall-after 0.2");
    let (report, json) = run(&url, &flags);
    let viewing = &report.viewing;

    assert_eq!(viewing.frames_run, (VIEWERS * AUS) as u64, "{json}");
    assert_eq!(viewing.stalled_viewers, VIEWERS as u64, "{json}");
    assert_eq!(viewing.stalled_at_end, VIEWERS as u64, "{json}");
    assert_eq!(
        viewing.stalls, VIEWERS as u64,
        "one stall each, never over: {json}"
    );
    assert_eq!(viewing.dropped_viewers, 0, "{json}");
    assert_eq!(report.errors, 0, "a stall is not an error: {json}");
    assert_eq!(report.rtp_packets, (VIEWERS * AUS) as u64, "{json}");
    assert_eq!(
        (report.rtp_packets_lost, report.sequence_gaps),
        (0, 0),
        "{json}"
    );
    assert_eq!(
        report.first_idr_us.map(|wait| wait.count),
        Some(VIEWERS as u64)
    );
    assert_eq!(report.sender_reports, VIEWERS as u64, "{json}");
    assert!(
        json.contains(&format!("\"stalled_viewers\":{VIEWERS}")),
        "{json}"
    );
}

/// `viewers` viewers of the fake server playing `script` (with a session
/// that outlasts the run) for one second, a stall after 0.2 s.
fn play_script(script: Script, viewers: usize) -> (RtspReport, String) {
    let url = fake_rtsp_server(Script {
        timeout_secs: 60,
        ..script
    })
    .url;
    let flags = format!("--viewers {viewers} --warmup 0 --duration 1 --stall-after 0.2 --json");
    run(&url, &flags)
}

#[test]
fn packets_the_server_leaves_out_are_counted_as_gaps_and_their_aus_lost() {
    const VIEWERS: usize = 2;
    const AUS: usize = 10;
    // AU 4's packet is lost; AU 5, which the gap might have cut, is
    // discarded whole (the depacketiser cannot know where AU 4 ended).
    let script = Script {
        aus: AUS,
        skipped: vec![4],
        ..Script::default()
    };
    let (report, json) = play_script(script, VIEWERS);

    let viewers = VIEWERS as u64;
    assert_eq!(report.rtp_packets, viewers * (AUS as u64 - 1), "{json}");
    assert_eq!(report.rtp_packets_lost, viewers, "{json}");
    assert_eq!(report.sequence_gaps, viewers, "{json}");
    assert_eq!(report.aus_discarded, viewers, "{json}");
    assert_eq!(
        report.viewing.frames_run,
        viewers * (AUS as u64 - 2),
        "{json}"
    );
    assert_eq!(report.errors, 0, "lost packets are not errors: {json}");
    for key in ["\"rtp_packets_lost\":2", "\"sequence_gaps\":2"] {
        assert!(json.contains(key), "{key} in {json}");
    }
    // No IDR came after the gap: each viewer still waits for one.
    let waits = report.keyframes_after_gaps;
    assert_eq!(
        (waits.followed, waits.awaiting_at_end),
        (0, viewers),
        "{json}"
    );
    assert!(waits.longest_wait_us > 0, "{json}");
    assert!(json.contains("\"gaps_awaiting_keyframe\":2"), "{json}");
}

#[test]
fn a_keyframe_after_a_gap_ends_the_viewers_wait_for_one() {
    const VIEWERS: usize = 2;
    // AU 4 is lost, 5 is discarded, 6 is a P-frame a decoder cannot use,
    // 7 is the IDR that ends the wait; then two more gaps (AUs 10 and 12)
    // before the IDR at 14 are one wait.
    let script = Script {
        aus: 16,
        skipped: vec![4, 10, 12],
        idrs: vec![7, 14],
        ..Script::default()
    };
    let (report, json) = play_script(script, VIEWERS);

    let viewers = VIEWERS as u64;
    assert_eq!(report.sequence_gaps, 3 * viewers, "{json}");
    let waits = report.keyframes_after_gaps;
    assert_eq!(
        (waits.followed, waits.awaiting_at_end),
        (2 * viewers, 0),
        "{json}"
    );
    assert!(json.contains("\"gaps_followed_by_keyframe\":4"), "{json}");
}

#[test]
fn every_request_answers_the_challenge_with_digest_keepalives_too() {
    let server = fake_rtsp_server(Script {
        aus: 3,
        token: Some("s3cret"),
        // A keepalive every second.
        timeout_secs: 2,
        ..Script::default()
    });
    let flags = "--viewers 1 --warmup 0 --duration 1.5 --auth s3cret";
    let (report, json) = run(&server.url, flags);
    assert_eq!(report.errors, 0, "{json}");
    assert_eq!(report.viewing.frames_run, 3, "{json}");
    let accepted = server.accepted.lock().expect("not poisoned").clone();
    let methods: Vec<&str> = accepted.iter().map(|(method, _)| method.as_str()).collect();
    assert_eq!(methods[..3], ["DESCRIBE", "SETUP", "PLAY"], "{accepted:?}");
    // Then keepalives only (how many is the run's length's business; the
    // last one may still be on its way to the server).
    assert!(
        methods[3..].iter().all(|method| *method == "GET_PARAMETER"),
        "{accepted:?}"
    );
    assert!(
        methods.len() - 3 <= report.keepalives as usize,
        "{accepted:?} {json}"
    );
    assert!(
        accepted.iter().all(|(_, scheme)| scheme == "Digest"),
        "Digest, offered first, for every request: {accepted:?}"
    );

    // A wrong token: refused once answered, and said so.
    let (wrong, json) = run(
        &server.url,
        "--viewers 2 --warmup 0 --duration 0.5 --auth nope",
    );
    assert_eq!(wrong.auth_failures, 2, "{json}");
    assert_eq!(wrong.errors, 2, "{json}");
}

#[test]
fn rtsp_flags_are_checked_before_connecting() {
    let url = "rtsp://127.0.0.1:9/door";
    for flags in ["--viewers 0", "--stall-after 0", "--duration 0"] {
        assert!(
            run_rtsp_viewers(&rtsp_args(url, flags)).is_err(),
            "{flags:?}"
        );
    }
    for bad in [
        "rtsps://127.0.0.1:9/",
        "rtsp://u:p@127.0.0.1:9/",
        "http://127.0.0.1:9/",
    ] {
        assert!(run_rtsp_viewers(&rtsp_args(bad, "")).is_err(), "{bad:?}");
    }
    let error = run_rtsp_viewers(&rtsp_args(url, "127.0.0.1:9")).expect_err("a TARGET too");
    assert!(error.contains("drop 127.0.0.1:9"), "{error}");
    let parse = |line: &[&str]| Cli::try_parse_from(line.iter().copied()).map(|cli| cli.load);
    // Not with the MJPEG mode or the line mode's flags; --transport needs it.
    assert!(parse(&["load", "--rtsp", url, "--mjpeg", "http://127.0.0.1:9/"]).is_err());
    assert!(parse(&["load", "--rtsp", url, "--conns", "5"]).is_err());
    assert!(parse(&["load", "127.0.0.1:9", "--transport", "udp"]).is_err());
    assert!(parse(&["load", "--rtsp", url, "--transport", "sctp"]).is_err());
    let udp = parse(&[
        "load",
        "--rtsp",
        url,
        "--transport",
        "udp",
        "--viewers",
        "3",
    ]);
    assert_eq!(
        udp.map(|args| (args.transport, args.viewers)).ok(),
        Some((RtspTransport::Udp, 3))
    );
    // Nothing listens there: no viewer connects, which is the run's error.
    let closed = format!("rtsp://127.0.0.1:{}/", unused_port());
    let error = run_rtsp_viewers(&rtsp_args(&closed, "--warmup 0 --duration 0.2"))
        .expect_err("nothing listens there");
    assert!(error.contains("no viewer could connect"), "{error}");
}
