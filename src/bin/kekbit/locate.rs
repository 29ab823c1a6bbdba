//! Finding the journal a command was given, before anything is opened or created: each way
//! of giving something else (a missing path, a file, an empty directory, a prevalent store's
//! directory, files that only look like segments) gets its own message saying what to do,
//! and the same exit status in every command.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use kekbit::core::{HEADER_LEN, MAGIC};

use crate::status::{FAILED, NO_JOURNAL};
use crate::Failure;

/// Whether `name` is a segment file's name: 16 hexadecimal digits and `.kekbit`.
fn is_segment_name(name: &str) -> bool {
    name.strip_suffix(".kekbit")
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The files of `dir` named like segments, sorted.
fn segment_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| is_segment_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Whether `path` starts with a whole segment header's worth of bytes and the kekbit magic.
fn has_header(path: &Path) -> bool {
    let mut start = [0u8; HEADER_LEN];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok_and(|()| start.starts_with(&MAGIC))
}

/// What `path` is, when it is no directory: `None` if it is one.
fn not_a_directory(path: &Path) -> Result<Option<Failure>, Failure> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(None),
        Ok(_) => Ok(Some(Failure::new(
            format!(
                "{}: is a file, not a journal: a journal is a directory of segment files \
                 (*.kekbit)",
                path.display()
            ),
            NO_JOURNAL,
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(Failure::new(
            format!(
                "{}: no such directory: give a journal's directory, or create one with \
                 `kekbit append {} --create`",
                path.display(),
                path.display()
            ),
            NO_JOURNAL,
        ))),
        Err(e) => Err(Failure::new(format!("{}: {e}", path.display()), FAILED)),
    }
}

/// Checks that `dir` holds a journal: a directory with at least one file that starts like a
/// segment. Damage beyond that is for the command itself to find and report.
pub fn journal(dir: &Path) -> Result<(), Failure> {
    if let Some(failure) = not_a_directory(dir)? {
        return Err(failure);
    }
    let listing =
        |e: std::io::Error| Failure::new(format!("{}: listing: {e}", dir.display()), FAILED);
    let files = segment_files(dir).map_err(listing)?;
    if files.is_empty() {
        let inner = dir.join("journal");
        if segment_files(&inner).is_ok_and(|f| !f.is_empty()) {
            return Err(Failure::new(
                format!(
                    "{}: not a journal but a prevalent store's directory: its journal is {}",
                    dir.display(),
                    inner.display()
                ),
                NO_JOURNAL,
            ));
        }
        return Err(Failure::new(
            format!(
                "{}: not a kekbit journal: no segment files (*.kekbit) in it; create one with \
                 `kekbit append {} --create`",
                dir.display(),
                dir.display()
            ),
            NO_JOURNAL,
        ));
    }
    if !files.iter().any(|f| has_header(f)) {
        return Err(Failure::new(
            format!(
                "{}: not a kekbit journal: no segment header in its {} file(s) named like \
                 segments (the first, {}, is {} bytes; a segment starts with a {}-byte header \
                 and the kekbit magic)",
                dir.display(),
                files.len(),
                files[0].display(),
                std::fs::metadata(&files[0]).map_or(0, |m| m.len()),
                HEADER_LEN
            ),
            NO_JOURNAL,
        ));
    }
    Ok(())
}

/// Checks that `dir` can hold a new journal: a directory, or nothing yet.
pub fn new_journal(dir: &Path) -> Result<(), Failure> {
    match not_a_directory(dir)? {
        Some(failure) if dir.exists() => Err(failure),
        _ => Ok(()),
    }
}
