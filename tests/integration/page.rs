//! The student page end to end: headless Chromium with a fake camera goes
//! live through the page, a second page running RTCProctor's monitor setup
//! (RTCMultiConnection 3.7.1) watches it, and the script breaks things on
//! purpose (server restart, network loss, a viewer leaving). The scenarios
//! live in tests/node/page-*.js; these tests run them bounded in time and
//! fail with their log.

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

/// Run tests/node/`script` with `args`; panics with its output unless it
/// exited 0 and printed its PASS line.
fn run_node(node_flags: &[&str], script: &str, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/node")
        .join(script);
    let mut cmd = Command::new("node");
    cmd.args(node_flags)
        .arg(&script)
        .args(args)
        .env("RTCPROCTOR_NODE_DIR", node_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
        Some(s) if s.success() && out.contains("] PASS") => {}
        Some(s) => panic!("{script:?} {args:?} failed ({s}):\n{out}\n{err}"),
        None => panic!("{script:?} {args:?} did not finish in {RUN_LIMIT:?}:\n{out}\n{err}"),
    }
}

/// The browser scenario; `RTCPROCTOR_PAGE_SHOTS=DIR` also saves screenshots.
fn run_scenario(args: &[&str]) {
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["--timeout-ms".into(), "240000".into()]);
    if let Some(dir) = std::env::var_os("RTCPROCTOR_PAGE_SHOTS") {
        args.extend(["--shots".into(), dir.to_string_lossy().into_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_node(&[], "page-e2e.js", &args);
}

#[test]
fn page_socket_client_speaks_to_the_stock_server_and_notices_silence() {
    run_node(&["--experimental-websocket"], "page-sio.js", &[]);
}

#[test]
fn student_page_works_with_the_stock_server_and_monitor() {
    run_scenario(&["--mode", "stock"]);
}

#[test]
fn student_page_works_with_rtcproctor_serve_in_open_viewing_mode() {
    // The page is loaded from the binary itself (embedded assets) and the
    // stock monitor library watches it through `serve --open-viewing`.
    run_scenario(&[
        "--mode",
        "rtcproctor",
        "--bin",
        env!("CARGO_BIN_EXE_rtcproctor"),
    ]);
}

/// The page's camera plays the synthetic student's pattern (a .y4m file as
/// Chromium's fake camera); the monitor's decoded pictures carry the same
/// marks (frame counter, CRC-checked), advance while live, and still read at
/// the enlarged size. This checks the picture, not merely that frames came.
#[test]
fn monitor_decodes_the_known_pattern_the_page_sends() {
    use rtcproctor::sim::pattern::{Pattern, read_marks_rgb};
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("rtcp-y4m-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveOnDrop(dir.clone());
    // 640x480 so the enlarged view gets the large picture; 10 fps, 6 s loop.
    let (w, h, fps, frames) = (640usize, 480usize, 10u32, 60u32);
    let y4m = dir.join("pattern.y4m");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&y4m).unwrap());
    writeln!(out, "YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg").unwrap();
    let mut pattern = Pattern::new(w, h, "Y4M Student").unwrap();
    let t0 = 1_795_000_000_000u64;
    for n in 0..frames {
        let pic = pattern.draw(rtcproctor::sim::pattern::Marks {
            counter: 1000 + n,
            sent_unix_ms: t0 + u64::from(n) * 100,
        });
        out.write_all(b"FRAME\n").unwrap();
        for plane in [&pic.y, &pic.u, &pic.v] {
            out.write_all(plane).unwrap();
        }
    }
    drop(out);
    let shots = dir.join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    run_node(
        &[],
        "page-monitor.js",
        &[
            "--bin",
            env!("CARGO_BIN_EXE_rtcproctor"),
            "--y4m",
            y4m.to_str().unwrap(),
            "--shots",
            shots.to_str().unwrap(),
        ],
    );
    let marks = |name: &str| {
        let img = image::open(shots.join(name))
            .unwrap_or_else(|e| panic!("snapshot {name}: {e}"))
            .to_rgb8();
        let (iw, ih) = img.dimensions();
        let m = read_marks_rgb(img.as_raw(), iw as usize, ih as usize)
            .unwrap_or_else(|| panic!("no pattern marks in the monitor's {name} ({iw}x{ih})"));
        assert!(
            (1000..1000 + frames).contains(&m.counter)
                && m.sent_unix_ms == t0 + u64::from(m.counter - 1000) * 100,
            "{name}: marks {m:?} are not the file's"
        );
        (m.counter, iw)
    };
    let (first, _) = marks("live.png");
    let (second, _) = marks("later.png");
    assert_ne!(first, second, "the picture did not move between snapshots");
    let (_, large_w) = marks("large.png");
    assert!(large_w >= 600, "enlarged snapshot is {large_w} wide");
}

/// Removes a directory when the test ends in any way.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The same with a browser that offers VP8 only.
#[test]
fn vp8_only_student_page_is_watched_by_our_headless_monitor() {
    run_node(
        &[],
        "page-monitor.js",
        &["--bin", env!("CARGO_BIN_EXE_rtcproctor"), "--vp8"],
    );
}

#[test]
fn student_page_is_watched_by_our_headless_monitor() {
    // `rtcproctor monitor --headless` with its embedded server decodes the
    // page's camera, chats and exchanges attention with it, and asks it for
    // the larger picture.
    run_node(
        &[],
        "page-monitor.js",
        &["--bin", env!("CARGO_BIN_EXE_rtcproctor")],
    );
}
