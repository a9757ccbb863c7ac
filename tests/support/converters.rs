//! Helpers for the converter tests (`tests/converters.rs`): a 4:2:2 MJPEG
//! clip made once per run, an MJPEG viewer for any path, ffprobe's view of
//! a JPEG or of raw H.264 with every line it prints, converter children
//! found in the process tree, a server started with its own `PATH`, and a
//! process held stopped.
//!
//! Include it next to the shared helpers it builds on:
//!
//! ```ignore
//! #[path = "support/h264_clip.rs"]
//! mod h264_clip;
//! mod http_support;
//! mod support;
//! #[path = "support/converters.rs"]
//! mod converters;
//! ```

#![allow(dead_code)] // the tests use what they need

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::h264_clip::{descendants, require_tool, run, CLIP_FPS};
use crate::http_support::{BOUNDARY, READ_TIMEOUT};

// ---------------------------------------------------------------------------
// Tools

/// The absolute path of `tool` on the test's own `PATH`; panics, saying
/// why it is needed, if there is none.
pub fn absolute_tool(tool: &str, why: &str) -> PathBuf {
    require_tool(tool, why);
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
        .expect("require_tool found it on PATH")
}

// ---------------------------------------------------------------------------
// The 4:2:2 MJPEG clip

/// The directory this run's MJPEG clip lives in,
/// `$TMPDIR/camloop-mjpeg-clips-<pid>`; those of earlier runs whose process
/// is gone are removed (statics are never dropped, so a run cannot remove
/// its own).
fn clip_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let prefix = "camloop-mjpeg-clips-";
        let temp = std::env::temp_dir();
        for entry in fs::read_dir(&temp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(prefix) {
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

/// Size of the 4:2:2 clip: a USB webcam's VGA.
pub const MJPEG_422_WIDTH: u32 = 640;
pub const MJPEG_422_HEIGHT: u32 = 480;

/// Two seconds of ffmpeg's `testsrc` as 4:2:2 JPEGs (`-pix_fmt yuvj422p`,
/// what a USB webcam's MJPEG mode sends) at 30 fps, in Matroska so that
/// ffmpeg can loop it; made on first use.
pub fn mjpeg_422_clip() -> &'static Path {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        require_tool("ffmpeg", "it encodes the test clips and replays them");
        let path = clip_dir().join("yuvj422p.mkv");
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc=size={MJPEG_422_WIDTH}x{MJPEG_422_HEIGHT}:rate={CLIP_FPS}"
            ))
            .args([
                "-t", "2", "-c:v", "mjpeg", "-pix_fmt", "yuvj422p", "-q:v", "5",
            ])
            .arg(&path));
        path
    })
}

/// The `exec:` camera that replays an MJPEG clip forever in real time,
/// without re-encoding, as a bare MJPEG stream on stdout.
pub fn replay_mjpeg_camera(clip: &Path) -> String {
    format!(
        "exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i {} -c copy -f mjpeg -",
        clip.display()
    )
}

// ---------------------------------------------------------------------------
// ffprobe

/// What ffprobe says about a raw H.264 file at `-v warning`.
#[derive(Debug)]
pub struct H264Probe {
    pub width: u32,
    pub height: u32,
    /// Frames it decoded (`-count_frames`).
    pub frames: u64,
    /// `yuv420p`, `yuv422p`, …
    pub pix_fmt: String,
    /// `Constrained Baseline`, `High`, `High 4:2:2`, …
    pub profile: String,
    /// Everything it printed on stderr: at `-v warning`, every warning and
    /// error (empty for a clean stream).
    pub stderr: String,
}

/// Runs `ffprobe -v warning -f h264 -count_frames` on a raw H.264 file.
pub fn probe_h264(file: &Path) -> H264Probe {
    require_tool("ffprobe", "it judges the converter's output");
    let output = run(Command::new("ffprobe")
        .args(["-v", "warning", "-f", "h264", "-count_frames"])
        .args([
            "-show_entries",
            "stream=width,height,nb_read_frames,pix_fmt,profile",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(file));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |key: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("ffprobe printed no {key}: {stdout}"))
    };
    let number = |key: &str| -> u64 {
        field(key)
            .parse()
            .unwrap_or_else(|_| panic!("ffprobe's {key} is no number: {stdout}"))
    };
    H264Probe {
        width: number("width") as u32,
        height: number("height") as u32,
        frames: number("nb_read_frames"),
        pix_fmt: field("pix_fmt"),
        profile: field("profile"),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// ffprobe's `pix_fmt` of a JPEG (`yuvj420p`, `yuvj422p`, …): how its
/// chroma is sampled.
pub fn jpeg_pix_fmt(dir: &Path, jpeg: &[u8]) -> String {
    require_tool("ffprobe", "it reads the JPEGs' chroma sampling");
    let path = dir.join("probed.jpg");
    fs::write(&path, jpeg).expect("save the JPEG");
    let output = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=pix_fmt"])
        .args(["-of", "default=noprint_wrappers=1:nokey=1"])
        .arg(&path));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

// ---------------------------------------------------------------------------
// An MJPEG viewer for any path

/// A `multipart/x-mixed-replace` stream (`/stream.mjpg`, `/?action=stream`,
/// `/cam/NAME/stream.mjpg`) being read part by part.
pub struct MjpegViewer {
    reader: BufReader<TcpStream>,
    path: String,
}

impl MjpegViewer {
    /// Connects to `http`, asks for `path` and checks the head: `200 OK`
    /// and camloop's multipart type and boundary.
    pub fn open(http: SocketAddr, path: &str) -> MjpegViewer {
        let stream = TcpStream::connect(http).expect("connect to the HTTP port");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        (&stream)
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .expect("send the request");
        let mut viewer = MjpegViewer {
            reader: BufReader::new(stream),
            path: path.to_string(),
        };
        let status = viewer.line();
        assert_eq!(status, "HTTP/1.1 200 OK", "GET {path}");
        let headers = viewer.headers();
        let expected = format!("multipart/x-mixed-replace; boundary={BOUNDARY}");
        assert!(
            headers
                .iter()
                .any(|(name, value)| name == "content-type" && *value == expected),
            "GET {path}: {headers:?}"
        );
        viewer
    }

    /// The next part's JPEG: the delimiter, headers with `Content-Type:
    /// image/jpeg` and `Content-Length: N`, a blank line, N bytes, CRLF.
    pub fn next_jpeg(&mut self) -> Vec<u8> {
        let delimiter = self.line();
        assert_eq!(delimiter, format!("--{BOUNDARY}"), "{}", self.path);
        let headers = self.headers();
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(find("content-type"), Some("image/jpeg"), "{headers:?}");
        let length: usize = find("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("{}: part headers {headers:?}", self.path));
        let mut jpeg = vec![0; length + 2];
        self.reader
            .read_exact(&mut jpeg)
            .unwrap_or_else(|e| panic!("{}: reading a {length}-byte part: {e}", self.path));
        assert!(
            jpeg.ends_with(b"\r\n"),
            "{}: a part ends in CRLF",
            self.path
        );
        jpeg.truncate(length);
        jpeg
    }

    /// One CRLF-terminated line, without the CRLF.
    fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader
            .by_ref()
            .take(8 * 1024)
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|e| panic!("{}: reading a line: {e}", self.path));
        let text = String::from_utf8_lossy(&line).into_owned();
        text.strip_suffix("\r\n")
            .unwrap_or_else(|| panic!("{}: a line without CRLF: {text:?}", self.path))
            .to_string()
    }

    /// Header lines up to the blank one, names lowercased.
    fn headers(&mut self) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                return headers;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("{}: a header line {line:?}", self.path));
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
}

// ---------------------------------------------------------------------------
// Processes

/// The server's converter children: its descendants that read `pipe:0`
/// (both default converters do; a camera's own `exec:` child writes to
/// `-` and reads a file or a device). (pid, argv).
pub fn converter_children(server_pid: u32) -> Vec<(u32, Vec<String>)> {
    descendants(server_pid)
        .into_iter()
        .filter(|(_, argv)| argv.iter().any(|a| a == "pipe:0"))
        .collect()
}

/// The one converter child of the server, if there is one; panics if
/// there are several.
pub fn converter_child(server_pid: u32) -> Option<u32> {
    let children = converter_children(server_pid);
    assert!(
        children.len() <= 1,
        "one camera, at most one converter: {children:?}"
    );
    children.first().map(|(pid, _)| *pid)
}

/// A process held stopped (SIGSTOP) until this is dropped, when it gets
/// SIGCONT, so that a failing test leaves no stopped process behind.
pub struct Stopped {
    pub pid: u32,
}

impl Stopped {
    /// Sends SIGSTOP to `pid` and waits (bounded) until /proc shows it
    /// stopped.
    pub fn new(pid: u32) -> Stopped {
        signal(pid, libc::SIGSTOP);
        let stopped = Stopped { pid };
        let shown = crate::http_support::wait_until(READ_TIMEOUT, || process_state(pid) == 'T');
        assert!(
            shown,
            "pid {pid} did not stop: state {}",
            process_state(pid)
        );
        stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // No assertion: this also runs while a failing test unwinds, and
        // the process may be gone by then.
        // SAFETY: kill() has no memory effects.
        unsafe { libc::kill(self.pid as i32, libc::SIGCONT) };
    }
}

/// Sends `signal` to `pid` (a process this test's server started).
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill() has no memory effects.
    let rc = unsafe { libc::kill(pid as i32, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        io::Error::last_os_error()
    );
}

/// The state letter of a process in /proc (`R`, `S`, `T` stopped, …), or
/// `?` if it is gone.
pub fn process_state(pid: u32) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|close| stat[close + 2..].chars().next())
        .unwrap_or('?')
}

// ---------------------------------------------------------------------------
// /metrics

/// The value of the default camera's (the first listed) sample of a
/// per-camera series, as a float (`camloop_converter_cpu_seconds_total`
/// is one).
pub fn metric_f64(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?;
            let ours = labels.is_empty() || labels.starts_with("{camera=\"");
            ours.then(|| value.trim().parse().ok())?
        })
}
