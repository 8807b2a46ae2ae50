//! The on-disk vocabulary of a session record. It is versioned apart from
//! the engine's in-memory events so the engine may change without making old
//! records unreadable: add kinds and optional fields, never rename.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::media::camera_check::CameraProblem;
use crate::proctor::{EngineEvent, Party, StreamState};

/// Version written into the session header.
pub const FORMAT_VERSION: u32 = 1;

/// One line of a record: when, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Milliseconds since the UNIX epoch.
    pub t: u64,
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// A student of the roster as recorded at session start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub id: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryKind {
    /// First line of a record, and again on every resume.
    Session {
        version: u32,
        name: String,
        proctor: String,
        roster: Vec<RosterEntry>,
        /// True when this proctor resumed an existing record.
        #[serde(default)]
        resumed: bool,
    },
    /// A student's stream changed state.
    State { student: String, state: StreamState },
    /// Someone not on the roster published this code.
    Unknown { student: String, code: String },
    Chat {
        student: String,
        from: Party,
        text: String,
    },
    Attention {
        student: String,
        from: Party,
        raised: bool,
    },
    /// Periodic stream figures (throttled by the writer's caller).
    Stats {
        student: String,
        fps: f32,
        width: u32,
        height: u32,
        kbps: f32,
        loss: f32,
    },
    /// A camera turned black or froze (`problem`), or recovered (`None`).
    Camera {
        student: String,
        #[serde(default)]
        problem: Option<CameraProblem>,
    },
    /// Another device tried to go live on this student's code.
    CodeConflict { student: String },
    /// A snapshot file, relative to the session directory.
    Snapshot {
        student: String,
        path: String,
        #[serde(default)]
        reason: String,
    },
    /// Something the proctor did (enlarge, filter, export, ...).
    Action {
        what: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        student: Option<String>,
    },
    /// The record was closed cleanly (absent after a crash).
    End,
}

/// Milliseconds since the UNIX epoch of a system time (0 before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

impl Entry {
    pub fn now(kind: EntryKind) -> Entry {
        Entry { t: now_ms(), kind }
    }

    /// The record entry for an engine event, if it is worth keeping.
    /// Frames and notices are not; stats are, and the caller throttles them.
    pub fn from_event(ev: &EngineEvent) -> Option<Entry> {
        let now = now_ms();
        let (t, kind) = match ev {
            EngineEvent::State {
                student,
                state,
                since,
            } => (
                unix_ms(*since),
                EntryKind::State {
                    student: student.0.clone(),
                    state: *state,
                },
            ),
            EngineEvent::Unknown { student, code } => (
                now,
                EntryKind::Unknown {
                    student: student.0.clone(),
                    code: code.clone(),
                },
            ),
            EngineEvent::Chat {
                student,
                from,
                text,
                at,
            } => (
                unix_ms(*at),
                EntryKind::Chat {
                    student: student.0.clone(),
                    from: *from,
                    text: text.clone(),
                },
            ),
            EngineEvent::Attention {
                student,
                from,
                raised,
                at,
            } => (
                unix_ms(*at),
                EntryKind::Attention {
                    student: student.0.clone(),
                    from: *from,
                    raised: *raised,
                },
            ),
            EngineEvent::Stats { student, stats } => (
                now,
                EntryKind::Stats {
                    student: student.0.clone(),
                    fps: stats.fps_received,
                    width: stats.width,
                    height: stats.height,
                    kbps: stats.bitrate_kbps,
                    loss: stats.packet_loss,
                },
            ),
            EngineEvent::Snapshot { student, path } => (
                now,
                EntryKind::Snapshot {
                    student: student.0.clone(),
                    path: path.clone(),
                    reason: String::new(),
                },
            ),
            EngineEvent::Camera { student, problem } => (
                now,
                EntryKind::Camera {
                    student: student.0.clone(),
                    problem: *problem,
                },
            ),
            EngineEvent::CodeConflict { student, at } => (
                unix_ms(*at),
                EntryKind::CodeConflict {
                    student: student.0.clone(),
                },
            ),
            EngineEvent::FrameReady { .. }
            | EngineEvent::Server { .. }
            | EngineEvent::Notice { .. } => return None,
        };
        Some(Entry { t, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_one_json_line() {
        let e = Entry {
            t: 1_700_000_000_123,
            kind: EntryKind::Chat {
                student: "s1".into(),
                from: Party::Student,
                text: "line\nbreak \u{1b}[31m".into(),
            },
        };
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            r#"{"t":1700000000123,"kind":"chat","student":"s1","from":"student","text":"line\nbreak \u001b[31m"}"#
        );
        assert_eq!(serde_json::from_str::<Entry>(&line).unwrap(), e);
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let e: Entry =
            serde_json::from_str(r#"{"t":5,"kind":"state","student":"a","state":"live","x":1}"#)
                .unwrap();
        assert_eq!(
            e.kind,
            EntryKind::State {
                student: "a".into(),
                state: StreamState::Live
            }
        );
    }
}
