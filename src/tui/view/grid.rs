//! The page of student tiles.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{DrawCtx, centered, layout, tile};
use crate::tui::app::App;

/// Draw the current page of tiles (or say why there are none).
pub fn draw(buf: &mut Buffer, area: Rect, app: &App, ctx: &mut DrawCtx) {
    let list = app.filtered();
    if list.is_empty() {
        let theme = ctx.theme;
        let lines: Vec<Line> = if app.tiles.is_empty() {
            vec![
                Line::styled("No students yet.", theme.text()),
                Line::styled(
                    "Paste roster lines (ID<TAB>code) here, or start with --roster FILE.",
                    theme.dim(),
                ),
            ]
        } else {
            vec![
                Line::from(vec![
                    Span::styled("No student matches ", theme.text()),
                    Span::styled(format!("\"{}\"", app.filter.text()), theme.key()),
                ]),
                Line::styled("Esc clears the filter.", theme.dim()),
            ]
        };
        let w = lines.iter().map(|l| l.width()).max().unwrap_or(0) as u16;
        let r = centered(area, w, lines.len() as u16);
        for (k, l) in lines.iter().enumerate() {
            let x = r.x + r.width.saturating_sub(l.width() as u16) / 2;
            buf.set_line(x, r.y + k as u16, l, r.width);
        }
        return;
    }
    let g = layout::grid(area, list.len());
    let (_, _, tiles) = app.page();
    for (k, &i) in tiles.iter().enumerate() {
        let r = g.tile_rect(k);
        if r.width < 4 || r.height < 3 {
            continue;
        }
        tile::draw(buf, r, app, i, app.selected == Some(i), ctx);
    }
}
