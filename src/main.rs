//! The `camloop` binary: parse the command line, set up logging, hand over
//! to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Info by default (start/stop, snapshots, camera state); RUST_LOG overrides.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match camloop::cli::parse_command_line() {
        Ok(cli) => camloop::cli::run(cli),
        Err(message) => {
            eprintln!("camloop: {message}");
            ExitCode::from(2)
        }
    }
}
