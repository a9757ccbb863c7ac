//! The command line: `serve`, `ctl` and `load`, parsed with clap.
//!
//! This module turns flags into the library's settings and calls into it;
//! it holds no server logic. Every flag documents its default.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::camera::pipeline::{Camera, CameraSettings};
use crate::camera::synthetic::SyntheticSource;
use crate::camera::FrameSource;
use crate::protocol::Framing;
use crate::server::{Server, ServerConfig};
use crate::snapshot::{SnapshotSettings, SnapshotWriter};

/// camloop: a single-threaded mio camera server, its client and a load generator.
#[derive(Parser, Debug)]
#[command(name = "camloop", version = env!("CAMLOOP_VERSION"), about, args_override_self = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the camera server (control port, HTTP, camera) in one event loop.
    Serve(Box<ServeArgs>),
    /// Talk to a server: interactive prompt, one-shot requests, or piped stdin.
    Ctl(CtlArgs),
    /// Generate load against a line-protocol server (camloop, redis, memcached...).
    Load(crate::load::LoadArgs),
}

/// Flags of `camloop serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Read settings from this TOML file: the same keys as these flags
    /// (`listen = ["127.0.0.1:8233"]`, `snapshot-dir = "/var/lib/camloop"`);
    /// flags given on the command line win. Default: none.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (defaults, file and flags merged)
    /// as TOML and exit. Default: off.
    #[arg(long)]
    pub print_config: bool,
    /// Control-port address; repeat for several (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8233")]
    pub listen: Vec<SocketAddr>,
    /// Also serve the control port on this Unix socket (mode 0660). Default: none.
    #[arg(long)]
    pub unix: Option<PathBuf>,
    /// HTTP address (web page, MJPEG stream, snapshot, /state, /metrics); repeat for several, or `off`.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_http_addr)]
    pub http: Vec<Option<SocketAddr>>,
    /// Camera: auto (device 0, else synthetic), synthetic, none, a device
    /// index, a video file, a URL or a GStreamer pipeline.
    #[arg(long, default_value = "auto")]
    pub camera: String,
    /// Grab rate while somebody streams, frames per second.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// Grab rate while nobody streams (keeps a real camera's queue fresh).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub idle_fps: u32,
    /// Pixel format to ask a camera for (e.g. MJPG, YUYV; `default` keeps the
    /// camera's own). Default: MJPG for devices, which passes through without
    /// decoding.
    #[arg(long)]
    pub fourcc: Option<String>,
    /// Frame width in pixels (requested from real cameras).
    #[arg(long, default_value_t = 640, value_parser = clap::value_parser!(u32).range(16..=8192))]
    pub width: u32,
    /// Frame height in pixels (requested from real cameras).
    #[arg(long, default_value_t = 480, value_parser = clap::value_parser!(u32).range(16..=8192))]
    pub height: u32,
    /// JPEG quality, 1 to 100.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Directory for snapshots, created if missing.
    #[arg(long, default_value = ".")]
    pub snapshot_dir: PathBuf,
    /// Snapshot file name; `{seq}` and `{ts}` (UTC, milliseconds) are replaced.
    #[arg(long, default_value = "pic2.jpg")]
    pub snapshot_name: String,
    /// fsync each snapshot and its directory: on or off.
    #[arg(long, default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub snapshot_fsync: bool,
    /// Keep at most this many snapshots (with `{seq}` or `{ts}` names); default: all.
    #[arg(long)]
    pub snapshot_keep: Option<usize>,
    /// Control framing: auto (raw until a newline arrives), line or raw.
    #[arg(long, value_enum, default_value_t = Framing::Auto)]
    pub framing: Framing,
    /// Require `auth <token>` from control clients (and a bearer token over
    /// HTTP). Default: none.
    #[arg(long)]
    pub token: Option<String>,
    /// Read the token from this file (first line) instead of the command
    /// line. Default: none.
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Most clients at once; default: the descriptor limit minus a reserve.
    #[arg(long)]
    pub max_clients: Option<usize>,
    /// Allow a non-loopback listener without a token. Default: off.
    #[arg(long)]
    pub insecure_public: bool,
    /// Close control clients silent for this many seconds; default: never
    /// (the classic clients keep connections open indefinitely).
    #[arg(long)]
    pub idle_timeout: Option<u64>,
    /// Drop a stream viewer whose socket stays busy this many seconds.
    #[arg(long, default_value_t = 10)]
    pub stream_stall_timeout: u64,
    /// Drop any other client whose replies pile up unread (no progress) for
    /// this many seconds.
    #[arg(long, default_value_t = 30)]
    pub output_stall_timeout: u64,
}

fn parse_http_addr(value: &str) -> Result<Option<SocketAddr>, String> {
    if value == "off" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e| format!("expected HOST:PORT or off, got {value:?}: {e}"))
}

/// Flags of `camloop ctl`.
#[derive(Args, Debug, Clone)]
pub struct CtlArgs {
    /// `[HOST:PORT] [REQUEST...]`: the first word is the address only if it
    /// looks like HOST:PORT (default 127.0.0.1:8233); every further word is
    /// one request. `frame -o FILE` saves the frame. No requests: read
    /// stdin line by line.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

fn parse_on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("expected on or off, got {value:?}")),
    }
}

/// Parses the process's command line, merging `serve --config FILE` in:
/// the file's keys become flags placed before the real ones, except keys
/// the command line already sets, so the command line always wins.
pub fn parse_command_line() -> Result<Cli, String> {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    let matches = Cli::command().get_matches_from(&argv);
    if let Some(("serve", serve)) = matches.subcommand() {
        if let Some(path) = serve.get_one::<PathBuf>("config") {
            let from_file = config_file_args(path, serve)?;
            let at = argv
                .iter()
                .position(|a| a == "serve")
                .map_or(argv.len(), |i| i + 1);
            argv.splice(at..at, from_file);
        }
    }
    let matches = Cli::command().get_matches_from(&argv);
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    if let (Command::Serve(args), Some(("serve", serve))) = (&cli.command, matches.subcommand()) {
        if args.print_config {
            print!("{}", effective_config(serve));
            std::process::exit(0);
        }
    }
    Ok(cli)
}

/// Turns a TOML file into `--key=value` flags for `serve`.
fn config_file_args(path: &Path, given: &ArgMatches) -> Result<Vec<OsString>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("--config {}: {e}", path.display()))?;
    let command = Cli::command();
    let serve = command
        .find_subcommand("serve")
        .ok_or("no serve subcommand")?;
    let mut flags = Vec::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let arg = serve
            .get_arguments()
            .find(|a| a.get_id() == id.as_str() && a.get_long().is_some())
            .filter(|_| !matches!(id.as_str(), "config" | "print_config"))
            .ok_or_else(|| format!("--config {}: unknown key {key:?}", path.display()))?;
        if given.value_source(&id) == Some(ValueSource::CommandLine) {
            continue; // the command line wins
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for value in values {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(on) if !arg.get_action().takes_values() => {
                    if *on {
                        flags.push(OsString::from(format!("--{key}")));
                    }
                    continue;
                }
                toml::Value::Boolean(on) => if *on { "on" } else { "off" }.to_string(),
                other => {
                    return Err(format!(
                        "--config {}: {key} = {other} is not a value a flag takes",
                        path.display()
                    ))
                }
            };
            flags.push(OsString::from(format!("--{key}={text}")));
        }
    }
    Ok(flags)
}

/// The effective `serve` settings as TOML, read back from clap so that
/// every flag (with its default) is listed and none can be forgotten.
fn effective_config(serve: &ArgMatches) -> String {
    let command = Cli::command();
    let mut out = String::from("# camloop serve: effective configuration\n");
    let Some(serve_command) = command.find_subcommand("serve") else {
        return out;
    };
    for arg in serve_command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if matches!(id, "config" | "print_config" | "help") {
            continue;
        }
        let values: Vec<String> = serve
            .get_raw(id)
            .map(|raw| raw.map(|v| toml_scalar(&v.to_string_lossy())).collect())
            .unwrap_or_default();
        let multiple = matches!(arg.get_action(), clap::ArgAction::Append);
        let line = match (values.as_slice(), multiple) {
            ([], _) => format!("# {long} = (not set)"),
            (_, true) => format!("{long} = [{}]", values.join(", ")),
            ([value, ..], false) => format!("{long} = {value}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A flag value as a TOML scalar: integers and booleans bare, text quoted.
fn toml_scalar(value: &str) -> String {
    if value.parse::<i64>().is_ok() || value == "true" || value == "false" {
        value.to_string()
    } else {
        toml::Value::String(value.to_string()).to_string()
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => match serve(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                log::error!("{message}");
                eprintln!("camloop serve: {message}");
                ExitCode::from(2)
            }
        },
        Command::Ctl(args) => crate::client::run_ctl(&args.words),
        Command::Load(args) => match crate::load::run(&args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("camloop load: {message}");
                ExitCode::from(1)
            }
        },
    }
}

/// `camloop serve`: build the parts, bind, print the listening line, run.
pub fn serve(args: &ServeArgs) -> Result<(), String> {
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => Some(read_token_file(path)?),
        (None, None) => None,
    };
    let http_addrs: Vec<SocketAddr> = args.http.iter().flatten().copied().collect();
    if token.is_none() && !args.insecure_public {
        let mut all_addrs = args.listen.iter().chain(&http_addrs);
        if let Some(public) = all_addrs.find(|a| !a.ip().is_loopback()) {
            return Err(format!(
                "refusing to listen on {public} without a token: anyone who can reach it could \
                 capture images and shut the server down. Pass --token (or --token-file), or \
                 --insecure-public if the network is trusted"
            ));
        }
    }
    let snapshots = SnapshotWriter::new(SnapshotSettings {
        dir: args.snapshot_dir.clone(),
        name_pattern: args.snapshot_name.clone(),
        fsync: args.snapshot_fsync,
        keep: args.snapshot_keep,
    })?;
    let settings = CameraSettings {
        fps: args.fps,
        idle_fps: args.idle_fps,
        jpeg_quality: args.jpeg_quality,
        width: args.width,
        height: args.height,
    };
    #[cfg(feature = "opencv")]
    {
        crate::camera::opencv_source::quiet_opencv_logging();
        crate::camera::opencv_source::single_threaded_opencv();
    }
    let source = build_source(args)?;
    let camera = Camera::new(source, settings, Instant::now());
    let config = ServerConfig {
        control_addrs: args.listen.clone(),
        unix_path: args.unix.clone(),
        http_addrs,
        stream_stall_timeout: Duration::from_secs(args.stream_stall_timeout),
        output_stall_timeout: Duration::from_secs(args.output_stall_timeout),
        control_idle_timeout: args.idle_timeout.map(Duration::from_secs),
        framing: args.framing,
        token,
        max_clients: args.max_clients,
    };
    let mut server = Server::bind(config, camera, snapshots).map_err(|e| e.to_string())?;
    let join = |addrs: Vec<String>| -> String {
        if addrs.is_empty() {
            "off".to_string()
        } else {
            addrs.join(",")
        }
    };
    let (control, http) = (join(server.control_addrs()), join(server.http_addrs()));
    println!("listening control={control} http={http}");
    // Tests and scripts wait for this line; make sure it is out now.
    let _ = std::io::stdout().flush();
    crate::sys::notify_systemd("READY=1");
    log::info!(
        "camloop {} serving control={control} http={http}",
        env!("CARGO_PKG_VERSION")
    );
    server.run().map_err(|e| format!("event loop failed: {e}"))
}

fn read_token_file(path: &PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!("--token-file {} is empty", path.display()));
    }
    Ok(token)
}

/// Builds the frame source `--camera` asks for.
fn build_source(args: &ServeArgs) -> Result<Option<Box<dyn FrameSource>>, String> {
    let synthetic =
        || -> Box<dyn FrameSource> { Box::new(SyntheticSource::new(args.width, args.height)) };
    match args.camera.as_str() {
        "none" => Ok(None),
        "synthetic" => Ok(Some(synthetic())),
        #[cfg(feature = "opencv")]
        "auto" => {
            use crate::camera::opencv_source::OpenCvTarget;
            let mut device = opencv_source(args, OpenCvTarget::Device(0));
            match device.open() {
                Ok(()) => Ok(Some(device)),
                Err(error) => {
                    log::warn!(
                        "--camera auto: no usable camera 0 ({error}); using the synthetic camera"
                    );
                    Ok(Some(synthetic()))
                }
            }
        }
        #[cfg(not(feature = "opencv"))]
        "auto" => Ok(Some(synthetic())),
        #[cfg(feature = "opencv")]
        spec => {
            use crate::camera::opencv_source::OpenCvTarget;
            Ok(Some(opencv_source(args, OpenCvTarget::parse(spec))))
        }
        #[cfg(not(feature = "opencv"))]
        spec => Err(format!(
            "--camera {spec}: this build has no OpenCV backend (rebuild with the `opencv` feature)"
        )),
    }
}

#[cfg(feature = "opencv")]
fn opencv_source(
    args: &ServeArgs,
    target: crate::camera::opencv_source::OpenCvTarget,
) -> Box<dyn FrameSource> {
    use crate::camera::opencv_source::{OpenCvOptions, OpenCvSource, OpenCvTarget};
    // USB cameras that offer MJPEG deliver it at full rate and it passes
    // through without a decode; ask for it unless told otherwise.
    let fourcc = match (&args.fourcc, &target) {
        (Some(fourcc), _) if fourcc == "default" => None,
        (Some(fourcc), _) => Some(fourcc.clone()),
        (None, OpenCvTarget::Device(_)) => Some("MJPG".to_string()),
        (None, _) => None,
    };
    Box::new(OpenCvSource::new(
        target,
        OpenCvOptions {
            width: args.width,
            height: args.height,
            fps: args.fps,
            fourcc,
        },
    ))
}
