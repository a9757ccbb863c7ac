//! Walking the marker segments of one JPEG: its size, and where it ends.
//!
//! A JPEG is a sequence of marker segments (`FF xx`, most with a 16-bit
//! length) up to SOS (start of scan), then entropy-coded picture data up to
//! EOI (end of image); a progressive JPEG repeats "segments, scan" several
//! times. This module owns that walk, once, for everybody: [`parse_header`]
//! reads the headers in front of the first scan, and [`JpegWalk`] finds the
//! end of a picture in a buffer that grows as bytes arrive.
//!
//! Why not just look for the bytes `FF D9`? Because headers may hold a whole
//! second JPEG: an EXIF thumbnail in APP1 has its own EOI, and cutting there
//! hands out the thumbnail's end as the picture's. Segments are therefore
//! stepped over by their length, and only the entropy-coded data is scanned,
//! where an `FF` byte is always stuffing (`FF 00`), a restart marker
//! (`FF D0`..`FF D7`) or a real marker.
//!
//! It only reads headers and scans bytes, never decodes: cheap enough for
//! every frame. It never allocates, never panics on any input and never
//! looks past the slice it is given.

/// Every JPEG starts with SOI (start of image).
pub const SOI: [u8; 2] = [0xFF, 0xD8];
/// ... and ends with EOI (end of image).
pub const EOI: [u8; 2] = [0xFF, 0xD9];
/// The second byte of SOI, as it appears after an `FF`.
const SOI_MARKER: u8 = 0xD8;
/// The second byte of EOI.
const EOI_MARKER: u8 = 0xD9;
/// DHT: define Huffman tables.
pub(crate) const DHT_MARKER: u8 = 0xC4;
/// SOS: start of scan; the entropy-coded picture data follows its header.
const SOS_MARKER: u8 = 0xDA;
/// TEM: a marker without a length, only ever seen in arithmetic coding tests.
const TEM_MARKER: u8 = 0x01;
/// `FF 00` in entropy-coded data is a stuffed `FF` data byte, not a marker.
const STUFFED_ZERO: u8 = 0x00;
/// Fill bytes: any marker may be preceded by extra `FF`s.
const FILL: u8 = 0xFF;
/// SOF fields read for the size: length(2) precision(1) height(2) width(2).
/// A shorter SOF segment cannot be a real one.
const SOF_MIN_LENGTH: usize = 8;

/// What the headers in front of the picture data say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegHeader {
    /// Width in pixels, from the SOF (start of frame) segment.
    pub width: u32,
    /// Height in pixels, from the SOF segment.
    pub height: u32,
    /// Whether any DHT segment comes before the (first) scan.
    pub has_huffman_tables: bool,
    /// Byte offset of the (first) SOS marker, where missing tables can be
    /// inserted.
    pub scan_offset: usize,
}

/// Reads the segments between SOI and the first SOS. `None` if `jpeg` does
/// not start like a baseline or progressive JPEG or the headers are cut
/// short.
pub fn parse_header(jpeg: &[u8]) -> Option<JpegHeader> {
    let mut walk = JpegWalk::new();
    walk.run(jpeg, Until::FirstScan);
    walk.header()
}

/// The length of the complete JPEG at the start of `bytes` (up to and
/// including its EOI), or `None` if it is not one or is cut short. Bytes
/// after it are ignored.
pub fn jpeg_end(bytes: &[u8]) -> Option<usize> {
    match JpegWalk::new().advance(bytes) {
        Walk::Complete { end } => Some(end),
        Walk::Incomplete | Walk::Broken { .. } => None,
    }
}

/// Where a walk through a picture got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The picture is complete: it is the first `end` bytes (EOI included).
    Complete {
        /// Length of the picture, EOI included.
        end: usize,
    },
    /// Everything so far is consistent; call again with more bytes.
    Incomplete,
    /// This is not a well-formed picture, or one that was cut short: a new
    /// SOI where a marker or picture data should be, a segment that does not
    /// end on a marker, a scan before any frame header.
    Broken {
        /// Where to start looking for the next picture: the new SOI if one
        /// was seen, else just after the marker of the last segment the walk
        /// stepped over (a picture that was cut short inside that segment may
        /// be followed by a new one that the jump landed past). Always at
        /// least 1, so a caller that skips `resume` bytes makes progress.
        resume: usize,
    },
}

/// How far [`JpegWalk::run`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Stop as soon as the first scan starts (all the header is known).
    FirstScan,
    /// Go on to the EOI.
    End,
}

/// An incremental walk through one JPEG whose bytes arrive in pieces.
///
/// Call [`advance`](JpegWalk::advance) with everything received so far, from
/// the picture's SOI on, each time more has arrived. The walk remembers where
/// it stopped (the next segment, or how far the picture data has been
/// scanned), so a picture arriving one byte at a time is still read once,
/// not once per byte.
#[derive(Debug, Clone, Default)]
pub struct JpegWalk {
    /// The next byte to look at, as an offset from the SOI. May lie beyond
    /// the bytes received so far, after a jump over a segment.
    pos: usize,
    /// Inside entropy-coded data, where only `FF` bytes need a look.
    in_scan: bool,
    /// Offset of the last segment stepped over; see [`Walk::Broken`].
    last_segment: usize,
    /// Width and height, from the first SOF segment.
    size: Option<(u32, u32)>,
    /// A DHT segment came before the first scan.
    has_huffman_tables: bool,
    /// Offset of the first SOS marker, once reached.
    scan_offset: Option<usize>,
}

impl JpegWalk {
    /// A walk at the start of a picture.
    pub fn new() -> Self {
        JpegWalk::default()
    }

    /// The header, once the walk has reached the first scan.
    pub fn header(&self) -> Option<JpegHeader> {
        let (width, height) = self.size?;
        Some(JpegHeader {
            width,
            height,
            has_huffman_tables: self.has_huffman_tables,
            scan_offset: self.scan_offset?,
        })
    }

    /// How far the walk has got, as an offset from the SOI: everything
    /// before it has been accounted for. After a jump over a segment it may
    /// lie beyond the bytes received so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Walks on through `picture`: the bytes received so far from the SOI
    /// on, the same bytes as last time plus whatever arrived since.
    pub fn advance(&mut self, picture: &[u8]) -> Walk {
        self.run(picture, Until::End)
    }

    fn run(&mut self, picture: &[u8], until: Until) -> Walk {
        if self.pos == 0 {
            match picture {
                [0xFF, SOI_MARKER, ..] => self.pos = SOI.len(),
                [] | [0xFF] => return Walk::Incomplete,
                _ => return Walk::Broken { resume: 1 },
            }
        }
        loop {
            if self.in_scan {
                // Picture data: skip to the next FF and see what follows it.
                let Some(rest) = picture.get(self.pos..) else {
                    return Walk::Incomplete;
                };
                match rest.iter().position(|&b| b == 0xFF) {
                    Some(skip) => self.pos += skip,
                    None => {
                        self.pos = picture.len();
                        return Walk::Incomplete;
                    }
                }
                let Some(&code) = picture.get(self.pos + 1) else {
                    return Walk::Incomplete;
                };
                match code {
                    STUFFED_ZERO | 0xD0..=0xD7 => {
                        self.pos += 2;
                        continue;
                    }
                    FILL => {
                        self.pos += 1;
                        continue;
                    }
                    EOI_MARKER => return Walk::Complete { end: self.pos + 2 },
                    // Any other marker ends this scan: more segments follow
                    // (a progressive JPEG's next tables and scan), or a new
                    // SOI, which the marker code below deals with.
                    _ => self.in_scan = false,
                }
            }

            match picture.get(self.pos) {
                None => return Walk::Incomplete,
                Some(0xFF) => {}
                Some(_) => return self.broken(),
            }
            let Some(&code) = picture.get(self.pos + 1) else {
                return Walk::Incomplete;
            };
            match code {
                FILL => {
                    self.pos += 1;
                    continue;
                }
                // A new picture where this one should go on: this one was
                // cut short. The caller starts over at the new SOI.
                SOI_MARKER => return Walk::Broken { resume: self.pos },
                EOI_MARKER if self.scan_offset.is_some() => {
                    return Walk::Complete { end: self.pos + 2 }
                }
                // EOI before any picture data: tables only, no picture.
                EOI_MARKER => {
                    return Walk::Broken {
                        resume: self.pos + 2,
                    }
                }
                // Markers without a length: step over them.
                TEM_MARKER | 0xD0..=0xD7 => {
                    self.pos += 2;
                    continue;
                }
                STUFFED_ZERO => return self.broken(),
                _ => {}
            }

            let Some(&[high, low]) = picture.get(self.pos + 2..self.pos + 4) else {
                return Walk::Incomplete;
            };
            // The length counts its own two bytes but not the marker.
            let length = usize::from(u16::from_be_bytes([high, low]));
            if length < 2 {
                return self.broken();
            }
            if is_start_of_frame(code) && self.size.is_none() {
                if length < SOF_MIN_LENGTH {
                    return self.broken();
                }
                let Some(&[h1, h0, w1, w0]) = picture.get(self.pos + 5..self.pos + 9) else {
                    return Walk::Incomplete;
                };
                self.size = Some((
                    u32::from(u16::from_be_bytes([w1, w0])),
                    u32::from(u16::from_be_bytes([h1, h0])),
                ));
            }
            if code == DHT_MARKER && self.scan_offset.is_none() {
                self.has_huffman_tables = true;
            }
            if code == SOS_MARKER {
                if self.size.is_none() {
                    // Picture data before the frame header: not a JPEG.
                    return self.broken();
                }
                if self.scan_offset.is_none() {
                    self.scan_offset = Some(self.pos);
                    if until == Until::FirstScan {
                        return Walk::Incomplete;
                    }
                }
                self.in_scan = true;
            }
            self.last_segment = self.pos;
            self.pos += 2 + length;
        }
    }

    fn broken(&self) -> Walk {
        Walk::Broken {
            resume: self.last_segment + 2,
        }
    }
}

/// SOF0..SOF15, except the three markers in that range that are not frames
/// (DHT, JPG extension, DAC).
fn is_start_of_frame(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small real JPEG from the pure-Rust encoder.
    fn sample(width: u16, height: u16, restart_interval: u16) -> Vec<u8> {
        let pixels: Vec<u8> = (0..usize::from(width) * usize::from(height) * 3)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut jpeg = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 80);
        encoder.set_restart_interval(restart_interval);
        encoder
            .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
            .expect("encode sample");
        jpeg
    }

    /// `jpeg` with an APP1 segment right after SOI holding `inner`, a
    /// complete JPEG with its own EOI, as an EXIF thumbnail would be.
    fn with_thumbnail(jpeg: &[u8], inner: &[u8]) -> Vec<u8> {
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend_from_slice(inner);
        let length = u16::try_from(payload.len() + 2).expect("thumbnail fits a segment");
        let mut out = SOI.to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn header_gives_size_and_tables() {
        let header = parse_header(&sample(48, 32, 0)).expect("header");
        assert_eq!((header.width, header.height), (48, 32));
        assert!(header.has_huffman_tables);
    }

    #[test]
    fn the_end_is_the_eoi_of_the_picture() {
        let jpeg = sample(40, 24, 0);
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0, 1, 2, 0xFF, 0xD9]);
        assert_eq!(jpeg_end(&padded), Some(jpeg.len()));
    }

    #[test]
    fn a_thumbnails_eoi_is_not_the_end() {
        let outer = with_thumbnail(&sample(64, 48, 0), &sample(8, 8, 0));
        assert_eq!(jpeg_end(&outer), Some(outer.len()));
        assert_eq!(
            parse_header(&outer).map(|h| (h.width, h.height)),
            Some((64, 48))
        );
    }

    #[test]
    fn restart_markers_do_not_end_the_picture() {
        let jpeg = sample(64, 64, 1);
        let scan = parse_header(&jpeg).expect("header").scan_offset;
        let restarts = jpeg[scan..]
            .windows(2)
            .filter(|w| w[0] == 0xFF && (0xD0..=0xD7).contains(&w[1]))
            .count();
        assert!(restarts > 4, "the encoder wrote {restarts} restart markers");
        assert_eq!(jpeg_end(&jpeg), Some(jpeg.len()));
    }

    #[test]
    fn a_progressive_picture_ends_after_its_last_scan() {
        let pixels = vec![77u8; 32 * 32 * 3];
        let mut jpeg = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 80);
        encoder.set_progressive(true);
        encoder
            .encode(&pixels, 32, 32, jpeg_encoder::ColorType::Rgb)
            .expect("encode");
        assert_eq!(jpeg_end(&jpeg), Some(jpeg.len()));
    }

    #[test]
    fn a_walk_fed_byte_by_byte_ends_where_a_whole_one_does() {
        let jpeg = with_thumbnail(&sample(32, 16, 2), &sample(8, 8, 0));
        let mut walk = JpegWalk::new();
        for received in 0..jpeg.len() {
            assert_eq!(
                walk.advance(&jpeg[..received]),
                Walk::Incomplete,
                "{received}"
            );
        }
        assert_eq!(walk.advance(&jpeg), Walk::Complete { end: jpeg.len() });
        assert_eq!(walk.header(), parse_header(&jpeg));
    }

    #[test]
    fn a_new_soi_in_the_picture_data_breaks_the_walk_there() {
        let jpeg = sample(32, 32, 0);
        let cut = jpeg.len() - 20;
        let mut stream = jpeg[..cut].to_vec();
        stream.extend_from_slice(&jpeg);
        assert_eq!(
            JpegWalk::new().advance(&stream),
            Walk::Broken { resume: cut }
        );
    }

    #[test]
    fn what_is_not_a_jpeg_is_broken_not_a_panic() {
        for bytes in [
            &b"hello"[..],
            &[0xFF, 0xD8, 0x00],
            &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01],
            &[0xFF, 0xD8, 0xFF, 0xD9],
            &[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9],
        ] {
            assert!(
                matches!(JpegWalk::new().advance(bytes), Walk::Broken { resume } if resume >= 1),
                "{bytes:02X?}"
            );
            assert_eq!(parse_header(bytes), None);
        }
        assert_eq!(JpegWalk::new().advance(&[0xFF]), Walk::Incomplete);
    }
}
