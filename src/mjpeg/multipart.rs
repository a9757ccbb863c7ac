//! The multipart side of MJPEG: boundary lines and part headers.
//!
//! An MJPEG stream over HTTP (`multipart/x-mixed-replace`) and ffmpeg's
//! `mpjpeg` muxer both send each picture as one part:
//!
//! ```text
//! --BOUNDARY\r\n
//! Content-Type: image/jpeg\r\n
//! Content-Length: 12345\r\n      (optional)
//! X-Timestamp: 1712.345678\r\n    (optional, from some servers)
//! \r\n
//! <the JPEG>\r\n
//! ```
//!
//! This module owns recognising a boundary line, finding the next one in a
//! buffer, learning the boundary from the first line of a stream, and
//! parsing a part's headers (with `httparse`). It does not decide what a
//! part's bytes mean; the splitter does.
//!
//! Senders disagree on the dashes: RFC 2046 puts `--` before the boundary of
//! the `boundary=` parameter, yet some cameras put the dashes into the
//! parameter too and then send one pair or two. Boundaries are therefore
//! kept without leading dashes, and a line matches with any run of two or
//! more dashes in front.

/// Longest boundary RFC 2046 allows (§5.1.1).
pub const MAX_BOUNDARY_BYTES: usize = 70;
/// Longest run of dashes accepted in front of a boundary.
const MAX_DASHES: usize = 8;
/// Longest run of spaces or tabs accepted after a boundary ("transport
/// padding" in RFC 2046).
const MAX_PADDING_BYTES: usize = 8;
/// Longest line that may be a boundary line: dashes, the boundary, a closing
/// `--`, padding and CRLF. Used for learning a boundary from the stream and
/// as the bound of what is kept while a possible boundary line is completed.
pub const MAX_BOUNDARY_LINE_BYTES: usize =
    MAX_DASHES + MAX_BOUNDARY_BYTES + 2 + MAX_PADDING_BYTES + 2;
/// Largest part head (header lines and the blank line) buffered. Real ones
/// are about 100 bytes; past this the part is malformed.
pub const MAX_PART_HEAD_BYTES: usize = 8 * 1024;
/// Most header fields in one part head.
pub const MAX_PART_HEADERS: usize = 32;

/// The boundary token from a boundary as given: quotes, surrounding
/// whitespace and leading dashes removed. `None` if nothing usable is left
/// (empty, too long, or with bytes RFC 2046 does not allow).
pub fn normalize_boundary(boundary: &str) -> Option<Vec<u8>> {
    let token = boundary
        .trim()
        .trim_matches('"')
        .trim()
        .trim_start_matches('-');
    let printable = token.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    (!token.is_empty() && token.len() <= MAX_BOUNDARY_BYTES && printable)
        .then(|| token.as_bytes().to_vec())
}

/// The `boundary` parameter of a `Content-Type` header value such as
/// `multipart/x-mixed-replace; boundary=frame`, quotes removed. `None` if it
/// has none.
pub fn boundary_from_content_type(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// Whether a line (starting at a line start) is a boundary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineMatch {
    /// It is: `len` bytes including the line end. `closing` for the last
    /// one of a multipart body (`--BOUNDARY--`).
    Delimiter {
        /// Length of the line, line end included.
        len: usize,
        /// Whether it is the closing delimiter.
        closing: bool,
    },
    /// It is not.
    Other,
    /// It may be; the bytes so far are a prefix of a boundary line.
    NeedMore,
}

/// Checks whether the bytes at a line start are the boundary line for
/// `boundary` (a normalised token, see [`normalize_boundary`]).
pub fn match_boundary_line(line: &[u8], boundary: &[u8]) -> LineMatch {
    let dashes = line.iter().take_while(|&&b| b == b'-').count();
    if dashes > MAX_DASHES {
        return LineMatch::Other;
    }
    if dashes == line.len() {
        return LineMatch::NeedMore;
    }
    if dashes < 2 {
        return LineMatch::Other;
    }
    let rest = &line[dashes..];
    if rest.len() < boundary.len() {
        return if boundary.starts_with(rest) {
            LineMatch::NeedMore
        } else {
            LineMatch::Other
        };
    }
    let Some(after) = rest.strip_prefix(boundary) else {
        return LineMatch::Other;
    };
    let mut at = 0;
    let closing = after.starts_with(b"--");
    if closing {
        at += 2;
    } else if after == b"-" {
        return LineMatch::NeedMore;
    }
    let padding = after[at..]
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    if padding > MAX_PADDING_BYTES {
        return LineMatch::Other;
    }
    at += padding;
    let len = dashes + boundary.len() + at;
    match &after[at..] {
        [] | [b'\r'] => LineMatch::NeedMore,
        [b'\n', ..] => LineMatch::Delimiter {
            len: len + 1,
            closing,
        },
        [b'\r', b'\n', ..] => LineMatch::Delimiter {
            len: len + 2,
            closing,
        },
        _ => LineMatch::Other,
    }
}

/// What a search for the next boundary line found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// A boundary line at `at`, `len` bytes long.
    Found {
        /// Offset of the line's first dash.
        at: usize,
        /// Length of the line, line end included.
        len: usize,
        /// Whether it is the closing delimiter.
        closing: bool,
    },
    /// None yet. Search again from `resume` when more bytes have arrived;
    /// nothing before it can be part of a boundary line.
    NotYet {
        /// Where to search from next time.
        resume: usize,
        /// Whether `resume` is at the start of a line.
        line_start: bool,
    },
}

/// Looks for the next boundary line in `bytes`, from `from` on. Only line
/// starts are tried: the position after each `\n`, and `from` itself if
/// `line_start` says it is one. Each byte is looked at about once, and a
/// later search from `resume` repeats nothing.
pub fn find_boundary_line(bytes: &[u8], from: usize, line_start: bool, boundary: &[u8]) -> Search {
    let mut at = from.min(bytes.len());
    let mut line_start = line_start;
    loop {
        if line_start {
            match match_boundary_line(&bytes[at..], boundary) {
                LineMatch::Delimiter { len, closing } => return Search::Found { at, len, closing },
                LineMatch::NeedMore => {
                    return Search::NotYet {
                        resume: at,
                        line_start: true,
                    }
                }
                LineMatch::Other => {}
            }
        }
        match find_newline(&bytes[at..]) {
            Some(newline) => {
                at += newline + 1;
                line_start = true;
            }
            None => {
                return Search::NotYet {
                    resume: bytes.len(),
                    line_start: false,
                }
            }
        }
    }
}

/// The position of the first `\n` in `bytes`, eight bytes at a time. A part
/// body of tens of KiB is searched whole for line starts, and a byte loop
/// was most of the CPU a `camloop load --mjpeg` viewer spent per frame (the
/// same search runs on every frame of an `exec:` camera).
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        // Zero bytes of `x` are the newlines; `(x - ONES) & !x & HIGHS` is
        // non-zero exactly when `x` has a zero byte (which one is found
        // byte by byte, as the borrow can also mark the bytes above it).
        let x = u64::from_ne_bytes(eight) ^ NEWLINES;
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            return word.iter().position(|&b| b == b'\n').map(|at| offset + at);
        }
        offset += 8;
    }
    let rest = words.remainder();
    rest.iter().position(|&b| b == b'\n').map(|at| offset + at)
}

/// What the first line of a stream says, if it starts with `--`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstLine {
    /// A boundary line: the normalised boundary and the line's length.
    Boundary {
        /// The boundary, without dashes.
        boundary: Vec<u8>,
        /// Length of the line, line end included.
        len: usize,
    },
    /// Not a boundary line.
    Other,
    /// The line has not ended yet.
    NeedMore,
}

/// Learns the boundary from the line at the start of `bytes` (which starts
/// with `--`), as ffmpeg's `mpjpeg` stream needs: it sends no HTTP head, and
/// its boundary is whatever its first line says.
pub fn learn_boundary(bytes: &[u8]) -> FirstLine {
    let window = &bytes[..bytes.len().min(MAX_BOUNDARY_LINE_BYTES)];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        return if window.len() < MAX_BOUNDARY_LINE_BYTES {
            FirstLine::NeedMore
        } else {
            FirstLine::Other
        };
    };
    let line = &window[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(text) = std::str::from_utf8(line) else {
        return FirstLine::Other;
    };
    match normalize_boundary(text.trim_end_matches([' ', '\t'])) {
        Some(boundary) => FirstLine::Boundary {
            boundary,
            len: newline + 1,
        },
        None => FirstLine::Other,
    }
}

/// The headers of one multipart part, as sent, with the few that matter
/// parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHeaders {
    /// Every header field in order, names and values as sent (not UTF-8
    /// bytes replaced by U+FFFD).
    pub fields: Vec<(String, String)>,
    /// `Content-Length`: the part's body size, when the sender knew it.
    pub content_length: Option<usize>,
    /// `X-Timestamp` in microseconds: decimal seconds (`1712.345678`), as
    /// mjpg-streamer and µStreamer send when the picture was taken.
    pub timestamp_micros: Option<u64>,
    /// `X-Frame`: the sender's frame number.
    pub frame_number: Option<u64>,
}

impl PartHeaders {
    /// The first value of header `name` (case-insensitive), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Reading a part head from the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartHead {
    /// The head occupies the first `len` bytes (blank line included).
    Complete {
        /// The parsed headers.
        headers: PartHeaders,
        /// Bytes of the head.
        len: usize,
    },
    /// Not complete yet, and still under [`MAX_PART_HEAD_BYTES`].
    Incomplete,
    /// Not a part head: bad syntax, too long, too many fields, or a
    /// `Content-Length` that is not one number.
    Malformed,
}

/// Parses the part head at the start of `bytes`. A part with no header
/// fields at all (a blank line right after the boundary) is fine.
pub fn parse_part_head(bytes: &[u8]) -> PartHead {
    let window = &bytes[..bytes.len().min(MAX_PART_HEAD_BYTES)];
    let mut fields = [httparse::EMPTY_HEADER; MAX_PART_HEADERS];
    let (len, parsed) = match httparse::parse_headers(window, &mut fields) {
        Ok(httparse::Status::Complete((len, parsed))) => (len, parsed),
        Ok(httparse::Status::Partial) if window.len() < MAX_PART_HEAD_BYTES => {
            return PartHead::Incomplete
        }
        Ok(httparse::Status::Partial) | Err(_) => return PartHead::Malformed,
    };
    let mut headers = PartHeaders::default();
    for field in parsed {
        let value = String::from_utf8_lossy(field.value).trim().to_string();
        if field.name.eq_ignore_ascii_case("content-length") {
            match (value.parse::<usize>(), headers.content_length) {
                (Ok(n), None) => headers.content_length = Some(n),
                (Ok(n), Some(earlier)) if n == earlier => {}
                // Not a number, or two different lengths: which bytes are
                // the picture is anybody's guess.
                _ => return PartHead::Malformed,
            }
        } else if field.name.eq_ignore_ascii_case("x-timestamp") {
            headers.timestamp_micros = parse_decimal_seconds(&value);
        } else if field.name.eq_ignore_ascii_case("x-frame") {
            headers.frame_number = value.parse().ok();
        }
        headers.fields.push((field.name.to_string(), value));
    }
    PartHead::Complete { headers, len }
}

/// Decimal seconds (`12`, `12.5`, `1712.345678`) as whole microseconds,
/// without going through floating point; digits past the sixth decimal are
/// dropped. `None` for anything else, including overflow.
pub fn parse_decimal_seconds(text: &str) -> Option<u64> {
    const MICROS_PER_SECOND: u64 = 1_000_000;
    const MICROS_DIGITS: usize = 6;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let seconds: u64 = whole.parse().ok()?;
    let kept = &fraction[..fraction.len().min(MICROS_DIGITS)];
    let mut micros: u64 = if kept.is_empty() {
        0
    } else {
        kept.parse().ok()?
    };
    for _ in kept.len()..MICROS_DIGITS {
        micros *= 10;
    }
    seconds.checked_mul(MICROS_PER_SECOND)?.checked_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_at_a_time_newline_search_agrees_with_a_byte_loop() {
        // Every position in and around a word, every length, and the bytes
        // next to `\n` that a borrow in the word test could confuse with it.
        for len in 0..40 {
            for filler in [0x00u8, 0x09, 0x0B, 0x0A ^ 0x80, 0xFF, b'a'] {
                let mut bytes = vec![filler; len];
                assert_eq!(find_newline(&bytes), bytes.iter().position(|&b| b == b'\n'));
                for at in 0..len {
                    bytes[at] = b'\n';
                    assert_eq!(find_newline(&bytes), Some(at), "len {len} at {at}");
                    if at > 0 {
                        bytes[at - 1] = 0x00; // a zero just before it
                        assert_eq!(find_newline(&bytes), Some(at), "len {len} at {at}");
                    }
                    bytes.fill(filler);
                }
            }
        }
    }

    #[test]
    fn boundaries_are_kept_without_dashes_or_quotes() {
        assert_eq!(
            normalize_boundary("ffmpeg").as_deref(),
            Some(&b"ffmpeg"[..])
        );
        assert_eq!(
            normalize_boundary("--ffmpeg").as_deref(),
            Some(&b"ffmpeg"[..])
        );
        assert_eq!(
            normalize_boundary(" \"--frame\" ").as_deref(),
            Some(&b"frame"[..])
        );
        assert_eq!(normalize_boundary("--"), None);
        assert_eq!(normalize_boundary(&"x".repeat(71)), None);
        assert_eq!(normalize_boundary("a\u{1}b"), None);
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        let value = "multipart/x-mixed-replace; Boundary=\"camloopframe\"";
        assert_eq!(boundary_from_content_type(value), Some("camloopframe"));
        assert_eq!(boundary_from_content_type("image/jpeg"), None);
    }

    #[test]
    fn boundary_lines_match_with_any_dashes_and_line_end() {
        let b = b"frame";
        let delimiter = |len, closing| LineMatch::Delimiter { len, closing };
        assert_eq!(match_boundary_line(b"--frame\r\nX", b), delimiter(9, false));
        assert_eq!(match_boundary_line(b"----frame\n", b), delimiter(10, false));
        assert_eq!(
            match_boundary_line(b"--frame--\r\n", b),
            delimiter(11, true)
        );
        assert_eq!(
            match_boundary_line(b"--frame  \r\n", b),
            delimiter(11, false)
        );
        assert_eq!(match_boundary_line(b"--frames\r\n", b), LineMatch::Other);
        assert_eq!(match_boundary_line(b"-frame\r\n", b), LineMatch::Other);
        assert_eq!(match_boundary_line(b"--fra", b), LineMatch::NeedMore);
        assert_eq!(match_boundary_line(b"--frame-", b), LineMatch::NeedMore);
        assert_eq!(match_boundary_line(b"--frame\r", b), LineMatch::NeedMore);
        assert_eq!(match_boundary_line(b"-", b), LineMatch::NeedMore);
        assert_eq!(match_boundary_line(b"", b), LineMatch::NeedMore);
    }

    #[test]
    fn the_search_only_tries_line_starts_and_resumes() {
        let b = b"frame";
        let bytes = b"x--frame\r\nabc\r\n--frame\r\n";
        assert_eq!(
            find_boundary_line(bytes, 0, true, b),
            Search::Found {
                at: 15,
                len: 9,
                closing: false
            }
        );
        assert_eq!(
            find_boundary_line(&bytes[..18], 0, true, b),
            Search::NotYet {
                resume: 15,
                line_start: true
            }
        );
        assert_eq!(
            find_boundary_line(&bytes[..12], 0, true, b),
            Search::NotYet {
                resume: 12,
                line_start: false
            }
        );
    }

    #[test]
    fn the_first_line_teaches_the_boundary() {
        assert_eq!(
            learn_boundary(b"--ffmpeg\r\nContent-type"),
            FirstLine::Boundary {
                boundary: b"ffmpeg".to_vec(),
                len: 10
            }
        );
        assert_eq!(learn_boundary(b"--ffm"), FirstLine::NeedMore);
        assert_eq!(learn_boundary(b"--\r\n"), FirstLine::Other);
        assert_eq!(learn_boundary(&[b'-'; 200]), FirstLine::Other);
    }

    #[test]
    fn part_heads_give_length_timestamp_and_frame() {
        let head = b"Content-type: image/jpeg\r\ncontent-length: 1234\r\n\
                     X-Timestamp: 1712.0345678\r\nX-Frame: 42\r\n\r\n\xFF\xD8";
        let PartHead::Complete { headers, len } = parse_part_head(head) else {
            panic!("a complete head");
        };
        assert_eq!(len, head.len() - 2);
        assert_eq!(headers.content_length, Some(1234));
        assert_eq!(headers.timestamp_micros, Some(1_712_034_567));
        assert_eq!(headers.frame_number, Some(42));
        assert_eq!(headers.get("CONTENT-TYPE"), Some("image/jpeg"));
        assert_eq!(parse_part_head(b"Content-Type: ima"), PartHead::Incomplete);
        assert_eq!(
            parse_part_head(b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            PartHead::Malformed
        );
        assert_eq!(
            parse_part_head(b"Content-Length: -1\r\n\r\n"),
            PartHead::Malformed
        );
        assert_eq!(parse_part_head(b"\xFF\xD8\xFF"), PartHead::Malformed);
    }

    #[test]
    fn decimal_seconds_become_microseconds_exactly() {
        assert_eq!(parse_decimal_seconds("12"), Some(12_000_000));
        assert_eq!(parse_decimal_seconds("0.5"), Some(500_000));
        assert_eq!(parse_decimal_seconds("1.0000019"), Some(1_000_001));
        assert_eq!(parse_decimal_seconds(".5"), None);
        assert_eq!(parse_decimal_seconds("1e3"), None);
        assert_eq!(parse_decimal_seconds("99999999999999999999"), None);
    }
}
