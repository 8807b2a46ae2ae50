//! The background writer of a session record.
//!
//! Callers hand entries to [`SessionWriter::write`], which never blocks on
//! the disk: a dedicated thread appends them, flushes and `fdatasync`s at
//! most every [`super::SYNC_EVERY`], so a crash or kill loses at most that
//! much. A disk error (full disk, read-only directory) is reported once on
//! the error channel; the dashboard keeps running and the writer keeps
//! trying, so the record resumes when space comes back.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::SYNC_EVERY;
use super::entry::{Entry, EntryKind};
use crate::{Error, Result};

enum Op {
    Write(Entry),
    /// Flush and sync now, then signal.
    Sync(mpsc::Sender<()>),
}

/// Appends entries to one record file from a background thread.
pub struct SessionWriter {
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl SessionWriter {
    /// Open (create or append to) a record file. Fails at once, with the
    /// path in the message, if the file cannot be opened: better to tell the
    /// proctor before the exam than to find an empty record after it.
    /// `on_error` receives one message per run of failures.
    pub fn open(path: &Path, on_error: impl Fn(String) + Send + 'static) -> Result<SessionWriter> {
        let file = open_append(path).map_err(|e| Error::file(path, e))?;
        let (tx, rx) = mpsc::channel::<Op>();
        let owned = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("session-record".into())
            .spawn(move || run(file, &owned, rx, on_error))
            .map_err(|e| Error::Other(anyhow::anyhow!("cannot start the record writer: {e}")))?;
        Ok(SessionWriter {
            tx: Some(tx),
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue an entry; returns at once.
    pub fn write(&self, entry: Entry) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Op::Write(entry));
        }
    }

    /// Wait until everything queued so far is on disk (or failed).
    pub fn sync(&self) {
        if let Some(tx) = &self.tx {
            let (done_tx, done_rx) = mpsc::channel();
            if tx.send(Op::Sync(done_tx)).is_ok() {
                let _ = done_rx.recv();
            }
        }
    }

    /// Write the `End` entry and stop the thread.
    pub fn close(mut self) {
        self.write(Entry::now(EntryKind::End));
        self.finish();
    }

    fn finish(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SessionWriter {
    /// Without `close` (a crash path), still flush what is queued, but do not
    /// claim a clean end.
    fn drop(&mut self) {
        self.finish();
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        super::private_dir(dir)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    // Owner-only, like the session directory (see `private_dir`).
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn run(file: File, path: &Path, rx: mpsc::Receiver<Op>, on_error: impl Fn(String)) {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    let mut last_sync = Instant::now();
    let mut dirty = false;
    // Entries that could not be written yet (disk full): retried before new
    // ones so the record stays in order. Bounded so a dead disk cannot eat
    // memory during a long exam; the oldest are kept (they are rarer: the
    // exam's start), and the count of dropped ones is reported.
    let mut backlog: Vec<u8> = Vec::new();
    const BACKLOG_MAX: usize = 8 * 1024 * 1024;
    let mut failing = false;
    let mut dropped = 0usize;

    let flush = |out: &mut BufWriter<File>, backlog: &mut Vec<u8>, failing: &mut bool| {
        let res = (|| -> std::io::Result<()> {
            if !backlog.is_empty() {
                out.write_all(backlog)?;
                backlog.clear();
            }
            out.flush()?;
            out.get_ref().sync_data()
        })();
        match res {
            Ok(()) => {
                if *failing {
                    on_error(format!(
                        "session record: writing to {} again",
                        path.display()
                    ));
                }
                *failing = false;
            }
            Err(e) => {
                if !*failing {
                    on_error(format!(
                        "session record: cannot write {}: {e} (free disk space or fix permissions; the dashboard keeps running and retries)",
                        path.display()
                    ));
                }
                *failing = true;
            }
        }
    };

    loop {
        let timeout = SYNC_EVERY.saturating_sub(last_sync.elapsed());
        let op = if dirty {
            rx.recv_timeout(timeout)
        } else {
            rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        };
        match op {
            Ok(Op::Write(entry)) => {
                let Ok(mut line) = serde_json::to_vec(&entry) else {
                    continue;
                };
                line.push(b'\n');
                if failing || !backlog.is_empty() {
                    if backlog.len() + line.len() <= BACKLOG_MAX {
                        backlog.extend_from_slice(&line);
                    } else {
                        dropped += 1;
                    }
                } else if out.write_all(&line).is_err() {
                    // BufWriter keeps what it could not write; remember the
                    // line and let the flush below report the error.
                    backlog.extend_from_slice(&line);
                    failing = true;
                }
                dirty = true;
            }
            Ok(Op::Sync(done)) => {
                flush(&mut out, &mut backlog, &mut failing);
                last_sync = Instant::now();
                dirty = failing;
                let _ = done.send(());
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                flush(&mut out, &mut backlog, &mut failing);
                if dropped > 0 {
                    on_error(format!(
                        "session record: {dropped} entries could not be written to {}",
                        path.display()
                    ));
                }
                return;
            }
        }
        if dirty && last_sync.elapsed() >= SYNC_EVERY {
            flush(&mut out, &mut backlog, &mut failing);
            last_sync = Instant::now();
            dirty = failing;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proctor::StreamState;
    use crate::store::reader::load_record;

    fn state(student: &str, state: StreamState) -> Entry {
        Entry::now(EntryKind::State {
            student: student.into(),
            state,
        })
    }

    #[test]
    fn entries_reach_the_disk_in_order() {
        let dir = tempdir();
        let path = dir.join("record-p.jsonl");
        let w = SessionWriter::open(&path, |_| {}).unwrap();
        for i in 0..100 {
            w.write(state(&format!("s{i}"), StreamState::Live));
        }
        w.sync();
        let rec = load_record(&path).unwrap();
        assert_eq!(rec.entries.len(), 100);
        assert!(
            matches!(&rec.entries[99].kind, EntryKind::State { student, .. } if student == "s99")
        );
        w.close();
        let rec = load_record(&path).unwrap();
        assert!(matches!(rec.entries.last().unwrap().kind, EntryKind::End));
    }

    #[cfg(unix)]
    #[test]
    fn records_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir().join("session");
        let path = dir.join("record-p.jsonl");
        let w = SessionWriter::open(&path, |_| {}).unwrap();
        w.close();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "session directory");
        assert_eq!(mode(&path), 0o600, "record file");
    }

    #[test]
    fn unwritable_place_is_a_clear_error() {
        let err = SessionWriter::open(Path::new("/proc/rtcproctor-nope/record.jsonl"), |_| {})
            .err()
            .unwrap();
        assert!(err.to_string().contains("/proc/rtcproctor-nope"), "{err}");
    }

    #[test]
    fn full_disk_is_reported_once_and_writing_goes_on() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = errors.clone();
        let w = SessionWriter::open(Path::new("/dev/full"), move |m| {
            sink.lock().unwrap().push(m)
        })
        .unwrap();
        for _ in 0..10 {
            w.write(state("a", StreamState::Live));
            w.sync();
        }
        w.close();
        let errors = errors.lock().unwrap();
        assert!(errors[0].contains("free disk space"), "{errors:?}");
        assert_eq!(
            errors.iter().filter(|m| m.contains("cannot write")).count(),
            1,
            "{errors:?}"
        );
    }

    pub(crate) fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "rtcproctor-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
