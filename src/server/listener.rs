//! Listening sockets with a deep backlog.
//!
//! mio's `TcpListener::bind` uses a backlog of 128, which drops connections
//! when a thousand clients connect at once; `socket2` lets us ask for more.
//! This module only creates sockets; accepting is the event loop's job.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Requested listen backlog; the kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds a nonblocking TCP listener on `addr` with [`LISTEN_BACKLOG`].
pub fn bind_listener(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Lets a restarted server bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `[::]` should mean IPv6 only; bind 0.0.0.0 too for both.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}
