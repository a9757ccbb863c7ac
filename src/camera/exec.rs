//! `--camera 'exec:COMMAND ARGS…'`: a child process that writes MJPEG to
//! its stdout, read through a nonblocking pipe in the event loop's poll.
//!
//! This is how camloop reaches cameras OpenCV cannot, or only by blocking:
//! ffmpeg (USB cameras, RTSP), `rpicam-vid --codec mjpeg -o -` (Raspberry Pi
//! CSI cameras), `gst-launch-1.0 … ! jpegenc ! fdsink`. The heavy work
//! (H.264 decoding, the camera stack) lives in the child; camloop stays one
//! thread and passes the child's JPEG bytes through.
//!
//! This module owns the child's life: words split like a shell would (no
//! shell unless you write `sh -c`), stdin `/dev/null`, its own process
//! group (signalled as a whole), death with camloop (`PR_SET_PDEATHSIG`),
//! stderr into the log line by line (rate-limited), and reaping without
//! ever waiting. It never decides *when* to restart: the pipeline does.

use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mio::unix::pipe::Receiver;
use mio::{Interest, Registry, Token};

use super::push::{CameraCodec, PushSink, PushSource, SourceTokens, StreamClock};
use super::{without_credentials, CameraError};

/// Bytes read from the child per `read()`. The pipe holds 64 KiB, so one
/// readiness event rarely needs more than a couple of these.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// At most this many stderr lines are logged per [`STDERR_WINDOW`]; a child
/// that spams its stderr must not flood the journal.
const STDERR_LINES_PER_WINDOW: u32 = 20;
/// See [`STDERR_LINES_PER_WINDOW`].
const STDERR_WINDOW: Duration = Duration::from_secs(10);
/// A stderr line longer than this is cut (a child writing binary there).
const MAX_STDERR_LINE_BYTES: usize = 1024;
/// How often the shutdown checks whether the child has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The `exec:` source.
pub struct ExecSource {
    argv: Vec<String>,
    max_frame_bytes: usize,
    codec: CameraCodec,
    running: Option<Running>,
    /// Children killed but not reaped yet; `reap` collects them.
    killed: Vec<Child>,
    read_buffer: Vec<u8>,
}

struct Running {
    child: Child,
    tokens: SourceTokens,
    stdout: Receiver,
    stderr: Option<Receiver>,
    stream: StreamClock,
    stderr_line: Vec<u8>,
    stderr_log: RateLimit,
}

impl ExecSource {
    /// Parses `COMMAND ARGS…` (the text after `exec:`) like a shell splits
    /// words: quotes and backslashes work, nothing else (no `$VAR`, no
    /// pipes unless the command is `sh -c '…'`).
    /// The child's stdout is MJPEG or H.264 Annex-B as `codec` says
    /// (`auto`: told from its first bytes).
    pub fn parse(
        command: &str,
        max_frame_bytes: usize,
        codec: CameraCodec,
    ) -> Result<Self, String> {
        let argv =
            shell_words::split(command).map_err(|e| format!("--camera exec:{command}: {e}"))?;
        if argv.is_empty() {
            return Err("--camera exec: needs a command".to_string());
        }
        Ok(ExecSource {
            argv,
            max_frame_bytes,
            codec,
            running: None,
            killed: Vec::new(),
            read_buffer: vec![0; READ_CHUNK_BYTES],
        })
    }

    /// The child's process id while one runs (tests signal it).
    pub fn child_id(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    fn read_frames(&mut self, now: Instant, sink: &mut PushSink) -> Result<(), CameraError> {
        let name = self.name();
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        loop {
            match running.stdout.read(&mut self.read_buffer) {
                Ok(0) => {
                    let how = match running.child.try_wait() {
                        Ok(Some(status)) => format!("exited ({status})"),
                        _ => "closed its output".to_string(),
                    };
                    return Err(CameraError::new(format!("{name}: the command {how}")));
                }
                Ok(n) => {
                    let dropped = running
                        .stream
                        .push(&self.read_buffer[..n], now, sink)
                        .map_err(|refused| CameraError::new(format!("{name}: {refused}")))?;
                    if dropped > 0 {
                        log::warn!(
                            "camera {name}: dropped {dropped} frame(s) over --max-frame-bytes {}",
                            self.max_frame_bytes
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CameraError::new(format!("{name}: reading: {e}"))),
            }
        }
    }

    /// Logs the child's complete stderr lines.
    fn read_stderr(&mut self, now: Instant) -> Pipe {
        let name = self.name();
        let Some(running) = self.running.as_mut() else {
            return Pipe::Closed;
        };
        let Some(stderr) = running.stderr.as_mut() else {
            return Pipe::Closed;
        };
        loop {
            match stderr.read(&mut self.read_buffer) {
                Ok(0) => return Pipe::Closed,
                Ok(n) => {
                    for &byte in &self.read_buffer[..n] {
                        if byte == b'\n' {
                            let line = String::from_utf8_lossy(&running.stderr_line);
                            running.stderr_log.log(&name, line.trim_end(), now);
                            running.stderr_line.clear();
                        } else if running.stderr_line.len() < MAX_STDERR_LINE_BYTES {
                            running.stderr_line.push(byte);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Pipe::Open,
                Err(_) => return Pipe::Closed,
            }
        }
    }
}

#[derive(PartialEq, Eq)]
enum Pipe {
    Open,
    Closed,
}

impl PushSource for ExecSource {
    fn name(&self) -> String {
        // A URL's password must not reach `stats` or the log.
        let words: Vec<String> = self.argv.iter().map(|w| without_credentials(w)).collect();
        format!("exec:{}", words.join(" "))
    }

    fn start(
        &mut self,
        registry: &Registry,
        tokens: SourceTokens,
        _now: Instant,
    ) -> Result<(), CameraError> {
        self.stop(registry);
        let mut command = Command::new(&self.argv[0]);
        command
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        crate::sys::kill_child_with_parent(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| CameraError::new(format!("cannot start {}: {e}", self.argv[0])))?;
        let pipes = child.stdout.take().zip(child.stderr.take());
        let Some((stdout, stderr)) = pipes else {
            crate::sys::signal_process_group(child.id(), libc::SIGKILL);
            self.killed.push(child);
            return Err(CameraError::new("the command's pipes were not created"));
        };
        let mut stdout = Receiver::from(stdout);
        let mut stderr = Receiver::from(stderr);
        let registered = stdout
            .set_nonblocking(true)
            .and_then(|()| stderr.set_nonblocking(true))
            .and_then(|()| registry.register(&mut stdout, tokens.frames, Interest::READABLE))
            .and_then(|()| registry.register(&mut stderr, tokens.aux, Interest::READABLE));
        if let Err(e) = registered {
            crate::sys::signal_process_group(child.id(), libc::SIGKILL);
            self.killed.push(child);
            return Err(CameraError::new(format!(
                "cannot watch the command's output: {e}"
            )));
        }
        log::info!("camera {}: started child {}", self.name(), child.id());
        self.running = Some(Running {
            child,
            tokens,
            stdout,
            stderr: Some(stderr),
            stream: StreamClock::new(self.codec, self.max_frame_bytes),
            stderr_line: Vec::new(),
            stderr_log: RateLimit::default(),
        });
        Ok(())
    }

    fn on_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        sink: &mut PushSink,
    ) -> Result<(), CameraError> {
        if Some(token) != self.running.as_ref().map(|r| r.tokens.aux) {
            return self.read_frames(now, sink);
        }
        if self.read_stderr(now) == Pipe::Closed {
            if let Some(mut stderr) = self.running.as_mut().and_then(|r| r.stderr.take()) {
                let _ = registry.deregister(&mut stderr);
            }
        }
        Ok(())
    }

    fn parameter_sets(&self) -> Option<crate::h264::ParameterSets> {
        let clock = self.running.as_ref()?.stream.h264()?;
        clock.splitter().parameter_sets().cloned()
    }

    fn stop(&mut self, registry: &Registry) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let _ = registry.deregister(&mut running.stdout);
        if let Some(stderr) = running.stderr.as_mut() {
            let _ = registry.deregister(stderr);
        }
        crate::sys::signal_process_group(running.child.id(), libc::SIGKILL);
        match running.child.try_wait() {
            Ok(Some(_)) => {}
            _ => self.killed.push(running.child),
        }
    }

    fn reap(&mut self) {
        self.killed
            .retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
    }

    fn shutdown(&mut self, registry: &Registry, grace: Duration) {
        if let Some(running) = self.running.as_mut() {
            // Ask first: ffmpeg and rpicam-vid clean up the device on SIGTERM.
            crate::sys::signal_process_group(running.child.id(), libc::SIGTERM);
            let give_up_at = Instant::now() + grace;
            while Instant::now() < give_up_at && matches!(running.child.try_wait(), Ok(None)) {
                std::thread::sleep(EXIT_POLL_INTERVAL);
            }
        }
        self.stop(registry);
        for mut child in self.killed.drain(..) {
            let _ = child.wait(); // SIGKILLed: returns at once
        }
    }
}

/// Logs at most [`STDERR_LINES_PER_WINDOW`] lines per window, then says
/// how many it left out.
#[derive(Default)]
struct RateLimit {
    window_started: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl RateLimit {
    fn log(&mut self, camera: &str, line: &str, now: Instant) {
        if line.is_empty() {
            return;
        }
        if self
            .window_started
            .is_none_or(|start| now.duration_since(start) >= STDERR_WINDOW)
        {
            if self.suppressed > 0 {
                log::warn!(
                    "camera {camera}: {} more stderr lines not logged",
                    self.suppressed
                );
            }
            *self = RateLimit {
                window_started: Some(now),
                ..RateLimit::default()
            };
        }
        if self.logged < STDERR_LINES_PER_WINDOW {
            self.logged += 1;
            log::warn!("camera {camera}: {line}");
        } else {
            self.suppressed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_like_a_shell_would() {
        let source = ExecSource::parse(
            "ffmpeg -i 'my clip.mjpeg' -f mjpeg -",
            1024,
            CameraCodec::Auto,
        )
        .unwrap();
        assert_eq!(
            source.argv,
            ["ffmpeg", "-i", "my clip.mjpeg", "-f", "mjpeg", "-"]
        );
        assert!(ExecSource::parse("", 1024, CameraCodec::Auto).is_err());
        assert!(ExecSource::parse("ffmpeg 'unclosed", 1024, CameraCodec::Auto).is_err());
    }

    #[test]
    fn stderr_logging_is_rate_limited() {
        let mut limit = RateLimit::default();
        let now = Instant::now();
        for _ in 0..100 {
            limit.log("test", "spam", now);
        }
        assert_eq!(limit.logged, STDERR_LINES_PER_WINDOW);
        assert_eq!(limit.suppressed, 100 - u64::from(STDERR_LINES_PER_WINDOW));
        limit.log("test", "later", now + STDERR_WINDOW);
        assert_eq!((limit.logged, limit.suppressed), (1, 0));
    }
}
