//! The synthetic student's picture, and the reader that gets its marks back.
//!
//! The frame is a grid of 16 x 12 cells (whatever the size, so a scaled copy
//! has the same grid):
//!
//! ```text
//!  rows 0-1   the student's name, white on the background
//!  rows 2-8   an orange square bouncing with time (motion is visible)
//!  rows 9-11  the marks: 48 grey cells, 2 bits each (4 grey levels)
//! ```
//!
//! The marks carry a 6-bit magic, the 32-bit frame counter, the 42-bit send
//! time (ms since the UNIX epoch) and a CRC-16 over those 80 bits. Cells are
//! big flat blocks (20x20 px at 320x240, still 5x5 px at 80x60) in four grey
//! levels 68 apart, so H.264 quantisation and downscaling leave them
//! readable; the reader averages each cell's inner half and rejects any
//! frame whose CRC does not match, so it never returns a wrong value.
//!
//! A monitor measures from pixels alone: loss (counter gaps), freezes (the
//! same counter again), and glass-to-glass latency (now - `sent_unix_ms`).

use super::font;

/// Grid columns and rows (cells are W/16 by H/12 pixels).
const COLS: usize = 16;
const ROWS: usize = 12;
/// First row of the mark band (rows 9, 10, 11).
const MARK_ROW: usize = 9;
const MARK_CELLS: usize = 48;
/// Luma of the four cell levels (limited range, like camera video).
const LEVELS: [u8; 4] = [16, 84, 152, 220];
const MAGIC: u128 = 0b10_1001;

/// What a frame carries for the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    /// Frame number since the student started (wraps at 2^32).
    pub counter: u32,
    /// When the frame was made, ms since the UNIX epoch (42 bits: until 2109).
    pub sent_unix_ms: u64,
}

/// An I420 picture: full-size Y plane, half-size U and V planes, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Yuv420 {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Yuv420 {
    /// A black picture. Width and height must be even (4:2:0).
    pub fn new(width: usize, height: usize) -> Yuv420 {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        Yuv420 {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; cw * ch],
            v: vec![128; cw * ch],
        }
    }

    /// Fill a rectangle (clipped) with one colour.
    fn fill(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, (y, u, v): (u8, u8, u8)) {
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        for row in y0..y1 {
            self.y[row * self.width + x0..row * self.width + x1].fill(y);
        }
        let cw = self.width.div_ceil(2);
        let (cx0, cx1) = (x0 / 2, x1.div_ceil(2));
        for row in y0 / 2..y1.div_ceil(2) {
            self.u[row * cw + cx0..row * cw + cx1].fill(u);
            self.v[row * cw + cx0..row * cw + cx1].fill(v);
        }
    }
}

impl openh264::formats::YUVSource for Yuv420 {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        let cw = self.width.div_ceil(2);
        (self.width, cw, cw)
    }
    fn y(&self) -> &[u8] {
        &self.y
    }
    fn u(&self) -> &[u8] {
        &self.u
    }
    fn v(&self) -> &[u8] {
        &self.v
    }
}

const BACKGROUND: (u8, u8, u8) = (60, 140, 116);
const NAME: (u8, u8, u8) = (235, 128, 128);
const SQUARE: (u8, u8, u8) = (170, 54, 196);

/// Draws frames for one student: the static part (background, name) is
/// drawn once; each frame copies it and adds the square and the marks.
pub struct Pattern {
    base: Yuv420,
    frame: Yuv420,
    texture: Option<Texture>,
}

/// Camera-like detail for benchmarks: a textured background that drifts
/// sideways (motion the encoder can predict) plus fresh per-pixel noise
/// every frame (what a sensor adds, and what costs bits).
struct Texture {
    /// Luma offsets, `2 * width` wide so a drifting window always fits.
    offsets: Vec<i8>,
    stride: usize,
    rng: u64,
}

/// Pixels the texture drifts per frame.
const TEXTURE_DRIFT: usize = 2;
/// Peak sensor noise added per pixel and frame (luma steps): more makes the
/// stream mostly incompressible noise, far beyond what a webcam costs.
const NOISE: u64 = 1;

impl Pattern {
    /// A pattern of `width` x `height` (even, at least 32x24) with `name`.
    pub fn new(width: usize, height: usize, name: &str) -> crate::Result<Pattern> {
        if width < 32 || height < 24 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(crate::Error::Invalid(format!(
                "picture size {width}x{height} cannot carry the test pattern: use even sizes of at least 32x24, e.g. 320x240"
            )));
        }
        let mut base = Yuv420::new(width, height);
        // A gentle horizontal gradient so the picture is not flat.
        for x in 0..width {
            let luma = BACKGROUND.0 + (x * 40 / width) as u8;
            base.fill(
                x,
                0,
                x + 1,
                row_y(height, MARK_ROW),
                (luma, BACKGROUND.1, BACKGROUND.2),
            );
        }
        draw_text(&mut base, name);
        Ok(Pattern {
            frame: base.clone(),
            base,
            texture: None,
        })
    }

    /// Add camera-like texture and noise behind the name and the square
    /// (never in the mark band): the stream then costs about what a webcam's
    /// does instead of being nearly free to encode and decode.
    pub fn with_texture(mut self) -> Pattern {
        let (w, h) = (self.base.width, row_y(self.base.height, MARK_ROW));
        let stride = 2 * w;
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut offsets = vec![0i8; stride * h];
        for y in 0..h {
            for x in 0..stride {
                // Soft blobs plus fine grain, like a room behind a student.
                let (fx, fy) = (x as f32, y as f32);
                let blobs = 14.0 * (fx * 0.09).sin() * (fy * 0.07).cos()
                    + 9.0 * ((fx + 2.0 * fy) * 0.031).sin();
                let grain = (next_random(&mut rng) % 13) as f32 - 6.0;
                offsets[y * stride + x] = (blobs + grain) as i8;
            }
        }
        self.texture = Some(Texture {
            offsets,
            stride,
            rng,
        });
        self
    }

    /// The picture carrying `marks`; the square's place follows the send time.
    pub fn draw(&mut self, marks: Marks) -> &Yuv420 {
        let (w, h) = (self.base.width, self.base.height);
        self.frame.y.copy_from_slice(&self.base.y);
        self.frame.u.copy_from_slice(&self.base.u);
        self.frame.v.copy_from_slice(&self.base.v);
        if let Some(t) = &mut self.texture {
            let shift = (marks.counter as usize * TEXTURE_DRIFT) % w;
            for y in 0..row_y(h, MARK_ROW) {
                let row = &t.offsets[y * t.stride + shift..y * t.stride + shift + w];
                for (x, off) in row.iter().enumerate() {
                    let i = y * w + x;
                    let base = self.base.y[i];
                    if base == NAME.0 {
                        continue; // keep the name crisp
                    }
                    let noise = (next_random(&mut t.rng) % (2 * NOISE + 1)) as i16 - NOISE as i16;
                    self.frame.y[i] = (base as i16 + *off as i16 + noise).clamp(16, 235) as u8;
                }
            }
        }
        // The square bounces across rows 2-8: 4 s left to right and back,
        // 3 s top to bottom and back.
        let side = row_y(h, 2) - row_y(h, 0);
        let (top, bottom) = (row_y(h, 2), row_y(h, MARK_ROW));
        let bounce = |range: usize, period_ms: u64| -> usize {
            let phase = marks.sent_unix_ms % period_ms;
            let half = period_ms / 2;
            let t = if phase < half {
                phase
            } else {
                period_ms - phase
            };
            (range as u64 * t / half) as usize
        };
        let x = bounce(w.saturating_sub(side), 4000);
        let y = top + bounce((bottom - top).saturating_sub(side), 3000);
        self.frame.fill(x, y, x + side, y + side, SQUARE);
        write_marks(&mut self.frame, marks);
        &self.frame
    }
}

/// xorshift64: cheap, deterministic noise (not for anything secret).
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Pixel row where grid row `r` starts.
fn row_y(height: usize, r: usize) -> usize {
    r * height / ROWS
}

fn col_x(width: usize, c: usize) -> usize {
    c * width / COLS
}

/// The name, as large as fits in rows 0-1, centred.
fn draw_text(img: &mut Yuv420, name: &str) {
    let area_h = row_y(img.height, 2);
    let advance = font::GLYPH_W + 1;
    let mut chars: Vec<char> = name.chars().filter(|c| !c.is_control()).collect();
    let max_chars = (img.width.saturating_sub(2)) / advance;
    chars.truncate(max_chars.max(1));
    if chars.is_empty() {
        return;
    }
    let scale_h = area_h / (font::GLYPH_H + 2);
    let scale_w = img.width / (advance * chars.len() + 1);
    let scale = scale_h.min(scale_w).max(1);
    let text_w = (advance * chars.len() - 1) * scale;
    let x0 = img.width.saturating_sub(text_w) / 2;
    let y0 = area_h.saturating_sub(font::GLYPH_H * scale) / 2;
    for (i, c) in chars.iter().enumerate() {
        let g = font::glyph(*c);
        for (gy, bits) in g.iter().enumerate() {
            for gx in 0..font::GLYPH_W {
                if bits & (0x10 >> gx) != 0 {
                    let px = x0 + (i * advance + gx) * scale;
                    let py = y0 + gy * scale;
                    img.fill(px, py, px + scale, py + scale, NAME);
                }
            }
        }
    }
}

/// The 96 bits of `marks`: magic, counter, time, CRC.
fn encode_bits(marks: Marks) -> u128 {
    let payload = (MAGIC << 74)
        | ((marks.counter as u128) << 42)
        | (marks.sent_unix_ms as u128 & ((1 << 42) - 1));
    let bytes = payload.to_be_bytes();
    (payload << 16) | crc16(&bytes[6..16]) as u128
}

fn decode_bits(bits: u128) -> Option<Marks> {
    let payload = bits >> 16;
    let bytes = payload.to_be_bytes();
    if (bits & 0xFFFF) as u16 != crc16(&bytes[6..16]) || payload >> 74 != MAGIC {
        return None;
    }
    Some(Marks {
        counter: ((payload >> 42) & 0xFFFF_FFFF) as u32,
        sent_unix_ms: (payload & ((1 << 42) - 1)) as u64,
    })
}

/// CRC-16/CCITT-FALSE.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn cell_rect(w: usize, h: usize, i: usize) -> (usize, usize, usize, usize) {
    let (c, r) = (i % COLS, MARK_ROW + i / COLS);
    (col_x(w, c), row_y(h, r), col_x(w, c + 1), row_y(h, r + 1))
}

fn write_marks(img: &mut Yuv420, marks: Marks) {
    let bits = encode_bits(marks);
    let (w, h) = (img.width, img.height);
    for i in 0..MARK_CELLS {
        let level = ((bits >> (94 - 2 * i)) & 3) as usize;
        let (x0, y0, x1, y1) = cell_rect(w, h, i);
        img.fill(x0, y0, x1, y1, (LEVELS[level], 128, 128));
    }
}

/// Read the marks from a luma plane (`stride` bytes per row), e.g. the Y
/// plane of a decoded frame at any size down to about 80x60. `None` when the
/// picture carries no readable marks (not our pattern, or damaged).
pub fn read_marks(luma: &[u8], stride: usize, width: usize, height: usize) -> Option<Marks> {
    if stride < width || luma.len() < stride * height.saturating_sub(1) + width {
        return None;
    }
    read_with(width, height, |x, y| luma[y * stride + x])
}

/// Read the marks from packed RGB (3 bytes per pixel, no padding), e.g. a
/// decoded frame converted for display or a scaled thumbnail.
pub fn read_marks_rgb(rgb: &[u8], width: usize, height: usize) -> Option<Marks> {
    if rgb.len() < width * height * 3 {
        return None;
    }
    read_with(width, height, |x, y| {
        let p = &rgb[(y * width + x) * 3..];
        // Full-range luma of a grey pixel, back to the limited range the
        // levels are defined in (BT.601, as decoders convert).
        let full = (77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8;
        (16 + full * 219 / 255) as u8
    })
}

fn read_with(width: usize, height: usize, luma: impl Fn(usize, usize) -> u8) -> Option<Marks> {
    if width < COLS * 3 || height < ROWS * 3 {
        return None;
    }
    let mut bits: u128 = 0;
    for i in 0..MARK_CELLS {
        let (x0, y0, x1, y1) = cell_rect(width, height, i);
        // The inner half of the cell: edges blur under compression and scaling.
        let (mx, my) = ((x1 - x0) / 4, (y1 - y0) / 4);
        let (sx0, sx1, sy0, sy1) = (
            x0 + mx,
            (x1 - mx).max(x0 + mx + 1),
            y0 + my,
            (y1 - my).max(y0 + my + 1),
        );
        let (mut sum, mut n) = (0u32, 0u32);
        for y in sy0..sy1.min(height) {
            for x in sx0..sx1.min(width) {
                sum += luma(x, y) as u32;
                n += 1;
            }
        }
        let avg = sum.checked_div(n)? as i32;
        let level = LEVELS
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| (avg - **l as i32).abs())
            .map(|(k, _)| k as u128)
            .unwrap_or(0);
        bits = (bits << 2) | level;
    }
    decode_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::formats::YUVSource;

    const MARKS: Marks = Marks {
        counter: 0xDEAD_BEEF,
        sent_unix_ms: 1_764_123_456_789,
    };

    #[test]
    fn bits_round_trip_and_crc_rejects_damage() {
        let bits = encode_bits(MARKS);
        assert_eq!(decode_bits(bits), Some(MARKS));
        for flip in [0, 17, 50, 95] {
            assert_eq!(decode_bits(bits ^ (1 << flip)), None, "bit {flip}");
        }
    }

    #[test]
    fn raw_frames_read_back_at_several_sizes() {
        for (w, h) in [(320, 240), (640, 480), (160, 120), (96, 72), (640, 360)] {
            let mut p = Pattern::new(w, h, "Student 7").expect("pattern");
            let f = p.draw(MARKS);
            assert_eq!(read_marks(&f.y, w, w, h), Some(MARKS), "{w}x{h}");
        }
    }

    #[test]
    fn pictures_without_marks_are_rejected() {
        let blank = Yuv420::new(320, 240);
        assert_eq!(read_marks(&blank.y, 320, 320, 240), None);
        let noise: Vec<u8> = (0..320 * 240).map(|i| (i * 7919 % 251) as u8).collect();
        assert_eq!(read_marks(&noise, 320, 320, 240), None);
        assert_eq!(read_marks(&blank.y, 320, 20, 10), None);
        assert_eq!(read_marks(&[], 320, 320, 240), None);
    }

    #[test]
    fn the_square_moves_and_the_name_is_drawn() {
        let mut p = Pattern::new(320, 240, "ANN").expect("pattern");
        let a = p
            .draw(Marks {
                counter: 0,
                sent_unix_ms: 0,
            })
            .clone();
        let b = p
            .draw(Marks {
                counter: 1,
                sent_unix_ms: 700,
            })
            .clone();
        let moving_rows = row_y(240, 2) * 320..row_y(240, MARK_ROW) * 320;
        assert_ne!(a.y[moving_rows.clone()], b.y[moving_rows]);
        let name_rows = &a.y[..row_y(240, 2) * 320];
        assert!(name_rows.iter().filter(|&&l| l == NAME.0).count() > 100);
        // Another name gives another picture.
        let mut q = Pattern::new(320, 240, "BOB").expect("pattern");
        assert_ne!(
            q.draw(Marks {
                counter: 0,
                sent_unix_ms: 0
            })
            .y,
            a.y
        );
    }

    #[test]
    fn odd_or_tiny_sizes_are_refused() {
        assert!(Pattern::new(321, 240, "x").is_err());
        assert!(Pattern::new(16, 12, "x").is_err());
    }

    /// Area-average downscale of one plane.
    fn downscale(src: &[u8], stride: usize, w: usize, h: usize, dw: usize, dh: usize) -> Vec<u8> {
        let mut out = vec![0u8; dw * dh];
        for dy in 0..dh {
            for dx in 0..dw {
                let (x0, x1) = (dx * w / dw, ((dx + 1) * w / dw).max(dx * w / dw + 1));
                let (y0, y1) = (dy * h / dh, ((dy + 1) * h / dh).max(dy * h / dh + 1));
                let mut s = 0u32;
                for y in y0..y1 {
                    for x in x0..x1 {
                        s += src[y * stride + x] as u32;
                    }
                }
                out[dy * dw + dx] = (s / ((x1 - x0) * (y1 - y0)) as u32) as u8;
            }
        }
        out
    }

    #[test]
    fn texture_changes_every_frame_but_not_the_marks_or_the_name() {
        let mut plain = Pattern::new(320, 240, "ANN").expect("pattern");
        let mut textured = Pattern::new(320, 240, "ANN")
            .expect("pattern")
            .with_texture();
        let m = Marks {
            counter: 5,
            sent_unix_ms: 1000,
        };
        let a = plain.draw(m).clone();
        let b = textured.draw(m).clone();
        let c = textured.draw(Marks { counter: 6, ..m }).clone();
        let band = row_y(240, MARK_ROW) * 320..;
        assert_eq!(a.y[band.clone()], b.y[band.clone()]);
        assert_ne!(a.y[..band.start], b.y[..band.start]);
        assert_ne!(b.y[..band.start], c.y[..band.start]);
        let name_pixels = |f: &Yuv420| {
            f.y[..row_y(240, 2) * 320]
                .iter()
                .filter(|&&l| l == NAME.0)
                .count()
        };
        assert_eq!(name_pixels(&a), name_pixels(&b));
        assert_eq!(read_marks(&b.y, 320, 320, 240), Some(m));
    }

    /// Encode with our encoder settings, decode with openh264, read back —
    /// at full size, in RGB, and downscaled to 80x60 — for a run of frames
    /// (P-frames too, not only the first keyframe).
    #[test]
    fn marks_survive_h264_and_downscaling() {
        for (w, h, texture) in [
            (320usize, 240usize, false),
            (640, 480, false),
            (320, 240, true),
            (640, 480, true),
        ] {
            let mut pattern = Pattern::new(w, h, "Dana Scully").expect("pattern");
            if texture {
                pattern = pattern.with_texture();
            }
            let mut enc = if texture {
                super::super::encoder::VideoEncoder::rate_controlled(w, h, 5)
            } else {
                super::super::encoder::VideoEncoder::new(w, h, 5)
            }
            .expect("encoder");
            let mut dec = openh264::decoder::Decoder::new().expect("decoder");
            let mut read = 0;
            for i in 0..12u32 {
                let marks = Marks {
                    counter: 1000 + i,
                    sent_unix_ms: 1_764_000_000_000 + 200 * i as u64,
                };
                let Some(frame) = enc.encode(pattern.draw(marks)).expect("encode") else {
                    continue;
                };
                let Some(yuv) = dec.decode(&frame.data).expect("decode") else {
                    continue;
                };
                let (dw, dh) = yuv.dimensions();
                let (ys, _, _) = yuv.strides();
                assert_eq!(
                    read_marks(yuv.y(), ys, dw, dh),
                    Some(marks),
                    "{w}x{h} frame {i}"
                );
                let mut rgb = vec![0u8; dw * dh * 3];
                yuv.write_rgb8(&mut rgb);
                assert_eq!(
                    read_marks_rgb(&rgb, dw, dh),
                    Some(marks),
                    "rgb {w}x{h} frame {i}"
                );
                let small = downscale(yuv.y(), ys, dw, dh, 80, 60);
                assert_eq!(
                    read_marks(&small, 80, 80, 60),
                    Some(marks),
                    "80x60 from {w}x{h} frame {i}"
                );
                let img = image::RgbImage::from_raw(dw as u32, dh as u32, rgb).expect("image");
                let thumb =
                    image::imageops::resize(&img, 80, 60, image::imageops::FilterType::Triangle);
                assert_eq!(
                    read_marks_rgb(thumb.as_raw(), 80, 60),
                    Some(marks),
                    "rgb 80x60 frame {i}"
                );
                read += 1;
            }
            assert!(read >= 10, "only {read} of 12 frames decoded at {w}x{h}");
        }
    }
}
