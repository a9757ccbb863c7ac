//! WebRTC's UDP sockets: one per address a browser may reach camloop at,
//! every peer's datagrams through them, never waiting.
//!
//! A socket bound to one address is all a server on one interface needs.
//! A wildcard bind (`--webrtc 0.0.0.0:8555`) becomes one socket per
//! interface address on that port, because a peer's ICE check must arrive
//! at an address str0m was given as a candidate, and a wildcard socket
//! cannot say which address a datagram came in on. Sending follows
//! RTSP over UDP's rule: a datagram the kernel will not take now is
//! dropped and counted (a late video packet is worth nothing; a NACK may
//! ask for it again). Which peer a datagram belongs to is decided in
//! [`webrtc_peers`](super::webrtc_peers); this module owns the sockets.

use std::io;
use std::net::{IpAddr, SocketAddr};

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use super::rtp_udp::{bind_one, read_turn, send};
use super::webrtc_peers::Datagram;

/// Largest datagram read: browsers keep theirs under 1200 bytes
/// (STUN, DTLS, RTCP); a longer one is cut, and str0m drops it.
const MAX_DATAGRAM_BYTES: usize = 2048;

/// The most sockets a wildcard bind makes (interface addresses).
pub const MAX_SOCKETS: usize = 16;

/// The sockets, each with the address it is bound to.
pub struct WebrtcUdp {
    sockets: Vec<(SocketAddr, UdpSocket)>,
}

impl WebrtcUdp {
    /// Binds `addr` (a wildcard: every interface address, link-local
    /// ones left out, on the same port) and registers socket `i` with
    /// `token(i)`.
    pub fn bind(
        addr: SocketAddr,
        registry: &Registry,
        token: impl Fn(usize) -> Token,
    ) -> io::Result<WebrtcUdp> {
        let addrs = if addr.ip().is_unspecified() {
            let wanted_v6 = addr.is_ipv6();
            let mut ips: Vec<IpAddr> = crate::sys::interface_addresses()?
                .into_iter()
                .filter(|ip| ip.is_ipv6() == wanted_v6)
                .collect();
            ips.truncate(MAX_SOCKETS);
            if ips.is_empty() {
                return Err(io::Error::other("no interface address to bind"));
            }
            ips.into_iter()
                .map(|ip| SocketAddr::new(ip, addr.port()))
                .collect()
        } else {
            vec![addr]
        };
        let mut sockets = Vec::new();
        let mut port = addr.port();
        for wanted in addrs {
            // Port 0: the first socket picks one, the others take the same.
            let mut socket = bind_one(SocketAddr::new(wanted.ip(), port))?;
            let bound = socket.local_addr()?;
            port = bound.port();
            registry.register(&mut socket, token(sockets.len()), Interest::READABLE)?;
            sockets.push((bound, socket));
        }
        Ok(WebrtcUdp { sockets })
    }

    /// A socket systemd passed (`ListenDatagram=`, named `webrtc`).
    pub fn from_std(
        socket: std::net::UdpSocket,
        registry: &Registry,
        token: Token,
    ) -> io::Result<WebrtcUdp> {
        socket.set_nonblocking(true)?;
        let mut socket = UdpSocket::from_std(socket);
        registry.register(&mut socket, token, Interest::READABLE)?;
        Ok(WebrtcUdp {
            sockets: vec![(socket.local_addr()?, socket)],
        })
    }

    /// The bound addresses, in token order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(addr, _)| *addr).collect()
    }

    /// How many sockets there are (never none, once bound).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Reads socket `index` within the turn's budget, handing each
    /// datagram to `seen` with its source and the socket's address.
    /// Returns whether more may be waiting.
    pub fn read(&self, index: usize, mut seen: impl FnMut(SocketAddr, SocketAddr, &[u8])) -> bool {
        let Some((local, socket)) = self.sockets.get(index) else {
            return false;
        };
        let mut buf = [0u8; MAX_DATAGRAM_BYTES];
        read_turn(socket, &mut buf, |bytes, from| seen(from, *local, bytes))
    }

    /// Sends one datagram from the socket of its `from` address (the
    /// first if none matches); false when it was dropped.
    pub fn send(&self, datagram: &Datagram) -> bool {
        let socket = self
            .sockets
            .iter()
            .find(|(addr, _)| *addr == datagram.from)
            .or(self.sockets.first())
            .map(|(_, socket)| socket);
        socket.is_some_and(|socket| send(socket, &datagram.bytes, datagram.to))
    }
}
