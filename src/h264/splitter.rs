//! [`AnnexBSplitter`]: an H.264 Annex-B byte stream in, one complete access
//! unit after another out.
//!
//! This module owns the state machine that finds NAL units and access units
//! (AUs) in a stream, the buffer that holds one unfinished AU, the AU size
//! cap, the parameter sets seen so far, the streams camloop refuses, and the
//! counters of what was dropped. It never reads a pipe, never looks at a
//! clock and never decodes a picture: the caller pushes what it read and
//! pulls AUs, which is what lets the tests cut one stream every possible way.
//!
//! NAL units ([`super::nal`]): a start code is `00 00 01`. The splitter
//! does not hold zero bytes back in a buffer but counts them: a run of zeros
//! followed by `01` was a start code (with the zeros that end the NAL unit
//! before it, all dropped), followed by anything else it was data. So a
//! start code split across reads is found without looking back, and a NAL
//! unit ends up without its trailing zeros. An empty NAL unit (a start code
//! right after a start code) is skipped.
//!
//! Access units (§7.4.1.2.3): an AU is one picture, all its slices, with the
//! NAL units that go with it. The first of these starts the next AU:
//!
//! - an access unit delimiter (AUD);
//! - an SPS, PPS, SEI or a NAL unit of type 14 to 18, once the current AU
//!   has a slice;
//! - a slice whose `first_mb_in_slice` is 0, the start of a picture, once
//!   the current AU has a slice. (Further slices of the same picture start
//!   further on: that is how a picture of several slices stays one AU.)
//!
//! An end of sequence or end of stream NAL unit is the last of its AU, which
//! goes out at once. Filler data is dropped. Annex-B says nowhere how long an
//! AU is, so an AU is complete only when the next AU's first NAL unit has
//! begun: its header byte has arrived, and for a slice the byte after it,
//! which holds `first_mb_in_slice`. For a camera that is one frame interval
//! after the AU's own last byte, and the splitter waits for nothing more.
//!
//! Losses: an AU over the cap ([`AnnexBSplitter::new`]) is dropped as soon
//! as it passes the cap, and the rest of it is skipped, not buffered. An AU
//! with a corrupt NAL unit (the forbidden bit set, `nal_unit_type` 0 or 24
//! to 31) is dropped, and so is one whose picture does not begin with its
//! first slice (its start was lost, or the stream was joined mid-picture).
//! Bytes outside any NAL unit (before the first start code, after an end of
//! stream) are garbage. After any of these, or an AU cut short by
//! [`finish`](AnnexBSplitter::finish), the next AU out has
//! [`follows_gap`](AccessUnit::follows_gap) set: the pictures after it may
//! refer to one that never came, so a consumer waits for the next IDR.
//! Garbage *inside* a NAL unit cannot be told from its data without decoding
//! the slice, so it stays in its AU for the decoder to notice.
//!
//! Refusals ([`Refusal`]): an H.265 stream (told from its first NAL unit
//! header) and a stream whose SPS says frames are reordered (B-frames) are
//! not passed on; from then on nothing comes out.
//!
//! Memory: one unfinished AU (at most the cap) and the unscanned part of one
//! read. Work: each byte pushed is scanned once (the scan stops where it
//! got to and goes on from there after the next push; a run of non-zero
//! bytes is copied as a whole) and copied twice, into the read buffer and
//! into its AU, which is then handed out without another copy.

use std::fmt;

use super::detect::{is_h265_start, may_be_h265_start};
use super::nal::{self, is_corrupt_header, is_vcl, nal_unit_type, START_CODE};
use super::sps::{parse_sps, ParameterSets, SpsInfo};

/// Default cap on one AU: the same 4 MiB as an MJPEG frame
/// ([`crate::mjpeg::DEFAULT_MAX_FRAME_BYTES`]), for the same reason (half
/// the server's output hard cap). A 1080p IDR picture is a few hundred KiB.
pub const DEFAULT_MAX_AU_BYTES: usize = crate::mjpeg::DEFAULT_MAX_FRAME_BYTES;

/// One access unit: one picture with the NAL units that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The AU in Annex-B form: every NAL unit preceded by the start code
    /// `00 00 00 01`, without empty NAL units, filler data or the zero
    /// bytes that may follow a NAL unit in the stream.
    pub data: Vec<u8>,
    /// It has a slice of an IDR picture: a decoder can start here.
    pub keyframe: bool,
    /// Something was lost since the previous AU handed out (an AU dropped as
    /// over the cap, corrupt or cut short, or garbage skipped): the pictures
    /// may refer to one that never came, so a consumer waits for the next
    /// keyframe. The first AU of a splitter has it only if something was
    /// lost before it.
    pub follows_gap: bool,
    /// The parameter sets ([`AnnexBSplitter::parameter_sets`]) changed since
    /// the previous AU was handed out: this AU (or one dropped before it)
    /// carried an SPS or PPS other than the ones before, such as a new
    /// picture size. The first SPS and PPS of a stream are a change too.
    pub parameter_sets_changed: bool,
}

impl AccessUnit {
    /// The AU's NAL units, each from its header byte on, without start
    /// codes.
    pub fn nal_units(&self) -> impl Iterator<Item = &[u8]> {
        nal::nal_units(&self.data)
    }
}

/// Why a stream is not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The stream is H.265, which `-c:v copy -f h264` passes through
    /// unchanged.
    H265,
    /// The SPS says frames come out of display order (B-frames).
    Reordering {
        /// The VUI's `max_num_reorder_frames`, above 0.
        max_num_reorder_frames: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::H265 => f.write_str("H.265 is not supported (only H.264 passes through)"),
            Refusal::Reordering {
                max_num_reorder_frames,
            } => write!(
                f,
                "the stream reorders frames (B-frames, max_num_reorder_frames={max_num_reorder_frames}), \
                 which WebRTC and low-latency players cannot carry; encode without B-frames"
            ),
        }
    }
}

/// What the splitter did with the stream.
///
/// A caller logs a warning when `garbage_bytes` or one of the drop counters
/// has grown since it last looked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitterStats {
    /// AUs handed out by [`AnnexBSplitter::next_au`].
    pub access_units: u64,
    /// Bytes of those AUs.
    pub au_bytes: u64,
    /// NAL units in those AUs.
    pub nal_units: u64,
    /// Those AUs that are keyframes (IDR).
    pub keyframes: u64,
    /// AUs dropped because they were over the cap.
    pub oversize_dropped: u64,
    /// AUs dropped because a NAL unit in them was corrupt, or their picture
    /// did not start with its first slice.
    pub corrupt_dropped: u64,
    /// AUs dropped because the stream ended in them
    /// ([`AnnexBSplitter::finish`]).
    pub truncated_dropped: u64,
    /// Bytes of the dropped AUs, as far as they arrived.
    pub dropped_bytes: u64,
    /// Bytes outside any NAL unit: before the first start code, or after an
    /// end of sequence or end of stream NAL unit.
    pub garbage_bytes: u64,
    /// AUs without a picture (only parameter sets, SEI or an end of stream,
    /// say, followed by an AUD), not handed out. Nothing is lost: the
    /// parameter sets in them were taken.
    pub without_picture: u64,
    /// SPS NAL units that did not parse, and were ignored.
    pub sps_errors: u64,
    /// Times an SPS or PPS differed from the one before it (the first ones
    /// count).
    pub parameter_set_changes: u64,
    /// Bytes after the one that showed a [`Refusal`], not looked at.
    pub refused_bytes: u64,
}

/// Where the scan is in the NAL unit structure.
#[derive(Debug, Clone, Copy)]
enum Nal {
    /// Outside any NAL unit: before the first start code, or after an end
    /// of sequence or stream. Bytes here are garbage.
    Outside,
    /// Right after a start code: the new NAL unit's first bytes, held until
    /// they tell which AU it belongs to.
    Head { bytes: [u8; 2], len: usize },
    /// Inside a NAL unit that goes into the AU; it starts at `start` in the
    /// AU's data.
    Kept { nal_unit_type: u8, start: usize },
    /// Inside a NAL unit whose bytes are not kept: its AU is being dropped,
    /// or it is filler data.
    Skipped,
}

/// The AU being put together.
#[derive(Debug, Default)]
struct Unfinished {
    /// Its NAL units so far, in Annex-B form (empty once dropped).
    data: Vec<u8>,
    /// NAL units begun in it, kept or not: 0 means the AU has not begun.
    nal_units: u64,
    /// NAL units in `data`.
    kept_nal_units: u64,
    /// It has a slice.
    has_picture: bool,
    /// It has an IDR slice.
    keyframe: bool,
    /// It is being dropped: its bytes are skipped up to the next AU.
    dropped: bool,
}

/// Why an AU is dropped.
#[derive(Debug, Clone, Copy)]
enum Loss {
    Oversize,
    Corrupt,
}

/// Splits an H.264 Annex-B byte stream into access units; see the
/// [module](self) docs.
///
/// ```
/// use camloop::h264::{AnnexBSplitter, DEFAULT_MAX_AU_BYTES};
///
/// # fn read_some() -> Vec<u8> { Vec::new() }
/// let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
/// loop {
///     let bytes = read_some();
///     if bytes.is_empty() {
///         splitter.finish();
///         break;
///     }
///     splitter.push(&bytes);
///     while let Some(au) = splitter.next_au() {
///         println!("{} bytes, keyframe: {}", au.data.len(), au.keyframe);
///     }
///     if let Some(refusal) = splitter.refusal() {
///         println!("{refusal}");
///         break;
///     }
/// }
/// println!("{:?}", splitter.stats());
/// ```
#[derive(Debug)]
pub struct AnnexBSplitter {
    max_au_bytes: usize,
    /// Pushed bytes; `input[scanned..]` has not been scanned yet.
    input: Vec<u8>,
    scanned: usize,
    /// Zero bytes just scanned, not yet known to be data or the start of a
    /// start code.
    zeros: usize,
    nal: Nal,
    au: Unfinished,
    /// A complete AU, found by the scan and not yet taken.
    ready: Option<AccessUnit>,
    /// No NAL unit has begun since the splitter was made or finished.
    at_stream_start: bool,
    /// Something was lost since the last AU handed out.
    gap: bool,
    /// The parameter sets changed since the last AU handed out.
    sets_changed: bool,
    /// The latest SPS that parsed, and what it says.
    sps: Option<(Vec<u8>, SpsInfo)>,
    /// The latest PPS.
    pps: Option<Vec<u8>>,
    /// `sps` and `pps` together, once both are known.
    parameter_sets: Option<ParameterSets>,
    refusal: Option<Refusal>,
    stats: SplitterStats,
}

impl AnnexBSplitter {
    /// A splitter for a new stream. AUs over `max_au_bytes` (in the form
    /// they are handed out in, four-byte start codes included) are dropped.
    pub fn new(max_au_bytes: usize) -> Self {
        AnnexBSplitter {
            max_au_bytes,
            input: Vec::new(),
            scanned: 0,
            zeros: 0,
            nal: Nal::Outside,
            au: Unfinished::default(),
            ready: None,
            at_stream_start: true,
            gap: false,
            sets_changed: false,
            sps: None,
            pps: None,
            parameter_sets: None,
            refusal: None,
            stats: SplitterStats::default(),
        }
    }

    /// Appends bytes read from the stream, cut anywhere.
    ///
    /// The caller bounds the memory: push one read at a time, and only after
    /// [`next_au`](Self::next_au) returned `None`. Then at most one read
    /// plus one unfinished AU (under the cap) is buffered.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.refusal.is_some() {
            self.stats.refused_bytes += bytes.len() as u64;
            return;
        }
        self.input.drain(..self.scanned);
        self.scanned = 0;
        self.input.extend_from_slice(bytes);
    }

    /// The next complete AU, or `None` when more bytes are needed (or the
    /// stream was refused). Drops on the way are counted in
    /// [`stats`](Self::stats).
    pub fn next_au(&mut self) -> Option<AccessUnit> {
        if self.ready.is_none() {
            self.scan();
        }
        self.ready.take()
    }

    /// The stream has ended: an unfinished AU is dropped as cut short (the
    /// last AU of a stream cannot be told complete: nothing follows it, and
    /// a source that dies mid-AU looks the same), and the next AU out has
    /// `follows_gap`. The splitter starts over as for a new stream from the
    /// same source, keeping its parameter sets, counters and refusal.
    ///
    /// Call it after [`next_au`](Self::next_au) returned `None`; bytes
    /// pushed and not yet scanned are dropped with the unfinished AU.
    pub fn finish(&mut self) {
        let unscanned = (self.input.len() - self.scanned) as u64;
        self.input.clear();
        self.scanned = 0;
        if self.refusal.is_some() {
            return;
        }
        let head_bytes = match self.nal {
            Nal::Head { len, .. } => len,
            _ => 0,
        };
        let unfinished = self.au.nal_units > 0 || head_bytes > 0 || unscanned > 0;
        if unfinished && !self.au.dropped {
            self.stats.truncated_dropped += 1;
            self.gap = true;
        }
        self.stats.dropped_bytes += self.au.data.len() as u64 + head_bytes as u64 + unscanned;
        self.au = Unfinished::default();
        self.nal = Nal::Outside;
        self.zeros = 0;
        self.at_stream_start = true;
    }

    /// The latest SPS that parsed and the latest PPS, once both were seen.
    /// It changes as soon as a new SPS or PPS is complete, which is before
    /// the AU that carries it is handed out (with
    /// [`parameter_sets_changed`](AccessUnit::parameter_sets_changed)).
    pub fn parameter_sets(&self) -> Option<&ParameterSets> {
        self.parameter_sets.as_ref()
    }

    /// Why the stream is not passed on, once it turned out to be H.265 or to
    /// reorder frames. From then on no AU comes out; make a new splitter to
    /// try the source again.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal
    }

    /// Bytes held: the unfinished AU, and pushed bytes not yet scanned.
    pub fn buffered_bytes(&self) -> usize {
        let head_bytes = match self.nal {
            Nal::Head { len, .. } => len,
            _ => 0,
        };
        self.au.data.len() + head_bytes + (self.input.len() - self.scanned)
    }

    /// What the splitter did so far.
    pub fn stats(&self) -> &SplitterStats {
        &self.stats
    }

    /// Scans pushed bytes until an AU is complete or the bytes run out.
    fn scan(&mut self) {
        let input = std::mem::take(&mut self.input);
        let mut at = self.scanned;
        while at < input.len() && self.ready.is_none() && self.refusal.is_none() {
            if self.zeros == 0 {
                // No start code can begin before the next zero byte, so
                // everything up to it is data.
                let rest = &input[at..];
                let run = memchr::memchr(0, rest).unwrap_or(rest.len());
                if run > 0 {
                    self.data(&rest[..run]);
                    at += run;
                    continue;
                }
            }
            let byte = input[at];
            at += 1;
            match byte {
                0 => self.zeros += 1,
                1 if self.zeros >= 2 => {
                    self.zeros = 0;
                    self.start_code();
                }
                _ => {
                    self.flush_zeros();
                    self.data(&[byte]);
                }
            }
        }
        if self.refusal.is_some() {
            self.stats.refused_bytes += (input.len() - at) as u64;
            at = input.len();
        }
        self.input = input;
        self.scanned = at;
        if self.scanned == self.input.len() {
            // Keeps the allocation for the next read.
            self.input.clear();
            self.scanned = 0;
        }
    }

    /// The zero bytes counted turned out to be data.
    fn flush_zeros(&mut self) {
        const ZEROS: [u8; 64] = [0; 64];
        while self.zeros > 0 {
            let n = self.zeros.min(ZEROS.len());
            self.zeros -= n;
            self.data(&ZEROS[..n]);
        }
    }

    /// A start code: the NAL unit before it is complete, a new one begins.
    fn start_code(&mut self) {
        match self.nal {
            // A NAL unit that ended before its second byte.
            Nal::Head { bytes, len } if len > 0 => {
                self.begin_nal(&bytes[..len]);
                self.end_nal();
            }
            Nal::Kept { .. } => self.end_nal(),
            // Outside, skipped, or an empty NAL unit.
            _ => {}
        }
        if self.refusal.is_none() {
            self.nal = Nal::Head {
                bytes: [0; 2],
                len: 0,
            };
        }
    }

    /// Bytes that are not part of a start code: the next bytes of the
    /// current NAL unit, or garbage outside one.
    fn data(&mut self, mut bytes: &[u8]) {
        while let Nal::Head {
            bytes: mut head,
            len,
        } = self.nal
        {
            let Some((&byte, rest)) = bytes.split_first() else {
                return;
            };
            bytes = rest;
            head[len] = byte;
            let len = len + 1;
            self.nal = Nal::Head { bytes: head, len };
            if len == head.len() || !self.needs_second_byte(head[0]) {
                self.begin_nal(&head[..len]);
            }
        }
        if self.refusal.is_some() {
            self.stats.refused_bytes += bytes.len() as u64;
            return;
        }
        if bytes.is_empty() {
            return;
        }
        match self.nal {
            Nal::Outside => {
                self.stats.garbage_bytes += bytes.len() as u64;
                self.gap = true;
            }
            Nal::Kept { .. } => {
                if !self.keep(bytes) {
                    self.nal = Nal::Skipped;
                }
            }
            Nal::Skipped if self.au.dropped => self.stats.dropped_bytes += bytes.len() as u64,
            Nal::Skipped => {}
            Nal::Head { .. } => unreachable!("the loop above leaves Nal::Head"),
        }
    }

    /// Whether a NAL unit with this header byte needs its second byte before
    /// it can be placed: a slice's says whether it starts a picture, and at
    /// the start of a stream it tells H.265 from H.264.
    fn needs_second_byte(&self, header: u8) -> bool {
        is_vcl(nal_unit_type(header)) || (self.at_stream_start && may_be_h265_start(header))
    }

    /// A NAL unit's first bytes (its header, and the next byte if it needs
    /// one and has one) have arrived: ends the current AU if this NAL unit
    /// starts the next, and starts keeping it.
    fn begin_nal(&mut self, head: &[u8]) {
        let header = head[0];
        let second = head.get(1).copied();
        let first_of_stream = std::mem::take(&mut self.at_stream_start);
        if first_of_stream && second.is_some_and(|second| is_h265_start(header, second)) {
            self.refuse(Refusal::H265);
            return;
        }
        let nal_unit_type = nal_unit_type(header);
        let slice = is_vcl(nal_unit_type);
        // A slice header starts with first_mb_in_slice, an exp-Golomb code:
        // the value 0, the picture's first macroblock, is the single bit 1.
        let first_slice = slice && second.is_some_and(|byte| byte & 0x80 != 0);
        // A slice without a byte of slice header is broken too.
        let corrupt = is_corrupt_header(header) || (slice && second.is_none());
        if self.starts_access_unit(nal_unit_type, corrupt, first_slice) {
            self.end_au();
        }
        self.au.nal_units += 1;
        if corrupt {
            self.drop_au(Loss::Corrupt);
        } else if slice && !self.au.has_picture && !first_slice {
            // The picture's first slices are missing.
            self.drop_au(Loss::Corrupt);
        }
        if slice && !corrupt {
            self.au.has_picture = true;
        }
        self.nal = if self.au.dropped || nal_unit_type == nal::FILLER {
            Nal::Skipped
        } else {
            let start = self.au.data.len() + START_CODE.len();
            let mut opening = [0; START_CODE.len() + 2];
            opening[..START_CODE.len()].copy_from_slice(&START_CODE);
            opening[START_CODE.len()..][..head.len()].copy_from_slice(head);
            if self.keep(&opening[..START_CODE.len() + head.len()]) {
                self.au.kept_nal_units += 1;
                self.au.keyframe |= nal_unit_type == nal::IDR_SLICE;
                Nal::Kept {
                    nal_unit_type,
                    start,
                }
            } else {
                Nal::Skipped
            }
        };
        if matches!(nal_unit_type, nal::END_OF_SEQUENCE | nal::END_OF_STREAM) && !corrupt {
            // The last NAL unit of its AU, and a NAL unit without payload:
            // anything up to the next start code is garbage.
            self.end_au();
            self.nal = Nal::Outside;
        }
    }

    /// Whether a NAL unit of this type begins a new AU (§7.4.1.2.3).
    fn starts_access_unit(&self, nal_unit_type: u8, corrupt: bool, first_slice: bool) -> bool {
        let au = &self.au;
        if au.nal_units == 0 {
            return false;
        }
        // In an AU that is being dropped anyway, anything that may start an
        // AU does, so that as little as possible is lost with it.
        let past_picture = au.has_picture || au.dropped;
        match nal_unit_type {
            // A corrupt NAL unit after a picture must not take the picture
            // down with it.
            _ if corrupt => au.has_picture && !au.dropped,
            nal::AUD => true,
            nal::SEI | nal::SPS | nal::PPS | 14..=18 => past_picture,
            nal::SLICE..=nal::IDR_SLICE => first_slice && past_picture,
            _ => false,
        }
    }

    /// The NAL unit that was being kept is complete (a start code followed
    /// it): parameter sets are taken from it.
    fn end_nal(&mut self) {
        if let Nal::Kept {
            nal_unit_type,
            start,
        } = self.nal
        {
            match nal_unit_type {
                nal::SPS => self.sps_complete(start),
                nal::PPS => self.pps_complete(start),
                _ => {}
            }
        }
    }

    fn sps_complete(&mut self, start: usize) {
        let sps = &self.au.data[start..];
        let info = match parse_sps(sps) {
            Ok(info) => info,
            Err(_) => {
                self.stats.sps_errors += 1;
                return;
            }
        };
        if let Some(max_num_reorder_frames) = info.max_num_reorder_frames.filter(|&n| n > 0) {
            self.refuse(Refusal::Reordering {
                max_num_reorder_frames,
            });
            return;
        }
        if self.sps.as_ref().is_some_and(|(known, _)| known == sps) {
            return;
        }
        self.sps = Some((sps.to_vec(), info));
        self.parameter_sets_changed();
    }

    fn pps_complete(&mut self, start: usize) {
        let pps = &self.au.data[start..];
        // A PPS has at least one byte after its header; a shorter one is a
        // NAL unit cut off by a start code, and no parameter set.
        if pps.len() < 2 || self.pps.as_deref() == Some(pps) {
            return;
        }
        self.pps = Some(pps.to_vec());
        self.parameter_sets_changed();
    }

    fn parameter_sets_changed(&mut self) {
        self.sets_changed = true;
        self.stats.parameter_set_changes += 1;
        if let (Some((sps, info)), Some(pps)) = (&self.sps, &self.pps) {
            self.parameter_sets = Some(ParameterSets {
                sps: sps.clone(),
                pps: pps.clone(),
                info: *info,
            });
        }
    }

    /// Appends bytes to the unfinished AU, unless it is being dropped or
    /// they would take it over the cap (then it is dropped). Whether they
    /// were kept.
    fn keep(&mut self, bytes: &[u8]) -> bool {
        let len = self.au.data.len() + bytes.len();
        if !self.au.dropped && len > self.max_au_bytes {
            self.drop_au(Loss::Oversize);
        }
        if self.au.dropped {
            self.stats.dropped_bytes += bytes.len() as u64;
            return false;
        }
        let data = &mut self.au.data;
        if len > data.capacity() {
            // Grow as a Vec does, but never past the cap.
            let capacity = len.max(2 * data.capacity()).min(self.max_au_bytes);
            data.reserve_exact(capacity - data.len());
        }
        data.extend_from_slice(bytes);
        true
    }

    /// Drops the unfinished AU; what is left of it will be skipped.
    fn drop_au(&mut self, loss: Loss) {
        if self.au.dropped {
            return;
        }
        match loss {
            Loss::Oversize => self.stats.oversize_dropped += 1,
            Loss::Corrupt => self.stats.corrupt_dropped += 1,
        }
        self.stats.dropped_bytes += self.au.data.len() as u64;
        // Frees the memory now: the rest of the AU is not kept.
        self.au.data = Vec::new();
        self.au.dropped = true;
        self.gap = true;
    }

    /// The unfinished AU is complete: it is handed out if it was kept and
    /// has a picture, and a new one begins.
    fn end_au(&mut self) {
        let mut au = std::mem::take(&mut self.au);
        // The buffer the AU grew in stays for the next one: a stream then
        // costs one allocation per AU, the exact copy below, instead of a
        // reallocation at every doubling and a last one to shrink. It holds
        // the largest AU so far, under the cap (a dropped AU freed it).
        let mut buffer = std::mem::take(&mut au.data);
        let complete = !au.dropped && au.nal_units > 0;
        if complete && !au.has_picture {
            self.stats.without_picture += 1;
        }
        // Exactly its size: AUs stay a while (a GOP cache).
        let data = (complete && au.has_picture).then(|| buffer.to_vec());
        buffer.clear();
        self.au.data = buffer;
        let Some(data) = data else {
            return;
        };
        self.stats.access_units += 1;
        self.stats.au_bytes += data.len() as u64;
        self.stats.nal_units += au.kept_nal_units;
        self.stats.keyframes += u64::from(au.keyframe);
        debug_assert!(self.ready.is_none(), "one AU is handed out at a time");
        self.ready = Some(AccessUnit {
            data,
            keyframe: au.keyframe,
            follows_gap: std::mem::take(&mut self.gap),
            parameter_sets_changed: std::mem::take(&mut self.sets_changed),
        });
    }

    /// Refuses the stream: what is unfinished is dropped, and nothing more
    /// is scanned.
    fn refuse(&mut self, refusal: Refusal) {
        self.refusal = Some(refusal);
        self.au = Unfinished::default();
        self.nal = Nal::Outside;
        self.zeros = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1280x720 Constrained Baseline SPS as x264 writes it (with a VUI
    /// saying no frame is reordered), and a PPS.
    const SPS_720P: &[u8] = &[
        0x67, 0x42, 0xC0, 0x1F, 0xDA, 0x01, 0x40, 0x16, 0xEC, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00,
        0x40, 0x00, 0x00, 0x0F, 0x23, 0xC6, 0x0C, 0xA8,
    ];
    const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];
    const AUD: &[u8] = &[0x09, 0xF0];
    /// Slices: the second byte's top bit set means `first_mb_in_slice` 0.
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x21, 0x7F];
    const P: &[u8] = &[0x41, 0x9A, 0x21, 0x6C];
    const P_SECOND_SLICE: &[u8] = &[0x41, 0x40, 0x21, 0x6C];

    /// `nals` in Annex-B form, as the splitter hands them out.
    fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|nal| START_CODE.iter().chain(nal.iter()))
            .copied()
            .collect()
    }

    fn all_aus(splitter: &mut AnnexBSplitter, bytes: &[u8]) -> Vec<AccessUnit> {
        splitter.push(bytes);
        std::iter::from_fn(|| splitter.next_au()).collect()
    }

    #[test]
    fn an_au_goes_out_when_the_next_one_begins_and_not_later() {
        let stream = annex_b(&[SPS_720P, PPS, IDR, P, P_SECOND_SLICE, P]);
        let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
        let mut out = Vec::new();
        for (at, byte) in stream.iter().enumerate() {
            splitter.push(&[*byte]);
            while let Some(au) = splitter.next_au() {
                out.push((at, au));
            }
        }
        let second_p = stream.len() - P.len();
        // The IDR AU is out at the second byte of the first P slice (its
        // first_mb_in_slice), the first P AU at the second byte of the
        // second: a second slice of a picture starts nothing.
        let first_p = annex_b(&[SPS_720P, PPS, IDR]).len() + START_CODE.len();
        assert_eq!(
            out.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
            [first_p + 1, second_p + 1]
        );
        let (idr, p) = (&out[0].1, &out[1].1);
        assert_eq!(idr.data, annex_b(&[SPS_720P, PPS, IDR]));
        assert!(idr.keyframe && idr.parameter_sets_changed && !idr.follows_gap);
        assert_eq!(p.data, annex_b(&[P, P_SECOND_SLICE]));
        assert!(!p.keyframe && !p.parameter_sets_changed && !p.follows_gap);
        assert_eq!(p.nal_units().collect::<Vec<_>>(), [P, P_SECOND_SLICE]);
        assert_eq!(splitter.buffered_bytes(), START_CODE.len() + P.len());
        let sets = splitter.parameter_sets().expect("parameter sets");
        assert_eq!((sets.sps.as_slice(), sets.pps.as_slice()), (SPS_720P, PPS));
        assert_eq!((sets.info.width, sets.info.height), (1280, 720));
        let stats = splitter.stats();
        assert_eq!(
            (stats.access_units, stats.nal_units, stats.keyframes),
            (2, 5, 1)
        );
        assert_eq!(stats.parameter_set_changes, 2);
    }

    #[test]
    fn an_aud_or_a_parameter_set_after_a_picture_starts_the_next_au() {
        for opener in [AUD, SPS_720P, PPS, &[0x06, 0x05, 0x01, 0x80]] {
            let stream = annex_b(&[IDR, opener]);
            let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
            let out = all_aus(&mut splitter, &stream);
            assert_eq!(out.len(), 1, "{opener:02x?}");
            assert_eq!(out[0].data, annex_b(&[IDR]));
        }
        // Before a picture, they belong to its AU (an AUD always starts one).
        let stream = annex_b(&[AUD, SPS_720P, PPS, &[0x06, 0x05, 0x01, 0x80], IDR, AUD]);
        let out = all_aus(&mut AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES), &stream);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].nal_units().count(), 5);
    }

    #[test]
    fn short_start_codes_empty_nal_units_and_trailing_zeros_are_normalised() {
        let mut stream = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 1];
        stream.extend_from_slice(IDR);
        stream.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
        stream.extend_from_slice(P);
        stream.extend_from_slice(&[0, 0, 1, 0x09]);
        let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
        let out = all_aus(&mut splitter, &stream);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data, annex_b(&[IDR]));
        assert_eq!(out[1].data, annex_b(&[P]));
        assert_eq!(splitter.stats().garbage_bytes, 0);
    }

    #[test]
    fn an_end_of_stream_ends_its_au_at_once() {
        let stream = annex_b(&[IDR, &[0x0B]]);
        let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
        let out = all_aus(&mut splitter, &stream);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, stream);
        assert_eq!(splitter.buffered_bytes(), 0);
        // Anything but zeros after it, before a start code, is garbage.
        let out = all_aus(&mut splitter, &[0, 0, 7, 7, 0, 0, 1, 0x41, 0x9A]);
        assert!(out.is_empty());
        assert_eq!(splitter.stats().garbage_bytes, 4);
        let out = all_aus(&mut splitter, &annex_b(&[AUD]));
        assert!(out[0].follows_gap);
    }

    #[test]
    fn a_corrupt_nal_unit_drops_its_au_but_not_the_picture_before_it() {
        let stream = annex_b(&[IDR, &[0x7C, 0x01], P, P_SECOND_SLICE, P, AUD]);
        let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
        let out = all_aus(&mut splitter, &stream);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].data, annex_b(&[IDR]));
        assert!(!out[0].follows_gap);
        // The corrupt NAL unit started an AU of its own, dropped; the next
        // picture starts the next AU.
        assert_eq!(out[1].data, annex_b(&[P, P_SECOND_SLICE]));
        assert!(out[1].follows_gap && !out[2].follows_gap);
        assert_eq!(splitter.stats().corrupt_dropped, 1);
        // A slice that does not start a picture belongs to the dropped AU.
        let stream = annex_b(&[IDR, &[0x7C, 0x01], P_SECOND_SLICE, P, AUD]);
        let out = all_aus(&mut AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES), &stream);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].data, annex_b(&[P]));

        // Forbidden bit, or a picture that does not start at its first slice.
        for broken in [&[0xE5, 0x88][..], P_SECOND_SLICE] {
            let stream = annex_b(&[broken, IDR, AUD]);
            let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
            let out = all_aus(&mut splitter, &stream);
            assert_eq!(out.len(), 1, "{broken:02x?}");
            assert!(out[0].follows_gap && out[0].keyframe);
            assert_eq!(splitter.stats().corrupt_dropped, 1);
        }
    }

    #[test]
    fn an_au_over_the_cap_is_dropped_as_it_arrives() {
        let big: Vec<u8> = [0x65, 0x88].into_iter().chain([0x55; 5000]).collect();
        let stream = annex_b(&[IDR, &big, P, AUD]);
        let cap = 1000;
        let mut splitter = AnnexBSplitter::new(cap);
        let mut out = Vec::new();
        for read in stream.chunks(100) {
            out.extend(all_aus(&mut splitter, read));
            assert!(splitter.buffered_bytes() <= cap);
            assert!(splitter.au.data.capacity() <= cap);
        }
        assert_eq!(out.len(), 2);
        assert!(!out[0].follows_gap && out[1].follows_gap);
        assert_eq!(out[1].data, annex_b(&[P]));
        assert_eq!(splitter.stats().oversize_dropped, 1);
        assert!(splitter.stats().dropped_bytes >= big.len() as u64);
    }

    #[test]
    fn garbage_before_the_first_start_code_is_counted() {
        let mut stream = b"garbage".to_vec();
        stream.extend(annex_b(&[IDR, P]));
        let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
        let out = all_aus(&mut splitter, &stream);
        assert_eq!(out.len(), 1);
        assert!(out[0].follows_gap);
        assert_eq!(splitter.stats().garbage_bytes, 7);
        // Leading zero bytes are allowed, and no garbage.
        let mut stream = vec![0; 10];
        stream.extend(annex_b(&[IDR, P]));
        let out = all_aus(&mut AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES), &stream);
        assert!(!out[0].follows_gap);
    }

    #[test]
    fn finish_drops_the_unfinished_au() {
        let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
        let out = all_aus(&mut splitter, &annex_b(&[IDR, P, P_SECOND_SLICE]));
        assert_eq!(out.len(), 1);
        splitter.finish();
        assert_eq!(splitter.buffered_bytes(), 0);
        assert_eq!(splitter.stats().truncated_dropped, 1);
        let out = all_aus(&mut splitter, &annex_b(&[IDR, AUD]));
        assert_eq!(out.len(), 1);
        assert!(out[0].follows_gap);
        // Nothing unfinished: nothing dropped.
        splitter.finish();
        splitter.finish();
        assert_eq!(splitter.stats().truncated_dropped, 2);
    }

    #[test]
    fn h265_is_refused_at_the_start_of_a_stream() {
        for header in [0x40, 0x42, 0x46] {
            let stream = annex_b(&[&[header, 0x01, 0x0C, 0x01], &[0x26, 0x01, 0xAF]]);
            let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
            assert!(all_aus(&mut splitter, &stream).is_empty());
            assert_eq!(splitter.refusal(), Some(Refusal::H265));
            assert_eq!(splitter.buffered_bytes(), 0);
            assert!(all_aus(&mut splitter, &annex_b(&[IDR, P])).is_empty());
        }
        // Later in a stream, such bytes are a broken H.264 NAL unit.
        let stream = annex_b(&[IDR, &[0x40, 0x01], P, AUD]);
        let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
        assert_eq!(all_aus(&mut splitter, &stream).len(), 2);
        assert_eq!(splitter.refusal(), None);
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            Refusal::H265.to_string(),
            "H.265 is not supported (only H.264 passes through)"
        );
        let reordering = Refusal::Reordering {
            max_num_reorder_frames: 2,
        };
        assert_eq!(
            reordering.to_string(),
            "the stream reorders frames (B-frames, max_num_reorder_frames=2), which WebRTC and \
             low-latency players cannot carry; encode without B-frames"
        );
    }
}
