//! `--camera 'exec:COMMAND ARGS…'`: a child process that writes MJPEG or
//! H.264 to its stdout, read through a nonblocking pipe in the event
//! loop's poll.
//!
//! This is how camloop reaches cameras OpenCV cannot, or only by blocking:
//! ffmpeg (USB cameras, RTSP), `rpicam-vid` (Raspberry Pi CSI cameras),
//! `gst-launch-1.0 … ! fdsink`. The camera stack lives in the child;
//! camloop stays one thread and passes the child's bytes through.
//!
//! The child's life (process group, death with camloop, stderr into the
//! log, reaping) is [`super::child`]'s; this module only reads what the
//! child sends and tells a failure. It never decides *when* to restart:
//! the pipeline does.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use mio::{Registry, Token};

use super::child::{split_command, Child, ChildTokens, Graveyard};
use super::push::{CameraCodec, PushSink, PushSource, SourceTokens, StreamClock};
use super::{without_credentials, CameraError};

/// Bytes read from the child per `read()`. The pipe holds 1 MiB
/// ([`super::child::PIPE_BYTES`]), so one readiness event rarely needs
/// more than a few of these.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The `exec:` source.
pub struct ExecSource {
    argv: Vec<String>,
    max_frame_bytes: usize,
    codec: CameraCodec,
    running: Option<Running>,
    /// Children killed but not reaped yet; `reap` collects them.
    graveyard: Graveyard,
    read_buffer: Vec<u8>,
}

struct Running {
    child: Child,
    stream: StreamClock,
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
        let argv = split_command(command).map_err(|e| format!("--camera exec:{e}"))?;
        Ok(ExecSource {
            argv,
            max_frame_bytes,
            codec,
            running: None,
            graveyard: Graveyard::default(),
            read_buffer: vec![0; READ_CHUNK_BYTES],
        })
    }

    /// The child's process id while one runs (tests signal it).
    pub fn child_id(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    fn read_frames(&mut self, now: Instant, sink: &mut PushSink) -> Result<(), CameraError> {
        // Named only when there is something to say: this runs for every
        // frame, and the name is built from every word of the command.
        let name = || exec_name(&self.argv);
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        loop {
            match running.child.stdout.read(&mut self.read_buffer) {
                Ok(0) => {
                    let how = running.child.end_description();
                    return Err(CameraError::new(format!("{}: the command {how}", name())));
                }
                Ok(n) => {
                    let dropped = running
                        .stream
                        .push(&self.read_buffer[..n], now, sink)
                        .map_err(|refused| CameraError::new(format!("{}: {refused}", name())))?;
                    if dropped > 0 {
                        log::warn!(
                            "camera {}: dropped {dropped} frame(s) over --max-frame-bytes {}",
                            name(),
                            self.max_frame_bytes
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CameraError::new(format!("{}: reading: {e}", name()))),
            }
        }
    }
}

/// An `exec:` camera's name: its command, with any URL's password masked
/// (it must not reach `stats` or the log).
fn exec_name(argv: &[String]) -> String {
    let words: Vec<String> = argv.iter().map(|w| without_credentials(w)).collect();
    format!("exec:{}", words.join(" "))
}

impl PushSource for ExecSource {
    fn name(&self) -> String {
        exec_name(&self.argv)
    }

    fn start(
        &mut self,
        registry: &Registry,
        tokens: SourceTokens,
        _now: Instant,
    ) -> Result<(), CameraError> {
        self.stop(registry);
        let child_tokens = ChildTokens {
            stdout: tokens.frames,
            stderr: tokens.aux,
            stdin: None,
        };
        let label = format!("camera {}", self.name());
        let child = Child::spawn(&self.argv, registry, child_tokens, &label)?;
        self.running = Some(Running {
            child,
            stream: StreamClock::new(self.codec, self.max_frame_bytes),
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
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        if token == running.child.tokens.stderr {
            running
                .child
                .on_stderr(registry, &mut self.read_buffer, now);
            return Ok(());
        }
        self.read_frames(now, sink)
    }

    fn parameter_sets(&self) -> Option<crate::h264::ParameterSets> {
        let clock = self.running.as_ref()?.stream.h264()?;
        clock.splitter().parameter_sets().cloned()
    }

    fn stop(&mut self, registry: &Registry) {
        if let Some(running) = self.running.take() {
            running.child.kill(registry, &mut self.graveyard);
        }
    }

    fn reap(&mut self) {
        self.graveyard.reap();
    }

    fn shutdown(&mut self, registry: &Registry, grace: Duration) {
        if let Some(running) = self.running.take() {
            running
                .child
                .shut_down(registry, &mut self.graveyard, grace);
        }
        self.graveyard.reap_all();
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
}
