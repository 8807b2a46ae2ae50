//! Where things go on the screen. Pure functions of the terminal size, shared
//! by the views (to draw) and the app (to page, move up/down and hit-test
//! mouse clicks), so both always agree.

use ratatui::layout::Rect;

/// Narrowest tile: a name of ~12 characters and a readable picture.
pub const MIN_TILE_W: u16 = 18;
/// Lowest tile: borders plus three rows of picture.
pub const MIN_TILE_H: u16 = 5;

/// The screen's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    /// One row: name, counts, page.
    pub header: Rect,
    /// One row: key hints, prompts, notices.
    pub footer: Rect,
    /// The grid or the enlarged picture.
    pub main: Rect,
    /// The chat pane, when open.
    pub chat: Option<Rect>,
}

/// Split the terminal area.
pub fn screen(area: Rect, chat_open: bool) -> Screen {
    let header = Rect::new(area.x, area.y, area.width, area.height.min(1));
    let footer_y = area.y + area.height.saturating_sub(1);
    let footer = Rect::new(
        area.x,
        footer_y,
        area.width,
        area.height.min(1).min(area.height.saturating_sub(1)),
    );
    let body = Rect::new(
        area.x,
        area.y + 1,
        area.width,
        area.height.saturating_sub(2),
    );
    if !chat_open {
        return Screen {
            header,
            footer,
            main: body,
            chat: None,
        };
    }
    let chat_w = if body.width >= 120 {
        48
    } else if body.width < 50 {
        body.width
    } else {
        (body.width * 2 / 5).clamp(28, 40)
    };
    let main = Rect::new(body.x, body.y, body.width - chat_w, body.height);
    let chat = Rect::new(body.x + main.width, body.y, chat_w, body.height);
    Screen {
        header,
        footer,
        main,
        chat: Some(chat),
    }
}

/// Tiles of one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridGeom {
    pub area: Rect,
    pub cols: u16,
    pub rows: u16,
    pub tile_w: u16,
    pub tile_h: u16,
    /// Left margin that centres the grid.
    pub x_off: u16,
}

impl GridGeom {
    /// Tiles per page (at least one, so paging always moves).
    pub fn per_page(&self) -> usize {
        (self.cols as usize * self.rows as usize).max(1)
    }

    /// The rectangle of the i-th tile of the page.
    pub fn tile_rect(&self, i: usize) -> Rect {
        let cols = self.cols.max(1) as usize;
        let (r, c) = ((i / cols) as u16, (i % cols) as u16);
        let x = self.area.x + self.x_off + c * self.tile_w;
        let y = self.area.y + r * self.tile_h;
        Rect::new(x, y, self.tile_w, self.tile_h).intersection(self.area)
    }

    /// Which tile of the page is at this cell.
    pub fn hit(&self, x: u16, y: u16) -> Option<usize> {
        if self.tile_w == 0 || self.tile_h == 0 {
            return None;
        }
        let gx = x.checked_sub(self.area.x + self.x_off)?;
        let gy = y.checked_sub(self.area.y)?;
        let (c, r) = (gx / self.tile_w, gy / self.tile_h);
        (c < self.cols && r < self.rows).then(|| (r * self.cols + c) as usize)
    }
}

/// A tile's ideal height for its width: a 4:3 picture in half-block pixels
/// (two per cell vertically) plus the borders.
fn ideal_height(tile_w: u16) -> u16 {
    (tile_w.saturating_sub(2) * 3 / 8 + 2).max(MIN_TILE_H)
}

/// Rows of tiles of this height that fit, allowing tiles down to two thirds
/// of their ideal height when that gains a row.
fn rows_for(height: u16, ideal: u16) -> (u16, u16) {
    let more = height.div_ceil(ideal).max(1);
    if height / more >= MIN_TILE_H.max(ideal * 2 / 3) {
        (more, height / more)
    } else {
        let rows = (height / ideal).max(1);
        (rows, (height / rows).min(height))
    }
}

/// The largest tiles that show all `n` students, or, when they cannot all
/// fit, the smallest tiles and as many as fit per page.
pub fn grid(area: Rect, n: usize) -> GridGeom {
    let n = n.max(1);
    let max_cols = (area.width / MIN_TILE_W).max(1);
    let make = |cols: u16, rows: u16, tile_h: u16| {
        let tile_w = area.width / cols;
        GridGeom {
            area,
            cols,
            rows,
            tile_w,
            tile_h,
            x_off: (area.width - tile_w * cols) / 2,
        }
    };
    for cols in 1..=max_cols {
        let tile_w = area.width / cols;
        let ideal = ideal_height(tile_w);
        let (rows, _) = rows_for(area.height, ideal);
        if cols as usize * rows as usize >= n {
            let used = (n as u16).div_ceil(cols).max(1);
            // Fill the height, up to a third taller than ideal (the picture
            // is then letterboxed a little at the sides).
            let tile_h = (area.height / used)
                .min(ideal + ideal / 3)
                .max(area.height.min(MIN_TILE_H));
            return make(cols, used, tile_h);
        }
    }
    let tile_w = area.width / max_cols;
    let (rows, tile_h) = rows_for(area.height, ideal_height(tile_w));
    make(max_cols, rows, tile_h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_terminal_pages_twelve() {
        let g = grid(Rect::new(0, 1, 80, 22), 40);
        assert_eq!((g.cols, g.rows, g.tile_w, g.tile_h), (4, 3, 20, 7));
        assert_eq!(g.per_page(), 12);
        assert_eq!(g.tile_rect(5), Rect::new(20, 8, 20, 7));
        assert_eq!(g.hit(21, 9), Some(5));
        assert_eq!(g.hit(79, 0), None);
    }

    #[test]
    fn large_terminal_fits_thirty() {
        let g = grid(Rect::new(0, 1, 200, 58), 30);
        assert!(g.per_page() >= 30, "{g:?}");
        assert!(g.tile_w >= 30);
        let one = grid(Rect::new(0, 1, 200, 58), 1);
        assert_eq!((one.cols, one.rows), (1, 1));
    }

    #[test]
    fn chat_takes_the_right_side() {
        let s = screen(Rect::new(0, 0, 80, 24), true);
        assert_eq!(s.chat.unwrap().width, 32);
        assert_eq!(s.main.width, 48);
        assert_eq!(s.footer.y, 23);
    }
}
