//! Bakes the git revision and the feature set into `camloop --version`, so a
//! binary found on a board says exactly what it is.

use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|rev| rev.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let opencv = if std::env::var_os("CARGO_FEATURE_OPENCV").is_some() {
        "with OpenCV"
    } else {
        "without OpenCV"
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=CAMLOOP_VERSION={version} (git {revision}, {opencv})");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
