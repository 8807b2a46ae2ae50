//! Sixel pictures (`--graphics sixel`): xterm (`-ti vt340`), mlterm, foot,
//! WezTerm, Konsole, contour, iTerm2 3.5 and others.
//!
//! A sixel image is painted into the terminal's cells like text: it stays
//! until something is written over it, and there is nothing to delete. The
//! dashboard therefore marks the cells under a picture "skip" in ratatui's
//! buffer (so the cell diff leaves the picture alone) and writes the image
//! after the frame; when the picture goes away (page change, overlay,
//! enlarge, resize) those cells get ordinary content again, which differs
//! from "skip", so ratatui rewrites them and the text covers the old picture.
//! For that to leave nothing behind, an image covers its cells exactly: its
//! size in pixels is its size in cells times the cell size.
//!
//! Encoding uses icy_sixel (pure Rust; Wu's colour quantiser). Thumbnails get
//! a small palette and no dithering: fewer colours per six-pixel band and
//! longer runs mean far fewer bytes, and a thumbnail is for recognising a
//! person and a room, not for photos.

use icy_sixel::{BackgroundMode, EncodeOptions, PixelAspectRatio, QuantizeMethod, SixelImage};
use ratatui::layout::Rect;

use super::halfblock::Rgb;

/// Colours per thumbnail (terminals with fewer registers get fewer).
pub const THUMB_COLORS: u16 = 16;
/// Colours of the enlarged picture.
pub const LARGE_COLORS: u16 = 64;

/// The DCS sequence of an image (no cursor movement).
pub fn encode(width: u32, height: u32, pixels: &[Rgb], max_colors: u16) -> Option<Vec<u8>> {
    if width == 0 || height == 0 || pixels.len() != (width * height) as usize {
        return None;
    }
    let rgba: Vec<u8> = pixels
        .iter()
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let image = SixelImage::try_from_rgba(rgba, width as usize, height as usize)
        .ok()?
        .with_aspect_ratio(PixelAspectRatio::Square)
        // Every pixel is drawn; "transparent" keeps the terminal from
        // filling the rest of the last six-pixel band with background.
        .with_background_mode(BackgroundMode::Transparent);
    let opts = EncodeOptions {
        max_colors: max_colors.clamp(2, 256),
        diffusion: 0.0,
        quantize_method: QuantizeMethod::Wu,
    };
    match image.encode_with(&opts) {
        Ok(s) => Some(s.into_bytes()),
        Err(e) => {
            tracing::debug!("sixel encoding failed: {e}");
            None
        }
    }
}

/// Cursor to the first cell, the image, cursor back (save/restore keeps the
/// sixel's own cursor movement from disturbing ratatui's idea of it).
pub fn place(cells: Rect, sixel: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sixel.len() + 32);
    out.extend_from_slice(b"\x1b7");
    out.extend_from_slice(format!("\x1b[{};{}H", cells.y + 1, cells.x + 1).as_bytes());
    out.extend_from_slice(sixel);
    out.extend_from_slice(b"\x1b8");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fake::pattern_frame;
    use crate::tui::halfblock;

    /// Decode with zellij's sixel-image (an independent implementation).
    fn decode(bytes: &[u8]) -> sixel_image::SixelImage {
        sixel_image::SixelImage::new(bytes).expect("valid sixel")
    }

    #[test]
    fn thumbnail_round_trips_through_an_independent_decoder() {
        // Four flat quadrants: red, green, blue, white; 7 bands high, odd size.
        let (w, h) = (50u32, 40u32);
        let colour = |x: u32, y: u32| -> Rgb {
            match (x < w / 2, y < h / 2) {
                (true, true) => [255, 0, 0],
                (false, true) => [0, 255, 0],
                (true, false) => [0, 0, 255],
                (false, false) => [255, 255, 255],
            }
        };
        let pixels: Vec<Rgb> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| colour(x, y))
            .collect();
        let bytes = encode(w, h, &pixels, 16).unwrap();
        assert!(bytes.starts_with(b"\x1bP"), "DCS introducer");
        assert!(bytes.ends_with(b"\x1b\\"), "string terminator");
        // The raster attributes say the exact size; the decoder keeps whole
        // six-pixel bands, and nothing is drawn below the picture.
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains(&format!(";{w};{h}#")), "{:.40}", text);
        let out = to_rgb(&bytes);
        assert_eq!(out.len(), h.div_ceil(6) as usize * 6);
        assert!(out.iter().all(|row| row.len() == w as usize));
        assert!(out[h as usize..].iter().flatten().all(|p| p.is_none()));
        // Colours survive (sixel stores 0-100 %: allow rounding).
        for (x, y) in [(3, 3), (40, 5), (7, 33), (45, 39), (24, 19), (25, 20)] {
            let got = out[y as usize][x as usize].expect("every pixel is drawn");
            let want = colour(x, y);
            for c in 0..3 {
                assert!(
                    got[c].abs_diff(want[c]) <= 3,
                    "({x},{y}) {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn camera_picture_keeps_its_size_and_stays_small() {
        let f = pattern_frame(3, 7, 320, 240);
        let (w, h) = (310u32, 180u32);
        let px = halfblock::scale(&f, w as u16, h as u16);
        let small = encode(w, h, &px, THUMB_COLORS).unwrap();
        let rich = encode(w, h, &px, 256).unwrap();
        // 180 rows are 30 whole bands: every decoded pixel is drawn.
        let img = decode(&small);
        assert_eq!(img.pixel_size(), (h as usize, w as usize));
        assert!(to_rgb(&small).iter().flatten().all(|p| p.is_some()));
        assert!(
            small.len() <= rich.len(),
            "{} > {}",
            small.len(),
            rich.len()
        );
        let cells = Rect::new(4, 2, 31, 9);
        let placed = place(cells, &small);
        assert!(placed.starts_with(b"\x1b7\x1b[3;5H\x1bP"));
        assert!(placed.ends_with(b"\x1b\\\x1b8"));
        assert!(encode(0, 10, &[], 16).is_none());
        assert!(encode(2, 2, &px[..3], 16).is_none());
    }

    /// The decoded image as RGB rows (sixel-image keeps register numbers
    /// per pixel and the registers in percent).
    fn to_rgb(bytes: &[u8]) -> Vec<Vec<Option<Rgb>>> {
        let img = decode(bytes);
        let pc = |p: u8| ((p as u32 * 255 + 50) / 100) as u8;
        img.pixels
            .iter()
            .map(|row| {
                row.iter()
                    .map(|px| {
                        px.on.then(|| match img.color_registers.get(&px.color) {
                            Some(sixel_image::SixelColor::Rgb(r, g, b)) => [pc(*r), pc(*g), pc(*b)],
                            _ => [1, 2, 3],
                        })
                    })
                    .collect()
            })
            .collect()
    }
}
