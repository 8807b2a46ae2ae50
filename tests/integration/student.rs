//! The synthetic student end to end: it publishes through the stock npm
//! rtcmulticonnection-server to a Rust viewer that decodes the H.264 and
//! reads the pattern's marks back; keyframes on PLI; chat; dropping off and
//! coming back; a viewer leaving.

use std::time::Duration;

use rtcproctor::sim::pattern::Marks;
use rtcproctor::sim::source::unix_ms;
use rtcproctor::sim::student::{self, Schedule, StudentConfig, StudentEvent};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::rust_viewer::{RustViewer, Seen};
use crate::stock_server::StockServer;
use rtcproctor::signal::server::{ServerConfig, start as start_server};

const T: Duration = Duration::from_secs(20);

fn config(server: &url::Url, code: &str, schedule: Schedule) -> StudentConfig {
    let mut cfg = StudentConfig::new(server.clone(), code, &format!("Student {code}"));
    cfg.fps = 10;
    cfg.udp_bind = vec!["127.0.0.1:0".to_string()];
    cfg.schedule = schedule;
    cfg
}

/// Runs a student; cancels it on drop.
struct Running {
    cancel: CancellationToken,
    events: mpsc::Receiver<StudentEvent>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn start(cfg: StudentConfig) -> Running {
    let cancel = CancellationToken::new();
    let (tx, events) = mpsc::channel(256);
    let c = cancel.clone();
    tokio::spawn(async move { student::run(cfg, c, Some(tx)).await });
    Running { cancel, events }
}

async fn wait_event(
    r: &mut Running,
    what: &str,
    pred: impl Fn(&StudentEvent) -> bool,
) -> StudentEvent {
    timeout(T, async {
        loop {
            let ev = r.events.recv().await.expect("student runs");
            if pred(&ev) {
                return ev;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("student never reported {what}"))
}

/// Next decoded frame that carries marks.
async fn next_marked(v: &mut RustViewer) -> (Marks, bool) {
    timeout(T, async {
        loop {
            match v.seen.recv().await.expect("viewer runs") {
                Seen::Frame {
                    marks: Some(m),
                    idr,
                    width,
                    height,
                } => {
                    assert_eq!((width, height), (320, 240));
                    return (m, idr);
                }
                Seen::Frame { marks: None, .. } => panic!("a decoded frame without readable marks"),
                _ => continue,
            }
        }
    })
    .await
    .expect("a decoded frame in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn student_streams_to_a_rust_viewer_through_the_stock_server() {
    let server = StockServer::start();
    let started_ms = unix_ms();
    let schedule = Schedule {
        chat_every: Some(Duration::from_millis(700)),
        ..Default::default()
    };
    let mut stu = start(config(&server.url(), "e2e-room", schedule));
    wait_event(&mut stu, "live", |e| matches!(e, StudentEvent::Live { .. })).await;

    let mut viewer = RustViewer::join(&server.url(), "e2e-room", "monE2E").await;
    wait_event(
        &mut stu,
        "a connected viewer",
        |e| matches!(e, StudentEvent::ViewerConnected { viewer, .. } if viewer == "monE2E"),
    )
    .await;

    // The first frame is a keyframe; frames keep coming with rising
    // counters and plausible send times.
    let (first, idr) = next_marked(&mut viewer).await;
    assert!(idr, "the first frame a viewer gets must be a keyframe");
    let mut last = first;
    for _ in 0..10 {
        let (m, _) = next_marked(&mut viewer).await;
        assert!(
            m.counter > last.counter,
            "counter went {} -> {}",
            last.counter,
            m.counter
        );
        assert!(m.sent_unix_ms >= last.sent_unix_ms);
        assert!(m.sent_unix_ms >= started_ms && m.sent_unix_ms <= unix_ms());
        last = m;
    }

    // PLI: a keyframe follows within a few frames (the periodic one is 5 s
    // = 50 frames away).
    viewer.send_pli().await;
    let mut got_idr = false;
    for _ in 0..10 {
        if next_marked(&mut viewer).await.1 {
            got_idr = true;
            break;
        }
    }
    assert!(got_idr, "no keyframe within 10 frames after PLI");

    // Audio packets and chat lines arrive too.
    let mut audio = false;
    let mut chat = None;
    timeout(T, async {
        while !(audio && chat.is_some()) {
            match viewer.seen.recv().await.expect("viewer runs") {
                Seen::Audio => audio = true,
                Seen::Signal(name, args)
                    if name == "extra-data-updated"
                        && args[1]["message"].as_str().is_some_and(|m| !m.is_empty()) =>
                {
                    chat = Some(args[1].clone());
                }
                _ => {}
            }
        }
    })
    .await
    .expect("audio and chat in time");
    let chat = chat.expect("chat");
    assert_eq!(chat["attention"], json!(""));
    assert!(chat["msgId"].as_u64().is_some_and(|id| id >= 1), "{chat}");
    assert_eq!(chat["name"], json!("Student e2e-room"));

    // The viewer leaves: the student forgets it.
    viewer.leave().await;
    wait_event(
        &mut stu,
        "the viewer leaving",
        |e| matches!(e, StudentEvent::ViewerLeft { viewer, .. } if viewer == "monE2E"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn student_drops_off_and_comes_back() {
    let server = StockServer::start();
    let schedule = Schedule {
        drop_every: Some(Duration::from_secs(3)),
        drop_for: Duration::from_secs(1),
        ..Default::default()
    };
    let mut stu = start(config(&server.url(), "drop-room", schedule));
    wait_event(&mut stu, "live", |e| matches!(e, StudentEvent::Live { .. })).await;
    let mut viewer = RustViewer::join(&server.url(), "drop-room", "monDrop").await;
    let (before, _) = next_marked(&mut viewer).await;

    // The viewer sees the student go away...
    timeout(T, async {
        loop {
            if let Seen::Signal(name, _) = viewer.seen.recv().await.expect("viewer runs")
                && name == "user-disconnected"
            {
                break;
            }
        }
    })
    .await
    .expect("user-disconnected after the drop-off");
    wait_event(&mut stu, "off-air", |e| {
        matches!(e, StudentEvent::Offline { .. })
    })
    .await;
    wait_event(&mut stu, "live again", |e| {
        matches!(e, StudentEvent::Live { .. })
    })
    .await;
    viewer.client.close().await;

    // ...and a fresh join picks up the same student, frames counting on.
    let mut again = RustViewer::join(&server.url(), "drop-room", "monDrop2").await;
    let (after, idr) = next_marked(&mut again).await;
    assert!(idr);
    assert!(
        after.counter > before.counter + 5,
        "{before:?} -> {after:?}"
    );
}

/// The binary: goes live against the stock server, prints one line per
/// event, stops by itself after --duration.
#[test]
fn student_command_goes_live_and_stops() {
    let server = StockServer::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rtcproctor"))
        .args([
            "student",
            "--server",
            server.url().as_str(),
            "--code",
            "cli-room",
        ])
        .args([
            "--count",
            "2",
            "--duration",
            "3",
            "--udp-bind",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run rtcproctor student");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("cli-room-1: live"), "{stdout}");
    assert!(stdout.contains("cli-room-2: live"), "{stdout}");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_rtcproctor"))
        .args([
            "student",
            "--server",
            server.url().as_str(),
            "--code",
            "x",
            "--size",
            "big",
        ])
        .output()
        .expect("run rtcproctor student");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--size"));
}

/// The stock RTCProctor monitor (RTCMultiConnection 3.7.1 in headless
/// Chromium, configured as rtcproctor-m.html) watches our synthetic student
/// through the stock server: the video element has the student's size, its
/// frame count advances, and a captured frame carries readable marks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_rtcproctor_monitor_in_chromium_watches_the_synthetic_student() {
    let server = StockServer::start();
    chromium_monitor_watches(&server.url(), None).await;
}

/// The same through our server, in its compatibility mode for the stock
/// monitor page (open viewing: the page cannot send a proctor key), with
/// the student's tone: Chromium decodes it and hears it (`audioLevel`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_rtcproctor_monitor_watches_the_synthetic_student_through_our_server() {
    let mut config = ServerConfig::loopback();
    config.open_viewing = true;
    let server = start_server(config).await.expect("our server");
    chromium_monitor_watches(
        &url::Url::parse(server.base_url()).expect("url"),
        Some(440.0),
    )
    .await;
    server.shutdown().await;
}

async fn chromium_monitor_watches(server_url: &url::Url, tone: Option<f32>) {
    let node_dir = crate::stock_server::node_dir();
    let started_ms = unix_ms();
    let mut cfg = config(server_url, "chromium-room", Schedule::default());
    cfg.tone = tone;
    let mut stu = start(cfg);
    wait_event(&mut stu, "live", |e| matches!(e, StudentEvent::Live { .. })).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/rtcmc_monitor.js");
    let run = tokio::process::Command::new("node")
        .arg(script)
        .arg(server_url.as_str())
        .arg("chromium-room")
        .arg("25")
        .env("RTCPROCTOR_NODE_DIR", &node_dir)
        .kill_on_drop(true)
        .output();
    let out = timeout(Duration::from_secs(90), run)
        .await
        .expect("the Chromium monitor finished in time")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Chromium monitor failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("bad report ({e}): {stdout}"));
    let brief = {
        let mut r = report.clone();
        r["rgba"] = json!("...");
        r
    };
    assert_eq!(report["joined"], json!(true), "{brief}");
    assert_eq!(report["videoWidth"], json!(320), "{brief}");
    assert_eq!(report["videoHeight"], json!(240), "{brief}");
    let (early, late) = (
        report["framesEarly"].as_u64().unwrap_or(0),
        report["framesLate"].as_u64().unwrap_or(0),
    );
    assert!(late > early && early > 0, "frames not advancing: {brief}");
    // The Opus silence packets decode: Chromium invents (conceals) little.
    let audio = &report["audio"];
    let total = audio["totalSamplesReceived"].as_u64().unwrap_or(0);
    let concealed = audio["concealedSamples"].as_u64().unwrap_or(u64::MAX);
    assert!(
        audio["packetsReceived"].as_u64().unwrap_or(0) > 0,
        "{brief}"
    );
    assert!(
        total > 0 && concealed < total / 2,
        "audio not decoded: {brief}"
    );
    // Silence is silent; the tone is heard.
    eprintln!("Chromium's audio stats (tone {tone:?}): {audio}");
    let level = audio["maxAudioLevel"].as_f64().unwrap_or(-1.0);
    if tone.is_some() {
        assert!(level > 0.02, "Chromium does not hear the tone: {brief}");
        assert!(audio["totalAudioEnergy"].as_f64() > Some(0.0), "{brief}");
    } else {
        assert!(
            (0.0..0.01).contains(&level),
            "silence is not silent: {brief}"
        );
    }

    use base64::Engine;
    let rgba = base64::engine::general_purpose::STANDARD
        .decode(report["rgba"].as_str().expect("a captured frame"))
        .expect("base64");
    let rgb: Vec<u8> = rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let marks = rtcproctor::sim::pattern::read_marks_rgb(&rgb, 320, 240)
        .unwrap_or_else(|| panic!("no marks in the frame Chromium shows: {brief}"));
    assert!(
        marks.sent_unix_ms >= started_ms && marks.sent_unix_ms <= unix_ms(),
        "{marks:?}"
    );
    assert!(marks.counter > 0);
}

/// The stock server still holds our userid (e.g. a socket not yet reaped):
/// it says `userid-already-taken` and never acks; the student picks a new
/// userid and goes live anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn student_recovers_from_userid_already_taken() {
    let server = StockServer::start();
    let holder =
        rtcproctor::signal::client::ClientConfig::rtcproctor(server.url(), "taken-id", "x");
    let (_holder, _rx) = rtcproctor::signal::client::SignalClient::connect(holder)
        .await
        .expect("holder connects");
    let mut cfg = config(&server.url(), "taken-room", Schedule::default());
    cfg.userid = Some("taken-id".into());
    let mut stu = start(cfg);
    let ev = wait_event(&mut stu, "off-air for the taken userid", |e| {
        matches!(e, StudentEvent::Offline { .. } | StudentEvent::Live { .. })
    })
    .await;
    assert!(
        matches!(&ev, StudentEvent::Offline { reason, .. } if reason.contains("already taken")),
        "{ev:?}"
    );
    wait_event(&mut stu, "live with a new userid", |e| {
        matches!(e, StudentEvent::Live { .. })
    })
    .await;
    let mut viewer = RustViewer::join(&server.url(), "taken-room", "monTaken").await;
    next_marked(&mut viewer).await;
}

/// The server goes away and comes back on the same address: the student
/// notices, reconnects by itself and opens its room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn student_reopens_its_room_after_the_server_restarts() {
    let server = StockServer::start();
    let port = server.port;
    let mut stu = start(config(&server.url(), "restart-room", Schedule::default()));
    wait_event(&mut stu, "live", |e| matches!(e, StudentEvent::Live { .. })).await;
    drop(server);
    wait_event(&mut stu, "off-air", |e| {
        matches!(e, StudentEvent::Offline { .. })
    })
    .await;
    let server = StockServer::start_on(port);
    wait_event(&mut stu, "live again", |e| {
        matches!(e, StudentEvent::Live { .. })
    })
    .await;
    let mut viewer = RustViewer::join(&server.url(), "restart-room", "monRestart").await;
    let (_, idr) = next_marked(&mut viewer).await;
    assert!(idr);
}

/// Through our server: the viewer needs the proctor key; the student, like
/// the page, needs none. Frames decode with readable marks; a viewer without
/// the key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn student_streams_to_a_rust_viewer_through_our_server() {
    let server = start_server(ServerConfig::loopback())
        .await
        .expect("our server");
    let url = url::Url::parse(server.base_url()).expect("url");
    let schedule = Schedule {
        chat_every: Some(Duration::from_millis(700)),
        ..Default::default()
    };
    let mut stu = start(config(&url, "ours-room", schedule));
    wait_event(&mut stu, "live", |e| matches!(e, StudentEvent::Live { .. })).await;

    let cfg =
        rtcproctor::signal::client::ClientConfig::rtcproctor(url.clone(), "noKey", "ours-room");
    let (nokey, _rx) = rtcproctor::signal::client::SignalClient::connect(cfg)
        .await
        .expect("connect without key");
    let refused = nokey
        .emit_with_ack(
            "join-room",
            vec![json!({"sessionid": "ours-room", "session": {"audio": true, "video": true, "oneway": true},
                "extra": {}, "password": ""})],
            T,
        )
        .await
        .expect("join ack");
    assert_eq!(refused[0], json!(false), "{refused:?}");
    nokey.close().await;

    let mut viewer =
        RustViewer::join_with_key(&url, "ours-room", "monOurs", Some(server.proctor_key())).await;
    let (first, idr) = next_marked(&mut viewer).await;
    assert!(idr);
    let mut last = first;
    for _ in 0..5 {
        let (m, _) = next_marked(&mut viewer).await;
        assert!(m.counter > last.counter);
        last = m;
    }
    viewer.send_pli().await;
    let mut got_idr = false;
    for _ in 0..10 {
        if next_marked(&mut viewer).await.1 {
            got_idr = true;
            break;
        }
    }
    assert!(got_idr, "no keyframe within 10 frames after PLI");
    timeout(T, async {
        loop {
            if let Seen::Signal(name, args) = viewer.seen.recv().await.expect("viewer runs")
                && name == "extra-data-updated"
                && args[1]["message"].as_str().is_some_and(|m| !m.is_empty())
            {
                break;
            }
        }
    })
    .await
    .expect("chat through our server");
    viewer.leave().await;
    drop(stu);
    server.shutdown().await;
}
