//! The command line: `serve`, `ctl` and `load`, parsed with clap.
//!
//! This module turns flags into the library's settings and calls into it;
//! it holds no server logic. Every flag documents its default.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::camera::setup::{self, CameraDefaults, CameraEntry, CameraPlan, FrameOptions};
use crate::camera::without_credentials;
use crate::protocol::Framing;
use crate::server::{ServedCamera, Server, ServerConfig};
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
    /// or be many viewers of an MJPEG stream (`--mjpeg URL --viewers N`) or of
    /// an RTSP stream (`--rtsp URL --viewers N`).
    Load(Box<crate::load::LoadArgs>),
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
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_addr_or_off)]
    pub http: Vec<Option<SocketAddr>>,
    /// RTSP address (`rtsp://HOST:8554/` the default camera, `/NAME` camera
    /// NAME; TCP interleaved); repeat for several, or `off`.
    #[arg(long, default_value = "127.0.0.1:8554", value_parser = parse_addr_or_off)]
    pub rtsp: Vec<Option<SocketAddr>>,
    /// Largest RTP payload in bytes: a longer NAL unit goes in FU-A
    /// fragments of at most this.
    #[arg(long, default_value_t = crate::rtsp::DEFAULT_RTP_MTU_BYTES as u32, value_parser = clap::value_parser!(u32).range(64..=65000))]
    pub rtp_mtu: u32,
    /// The two UDP ports (RTP, RTCP) of RTSP over UDP, shared by every
    /// session, on the first --rtsp address: `A-B`, `0` for any two free
    /// ports, or `off` (UDP `SETUP`s then get 461; so they do if the ports
    /// cannot be bound). MediaMTX pairs 8000-8001 with its 8554; camloop
    /// takes the two after its WebRTC port 8555.
    #[arg(long, default_value = "8556-8557", value_name = "A-B|0|off", value_parser = parse_udp_ports)]
    pub rtsp_udp_ports: UdpPortsFlag,
    /// WebRTC's UDP address (ICE-lite: one socket for every peer; browsers
    /// are offered it as their candidate), or `off`. A wildcard address
    /// binds every interface address (link-local ones left out). Default:
    /// the first --http address's host, port 8555 (off with --http off).
    #[arg(long, value_name = "ADDR|off", value_parser = parse_webrtc_addr)]
    pub webrtc: Option<WebrtcFlag>,
    /// An address browsers reach camloop at besides the bound ones (the
    /// router's public address under NAT with the port forwarded): offered
    /// as one more candidate, with the bound port; repeat for several.
    /// Default: none.
    #[arg(long, value_name = "IP")]
    pub webrtc_host: Vec<std::net::IpAddr>,
    /// WebRTC peers at most, connected or connecting: a new one past this
    /// gets 503.
    #[arg(long, default_value_t = crate::server::DEFAULT_WEBRTC_MAX_PEERS as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub webrtc_max_peers: u64,
    /// An RTSP session that sends no request and no RTCP for this many
    /// seconds is closed (the `timeout=` of its `Session` header). Keep it
    /// at 10 or more: GStreamer keeps a session alive by RTCP alone, about
    /// every 5 s (randomised up to about 7).
    #[arg(long, default_value_t = crate::rtsp::response::DEFAULT_SESSION_TIMEOUT_SECS, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub rtsp_session_timeout: u32,
    /// Camera, `[NAME=]SOURCE`; repeat for several (the first is the
    /// default one; unnamed ones are cam0, cam1, … by position). SOURCE:
    /// auto (device 0, else synthetic), synthetic, none, a device index, a
    /// video file, `exec:COMMAND ARGS…` (a child writing MJPEG to stdout),
    /// `rtsp://…` (through an ffmpeg child), `http://…` (an MJPEG stream or
    /// snapshot URL, read natively), `opencv:URL` (OpenCV, blocking),
    /// another URL or a GStreamer pipeline.
    #[arg(long, value_name = "[NAME=]SOURCE", default_value = "auto")]
    pub camera: Vec<String>,
    /// The config file's cameras (`camera = …` or `[[camera]]` tables),
    /// unless `--camera` was given on the command line.
    #[arg(skip)]
    pub camera_entries: Option<Vec<CameraEntry>>,
    /// Seconds a push camera (`exec:`, `rtsp://`, `http://`) may send nothing before it is
    /// restarted; a capture waiting for its frame gives up after as long.
    #[arg(long, default_value_t = 5.0)]
    pub camera_timeout: f64,
    /// Frames (JPEGs, H.264 access units) from a push camera larger than
    /// this many bytes are dropped.
    #[arg(long, default_value_t = crate::mjpeg::splitter::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// What a push camera (`exec:`, `rtsp://`) sends: `auto` tells H.264
    /// Annex-B from MJPEG by the first bytes; `mjpeg` makes `rtsp://`
    /// transcode to MJPEG instead of passing H.264 through.
    #[arg(long, default_value = "auto", value_parser = ["auto", "mjpeg", "h264"])]
    pub camera_codec: String,
    /// An H.264 camera's GOP cache (what a new viewer gets at once) holds at
    /// most this many bytes; a longer GOP is not cached until the next IDR.
    #[arg(long, default_value_t = crate::camera::h264_stream::DEFAULT_GOP_CACHE_BYTES)]
    pub gop_cache_bytes: usize,
    /// The child that turns an H.264 camera's access units into JPEGs for
    /// snapshots and MJPEG viewers: `exec:COMMAND …` reading H.264 on
    /// stdin and writing MJPEG to stdout.
    #[arg(long, value_name = "exec:COMMAND", default_value_t = format!("exec:{}", crate::camera::converter::DEFAULT_H264_DECODER))]
    pub h264_decoder: String,
    /// The child that turns an MJPEG camera's JPEGs into H.264 for
    /// `/stream.h264`: `exec:COMMAND …` reading MJPEG on stdin and writing
    /// H.264 Annex-B to stdout; `{fps}` is replaced by the camera's rate.
    #[arg(long, value_name = "exec:COMMAND", default_value_t = format!("exec:{}", crate::camera::converter::DEFAULT_H264_ENCODER))]
    pub h264_encoder: String,
    /// Seconds a converter keeps running after its last consumer left.
    #[arg(long, default_value_t = 10.0)]
    pub converter_linger: f64,
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
    /// Snapshot file name; `{seq}`, `{ts}` (UTC, milliseconds) and
    /// `{camera}` are replaced. Without `{camera}`, cameras after the first
    /// get `.NAME` before the extension (`pic2.cam1.jpg`).
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

/// `--rtsp-udp-ports`: the RTP and RTCP ports, `(0, 0)` for any two,
/// None for `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPortsFlag(pub Option<(u16, u16)>);

/// `A-B` (two different ports), `0` (any two), or `off`.
fn parse_udp_ports(value: &str) -> Result<UdpPortsFlag, String> {
    let usage = || format!("expected A-B (two ports), 0 or off, got {value:?}");
    match value {
        "off" => Ok(UdpPortsFlag(None)),
        "0" => Ok(UdpPortsFlag(Some((0, 0)))),
        _ => {
            let (rtp, rtcp) = value.split_once('-').ok_or_else(usage)?;
            let port = |text: &str| text.trim().parse::<u16>().map_err(|_| usage());
            let (rtp, rtcp) = (port(rtp)?, port(rtcp)?);
            if rtp == 0 || rtcp == 0 || rtp == rtcp {
                return Err(usage());
            }
            Ok(UdpPortsFlag(Some((rtp, rtcp))))
        }
    }
}

/// `--webrtc`: an address, or `off` (None).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebrtcFlag(pub Option<SocketAddr>);

fn parse_webrtc_addr(value: &str) -> Result<WebrtcFlag, String> {
    parse_addr_or_off(value).map(WebrtcFlag)
}

fn parse_addr_or_off(value: &str) -> Result<Option<SocketAddr>, String> {
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
/// the command line already sets, so the command line always wins. The
/// file's cameras are kept as entries (a table has more than a flag can
/// say); a `--camera` on the command line replaces the file's whole list.
pub fn parse_command_line() -> Result<Cli, String> {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    let matches = Cli::command().get_matches_from(&argv);
    let mut file_cameras = None;
    if let Some(("serve", serve)) = matches.subcommand() {
        if let Some(path) = serve.get_one::<PathBuf>("config") {
            let from_file = config_file(path, serve)?;
            let at = argv
                .iter()
                .position(|a| a == "serve")
                .map_or(argv.len(), |i| i + 1);
            argv.splice(at..at, from_file.flags);
            file_cameras = from_file.cameras;
        }
    }
    let matches = Cli::command().get_matches_from(&argv);
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    if let (Command::Serve(args), Some(("serve", serve))) = (&mut cli.command, matches.subcommand())
    {
        args.camera_entries = file_cameras;
        if args.print_config {
            print!("{}", effective_config(serve, args)?);
            std::process::exit(0);
        }
    }
    Ok(cli)
}

/// What a config file says: flags, and the cameras if it lists any.
struct ConfigFile {
    flags: Vec<OsString>,
    cameras: Option<Vec<CameraEntry>>,
}

/// Reads a TOML file: each key becomes a `--key=value` flag for `serve`,
/// except `camera`, which becomes camera entries.
fn config_file(path: &Path, given: &ArgMatches) -> Result<ConfigFile, String> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read --config {shown}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e| format!("--config {shown}: {e}"))?;
    let command = Cli::command();
    let serve = command
        .find_subcommand("serve")
        .ok_or("no serve subcommand")?;
    let mut flags = Vec::new();
    let mut cameras = None;
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let arg = serve
            .get_arguments()
            .find(|a| a.get_id() == id.as_str() && a.get_long().is_some())
            .filter(|_| !matches!(id.as_str(), "config" | "print_config"))
            .ok_or_else(|| format!("--config {shown}: unknown key {key:?}"))?;
        if given.value_source(&id) == Some(ValueSource::CommandLine) {
            continue; // the command line wins
        }
        if id == "camera" {
            cameras = Some(camera_entries(value).map_err(|e| format!("--config {shown}: {e}"))?);
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for value in values {
            let text = match value {
                toml::Value::Boolean(on) if !arg.get_action().takes_values() => {
                    if *on {
                        flags.push(OsString::from(format!("--{key}")));
                    }
                    continue;
                }
                toml::Value::Boolean(on) => if *on { "on" } else { "off" }.to_string(),
                other => flag_text(other).ok_or_else(|| {
                    format!("--config {shown}: {key} = {other} is not a value a flag takes")
                })?,
            };
            flags.push(OsString::from(format!("--{key}={text}")));
        }
    }
    Ok(ConfigFile { flags, cameras })
}

/// A TOML string or number as flag text.
fn flag_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        _ => None,
    }
}

/// The keys a `[[camera]]` table may have.
const CAMERA_TABLE_KEYS: &[&str] = &[
    "name",
    "source",
    "fps",
    "idle-fps",
    "width",
    "height",
    "jpeg-quality",
    "fourcc",
    "snapshot-name",
    "control",
    "camera-timeout",
    "camera-codec",
];

/// `camera = "[NAME=]SOURCE"`, `camera = ["…", …]` or `[[camera]]` tables
/// (an array may mix strings and tables).
fn camera_entries(value: &toml::Value) -> Result<Vec<CameraEntry>, String> {
    let items = match value {
        toml::Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    items
        .into_iter()
        .map(|item| match item {
            toml::Value::String(text) => Ok(CameraEntry::from_flag(text)),
            toml::Value::Table(table) => camera_table(table),
            other => Err(format!(
                "camera = {other}: give a string, an array of strings or [[camera]] tables"
            )),
        })
        .collect()
}

fn camera_table(table: &toml::Table) -> Result<CameraEntry, String> {
    if let Some(key) = table
        .keys()
        .find(|key| !CAMERA_TABLE_KEYS.contains(&key.as_str()))
    {
        return Err(format!(
            "[[camera]]: unknown key {key:?} (known: {})",
            CAMERA_TABLE_KEYS.join(", ")
        ));
    }
    let text = |key: &str| -> Result<Option<String>, String> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("[[camera]] {key} = {other}: must be a string")),
        }
    };
    let number = |key: &str, range: std::ops::RangeInclusive<i64>| -> Result<Option<i64>, String> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if range.contains(n) => Ok(Some(*n)),
            Some(other) => Err(format!(
                "[[camera]] {key} = {other}: must be an integer in {}..={}",
                range.start(),
                range.end()
            )),
        }
    };
    let source = text("source")?.ok_or("[[camera]]: every table needs a source")?;
    let control = match table.get("control") {
        None => None,
        Some(toml::Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(format!("[[camera]] control: {other} is not \"NAME=VALUE\"")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(toml::Value::String(s)) => Some(vec![s.clone()]),
        Some(other) => Err(format!(
            "[[camera]] control = {other}: give [\"NAME=VALUE\", …]"
        ))?,
    };
    let camera_timeout = match table.get("camera-timeout") {
        None => None,
        Some(toml::Value::Integer(n)) => Some(*n as f64),
        Some(toml::Value::Float(x)) => Some(*x),
        Some(other) => Err(format!("[[camera]] camera-timeout = {other}: give seconds"))?,
    };
    Ok(CameraEntry {
        name: text("name")?,
        source,
        fps: number("fps", 1..=240)?.map(|n| n as u32),
        idle_fps: number("idle-fps", 1..=240)?.map(|n| n as u32),
        width: number("width", 16..=8192)?.map(|n| n as u32),
        height: number("height", 16..=8192)?.map(|n| n as u32),
        jpeg_quality: number("jpeg-quality", 1..=100)?.map(|n| n as u8),
        fourcc: text("fourcc")?,
        snapshot_name: text("snapshot-name")?,
        control,
        camera_timeout,
        codec: text("camera-codec")?,
    })
}

/// The effective `serve` settings as TOML, read back from clap so that
/// every flag (with its default) is listed and none can be forgotten; the
/// cameras last, as `[[camera]]` tables (each with its name, source and
/// the settings it gives itself). Loading the output back gives the same.
fn effective_config(serve: &ArgMatches, args: &ServeArgs) -> Result<String, String> {
    let command = Cli::command();
    let mut out = String::from("# camloop serve: effective configuration\n");
    let Some(serve_command) = command.find_subcommand("serve") else {
        return Ok(out);
    };
    for arg in serve_command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if matches!(id, "config" | "print_config" | "help" | "camera") {
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
    let entries = camera_entries_of(args);
    let plans = setup::plan_cameras(&entries, &camera_defaults(args)?)?;
    for (entry, plan) in entries.iter().zip(&plans) {
        out.push_str(&camera_table_text(entry, plan));
    }
    Ok(out)
}

/// One `[[camera]]` table: the resolved name, the source, and what the
/// entry set itself.
fn camera_table_text(entry: &CameraEntry, plan: &CameraPlan) -> String {
    let quoted = |text: &str| toml::Value::String(text.to_string()).to_string();
    let mut table = format!(
        "\n[[camera]]\nname = {}\nsource = {}\n",
        quoted(&plan.name),
        quoted(&entry.source)
    );
    let numbers = [
        ("fps", entry.fps.map(i64::from)),
        ("idle-fps", entry.idle_fps.map(i64::from)),
        ("width", entry.width.map(i64::from)),
        ("height", entry.height.map(i64::from)),
        ("jpeg-quality", entry.jpeg_quality.map(i64::from)),
    ];
    for (key, value) in numbers {
        if let Some(value) = value {
            table.push_str(&format!("{key} = {value}\n"));
        }
    }
    for (key, value) in [
        ("fourcc", &entry.fourcc),
        ("snapshot-name", &entry.snapshot_name),
        ("camera-codec", &entry.codec),
    ] {
        if let Some(value) = value {
            table.push_str(&format!("{key} = {}\n", quoted(value)));
        }
    }
    if let Some(seconds) = entry.camera_timeout {
        table.push_str(&format!(
            "camera-timeout = {}\n",
            toml::Value::Float(seconds)
        ));
    }
    if let Some(control) = &entry.control {
        let items: Vec<String> = control.iter().map(|c| quoted(c)).collect();
        table.push_str(&format!("control = [{}]\n", items.join(", ")));
    }
    table
}

/// The cameras to run: the config file's, unless the command line gave
/// `--camera` (clap then left `camera_entries` unset).
fn camera_entries_of(args: &ServeArgs) -> Vec<CameraEntry> {
    match &args.camera_entries {
        Some(entries) => entries.clone(),
        None => args
            .camera
            .iter()
            .map(|t| CameraEntry::from_flag(t))
            .collect(),
    }
}

/// The global flags as every camera's defaults.
fn camera_defaults(args: &ServeArgs) -> Result<CameraDefaults, String> {
    Ok(CameraDefaults {
        frames: FrameOptions {
            fps: args.fps,
            idle_fps: args.idle_fps,
            width: args.width,
            height: args.height,
            jpeg_quality: args.jpeg_quality,
            fourcc: args.fourcc.clone(),
        },
        snapshot_name: args.snapshot_name.clone(),
        control: args.control.clone(),
        camera_timeout: args.camera_timeout,
        max_frame_bytes: args.max_frame_bytes,
        codec: args.camera_codec.clone(),
        gop_cache_bytes: args.gop_cache_bytes,
        converters: converter_settings(args)?,
    })
}

/// `--h264-decoder`, `--h264-encoder` (the `exec:` prefix optional, as
/// the words after it are what runs) and `--converter-linger`, checked
/// at start: a command that does not split into words is an error now,
/// not a warning at every use.
fn converter_settings(
    args: &ServeArgs,
) -> Result<crate::camera::converter::ConverterSettings, String> {
    let command = |flag: &str, text: &str| -> Result<String, String> {
        let command = text.strip_prefix("exec:").unwrap_or(text);
        crate::camera::child::split_command(command).map_err(|e| format!("{flag}: {e}"))?;
        Ok(command.to_string())
    };
    let linger = std::time::Duration::try_from_secs_f64(args.converter_linger).map_err(|_| {
        format!(
            "--converter-linger {}: needs a number of seconds, 0 or more",
            args.converter_linger
        )
    })?;
    Ok(crate::camera::converter::ConverterSettings {
        decoder: command("--h264-decoder", &args.h264_decoder)?,
        encoder: command("--h264-encoder", &args.h264_encoder)?,
        linger,
    })
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

/// WebRTC's UDP port when `--webrtc` is not given: the one after RTSP's
/// 8554, as camera-streamer and MediaMTX use 8554/8555-ish pairs.
const DEFAULT_WEBRTC_PORT: u16 = 8555;

/// `camloop serve`: build the parts, bind, print the listening line, run.
pub fn serve(args: &ServeArgs) -> Result<(), String> {
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => Some(read_token_file(path)?),
        (None, None) => None,
    };
    let http_addrs: Vec<SocketAddr> = args.http.iter().flatten().copied().collect();
    let rtsp_addrs: Vec<SocketAddr> = args.rtsp.iter().flatten().copied().collect();
    #[cfg(feature = "opencv")]
    {
        crate::camera::opencv_source::quiet_opencv_logging();
        crate::camera::opencv_source::single_threaded_opencv();
    }
    let plans = setup::plan_cameras(&camera_entries_of(args), &camera_defaults(args)?)?;
    let mut cameras = Vec::with_capacity(plans.len());
    for plan in &plans {
        let snapshots = SnapshotWriter::new(SnapshotSettings {
            dir: args.snapshot_dir.clone(),
            name_pattern: plan.snapshot_name.clone(),
            fsync: args.snapshot_fsync,
            keep: args.snapshot_keep,
        })?;
        let camera = setup::build_camera(plan)?;
        log::info!(
            "camera {}: {} (snapshots {})",
            plan.name,
            without_credentials(&plan.source),
            plan.snapshot_name
        );
        cameras.push(ServedCamera::new(camera, snapshots));
    }
    let config = ServerConfig {
        control_addrs: args.listen.clone(),
        unix_path: args.unix.clone(),
        http_addrs,
        rtsp_addrs,
        rtsp_session_timeout: Duration::from_secs(u64::from(args.rtsp_session_timeout)),
        rtp_mtu_bytes: args.rtp_mtu as usize,
        rtsp_udp_ports: args.rtsp_udp_ports.0,
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
        webrtc_addr: match &args.webrtc {
            Some(WebrtcFlag(addr)) => *addr,
            None => args
                .http
                .iter()
                .flatten()
                .next()
                .map(|http| SocketAddr::new(http.ip(), DEFAULT_WEBRTC_PORT)),
        },
        webrtc_explicit: args.webrtc.is_some(),
        webrtc_hosts: args.webrtc_host.clone(),
        webrtc_max_peers: args.webrtc_max_peers as usize,
    };
    let mut server = Server::bind(config, cameras).map_err(|e| e.to_string())?;
    let listening = server.listening();
    println!("listening {listening}");
    // Tests and scripts wait for this line; make sure it is out now.
    let _ = std::io::stdout().flush();
    crate::sys::notify_systemd("READY=1");
    log::info!("camloop {} serving {listening}", env!("CARGO_PKG_VERSION"));
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
