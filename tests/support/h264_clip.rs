//! H.264 test material and the test's own reading of it: clips encoded once
//! per test run, the `exec:` camera that replays one, a `/stream.h264`
//! viewer, a small Annex-B reader that is independent of the server's, and
//! ffprobe/ffmpeg as the judges of "decodes cleanly".
//!
//! The clips are encoded once (a `OnceLock` each) and then replayed with
//! `ffmpeg -re -stream_loop -1 … -c copy`, so the test machine's cores are
//! not spent encoding while a test runs. They are Matroska files because
//! ffmpeg 5.1 cannot loop a raw `.h264` file (its raw demuxer refuses the
//! seek back to the start); the replaying ffmpeg turns them back into
//! Annex-B (`-f h264`), putting the SPS and PPS before every IDR.
//!
//! **How the tests know what a viewer received.** The replayed bytes are
//! exactly the clip's, loop after loop, so every access unit (AU) a viewer
//! gets can be found in the clip by its slice bytes ([`ClipIndex`]). A
//! viewer's AUs must then follow the clip in order, one after the other,
//! and may jump only *onto an IDR* — that is the skip-to-IDR rule, checked
//! on the bytes rather than inferred from a decoder's silence. An AU that is
//! not in the clip at all was cut short or altered.
//!
//! Include it from an integration test with
//!
//! ```ignore
//! #[path = "support/h264_clip.rs"]
//! mod h264_clip;
//! ```

#![allow(dead_code)] // each test crate uses a different part of this file

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Size, rate and keyframe interval of the main clip: a 720p camera at
/// 30 fps with an IDR every second.
pub const CLIP_WIDTH: u32 = 1280;
pub const CLIP_HEIGHT: u32 = 720;
pub const CLIP_FPS: u32 = 30;
pub const CLIP_GOP: usize = 30;

/// How long a viewer's read may block before the test gives up on the
/// server. Hang protection only: a 30 fps camera sends every 33 ms.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Tools

/// Panics, saying why and how to get it, unless `tool` is an executable on
/// `PATH`. A test that needs a tool fails without it: it is never skipped.
pub fn require_tool(tool: &str, why: &str) {
    use std::os::unix::fs::PermissionsExt;
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    assert!(
        found,
        "{tool} is needed ({why}) but is not on PATH; `scripts/setup.sh test` installs it"
    );
}

/// Runs a command to completion and returns its output; panics with its
/// stderr if it cannot start or fails.
pub fn run(command: &mut Command) -> std::process::Output {
    let shown = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

// ---------------------------------------------------------------------------
// Clips

/// The directory the clips of this test run live in:
/// `$TMPDIR/camloop-h264-clips-<pid>`. Statics are never dropped, so a run
/// cannot remove its own; it removes those of earlier runs whose process is
/// gone instead.
fn clip_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let prefix = "camloop-h264-clips-";
        let temp = std::env::temp_dir();
        if let Ok(entries) = fs::read_dir(&temp) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix(prefix) else {
                    continue;
                };
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = temp.join(format!("{prefix}{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create the clip directory");
        dir
    })
}

/// Encodes `seconds` of ffmpeg's `testsrc2` at `size` and 30 fps into
/// `name.mkv` in the clip directory, with the encoder options `codec`
/// (words separated by spaces).
fn encode(name: &str, size: &str, seconds: u32, codec: &str) -> PathBuf {
    require_tool("ffmpeg", "it encodes the test clips and replays them");
    let path = clip_dir().join(format!("{name}.mkv"));
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate={CLIP_FPS}"))
        .args(["-t", &seconds.to_string()])
        .args(codec.split_whitespace())
        .arg(&path));
    path
}

/// The main clip: 4 s of 1280x720 at 30 fps, H.264 as a low-latency camera
/// encodes it (`-preset ultrafast -tune zerolatency`: no B-frames, and a
/// picture in several slices when x264 has several threads), an IDR every
/// 30 frames, 2 Mbit/s.
pub struct MainClip {
    /// The Matroska file the `exec:` camera replays.
    pub mkv: PathBuf,
    /// One loop of it as the Annex-B bytes the replaying ffmpeg writes
    /// (SPS and PPS before every IDR): what the RTSP server serves, and
    /// what [`ClipIndex`] finds a viewer's AUs in.
    pub annexb: PathBuf,
    /// The access units of `annexb`, by their slices.
    pub index: ClipIndex,
}

/// The main clip, made on first use.
pub fn main_clip() -> &'static MainClip {
    static CLIP: OnceLock<MainClip> = OnceLock::new();
    CLIP.get_or_init(|| {
        let mkv = encode(
            "main",
            &format!("{CLIP_WIDTH}x{CLIP_HEIGHT}"),
            4,
            "-c:v libx264 -preset ultrafast -tune zerolatency -g 30 -b:v 2M",
        );
        let annexb = clip_dir().join("main.h264");
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(&mkv)
            .args(["-c", "copy", "-f", "h264"])
            .arg(&annexb));
        let index = ClipIndex::new(&fs::read(&annexb).expect("read the Annex-B clip"));
        MainClip { mkv, annexb, index }
    })
}

/// A clip with B-frames: x264's high profile at `-preset fast` with
/// `-bf 2` and without `-tune zerolatency`, so frames are reordered (the
/// SPS says so in its VUI, `max_num_reorder_frames` > 0).
pub fn bframes_clip() -> &'static Path {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        encode(
            "bframes",
            "640x360",
            2,
            "-c:v libx264 -preset fast -profile:v high -bf 2 -g 30 -b:v 1M",
        )
    })
}

/// An H.265 clip (libx265, which Debian's ffmpeg has; checked first, so a
/// build without it fails with that reason).
pub fn hevc_clip() -> &'static Path {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        require_tool("ffmpeg", "it encodes the test clips and replays them");
        let encoders = run(Command::new("ffmpeg").args(["-hide_banner", "-encoders"]));
        assert!(
            String::from_utf8_lossy(&encoders.stdout).contains("libx265"),
            "ffmpeg has no libx265 encoder, needed for the H.265 clip (Debian's ffmpeg has it)"
        );
        encode(
            "hevc",
            "640x360",
            2,
            "-c:v libx265 -preset ultrafast -x265-params log-level=error -g 30 -b:v 1M",
        )
    })
}

/// The `exec:` camera that replays `clip` forever in real time without
/// re-encoding, writing Annex-B (`format` is `h264` or `hevc`) to stdout.
pub fn replay_camera(clip: &Path, format: &str) -> String {
    format!(
        "exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i {} -c copy -f {format} -",
        clip.display()
    )
}

// ---------------------------------------------------------------------------
// Annex-B, read by the test itself

/// One NAL unit found in a byte stream.
#[derive(Debug, Clone, Copy)]
pub struct Nal<'a> {
    /// Offset of its start code (the `00 00 01`, or the zero before it).
    pub start: usize,
    /// The NAL unit from its header byte on, trailing zero bytes removed.
    pub data: &'a [u8],
}

impl Nal<'_> {
    /// `nal_unit_type`: 1 slice, 5 IDR slice, 6 SEI, 7 SPS, 8 PPS, 9 AUD.
    pub fn kind(&self) -> u8 {
        self.data[0] & 0x1F
    }

    /// A slice of a picture (types 1 to 5).
    pub fn is_vcl(&self) -> bool {
        (1..=5).contains(&self.kind())
    }

    /// A slice whose `first_mb_in_slice` is 0, the first of its picture:
    /// that ue(v) is 0 exactly when its first bit is 1.
    pub fn is_first_slice(&self) -> bool {
        self.is_vcl() && self.data.get(1).is_some_and(|b| b & 0x80 != 0)
    }
}

/// Every NAL unit of `bytes`, split at `00 00 01` start codes (a 4-byte
/// start code's leading zero is a trailing zero of the NAL before it).
/// Empty NAL units are left out. The last one may be incomplete.
pub fn nal_units(bytes: &[u8]) -> Vec<Nal<'_>> {
    let mut codes = Vec::new(); // (offset of the start code, offset of the NAL)
    let mut i = 0;
    while i + 3 <= bytes.len() {
        if bytes[i] == 0 && bytes[i + 1] == 0 && bytes[i + 2] == 1 {
            let start = if i > 0 && bytes[i - 1] == 0 { i - 1 } else { i };
            codes.push((start, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &(start, begin)) in codes.iter().enumerate() {
        let end = codes.get(k + 1).map_or(bytes.len(), |&(next, _)| next);
        let mut data = &bytes[begin..end.max(begin)];
        while let [rest @ .., 0] = data {
            data = rest;
        }
        if !data.is_empty() {
            nals.push(Nal { start, data });
        }
    }
    nals
}

/// One access unit: the NAL units of one picture and what precedes it.
#[derive(Debug, Clone)]
pub struct AccessUnit<'a> {
    /// Offset of its first start code in the stream.
    pub start: usize,
    pub nals: Vec<Nal<'a>>,
}

impl AccessUnit<'_> {
    /// Carries an IDR slice.
    pub fn is_idr(&self) -> bool {
        self.nals.iter().any(|n| n.kind() == 5)
    }

    /// Its NAL unit types in order, for messages.
    pub fn kinds(&self) -> Vec<u8> {
        self.nals.iter().map(Nal::kind).collect()
    }

    /// Its slices, concatenated: what identifies the picture, whatever
    /// parameter sets, SEI or delimiters travel with it.
    pub fn slice_bytes(&self) -> Vec<u8> {
        self.nals
            .iter()
            .filter(|n| n.is_vcl())
            .flat_map(|n| n.data.iter().copied())
            .collect()
    }
}

/// The access units of `bytes`, split where H.264 §7.4.1.2.3 starts a new
/// one, as far as an x264 stream needs: at an access unit delimiter; at an
/// SEI, SPS, PPS or type 14–18 after a slice; at a slice with
/// `first_mb_in_slice` 0 after a slice. Independent of the server's
/// splitter on purpose. The last AU may be incomplete.
pub fn access_units(bytes: &[u8]) -> Vec<AccessUnit<'_>> {
    let mut units: Vec<AccessUnit> = Vec::new();
    let mut current: Vec<Nal> = Vec::new();
    let mut has_slice = false;
    for nal in nal_units(bytes) {
        let kind = nal.kind();
        let starts_next = kind == 9
            || (has_slice && matches!(kind, 6 | 7 | 8 | 14..=18))
            || (has_slice && nal.is_first_slice());
        if starts_next && !current.is_empty() {
            units.push(AccessUnit {
                start: current[0].start,
                nals: std::mem::take(&mut current),
            });
            has_slice = false;
        }
        has_slice |= nal.is_vcl();
        current.push(nal);
    }
    if !current.is_empty() {
        units.push(AccessUnit {
            start: current[0].start,
            nals: current,
        });
    }
    units
}

/// `bytes` without its last access unit, which a viewer that stopped
/// reading anywhere may hold only part of: whole AUs only, for a decoder.
pub fn whole_access_units(bytes: &[u8]) -> &[u8] {
    match access_units(bytes).last() {
        Some(last) => &bytes[..last.start],
        None => &[],
    }
}

/// The NAL unit types before the first slice, and the first slice's type:
/// what a decoder meets first.
pub fn stream_opening(bytes: &[u8]) -> (Vec<u8>, Option<u8>) {
    let nals = nal_units(bytes);
    let first_slice = nals.iter().position(Nal::is_vcl);
    let before = nals[..first_slice.unwrap_or(nals.len())]
        .iter()
        .map(Nal::kind)
        .collect();
    (before, first_slice.map(|i| nals[i].kind()))
}

/// Asserts the opening of a stream: nothing but AUDs, SEI and parameter
/// sets before the first slice, the SPS first among them and the PPS after
/// it, and the first slice an IDR's. That is what lets a decoder show the
/// very first picture.
pub fn assert_opens_with_sps_pps_idr(bytes: &[u8], what: &str) {
    let (before, first_slice) = stream_opening(bytes);
    let parameter_sets: Vec<u8> = before
        .iter()
        .copied()
        .filter(|&k| k != 9 && k != 6)
        .collect();
    assert!(
        before.iter().all(|k| matches!(k, 6..=9)) && parameter_sets.starts_with(&[7, 8]),
        "{what} must open with SPS (7) then PPS (8), AUD (9) and SEI (6) aside; \
         NAL types before the first slice: {before:?}"
    );
    assert_eq!(
        first_slice,
        Some(5),
        "{what}: the first slice is an IDR's (NAL type 5); before it: {before:?}"
    );
}

/// The access units of a clip, found by their slices.
pub struct ClipIndex {
    by_slices: HashMap<Vec<u8>, usize>,
    idr: Vec<bool>,
}

/// A place where a viewer was moved ahead in the clip.
#[derive(Debug, Clone, Copy)]
pub struct Jump {
    /// The index, in the received stream, of the AU after the jump.
    pub at: usize,
    /// The clip index of the AU before it, and of the AU after it (an IDR).
    pub from: usize,
    pub to: usize,
}

/// How a viewer's access units follow the clip.
#[derive(Debug, Default)]
pub struct Followed {
    /// The clip index of each AU received, in order.
    pub positions: Vec<usize>,
    /// Each place the viewer was moved ahead.
    pub jumps: Vec<Jump>,
    /// AUs passed over at those jumps: a lower bound, since a jump of a
    /// whole loop or more cannot be seen.
    pub skipped: usize,
}

impl ClipIndex {
    /// Indexes every access unit of one loop of a clip (complete bytes).
    pub fn new(clip: &[u8]) -> ClipIndex {
        let units = access_units(clip);
        let mut by_slices = HashMap::new();
        for (i, unit) in units.iter().enumerate() {
            let previous = by_slices.insert(unit.slice_bytes(), i);
            assert!(
                previous.is_none(),
                "clip AUs {previous:?} and {i} are the same picture"
            );
        }
        ClipIndex {
            by_slices,
            idr: units.iter().map(AccessUnit::is_idr).collect(),
        }
    }

    /// Access units in one loop of the clip.
    pub fn len(&self) -> usize {
        self.idr.len()
    }

    /// Checks that `units` are whole AUs of the clip, the first one an IDR,
    /// each the clip's next (looping) or else an IDR: a viewer may be moved
    /// ahead, but only onto a keyframe. Err says which AU broke that.
    pub fn follow(&self, units: &[AccessUnit]) -> Result<Followed, String> {
        let mut followed = Followed::default();
        for (k, unit) in units.iter().enumerate() {
            let Some(&position) = self.by_slices.get(&unit.slice_bytes()) else {
                return Err(format!(
                    "AU #{k} of the stream (byte {}, NAL types {:?}, {} slice bytes) is no \
                     access unit of the clip: cut short or altered",
                    unit.start,
                    unit.kinds(),
                    unit.slice_bytes().len()
                ));
            };
            match followed.positions.last() {
                None if !self.idr[position] => {
                    return Err(format!(
                        "the stream starts with clip AU {position}, which is not an IDR"
                    ));
                }
                Some(&before) if position != (before + 1) % self.len() => {
                    if !self.idr[position] {
                        return Err(format!(
                            "AU #{k} of the stream: after clip AU {before} came clip AU \
                             {position}, a P-frame: the viewer was moved ahead onto a \
                             picture that needs the ones it skipped"
                        ));
                    }
                    followed.jumps.push(Jump {
                        at: k,
                        from: before,
                        to: position,
                    });
                    followed.skipped += (position + self.len() - before - 1) % self.len();
                }
                _ => {}
            }
            followed.positions.push(position);
        }
        Ok(followed)
    }
}

// ---------------------------------------------------------------------------
// A /stream.h264 viewer

/// A `GET /stream.h264` (or `/cam/NAME/stream.h264`) being read.
pub struct H264Viewer {
    stream: TcpStream,
    /// The response head's header fields, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Every body byte received so far.
    pub received: Vec<u8>,
}

impl H264Viewer {
    /// Connects to `http`, asks for `path` and checks the head: `200 OK`
    /// and `Content-Type: video/h264`. With `receive_buffer`, the socket's
    /// kernel receive buffer is set that small before connecting, so a
    /// viewer that stops reading blocks the server soon.
    pub fn open(http: SocketAddr, path: &str, receive_buffer: Option<usize>) -> H264Viewer {
        let stream = match receive_buffer {
            None => TcpStream::connect(http).expect("connect to the HTTP port"),
            Some(size) => {
                use socket2::{Domain, Protocol, Socket, Type};
                let socket =
                    Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("a socket");
                socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
                socket
                    .connect(&http.into())
                    .expect("connect to the HTTP port");
                socket.into()
            }
        };
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        (&stream)
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .expect("send the request");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            (&stream)
                .read_exact(&mut byte)
                .unwrap_or_else(|e| panic!("reading the head of {path}: {e}; so far {head:?}"));
            head.push(byte[0]);
            assert!(head.len() < 8192, "no end of the head of {path}");
        }
        let head = String::from_utf8(head).expect("a UTF-8 head");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        assert_eq!(
            status, "HTTP/1.1 200 OK",
            "GET {path}: the whole head:\n{head}"
        );
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, value) = l.split_once(':').expect("a header line");
                (name.to_ascii_lowercase(), value.trim().to_string())
            })
            .collect();
        let viewer = H264Viewer {
            stream,
            headers,
            received: Vec::new(),
        };
        assert_eq!(
            viewer.header("content-type"),
            Some("video/h264"),
            "GET {path}: {head}"
        );
        viewer
    }

    /// The first value of a header field.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads until `done(received so far)` holds; panics, with `what` and
    /// how much came, if the server closes, a read blocks for
    /// [`READ_TIMEOUT`] or `limit` passes first (hang protection).
    pub fn read_until(&mut self, what: &str, limit: Duration, mut done: impl FnMut(&[u8]) -> bool) {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 64 * 1024];
        while !done(&self.received) {
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what}; received {} bytes",
                self.received.len()
            );
            match self.stream.read(&mut buf) {
                Ok(0) => panic!(
                    "the server closed the stream before {what} ({} bytes received)",
                    self.received.len()
                ),
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "reading the stream for {what}: {e} ({} bytes received)",
                    self.received.len()
                ),
            }
        }
    }

    /// Reads until at least `count` whole access units have arrived (the
    /// one being received when it stops does not count).
    pub fn read_access_units(&mut self, count: usize) {
        self.read_until(
            &format!("{count} access units"),
            Duration::from_secs(60),
            |bytes| access_units(bytes).len() > count,
        );
    }
}

// ---------------------------------------------------------------------------
// ffprobe and ffmpeg, the judges

/// What `ffprobe -count_frames` says about a stream.
#[derive(Debug)]
pub struct Probe {
    pub width: u32,
    pub height: u32,
    /// Frames it decoded.
    pub frames: u64,
    /// Its lines at `-v warning` that say `corrupt` or `error`.
    pub complaints: Vec<String>,
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn save(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).expect("save the received stream");
    path
}

/// Runs `ffprobe -v warning -count_frames` on a raw H.264 file.
pub fn probe(file: &Path) -> Probe {
    require_tool("ffprobe", "it judges the received stream");
    let output = run(Command::new("ffprobe")
        .args(["-v", "warning", "-f", "h264", "-count_frames"])
        .args(["-show_entries", "stream=width,height,nb_read_frames"])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(file));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let field = |key: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("ffprobe printed no {key}: {stdout}"))
    };
    Probe {
        width: field("width") as u32,
        height: field("height") as u32,
        frames: field("nb_read_frames"),
        complaints: complaints(&output.stderr, &["corrupt", "error"]),
    }
}

/// Decodes a raw H.264 file completely with `ffmpeg -v warning … -f null`
/// and returns its lines that say a picture was damaged: `corrupt decoded
/// frame`, `error`, `concealing` (none for a clean stream).
pub fn decode_complaints(file: &Path) -> Vec<String> {
    require_tool("ffmpeg", "it decodes the received stream");
    let output = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "warning", "-f", "h264", "-i"])
        .arg(file)
        .args(["-f", "null", "-"]));
    complaints(&output.stderr, &["corrupt", "error", "concealing"])
}

fn complaints(stderr: &[u8], words: &[&str]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|line| {
            let line = line.to_ascii_lowercase();
            words.iter().any(|w| line.contains(w))
        })
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Processes

/// The command line of every live descendant of `pid` (children, their
/// children, …), from /proc: (pid, argv).
pub fn descendants(pid: u32) -> Vec<(u32, Vec<String>)> {
    let mut parents = HashMap::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The fields after `(comm)`: state, ppid, …
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut fields = stat[close + 2..].split(' ');
        let state = fields.next();
        if let Some(ppid) = fields.next().and_then(|p| p.parse::<u32>().ok()) {
            if state != Some("Z") {
                parents.insert(child, ppid);
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (&child, &ppid) in &parents {
            if ppid == parent {
                frontier.push(child);
                let argv = fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
                let argv = argv
                    .split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                found.push((child, argv));
            }
        }
    }
    found
}

/// A running `benches/reference/rtsp_reference.py` (gst-rtsp-server, the
/// RTSP benchmark's yardstick) serving the main clip, stopped on drop.
pub struct RtspServer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// `rtsp://127.0.0.1:PORT/clip`.
    pub url: String,
}

impl RtspServer {
    /// Starts GStreamer's RTSP server on a kernel-chosen loopback port,
    /// through Debian's `/usr/bin/python3` (the one with `gi`), and waits
    /// for its `ready URL` line. Panics with its stderr if it cannot start.
    pub fn start(clip: &Path) -> RtspServer {
        let python = Path::new("/usr/bin/python3");
        assert!(
            python.exists(),
            "/usr/bin/python3 is needed (it runs GStreamer's RTSP server); \
             `scripts/setup.sh test` installs it"
        );
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/rtsp_reference.py");
        let stderr_path = clip_dir().join(format!("rtsp-server-{:?}.err", thread::current().id()));
        let stderr = fs::File::create(&stderr_path).expect("create the RTSP server's log");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(clip)
            .arg("0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start benches/reference/rtsp_reference.py");
        // Its stdin stays open while we hold it: the script stops at its end.
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let Some(url) = line.trim().strip_prefix("ready ").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "benches/reference/rtsp_reference.py did not start (it needs python3-gi, \
                 gir1.2-gst-rtsp-server-1.0 and GStreamer's good and bad plugins: \
                 `scripts/setup.sh test`); it printed {line:?}, and on stderr:\n{}",
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        };
        RtspServer { child, stdin, url }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of a tool's `stderr` that contain any of `words`
/// (case-insensitive): what [`probe`] and [`decode_complaints`] call
/// complaints, for a tool the test ran itself (an RTSP viewer).
pub fn complaint_lines(stderr: &[u8], words: &[&str]) -> Vec<String> {
    complaints(stderr, words)
}
