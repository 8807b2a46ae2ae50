//! Frozen or black camera detection, from decoded pictures alone (pure).
//!
//! A student can defeat a proctor without going off-air: cover the camera
//! (black), or freeze it (a virtual camera looping a still, a hung
//! capture). Frames keep arriving, so RTP-based liveness says "live". This
//! looks at the pictures: a small luma signature per frame, compared over
//! time.
//!
//! - **Black**: mean luma below [`BLACK_LUMA`] and almost no detail, held
//!   for `black_after`.
//! - **Frozen**: no signature cell changed by more than [`FROZEN_DELTA`]
//!   for `frozen_after`, while frames keep coming. Real sensors are noisy
//!   and the synthetic pattern moves, so a truly identical picture for that
//!   long means a still image.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Signature grid: 16 x 12 cells of mean luma.
const GRID_W: usize = 16;
const GRID_H: usize = 12;
/// Mean luma (0..=255) under which a picture counts as black.
pub const BLACK_LUMA: f32 = 20.0;
/// Largest cell-to-cell luma spread still counted as "no detail".
const BLACK_SPREAD: f32 = 12.0;
/// Largest per-cell luma change still counted as "the same picture": near
/// zero, because a cell averages many pixels and sensor noise shrinks there.
pub const FROZEN_DELTA: f32 = 0.1;

/// A problem with what the camera shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraProblem {
    Black,
    Frozen,
}

/// How long a condition must hold before it is reported.
#[derive(Debug, Clone, Copy)]
pub struct CameraCheckConfig {
    pub black_after: Duration,
    pub frozen_after: Duration,
}

impl Default for CameraCheckConfig {
    fn default() -> Self {
        CameraCheckConfig {
            black_after: Duration::from_secs(10),
            frozen_after: Duration::from_secs(20),
        }
    }
}

/// Per-student detector state. Feed every decoded frame to [`observe`].
///
/// [`observe`]: CameraCheck::observe
#[derive(Debug, Clone)]
pub struct CameraCheck {
    config: CameraCheckConfig,
    last_sig: Option<[f32; GRID_W * GRID_H]>,
    black_since: Option<Instant>,
    same_since: Option<Instant>,
    reported: Option<CameraProblem>,
}

impl CameraCheck {
    pub fn new(config: CameraCheckConfig) -> CameraCheck {
        CameraCheck {
            config,
            last_sig: None,
            black_since: None,
            same_since: None,
            reported: None,
        }
    }

    /// The problem currently reported, if any.
    pub fn problem(&self) -> Option<CameraProblem> {
        self.reported
    }

    /// Look at one RGB8 frame taken at `now`. Returns `Some(change)` when
    /// the reported problem changes (`Some(None)` = the problem went away).
    pub fn observe(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        now: Instant,
    ) -> Option<Option<CameraProblem>> {
        let sig = signature(rgb, width as usize, height as usize)?;
        let mean = sig.iter().sum::<f32>() / sig.len() as f32;
        let (lo, hi) = sig
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let black = mean < BLACK_LUMA && hi - lo < BLACK_SPREAD;
        self.black_since = if black {
            Some(self.black_since.unwrap_or(now))
        } else {
            None
        };
        let same = self.last_sig.is_some_and(|prev| {
            prev.iter()
                .zip(sig.iter())
                .all(|(a, b)| (a - b).abs() <= FROZEN_DELTA)
        });
        self.same_since = if same {
            Some(self.same_since.unwrap_or(now))
        } else {
            None
        };
        // Compare with the first frame of a still run, not the previous one,
        // so a slow drift counts as motion only once it adds up.
        if !same {
            self.last_sig = Some(sig);
        }

        let held = |since: Option<Instant>, after: Duration| {
            since.is_some_and(|s| now.duration_since(s) >= after)
        };
        let problem = if held(self.black_since, self.config.black_after) {
            Some(CameraProblem::Black)
        } else if held(self.same_since, self.config.frozen_after) {
            Some(CameraProblem::Frozen)
        } else {
            None
        };
        if problem != self.reported {
            self.reported = problem;
            Some(problem)
        } else {
            None
        }
    }

    /// The stream stopped or restarted: forget the history.
    pub fn reset(&mut self) {
        *self = CameraCheck::new(self.config);
    }
}

/// Mean luma per grid cell (BT.601 weights); `None` for an empty or short
/// buffer.
fn signature(rgb: &[u8], w: usize, h: usize) -> Option<[f32; GRID_W * GRID_H]> {
    if w < GRID_W || h < GRID_H || rgb.len() < w * h * 3 {
        return None;
    }
    let mut sum = [0f32; GRID_W * GRID_H];
    let mut count = [0u32; GRID_W * GRID_H];
    // Sample every other pixel each way: a quarter of the work, same answer.
    for y in (0..h).step_by(2) {
        let gy = y * GRID_H / h;
        let row = &rgb[y * w * 3..(y + 1) * w * 3];
        for x in (0..w).step_by(2) {
            let gx = x * GRID_W / w;
            let p = &row[x * 3..x * 3 + 3];
            let luma = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
            sum[gy * GRID_W + gx] += luma;
            count[gy * GRID_W + gx] += 1;
        }
    }
    let mut sig = [0f32; GRID_W * GRID_H];
    for i in 0..sig.len() {
        sig[i] = sum[i] / count[i].max(1) as f32;
    }
    Some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 80;
    const H: u32 = 60;

    fn solid(v: u8) -> Vec<u8> {
        vec![v; (W * H * 3) as usize]
    }

    fn moving(i: u32) -> Vec<u8> {
        let mut f = solid(120);
        let x0 = (i * 7) % W;
        for y in 0..H {
            for x in x0..(x0 + 10).min(W) {
                let o = ((y * W + x) * 3) as usize;
                f[o..o + 3].copy_from_slice(&[250, 250, 250]);
            }
        }
        f
    }

    fn run(frames: impl Fn(u32) -> Vec<u8>, secs: u32) -> Vec<(u32, Option<CameraProblem>)> {
        let mut c = CameraCheck::new(CameraCheckConfig::default());
        let t0 = Instant::now();
        let mut changes = vec![];
        for i in 0..secs * 5 {
            let now = t0 + Duration::from_millis(i as u64 * 200);
            if let Some(p) = c.observe(&frames(i), W, H, now) {
                changes.push((i / 5, p));
            }
        }
        changes
    }

    #[test]
    fn moving_picture_is_fine() {
        assert!(run(moving, 60).is_empty());
    }

    #[test]
    fn black_is_reported_after_ten_seconds() {
        assert_eq!(
            run(|_| solid(3), 30),
            vec![(10, Some(CameraProblem::Black))]
        );
    }

    #[test]
    fn still_picture_is_frozen_after_twenty_seconds_and_recovers() {
        let changes = run(|i| if i < 150 { moving(0) } else { moving(i) }, 40);
        assert_eq!(
            changes,
            vec![(20, Some(CameraProblem::Frozen)), (30, None)],
            "frozen at 20 s, motion again at 30 s"
        );
    }

    #[test]
    fn sensor_noise_is_not_frozen() {
        // A still scene with +-3 luma noise, as a real webcam gives.
        let noisy = |i: u32| {
            let mut f = solid(100);
            for (k, b) in f.iter_mut().enumerate() {
                let h = (k as u32)
                    .wrapping_add(i.wrapping_mul(7919))
                    .wrapping_mul(2654435761);
                *b = b.wrapping_add((h >> 29) as u8);
            }
            f
        };
        let changes = run(noisy, 40);
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn tiny_frames_are_ignored() {
        let mut c = CameraCheck::new(CameraCheckConfig::default());
        assert_eq!(c.observe(&[0; 12], 2, 2, Instant::now()), None);
    }
}
