//! A viewer of an `exec:` camera whose frames the test writes itself,
//! through a FIFO the child (`cat`) reads: the test decides exactly when
//! each frame exists. So it can check the part framing of issue 16 with an
//! ordering assertion: after the one and only frame, the next delimiter is
//! already on the wire — it cannot have been sent with a next part, since
//! there is none.

mod http_support;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::time::Duration;

use http_support::{Server, TempDir};

/// A complete small JPEG (the pure-Rust encoder of camloop itself).
fn one_jpeg() -> Vec<u8> {
    camloop::jpeg::encode_bgr(64, 48, &vec![90; 64 * 48 * 3], 80).expect("encode")
}

#[test]
fn after_the_only_frame_the_next_delimiter_is_already_sent() {
    let dir = TempDir::new("exec-fifo");
    let fifo = dir.path().join("frames");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let camera = format!("exec:cat {}", fifo.display());
    let server = Server::start(&["--camera", &camera, "--camera-timeout", "60"]);
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(b"GET /stream.mjpg HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // The head and the first delimiter come at once, before any frame.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n--camloopframe\r\n") {
        stream.read_exact(&mut byte).expect("the stream's head");
        head.push(byte[0]);
        assert!(head.len() < 4096, "{}", String::from_utf8_lossy(&head));
    }
    // Now the one frame (the writer stays open: no end of stream, no second frame).
    let jpeg = one_jpeg();
    let mut writer = OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the FIFO");
    writer.write_all(&jpeg).unwrap();
    let mut headers = Vec::new();
    while !headers.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("the part headers");
        headers.push(byte[0]);
    }
    let headers = String::from_utf8(headers).unwrap();
    let length: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    assert!(body.starts_with(&[0xFF, 0xD8]) && body.ends_with(&jpeg[2..]));
    let mut next = [0u8; 18];
    stream
        .read_exact(&mut next)
        .expect("the delimiter after the only frame, sent at once");
    assert_eq!(&next, b"\r\n--camloopframe\r\n");
    drop(writer);
    let _ = fs::remove_file(&fifo);
}
