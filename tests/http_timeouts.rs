//! The HTTP deadlines, with flags short enough for a test: a request head
//! that trickles in (slowloris) gets 408 and the close; an idle keep-alive
//! connection is closed; an active one on the same server is not. The
//! assertions are about what happened and in which order, never about how
//! long it took (the generous read limit only guards against a hang).

mod http_support;

use std::io::{BufReader, Write};
use std::time::Duration;

use http_support::{read_response, read_until_closed, Server};

/// Longest wait for the server to act on a deadline of about a second.
const HANG_GUARD: Duration = Duration::from_secs(20);

#[test]
fn a_trickled_request_head_gets_408_and_the_close() {
    let server = Server::start(&["--camera", "none", "--http-head-timeout", "1"]);
    let mut slow = server.connect();
    slow.set_read_timeout(Some(HANG_GUARD)).unwrap();
    slow.write_all(b"GET /state HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let mut reader = BufReader::new(slow.try_clone().unwrap());
    let response = read_response(&mut reader, false).expect("a response before the guard");
    assert_eq!(response.status, 408, "{}", response.text());
    assert_eq!(read_until_closed(&mut slow, HANG_GUARD).ok(), Some(0));
    assert_eq!(server.state_u64("http_head_timeout_s"), 1);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let server = Server::start(&["--camera", "none", "--http-idle-timeout", "1"]);
    let mut idle = server.connect();
    idle.write_all(b"GET /state HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(idle.try_clone().unwrap());
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    // Meanwhile another client keeps asking; each of its requests is answered
    // on the same connection until the idle one has been closed.
    let mut busy = server.connect();
    busy.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let mut busy_reader = BufReader::new(busy.try_clone().unwrap());
    idle.set_nonblocking(true).unwrap();
    let mut answered = 0;
    loop {
        busy.write_all(b"GET /state HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut busy_reader, false).unwrap().status, 200);
        answered += 1;
        let mut byte = [0u8; 1];
        match std::io::Read::read(&mut idle, &mut byte) {
            Ok(0) => break, // the idle connection was closed
            Ok(_) => panic!("the idle connection got unexpected bytes"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("idle connection: {e}"),
        }
        assert!(answered < 100_000, "the idle connection was never closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        answered > 1,
        "the busy client was served while the other idled"
    );
    assert_eq!(server.state_u64("http_idle_timeout_s"), 1);
}
