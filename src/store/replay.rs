//! What a record means: per-student timelines, off-air totals, attention
//! requests with response times, chat transcripts and snapshots. Used by the
//! report, and by the dashboard to resume a session.
//!
//! Several proctors' records of one exam merge here. A student counts as
//! live while any proctor received them (one proctor's network trouble is
//! not the student's fault). Lines from the student reach every proctor, so
//! identical ones close in time are kept once; proctors' own lines are
//! attributed to each proctor.

use std::collections::{BTreeMap, HashMap};

use super::entry::{Entry, EntryKind, RosterEntry};
use super::reader::Record;
use crate::proctor::{Party, StreamState};

/// Two student lines with the same text closer than this are one line.
const DEDUP_MS: u64 = 5_000;

/// One stretch of a student's timeline. `state: None` = no proctor was
/// watching (every dashboard was down).
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub state: Option<StreamState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatLine {
    pub t: u64,
    pub from: Party,
    /// Which proctor wrote it (for `from: Proctor`) or recorded it.
    pub proctor: String,
    pub text: String,
}

/// One attention request of a student, and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionRequest {
    pub raised: u64,
    /// When a proctor acknowledged it (or the student withdrew it).
    pub answered: Option<u64>,
    pub by: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub t: u64,
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StudentSummary {
    pub id: String,
    pub code: String,
    pub name: Option<String>,
    /// Not on the roster: published a code nobody expected.
    pub unknown: bool,
    pub timeline: Vec<Span>,
    pub chat: Vec<ChatLine>,
    pub attention: Vec<AttentionRequest>,
    /// Attention requests from proctors to this student.
    pub proctor_attention: Vec<u64>,
    pub snapshots: Vec<Snapshot>,
    /// Camera problems (black, frozen) and recoveries, in order.
    pub camera: Vec<(u64, Option<crate::media::camera_check::CameraProblem>)>,
    /// When another device tried to go live on this student's code.
    pub code_conflicts: Vec<u64>,
}

impl StudentSummary {
    fn new(r: &RosterEntry, unknown: bool) -> StudentSummary {
        StudentSummary {
            id: r.id.clone(),
            code: r.code.clone(),
            name: r.name.clone(),
            unknown,
            timeline: Vec::new(),
            chat: Vec::new(),
            attention: Vec::new(),
            proctor_attention: Vec::new(),
            snapshots: Vec::new(),
            camera: Vec::new(),
            code_conflicts: Vec::new(),
        }
    }

    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// Milliseconds spent in states matching `pred`.
    pub fn time_in(&self, pred: impl Fn(Option<StreamState>) -> bool) -> u64 {
        self.timeline
            .iter()
            .filter(|s| pred(s.state))
            .map(|s| s.end - s.start)
            .sum()
    }

    /// Time off-air while watched: not live, joining or stalled.
    pub fn off_air_ms(&self) -> u64 {
        self.time_in(|s| {
            matches!(
                s,
                Some(StreamState::OffAir | StreamState::Left | StreamState::Reconnecting)
            )
        })
    }

    pub fn live_ms(&self) -> u64 {
        self.time_in(|s| s == Some(StreamState::Live))
    }

    /// The state at the end of the record, and since when.
    pub fn last_state(&self) -> Option<(StreamState, u64)> {
        // Walk back over merged spans of the same state to find "since".
        let last = self.timeline.last()?;
        let state = last.state?;
        let mut since = last.start;
        for s in self.timeline.iter().rev().skip(1) {
            if s.state == Some(state) {
                since = s.start;
            } else {
                break;
            }
        }
        Some((state, since))
    }

    /// Requests nobody has answered yet, oldest first.
    pub fn open_attention(&self) -> impl Iterator<Item = &AttentionRequest> {
        self.attention.iter().filter(|a| a.answered.is_none())
    }
}

/// A whole session, merged from one or more proctors' records.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub name: String,
    pub proctors: Vec<String>,
    pub start: u64,
    pub end: u64,
    /// Roster order, then unknown publishers in order of appearance.
    pub students: Vec<StudentSummary>,
    /// Records that did not end cleanly (a crash or kill).
    pub unclean: usize,
    pub skipped_lines: usize,
}

impl SessionSummary {
    pub fn student(&self, id: &str) -> Option<&StudentSummary> {
        self.students.iter().find(|s| s.id == id)
    }

    /// Merge records into a summary. Records may come from several proctors
    /// and several runs (resumes) of each.
    pub fn from_records(records: &[Record]) -> SessionSummary {
        let mut name = String::new();
        let mut proctors: Vec<String> = Vec::new();
        let mut students: Vec<StudentSummary> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut unclean = 0;
        let mut skipped_lines = 0;

        // Tag each entry with its proctor; the proctor is named by the
        // record's Session entries.
        let mut tagged: Vec<(u64, usize, String, &Entry)> = Vec::new();
        for (ri, rec) in records.iter().enumerate() {
            skipped_lines += rec.skipped.len();
            let mut proctor = format!("record{}", ri + 1);
            if !matches!(rec.entries.last().map(|e| &e.kind), Some(EntryKind::End)) {
                unclean += 1;
            }
            for (seq, e) in rec.entries.iter().enumerate() {
                if let EntryKind::Session {
                    name: n,
                    proctor: p,
                    roster,
                    ..
                } = &e.kind
                {
                    if name.is_empty() {
                        name = n.clone();
                    }
                    proctor = p.clone();
                    if !proctors.contains(p) {
                        proctors.push(p.clone());
                    }
                    for r in roster {
                        if !index.contains_key(&r.id) {
                            index.insert(r.id.clone(), students.len());
                            students.push(StudentSummary::new(r, false));
                        }
                    }
                }
                tagged.push((e.t, ri * 1_000_000_000 + seq, proctor.clone(), e));
            }
        }
        // Stable merge by time; ties keep each record's own order.
        tagged.sort_by_key(|(t, order, _, _)| (*t, *order));

        let start = tagged.first().map(|t| t.0).unwrap_or(0);
        let end = tagged.last().map(|t| t.0).unwrap_or(start);

        // Per (proctor, student) current state; per proctor whether its
        // dashboard is up (between Session and End / next Session).
        let mut seen: HashMap<(String, String), StreamState> = HashMap::new();
        let mut up: BTreeMap<String, bool> = BTreeMap::new();
        let mut merged: HashMap<String, (u64, Option<StreamState>)> = HashMap::new();

        let ensure = |id: &str,
                      code: &str,
                      students: &mut Vec<StudentSummary>,
                      index: &mut HashMap<String, usize>|
         -> usize {
            *index.entry(id.to_string()).or_insert_with(|| {
                students.push(StudentSummary::new(
                    &RosterEntry {
                        id: id.to_string(),
                        code: code.to_string(),
                        name: None,
                    },
                    true,
                ));
                students.len() - 1
            })
        };

        for (t, _, proctor, e) in &tagged {
            let t = *t;
            match &e.kind {
                EntryKind::Session { .. } => {
                    // A (re)start: whatever this proctor saw before is stale.
                    seen.retain(|(p, _), _| p != proctor);
                    up.insert(proctor.clone(), true);
                }
                EntryKind::End => {
                    seen.retain(|(p, _), _| p != proctor);
                    up.insert(proctor.clone(), false);
                }
                EntryKind::State { student, state } => {
                    ensure(student, "", &mut students, &mut index);
                    seen.insert((proctor.clone(), student.clone()), *state);
                }
                EntryKind::Unknown { student, code } => {
                    let i = ensure(student, code, &mut students, &mut index);
                    if students[i].code.is_empty() {
                        students[i].code = code.clone();
                    }
                }
                EntryKind::Chat {
                    student,
                    from,
                    text,
                } => {
                    let i = ensure(student, "", &mut students, &mut index);
                    let chat = &mut students[i].chat;
                    let dup = *from == Party::Student
                        && chat.iter().rev().take(20).any(|c| {
                            c.from == Party::Student
                                && c.text == *text
                                && t.saturating_sub(c.t) <= DEDUP_MS
                                && c.proctor != *proctor
                        });
                    if !dup {
                        chat.push(ChatLine {
                            t,
                            from: *from,
                            proctor: proctor.clone(),
                            text: text.clone(),
                        });
                    }
                }
                EntryKind::Attention {
                    student,
                    from,
                    raised,
                } => {
                    let i = ensure(student, "", &mut students, &mut index);
                    let s = &mut students[i];
                    match (from, raised) {
                        (Party::Student, true) => {
                            let dup = s.attention.iter().rev().any(|a| {
                                a.answered.is_none() && t.saturating_sub(a.raised) <= DEDUP_MS
                            });
                            if !dup {
                                s.attention.push(AttentionRequest {
                                    raised: t,
                                    answered: None,
                                    by: None,
                                });
                            }
                        }
                        (_, false) => {
                            for a in s.attention.iter_mut().filter(|a| a.answered.is_none()) {
                                a.answered = Some(t);
                                a.by = Some(if *from == Party::Proctor {
                                    proctor.clone()
                                } else {
                                    "student".into()
                                });
                            }
                        }
                        (Party::Proctor, true) => s.proctor_attention.push(t),
                    }
                }
                EntryKind::Snapshot {
                    student,
                    path,
                    reason,
                } => {
                    let i = ensure(student, "", &mut students, &mut index);
                    students[i].snapshots.push(Snapshot {
                        t,
                        path: path.clone(),
                        reason: reason.clone(),
                    });
                }
                EntryKind::Camera { student, problem } => {
                    let i = ensure(student, "", &mut students, &mut index);
                    students[i].camera.push((t, *problem));
                }
                EntryKind::CodeConflict { student } => {
                    let i = ensure(student, "", &mut students, &mut index);
                    students[i].code_conflicts.push(t);
                }
                EntryKind::Stats { .. } | EntryKind::Action { .. } => {}
            }

            // Recompute the merged state of every student after this entry,
            // and close / open spans where it changed.
            let anyone_up = up.values().any(|u| *u);
            for s in students.iter_mut() {
                let now = if !anyone_up {
                    None
                } else {
                    let best = seen
                        .iter()
                        .filter(|((p, id), _)| id == &s.id && up.get(p).copied().unwrap_or(false))
                        .map(|(_, st)| *st)
                        .max_by_key(|st| rank(*st));
                    Some(best.unwrap_or(StreamState::OffAir))
                };
                let cur = merged.entry(s.id.clone()).or_insert((t, now));
                if cur.1 != now {
                    if t > cur.0 {
                        s.timeline.push(Span {
                            start: cur.0,
                            end: t,
                            state: cur.1,
                        });
                    }
                    *cur = (t, now);
                }
            }
        }
        for s in students.iter_mut() {
            // Always close the last span, even empty: it carries the state
            // the record ends in.
            if let Some((from, state)) = merged.get(&s.id) {
                s.timeline.push(Span {
                    start: *from,
                    end,
                    state: *state,
                });
            }
        }

        SessionSummary {
            name,
            proctors,
            start,
            end,
            students,
            unclean,
            skipped_lines,
        }
    }
}

/// Which state wins when proctors disagree: the most "present" one.
fn rank(s: StreamState) -> u8 {
    match s {
        StreamState::Live => 6,
        StreamState::Stalled => 5,
        StreamState::Joining => 4,
        StreamState::Reconnecting => 3,
        StreamState::Left => 2,
        StreamState::OffAir => 1,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    pub(crate) fn session(t: u64, proctor: &str, resumed: bool) -> Entry {
        Entry {
            t,
            kind: EntryKind::Session {
                version: 1,
                name: "exam".into(),
                proctor: proctor.into(),
                roster: vec![
                    RosterEntry {
                        id: "s1".into(),
                        code: "AAAA".into(),
                        name: Some("Ann".into()),
                    },
                    RosterEntry {
                        id: "s2".into(),
                        code: "BBBB".into(),
                        name: None,
                    },
                ],
                resumed,
            },
        }
    }

    pub(crate) fn at(t: u64, kind: EntryKind) -> Entry {
        Entry { t, kind }
    }

    pub(crate) fn st(student: &str, state: StreamState) -> EntryKind {
        EntryKind::State {
            student: student.into(),
            state,
        }
    }

    pub(crate) fn record(entries: Vec<Entry>) -> Record {
        Record {
            path: PathBuf::from("r"),
            entries,
            skipped: vec![],
            torn_tail: false,
        }
    }

    #[test]
    fn timeline_off_air_and_attention_response() {
        let rec = record(vec![
            session(1_000, "p1", false),
            at(1_000, st("s1", StreamState::Joining)),
            at(2_000, st("s1", StreamState::Live)),
            at(
                5_000,
                EntryKind::Attention {
                    student: "s1".into(),
                    from: Party::Student,
                    raised: true,
                },
            ),
            at(
                8_000,
                EntryKind::Attention {
                    student: "s1".into(),
                    from: Party::Proctor,
                    raised: false,
                },
            ),
            at(10_000, st("s1", StreamState::Left)),
            at(12_000, EntryKind::End),
        ]);
        let s = SessionSummary::from_records(&[rec]);
        assert_eq!(s.unclean, 0);
        let s1 = s.student("s1").unwrap();
        assert_eq!(s1.live_ms(), 8_000);
        assert_eq!(s1.off_air_ms(), 2_000);
        assert_eq!(s1.attention[0].answered, Some(8_000));
        assert_eq!(s1.attention[0].by.as_deref(), Some("p1"));
        // s2 never came: off-air from start to end.
        let s2 = s.student("s2").unwrap();
        assert_eq!(s2.off_air_ms(), 11_000);
        assert_eq!(
            s2.last_state().map(|x| x.0),
            None,
            "after End nobody watches"
        );
    }

    #[test]
    fn crash_gap_is_unobserved_and_resume_continues() {
        let rec = record(vec![
            session(0, "p1", false),
            at(0, st("s1", StreamState::Live)),
            at(4_000, st("s2", StreamState::Live)),
            // killed here; resumed at 10 s
            session(10_000, "p1", true),
            at(10_500, st("s1", StreamState::Live)),
            at(20_000, st("s1", StreamState::Stalled)),
        ]);
        let s = SessionSummary::from_records(&[rec]);
        assert_eq!(s.unclean, 1);
        let s1 = s.student("s1").unwrap();
        // Live 0..10000 (the record cannot know about the crash until the
        // resume), then off-air for 500 ms until the engine re-joined.
        assert_eq!(s1.live_ms(), 10_000 + 9_500);
        assert_eq!(s1.last_state(), Some((StreamState::Stalled, 20_000)));
    }

    #[test]
    fn two_proctors_merge_live_and_dedup_student_lines() {
        let chat = |t, p: Party, text: &str| {
            at(
                t,
                EntryKind::Chat {
                    student: "s1".into(),
                    from: p,
                    text: text.into(),
                },
            )
        };
        let a = record(vec![
            session(0, "pa", false),
            at(0, st("s1", StreamState::Live)),
            chat(1_000, Party::Student, "hello"),
            at(3_000, st("s1", StreamState::Reconnecting)),
            at(4_000, st("s1", StreamState::Live)),
            at(9_000, EntryKind::End),
        ]);
        let b = record(vec![
            session(0, "pb", false),
            at(0, st("s1", StreamState::Live)),
            chat(1_050, Party::Student, "hello"),
            chat(2_000, Party::Proctor, "hi from b"),
            at(9_000, EntryKind::End),
        ]);
        let s = SessionSummary::from_records(&[a, b]);
        assert_eq!(s.proctors, vec!["pa".to_string(), "pb".to_string()]);
        let s1 = s.student("s1").unwrap();
        assert_eq!(s1.live_ms(), 9_000, "b kept receiving while a reconnected");
        assert_eq!(s1.chat.len(), 2);
        assert_eq!(s1.chat[1].proctor, "pb");
    }

    #[test]
    fn unknown_publishers_are_listed() {
        let rec = record(vec![
            session(0, "p", false),
            at(
                100,
                EntryKind::Unknown {
                    student: "?ZZZ".into(),
                    code: "ZZZ".into(),
                },
            ),
            at(100, st("?ZZZ", StreamState::Live)),
        ]);
        let s = SessionSummary::from_records(&[rec]);
        let u = s.student("?ZZZ").unwrap();
        assert!(u.unknown);
        assert_eq!(u.code, "ZZZ");
    }
}
