//! The Chromium grid viewer that `scripts/bench-monitor` measures our engine
//! against (tests/node/bench-grid.html): a smoke run with two synthetic
//! students through our server. It must really decode (WebRTC getStats
//! `framesDecoded` per student) and read the students' marks (frame counter
//! and send time) back from the presented frames, or the benchmark's
//! figures for Chromium would mean nothing. No timings are asserted.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn chromium_grid_viewer_decodes_and_reads_the_marks() {
    let node_dir = std::env::var_os("RTCPROCTOR_NODE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/node"));
    assert!(
        node_dir.join("node_modules/playwright-core").is_dir()
            && node_dir.join("node_modules/socket.io-client").is_dir(),
        "node test packages missing in {}: run `scripts/setup --test` (or set RTCPROCTOR_NODE_DIR)",
        node_dir.display()
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium missing: run `scripts/setup --test`"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/bench-monitor.js");
    let mut child = Command::new("node")
        .arg(script)
        .args(["--plan", "smoke", "--bin", env!("CARGO_BIN_EXE_rtcproctor")])
        .env("RTCPROCTOR_NODE_DIR", &node_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (is nodejs installed?)");
    // The script stops itself within its 90 s budget; this is the backstop.
    let limit = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for node") {
            break Some(s);
        }
        if Instant::now() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "grid viewer smoke run failed ({status:?}):\n{out}\n{err}"
    );
    assert!(err.contains("smoke: ok"), "no verdict:\n{out}\n{err}");
}
