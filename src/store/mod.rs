//! The session record: everything the proctor saw, written as it happens so
//! that a crash of the dashboard loses at most the last half second.
//!
//! # Format (measured choice: an append-only JSON-lines log)
//!
//! One directory per session under `$XDG_DATA_HOME/rtcproctor/sessions/NAME/`:
//!
//! - `record-PROCTOR.jsonl`: one [`Entry`] per line, appended by a writer
//!   thread that flushes and `fdatasync`s at most every [`SYNC_EVERY`]. Each
//!   proctor watching the same exam keeps its own file; `report` merges them.
//! - `snapshots/`: PNG files the record points to.
//!
//! Why not SQLite: the record is write-once, read-back-whole (resume,
//! report); an append-only log needs no C library, survives a kill with at
//! most a torn last line (which the reader drops), and is readable with any
//! text tool. See BENCHMARKS.md ("Session record") for the write cost.
//!
//! - [`entry`]: the on-disk vocabulary, versioned apart from engine events.
//! - [`writer`]: the background writer.
//! - [`recorder`]: the monitor's side: header, events in, stats throttled.
//! - [`reader`]: loading a record back, tolerant of a torn tail.
//! - [`replay`]: what a record means: per-student timelines, chat, attention.
//! - [`report`]: the HTML and CSV report (`rtcproctor report`).

pub mod entry;
pub mod reader;
pub mod recorder;
pub mod replay;
pub mod report;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use entry::{Entry, EntryKind};
pub use reader::load_record;
pub use recorder::Recorder;
pub use replay::{SessionSummary, StudentSummary};
pub use writer::SessionWriter;

use crate::{Error, Result};

/// The longest a written entry may wait before it is on disk.
pub const SYNC_EVERY: Duration = Duration::from_millis(500);

/// Where sessions live: `$XDG_DATA_HOME/rtcproctor/sessions` (or the
/// platform's equivalent); `RTCPROCTOR_DATA_DIR` overrides it (tests).
pub fn sessions_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RTCPROCTOR_DATA_DIR") {
        return PathBuf::from(dir).join("sessions");
    }
    directories::ProjectDirs::from("", "", "rtcproctor")
        .map(|d| d.data_dir().join("sessions"))
        .unwrap_or_else(|| std::env::temp_dir().join("rtcproctor-sessions"))
}

/// A session name safe as a directory name: letters, digits, `-`, `_`, `.`.
pub fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches(['-', '.']).to_string();
    if s.is_empty() { "session".into() } else { s }
}

/// The default session name: the roster file's stem and today's date, so
/// restarting the dashboard for the same exam on the same day resumes it.
pub fn default_session_name(roster: &Path, today: &str) -> String {
    let stem = roster
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "exam".into());
    sanitize_name(&format!("{stem}-{today}"))
}

/// Who this proctor is in the record: `user@host`, file-name safe.
pub fn proctor_name() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "proctor".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    sanitize_name(&format!("{user}@{host}")).replace('@', "-at-")
}

/// A session directory: the record files of every proctor, and snapshots.
#[derive(Debug, Clone)]
pub struct SessionDir {
    pub name: String,
    pub path: PathBuf,
}

impl SessionDir {
    /// The directory of session `name` under `root` (not created).
    pub fn new(root: &Path, name: &str) -> SessionDir {
        let name = sanitize_name(name);
        SessionDir {
            path: root.join(&name),
            name,
        }
    }

    /// Find a session by name in the default place, or take a path to a
    /// session directory or a single record file.
    pub fn locate(name_or_path: &str) -> Result<Vec<PathBuf>> {
        let p = Path::new(name_or_path);
        let dir = if p.is_file() {
            return Ok(vec![p.to_path_buf()]);
        } else if p.is_dir() {
            p.to_path_buf()
        } else {
            sessions_dir().join(sanitize_name(name_or_path))
        };
        let records = SessionDir {
            name: name_or_path.into(),
            path: dir.clone(),
        }
        .records()?;
        if records.is_empty() {
            return Err(Error::Invalid(format!(
                "no session record found at \"{}\": give a session name (see {}), a session directory or a record-*.jsonl file",
                dir.display(),
                sessions_dir().display()
            )));
        }
        Ok(records)
    }

    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// This proctor's record file.
    pub fn record_path(&self, proctor: &str) -> PathBuf {
        self.path
            .join(format!("record-{}.jsonl", sanitize_name(proctor)))
    }

    pub fn snapshots(&self) -> PathBuf {
        self.path.join("snapshots")
    }

    /// Every proctor's record file in this session, sorted by name.
    pub fn records(&self) -> Result<Vec<PathBuf>> {
        let rd = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::file(&self.path, e)),
        };
        let mut out: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("record-") && n.ends_with(".jsonl"))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Create the directory and its snapshot folder.
    pub fn create(&self) -> Result<()> {
        private_dir(&self.snapshots()).map_err(|e| Error::file(&self.path, e))
    }
}

/// Create `dir` and missing parents readable by the owner only (0700 on
/// Unix): session records hold names, chat and camera snapshots, and a
/// shared or lost machine should not hand them to other accounts.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe() {
        assert_eq!(sanitize_name("Exam 1/../x"), "Exam-1-..-x");
        assert_eq!(sanitize_name("///"), "session");
        assert_eq!(
            default_session_name(Path::new("/a/final exam.csv"), "2026-11-26"),
            "final-exam-2026-11-26"
        );
    }
}
