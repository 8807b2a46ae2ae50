//! Adapt how often each thumbnail is repainted to what the terminal link
//! carries, so a slow ssh connection never builds a backlog.
//!
//! Every draw is metered ([`Meter`]: bytes written and time spent blocked in
//! `write`/`flush`). When a draw's writes block, the terminal (or the ssh
//! link behind the pty) is the bottleneck and drains continuously, so the
//! bytes written over the last second estimate its throughput (one draw's
//! bytes over its blocked time would overestimate it: kernel buffers take
//! part of every burst). The estimate then drops to that figure
//! (multiplicative decrease) and the drawing budget is half of it. While
//! writes do not block the estimate grows by 15% per second (probing), so a
//! faster link is found again. Each tile's minimum repaint interval is
//! `visible tiles × bytes per tile repaint / budget`, never below the frame
//! interval the proctor chose.
//!
//! Frames that arrive in between are not queued: the tile keeps its last
//! picture and takes the newest frame when its interval has passed.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters shared between the terminal writer and the loop.
#[derive(Debug, Default)]
pub struct Meter {
    bytes: AtomicU64,
    blocked_nanos: AtomicU64,
}

impl Meter {
    /// Total bytes written and time blocked in writes so far.
    pub fn totals(&self) -> (u64, Duration) {
        (
            self.bytes.load(Ordering::Relaxed),
            Duration::from_nanos(self.blocked_nanos.load(Ordering::Relaxed)),
        )
    }
}

/// A writer that counts bytes and the time its writes block; optionally it
/// emulates a slow link (for benchmarks and tests of the adaptation).
pub struct MeteredWriter<W: Write> {
    inner: W,
    meter: Arc<Meter>,
    link: Option<SlowLink>,
}

/// A link of `rate` bytes/s with a kernel-like buffer: writes block once more
/// than `buffer` bytes are in flight.
struct SlowLink {
    rate: f64,
    buffer: f64,
    free_at: Instant,
}

impl<W: Write> MeteredWriter<W> {
    pub fn new(inner: W, meter: Arc<Meter>) -> Self {
        MeteredWriter {
            inner,
            meter,
            link: None,
        }
    }

    /// Emulate a link of `bits_per_sec` (e.g. 2_000_000 for 2 Mbit/s ssh).
    pub fn with_link_limit(mut self, bits_per_sec: u64) -> Self {
        let rate = (bits_per_sec as f64 / 8.0).max(1.0);
        self.link = Some(SlowLink {
            rate,
            buffer: 64.0 * 1024.0,
            free_at: Instant::now(),
        });
        self
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for MeteredWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let start = Instant::now();
        let n = self.inner.write(buf)?;
        if let Some(link) = &mut self.link {
            let now = Instant::now();
            link.free_at = link.free_at.max(now) + Duration::from_secs_f64(n as f64 / link.rate);
            let ahead = link.free_at.saturating_duration_since(now);
            let allowed = Duration::from_secs_f64(link.buffer / link.rate);
            if ahead > allowed {
                std::thread::sleep(ahead - allowed);
            }
        }
        self.meter.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.meter
            .blocked_nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let start = Instant::now();
        let r = self.inner.flush();
        self.meter
            .blocked_nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }
}

/// Blocked time per draw above which the link counts as saturated.
const SATURATED: Duration = Duration::from_millis(15);
/// Highest throughput assumed (a fast local terminal).
const CEILING: f64 = 64.0 * 1024.0 * 1024.0;
/// Lowest (never stop drawing altogether).
const FLOOR: f64 = 8.0 * 1024.0;

/// The throughput estimate and the per-tile repaint interval derived from it.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Estimated bytes/s the terminal link carries.
    throughput: f64,
    /// Bytes one tile repaint costs (moving average).
    bytes_per_repaint: f64,
    /// Shortest interval between repaints of one tile.
    min_interval: Duration,
    last: Option<Instant>,
    /// (start, end, bytes) of the draws of the last [`WINDOW`].
    recent: VecDeque<(Instant, Instant, u64)>,
}

/// The span over which throughput is measured.
const WINDOW: Duration = Duration::from_secs(1);

impl Pacer {
    /// Start from a guess of the link's throughput (bytes/s).
    pub fn new(start_throughput: f64, max_tile_fps: f64) -> Self {
        Pacer {
            throughput: start_throughput.clamp(FLOOR, CEILING),
            bytes_per_repaint: 2000.0,
            min_interval: Duration::from_secs_f64(1.0 / max_tile_fps.max(0.1)),
            last: None,
            recent: VecDeque::new(),
        }
    }

    /// A cautious start: 2 Mbit/s over ssh, 8 MB/s locally.
    pub fn for_environment(max_tile_fps: f64) -> Self {
        let ssh =
            std::env::var_os("SSH_CONNECTION").is_some() || std::env::var_os("SSH_TTY").is_some();
        Pacer::new(if ssh { 250_000.0 } else { 8_000_000.0 }, max_tile_fps)
    }

    /// Record one draw: bytes written, time blocked writing, tiles repainted.
    pub fn record(&mut self, now: Instant, bytes: u64, blocked: Duration, repaints: usize) {
        let dt = self
            .last
            .map(|l| now.saturating_duration_since(l).as_secs_f64())
            .unwrap_or(0.0)
            .min(1.0);
        self.last = Some(now);
        let end = now + blocked;
        self.recent.push_back((now, end, bytes));
        while self
            .recent
            .front()
            .is_some_and(|(_, t, _)| end.saturating_duration_since(*t) > WINDOW)
        {
            self.recent.pop_front();
        }
        if blocked >= SATURATED && bytes > 0 {
            let window_bytes: u64 = self.recent.iter().map(|(_, _, b)| b).sum();
            let span = self.recent.front().map_or(0.0, |(t, _, _)| {
                end.saturating_duration_since(*t).as_secs_f64()
            });
            // A short history: this draw alone, over the time it blocked.
            let sample = if span >= 0.25 {
                window_bytes as f64 / span
            } else {
                bytes as f64 / blocked.as_secs_f64()
            };
            self.throughput =
                (self.throughput.min(sample) * 0.5 + sample * 0.5).clamp(FLOOR, CEILING);
        } else {
            self.throughput = (self.throughput * (1.0 + 0.15 * dt)).clamp(FLOOR, CEILING);
        }
        if repaints > 0 && bytes > 0 {
            let per = bytes as f64 / repaints as f64;
            self.bytes_per_repaint = self.bytes_per_repaint * 0.7 + per * 0.3;
        }
    }

    /// Bytes/s the dashboard may spend (half the link: keys and chat must
    /// still get through at once).
    pub fn budget(&self) -> f64 {
        self.throughput * 0.5
    }

    /// The estimated link throughput (bytes/s).
    pub fn throughput(&self) -> f64 {
        self.throughput
    }

    /// How long a tile waits between repaints when `visible` tiles share the
    /// budget.
    pub fn tile_interval(&self, visible: usize) -> Duration {
        let secs = visible.max(1) as f64 * self.bytes_per_repaint / self.budget();
        Duration::from_secs_f64(secs.clamp(self.min_interval.as_secs_f64(), 5.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_link_stretches_intervals_and_recovers() {
        let mut p = Pacer::new(8_000_000.0, 10.0);
        assert_eq!(p.tile_interval(30), Duration::from_millis(100));
        let t0 = Instant::now();
        // 30 repaints of 3000 bytes took 360 ms: a 250 kB/s link.
        for k in 0..10 {
            p.record(
                t0 + Duration::from_millis(400 * k),
                90_000,
                Duration::from_millis(360),
                30,
            );
        }
        assert!(
            (200_000.0..300_000.0).contains(&p.throughput()),
            "{}",
            p.throughput()
        );
        let slow = p.tile_interval(30);
        assert!(slow > Duration::from_millis(600), "{slow:?}");
        // 30 tiles at 3000 B each fit 125 kB/s only about every 0.7 s.
        for k in 10..60 {
            p.record(
                t0 + Duration::from_millis(400 * k),
                5_000,
                Duration::from_millis(1),
                1,
            );
        }
        assert!(p.tile_interval(30) < slow);
    }

    #[test]
    fn metered_writer_counts_and_limits() {
        let meter = Arc::new(Meter::default());
        let mut w = MeteredWriter::new(Vec::new(), meter.clone()).with_link_limit(8_000_000);
        w.write_all(&[0u8; 200_000]).unwrap();
        let (bytes, blocked) = meter.totals();
        assert_eq!(bytes, 200_000);
        // 1 MB/s with a 64 KiB buffer: 200 kB block for about 134 ms.
        assert!(blocked >= Duration::from_millis(100), "{blocked:?}");
    }
}
