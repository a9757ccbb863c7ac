//! The smallest correct mio server in camloop's style; ARCHITECTURE.md puts
//! it beside `src/server/`. `cargo run --example minimal_loop [-- ADDR]`.
//! It speaks the classic protocol: a bare `Welcome` on connect, `Received`
//! for each `read()` (one read is one message, as with the classic
//! `recv(1024)`), and `exit` closes the connection without a reply.

use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

/// Where it listens when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8234";
/// One `read()` is one message, at most this long.
const MAX_MESSAGE_BYTES: usize = 1024;
/// The listener's token; connections use their slab keys, counting from 0.
const LISTENER: Token = Token(usize::MAX);

/// One client: the socket, the bytes it is owed and how far they got.
struct Connection {
    socket: TcpStream,
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
    fn service(&mut self) -> io::Result<bool> {
        // On the stack: an idle connection owns no input buffer.
        let mut buffer = [0; MAX_MESSAGE_BYTES];
        // Edge-triggered: an event fires once per change, so read until
        // `WouldBlock`, or data is stranded that no event will recall.
        while !self.closing {
            match self.socket.read(&mut buffer) {
                Ok(0) => self.closing = true,
                Ok(n) if buffer[..n].trim_ascii().eq_ignore_ascii_case(b"exit") => {
                    self.closing = true;
                }
                Ok(_) => self.output.extend_from_slice(b"Received"),
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
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => result?,
        }
        let registry = poll.registry();
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_all(registry, &listener, &mut slab),
                // The key may be a new client's by now, if the old one closed
                // earlier in this batch: harmless, events are only hints.
                Token(key) => drive(registry, &mut slab, key),
            }
        }
    }
}

/// Accepts until `WouldBlock`: one event may stand for many connections.
fn accept_all(registry: &Registry, listener: &TcpListener, slab: &mut Slab<Connection>) {
    loop {
        let mut socket = match listener.accept() {
            Ok((socket, _peer)) => socket,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Never fatal (camloop also retries EMFILE on a timer).
            Err(e) => return eprintln!("accept failed: {e}"),
        };
        let key = slab.vacant_entry().key();
        if let Err(e) = registry.register(&mut socket, Token(key), Interest::READABLE) {
            eprintln!("cannot register a new client: {e}");
            continue;
        }
        slab.insert(Connection {
            socket,
            output: b"Welcome".to_vec(),
            cursor: 0,
            closing: false,
            registered: Interest::READABLE,
        });
        // Send the greeting, and read what came before the registration.
        drive(registry, slab, key);
    }
}

/// Gives a connection its turn, then makes the registered interest match
/// its state, or closes it.
fn drive(registry: &Registry, slab: &mut Slab<Connection>, key: usize) {
    let Some(conn) = slab.get_mut(key) else {
        return; // a stale event for a connection already closed
    };
    let finished = conn.service().and_then(|finished| {
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
