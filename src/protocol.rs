//! The control protocol, sans-IO: bytes in, requests out; replies out as bytes.
//!
//! This module owns the framing rules of the control port (raw, line and
//! auto, as docs/control-protocol.md describes them), the request
//! vocabulary and the exact reply strings. It never touches a socket, a
//! clock or the camera, and depends on nothing but `std`: the event loop
//! feeds it whatever one `read()` returned and executes the [`Request`]s it
//! yields. That split is what lets the tests cut a byte stream at every
//! possible place and check that the requests come out the same.

use std::fmt;

/// The greeting sent on connect. Bare, no terminator: the classic Python
/// client does `recv(1024)` and expects exactly these bytes.
pub const GREETING: &[u8] = b"Welcome";

/// The greeting with `--framing line`, where every reply is a line.
pub const GREETING_LINE: &[u8] = b"Welcome\n";

/// The reply to any message that is not a request, and in raw mode to a
/// request that failed: the only answer the classic client knows.
pub const RECEIVED: &str = "Received";

/// The reply to `ping`.
pub const PONG: &str = "PONG";

/// The reply to a successful `auth`.
pub const OK: &str = "OK";

/// The line-mode reply to `exit`/`quit`.
pub const BYE: &str = "Bye";

/// The line-mode reply to an accepted `shutdown`.
pub const SHUTTING_DOWN: &str = "OK shutting down";

/// Sent instead of the greeting to a client the server has no room for,
/// before it closes the connection, with `auto` and `line` framing. With
/// `--framing raw` every client is a classic one, which must never see
/// `ERR`: it gets the connection closed without a word instead.
pub const MAX_CLIENTS_REFUSAL: &[u8] = b"ERR limit: max clients reached\n";

/// In raw framing one `read()` of at most this many bytes is one message,
/// like the classic server's `recv(1024)`.
pub const MAX_RAW_MESSAGE_BYTES: usize = 1024;

/// Longest request line accepted in line mode (terminator excluded). A
/// longer line gets `ERR request: line too long` and the connection closes,
/// because a peer that sends kilobytes without a newline is not speaking
/// this protocol and must not make us buffer without bound.
pub const MAX_LINE_BYTES: usize = 4096;

/// The reply to `help`.
pub const HELP_REPLY: &str =
    "OK requests: c capture ping stats frame controls get set cameras help auth exit quit shutdown";

/// How a connection delimits requests (`--framing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Framing {
    /// Raw until a read contains a `\n`, line mode from that read on.
    #[default]
    Auto,
    /// Every request is one `\n`-terminated line.
    Line,
    /// Every `read()` (at most [`MAX_RAW_MESSAGE_BYTES`]) is one message.
    Raw,
}

impl Framing {
    /// What a client the server has no room for gets before the close.
    pub fn max_clients_refusal(self) -> &'static [u8] {
        if self == Framing::Raw {
            b""
        } else {
            MAX_CLIENTS_REFUSAL
        }
    }

    /// The greeting a new connection gets.
    pub fn greeting(self) -> &'static [u8] {
        if self == Framing::Line {
            GREETING_LINE
        } else {
            GREETING
        }
    }
}

/// What ended a request, and so what must end its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Terminator {
    /// A raw-mode message: replies are bare, and `ERR` is never sent.
    Bare,
    /// `\n`.
    Lf,
    /// `\r\n`.
    CrLf,
}

impl Terminator {
    /// The bytes to put after a reply.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Terminator::Bare => b"",
            Terminator::Lf => b"\n",
            Terminator::CrLf => b"\r\n",
        }
    }

    /// Raw-mode requests come from the classic clients, which only know
    /// `Received`.
    pub fn is_raw(self) -> bool {
        self == Terminator::Bare
    }
}

/// The request vocabulary of the control port.
///
/// A request about a camera may name one as its first argument, decided by
/// the argument count (`c cam1`, `get cam1 brightness`, `set cam1
/// brightness 60`); `camera` is that name (lowercased) or None for the
/// default camera. Whether the name exists is the server's business: the
/// parser knows no cameras.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Any other text, or an empty line: answered with `Received`.
    Message,
    /// `c [CAM]` or `capture [CAM]`: save a snapshot of a frame grabbed
    /// after the request.
    Capture {
        /// The camera named, if any.
        camera: Option<String>,
    },
    /// `ping`.
    Ping,
    /// `stats [CAM]`.
    Stats {
        /// The camera named, if any (its own counters and `camera_name=`).
        camera: Option<String>,
    },
    /// `frame [CAM]`: send the newest JPEG over the socket.
    Frame {
        /// The camera named, if any.
        camera: Option<String>,
    },
    /// `controls [CAM]`: every camera control with its value and range.
    Controls {
        /// The camera named, if any.
        camera: Option<String>,
    },
    /// `get [CAM] <name>`: one control's value (the name lowercased; empty
    /// if none was given).
    Get(Box<GetControl>),
    /// `set [CAM] <name> <value>`: change a control (name lowercased, value
    /// as sent; either may be empty, which is a usage error).
    Set(Box<SetControl>),
    /// `cameras`: every camera's name and source.
    Cameras,
    /// `help`.
    Help,
    /// `auth <token>`; the token is kept as sent (it may be any bytes).
    Auth(Vec<u8>),
    /// `exit` or `quit`.
    Exit,
    /// `shutdown`: stop the whole server gracefully.
    Shutdown,
}

impl Command {
    /// The camera a request names, if it names one.
    pub fn camera(&self) -> Option<&str> {
        match self {
            Command::Capture { camera }
            | Command::Stats { camera }
            | Command::Frame { camera }
            | Command::Controls { camera } => camera.as_deref(),
            Command::Get(get) => get.camera.as_deref(),
            Command::Set(set) => set.camera.as_deref(),
            _ => None,
        }
    }
}

/// The arguments of `get`. (Boxed in [`Command`], as are `set`'s: every
/// request is moved from the decoder to the session, and a `ping` should
/// not carry the room of three strings.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetControl {
    /// The camera named, if any.
    pub camera: Option<String>,
    /// The control.
    pub name: String,
}

/// The arguments of `set`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetControl {
    /// The camera named, if any.
    pub camera: Option<String>,
    /// The control.
    pub name: String,
    /// The new value, not yet parsed: its range depends on the camera.
    pub value: String,
}

/// One decoded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What was asked.
    pub command: Command,
    /// How it was framed; the reply uses the same terminator.
    pub terminator: Terminator,
}

/// Input the decoder refuses; the connection is closed after the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A line longer than [`MAX_LINE_BYTES`].
    LineTooLong,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::LineTooLong => f.write_str("request: line too long"),
        }
    }
}

/// Incremental decoder for one connection.
///
/// Holds only the unfinished tail of a line, allocated lazily: an idle
/// connection costs no buffer at all.
#[derive(Debug, Default)]
pub struct Decoder {
    framing: Framing,
    line_mode: bool,
    partial_line: Vec<u8>,
}

impl Decoder {
    /// A decoder for a new connection with the given framing.
    pub fn new(framing: Framing) -> Self {
        Decoder {
            framing,
            line_mode: framing == Framing::Line,
            partial_line: Vec::new(),
        }
    }

    /// Whether requests are lines now (always in line framing, after the
    /// first read containing `\n` in auto framing).
    pub fn is_line_mode(&self) -> bool {
        self.line_mode
    }

    /// The most bytes the next `read()` may take. In raw mode a read *is* a
    /// message, so the socket layer must not read more than one message's
    /// worth at once.
    pub fn max_read_bytes(&self) -> Option<usize> {
        if self.line_mode {
            None
        } else {
            Some(MAX_RAW_MESSAGE_BYTES)
        }
    }

    /// Bytes of an unfinished line held between reads.
    pub fn buffered_bytes(&self) -> usize {
        self.partial_line.len()
    }

    /// The requests in what one `read()` returned, one at a time, as an
    /// iterator: the caller can run each before the next is decoded, and
    /// nothing is collected in between. An `Err` ends the iteration (the
    /// requests before it are answered first), and the decoder must not
    /// be fed again. An unfinished last line is kept for the next read.
    pub fn requests<'d, 'r>(&'d mut self, read: &'r [u8]) -> Requests<'d, 'r> {
        // Decided once per read, before any of it is split: a raw read is
        // one message however it is cut up.
        if !self.line_mode && self.framing == Framing::Auto && read.contains(&b'\n') {
            self.line_mode = true;
        }
        Requests {
            decoder: self,
            rest: read,
            done: false,
        }
    }

    /// Decodes what one `read()` returned, appending requests to `out`
    /// (the collecting form of [`Decoder::requests`], for tests and tools).
    ///
    /// On an error, the requests before the offending line are still in
    /// `out` (they are answered first), and the decoder must not be fed again.
    pub fn feed(&mut self, read: &[u8], out: &mut Vec<Request>) -> Result<(), DecodeError> {
        for decoded in self.requests(read) {
            out.push(decoded?);
        }
        Ok(())
    }

    /// The next whole line of `rest` as a request, moving `rest` past it;
    /// None once no `\n` is left (the remainder is kept as the start of
    /// the next line).
    fn next_line(&mut self, rest: &mut &[u8]) -> Option<Result<Request, DecodeError>> {
        let Some(newline_at) = rest.iter().position(|&b| b == b'\n') else {
            // +1: the line may still end in a `\r` that is not part of it.
            if self.partial_line.len() + rest.len() > MAX_LINE_BYTES + 1 {
                return Some(Err(DecodeError::LineTooLong));
            }
            if !rest.is_empty() {
                self.partial_line.extend_from_slice(rest);
                *rest = &[];
            }
            return None;
        };
        let (line_part, after) = (&rest[..newline_at], &rest[newline_at + 1..]);
        *rest = after;
        // Only copy when a line was split across reads; the common case
        // (whole lines in one read) parses straight from the read buffer.
        if self.partial_line.is_empty() {
            return Some(line_request(line_part));
        }
        if self.partial_line.len() + line_part.len() > MAX_LINE_BYTES + 1 {
            return Some(Err(DecodeError::LineTooLong));
        }
        self.partial_line.extend_from_slice(line_part);
        let request = line_request(&self.partial_line);
        self.partial_line = Vec::new();
        Some(request)
    }
}

/// The requests of one read: see [`Decoder::requests`].
pub struct Requests<'d, 'r> {
    decoder: &'d mut Decoder,
    rest: &'r [u8],
    done: bool,
}

impl Iterator for Requests<'_, '_> {
    type Item = Result<Request, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.decoder.line_mode {
            // A caller that ignored max_read_bytes still gets raw
            // semantics: each 1024-byte piece is one message.
            if self.rest.is_empty() {
                self.done = true;
                return None;
            }
            let (message, rest) = self
                .rest
                .split_at(self.rest.len().min(MAX_RAW_MESSAGE_BYTES));
            self.rest = rest;
            return Some(Ok(Request {
                command: raw_command(message),
                terminator: Terminator::Bare,
            }));
        }
        let next = self.decoder.next_line(&mut self.rest);
        // After the last line, or an error, nothing more comes.
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

/// Builds the request for one complete line (without its `\n`).
fn line_request(line: &[u8]) -> Result<Request, DecodeError> {
    let (line, terminator) = match line.strip_suffix(b"\r") {
        Some(stripped) => (stripped, Terminator::CrLf),
        None => (line, Terminator::Lf),
    };
    if line.len() > MAX_LINE_BYTES {
        return Err(DecodeError::LineTooLong);
    }
    Ok(Request {
        command: parse_command(line),
        terminator,
    })
}

/// Maps one message (a line or a raw read) to a command. Surrounding ASCII
/// whitespace is ignored and keywords are case-insensitive; anything not
/// recognised is a plain message, answered `Received` as the classic server did.
#[inline]
pub fn parse_command(message: &[u8]) -> Command {
    let message = message.trim_ascii();
    // Most requests are one keyword as the protocol spells it: they take
    // one match, without splitting or lowercasing.
    if let Some(command) = bare_command(message) {
        return command;
    }
    let (word, argument) = match message.iter().position(|b| b.is_ascii_whitespace()) {
        Some(space_at) => (&message[..space_at], message[space_at..].trim_ascii()),
        None => (message, &b""[..]),
    };
    // Keywords are case-insensitive: the first word, lowercased on the
    // stack (a word longer than any keyword is none).
    let mut lowered = [0u8; MAX_KEYWORD_BYTES];
    let Some(keyword) = lowered.get_mut(..word.len()) else {
        return Command::Message;
    };
    keyword.copy_from_slice(word);
    keyword.make_ascii_lowercase();
    let keyword: &[u8] = keyword;
    match keyword {
        b"auth" => Command::Auth(argument.to_vec()),
        b"get" => get_command(argument),
        b"set" => set_command(argument),
        _ if argument.is_empty() => bare_command(keyword).unwrap_or(Command::Message),
        b"c" | b"capture" | b"stats" | b"frame" | b"controls" => camera_command(keyword, argument),
        _ => Command::Message,
    }
}

/// The longest keywords (`controls`, `shutdown`).
const MAX_KEYWORD_BYTES: usize = 8;

/// A request that is only a keyword (lowercase), if it is one. `auth`,
/// `get` and `set` are not: without their arguments they are still
/// theirs, answered with a usage error.
///
/// (Inlined at both calls: returned through memory, the `Option` cost as
/// much as the match.)
#[inline(always)]
fn bare_command(keyword: &[u8]) -> Option<Command> {
    Some(match keyword {
        b"ping" => Command::Ping,
        b"c" | b"capture" => Command::Capture { camera: None },
        b"stats" => Command::Stats { camera: None },
        b"frame" => Command::Frame { camera: None },
        b"controls" => Command::Controls { camera: None },
        b"cameras" => Command::Cameras,
        b"help" => Command::Help,
        b"exit" | b"quit" => Command::Exit,
        b"shutdown" => Command::Shutdown,
        _ => return None,
    })
}

// The requests with arguments are parsed apart, so that the one function
// every request goes through stays small.

/// `get [CAM] <name>`.
fn get_command(argument: &[u8]) -> Command {
    control_text(argument).map_or(Command::Message, |text| {
        let (camera, name) = match *text.split_ascii_whitespace().collect::<Vec<_>>() {
            [] => (None, ""),
            [name] => (None, name),
            [camera, name] => (Some(camera.to_string()), name),
            _ => return Command::Message,
        };
        Command::Get(Box::new(GetControl {
            camera,
            name: name.to_string(),
        }))
    })
}

/// `set [CAM] <name> <value>`.
fn set_command(argument: &[u8]) -> Command {
    control_text(argument).map_or(Command::Message, |text| {
        let (camera, name, value) = match *text.split_ascii_whitespace().collect::<Vec<_>>() {
            [] => (None, "", ""),
            [name] => (None, name, ""),
            [name, value] => (None, name, value),
            [camera, name, value] => (Some(camera.to_string()), name, value),
            _ => return Command::Message,
        };
        Command::Set(Box::new(SetControl {
            camera,
            name: name.to_string(),
            value: value.to_string(),
        }))
    })
}

/// The requests about one camera, named or the default: no argument, or
/// exactly one (the camera's name).
fn camera_command(keyword: &[u8], argument: &[u8]) -> Command {
    let camera = match control_text(argument) {
        None => return Command::Message,
        Some(text) if text.contains(|c: char| c.is_ascii_whitespace()) => return Command::Message,
        Some(text) => (!text.is_empty()).then_some(text),
    };
    match keyword {
        b"stats" => Command::Stats { camera },
        b"frame" => Command::Frame { camera },
        b"controls" => Command::Controls { camera },
        _ => Command::Capture { camera },
    }
}

/// A raw-mode message: like [`parse_command`], but a request that names a
/// camera stays a plain message. A raw read may split `c` from ` cam1`, so
/// in raw mode only the bare keywords mean something, as before cameras
/// had names.
fn raw_command(message: &[u8]) -> Command {
    match parse_command(message) {
        command if command.camera().is_some() => Command::Message,
        command => command,
    }
}

/// A control name or value, lowercased. Control names and values are
/// ASCII; anything else cannot name a control and stays a plain message,
/// as before these requests existed.
fn control_text(argument: &[u8]) -> Option<String> {
    std::str::from_utf8(argument)
        .ok()
        .map(str::to_ascii_lowercase)
}

/// The header that precedes the JPEG bytes of a `frame` reply, in both modes.
pub fn frame_header(jpeg_len: usize) -> String {
    format!("FRAME {jpeg_len}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(framing: Framing, reads: &[&[u8]]) -> Vec<Request> {
        let mut decoder = Decoder::new(framing);
        let mut out = Vec::new();
        for read in reads {
            decoder.feed(read, &mut out).expect("valid input");
        }
        out
    }

    #[test]
    fn keywords_are_case_insensitive_and_trimmed() {
        assert_eq!(parse_command(b"  PiNg \r\n"), Command::Ping);
        assert_eq!(parse_command(b"C"), Command::Capture { camera: None });
        assert_eq!(parse_command(b"Quit"), Command::Exit);
        assert_eq!(parse_command(b"ping me"), Command::Message);
        assert_eq!(parse_command(b""), Command::Message);
        assert_eq!(
            parse_command(b"auth  s3cret "),
            Command::Auth(b"s3cret".to_vec())
        );
    }

    #[test]
    fn requests_come_one_at_a_time_and_stop_at_an_error() {
        let mut decoder = Decoder::new(Framing::Line);
        let mut read = b"ping\r\nstats\n".to_vec();
        read.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 2));
        read.extend_from_slice(b"\nping\n");
        let mut requests = decoder.requests(&read);
        let first = requests.next().unwrap().unwrap();
        assert_eq!(
            (first.command, first.terminator),
            (Command::Ping, Terminator::CrLf)
        );
        let second = requests.next().unwrap().unwrap();
        assert_eq!(second.command, Command::Stats { camera: None });
        assert_eq!(requests.next(), Some(Err(DecodeError::LineTooLong)));
        assert_eq!(requests.next(), None, "nothing after the refused line");
        // An unfinished line waits for the next read.
        let mut decoder = Decoder::new(Framing::Line);
        assert_eq!(decoder.requests(b"pi").next(), None);
        assert_eq!(decoder.buffered_bytes(), 2);
        let request = decoder.requests(b"ng\n").next().unwrap().unwrap();
        assert_eq!(request.command, Command::Ping);
        assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn a_bare_keyword_means_the_same_in_any_spelling() {
        // Lowercase keywords take the short way (`bare_command`), others
        // the general one: both must agree, arguments or not.
        for keyword in [
            "ping", "c", "capture", "stats", "frame", "controls", "cameras", "help", "exit",
            "quit", "shutdown", "auth", "get", "set", "hello",
        ] {
            let lower = parse_command(keyword.as_bytes());
            let upper = keyword.to_ascii_uppercase();
            assert_eq!(parse_command(upper.as_bytes()), lower, "{upper}");
            assert_eq!(parse_command(format!(" {keyword}\t").as_bytes()), lower);
            assert_eq!(
                parse_command(format!("{upper} cam1").as_bytes()),
                parse_command(format!("{keyword} cam1").as_bytes()),
                "{upper} cam1"
            );
        }
        assert_eq!(parse_command(b"PING"), Command::Ping);
        assert_eq!(parse_command(b"c"), Command::Capture { camera: None });
        assert_eq!(parse_command(b"auth"), Command::Auth(Vec::new()));
    }

    #[test]
    fn a_keyword_matches_only_a_word_of_its_length() {
        // The first word is lowercased into a fixed buffer: what is left
        // of the buffer must not count.
        assert_eq!(parse_command(b"ping\0"), Command::Message);
        assert_eq!(parse_command(b"\0ping"), Command::Message);
        assert_eq!(parse_command(b"pin"), Command::Message);
        assert_eq!(parse_command(b"SHUTDOWN"), Command::Shutdown);
        assert_eq!(parse_command(b"shutdowns"), Command::Message);
        assert_eq!(parse_command(b"cc"), Command::Message);
        assert_eq!(
            parse_command(b"Controls cam1"),
            Command::Controls {
                camera: Some("cam1".into())
            }
        );
    }

    fn get(camera: Option<&str>, name: &str) -> Command {
        Command::Get(Box::new(GetControl {
            camera: camera.map(str::to_string),
            name: name.into(),
        }))
    }

    fn set(camera: Option<&str>, name: &str, value: &str) -> Command {
        Command::Set(Box::new(SetControl {
            camera: camera.map(str::to_string),
            name: name.into(),
            value: value.into(),
        }))
    }

    #[test]
    fn control_requests_carry_their_arguments() {
        assert_eq!(
            parse_command(b"CONTROLS"),
            Command::Controls { camera: None }
        );
        assert_eq!(parse_command(b"controls x y"), Command::Message);
        assert_eq!(parse_command(b"get  Brightness "), get(None, "brightness"));
        assert_eq!(parse_command(b"get"), get(None, ""));
        assert_eq!(
            parse_command(b"SET brightness 60"),
            set(None, "brightness", "60")
        );
        assert_eq!(
            parse_command(b"set brightness"),
            set(None, "brightness", "")
        );
        assert_eq!(parse_command(b"set a b c d"), Command::Message);
        assert_eq!(parse_command(b"get a b c"), Command::Message);
        assert_eq!(parse_command(b"get \xff"), Command::Message);
    }

    #[test]
    fn a_camera_is_the_first_argument_decided_by_the_count() {
        let cam1 = Some("cam1".to_string());
        assert_eq!(
            parse_command(b"c cam1"),
            Command::Capture {
                camera: cam1.clone()
            }
        );
        assert_eq!(
            parse_command(b"CAPTURE Cam1"),
            Command::Capture {
                camera: cam1.clone()
            }
        );
        assert_eq!(
            parse_command(b"stats cam1"),
            Command::Stats {
                camera: cam1.clone()
            }
        );
        assert_eq!(
            parse_command(b"frame cam1"),
            Command::Frame {
                camera: cam1.clone()
            }
        );
        assert_eq!(
            parse_command(b"controls cam1"),
            Command::Controls { camera: cam1 }
        );
        assert_eq!(
            parse_command(b"get cam1 brightness"),
            get(Some("cam1"), "brightness")
        );
        assert_eq!(
            parse_command(b"set cam1 brightness 60"),
            set(Some("cam1"), "brightness", "60")
        );
        assert_eq!(parse_command(b"c cam1 cam2"), Command::Message);
        assert_eq!(parse_command(b"cameras"), Command::Cameras);
        assert_eq!(parse_command(b"cameras x"), Command::Message);
    }

    #[test]
    fn raw_mode_never_names_a_camera() {
        // A raw read may split `c` from ` cam1`: with a name, it is a message.
        let requests = decode_all(Framing::Raw, &[b"c cam1", b"get cam1 brightness", b"c"]);
        let commands: Vec<_> = requests.iter().map(|r| r.command.clone()).collect();
        assert_eq!(
            commands,
            [
                Command::Message,
                Command::Message,
                Command::Capture { camera: None }
            ]
        );
    }

    #[test]
    fn line_mode_keeps_each_requests_terminator() {
        let requests = decode_all(Framing::Line, &[b"ping\r\nstats\n\n"]);
        let terminators: Vec<_> = requests.iter().map(|r| r.terminator).collect();
        assert_eq!(
            terminators,
            [Terminator::CrLf, Terminator::Lf, Terminator::Lf]
        );
        assert_eq!(requests[2].command, Command::Message);
    }

    #[test]
    fn raw_mode_treats_each_read_as_one_message() {
        let requests = decode_all(Framing::Raw, &[b"hello", b"c", b"exit\n"]);
        let commands: Vec<_> = requests.iter().map(|r| r.command.clone()).collect();
        assert_eq!(
            commands,
            [
                Command::Message,
                Command::Capture { camera: None },
                Command::Exit
            ]
        );
        assert!(requests.iter().all(|r| r.terminator == Terminator::Bare));
    }

    #[test]
    fn auto_switches_to_lines_on_the_first_newline() {
        let mut decoder = Decoder::new(Framing::Auto);
        let mut out = Vec::new();
        decoder.feed(b"hello", &mut out).unwrap();
        assert!(!decoder.is_line_mode());
        decoder.feed(b"pi", &mut out).unwrap();
        decoder.feed(b"ng\nst", &mut out).unwrap();
        assert!(decoder.is_line_mode());
        decoder.feed(b"ats\n", &mut out).unwrap();
        let commands: Vec<_> = out.iter().map(|r| r.command.clone()).collect();
        // "pi" was a raw message of its own; the read with the newline is
        // line mode from its first byte.
        assert_eq!(
            commands,
            [
                Command::Message,
                Command::Message,
                Command::Message,
                Command::Stats { camera: None }
            ]
        );
    }

    #[test]
    fn an_over_long_line_is_refused_even_without_newline() {
        let mut decoder = Decoder::new(Framing::Line);
        let mut out = Vec::new();
        let long = vec![b'x'; MAX_LINE_BYTES + 2];
        assert_eq!(decoder.feed(&long, &mut out), Err(DecodeError::LineTooLong));
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_accepted() {
        let mut line = vec![b'x'; MAX_LINE_BYTES];
        line.extend_from_slice(b"\r\n");
        let requests = decode_all(Framing::Line, &[&line[..100], &line[100..]]);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].terminator, Terminator::CrLf);
    }

    #[test]
    fn requests_before_a_long_line_are_still_decoded() {
        let mut decoder = Decoder::new(Framing::Line);
        let mut out = Vec::new();
        let mut input = b"ping\n".to_vec();
        input.extend(vec![b'y'; MAX_LINE_BYTES + 1]);
        input.push(b'\n');
        assert_eq!(
            decoder.feed(&input, &mut out),
            Err(DecodeError::LineTooLong)
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].command, Command::Ping);
    }
}
