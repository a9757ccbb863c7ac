//! Who may `shutdown` without `auth`: the rule is about the *peer*, not
//! the listener. A client whose own address is not loopback must `auth`
//! first even when it reaches a loopback listener; a loopback client need
//! not. The non-loopback peer is made by binding the client socket to one
//! of this machine's own non-loopback addresses before connecting to
//! 127.0.0.1, so the test never leaves the machine.

mod support;

use std::net::{IpAddr, SocketAddr, TcpStream};

use socket2::{Domain, Protocol, Socket, Type};
use support::{Client, ServerBuilder};

/// This machine's first non-loopback IPv4 address (`getifaddrs`).
fn non_loopback_ipv4() -> IpAddr {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `addrs` with a list we free below.
    assert_eq!(unsafe { libc::getifaddrs(&mut addrs) }, 0, "getifaddrs");
    let mut found = None;
    let mut cursor = addrs;
    while !cursor.is_null() && found.is_none() {
        // SAFETY: cursor walks the list getifaddrs returned.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null()
            && i32::from(unsafe { (*entry.ifa_addr).sa_family }) == libc::AF_INET
        {
            // SAFETY: an AF_INET entry's address is a sockaddr_in.
            let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
            let ip = IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes());
            if !ip.is_loopback() {
                found = Some(ip);
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: freeing the list getifaddrs allocated, once.
    unsafe { libc::freeifaddrs(addrs) };
    found.expect(
        "this test needs a non-loopback IPv4 address on some interface (none found by \
         getifaddrs); the client binds to it to connect to 127.0.0.1 as a non-local peer",
    )
}

/// Connects to `server` from `source` (port chosen by the kernel).
fn connect_from(source: IpAddr, server: SocketAddr) -> Client {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .expect("bind the client to a local address");
    socket.connect(&server.into()).expect("connect to camloop");
    Client::from_stream(TcpStream::from(socket))
}

#[test]
fn shutdown_from_a_non_loopback_peer_needs_auth_even_on_a_loopback_listener() {
    let source = non_loopback_ipv4();
    let mut server = ServerBuilder::new()
        .framing("line")
        .args(["--token", "s3cret"])
        .spawn();
    assert!(server.addr.ip().is_loopback(), "the target stays loopback");
    let mut remote = connect_from(source, server.addr);
    remote.expect("Welcome\n");
    assert_eq!(remote.request("auth s3cret"), "OK");
    // Authenticated for requests, but shutdown is judged by the peer:
    // without auth it is refused; with auth (done) it is allowed. So first a
    // second, unauthenticated remote client is refused.
    let mut unauthenticated = connect_from(source, server.addr);
    unauthenticated.expect("Welcome\n");
    assert_eq!(unauthenticated.request("shutdown"), "ERR auth: required");
    let mut local = server.client();
    assert_eq!(local.request("auth s3cret"), "OK");
    assert_eq!(local.request("ping"), "PONG", "still serving");
    assert_eq!(remote.request("shutdown"), "OK shutting down");
    assert!(server.wait_for_exit().success());
}

#[test]
fn shutdown_from_a_non_loopback_peer_without_a_token_is_refused() {
    let source = non_loopback_ipv4();
    let mut server = ServerBuilder::new().framing("line").spawn();
    let mut remote = connect_from(source, server.addr);
    remote.expect("Welcome\n");
    assert_eq!(
        remote.request("shutdown"),
        "ERR auth: shutdown needs auth from a non-loopback client"
    );
    assert_eq!(remote.request("ping"), "PONG", "the server did not stop");
    let mut local = server.client();
    assert_eq!(local.request("shutdown"), "OK shutting down");
    assert!(server.wait_for_exit().success());
}
