//! `camloop ctl`: a small blocking client for the control port.
//!
//! A client talks to one server at a time and waits for each reply, so
//! plain blocking `std::net` is the right tool here; the event loop is the
//! server's business. Reads the bare `Welcome` greeting (7 bytes, plus one
//! `\n` when the server uses line framing), then speaks line mode.

use std::fs;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::protocol::GREETING;

/// Where `ctl` connects when no HOST:PORT is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8233";
/// Longest wait for a reply: a capture on a slow camera takes a while, a
/// dead server should not hang a script forever.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `frame` reply accepted, so a confused server cannot make the
/// client allocate without bound.
const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Exit code when the server cannot be reached or breaks the protocol.
const EXIT_CONNECT_FAILED: u8 = 2;

/// One request to send, and where a `frame` reply should be saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlRequest {
    /// The request line, without terminator.
    pub line: String,
    /// `frame -o FILE`.
    pub save_to: Option<PathBuf>,
}

/// Whether `word` is an address: HOST:PORT, or a Unix socket path (starting
/// with `/` or `unix:`). Only then is the first argument not a request.
pub fn is_address(word: &str) -> bool {
    unix_socket_path(word).is_some() || is_host_port(word)
}

/// The path of a Unix-socket address, if `addr` is one.
fn unix_socket_path(addr: &str) -> Option<&str> {
    addr.strip_prefix("unix:")
        .or_else(|| addr.starts_with('/').then_some(addr))
}

/// Whether `word` looks like HOST:PORT.
pub fn is_host_port(word: &str) -> bool {
    match word.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains(' ') && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

/// Splits the arguments into the address and the requests; `-o FILE`
/// after `frame` (as separate words or inside one) becomes `save_to`.
pub fn parse_words(words: &[String]) -> (String, Vec<CtlRequest>) {
    let (addr, rest) = match words.first() {
        Some(first) if is_address(first) => (first.clone(), &words[1..]),
        _ => (DEFAULT_ADDR.to_string(), words),
    };
    let mut requests: Vec<CtlRequest> = Vec::new();
    let mut iter = rest.iter();
    while let Some(word) = iter.next() {
        if word == "-o" {
            if let (Some(last), Some(file)) = (requests.last_mut(), iter.next()) {
                last.save_to = Some(PathBuf::from(file));
            }
            continue;
        }
        requests.push(parse_request_line(word));
    }
    (addr, requests)
}

/// Parses one request as typed, e.g. `frame -o out.jpg`.
pub fn parse_request_line(text: &str) -> CtlRequest {
    let parts: Vec<&str> = text.split_whitespace().collect();
    match parts.as_slice() {
        [frame, "-o", file] if frame.eq_ignore_ascii_case("frame") => CtlRequest {
            line: frame.to_string(),
            save_to: Some(PathBuf::from(file)),
        },
        _ => CtlRequest {
            line: text.trim_end_matches(['\r', '\n']).to_string(),
            save_to: None,
        },
    }
}

/// A connected control session.
pub struct CtlSession {
    reader: BufReader<Box<dyn Read>>,
    writer: Box<dyn Write>,
    /// The server may follow the greeting with one `\n` (line framing);
    /// it is skipped when the first reply is read, so no wait is needed.
    skip_greeting_newline: bool,
}

/// One reply as read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A text line (terminator removed).
    Line(String),
    /// A `FRAME <n>` reply and its JPEG bytes.
    Frame(Vec<u8>),
    /// The server closed the connection instead of replying.
    Closed,
}

impl CtlSession {
    /// Connects and reads the greeting.
    pub fn connect(addr: &str) -> io::Result<CtlSession> {
        let (read_half, writer): (Box<dyn Read>, Box<dyn Write>) = match unix_socket_path(addr) {
            Some(path) => {
                let stream = UnixStream::connect(path)?;
                stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
                (Box::new(stream.try_clone()?), Box::new(stream))
            }
            None => {
                let stream = TcpStream::connect(addr)?;
                stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
                (Box::new(stream.try_clone()?), Box::new(stream))
            }
        };
        let mut reader = BufReader::new(read_half);
        let mut greeting = [0u8; 7];
        reader.read_exact(&mut greeting)?;
        if greeting != GREETING {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "unexpected greeting {:?}",
                    String::from_utf8_lossy(&greeting)
                ),
            ));
        }
        Ok(CtlSession {
            reader,
            writer,
            skip_greeting_newline: true,
        })
    }

    /// Sends one request line and reads its reply.
    pub fn request(&mut self, line: &str) -> io::Result<Reply> {
        self.writer.write_all(format!("{line}\n").as_bytes())?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        let mut line = Vec::new();
        if self.skip_greeting_newline {
            self.skip_greeting_newline = false;
            if self.reader.fill_buf()?.first() == Some(&b'\n') {
                self.reader.consume(1);
            }
        }
        if self.reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(Reply::Closed);
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if let Some(len) = text.strip_prefix("FRAME ") {
            let len: usize = len
                .parse()
                .ok()
                .filter(|&n| n <= MAX_FRAME_BYTES)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad FRAME header"))?;
            let mut jpeg = vec![0; len];
            self.reader.read_exact(&mut jpeg)?;
            return Ok(Reply::Frame(jpeg));
        }
        Ok(Reply::Line(text))
    }
}

/// Prints a reply; returns whether it was an error.
fn show_reply(reply: &Reply, request: &CtlRequest) -> io::Result<bool> {
    match reply {
        Reply::Line(text) => {
            println!("{text}");
            Ok(text.starts_with("ERR"))
        }
        Reply::Frame(jpeg) => match &request.save_to {
            Some(path) => {
                fs::write(path, jpeg)?;
                println!("FRAME {} saved to {}", jpeg.len(), path.display());
                Ok(false)
            }
            None => {
                println!(
                    "FRAME {} bytes (use `frame -o FILE` to save it)",
                    jpeg.len()
                );
                Ok(false)
            }
        },
        Reply::Closed => Ok(false),
    }
}

fn is_exit(line: &str) -> bool {
    let word = line.trim();
    ["exit", "quit", "shutdown"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// `camloop ctl`: one-shot with requests as arguments, otherwise an
/// interactive prompt (on a terminal) or plain piped stdin.
pub fn run_ctl(words: &[String]) -> ExitCode {
    let (addr, requests) = parse_words(words);
    let mut session = match CtlSession::connect(&addr) {
        Ok(session) => session,
        Err(e) => {
            eprintln!("camloop ctl: cannot connect to {addr}: {e}");
            return ExitCode::from(EXIT_CONNECT_FAILED);
        }
    };
    println!("Welcome");
    let one_shot = !requests.is_empty();
    let result = if one_shot {
        run_requests(&mut session, requests.into_iter())
    } else if io::stdin().is_terminal() {
        run_interactive(&mut session)
    } else {
        let lines = io::stdin().lock().lines().map_while(Result::ok);
        run_requests(&mut session, lines.map(|line| parse_request_line(&line)))
    };
    match result {
        Ok(saw_error) if saw_error && one_shot => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("camloop ctl: {e}");
            ExitCode::from(EXIT_CONNECT_FAILED)
        }
    }
}

/// Sends each request and prints its reply; stops after `exit`, or when
/// the server closes. Returns whether any reply was an error.
fn run_requests(
    session: &mut CtlSession,
    requests: impl Iterator<Item = CtlRequest>,
) -> io::Result<bool> {
    let mut saw_error = false;
    for request in requests {
        let reply = session.request(&request.line)?;
        saw_error |= show_reply(&reply, &request)?;
        if reply == Reply::Closed {
            if !is_exit(&request.line) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            break;
        }
        if is_exit(&request.line) {
            break;
        }
    }
    Ok(saw_error)
}

fn run_interactive(session: &mut CtlSession) -> io::Result<bool> {
    let stdin = io::stdin();
    let mut line = String::new();
    loop {
        print!("camloop> ");
        io::stdout().flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            println!();
            return Ok(false);
        }
        if line.trim().is_empty() {
            continue;
        }
        let request = parse_request_line(&line);
        run_requests(session, std::iter::once(request.clone()))?;
        if is_exit(&request.line) {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_first_word_is_an_address_only_if_it_looks_like_one() {
        assert_eq!(parse_words(&words(&["ping"])).0, DEFAULT_ADDR);
        assert_eq!(
            parse_words(&words(&["localhost:9000", "ping"])).0,
            "localhost:9000"
        );
        assert_eq!(parse_words(&words(&["[::1]:9000"])).0, "[::1]:9000");
        assert!(!is_host_port("c"));
        assert_eq!(
            parse_words(&words(&["/run/camloop.sock", "ping"])).0,
            "/run/camloop.sock"
        );
        assert!(is_address("unix:relative.sock"));
        assert!(!is_host_port("auth x:y"));
    }

    #[test]
    fn frame_output_files_attach_to_the_frame_request() {
        let (_, requests) =
            parse_words(&words(&["frame", "-o", "a.jpg", "ping", "frame -o b.jpg"]));
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].save_to, Some(PathBuf::from("a.jpg")));
        assert_eq!(requests[1].save_to, None);
        assert_eq!(requests[2].line, "frame");
        assert_eq!(requests[2].save_to, Some(PathBuf::from("b.jpg")));
    }
}
