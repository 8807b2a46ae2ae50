//! QR codes of student links, drawn three ways: half-block characters for a
//! terminal, PNG for mail and chat, SVG for print.
//!
//! Every drawing keeps the standard quiet zone of four light modules around
//! the symbol and draws dark modules on light ones, whatever the terminal's
//! colours: scanners expect dark-on-light.

use std::fmt::Write as _;

use qrcode::{Color, EcLevel, QrCode};

use crate::{Error, Result};

/// Light modules around the symbol (the standard's minimum).
const QUIET_ZONE: usize = 4;

/// A QR code: a square of dark/light modules, quiet zone not included.
pub struct Qr {
    width: usize,
    dark: Vec<bool>,
}

impl Qr {
    /// Encode `text` with medium error correction (15 %), enough for a
    /// screen or a sheet of paper with a fold in it.
    pub fn new(text: &str) -> Result<Qr> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
            .map_err(|e| Error::Invalid(format!("cannot make a QR code of {text:?}: {e}")))?;
        Ok(Qr {
            width: code.width(),
            dark: code
                .to_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect(),
        })
    }

    /// Modules per side, quiet zone not included.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Is the module at (x, y) dark? Coordinates include the quiet zone, and
    /// anything outside the symbol is light.
    fn dark_at(&self, x: usize, y: usize) -> bool {
        let (Some(x), Some(y)) = (x.checked_sub(QUIET_ZONE), y.checked_sub(QUIET_ZONE)) else {
            return false;
        };
        x < self.width && y < self.width && self.dark[y * self.width + x]
    }

    /// Modules per side with the quiet zone.
    fn side(&self) -> usize {
        self.width + 2 * QUIET_ZONE
    }

    /// Grey PNG, `scale` pixels per module.
    pub fn to_png(&self, scale: u32) -> Result<Vec<u8>> {
        let side = self.side() as u32 * scale;
        let img = image::GrayImage::from_fn(side, side, |px, py| {
            let dark = self.dark_at((px / scale) as usize, (py / scale) as usize);
            image::Luma([if dark { 0 } else { 255 }])
        });
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| Error::Other(anyhow::anyhow!("cannot encode a PNG: {e}")))?;
        Ok(bytes)
    }

    /// SVG with one unit per module and a white background; `size` is the
    /// width and height attribute (e.g. "300" or "100%"), CSS may override it.
    pub fn to_svg(&self, size: &str, title: &str) -> String {
        let side = self.side();
        let mut path = String::new();
        for y in 0..side {
            let mut x = 0;
            while x < side {
                if self.dark_at(x, y) {
                    let start = x;
                    while x < side && self.dark_at(x, y) {
                        x += 1;
                    }
                    let _ = write!(path, "M{start} {y}h{}v1h-{}z", x - start, x - start);
                } else {
                    x += 1;
                }
            }
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" \
             viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\" role=\"img\">\
             <title>{}</title>\
             <rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>",
            super::sheet::escape(title)
        )
    }

    /// Terminal drawing: one character per module column and two module
    /// rows per line (upper half block). With `colour`, dark and light are
    /// explicit (black on white, whatever the terminal's theme); without it
    /// (output to a file or a pipe, or NO_COLOR), full and half blocks stand
    /// for dark modules on a light page.
    pub fn to_terminal(&self, colour: bool) -> String {
        let side = self.side();
        let mut out = String::new();
        for y in (0..side).step_by(2) {
            for x in 0..side {
                let top = self.dark_at(x, y);
                let bottom = y + 1 < side && self.dark_at(x, y + 1);
                if colour {
                    // 256-colour black (16) and white (231): the basic 8
                    // colours are themed and "white" is often grey.
                    let code = |dark: bool| if dark { 16 } else { 231 };
                    let _ = write!(
                        out,
                        "\x1b[38;5;{}m\x1b[48;5;{}m\u{2580}",
                        code(top),
                        code(bottom)
                    );
                } else {
                    out.push(match (top, bottom) {
                        (true, true) => '\u{2588}',
                        (true, false) => '\u{2580}',
                        (false, true) => '\u{2584}',
                        (false, false) => ' ',
                    });
                }
            }
            if colour {
                out.push_str("\x1b[0m");
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_png(png: &[u8]) -> String {
        let img = image::load_from_memory(png).unwrap().to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code in the picture");
        grids[0].decode().unwrap().1
    }

    #[test]
    fn png_decodes_back_to_the_link() {
        let link = "https://proctor.example.org:8443/#k7m9x2p4q";
        let qr = Qr::new(link).unwrap();
        assert_eq!(decode_png(&qr.to_png(4).unwrap()), link);
        assert_eq!(decode_png(&qr.to_png(1).unwrap()), link);
    }

    #[test]
    fn terminal_drawing_matches_the_modules() {
        let qr = Qr::new("https://h.example/#abc").unwrap();
        let plain = qr.to_terminal(false);
        let side = qr.side();
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), side.div_ceil(2));
        for (row, line) in lines.iter().enumerate() {
            assert_eq!(line.chars().count(), side);
            for (x, ch) in line.chars().enumerate() {
                let top = qr.dark_at(x, 2 * row);
                let bottom = qr.dark_at(x, 2 * row + 1);
                let expect = match (top, bottom) {
                    (true, true) => '\u{2588}',
                    (true, false) => '\u{2580}',
                    (false, true) => '\u{2584}',
                    (false, false) => ' ',
                };
                assert_eq!(ch, expect, "row {row} col {x}");
            }
        }
        // The quiet zone is light: the first two lines are blank.
        assert!(lines[0].trim().is_empty() && lines[1].trim().is_empty());
        // Coloured: every cell is "fg=top, bg=bottom, upper half block".
        let coloured = qr.to_terminal(true);
        for (row, line) in coloured.lines().enumerate() {
            let line = line.strip_suffix("\x1b[0m").unwrap();
            let cells: Vec<&str> = line.split_terminator('\u{2580}').collect();
            assert_eq!(cells.len(), side);
            for (x, cell) in cells.iter().enumerate() {
                let colour = |dark: bool| if dark { 16 } else { 231 };
                let expect = format!(
                    "\x1b[38;5;{}m\x1b[48;5;{}m",
                    colour(qr.dark_at(x, 2 * row)),
                    colour(qr.dark_at(x, 2 * row + 1))
                );
                assert_eq!(*cell, expect, "row {row} col {x}");
            }
        }
    }

    #[test]
    fn svg_draws_every_dark_module_once() {
        let qr = Qr::new("https://h.example/#abc").unwrap();
        let svg = qr.to_svg("200", "Ann <Lee>");
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title>Ann &lt;Lee&gt;</title>"));
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let drawn: usize = d
            .split('M')
            .skip(1)
            .map(|run| run.split('h').nth(1).unwrap().split('v').next().unwrap())
            .map(|n| n.parse::<usize>().unwrap())
            .sum();
        assert_eq!(drawn, qr.dark.iter().filter(|d| **d).count());
    }
}
