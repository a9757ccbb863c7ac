//! Finding the descriptor a library opened for a device, so the event loop
//! can watch it.
//!
//! OpenCV opens `/dev/videoN` itself (nonblocking) and does not hand out
//! the descriptor. Listing `/proc/self/fd` before and after the open and
//! taking the new entry whose link points at the device finds it. Built
//! always (it is plain Linux), so it is tested without OpenCV or a camera.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::io::RawFd;
use std::path::{Path, PathBuf};

/// The process's open descriptors now.
pub fn open_descriptors() -> BTreeSet<RawFd> {
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// The descriptor opened since `before` whose `/proc/self/fd` link points
/// at `path` (symbolic links in `path` resolved, so `/dev/v4l/by-id/…`
/// works). None if there is none, or more than one.
pub fn descriptor_opened_for(path: &Path, before: &BTreeSet<RawFd>) -> Option<RawFd> {
    let wanted = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut found = open_descriptors()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .filter(|fd| link_target(*fd).is_some_and(|target| target == wanted));
    let first = found.next()?;
    // Two new descriptors on the same device: cannot tell which one grabs.
    found.next().is_none().then_some(first)
}

fn link_target(fd: RawFd) -> Option<PathBuf> {
    fs::read_link(format!("/proc/self/fd/{fd}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;

    /// What `descriptor_opened_for` says in four cases, with the
    /// descriptors it should name: a new descriptor on the path among
    /// unrelated ones, the same after a later snapshot (not new), through
    /// a symbolic link, and with a second new one on it (ambiguous).
    fn four_cases(dir: &Path) -> ([Option<RawFd>; 4], [Option<RawFd>; 4]) {
        let path = dir.join("device");
        fs::write(&path, b"x").unwrap();
        let other = dir.join("other");
        fs::write(&other, b"y").unwrap();
        let link = dir.join("link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&path, &link).unwrap();

        let before = open_descriptors();
        let _unrelated = fs::File::open(&other).unwrap();
        let opened = fs::File::open(&path).unwrap();
        let found = descriptor_opened_for(&path, &before);
        let not_new = descriptor_opened_for(&path, &open_descriptors());
        let through_link = descriptor_opened_for(&link, &before);
        let _again = fs::File::open(&path).unwrap();
        let ambiguous = descriptor_opened_for(&path, &before);
        let fd = Some(opened.as_raw_fd());
        (
            [found, not_new, through_link, ambiguous],
            [fd, None, fd, None],
        )
    }

    #[test]
    fn the_descriptor_opened_for_a_known_path_is_found() {
        let dir = std::env::temp_dir().join(format!("camloop-fd-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // Other tests open and close descriptors in this process at the
        // same time: one of theirs closed between the snapshot and an open
        // here can hand its number over, and an old number is not "new".
        // The cases hold on a quiet attempt, and a broken function fails
        // every attempt.
        let mut outcome = four_cases(&dir);
        for _ in 0..5 {
            if outcome.0 == outcome.1 {
                break;
            }
            outcome = four_cases(&dir);
        }
        let _ = fs::remove_dir_all(&dir);
        let (got, wanted) = outcome;
        assert_eq!(got, wanted, "new, not new, through a link, ambiguous");
    }
}
