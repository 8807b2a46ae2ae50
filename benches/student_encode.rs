//! Cost of one synthetic student's video: drawing the test pattern and
//! encoding it with openh264, per frame, at the sizes the issue asks for.
//! Prints a Markdown table; run with `cargo bench --bench student_encode`.
//! Bounded: a fixed number of frames per case.

use std::time::{Duration, Instant};

use rtcproctor::sim::encoder::VideoEncoder;
use rtcproctor::sim::pattern::{Marks, Pattern};

const FRAMES: usize = 300;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo test --all-targets` runs bench targets once as a smoke test
    // (without `--bench`): timing a debug build would only waste CI time.
    if !std::env::args().any(|a| a == "--bench") {
        println!("student_encode: timings only under `cargo bench --bench student_encode`");
        return;
    }
    println!(
        "| size@fps | draw mean | encode mean | encode p50 | encode p95 | bytes/frame | kbit/s | one core's share per student |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (w, h, fps, texture) in [
        (320usize, 240usize, 5u32, false),
        (640, 480, 20, false),
        (320, 240, 5, true),
        (640, 480, 20, true),
    ] {
        let mut pattern = Pattern::new(w, h, "Benchmark Student 42").expect("pattern");
        if texture {
            pattern = pattern.with_texture();
        }
        let mut encoder = if texture {
            VideoEncoder::rate_controlled(w, h, fps)
        } else {
            VideoEncoder::new(w, h, fps)
        }
        .expect("encoder");
        let (mut draw, mut encode, mut bytes) = (Vec::new(), Vec::new(), 0usize);
        for i in 0..FRAMES {
            let marks = Marks {
                counter: i as u32,
                sent_unix_ms: 1_764_000_000_000 + (i as u64 * 1000 / fps as u64),
            };
            let t0 = Instant::now();
            let picture = pattern.draw(marks);
            let t1 = Instant::now();
            if let Some(f) = encoder.encode(picture).expect("encode") {
                bytes += f.data.len();
            }
            let t2 = Instant::now();
            draw.push(t1 - t0);
            encode.push(t2 - t1);
        }
        encode.sort();
        let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
        let per_frame = mean(&draw) + mean(&encode);
        println!(
            "| {w}x{h}@{fps}{} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {} | {:.0} | {:.2} % |",
            if texture { " --texture" } else { "" },
            ms(mean(&draw)),
            ms(mean(&encode)),
            ms(percentile(&encode, 0.5)),
            ms(percentile(&encode, 0.95)),
            bytes / FRAMES,
            (bytes * 8 * fps as usize / FRAMES) as f64 / 1000.0,
            ms(per_frame) * fps as f64 / 10.0,
        );
    }
}
