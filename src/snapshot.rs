//! Snapshot files: naming, atomic writes and retention.
//!
//! A snapshot is written to a temporary file in the target directory,
//! fsynced, renamed over the final name and the directory fsynced, so a
//! reader (or a power cut) sees the old file or the new one, never half of
//! one. On any error the temporary file is removed. File names come only
//! from `--snapshot-name`, never from the network, and never leave
//! `--snapshot-dir`.
//!
//! The writes are synchronous on the loop's thread: a JPEG of some tens of
//! KiB takes well under a millisecond to write, and the fsync is optional
//! (`--snapshot-fsync off`) for slow SD cards.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::timefmt::UtcTime;

/// Placeholder for the sequence number in `--snapshot-name`.
const SEQ_PLACEHOLDER: &str = "{seq}";
/// Placeholder for the UTC time stamp in `--snapshot-name`.
const TS_PLACEHOLDER: &str = "{ts}";
/// Digits a sequence number is padded to, so names sort in order.
const SEQ_DIGITS: usize = 6;

/// Where and how snapshots are written.
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// `--snapshot-dir`.
    pub dir: PathBuf,
    /// `--snapshot-name`, with optional `{seq}` and `{ts}`.
    pub name_pattern: String,
    /// Whether to fsync the file and the directory.
    pub fsync: bool,
    /// Keep at most this many snapshot files (only meaningful with a
    /// placeholder in the name).
    pub keep: Option<usize>,
}

/// A snapshot that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSnapshot {
    /// The file's base name, as reported to clients.
    pub file_name: String,
    /// Its full path.
    pub path: PathBuf,
}

/// Writes snapshots according to [`SnapshotSettings`].
#[derive(Debug)]
pub struct SnapshotWriter {
    settings: SnapshotSettings,
    next_seq: u64,
    temp_counter: u64,
    last_saved: Option<SavedSnapshot>,
    /// The bytes of the latest snapshot, for `/snapshots/latest.jpg`: kept
    /// (shared with the frame) so serving it never reads the disk on the loop.
    latest_jpeg: Option<Rc<[u8]>>,
}

/// The largest file an earlier run left that is read back at start as the
/// latest snapshot; anything bigger is not a snapshot of ours.
const MAX_LEFTOVER_SNAPSHOT_BYTES: u64 = 8 * 1024 * 1024;

impl SnapshotWriter {
    /// Validates the settings, creates the directory if missing and finds
    /// where `{seq}` continues.
    pub fn new(settings: SnapshotSettings) -> Result<Self, String> {
        validate_pattern(&settings.name_pattern)?;
        fs::create_dir_all(&settings.dir)
            .map_err(|e| format!("cannot create snapshot dir {}: {e}", settings.dir.display()))?;
        let highest = highest_seq(&settings.dir, &settings.name_pattern);
        let latest_jpeg = leftover_snapshot(&settings);
        Ok(SnapshotWriter {
            settings,
            next_seq: highest + 1,
            temp_counter: 0,
            last_saved: None,
            latest_jpeg,
        })
    }

    /// The last snapshot written by this process.
    pub fn last_saved(&self) -> Option<&SavedSnapshot> {
        self.last_saved.as_ref()
    }

    /// The latest snapshot's bytes: the last one this process wrote, or,
    /// with a fixed name, the file an earlier run left there (read once at
    /// start).
    pub fn latest_jpeg(&self) -> Option<Rc<[u8]>> {
        self.latest_jpeg.clone()
    }

    /// Writes `jpeg` atomically under the next name. The error is a short
    /// reason for `ERR snapshot: <reason>`.
    pub fn write(&mut self, jpeg: &Rc<[u8]>) -> Result<SavedSnapshot, String> {
        let file_name = self.next_file_name();
        let path = self.settings.dir.join(&file_name);
        self.temp_counter += 1;
        let temp_path = self.settings.dir.join(format!(
            ".{file_name}.{}.{}.tmp",
            std::process::id(),
            self.temp_counter
        ));
        if let Err(error) = write_atomically(&temp_path, &path, jpeg, self.settings.fsync) {
            let _ = fs::remove_file(&temp_path);
            return Err(describe_io_error(&error));
        }
        if self.settings.name_pattern.contains(SEQ_PLACEHOLDER) {
            self.next_seq += 1;
        }
        if let Some(keep) = self.settings.keep {
            self.enforce_retention(keep);
        }
        let saved = SavedSnapshot { file_name, path };
        self.last_saved = Some(saved.clone());
        self.latest_jpeg = Some(jpeg.clone());
        Ok(saved)
    }

    fn next_file_name(&self) -> String {
        let mut name = self.settings.name_pattern.clone();
        if name.contains(SEQ_PLACEHOLDER) {
            name = name.replace(
                SEQ_PLACEHOLDER,
                &format!("{:0width$}", self.next_seq, width = SEQ_DIGITS),
            );
        }
        if name.contains(TS_PLACEHOLDER) {
            name = name.replace(TS_PLACEHOLDER, &UtcTime::now().compact());
        }
        name
    }

    /// Deletes the oldest snapshots beyond `keep`. Placeholders are padded
    /// and time stamps are ISO-like, so name order is age order.
    fn enforce_retention(&self, keep: usize) {
        let pattern = &self.settings.name_pattern;
        if !pattern.contains(SEQ_PLACEHOLDER) && !pattern.contains(TS_PLACEHOLDER) {
            return; // one fixed name: there is only ever one file
        }
        let Ok(entries) = fs::read_dir(&self.settings.dir) else {
            return;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| matches_pattern(pattern, name))
            .collect();
        names.sort();
        let excess = names.len().saturating_sub(keep);
        for name in &names[..excess] {
            if let Err(e) = fs::remove_file(self.settings.dir.join(name)) {
                log::warn!("snapshot retention could not remove {name}: {e}");
            }
        }
    }
}

fn write_atomically(temp_path: &Path, path: &Path, bytes: &[u8], fsync: bool) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp_path)?;
    file.write_all(bytes)?;
    if fsync {
        file.sync_all()?;
    }
    drop(file);
    fs::rename(temp_path, path)?;
    if fsync {
        if let Some(dir) = path.parent() {
            // Makes the rename itself durable. Some file systems refuse to
            // fsync a directory; the file is already safely written then.
            if let Ok(dir) = File::open(dir) {
                let _ = dir.sync_all();
            }
        }
    }
    Ok(())
}

/// A short, stable reason for the common failures, the OS text otherwise.
fn describe_io_error(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => "disk full".to_string(),
        Some(libc::EFBIG) => "file too large (size limit reached)".to_string(),
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied".to_string(),
        Some(libc::EROFS) => "read-only file system".to_string(),
        Some(libc::ENOENT) => "snapshot directory is gone".to_string(),
        _ => error.to_string(),
    }
}

/// A pattern must be a plain file name: no directories, nothing hidden
/// (temporary files start with a dot), at most one of each placeholder.
fn validate_pattern(pattern: &str) -> Result<(), String> {
    let bad = pattern.is_empty()
        || pattern.contains('/')
        || pattern.contains('\0')
        || pattern.starts_with('.')
        || pattern.matches(SEQ_PLACEHOLDER).count() > 1
        || pattern.matches(TS_PLACEHOLDER).count() > 1;
    if bad {
        Err(format!(
            "--snapshot-name {pattern:?} must be a plain file name (no '/', not starting with '.') \
             with at most one {{seq}} and one {{ts}}"
        ))
    } else {
        Ok(())
    }
}

/// Whether `name` could have been produced by `pattern`: literal parts
/// match exactly, each placeholder matches a non-empty run of digits and
/// the characters of a compact time stamp (`T`, `Z`, `.`).
fn matches_pattern(pattern: &str, name: &str) -> bool {
    let placeholder_at = [SEQ_PLACEHOLDER, TS_PLACEHOLDER]
        .iter()
        .filter_map(|p| pattern.find(p).map(|at| (at, p.len())))
        .min();
    let Some((at, placeholder_len)) = placeholder_at else {
        return pattern == name;
    };
    let (literal, after) = (&pattern[..at], &pattern[at + placeholder_len..]);
    let Some(rest) = name.strip_prefix(literal) else {
        return false;
    };
    let run = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, 'T' | 'Z' | '.')))
        .unwrap_or(rest.len());
    // Try every run length: a literal after the placeholder may itself
    // start with one of the run's characters (".jpg" after a time stamp).
    (1..=run).any(|len| matches_pattern(after, &rest[len..]))
}

/// One piece of a snapshot name pattern: a literal character, or a
/// placeholder, which stands for a non-empty run of [`is_run_char`]s.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PatternPiece {
    Literal(char),
    Run,
}

/// What a `{seq}` or `{ts}` expands to is made of these (see
/// [`matches_pattern`]).
fn is_run_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, 'T' | 'Z' | '.')
}

fn pattern_pieces(pattern: &str) -> Vec<PatternPiece> {
    let mut pieces = Vec::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        match [SEQ_PLACEHOLDER, TS_PLACEHOLDER]
            .into_iter()
            .find(|p| rest.starts_with(p))
        {
            Some(placeholder) => {
                pieces.push(PatternPiece::Run);
                rest = &rest[placeholder.len()..];
            }
            None => {
                pieces.push(PatternPiece::Literal(c));
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    pieces
}

/// Whether some file name could be produced by both patterns (as
/// `matches_pattern` reads them): then retention or `{seq}` continuation
/// of one camera would reach the other's files. Walks both patterns side
/// by side over every character either could produce next.
pub fn patterns_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (pattern_pieces(a), pattern_pieces(b));
    // A position is (piece index, whether that piece is a run that has
    // already produced at least one character).
    type Position = (usize, bool);
    let step = |pieces: &[PatternPiece], (at, in_run): Position, c: char| -> Vec<Position> {
        let mut next = Vec::new();
        if in_run {
            if is_run_char(c) {
                next.push((at, true));
            }
            // The run may end here: go on with the next piece.
            let after = (at + 1, false);
            if let Some(PatternPiece::Literal(l)) = pieces.get(after.0) {
                if *l == c {
                    next.push((after.0 + 1, false));
                }
            } else if pieces.get(after.0) == Some(&PatternPiece::Run) && is_run_char(c) {
                next.push((after.0, true));
            }
            return next;
        }
        match pieces.get(at) {
            Some(PatternPiece::Literal(l)) if *l == c => next.push((at + 1, false)),
            Some(PatternPiece::Run) if is_run_char(c) => next.push((at, true)),
            _ => {}
        }
        next
    };
    let finished = |pieces: &[PatternPiece], (at, in_run): Position| {
        at == pieces.len() || (in_run && at + 1 == pieces.len())
    };
    let alphabet: Vec<char> = a
        .iter()
        .chain(&b)
        .filter_map(|piece| match piece {
            PatternPiece::Literal(c) => Some(*c),
            PatternPiece::Run => None,
        })
        .chain("0TZ.".chars())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut frontier = vec![((0, false), (0, false))];
    while let Some((pa, pb)) = frontier.pop() {
        if !seen.insert((pa, pb)) {
            continue;
        }
        if finished(&a, pa) && finished(&b, pb) {
            return true;
        }
        for &c in &alphabet {
            for na in step(&a, pa, c) {
                for nb in step(&b, pb, c) {
                    frontier.push((na, nb));
                }
            }
        }
    }
    false
}

/// With a fixed name, the snapshot an earlier run left in the directory,
/// read once here at start (bounded) so that serving it later never touches
/// the disk. None with `{seq}`/`{ts}` names: the newest of those is this
/// run's business.
fn leftover_snapshot(settings: &SnapshotSettings) -> Option<Rc<[u8]>> {
    let pattern = &settings.name_pattern;
    if pattern.contains(SEQ_PLACEHOLDER) || pattern.contains(TS_PLACEHOLDER) {
        return None;
    }
    let path = settings.dir.join(pattern);
    let file = File::open(&path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_LEFTOVER_SNAPSHOT_BYTES {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    io::Read::read_to_end(
        &mut io::Read::take(file, MAX_LEFTOVER_SNAPSHOT_BYTES),
        &mut bytes,
    )
    .ok()?;
    Some(Rc::from(bytes))
}

/// The highest `{seq}` among existing files, 0 if none.
fn highest_seq(dir: &Path, pattern: &str) -> u64 {
    let Some((prefix, suffix)) = pattern.split_once(SEQ_PLACEHOLDER) else {
        return 0;
    };
    if prefix.contains(TS_PLACEHOLDER) || suffix.contains(TS_PLACEHOLDER) {
        return 0; // time stamps make names unique already
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(data: &[u8]) -> Rc<[u8]> {
        Rc::from(data)
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("camloop-snap-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn writer(dir: &Path, pattern: &str, keep: Option<usize>) -> SnapshotWriter {
        SnapshotWriter::new(SnapshotSettings {
            dir: dir.to_path_buf(),
            name_pattern: pattern.to_string(),
            fsync: true,
            keep,
        })
        .unwrap()
    }

    #[test]
    fn the_latest_snapshot_is_kept_in_memory_and_an_earlier_runs_file_read_once() {
        let dir = temp_dir("latest");
        let mut first_run = writer(&dir, "pic2.jpg", None);
        assert!(first_run.latest_jpeg().is_none());
        first_run.write(&bytes(b"from the first run")).unwrap();
        let restarted = writer(&dir, "pic2.jpg", None);
        fs::remove_file(dir.join("pic2.jpg")).unwrap();
        let latest = restarted.latest_jpeg().expect("read at start");
        assert_eq!(&latest[..], b"from the first run", "not read again later");
        let mut numbered = writer(&dir, "snap-{seq}.jpg", None);
        assert!(numbered.latest_jpeg().is_none());
        numbered.write(&bytes(b"new")).unwrap();
        assert_eq!(&numbered.latest_jpeg().unwrap()[..], b"new");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_classic_name_is_overwritten_in_place() {
        let dir = temp_dir("classic");
        let mut w = writer(&dir, "pic2.jpg", None);
        w.write(&bytes(b"first")).unwrap();
        let saved = w.write(&bytes(b"second")).unwrap();
        assert_eq!(saved.file_name, "pic2.jpg");
        assert_eq!(fs::read(dir.join("pic2.jpg")).unwrap(), b"second");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn seq_continues_from_the_highest_existing_number() {
        let dir = temp_dir("seq");
        let mut w = writer(&dir, "snap-{seq}.jpg", None);
        assert_eq!(w.write(&bytes(b"a")).unwrap().file_name, "snap-000001.jpg");
        fs::write(dir.join("snap-000041.jpg"), b"old").unwrap();
        let mut restarted = writer(&dir, "snap-{seq}.jpg", None);
        assert_eq!(
            restarted.write(&bytes(b"b")).unwrap().file_name,
            "snap-000042.jpg"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn retention_keeps_the_newest_n() {
        let dir = temp_dir("keep");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("unrelated.txt"), b"x").unwrap();
        let mut w = writer(&dir, "s{seq}.jpg", Some(3));
        for _ in 0..7 {
            w.write(&bytes(b"jpeg")).unwrap();
        }
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["s000005.jpg", "s000006.jpg", "s000007.jpg", "unrelated.txt"]
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn patterns_that_could_escape_the_directory_are_refused() {
        for bad in ["../x.jpg", "a/b.jpg", ".hidden.jpg", "", "{seq}{seq}.jpg"] {
            assert!(validate_pattern(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_pattern("snap-{ts}-{seq}.jpg").is_ok());
    }

    #[test]
    fn patterns_overlap_when_one_file_name_fits_both() {
        assert!(patterns_overlap("pic2.jpg", "pic2.jpg"));
        assert!(!patterns_overlap("pic2.jpg", "pic2.cam1.jpg"));
        assert!(patterns_overlap("snap{seq}.jpg", "snap1{seq}.jpg"));
        assert!(patterns_overlap("snap{seq}.jpg", "snap7.jpg"));
        assert!(!patterns_overlap("snap-{seq}.jpg", "snap-{seq}.cam1.jpg"));
        assert!(!patterns_overlap("a-{seq}.jpg", "b-{seq}.jpg"));
        assert!(patterns_overlap("{ts}.jpg", "{seq}.jpg"));
        assert!(patterns_overlap("x{seq}{ts}.jpg", "x1.2.jpg"));
        assert!(
            !patterns_overlap("x{seq}.jpg", "x.jpg"),
            "a run is never empty"
        );
        assert!(patterns_overlap("p{seq}.cam1.jpg", "p{ts}.cam1.jpg"));
    }

    #[test]
    fn time_stamp_names_match_their_pattern() {
        assert!(matches_pattern(
            "snap-{ts}.jpg",
            "snap-20261127T064001.123Z.jpg"
        ));
        assert!(matches_pattern("{seq}.jpg", "000012.jpg"));
        assert!(!matches_pattern("snap-{ts}.jpg", "snap-.jpg"));
        assert!(!matches_pattern("snap-{seq}.jpg", "other-000001.jpg"));
    }
}
