//! The kitty graphics protocol: pictures as real images instead of
//! half-block cells, for terminals that speak it (kitty, and others that
//! implement the same escape codes), chosen with `--graphics kitty`.
//!
//! The dashboard draws blank cells where a picture goes; after each draw
//! the loop moves the cursor to the picture's first cell and sends the image
//! as PNG (`a=T`, one stable image id per student, so a new frame replaces
//! the old one in place). Pictures no longer on screen are deleted. An
//! image costs far more bytes than half-blocks (a whole PNG per repaint), so
//! the pacer slows tiles down accordingly; half-blocks stay the default, and
//! over ssh or tmux they are the better choice.

use base64::Engine;
use ratatui::layout::Rect;

use super::halfblock::Rgb;

/// Largest payload per escape sequence (the protocol's limit).
const CHUNK: usize = 4096;

/// An image to (re)send: where, what size in cells, and its pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub id: u32,
    /// Cells the picture covers (top-left is where the cursor goes).
    pub cells: Rect,
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<Rgb>,
}

/// A stable, non-zero image id for a student.
pub fn image_id(student: &str) -> u32 {
    let h = student.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    (h & 0x00ff_ffff).max(1)
}

/// Cell size in pixels, from the terminal (10x20 when it does not say).
pub fn cell_pixels() -> (u32, u32) {
    match ratatui::crossterm::terminal::window_size() {
        Ok(w) if w.width > 0 && w.height > 0 && w.columns > 0 && w.rows > 0 => (
            (w.width / w.columns).max(1) as u32,
            (w.height / w.rows).max(1) as u32,
        ),
        _ => (10, 20),
    }
}

/// PNG bytes of the pixels (also used for iTerm2 images).
pub fn png(width: u32, height: u32, pixels: &[Rgb]) -> Option<Vec<u8>> {
    use image::ImageEncoder;
    let raw: Vec<u8> = pixels.iter().flatten().copied().collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Sub,
    )
    .write_image(&raw, width, height, image::ExtendedColorType::Rgb8)
    .ok()?;
    Some(out)
}

/// The escape sequences that place (or replace) an image: cursor to the
/// first cell, transmit-and-display in chunks, cursor back. `z=-1` puts the
/// image under text, so a state badge drawn over a tile stays readable.
pub fn place(up: &Upload) -> Vec<u8> {
    let Some(data) = png(up.width, up.height, &up.pixels) else {
        return Vec::new();
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(b64.len() + 256);
    out.extend_from_slice(b"\x1b7");
    out.extend_from_slice(format!("\x1b[{};{}H", up.cells.y + 1, up.cells.x + 1).as_bytes());
    let chunks: Vec<&[u8]> = b64.as_bytes().chunks(CHUNK).collect();
    for (k, chunk) in chunks.iter().enumerate() {
        let more = u8::from(k + 1 < chunks.len());
        if k == 0 {
            out.extend_from_slice(
                format!(
                    "\x1b_Ga=T,f=100,i={},p=1,q=2,C=1,z=-1,c={},r={},m={more};",
                    up.id, up.cells.width, up.cells.height
                )
                .as_bytes(),
            );
        } else {
            out.extend_from_slice(format!("\x1b_Gm={more};").as_bytes());
        }
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\x1b\\");
    }
    out.extend_from_slice(b"\x1b8");
    out
}

/// Delete an image and free its data.
pub fn delete(id: u32) -> Vec<u8> {
    format!("\x1b_Ga=d,d=I,i={id},q=2\x1b\\").into_bytes()
}

/// Delete every image (on exit, and before a full repaint).
pub const DELETE_ALL: &[u8] = b"\x1b_Ga=d,d=A,q=2\x1b\\";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_chunk_and_name_the_image() {
        // Noise compresses badly: more than one 4096-byte chunk.
        let mut seed = 7u32;
        let pixels: Vec<Rgb> = (0..64 * 48)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let b = seed.to_le_bytes();
                [b[1], b[2], b[3]]
            })
            .collect();
        let up = Upload {
            id: 42,
            cells: Rect::new(3, 2, 8, 4),
            width: 64,
            height: 48,
            pixels,
        };
        let s = String::from_utf8(place(&up)).unwrap();
        assert!(s.starts_with("\x1b7\x1b[3;4H\x1b_Ga=T,f=100,i=42,p=1,q=2,C=1,z=-1,c=8,r=4,m=1;"));
        assert!(s.contains("\x1b_Gm=1;") || s.contains("\x1b_Gm=0;"));
        assert!(s.ends_with("\x1b\\\x1b8"));
        assert_eq!(s.matches("m=0;").count(), 1, "exactly one last chunk");
        // The first payload decodes to a PNG.
        let start = s.find("m=1;").unwrap() + 4;
        let first = s[start..].split('\x1b').next().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(first)
            .unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert_eq!(delete(42), b"\x1b_Ga=d,d=I,i=42,q=2\x1b\\");
        assert_ne!(image_id("s001"), image_id("s002"));
        assert_ne!(image_id(""), 0);
    }
}
