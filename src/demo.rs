//! `rtcproctor demo`: the whole product in one command, no browser needed.
//!
//! 1. Starts the embedded signalling server on loopback (plain HTTP: the
//!    camera is allowed on localhost, so a local browser can join too).
//! 2. Makes a roster of N+1 students with names and random codes.
//! 3. Starts N synthetic students in this process (the last roster student
//!    never shows up, so the off-air list has someone; a browser on this
//!    machine can join as them), scripted so everything happens within the
//!    first minute: attention requests, chat lines, and a student who drops
//!    off and comes back. One more synthetic student streams a code that is
//!    not on the roster, so the dashboard shows an unknown tile too.
//! 4. Runs the monitor engine with a session record, and the dashboard.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;
use crate::proctor::engine::{self, EngineConfig};
use crate::proctor::recording;
use crate::roster::{Roster, Student};
use crate::signal::server::{ServerConfig, start};
use crate::sim::student::{Schedule, StudentConfig};
use crate::store::{Recorder, SessionDir, proctor_name, sessions_dir};
use crate::{Error, Result};

const NAMES: &[&str] = &[
    "Ann Lee",
    "Bo Chen",
    "Cy Dorn",
    "Di Evans",
    "Ed Fox",
    "Flo Grant",
    "Gus Hale",
    "Hana Ito",
    "Ivo Jansen",
    "Jo Kim",
    "Kai Lund",
    "Lea Moss",
    "Mo Njoku",
    "Nia Ortiz",
    "Oli Park",
    "Pia Quinn",
    "Raj Rao",
    "Sol Saito",
    "Tea Uribe",
    "Uma Vance",
];

/// Entry point of `rtcproctor demo`.
pub async fn run(args: DemoArgs) -> Result<()> {
    if args.students == 0 || args.students > 500 {
        return Err(Error::Invalid(format!(
            "--students {} is out of range; use 1 to 500",
            args.students
        )));
    }
    let roster = demo_roster(args.students + 1)?;

    let mut sc = ServerConfig::loopback();
    sc.bind = args.bind;
    let server = start(sc).await?;
    let base = server.base_url().to_string();
    let url =
        crate::proctor::parse_server_url(&format!("http://127.0.0.1:{}/", server.addr().port()))?;

    let cancel = CancellationToken::new();
    let students = spawn_students(&roster, &url, &cancel);

    let mut config = EngineConfig::new(url);
    config.proctor_key = Some(server.proctor_key().to_string());
    let engine = engine::start(roster.clone(), config)?;
    let session = format!(
        "demo-{}",
        crate::store::report::fmt_time(crate::store::entry::now_ms())[..19]
            .replace([' ', ':'], "-")
    );
    let dir = SessionDir::new(&sessions_dir(), &session);
    let record = Recorder::start(dir.clone(), &proctor_name(), &roster, |m| {
        tracing::error!("{m}")
    })
    .map_err(|e| format!("no session record: {e}"));
    let engine = recording::attach(engine, record, recording::RecordingOptions::default());
    let absent = &roster.students[args.students].code;
    let opts = crate::tui::DashboardOptions {
        theme: crate::tui::theme::Theme::load(&args.theme)?,
        keymap: crate::tui::load_keymap()?,
        startup_notice: Some(format!(
            "demo: {} synthetic students on {base}; a browser on this machine can join as the missing one at {}",
            args.students,
            server.student_link(absent)
        )),
        ..Default::default()
    };
    let result = crate::tui::run_dashboard(engine, opts).await;

    cancel.cancel();
    for s in students {
        let _ = tokio::time::timeout(Duration::from_secs(2), s).await;
    }
    server.shutdown().await;
    if result.is_ok() {
        println!(
            "Session recorded in {}.\nReport: rtcproctor report {} --html report.html",
            dir.path.display(),
            dir.name
        );
    }
    result
}

/// N students with names (numbered past the name list) and random codes.
fn demo_roster(n: usize) -> Result<Roster> {
    let mut rng = rand::rng();
    let codes =
        crate::codes::generate::unique_codes(&mut rng, n, 9, &std::collections::HashSet::new())?;
    let students = (0..n)
        .zip(codes)
        .map(|(i, code)| {
            let base = NAMES[i % NAMES.len()];
            let name = if i < NAMES.len() {
                base.to_string()
            } else {
                format!("{base} {}", i / NAMES.len() + 1)
            };
            Student {
                id: format!("{:07}", 6_400_001 + i),
                code,
                name: Some(name),
                email: None,
            }
        })
        .collect();
    Ok(Roster { students })
}

/// Start the synthetic students: all but the last of the roster. Their
/// scripts make the first minute show every feature.
fn spawn_students(
    roster: &Roster,
    server: &url::Url,
    cancel: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let n = roster.len();
    let mut configs = Vec::new();
    for (i, s) in roster
        .students
        .iter()
        .enumerate()
        .take(n.saturating_sub(1).max(1))
    {
        let schedule = match i % 6 {
            1 => Schedule {
                attention_every: Some(Duration::from_secs(40)),
                phase: 0.2,
                ..Default::default()
            },
            3 => Schedule {
                chat_every: Some(Duration::from_secs(30)),
                phase: 0.4,
                ..Default::default()
            },
            4 => Schedule {
                drop_every: Some(Duration::from_secs(60)),
                drop_for: Duration::from_secs(12),
                phase: 0.5,
                ..Default::default()
            },
            _ => Schedule::default(),
        };
        let mut cfg = config(server, &s.code, s.label(), schedule);
        // Every third student has a microphone picking up beeps, so the
        // audio meters differ between tiles; the others send silence.
        cfg.tone = (i % 3 == 0).then_some(TONES[i / 3 % TONES.len()]);
        configs.push(cfg);
    }
    configs.push(config(server, WALK_IN_CODE, "Walk-in", Schedule::default()));
    let mut tasks: Vec<_> = configs
        .into_iter()
        .map(|cfg| {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::sim::student::run(cfg, cancel, None).await {
                    tracing::error!("synthetic student: {e}");
                }
            })
        })
        .collect();
    // The third student's code is tried by a second device for a while (a
    // classmate who learned it): the proctor sees CODE CONFLICT on it.
    if let Some(target) = roster.students.get(2).filter(|_| n > 3) {
        let cfg = config(server, &target.code, "Intruder", Schedule::default());
        let cancel = cancel.child_token();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(INTRUDER_AFTER) => {}
                _ = cancel.cancelled() => return,
            }
            let stop = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(INTRUDER_FOR).await;
                stop.cancel();
            });
            if let Err(e) = crate::sim::student::run(cfg, cancel, None).await {
                tracing::error!("synthetic intruder: {e}");
            }
        }));
    }
    tasks
}

/// When the demo's intruder starts trying a live code, and for how long.
const INTRUDER_AFTER: Duration = Duration::from_secs(20);
const INTRUDER_FOR: Duration = Duration::from_secs(40);

/// The code of the demo's student who is not on the roster (roster codes
/// are random letters and digits, never this).
const WALK_IN_CODE: &str = "walk-in";

/// Tone frequencies of the demo's students with a microphone (Hz).
const TONES: [f32; 3] = [440.0, 660.0, 550.0];

fn config(server: &url::Url, code: &str, name: &str, schedule: Schedule) -> StudentConfig {
    StudentConfig {
        udp_bind: vec!["127.0.0.1:0".into()],
        schedule,
        ..StudentConfig::new(server.clone(), code, name)
    }
}
