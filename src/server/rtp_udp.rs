//! RTP and RTCP over UDP: the one pair of UDP sockets every RTSP session
//! over UDP shares, and the sending that never waits.
//!
//! A viewer over UDP has no connection to queue packets on: each packet
//! is a datagram from the shared RTP socket to the viewer's port, and one
//! the kernel will not take now is dropped, counted, never retried (a late
//! video packet is worth nothing, and waiting would stall the loop). An
//! access unit's packets go out in as few sends as the kernel allows: a
//! run of packets of one size (an NAL unit's FU-A fragments) is one
//! `sendmsg` that the kernel cuts into datagrams (`UDP_SEGMENT`), where it
//! can; where it cannot, each packet is its own send from then on.
//!
//! The RTCP socket brings the viewers' receiver reports, which keep their
//! sessions alive; the RTP socket brings only the packets ffmpeg sends to
//! open its NAT, read and dropped. Which viewer a packet goes to and when
//! is decided in [`frames`](super::frames); this module owns the sockets
//! and how a viewer's packets are cut into sends.

use std::cell::Cell;
use std::io::{self, IoSlice};
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

/// Most datagrams one segmented send may carry (the kernel's
/// `UDP_MAX_SEGMENTS`).
const MAX_SEGMENTS_PER_SEND: usize = 64;

/// Most payload one segmented send may carry: what one IPv4 datagram
/// holds before the kernel cuts it (65,535 less the IP and UDP headers).
const MAX_BYTES_PER_SEND: usize = 65_507;

/// The two sockets.
pub struct RtpUdp {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// The bound ports, RTP first: `SETUP`'s `server_port`.
    pub ports: (u16, u16),
    /// Runs of packets still go out as segmented sends: false from the
    /// first one the kernel refused as such (logged once).
    segmenting: Cell<bool>,
}

/// How one send of a run of packets went.
enum RunSent {
    Sent,
    /// The kernel would not take it now (a full buffer) or at all.
    Dropped,
    /// The kernel cannot segment: nothing went, send the packets singly.
    NotSegmented,
}

/// What sending one access unit's packets to one viewer did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PacketsSent {
    /// Packets the kernel took.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets the kernel would not take (the rest of the AU, after them,
    /// is not tried).
    pub dropped: u64,
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
        Ok(RtpUdp {
            rtp,
            rtcp,
            ports,
            segmenting: Cell::new(true),
        })
    }

    /// The address family of the sockets: a viewer of the other one cannot
    /// be sent to.
    pub fn is_ipv6(&self) -> bool {
        self.rtp.local_addr().is_ok_and(|addr| addr.is_ipv6())
    }

    /// Sends an access unit's `packets` to `to`, in order, a datagram
    /// each: a run of one size per send while the kernel segments, one
    /// packet per send otherwise. Stops at the first send the kernel
    /// would not take: its packets are dropped, and the rest of the AU is
    /// not sent.
    pub fn send_rtp_packets(&self, packets: &[&[u8]], to: SocketAddr) -> PacketsSent {
        let mut sent = PacketsSent::default();
        let mut rest = packets;
        while !rest.is_empty() {
            let run = if self.segmenting.get() {
                segment_run(rest)
            } else {
                1
            };
            let (now, later) = rest.split_at(run);
            match self.send_run(now, to) {
                RunSent::Sent => {}
                // The same packets again, one per send.
                RunSent::NotSegmented => continue,
                RunSent::Dropped => {
                    sent.dropped += run as u64;
                    break;
                }
            }
            sent.packets += run as u64;
            sent.bytes += now.iter().map(|packet| packet.len() as u64).sum::<u64>();
            rest = later;
        }
        sent
    }

    /// One send of a run (see [`segment_run`]).
    fn send_run(&self, run: &[&[u8]], to: SocketAddr) -> RunSent {
        let [first, _, ..] = run else {
            // One packet (a run is never empty): a plain send.
            let sent = run
                .first()
                .is_some_and(|packet| send(&self.rtp, packet, to));
            return if sent {
                RunSent::Sent
            } else {
                RunSent::Dropped
            };
        };
        let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS_PER_SEND];
        for (slice, packet) in slices.iter_mut().zip(run) {
            *slice = IoSlice::new(packet);
        }
        // segment_run keeps packets under 64 KiB: the size fits a u16.
        let control = crate::sys::UdpSegmentControl::new(first.len() as u16);
        let address = socket2::SockAddr::from(to);
        let message = socket2::MsgHdr::new()
            .with_addr(&address)
            .with_buffers(&slices[..run.len()])
            .with_control(control.bytes());
        loop {
            match socket2::SockRef::from(&self.rtp).sendmsg(&message, 0) {
                Ok(_) => return RunSent::Sent,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if crate::sys::is_segmentation_refused(&e) => {
                    log::warn!(
                        "RTP over UDP: the kernel will not segment ({e}); one send per packet from now on"
                    );
                    self.segmenting.set(false);
                    return RunSent::NotSegmented;
                }
                Err(_) => return RunSent::Dropped, // a full buffer, as for one packet
            }
        }
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

/// How many of `packets` (at least one) one segmented send carries: the
/// first packet and those after it of the same size, ended by at most one
/// shorter packet (the kernel cuts every datagram to the first one's size
/// but the last), within the kernel's limits on segments and bytes.
fn segment_run(packets: &[&[u8]]) -> usize {
    let size = packets.first().map_or(0, |packet| packet.len());
    let mut bytes = 0;
    for (count, packet) in packets.iter().enumerate() {
        let fits = count < MAX_SEGMENTS_PER_SEND && bytes + packet.len() <= MAX_BYTES_PER_SEND;
        if !fits || packet.len() > size {
            return count.max(1);
        }
        bytes += packet.len();
        if packet.len() < size {
            return count + 1;
        }
    }
    packets.len()
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

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// The sockets on loopback (with the poll they are registered with) and
    /// a viewer's socket to send to.
    fn sockets_and_a_viewer() -> (mio::Poll, RtpUdp, StdUdp) {
        let poll = mio::Poll::new().unwrap();
        let udp = RtpUdp::bind(LOCALHOST, (0, 0), poll.registry(), (Token(1), Token(2))).unwrap();
        let viewer = StdUdp::bind((LOCALHOST, 0)).unwrap();
        viewer
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (poll, udp, viewer)
    }

    #[test]
    fn packets_go_out_from_the_rtp_port_and_rtcp_sources_come_back() {
        let (_poll, udp, viewer) = sockets_and_a_viewer();
        let sent = udp.send_rtp_packets(&[b"\x80\x60packet"], viewer.local_addr().unwrap());
        assert_eq!(sent.packets, 1);
        let mut buf = [0u8; 64];
        let (length, from) = viewer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..length], b"\x80\x60packet");
        assert_eq!(from.port(), udp.ports.0, "sent from the RTP port");
        let report = crate::rtsp::rtcp::receiver_report(7, "viewer");
        viewer.send_to(&report, (LOCALHOST, udp.ports.1)).unwrap();
        viewer.send_to(b"junk", (LOCALHOST, udp.ports.1)).unwrap();
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

    /// Packets of the given sizes, each filled with its index.
    fn packets_of(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes
            .iter()
            .enumerate()
            .map(|(index, &size)| vec![index as u8; size])
            .collect()
    }

    fn runs_of(sizes: &[usize]) -> Vec<usize> {
        let packets = packets_of(sizes);
        let mut rest: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        let mut runs = Vec::new();
        while !rest.is_empty() {
            let run = segment_run(&rest);
            runs.push(run);
            rest.drain(..run);
        }
        runs
    }

    #[test]
    fn a_run_is_packets_of_one_size_and_at_most_one_shorter_last() {
        // An IDR's AU: SPS, PPS (shorter: it ends the SPS's run), then
        // the slice's FU-A fragments and their shorter last.
        assert_eq!(runs_of(&[25, 8, 1412, 1412, 1412, 300]), vec![2, 4]);
        // A longer packet cannot join a run of shorter ones.
        assert_eq!(runs_of(&[8, 25, 25]), vec![1, 2]);
        assert_eq!(runs_of(&[1412, 300, 1412]), vec![2, 1]);
        assert_eq!(runs_of(&[500]), vec![1]);
        // The kernel's limits: 64 datagrams, 65,507 bytes.
        assert_eq!(runs_of(&[100; 70]), vec![64, 6]);
        assert_eq!(runs_of(&[1412; 50]), vec![46, 4]);
        // A packet over the byte limit alone still goes (as its own send).
        assert_eq!(runs_of(&[65_600, 10]), vec![1, 1]);
    }

    #[test]
    fn a_run_goes_out_in_one_segmented_send_and_arrives_as_its_packets() {
        let (_poll, udp, viewer) = sockets_and_a_viewer();
        send_three_runs(&udp, &viewer);
        assert!(udp.segmenting.get(), "loopback segments: no fallback");
    }

    #[test]
    fn where_the_kernel_will_not_segment_each_packet_goes_alone_and_none_is_lost() {
        let (_poll, udp, viewer) = sockets_and_a_viewer();
        crate::sys::disable_udp_checksums(&udp.rtp).unwrap();
        send_three_runs(&udp, &viewer);
        assert!(!udp.segmenting.get(), "segmenting stopped at the refusal");
        // And from then on, with no second try.
        send_three_runs(&udp, &viewer);
    }

    #[test]
    fn a_send_the_kernel_refuses_drops_its_run_and_the_rest_of_the_au_is_not_sent() {
        let (_poll, udp, _viewer) = sockets_and_a_viewer();
        let packets = packets_of(&[25, 8, 1412, 300]);
        let slices: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        // The broadcast address from a socket without SO_BROADCAST: the
        // kernel refuses every send (EACCES), as it would a full buffer.
        let broadcast = SocketAddr::from((Ipv4Addr::BROADCAST, 5004));
        let sent = udp.send_rtp_packets(&slices, broadcast);
        let first_run_only = PacketsSent {
            packets: 0,
            bytes: 0,
            dropped: 2,
        };
        assert_eq!(sent, first_run_only);
        assert!(
            udp.segmenting.get(),
            "a refused send is not a refused segmentation"
        );
    }

    /// Sends an AU's packets of sizes that make three runs, and checks that
    /// each arrived as its own datagram, in order, and that none was lost.
    fn send_three_runs(udp: &RtpUdp, viewer: &StdUdp) {
        // Three runs: [25, 8], [1412, 1412, 1412, 300], [1412, 700].
        let sizes = [25, 8, 1412, 1412, 1412, 300, 1412, 700];
        let packets = packets_of(&sizes);
        let slices: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        let sent = udp.send_rtp_packets(&slices, viewer.local_addr().unwrap());
        let bytes = sizes.iter().sum::<usize>() as u64;
        assert_eq!(
            sent,
            PacketsSent {
                packets: 8,
                bytes,
                dropped: 0
            }
        );
        let mut buf = [0u8; 2048];
        for packet in &packets {
            let (length, _) = viewer.recv_from(&mut buf).unwrap();
            assert_eq!(
                &buf[..length],
                &packet[..],
                "one datagram per packet, in order"
            );
        }
    }
}
