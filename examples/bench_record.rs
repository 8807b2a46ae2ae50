//! Session-record write cost: `cargo run --release --example bench_record [N]`.
//! Appends N entries shaped like a busy exam (state changes, chat, stats)
//! through the real writer, waits until they are on disk, and prints the
//! rate and bytes per entry.

use std::time::Instant;

use rtcproctor::proctor::{Party, StreamState};
use rtcproctor::store::{Entry, EntryKind, SessionWriter, load_record};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("rtcproctor-bench-{}", std::process::id()));
    let path = dir.join("record-bench.jsonl");
    let w = SessionWriter::open(&path, |m| eprintln!("{m}")).expect("open record");
    let t0 = Instant::now();
    for i in 0..n {
        let student = format!("64000{:03}", i % 150);
        let kind = match i % 10 {
            0 => EntryKind::Chat {
                student,
                from: Party::Student,
                text: "Excuse me, may I go to the toilet?".into(),
            },
            1 | 2 => EntryKind::State {
                student,
                state: StreamState::Live,
            },
            _ => EntryKind::Stats {
                student,
                fps: 5.0,
                width: 320,
                height: 240,
                kbps: 180.5,
                loss: 0.001,
            },
        };
        w.write(Entry::now(kind));
    }
    let queued = t0.elapsed();
    w.sync();
    let synced = t0.elapsed();
    w.close();
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let t1 = Instant::now();
    let rec = load_record(&path).expect("read back");
    let read = t1.elapsed();
    println!(
        "entries={n} queue={:.0}/s on_disk={:.0}/s bytes/entry={:.0} read_back={:.0}/s (read {} entries)",
        n as f64 / queued.as_secs_f64(),
        n as f64 / synced.as_secs_f64(),
        bytes as f64 / n as f64,
        rec.entries.len() as f64 / read.as_secs_f64(),
        rec.entries.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}
