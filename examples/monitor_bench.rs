//! Benchmark of the monitor engine against real synthetic students
//! (BENCHMARKS.md has the commands and the figures).
//!
//! The engine runs in this process, watching a roster of `--count` students
//! (codes `PREFIX-1..N`) who are all off-air at first. Two ways to run it:
//!
//! - On its own (default): it starts `rtcproctor student --count N` itself
//!   (a separate process, so the students' encoding is not counted), warms
//!   up, measures a window and prints one summary line.
//! - `--driven` (used by `scripts/bench-monitor`, which runs headless
//!   Chromium on the same streams the same way): it prints `{"ready":true}`
//!   and then obeys lines on stdin: `golive UNIX_MS` (the driver started the
//!   students: Go Live), `begin`, `end` (the measuring window). It prints
//!   `{"first_frames":K}` as students start decoding and, at `end`, one JSON
//!   line with per-student figures, then exits. The driver measures CPU and
//!   memory of this process from /proc over the same window.
//!
//! Figures, per student:
//! - first decoded frame (wall clock ms), for Go Live → first frame;
//! - frames published per second in the window (every decoded frame is
//!   published: everyone is "visible" here, unlike the dashboard which
//!   decodes only the students on screen);
//! - glass-to-glass latency of every frame in the window: decode-publish
//!   time minus the send time the synthetic student drew into the picture
//!   (`sim::pattern` marks, read back from the 160x120 thumbnail);
//! - picture age, sampled every 73 ms (not a divisor of any frame interval,
//!   so samples fall at every phase of the frame cycle): now minus the send time of the
//!   newest frame held (how stale the thumbnail is), and the time since the
//!   last decoded frame.
//!
//! usage: monitor_bench --server URL [--proctor-key K] [--count N] [--prefix P]
//!        [--size WxH] [--fps F] [--texture] [--secs S] [--warmup S]
//!        [--poll-ms MS] [--bin PATH-TO-rtcproctor] [--enlarge] [--driven]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use rtcproctor::proctor::{
    EngineCommand, EngineConfig, EngineEvent, EngineHandle, StudentId, engine,
};
use rtcproctor::roster::{Roster, Student};
use rtcproctor::sim::pattern::read_marks_rgb;

/// How often picture ages are sampled (see the module doc).
const SAMPLE_EVERY: Duration = Duration::from_millis(73);

struct Args {
    server: String,
    key: Option<String>,
    count: usize,
    prefix: Option<String>,
    size: String,
    fps: u32,
    texture: bool,
    secs: u64,
    warmup: u64,
    poll_ms: u64,
    bin: std::path::PathBuf,
    enlarge: bool,
    driven: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        server: String::new(),
        key: None,
        count: 10,
        prefix: None,
        size: "320x240".into(),
        fps: 5,
        texture: false,
        secs: 20,
        warmup: 5,
        poll_ms: 3000,
        bin: std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.parent()?.join("rtcproctor")))
            .unwrap_or_else(|| "rtcproctor".into()),
        enlarge: false,
        driven: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => a.server = val()?,
            "--proctor-key" => a.key = Some(val()?),
            "--count" => a.count = val()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--prefix" => a.prefix = Some(val()?),
            "--size" => a.size = val()?,
            "--fps" => a.fps = val()?.parse().map_err(|e| format!("--fps: {e}"))?,
            "--texture" => a.texture = true,
            "--secs" => a.secs = val()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--warmup" => a.warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--poll-ms" => a.poll_ms = val()?.parse().map_err(|e| format!("--poll-ms: {e}"))?,
            "--bin" => a.bin = val()?.into(),
            "--enlarge" => a.enlarge = true,
            "--driven" => a.driven = true,
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

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// What is known about one student.
#[derive(Default)]
struct Seen {
    first_frame_ms: Option<f64>,
    /// Send time (from the marks) and decode time of the newest frame.
    last_sent_ms: Option<f64>,
    last_decoded_ms: Option<f64>,
    unreadable: u64,
    seq_at_begin: Option<u64>,
    latencies: Vec<f64>,
    ages: Vec<f64>,
    decode_ages: Vec<f64>,
}

/// The engine plus what the benchmark has seen of it.
struct Bench {
    engine: EngineHandle,
    ids: Vec<(StudentId, String)>,
    seen: HashMap<StudentId, Seen>,
    decode_ms: Vec<f64>,
    measuring: bool,
    began: Option<Instant>,
}

impl Bench {
    fn on_event(&mut self, ev: EngineEvent) -> bool {
        match ev {
            EngineEvent::FrameReady { student } => {
                let Some(f) = self.engine.frames.latest(&student) else {
                    return false;
                };
                let decoded_ms = unix_ms(SystemTime::now() - f.decoded_at.elapsed());
                let s = self.seen.entry(student).or_default();
                let first = s.first_frame_ms.is_none();
                s.first_frame_ms.get_or_insert(decoded_ms);
                s.last_decoded_ms = Some(decoded_ms);
                match read_marks_rgb(&f.rgb, f.width as usize, f.height as usize) {
                    Some(m) => {
                        s.last_sent_ms = Some(m.sent_unix_ms as f64);
                        if self.measuring {
                            s.latencies.push(decoded_ms - m.sent_unix_ms as f64);
                        }
                    }
                    None => s.unreadable += 1,
                }
                return first;
            }
            EngineEvent::Stats { stats, .. } if self.measuring && stats.decode_ms > 0.0 => {
                self.decode_ms.push(stats.decode_ms as f64);
            }
            _ => {}
        }
        false
    }

    fn first_frames(&self) -> usize {
        self.seen
            .values()
            .filter(|s| s.first_frame_ms.is_some())
            .count()
    }

    fn begin(&mut self) {
        for (id, _) in &self.ids {
            let seq = self.engine.frames.latest(id).map(|f| f.seq);
            let s = self.seen.entry(id.clone()).or_default();
            s.seq_at_begin = seq;
            s.latencies.clear();
            s.ages.clear();
            s.decode_ages.clear();
        }
        self.decode_ms.clear();
        self.measuring = true;
        self.began = Some(Instant::now());
    }

    /// Picture age and time since the last decoded frame, every student.
    fn sample(&mut self) {
        let now = unix_ms(SystemTime::now());
        for (id, _) in &self.ids {
            let s = self.seen.entry(id.clone()).or_default();
            s.ages.push(s.last_sent_ms.map_or(1e9, |t| now - t));
            s.decode_ages
                .push(s.last_decoded_ms.map_or(1e9, |t| now - t));
        }
    }

    fn end(&mut self) -> Value {
        self.measuring = false;
        let secs = self.began.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let students: Vec<Value> = self
            .ids
            .iter()
            .map(|(id, code)| {
                let seq_now = self.engine.frames.latest(id).map(|f| f.seq);
                let s = self.seen.entry(id.clone()).or_default();
                let frames = match (s.seq_at_begin, seq_now) {
                    (Some(a), Some(b)) => b.saturating_sub(a),
                    (None, Some(b)) => b,
                    _ => 0,
                };
                let round = |v: &[f64]| v.iter().map(|x| x.round() as i64).collect::<Vec<_>>();
                json!({
                    "code": code,
                    "firstFrameMs": s.first_frame_ms,
                    "decodedFps": frames as f64 / secs.max(0.001),
                    "unreadable": s.unreadable,
                    "latencies": round(&s.latencies),
                    "ages": round(&s.ages),
                    "decodeAges": round(&s.decode_ages),
                })
            })
            .collect();
        self.decode_ms.sort_by(f64::total_cmp);
        json!({
            "secs": secs,
            "students": students,
            "decodeMsP50": pct(&self.decode_ms, 0.5),
            "decodeMsP95": pct(&self.decode_ms, 0.95),
        })
    }
}

fn spawn_students(args: &Args, prefix: &str) -> Child {
    let mut cmd = Command::new(&args.bin);
    cmd.args(["student", "--server", &args.server, "--code", prefix])
        .args(["--count", &args.count.to_string(), "--size", &args.size])
        .args(["--fps", &args.fps.to_string(), "--udp-bind", "127.0.0.1:0"])
        .arg("--insecure-loopback");
    if args.texture {
        cmd.arg("--texture");
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args.bin.display()))
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
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("bench{}", std::process::id()));
    let ids: Vec<(StudentId, String)> = (1..=args.count)
        .map(|i| (StudentId(format!("s{i}")), format!("{prefix}-{i}")))
        .collect();
    let roster = Roster {
        students: ids
            .iter()
            .map(|(id, code)| Student {
                id: id.0.clone(),
                code: code.clone(),
                name: None,
                email: None,
            })
            .collect(),
    };
    let url = rtcproctor::proctor::parse_server_url(&args.server).expect("server URL");
    let mut cfg = EngineConfig::new(url);
    cfg.proctor_key = args.key.clone();
    cfg.timing.poll_off_air = Duration::from_millis(args.poll_ms);
    let engine = engine::start(roster, cfg).expect("engine starts");
    if args.enlarge {
        let _ = engine
            .commands
            .send(EngineCommand::Enlarge {
                student: Some(StudentId("s1".into())),
            })
            .await;
    }
    let mut bench = Bench {
        engine,
        ids,
        seen: HashMap::new(),
        decode_ms: Vec::new(),
        measuring: false,
        began: None,
    };

    // Everyone off-air first (every socket connected and asked once).
    let settle = Duration::from_millis(1500 + 10 * args.count as u64);
    let settled = tokio::time::sleep(settle);
    tokio::pin!(settled);
    loop {
        tokio::select! {
            _ = &mut settled => break,
            ev = bench.engine.events.recv() => if let Some(ev) = ev { bench.on_event(ev); },
        }
    }
    if args.driven {
        driven(&mut bench).await;
    } else {
        standalone(&mut bench, &args, &prefix).await;
    }
    let _ = bench.engine.commands.send(EngineCommand::Shutdown).await;
}

/// Obey the driver's lines on stdin until `end`.
async fn driven(bench: &mut Bench) {
    println!("{}", json!({"ready": true}));
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut sampler = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(l)) if l.trim() == "begin" => bench.begin(),
                Ok(Some(l)) if l.trim() == "end" => {
                    println!("{}", bench.end());
                    return;
                }
                Ok(Some(_)) => {}
                _ => return, // the driver went away
            },
            _ = sampler.tick() => if bench.measuring { bench.sample() },
            ev = bench.engine.events.recv() => match ev {
                Some(ev) => if bench.on_event(ev) {
                    println!("{}", json!({"first_frames": bench.first_frames()}));
                },
                None => return,
            },
        }
    }
}

/// Start the students, warm up, measure, print one line.
async fn standalone(bench: &mut Bench, args: &Args, prefix: &str) {
    let go_live_ms = unix_ms(SystemTime::now());
    let mut students = spawn_students(args, prefix);
    let go_live = Instant::now();
    let warm_end = go_live + Duration::from_secs(args.warmup);
    let end = warm_end + Duration::from_secs(args.secs);
    let mut sampler = tokio::time::interval(SAMPLE_EVERY);
    let mut cpu_start = None;
    let tick = tokio::time::sleep_until(warm_end.into());
    tokio::pin!(tick);
    let result = loop {
        tokio::select! {
            _ = &mut tick, if cpu_start.is_none() => {
                cpu_start = Some((Instant::now(), proc_self().0));
                bench.begin();
            }
            _ = sampler.tick() => if bench.measuring { bench.sample() },
            _ = tokio::time::sleep_until(end.into()) => break bench.end(),
            ev = bench.engine.events.recv() => match ev {
                Some(ev) => { bench.on_event(ev); }
                None => break bench.end(),
            },
        }
    };
    let (t1, rss, hwm) = proc_self();
    let (t0_at, t0) = cpu_start.unwrap_or((Instant::now(), t1));
    // Linux reports /proc times in 100 Hz ticks.
    let cpu_pct = (t1 - t0) as f64 / 100.0 / t0_at.elapsed().as_secs_f64() * 100.0;
    let _ = students.kill();
    let _ = students.wait();

    let per = result["students"].as_array().cloned().unwrap_or_default();
    let mut lat: Vec<f64> = Vec::new();
    let mut ages: Vec<f64> = Vec::new();
    let mut ff: Vec<f64> = Vec::new();
    let mut fps_total = 0.0;
    let mut unreadable = 0;
    for s in &per {
        let nums = |k: &str| -> Vec<f64> {
            s[k].as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default()
        };
        lat.extend(nums("latencies"));
        ages.extend(nums("ages"));
        fps_total += s["decodedFps"].as_f64().unwrap_or(0.0);
        unreadable += s["unreadable"].as_u64().unwrap_or(0);
        if let Some(t) = s["firstFrameMs"].as_f64() {
            ff.push((t - go_live_ms) / 1000.0);
        }
    }
    for v in [&mut lat, &mut ages, &mut ff] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "students={} size={} fps={} window_s={:.1} | cpu={:.1}% of a core rss={}MiB hwm={}MiB | decoded_fps_total={:.1} decode_ms p50={:.3} p95={:.3} | glass_to_glass_ms p50={:.0} p95={:.0} (n={}, unreadable={}) | picture_age_ms p50={:.0} p95={:.0} | golive_to_first_frame_s p50={:.2} p95={:.2} max={:.2} ({}/{} students)",
        args.count,
        args.size,
        args.fps,
        result["secs"].as_f64().unwrap_or(0.0),
        cpu_pct,
        rss / 1024,
        hwm / 1024,
        fps_total,
        result["decodeMsP50"].as_f64().unwrap_or(f64::NAN),
        result["decodeMsP95"].as_f64().unwrap_or(f64::NAN),
        pct(&lat, 0.5),
        pct(&lat, 0.95),
        lat.len(),
        unreadable,
        pct(&ages, 0.5),
        pct(&ages, 0.95),
        pct(&ff, 0.5),
        pct(&ff, 0.95),
        ff.last().copied().unwrap_or(f64::NAN),
        ff.len(),
        args.count,
    );
}
