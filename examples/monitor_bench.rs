//! Benchmark of the monitor engine against real synthetic students
//! (BENCHMARKS.md has the commands and the figures).
//!
//! The engine runs in this process; the students run in a separate
//! `rtcproctor student --count N` process that this program starts once the
//! engine watches an all-off-air roster, so "Go Live" is that moment. It
//! reports, for the measuring window after a warm-up:
//! - CPU of this process (all threads: signalling, WebRTC, decoding) in % of
//!   one core, and its RSS;
//! - decode + scale + convert cost per frame (the engine's `decode_ms`);
//! - frames decoded per second, summed over students;
//! - glass-to-glass latency p50/p95: decode time minus the send time the
//!   synthetic student drew into the frame (`sim::pattern` marks);
//! - Go Live to first decoded frame, per student (includes the off-air poll).
//!
//! usage: monitor_bench --server URL [--proctor-key K] [--count N]
//!        [--size WxH] [--fps F] [--secs S] [--warmup S] [--poll-ms MS]
//!        [--bin PATH-TO-rtcproctor] [--enlarge]

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtcproctor::proctor::{EngineCommand, EngineConfig, EngineEvent, StudentId, engine};
use rtcproctor::roster::{Roster, Student};
use rtcproctor::sim::pattern::read_marks_rgb;

struct Args {
    server: String,
    key: Option<String>,
    count: usize,
    size: String,
    fps: u32,
    secs: u64,
    warmup: u64,
    poll_ms: u64,
    bin: std::path::PathBuf,
    enlarge: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        server: String::new(),
        key: None,
        count: 10,
        size: "320x240".into(),
        fps: 5,
        secs: 20,
        warmup: 5,
        poll_ms: 3000,
        bin: std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.parent()?.join("rtcproctor")))
            .unwrap_or_else(|| "rtcproctor".into()),
        enlarge: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => a.server = val()?,
            "--proctor-key" => a.key = Some(val()?),
            "--count" => a.count = val()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--size" => a.size = val()?,
            "--fps" => a.fps = val()?.parse().map_err(|e| format!("--fps: {e}"))?,
            "--secs" => a.secs = val()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--warmup" => a.warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--poll-ms" => a.poll_ms = val()?.parse().map_err(|e| format!("--poll-ms: {e}"))?,
            "--bin" => a.bin = val()?.into(),
            "--enlarge" => a.enlarge = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.server.is_empty() {
        return Err("--server URL is required".into());
    }
    Ok(a)
}

/// utime + stime of this process in clock ticks, and VmRSS / VmHWM in KiB.
fn proc_self() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (ticks, kib("VmRSS:"), kib("VmHWM:"))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("monitor_bench: {e}");
            std::process::exit(2);
        }
    };
    let prefix = format!("bench{}", std::process::id());
    let roster = Roster {
        students: (1..=args.count)
            .map(|i| Student {
                id: format!("s{i}"),
                code: format!("{prefix}-{i}"),
                name: None,
                email: None,
            })
            .collect(),
    };
    let url = rtcproctor::proctor::parse_server_url(&args.server).expect("server URL");
    let mut cfg = EngineConfig::new(url);
    cfg.proctor_key = args.key.clone();
    cfg.timing.poll_off_air = Duration::from_millis(args.poll_ms);
    let mut engine = engine::start(roster, cfg).expect("engine starts");
    if args.enlarge {
        let _ = engine
            .commands
            .send(EngineCommand::Enlarge {
                student: Some(StudentId("s1".into())),
            })
            .await;
    }

    // Everyone off-air first, then Go Live.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let go_live = Instant::now();
    let mut students = Command::new(&args.bin)
        .args(["student", "--server", &args.server, "--code", &prefix])
        .args(["--count", &args.count.to_string(), "--size", &args.size])
        .args(["--fps", &args.fps.to_string(), "--udp-bind", "127.0.0.1:0"])
        .arg("--insecure-loopback")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args.bin.display()));

    let warm_end = go_live + Duration::from_secs(args.warmup);
    let end = warm_end + Duration::from_secs(args.secs);
    let mut first_frame: HashMap<StudentId, Duration> = HashMap::new();
    let mut latencies: Vec<f64> = Vec::new();
    let mut decode_ms: Vec<f64> = Vec::new();
    let mut fps_sum: HashMap<StudentId, (f64, u32)> = HashMap::new();
    let mut unreadable = 0u64;
    let mut cpu_start = None;
    let tick = tokio::time::sleep_until(warm_end.into());
    tokio::pin!(tick);
    loop {
        let ev = tokio::select! {
            _ = &mut tick, if cpu_start.is_none() => {
                cpu_start = Some((Instant::now(), proc_self().0));
                continue;
            }
            _ = tokio::time::sleep_until(end.into()) => break,
            ev = engine.events.recv() => match ev { Some(e) => e, None => break },
        };
        let measuring = cpu_start.is_some();
        match ev {
            EngineEvent::FrameReady { student } => {
                let Some(f) = engine.frames.latest(&student) else {
                    continue;
                };
                first_frame
                    .entry(student)
                    .or_insert_with(|| f.decoded_at.duration_since(go_live));
                if !measuring {
                    continue;
                }
                match read_marks_rgb(&f.rgb, f.width as usize, f.height as usize) {
                    Some(m) => {
                        let decoded = SystemTime::now() - f.decoded_at.elapsed();
                        let decoded_ms = decoded
                            .duration_since(UNIX_EPOCH)
                            .map(|d| d.as_secs_f64() * 1000.0)
                            .unwrap_or(0.0);
                        latencies.push(decoded_ms - m.sent_unix_ms as f64);
                    }
                    None => unreadable += 1,
                }
            }
            EngineEvent::Stats { student, stats } if measuring => {
                if stats.decode_ms > 0.0 {
                    decode_ms.push(stats.decode_ms as f64);
                }
                let e = fps_sum.entry(student).or_default();
                e.0 += stats.fps_decoded as f64;
                e.1 += 1;
            }
            _ => {}
        }
    }
    let (t1, rss, hwm) = proc_self();
    let (t0_at, t0) = cpu_start.unwrap_or((Instant::now(), t1));
    // SAFETY-free: sysconf via libc is not a dependency; Linux uses 100 Hz.
    let clk_tck = 100.0;
    let window = t0_at.elapsed().as_secs_f64();
    let cpu_pct = (t1 - t0) as f64 / clk_tck / window * 100.0;
    let _ = students.kill();
    let _ = students.wait();
    let _ = engine.commands.send(EngineCommand::Shutdown).await;

    latencies.sort_by(f64::total_cmp);
    decode_ms.sort_by(f64::total_cmp);
    let mut ff: Vec<f64> = first_frame.values().map(|d| d.as_secs_f64()).collect();
    ff.sort_by(f64::total_cmp);
    let fps_total: f64 = fps_sum.values().map(|(s, n)| s / *n.max(&1) as f64).sum();
    println!(
        "students={} size={} fps={} window_s={:.1} | cpu={:.1}% of a core rss={}MiB hwm={}MiB | decoded_fps_total={:.1} decode_ms p50={:.3} p95={:.3} | glass_to_glass_ms p50={:.0} p95={:.0} (n={}, unreadable={}) | golive_to_first_frame_s p50={:.2} p95={:.2} max={:.2} ({}/{} students)",
        args.count,
        args.size,
        args.fps,
        window,
        cpu_pct,
        rss / 1024,
        hwm / 1024,
        fps_total,
        pct(&decode_ms, 0.5),
        pct(&decode_ms, 0.95),
        pct(&latencies, 0.5),
        pct(&latencies, 0.95),
        latencies.len(),
        unreadable,
        pct(&ff, 0.5),
        pct(&ff, 0.95),
        ff.last().copied().unwrap_or(f64::NAN),
        ff.len(),
        args.count,
    );
}
