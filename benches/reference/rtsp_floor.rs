//! The floor under an RTSP/TCP fan-out, for benches/rtsp_viewers.sh: a
//! server that does only what any server must do per viewer, one `send()`
//! of each access unit's interleaved RTP packets, and nothing else. Its CPU
//! at N viewers is what the kernel charges for those sends (the copy, TCP,
//! and loopback's delivery into the viewer's socket, which the sender pays)
//! plus a clock; what camloop and gst-rtsp-server spend above it is theirs.
//!
//!     cargo bench --no-default-features --bench rtsp_floor --no-run
//!     FLOOR_BINARY CLIP.h264 [PORT] [FPS]
//!
//! It serves the clip (Annex-B, as `ffmpeg -c copy -f h264` writes it) at
//! rtsp://127.0.0.1:PORT/clip, looping, paced by its own clock at FPS
//! (default 30), and prints `ready rtsp://127.0.0.1:PORT/clip` once it
//! listens. Everything that is not the fan-out is kept off it on purpose:
//! each AU is packetised and framed once for everyone (the one RTP session
//! every viewer shares, as a camera's one stream), a new viewer starts at
//! the next IDR (no GOP cache), one sender report goes out at `PLAY`, and
//! the viewers' sockets are read once a second, not every frame, for their
//! requests (keepalives, `TEARDOWN`) and RTCP. RTSP itself is camloop's
//! sans-IO parser and writers (`camloop::rtsp`), so `camloop load --rtsp`
//! meets the same protocol as from the other two servers.
//!
//! It is not a server to use: no UDP, no authentication, one client's
//! request at a time per tick, and a viewer whose socket will not take a
//! whole AU is closed (and counted on stderr) rather than queued. Only
//! 127.0.0.1 is served. Stops on SIGTERM, or when its stdin closes (the
//! benchmark holds it open), and then reports what it sent on stderr.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use camloop::h264::{AccessUnit, AnnexBSplitter, DEFAULT_MAX_AU_BYTES};
use camloop::rtsp::request::Method;
use camloop::rtsp::response::{push_interleaved, response, ResponseFields, CONTENT_TYPE_SDP};
use camloop::rtsp::rtcp::{ntp_timestamp, sender_report, SenderInfo};
use camloop::rtsp::{
    rtp_timestamp, session_description, Packetizer, RtspEvent, RtspReader, SdpSession,
    DEFAULT_RTP_MTU_BYTES,
};
use camloop::timefmt::unix_micros;

const MOUNT: &str = "/clip";
const SSRC: u32 = 0xF100_4001;
const RTP_CHANNEL: u8 = 0;
const RTCP_CHANNEL: u8 = 1;
const SESSION_TIMEOUT_S: u32 = 60;
/// Playing viewers are read this often: reading each of them every frame
/// would double the syscalls the floor is meant to count.
const PLAYING_READ_INTERVAL: Duration = Duration::from_secs(1);
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// One RTSP connection.
struct Viewer {
    stream: TcpStream,
    reader: RtspReader,
    /// `PLAY` answered: it gets every AU from the next IDR on.
    playing: bool,
    /// Playing, and the first IDR since `PLAY` has gone to it.
    started: bool,
}

/// What the floor did, for its last words.
#[derive(Default)]
struct Tally {
    viewers: usize,
    aus: u64,
    sends: u64,
    bytes: u64,
    closed_blocked: u64,
}

fn main() {
    // `cargo bench` runs every bench target with `--bench` and nothing
    // else: this one has nothing to measure alone, and must not fail it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(clip) = args.first().filter(|arg| *arg != "--bench") else {
        eprintln!(
            "rtsp_floor: benches/rtsp_viewers.sh runs it (rtsp_floor CLIP.h264 [PORT] [FPS])"
        );
        return;
    };
    let port: u16 = args.get(1).map_or(0, |p| p.parse().expect("PORT"));
    let fps: u32 = args.get(2).map_or(30, |f| f.parse().expect("FPS"));
    let (aus, sdp) = read_clip(clip, fps);

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let url = format!("rtsp://{}{MOUNT}", listener.local_addr().expect("address"));
    println!("ready {url}");

    let start = Instant::now();
    let frame_interval = Duration::from_secs(1) / fps;
    let mut packetizer = Packetizer::new(SSRC, 96, DEFAULT_RTP_MTU_BYTES, 0);
    let mut viewers: Vec<Viewer> = Vec::new();
    let mut tally = Tally::default();
    let mut read_buffer = vec![0u8; READ_BUFFER_BYTES];
    let (mut packets, mut framed) = (Vec::new(), Vec::new());
    let mut next_frame = start;
    let mut next_playing_read = start;
    for au in aus.iter().cycle() {
        if let Some(wait) = next_frame.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next_frame += frame_interval;
        let now = Instant::now();
        let read_playing = now >= next_playing_read;
        if read_playing {
            next_playing_read = now + PLAYING_READ_INTERVAL;
            if stdin_closed() {
                break;
            }
        }
        accept_all(&listener, &mut viewers, &mut tally);
        viewers.retain_mut(|viewer| {
            let due = read_playing || !viewer.playing;
            !due || serve_requests(viewer, &mut read_buffer, &sdp, &url, start)
        });

        // The fan-out: packetise and frame once, one send() per viewer.
        packets.clear();
        framed.clear();
        packetizer.packetize(&au.data, rtp_timestamp(start, 0, now), &mut packets);
        for packet in &packets {
            push_interleaved(&mut framed, RTP_CHANNEL, packet);
        }
        tally.aus += 1;
        viewers.retain_mut(|viewer| send_au(viewer, &framed, au.keyframe, &mut tally));
    }
    eprintln!(
        "rtsp_floor: {} viewers in all, {} AUs, {} sends, {} bytes, {} viewers closed as blocked",
        tally.viewers, tally.aus, tally.sends, tally.bytes, tally.closed_blocked
    );
}

/// The clip's access units and the SDP that describes them.
fn read_clip(path: &str, fps: u32) -> (Vec<AccessUnit>, String) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("rtsp_floor: {path}: {e}"));
    let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
    splitter.push(&bytes);
    let mut aus = Vec::new();
    while let Some(au) = splitter.next_au() {
        aus.push(au);
    }
    // The last AU cannot be told complete (nothing follows it): it is left
    // out, and the loop runs one frame short of the clip.
    let parameter_sets = splitter
        .parameter_sets()
        .expect("the clip has an SPS and a PPS");
    assert!(aus.iter().any(|au| au.keyframe), "the clip has an IDR");
    let sdp = session_description(
        parameter_sets,
        &SdpSession {
            session_id: 1,
            server_address: Ipv4Addr::LOCALHOST.into(),
            frames_per_second: Some(fps),
        },
    );
    (aus, sdp)
}

/// The one send a viewer gets per AU (from the first IDR after its
/// `PLAY`). False when the viewer is gone, or its socket would not take
/// the whole AU (the stream would be cut; counted).
fn send_au(viewer: &mut Viewer, framed: &[u8], keyframe: bool, tally: &mut Tally) -> bool {
    if !viewer.playing || !(viewer.started || keyframe) {
        return true;
    }
    viewer.started = true;
    tally.sends += 1;
    match viewer.stream.write(framed) {
        Ok(n) if n == framed.len() => {
            tally.bytes += n as u64;
            true
        }
        Err(e) if e.kind() != ErrorKind::WouldBlock => false, // gone
        Ok(_) | Err(_) => {
            tally.closed_blocked += 1;
            false
        }
    }
}

/// Takes every connection waiting on the listener.
fn accept_all(listener: &TcpListener, viewers: &mut Vec<Viewer>, tally: &mut Tally) {
    while let Ok((stream, _)) = listener.accept() {
        if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
            continue;
        }
        tally.viewers += 1;
        viewers.push(Viewer {
            stream,
            reader: RtspReader::new(),
            playing: false,
            started: false,
        });
    }
}

/// Reads what `viewer` sent and answers its requests. False when it is
/// gone (closed, reset, `TEARDOWN`, bad input).
fn serve_requests(
    viewer: &mut Viewer,
    buffer: &mut [u8],
    sdp: &str,
    url: &str,
    start: Instant,
) -> bool {
    loop {
        match viewer.stream.read(buffer) {
            Ok(0) => return false,
            Ok(n) => viewer.reader.push(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    while let Some(event) = viewer.reader.next_event() {
        let request = match event {
            RtspEvent::Request(request) => request,
            RtspEvent::Interleaved { .. } => continue, // receiver reports
            RtspEvent::Error { .. } => return false,
        };
        let mut out = answer(request.method.clone(), request.cseq, sdp, url);
        match request.method {
            Method::Play => {
                viewer.playing = true;
                push_interleaved(&mut out, RTCP_CHANNEL, &first_sender_report(start));
            }
            Method::Teardown => return false,
            _ => {}
        }
        // A few hundred bytes into an empty socket buffer: all or nothing.
        if viewer.stream.write(&out).ok() != Some(out.len()) {
            return false;
        }
    }
    true
}

/// The answer to a request: the SDP for `DESCRIBE`, interleaved channels
/// 0-1 for `SETUP`, a plain 200 for the rest.
fn answer(method: Method, cseq: u32, sdp: &str, url: &str) -> Vec<u8> {
    let base = format!("{url}/");
    let transport = [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")];
    let session = Some(("F100", SESSION_TIMEOUT_S));
    let fields = match method {
        Method::Describe => ResponseFields {
            content_base: Some(&base),
            body: Some((CONTENT_TYPE_SDP, sdp.as_bytes())),
            ..Default::default()
        },
        Method::Setup => ResponseFields {
            session,
            extra: &transport,
            ..Default::default()
        },
        _ => ResponseFields {
            session,
            ..Default::default()
        },
    };
    response(200, Some(cseq), &fields)
}

/// A sender report tying the RTP clock (which started at `start`) to the
/// wall clock, so the viewers can age what they receive.
fn first_sender_report(start: Instant) -> Vec<u8> {
    let now = Instant::now();
    let unix_us = unix_micros(SystemTime::now());
    sender_report(
        &SenderInfo {
            ssrc: SSRC,
            ntp_timestamp: ntp_timestamp(unix_us),
            rtp_timestamp: rtp_timestamp(start, 0, now),
            packet_count: 0,
            octet_count: 0,
        },
        "rtsp_floor",
    )
}

/// Whether stdin has reached its end (the benchmark let go of it).
fn stdin_closed() -> bool {
    let mut poll = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    if ready <= 0 {
        return false;
    }
    if poll.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return true;
    }
    let mut byte = [0u8; 1];
    matches!(std::io::stdin().read(&mut byte), Ok(0))
}
