//! WebRTC in a real browser: headless Debian chromium, driven by
//! `tests/browser/webrtc.mjs` (playwright-core), plays camloop's WebRTC the
//! way the real clients do — plain WHEP, camloop's own page, and
//! `tests/browser/webrtc-clients.html`, which performs Mainsail's and
//! Fluidd's camera-streamer and MediaMTX exchanges and OctoPrint's, message
//! for message — and reports what it saw: frames rendered
//! (`requestVideoFrameCallback`), the video's size, the requests made and
//! their answers, the ICE candidates Chromium gathered, and the server's
//! `/state` peer counts.
//!
//! One browser run serves every test here (a `OnceLock`): it starts six
//! servers — an H.264 `exec:` camera replaying a 1280x720 clip (the size
//! check), one replaying a 640x480 clip (`-preset ultrafast`) that also
//! allows a second origin (`--cors-origin`), the synthetic camera (MJPEG,
//! so through the server's JPEG→H.264 converter), an `exec:` camera of
//! 4:2:2 JPEGs, a `--token` one, and one for the peer lifecycle cases —
//! and each test checks one case of that run.
//!
//! Needs `node`, `/usr/bin/chromium` (or `$CHROMIUM`) and `ffmpeg`;
//! `scripts/setup.sh test` installs them. Without them the tests fail and
//! say so. Every wait in the browser is bounded, and no assertion is on
//! time: a case that never plays reports what it saw instead. On a machine
//! whose only network interface is loopback Chromium gathers no ICE
//! candidates and cannot reach the server; the failures then say that.

mod http_support;

#[path = "support/h264_clip.rs"]
mod h264_clip;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use h264_clip::{main_clip, replay_camera, require_tool, run, CLIP_HEIGHT, CLIP_WIDTH};
use http_support::{unused_port, Server, TempDir};

/// webrtc.mjs gives up on its own after 280 s; this is the backstop.
const RUN_LIMIT: Duration = Duration::from_secs(320);

/// The token of the `--token` server.
const TOKEN: &str = "webrtc-T0ken";

/// The frames a case must render to count as playing: two seconds of a
/// 30 fps camera (one second through a converter, which starts cold).
const FRAMES: u64 = 60;
const CONVERTED_FRAMES: u64 = 30;

/// The client pages and what each does, by `?client=`.
const CLIENTS: [&str; 5] = [
    "mainsail-cs",
    "fluidd-cs",
    "mainsail-whep",
    "fluidd-whep",
    "octoprint",
];

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

/// Fails with instructions when node or chromium is missing, and installs
/// playwright-core when `node_modules` lacks it (as tests/web_page.rs does).
fn require_browser_tools() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "`node` is not installed: the WebRTC browser test needs Node.js \
         (run scripts/setup.sh test, or apt-get install nodejs npm)"
    );
    let chromium = chromium_path();
    assert!(
        chromium.exists(),
        "{} does not exist: the WebRTC browser test needs Debian's chromium \
         (run scripts/setup.sh test, or apt-get install chromium; or set CHROMIUM)",
        chromium.display()
    );
    if browser_dir().join("node_modules/playwright-core").is_dir() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "`npm ci` in tests/browser failed (is npm installed and the registry reachable?)"
    );
}

/// A 640x480 30 fps clip as the tests' cameras send it: x264
/// `-preset ultrafast -tune zerolatency`, an IDR every second, 4 s.
fn small_clip(dir: &Path) -> PathBuf {
    require_tool("ffmpeg", "it encodes the test clip and replays it");
    let path = dir.join("small.mkv");
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x480:rate=30")
        .args(["-t", "4", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-tune", "zerolatency", "-g", "30", "-b:v", "1M"])
        .arg(&path));
    path
}

/// An `exec:` camera writing 4:2:2 JPEGs (`yuvj422p`), 640x480 at 30 fps.
fn yuv422_camera() -> String {
    "exec:ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc2=size=640x480:rate=30 \
     -pix_fmt yuvj422p -f mjpeg -q:v 5 -"
        .to_string()
}

/// The browser run: every case's report, by name, and the servers' logs
/// for failure messages.
struct Run {
    cases: Value,
    logs: String,
}

/// The run, made once; a run that failed fails every test with its
/// reason, without running again for each.
fn run_browser() -> &'static Run {
    static RUN: OnceLock<Result<Run, String>> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        std::panic::catch_unwind(make_run).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the browser run failed".to_string())
        })
    });
    match run {
        Ok(run) => run,
        Err(reason) => panic!("the browser run failed (once, for every test): {reason}"),
    }
}

fn make_run() -> Run {
    require_browser_tools();
    let dir = TempDir::new("webrtc-browser");
    let small = replay_camera(&small_clip(dir.path()), "h264");
    let large = replay_camera(&main_clip().mkv, "h264");
    // The server needs its second origin at start, before node binds it.
    let origin_port = unused_port();
    let origin = format!("http://127.0.0.1:{origin_port}");
    let webrtc = ["--webrtc", "127.0.0.1:0"];
    let camera = |source: &str, extra: &[&str]| {
        let mut args = vec!["--camera", source, "--camera-timeout", "30"];
        args.extend_from_slice(&webrtc);
        args.extend_from_slice(extra);
        Server::start(&args)
    };
    let servers = [
        ("large", camera(&large, &[])),
        ("small", camera(&small, &["--cors-origin", &origin])),
        ("synthetic", Server::synthetic(&webrtc)),
        ("yuv422", camera(&yuv422_camera(), &[])),
        ("token", camera(&small, &["--token", TOKEN])),
        ("life", camera(&small, &[])),
        // The synthetic camera with no ffmpeg on the server's PATH: its
        // JPEG→H.264 converter cannot start, so WebRTC shows no frame.
        (
            "no-converter",
            Server::start_with_env(
                &[
                    "--camera",
                    "synthetic",
                    "--fps",
                    "30",
                    "--webrtc",
                    "127.0.0.1:0",
                ],
                &[("PATH", std::ffi::OsStr::new("/nonexistent"))],
            ),
        ),
    ];
    let base = |name: &str| {
        servers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.base_url())
            .expect("a server of that name")
    };
    let mut cases = vec![
        serde_json::json!({"name": "whep_large", "kind": "client", "client": "whep",
            "base": base("large"), "stream": format!("{}/", base("large")), "minFrames": FRAMES}),
        serde_json::json!({"name": "whep_synthetic", "kind": "client", "client": "whep",
            "base": base("synthetic"), "stream": format!("{}/", base("synthetic")),
            "minFrames": CONVERTED_FRAMES}),
        serde_json::json!({"name": "page_toggle_synthetic", "kind": "page", "toggle": true,
            "toggleBack": true,
            "base": base("synthetic"), "minFrames": CONVERTED_FRAMES}),
        serde_json::json!({"name": "whep_yuv422", "kind": "client", "client": "whep",
            "base": base("yuv422"), "stream": format!("{}/", base("yuv422")),
            "minFrames": CONVERTED_FRAMES}),
        serde_json::json!({"name": "page_fallback", "kind": "page", "toggle": true,
            "base": base("no-converter"), "minFrames": CONVERTED_FRAMES}),
        serde_json::json!({"name": "page_age", "kind": "page", "base": base("small"),
            "minFrames": FRAMES}),
        serde_json::json!({"name": "page_token", "kind": "page", "base": base("token"),
            "query": format!("?token={TOKEN}"), "stateQuery": format!("?token={TOKEN}"),
            "unauthorizedPost": "/whep", "minFrames": FRAMES}),
    ];
    for (origin_kind, suffix) in [("same", ""), ("cross", "_cross_origin")] {
        for client in CLIENTS {
            let stream = match client {
                // camera-streamer's signalling URL; Fluidd's and
                // OctoPrint's under the camera's own path.
                "mainsail-cs" => format!("{}/webrtc", base("small")),
                "fluidd-cs" | "octoprint" => format!("{}/cam/cam0/webrtc", base("small")),
                // MediaMTX: the stream URL, to which the clients add "whep".
                _ => base("small"),
            };
            cases.push(serde_json::json!({
                "name": format!("{client}{suffix}"), "kind": "client", "client": client,
                "origin": origin_kind, "base": base("small"), "stream": stream,
                "stun": origin_kind == "cross", "minFrames": FRAMES}));
        }
    }
    let life = base("life");
    for kind in ["closed-tab", "crashed-tab", "delete", "unanswered"] {
        cases.push(
            serde_json::json!({"name": kind, "kind": kind, "chain": "life",
            "base": life, "stream": format!("{life}/"), "minFrames": FRAMES}),
        );
    }
    let config = serde_json::json!({"originPort": origin_port, "cases": cases});
    let config_path = dir.path().join("cases.json");
    std::fs::write(&config_path, config.to_string()).expect("write cases.json");

    let mut child = Command::new("node")
        .arg(browser_dir().join("webrtc.mjs"))
        .arg(&config_path)
        .env("CHROMIUM", chromium_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let deadline = Instant::now() + RUN_LIMIT;
    while child.try_wait().expect("poll node").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("webrtc.mjs did not finish within {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().expect("node output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let logs = servers
        .iter()
        .map(|(name, server)| format!("--- {name} server log:\n{}", tail(&server.log(), 40)))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        output.status.success(),
        "webrtc.mjs failed: {}{stdout}\n{logs}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().last().expect("a JSON line from webrtc.mjs");
    let report: Value = serde_json::from_str(line).expect("webrtc.mjs printed JSON");
    // One line per case (seen with --nocapture): what it took.
    if let Some(cases) = report["cases"].as_object() {
        for (name, case) in cases {
            eprintln!(
                "webrtc case {name}: {} frames {}x{}, {} candidates, {} s, freed after {} ms",
                case["frames"],
                case["width"],
                case["height"],
                case["candidates"],
                case["seconds"],
                case["freedAfterMs"]
            );
        }
    }
    Run {
        cases: report["cases"].clone(),
        logs,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One case's report.
fn case(name: &str) -> &'static Value {
    let run = run_browser();
    let case = &run.cases[name];
    assert!(case.is_object(), "no case {name} in the run: {}", run.cases);
    case
}

fn u64_of(case: &Value, key: &str) -> u64 {
    case[key].as_u64().unwrap_or(0)
}

/// What to say when a case did not play: everything it saw, and the
/// likely reason when Chromium gathered no candidate.
fn explain(name: &str, case: &Value) -> String {
    let loopback = if case.get("candidates").and_then(Value::as_u64) == Some(0) {
        "\nChromium gathered NO ICE candidates: on a machine whose only network interface \
         is loopback, Chromium (which leaves loopback out of ICE) has no address to reach \
         the server from, so no WebRTC case can play here."
    } else {
        ""
    };
    format!(
        "case {name}: {}{loopback}\n{}",
        serde_json::to_string_pretty(case).unwrap_or_default(),
        run_browser().logs
    )
}

/// The case rendered at least `frames` frames of `width`x`height`.
fn assert_played(name: &str, frames: u64, size: (u64, u64)) {
    let case = case(name);
    assert!(
        case["error"].is_null(),
        "the client reported an error; {}",
        explain(name, case)
    );
    assert!(
        u64_of(case, "frames") >= frames,
        "fewer than {frames} frames rendered; {}",
        explain(name, case)
    );
    assert_eq!(
        (u64_of(case, "width"), u64_of(case, "height")),
        size,
        "the video's size; {}",
        explain(name, case)
    );
}

/// The requests a client case made, in order, the session id in paths
/// replaced by `ID`.
fn exchange(case: &Value) -> Vec<String> {
    case["exchange"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(Value::as_str)
                .map(|line| {
                    let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
                    if let Some((head, _)) = words[1].split_once("/whep/") {
                        words[1] = format!("{head}/whep/ID");
                    }
                    words.join(" ")
                })
                .collect()
        })
        .unwrap_or_default()
}

fn candidates(case: &Value) -> usize {
    u64_of(case, "candidates") as usize
}

// ------------------------------------------------------------- playing

/// WHEP from an H.264 `exec:` camera: 60 frames and more, at the clip's
/// 1280x720.
#[test]
fn whep_plays_an_h264_exec_camera_at_its_size() {
    assert_played(
        "whep_large",
        FRAMES,
        (u64::from(CLIP_WIDTH), u64::from(CLIP_HEIGHT)),
    );
}

/// The synthetic camera sends JPEGs: it plays over WHEP through the
/// server's JPEG→H.264 converter.
#[test]
fn whep_plays_the_synthetic_camera_through_the_converter() {
    assert_played("whep_synthetic", CONVERTED_FRAMES, (640, 480));
}

/// 4:2:2 JPEGs (what many USB cameras send) through the converter.
#[test]
fn whep_plays_an_exec_camera_of_422_jpegs_through_the_converter() {
    assert_played("whep_yuv422", CONVERTED_FRAMES, (640, 480));
}

// ------------------------------------------------------------ the page

/// An MJPEG camera's tile stays an image until the viewer switches it to
/// WebRTC; then it plays, with no fallback notice.
#[test]
fn page_plays_an_mjpeg_camera_over_webrtc_only_when_switched() {
    let name = "page_toggle_synthetic";
    let case = case(name);
    assert_eq!(case["tilesBuilt"], true, "{}", explain(name, case));
    assert_eq!(case["transportAtStart"], "mjpeg", "{}", explain(name, case));
    assert_eq!(
        case["webrtcAtStart"],
        "",
        "WebRTC was tried before the toggle; {}",
        explain(name, case)
    );
    assert_eq!(case["transport"], "webrtc", "{}", explain(name, case));
    assert_eq!(case["notice"], "", "{}", explain(name, case));
    assert_played(name, CONVERTED_FRAMES, (640, 480));
    assert_eq!(case["videoShown"], true);
    assert_eq!(case["imageShown"], false);
}

/// WebRTC that shows no frame within 5 s (here the server cannot convert
/// the camera's JPEGs) falls back to MJPEG with a one-line notice, and
/// the page DELETEs the session it gave up on.
#[test]
fn page_falls_back_to_mjpeg_when_webrtc_shows_no_frame() {
    let name = "page_fallback";
    let case = case(name);
    assert_eq!(case["webrtc"], "failed", "{}", explain(name, case));
    assert_eq!(case["transport"], "mjpeg", "{}", explain(name, case));
    assert_eq!(case["imageShown"], true, "{}", explain(name, case));
    assert_eq!(case["videoShown"], false, "{}", explain(name, case));
    assert_eq!(
        case["notice"],
        "WebRTC: no picture within 5 s; showing MJPEG instead",
        "{}",
        explain(name, case)
    );
    let whep: Vec<String> = exchange(case)
        .into_iter()
        .filter(|line| line.contains("/whep"))
        .collect();
    assert_eq!(
        whep,
        [
            "POST /whep application/sdp -> 201",
            "DELETE /whep/ID - -> 200"
        ],
        "{}",
        explain(name, case)
    );
}

/// Switched back to MJPEG, the tile DELETEs its WHEP session (answered
/// 200) and the server has no peer left.
#[test]
fn page_switched_back_to_mjpeg_deletes_its_session() {
    let name = "page_toggle_synthetic";
    let case = case(name);
    assert_eq!(
        case["transportAfterToggleBack"],
        "mjpeg",
        "{}",
        explain(name, case)
    );
    let whep: Vec<String> = exchange(case)
        .into_iter()
        .filter(|line| line.contains("/whep"))
        .collect();
    assert_eq!(
        whep,
        [
            "POST /whep application/sdp -> 201",
            "DELETE /whep/ID - -> 200"
        ],
        "{}",
        explain(name, case)
    );
    assert_eq!(
        peers(case, "peersAfterToggleBack"),
        (0, 0),
        "{}",
        explain(name, case)
    );
}

/// An H.264 camera's tile plays over WebRTC by itself, and shows the age
/// of the frame on screen from abs-capture-time: `age N ms`. N is a
/// number of milliseconds on the page's clock (not seconds, not the NTP
/// epoch): more than -1000 and less than a minute on one machine.
#[test]
fn page_shows_the_capture_to_render_age() {
    let name = "page_age";
    let case = case(name);
    // Nobody clicked the toggle: the tile went WebRTC by itself.
    assert_eq!(case["transport"], "webrtc", "{}", explain(name, case));
    assert_played(name, FRAMES, (640, 480));
    let age = case["age"].as_str().unwrap_or_default();
    let ms: i64 = age
        .strip_prefix("age ")
        .and_then(|rest| rest.strip_suffix(" ms"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "the page shows {age:?}, not `age N ms`; {}",
                explain(name, case)
            )
        });
    assert!(
        (-1000..60_000).contains(&ms),
        "age {ms} ms is not on the page's clock; {}",
        explain(name, case)
    );
}

/// With `--token`, the page opened as `/?token=T` plays (its WHEP
/// requests carry the token), and a WHEP POST without it gets a 401.
#[test]
fn page_with_token_plays_and_a_request_without_it_gets_401() {
    let name = "page_token";
    let case = case(name);
    assert_eq!(case["tokenRequiredShown"], false, "{}", explain(name, case));
    assert_eq!(case["transport"], "webrtc", "{}", explain(name, case));
    assert_played(name, FRAMES, (640, 480));
    assert_eq!(case["unauthorizedStatus"], 401, "{}", explain(name, case));
    let posts: Vec<String> = exchange(case)
        .into_iter()
        .filter(|line| line.starts_with("POST /whep"))
        .collect();
    assert_eq!(
        posts,
        ["POST /whep application/sdp -> 201"],
        "{}",
        explain(name, case)
    );
}

// ------------------------------------------------------ the real clients

/// The requests each client must have made but its trickle-ICE PATCHes,
/// in order, given the candidates Chromium gathered (`n`), with the
/// answers it must have got.
fn expected_exchange(client: &str, n: usize) -> Vec<String> {
    let repeat = |line: &str, times: usize| vec![line.to_string(); times];
    match client {
        // The request (text/plain: Mainsail sets no Content-Type), then the
        // answer and one remote_candidate per candidate (these three kinds
        // of POST may interleave; the answer is a JSON POST like them).
        "mainsail-cs" => [
            repeat("POST /webrtc text/plain -> 200", 1),
            repeat("POST /webrtc application/json -> 200", 1 + n),
        ]
        .concat(),
        // Candidates go only when the offer's iceServers is an array; it is.
        "fluidd-cs" => repeat("POST /cam/cam0/webrtc application/json -> 200", 2 + n),
        "mainsail-whep" => [
            repeat("OPTIONS /whep - -> 204", 1),
            repeat("POST /whep application/sdp -> 201", 1),
        ]
        .concat(),
        "fluidd-whep" => [
            repeat("OPTIONS /whep - -> 204", 1),
            repeat("POST /whep application/sdp -> 201", 1),
            repeat("DELETE /whep/ID - -> 200", 1),
        ]
        .concat(),
        "octoprint" => repeat("POST /cam/cam0/webrtc application/json -> 200", 1),
        _ => unreachable!("no client {client}"),
    }
}

/// How many trickle-ICE PATCHes a client makes for `n` candidates:
/// Mainsail's start after its POST was answered, one per candidate;
/// Fluidd's queue until then and go together.
fn expected_patches(client: &str, n: usize) -> std::ops::RangeInclusive<usize> {
    match client {
        "mainsail-whep" => n..=n,
        "fluidd-whep" => usize::from(n > 0)..=n,
        _ => 0..=0,
    }
}

const PATCH: &str = "PATCH /whep/ID application/trickle-ice-sdpfrag -> 204";

/// Checks one client case: it played, and made exactly the client's requests.
fn check_client(name: &str, client: &str) {
    assert_played(name, FRAMES, (640, 480));
    let case = case(name);
    let n = candidates(case);
    let mut seen = exchange(case);
    let patches = seen.iter().filter(|line| line.starts_with("PATCH")).count();
    let good_patches = seen
        .iter()
        .filter(|line| line.starts_with("PATCH"))
        .all(|line| line == PATCH);
    assert!(
        good_patches && expected_patches(client, n).contains(&patches),
        "{patches} PATCHes for {n} candidates, or one not answered 204; {}",
        explain(name, case)
    );
    seen.retain(|line| !line.starts_with("PATCH"));
    if client == "fluidd-whep" && seen.last().is_some_and(|l| l == "DELETE /whep/ID - -> 404") {
        panic!(
            "Fluidd's DELETE (sent right after its pc.close(), as Fluidd does) got 404: \
             the server had already freed the peer on the browser's DTLS close and forgot \
             its id; {}",
            explain(name, case)
        );
    }
    let expected = expected_exchange(client, n);
    assert_eq!(
        seen,
        expected,
        "the requests, in order; {}",
        explain(name, case)
    );
}

#[test]
fn mainsail_camera_streamer_client_plays() {
    check_client("mainsail-cs", "mainsail-cs");
}

#[test]
fn fluidd_camera_streamer_client_plays() {
    check_client("fluidd-cs", "fluidd-cs");
    assert_eq!(case("fluidd-cs")["notes"][0], "iceServers array: true");
}

#[test]
fn mainsail_mediamtx_whep_client_plays() {
    check_client("mainsail-whep", "mainsail-whep");
}

#[test]
fn fluidd_mediamtx_whep_client_plays() {
    check_client("fluidd-whep", "fluidd-whep");
}

#[test]
fn octoprint_webrtc_client_plays() {
    check_client("octoprint", "octoprint");
}

/// The same five clients from a page on another origin, allowed by
/// `--cors-origin` (preflights included; the WHEP clients read Location
/// and ETag, so the server must expose them).
#[test]
fn clients_play_from_a_second_origin() {
    let failures: Vec<String> = CLIENTS
        .iter()
        .filter_map(|client| {
            let name = format!("{client}_cross_origin");
            std::panic::catch_unwind(|| check_client(&name, client))
                .err()
                .map(|panic| {
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| format!("{name} failed"))
                })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every client gathered ICE candidates: on a machine whose only network
/// interface is loopback Chromium gathers none, and this says so.
#[test]
fn chromium_gathers_ice_candidates() {
    for client in CLIENTS {
        let case = case(client);
        assert!(
            candidates(case) > 0,
            "{client}: Chromium gathered no ICE candidates (gathering state {}): this \
             machine's only network interface is probably loopback, which Chromium leaves \
             out of ICE; WebRTC cannot play here",
            case["gathering"]
        );
    }
}

// ------------------------------------------------------ peer lifecycle

fn peers(case: &Value, key: &str) -> (u64, u64) {
    (
        case[key]["connecting"].as_u64().unwrap_or(u64::MAX),
        case[key]["connected"].as_u64().unwrap_or(u64::MAX),
    )
}

/// A closed tab: its peer leaves `/state` (Chromium's closing sends a DTLS
/// close alert; were it lost, ICE consent fails about 15 s later; the test
/// waits up to 45 s).
#[test]
fn a_closed_tab_leaves_state() {
    let name = "closed-tab";
    let case = case(name);
    assert_played(name, FRAMES, (640, 480));
    assert_eq!(
        peers(case, "peersBefore"),
        (0, 0),
        "{}",
        explain(name, case)
    );
    assert_eq!(
        peers(case, "peersWhilePlaying"),
        (0, 1),
        "{}",
        explain(name, case)
    );
    assert!(
        case["freedAfterMs"].is_u64(),
        "the peer was still in /state 45 s after its tab closed; {}",
        explain(name, case)
    );
    assert_eq!(peers(case, "peersAfter"), (0, 0), "{}", explain(name, case));
}

/// A tab whose renderer crashes tells the server nothing (no DTLS close
/// alert): its peer leaves `/state` when ICE consent fails, about 15 s
/// later (the test waits up to 45 s).
#[test]
fn a_crashed_tab_leaves_state_when_consent_fails() {
    let name = "crashed-tab";
    let case = case(name);
    assert_played(name, FRAMES, (640, 480));
    assert_eq!(
        case["crashed"],
        true,
        "the tab did not crash; {}",
        explain(name, case)
    );
    assert_eq!(
        peers(case, "peersWhilePlaying"),
        (0, 1),
        "{}",
        explain(name, case)
    );
    assert!(
        case["freedAfterMs"].is_u64(),
        "the peer was still in /state 45 s after its tab crashed; {}",
        explain(name, case)
    );
    assert_eq!(peers(case, "peersAfter"), (0, 0), "{}", explain(name, case));
}

/// `DELETE` of the WHEP session frees the peer at once: /state read right
/// after the DELETE's answer shows none.
#[test]
fn delete_frees_the_peer_at_once() {
    let name = "delete";
    let case = case(name);
    assert_played(name, FRAMES, (640, 480));
    assert_eq!(
        peers(case, "peersWhilePlaying"),
        (0, 1),
        "{}",
        explain(name, case)
    );
    assert_eq!(case["deleteStatus"], 200, "{}", explain(name, case));
    assert_eq!(
        peers(case, "peersAfterDelete"),
        (0, 0),
        "{}",
        explain(name, case)
    );
}

/// A camera-streamer `request` whose offer is never answered is a
/// connecting peer, freed after 15 s (the test waits up to 45 s).
#[test]
fn an_unanswered_request_is_freed() {
    let name = "unanswered";
    let case = case(name);
    assert_eq!(case["status"], 200, "{}", explain(name, case));
    assert_eq!(case["type"], "offer", "{}", explain(name, case));
    assert_eq!(case["hasSdp"], true, "{}", explain(name, case));
    assert!(case["id"].is_string(), "{}", explain(name, case));
    assert_eq!(
        peers(case, "peersBefore"),
        (0, 0),
        "{}",
        explain(name, case)
    );
    assert_eq!(
        peers(case, "peersAfterRequest"),
        (1, 0),
        "{}",
        explain(name, case)
    );
    assert!(
        case["freedAfterMs"].is_u64(),
        "the unanswered peer was still in /state after 45 s; {}",
        explain(name, case)
    );
}
