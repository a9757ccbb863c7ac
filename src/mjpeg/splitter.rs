//! [`Splitter`]: an MJPEG byte stream in, one complete JPEG after another out.
//!
//! This module owns the state machine that finds frames in a stream, the
//! buffer that holds one unfinished frame, the frame size cap and the
//! counters of what was dropped. It never reads a socket or a pipe, never
//! looks at a clock and never decodes a picture: the caller pushes what it
//! read and pulls frames, which is what lets the tests cut one stream every
//! possible way.
//!
//! Two framings, told apart by the first bytes ([`Splitter::new`]):
//!
//! - concatenated JPEGs (`ffmpeg -f mjpeg -`, `rpicam-vid --codec mjpeg -o -`):
//!   the stream starts with SOI. A frame ends where the walk through its
//!   segments ([`JpegWalk`]) finds its EOI.
//! - multipart (`ffmpeg -f mpjpeg -`, an HTTP `multipart/x-mixed-replace`
//!   body): the stream starts with `--` (after optional blank lines), and the
//!   first line teaches the boundary; over HTTP the boundary comes from the
//!   `Content-Type` header instead ([`Splitter::with_boundary`]). A part with
//!   a `Content-Length` is that many bytes; without one it ends at its EOI.
//!
//! Resynchronising: bytes that are not part of a frame are skipped up to the
//! next SOI (concatenated) or boundary line (multipart). A frame that was cut
//! short must not swallow the next one: in concatenated streams a new SOI
//! where the old picture should go on starts the new frame (an SOI cannot
//! occur inside picture data), and in multipart streams the next boundary
//! line ends the part. A picture cut short inside its header segments is
//! noticed as soon as a jump over a segment lands on something that is not a
//! marker, and the search for the next SOI starts again inside that segment.
//!
//! Memory: at most one frame of [`max_frame_bytes`](Splitter::new) (and the
//! boundary line after it) plus one read is buffered. A larger frame is
//! dropped as soon as it passes the cap, without buffering the rest, and its
//! bytes are skipped.

use super::markers::{parse_header, JpegHeader, JpegWalk, Walk, SOI};
use super::multipart::{
    find_boundary_line, learn_boundary, normalize_boundary, parse_part_head, FirstLine, PartHead,
    PartHeaders, Search, MAX_BOUNDARY_LINE_BYTES,
};

/// Default cap on one frame: 4 MiB. Half of the server's 8 MiB output hard
/// cap (`OUTPUT_HARD_CAP_BYTES`), so one frame plus its part header can never
/// trip it on its own, and still far above what a 1080p camera sends (a few
/// hundred KiB per frame).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// The start of a frame in a concatenated stream: SOI and the first byte of
/// the next marker. Requiring the third byte keeps a stray `FF D8` in
/// garbage from starting a frame that is then reported as malformed.
const FRAME_START: [u8; 3] = [0xFF, 0xD8, 0xFF];

/// One complete JPEG taken from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The JPEG exactly as it was in the stream, SOI to EOI (for a multipart
    /// part with a `Content-Length`: the whole part body).
    pub jpeg: Vec<u8>,
    /// Width in pixels, from the SOF header.
    pub width: u32,
    /// Height in pixels, from the SOF header.
    pub height: u32,
    /// The part's headers in a multipart stream; `None` for concatenated JPEGs.
    pub part: Option<PartHeaders>,
}

/// How the stream is framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Not known yet: nothing but blank lines or garbage so far.
    Unknown,
    /// JPEG after JPEG.
    Concatenated,
    /// Multipart parts separated by boundary lines.
    Multipart {
        /// The boundary, without dashes.
        boundary: String,
    },
}

/// What the splitter did with the bytes it was given. Every byte pushed ends
/// up in exactly one of `frame_bytes`, `framing_bytes` and `skipped_bytes`,
/// or is still buffered ([`Splitter::buffered_bytes`]); after
/// [`Splitter::finish`] nothing is buffered.
///
/// A caller logs a warning when `skipped_bytes` or one of the drop counters
/// has grown since it last looked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitterStats {
    /// Frames handed out by [`Splitter::next_frame`].
    pub frames: u64,
    /// Bytes of those frames.
    pub frame_bytes: u64,
    /// Multipart framing: boundary lines, part heads, line ends between parts
    /// (and blank lines before the first frame, in either framing).
    pub framing_bytes: u64,
    /// Bytes thrown away: garbage between frames, and the bytes of every
    /// frame counted in `oversize_frames` or `malformed_frames`.
    pub skipped_bytes: u64,
    /// Frames or parts dropped because they were over the frame size cap.
    pub oversize_frames: u64,
    /// Frames or parts dropped because they were not a complete JPEG: cut
    /// short, broken headers, a part that does not start with SOI, a part
    /// head that does not parse.
    pub malformed_frames: u64,
}

/// Where the splitter is in the stream. Offsets are relative to the
/// splitter's cursor, the first byte not yet consumed.
#[derive(Debug)]
enum State {
    /// Nothing but blank lines (and garbage) so far. `line_start`: the
    /// cursor is at the start of a line, where a boundary line may begin.
    Detect { line_start: bool },
    /// Concatenated: looking for the next SOI.
    SeekSoi,
    /// Concatenated: a frame starts at the cursor.
    Picture { walk: JpegWalk },
    /// Multipart: looking for the next boundary line. `in_dropped_part`:
    /// the bytes up to it are the rest of a dropped part, and all skipped;
    /// otherwise line ends are framing (the CRLF after a part).
    SeekBoundary {
        line_start: bool,
        in_dropped_part: bool,
    },
    /// Multipart: a part head starts at the cursor.
    PartHead,
    /// Multipart: a part body of known length starts at the cursor.
    PartBody {
        headers: PartHeaders,
        length: usize,
        boundary: BoundarySearch,
    },
    /// Multipart: a part body without a length starts at the cursor.
    PartPicture {
        headers: PartHeaders,
        walk: JpegWalk,
        boundary: BoundarySearch,
    },
    /// Multipart: skipping the rest of an oversize part of known length.
    SkipPart { remaining: usize },
}

/// How far the search for a boundary line inside a part body has got,
/// relative to the body's start, so that a body arriving in small reads is
/// searched once, not once per read. A boundary line inside a body means the
/// part was cut short: its sender died mid-part and started over.
#[derive(Debug, Clone, Copy)]
struct BoundarySearch {
    from: usize,
    line_start: bool,
}

impl BoundarySearch {
    /// A search from the start of a body, which is the start of a line.
    fn new() -> Self {
        BoundarySearch {
            from: 0,
            line_start: true,
        }
    }

    /// Searches on through `body` (the same bytes as last time plus any that
    /// arrived since); the offset of a boundary line, if there is one.
    fn run(&mut self, body: &[u8], boundary: &[u8]) -> Option<usize> {
        match find_boundary_line(body, self.from, self.line_start, boundary) {
            Search::Found { at, .. } => Some(at),
            Search::NotYet { resume, line_start } => {
                self.from = resume;
                self.line_start = line_start;
                None
            }
        }
    }
}

/// What one step of the state machine did.
enum Step {
    /// Go on with the next state.
    Continue,
    /// A frame is ready.
    Frame(Frame),
    /// Nothing more to do until more bytes arrive.
    NeedMore,
}

/// Splits an MJPEG byte stream into frames; see the [module](self) docs.
///
/// ```
/// use camloop::mjpeg::{Splitter, DEFAULT_MAX_FRAME_BYTES};
///
/// # fn read_some() -> Vec<u8> { Vec::new() }
/// let mut splitter = Splitter::new(DEFAULT_MAX_FRAME_BYTES);
/// loop {
///     let bytes = read_some();
///     if bytes.is_empty() {
///         splitter.finish();
///         break;
///     }
///     splitter.push(&bytes);
///     while let Some(frame) = splitter.next_frame() {
///         println!("{}x{}, {} bytes", frame.width, frame.height, frame.jpeg.len());
///     }
/// }
/// println!("{:?}", splitter.stats());
/// ```
#[derive(Debug)]
pub struct Splitter {
    /// Received bytes; `buf[cursor..]` has not been consumed yet.
    buf: Vec<u8>,
    /// Consumed bytes are dropped lazily, at the next `push`, instead of
    /// shifting the buffer after every frame.
    cursor: usize,
    state: State,
    /// The multipart boundary without dashes, once known.
    boundary: Option<Vec<u8>>,
    max_frame_bytes: usize,
    stats: SplitterStats,
}

impl Splitter {
    /// A splitter that tells the framing from the first bytes: SOI means
    /// concatenated JPEGs, a line starting with `--` means multipart with
    /// that line's boundary. Frames over `max_frame_bytes` are dropped.
    pub fn new(max_frame_bytes: usize) -> Self {
        Splitter {
            buf: Vec::new(),
            cursor: 0,
            state: State::Detect { line_start: true },
            boundary: None,
            max_frame_bytes,
            stats: SplitterStats::default(),
        }
    }

    /// A splitter for a multipart body whose boundary is known, typically
    /// from an HTTP `Content-Type` (see
    /// [`boundary_from_content_type`](super::boundary_from_content_type));
    /// with or without the leading `--`, quoted or not. A boundary that is
    /// not one (empty, over 70 bytes, control characters) is ignored, and
    /// the boundary is learnt from the stream as with [`Splitter::new`].
    pub fn with_boundary(boundary: &str, max_frame_bytes: usize) -> Self {
        let mut splitter = Splitter::new(max_frame_bytes);
        if let Some(boundary) = normalize_boundary(boundary) {
            splitter.boundary = Some(boundary);
            splitter.state = State::SeekBoundary {
                line_start: true,
                in_dropped_part: false,
            };
        }
        splitter
    }

    /// Appends bytes read from the stream.
    ///
    /// The caller bounds the memory: push one read at a time, and only after
    /// [`next_frame`](Splitter::next_frame) returned `None`. Then at most one
    /// read plus one unfinished frame (under the cap) is buffered.
    pub fn push(&mut self, mut bytes: &[u8]) {
        // The rest of an oversize part is skipped here, so it is never copied.
        if let State::SkipPart { remaining } = &mut self.state {
            let skipped = (*remaining).min(bytes.len());
            *remaining -= skipped;
            self.stats.skipped_bytes += skipped as u64;
            bytes = &bytes[skipped..];
        }
        if bytes.is_empty() {
            return;
        }
        if self.cursor > 0 {
            self.buf.drain(..self.cursor);
            self.cursor = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, or `None` when more bytes are needed. Drops
    /// on the way are counted in [`stats`](Splitter::stats).
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let step = match self.state {
                State::Detect { line_start } => self.detect(line_start),
                State::SeekSoi => self.seek_soi(),
                State::Picture { .. } => self.picture(),
                State::SeekBoundary {
                    line_start,
                    in_dropped_part,
                } => self.seek_boundary(line_start, in_dropped_part),
                State::PartHead => self.part_head(),
                State::PartBody { .. } => self.part_body(),
                State::PartPicture { .. } => self.part_picture(),
                State::SkipPart { .. } => self.skip_part(),
            };
            match step {
                Step::Continue => {}
                Step::Frame(frame) => return Some(frame),
                Step::NeedMore => {
                    self.release_if_drained();
                    return None;
                }
            }
        }
    }

    /// The stream has ended: what is still buffered (an unfinished frame,
    /// the start of a boundary line) is counted as skipped, an unfinished
    /// frame also as malformed. The splitter starts over in the framing it
    /// had, as for a new stream from the same source.
    pub fn finish(&mut self) {
        // A boundary line with nothing after it is how some senders stop;
        // anything else unfinished is a frame cut short.
        let mid_frame = match self.state {
            State::Picture { .. } | State::PartBody { .. } | State::PartPicture { .. } => true,
            State::PartHead => self.buffered_bytes() > 0,
            _ => false,
        };
        if mid_frame {
            self.stats.malformed_frames += 1;
        }
        self.skip(self.buffered_bytes());
        self.state = match (&self.state, &self.boundary) {
            (State::Detect { .. }, _) => State::Detect { line_start: true },
            (_, Some(_)) => State::SeekBoundary {
                line_start: true,
                in_dropped_part: false,
            },
            (_, None) => State::SeekSoi,
        };
        self.release_if_drained();
    }

    /// What happened so far.
    pub fn stats(&self) -> SplitterStats {
        self.stats
    }

    /// The framing, once the first frame or boundary line has shown it.
    pub fn framing(&self) -> Framing {
        match (&self.boundary, &self.state) {
            (Some(boundary), _) => Framing::Multipart {
                boundary: String::from_utf8_lossy(boundary).into_owned(),
            },
            (None, State::Detect { .. }) => Framing::Unknown,
            (None, _) => Framing::Concatenated,
        }
    }

    /// Bytes received and not consumed yet: at most one unfinished frame or
    /// part head, plus the last read.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() - self.cursor
    }

    /// The unconsumed bytes.
    fn pending(&self) -> &[u8] {
        &self.buf[self.cursor..]
    }

    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.buffered_bytes());
        self.cursor += n;
    }

    fn skip(&mut self, n: usize) {
        self.consume(n);
        self.stats.skipped_bytes += n as u64;
    }

    fn frame_bytes_out(&mut self, n: usize) {
        self.consume(n);
        self.stats.frames += 1;
        self.stats.frame_bytes += n as u64;
    }

    fn framing_bytes(&mut self, n: usize) {
        self.consume(n);
        self.stats.framing_bytes += n as u64;
    }

    /// Consumes `n` bytes before a boundary line: all skipped if they are
    /// the rest of a dropped part, else line ends are framing and anything
    /// else is skipped. (Counting the same bytes the same way however the
    /// part was dropped keeps the counters independent of the read sizes.)
    fn skip_to_boundary(&mut self, n: usize, in_dropped_part: bool) {
        if in_dropped_part {
            self.skip(n);
            return;
        }
        let line_ends = self.pending()[..n]
            .iter()
            .filter(|&&b| b == b'\r' || b == b'\n')
            .count();
        self.framing_bytes(line_ends);
        self.skip(n - line_ends);
    }

    /// Frees the buffer once everything in it is consumed, so an idle
    /// splitter holds no memory beyond its capacity.
    fn release_if_drained(&mut self) {
        if self.cursor == self.buf.len() {
            self.buf.clear();
            self.cursor = 0;
        }
    }

    /// Handles the bytes before the framing is known.
    fn detect(&mut self, line_start: bool) -> Step {
        let pending = self.pending();
        let Some(&first) = pending.first() else {
            return Step::NeedMore;
        };
        if first == b'\r' || first == b'\n' {
            self.framing_bytes(1);
            self.state = State::Detect {
                line_start: first == b'\n',
            };
            return Step::Continue;
        }
        if pending.starts_with(&FRAME_START) {
            self.state = State::SeekSoi;
            return Step::Continue;
        }
        if FRAME_START.starts_with(pending) {
            return Step::NeedMore;
        }
        if line_start && pending.starts_with(b"--") {
            match learn_boundary(pending) {
                FirstLine::Boundary { boundary, len } => {
                    self.boundary = Some(boundary);
                    self.framing_bytes(len);
                    self.state = State::PartHead;
                    return Step::Continue;
                }
                FirstLine::NeedMore => return Step::NeedMore,
                FirstLine::Other => {}
            }
        } else if line_start && pending == b"-" {
            return Step::NeedMore;
        }
        self.skip(1);
        self.state = State::Detect { line_start: false };
        Step::Continue
    }

    /// Concatenated: skips to the next SOI.
    fn seek_soi(&mut self) -> Step {
        let pending = self.pending();
        let mut at = 0;
        loop {
            match pending[at..].iter().position(|&b| b == 0xFF) {
                None => {
                    self.skip(pending.len());
                    return Step::NeedMore;
                }
                Some(skip) => at += skip,
            }
            let candidate = &pending[at..];
            if candidate.starts_with(&FRAME_START) {
                self.skip(at);
                self.state = State::Picture {
                    walk: JpegWalk::new(),
                };
                return Step::Continue;
            }
            if FRAME_START.starts_with(candidate) {
                // Maybe an SOI whose next byte has not arrived.
                self.skip(at);
                return Step::NeedMore;
            }
            at += 1;
        }
    }

    /// Concatenated: walks the picture at the cursor to its end.
    fn picture(&mut self) -> Step {
        let State::Picture { walk } = &mut self.state else {
            unreachable!("picture() runs in State::Picture");
        };
        let pending = &self.buf[self.cursor..];
        // Only the first `max_frame_bytes` are walked: a frame that has not
        // ended within them is over the cap, however much more has arrived.
        let window = &pending[..pending.len().min(self.max_frame_bytes)];
        let walked = walk.advance(window);
        let header = walk.header();
        // Skip what has been walked if the frame is dropped as oversize (at
        // least the SOI, to make progress); the search for the next SOI then
        // skips the rest, since picture data cannot contain an SOI.
        let oversize_skip = walk.position().min(window.len()).max(SOI.len());
        let over_cap = pending.len() >= self.max_frame_bytes;
        match walked {
            Walk::Complete { end } => {
                self.state = State::SeekSoi;
                self.take_frame(end, header, None)
            }
            Walk::Broken { resume } => {
                self.stats.malformed_frames += 1;
                self.skip(resume);
                self.state = State::SeekSoi;
                Step::Continue
            }
            Walk::Incomplete if over_cap => {
                self.stats.oversize_frames += 1;
                self.skip(oversize_skip);
                self.state = State::SeekSoi;
                Step::Continue
            }
            Walk::Incomplete => Step::NeedMore,
        }
    }

    /// Multipart: skips to the next boundary line.
    fn seek_boundary(&mut self, line_start: bool, in_dropped_part: bool) -> Step {
        let boundary = self.boundary.as_deref().unwrap_or_default();
        match find_boundary_line(self.pending(), 0, line_start, boundary) {
            Search::Found { at, len, closing } => {
                self.skip_to_boundary(at, in_dropped_part);
                self.framing_bytes(len);
                // After the closing delimiter comes an epilogue, which is
                // skipped up to the next boundary line like any garbage.
                self.state = if closing {
                    State::SeekBoundary {
                        line_start: true,
                        in_dropped_part: false,
                    }
                } else {
                    State::PartHead
                };
                Step::Continue
            }
            Search::NotYet { resume, line_start } => {
                self.skip_to_boundary(resume, in_dropped_part);
                self.state = State::SeekBoundary {
                    line_start,
                    in_dropped_part,
                };
                Step::NeedMore
            }
        }
    }

    /// Multipart: parses the part head at the cursor.
    fn part_head(&mut self) -> Step {
        let pending = self.pending();
        // Some cameras send the picture right after the boundary line.
        if pending.starts_with(&SOI) {
            self.start_part_body(PartHeaders::default());
            return Step::Continue;
        }
        if SOI.starts_with(pending) {
            return Step::NeedMore;
        }
        match parse_part_head(pending) {
            PartHead::Complete { headers, len } => {
                self.framing_bytes(len);
                self.start_part_body(headers);
                Step::Continue
            }
            PartHead::Incomplete => Step::NeedMore,
            PartHead::Malformed => {
                // The head starts a line, which may well be the next boundary.
                self.stats.malformed_frames += 1;
                self.state = State::SeekBoundary {
                    line_start: true,
                    in_dropped_part: true,
                };
                Step::Continue
            }
        }
    }

    fn start_part_body(&mut self, headers: PartHeaders) {
        self.state = match headers.content_length {
            Some(length) if length > self.max_frame_bytes => {
                self.stats.oversize_frames += 1;
                State::SkipPart { remaining: length }
            }
            Some(length) => State::PartBody {
                headers,
                length,
                boundary: BoundarySearch::new(),
            },
            None => State::PartPicture {
                headers,
                walk: JpegWalk::new(),
                boundary: BoundarySearch::new(),
            },
        };
    }

    /// Multipart: a part body of known length.
    fn part_body(&mut self) -> Step {
        let State::PartBody {
            headers,
            length,
            boundary: search,
        } = &mut self.state
        else {
            unreachable!("part_body() runs in State::PartBody");
        };
        let length = *length;
        let pending = &self.buf[self.cursor..];
        let boundary = self.boundary.as_deref().unwrap_or_default();
        // The search goes one boundary line past the body, for a line that
        // starts inside the body and ends after it.
        let searched = &pending[..pending.len().min(length + MAX_BOUNDARY_LINE_BYTES)];
        match search.run(searched, boundary) {
            Some(at) if at < length => return self.drop_cut_part(at),
            // The boundary line right after the body, as it should be.
            Some(_) => {}
            // A line that starts inside the body may still turn out to be a
            // boundary line: wait for its end.
            None if search.from < length && pending.len() >= length => return Step::NeedMore,
            None => {}
        }
        if pending.len() < length {
            return Step::NeedMore;
        }
        let header = parse_header(&pending[..length]);
        let part = Some(std::mem::take(headers));
        self.state = State::SeekBoundary {
            line_start: false,
            in_dropped_part: false,
        };
        self.take_frame(length, header, part)
    }

    /// Multipart: a part body without a length, which ends at its EOI.
    fn part_picture(&mut self) -> Step {
        let max = self.max_frame_bytes;
        let State::PartPicture {
            headers,
            walk,
            boundary: search,
        } = &mut self.state
        else {
            unreachable!("part_picture() runs in State::PartPicture");
        };
        let pending = &self.buf[self.cursor..];
        let boundary = self.boundary.as_deref().unwrap_or_default();
        let window = &pending[..pending.len().min(max)];
        let walked = walk.advance(window);
        // The boundary search covers what the walk has covered.
        let walked_to = match walked {
            Walk::Complete { end } => end,
            Walk::Incomplete | Walk::Broken { .. } => window.len(),
        };
        if let Some(at) = search.run(&pending[..walked_to], boundary) {
            return self.drop_cut_part(at);
        }
        // No boundary line before `searched`: all of it belongs to this part.
        let (searched, line_start) = (search.from, search.line_start);
        let header = walk.header();
        let over_cap = pending.len() >= max;
        match walked {
            Walk::Complete { end } => {
                let part = Some(std::mem::take(headers));
                self.state = State::SeekBoundary {
                    line_start: false,
                    in_dropped_part: false,
                };
                self.take_frame(end, header, part)
            }
            Walk::Broken { .. } => {
                self.stats.malformed_frames += 1;
                self.drop_part(searched, line_start)
            }
            Walk::Incomplete if over_cap => {
                self.stats.oversize_frames += 1;
                self.drop_part(searched, line_start)
            }
            Walk::Incomplete => Step::NeedMore,
        }
    }

    /// A boundary line at `at` inside the part at the cursor: the part was
    /// cut short and is dropped, the line starts the next part.
    fn drop_cut_part(&mut self, at: usize) -> Step {
        self.stats.malformed_frames += 1;
        self.drop_part(at, true)
    }

    /// Skips the first `len` bytes of a dropped part and goes on looking for
    /// the next boundary line.
    fn drop_part(&mut self, len: usize, line_start: bool) -> Step {
        self.skip(len);
        self.state = State::SeekBoundary {
            line_start,
            in_dropped_part: true,
        };
        Step::Continue
    }

    /// Multipart: skipping an oversize part of known length.
    fn skip_part(&mut self) -> Step {
        let State::SkipPart { remaining } = &mut self.state else {
            unreachable!("skip_part() runs in State::SkipPart");
        };
        let skipped = (*remaining).min(self.buf.len() - self.cursor);
        *remaining -= skipped;
        let done = *remaining == 0;
        self.skip(skipped);
        if done {
            self.state = State::SeekBoundary {
                line_start: false,
                in_dropped_part: false,
            };
            Step::Continue
        } else {
            Step::NeedMore
        }
    }

    /// Hands out the first `len` pending bytes as a frame, if `header` says
    /// they are a JPEG with a frame header; otherwise they are skipped as a
    /// malformed frame.
    fn take_frame(
        &mut self,
        len: usize,
        header: Option<JpegHeader>,
        part: Option<PartHeaders>,
    ) -> Step {
        let Some(header) = header else {
            self.stats.malformed_frames += 1;
            self.skip(len);
            return Step::Continue;
        };
        let jpeg = self.pending()[..len].to_vec();
        self.frame_bytes_out(len);
        Step::Frame(Frame {
            jpeg,
            width: header.width,
            height: header.height,
            part,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(width: u16, height: u16) -> Vec<u8> {
        let pixels: Vec<u8> = (0..usize::from(width) * usize::from(height) * 3)
            .map(|i| (i * 13 % 251) as u8)
            .collect();
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 80)
            .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
            .expect("encode");
        jpeg
    }

    /// Pushes `stream` in one go and takes every frame out.
    fn frames(splitter: &mut Splitter, stream: &[u8]) -> Vec<Frame> {
        splitter.push(stream);
        std::iter::from_fn(|| splitter.next_frame()).collect()
    }

    fn part(head: &str, jpeg: &[u8]) -> Vec<u8> {
        let mut part = head.as_bytes().to_vec();
        part.extend_from_slice(jpeg);
        part.extend_from_slice(b"\r\n");
        part
    }

    #[test]
    fn the_framing_is_told_from_the_first_bytes() {
        let jpeg = picture(16, 8);
        let mut splitter = Splitter::new(DEFAULT_MAX_FRAME_BYTES);
        assert_eq!(splitter.framing(), Framing::Unknown);
        let mut stream = b"\r\n".to_vec();
        stream.extend_from_slice(&jpeg);
        let out = frames(&mut splitter, &stream);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].width, out[0].height, out[0].part.is_none()),
            (16, 8, true)
        );
        assert_eq!(splitter.framing(), Framing::Concatenated);

        let mut splitter = Splitter::new(DEFAULT_MAX_FRAME_BYTES);
        let stream = part("\r\n--ffmpeg\r\nContent-type: image/jpeg\r\n\r\n", &jpeg);
        assert_eq!(frames(&mut splitter, &stream).len(), 1);
        let boundary = "ffmpeg".to_string();
        assert_eq!(splitter.framing(), Framing::Multipart { boundary });
        assert_eq!(
            splitter.stats().framing_bytes as usize,
            stream.len() - jpeg.len()
        );
    }

    #[test]
    fn a_known_boundary_may_come_with_dashes_and_quotes() {
        let jpeg = picture(8, 8);
        let stream = part("--frame\r\n\r\n", &jpeg);
        for boundary in ["frame", "--frame", "\"frame\""] {
            let mut splitter = Splitter::with_boundary(boundary, DEFAULT_MAX_FRAME_BYTES);
            assert_eq!(frames(&mut splitter, &stream).len(), 1, "{boundary}");
        }
        // Not a boundary at all: it is learnt from the stream instead.
        let mut splitter = Splitter::with_boundary("--", DEFAULT_MAX_FRAME_BYTES);
        assert_eq!(frames(&mut splitter, &stream).len(), 1);
        // A line with the wrong boundary is not one.
        let mut splitter = Splitter::with_boundary("other", DEFAULT_MAX_FRAME_BYTES);
        assert!(frames(&mut splitter, &stream).is_empty());
        splitter.finish();
        let stats = splitter.stats();
        assert_eq!(
            stats.skipped_bytes + stats.framing_bytes,
            stream.len() as u64
        );
    }

    #[test]
    fn parts_without_headers_empty_parts_and_epilogues() {
        let jpeg = picture(8, 8);
        let mut stream = part("--b\r\n", &jpeg); // picture right after the line
        stream.extend_from_slice(b"--b\r\n"); // an empty part
        stream.extend(part("--b\r\nContent-Length: 3\r\n\r\n", b"abc")); // not a JPEG
        stream.extend(part("--b\r\n\r\n", &jpeg));
        stream.extend_from_slice(b"--b--\r\nepilogue\r\n");
        stream.extend(part("--b\r\nContent-Type: image/jpeg\r\n\r\n", &jpeg));
        let mut splitter = Splitter::new(DEFAULT_MAX_FRAME_BYTES);
        let out = frames(&mut splitter, &stream);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|frame| frame.jpeg == jpeg));
        let stats = splitter.stats();
        assert_eq!(stats.malformed_frames, 2, "{stats:?}");
        assert_eq!(stats.skipped_bytes, 3 + "epilogue".len() as u64);
    }

    #[test]
    fn a_picture_cut_inside_its_headers_does_not_swallow_the_next() {
        let jpeg = picture(24, 16);
        // Cut inside the quantisation tables: the jump over their length
        // lands inside the next picture, on a byte that is not a marker.
        let dqt = jpeg.windows(2).position(|w| w == [0xFF, 0xDB]).unwrap();
        let mut stream = jpeg[..dqt + 10].to_vec();
        stream.extend_from_slice(&jpeg);
        let mut splitter = Splitter::new(DEFAULT_MAX_FRAME_BYTES);
        let out = frames(&mut splitter, &stream);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].jpeg, jpeg);
        assert_eq!(splitter.stats().malformed_frames, 1);
    }

    #[test]
    fn finish_counts_what_was_left_unfinished() {
        let jpeg = picture(8, 8);
        let mut stream = jpeg.clone();
        stream.extend_from_slice(&jpeg[..jpeg.len() / 2]);
        let mut splitter = Splitter::new(DEFAULT_MAX_FRAME_BYTES);
        assert_eq!(frames(&mut splitter, &stream).len(), 1);
        splitter.finish();
        let stats = splitter.stats();
        assert_eq!(stats.malformed_frames, 1);
        assert_eq!(stats.frame_bytes + stats.skipped_bytes, stream.len() as u64);
        assert_eq!(splitter.buffered_bytes(), 0);

        // A boundary line with nothing after it is a normal end.
        let mut splitter = Splitter::new(DEFAULT_MAX_FRAME_BYTES);
        let mut stream = part("--b\r\n\r\n", &jpeg);
        stream.extend_from_slice(b"--b\r\n");
        assert_eq!(frames(&mut splitter, &stream).len(), 1);
        splitter.finish();
        assert_eq!(splitter.stats().malformed_frames, 0);
    }

    #[test]
    fn garbage_alone_is_skipped_and_not_kept() {
        let garbage: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
        for mut splitter in [Splitter::new(1024), Splitter::with_boundary("b", 1024)] {
            for read in garbage.chunks(1000) {
                splitter.push(read);
                while splitter.next_frame().is_some() {}
                assert!(
                    splitter.buffered_bytes() <= 1024,
                    "{}",
                    splitter.buffered_bytes()
                );
            }
            splitter.finish();
            let stats = splitter.stats();
            assert_eq!(stats.frames, 0);
            assert_eq!(
                stats.skipped_bytes + stats.framing_bytes,
                garbage.len() as u64
            );
        }
    }
}
