//! Draw a student's newest frame as half-block cells, repainting each tile no
//! more often than the [`crate::tui::pacer::Pacer`] allows.
//!
//! The cache is drawing memory, not app state: the previous picture of each
//! tile on screen (for colour hysteresis), when it was last repainted, and
//! which frame it showed. Tiles that were not drawn in a frame are forgotten.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ratatui::buffer::{Buffer, CellDiffOption};
use ratatui::layout::Rect;
use ratatui::style::Color;

use crate::proctor::{Frame, FrameSlots, StudentId};
use crate::tui::halfblock::{self, Fit, Quantiser, Rgb};
use crate::tui::{iterm2, kitty, sixel};

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
    /// Terminal graphics (kitty, sixel, iTerm2) instead of half-blocks.
    pub images: Option<ImageState>,
}

/// The terminal graphics protocol and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageProtocol {
    /// Placed images with ids, scaled by the terminal, deleted explicitly.
    Kitty,
    /// Painted into the cells; palette of at most `colors` (terminal's
    /// registers), images no larger than `max_px`.
    Sixel { colors: u16, max_px: (u32, u32) },
    /// Painted into the cells (PNG, scaled by the terminal).
    Iterm2,
}

impl ImageProtocol {
    /// Images painted into cells (sixel, iTerm2): no ids, nothing to
    /// delete; the cells under them are kept out of ratatui's diff.
    fn painted(self) -> bool {
        !matches!(self, ImageProtocol::Kitty)
    }
}

/// Images on screen and the escape sequences of the current frame.
#[derive(Debug)]
pub struct ImageState {
    pub protocol: ImageProtocol,
    /// Cell size in pixels.
    pub cell_px: (u32, u32),
    /// False while an overlay covers the screen (images would sit on top of
    /// it): pictures are drawn as half-blocks then.
    pub allowed: bool,
    /// Student → (image id, cells) currently on screen.
    shown: HashMap<StudentId, (u32, Rect)>,
    placed: HashSet<StudentId>,
    /// Cells of the pictures in this frame (text drawn over them later is
    /// found and repainted over the image every time).
    covered: Vec<(Rect, Color)>,
    /// Escape sequences to write with the frame.
    output: Vec<u8>,
    uploads_this_frame: usize,
    /// Image bytes one draw may write (set from the pacer's budget): once
    /// reached, further uploads wait for the next draw, so a slow link never
    /// gets a burst that stalls the keys for seconds.
    pub draw_budget: usize,
    /// Pictures held back by the per-draw limits in the last draw: they go
    /// first in this one (otherwise the first tiles of the grid, always due
    /// again, would take every upload and the last ones never show).
    starved_prev: HashSet<StudentId>,
    starved_now: HashSet<StudentId>,
    /// Held-back pictures not reached yet in this draw.
    starved_left: usize,
}

/// Most images encoded and sent in one draw.
const UPLOADS_PER_DRAW: usize = 6;

impl ImageState {
    pub fn new(protocol: ImageProtocol, cell_px: (u32, u32)) -> Self {
        ImageState {
            protocol,
            cell_px: (cell_px.0.max(1), cell_px.1.max(1)),
            allowed: true,
            shown: HashMap::new(),
            placed: HashSet::new(),
            covered: Vec::new(),
            output: Vec::new(),
            uploads_this_frame: 0,
            draw_budget: usize::MAX,
            starved_prev: HashSet::new(),
            starved_now: HashSet::new(),
            starved_left: 0,
        }
    }
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
            images: None,
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
        if let Some(k) = &mut self.images {
            k.uploads_this_frame = 0;
            k.covered.clear();
            k.starved_prev = std::mem::take(&mut k.starved_now);
            k.starved_left = k.starved_prev.len();
        }
    }

    /// Call after drawing a frame (overlays included): forget tiles no
    /// longer on screen, delete their kitty images, and make text drawn over
    /// a painted picture (a state badge) win over it.
    pub fn end(&mut self, buf: &mut Buffer) {
        let touched = &self.touched;
        self.entries.retain(|k, _| touched.contains(k));
        if let Some(k) = &mut self.images {
            let gone: Vec<StudentId> = k
                .shown
                .keys()
                .filter(|s| !k.placed.contains(*s))
                .cloned()
                .collect();
            for s in gone {
                if let Some((id, _)) = k.shown.remove(&s)
                    && k.protocol == ImageProtocol::Kitty
                {
                    k.output.extend_from_slice(&kitty::delete(id));
                }
            }
            k.placed.clear();
            if k.protocol.painted() {
                for (r, letterbox) in &k.covered {
                    uncover_text(buf, *r, *letterbox);
                }
            }
        }
    }

    /// Image escape sequences produced by the last frame (empty otherwise).
    /// They go out before the frame's text, so text always ends on top.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.images
            .as_mut()
            .map(|k| std::mem::take(&mut k.output))
            .unwrap_or_default()
    }

    /// The screen was cleared: every image must be sent again.
    pub fn forget_images(&mut self) {
        if let Some(k) = &mut self.images {
            k.shown.clear();
            if k.protocol == ImageProtocol::Kitty {
                k.output.extend_from_slice(kitty::DELETE_ALL);
            }
        }
        self.entries.clear();
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
        // An image entry keeps no pixels: half-blocks need a fresh picture.
        let no_pixels = entry.is_some_and(|e| e.pixels.is_empty());
        self.touched.insert(student.clone());
        if let Some(k) = &mut self.images {
            if k.allowed {
                return self.draw_image(buf, area, student, frame.as_deref(), due, now, letterbox);
            }
            // Half-blocks under an overlay. A kitty image is deleted at the
            // end of the frame (not placed); a painted one is overwritten by
            // the half-blocks, so it must be sent again afterwards.
            if k.protocol.painted() {
                k.shown.remove(student);
            }
        }
        if due || no_pixels {
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

impl ThumbCache {
    /// Terminal graphics: an image upload when the picture is due or moved;
    /// the cells under it are blank (kitty places images above them) or
    /// left out of the diff (sixel, iTerm2 paint into them).
    #[allow(clippy::too_many_arguments)]
    fn draw_image(
        &mut self,
        buf: &mut Buffer,
        area: Rect,
        student: &StudentId,
        frame: Option<&Frame>,
        due: bool,
        now: Instant,
        letterbox: Color,
    ) -> bool {
        let Some(f) = frame else { return false };
        let spread = self.interval.mul_f64(stagger(student) * 0.5);
        let quantiser = self.quantiser;
        let Some(k) = self.images.as_mut() else {
            return false;
        };
        let fit = halfblock::fit(f.width, f.height, area.width, area.height);
        let (cells, pw, ph) = image_geometry(k.protocol, k.cell_px, area, fit, f);
        let moved = k.shown.get(student).is_none_or(|(_, c)| *c != cells);
        // Encoding happens while drawing: a few images per frame keep every
        // frame short; the rest follow in the next frames.
        let starved = k.starved_prev.contains(student);
        if starved {
            k.starved_left = k.starved_left.saturating_sub(1);
        }
        let over_cap = k.uploads_this_frame >= UPLOADS_PER_DRAW
            || (k.uploads_this_frame > 0 && k.output.len() >= k.draw_budget)
            || (!starved && k.starved_left > 0);
        let mut on_screen = !moved;
        if (due || moved) && over_cap {
            self.deferred = Some(now);
            k.starved_now.insert(student.clone());
        } else if due || moved {
            k.uploads_this_frame += 1;
            let mut pixels = halfblock::scale(f, pw as u16, ph as u16);
            if !matches!(k.protocol, ImageProtocol::Sixel { .. }) {
                // PNG: fewer distinct colours compress better (half the
                // bytes on gradients); sixel has its own palette.
                quantiser.apply(&mut pixels, None);
            }
            let id = kitty::image_id(&student.0);
            if k.protocol == ImageProtocol::Kitty && moved && k.shown.contains_key(student) {
                // Replacing the data keeps the placement's id, but make sure
                // no placement is left where the picture was.
                k.output.extend_from_slice(&kitty::delete(id));
            }
            let bytes = match k.protocol {
                ImageProtocol::Kitty => Some(kitty::place(&kitty::Upload {
                    id,
                    cells,
                    width: pw,
                    height: ph,
                    pixels,
                })),
                ImageProtocol::Sixel { colors, .. } => {
                    let colors = colors.min(if cells.width >= 60 {
                        sixel::LARGE_COLORS
                    } else {
                        sixel::THUMB_COLORS
                    });
                    sixel::encode(pw, ph, &pixels, colors).map(|s| sixel::place(cells, &s))
                }
                ImageProtocol::Iterm2 => iterm2::place(cells, pw, ph, &pixels),
            };
            if let Some(bytes) = bytes.filter(|b| !b.is_empty()) {
                k.output.extend_from_slice(&bytes);
                k.shown.insert(student.clone(), (id, cells));
                on_screen = true;
                self.repaints += 1;
                self.entries.insert(
                    student.clone(),
                    Entry {
                        seq: f.seq,
                        size: (area.width, area.height),
                        fit,
                        pixels: Vec::new(),
                        repainted: now.checked_sub(spread).unwrap_or(now),
                    },
                );
            }
        }
        k.placed.insert(student.clone());
        let painted = k.protocol.painted() && on_screen;
        if painted {
            k.covered.push((cells, letterbox));
        }
        for y in area.top()..area.bottom() {
            for x in area.left()..area.right() {
                if let Some(cell) = buf.cell_mut((x, y)) {
                    cell.set_symbol(" ").set_fg(letterbox).set_bg(letterbox);
                    if painted && cells.contains(ratatui::layout::Position::new(x, y)) {
                        cell.set_diff_option(CellDiffOption::Skip);
                    }
                }
            }
        }
        true
    }
}

/// Largest sixel upscaling of a frame.
const MAX_UPSCALE: f64 = 2.0;

/// Where an image goes (cells) and its size in pixels.
///
/// Kitty and iTerm2 scale the image to the cells themselves, so the picture
/// is sent at most at the frame's own size. A sixel image is shown pixel for
/// pixel and must cover whole cells exactly (see [`sixel`]): it is the
/// largest whole-cell rectangle with the frame's aspect that fits the area,
/// [`MAX_UPSCALE`] and the terminal's sixel limit, centred in the area.
fn image_geometry(
    protocol: ImageProtocol,
    (cw, ch): (u32, u32),
    area: Rect,
    fit: Fit,
    f: &Frame,
) -> (Rect, u32, u32) {
    match protocol {
        ImageProtocol::Kitty | ImageProtocol::Iterm2 => {
            let cells = Rect::new(
                area.x + fit.x,
                area.y + fit.y / 2,
                fit.w,
                (fit.h / 2).max(1),
            );
            let pw = (cells.width as u32 * cw).min(f.width).max(1);
            let ph = (cells.height as u32 * ch).min(f.height).max(1);
            (cells, pw, ph)
        }
        ImageProtocol::Sixel { max_px, .. } => {
            let (fw, fh) = (f.width.max(1) as f64, f.height.max(1) as f64);
            let area_w = area.width as f64 * cw as f64;
            let area_h = area.height as f64 * ch as f64;
            // Up to twice the frame's size: the enlarged view should fill
            // the pane, but bytes grow with the area.
            let scale = (area_w / fw)
                .min(area_h / fh)
                .min(MAX_UPSCALE)
                .min(max_px.0 as f64 / fw)
                .min(max_px.1 as f64 / fh);
            let w = ((fw * scale / cw as f64).round() as u16).clamp(1, area.width);
            let h = ((fh * scale / ch as f64).round() as u16).clamp(1, area.height);
            // Rounding may overshoot the limit by part of a cell.
            let w = w.min((max_px.0 / cw).max(1) as u16);
            let h = h.min((max_px.1 / ch).max(1) as u16);
            let cells = Rect::new(
                area.x + (area.width - w) / 2,
                area.y + (area.height - h) / 2,
                w,
                h,
            );
            (cells, w as u32 * cw, h as u32 * ch)
        }
    }
}

/// Cells of a painted picture that something drew text on (a badge, a
/// pop-up): take them out of "skip" and repaint them every frame, after the
/// image, so the text stays on top.
fn uncover_text(buf: &mut Buffer, r: Rect, letterbox: Color) {
    for y in r.top()..r.bottom() {
        for x in r.left()..r.right() {
            if let Some(cell) = buf.cell_mut((x, y)) {
                let blank = cell.symbol() == " "
                    && cell.fg == letterbox
                    && cell.bg == letterbox
                    && cell.modifier.is_empty();
                if cell.diff_option == CellDiffOption::Skip && !blank {
                    cell.set_diff_option(CellDiffOption::AlwaysUpdate);
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fake::pattern_frame;

    fn setup() -> (FrameSlots, StudentId, Buffer) {
        let slots = FrameSlots::default();
        let id = StudentId("s1".into());
        slots.publish(&id, pattern_frame(0, 1, 320, 240));
        (slots, id, Buffer::empty(Rect::new(0, 0, 40, 12)))
    }

    #[test]
    fn halfblocks_repaint_only_when_due() {
        let (slots, id, mut buf) = setup();
        let mut cache = ThumbCache::new(Quantiser::default());
        cache.interval = Duration::from_secs(1);
        let t0 = Instant::now();
        cache.begin();
        assert!(cache.draw(
            &mut buf,
            Rect::new(0, 0, 20, 6),
            &id,
            &slots,
            t0,
            Color::Reset
        ));
        cache.end(&mut buf);
        assert_eq!(cache.repaints, 1);
        assert_eq!(buf[(10, 3)].symbol(), UPPER_HALF);
        // A newer frame before the interval: deferred, old picture kept.
        slots.publish(&id, pattern_frame(0, 2, 320, 240));
        cache.begin();
        cache.draw(
            &mut buf,
            Rect::new(0, 0, 20, 6),
            &id,
            &slots,
            t0,
            Color::Reset,
        );
        cache.end(&mut buf);
        assert_eq!(cache.repaints, 0);
        assert!(cache.deferred.is_some());
        cache.begin();
        let later = t0 + Duration::from_secs(2);
        cache.draw(
            &mut buf,
            Rect::new(0, 0, 20, 6),
            &id,
            &slots,
            later,
            Color::Reset,
        );
        cache.end(&mut buf);
        assert_eq!(cache.repaints, 1);
    }

    #[test]
    fn kitty_places_and_deletes_images() {
        let (slots, id, mut buf) = setup();
        let mut cache = ThumbCache::new(Quantiser::default());
        cache.images = Some(ImageState::new(ImageProtocol::Kitty, (10, 20)));
        let t0 = Instant::now();
        cache.begin();
        assert!(cache.draw(
            &mut buf,
            Rect::new(0, 0, 20, 6),
            &id,
            &slots,
            t0,
            Color::Reset
        ));
        cache.end(&mut buf);
        let out = String::from_utf8(cache.take_output()).unwrap();
        assert!(out.contains("\x1b_Ga=T,f=100,i="), "{out:.80}");
        assert_eq!(buf[(10, 3)].symbol(), " ", "cells under an image are blank");
        // Same frame again: nothing to send.
        cache.begin();
        cache.draw(
            &mut buf,
            Rect::new(0, 0, 20, 6),
            &id,
            &slots,
            t0,
            Color::Reset,
        );
        cache.end(&mut buf);
        assert!(cache.take_output().is_empty());
        // Not drawn any more: deleted.
        cache.begin();
        cache.end(&mut buf);
        let out = String::from_utf8(cache.take_output()).unwrap();
        assert!(out.starts_with("\x1b_Ga=d,d=I,i="), "{out}");
    }

    fn sixel_cache() -> ThumbCache {
        let mut cache = ThumbCache::new(Quantiser::default());
        cache.images = Some(ImageState::new(
            ImageProtocol::Sixel {
                colors: 256,
                max_px: (1000, 1000),
            },
            (10, 20),
        ));
        cache
    }

    fn skipped(buf: &Buffer) -> usize {
        buf.content
            .iter()
            .filter(|c| c.diff_option == CellDiffOption::Skip)
            .count()
    }

    #[test]
    fn sixel_cells_are_skipped_while_shown_and_rewritten_when_gone() {
        let (slots, id, mut buf) = setup();
        let mut cache = sixel_cache();
        let area = Rect::new(0, 0, 20, 6);
        let t0 = Instant::now();
        cache.begin();
        assert!(cache.draw(&mut buf, area, &id, &slots, t0, Color::Reset));
        cache.end(&mut buf);
        let out = cache.take_output();
        assert!(out.starts_with(b"\x1b7\x1b["), "cursor saved and moved");
        assert!(out.windows(2).any(|w| w == b"\x1bP"), "a sixel image");
        // 320x240 in 20x6 cells of 10x20 px (200x120 px): 16x6 cells of
        // picture (160x120 px), the rest letterbox.
        let n = skipped(&buf);
        assert!(n > 0 && n < 20 * 6, "{n}");
        let frame1 = buf.clone();
        // Same frame again: nothing sent, cells still skipped.
        cache.begin();
        cache.draw(&mut buf, area, &id, &slots, t0, Color::Reset);
        cache.end(&mut buf);
        assert!(cache.take_output().is_empty());
        assert_eq!(skipped(&buf), n);
        // The tile is gone (page change): nothing to delete, and the cell
        // diff rewrites every cell the picture covered.
        let mut next = Buffer::empty(buf.area);
        cache.begin();
        cache.end(&mut next);
        assert!(cache.take_output().is_empty());
        let rewritten = frame1.diff(&next);
        let covered: Vec<(u16, u16)> = frame1
            .content
            .iter()
            .enumerate()
            .filter(|(_, c)| c.diff_option == CellDiffOption::Skip)
            .map(|(i, _)| frame1.pos_of(i))
            .collect();
        for pos in covered {
            assert!(
                rewritten.iter().any(|(x, y, _)| (*x, *y) == pos),
                "cell {pos:?} under the old picture is rewritten"
            );
        }
    }

    #[test]
    fn text_over_a_sixel_picture_is_repainted_and_overlays_fall_back() {
        let (slots, id, mut buf) = setup();
        let mut cache = sixel_cache();
        let area = Rect::new(0, 0, 20, 6);
        let t0 = Instant::now();
        cache.begin();
        cache.draw(&mut buf, area, &id, &slots, t0, Color::Reset);
        // A state badge written over the picture after it.
        buf.set_string(7, 3, "STALL", ratatui::style::Style::new());
        cache.end(&mut buf);
        assert_eq!(buf[(8, 3)].diff_option, CellDiffOption::AlwaysUpdate);
        assert_eq!(buf[(9, 2)].diff_option, CellDiffOption::Skip);
        cache.take_output();
        // An overlay: half-blocks, no image, and the picture is sent again
        // once the overlay closes.
        if let Some(k) = &mut cache.images {
            k.allowed = false;
        }
        let mut buf = Buffer::empty(buf.area);
        cache.begin();
        cache.draw(&mut buf, area, &id, &slots, t0, Color::Reset);
        cache.end(&mut buf);
        assert!(cache.take_output().is_empty());
        assert_eq!(skipped(&buf), 0);
        assert_eq!(buf[(10, 3)].symbol(), UPPER_HALF);
        assert_ne!(
            buf[(10, 3)].fg,
            Color::Rgb(0, 0, 0),
            "the picture, not black"
        );
        if let Some(k) = &mut cache.images {
            k.allowed = true;
        }
        cache.begin();
        cache.draw(&mut buf, area, &id, &slots, t0, Color::Reset);
        cache.end(&mut buf);
        assert!(!cache.take_output().is_empty(), "sent again");
    }

    #[test]
    fn sixel_geometry_covers_whole_cells() {
        let f = pattern_frame(0, 1, 320, 240);
        let sixel = ImageProtocol::Sixel {
            colors: 256,
            max_px: (1000, 1000),
        };
        for (area, cell) in [
            (Rect::new(3, 2, 31, 9), (10, 20)),
            (Rect::new(0, 1, 198, 55), (9, 20)),
            (Rect::new(5, 5, 18, 7), (10, 22)),
            (Rect::new(0, 0, 1, 1), (8, 16)),
        ] {
            let fit = halfblock::fit(f.width, f.height, area.width, area.height);
            let (cells, pw, ph) = image_geometry(sixel, cell, area, fit, &f);
            assert_eq!(
                (pw, ph),
                (cells.width as u32 * cell.0, cells.height as u32 * cell.1)
            );
            assert!(area.contains(cells.as_position()), "{cells:?} in {area:?}");
            assert!(cells.right() <= area.right() && cells.bottom() <= area.bottom());
            assert!(pw <= 2 * 320 + cell.0 && ph <= 1000, "{pw}x{ph}");
            if area.width > 20 {
                // Aspect kept within a cell.
                let aspect = pw as f64 / ph as f64;
                assert!((aspect - 4.0 / 3.0).abs() < 0.2, "{aspect}");
            }
        }
        // The terminal's limit wins.
        let small = ImageProtocol::Sixel {
            colors: 16,
            max_px: (200, 100),
        };
        let area = Rect::new(0, 0, 100, 40);
        let fit = halfblock::fit(f.width, f.height, area.width, area.height);
        let (_, pw, ph) = image_geometry(small, (10, 20), area, fit, &f);
        assert!(pw <= 200 && ph <= 100, "{pw}x{ph}");
    }

    #[test]
    fn iterm2_images_are_painted_like_sixel() {
        let (slots, id, mut buf) = setup();
        let mut cache = ThumbCache::new(Quantiser::default());
        cache.images = Some(ImageState::new(ImageProtocol::Iterm2, (10, 20)));
        cache.begin();
        cache.draw(
            &mut buf,
            Rect::new(0, 0, 20, 6),
            &id,
            &slots,
            Instant::now(),
            Color::Reset,
        );
        cache.end(&mut buf);
        let out = String::from_utf8(cache.take_output()).unwrap();
        assert!(out.contains("\x1b]1337;File=inline=1;"), "{out:.60}");
        assert!(skipped(&buf) > 0);
    }

    #[test]
    fn kitty_images_are_deleted_under_overlays() {
        let (slots, id, mut buf) = setup();
        let mut cache = ThumbCache::new(Quantiser::default());
        cache.images = Some(ImageState::new(ImageProtocol::Kitty, (10, 20)));
        let area = Rect::new(0, 0, 20, 6);
        let t0 = Instant::now();
        cache.begin();
        cache.draw(&mut buf, area, &id, &slots, t0, Color::Reset);
        cache.end(&mut buf);
        cache.take_output();
        if let Some(k) = &mut cache.images {
            k.allowed = false;
        }
        cache.begin();
        cache.draw(&mut buf, area, &id, &slots, t0, Color::Reset);
        cache.end(&mut buf);
        let out = String::from_utf8(cache.take_output()).unwrap();
        assert!(out.starts_with("\x1b_Ga=d,d=I,i="), "{out}");
        assert_eq!(buf[(10, 3)].symbol(), UPPER_HALF);
        assert_ne!(
            buf[(10, 3)].fg,
            Color::Rgb(0, 0, 0),
            "the picture, not black"
        );
    }

    #[test]
    fn uploads_stop_at_the_draw_budget() {
        let slots = FrameSlots::default();
        let ids: Vec<StudentId> = (0..4).map(|k| StudentId(format!("s{k}"))).collect();
        for (k, id) in ids.iter().enumerate() {
            slots.publish(id, pattern_frame(k, 1, 320, 240));
        }
        let mut buf = Buffer::empty(Rect::new(0, 0, 80, 12));
        let mut cache = sixel_cache();
        if let Some(k) = &mut cache.images {
            k.draw_budget = 1;
        }
        let t0 = Instant::now();
        cache.begin();
        for (k, id) in ids.iter().enumerate() {
            let area = Rect::new(k as u16 * 20, 0, 20, 6);
            cache.draw(&mut buf, area, id, &slots, t0, Color::Reset);
        }
        cache.end(&mut buf);
        assert_eq!(cache.repaints, 1, "one image, then the budget is spent");
        assert_eq!(cache.deferred, Some(t0), "the rest come in the next draw");
        cache.take_output();
        cache.begin();
        for (k, id) in ids.iter().enumerate() {
            let area = Rect::new(k as u16 * 20, 0, 20, 6);
            cache.draw(&mut buf, area, id, &slots, t0, Color::Reset);
        }
        cache.end(&mut buf);
        assert_eq!(cache.repaints, 1);
    }

    #[test]
    fn every_tile_gets_its_turn_when_all_are_due() {
        let slots = FrameSlots::default();
        let ids: Vec<StudentId> = (0..10).map(|k| StudentId(format!("s{k}"))).collect();
        let mut buf = Buffer::empty(Rect::new(0, 0, 100, 12));
        let mut cache = sixel_cache();
        cache.interval = Duration::ZERO;
        let t0 = Instant::now();
        let mut shown = HashSet::new();
        for seq in 1..=2 {
            // A new frame for everyone before every draw: all are due.
            for (k, id) in ids.iter().enumerate() {
                slots.publish(id, pattern_frame(k % 5, seq, 64, 48));
            }
            cache.begin();
            for (k, id) in ids.iter().enumerate() {
                let area = Rect::new((k % 5) as u16 * 20, (k / 5) as u16 * 6, 20, 6);
                cache.draw(&mut buf, area, id, &slots, t0, Color::Reset);
            }
            cache.end(&mut buf);
            assert!(cache.repaints <= UPLOADS_PER_DRAW);
            if let Some(k) = &cache.images {
                shown.extend(k.shown.keys().cloned());
            }
            cache.take_output();
        }
        // The first draw sends the first six; the second the other four
        // (not the first six again).
        assert_eq!(shown.len(), 10);
    }
}
