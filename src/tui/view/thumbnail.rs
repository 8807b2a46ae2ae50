//! Draw a student's newest frame as half-block cells, repainting each tile no
//! more often than the [`crate::tui::pacer::Pacer`] allows.
//!
//! The cache is drawing memory, not app state: the previous picture of each
//! tile on screen (for colour hysteresis), when it was last repainted, and
//! which frame it showed. Tiles that were not drawn in a frame are forgotten.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;

use crate::proctor::{FrameSlots, StudentId};
use crate::tui::halfblock::{self, Fit, Quantiser, Rgb};

const UPPER_HALF: &str = "▀";

#[derive(Debug)]
struct Entry {
    seq: u64,
    size: (u16, u16),
    fit: Fit,
    pixels: Vec<Rgb>,
    repainted: Instant,
}

/// Pictures on screen, per student.
#[derive(Debug)]
pub struct ThumbCache {
    entries: HashMap<StudentId, Entry>,
    touched: HashSet<StudentId>,
    /// Colour quantisation and hysteresis.
    pub quantiser: Quantiser,
    /// Shortest time between two repaints of one tile (set from the pacer).
    pub interval: Duration,
    /// Tiles repainted during the current draw.
    pub repaints: usize,
    /// Earliest time a tile that skipped a newer frame becomes due.
    pub deferred: Option<Instant>,
}

impl Default for ThumbCache {
    fn default() -> Self {
        ThumbCache {
            entries: HashMap::new(),
            touched: HashSet::new(),
            quantiser: Quantiser::default(),
            interval: Duration::ZERO,
            repaints: 0,
            deferred: None,
        }
    }
}

impl ThumbCache {
    /// An empty cache quantising colours with `quantiser`.
    pub fn new(quantiser: Quantiser) -> Self {
        ThumbCache {
            quantiser,
            ..ThumbCache::default()
        }
    }

    /// Call before drawing a frame.
    pub fn begin(&mut self) {
        self.repaints = 0;
        self.deferred = None;
        self.touched.clear();
    }

    /// Call after drawing a frame: forget tiles no longer on screen.
    pub fn end(&mut self) {
        let touched = &self.touched;
        self.entries.retain(|k, _| touched.contains(k));
    }

    /// Paint the student's picture into `area`. Returns false when there is
    /// no picture to show (the caller draws a placeholder).
    pub fn draw(
        &mut self,
        buf: &mut Buffer,
        area: Rect,
        student: &StudentId,
        frames: &FrameSlots,
        now: Instant,
        letterbox: Color,
    ) -> bool {
        if area.width == 0 || area.height == 0 {
            return false;
        }
        let size = (area.width, area.height);
        let frame = frames.latest(student);
        let entry = self.entries.get(student);
        let due = match (&frame, entry) {
            (None, None) => return false,
            (None, Some(e)) => e.size != size,
            (Some(_), None) => true,
            (Some(_), Some(e)) if e.size != size => true,
            (Some(f), Some(e)) if f.seq != e.seq => {
                let at = e.repainted + self.interval;
                if now >= at {
                    true
                } else {
                    self.deferred = Some(self.deferred.map_or(at, |d| d.min(at)));
                    false
                }
            }
            _ => false,
        };
        self.touched.insert(student.clone());
        if due {
            let Some(f) = frame else { return false };
            let fit = halfblock::fit(f.width, f.height, area.width, area.height);
            let mut pixels = halfblock::scale(&f, fit.w, fit.h);
            let prev = entry
                .filter(|e| e.size == size)
                .map(|e| e.pixels.as_slice());
            self.quantiser.apply(&mut pixels, prev);
            self.repaints += 1;
            // Spread tiles over the interval so they do not all repaint in
            // the same draw (bursts fill link buffers and add latency).
            let spread = self.interval.mul_f64(stagger(student) * 0.5);
            self.entries.insert(
                student.clone(),
                Entry {
                    seq: f.seq,
                    size,
                    fit,
                    pixels,
                    repainted: now.checked_sub(spread).unwrap_or(now),
                },
            );
        }
        let Some(e) = self.entries.get(student) else {
            return false;
        };
        paint(buf, area, e.fit, &e.pixels, letterbox);
        true
    }
}

/// A fixed fraction in 0..1 per student.
fn stagger(student: &StudentId) -> f64 {
    let h = student.0.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    (h % 1024) as f64 / 1024.0
}

/// Write the pixels as '▀' cells; cells outside the picture get the
/// letterbox colour.
fn paint(buf: &mut Buffer, area: Rect, fit: Fit, pixels: &[Rgb], letterbox: Color) {
    let rgb = |p: Rgb| Color::Rgb(p[0], p[1], p[2]);
    for row in 0..area.height {
        let py = row * 2;
        for col in 0..area.width {
            let Some(cell) = buf.cell_mut((area.x + col, area.y + row)) else {
                continue;
            };
            let inside = col >= fit.x && col < fit.x + fit.w && py >= fit.y && py < fit.y + fit.h;
            if inside {
                let (x, y) = ((col - fit.x) as usize, (py - fit.y) as usize);
                let w = fit.w as usize;
                let top = pixels.get(y * w + x).copied().unwrap_or_default();
                let bottom = pixels.get((y + 1) * w + x).copied().unwrap_or(top);
                cell.set_symbol(UPPER_HALF)
                    .set_fg(rgb(top))
                    .set_bg(rgb(bottom));
            } else {
                cell.set_symbol(" ").set_fg(letterbox).set_bg(letterbox);
            }
        }
    }
}
