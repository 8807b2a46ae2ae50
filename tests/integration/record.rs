//! The session record survives a kill of the monitor: `kill -9` mid-session,
//! start again with the same session, and nothing is lost beyond the
//! writer's sync bound; the resumed monitor replays chat and open attention
//! requests and picks every live student up again; `report` builds from it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use rtcproctor::signal::server::{ServerConfig, start};
use rtcproctor::sim::student::{Schedule, StudentConfig};
use rtcproctor::store::{SessionDir, SessionSummary, load_record};

const KEY: &str = "record-test-key";

fn student(url: &url::Url, code: &str, schedule: Schedule) -> StudentConfig {
    StudentConfig {
        width: 160,
        height: 120,
        audio: false,
        udp_bind: vec!["127.0.0.1:0".into()],
        schedule,
        ..StudentConfig::new(url.clone(), code, code)
    }
}

struct Monitor {
    child: tokio::process::Child,
    out: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stdin: tokio::process::ChildStdin,
}

fn monitor(data: &std::path::Path, roster: &std::path::Path, url: &url::Url) -> Monitor {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtcproctor"))
        .args([
            "monitor",
            "--headless",
            "--session",
            "exam-kill",
            "--proctor-key",
            KEY,
        ])
        .arg("--server")
        .arg(url.as_str())
        .arg("--roster")
        .arg(roster)
        .env("RTCPROCTOR_DATA_DIR", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start rtcproctor monitor");
    let out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let stdin = child.stdin.take().expect("stdin");
    Monitor { child, out, stdin }
}

impl Monitor {
    async fn next(&mut self) -> Value {
        let line = self
            .out
            .next_line()
            .await
            .expect("read monitor stdout")
            .expect("monitor stdout closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
    }

    /// Read events until `pred` holds for one; return it.
    async fn until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let v = self.next().await;
            if pred(&v) {
                return v;
            }
        }
    }
}

fn is(v: &Value, event: &str, student: &str) -> bool {
    v["event"] == json!(event) && v["student"] == json!(student)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_beyond_the_sync_bound_and_resume_restores() {
    let data = std::env::temp_dir().join(format!("rtcproctor-record-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    let roster = data.join("roster.tsv");
    std::fs::write(&roster, "k1\tkill-one\nk2\tkill-two\nk3\tkill-absent\n").unwrap();

    let mut sc = ServerConfig::loopback();
    sc.proctor_key = Some(KEY.into());
    let server = start(sc).await.expect("server");
    let url = url::Url::parse(server.base_url()).unwrap();
    let cancel = CancellationToken::new();
    let chatty = Schedule {
        chat_every: Some(Duration::from_millis(700)),
        ..Default::default()
    };
    let asking = Schedule {
        attention_every: Some(Duration::from_secs(3600)),
        phase: 0.0005, // about 1.8 s after going live, then not again
        ..Default::default()
    };
    for cfg in [
        student(&url, "kill-one", chatty),
        student(&url, "kill-two", asking),
    ] {
        let cancel = cancel.clone();
        tokio::spawn(async move { rtcproctor::sim::student::run(cfg, cancel, None).await });
    }

    let result = timeout(Duration::from_secs(120), async {
        // First run: both live, chat flowing, an attention request, and a
        // line from the proctor that reached the student.
        let mut m = monitor(&data, &roster, &url);
        let mut live = std::collections::HashSet::new();
        let mut student_lines = Vec::new();
        let mut attention = false;
        while live.len() < 2 || student_lines.len() < 3 || !attention {
            let v = m.next().await;
            if v["event"] == json!("state") && v["state"] == json!("live") {
                live.insert(v["student"].as_str().unwrap().to_string());
            }
            if is(&v, "chat", "k1") && v["from"] == json!("student") {
                student_lines.push(v["text"].as_str().unwrap().to_string());
            }
            attention |= is(&v, "attention", "k2") && v["raised"] == json!(true);
        }
        m.stdin
            .write_all(b"{\"cmd\":\"chat\",\"student\":\"k1\",\"text\":\"eyes on your paper\"}\n")
            .await
            .unwrap();
        m.until(|v| is(v, "chat", "k1") && v["from"] == json!("proctor"))
            .await;
        // Everything above happened more than the sync bound before the kill.
        tokio::time::sleep(Duration::from_millis(800)).await;
        m.child.start_kill().unwrap();
        m.child.wait().await.unwrap();

        let dir = SessionDir::new(&data.join("sessions"), "exam-kill");
        let records = dir.records().unwrap();
        assert_eq!(records.len(), 1, "one proctor, one record file");
        let rec = load_record(&records[0]).unwrap();
        let summary = SessionSummary::from_records(&[rec]);
        assert_eq!(summary.unclean, 1, "a kill leaves no End entry");
        let k1 = summary.student("k1").unwrap();
        for line in &student_lines {
            assert!(
                k1.chat.iter().any(|c| &c.text == line),
                "student line {line:?} lost; record has {:?}",
                k1.chat
            );
        }
        assert!(k1.chat.iter().any(|c| c.text == "eyes on your paper"));
        assert_eq!(summary.student("k2").unwrap().open_attention().count(), 1);
        assert!(k1.live_ms() > 0);

        // Second run, same session: history replayed, students live again.
        let mut m = monitor(&data, &roster, &url);
        let mut replayed_chat = 0;
        let mut replayed_attention = false;
        let notice = loop {
            let v = m.next().await;
            replayed_chat += usize::from(is(&v, "chat", "k1"));
            replayed_attention |= is(&v, "attention", "k2") && v["raised"] == json!(true);
            if v["event"] == json!("notice") {
                break v;
            }
        };
        assert!(
            notice["text"]
                .as_str()
                .unwrap()
                .contains("resumed session exam-kill"),
            "{notice}"
        );
        assert!(replayed_chat > student_lines.len(), "chat history replayed");
        assert!(replayed_attention, "open attention request replayed");
        let mut live = std::collections::HashSet::new();
        while live.len() < 2 {
            let v = m.next().await;
            if v["event"] == json!("state") && v["state"] == json!("live") {
                live.insert(v["student"].as_str().unwrap().to_string());
            }
        }
        m.stdin.write_all(b"{\"cmd\":\"quit\"}\n").await.unwrap();
        let status = m.child.wait().await.unwrap();
        assert!(status.success(), "monitor quit with {status}");

        // The report reads both runs; the clean quit closed the record.
        let csv = data.join("csv");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rtcproctor"))
            .args(["report", "exam-kill", "--csv"])
            .arg(&csv)
            .env("RTCPROCTOR_DATA_DIR", &data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let chat = std::fs::read_to_string(csv.join("chat.csv")).unwrap();
        assert!(chat.contains("eyes on your paper"), "{chat}");
        let students = std::fs::read_to_string(csv.join("students.csv")).unwrap();
        assert!(students.lines().any(|l| l.starts_with("k3,")), "{students}");
    })
    .await;
    cancel.cancel();
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&data);
    result.expect("record test timed out");
}
