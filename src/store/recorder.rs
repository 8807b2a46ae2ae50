//! The monitor's side of the record: opens (or resumes) the session, writes
//! the header, turns engine events into entries and throttles stats.

use std::collections::HashMap;

use super::SessionDir;
use super::entry::{Entry, EntryKind, FORMAT_VERSION, RosterEntry, now_ms};
use super::reader::load_record;
use super::replay::SessionSummary;
use super::writer::SessionWriter;
use crate::Result;
use crate::proctor::EngineEvent;
use crate::roster::Roster;

/// Stats are sampled into the record at most this often per student.
pub const STATS_EVERY_MS: u64 = 10_000;

/// Writes one proctor's record of a session.
pub struct Recorder {
    writer: SessionWriter,
    dir: SessionDir,
    last_stats: HashMap<String, u64>,
}

impl Recorder {
    /// Open the session: create it, or resume it if it has records already
    /// (then the summary of everything recorded so far is returned, for the
    /// dashboard to restore chat, attention queue and off-air times).
    pub fn start(
        dir: SessionDir,
        proctor: &str,
        roster: &Roster,
        on_error: impl Fn(String) + Send + 'static,
    ) -> Result<(Recorder, Option<SessionSummary>)> {
        let previous = dir
            .records()?
            .iter()
            .map(|p| load_record(p))
            .collect::<Result<Vec<_>>>()?;
        let resumed = !previous.is_empty();
        let summary = resumed.then(|| SessionSummary::from_records(&previous));
        dir.create()?;
        let writer = SessionWriter::open(&dir.record_path(proctor), on_error)?;
        writer.write(Entry::now(EntryKind::Session {
            version: FORMAT_VERSION,
            name: dir.name.clone(),
            proctor: proctor.to_string(),
            roster: roster
                .students
                .iter()
                .map(|s| RosterEntry {
                    id: s.id.clone(),
                    code: s.code.clone(),
                    name: s.name.clone(),
                })
                .collect(),
            resumed,
        }));
        Ok((
            Recorder {
                writer,
                dir,
                last_stats: HashMap::new(),
            },
            summary,
        ))
    }

    pub fn dir(&self) -> &SessionDir {
        &self.dir
    }

    /// Record an engine event if it belongs in the record.
    pub fn observe(&mut self, ev: &EngineEvent) {
        if let EngineEvent::Stats { student, .. } = ev {
            let now = now_ms();
            let last = self.last_stats.entry(student.0.clone()).or_insert(0);
            if now.saturating_sub(*last) < STATS_EVERY_MS {
                return;
            }
            *last = now;
        }
        if let Some(mut entry) = Entry::from_event(ev) {
            // Snapshot paths are kept relative to the session directory so
            // the directory can be moved or archived whole.
            if let EntryKind::Snapshot { path, reason, .. } = &mut entry.kind {
                if let Ok(rel) = std::path::Path::new(path.as_str()).strip_prefix(&self.dir.path) {
                    *path = rel.to_string_lossy().into_owned();
                }
                // Automatic snapshots end their file name with the reason.
                if let Some(stem) = std::path::Path::new(path.as_str()).file_stem() {
                    let stem = stem.to_string_lossy();
                    if let Some((_, r)) = stem.rsplit_once('-')
                        && ["attention", "black", "frozen", "periodic"].contains(&r)
                    {
                        *reason = r.to_string();
                    }
                }
            }
            self.writer.write(entry);
        }
    }

    /// Record something the proctor did.
    pub fn action(&self, what: &str, student: Option<&str>) {
        self.writer.write(Entry::now(EntryKind::Action {
            what: what.to_string(),
            student: student.map(str::to_string),
        }));
    }

    /// Wait until everything so far is on disk.
    pub fn sync(&self) {
        self.writer.sync();
    }

    /// End the record cleanly.
    pub fn close(self) {
        self.writer.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proctor::{Party, StreamState, StudentId};
    use std::time::SystemTime;

    #[test]
    fn resume_restores_chat_and_open_attention() {
        let root = crate::store::writer::tests::tempdir();
        let dir = SessionDir::new(&root, "exam-1");
        let roster = Roster::parse("s1\tAAAA\ns2\tBBBB\n").unwrap();
        let (mut r, prev) = Recorder::start(dir.clone(), "p", &roster, |_| {}).unwrap();
        assert!(prev.is_none());
        let id = StudentId("s1".into());
        r.observe(&EngineEvent::State {
            student: id.clone(),
            state: StreamState::Live,
            since: SystemTime::now(),
        });
        r.observe(&EngineEvent::Chat {
            student: id.clone(),
            from: Party::Student,
            text: "my camera fell".into(),
            at: SystemTime::now(),
        });
        r.observe(&EngineEvent::Attention {
            student: id.clone(),
            from: Party::Student,
            raised: true,
            at: SystemTime::now(),
        });
        r.sync();
        // Simulate a kill: no close(), the writer is dropped.
        drop(r);
        let (r2, prev) = Recorder::start(dir, "p", &roster, |_| {}).unwrap();
        let prev = prev.expect("resumed");
        let s1 = prev.student("s1").unwrap();
        assert_eq!(s1.chat[0].text, "my camera fell");
        assert_eq!(s1.open_attention().count(), 1);
        assert_eq!(prev.unclean, 1);
        r2.close();
    }
}
