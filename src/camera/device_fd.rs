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

    #[test]
    fn the_descriptor_opened_for_a_known_path_is_found() {
        let dir = std::env::temp_dir().join(format!("camloop-fd-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("device");
        fs::write(&path, b"x").unwrap();
        let other = dir.join("other");
        fs::write(&other, b"y").unwrap();

        let before = open_descriptors();
        let _unrelated = fs::File::open(&other).unwrap();
        let opened = fs::File::open(&path).unwrap();
        assert_eq!(
            descriptor_opened_for(&path, &before),
            Some(opened.as_raw_fd())
        );
        // Opened before the snapshot of descriptors: not "opened since".
        assert_eq!(descriptor_opened_for(&path, &open_descriptors()), None);
        // The path through a symbolic link is the same file.
        let link = dir.join("link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(
            descriptor_opened_for(&link, &before),
            Some(opened.as_raw_fd())
        );
        // Two new descriptors on it: ambiguous.
        let _again = fs::File::open(&path).unwrap();
        assert_eq!(descriptor_opened_for(&path, &before), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
