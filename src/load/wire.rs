//! What goes over the wire: the request bytes the user typed with escapes,
//! the greeting to skip and the framing of the replies.
//!
//! Everything here is sans-IO (bytes in, counts out), so it is tested with
//! arbitrary chunking and never sees a socket.

use std::fmt;
use std::str::FromStr;

use crate::text::hex_digit_value;

/// Turns the `--request` text into bytes, understanding `\r`, `\n`, `\t`,
/// `\\` and `\xHH` so that protocol terminators can be typed on a shell line.
pub fn parse_escapes(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let high = bytes.next().and_then(hex_digit_value);
                let low = bytes.next().and_then(hex_digit_value);
                match (high, low) {
                    (Some(high), Some(low)) => out.push(high << 4 | low),
                    _ => return Err("\\x needs two hex digits, as in \\x0a".to_string()),
                }
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape \\{}; use \\r \\n \\t \\\\ or \\xHH",
                    other.escape_ascii()
                ))
            }
            None => return Err("the request ends in a lone backslash; write \\\\".to_string()),
        }
    }
    Ok(out)
}

/// How replies are framed (`--expect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Each reply is one line ending in `\n` (camloop line mode, redis inline,
    /// memcached).
    Line,
    /// Each reply is exactly this many bytes (the classic bare `Received` is 8).
    Bytes(usize),
}

impl FromStr for Expect {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "line" {
            return Ok(Expect::Line);
        }
        match parse_byte_count(text) {
            Some(count) => Ok(Expect::Bytes(count)),
            None => Err(format!(
                "expected `line` or `bytes:N` with N > 0, got `{text}`"
            )),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Line => write!(f, "line"),
            Expect::Bytes(count) => write!(f, "bytes:{count}"),
        }
    }
}

/// What the server sends on connect before any request (`--greeting`).
///
/// Also serves as the state of a connection's greeting: [`Greeting::consume`]
/// shrinks it towards `None`, "nothing (more) to skip".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Greeting {
    /// No greeting (redis, memcached).
    None,
    /// One line ending in `\n` (camloop `--framing line` sends `Welcome\n`).
    Line,
    /// Exactly this many bytes (camloop's bare `Welcome` is 7).
    Bytes(usize),
}

impl Greeting {
    /// Skips greeting bytes at the front of `bytes` and returns how many it
    /// took; whatever follows them is reply data.
    pub fn consume(&mut self, bytes: &[u8]) -> usize {
        match *self {
            Greeting::None => 0,
            Greeting::Line => match bytes.iter().position(|&byte| byte == b'\n') {
                Some(end) => {
                    *self = Greeting::None;
                    end + 1
                }
                None => bytes.len(),
            },
            Greeting::Bytes(left) => {
                let taken = left.min(bytes.len());
                *self = if taken == left {
                    Greeting::None
                } else {
                    Greeting::Bytes(left - taken)
                };
                taken
            }
        }
    }

    /// Whether the whole greeting has arrived, so requests may be sent.
    pub fn is_done(&self) -> bool {
        *self == Greeting::None
    }
}

impl FromStr for Greeting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(Greeting::None),
            "line" => Ok(Greeting::Line),
            _ => match parse_byte_count(text) {
                Some(count) => Ok(Greeting::Bytes(count)),
                None => Err(format!(
                    "expected `none`, `line` or `bytes:N` with N > 0, got `{text}`"
                )),
            },
        }
    }
}

impl fmt::Display for Greeting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Greeting::None => write!(f, "none"),
            Greeting::Line => write!(f, "line"),
            Greeting::Bytes(count) => write!(f, "bytes:{count}"),
        }
    }
}

/// `bytes:N` with N > 0.
fn parse_byte_count(text: &str) -> Option<usize> {
    let count: usize = text.strip_prefix("bytes:")?.parse().ok()?;
    (count > 0).then_some(count)
}

/// Counts complete replies in a byte stream that arrives in arbitrary chunks.
///
/// It never stores reply bytes: a line reply is complete at its `\n` and a
/// fixed-size reply after its N-th byte, so all it remembers is how far into
/// a fixed-size reply the stream is. That keeps a connection's memory
/// constant however large or slow the replies are.
#[derive(Debug, Clone)]
pub struct ReplyCounter {
    expect: Expect,
    /// Bytes of the current, incomplete `bytes:N` reply already seen.
    partial_bytes: usize,
}

impl ReplyCounter {
    /// A counter at the start of a reply.
    pub fn new(expect: Expect) -> Self {
        ReplyCounter {
            expect,
            partial_bytes: 0,
        }
    }

    /// Feeds the next bytes of the stream and returns how many replies they
    /// completed.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        match self.expect {
            Expect::Line => bytes.iter().filter(|&&byte| byte == b'\n').count(),
            Expect::Bytes(size) => {
                let seen = self.partial_bytes + bytes.len();
                self.partial_bytes = seen % size;
                seen / size
            }
        }
    }
}
