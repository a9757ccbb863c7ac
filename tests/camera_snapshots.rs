//! The camera pipeline and snapshots end to end (issue 4): the synthetic
//! camera, fresh captures, `frame`, shared encodes, `{seq}` names,
//! retention, snapshot errors, and a server that sleeps when idle.

mod support;

use std::fs;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use support::{decode_jpeg, frame_number, Capture, Client, Server, ServerBuilder, TempDir};

fn synthetic() -> ServerBuilder {
    ServerBuilder::new().camera("synthetic")
}

// ---------------------------------------------------------------------------
// Captures

#[test]
fn classic_camera_client_gets_received_and_a_640x480_pic2_jpg() {
    let server = synthetic().spawn();
    let mut client = server.connect();
    client.expect("Welcome");
    client.send("c");
    client.expect("Received");
    // The reply comes after the file is in place.
    let jpeg = fs::read(server.snapshot_dir().join("pic2.jpg")).expect("pic2.jpg written");
    let image = decode_jpeg(&jpeg);
    assert_eq!((image.width, image.height), (640, 480));
    assert_eq!(image.pixels.len(), 640 * 480 * 3);
    assert_eq!(
        server.snapshot_entries(),
        ["pic2.jpg"],
        "no temp files left"
    );
    client.send("exit");
    client.expect_eof();
}

#[test]
fn line_mode_capture_reports_the_file_its_size_and_its_length() {
    let server = synthetic().spawn();
    let mut client = server.client();
    let capture = client.capture();
    assert_eq!(capture.file, "pic2.jpg");
    assert_eq!((capture.width, capture.height), (640, 480));
    let jpeg = fs::read(server.snapshot_dir().join(&capture.file)).unwrap();
    assert_eq!(jpeg.len(), capture.bytes);
    decode_jpeg(&jpeg);
    // `capture` is the long spelling of `c`.
    assert_eq!(Capture::parse(&client.request("capture")).file, "pic2.jpg");
}

#[test]
fn frame_sends_a_complete_jpeg_after_its_header() {
    let server = synthetic().spawn();
    let mut client = server.client();
    let jpeg = client.frame();
    let image = decode_jpeg(&jpeg);
    assert_eq!((image.width, image.height), (640, 480));
    assert!(frame_number(&jpeg) >= 1);
    // Exactly n bytes followed the header: the next reply is intact.
    assert_eq!(client.request("ping"), "PONG");
}

#[test]
fn captures_a_few_hundred_ms_apart_are_different_pictures() {
    let server = synthetic()
        .args(["--snapshot-name", "snap-{seq}.jpg"])
        .spawn();
    let mut client = server.client();
    let first = client.capture();
    thread::sleep(Duration::from_millis(300));
    let second = client.capture();
    assert_ne!(first.file, second.file);

    let read = |c: &Capture| fs::read(server.snapshot_dir().join(&c.file)).unwrap();
    let (first_jpeg, second_jpeg) = (read(&first), read(&second));
    assert!(
        frame_number(&second_jpeg) > frame_number(&first_jpeg),
        "frame numbers {} then {}",
        frame_number(&first_jpeg),
        frame_number(&second_jpeg)
    );
    assert_ne!(
        decode_jpeg(&first_jpeg).pixels,
        decode_jpeg(&second_jpeg).pixels,
        "the second capture shows the same picture"
    );
}

#[test]
fn a_capture_never_uses_a_frame_grabbed_before_the_request() {
    let server = synthetic().spawn();
    let mut client = server.client();
    for _ in 0..5 {
        let before = frame_number(&client.frame());
        let capture = client.capture();
        let jpeg = fs::read(server.snapshot_dir().join(&capture.file)).unwrap();
        let captured = frame_number(&jpeg);
        assert!(
            captured > before,
            "capture got frame {captured}, but frame {before} was already out before it was asked"
        );
    }
}

#[test]
fn fifty_simultaneous_captures_share_few_encodes_and_write_one_valid_file() {
    const CLIENTS: usize = 50;
    let server = synthetic().spawn();
    let addr = server.addr;
    let go = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let go = Arc::clone(&go);
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                client.expect("Welcome");
                go.wait(); // everybody connected and greeted: now all at once
                client.capture()
            })
        })
        .collect();
    let captures: Vec<Capture> = threads
        .into_iter()
        .map(|t| t.join().expect("capture client"))
        .collect();
    assert_eq!(captures.len(), CLIENTS);
    assert!(captures.iter().all(|c| c.file == "pic2.jpg"));

    assert_eq!(
        server.snapshot_entries(),
        ["pic2.jpg"],
        "no temp files left"
    );
    let jpeg = fs::read(server.snapshot_dir().join("pic2.jpg")).unwrap();
    assert_eq!(decode_jpeg(&jpeg).pixels.len(), 640 * 480 * 3);
    assert!(
        captures.iter().any(|c| c.bytes == jpeg.len()),
        "the file is none of the pictures the clients were told about"
    );

    let stats = server.client().stats();
    let encoded = stats.get("frames_encoded");
    assert!(
        (1..=CLIENTS as u64 / 5).contains(&encoded),
        "{CLIENTS} simultaneous captures took {encoded} encodes"
    );
    assert!(stats.get("snapshots") <= encoded);
    assert_eq!(stats.get("snapshot_errors"), 0);
}

// ---------------------------------------------------------------------------
// Snapshot names and retention

#[test]
fn seq_numbers_continue_after_a_restart() {
    let dir = TempDir::new("seq");
    let server = || {
        synthetic()
            .snapshot_dir(dir.path())
            .args(["--snapshot-name", "snap-{seq}.jpg"])
            .spawn()
    };
    {
        let first_run = server();
        let mut client = first_run.client();
        assert_eq!(client.capture().file, "snap-000001.jpg");
        assert_eq!(client.capture().file, "snap-000002.jpg");
    }
    let second_run = server();
    assert_eq!(second_run.client().capture().file, "snap-000003.jpg");
    assert_eq!(
        second_run.snapshot_entries(),
        ["snap-000001.jpg", "snap-000002.jpg", "snap-000003.jpg"]
    );
}

#[test]
fn retention_keeps_exactly_the_newest_n_snapshots() {
    let server = synthetic()
        .args(["--snapshot-name", "snap-{seq}.jpg", "--snapshot-keep", "3"])
        .spawn();
    let mut client = server.client();
    for _ in 0..6 {
        client.capture();
    }
    assert_eq!(
        server.snapshot_entries(),
        ["snap-000004.jpg", "snap-000005.jpg", "snap-000006.jpg"]
    );
}

// ---------------------------------------------------------------------------
// Snapshot errors

/// Capabilities that let root write into a directory whatever its mode
/// (and change the mode): without them root obeys a 0555 directory like
/// anybody else. Dropped from the bounding set, they are gone from the
/// server `setpriv` executes, which keeps its user, so it can still run a
/// binary inside a 0700 home (the owner's rights suffice).
const DAC_CAPABILITIES: &str = "-dac_override,-dac_read_search,-fowner";

#[test]
fn an_unwritable_snapshot_dir_gives_err_permission_denied_and_no_stray_files() {
    let dir = TempDir::new("unwritable");
    support::set_mode(dir.path(), 0o555);
    let builder = synthetic().snapshot_dir(dir.path());
    // SAFETY: geteuid has no preconditions.
    let builder = if unsafe { libc::geteuid() } == 0 {
        assert!(
            support::command_exists("setpriv"),
            "running as root, this test needs setpriv (util-linux: run scripts/setup.sh test) \
             to take away root's right to write into a 0555 directory"
        );
        builder.wrapper([
            "setpriv".to_string(),
            format!("--bounding-set={DAC_CAPABILITIES}"),
        ])
    } else {
        builder
    };
    let server = builder.spawn();
    let mut client = server.client();
    assert_eq!(client.request("c"), "ERR snapshot: permission denied");
    assert!(server.snapshot_entries().is_empty());
    // One failed snapshot does not end anything.
    assert_eq!(client.request("ping"), "PONG");
    assert_eq!(client.stats().get("snapshot_errors"), 1);
    support::set_mode(dir.path(), 0o755);
}

#[test]
fn a_file_size_limit_gives_err_snapshot_and_no_stray_files() {
    let server = synthetic()
        .wrapper(["prlimit", "--fsize=4096"])
        // The limit applies to the server's log file as well: keep it short.
        .env("RUST_LOG", "warn")
        .spawn();
    let mut client = server.client();
    assert_eq!(
        client.request("c"),
        "ERR snapshot: file too large (size limit reached)"
    );
    assert!(server.snapshot_entries().is_empty());
    assert_eq!(client.request("ping"), "PONG");
    assert_eq!(client.stats().get("snapshot_errors"), 1);
}

// ---------------------------------------------------------------------------
// Idle

/// Lets the server settle after a request, then counts its voluntary
/// context switches over two seconds of nothing happening.
fn context_switches_while_idle(server: &Server) -> (u64, u64) {
    let pid = server.pid();
    thread::sleep(Duration::from_millis(100));
    let before = support::voluntary_context_switches(pid);
    thread::sleep(Duration::from_secs(2));
    (before, support::voluntary_context_switches(pid))
}

#[test]
fn an_idle_server_without_camera_sleeps_in_epoll_wait() {
    let server = Server::start();
    // A connected, idle client must not cause wake-ups either.
    let mut client = server.client();
    assert_eq!(client.request("ping"), "PONG");
    let (before, after) = context_switches_while_idle(&server);
    assert_eq!(
        after,
        before,
        "the idle server woke up {} times in 2 s",
        after - before
    );
}

#[test]
fn an_idle_server_with_a_synthetic_camera_and_no_consumers_sleeps_too() {
    let server = synthetic().spawn();
    let mut client = server.client();
    client.capture(); // the camera has been used, but nobody is waiting now
    let (before, after) = context_switches_while_idle(&server);
    assert_eq!(
        after,
        before,
        "the idle server woke up {} times in 2 s",
        after - before
    );
}

#[test]
fn the_server_is_one_thread() {
    let server = synthetic().spawn();
    let mut client = server.client();
    client.capture();
    client.frame();
    assert_eq!(support::thread_count(server.pid()), 1);
}
