//! iTerm2 inline images (`--graphics iterm2`): OSC 1337 `File=` with
//! `inline=1`, spoken by iTerm2, WezTerm, mintty, and partly Konsole.
//!
//! Like sixel, an inline image is painted into the cells and stays until
//! written over, so the dashboard handles it the same way (cells marked
//! "skip" while the picture is up; see [`super::sixel`]). The picture is a
//! PNG sized to its cells in pixels; `width`/`height` in cells and
//! `preserveAspectRatio=0` make the terminal fill exactly those cells.

use base64::Engine;
use ratatui::layout::Rect;

use super::halfblock::Rgb;
use super::kitty;

/// Cursor to the first cell, the image, cursor back.
pub fn place(cells: Rect, width: u32, height: u32, pixels: &[Rgb]) -> Option<Vec<u8>> {
    let png = kitty::png(width, height, pixels)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let mut out = Vec::with_capacity(b64.len() + 128);
    out.extend_from_slice(b"\x1b7");
    out.extend_from_slice(format!("\x1b[{};{}H", cells.y + 1, cells.x + 1).as_bytes());
    out.extend_from_slice(
        format!(
            "\x1b]1337;File=inline=1;size={};width={};height={};preserveAspectRatio=0;\
             doNotMoveCursor=1:",
            png.len(),
            cells.width,
            cells.height
        )
        .as_bytes(),
    );
    out.extend_from_slice(b64.as_bytes());
    out.push(0x07);
    out.extend_from_slice(b"\x1b8");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fake::pattern_frame;
    use crate::tui::halfblock;

    #[test]
    fn osc_1337_frames_a_png_of_the_right_size() {
        let f = pattern_frame(1, 3, 320, 240);
        let (w, h) = (200u32, 120u32);
        let px = halfblock::scale(&f, w as u16, h as u16);
        let out = place(Rect::new(9, 4, 20, 6), w, h, &px).unwrap();
        let s = String::from_utf8(out).unwrap();
        let head = "\x1b7\x1b[5;10H\x1b]1337;File=inline=1;size=";
        assert!(s.starts_with(head), "{:.60}", s);
        assert!(s.ends_with("\x07\x1b8"));
        let args_end = s.find(':').unwrap();
        let args = &s[head.len() - "size=".len()..args_end];
        assert!(args.contains(";width=20;height=6;preserveAspectRatio=0"));
        let payload = &s[args_end + 1..s.len() - 3];
        let png = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .unwrap();
        let size: usize = args
            .split(';')
            .find_map(|a| a.strip_prefix("size="))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(size, png.len(), "size= is the decoded file's length");
        let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        assert_eq!((img.width(), img.height()), (w, h));
        // The first pixel is the scaled picture's first pixel.
        let rgb = img.to_rgb8();
        assert_eq!(rgb.get_pixel(0, 0).0, px[0]);
        assert!(place(Rect::new(0, 0, 1, 1), 0, 0, &[]).is_none());
    }
}
