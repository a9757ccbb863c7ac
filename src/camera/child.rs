//! A child process on the loop: an `exec:` camera or a converter.
//!
//! This module owns what every child camloop runs has in common, so the
//! rules are written once: words split like a shell would (no shell unless
//! the command is `sh -c '…'`), stdin `/dev/null` or a pipe camloop
//! writes, its own process group (signalled as a whole), death with
//! camloop (`PR_SET_PDEATHSIG`), nonblocking pipes registered with the
//! loop's poll and raised to [`PIPE_BYTES`], stderr into the log line by
//! line (rate-limited), and reaping without ever waiting. What the child's
//! stdout *means* (frames, access units) is the caller's business, and so
//! is when to start one again.

use std::io::{self, Read};
use std::os::unix::io::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mio::unix::pipe::{Receiver, Sender};
use mio::{Interest, Registry, Token};

use super::CameraError;

/// What each pipe to and from a child is raised to (`F_SETPIPE_SZ`). The
/// default 64 KiB holds less than one 720p IDR or JPEG: a frame would need
/// several wake-ups to cross, and a converter's input would fill at once.
/// 1 MiB is Linux's default `pipe-max-size` for unprivileged processes.
pub const PIPE_BYTES: usize = 1024 * 1024;
/// At most this many stderr lines are logged per [`STDERR_WINDOW`]; a child
/// that spams its stderr must not flood the journal.
const STDERR_LINES_PER_WINDOW: u32 = 20;
/// See [`STDERR_LINES_PER_WINDOW`].
const STDERR_WINDOW: Duration = Duration::from_secs(10);
/// A stderr line longer than this is cut (a child writing binary there).
const MAX_STDERR_LINE_BYTES: usize = 1024;
/// How often the shutdown checks whether the child has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How soon after a kill the loop looks again for the child's exit (a
/// SIGKILLed child is gone within milliseconds; until it is reaped it
/// stays a zombie in the process table).
const REAP_RETRY: Duration = Duration::from_millis(50);

/// The tokens a child's pipes are registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildTokens {
    /// Its stdout (READABLE).
    pub stdout: Token,
    /// Its stderr (READABLE).
    pub stderr: Token,
    /// Its stdin (WRITABLE), for a child camloop feeds.
    pub stdin: Option<Token>,
}

/// A running child and its pipes.
pub struct Child {
    process: std::process::Child,
    /// What the child writes.
    pub stdout: Receiver,
    stderr: Option<Receiver>,
    /// What camloop writes to it, if it is fed.
    pub stdin: Option<Sender>,
    /// The tokens its pipes are registered with.
    pub tokens: ChildTokens,
    stderr_line: Vec<u8>,
    stderr_log: RateLimit,
    /// Who it is in the log (`camera exec:…`, `camera cam0 h264-to-jpeg`).
    label: String,
}

/// Parses `COMMAND ARGS…` like a shell splits words: quotes and
/// backslashes work, nothing else (no `$VAR`, no pipes unless the command
/// is `sh -c '…'`).
pub fn split_command(command: &str) -> Result<Vec<String>, String> {
    let argv = shell_words::split(command).map_err(|e| format!("{command}: {e}"))?;
    if argv.is_empty() {
        return Err("needs a command".to_string());
    }
    Ok(argv)
}

impl Child {
    /// Starts `argv` with its pipes in the poll under `tokens` (a stdin
    /// pipe only when `tokens.stdin` is given). Must not block: a fork and
    /// an exec.
    pub fn spawn(
        argv: &[String],
        registry: &Registry,
        tokens: ChildTokens,
        label: &str,
    ) -> Result<Child, CameraError> {
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(if tokens.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        crate::sys::kill_child_with_parent(&mut command);
        let mut process = command
            .spawn()
            .map_err(|e| CameraError::new(format!("cannot start {}: {e}", argv[0])))?;
        let pipes = (
            process.stdout.take(),
            process.stderr.take(),
            process.stdin.take(),
        );
        let (Some(stdout), Some(stderr), stdin) = pipes else {
            kill_now(&mut process);
            return Err(CameraError::new("the command's pipes were not created"));
        };
        let mut child = Child {
            process,
            stdout: Receiver::from(stdout),
            stderr: Some(Receiver::from(stderr)),
            stdin: stdin.map(Sender::from),
            tokens,
            stderr_line: Vec::new(),
            stderr_log: RateLimit::default(),
            label: label.to_string(),
        };
        if let Err(e) = child.register(registry) {
            kill_now(&mut child.process);
            return Err(CameraError::new(format!(
                "cannot watch the command's pipes: {e}"
            )));
        }
        log::info!("{label}: started child {}", child.id());
        Ok(child)
    }

    fn register(&mut self, registry: &Registry) -> io::Result<()> {
        self.stdout.set_nonblocking(true)?;
        crate::sys::set_pipe_size(self.stdout.as_raw_fd(), PIPE_BYTES);
        registry.register(&mut self.stdout, self.tokens.stdout, Interest::READABLE)?;
        if let Some(stderr) = self.stderr.as_mut() {
            stderr.set_nonblocking(true)?;
            registry.register(stderr, self.tokens.stderr, Interest::READABLE)?;
        }
        if let (Some(stdin), Some(token)) = (self.stdin.as_mut(), self.tokens.stdin) {
            stdin.set_nonblocking(true)?;
            crate::sys::set_pipe_size(stdin.as_raw_fd(), PIPE_BYTES);
            registry.register(stdin, token, Interest::WRITABLE)?;
        }
        Ok(())
    }

    /// The child's process id (and its process group's).
    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// Why its stdout ended: it exited (with its status), or only closed
    /// the pipe.
    pub fn end_description(&mut self) -> String {
        match self.process.try_wait() {
            Ok(Some(status)) => format!("exited ({status})"),
            _ => "closed its output".to_string(),
        }
    }

    /// Its stderr is readable: logs every complete line (rate-limited);
    /// once the pipe is closed it leaves the poll.
    pub fn on_stderr(&mut self, registry: &Registry, buffer: &mut [u8], now: Instant) {
        let Some(stderr) = self.stderr.as_mut() else {
            return;
        };
        let closed = loop {
            match stderr.read(buffer) {
                Ok(0) => break true,
                Ok(n) => {
                    for &byte in &buffer[..n] {
                        if byte == b'\n' {
                            let line = String::from_utf8_lossy(&self.stderr_line);
                            self.stderr_log.log(&self.label, line.trim_end(), now);
                            self.stderr_line.clear();
                        } else if self.stderr_line.len() < MAX_STDERR_LINE_BYTES {
                            self.stderr_line.push(byte);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(_) => break true,
            }
        };
        if closed {
            if let Some(mut stderr) = self.stderr.take() {
                let _ = registry.deregister(&mut stderr);
            }
        }
    }

    /// Stops it at once: leaves the poll, SIGKILL to its whole group, and
    /// into `graveyard` until it is reaped. Never waits.
    pub fn kill(mut self, registry: &Registry, graveyard: &mut Graveyard) {
        let _ = registry.deregister(&mut self.stdout);
        if let Some(stderr) = self.stderr.as_mut() {
            let _ = registry.deregister(stderr);
        }
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = registry.deregister(stdin);
        }
        crate::sys::signal_process_group(self.process.id(), libc::SIGKILL);
        match self.process.try_wait() {
            Ok(Some(_)) => {}
            _ => {
                graveyard.killed.push(self.process);
                graveyard.checked_at = Some(Instant::now());
            }
        }
    }

    /// The last stop, after the event loop has ended: SIGTERM first (ffmpeg
    /// and rpicam-vid clean up the device on it), up to `grace` for the
    /// child to exit, then [`Child::kill`]. Waiting is fine here: nobody is
    /// served any more.
    pub fn shut_down(mut self, registry: &Registry, graveyard: &mut Graveyard, grace: Duration) {
        crate::sys::signal_process_group(self.process.id(), libc::SIGTERM);
        let give_up_at = Instant::now() + grace;
        while Instant::now() < give_up_at && matches!(self.process.try_wait(), Ok(None)) {
            std::thread::sleep(EXIT_POLL_INTERVAL);
        }
        self.kill(registry, graveyard);
    }
}

/// A child whose pipes could not be set up: killed and reaped at once (it
/// has not run anything yet).
fn kill_now(process: &mut std::process::Child) {
    crate::sys::signal_process_group(process.id(), libc::SIGKILL);
    let _ = process.wait();
}

/// Children killed but not reaped yet.
#[derive(Default)]
pub struct Graveyard {
    killed: Vec<std::process::Child>,
    /// When it was last looked at (or a child was added).
    checked_at: Option<Instant>,
}

impl Graveyard {
    /// Collects the children that have exited; never waits.
    pub fn reap(&mut self) {
        self.killed
            .retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
        self.checked_at = (!self.killed.is_empty()).then(Instant::now);
    }

    /// When to [`Graveyard::reap`] next: soon after a kill, while a
    /// child is left to collect.
    pub fn next_check(&self) -> Option<Instant> {
        self.checked_at.map(|at| at + REAP_RETRY)
    }

    /// At shutdown: waits for every one (SIGKILLed: at once).
    pub fn reap_all(&mut self) {
        for mut child in self.killed.drain(..) {
            let _ = child.wait();
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
    fn log(&mut self, label: &str, line: &str, now: Instant) {
        if line.is_empty() {
            return;
        }
        if self
            .window_started
            .is_none_or(|start| now.duration_since(start) >= STDERR_WINDOW)
        {
            if self.suppressed > 0 {
                log::warn!("{label}: {} more stderr lines not logged", self.suppressed);
            }
            *self = RateLimit {
                window_started: Some(now),
                ..RateLimit::default()
            };
        }
        if self.logged < STDERR_LINES_PER_WINDOW {
            self.logged += 1;
            log::warn!("{label}: {line}");
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
        assert_eq!(
            split_command("ffmpeg -i 'my clip.mjpeg' -f mjpeg -").unwrap(),
            ["ffmpeg", "-i", "my clip.mjpeg", "-f", "mjpeg", "-"]
        );
        assert!(split_command("").is_err());
        assert!(split_command("ffmpeg 'unclosed").is_err());
    }

    #[test]
    fn stderr_logging_is_rate_limited() {
        let mut limit = RateLimit::default();
        let now = Instant::now();
        for _ in 0..100 {
            limit.log("camera cam0", "spam", now);
        }
        assert_eq!(limit.logged, STDERR_LINES_PER_WINDOW);
        assert_eq!(limit.suppressed, 100 - u64::from(STDERR_LINES_PER_WINDOW));
        limit.log("camera cam0", "later", now + STDERR_WINDOW);
        assert_eq!((limit.logged, limit.suppressed), (1, 0));
    }
}
