//! `camloop load`: a load generator for line-protocol servers.
//!
//! It owns the client side of a benchmark: one single-threaded `mio` loop
//! holding N connections with P requests in flight each (or, with `--hold`,
//! N idle connections), a latency histogram and the report. It works against
//! any server whose replies are lines or fixed-size (camloop, redis inline
//! `PING`, memcached `version`), so results can be compared side by side.
//!
//! It connects only to the addresses it is given (connections are dealt
//! out over them in turn) and stops by itself after warmup + duration; it
//! never retries against other addresses, never reconnects in a loop and
//! never panics on what the network does. Point it at loopback or at
//! servers you own.
//!
//! With `--mjpeg URL --viewers N` it is instead N viewers of one MJPEG
//! stream (`multipart/x-mixed-replace`, as camloop's `/stream.mjpg`), on the
//! same loop, each part parsed by camloop's own
//! [`Splitter`](crate::mjpeg::Splitter): frames per viewer per second,
//! stalled and dropped viewers, malformed parts and the age of each frame
//! on arrival (from its `X-Timestamp`).
//!
//! With `--rtsp URL --viewers N` it is N viewers of one RTSP stream, on the
//! same loop: each goes `DESCRIBE`, `SETUP`, `PLAY` (answering a 401 with
//! `--auth`), then receives RTP, `$`-framed on its connection
//! (`--transport tcp`) or on a pair of UDP sockets of its own registered in
//! the same poll (`udp`), put back into H.264 access units by camloop's own
//! [`Depacketizer`](crate::rtsp::depacketize::Depacketizer); it keeps its
//! session with `GET_PARAMETER` (and, over UDP, RTCP receiver reports).
//! Besides what the MJPEG viewers report (under the same JSON keys) it
//! reports lost packets, the time from `PLAY` to the first IDR, and frame
//! ages from the server's RTCP sender reports, IDRs apart.
//!
//! With `--whep URL --viewers N` it is N WebRTC viewers of one WHEP
//! endpoint, on the same loop: each a str0m session with full ICE and a UDP
//! socket of its own registered in the same poll, posting its offer on its
//! connection and receiving H.264 over SRTP that str0m puts back into
//! access units. Besides what the other viewer modes report (under the
//! same JSON keys) it reports the time to each viewer's first picture,
//! frame ages from abs-capture-time (or the RTCP sender reports), IDRs
//! apart, NACKs and PLIs sent, and the datagrams the kernel dropped.
//!
//! Every mode runs on the same loop and reports in the same shape:
//!
//! - `driver`: the one event loop (the connections, reading, writing,
//!   closing, the phases and the measurement window, CPU clocks, the
//!   progress line) and the `Mode` trait a mode implements to run on it.
//! - `line_clients`: the line and hold modes, as a `Mode`.
//! - `mjpeg_viewers`: the MJPEG viewer mode (`--mjpeg`), as a `Mode`.
//! - `rtsp_viewers`: the RTSP viewer mode (`--rtsp`), as a `Mode` with
//!   sources of its own (the UDP sockets).
//! - `webrtc_viewers`: the WebRTC viewer mode (`--whep`), as a `Mode`
//!   with sources of its own (a UDP socket per viewer).
//! - `viewing`: what the viewer modes share (their flags, the stream URL,
//!   an HTTP response head, queued requests, stall checks, frames per
//!   viewer, frame ages, and the H.264 modes' AU ages).
//! - `udp`: the viewers' UDP sockets (large receive buffers, kernel drops).
//! - [`report`]: the results and their text and JSON forms, with one writer
//!   per part that every mode reports (window, connections, errors, CPU,
//!   percentiles) and one per part of what every viewer run reports.
//! - [`wire`]: request escapes, greeting and reply framing (sans-IO).
//!
//! A new mode is a new `Mode` file, a report struct with its `write_to`,
//! and a `run_*` entry here.

mod driver;
mod line_clients;
mod mjpeg_viewers;
pub mod report;
mod rtsp_viewers;
mod udp;
mod viewing;
mod webrtc_viewers;
pub mod wire;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub use report::{
    AuAgeSpreads, FrameAge, KeyframesAfterGaps, Latency, LoadReport, RtspReport, RtspTransport,
    ViewerReport, Viewing, WhepReport,
};
pub use wire::{parse_escapes, Expect, Greeting, ReplyCounter};

pub(crate) use crate::sys::process_cpu_time;
use crate::sys::{
    ephemeral_port_range, raise_descriptor_limit, EPHEMERAL_PORT_RANGE_PATH, RESERVED_DESCRIPTORS,
};

// Each flag's default is its `default_value` (which `--help` shows) or, for
// the optional ones, stated at the end of its comment.
/// Load a line-protocol server with many connections; report requests/s,
/// latency percentiles and errors.
#[derive(clap::Args, Debug, Clone)]
// The viewer modes, one at most: their flags require one of them.
#[command(group = clap::ArgGroup::new("viewer_mode").args(["mjpeg", "rtsp", "whep"]))]
pub struct LoadArgs {
    /// Servers to load, as HOST:PORT; the only addresses ever connected to.
    /// With several, connections are dealt out over them in turn: one
    /// client gets only about 28,000 local ports per destination
    /// (ip_local_port_range), so holding more idle connections than that
    /// takes several listening ports, e.g. `camloop load 127.0.0.1:8233
    /// 127.0.0.1:8234 --hold 40000`. Not with --mjpeg, --rtsp or --whep,
    /// which have their URL.
    #[arg(required_unless_present = "viewer_mode", value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Connections, each keeping --pipeline requests in flight.
    #[arg(long, default_value_t = 50)]
    pub conns: usize,

    /// Requests in flight per connection (1: wait for each reply).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,

    /// Seconds to measure (or, with --hold, to hold the connections).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Seconds of unmeasured load first; connecting happens in it.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,

    /// The request; understands \r \n \t \\ and \xHH.
    #[arg(long, default_value = r"PING\r\n")]
    pub request: String,

    /// Reply framing: `line` (ends in \n) or `bytes:N` (exactly N bytes).
    #[arg(long, default_value = "line")]
    pub expect: Expect,

    /// Sent by the server on connect and skipped: none, line or bytes:N
    /// (camloop: bytes:7 for the bare `Welcome`, line with --framing line).
    #[arg(long, default_value = "none")]
    pub greeting: Greeting,

    /// Cap on requests per second over all connections [default: no cap].
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// Print the final report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Open N idle connections (instead of --conns), spread over all the
    /// TARGETs, and hold them for --duration without requests; reports
    /// connect rate and failures. The descriptor limit is raised to the
    /// hard limit, which must allow N + 32 [default: off].
    #[arg(long, value_name = "N")]
    pub hold: Option<usize>,

    /// Also measure the CPU time (user + system, from /proc/PID/stat) that
    /// the server process PID uses during the measurement window, and
    /// report it per request counted in that window as
    /// `server_cpu_us_per_request` (warmup and connecting excluded; the
    /// resolution is one clock tick, 10 ms, so measure for seconds)
    /// [default: off].
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// MJPEG viewer mode: open --viewers connections to this
    /// `http://HOST[:PORT]/PATH` (camloop: `/stream.mjpg`) and count the
    /// parts each receives, instead of sending requests to TARGETs. Reports
    /// frames per viewer per second, bytes/s, stalled and dropped viewers,
    /// malformed parts and the frame age at arrival (now - X-Timestamp,
    /// wall clock, so the server's clock must be this machine's). Only
    /// --viewers, --duration, --warmup, --stall-after, --auth, --json and
    /// --server-pid apply. Point it only at servers you own [default: off].
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["hold", "conns", "pipeline", "request", "expect", "greeting", "rate"]
    )]
    pub mjpeg: Option<String>,

    /// RTSP viewer mode: --viewers sessions of this `rtsp://HOST[:PORT]/PATH`
    /// (camloop: `rtsp://HOST:8554/` or `/NAME` for a camera), each
    /// DESCRIBE, SETUP, PLAY, then receiving RTP (--transport), put back
    /// into H.264 access units, and GET_PARAMETER every half session
    /// timeout. Reports frames (AUs) per viewer per second, lost packets,
    /// the time from PLAY to the first IDR, the frame age at arrival (now -
    /// the AU's time from the server's RTCP sender reports; wall clock, so
    /// the server's clock must be this machine's), stalled and dropped
    /// viewers. The same flags apply as with --mjpeg, and --transport. Point it only at
    /// servers you own [default: off].
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["hold", "conns", "pipeline", "request", "expect", "greeting", "rate"]
    )]
    pub rtsp: Option<String>,

    /// WebRTC viewer mode: --viewers WHEP sessions of this
    /// `http://HOST[:PORT]/PATH` (camloop: `/whep`, or `/NAME/whep` for a
    /// camera), each a str0m peer with full ICE and a UDP socket of its
    /// own, posting its offer and receiving H.264 over SRTP; each session
    /// is deleted at the end. Reports frames (AUs) per viewer per second,
    /// the time from the offer to the first IDR, the frame age at arrival
    /// (now - the AU's abs-capture-time, else its time from the RTCP
    /// sender reports; wall clock, so the server's clock must be this
    /// machine's), NACKs and PLIs sent, kernel drops, stalled and dropped
    /// viewers. As root the sockets' receive buffers go past rmem_max
    /// (SO_RCVBUFFORCE). The same flags apply as with --mjpeg (--auth is
    /// sent as `Authorization: Bearer`), and --no-abs-capture-time. Point
    /// it only at servers you own [default: off].
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["hold", "conns", "pipeline", "request", "expect", "greeting", "rate"]
    )]
    pub whep: Option<String>,

    /// With --whep: offer no abs-capture-time extension, so that frames are
    /// dated by the server's RTCP sender reports alone.
    #[arg(long, requires = "whep")]
    pub no_abs_capture_time: bool,

    /// With --rtsp: how RTP comes, `tcp` (interleaved on the RTSP
    /// connection) or `udp` (each viewer its own RTP and RTCP socket,
    /// sending an RTCP receiver report every few seconds).
    #[arg(long, value_enum, default_value_t = RtspTransport::Tcp, requires = "rtsp")]
    pub transport: RtspTransport,

    /// With --mjpeg, --rtsp or --whep: viewers (connections to the stream)
    /// at once.
    #[arg(long, default_value_t = 1, requires = "viewer_mode")]
    pub viewers: usize,

    /// With --mjpeg, --rtsp or --whep: a viewer that receives no frame for this
    /// many seconds counts as stalled (once per viewer; it stays connected
    /// and may recover).
    #[arg(long, default_value_t = 2.0, requires = "viewer_mode")]
    pub stall_after: f64,

    /// The server's token (camloop's `--token`). Line and hold modes: each
    /// connection sends `auth TOKEN\n` once its greeting has arrived and
    /// waits for the reply line `OK` (or redis' `+OK`) before its first
    /// request; any other reply is an auth failure, an error that closes
    /// the connection. With --mjpeg: sent as HTTP Basic credentials (user
    /// `camloop`), which camloop accepts like `?token=`. With --rtsp: the
    /// answer to a 401, Digest when the server offers it, else Basic (user
    /// `camloop`). With --whep: `Authorization: Bearer TOKEN` on the offer
    /// and the DELETE [default: none].
    #[arg(long, value_name = "TOKEN")]
    pub auth: Option<String>,
}

/// The checked, parsed form of [`LoadArgs`] that the line and hold modes run.
#[derive(Debug, Clone)]
struct Plan {
    /// Connection `i` goes to `targets[i % targets.len()]`.
    targets: Vec<SocketAddr>,
    conns: usize,
    pipeline: usize,
    duration: Duration,
    warmup: Duration,
    request: Vec<u8>,
    expect: Expect,
    greeting: Greeting,
    rate: Option<f64>,
    hold: bool,
    server_pid: Option<u32>,
    /// `--auth`: the whole `auth TOKEN\n` line each connection sends first.
    auth: Option<Vec<u8>>,
}

impl Plan {
    fn from_args(args: &LoadArgs) -> Result<Plan, String> {
        let targets = args
            .targets
            .iter()
            .map(|target| {
                target
                    .to_socket_addrs()
                    .map_err(|e| format!("bad target `{target}`: {e}"))?
                    .next()
                    .ok_or_else(|| format!("`{target}` resolves to no address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Err("need at least one target".to_string());
        }
        let (warmup, duration) = window_from_args(args)?;
        let request = parse_escapes(&args.request).map_err(|e| format!("--request: {e}"))?;
        if request.is_empty() {
            return Err("--request must not be empty".to_string());
        }
        if args.pipeline == 0 {
            return Err("--pipeline must be at least 1".to_string());
        }
        if let Some(rate) = args.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!("--rate must be more than 0, got {rate}"));
            }
        }
        let conns = args.hold.unwrap_or(args.conns);
        if conns == 0 {
            return Err("need at least one connection".to_string());
        }
        check_server_pid(args)?;
        let auth = args.auth.as_deref().map(auth_line).transpose()?;
        Ok(Plan {
            targets,
            conns,
            pipeline: args.pipeline,
            duration,
            warmup,
            request,
            expect: args.expect,
            greeting: args.greeting,
            rate: args.rate,
            hold: args.hold.is_some(),
            server_pid: args.server_pid,
            auth,
        })
    }
}

/// The line `--auth TOKEN` sends on the control port: `auth TOKEN\n`. A
/// token that is empty or holds a line break could not be sent as one line.
fn auth_line(token: &str) -> Result<Vec<u8>, String> {
    if token.is_empty() || token.contains(['\r', '\n']) {
        return Err("--auth: the token must be non-empty and on one line".to_string());
    }
    Ok(format!("auth {token}\n").into_bytes())
}

/// A flag in seconds (`--duration 2.5`) as a `Duration`.
fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{flag} must be a number of seconds >= 0, got {value}"))
}

/// `--warmup` and `--duration`, which every mode has, as (warmup,
/// duration); the window must not be empty.
fn window_from_args(args: &LoadArgs) -> Result<(Duration, Duration), String> {
    let duration = seconds("duration", args.duration)?;
    let warmup = seconds("warmup", args.warmup)?;
    if duration.is_zero() {
        return Err("--duration must be more than 0".to_string());
    }
    Ok((warmup, duration))
}

/// Refuses a `--server-pid` whose CPU time cannot be read, before anything
/// connects.
fn check_server_pid(args: &LoadArgs) -> Result<(), String> {
    if let Some(pid) = args.server_pid {
        process_cpu_time(pid).map_err(|e| format!("--server-pid {pid}: {e}"))?;
    }
    Ok(())
}

/// Runs one load test as `args` describe, prints a progress line each
/// second when stdout is a terminal, prints the final report (text, or JSON
/// with `--json`) and returns it.
///
/// Connection failures are part of the report, not an `Err`; `Err` means
/// the run could not be set up or not a single connection succeeded.
pub fn run(args: &LoadArgs) -> Result<LoadReport, String> {
    if args.mjpeg.is_some() || args.rtsp.is_some() || args.whep.is_some() {
        return Err(
            "--mjpeg, --rtsp and --whep are the viewer modes: run them with run_viewers, \
             run_rtsp_viewers and run_whep_viewers"
                .to_string(),
        );
    }
    let plan = Plan::from_args(args)?;
    check_ephemeral_ports(plan.conns, plan.targets.len())?;
    ensure_descriptors(plan.conns, "connections")?;
    let report = line_clients::drive(&plan)?;
    let failure = (report.connected == 0).then(|| {
        let why = report.first_error.as_deref().unwrap_or("no reason given");
        format!("no connection to {} succeeded: {why}", report.target)
    });
    print_report(failure, args.json, report.to_json(), report)
}

/// Prints the report (JSON with `--json`) unless no connection worked.
fn print_report<R: std::fmt::Display>(
    failure: Option<String>,
    json: bool,
    as_json: String,
    report: R,
) -> Result<R, String> {
    if let Some(failure) = failure {
        return Err(failure);
    }
    if json {
        println!("{as_json}");
    } else {
        println!("{report}");
    }
    Ok(report)
}

/// `camloop load` as the command line asks: a viewer mode with `--mjpeg`,
/// `--rtsp` or `--whep`, else [`run`]. Prints the report; `Err` as for
/// [`run`].
pub fn run_command(args: &LoadArgs) -> Result<(), String> {
    if args.mjpeg.is_some() {
        run_viewers(args).map(drop)
    } else if args.rtsp.is_some() {
        run_rtsp_viewers(args).map(drop)
    } else if args.whep.is_some() {
        run_whep_viewers(args).map(drop)
    } else {
        run(args).map(drop)
    }
}

/// Runs the MJPEG viewer mode (`--mjpeg URL --viewers N`): prints a
/// progress line each second when stdout is a terminal, prints the final
/// report (text, or JSON with `--json`) and returns it.
///
/// Stalls, drops, malformed parts and failed connects are part of the
/// report; `Err` means the run could not be set up or no viewer connected.
pub fn run_viewers(args: &LoadArgs) -> Result<ViewerReport, String> {
    let plan = mjpeg_viewers::ViewerPlan::from_args(args)?;
    check_ephemeral_ports(plan.flags.viewers, 1)?;
    ensure_descriptors(plan.flags.viewers, "viewers")?;
    let report = mjpeg_viewers::drive(&plan)?;
    let failure = no_viewer_connected(&report.viewing);
    print_report(failure, args.json, report.to_json(), report)
}

/// Runs the RTSP viewer mode (`--rtsp URL --viewers N`): prints a progress
/// line each second when stdout is a terminal, prints the final report
/// (text, or JSON with `--json`) and returns it.
///
/// Refused requests, stalls, drops and lost packets are part of the
/// report; `Err` means the run could not be set up or no viewer connected.
pub fn run_rtsp_viewers(args: &LoadArgs) -> Result<RtspReport, String> {
    let plan = rtsp_viewers::RtspPlan::from_args(args)?;
    let viewers = plan.flags.viewers;
    check_ephemeral_ports(viewers, 1)?;
    // Over UDP each viewer also has its RTP and RTCP sockets.
    let per_viewer = match plan.transport {
        RtspTransport::Tcp => 1,
        RtspTransport::Udp => 3,
    };
    ensure_descriptors(per_viewer * viewers, "viewers' sockets")?;
    let report = rtsp_viewers::drive(&plan)?;
    let failure = no_viewer_connected(&report.viewing);
    print_report(failure, args.json, report.to_json(), report)
}

/// Runs the WebRTC viewer mode (`--whep URL --viewers N`): prints a
/// progress line each second when stdout is a terminal, prints the final
/// report (text, or JSON with `--json`) and returns it.
///
/// Refused or malformed answers, ICE that never came up, stalls, drops and
/// kernel drops are part of the report; `Err` means the run could not be
/// set up or no viewer's connection opened.
pub fn run_whep_viewers(args: &LoadArgs) -> Result<WhepReport, String> {
    let plan = webrtc_viewers::WhepPlan::from_args(args)?;
    let viewers = plan.flags.viewers;
    check_ephemeral_ports(viewers, 1)?;
    // Each viewer has its connection and its UDP socket.
    ensure_descriptors(2 * viewers, "viewers' sockets")?;
    let report = webrtc_viewers::drive(&plan)?;
    let failure = no_viewer_connected(&report.viewing);
    print_report(failure, args.json, report.to_json(), report)
}

/// Why a viewer run failed as a whole: not one viewer connected.
fn no_viewer_connected(viewing: &Viewing) -> Option<String> {
    (viewing.connected == 0).then(|| {
        let why = viewing.first_error.as_deref().unwrap_or("no reason given");
        format!("no viewer could connect to {}: {why}", viewing.url)
    })
}

/// Raises the descriptor limit and refuses a run that still could not open
/// `count` sockets (`what`: "connections", "viewers").
fn ensure_descriptors(count: usize, what: &str) -> Result<(), String> {
    // Unknown limit: go ahead, and let the connects report EMFILE if it
    // comes to that.
    let fd_limit = raise_descriptor_limit().unwrap_or(u64::MAX);
    let fds_needed = count as u64 + RESERVED_DESCRIPTORS;
    if fd_limit < fds_needed {
        return Err(format!(
            "{count} {what} need {fds_needed} file descriptors but RLIMIT_NOFILE allows {fd_limit} \
             (raise the hard limit, e.g. `ulimit -Hn`, or use fewer {what})"
        ));
    }
    Ok(())
}

/// Refuses a plan that would run out of local ports: every connection to
/// one destination needs a local port of its own, from a range of about
/// 28,000 by default, so more connections than that need more destinations.
/// Skipped where the range cannot be read (other systems).
fn check_ephemeral_ports(conns: usize, destinations: usize) -> Result<(), String> {
    let Some((low, high)) = ephemeral_port_range() else {
        return Ok(());
    };
    let ports = (u64::from(high) + 1).saturating_sub(u64::from(low));
    let per_target = conns.div_ceil(destinations) as u64;
    if per_target > ports {
        return Err(format!(
            "{conns} connections over {destinations} address(es) need {per_target} local ports \
             per address, but {EPHEMERAL_PORT_RANGE_PATH} offers {ports}: give more addresses \
             (each destination address and port has its own local ports)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_fields_14_and_15_whatever_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime ...
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 10 0 0 0 250 31 7 9 20 0";
        assert_eq!(crate::sys::cpu_ticks_from_stat(stat), Some(281));
        assert_eq!(crate::sys::cpu_ticks_from_stat("42 (short) S 1 2"), None);
        assert_eq!(crate::sys::cpu_ticks_from_stat("no name at all"), None);
    }

    #[test]
    fn this_process_has_a_readable_cpu_time() {
        assert!(process_cpu_time(std::process::id()).is_ok());
    }
}
