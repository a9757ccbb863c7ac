//! The web page in a real browser: headless Debian chromium, driven by
//! `tests/browser/shot.mjs` (playwright-core), loads `/`, watches the live
//! MJPEG image and the frame counter, and clicks Capture.
//!
//! Needs `node` and `/usr/bin/chromium` (or `$CHROMIUM`); `scripts/setup.sh
//! test` installs both. Without them this test fails and says so: a
//! skipped browser test would look like a passing one.
//!
//! The browser run takes a few seconds, so each kind of run happens once per
//! test binary and each test below checks one thing it saw. Besides the
//! plain run, a server with `--token` is opened as `/?token=T`, with a wrong
//! token, and with HTTP Basic credentials (playwright's `httpCredentials`,
//! the way a person answers the browser's login prompt). A server with six
//! cameras, opened as `/?token=T`, shows four live tiles and two snapshot
//! tiles, and Capture on the sixth tile saves that camera's file.

mod http_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use http_support::{decoded_size, Json, Server, TempDir};

/// shot.mjs gives up on its own after 60 s; this is the backstop.
const SHOT_LIMIT: Duration = Duration::from_secs(90);

/// What the browser run produced.
struct BrowserRun {
    /// The JSON line shot.mjs printed.
    report: Json,
    /// Whether the file Capture reported exists in the snapshot directory.
    captured_file_exists: bool,
    /// Its decoded size, if it is a valid JPEG.
    captured_size: Option<(u16, u16)>,
    /// `auth_failures` from `/state` after the run.
    auth_failures: u64,
    /// The `/controls` body after the run.
    controls: String,
    /// The names in the snapshot directory after the run, sorted.
    snapshot_files: Vec<String>,
}

/// The token of the `--token` runs.
const TOKEN: &str = "page-T0ken";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

/// Fails with instructions when node or chromium is missing, and installs
/// playwright-core (the only npm package) when `node_modules` lacks it.
fn require_browser_tools() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "`node` is not installed: the browser test needs Node.js \
         (run scripts/setup.sh test, or apt-get install nodejs npm)"
    );
    let chromium = chromium_path();
    assert!(
        chromium.exists(),
        "{} does not exist: the browser test needs Debian's chromium \
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

fn browser() -> &'static BrowserRun {
    static RUN: OnceLock<BrowserRun> = OnceLock::new();
    RUN.get_or_init(|| run_browser(&[], &[]))
}

/// A `--token` server, its page opened as `/?token=T`.
fn browser_with_query_token() -> &'static BrowserRun {
    static RUN: OnceLock<BrowserRun> = OnceLock::new();
    RUN.get_or_init(|| run_browser(&["--token", TOKEN], &[&format!("--query=?token={TOKEN}")]))
}

/// A `--token` server, its page opened with a wrong token.
fn browser_with_wrong_token() -> &'static BrowserRun {
    static RUN: OnceLock<BrowserRun> = OnceLock::new();
    RUN.get_or_init(|| {
        run_browser(
            &["--token", TOKEN],
            &["--query=?token=wrong", "--expect=token-required"],
        )
    })
}

/// A `--token` server, the page opened at `/` with Basic credentials.
fn browser_with_basic_credentials() -> &'static BrowserRun {
    static RUN: OnceLock<BrowserRun> = OnceLock::new();
    RUN.get_or_init(|| run_browser(&["--token", TOKEN], &[&format!("--basic=viewer:{TOKEN}")]))
}

/// A plain server whose /state and /capture answers the browser replaces
/// with 401s, as when the token changes under an open page.
fn browser_getting_401_in_the_page() -> &'static BrowserRun {
    static RUN: OnceLock<BrowserRun> = OnceLock::new();
    RUN.get_or_init(|| run_browser(&[], &["--expect=401-in-page"]))
}

/// A `--token` server, its page opened as `/?token=T`, whose sliders are moved.
fn browser_moving_controls() -> &'static BrowserRun {
    static RUN: OnceLock<BrowserRun> = OnceLock::new();
    RUN.get_or_init(|| {
        run_browser(
            &["--token", TOKEN],
            &[&format!("--query=?token={TOKEN}"), "--expect=controls"],
        )
    })
}

/// A `--token` server with six synthetic cameras (cam0 … cam5), its page
/// opened as `/?token=T`.
fn browser_with_six_cameras() -> &'static BrowserRun {
    static RUN: OnceLock<BrowserRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let mut args = vec!["--token", TOKEN];
        // Server::synthetic gives the first camera.
        for _ in 1..6 {
            args.extend(["--camera", "synthetic"]);
        }
        run_browser(
            &args,
            &[&format!("--query=?token={TOKEN}"), "--expect=cameras"],
        )
    })
}

fn run_browser(server_args: &[&str], shot_args: &[&str]) -> BrowserRun {
    require_browser_tools();
    let server = Server::synthetic(server_args);
    let shots = TempDir::new("browser-shots");
    let mut child = Command::new("node")
        .arg(browser_dir().join("shot.mjs"))
        .arg(server.base_url())
        .arg(shots.path())
        .args(shot_args)
        .env("CHROMIUM", chromium_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let deadline = Instant::now() + SHOT_LIMIT;
    while child.try_wait().expect("poll node").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shot.mjs did not finish within {SHOT_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().expect("node output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "shot.mjs failed: {}{stdout}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    let line = stdout.lines().last().expect("a JSON line from shot.mjs");
    let report = Json::parse(line);
    let captured = report
        .0
        .get("captured")
        .map(|name| server.snapshot_dir.join(name));
    let captured_size = captured
        .as_ref()
        .and_then(|path| std::fs::read(path).ok())
        .map(|jpeg| decoded_size(&jpeg));
    let state = server.get(&format!("/state?token={TOKEN}"));
    assert_eq!(state.status, 200, "/state after the run: {}", state.text());
    let controls = server.get(&format!("/controls?token={TOKEN}")).text();
    let mut snapshot_files: Vec<String> = std::fs::read_dir(&server.snapshot_dir)
        .map(|entries| {
            entries
                .filter_map(|entry| Some(entry.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    snapshot_files.sort();
    BrowserRun {
        controls,
        snapshot_files,
        captured_file_exists: captured.is_some_and(|path| path.is_file()),
        captured_size,
        auth_failures: state.json().u64("auth_failures"),
        report,
    }
}

#[test]
fn browser_shows_the_live_image_at_640x480() {
    let report = &browser().report;
    assert_eq!(
        (report.u64("imgWidth"), report.u64("imgHeight")),
        (640, 480)
    );
}

#[test]
fn browser_frame_counter_advances() {
    let report = &browser().report;
    let (first, second) = (report.u64("first"), report.u64("second"));
    assert!(second > first, "frame counter went {first} -> {second}");
}

#[test]
fn browser_live_image_changes_between_screenshots() {
    assert_eq!(browser().report.str("imageChanged"), "true");
}

#[test]
fn browser_capture_reports_a_file_that_exists_on_disk() {
    let run = browser();
    assert!(
        run.captured_file_exists,
        "Capture reported {:?}, which is not in the snapshot directory",
        run.report.str("captured")
    );
    assert_eq!(run.captured_size, Some((640, 480)));
}

// ------------------------------------------------------------ with a token

#[test]
fn browser_with_query_token_shows_moving_frames() {
    let report = &browser_with_query_token().report;
    assert_eq!(
        (report.u64("imgWidth"), report.u64("imgHeight")),
        (640, 480)
    );
    assert_eq!(report.str("imageChanged"), "true");
    let (first, second) = (report.u64("first"), report.u64("second"));
    assert!(second > first, "frame counter went {first} -> {second}");
    assert_eq!(report.str("tokenRequiredShown"), "false");
}

#[test]
fn browser_with_query_token_captures_a_file() {
    let run = browser_with_query_token();
    assert!(
        run.captured_file_exists,
        "Capture reported {:?}, which is not in the snapshot directory",
        run.report.str("captured")
    );
    assert_eq!(run.captured_size, Some((640, 480)));
}

/// Every request the page made (stream, state, capture) carried the token.
#[test]
fn browser_with_query_token_never_fails_auth() {
    assert_eq!(browser_with_query_token().auth_failures, 0);
}

#[test]
fn browser_with_wrong_token_shows_the_token_required_state() {
    let run = browser_with_wrong_token();
    assert_eq!(run.report.str("tokenRequired"), "true");
    assert_eq!(run.report.u64("status"), 401);
    assert!(
        run.report.str("text").contains("token required"),
        "{:?}",
        run.report.str("text")
    );
    assert!(run.auth_failures >= 1);
}

#[test]
fn browser_with_basic_credentials_works_without_a_query_string() {
    let run = browser_with_basic_credentials();
    let report = &run.report;
    assert_eq!(report.str("imageChanged"), "true");
    let (first, second) = (report.u64("first"), report.u64("second"));
    assert!(second > first, "frame counter went {first} -> {second}");
    assert!(run.captured_file_exists, "{:?}", report.str("captured"));
    assert_eq!(report.str("tokenRequiredShown"), "false");
}

#[test]
fn browser_shows_token_required_instead_of_a_json_error_on_a_401_in_the_page() {
    let report = &browser_getting_401_in_the_page().report;
    assert_eq!(report.str("tokenRequired"), "true");
    assert_eq!(report.str("camera"), "token required");
    assert_eq!(report.str("captureText"), "capture failed: token required");
}

// ------------------------------------------------------- camera controls

#[test]
fn browser_sliders_change_the_cameras_controls() {
    let run = browser_moving_controls();
    let report = &run.report;
    assert_eq!(report.str("names"), "brightness contrast");
    assert_eq!(report.str("postStatuses"), "200 200");
    assert_eq!(
        (report.str("brightness"), report.str("contrast")),
        ("100", "0")
    );
    assert_eq!(report.str("controlResult"), "");
    assert_eq!(
        run.controls,
        r#"{"brightness":{"value":100,"min":0,"max":100},"contrast":{"value":0,"min":0,"max":100}}"#
    );
    // The page's /controls requests carried its ?token= like the others.
    assert_eq!(run.auth_failures, 0);
    assert_eq!(report.str("tokenRequiredShown"), "false");
}

// ---------------------------------------------------------- six cameras

/// The page learned the six cameras from /state: one tile each, in order,
/// the first four live, the other two snapshots.
#[test]
fn browser_with_six_cameras_shows_four_live_tiles_and_two_snapshot_tiles() {
    let report = &browser_with_six_cameras().report;
    assert_eq!(
        report.str("tiles"),
        "cam0:live cam1:live cam2:live cam3:live cam4:snapshot cam5:snapshot"
    );
    // The page asked for a stream of each live camera (the default one's
    // at the page's old URL, the others' under /cam/NAME/) and for
    // snapshots of the other two.
    assert_eq!(
        report.str("streams"),
        "/cam/cam1/stream.mjpg /cam/cam2/stream.mjpg /cam/cam3/stream.mjpg /stream.mjpg"
    );
    assert_eq!(
        report.str("snapshots"),
        "/cam/cam4/snapshot.jpg /cam/cam5/snapshot.jpg"
    );
    // The server saw one stream viewer on each live camera and none on the
    // snapshot ones: four connections held, two left for the rest.
    assert_eq!(
        report.str("viewers"),
        "cam0:1 cam1:1 cam2:1 cam3:1 cam4:0 cam5:0"
    );
}

#[test]
fn browser_with_six_cameras_live_tiles_move() {
    assert_eq!(
        browser_with_six_cameras().report.str("liveMoved"),
        "cam0 cam1 cam2 cam3"
    );
}

/// Each snapshot tile showed at least three snapshots, and its picture and
/// frame number changed between them.
#[test]
fn browser_with_six_cameras_snapshot_tiles_refresh() {
    let report = &browser_with_six_cameras().report;
    assert_eq!(
        report.str("snapshotsRefreshed"),
        "cam4 cam5",
        "loads: {}",
        report.str("snapshotLoads")
    );
}

/// Capture on the sixth tile: the server wrote that camera's file, a
/// complete JPEG, and nothing else; the tile (and only it) shows the name.
#[test]
fn browser_with_six_cameras_capture_on_the_sixth_saves_its_file() {
    let run = browser_with_six_cameras();
    let report = &run.report;
    assert_eq!(report.str("captureCamera"), "cam5");
    assert_eq!(
        report.str("captured"),
        "pic2.cam5.jpg",
        "{}",
        report.str("captureText")
    );
    assert!(run.captured_file_exists);
    assert_eq!(run.captured_size, Some((640, 480)));
    assert_eq!(run.snapshot_files, ["pic2.cam5.jpg"]);
    assert_eq!(report.str("otherResults"), "");
    assert_eq!(report.str("tokenRequiredShown"), "false");
    assert_eq!(run.auth_failures, 0);
}
