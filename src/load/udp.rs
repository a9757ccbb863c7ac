//! The viewers' own UDP sockets (RTSP over UDP, WebRTC): bound with a
//! large receive buffer, and read with the kernel's count of the datagrams
//! it dropped for want of room in that buffer.
//!
//! A video stream arrives in bursts (an IDR is dozens of datagrams at
//! once), and a load tool whose one thread is busy with other viewers reads
//! late: the receive buffer is what absorbs that. An unprivileged process
//! gets at most `net.core.rmem_max`; as root `SO_RCVBUFFORCE` goes past it.
//! `SO_RXQ_OVFL` makes the kernel attach its drop counter (per socket,
//! cumulative) to every datagram read, so loss on this machine can be told
//! from loss on the way.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;

/// Binds a socket to `addr` and asks for a receive buffer of `bytes`:
/// forced past `rmem_max` when this process may (root), else as much of
/// it as the system allows (best effort: a smaller buffer only means more
/// loss under a burst, which the drop count shows). Kernel drop counts are
/// switched on where the system has them.
pub(super) fn bind(addr: SocketAddr, bytes: usize) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if set_int_option(&socket, libc::SO_RCVBUFFORCE, size).is_err() {
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(bytes);
    }
    let _ = set_int_option(&socket, libc::SO_RXQ_OVFL, 1);
    Ok(socket)
}

/// The receive buffer the kernel gave `socket` (it doubles what was asked
/// for, for its bookkeeping); 0 if it cannot be read.
pub(super) fn receive_buffer_bytes(socket: &UdpSocket) -> usize {
    socket2::SockRef::from(socket)
        .recv_buffer_size()
        .unwrap_or(0)
}

/// Where a viewer's socket binds to reach `target`: any address of the
/// target's family, so the system picks the one that routes there.
pub(super) fn unspecified_like(target: SocketAddr) -> SocketAddr {
    let ip = match target.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// The address of this machine that datagrams to `target` leave from
/// (what a socket must be bound to when its address is told to the other
/// side, as an ICE candidate is). No datagram is sent.
pub(super) fn local_ip_towards(target: SocketAddr) -> io::Result<IpAddr> {
    let probe = std::net::UdpSocket::bind(unspecified_like(target))?;
    probe.connect(target)?;
    Ok(probe.local_addr()?.ip())
}

/// One datagram read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Datagram {
    /// Its length (the front of the buffer it was read into).
    pub(super) length: usize,
    /// Where it came from.
    pub(super) from: SocketAddr,
    /// The kernel's count of datagrams this socket dropped so far, when it
    /// gives one (with `SO_RXQ_OVFL`, once it has dropped any).
    pub(super) kernel_drops: Option<u32>,
}

/// Reads one datagram into `buffer` (`WouldBlock` when there is none).
pub(super) fn receive(socket: &UdpSocket, buffer: &mut [u8]) -> io::Result<Datagram> {
    // SAFETY: every pointer in `message` points at a live local of the
    // size given beside it, for the duration of the call; the control
    // messages are read only within `msg_controllen` by the CMSG macros.
    unsafe {
        let mut address: libc::sockaddr_storage = mem::zeroed();
        let mut iov = libc::iovec {
            iov_base: buffer.as_mut_ptr().cast(),
            iov_len: buffer.len(),
        };
        // u64s: aligned for `cmsghdr`.
        let mut control = [0u64; 8];
        let mut message: libc::msghdr = mem::zeroed();
        message.msg_name = (&raw mut address).cast();
        message.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        message.msg_iov = &raw mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = mem::size_of_val(&control) as _;
        let length = libc::recvmsg(socket.as_raw_fd(), &raw mut message, 0);
        if length < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut kernel_drops = None;
        let mut header = libc::CMSG_FIRSTHDR(&raw const message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SO_RXQ_OVFL
            {
                let data = libc::CMSG_DATA(header).cast::<u32>();
                kernel_drops = Some(data.read_unaligned());
            }
            header = libc::CMSG_NXTHDR(&raw const message, header);
        }
        let from = socket_address(&address).ok_or_else(|| io::Error::other("no source"))?;
        Ok(Datagram {
            length: length as usize,
            from,
            kernel_drops,
        })
    }
}

/// A `sockaddr_storage` the kernel filled in, as a `SocketAddr`.
fn socket_address(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`.
            let v4 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a `sockaddr_in6`.
            let v6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Sets an `int` socket option at `SOL_SOCKET`.
fn set_int_option(socket: &UdpSocket, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a live `c_int` of the length given.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_is_read_with_its_source() {
        let receiver = bind("127.0.0.1:0".parse().unwrap(), 256 * 1024).expect("bind");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        sender
            .send_to(b"hello", receiver.local_addr().unwrap())
            .expect("send");
        let mut buffer = [0u8; 64];
        let datagram = loop {
            match receive(&receiver, &mut buffer) {
                Ok(datagram) => break datagram,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buffer[..datagram.length], b"hello");
        assert_eq!(datagram.from, sender.local_addr().unwrap());
        assert!(receive_buffer_bytes(&receiver) > 0);
        assert!(local_ip_towards("127.0.0.1:9".parse().unwrap())
            .unwrap()
            .is_loopback());
    }
}
