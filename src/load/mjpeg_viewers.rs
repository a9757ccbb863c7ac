//! The MJPEG viewer mode of `camloop load --mjpeg`: N viewers of one MJPEG
//! stream, as a [`Mode`] run by [`super::driver`], the loop every mode
//! shares.
//!
//! A viewer goes connect → request written → response head read → parts.
//! Parts are cut out of the body by camloop's own [`Splitter`], so the tool
//! accepts exactly what camloop's clients must accept, and counts as
//! malformed what the splitter drops. Once its request is out the viewer
//! only reads: the server sets the pace, and a viewer that reads slowly
//! (because this loop is busy) is what a slow client looks like to the
//! server.
//!
//! Frames per viewer, bytes/s and frame ages count only parts that arrive
//! inside the measurement window. Stalls, drops and malformed parts count
//! over the whole run, since a viewer that stalls while the run warms up
//! stalled all the same.

use std::io;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use base64::Engine as _;

use super::driver::{self, Close, Closing, Connections, Counts, Measured, Mode, Moment, Progress};
use super::report::ViewerReport;
use super::viewing::{ResponseHead, StallClock, StreamUrl, ViewerFlags, ViewerRun, AUTH_USER};
use super::LoadArgs;
use crate::mjpeg::{boundary_from_content_type, Splitter, DEFAULT_MAX_FRAME_BYTES};
use crate::timefmt::unix_micros;

/// Runs the plan to the end and returns what it measured.
pub(super) fn drive(plan: &ViewerPlan) -> Result<ViewerReport, String> {
    let schedule = plan.flags.schedule(plan.target);
    driver::drive(MjpegViewers::new(plan)?, &schedule)
}

/// The checked, parsed form of the `--mjpeg` flags.
#[derive(Debug, Clone)]
pub(super) struct ViewerPlan {
    /// The URL as given, for the report.
    pub(super) url: String,
    pub(super) target: SocketAddr,
    /// The request every viewer sends.
    request: Vec<u8>,
    pub(super) flags: ViewerFlags,
}

impl ViewerPlan {
    pub(super) fn from_args(args: &LoadArgs) -> Result<ViewerPlan, String> {
        let url = args.mjpeg.clone().ok_or("--mjpeg URL is missing")?;
        let flags = ViewerFlags::from_args(args, "--mjpeg")?;
        let stream = StreamUrl::parse("--mjpeg", &url, "http", 80)?;
        let target = stream.address("--mjpeg", &url)?;
        let StreamUrl { authority, path } = stream;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: camloop-load\r\n\
             Accept: multipart/x-mixed-replace, image/jpeg\r\n"
        );
        if let Some(token) = &args.auth {
            let credentials =
                base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{token}"));
            request.push_str(&format!("Authorization: Basic {credentials}\r\n"));
        }
        request.push_str("\r\n");
        Ok(ViewerPlan {
            url,
            target,
            request: request.into_bytes(),
            flags,
        })
    }
}

/// Where a viewer is in reading the response.
enum Stage {
    /// Reading the response head: what has arrived of it. The request may
    /// still be going out (`Viewer::request_written`); a server that
    /// answers early is read all the same.
    ReadingHead { head: Vec<u8> },
    /// Reading parts. Boxed: the splitter is large beside the other stage.
    Streaming { splitter: Box<Splitter> },
}

/// Why the mode closes a viewer; each one is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Not a 200 MJPEG response, or no response at all.
    HttpError,
    /// The server closed (or reset) a streaming connection.
    Dropped,
}

/// One viewer connection.
struct Viewer {
    /// Bytes of `ViewerPlan::request` already written.
    request_written: usize,
    stage: Stage,
    /// From the connect, then from the response head, then from each part.
    clock: StallClock,
    /// The last `X-Frame`, to check the order and count skipped frames.
    last_frame_number: Option<u64>,
}

/// The viewer mode: the plan, the stall checks and the counts of parts (the
/// driver counts connects, I/O errors and bytes).
struct MjpegViewers<'a> {
    plan: &'a ViewerPlan,
    /// Parts per viewer, bytes and the ages of the parts (from their
    /// `X-Timestamp`; camloop's NO SIGNAL part has none: untimed), the
    /// stall checks and the drops.
    run: ViewerRun,
    /// Frames the `X-Frame` numbers skipped: frames the server did not send
    /// this viewer because its socket was full.
    frames_skipped: u64,
    /// Parts whose `X-Frame` was not above the one before.
    frame_order_errors: u64,
    http_errors: u64,
    /// Splitter drops of closed viewers (every viewer is closed at the end).
    malformed_parts: u64,
    skipped_bytes: u64,
}

impl<'a> MjpegViewers<'a> {
    fn new(plan: &'a ViewerPlan) -> Result<Self, String> {
        Ok(MjpegViewers {
            plan,
            run: ViewerRun::new(&plan.flags)?,
            frames_skipped: 0,
            frame_order_errors: 0,
            http_errors: 0,
            malformed_parts: 0,
            skipped_bytes: 0,
        })
    }

    /// Counts the parts the splitter has cut out for viewer `index`.
    fn count_parts(&mut self, index: usize, viewer: &mut Viewer, at: &Moment) {
        let Stage::Streaming { splitter } = &mut viewer.stage else {
            return;
        };
        while let Some(frame) = splitter.next_frame() {
            viewer.clock.restart(at.now);
            let part = frame.part.unwrap_or_default();
            if let Some(number) = part.frame_number {
                match viewer.last_frame_number {
                    Some(last) if number <= last => self.frame_order_errors += 1,
                    Some(last) => self.frames_skipped += number - last - 1,
                    None => {}
                }
                viewer.last_frame_number = Some(number);
            }
            if !self.run.tally.frame(index, at) {
                continue;
            }
            match part.timestamp_micros {
                Some(sent_us) => {
                    let now_us = unix_micros(SystemTime::now());
                    self.run.tally.age(now_us as i64 - sent_us as i64);
                }
                None => self.run.tally.untimed_frames += 1,
            }
        }
    }

    /// The driver's errors (connect failures, I/O errors) and the mode's:
    /// HTTP errors, drops, malformed parts and frames out of order. Stalls
    /// are not errors.
    fn errors(&self, counts: &Counts) -> u64 {
        counts.errors()
            + self.http_errors
            + self.run.dropped
            + self.malformed_parts
            + self.frame_order_errors
    }
}

impl Mode for MjpegViewers<'_> {
    type Conn = Viewer;
    type Reason = Reason;
    type Report = ViewerReport;

    /// Stall checks run from the start of the run.
    fn on_start(&mut self, start: Instant) {
        self.run.start(start);
    }

    /// The request goes out as soon as the connect completes; until a part
    /// arrives, a stall counts from the connect.
    fn open(&mut self, _index: usize, now: Instant) -> Viewer {
        Viewer {
            request_written: 0,
            stage: Stage::ReadingHead { head: Vec::new() },
            clock: StallClock::new(now),
            last_frame_number: None,
        }
    }

    fn unsent<'v>(&'v self, viewer: &'v Viewer) -> &'v [u8] {
        &self.plan.request[viewer.request_written..]
    }

    fn on_written(&mut self, viewer: &mut Viewer, written: usize) {
        viewer.request_written += written;
    }

    /// The response head first, then parts through the splitter.
    fn on_bytes(
        &mut self,
        index: usize,
        viewer: &mut Viewer,
        bytes: &[u8],
        at: &Moment,
    ) -> Result<(), Closing<Reason>> {
        self.run.tally.bytes(bytes.len(), at);
        match &mut viewer.stage {
            Stage::ReadingHead { head } => {
                head.extend_from_slice(bytes);
                let parsed = parse_response_head(head)
                    .map_err(|message| Closing::mode(Reason::HttpError, Some(message)))?;
                let Some((mut splitter, head_len)) = parsed else {
                    return Ok(());
                };
                splitter.push(&head[head_len..]);
                viewer.stage = Stage::Streaming {
                    splitter: Box::new(splitter),
                };
                // A stall is counted from the response on, not from the connect.
                viewer.clock.restart(at.now);
            }
            Stage::Streaming { splitter } => splitter.push(bytes),
        }
        self.count_parts(index, viewer, at);
        Ok(())
    }

    fn on_peer_closed(&self, viewer: &Viewer) -> Closing<Reason> {
        match viewer.stage {
            Stage::Streaming { .. } => Closing::mode(Reason::Dropped, None),
            Stage::ReadingHead { .. } => {
                let message = "the server closed before the response head".to_string();
                Closing::mode(Reason::HttpError, Some(message))
            }
        }
    }

    /// A reset of a stream is the server dropping the viewer.
    fn on_read_error(&self, viewer: &Viewer, error: io::Error) -> Closing<Reason> {
        match viewer.stage {
            Stage::Streaming { .. } if error.kind() == io::ErrorKind::ConnectionReset => {
                Closing::mode(Reason::Dropped, Some(error.to_string()))
            }
            _ => Closing::io(error),
        }
    }

    fn on_close(&mut self, viewer: Viewer, reason: Close<Reason>) {
        // The part a closed viewer was in the middle of is not malformed:
        // the drop is counted, so the splitter is not `finish`ed.
        if let Stage::Streaming { splitter } = &viewer.stage {
            let stats = splitter.stats();
            self.malformed_parts += stats.malformed_frames + stats.oversize_frames;
            self.skipped_bytes += stats.skipped_bytes;
        }
        if reason == Close::Mode(Reason::HttpError) {
            self.http_errors += 1;
        }
        self.run.closed(&viewer.clock, reason, Reason::Dropped);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.run.next_deadline()
    }

    fn on_timers(
        &mut self,
        at: &Moment,
        viewers: &mut Connections<Viewer>,
        _wake: &mut Vec<usize>,
    ) {
        let clocks = viewers.iter_mut().map(|viewer| &mut viewer.clock);
        self.run.check_stalls(at.now, clocks);
    }

    fn progress_line(&mut self, progress: &Progress) -> String {
        self.run.progress_line(progress)
    }

    fn report(self, measured: Measured) -> ViewerReport {
        let errors = self.errors(&measured.counts);
        ViewerReport {
            viewing: self.run.into_viewing(&self.plan.url, 0, &measured),
            frames_skipped: self.frames_skipped,
            malformed_parts: self.malformed_parts,
            skipped_bytes: self.skipped_bytes,
            frame_order_errors: self.frame_order_errors,
            http_errors: self.http_errors,
            errors,
        }
    }
}

/// Parses a complete response head at the front of `head`: the splitter for
/// the body and the head's length, `None` if incomplete, `Err` (why, for
/// the report) if it is not a 200 response.
fn parse_response_head(head: &[u8]) -> Result<Option<(Splitter, usize)>, String> {
    let Some(response) = ResponseHead::parse(head)? else {
        return Ok(None);
    };
    if response.status != 200 {
        return Err(response.status_line());
    }
    let content_type = response.field("content-type").unwrap_or_default();
    // Without a boundary parameter the splitter learns it from the body.
    let splitter = match boundary_from_content_type(content_type) {
        Some(boundary) => Splitter::with_boundary(boundary, DEFAULT_MAX_FRAME_BYTES),
        None => Splitter::new(DEFAULT_MAX_FRAME_BYTES),
    };
    Ok(Some((splitter, response.length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_response_starts_the_parts() {
        let ok =
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n--b";
        let parsed = parse_response_head(ok).expect("a 200");
        assert_eq!(parsed.map(|(_, len)| len), Some(ok.len() - 3));
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 200 OK\r\n"),
            Ok(None)
        ));
        let refused = parse_response_head(b"HTTP/1.1 401 Unauthorized\r\n\r\n");
        assert!(matches!(refused, Err(m) if m.contains("401")));
        assert!(parse_response_head(b"garbage\r\n\r\n").is_err());
    }
}
