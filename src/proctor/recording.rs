//! Between the engine and a front end: the session record, resume, camera
//! checks and automatic snapshots.
//!
//! [`attach`] takes the engine's handle and returns one of the same shape,
//! so the dashboard and headless mode do not know it is there. Its task:
//!
//! 1. On resume, first replays what the record already holds (chat lines,
//!    open attention requests) so the front end shows the exam as it was.
//! 2. Then, for every engine event: writes it to the record; keeps an
//!    off-air student's original "since" across a dashboard restart; runs
//!    the frozen/black camera check on each new picture and reports
//!    [`EngineEvent::Camera`]; asks for a snapshot when a student raises
//!    attention or the camera check fires; forwards the event.
//! 3. Every `snapshot_every`, asks for a snapshot of each live student.
//! 4. Records the proctor's actions as they pass to the engine.
//!
//! When the front end goes away the record is closed cleanly; when the
//! process is killed, at most the last half second is lost (the writer's
//! sync interval).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::{EngineCommand, EngineEvent, EngineHandle, Party, StreamState, StudentId};
use crate::media::camera_check::{CameraCheck, CameraCheckConfig, CameraProblem};
use crate::store::{Recorder, SessionSummary};

/// What the recording layer does besides recording.
#[derive(Debug, Clone)]
pub struct RecordingOptions {
    /// Save a snapshot when a student raises attention, or when another
    /// device tries to go live on their code (the picture shows who holds it).
    pub snapshot_on_attention: bool,
    /// Save a snapshot when a camera turns black or freezes.
    pub snapshot_on_camera: bool,
    /// Save a snapshot of every live student this often.
    pub snapshot_every: Option<Duration>,
    pub camera: CameraCheckConfig,
}

impl Default for RecordingOptions {
    fn default() -> Self {
        RecordingOptions {
            snapshot_on_attention: true,
            snapshot_on_camera: true,
            snapshot_every: None,
            camera: CameraCheckConfig::default(),
        }
    }
}

/// The record to write, and what it held before (when resuming); or why
/// there is none, worded for the proctor.
pub type OpenRecord = Result<(Recorder, Option<SessionSummary>), String>;

/// Put the recording layer between an engine and its front end. Without a
/// record (it could not be opened) camera checks and snapshots still work,
/// and the front end's first event says why nothing is recorded.
pub fn attach(engine: EngineHandle, record: OpenRecord, opts: RecordingOptions) -> EngineHandle {
    let (recorder, previous, problem) = match record {
        Ok((r, p)) => (Some(r), p, None),
        Err(e) => (None, None, Some(e)),
    };
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let EngineHandle {
        events,
        commands,
        frames,
        roster,
    } = engine;
    let snapshots = recorder
        .as_ref()
        .map(|r| r.dir().snapshots())
        .unwrap_or_else(|| std::env::temp_dir().join("rtcproctor-snapshots"));
    let tap = Tap {
        recorder,
        opts,
        frames: frames.clone(),
        to_engine: commands,
        out: ev_tx,
        snapshots,
        checks: HashMap::new(),
        live: HashMap::new(),
        resumed_since: HashMap::new(),
    };
    tokio::spawn(tap.run(events, cmd_rx, previous, problem));
    EngineHandle {
        events: ev_rx,
        commands: cmd_tx,
        frames,
        roster,
    }
}

struct Tap {
    recorder: Option<Recorder>,
    opts: RecordingOptions,
    frames: super::FrameSlots,
    to_engine: mpsc::Sender<EngineCommand>,
    out: mpsc::Sender<EngineEvent>,
    snapshots: PathBuf,
    checks: HashMap<StudentId, CameraCheck>,
    /// Students currently live (for periodic snapshots).
    live: HashMap<StudentId, ()>,
    /// Off-air students of the resumed record and since when: the first
    /// off-air report after a restart keeps that time.
    resumed_since: HashMap<StudentId, SystemTime>,
}

impl Tap {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<EngineEvent>,
        mut commands: mpsc::Receiver<EngineCommand>,
        previous: Option<SessionSummary>,
        problem: Option<String>,
    ) {
        if let Some(text) = problem {
            tracing::error!("{text}");
            if self.out.send(EngineEvent::Notice { text }).await.is_err() {
                return self.finish();
            }
        }
        if let Some(prev) = previous
            && !self.replay(&prev).await
        {
            return self.finish();
        }
        let period = self
            .opts
            .snapshot_every
            .unwrap_or(Duration::from_secs(3600 * 24 * 365));
        let mut periodic = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    if !self.on_event(ev).await {
                        break;
                    }
                }
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.on_command(&cmd);
                    if self.to_engine.send(cmd).await.is_err() {
                        break;
                    }
                }
                _ = periodic.tick(), if self.opts.snapshot_every.is_some() => {
                    let live: Vec<StudentId> = self.live.keys().cloned().collect();
                    for s in live {
                        self.snapshot(&s, "periodic").await;
                    }
                }
            }
        }
        // The front end is gone (quit) or the engine stopped: tell the
        // engine to leave politely, and close the record cleanly.
        let _ = self.to_engine.send(EngineCommand::Shutdown).await;
        self.finish();
    }

    fn finish(self) {
        if let Some(r) = self.recorder {
            r.close();
        }
    }

    /// Show the front end what the record holds. False if it is gone.
    async fn replay(&mut self, prev: &SessionSummary) -> bool {
        let mut events = Vec::new();
        let mut lines = 0;
        let mut open = 0;
        for s in &prev.students {
            let id = StudentId(s.id.clone());
            if s.unknown {
                events.push(EngineEvent::Unknown {
                    student: id.clone(),
                    code: s.code.clone(),
                });
            }
            for c in &s.chat {
                lines += 1;
                events.push(EngineEvent::Chat {
                    student: id.clone(),
                    from: c.from,
                    text: c.text.clone(),
                    at: from_ms(c.t),
                });
            }
            // Recorded paths are relative to the session directory.
            let session_dir = self.snapshots.parent().map(std::path::Path::to_path_buf);
            for snap in &s.snapshots {
                let path = match &session_dir {
                    Some(d) => d.join(&snap.path),
                    None => std::path::PathBuf::from(&snap.path),
                };
                events.push(EngineEvent::Snapshot {
                    student: id.clone(),
                    path: path.display().to_string(),
                });
            }
            for a in s.open_attention() {
                open += 1;
                events.push(EngineEvent::Attention {
                    student: id.clone(),
                    from: Party::Student,
                    raised: true,
                    at: from_ms(a.raised),
                });
            }
            if let Some((state, since)) = s.last_state()
                && matches!(state, StreamState::OffAir | StreamState::Left)
            {
                self.resumed_since.insert(id.clone(), from_ms(since));
            }
        }
        // Oldest first, as they happened.
        events.sort_by_key(|e| match e {
            EngineEvent::Chat { at, .. } | EngineEvent::Attention { at, .. } => *at,
            _ => UNIX_EPOCH,
        });
        events.push(EngineEvent::Notice {
            text: format!(
                "resumed session {}: {lines} chat line(s), {open} open attention request(s), {} proctor record(s)",
                prev.name,
                prev.proctors.len()
            ),
        });
        for ev in events {
            if self.out.send(ev).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Record, enrich and forward one engine event. False if the front end
    /// is gone.
    async fn on_event(&mut self, mut ev: EngineEvent) -> bool {
        if let Some(r) = self.recorder.as_mut() {
            r.observe(&ev);
        }
        let mut extra = Vec::new();
        match &mut ev {
            EngineEvent::State {
                student,
                state,
                since,
            } => {
                if *state == StreamState::Live {
                    self.live.insert(student.clone(), ());
                } else {
                    self.live.remove(student);
                    // A new stream starts a new camera history.
                    if let Some(c) = self.checks.get_mut(student) {
                        if c.problem().is_some() {
                            extra.push(EngineEvent::Camera {
                                student: student.clone(),
                                problem: None,
                            });
                        }
                        c.reset();
                    }
                }
                if let Some(first) = self.resumed_since.remove(student)
                    && matches!(state, StreamState::OffAir | StreamState::Left)
                {
                    *since = first;
                }
            }
            EngineEvent::Attention {
                student,
                from: Party::Student,
                raised: true,
                ..
            } if self.opts.snapshot_on_attention => {
                let s = student.clone();
                self.snapshot(&s, "attention").await;
            }
            EngineEvent::CodeConflict { student, .. } if self.opts.snapshot_on_attention => {
                let s = student.clone();
                self.snapshot(&s, "code-conflict").await;
            }
            EngineEvent::FrameReady { student } => {
                if let Some(frame) = self.frames.latest(student) {
                    let config = self.opts.camera;
                    let check = self
                        .checks
                        .entry(student.clone())
                        .or_insert_with(|| CameraCheck::new(config));
                    if let Some(problem) =
                        check.observe(&frame.rgb, frame.width, frame.height, frame.decoded_at)
                    {
                        extra.push(EngineEvent::Camera {
                            student: student.clone(),
                            problem,
                        });
                    }
                }
            }
            _ => {}
        }
        if self.out.send(ev).await.is_err() {
            return false;
        }
        for e in extra {
            if let Some(r) = self.recorder.as_mut() {
                r.observe(&e);
            }
            if let EngineEvent::Camera {
                student,
                problem: Some(problem),
            } = &e
                && self.opts.snapshot_on_camera
            {
                let (s, reason) = (student.clone(), camera_reason(Some(*problem)));
                self.snapshot(&s, reason).await;
            }
            if self.out.send(e).await.is_err() {
                return false;
            }
        }
        true
    }

    fn on_command(&self, cmd: &EngineCommand) {
        let Some(r) = self.recorder.as_ref() else {
            return;
        };
        match cmd {
            EngineCommand::Enlarge { student } => r.action(
                if student.is_some() {
                    "enlarge"
                } else {
                    "release"
                },
                student.as_ref().map(|s| s.0.as_str()),
            ),
            EngineCommand::AddStudents { students } => {
                for s in students {
                    r.action("add_student", Some(&s.id));
                }
            }
            EngineCommand::Shutdown => r.action("quit", None),
            EngineCommand::ReleaseCode { student } => r.action("release_code", Some(&student.0)),
            // Chat, attention and snapshots are recorded from the engine's
            // events, which say whether they reached the student.
            _ => {}
        }
    }

    async fn snapshot(&self, student: &StudentId, reason: &str) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let name = format!(
            "{}-{ms}-{reason}.png",
            crate::store::sanitize_name(&student.0)
        );
        let _ = self
            .to_engine
            .send(EngineCommand::Snapshot {
                student: student.clone(),
                path: self.snapshots.join(name),
            })
            .await;
    }
}

fn camera_reason(p: Option<CameraProblem>) -> &'static str {
    match p {
        Some(CameraProblem::Black) => "black",
        Some(CameraProblem::Frozen) => "frozen",
        None => "camera",
    }
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proctor::{Frame, FrameSlots};
    use crate::roster::Roster;
    use std::time::Instant;

    struct Fake {
        events: mpsc::Sender<EngineEvent>,
        commands: mpsc::Receiver<EngineCommand>,
        frames: FrameSlots,
    }

    fn fake() -> (Fake, EngineHandle) {
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let frames = FrameSlots::default();
        (
            Fake {
                events: ev_tx,
                commands: cmd_rx,
                frames: frames.clone(),
            },
            EngineHandle {
                events: ev_rx,
                commands: cmd_tx,
                frames,
                roster: Roster::default(),
            },
        )
    }

    async fn next(h: &mut EngineHandle) -> EngineEvent {
        tokio::time::timeout(Duration::from_secs(5), h.events.recv())
            .await
            .expect("an event in time")
            .expect("channel open")
    }

    #[tokio::test]
    async fn black_camera_is_reported_and_snapshotted_without_a_record() {
        let (mut engine, handle) = fake();
        let opts = RecordingOptions {
            camera: CameraCheckConfig {
                black_after: Duration::from_secs(1),
                frozen_after: Duration::from_secs(60),
            },
            ..Default::default()
        };
        let mut front = attach(handle, Err("no session record: disk full".into()), opts);
        assert!(
            matches!(next(&mut front).await, EngineEvent::Notice { text } if text.contains("disk full"))
        );
        let id = StudentId("s1".into());
        let t0 = Instant::now();
        for (seq, ms) in [0u64, 600, 1200].into_iter().enumerate() {
            engine.frames.publish(
                &id,
                Frame {
                    width: 80,
                    height: 60,
                    rgb: vec![2; 80 * 60 * 3],
                    seq: seq as u64,
                    decoded_at: t0 + Duration::from_millis(ms),
                },
            );
            engine
                .events
                .send(EngineEvent::FrameReady {
                    student: id.clone(),
                })
                .await
                .unwrap();
            assert!(matches!(
                next(&mut front).await,
                EngineEvent::FrameReady { .. }
            ));
        }
        assert_eq!(
            next(&mut front).await,
            EngineEvent::Camera {
                student: id.clone(),
                problem: Some(CameraProblem::Black)
            }
        );
        match tokio::time::timeout(Duration::from_secs(5), engine.commands.recv()).await {
            Ok(Some(EngineCommand::Snapshot { student, path })) => {
                assert_eq!(student, id);
                assert!(
                    path.display().to_string().ends_with("-black.png"),
                    "{path:?}"
                );
            }
            other => panic!("expected a snapshot request, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn resume_replays_chat_and_attention_and_keeps_off_air_since() {
        let root = crate::store::writer::tests::tempdir();
        let dir = crate::store::SessionDir::new(&root, "exam");
        let roster = Roster::parse("s1\tAAAA\ns2\tBBBB\n").unwrap();
        let (mut rec, _) = Recorder::start(dir.clone(), "p", &roster, |_| {}).unwrap();
        // Off-air since just after the first run started; the restarted
        // engine will report it off-air "since now".
        let long_ago = SystemTime::now() + Duration::from_millis(5);
        std::thread::sleep(Duration::from_millis(10));
        rec.observe(&EngineEvent::State {
            student: StudentId("s2".into()),
            state: StreamState::OffAir,
            since: long_ago,
        });
        std::thread::sleep(Duration::from_millis(50));
        rec.observe(&EngineEvent::Chat {
            student: StudentId("s1".into()),
            from: Party::Student,
            text: "hello".into(),
            at: SystemTime::now(),
        });
        rec.observe(&EngineEvent::Attention {
            student: StudentId("s1".into()),
            from: Party::Student,
            raised: true,
            at: SystemTime::now(),
        });
        let snap = dir.snapshots().join("s1-1-attention.png");
        rec.observe(&EngineEvent::Snapshot {
            student: StudentId("s1".into()),
            path: snap.display().to_string(),
        });
        rec.sync();
        drop(rec); // killed

        let record = Recorder::start(dir, "p", &roster, |_| {}).map_err(|e| e.to_string());
        let (engine, handle) = fake();
        let mut front = attach(handle, record, RecordingOptions::default());
        let mut got = Vec::new();
        loop {
            let ev = next(&mut front).await;
            let done = matches!(ev, EngineEvent::Notice { .. });
            got.push(ev);
            if done {
                break;
            }
        }
        assert!(
            got.iter()
                .any(|e| matches!(e, EngineEvent::Chat { text, .. } if text == "hello"))
        );
        assert!(
            got.iter()
                .any(|e| matches!(e, EngineEvent::Attention { raised: true, .. }))
        );
        // The engine starts fresh and reports s2 off-air now: the front end
        // still sees the original time.
        engine
            .events
            .send(EngineEvent::State {
                student: StudentId("s2".into()),
                state: StreamState::OffAir,
                since: SystemTime::now(),
            })
            .await
            .unwrap();
        match next(&mut front).await {
            EngineEvent::State { since, .. } => {
                // Off-air since the first run's start (nobody had reported
                // it before), not since the restart 60 ms later.
                let kept = since.duration_since(UNIX_EPOCH).unwrap().as_millis();
                let orig = long_ago.duration_since(UNIX_EPOCH).unwrap().as_millis();
                assert!(kept <= orig, "{kept} > {orig}");
                assert!(orig - kept < 40, "{kept} vs {orig}");
            }
            other => panic!("{other:?}"),
        }
    }
}
