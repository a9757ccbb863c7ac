//! `camloop load`: a load generator for line-protocol servers.
//!
//! It owns the client side of a benchmark: one single-threaded `mio` loop
//! holding N connections with P requests in flight each (or, with `--hold`,
//! N idle connections), a latency histogram and the report. It works against
//! any server whose replies are lines or fixed-size (camloop, redis inline
//! `PING`, memcached `version`), so results can be compared side by side.
//!
//! It connects only to the one address it is given and stops by itself after
//! warmup + duration; it never retries against other addresses, never
//! reconnects in a loop and never panics on what the network does. Point it
//! at loopback or at servers you own.
//!
//! - [`wire`]: request escapes, greeting and reply framing (sans-IO).
//! - `engine`: the event loop.
//! - [`report`]: the result and its text and JSON forms.

mod engine;
pub mod report;
pub mod wire;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub use report::{Latency, LoadReport};
pub use wire::{parse_escapes, Expect, Greeting, ReplyCounter};

/// Descriptors kept free beside the connections: stdio, the epoll instance
/// and whatever the runtime opens.
const RESERVED_FDS: u64 = 32;

// Each flag's default is its `default_value` (which `--help` shows) or, for
// the optional ones, stated at the end of its comment.
/// Load a line-protocol server with many connections; report requests/s,
/// latency percentiles and errors.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Server to load, as HOST:PORT; the only address ever connected to.
    pub target: String,

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

    /// Open N idle connections (instead of --conns) and hold them for
    /// --duration without requests; reports connect rate and failures
    /// [default: off].
    #[arg(long, value_name = "N")]
    pub hold: Option<usize>,
}

/// The checked, parsed form of [`LoadArgs`] that the engine runs.
#[derive(Debug, Clone)]
struct Plan {
    target: SocketAddr,
    conns: usize,
    pipeline: usize,
    duration: Duration,
    warmup: Duration,
    request: Vec<u8>,
    expect: Expect,
    greeting: Greeting,
    rate: Option<f64>,
    hold: bool,
}

impl Plan {
    fn from_args(args: &LoadArgs) -> Result<Plan, String> {
        let target = args
            .target
            .to_socket_addrs()
            .map_err(|e| format!("bad target `{}`: {e}", args.target))?
            .next()
            .ok_or_else(|| format!("`{}` resolves to no address", args.target))?;
        let seconds = |name: &str, value: f64| {
            Duration::try_from_secs_f64(value)
                .map_err(|_| format!("--{name} must be a number of seconds >= 0, got {value}"))
        };
        let duration = seconds("duration", args.duration)?;
        let warmup = seconds("warmup", args.warmup)?;
        if duration.is_zero() {
            return Err("--duration must be more than 0".to_string());
        }
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
        Ok(Plan {
            target,
            conns,
            pipeline: args.pipeline,
            duration,
            warmup,
            request,
            expect: args.expect,
            greeting: args.greeting,
            rate: args.rate,
            hold: args.hold.is_some(),
        })
    }
}

/// Runs one load test as `args` describe, prints a progress line each
/// second when stdout is a terminal, prints the final report (text, or JSON
/// with `--json`) and returns it.
///
/// Connection failures are part of the report, not an `Err`; `Err` means
/// the run could not be set up or not a single connection succeeded.
pub fn run(args: &LoadArgs) -> Result<LoadReport, String> {
    let plan = Plan::from_args(args)?;
    let fd_limit = raise_fd_limit();
    let fds_needed = plan.conns as u64 + RESERVED_FDS;
    if fd_limit < fds_needed {
        return Err(format!(
            "{} connections need {fds_needed} file descriptors but RLIMIT_NOFILE allows {fd_limit} \
             (raise the hard limit, e.g. `ulimit -Hn`, or use fewer connections)",
            plan.conns
        ));
    }
    let report = engine::drive(&plan)?;
    if report.connected == 0 {
        return Err(format!(
            "no connection to {} succeeded: {}",
            plan.target,
            report.first_error.as_deref().unwrap_or("no reason given")
        ));
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{report}");
    }
    Ok(report)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (thousands of connections
/// need thousands of descriptors; the usual soft limit is 1024) and returns
/// the limit now in force.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return u64::MAX; // unknown; let the connects report EMFILE if it comes to that
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given. It may refuse
        // (an infinite hard limit is above the kernel's nr_open); then the
        // current soft limit simply stays.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value, and getrusage only writes
    // into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let to_duration = |time: libc::timeval| {
        Duration::new(time.tv_sec.max(0) as u64, 0)
            + Duration::from_micros(time.tv_usec.max(0) as u64)
    };
    to_duration(usage.ru_utime) + to_duration(usage.ru_stime)
}
