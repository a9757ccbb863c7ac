//! A client that behaves like the classic Python socket client, to show
//! what camloop's raw framing is for.
//!
//!     cargo run --example classic_client [-- [HOST:PORT] [MESSAGE...]]
//!
//! It connects (default 127.0.0.1:8233), does one `recv(1024)` for the
//! greeting, then for each message (default: `hello`, `c`, `exit`) does one
//! `send(message)` with no newline and one `recv(1024)` for the reply,
//! printing each on its own line. `exit` ends the session: the server
//! closes the connection without a reply, so the client expects end of
//! file there and prints `(connection closed)`.
//!
//! One read per reply works only because the client waits for each reply
//! before it sends the next message: nothing else is in flight, so the
//! server's one read is exactly one message and the client's one read is
//! exactly one reply. That is the whole contract of raw framing.
//!
//! Exits 0 when every reply came, 1 otherwise (refused, reset, timed out,
//! closed early).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

/// Where it connects when no HOST:PORT is given (camloop's control port).
const DEFAULT_ADDR: &str = "127.0.0.1:8233";
/// What it sends when no messages are given: the classic session.
const DEFAULT_MESSAGES: [&str; 3] = ["hello", "c", "exit"];
/// One `recv()` takes at most this much, like the classic `recv(1024)`.
const RECV_BYTES: usize = 1024;
/// Longest wait for any reply. A capture on a slow camera takes a while;
/// a server that never answers must not hang the client.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Same rule as `camloop ctl`: the first word is the address only if it
    // looks like HOST:PORT.
    let (addr, messages) = match args.split_first() {
        Some((first, rest)) if camloop::client::is_host_port(first) => (first.as_str(), rest),
        _ => (DEFAULT_ADDR, &args[..]),
    };
    let messages: Vec<&str> = if messages.is_empty() {
        DEFAULT_MESSAGES.to_vec()
    } else {
        messages.iter().map(String::as_str).collect()
    };
    match run(addr, &messages) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("classic_client: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The classic session: greeting, then send and receive once per message.
fn run(addr: &str, messages: &[&str]) -> io::Result<()> {
    let mut socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let greeting = recv(&mut socket)?;
    println!("{}", String::from_utf8_lossy(&greeting));
    for message in messages {
        socket.write_all(message.as_bytes())?;
        let mut reply = recv(&mut socket)?;
        if message.trim().eq_ignore_ascii_case("exit") {
            // The classic client stops here. camloop sends nothing in raw
            // mode; a server that says goodbye first must close right after.
            if !reply.is_empty() {
                println!("{}", String::from_utf8_lossy(&reply));
                reply = recv(&mut socket)?;
            }
            if !reply.is_empty() {
                return Err(closed_error("still open after exit"));
            }
            println!("(connection closed)");
            return Ok(());
        }
        if reply.is_empty() {
            return Err(closed_error(&format!(
                "closed instead of replying to {message:?}"
            )));
        }
        println!("{}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}

fn closed_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what.to_string())
}

/// One `recv(1024)`: whatever one read returns, empty at end of file.
/// A timeout is an error (`WouldBlock` or `TimedOut`, depending on the OS).
fn recv(socket: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut buffer = [0; RECV_BYTES];
    loop {
        match socket.read(&mut buffer) {
            Ok(n) => return Ok(buffer[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no reply within {} s", REPLY_TIMEOUT.as_secs()),
                ))
            }
            Err(e) => return Err(e),
        }
    }
}
