//! Starting camloop the way systemd does: a listening socket passed as fd 3
//! (`LISTEN_FDS`/`LISTEN_PID`), readiness sent to `NOTIFY_SOCKET`; and the
//! configuration file with `--print-config`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use support::{Client, TempDir, CAMLOOP, TIMEOUT};

/// The first descriptor systemd passes.
const SD_LISTEN_FDS_START: i32 = 3;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the `listening ...` line and returns the control address.
fn listening_control_addr(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("control="))
        .unwrap_or_else(|| panic!("no control= in {line:?}"))
        .to_string()
}

#[test]
fn a_socket_passed_as_fd_3_with_listen_fds_is_served() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let fd = listener.as_raw_fd();
    let snapshots = TempDir::new("activation");
    let mut command = Command::new("sh");
    // `$$` is the shell's pid, which `exec` hands on to camloop: exactly
    // the LISTEN_PID systemd would set.
    command
        .arg("-c")
        .arg("export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" serve --http off --rtsp off --camera none --snapshot-dir \"$1\"")
        .arg(CAMLOOP)
        .arg(snapshots.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls (dup2,
    // fcntl) on descriptors this process owns.
    unsafe {
        command.pre_exec(move || {
            if fd == SD_LISTEN_FDS_START {
                libc::fcntl(fd, libc::F_SETFD, 0); // keep it across exec
            } else if libc::dup2(fd, SD_LISTEN_FDS_START) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Killed(command.spawn().expect("start camloop under sh"));
    let addr = listening_control_addr(&mut child.0);
    assert_eq!(
        addr,
        format!("127.0.0.1:{port}"),
        "serves the passed socket, not --listen"
    );
    drop(listener); // the server has its own copy now
    let mut client = Client::connect(addr.parse().expect("addr"));
    client.expect("Welcome");
    assert_eq!(client.request("ping"), "PONG");
}

/// Reads the `listening ...` line and returns the control, HTTP and RTSP parts.
fn listening_addrs(child: &mut Child) -> (String, String, String) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let part = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .to_string()
    };
    (part("control="), part("http="), part("rtsp="))
}

/// `camloop serve ARGS --snapshot-dir DIR` started as systemd starts a
/// socket-activated service: `fds` as descriptors 3, 4, … with
/// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES=names`.
fn under_systemd(fds: &[i32], names: &str, args: &[&str], snapshots: &TempDir) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "export LISTEN_PID=$$ LISTEN_FDS={} LISTEN_FDNAMES={names}; \
             exec \"$0\" serve \"$@\"",
            fds.len()
        ))
        .arg(CAMLOOP)
        .args(args)
        .arg("--snapshot-dir")
        .arg(snapshots.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let fds = fds.to_vec();
    // SAFETY: between fork and exec only async-signal-safe calls (fcntl,
    // dup2) on descriptors this process owns. The sockets are first copied
    // above any target number, so moving one cannot overwrite another.
    unsafe {
        command.pre_exec(move || {
            let mut high = Vec::with_capacity(fds.len());
            for &fd in &fds {
                let copy = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                if copy < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push(copy);
            }
            for (offset, fd) in high.into_iter().enumerate() {
                // dup2 leaves the new descriptor open across exec.
                if libc::dup2(fd, SD_LISTEN_FDS_START + offset as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command
}

#[test]
fn a_datagram_socket_named_webrtc_carries_webrtc() {
    // What contrib/camloop-webrtc.socket passes: a UDP socket named webrtc,
    // beside the HTTP one the signalling arrives on.
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let webrtc = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    let webrtc_addr = webrtc.local_addr().expect("addr");
    let snapshots = TempDir::new("activation-webrtc");
    let mut command = under_systemd(
        &[http.as_raw_fd(), webrtc.as_raw_fd()],
        "http:webrtc",
        &[
            "--camera",
            "synthetic",
            "--listen",
            "127.0.0.1:0",
            "--rtsp",
            "off",
        ],
        &snapshots,
    );
    let mut child = Killed(command.spawn().expect("start camloop under sh"));
    let stdout = child.0.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    assert!(
        line.split_whitespace()
            .any(|w| w == format!("webrtc={webrtc_addr}")),
        "webrtc= is the datagram socket named webrtc: {line}"
    );
    let http_addr = http.local_addr().expect("addr");
    drop((http, webrtc));
    let offer = include_str!("data/webrtc/chromium_recvonly_video.sdp");
    let mut stream = std::net::TcpStream::connect(http_addr).expect("connect to HTTP");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    write!(
        stream,
        "POST /whep HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
        offer.len()
    )
    .expect("send");
    let mut reply = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut reply);
    assert!(reply.starts_with("HTTP/1.1 201 "), "{reply}");
    let candidate = format!("{} {} typ host", webrtc_addr.ip(), webrtc_addr.port());
    assert!(
        reply.contains(&candidate),
        "the answer offers that socket: {reply}"
    );
}

#[test]
fn three_sockets_named_by_listen_fdnames_serve_control_http_and_rtsp() {
    // Passed in the order http, rtsp, control: the names, not the
    // positions, must decide (two unnamed sockets would be control, then
    // HTTP).
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let rtsp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let control = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (http_addr, rtsp_addr, control_addr) = (
        http.local_addr().expect("addr"),
        rtsp.local_addr().expect("addr"),
        control.local_addr().expect("addr"),
    );
    let fds = [http.as_raw_fd(), rtsp.as_raw_fd(), control.as_raw_fd()];
    let snapshots = TempDir::new("activation-two");
    let mut command = under_systemd(
        &fds,
        "http:rtsp:control",
        &[
            "--camera",
            "none",
            "--rtsp-udp-ports",
            "0",
            "--webrtc",
            "off",
        ],
        &snapshots,
    );
    let mut child = Killed(command.spawn().expect("start camloop under sh"));
    let (control_seen, http_seen, rtsp_seen) = listening_addrs(&mut child.0);
    assert_eq!(
        control_seen,
        control_addr.to_string(),
        "control= is the socket named control"
    );
    assert_eq!(
        http_seen,
        http_addr.to_string(),
        "http= is the socket named http"
    );
    assert_eq!(
        rtsp_seen,
        rtsp_addr.to_string(),
        "rtsp= is the socket named rtsp"
    );
    drop((http, rtsp, control)); // the server has its own copies now

    let mut client = Client::connect(control_addr);
    client.expect("Welcome");
    assert_eq!(client.request("ping"), "PONG");

    let mut stream = std::net::TcpStream::connect(http_addr).expect("connect to HTTP");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream
        .write_all(b"GET /state HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut status = String::new();
    BufReader::new(stream)
        .read_line(&mut status)
        .expect("status line");
    assert_eq!(status, "HTTP/1.1 200 OK\r\n");

    let mut stream = std::net::TcpStream::connect(rtsp_addr).expect("connect to RTSP");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream
        .write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .expect("send");
    let mut status = String::new();
    BufReader::new(stream)
        .read_line(&mut status)
        .expect("status line");
    assert_eq!(status, "RTSP/1.0 200 OK\r\n");
}

#[test]
fn readiness_is_sent_to_notify_socket_once_listening() {
    let dir = TempDir::new("notify");
    let socket_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    notify.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut child = Killed(
        Command::new(CAMLOOP)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "off",
                "--rtsp",
                "off",
                "--camera",
                "none",
            ])
            .arg("--snapshot-dir")
            .arg(dir.path())
            .env("NOTIFY_SOCKET", &socket_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start camloop"),
    );
    let addr = listening_control_addr(&mut child.0);
    let mut message = [0u8; 64];
    let n = notify.recv(&mut message).expect("a READY datagram");
    assert_eq!(&message[..n], b"READY=1");
    // Ready means ready: a client connects at once.
    let mut client = Client::connect(addr.parse().expect("addr"));
    client.expect("Welcome");
}

#[test]
fn a_config_file_sets_flags_and_the_command_line_wins() {
    let dir = TempDir::new("config");
    let config = dir.path().join("camloop.toml");
    std::fs::write(
        &config,
        "listen = [\"127.0.0.1:9999\", \"[::1]:9999\"]\nfps = 12\ncamera = \"none\"\nsnapshot-fsync = false\n",
    )
    .expect("write config");
    let output = Command::new(CAMLOOP)
        .args(["serve", "--fps", "20", "--print-config", "--config"])
        .arg(&config)
        .output()
        .expect("run --print-config");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("listen = [\"127.0.0.1:9999\", \"[::1]:9999\"]"),
        "{text}"
    );
    assert!(
        text.contains("fps = 20\n"),
        "the flag wins over the file: {text}"
    );
    // The cameras come back as tables, last (TOML puts tables after keys).
    assert!(
        text.ends_with("\n[[camera]]\nname = \"cam0\"\nsource = \"none\"\n"),
        "{text}"
    );
    assert!(text.contains("snapshot-fsync = \"off\"\n"), "{text}");
    assert!(
        text.contains("jpeg-quality = 80\n"),
        "defaults are listed too: {text}"
    );
}

#[test]
fn an_unknown_config_key_is_refused_with_its_name() {
    let dir = TempDir::new("config-bad");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "fsp = 30\n").expect("write config");
    let output = Command::new(CAMLOOP)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run camloop");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown key \"fsp\""));
}

#[test]
fn version_names_the_git_revision_and_the_opencv_feature() {
    let output = Command::new(CAMLOOP)
        .arg("--version")
        .output()
        .expect("run --version");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("(git "), "{text}");
    let feature = if cfg!(feature = "opencv") {
        "with OpenCV"
    } else {
        "without OpenCV"
    };
    assert!(text.contains(feature), "{text}");
}

/// `camloop serve --help`, split into one block per flag: the flag's name
/// and everything printed under it up to the next flag.
fn serve_help_blocks() -> Vec<(String, String)> {
    let output = Command::new(CAMLOOP)
        .args(["serve", "--help"])
        .output()
        .expect("run serve --help");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("UTF-8 help");
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let flag = trimmed
            .split([' ', ','])
            .find(|word| word.starts_with("--"))
            .filter(|_| trimmed.starts_with('-') && line.len() > trimmed.len());
        match (flag, blocks.last_mut()) {
            (Some(flag), _) => blocks.push((flag.to_string(), String::new())),
            (None, Some((_, block))) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

#[test]
fn serve_help_names_the_default_of_every_flag() {
    let blocks = serve_help_blocks();
    let flags: Vec<&str> = blocks.iter().map(|(flag, _)| flag.as_str()).collect();
    // The parse found the flags (a change of clap's layout must not turn
    // this test into one that checks nothing).
    for expected in ["--listen", "--token", "--unix", "--idle-timeout", "--help"] {
        assert!(
            flags.contains(&expected),
            "{expected} not found in {flags:?}"
        );
    }
    let missing: Vec<&str> = blocks
        .iter()
        .filter(|(flag, _)| flag != "--help")
        .filter(|(_, block)| !block.to_ascii_lowercase().contains("default:"))
        .map(|(flag, _)| flag.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "`camloop serve --help` names no default for {missing:?}"
    );
}
