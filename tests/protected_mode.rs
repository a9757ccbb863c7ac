//! Protected mode holds for every listener, whatever created it: sockets
//! handed over by systemd (`LISTEN_FDS`) on `0.0.0.0` or `::` are refused
//! without a token, exactly like `--listen 0.0.0.0`, and served with one.
//! The tests only ever connect over loopback.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

use support::{Client, TempDir, CAMLOOP};

/// Runs `camloop serve ARGS` with `listener` passed as systemd's fd 3 and
/// returns the process (and its snapshot directory, kept while it runs).
fn serve_with_socket(listener: &TcpListener, args: &[&str]) -> (std::process::Child, TempDir) {
    let fd = listener.as_raw_fd();
    let snapshots = TempDir::new("protected");
    let mut command = Command::new("sh");
    // `$$` is the shell's pid, which `exec` hands on to camloop: exactly
    // the LISTEN_PID systemd would set.
    command
        .arg("-c")
        .arg("dir=$1; shift; export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" serve --http off --rtsp off --camera none --snapshot-dir \"$dir\" \"$@\"")
        .arg(CAMLOOP)
        .arg(snapshots.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe calls (dup2,
    // fcntl) on descriptors this process owns.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                libc::fcntl(fd, libc::F_SETFD, 0);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (command.spawn().expect("start camloop under sh"), snapshots)
}

fn refused(output: Output, addr: &str) {
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("refusing to listen on {addr} without a token")),
        "{stderr}"
    );
}

#[test]
fn a_systemd_socket_on_0_0_0_0_without_a_token_is_refused() {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (child, _dir) = serve_with_socket(&listener, &[]);
    refused(
        child.wait_with_output().unwrap(),
        &format!("0.0.0.0:{port}"),
    );
}

#[test]
fn a_systemd_socket_on_ipv6_any_without_a_token_is_refused() {
    let listener = TcpListener::bind("[::]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (child, _dir) = serve_with_socket(&listener, &[]);
    refused(child.wait_with_output().unwrap(), &format!("[::]:{port}"));
}

#[test]
fn a_systemd_socket_on_0_0_0_0_with_a_token_is_served() {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (mut child, _dir) = serve_with_socket(&listener, &["--token", "s3cret"]);
    let mut line = [0u8; 9];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut line)
        .expect("the listening line");
    assert_eq!(&line, b"listening");
    let mut client = Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    client.expect("Welcome");
    assert_eq!(client.request("ping"), "ERR auth: required");
    assert_eq!(client.request("auth s3cret"), "OK");
    assert_eq!(client.request("ping"), "PONG");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_flag_on_0_0_0_0_without_a_token_is_refused_before_binding() {
    let output = Command::new(CAMLOOP)
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--http",
            "off",
            "--rtsp",
            "off",
            "--camera",
            "none",
        ])
        .output()
        .unwrap();
    refused(output, "0.0.0.0:0");
}
