//! Listening sockets: TCP with a deep backlog, a Unix socket for the
//! control port, and sockets handed over by systemd (socket activation).
//!
//! mio's `TcpListener::bind` uses a backlog of 128, which drops connections
//! when a thousand clients connect at once; `socket2` lets us ask for more.
//! [`Stream`] and [`ListenerSocket`] put TCP and Unix sockets behind one
//! type, so the event loop does not care which one a client used. This
//! module only creates and accepts sockets; what happens on them is the
//! event loop's business.

use std::fs;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};

/// Requested listen backlog; the kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Permissions of the control socket file: owner and group may connect.
const UNIX_SOCKET_MODE: u32 = 0o660;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const SYSTEMD_FIRST_FD: RawFd = 3;

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// The control protocol.
    Control,
    /// HTTP.
    Http,
    /// RTSP.
    Rtsp,
}

/// A client connection over TCP or a Unix socket.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A listening socket, TCP or Unix.
pub enum ListenerSocket {
    Tcp(TcpListener),
    /// A Unix socket at `path`; the file is removed when this is dropped if
    /// `owned` (we created it, rather than systemd).
    Unix {
        listener: UnixListener,
        path: PathBuf,
        owned: bool,
    },
}

/// One accepted connection.
pub struct Accepted {
    /// The connection, nonblocking.
    pub stream: Stream,
    /// A printable peer address, for logs.
    pub peer: String,
    /// Whether the peer is on this machine: a loopback address, or the
    /// Unix socket.
    pub local_peer: bool,
}

/// Binds a nonblocking TCP listener on `addr` with [`LISTEN_BACKLOG`].
pub fn bind_tcp(addr: SocketAddr) -> io::Result<ListenerSocket> {
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
    Ok(ListenerSocket::Tcp(TcpListener::from_std(socket.into())))
}

/// Binds the control port's Unix socket at `path` with mode 0660. A stale
/// socket file from a previous run is replaced; any other file is not.
pub fn bind_unix(path: &Path) -> io::Result<ListenerSocket> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(UNIX_SOCKET_MODE))?;
    Ok(ListenerSocket::Unix {
        listener,
        path: path.to_path_buf(),
        owned: true,
    })
}

impl ListenerSocket {
    /// Accepts one connection.
    pub fn accept(&self) -> io::Result<Accepted> {
        match self {
            ListenerSocket::Tcp(listener) => {
                let (stream, peer) = listener.accept()?;
                // Replies are small and sent whole; Nagle would only delay them.
                let _ = stream.set_nodelay(true);
                Ok(Accepted {
                    stream: Stream::Tcp(stream),
                    peer: peer.to_string(),
                    local_peer: peer.ip().is_loopback(),
                })
            }
            ListenerSocket::Unix { listener, path, .. } => {
                let (stream, _) = listener.accept()?;
                Ok(Accepted {
                    stream: Stream::Unix(stream),
                    peer: format!("unix:{}", path.display()),
                    local_peer: true,
                })
            }
        }
    }

    /// The local TCP address; None for a Unix socket.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            ListenerSocket::Tcp(listener) => listener.local_addr().ok(),
            ListenerSocket::Unix { .. } => None,
        }
    }

    /// A printable local address (with the real port when 0 was asked).
    pub fn describe(&self) -> String {
        match self {
            ListenerSocket::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|e| format!("?({e})"), |a| a.to_string()),
            ListenerSocket::Unix { path, .. } => format!("unix:{}", path.display()),
        }
    }

    /// Whether only this machine can reach the listener.
    pub fn is_loopback(&self) -> bool {
        self.tcp_addr().is_none_or(|addr| addr.ip().is_loopback())
    }
}

impl Drop for ListenerSocket {
    fn drop(&mut self) {
        if let ListenerSocket::Unix {
            path, owned: true, ..
        } = self
        {
            let _ = fs::remove_file(path);
        }
    }
}

/// Takes the listening sockets systemd passed (`LISTEN_FDS`), if it passed
/// any to this process. `LISTEN_FDNAMES` (`FileDescriptorName=` in the
/// socket units) says which is which: `control` or `http`; a single unnamed
/// socket is the control port, and of two unnamed ones the second is HTTP.
/// `rtsp` names the RTSP port, `webrtc` WebRTC's UDP socket
/// (`ListenDatagram=`), returned apart.
pub fn systemd_listeners() -> io::Result<Inherited> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    let count: RawFd = match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(count) if for_us => count,
        _ => return Ok(Inherited::default()),
    };
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|names| names.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    // Children (none today) must not think the sockets are theirs.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let mut inherited = Inherited::default();
    for index in 0..count {
        let fd = SYSTEMD_FIRST_FD + index;
        if names.get(index as usize).map(String::as_str) == Some("webrtc") {
            let socket = crate::sys::take_inherited_socket(fd);
            inherited.webrtc = Some(std::net::UdpSocket::from(std::os::fd::OwnedFd::from(
                socket,
            )));
            continue;
        }
        let kind = match names.get(index as usize).map(String::as_str) {
            Some("http") => ListenerKind::Http,
            Some("rtsp") => ListenerKind::Rtsp,
            Some("control") => ListenerKind::Control,
            _ if index == 1 && count == 2 => ListenerKind::Http,
            _ => ListenerKind::Control,
        };
        let socket = crate::sys::take_inherited_socket(fd);
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let listener = if local.is_unix() {
            let path = local
                .as_pathname()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let std_listener =
                std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(socket));
            ListenerSocket::Unix {
                listener: UnixListener::from_std(std_listener),
                path,
                owned: false, // systemd owns the socket file
            }
        } else {
            ListenerSocket::Tcp(TcpListener::from_std(socket.into()))
        };
        inherited.listeners.push((kind, listener));
    }
    Ok(inherited)
}

/// The sockets systemd passed.
#[derive(Default)]
pub struct Inherited {
    /// The listening sockets, by kind.
    pub listeners: Vec<(ListenerKind, ListenerSocket)>,
    /// WebRTC's UDP socket (`FileDescriptorName=webrtc`).
    pub webrtc: Option<std::net::UdpSocket>,
}

impl Stream {
    /// Makes the socket refuse more data once `bytes` are queued but not yet
    /// sent (`TCP_NOTSENT_LOWAT`), keeping what a slow reader gets recent.
    pub fn limit_unsent_bytes(&self, bytes: u32) {
        if let Stream::Tcp(s) = self {
            let _ = socket2::SockRef::from(s).set_tcp_notsent_lowat(bytes);
        }
    }

    /// Sends FIN: the peer reads everything written so far, then EOF.
    pub fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    fn inner(&mut self) -> &mut dyn Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }
}

impl ListenerSocket {
    fn inner(&mut self) -> &mut dyn Source {
        match self {
            ListenerSocket::Tcp(l) => l,
            ListenerSocket::Unix { listener, .. } => listener,
        }
    }
}

/// Registration is delegated to the socket inside, so the loop registers a
/// [`Stream`] or a [`ListenerSocket`] like any mio source.
macro_rules! delegate_source_to_inner {
    ($($type:ty),+) => {$(
        impl Source for $type {
            fn register(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
                self.inner().register(registry, token, interest)
            }

            fn reregister(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
                self.inner().reregister(registry, token, interest)
            }

            fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
                self.inner().deregister(registry)
            }
        }
    )+};
}

delegate_source_to_inner!(Stream, ListenerSocket);
