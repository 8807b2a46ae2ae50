//! Students not on the roster: the server lists live rooms to proctors only,
//! the engine watches every unlisted publisher as an unknown student (`?CODE`)
//! with decoded pictures until it leaves, the session record and report keep
//! it as "not on the roster"; and what the stock server allows.

// Test fixtures: a failed step should panic right there.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use rtcproctor::proctor::{EngineCommand, EngineConfig, EngineEvent, StreamState, Timing, engine};
use rtcproctor::roster::Roster;
use rtcproctor::signal::client::{ClientConfig, ClientTls, SignalClient};
use rtcproctor::signal::protocol::{
    GET_PUBLIC_ROOMS, LISTING_NEEDS_PROCTOR_KEY, PUBLIC_ROOM_IDENTIFIER, listed_codes,
};
use rtcproctor::signal::server::{ServerConfig, start};
use rtcproctor::sim::pattern::read_marks_rgb;
use rtcproctor::sim::student::{StudentConfig, StudentEvent, run};

use crate::stock_server::{StockServer, TempDir};

fn student(url: &url::Url, code: &str) -> StudentConfig {
    StudentConfig {
        tls: ClientTls::InsecureLoopback,
        fps: 10,
        audio: false,
        udp_bind: vec!["127.0.0.1:0".into()],
        ..StudentConfig::new(url.clone(), code, code)
    }
}

/// Run a synthetic student until its token is cancelled; wait until it is
/// live. Returns its events.
async fn go_live(cfg: StudentConfig, cancel: &CancellationToken) -> mpsc::Receiver<StudentEvent> {
    let (tx, mut rx) = mpsc::channel(256);
    let code = cfg.code.clone();
    tokio::spawn(run(cfg, cancel.clone(), Some(tx)));
    let live = timeout(Duration::from_secs(30), async {
        loop {
            if let StudentEvent::Live { .. } = rx.recv().await.expect("student stopped") {
                return;
            }
        }
    })
    .await;
    live.unwrap_or_else(|_| panic!("student {code} did not go live"));
    rx
}

/// Ask a server for its live rooms on a fresh socket.
async fn list(url: &url::Url, key: Option<&str>) -> Vec<Value> {
    let mut cfg = ClientConfig::rtcproctor(
        url.clone(),
        &format!("lister-{}", rand::random::<u32>()),
        "",
    );
    cfg.tls = ClientTls::InsecureLoopback;
    cfg.proctor_key = key.map(str::to_string);
    let (client, _events) = SignalClient::connect(cfg).await.unwrap();
    let ask = || {
        client.emit_with_ack(
            GET_PUBLIC_ROOMS,
            vec![json!(PUBLIC_ROOM_IDENTIFIER)],
            Duration::from_secs(5),
        )
    };
    // Asked twice if need be (a fresh socket's first event may be lost).
    let ack = match ask().await {
        Ok(a) => a,
        Err(_) => ask().await.unwrap(),
    };
    client.close().await;
    ack
}

/// `rtcproctor monitor --headless --http` with its embedded server on
/// loopback, its record in `dir`; returns it with the server's URL (from
/// the student link on stderr, which is then echoed to the test's output).
struct Monitor {
    child: tokio::process::Child,
    url: url::Url,
    out: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stdin: tokio::process::ChildStdin,
}

async fn monitor(dir: &std::path::Path, args: &[&str]) -> Monitor {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtcproctor"))
        .args(["monitor", "--headless", "--http", "--bind", "127.0.0.1:0"])
        .args(args)
        .env("RTCPROCTOR_DATA_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let link = loop {
        let line = err_lines
            .next_line()
            .await
            .unwrap()
            .expect("monitor exited early");
        if let Some(l) = line.trim().strip_prefix("student link:") {
            break l.trim().to_string();
        }
    };
    tokio::spawn(async move {
        while let Ok(Some(l)) = err_lines.next_line().await {
            eprintln!("monitor: {l}");
        }
    });
    let mut url = url::Url::parse(&link).unwrap();
    url.set_fragment(None);
    url.set_path("/");
    let out = BufReader::new(child.stdout.take().unwrap()).lines();
    let stdin = child.stdin.take().unwrap();
    Monitor {
        child,
        url,
        out,
        stdin,
    }
}

impl Monitor {
    async fn next(&mut self) -> Value {
        let line = self
            .out
            .next_line()
            .await
            .unwrap()
            .expect("monitor stdout closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
    }

    async fn send(&mut self, cmd: Value) {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
    }

    async fn quit(mut self) {
        self.send(json!({"cmd": "quit"})).await;
        let status = self.child.wait().await.unwrap();
        assert!(status.success(), "monitor exited with {status}");
    }
}

/// `rtcproctor monitor --headless` with its embedded server and a roster
/// of one: a synthetic student on another code shows up as unknown, live,
/// with a decoded picture whose marks read back from a snapshot; chat
/// reaches it; it turns `left` when it stops; the report lists it as not
/// on the roster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_monitor_watches_and_records_a_student_not_on_the_roster() {
    let dir = TempDir::new("unknown-headless");
    let roster = dir.0.join("roster.tsv");
    std::fs::write(&roster, "r1\troster-one\n").unwrap();
    let cancel = CancellationToken::new();
    let r = timeout(Duration::from_secs(90), async {
        let roster = roster.to_str().unwrap();
        let mut m = monitor(&dir.0, &["--session", "walk-in-exam", "--roster", roster]).await;
        let url = m.url.clone();
        let mut sev = go_live(student(&url, "walk-in"), &cancel).await;

        let is = |v: &Value, event: &str| {
            v["event"] == json!(event) && v["student"] == json!("?walk-in")
        };
        let mut announced = false;
        loop {
            let v = m.next().await;
            if is(&v, "unknown") {
                assert_eq!(v["code"], json!("walk-in"));
                announced = true;
            }
            assert!(
                !is(&v, "state") || announced,
                "state of ?walk-in before it was announced as unknown: {v}"
            );
            if is(&v, "stats") && v["stats"]["fps_decoded"].as_f64() > Some(0.0) {
                break;
            }
        }

        // Its picture is the synthetic student's: the marks read back.
        let png = dir.0.join("walk-in.png");
        m.send(json!({"cmd": "snapshot", "student": "?walk-in", "path": png}))
            .await;
        loop {
            let v = m.next().await;
            if is(&v, "snapshot") {
                break;
            }
            assert!(v["event"] != json!("notice"), "snapshot failed: {v}");
        }
        let img = image::open(&png).unwrap().to_rgb8();
        let marks = read_marks_rgb(img.as_raw(), img.width() as usize, img.height() as usize)
            .expect("no readable marks in the unknown student's snapshot");
        let now = rtcproctor::sim::source::unix_ms();
        assert!(
            marks.sent_unix_ms <= now && now - marks.sent_unix_ms < 60_000,
            "{marks:?}"
        );

        // The proctor can talk to an unknown student too.
        m.send(json!({"cmd": "chat", "student": "?walk-in", "text": "which exam are you in?"}))
            .await;
        loop {
            if let StudentEvent::FromProctor { extra, .. } =
                sev.recv().await.expect("student stopped")
                && extra["message"] == json!("which exam are you in?")
            {
                break;
            }
        }

        // It stops: the tile turns `left`.
        cancel.cancel();
        loop {
            let v = m.next().await;
            if is(&v, "state") && v["state"] == json!("left") {
                break;
            }
        }
        m.quit().await;
    })
    .await;
    cancel.cancel();
    r.expect("unknown student test timed out");

    // The record keeps it, and the report says it was not on the roster.
    let csv = dir.0.join("csv");
    let html = dir.0.join("report.html");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rtcproctor"))
        .args(["report", "walk-in-exam", "--csv"])
        .arg(&csv)
        .arg("--html")
        .arg(&html)
        .env("RTCPROCTOR_DATA_DIR", &dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let students = std::fs::read_to_string(csv.join("students.csv")).unwrap();
    let row = students
        .lines()
        .find(|l| l.starts_with("?walk-in,"))
        .unwrap_or_else(|| panic!("no row for the unknown student: {students}"));
    assert!(row.contains(",walk-in,false,"), "{row}");
    assert!(
        students
            .lines()
            .any(|l| l.starts_with("r1,") && l.contains(",true,")),
        "{students}"
    );
    let timeline = std::fs::read_to_string(csv.join("timeline.csv")).unwrap();
    assert!(
        timeline
            .lines()
            .any(|l| l.starts_with("?walk-in,") && l.contains("live")),
        "{timeline}"
    );
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(
        html.contains("(not on roster)"),
        "the HTML report does not mark the unknown student"
    );
}

/// Without `--roster` the monitor watches every student as they go live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_monitor_without_a_roster_watches_whoever_goes_live() {
    let dir = TempDir::new("unknown-no-roster");
    let cancel = CancellationToken::new();
    let r = timeout(Duration::from_secs(60), async {
        let mut m = monitor(&dir.0, &[]).await;
        let _s = go_live(student(&m.url, "free-1"), &cancel).await;
        let mut announced = false;
        loop {
            let v = m.next().await;
            announced |= v["event"] == json!("unknown") && v["student"] == json!("?free-1");
            if v["event"] == json!("stats")
                && v["student"] == json!("?free-1")
                && v["stats"]["fps_decoded"].as_f64() > Some(0.0)
            {
                break;
            }
        }
        assert!(announced, "?free-1 streamed without being announced");
        m.quit().await;
    })
    .await;
    cancel.cancel();
    r.expect("monitor without a roster timed out");
}

/// Our server lists live rooms to proctors and refuses everyone else: a
/// student (even one publishing) never learns another student's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_proctors_may_list_live_rooms() {
    let server = start(ServerConfig::loopback()).await.unwrap();
    let url = url::Url::parse(server.base_url()).unwrap();
    let key = server.proctor_key().to_string();
    let cancel = CancellationToken::new();
    let r = timeout(Duration::from_secs(60), async {
        let _a = go_live(student(&url, "listed-a"), &cancel).await;
        let _b = go_live(student(&url, "listed-b"), &cancel).await;
        let refused = vec![Value::Null, json!(LISTING_NEEDS_PROCTOR_KEY)];
        assert_eq!(list(&url, None).await, refused);
        assert_eq!(list(&url, Some("not-the-key")).await, refused);

        // A publishing student asks on its own socket: refused as well.
        let mut cfg = ClientConfig::rtcproctor(url.clone(), "publisher-asks", "listed-c");
        cfg.tls = ClientTls::InsecureLoopback;
        let (client, _events) = SignalClient::connect(cfg).await.unwrap();
        let open = json!({"sessionid": "listed-c", "session": {"audio": true, "video": true, "oneway": true},
            "extra": {}, "identifier": PUBLIC_ROOM_IDENTIFIER, "password": ""});
        let ack = match client.emit_with_ack("open-room", vec![open.clone()], Duration::from_millis(1500)).await {
            Ok(a) => a,
            Err(_) => client.emit_with_ack("open-room", vec![open], Duration::from_secs(5)).await.unwrap(),
        };
        assert_eq!(ack, vec![json!(true)]);
        let ack = client
            .emit_with_ack(GET_PUBLIC_ROOMS, vec![json!(PUBLIC_ROOM_IDENTIFIER)], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ack, refused);

        let ack = list(&url, Some(&key)).await;
        assert_eq!(
            listed_codes(&ack),
            Ok(vec!["listed-a".into(), "listed-b".into(), "listed-c".into()])
        );
        assert_eq!(ack[0][0]["session"]["oneway"], json!(true));
        client.close().await;
    })
    .await;
    cancel.cancel();
    server.shutdown().await;
    r.expect("listing test timed out");
}

fn quick_timing() -> Timing {
    Timing {
        poll_off_air: Duration::from_millis(500),
        stats_every: Duration::from_millis(500),
        ..Timing::default()
    }
}

/// The stock RTCMultiConnection-Server lists only rooms opened with a
/// public identifier: RTCProctor's page (identifier "") stays hidden, a page
/// that sets `publicRoomIdentifier = "rtcproctor"` is found, watched as an
/// unknown student with a decoded picture, and turns `left` when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_server_shows_unknown_students_that_open_public_rooms() {
    let stock = StockServer::start();
    let url = stock.url();
    let hidden = CancellationToken::new();
    let public = CancellationToken::new();
    let r = timeout(Duration::from_secs(90), async {
        let _h = go_live(student(&url, "stock-hidden"), &hidden).await;
        let cfg = StudentConfig {
            identifier: PUBLIC_ROOM_IDENTIFIER.into(),
            ..student(&url, "stock-public")
        };
        let _p = go_live(cfg, &public).await;
        // Anyone may list on the stock server; only the public room shows.
        let ack = list(&url, None).await;
        assert_eq!(listed_codes(&ack), Ok(vec!["stock-public".to_string()]));

        let mut cfg = EngineConfig::new(url.clone());
        cfg.timing = quick_timing();
        cfg.decode_workers = 1;
        let mut e = engine::start(Roster::parse("r1\tstock-absent\n").unwrap(), cfg).unwrap();
        let id = rtcproctor::proctor::engine::unknown_id("stock-public");
        let mut announced = false;
        let deadline = Instant::now() + Duration::from_secs(40);
        let marks = loop {
            assert!(
                Instant::now() < deadline,
                "no readable picture of the unknown student"
            );
            let ev = timeout(Duration::from_secs(1), e.events.recv()).await;
            match ev {
                Ok(Some(EngineEvent::Unknown { student, code })) => {
                    assert_eq!(code, "stock-public", "only the public room is discoverable");
                    assert_eq!(student, id);
                    announced = true;
                }
                Ok(None) => panic!("engine stopped"),
                _ => {}
            }
            if let Some(m) = e
                .frames
                .latest(&id)
                .and_then(|f| read_marks_rgb(&f.rgb, f.width as usize, f.height as usize))
            {
                break m;
            }
        };
        assert!(announced);
        assert!(marks.counter > 0 || marks.sent_unix_ms > 0);

        public.cancel();
        loop {
            match e.events.recv().await.expect("engine stopped") {
                EngineEvent::State { student, state, .. }
                    if student == id && state == StreamState::Left =>
                {
                    break;
                }
                EngineEvent::Unknown { code, .. } => panic!("unexpected unknown {code}"),
                _ => {}
            }
        }
        e.commands.send(EngineCommand::Shutdown).await.unwrap();
        while e.events.recv().await.is_some() {}
    })
    .await;
    hidden.cancel();
    public.cancel();
    r.expect("stock server discovery test timed out");
}

/// At most `max_unknown` strangers are watched and a notice says how many
/// more stream; a stranger whose code is then added to the roster (pasted
/// into the dashboard) becomes that roster student, which frees a place for
/// the next stranger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_holds_and_a_pasted_roster_student_takes_over() {
    let server = start(ServerConfig::loopback()).await.unwrap();
    let url = url::Url::parse(server.base_url()).unwrap();
    let cancel = CancellationToken::new();
    let r = timeout(Duration::from_secs(60), async {
        let _a = go_live(student(&url, "cap-a"), &cancel).await;
        let _b = go_live(student(&url, "cap-b"), &cancel).await;
        let mut cfg = EngineConfig::new(url.clone());
        cfg.proctor_key = Some(server.proctor_key().to_string());
        cfg.timing = quick_timing();
        cfg.decode_workers = 1;
        cfg.max_unknown = 1;
        let mut e = engine::start(Roster::parse("r1\tcap-absent\n").unwrap(), cfg).unwrap();
        let a = rtcproctor::proctor::engine::unknown_id("cap-a");
        let (mut unknown, mut noticed, mut live) = (Vec::new(), false, false);
        while !(noticed && live) {
            match e.events.recv().await.expect("engine stopped") {
                EngineEvent::Unknown { code, .. } => unknown.push(code),
                EngineEvent::Notice { text } if text.contains("not on the roster") => {
                    assert!(text.starts_with("1 more"), "{text}");
                    noticed = true;
                }
                EngineEvent::State { student, state, .. }
                    if student == a && state == StreamState::Live =>
                {
                    live = true
                }
                _ => {}
            }
        }
        assert_eq!(unknown, vec!["cap-a".to_string()], "the cap is one");

        let pasted = rtcproctor::roster::Student {
            id: "pasted".into(),
            code: "cap-a".into(),
            name: None,
            email: None,
        };
        e.commands
            .send(EngineCommand::AddStudents {
                students: vec![pasted],
            })
            .await
            .unwrap();
        let (mut a_left, mut pasted_live, mut b_found) = (false, false, false);
        while !(a_left && pasted_live && b_found) {
            match e.events.recv().await.expect("engine stopped") {
                EngineEvent::State { student, state, .. } => {
                    a_left |= student == a && state == StreamState::Left;
                    pasted_live |= student.0 == "pasted" && state == StreamState::Live;
                }
                EngineEvent::Unknown { code, .. } => {
                    assert_eq!(code, "cap-b", "cap-a is on the roster now");
                    b_found = true;
                }
                _ => {}
            }
        }
        e.commands.send(EngineCommand::Shutdown).await.unwrap();
        while e.events.recv().await.is_some() {}
    })
    .await;
    cancel.cancel();
    server.shutdown().await;
    r.expect("cap test timed out");
}
