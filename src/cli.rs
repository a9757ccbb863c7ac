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

use crate::camera::exec::ExecSource;
use crate::camera::http_source::HttpSource;
use crate::camera::pipeline::{Camera, CameraSettings};
use crate::camera::push::PushSource;
use crate::camera::synthetic::SyntheticSource;
use crate::camera::{without_credentials, FrameSource};
use crate::protocol::Framing;
use crate::server::{Server, ServerConfig};
use crate::snapshot::{SnapshotSettings, SnapshotWriter};

/// `--framing`: the CLI's spelling of [`Framing`], which stays free of clap
/// (the protocol module is sans-IO and depends on nothing).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingArg {
    /// Raw until a read contains a `\n`, line mode from that read on.
    Auto,
    /// Every request is one `\n`-terminated line.
    Line,
    /// Every `read()` (at most 1024 bytes) is one message.
    Raw,
}

impl From<FramingArg> for Framing {
    fn from(arg: FramingArg) -> Framing {
        match arg {
            FramingArg::Auto => Framing::Auto,
            FramingArg::Line => Framing::Line,
            FramingArg::Raw => Framing::Raw,
        }
    }
}

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
    /// Generate load against a line-protocol server (camloop, redis, memcached...),
    /// or be many viewers of an MJPEG stream (`--mjpeg URL --viewers N`).
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
    /// index, a video file, `exec:COMMAND ARGS…` (a child writing MJPEG to
    /// stdout), `rtsp://…` (through an ffmpeg child), `http://…` (an MJPEG
    /// stream or snapshot URL, read natively), `opencv:URL` (OpenCV,
    /// blocking), another URL or a GStreamer pipeline.
    #[arg(long, default_value = "auto")]
    pub camera: String,
    /// Seconds a push camera (`exec:`, `rtsp://`, `http://`) may send nothing before it is
    /// restarted; a capture waiting for its frame gives up after as long.
    #[arg(long, default_value_t = 5.0)]
    pub camera_timeout: f64,
    /// Frames from a push camera larger than this many bytes are dropped.
    #[arg(long, default_value_t = crate::mjpeg::splitter::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
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
    #[arg(long, value_enum, default_value_t = FramingArg::Auto)]
    pub framing: FramingArg,
    /// Require `auth <token>` from control clients (and the token over
    /// HTTP: `?token=`, Basic or Bearer). Default: none.
    #[arg(long)]
    pub token: Option<String>,
    /// Read the token from this file (first line) instead of the command
    /// line. Default: none.
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Most clients at once; default: the descriptor limit minus a reserve.
    #[arg(long)]
    pub max_clients: Option<usize>,
    /// Allow pages on this origin (`https://ha.example:8123`, or `*` for
    /// any) to read the stream, snapshots, /state, /capture and /controls: adds
    /// `Access-Control-Allow-Origin`; default: off.
    #[arg(long, value_name = "ORIGIN|*", value_parser = parse_cors_origin)]
    pub cors_origin: Option<String>,
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
    /// Answer 408 and close when a started HTTP request head is not complete
    /// within this many seconds (slowloris clients).
    #[arg(long, default_value_t = 10)]
    pub http_head_timeout: u64,
    /// Close an idle keep-alive HTTP connection after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub http_idle_timeout: u64,
    /// Set a camera control at start, e.g. `brightness=60`; repeat for
    /// several (`controls` on the control port lists what the camera has);
    /// default: none.
    #[arg(long, value_name = "NAME=VALUE")]
    pub control: Vec<String>,
}

/// `*`, or an origin as a browser sends it (`scheme://host[:port]`, no path).
fn parse_cors_origin(value: &str) -> Result<String, String> {
    let origin_like = value.split_once("://").is_some_and(|(scheme, host)| {
        !scheme.is_empty() && !host.is_empty() && !host.contains(['/', ' ', ','])
    });
    if value == "*" || origin_like {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{value:?} is not an origin: give `*` or `scheme://host[:port]`, e.g. http://homeassistant.local:8123"
        ))
    }
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
        Command::Load(args) => match crate::load::run_command(&args) {
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
        camera_timeout: camera_timeout(args.camera_timeout)?,
    };
    #[cfg(feature = "opencv")]
    {
        crate::camera::opencv_source::quiet_opencv_logging();
        crate::camera::opencv_source::single_threaded_opencv();
    }
    let mut camera = match push_source(args)? {
        Some(push) => Camera::new_push(push, settings, Instant::now()),
        None => Camera::new(build_source(args)?, settings, Instant::now()),
    };
    apply_start_controls(&mut camera, &args.control)?;
    let config = ServerConfig {
        control_addrs: args.listen.clone(),
        unix_path: args.unix.clone(),
        http_addrs,
        stream_stall_timeout: Duration::from_secs(args.stream_stall_timeout),
        output_stall_timeout: Duration::from_secs(args.output_stall_timeout),
        control_idle_timeout: args.idle_timeout.map(Duration::from_secs),
        http_head_timeout: Duration::from_secs(args.http_head_timeout.max(1)),
        http_idle_timeout: Duration::from_secs(args.http_idle_timeout.max(1)),
        framing: args.framing.into(),
        token,
        insecure_public: args.insecure_public,
        cors_origin: args.cors_origin.clone(),
        max_clients: args.max_clients,
    };
    let mut server = Server::bind(config, camera, snapshots).map_err(|e| e.to_string())?;
    let listening = server.listening();
    println!("listening {listening}");
    // Tests and scripts wait for this line; make sure it is out now.
    let _ = std::io::stdout().flush();
    crate::sys::notify_systemd("READY=1");
    log::info!("camloop {} serving {listening}", env!("CARGO_PKG_VERSION"));
    server.run().map_err(|e| format!("event loop failed: {e}"))
}

/// `--control NAME=VALUE`, in order: an unknown name or a value out of
/// range stops the start with a message naming it. A device that is not
/// open yet gets the (integer) values when it opens.
pub fn apply_start_controls(camera: &mut Camera, assignments: &[String]) -> Result<(), String> {
    use crate::camera::controls::{self, ControlError};
    for assignment in assignments {
        let (name, value) = controls::parse_assignment(assignment)?;
        match camera.set_control(name, &value) {
            Ok(control) => log::info!("camera control {}={}", control.name, control.value),
            Err(ControlError::Camera(reason)) => {
                let value: i64 = value
                    .parse()
                    .map_err(|_| format!("--control {assignment}: {value:?} is not an integer"))?;
                log::warn!("--control {assignment}: camera not open ({reason}); set when it opens");
                camera.remember_control(name, value);
            }
            Err(error) => return Err(format!("--control {assignment}: {error}")),
        }
    }
    Ok(())
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
/// `--camera-timeout`: a positive number of seconds.
fn camera_timeout(seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("--camera-timeout {seconds}: needs a positive number of seconds"))
}

/// The ffmpeg command an `rtsp://` camera means: TCP transport (UDP loses
/// packets on Wi-Fi), MJPEG out on stdout, decoding in the child.
pub fn rtsp_command(url: &str) -> String {
    let quoted = shell_words::quote(url);
    format!("ffmpeg -nostdin -loglevel error -rtsp_transport tcp -i {quoted} -f mjpeg -q:v 5 -")
}

/// The cameras that can wait, as push sources in the loop's poll; None
/// for the timed ones.
fn push_source(args: &ServeArgs) -> Result<Option<Box<dyn PushSource>>, String> {
    if args.camera.starts_with("http://") || args.camera.starts_with("https://") {
        // Native and nonblocking; `opencv:http://…` still reaches OpenCV.
        let source = HttpSource::parse(
            &args.camera,
            args.max_frame_bytes,
            Duration::from_secs(1) / args.fps.max(1),
            camera_timeout(args.camera_timeout)?,
        )?;
        return Ok(Some(Box::new(source)));
    }
    let command = if let Some(command) = args.camera.strip_prefix("exec:") {
        command.to_string()
    } else if args.camera.starts_with("rtsp://") || args.camera.starts_with("rtsps://") {
        let command = rtsp_command(&args.camera);
        log::info!(
            "--camera {}: running `{}`",
            without_credentials(&args.camera),
            rtsp_command(&without_credentials(&args.camera))
        );
        command
    } else {
        return Ok(None);
    };
    let source = ExecSource::parse(&command, args.max_frame_bytes)?;
    Ok(Some(Box::new(source)))
}

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
            // `opencv:URL` reaches OpenCV's own (blocking) URL support, and
            // only by that name: a bare URL of another scheme would block
            // the loop without the user having asked for it.
            let spec = match spec.strip_prefix("opencv:") {
                Some(spec) => spec,
                None if spec.contains("://") && !spec.contains('!') => {
                    let shown = without_credentials(spec);
                    return Err(format!(
                        "--camera {shown}: camloop reads http:// and rtsp:// cameras itself; \
                         for OpenCV's own (blocking) client write opencv:{shown}, or run \
                         'exec:ffmpeg -nostdin -loglevel error -i {shown} -c copy -f mjpeg -'"
                    ));
                }
                None => spec,
            };
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
