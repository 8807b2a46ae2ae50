//! Pictures as terminal cells: each cell is '▀' with the foreground colour as
//! the top pixel and the background colour as the bottom pixel.
//!
//! Speed matters more than fidelity here. Ratatui sends only the cells that
//! differ from the previous frame, so the job of this module is to make
//! unchanged parts of a picture produce *identical* cells: colours are
//! quantised (low bits dropped) and a pixel keeps its previous colour unless
//! it moved by more than a small threshold (camera noise would otherwise
//! repaint every cell of every frame).

use crate::proctor::Frame;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// How a picture sits in a box of cells: offsets and size in half-block
/// pixels (`x`/`w` in columns, `y`/`h` in half rows, `y` and `h` even so no
/// cell mixes picture and letterbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub x: u16,
    pub y: u16,
    pub w: u16,
    pub h: u16,
}

/// The largest picture of the frame's aspect that fits `cols` x `rows` cells.
pub fn fit(frame_w: u32, frame_h: u32, cols: u16, rows: u16) -> Fit {
    let (fw, fh) = (frame_w.max(1) as u64, frame_h.max(1) as u64);
    let (bw, bh) = (cols as u64, rows as u64 * 2);
    let (mut w, mut h) = (bw, (bw * fh + fw / 2) / fw);
    if h > bh {
        h = bh;
        w = ((bh * fw + fh / 2) / fh).min(bw);
    }
    let h = (h & !1).max(2.min(bh));
    let w = w.max(1.min(bw));
    let x = (bw - w) / 2;
    let y = ((bh - h) / 2) & !1;
    Fit {
        x: x as u16,
        y: y as u16,
        w: w as u16,
        h: h as u16,
    }
}

/// Scale a frame to `w` x `h` pixels with a box filter (at most 4x4 samples
/// per pixel, enough for thumbnails and cheap for big frames).
pub fn scale(frame: &Frame, w: u16, h: u16) -> Vec<Rgb> {
    let (fw, fh) = (frame.width as usize, frame.height as usize);
    let (w, h) = (w as usize, h as usize);
    let mut out = Vec::with_capacity(w * h);
    if fw == 0 || fh == 0 || frame.rgb.len() < fw * fh * 3 {
        out.resize(w * h, [0, 0, 0]);
        return out;
    }
    for ty in 0..h {
        let y0 = ty * fh / h;
        let y1 = ((ty + 1) * fh / h).max(y0 + 1).min(fh);
        let ys = ((y1 - y0) / 4).max(1);
        for tx in 0..w {
            let x0 = tx * fw / w;
            let x1 = ((tx + 1) * fw / w).max(x0 + 1).min(fw);
            let xs = ((x1 - x0) / 4).max(1);
            let (mut r, mut g, mut b, mut n) = (0u32, 0u32, 0u32, 0u32);
            let mut y = y0;
            while y < y1 {
                let row = y * fw * 3;
                let mut x = x0;
                while x < x1 {
                    let p = row + x * 3;
                    r += frame.rgb[p] as u32;
                    g += frame.rgb[p + 1] as u32;
                    b += frame.rgb[p + 2] as u32;
                    n += 1;
                    x += xs;
                }
                y += ys;
            }
            out.push([(r / n) as u8, (g / n) as u8, (b / n) as u8]);
        }
    }
    out
}

/// Colour quantisation with hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantiser {
    /// Low bits dropped per channel (0 = exact colours).
    pub drop_bits: u8,
    /// A pixel keeps its previous colour while no channel moved more than this.
    pub hysteresis: u8,
}

impl Default for Quantiser {
    fn default() -> Self {
        Quantiser {
            drop_bits: 3,
            hysteresis: 10,
        }
    }
}

impl Quantiser {
    /// Exact colours, no hysteresis (benchmark baseline).
    pub const OFF: Quantiser = Quantiser {
        drop_bits: 0,
        hysteresis: 0,
    };

    /// Quantise one channel to the middle of its bucket.
    fn channel(&self, c: u8) -> u8 {
        if self.drop_bits == 0 {
            return c;
        }
        let d = self.drop_bits.min(7);
        (c & (0xffu8 << d)) | (1u8 << (d - 1))
    }

    /// Quantise `pixels` in place; where `prev` (same length) is close enough
    /// keep its colour instead.
    pub fn apply(&self, pixels: &mut [Rgb], prev: Option<&[Rgb]>) {
        let prev = prev.filter(|p| p.len() == pixels.len());
        for (i, px) in pixels.iter_mut().enumerate() {
            if let Some(old) = prev.map(|p| p[i])
                && self.hysteresis > 0
                && (0..3).all(|c| px[c].abs_diff(old[c]) <= self.hysteresis)
            {
                *px = old;
                continue;
            }
            *px = [
                self.channel(px[0]),
                self.channel(px[1]),
                self.channel(px[2]),
            ];
        }
    }
}

/// The nearest colour of the xterm 256-colour palette (6x6x6 cube or grey
/// ramp), for terminals without 24-bit colour.
pub fn to_ansi256(c: Rgb) -> u8 {
    const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    let idx = |v: u8| -> usize {
        if v < 48 {
            0
        } else if v < 115 {
            1
        } else {
            ((v as usize - 35) / 40).min(5)
        }
    };
    let (ri, gi, bi) = (idx(c[0]), idx(c[1]), idx(c[2]));
    let cube = [LEVELS[ri], LEVELS[gi], LEVELS[bi]];
    let avg = (c[0] as u32 + c[1] as u32 + c[2] as u32) / 3;
    let gi_ = if avg > 238 {
        23
    } else {
        (avg.saturating_sub(3) / 10).min(23)
    };
    let grey_v = (8 + gi_ * 10) as u8;
    let dist = |a: Rgb, b: Rgb| -> u32 {
        (0..3)
            .map(|i| (a[i] as i32 - b[i] as i32).pow(2) as u32)
            .sum()
    };
    if dist(c, [grey_v; 3]) < dist(c, cube) {
        232 + gi_ as u8
    } else {
        (16 + 36 * ri + 6 * gi + bi) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn solid(w: u32, h: u32, c: Rgb) -> Frame {
        Frame {
            width: w,
            height: h,
            rgb: c
                .iter()
                .copied()
                .cycle()
                .take((w * h * 3) as usize)
                .collect(),
            seq: 0,
            decoded_at: Instant::now(),
        }
    }

    #[test]
    fn fit_keeps_aspect_and_even_rows() {
        // 4:3 into 18x6 cells = 18x12 px: height-bound, 16 px wide.
        assert_eq!(
            fit(320, 240, 18, 6),
            Fit {
                x: 1,
                y: 0,
                w: 16,
                h: 12
            }
        );
        // Into a wide box: centred horizontally.
        let f = fit(640, 480, 80, 10);
        assert_eq!((f.w, f.h, f.y), (27, 20, 0));
        assert_eq!(f.x, (80 - 27) / 2);
        // Tall box: letterboxed top and bottom by whole cells.
        let f = fit(320, 240, 20, 20);
        assert_eq!((f.w, f.h), (20, 14));
        assert_eq!(f.y % 2, 0);
    }

    #[test]
    fn scale_averages() {
        let f = solid(320, 240, [200, 100, 50]);
        let px = scale(&f, 16, 12);
        assert_eq!(px.len(), 16 * 12);
        assert!(px.iter().all(|p| *p == [200, 100, 50]));
        // Left half black, right half white → left pixels black, right white.
        let mut g = solid(4, 2, [0, 0, 0]);
        for y in 0..2 {
            for x in 2..4 {
                let p = (y * 4 + x) * 3;
                g.rgb[p..p + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        assert_eq!(scale(&g, 2, 1), vec![[0, 0, 0], [255, 255, 255]]);
    }

    #[test]
    fn quantiser_is_stable_under_noise() {
        let q = Quantiser::default();
        let mut a = vec![[100, 150, 200]; 4];
        q.apply(&mut a, None);
        assert_eq!(a[0], [100, 148, 204]);
        let mut noisy = vec![
            [103, 146, 205],
            [98, 152, 199],
            [140, 150, 200],
            [100, 150, 200],
        ];
        q.apply(&mut noisy, Some(&a));
        assert_eq!(noisy[0], a[0]);
        assert_eq!(noisy[1], a[1]);
        assert_ne!(noisy[2], a[2]);
        let mut exact = vec![[1, 2, 3]];
        Quantiser::OFF.apply(&mut exact, None);
        assert_eq!(exact[0], [1, 2, 3]);
    }

    #[test]
    fn ansi256_mapping() {
        assert_eq!(to_ansi256([0, 0, 0]), 16);
        assert_eq!(to_ansi256([255, 255, 255]), 231);
        assert_eq!(to_ansi256([255, 0, 0]), 196);
        assert_eq!(to_ansi256([128, 128, 128]), 244);
    }
}
