//! A fake monitor engine for developing and testing the dashboard without
//! a network: deterministic pictures (solid colours, gradients, moving bars,
//! a noisy "camera"), scripted state changes, chat and attention, and
//! answers to every [`EngineCommand`] the way the real engine would.
//!
//! Reached from the command line only through the hidden
//! `monitor --fake-engine N` flag (tests and benchmarks).

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::proctor::{
    EngineCommand, EngineEvent, EngineHandle, Frame, FrameSlots, Party, StreamState, StreamStats,
    StudentId,
};
use crate::roster::{Roster, Student};

/// What the fake engine does.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// How many roster students are live (the first N); the rest are split
    /// between joining, stalled and off-air.
    pub live: usize,
    /// Frames per second per live, visible student.
    pub fps: u32,
    /// Picture size of grid frames (enlarged frames are twice as big).
    pub width: u32,
    pub height: u32,
    /// Play a short script: a student asks for attention, another chats.
    pub script: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            live: 6,
            fps: 5,
            width: 320,
            height: 240,
            script: true,
        }
    }
}

/// A roster of `n` students `s001`.. with names and codes.
pub fn roster(n: usize) -> Roster {
    const FIRST: &[&str] = &[
        "Ann", "Bo", "Chen", "Dara", "Emil", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kemal", "Lea",
        "Maya", "Nils", "Olu", "Priya",
    ];
    const LAST: &[&str] = &[
        "Lee", "Novak", "Okafor", "Silva", "Tanaka", "Weber", "Yilmaz",
    ];
    Roster {
        students: (0..n)
            .map(|i| Student {
                id: format!("s{:03}", i + 1),
                code: format!("code{:04}", 7919 * (i + 1) % 10_000),
                name: Some(format!(
                    "{} {}",
                    FIRST[i % FIRST.len()],
                    LAST[i % LAST.len()]
                )),
                email: None,
            })
            .collect(),
    }
}

/// The picture of pattern `kind` at frame `seq`: deterministic.
pub fn pattern_frame(kind: usize, seq: u64, width: u32, height: u32) -> Frame {
    let (w, h) = (width as usize, height as usize);
    let mut rgb = vec![0u8; w * h * 3];
    let hue = |k: usize| -> [u8; 3] {
        const P: [[u8; 3]; 8] = [
            [230, 159, 0],
            [86, 180, 233],
            [0, 158, 115],
            [240, 228, 66],
            [0, 114, 178],
            [213, 94, 0],
            [204, 121, 167],
            [120, 120, 120],
        ];
        P[k % P.len()]
    };
    let base = hue(kind);
    let bar_x = ((seq as usize * 7) % w.max(1)) as isize;
    let mut noise = (seq.wrapping_mul(6364136223846793005)).wrapping_add(kind as u64 | 1);
    for y in 0..h {
        for x in 0..w {
            let p = (y * w + x) * 3;
            let px: [u8; 3] = match kind % 5 {
                // Solid colour with a moving bar.
                0 => {
                    if (x as isize - bar_x).abs() < (w as isize / 16).max(1) {
                        [250, 250, 250]
                    } else {
                        base
                    }
                }
                // Horizontal gradient.
                1 => {
                    let t = (x * 255 / w.max(1)) as u8;
                    [t, base[1] / 2, 255 - t]
                }
                // Vertical gradient with a moving horizontal bar.
                2 => {
                    let t = (y * 255 / h.max(1)) as u8;
                    let bar_y = (seq as usize * 5) % h.max(1);
                    if y.abs_diff(bar_y) < h / 20 + 1 {
                        [20, 20, 20]
                    } else {
                        [base[0] / 2 + t / 2, t, base[2] / 2]
                    }
                }
                // A "face": a disc on a background, bobbing.
                3 => {
                    let cx = w as isize / 2 + ((seq as isize % 20) - 10);
                    let cy = h as isize * 2 / 5;
                    let r = h as isize / 4;
                    let (dx, dy) = (x as isize - cx, y as isize - cy);
                    if dx * dx + dy * dy < r * r {
                        [224, 172, 140]
                    } else if y > h * 3 / 4 {
                        base
                    } else {
                        [60, 64, 72]
                    }
                }
                // A noisy camera: gradient plus per-pixel noise each frame.
                _ => {
                    noise = noise
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let n = ((noise >> 33) % 9) as i16 - 4;
                    let t = (x * 200 / w.max(1)) as i16 + 30;
                    let v = |c: i16| (c + n).clamp(0, 255) as u8;
                    [v(t), v(base[1] as i16 / 2 + 40), v(220 - t)]
                }
            };
            rgb[p..p + 3].copy_from_slice(&px);
        }
    }
    Frame {
        width,
        height,
        rgb,
        seq,
        decoded_at: Instant::now(),
    }
}

struct FakeStudent {
    id: StudentId,
    kind: usize,
    state: StreamState,
    seq: u64,
}

/// Start the fake engine on the current tokio runtime.
pub fn spawn(roster: Roster, config: FakeConfig) -> EngineHandle {
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let frames = FrameSlots::default();
    tokio::spawn(run(roster.clone(), config, ev_tx, cmd_rx, frames.clone()));
    EngineHandle {
        events: ev_rx,
        commands: cmd_tx,
        frames,
        roster,
    }
}

async fn run(
    roster: Roster,
    cfg: FakeConfig,
    tx: mpsc::Sender<EngineEvent>,
    mut commands: mpsc::Receiver<EngineCommand>,
    frames: FrameSlots,
) {
    let now = SystemTime::now();
    let mut students: Vec<FakeStudent> = Vec::new();
    let n = roster.len();
    for (i, s) in roster.students.iter().enumerate() {
        let state = if i < cfg.live {
            StreamState::Live
        } else if i == cfg.live && n > cfg.live + 3 {
            StreamState::Joining
        } else if i == cfg.live + 1 && n > cfg.live + 3 {
            StreamState::Stalled
        } else {
            StreamState::OffAir
        };
        students.push(FakeStudent {
            id: StudentId(s.id.clone()),
            kind: i,
            state,
            seq: 0,
        });
    }
    // One publisher that is not on the roster.
    students.push(FakeStudent {
        id: StudentId("?zz-9999".into()),
        kind: 3,
        state: StreamState::Live,
        seq: 0,
    });
    let _ = tx
        .send(EngineEvent::Server {
            connected: true,
            detail: "fake engine".into(),
        })
        .await;
    let _ = tx
        .send(EngineEvent::Unknown {
            student: StudentId("?zz-9999".into()),
            code: "zz-9999".into(),
        })
        .await;
    for (i, s) in students.iter_mut().enumerate() {
        let ago = Duration::from_secs(if s.state == StreamState::OffAir {
            60 * (i as u64 % 7 + 1) + 17 * i as u64
        } else {
            5 + 11 * i as u64
        });
        let _ = tx
            .send(EngineEvent::State {
                student: s.id.clone(),
                state: s.state,
                since: now - ago,
            })
            .await;
        if s.state == StreamState::Stalled {
            frames.publish(&s.id, pattern_frame(s.kind, 0, cfg.width, cfg.height));
        }
    }

    let mut visible: HashSet<StudentId> = HashSet::new();
    let mut enlarged: Option<StudentId> = None;
    let started = Instant::now();
    let mut script_step = 0;
    let mut pending: Vec<(Instant, EngineEvent)> = Vec::new();
    let mut frame_tick =
        tokio::time::interval(Duration::from_secs_f64(1.0 / cfg.fps.max(1) as f64));
    frame_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                let at = SystemTime::now();
                match cmd {
                    EngineCommand::SendChat { student, text } => {
                        let _ = tx.send(EngineEvent::Chat { student: student.clone(), from: Party::Proctor, text: text.clone(), at }).await;
                        pending.push((Instant::now() + Duration::from_millis(400), EngineEvent::Chat {
                            student, from: Party::Student, text: format!("ok, got \"{text}\""), at,
                        }));
                    }
                    EngineCommand::RaiseAttention { student } => {
                        let _ = tx.send(EngineEvent::Attention { student, from: Party::Proctor, raised: true, at }).await;
                    }
                    EngineCommand::AckAttention { student } => {
                        let _ = tx.send(EngineEvent::Attention { student, from: Party::Proctor, raised: false, at }).await;
                    }
                    EngineCommand::SetVisible { students: v } => visible = v.into_iter().collect(),
                    EngineCommand::Enlarge { student } => enlarged = student,
                    EngineCommand::Snapshot { student, path } => {
                        let ev = match frames.latest(&student) {
                            Some(f) => match save_png(&path, &f) {
                                Ok(()) => EngineEvent::Snapshot { student, path: path.display().to_string() },
                                Err(e) => EngineEvent::Notice { text: format!("snapshot failed: {e}") },
                            },
                            None => EngineEvent::Notice { text: format!("no picture of {student} to save") },
                        };
                        let _ = tx.send(ev).await;
                    }
                    EngineCommand::AddStudents { students: new } => {
                        for s in new {
                            let id = StudentId(s.id.clone());
                            if students.iter().any(|f| f.id == id) { continue; }
                            let _ = tx.send(EngineEvent::State { student: id.clone(), state: StreamState::Joining, since: at }).await;
                            pending.push((Instant::now() + Duration::from_secs(1), EngineEvent::State {
                                student: id.clone(), state: StreamState::Live, since: at,
                            }));
                            students.push(FakeStudent { id, kind: students.len(), state: StreamState::Joining, seq: 0 });
                        }
                    }
                    EngineCommand::ReleaseCode { student } => {
                        // As with the real server: the device is dropped and
                        // the real student's page gets in a moment later.
                        let _ = tx.send(EngineEvent::State { student: student.clone(), state: StreamState::Left, since: at }).await;
                        let _ = tx.send(EngineEvent::Notice { text: format!("{student}: code released") }).await;
                        pending.push((Instant::now() + Duration::from_secs(2), EngineEvent::State {
                            student, state: StreamState::Live, since: at,
                        }));
                    }
                    EngineCommand::Shutdown => break,
                }
            }
            _ = frame_tick.tick() => {
                let due: Vec<usize> = pending.iter().enumerate().filter(|(_, (t, _))| *t <= Instant::now()).map(|(i, _)| i).collect();
                for i in due.into_iter().rev() {
                    let (_, ev) = pending.remove(i);
                    if let EngineEvent::State { student, state, .. } = &ev
                        && let Some(s) = students.iter_mut().find(|s| &s.id == student) {
                            s.state = *state;
                        }
                    let _ = tx.send(ev).await;
                }
                if cfg.script {
                    script(&mut script_step, started.elapsed(), &students, &tx).await;
                }
                for s in students.iter_mut().filter(|s| s.state == StreamState::Live) {
                    if !visible.contains(&s.id) {
                        continue;
                    }
                    s.seq += 1;
                    let big = enlarged.as_ref() == Some(&s.id);
                    let (w, h) = if big { (cfg.width * 2, cfg.height * 2) } else { (cfg.width, cfg.height) };
                    frames.publish(&s.id, pattern_frame(s.kind, s.seq, w, h));
                    if tx.try_send(EngineEvent::FrameReady { student: s.id.clone() }).is_err() {
                        // The UI is behind: it pulls the newest frame anyway.
                    }
                }
            }
            _ = stats_tick.tick() => {
                let t = started.elapsed().as_secs_f32();
                for (i, s) in students.iter().enumerate().filter(|(_, s)| s.state == StreamState::Live) {
                    let shown = visible.contains(&s.id);
                    let stats = StreamStats {
                        fps_received: cfg.fps as f32,
                        fps_decoded: if shown { cfg.fps as f32 } else { 0.0 },
                        width: cfg.width,
                        height: cfg.height,
                        codec: "H264".into(),
                        bitrate_kbps: 280.0 + (i * 13 % 90) as f32,
                        packet_loss: 0.0,
                        frame_age_ms: shown.then_some(40),
                        audio_level: ((t * 1.3 + i as f32).sin() * 0.5 + 0.5).clamp(0.0, 1.0),
                        ..StreamStats::default()
                    };
                    let _ = tx.try_send(EngineEvent::Stats { student: s.id.clone(), stats });
                }
            }
        }
    }
}

/// The scripted part: at 1.5 s the second student asks for attention, at
/// 2.5 s the third writes in the chat.
async fn script(
    step: &mut usize,
    elapsed: Duration,
    students: &[FakeStudent],
    tx: &mpsc::Sender<EngineEvent>,
) {
    let at = SystemTime::now();
    if *step == 0 && elapsed >= Duration::from_millis(1500) {
        *step = 1;
        if let Some(s) = students.get(1) {
            let _ = tx
                .send(EngineEvent::Attention {
                    student: s.id.clone(),
                    from: Party::Student,
                    raised: true,
                    at,
                })
                .await;
        }
    }
    if *step == 1 && elapsed >= Duration::from_millis(2500) {
        *step = 2;
        if let Some(s) = students.get(2) {
            let _ = tx
                .send(EngineEvent::Chat {
                    student: s.id.clone(),
                    from: Party::Student,
                    text: "Hello, is my camera OK?".into(),
                    at,
                })
                .await;
        }
    }
}

fn save_png(path: &Path, f: &Frame) -> std::result::Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    image::save_buffer(path, &f.rgb, f.width, f.height, image::ColorType::Rgb8)
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_deterministic_and_move() {
        for kind in 0..5 {
            let a = pattern_frame(kind, 3, 64, 48);
            let b = pattern_frame(kind, 3, 64, 48);
            let c = pattern_frame(kind, 4, 64, 48);
            assert_eq!(a.rgb, b.rgb);
            assert_eq!(a.rgb.len(), 64 * 48 * 3);
            if kind != 1 {
                assert_ne!(a.rgb, c.rgb, "pattern {kind} should change per frame");
            }
        }
        assert_eq!(roster(20).len(), 20);
    }
}
