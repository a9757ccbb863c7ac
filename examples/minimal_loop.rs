//! The smallest correct mio server in camloop's style; ARCHITECTURE.md puts
//! it beside `src/server/`. `cargo run --example minimal_loop [-- ADDR]`.
//! It speaks the classic protocol: a bare `Welcome` on connect, `Received`
//! for each `read()` (one read is one message, as with the classic
//! `recv(1024)`), `PONG` for `ping`, and `exit` closes the connection
//! without a reply. Like camloop's `--framing auto`, the first read that
//! holds a `\n` switches the connection to lines: one reply per line, each
//! ending in `\n`, with lines pipelined or split across reads.
//!
//! `benches/compare.sh` loads its `ping` beside camloop's as the ceiling of
//! this design, so it does per request only what camloop must also do.

use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

/// Where it listens when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8234";
/// Before the first line, one `read()` is one message, at most this long.
const MAX_MESSAGE_BYTES: usize = 1024;
/// The most one `read()` takes in line mode.
const READ_BUFFER_BYTES: usize = 4096;
/// A longer line closes the connection: the unfinished line is the only
/// input kept between reads, and it must stay bounded (camloop's limit).
const MAX_LINE_BYTES: usize = 4096;
/// The listener's token; connections use their slab keys, counting from 0.
const LISTENER: Token = Token(usize::MAX);

/// One client: the socket, the bytes it is owed and how far they got.
struct Connection {
    socket: TcpStream,
    /// Whether a read has held a `\n`: requests are lines from then on.
    line_mode: bool,
    /// The start of a line whose `\n` has not arrived yet. Empty, and so
    /// not allocated, between whole lines.
    partial_line: Vec<u8>,
    output: Vec<u8>,
    /// How much of `output` the socket has taken.
    cursor: usize,
    /// `exit` or EOF: stop reading, close once `output` is written.
    closing: bool,
    /// What is registered with the poller, so it changes only when needed.
    registered: Interest,
}

impl Connection {
    /// Everything one event calls for. Events are only hints, so it simply
    /// tries both directions. Returns whether the connection is finished.
    /// `buffer` is the loop's one read buffer: an idle connection owns no
    /// input buffer, and no event pays for zeroing one.
    fn service(&mut self, buffer: &mut [u8]) -> io::Result<bool> {
        // Edge-triggered: an event fires once per change, so read until
        // `WouldBlock`, or data is stranded that no event will recall.
        while !self.closing {
            // A raw read is a message, so it must not take more than one.
            let limit = if self.line_mode {
                buffer.len()
            } else {
                MAX_MESSAGE_BYTES
            };
            match self.socket.read(&mut buffer[..limit]) {
                Ok(0) => self.closing = true,
                Ok(n) => self.on_read(&buffer[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Replies (and the greeting) go out at once, from the cursor; what
        // the socket does not take waits for a WRITABLE event.
        while self.cursor < self.output.len() {
            match self.socket.write(&self.output[self.cursor..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.cursor += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.output.clear();
        self.cursor = 0;
        Ok(self.closing)
    }

    /// Answers what one `read()` brought: one message, or whole lines.
    fn on_read(&mut self, read: &[u8]) {
        self.line_mode |= read.contains(&b'\n');
        if !self.line_mode {
            self.answer(read, b"");
            return;
        }
        let mut rest = read;
        while let Some(end) = rest.iter().position(|&byte| byte == b'\n') {
            let line = &rest[..end];
            rest = &rest[end + 1..];
            if self.partial_line.is_empty() {
                // The usual case: the whole line is in this read, no copy.
                self.answer(line, b"\n");
            } else {
                let mut whole = std::mem::take(&mut self.partial_line);
                whole.extend_from_slice(line);
                self.answer(&whole, b"\n");
            }
            if self.closing {
                return; // `exit`: what follows it is never answered
            }
        }
        self.partial_line.extend_from_slice(rest);
        if self.partial_line.len() > MAX_LINE_BYTES {
            self.closing = true;
        }
    }

    /// Queues the reply to one message (without its `\n`, if a line);
    /// `terminator` ends the reply.
    fn answer(&mut self, message: &[u8], terminator: &[u8]) {
        // Also drops the `\r` of a `\r\n` line.
        let message = message.trim_ascii();
        if message.eq_ignore_ascii_case(b"exit") {
            self.closing = true;
            return;
        }
        let reply: &[u8] = if message.eq_ignore_ascii_case(b"ping") {
            b"PONG"
        } else {
            b"Received"
        };
        self.output.extend_from_slice(reply);
        self.output.extend_from_slice(terminator);
    }

    /// WRITABLE only while output is pending: a socket with room in its
    /// send buffer is writable nearly always.
    fn desired_interest(&self) -> Interest {
        if self.output.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or(DEFAULT_ADDR.into());
    let mut listener = TcpListener::bind(addr.parse()?)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening {}", listener.local_addr()?);
    let (mut slab, mut events) = (Slab::new(), Events::with_capacity(256));
    let mut buffer = vec![0; READ_BUFFER_BYTES];
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => result?,
        }
        let registry = poll.registry();
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_all(registry, &listener, &mut slab, &mut buffer),
                // The key may be a new client's by now, if the old one closed
                // earlier in this batch: harmless, events are only hints.
                Token(key) => drive(registry, &mut slab, key, &mut buffer),
            }
        }
    }
}

/// Accepts until `WouldBlock`: one event may stand for many connections.
fn accept_all(
    registry: &Registry,
    listener: &TcpListener,
    slab: &mut Slab<Connection>,
    buffer: &mut [u8],
) {
    loop {
        let mut socket = match listener.accept() {
            Ok((socket, _peer)) => socket,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Never fatal (camloop also retries EMFILE on a timer).
            Err(e) => return eprintln!("accept failed: {e}"),
        };
        // Replies are small and sent at once; without this, Nagle's
        // algorithm holds one back while the previous is unacknowledged.
        if let Err(e) = socket.set_nodelay(true) {
            eprintln!("cannot set TCP_NODELAY: {e}");
        }
        let key = slab.vacant_entry().key();
        if let Err(e) = registry.register(&mut socket, Token(key), Interest::READABLE) {
            eprintln!("cannot register a new client: {e}");
            continue;
        }
        slab.insert(Connection {
            socket,
            line_mode: false,
            partial_line: Vec::new(),
            output: b"Welcome".to_vec(),
            cursor: 0,
            closing: false,
            registered: Interest::READABLE,
        });
        // Send the greeting, and read what came before the registration.
        drive(registry, slab, key, buffer);
    }
}

/// Gives a connection its turn, then makes the registered interest match
/// its state, or closes it.
fn drive(registry: &Registry, slab: &mut Slab<Connection>, key: usize, buffer: &mut [u8]) {
    let Some(conn) = slab.get_mut(key) else {
        return; // a stale event for a connection already closed
    };
    let finished = conn.service(buffer).and_then(|finished| {
        let desired = conn.desired_interest();
        if !finished && desired != conn.registered {
            registry.reregister(&mut conn.socket, Token(key), desired)?;
            conn.registered = desired;
        }
        Ok(finished)
    });
    if !matches!(finished, Ok(false)) {
        // mio's rule: deregister a source before dropping it.
        let _ = registry.deregister(&mut slab.remove(key).socket);
    }
}
