//! `/stream.mjpg` against the real server over loopback: the multipart
//! framing, frame contents, fan-out to many viewers, dropping a stuck
//! viewer, and a real MJPEG client (ffprobe).
//!
//! No timing assertions: only counts and contents. Time appears solely as
//! hang protection (socket read timeouts, bounded waits for a state).

mod http_support;

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use http_support::{
    decoded_size, frame_number, metric, read_until_closed, wait_until, Json, MjpegStream, Server,
    READ_TIMEOUT,
};
use socket2::{Domain, Socket, Type};

// ------------------------------------------------------------ one viewer

#[test]
fn stream_parts_are_distinct_valid_640x480_jpegs_in_increasing_frame_order() {
    let server = Server::synthetic(&[]);
    let mut stream = server.open_stream("");
    let mut numbers = Vec::new();
    for _ in 0..8 {
        let jpeg = stream.next_jpeg().expect("a complete multipart part");
        assert_eq!(decoded_size(&jpeg), (640, 480));
        numbers.push(frame_number(&jpeg));
    }
    assert!(
        numbers.windows(2).all(|pair| pair[0] < pair[1]),
        "frame numbers strictly increase (so all differ): {numbers:?}"
    );
}

#[test]
fn stream_response_head_forbids_caching_and_closes_at_the_end() {
    let server = Server::synthetic(&[]);
    let stream = server.open_stream("");
    let header = |name: &str| {
        stream
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("cache-control"), Some("no-store"));
    assert_eq!(header("connection"), Some("close"));
    assert_eq!(header("content-length"), None, "a stream has no length");
}

#[test]
fn fps_query_makes_a_viewer_skip_frames() {
    // Small frames: grabbing and encoding stays far below the 33 ms a frame.
    let server = Server::synthetic(&["--width", "160", "--height", "120"]);
    let mut stream = server.open_stream("?fps=10");
    let numbers: Vec<u64> = (0..6)
        .map(|_| frame_number(&stream.next_jpeg().expect("a part")))
        .collect();
    // The stamps are the server's grab count: a 10 fps viewer of a 30 fps
    // camera gets about every third frame, so no two of its frames are
    // consecutive grabs, however late the parts arrive here.
    assert!(
        numbers.windows(2).all(|pair| pair[1] >= pair[0] + 2),
        "?fps=10 got consecutive frames: {numbers:?}"
    );
}

#[test]
fn a_viewer_that_resets_mid_stream_leaves_the_others_streaming() {
    let server = Server::synthetic(&[]);
    let mut leaving = server.open_stream("");
    let mut staying = server.open_stream("");
    for viewer in [&mut leaving, &mut staying] {
        viewer.next_jpeg().expect("a first part");
    }
    // Vanish the rude way: close with unread data and linger 0, so the
    // server sees a reset rather than a clean EOF.
    let socket = leaving.into_inner();
    socket2::SockRef::from(&socket)
        .set_linger(Some(Duration::ZERO))
        .expect("set SO_LINGER 0");
    drop(socket);
    let numbers: Vec<u64> = (0..5)
        .map(|_| frame_number(&staying.next_jpeg().expect("the stream goes on")))
        .collect();
    assert!(
        numbers.windows(2).all(|pair| pair[0] < pair[1]),
        "{numbers:?}"
    );
    assert!(
        wait_until(READ_TIMEOUT, || server.state_u64("stream_viewers") == 1),
        "the vanished viewer is still counted: {:?}",
        server.state().0
    );
}

#[test]
fn stream_without_a_camera_is_refused_with_503_and_a_json_error() {
    let server = Server::start(&["--camera", "none"]);
    // Like /snapshot.jpg and /capture without a camera: a refusal rather
    // than a stream that would never show a frame.
    let response = server.get("/stream.mjpg");
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.text(), r#"{"error":"camera: no camera"}"#);
    assert_eq!(server.state_u64("stream_viewers"), 0);
}

// ----------------------------------------- fifty readers and a stuck one
//
// One scenario, run once per test binary and shared by the tests below
// (each checks one behaviour of it): 50 viewers that read, plus one that
// never reads, with `--stream-stall-timeout 1`. The run ends once the
// server has dropped the stuck viewer; the server is stopped before the
// results are handed out, so nothing outlives the run.

/// Viewers that read their stream.
const READERS: usize = 50;
/// Distinct frames every reader must receive.
const MIN_FRAMES_PER_READER: usize = 10;
/// The stated memory bound for the server with 51 viewers: 32 MiB of private
/// memory (RssAnon). A queue per viewer that grew with the stuck one (or copied
/// each frame per viewer) would blow through it; the shared-frame design needs a few MiB.
const RSS_BOUND_KIB: u64 = 32 * 1024;
/// Hang protection for waiting on the server to drop the stuck viewer.
const DROP_WAIT_LIMIT: Duration = Duration::from_secs(30);
/// A small receive buffer makes the never-reading viewer's socket fill
/// (and the server's output to it back up) after a few frames.
const STUCK_RECV_BUFFER_BYTES: usize = 4096;

/// What one reader saw.
struct ReaderReport {
    /// Stamped frame numbers in arrival order.
    frames: Vec<u64>,
    /// A hash of each frame's bytes, in the same order.
    digests: Vec<u64>,
    /// Size of its first frame, fully decoded.
    first_size: Option<(u16, u16)>,
    /// Why it stopped early, if it did.
    error: Option<String>,
}

/// Everything the crowd tests check, gathered in one run.
struct CrowdRun {
    readers: Vec<ReaderReport>,
    /// Whether `/state` showed the drop within the wait limit.
    dropped_in_time: bool,
    /// `/state` once every viewer streams (before the drop); None if they
    /// never all did within the wait limit.
    state_while_streaming: Option<Json>,
    /// `/state` right after the drop was seen, readers still connected.
    state_after_drop: Json,
    /// `/metrics` at the same time.
    metrics_after_drop: String,
    /// What reading the stuck viewer's socket to its end gave.
    stuck_socket_end: io::Result<usize>,
    /// Highest `RssAnon` sampled during the run.
    peak_rss_kib: u64,
    /// The server's log, for failure messages.
    log: String,
}

fn crowd() -> &'static CrowdRun {
    static RUN: OnceLock<CrowdRun> = OnceLock::new();
    RUN.get_or_init(run_crowd)
}

fn run_crowd() -> CrowdRun {
    let server = Server::synthetic(&["--stream-stall-timeout", "1"]);
    let mut stuck = connect_stuck_viewer(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let stream = server.connect();
            let stop = Arc::clone(&stop);
            thread::spawn(move || read_frames(stream, &stop))
        })
        .collect();

    let mut peak_rss_kib = server.anon_rss_kib();
    let all_streaming = wait_until(DROP_WAIT_LIMIT, || {
        server.state_u64("stream_viewers") == READERS as u64 + 1
    });
    let state_while_streaming = all_streaming.then(|| server.state());
    let dropped_in_time = wait_until(DROP_WAIT_LIMIT, || {
        peak_rss_kib = peak_rss_kib.max(server.anon_rss_kib());
        server.state_u64("viewers_dropped") >= 1
    });
    let state_after_drop = server.state();
    let metrics_after_drop = server.metrics();
    peak_rss_kib = peak_rss_kib.max(server.anon_rss_kib());
    // Only once dropped: reading a viewer that is still served would go on
    // for as long as the server keeps sending.
    let stuck_socket_end = if dropped_in_time {
        read_until_closed(&mut stuck, READ_TIMEOUT)
    } else {
        Err(io::Error::other("the server never dropped it"))
    };

    stop.store(true, Ordering::Relaxed);
    let readers = readers
        .into_iter()
        .map(|reader| reader.join().expect("a reader thread panicked"))
        .collect();
    let log = server.log();
    drop(server);
    eprintln!(
        "crowd run: peak RssAnon {peak_rss_kib} KiB; /state after the drop: {:?}",
        state_after_drop.0
    );
    CrowdRun {
        readers,
        dropped_in_time,
        state_while_streaming,
        state_after_drop,
        metrics_after_drop,
        stuck_socket_end,
        peak_rss_kib,
        log,
    }
}

/// A viewer that asks for the stream and then never reads.
fn connect_stuck_viewer(server: &Server) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    // Before connect, so the advertised window is small from the start.
    socket
        .set_recv_buffer_size(STUCK_RECV_BUFFER_BYTES)
        .expect("set SO_RCVBUF");
    socket.connect(&server.http.into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("set a read timeout");
    stream
        .write_all(b"GET /stream.mjpg HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send the request");
    stream
}

/// A hash of some bytes, to compare frames without keeping them all.
fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Reads parts until it has enough frames and the run says stop.
fn read_frames(stream: TcpStream, stop: &AtomicBool) -> ReaderReport {
    let mut report = ReaderReport {
        frames: Vec::new(),
        digests: Vec::new(),
        first_size: None,
        error: None,
    };
    let mut viewer = match MjpegStream::open(stream, "") {
        Ok(viewer) => viewer,
        Err(e) => {
            report.error = Some(format!("opening the stream: {e}"));
            return report;
        }
    };
    while report.frames.len() < MIN_FRAMES_PER_READER || !stop.load(Ordering::Relaxed) {
        match viewer.next_jpeg() {
            Ok(jpeg) => {
                if report.first_size.is_none() {
                    report.first_size = Some(decoded_size(&jpeg));
                }
                report.frames.push(frame_number(&jpeg));
                report.digests.push(digest(&jpeg));
            }
            Err(e) => {
                report.error = Some(format!("after {} frames: {e}", report.frames.len()));
                break;
            }
        }
    }
    report
}

#[test]
fn each_of_fifty_readers_gets_ten_distinct_increasing_frames_beside_a_stuck_viewer() {
    let run = crowd();
    for (index, reader) in run.readers.iter().enumerate() {
        assert_eq!(
            reader.error, None,
            "reader {index} stopped early; server log:\n{}",
            run.log
        );
        assert_eq!(reader.first_size, Some((640, 480)), "reader {index}");
        assert!(
            reader.frames.len() >= MIN_FRAMES_PER_READER,
            "reader {index} got {} frames",
            reader.frames.len()
        );
        assert!(
            reader.frames.windows(2).all(|pair| pair[0] < pair[1]),
            "reader {index}: frame numbers strictly increase: {:?}",
            reader.frames
        );
    }
}

#[test]
fn a_viewer_that_never_reads_is_disconnected_after_the_stall_timeout() {
    let run = crowd();
    assert!(
        run.dropped_in_time,
        "viewers_dropped stayed 0 for {DROP_WAIT_LIMIT:?}; server log:\n{}",
        run.log
    );
    // Whatever was still buffered comes first, then EOF (or a reset).
    assert!(
        run.stuck_socket_end.is_ok(),
        "the stuck viewer's socket was not closed: {:?}",
        run.stuck_socket_end
    );
}

#[test]
fn a_dropped_viewer_is_counted_in_state_and_metrics() {
    let run = crowd();
    let state_count = run.state_after_drop.u64("viewers_dropped");
    let metrics_count = metric(&run.metrics_after_drop, "camloop_viewers_dropped_total");
    assert!(state_count >= 1, "/state viewers_dropped = {state_count}");
    assert!(
        metrics_count.is_some_and(|count| count >= 1),
        "camloop_viewers_dropped_total = {metrics_count:?}"
    );
}

#[test]
fn fifty_viewers_get_the_same_frames_and_cost_one_encode_per_grabbed_frame() {
    let run = crowd();
    // The same frame numbers went to every reader, and the same number
    // always came with the same bytes: one picture, fanned out.
    let mut bytes_of: HashMap<u64, u64> = HashMap::new();
    for (index, reader) in run.readers.iter().enumerate() {
        for (number, digest) in reader.frames.iter().zip(&reader.digests) {
            let first = *bytes_of.entry(*number).or_insert(*digest);
            assert_eq!(
                first, *digest,
                "reader {index} got other bytes for frame {number} than an earlier reader"
            );
        }
    }
    let sets: Vec<HashSet<u64>> = run
        .readers
        .iter()
        .map(|reader| reader.frames.iter().copied().collect())
        .collect();
    for (a, b) in (0..sets.len()).flat_map(|a| (a + 1..sets.len()).map(move |b| (a, b))) {
        assert!(
            !sets[a].is_disjoint(&sets[b]),
            "readers {a} and {b} got no frame in common: {:?} and {:?}",
            run.readers[a].frames,
            run.readers[b].frames
        );
    }
    // While 51 viewers streamed, every grab was encoded exactly once: not
    // once per viewer, and none skipped.
    let before = run.state_while_streaming.as_ref().unwrap_or_else(|| {
        panic!(
            "the {READERS} readers never all streamed; server log:\n{}",
            run.log
        )
    });
    let after = &run.state_after_drop;
    let grabbed = after.u64("frames_grabbed") - before.u64("frames_grabbed");
    let encoded = after.u64("frames_encoded") - before.u64("frames_encoded");
    assert_eq!(
        encoded, grabbed,
        "{encoded} encodes for {grabbed} grabs while streaming"
    );
    assert!(grabbed >= 1, "nothing was grabbed while streaming");
    // Fan-out really happened: many more frames sent than encoded.
    let min_sent = (READERS * MIN_FRAMES_PER_READER) as u64;
    let sent = after.u64("frames_sent");
    assert!(
        sent >= min_sent,
        "frames_sent {sent} < {min_sent} (encoded {})",
        after.u64("frames_encoded")
    );
}

#[test]
fn server_private_memory_stays_under_32_mib_with_fifty_readers_and_a_stuck_viewer() {
    let run = crowd();
    assert!(
        run.peak_rss_kib < RSS_BOUND_KIB,
        "peak RssAnon {} KiB >= {RSS_BOUND_KIB} KiB",
        run.peak_rss_kib
    );
}

// ------------------------------------------------------------- ffprobe

/// ffprobe must give up within this; it is killed otherwise.
const FFPROBE_LIMIT: Duration = Duration::from_secs(20);

/// Runs ffprobe on the stream and returns its stdout (`codec,width,height`).
fn ffprobe_stream(server: &Server) -> String {
    let url = format!("{}/stream.mjpg", server.base_url());
    let mut child = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=codec_name,width,height"])
        .args(["-of", "csv=p=0", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run ffprobe ({e}): install Debian's ffmpeg (scripts/setup.sh test)")
        });
    let deadline = Instant::now() + FFPROBE_LIMIT;
    while child.try_wait().expect("poll ffprobe").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ffprobe did not finish within {FFPROBE_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("ffprobe output");
    assert!(
        output.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn ffprobe_reads_the_stream_as_mjpeg_640x480() {
    let server = Server::synthetic(&[]);
    assert_eq!(ffprobe_stream(&server), "mjpeg,640,480");
}

#[test]
fn ffprobe_reports_the_configured_frame_size() {
    let server = Server::synthetic(&["--width", "320", "--height", "240"]);
    assert_eq!(ffprobe_stream(&server), "mjpeg,320,240");
}
