//! The `camloop` binary: parse the command line, set up logging, hand over
//! to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = camloop::cli::Cli::parse();
    // Info by default (start/stop, snapshots, camera state); RUST_LOG overrides.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    camloop::cli::run(cli)
}
