//! RTP and RTCP over UDP: the one pair of UDP sockets every RTSP session
//! over UDP shares, and the sending that never waits.
//!
//! A viewer over UDP has no connection to queue packets on: each packet
//! is one `send_to` from the shared RTP socket to the viewer's port, and
//! one the kernel will not take now is dropped, counted, never retried
//! (a late video packet is worth nothing, and waiting would stall the
//! loop). The RTCP socket brings the viewers' receiver reports, which keep
//! their sessions alive; the RTP socket brings only the packets ffmpeg
//! sends to open its NAT, read and dropped. Which viewer a packet goes to
//! and when is decided in [`frames`](super::frames); this module only
//! owns the sockets.

use std::io;
use std::net::{IpAddr, SocketAddr};

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

/// The send buffer asked for each UDP socket: an IDR of a 1080p camera for
/// a few dozen viewers fits, so a GOP's first packets are not dropped by
/// the dozen when many viewers start at once (the kernel caps it at
/// `net.core.wmem_max`).
const SEND_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Largest datagram read from a client: RTCP receiver reports are far
/// smaller; a longer datagram is cut, which is harmless since it is only
/// looked at to be dropped or recognised.
const MAX_DATAGRAM_BYTES: usize = 2048;

/// Datagrams read per readiness event before the loop moves on (rule 1's
/// read budget, for a socket anyone can send to).
const DATAGRAMS_PER_TURN: usize = 64;

/// The two sockets.
pub struct RtpUdp {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// The bound ports, RTP first: `SETUP`'s `server_port`.
    pub ports: (u16, u16),
}

/// What one read turn of the RTCP socket found.
pub struct Heard {
    /// Source addresses of the RTCP packets read.
    pub rtcp_from: Vec<SocketAddr>,
    /// Whether the socket may still hold more (the turn's budget ran out).
    pub more: bool,
}

impl RtpUdp {
    /// Binds the RTP and RTCP sockets on `ip` at `ports` (`(0, 0)`: any
    /// two free ports) and registers them with `tokens`.
    pub fn bind(
        ip: IpAddr,
        ports: (u16, u16),
        registry: &Registry,
        tokens: (Token, Token),
    ) -> io::Result<RtpUdp> {
        let mut rtp = bind_one(SocketAddr::new(ip, ports.0))?;
        let mut rtcp = bind_one(SocketAddr::new(ip, ports.1))?;
        registry.register(&mut rtp, tokens.0, Interest::READABLE)?;
        registry.register(&mut rtcp, tokens.1, Interest::READABLE)?;
        let ports = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
        Ok(RtpUdp { rtp, rtcp, ports })
    }

    /// The address family of the sockets: a viewer of the other one cannot
    /// be sent to.
    pub fn is_ipv6(&self) -> bool {
        self.rtp.local_addr().is_ok_and(|addr| addr.is_ipv6())
    }

    /// Sends one RTP packet to `to`; false when it was dropped (the
    /// kernel's buffer is full, or the send failed).
    pub fn send_rtp(&self, packet: &[u8], to: SocketAddr) -> bool {
        send(&self.rtp, packet, to)
    }

    /// Sends one RTCP packet (a sender report) to `to`, from the RTCP port.
    pub fn send_rtcp(&self, packet: &[u8], to: SocketAddr) -> bool {
        send(&self.rtcp, packet, to)
    }

    /// Reads and drops what arrived on the RTP port (NAT openers), up to
    /// the turn's budget. Returns whether more may be waiting.
    pub fn drain_rtp(&self) -> bool {
        let mut buf = [0u8; MAX_DATAGRAM_BYTES];
        read_turn(&self.rtp, &mut buf, |_, _| {})
    }

    /// Reads what arrived on the RTCP port, up to the turn's budget: the
    /// sources of RTCP packets (receiver reports), to match to sessions.
    pub fn read_rtcp(&self) -> Heard {
        let mut buf = [0u8; MAX_DATAGRAM_BYTES];
        let mut rtcp_from = Vec::new();
        let more = read_turn(&self.rtcp, &mut buf, |datagram, from| {
            if crate::rtsp::rtcp::is_rtcp(datagram) {
                rtcp_from.push(from);
            }
        });
        Heard { rtcp_from, more }
    }
}

pub(super) fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    // Best effort: a smaller buffer only means more drops under a burst.
    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER_BYTES);
    Ok(socket)
}

pub(super) fn send(socket: &UdpSocket, packet: &[u8], to: SocketAddr) -> bool {
    loop {
        match socket.send_to(packet, to) {
            Ok(_) => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // WouldBlock is the full buffer; ECONNREFUSED (an ICMP error
            // from an earlier packet to a closed port) and the like are the
            // viewer's business: its session times out without RTCP.
            Err(_) => return false,
        }
    }
}

/// Reads up to [`DATAGRAMS_PER_TURN`] datagrams, handing each to `seen`.
/// Returns true when the budget ran out before the socket was drained.
pub(super) fn read_turn(
    socket: &UdpSocket,
    buf: &mut [u8],
    mut seen: impl FnMut(&[u8], SocketAddr),
) -> bool {
    for _ in 0..DATAGRAMS_PER_TURN {
        match socket.recv_from(buf) {
            Ok((length, from)) => seen(&buf[..length], from),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            // An ICMP error reported on the socket: nothing to read.
            Err(_) => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, UdpSocket as StdUdp};
    use std::time::Duration;

    #[test]
    fn packets_go_out_from_the_rtp_port_and_rtcp_sources_come_back() {
        let poll = mio::Poll::new().unwrap();
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let udp = RtpUdp::bind(localhost, (0, 0), poll.registry(), (Token(1), Token(2))).unwrap();
        let viewer = StdUdp::bind((localhost, 0)).unwrap();
        viewer
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert!(udp.send_rtp(b"\x80\x60packet", viewer.local_addr().unwrap()));
        let mut buf = [0u8; 64];
        let (length, from) = viewer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..length], b"\x80\x60packet");
        assert_eq!(from.port(), udp.ports.0, "sent from the RTP port");
        let report = crate::rtsp::rtcp::receiver_report(7, "viewer");
        viewer.send_to(&report, (localhost, udp.ports.1)).unwrap();
        viewer.send_to(b"junk", (localhost, udp.ports.1)).unwrap();
        let mut heard = Vec::new();
        for _ in 0..1000 {
            heard.extend(udp.read_rtcp().rtcp_from);
            if !heard.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(heard, vec![viewer.local_addr().unwrap()], "RTCP only");
    }
}
