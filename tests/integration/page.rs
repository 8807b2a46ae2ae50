//! The student page end to end: headless Chromium with a fake camera goes
//! live through the page, a second page running RTCProctor's monitor setup
//! (RTCMultiConnection 3.7.1) watches it, and the script breaks things on
//! purpose (server restart, network loss, a viewer leaving). The scenario
//! lives in tests/node/page-e2e.js; this test runs it bounded in time and
//! fails with its log.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound for one scenario run (the script has its own, shorter one).
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Kills the child when the test ends in any way.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node_dir() -> PathBuf {
    let dir = std::env::var_os("RTCPROCTOR_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/node"));
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && dir.join("node_modules/rtcmulticonnection-server").is_dir()
            && dir
                .join("rtcmc/package/dist/RTCMultiConnection.js")
                .is_file(),
        "node test packages missing in {}: run `scripts/setup --test` (or set RTCPROCTOR_NODE_DIR)",
        dir.display()
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium missing: run `scripts/setup --test`"
    );
    dir
}

/// Run page-e2e.js with `args`; panics with its output unless it passed.
fn run_scenario(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/page-e2e.js");
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .args(args)
        .args(["--timeout-ms", "240000"])
        .env("RTCPROCTOR_NODE_DIR", node_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = std::env::var_os("RTCPROCTOR_PAGE_SHOTS") {
        cmd.arg("--shots").arg(dir);
    }
    let mut child = KillOnDrop(cmd.spawn().expect("run node (is nodejs installed?)"));
    let mut stdout = child.0.stdout.take().expect("stdout");
    let mut stderr = child.0.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for node") {
            break Some(status);
        }
        if start.elapsed() > RUN_LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(child);
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    // Timings and steps go to the test log (`cargo test -- --nocapture`).
    println!("{out}");
    match status {
        Some(s) if s.success() && out.contains("[page-e2e] PASS") => {}
        Some(s) => panic!("page-e2e {args:?} failed ({s}):\n{out}\n{err}"),
        None => panic!("page-e2e {args:?} did not finish in {RUN_LIMIT:?}:\n{out}\n{err}"),
    }
}

#[test]
fn student_page_works_with_the_stock_server_and_monitor() {
    run_scenario(&["--mode", "stock"]);
}
