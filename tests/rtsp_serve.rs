//! The RTSP server (issue 28, part 3), against the real server binary over
//! loopback: real clients (ffmpeg, ffprobe, GStreamer's `rtspsrc`) decode
//! what it serves, and the test's own raw client checks the bytes.
//!
//! The cameras replay the main clip with `-re -c copy`
//! (`tests/support/h264_clip.rs`), so the raw client can put the RTP
//! packets it receives back into access units (`camloop::rtsp::depacketize`)
//! and find each of them in the clip: a viewer starts on an IDR, gets whole
//! RTP packets and whole AUs only, and is only ever moved ahead onto an IDR.
//! The raw client reads responses and `$` frames strictly: a status line
//! `RTSP/1.0 NNN`, CRLF header lines, a body by `Content-Length`, and frames
//! only on the channels `SETUP` agreed on, RTP version 2 on the one and RTCP
//! on the other.
//!
//! Every tool a test needs is checked first; a missing one fails the test
//! with the reason (`scripts/setup.sh test` installs them all), never skips
//! it. No timing assertions: only orderings, counts and contents. Time
//! appears solely as hang protection (read timeouts, bounded waits for a
//! child or a state) and, in the session-timeout test, as how long to keep
//! viewers before looking at them.

#[path = "support/h264_clip.rs"]
mod h264_clip;
mod http_support;

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use camloop::rtsp::auth::{basic_authorization, digest_authorization};
use camloop::rtsp::depacketize::{parse_rtp, Depacketizer};
use camloop::rtsp::rtcp::{is_rtcp, parse_compound, RtcpPacket};
use h264_clip::{
    access_units, assert_opens_with_sps_pps_idr, complaint_lines, main_clip, replay_camera,
    require_tool, save, CLIP_GOP, CLIP_HEIGHT, CLIP_WIDTH,
};
use http_support::{wait_until, Server, TempDir, READ_TIMEOUT};

/// GStreamer's launcher, Debian's (the one with the plugins installed).
const GST_LAUNCH: &str = "/usr/bin/gst-launch-1.0";

/// How long a client tool may run before the test kills it and fails:
/// hang protection, far above what any of them needs.
const TOOL_LIMIT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------
// Servers

/// A server whose cameras are `NAME=` the main clip's replay, one per name
/// (the first is the default camera), plus `extra` flags. The camera
/// timeout is generous so a busy machine does not restart a replay.
fn clip_server(names: &[&str], extra: &[&str]) -> Server {
    let replay = replay_camera(&main_clip().mkv, "h264");
    let cameras: Vec<String> = names
        .iter()
        .map(|name| format!("{name}={replay}"))
        .collect();
    let mut args = Vec::new();
    for camera in &cameras {
        args.extend(["--camera", camera.as_str()]);
    }
    args.extend(["--camera-timeout", "30"]);
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// The server's RTSP address.
fn rtsp_addr(server: &Server) -> SocketAddr {
    server
        .rtsp
        .expect("the server printed an RTSP address (rtsp=…)")
}

/// `rtsp://127.0.0.1:PORT` followed by `path`.
fn rtsp_url(server: &Server, path: &str) -> String {
    format!("rtsp://{}{path}", rtsp_addr(server))
}

/// The value of one exact series (`name{labels}`) in Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// One camera's sample of a per-camera series.
fn camera_sample(metrics: &str, name: &str, camera: &str) -> u64 {
    let series = format!("{name}{{camera=\"{camera}\"}}");
    sample(metrics, &series).unwrap_or_else(|| panic!("no {series} in /metrics:\n{metrics}"))
}

// ---------------------------------------------------------------------------
// Client tools: ffmpeg, ffprobe, GStreamer

/// A client tool running with its output going to files, killed on drop.
struct Tool {
    child: Child,
    shown: String,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: TempDir,
}

/// What a tool did, once it exited.
struct Finished {
    shown: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Tool {
    fn start(command: &mut Command) -> Tool {
        let dir = TempDir::new("rtsp-tool");
        let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let shown = format!("{command:?}");
        let child = command
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("create a stdout file"))
            .stderr(fs::File::create(&stderr).expect("create a stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        Tool {
            child,
            shown,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// It has not exited yet.
    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for it to exit; kills it and panics if it runs past `limit`.
    fn finish(&mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} still ran after {limit:?}; its stderr:\n{}",
                    self.shown,
                    fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        let read =
            |path: &Path| String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned();
        Finished {
            shown: self.shown.clone(),
            status,
            stdout: read(&self.stdout),
            stderr: read(&self.stderr),
        }
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Finished {
    /// Panics, with its stderr and the server's log, unless it exited 0.
    fn assert_success(&self, server: &Server) -> &Finished {
        assert!(
            self.status.success(),
            "{} failed ({}); its stderr:\n{}\nserver log:\n{}",
            self.shown,
            self.status,
            self.stderr,
            server.log()
        );
        self
    }

    /// Its stderr lines that say `corrupt` or `error`.
    fn complaints(&self) -> Vec<String> {
        complaint_lines(self.stderr.as_bytes(), &["corrupt", "error"])
    }

    /// The frames ffmpeg wrote: the last `frame=N` of its `-progress`
    /// report on stdout (it exits 0 at the end of its input too, so its
    /// status alone does not say that it got them all).
    fn ffmpeg_frames(&self) -> u64 {
        self.stdout
            .lines()
            .filter_map(|line| line.strip_prefix("frame=")?.trim().parse().ok())
            .next_back()
            .unwrap_or_else(|| {
                panic!(
                    "{} printed no frame= progress:\n{}",
                    self.shown, self.stdout
                )
            })
    }

    /// The buffers GStreamer's `fakesink silent=false` took, from `-v`'s
    /// `last-message = chain` lines (`rtspsrc` ends with EOS, status 0,
    /// when the server closes, so the status alone does not say either).
    fn gst_buffers(&self) -> usize {
        self.stdout
            .lines()
            .filter(|line| line.contains("last-message = chain"))
            .count()
    }
}

/// `ffmpeg` reading `frames` video frames of `url` over TCP interleaved and
/// decoding them (`decode`), or only demuxing them (`-c copy`), with a
/// `-progress` report on stdout.
fn ffmpeg_viewer(url: &str, frames: u32, decode: bool) -> Command {
    ffmpeg_viewer_over("tcp", url, frames, decode)
}

/// [`ffmpeg_viewer`] over `transport` (`tcp` or `udp`; over UDP with the
/// 4 MiB receive buffer a video stream over UDP needs).
fn ffmpeg_viewer_over(transport: &str, url: &str, frames: u32, decode: bool) -> Command {
    require_tool("ffmpeg", "it is the RTSP client under test");
    let mut command = Command::new("ffmpeg");
    command
        .args(["-nostdin", "-v", "warning", "-rtsp_transport", transport])
        .args(if transport == "udp" {
            &["-buffer_size", "4M"][..]
        } else {
            &[][..]
        })
        .args(["-i", url])
        .args(if decode { &[][..] } else { &["-c", "copy"][..] })
        .args(["-frames:v", &frames.to_string()])
        .args(["-progress", "pipe:1", "-f", "null", "-"]);
    command
}

/// GStreamer's `rtspsrc` over TCP with `properties` (credentials), the
/// H.264 depayloader and, with `decode`, the parser and libav's decoder,
/// into a `fakesink` that stops after `buffers` buffers and reports each.
fn gst_viewer(url: &str, properties: &[&str], decode: bool, buffers: usize) -> Command {
    gst_viewer_over("tcp", url, properties, decode, buffers)
}

/// [`gst_viewer`] with `rtspsrc protocols=PROTOCOLS` (`tcp` or `udp`).
fn gst_viewer_over(
    protocols: &str,
    url: &str,
    properties: &[&str],
    decode: bool,
    buffers: usize,
) -> Command {
    assert!(
        Path::new(GST_LAUNCH).exists(),
        "{GST_LAUNCH} is needed (GStreamer is an RTSP client under test); \
         `scripts/setup.sh test` installs it with the good, bad and libav plugins"
    );
    let mut command = Command::new(GST_LAUNCH);
    command
        .args(["-v", "rtspsrc", &format!("location={url}")])
        .arg(format!("protocols={protocols}"))
        .args(properties)
        .args(["!", "rtph264depay"])
        .args(if decode {
            &["!", "h264parse", "!", "avdec_h264"][..]
        } else {
            &[][..]
        })
        .args([
            "!",
            "fakesink",
            "silent=false",
            &format!("num-buffers={buffers}"),
        ]);
    command
}

// ---------------------------------------------------------------------------
// A raw RTSP client

/// One response, read strictly.
#[derive(Debug)]
struct RtspResponse {
    status: u16,
    /// Header fields in order, names as sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The head as received, for messages.
    head: String,
}

impl RtspResponse {
    /// The first value of a header field (case-insensitive name).
    fn header(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    /// Every value of a header field, in order.
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A header field that must be there.
    fn expect_header(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} in the response:\n{}", self.head))
    }
}

/// One `$` frame: a channel and a packet.
#[derive(Debug, Clone)]
struct Frame {
    channel: u8,
    payload: Vec<u8>,
}

/// What comes next on an RTSP connection.
#[derive(Debug)]
enum Message {
    Response(RtspResponse),
    Frame(Frame),
}

/// What `PLAY` set up: the SSRC, session and where the stream starts.
#[derive(Debug)]
struct Playing {
    session: String,
    /// `SETUP`'s `ssrc=`.
    ssrc: u32,
    /// `Session: ID;timeout=N`'s N.
    timeout: u64,
    /// `RTP-Info`'s `seq=` and `rtptime=`.
    seq: u16,
    rtptime: u32,
    /// The `DESCRIBE` answer's SDP.
    sdp: String,
}

/// The test's own RTSP client: requests with `CSeq`, responses read
/// strictly, and the `$` frames that arrive in between kept for later.
struct RtspClient {
    stream: TcpStream,
    /// Bytes received and not parsed yet.
    buf: Vec<u8>,
    next_cseq: u32,
    /// Frames that arrived while a response was awaited, oldest first.
    frames: VecDeque<Frame>,
}

impl RtspClient {
    fn connect(addr: SocketAddr) -> RtspClient {
        RtspClient::from_stream(TcpStream::connect(addr).expect("connect to the RTSP port"))
    }

    /// Connects with a small kernel receive buffer, so that a client that
    /// stops reading holds up the server after little data.
    fn connect_with_receive_buffer(addr: SocketAddr, bytes: usize) -> RtspClient {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        socket
            .connect(&addr.into())
            .expect("connect to the RTSP port");
        RtspClient::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> RtspClient {
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        RtspClient {
            stream,
            buf: Vec::new(),
            next_cseq: 1,
            frames: VecDeque::new(),
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .expect("send to the RTSP server");
    }

    /// Sends `METHOD url RTSP/1.0` with the next `CSeq` and `headers`, and
    /// reads its response (which must echo the `CSeq`).
    fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> RtspResponse {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("User-Agent: camloop-test\r\n\r\n");
        self.send_raw(text.as_bytes());
        let response = self.read_response(&format!("the answer to {method} {url}"));
        assert_eq!(
            response.header("CSeq"),
            Some(cseq.to_string().as_str()),
            "the answer to {method} {url} echoes its CSeq:\n{}",
            response.head
        );
        response
    }

    /// Reads until a response; frames on the way are kept.
    fn read_response(&mut self, what: &str) -> RtspResponse {
        loop {
            match self.read_message(what) {
                Message::Response(response) => return response,
                Message::Frame(frame) => self.frames.push_back(frame),
            }
        }
    }

    /// The next `$` frame (a kept one first); a response here is an error.
    fn next_frame(&mut self) -> Frame {
        if let Some(frame) = self.frames.pop_front() {
            return frame;
        }
        match self.read_message("a $ frame") {
            Message::Frame(frame) => frame,
            Message::Response(response) => {
                panic!(
                    "a response where only $ frames may come:\n{}",
                    response.head
                )
            }
        }
    }

    fn read_message(&mut self, what: &str) -> Message {
        loop {
            if let Some(message) = self.parse_message() {
                return message;
            }
            if !self.fill(what) {
                panic!(
                    "the server closed the connection before {what}; unparsed: {:?}",
                    String::from_utf8_lossy(&self.buf[..self.buf.len().min(300)])
                );
            }
        }
    }

    /// Reads once more into the buffer; false at EOF.
    fn fill(&mut self, what: &str) -> bool {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("reading {what}: {e}"),
            }
        }
    }

    /// The complete message at the start of the buffer, if there is one;
    /// panics on anything that is neither a `$` frame nor a well-formed
    /// RTSP/1.0 response.
    fn parse_message(&mut self) -> Option<Message> {
        if self.buf.first() == Some(&b'$') {
            let header = self.buf.get(..4)?;
            let (channel, length) = (
                header[1],
                usize::from(u16::from_be_bytes([header[2], header[3]])),
            );
            let payload = self.buf.get(4..4 + length)?.to_vec();
            self.buf.drain(..4 + length);
            return Some(Message::Frame(Frame { channel, payload }));
        }
        let Some(head_end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            assert!(
                self.buf.len() < 8192,
                "no end of a response head in 8 KiB: {:?}",
                String::from_utf8_lossy(&self.buf[..300])
            );
            return None;
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec())
            .unwrap_or_else(|_| panic!("a response head that is not UTF-8: {:?}", self.buf));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("RTSP/1.0 ")
            .and_then(|rest| {
                rest.get(..3)
                    .filter(|_| rest.as_bytes().get(3) == Some(&b' '))
            })
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an RTSP/1.0 status line: {status_line:?}\n{head}"));
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                assert!(
                    !line.contains(['\r', '\n']),
                    "a bare CR or LF in a header line: {line:?}\n{head}"
                );
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("not a header line: {line:?}\n{head}"));
                assert!(
                    !name.is_empty() && !name.contains(' '),
                    "a bad header name in {line:?}"
                );
                (name.to_string(), value.trim().to_string())
            })
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
            .map_or(0, |(_, v)| {
                v.parse::<usize>()
                    .unwrap_or_else(|_| panic!("Content-Length {v:?}"))
            });
        let body_start = head_end + 4;
        let body = self.buf.get(body_start..body_start + length)?.to_vec();
        self.buf.drain(..body_start + length);
        Some(Message::Response(RtspResponse {
            status,
            headers,
            body,
            head,
        }))
    }

    /// Reads until the server closes (EOF or reset), at most `limit`, and
    /// returns what came after the last message parsed. Panics if the
    /// connection is still open after `limit`.
    fn read_until_closed(&mut self, limit: Duration) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            assert!(
                Instant::now() < deadline,
                "the server did not close the connection within {limit:?}"
            );
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading until the close: {e}"),
            }
            // Keep what is left small: only frames may come here.
            while self.buf.first() == Some(&b'$') {
                let Some(Message::Frame(frame)) = self.parse_message() else {
                    break;
                };
                self.frames.push_back(frame);
                if self.frames.len() > 4096 {
                    self.frames.pop_front();
                }
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// OPTIONS, DESCRIBE, SETUP (TCP interleaved on `channels`) and PLAY of
    /// `url`, with `auth` headers on each, checking every answer against
    /// what issue 28 promises.
    fn play(&mut self, url: &str, channels: (u8, u8), auth: &[(&str, &str)]) -> Playing {
        let options = self.request("OPTIONS", url, auth);
        assert_eq!(options.status, 200, "OPTIONS {url}:\n{}", options.head);
        let public = options.expect_header("Public");
        for method in [
            "OPTIONS",
            "DESCRIBE",
            "SETUP",
            "PLAY",
            "TEARDOWN",
            "GET_PARAMETER",
        ] {
            assert!(
                public.split(',').any(|m| m.trim() == method),
                "Public lists {method}: {public:?}"
            );
        }

        let mut headers = auth.to_vec();
        headers.push(("Accept", "application/sdp"));
        let describe = self.request("DESCRIBE", url, &headers);
        assert_eq!(describe.status, 200, "DESCRIBE {url}:\n{}", describe.head);
        assert_eq!(describe.header("Content-Type"), Some("application/sdp"));
        let base = describe.expect_header("Content-Base").to_string();
        let expected_base = if url.ends_with('/') {
            url.to_string()
        } else {
            format!("{url}/")
        };
        assert_eq!(base, expected_base, "Content-Base is the URL ending in /");
        let sdp = String::from_utf8(describe.body.clone()).expect("a UTF-8 SDP");
        assert_sdp_describes_h264(&sdp);

        let track = format!("{base}trackID=0");
        let offer = format!(
            "RTP/AVP/TCP;unicast;interleaved={}-{}",
            channels.0, channels.1
        );
        let mut headers = auth.to_vec();
        headers.push(("Transport", &offer));
        let setup = self.request("SETUP", &track, &headers);
        assert_eq!(setup.status, 200, "SETUP {track}:\n{}", setup.head);
        let (session, timeout) = setup
            .expect_header("Session")
            .split_once(";timeout=")
            .map(|(id, t)| {
                (
                    id.to_string(),
                    t.parse::<u64>().expect("a timeout in seconds"),
                )
            })
            .unwrap_or_else(|| panic!("Session is ID;timeout=N:\n{}", setup.head));
        assert!(!session.is_empty(), "a session id");
        let transport = setup.expect_header("Transport");
        let ssrc = transport
            .strip_prefix(&format!("{offer};ssrc="))
            .and_then(|rest| rest.strip_suffix(";mode=\"PLAY\""))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| {
                panic!("Transport echoes {offer} with ;ssrc=HEX;mode=\"PLAY\": {transport:?}")
            });

        let mut headers = auth.to_vec();
        headers.extend([("Session", session.as_str()), ("Range", "npt=0.000-")]);
        let play = self.request("PLAY", &base, &headers);
        assert_eq!(play.status, 200, "PLAY {base}:\n{}", play.head);
        assert_eq!(
            play.header("Session").and_then(|s| s.split(';').next()),
            Some(session.as_str())
        );
        assert_eq!(play.header("Range"), Some("npt=0.000-"), "{}", play.head);
        let rtp_info = play.expect_header("RTP-Info");
        let rest = rtp_info
            .strip_prefix(&format!("url={track};seq="))
            .unwrap_or_else(|| panic!("RTP-Info names the track {track}: {rtp_info:?}"));
        let (seq, rtptime) = rest
            .split_once(";rtptime=")
            .and_then(|(s, t)| Some((s.parse().ok()?, t.parse().ok()?)))
            .unwrap_or_else(|| panic!("RTP-Info url=…;seq=N;rtptime=N: {rtp_info:?}"));
        Playing {
            session,
            ssrc,
            timeout,
            seq,
            rtptime,
            sdp,
        }
    }
}

/// The SDP lines of issue 28 for one H.264 track.
fn assert_sdp_describes_h264(sdp: &str) {
    assert!(
        !sdp.replace("\r\n", "").contains('\n'),
        "CRLF lines only:\n{sdp}"
    );
    let lines: Vec<&str> = sdp.lines().collect();
    for line in [
        "v=0",
        "m=video 0 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "a=control:trackID=0",
    ] {
        assert!(lines.contains(&line), "the SDP has {line:?}:\n{sdp}");
    }
    let fmtp = lines
        .iter()
        .find_map(|l| l.strip_prefix("a=fmtp:96 "))
        .unwrap_or_else(|| panic!("an a=fmtp:96 line:\n{sdp}"));
    let params: Vec<&str> = fmtp.split(';').map(str::trim).collect();
    assert!(params.contains(&"packetization-mode=1"), "{fmtp}");
    let profile = params
        .iter()
        .find_map(|p| p.strip_prefix("profile-level-id="))
        .unwrap_or_else(|| panic!("profile-level-id in {fmtp}"));
    assert!(
        profile.len() == 6 && profile.bytes().all(|b| b.is_ascii_hexdigit()),
        "profile-level-id is six hex digits: {profile}"
    );
    let sprop = params
        .iter()
        .find_map(|p| p.strip_prefix("sprop-parameter-sets="))
        .unwrap_or_else(|| panic!("sprop-parameter-sets in {fmtp}"));
    let sets: Vec<&str> = sprop.split(',').collect();
    assert_eq!(sets.len(), 2, "SPS and PPS: {sprop}");
    assert!(
        sets[0].starts_with('Z'),
        "base64 of an SPS (0x67…) starts with Z: {sprop}"
    );
}

// ---------------------------------------------------------------------------
// RTP, as the raw client receives it

/// What a raw viewer made of the `$` frames it read. Every frame is checked
/// strictly as it is taken, and the RTP packets are put back into access
/// units: one [`Depacketizer`] per run of consecutive sequence numbers, so
/// that the place a viewer was moved ahead (the camera's sequence numbers
/// are shared by its viewers, so a skip is a gap) is seen as such, and the
/// first AU after it must be a keyframe.
struct Receiver {
    channels: (u8, u8),
    ssrc: u32,
    runs: Vec<Depacketizer>,
    /// The sequence number and marker bit of the last RTP packet.
    last: Option<(u16, bool)>,
    /// The next AU must be a keyframe: the first one, or one after a gap.
    expect_keyframe: bool,
    /// Every whole AU, Annex-B.
    annexb: Vec<u8>,
    aus: usize,
    /// Places the stream jumped (sequence gaps between whole AUs).
    gaps: usize,
    rtp_packets: u64,
    /// RTP bytes, `$` headers included.
    rtp_bytes: u64,
    sender_reports: usize,
    /// The first RTP packet's sequence number and timestamp.
    first: Option<(u16, u32)>,
    /// Channels of the frames in order, up to the first RTP packet.
    opening: Vec<u8>,
}

impl Receiver {
    fn new(playing: &Playing, channels: (u8, u8)) -> Receiver {
        Receiver {
            channels,
            ssrc: playing.ssrc,
            runs: vec![Depacketizer::new()],
            last: None,
            expect_keyframe: true,
            annexb: Vec::new(),
            aus: 0,
            gaps: 0,
            rtp_packets: 0,
            rtp_bytes: 0,
            sender_reports: 0,
            first: None,
            opening: Vec::new(),
        }
    }

    fn take(&mut self, frame: &Frame) {
        if self.first.is_none() {
            self.opening.push(frame.channel);
        }
        let payload = &frame.payload;
        if frame.channel == self.channels.1 {
            assert!(
                is_rtcp(payload),
                "a non-RTCP packet on the RTCP channel: {payload:02X?}"
            );
            let packets = parse_compound(payload)
                .unwrap_or_else(|e| panic!("RTCP that does not parse ({e}): {payload:02X?}"));
            if let Some(RtcpPacket::SenderReport(info)) = packets.first() {
                assert_eq!(info.ssrc, self.ssrc, "the sender report's SSRC is SETUP's");
                self.sender_reports += 1;
            }
            return;
        }
        assert_eq!(
            frame.channel, self.channels.0,
            "a $ frame on channel {}, not {:?}",
            frame.channel, self.channels
        );
        assert!(!is_rtcp(payload), "RTCP on the RTP channel: {payload:02X?}");
        let (header, _) = parse_rtp(payload).unwrap_or_else(|| {
            panic!(
                "not an RTP version 2 packet: {:02X?}",
                &payload[..payload.len().min(16)]
            )
        });
        assert_eq!(header.payload_type, 96, "the SDP's payload type");
        assert_eq!(header.ssrc, self.ssrc, "SETUP's SSRC");
        self.rtp_packets += 1;
        self.rtp_bytes += 4 + payload.len() as u64;
        self.first
            .get_or_insert((header.sequence_number, header.timestamp));
        if let Some((previous, marker)) = self.last {
            if header.sequence_number != previous.wrapping_add(1) {
                assert!(
                    marker,
                    "sequence {previous} -> {}: packets missing inside an access unit \
                     (the one before the gap has no marker bit)",
                    header.sequence_number
                );
                assert!(
                    header.sequence_number.wrapping_sub(previous) < 0x8000,
                    "sequence {previous} -> {}: backwards",
                    header.sequence_number
                );
                self.gaps += 1;
                self.runs.push(Depacketizer::new());
                self.expect_keyframe = true;
            }
        }
        self.last = Some((header.sequence_number, header.marker));
        let run = self.runs.last_mut().unwrap();
        let completed: Vec<_> = run.push(payload).collect();
        for au in completed {
            assert!(!au.follows_gap, "an AU after a damaged one");
            if self.expect_keyframe {
                assert!(
                    au.keyframe,
                    "AU #{} (after {} gaps) is not a keyframe: a viewer starts, and is moved \
                     ahead, only onto an IDR",
                    self.aus, self.gaps
                );
                self.expect_keyframe = false;
            }
            self.annexb.extend_from_slice(&au.data);
            self.aus += 1;
        }
    }

    /// Reads frames from `client` until `done(self)`; bounded by `limit`.
    fn read_until(
        &mut self,
        client: &mut RtspClient,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&Receiver) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what}; {} AUs, {} packets so far",
                self.aus,
                self.rtp_packets
            );
            let frame = client.next_frame();
            self.take(&frame);
        }
    }

    /// Reads until `count` more whole AUs have arrived.
    fn read_aus(&mut self, client: &mut RtspClient, count: usize) {
        let target = self.aus + count;
        self.read_until(
            client,
            &format!("{count} access units"),
            Duration::from_secs(60),
            |r| r.aus >= target,
        );
    }

    /// No packet was malformed and nothing was lost inside a run.
    fn assert_clean(&self) {
        for run in &self.runs {
            assert_eq!(
                (
                    run.malformed_packets(),
                    run.lost_packets(),
                    run.discarded_aus()
                ),
                (0, 0, 0),
                "malformed packets, packets lost and AUs discarded within a run"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Real clients decode

/// Pins item 1 of issue 28, part 3, for a named camera (`/door`): ffmpeg
/// over TCP interleaved decodes 90 frames (counted from its progress
/// report) with exit 0 and no `corrupt` or `error` line; ffprobe reads the
/// clip's 1280x720 from the stream; GStreamer's `rtspsrc ! rtph264depay !
/// h264parse ! avdec_h264` decodes 90 buffers and exits 0. A wrong SDP,
/// broken packetisation or a stream not starting on an IDR makes one of
/// the three fail or complain.
#[test]
fn ffmpeg_ffprobe_and_gstreamer_decode_a_named_camera_over_rtsp() {
    require_tool("ffprobe", "it reads the stream's size");
    let server = clip_server(&["door"], &[]);
    let url = rtsp_url(&server, "/door");

    let ffmpeg = Tool::start(&mut ffmpeg_viewer(&url, 90, true)).finish(TOOL_LIMIT);
    ffmpeg.assert_success(&server);
    assert_eq!(ffmpeg.ffmpeg_frames(), 90, "ffmpeg decoded 90 frames");
    assert!(
        ffmpeg.complaints().is_empty(),
        "ffmpeg complained: {:?}",
        ffmpeg.complaints()
    );

    let ffprobe = Tool::start(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-select_streams",
                "v:0",
            ])
            .args(["-show_entries", "stream=codec_name,width,height"])
            .args(["-of", "default=noprint_wrappers=1", &url]),
    )
    .finish(TOOL_LIMIT);
    ffprobe.assert_success(&server);
    let field = |key: &str| {
        ffprobe
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("ffprobe printed no {key}:\n{}", ffprobe.stdout))
            .to_string()
    };
    assert_eq!(field("codec_name"), "h264");
    assert_eq!(
        (field("width"), field("height")),
        (CLIP_WIDTH.to_string(), CLIP_HEIGHT.to_string())
    );

    let gst = Tool::start(&mut gst_viewer(&url, &[], true, 90)).finish(TOOL_LIMIT);
    gst.assert_success(&server);
    assert_eq!(
        gst.gst_buffers(),
        90,
        "GStreamer decoded 90 frames:\n{}",
        gst.stderr
    );
}

/// Pins the session timeout (item 2): with `--rtsp-session-timeout 8`,
/// a GStreamer viewer kept for four timeouts gets all its buffers and is
/// still there after two and a half, though it sends no request after
/// `PLAY` (the request counter of `/state` grows only by the `/state`
/// reads themselves): its RTCP receiver reports alone keep it. A silent raw
/// client (`PLAY`, then reading only) is closed by the server, with one
/// `session closed` log line, while the GStreamer viewer goes on. On a
/// second server, an ffmpeg viewer of two and a half timeouts (it sends
/// `GET_PARAMETER` keepalives) gets all its frames and no session is
/// closed there. A server that does not count RTCP as life drops
/// GStreamer; one that never times out keeps the silent client open.
///
/// Why 8 s and not less: GStreamer sends its receiver reports at RFC 3550's
/// randomised interval, 5 s times 0.5 to 1.5 over 1.218, so up to about
/// 6.2 s apart; with a 4 s timeout the server rightly drops it now and then
/// (seen: closed after 7 s, `rtspsrc` then ends with EOS and exit 0).
#[test]
fn rtcp_and_keepalives_keep_a_session_and_a_silent_client_is_closed() {
    const TIMEOUT_S: u64 = 8;
    let timeout = TIMEOUT_S.to_string();
    let args = [
        "--rtsp-session-timeout",
        timeout.as_str(),
        "--stream-stall-timeout",
        "300",
    ];
    let server = clip_server(&["door"], &args);
    let other = clip_server(&["door"], &args);

    // ffmpeg on the other server: 30 fps for 2.5 timeouts.
    let ffmpeg_frames = 30 * TIMEOUT_S as u32 * 5 / 2;
    let mut ffmpeg = Tool::start(&mut ffmpeg_viewer(
        &rtsp_url(&other, "/door"),
        ffmpeg_frames,
        false,
    ));

    // GStreamer for four timeouts, and a silent raw client.
    let gst_buffers = 30 * 4 * TIMEOUT_S as usize;
    let mut gst = Tool::start(&mut gst_viewer(
        &rtsp_url(&server, "/door"),
        &[],
        false,
        gst_buffers,
    ));
    let mut silent = RtspClient::connect(rtsp_addr(&server));
    let playing = silent.play(&rtsp_url(&server, "/door"), (0, 1), &[]);
    assert_eq!(
        playing.timeout, TIMEOUT_S,
        "Session: …;timeout= is the flag's"
    );
    let both = wait_until(Duration::from_secs(60), || {
        server.state_u64("rtsp_sessions") == 2
    });
    assert!(
        both,
        "GStreamer and the raw client play: {:?}\n{}",
        server.state().0,
        server.log()
    );

    let ffmpeg_plays = wait_until(Duration::from_secs(60), || {
        other.state_u64("rtsp_sessions") == 1
    });
    assert!(
        ffmpeg_plays,
        "ffmpeg plays: {:?}\n{}",
        other.state().0,
        other.log()
    );
    let other_before = other.state_u64("requests");

    // What reading /state adds to the request counter.
    let first = server.state_u64("requests");
    let per_read = server.state_u64("requests") - first;
    let started = Instant::now();
    let before = server.state_u64("requests");

    // The silent client is closed; it never sent anything after PLAY.
    let limit = Duration::from_secs(4 * TIMEOUT_S + 30);
    silent.read_until_closed(limit);
    // Keep GStreamer past two and a half timeouts, then look.
    let look_at = started + Duration::from_millis(TIMEOUT_S * 2500);
    thread::sleep(look_at.saturating_duration_since(Instant::now()));
    let state = server.state();
    if !gst.is_running() {
        let gst = gst.finish(TOOL_LIMIT);
        panic!(
            "GStreamer stopped before 2.5 session timeouts ({}, {} buffers); its stderr:\n{}\n\
             server log:\n{}",
            gst.status,
            gst.gst_buffers(),
            gst.stderr,
            server.log()
        );
    }
    assert_eq!(
        state.u64("rtsp_sessions"),
        1,
        "GStreamer's session stays, the silent one went"
    );
    let gst_requests = state.u64("requests") - before - per_read;
    let closed = |server: &Server| {
        server
            .log()
            .lines()
            .filter(|l| l.contains("session closed"))
            .count()
    };
    assert_eq!(
        closed(&server),
        1,
        "one session closed for silence:\n{}",
        server.log()
    );

    let gst = gst.finish(TOOL_LIMIT);
    gst.assert_success(&server);
    assert_eq!(
        gst.gst_buffers(),
        gst_buffers,
        "GStreamer got all its buffers"
    );
    // GStreamer sends no request while it plays over TCP (its receiver
    // reports are what keeps it): checked, since the premise of the test
    // rests on it.
    assert_eq!(
        gst_requests, 0,
        "GStreamer sent {gst_requests} requests while playing (the test assumed none)"
    );

    let ffmpeg = ffmpeg.finish(TOOL_LIMIT);
    ffmpeg.assert_success(&other);
    assert_eq!(
        ffmpeg.ffmpeg_frames(),
        u64::from(ffmpeg_frames),
        "ffmpeg got all its frames"
    );
    assert_eq!(closed(&other), 0, "no session closed:\n{}", other.log());
    // Its requests after PLAY: GET_PARAMETER every half timeout, and the
    // TEARDOWN at the end.
    let ffmpeg_requests = other.state_u64("requests") - other_before - per_read;
    eprintln!("ffmpeg sent {ffmpeg_requests} requests after PLAY");
    assert!(
        ffmpeg_requests >= 3,
        "ffmpeg kept its session with keepalives: {ffmpeg_requests} requests after PLAY"
    );
}

/// Pins item 3: the synthetic camera, an MJPEG one, is served over RTSP
/// through the encoder child (ffmpeg with libx264), which the first RTSP
/// viewer starts: none runs before, one does after; ffmpeg decodes 30
/// frames with exit 0 and no complaint.
#[test]
fn the_synthetic_camera_plays_over_rtsp_through_the_encoder() {
    let server = Server::synthetic(&["--camera-timeout", "30"]);
    let encoders = || {
        h264_clip::descendants(server.pid())
            .into_iter()
            .filter(|(_, argv)| argv.iter().any(|a| a == "libx264"))
            .count()
    };
    assert_eq!(encoders(), 0, "no encoder before an H.264 viewer");
    let ffmpeg =
        Tool::start(&mut ffmpeg_viewer(&rtsp_url(&server, "/"), 30, true)).finish(TOOL_LIMIT);
    ffmpeg.assert_success(&server);
    assert_eq!(ffmpeg.ffmpeg_frames(), 30);
    assert!(
        ffmpeg.complaints().is_empty(),
        "ffmpeg complained: {:?}",
        ffmpeg.complaints()
    );
    // The encoder lingers after its last viewer (--converter-linger).
    assert_eq!(encoders(), 1, "the RTSP viewer started the encoder");
}

/// Pins item 4, `--token`: ffmpeg with the token as password in the URL
/// decodes (it answers the Digest challenge with `qop=auth`); GStreamer
/// with `user-id`/`user-pw` decodes (it answers in RFC 2069's form); ffmpeg
/// with a wrong password gets 401 and exits non-zero. Raw: a request
/// without credentials gets 401 with two `WWW-Authenticate`, Digest first
/// and then Basic; `Authorization: Basic` with the token gets the SDP, and
/// so does the test's own Digest answer; Basic with a wrong password gets
/// 401.
#[test]
fn with_a_token_digest_and_basic_credentials_play_and_others_get_401() {
    let server = clip_server(&["door"], &["--token", "s3cret"]);
    let addr = rtsp_addr(&server);
    let url = rtsp_url(&server, "/door");

    let mut raw = RtspClient::connect(addr);
    let refused = raw.request("DESCRIBE", &url, &[]);
    assert_eq!(refused.status, 401, "{}", refused.head);
    let challenges = refused.all("WWW-Authenticate");
    assert_eq!(challenges.len(), 2, "Digest and Basic:\n{}", refused.head);
    assert!(
        challenges[0].starts_with("Digest "),
        "Digest first: {challenges:?}"
    );
    assert!(challenges[0].contains("realm=\"camloop\"") && challenges[0].contains("nonce=\""));
    assert!(
        challenges[1].starts_with("Basic "),
        "then Basic: {challenges:?}"
    );
    let digest_challenge = challenges[0].to_string();

    let wrong = basic_authorization("user", "guess");
    let refused = raw.request("DESCRIBE", &url, &[("Authorization", &wrong)]);
    assert_eq!(
        refused.status, 401,
        "a wrong Basic password:\n{}",
        refused.head
    );
    let basic = basic_authorization("user", "s3cret");
    let described = raw.request("DESCRIBE", &url, &[("Authorization", &basic)]);
    assert_eq!(
        described.status, 200,
        "Basic with the token:\n{}",
        described.head
    );
    assert_sdp_describes_h264(&String::from_utf8_lossy(&described.body));
    // The connection's nonce answered with Digest, on the same connection.
    let digest = digest_authorization(
        &digest_challenge,
        "DESCRIBE",
        &url,
        "user",
        "s3cret",
        "0a4f113b",
    )
    .expect("a Digest challenge the client side reads");
    let described = raw.request("DESCRIBE", &url, &[("Authorization", &digest)]);
    assert_eq!(
        described.status, 200,
        "Digest with the token:\n{}",
        described.head
    );

    let with_token = rtsp_url(&server, "/door").replacen("rtsp://", "rtsp://user:s3cret@", 1);
    let ffmpeg = Tool::start(&mut ffmpeg_viewer(&with_token, 30, true)).finish(TOOL_LIMIT);
    ffmpeg.assert_success(&server);
    assert_eq!(ffmpeg.ffmpeg_frames(), 30);
    assert!(
        ffmpeg.complaints().is_empty(),
        "ffmpeg complained: {:?}",
        ffmpeg.complaints()
    );

    let gst = Tool::start(&mut gst_viewer(
        &url,
        &["user-id=user", "user-pw=s3cret"],
        true,
        30,
    ))
    .finish(TOOL_LIMIT);
    gst.assert_success(&server);
    assert_eq!(
        gst.gst_buffers(),
        30,
        "GStreamer decoded 30 frames:\n{}",
        gst.stderr
    );

    let with_wrong = rtsp_url(&server, "/door").replacen("rtsp://", "rtsp://user:wrong@", 1);
    let refused = Tool::start(&mut ffmpeg_viewer(&with_wrong, 30, true)).finish(TOOL_LIMIT);
    assert!(
        !refused.status.success(),
        "ffmpeg with a wrong password fails:\n{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("401"),
        "…with a 401:\n{}",
        refused.stderr
    );
}

// ---------------------------------------------------------------------------
// The bytes of a viewer

/// Pins the order of `PLAY` (item 6's raw side) and the RTSP stats: the
/// answers are as announced (checked in [`RtspClient::play`]), the SDP
/// with the clip's size and, once the camera's rate is measured, its frame
/// rate; then the
/// first frame is an RTCP sender report on the RTCP channel, the first RTP
/// packet has `RTP-Info`'s `seq` and `rtptime`, and the stream opens with
/// SPS, PPS and an IDR and follows the clip without a jump. `/cam/door`
/// and `/` (the default camera) name the same camera: a second viewer on
/// `interleaved=2-3` gets its frames on channels 2 and 3 only, with the
/// same SSRC. `/state` and `/metrics` count both sessions and at least the
/// packets and bytes they read.
#[test]
fn play_sends_a_sender_report_then_the_gop_cache_from_the_rtp_info_point() {
    let clip = main_clip();
    let server = clip_server(&["door"], &[]);
    // The frame rate of an H.264 camera is measured: wait for one.
    let measured = wait_until(Duration::from_secs(30), || server.state_u64("fps_x100") > 0);
    assert!(
        measured,
        "the camera runs: {:?}\n{}",
        server.state().0,
        server.log()
    );
    let mut first = RtspClient::connect(rtsp_addr(&server));
    let playing = first.play(&rtsp_url(&server, "/cam/door"), (0, 1), &[]);
    let sdp_lines: Vec<&str> = playing.sdp.lines().collect();
    assert!(
        sdp_lines.contains(&format!("a=x-dimensions:{CLIP_WIDTH},{CLIP_HEIGHT}").as_str()),
        "the SDP has the clip's size:\n{}",
        playing.sdp
    );
    assert!(
        sdp_lines.iter().any(|l| l.starts_with("a=framerate:")),
        "the SDP has the frame rate:\n{}",
        playing.sdp
    );
    let mut received = Receiver::new(&playing, (0, 1));
    received.read_aus(&mut first, 2 * CLIP_GOP);
    assert_eq!(
        received.opening.first(),
        Some(&1),
        "the first frame after PLAY is on the RTCP channel (channels in order: {:?})",
        received.opening
    );
    assert!(received.sender_reports >= 1, "a sender report first");
    assert_eq!(
        received.first,
        Some((playing.seq, playing.rtptime)),
        "the first RTP packet is where RTP-Info said"
    );
    assert_opens_with_sps_pps_idr(&received.annexb, "the RTSP stream");
    let followed = clip
        .index
        .follow(&access_units(&received.annexb))
        .unwrap_or_else(|e| panic!("the RTSP stream is not the camera's: {e}"));
    assert!(
        followed.jumps.is_empty(),
        "a reading viewer is not moved ahead"
    );
    received.assert_clean();

    let mut second = RtspClient::connect(rtsp_addr(&server));
    let also = second.play(&rtsp_url(&server, "/"), (2, 3), &[]);
    assert_eq!(also.ssrc, playing.ssrc, "one RTP stream per camera");
    assert_ne!(also.session, playing.session, "a session per connection");
    let mut received_too = Receiver::new(&also, (2, 3));
    received_too.read_aus(&mut second, CLIP_GOP);
    received_too.assert_clean();
    received.read_aus(&mut first, 1);

    let state = server.state();
    assert_eq!(state.u64("rtsp_sessions"), 2, "{:?}", state.0);
    assert_eq!(state.u64("all_rtsp_sessions"), 2);
    assert_eq!(state.u64("rtsp_clients"), 2);
    let packets = received.rtp_packets + received_too.rtp_packets;
    let bytes = received.rtp_bytes + received_too.rtp_bytes;
    assert!(
        state.u64("rtsp_packets_sent") >= packets,
        "{packets} packets read: {:?}",
        state.0
    );
    assert!(
        state.u64("rtsp_bytes_sent") >= bytes,
        "{bytes} bytes read: {:?}",
        state.0
    );
    let metrics = server.metrics();
    assert_eq!(
        sample(&metrics, "camloop_clients{kind=\"rtsp\"}"),
        Some(2),
        "{metrics}"
    );
    assert_eq!(camera_sample(&metrics, "camloop_rtsp_sessions", "door"), 2);
    assert!(camera_sample(&metrics, "camloop_rtsp_packets_sent_total", "door") >= packets);
    assert!(camera_sample(&metrics, "camloop_rtsp_sent_bytes_total", "door") >= bytes);
    // The GOP caches went out whole and the following units too: their
    // send ages are in the two histograms, IDRs (and caches) apart.
    let count = |family: &str| sample(&metrics, &format!("{family}_count"));
    assert!(
        count("camloop_idr_send_age_seconds") >= Some(2),
        "{metrics}"
    );
    assert!(
        count("camloop_frame_send_age_seconds") >= Some(1),
        "{metrics}"
    );
}

/// Pins the skip-to-IDR rule over RTSP (item 5): a raw TCP viewer with a
/// small receive buffer stops reading until the camera's `frames_dropped`
/// grows, then reads again. Every `$` frame it reads is a whole RTP packet
/// (magic, channel 0 or 1, length; RTP version 2 with SETUP's SSRC on 0,
/// RTCP on 1); the sequence numbers jump only between whole AUs (the one
/// before the jump has its marker bit) and the AU after a jump is an IDR;
/// the AUs follow the clip and were moved ahead only onto IDRs, no more
/// than `frames_dropped` counts; and ffmpeg decodes them, as Annex-B, with
/// no `corrupt`, `error` or `concealing` line.
#[test]
fn a_viewer_that_stops_reading_gets_whole_packets_and_resumes_on_an_idr() {
    require_tool("ffmpeg", "it decodes the received stream");
    let clip = main_clip();
    // Neither the stall timeout nor the session timeout may close the
    // viewer that reads nothing: it must be skipped over instead.
    let server = clip_server(
        &["door"],
        &[
            "--stream-stall-timeout",
            "300",
            "--rtsp-session-timeout",
            "300",
        ],
    );
    let mut viewer = RtspClient::connect_with_receive_buffer(rtsp_addr(&server), 4096);
    let playing = viewer.play(&rtsp_url(&server, "/door"), (0, 1), &[]);
    let dropped_before = server.state_u64("frames_dropped");
    let mut received = Receiver::new(&playing, (0, 1));
    received.read_aus(&mut viewer, 1);

    let grew = wait_until(Duration::from_secs(30), || {
        server.state_u64("frames_dropped") > dropped_before
    });
    assert!(
        grew,
        "frames_dropped stayed {dropped_before} for 30 s while the viewer read nothing; \
         /state: {:?}\nserver log:\n{}",
        server.state().0,
        server.log()
    );

    // Read again: past the jump, and a whole GOP after the last one.
    let mut after_gap = 0;
    let mut gaps_seen = 0;
    received.read_until(
        &mut viewer,
        "a jump onto an IDR and a whole GOP after it",
        Duration::from_secs(60),
        |r| {
            if r.gaps != gaps_seen {
                gaps_seen = r.gaps;
                after_gap = r.aus;
            }
            r.gaps > 0 && r.aus - after_gap > CLIP_GOP
        },
    );
    received.assert_clean();
    let followed = clip
        .index
        .follow(&access_units(&received.annexb))
        .unwrap_or_else(|e| panic!("after falling behind: {e}"));
    assert!(
        !followed.jumps.is_empty(),
        "the AUs show where the viewer was moved ahead"
    );
    let dropped = server.state_u64("frames_dropped") - dropped_before;
    eprintln!(
        "received {} AUs in {} packets; {} gaps; moved ahead {:?}; at least {} skipped; \
         frames_dropped +{dropped}",
        received.aus, received.rtp_packets, received.gaps, followed.jumps, followed.skipped
    );
    assert!(
        followed.skipped as u64 <= dropped,
        "the viewer missed at least {} AUs ({:?}) but frames_dropped grew by {dropped}",
        followed.skipped,
        followed.jumps
    );

    let dir = TempDir::new("rtsp-behind");
    let complaints =
        h264_clip::decode_complaints(&save(dir.path(), "received.h264", &received.annexb));
    assert!(
        complaints.is_empty(),
        "ffmpeg found damaged pictures in what the viewer received: {complaints:?}"
    );
}

// ---------------------------------------------------------------------------
// Sessions, many viewers, failures, errors

/// Pins `TEARDOWN` (item 6): answered 200 with the request's `CSeq` (the
/// RTP frames queued before it are skipped over by the reader), after
/// which the camera's `rtsp_sessions` in `/state` drops to 0 while the
/// connection itself stays (`rtsp_clients` 1, and an `OPTIONS` on it is
/// still answered).
#[test]
fn teardown_is_answered_and_the_viewer_leaves_the_camera() {
    let server = clip_server(&["door"], &[]);
    let mut viewer = RtspClient::connect(rtsp_addr(&server));
    let url = rtsp_url(&server, "/door");
    let playing = viewer.play(&url, (0, 1), &[]);
    let mut received = Receiver::new(&playing, (0, 1));
    received.read_aus(&mut viewer, 5);
    assert_eq!(server.state_u64("rtsp_sessions"), 1);

    let torn = viewer.request(
        "TEARDOWN",
        &format!("{url}/"),
        &[("Session", &playing.session)],
    );
    assert_eq!(torn.status, 200, "{}", torn.head);
    let left = wait_until(Duration::from_secs(10), || {
        server.state_u64("rtsp_sessions") == 0
    });
    assert!(
        left,
        "rtsp_sessions drops after TEARDOWN: {:?}",
        server.state().0
    );
    assert_eq!(server.state_u64("rtsp_clients"), 1, "the connection stays");
    let options = viewer.request("OPTIONS", &url, &[]);
    assert_eq!(options.status, 200, "{}", options.head);
}

/// Pins many viewers (item 6): 20 ffmpeg viewers at once on one camera,
/// then 20 spread over two cameras (`-c copy`, 60 frames each, parallel
/// child processes), all exit 0 with their 60 frames; afterwards no
/// session is left, and the packets counted cover 60 AUs per viewer.
#[test]
fn twenty_ffmpeg_viewers_on_one_camera_and_on_two() {
    let server = clip_server(&["door", "yard"], &[]);
    let metrics_packets = |server: &Server| {
        let metrics = server.metrics();
        camera_sample(&metrics, "camloop_rtsp_packets_sent_total", "door")
            + camera_sample(&metrics, "camloop_rtsp_packets_sent_total", "yard")
    };
    for cameras in [&["door"][..], &["door", "yard"][..]] {
        let packets_before = metrics_packets(&server);
        let mut viewers: Vec<Tool> = (0..20)
            .map(|i| {
                let url = rtsp_url(&server, &format!("/{}", cameras[i % cameras.len()]));
                Tool::start(&mut ffmpeg_viewer(&url, 60, false))
            })
            .collect();
        for (i, viewer) in viewers.iter_mut().enumerate() {
            let done = viewer.finish(TOOL_LIMIT);
            done.assert_success(&server);
            assert_eq!(done.ffmpeg_frames(), 60, "viewer {i} of {cameras:?}");
        }
        let gone = wait_until(Duration::from_secs(20), || {
            server.state_u64("all_rtsp_sessions") == 0
        });
        assert!(gone, "no session is left: {:?}", server.state().0);
        let packets = metrics_packets(&server) - packets_before;
        assert!(
            packets >= 20 * 60,
            "{packets} packets for 20 viewers of 60 AUs ({cameras:?})"
        );
    }
}

/// Pins 503 (item 6): a camera with no source (`none`) and a camera whose
/// child never writes (`exec:sleep`, `camera-timeout = 2` in the config
/// file) answer `DESCRIBE` with 503, the latter once its camera timeout
/// has passed without an SPS and PPS; meanwhile a viewer of another camera
/// on the same server keeps receiving access units.
#[test]
fn a_failing_camera_answers_503_while_another_camera_plays() {
    let dir = TempDir::new("rtsp-503");
    let config = dir.path().join("camloop.toml");
    let replay = replay_camera(&main_clip().mkv, "h264");
    fs::write(
        &config,
        format!(
            "[[camera]]\nname = \"door\"\nsource = {replay:?}\ncamera-timeout = 30\n\n\
             [[camera]]\nname = \"mute\"\nsource = \"exec:sleep 60\"\ncamera-timeout = 2\n\n\
             [[camera]]\nname = \"empty\"\nsource = \"none\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let mut viewer = RtspClient::connect(rtsp_addr(&server));
    let playing = viewer.play(&rtsp_url(&server, "/door"), (0, 1), &[]);
    let mut received = Receiver::new(&playing, (0, 1));
    received.read_aus(&mut viewer, 5);

    for camera in ["empty", "mute"] {
        let mut client = RtspClient::connect(rtsp_addr(&server));
        let url = rtsp_url(&server, &format!("/{camera}"));
        let answer = client.request("DESCRIBE", &url, &[]);
        assert_eq!(
            answer.status,
            503,
            "DESCRIBE {url}:\n{}\n{}",
            answer.head,
            server.log()
        );
        received.read_aus(&mut viewer, 5);
    }
    received.read_aus(&mut viewer, CLIP_GOP);
    received.assert_clean();
}

/// Pins the error answers (item 6), each from a raw client, with a playing
/// viewer of the same server receiving access units after all of them: 400
/// without `CSeq` (then closed), 505 for RTSP/2.0 (then closed), 404 for an
/// unknown camera, 455 for `PLAY` before `SETUP`, 454 for a session that is
/// not the connection's, 461 for a multicast transport, 551 for `Require` (with
/// `Unsupported`), 405 for `ANNOUNCE` and `RECORD`, 501 for an unknown
/// method, 459 for `SETUP` and `PLAY` of another camera within a session;
/// the connection that got them is still answered; and a client frame over
/// 2048 bytes closes its connection with no answer.
#[test]
fn every_error_status_leaves_a_playing_viewer_unaffected() {
    // yard: a second camera to be refused (459), not to be played.
    let server = clip_server(&["door"], &["--camera", "yard=synthetic"]);
    let addr = rtsp_addr(&server);
    let door = rtsp_url(&server, "/door");
    let yard = rtsp_url(&server, "/yard");
    let mut viewer = RtspClient::connect(addr);
    let playing = viewer.play(&door, (0, 1), &[]);
    let mut received = Receiver::new(&playing, (0, 1));
    received.read_aus(&mut viewer, 5);

    // 400 without CSeq, and 505: answered, then closed.
    let mut client = RtspClient::connect(addr);
    client.send_raw(format!("OPTIONS {door} RTSP/1.0\r\n\r\n").as_bytes());
    let answer = client.read_response("the answer to a request without CSeq");
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert_eq!(answer.header("CSeq"), None, "no CSeq to echo");
    assert!(
        client.read_until_closed(READ_TIMEOUT).is_empty(),
        "closed after the 400"
    );
    let mut client = RtspClient::connect(addr);
    client.send_raw(format!("OPTIONS {door} RTSP/2.0\r\nCSeq: 7\r\n\r\n").as_bytes());
    let answer = client.read_response("the answer to RTSP/2.0");
    assert_eq!(answer.status, 505, "{}", answer.head);
    assert_eq!(answer.header("CSeq"), Some("7"));
    assert!(
        client.read_until_closed(READ_TIMEOUT).is_empty(),
        "closed after the 505"
    );

    // The rest on one connection, which stays open.
    let mut client = RtspClient::connect(addr);
    let expect = |client: &mut RtspClient,
                  status: u16,
                  method: &str,
                  url: &str,
                  headers: &[(&str, &str)]| {
        let answer = client.request(method, url, headers);
        assert_eq!(
            answer.status, status,
            "{method} {url} {headers:?}:\n{}",
            answer.head
        );
        answer
    };
    let nosuch = rtsp_url(&server, "/nosuch");
    expect(&mut client, 404, "DESCRIBE", &nosuch, &[]);
    expect(
        &mut client,
        404,
        "DESCRIBE",
        &rtsp_url(&server, "/a/b/c"),
        &[],
    );
    expect(&mut client, 455, "PLAY", &door, &[]);
    expect(
        &mut client,
        454,
        "GET_PARAMETER",
        &door,
        &[("Session", "0123456789ABCDEF")],
    );
    let multicast = "RTP/AVP;multicast;client_port=5000-5001";
    expect(
        &mut client,
        461,
        "SETUP",
        &format!("{door}/trackID=0"),
        &[("Transport", multicast)],
    );
    let answer = expect(
        &mut client,
        551,
        "OPTIONS",
        &door,
        &[("Require", "play.basic")],
    );
    assert_eq!(
        answer.header("Unsupported"),
        Some("play.basic"),
        "{}",
        answer.head
    );
    expect(&mut client, 405, "ANNOUNCE", &door, &[]);
    expect(&mut client, 405, "RECORD", &door, &[]);
    expect(&mut client, 501, "FLY", &door, &[]);
    let tcp = "RTP/AVP/TCP;unicast;interleaved=0-1";
    let setup = expect(
        &mut client,
        200,
        "SETUP",
        &format!("{door}/trackID=0"),
        &[("Transport", tcp)],
    );
    let session = setup
        .expect_header("Session")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let with_session = [("Transport", tcp), ("Session", session.as_str())];
    expect(
        &mut client,
        459,
        "SETUP",
        &format!("{yard}/trackID=0"),
        &with_session,
    );
    expect(
        &mut client,
        459,
        "PLAY",
        &format!("{yard}/"),
        &[("Session", &session)],
    );
    expect(
        &mut client,
        454,
        "PLAY",
        &format!("{door}/"),
        &[("Session", &playing.session)],
    );
    expect(&mut client, 200, "OPTIONS", &door, &[("Session", &session)]);

    // An oversize frame from a playing client: closed, no answer.
    let mut big = RtspClient::connect(addr);
    big.play(&door, (0, 1), &[]);
    let mut frame = vec![b'$', 1];
    frame.extend_from_slice(&2049u16.to_be_bytes());
    frame.resize(4 + 2049, 0x80);
    big.send_raw(&frame);
    let rest = big.read_until_closed(Duration::from_secs(30));
    assert!(
        !rest.starts_with(b"RTSP/"),
        "no answer to an oversize frame: {:?}",
        String::from_utf8_lossy(&rest[..rest.len().min(200)])
    );

    // The viewer went on through all of it.
    let before = received.aus;
    received.read_aus(&mut viewer, 2 * CLIP_GOP);
    assert!(received.aus >= before + 2 * CLIP_GOP);
    received.assert_clean();
    let followed = clip_follow(&received.annexb);
    eprintln!("viewer: {} AUs, jumps {:?}", received.aus, followed);
}

/// How the AUs of `annexb` follow the main clip (panics if they do not).
fn clip_follow(annexb: &[u8]) -> Vec<h264_clip::Jump> {
    main_clip()
        .index
        .follow(&access_units(annexb))
        .unwrap_or_else(|e| panic!("not the camera's stream: {e}"))
        .jumps
}

// ---------------------------------------------------------------------------
// RTSP over UDP (issue 29, part 4)

/// A viewer's two UDP ports on 127.0.0.1, as a raw client's.
struct UdpPorts {
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
}

impl UdpPorts {
    fn bind() -> UdpPorts {
        let bind = || {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
            socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
            socket
        };
        UdpPorts {
            rtp: bind(),
            rtcp: bind(),
        }
    }

    fn ports(&self) -> (u16, u16) {
        let port = |socket: &std::net::UdpSocket| socket.local_addr().unwrap().port();
        (port(&self.rtp), port(&self.rtcp))
    }

    /// The next RTP datagram and where it came from; `None` once nothing
    /// came for `READ_TIMEOUT`.
    fn next_rtp(&self) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 2048];
        let (length, from) = self.rtp.recv_from(&mut buf).ok()?;
        buf.truncate(length);
        Some((buf, from))
    }
}

/// A raw viewer over UDP: its two ports, its RTSP connection and the
/// answer to its `SETUP`.
struct UdpViewer {
    ports: UdpPorts,
    client: RtspClient,
    setup: RtspResponse,
}

/// DESCRIBE and SETUP of camera `door` of `server` with the `transport`
/// offer (`{rtp}` and `{rtcp}` replaced by the viewer's own ports), which
/// must be answered 200, then PLAY.
fn play_door_over_udp(server: &Server, transport: &str) -> UdpViewer {
    let url = rtsp_url(server, "/door");
    let ports = UdpPorts::bind();
    let mut client = RtspClient::connect(rtsp_addr(server));
    let describe = client.request("DESCRIBE", &url, &[]);
    assert_eq!(describe.status, 200, "{}", describe.head);
    let (rtp, rtcp) = ports.ports();
    let offer = transport
        .replace("{rtp}", &rtp.to_string())
        .replace("{rtcp}", &rtcp.to_string());
    let track = format!("{url}/trackID=0");
    let setup = client.request("SETUP", &track, &[("Transport", &offer)]);
    assert_eq!(setup.status, 200, "{}", setup.head);
    let session = setup
        .expect_header("Session")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let play = client.request("PLAY", &url, &[("Session", &session)]);
    assert_eq!(play.status, 200, "{}", play.head);
    UdpViewer {
        ports,
        client,
        setup,
    }
}

/// The `server_port=a-b` of a UDP `Transport` answer.
fn server_ports(setup: &RtspResponse) -> (u16, u16) {
    let transport = setup.expect_header("Transport");
    transport
        .split(';')
        .find_map(|parameter| parameter.strip_prefix("server_port="))
        .and_then(|ports| ports.split_once('-'))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .unwrap_or_else(|| panic!("server_port=A-B in {transport:?}"))
}

/// Pins issue 29's first test: ffmpeg (`-rtsp_transport udp -buffer_size
/// 4M`, which allows nothing but UDP) and GStreamer (`protocols=udp`) both
/// decode 90 pictures of the camera with exit 0 and no complaint, while
/// the server counts them as UDP sessions.
#[test]
fn ffmpeg_and_gstreamer_decode_a_camera_over_udp() {
    let server = clip_server(&["door"], &[]);
    let url = rtsp_url(&server, "/door");
    let mut ffmpeg = Tool::start(&mut ffmpeg_viewer_over("udp", &url, 90, true));
    let mut gst = Tool::start(&mut gst_viewer_over("udp", &url, &[], true, 90));
    let both_over_udp = wait_until(Duration::from_secs(60), || {
        server.state_u64("rtsp_udp_sessions") == 2 || !ffmpeg.is_running() || !gst.is_running()
    });
    assert!(both_over_udp, "{:?}", server.state().0);
    let ffmpeg = ffmpeg.finish(TOOL_LIMIT);
    ffmpeg.assert_success(&server);
    assert_eq!(ffmpeg.complaints(), Vec::<String>::new());
    assert!(
        ffmpeg.ffmpeg_frames() >= 90,
        "ffmpeg decoded {}",
        ffmpeg.ffmpeg_frames()
    );
    let gst = gst.finish(TOOL_LIMIT);
    gst.assert_success(&server);
    assert_eq!(gst.gst_buffers(), 90, "GStreamer decoded all its buffers");
    let metrics = server.metrics();
    assert!(camera_sample(&metrics, "camloop_rtsp_packets_sent_total", "door") > 0);
}

/// Pins "a UDP session stays alive on its receiver reports and is closed
/// without them", with ffmpeg's spelling `RTP/AVP/UDP`: a raw client that
/// sends no request after PLAY, only RTCP receiver reports to the server's
/// RTCP port, keeps receiving for three session timeouts; once it stops
/// sending them the server closes its connection, and no datagram comes
/// any more. Its first access unit is an IDR (UDP viewers start there).
#[test]
fn a_udp_session_lives_on_its_receiver_reports_and_ends_without_them() {
    const TIMEOUT_S: u64 = 2;
    let server = clip_server(&["door"], &["--rtsp-session-timeout", "2"]);
    let UdpViewer {
        ports,
        mut client,
        setup,
    } = play_door_over_udp(&server, "RTP/AVP/UDP;unicast;client_port={rtp}-{rtcp}");
    let (_, server_rtcp) = server_ports(&setup);
    let requests_after_play = server.state_u64("requests");

    let mut depacketizer = Depacketizer::new();
    let mut first_keyframe = None;
    let mut aus = 0;
    let report = camloop::rtsp::rtcp::receiver_report(0x5EED, "udp-test");
    let until = Instant::now() + Duration::from_secs(3 * TIMEOUT_S);
    let mut next_report = Instant::now();
    while Instant::now() < until {
        if Instant::now() >= next_report {
            ports
                .rtcp
                .send_to(&report, ("127.0.0.1", server_rtcp))
                .expect("send a receiver report");
            next_report += Duration::from_millis(500);
        }
        let (packet, from) = ports.next_rtp().expect("RTP keeps coming while RTCP goes");
        assert_eq!(from.ip().to_string(), "127.0.0.1");
        for au in depacketizer.push(&packet) {
            first_keyframe.get_or_insert(au.keyframe);
            aus += 1;
        }
    }
    assert_eq!(first_keyframe, Some(true), "a UDP viewer starts at an IDR");
    assert!(aus > 0);
    // `requests` counts HTTP requests too: the one `/state` read between.
    assert_eq!(
        server.state_u64("requests"),
        requests_after_play + 1,
        "only RTCP kept the session: no RTSP request was sent"
    );
    assert_eq!(server.state_u64("rtsp_udp_sessions"), 1);

    // No more receiver reports: the server gives the session up.
    let closed = client.read_until_closed(Duration::from_secs(60));
    assert!(closed.len() < 1 << 20, "nothing much on the TCP connection");
    let gone = wait_until(Duration::from_secs(30), || {
        server.state_u64("rtsp_udp_sessions") == 0
    });
    assert!(gone, "{:?}", server.state().0);
    // Drain what was in flight, then nothing comes any more.
    let mut buf = [0u8; 2048];
    ports
        .rtp
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while ports.rtp.recv_from(&mut buf).is_ok() {}
    ports
        .rtp
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(
        ports.rtp.recv_from(&mut buf).is_err(),
        "no datagram after the session ended"
    );
    assert!(server.log().contains("session closed"), "{}", server.log());
}

/// Pins "a client port below 1024 is refused" and that alternatives are
/// tried in order: UDP to port 554 alone is 461; the same followed by a
/// TCP alternative gets the TCP one.
#[test]
fn a_client_port_below_1024_is_refused_and_the_next_alternative_taken() {
    let server = clip_server(&["door"], &[]);
    let url = rtsp_url(&server, "/door");
    let mut client = RtspClient::connect(rtsp_addr(&server));
    let low = "RTP/AVP;unicast;client_port=554-555";
    let setup = client.request("SETUP", &format!("{url}/trackID=0"), &[("Transport", low)]);
    assert_eq!(setup.status, 461, "{}", setup.head);
    let both = format!("{low},RTP/AVP/TCP;unicast;interleaved=0-1");
    let setup = client.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &[("Transport", &both)],
    );
    assert_eq!(setup.status, 200, "{}", setup.head);
    let transport = setup.expect_header("Transport");
    assert!(
        transport.starts_with("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc="),
        "{transport}"
    );
}

/// Pins "a `destination=` elsewhere is ignored (packets go to the peer)":
/// a SETUP asking for packets at 10.9.8.7 gets 200 without a destination,
/// and the packets arrive at the client's own ports on 127.0.0.1, from
/// the server's RTP port.
#[test]
fn a_destination_elsewhere_is_ignored_and_packets_go_to_the_peer() {
    let server = clip_server(&["door"], &[]);
    // The connection is kept: closing it would end the session.
    let UdpViewer {
        ports,
        setup,
        client: _session,
    } = play_door_over_udp(
        &server,
        "RTP/AVP;unicast;destination=10.9.8.7;client_port={rtp}-{rtcp}",
    );
    let transport = setup.expect_header("Transport");
    assert!(!transport.contains("destination"), "{transport}");
    let (rtp, rtcp) = ports.ports();
    assert!(
        transport.starts_with(&format!(
            "RTP/AVP;unicast;client_port={rtp}-{rtcp};server_port="
        )),
        "{transport}"
    );
    let (server_rtp, _) = server_ports(&setup);
    let (packet, from) = ports
        .next_rtp()
        .expect("a packet at the peer's own address");
    assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], server_rtp)));
    assert!(parse_rtp(&packet).is_some(), "an RTP packet");
}

/// Pins "counted in `--max-clients`": with two clients allowed, two RTSP
/// connections are served and a third is answered `503` and closed; the
/// refusal is counted, and a freed slot serves again.
#[test]
fn rtsp_connections_count_in_max_clients() {
    let server = clip_server(&["door"], &["--max-clients", "2"]);
    let url = rtsp_url(&server, "/door");
    let mut first = RtspClient::connect(rtsp_addr(&server));
    assert_eq!(first.request("OPTIONS", &url, &[]).status, 200);
    let mut second = RtspClient::connect(rtsp_addr(&server));
    assert_eq!(second.request("OPTIONS", &url, &[]).status, 200);
    let mut third = RtspClient::connect(rtsp_addr(&server));
    let refusal = third.read_until_closed(READ_TIMEOUT);
    assert_eq!(
        String::from_utf8_lossy(&refusal),
        "RTSP/1.0 503 Service Unavailable\r\n\r\n"
    );
    drop(second);
    // The server notices the close in its own time: ask until a slot is free.
    let served_again = wait_until(Duration::from_secs(30), || {
        let mut stream = TcpStream::connect(rtsp_addr(&server)).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let options = format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        // A refused connection may be closed before the request is written.
        let _ = stream.write_all(options.as_bytes());
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).is_ok() && &answer == b"RTSP/1.0 200"
    });
    assert!(served_again, "a freed slot serves an RTSP client again");
    drop(first);
    // The closes above are noticed in the server's own time: until then
    // the /state request itself may be the client over the limit (503).
    let refused = wait_until(Duration::from_secs(30), || {
        let reply = server.get("/state");
        reply.status == 200 && reply.json().u64("connections_refused") >= 1
    });
    assert!(refused, "{:?}", server.state().0);
}
