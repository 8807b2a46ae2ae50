//! Every key, and what the glyphs mean.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Widget};

use super::centered;
use crate::proctor::StreamState;
use crate::tui::app::App;
use crate::tui::theme::Theme;

const KEYS: &[(&str, &str)] = &[
    ("←↓↑→ hjkl", "move the selection"),
    ("PgUp PgDn", "previous / next page"),
    ("g G", "first / last student"),
    ("Enter, click", "enlarge the student"),
    ("Esc", "back (enlarged, chat, filter)"),
    ("c Tab", "chat with the student"),
    ("a", "raise attention to them"),
    ("space", "acknowledge their request"),
    ("n", "next student asking"),
    ("o", "off-air list (e: CSV)"),
    ("/", "filter by name, ID, code"),
    ("s", "save a snapshot (PNG)"),
    ("R", "take the code from its device"),
    ("?", "this help"),
    ("q", "quit (y confirms)"),
    ("Ctrl-Z Ctrl-C", "suspend / quit at once"),
    ("chat: Enter", "send; Esc closes"),
    ("Ctrl-A/E/U/K/W", "edit the input line"),
    ("paste", "ID<TAB>code lines add students"),
];

/// Draw the help pane over the screen.
pub fn draw(buf: &mut Buffer, area: Rect, _app: &App, theme: &Theme) {
    let two_cols = area.width >= 84;
    let per_col = if two_cols {
        KEYS.len().div_ceil(2)
    } else {
        KEYS.len()
    };
    let col_w: u16 = 44;
    let w = if two_cols {
        col_w * 2 + 4
    } else {
        area.width.saturating_sub(4).min(64)
    };
    let h = (per_col as u16 + 5).min(area.height);
    let r = centered(area, w, h);
    Clear.render(r, buf);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.pane_border(true))
        .style(theme.popup())
        .title_top(Line::styled(" Keys ", theme.pane_border(true)))
        .title_bottom(Line::styled(" any key closes ", theme.dim()));
    let inner = block.inner(r);
    block.render(r, buf);
    // Legend of the state glyphs.
    let legend: Vec<Span> = [
        ("●", "live", theme.state(StreamState::Live, false)),
        ("◌", "joining", theme.state(StreamState::Joining, false)),
        ("◐", "stalled", theme.state(StreamState::Stalled, false)),
        (
            "↻",
            "reconn.",
            theme.state(StreamState::Reconnecting, false),
        ),
        ("○", "off-air", theme.state(StreamState::OffAir, false)),
        ("×", "left", theme.state(StreamState::Left, false)),
        ("?", "unknown", theme.state(StreamState::Live, true)),
        ("⚑", "asks", theme.attention(false)),
        ("◆", "pinged", theme.pinged()),
        ("✉", "unread", theme.unread()),
    ]
    .into_iter()
    .flat_map(|(g, w, s)| {
        [
            Span::styled(g, s),
            Span::styled(format!(" {w} "), theme.dim()),
        ]
    })
    .collect();
    // Fill legend lines greedily, glyph and word together.
    let avail = inner.width.saturating_sub(2) as usize;
    let mut lines: Vec<Vec<Span>> = vec![Vec::new()];
    let mut used = 0;
    for pair in legend.chunks(2) {
        let w: usize = pair.iter().map(|s| s.width()).sum();
        if used + w > avail && used > 0 {
            lines.push(Vec::new());
            used = 0;
        }
        if let Some(last) = lines.last_mut() {
            last.extend(pair.iter().cloned());
        }
        used += w;
    }
    let legend_h = lines.len() as u16;
    for (k, spans) in lines.into_iter().enumerate() {
        let y = inner.y + inner.height.saturating_sub(legend_h) + k as u16;
        buf.set_line(inner.x + 1, y, &Line::from(spans), avail as u16);
    }
    for (k, (key, what)) in KEYS.iter().enumerate() {
        let (col, row) = (k / per_col, k % per_col);
        if row as u16 >= inner.height.saturating_sub(legend_h + 1) {
            continue;
        }
        let x = inner.x + 1 + col as u16 * (col_w + 1);
        let line = Line::from(vec![
            Span::styled(format!("{key:>14} "), theme.key()),
            Span::styled(*what, theme.popup()),
        ]);
        let line_w = if two_cols {
            col_w
        } else {
            inner.width.saturating_sub(2)
        };
        buf.set_line(x, inner.y + row as u16, &line, line_w);
    }
}
