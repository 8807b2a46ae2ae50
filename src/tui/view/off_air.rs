//! Who is not streaming: roster students off-air or gone, longest first,
//! with their codes (to read out to a student who lost theirs).

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, BorderType, Cell, Clear, Row, StatefulWidget, Table, TableState, Widget,
};

use super::centered;
use crate::tui::app::{App, since_label};
use crate::tui::theme::Theme;
use crate::tui::view::tile::state_word;

/// Draw the list over the screen with row `selected` highlighted.
pub fn draw(buf: &mut Buffer, area: Rect, app: &App, selected: usize, theme: &Theme) {
    let list = app.off_air_list();
    let w = if area.width >= 100 {
        90
    } else {
        area.width.saturating_sub(2)
    };
    let h = if area.height >= 30 {
        (list.len() as u16 + 6).clamp(10, area.height - 6)
    } else {
        area.height.saturating_sub(2)
    };
    let r = centered(area, w, h);
    Clear.render(r, buf);
    let hint = Line::from(vec![
        Span::styled(" ↑↓", theme.key()),
        Span::styled(" move ", theme.dim()),
        Span::styled("⏎", theme.key()),
        Span::styled(" go to ", theme.dim()),
        Span::styled("e", theme.key()),
        Span::styled(" export CSV ", theme.dim()),
        Span::styled("Esc", theme.key()),
        Span::styled(" close ", theme.dim()),
    ]);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.pane_border(true))
        .style(theme.popup())
        .title_top(Line::styled(
            format!(
                " Off-air · {} of {} students ",
                list.len(),
                app.tiles.iter().filter(|t| !t.unknown).count()
            ),
            theme.pane_border(true),
        ))
        .title_bottom(hint);
    let inner = block.inner(r);
    block.render(r, buf);
    if list.is_empty() {
        buf.set_string(
            inner.x + 1,
            inner.y + 1,
            "Everyone on the roster is streaming.",
            theme.state(crate::proctor::StreamState::Live, false),
        );
        return;
    }
    let rows: Vec<Row> = list
        .iter()
        .map(|&i| {
            let t = &app.tiles[i];
            Row::new(vec![
                Cell::from(t.id.0.clone()),
                Cell::from(t.name.clone().unwrap_or_default()),
                Cell::from(t.code.clone().unwrap_or_default()),
                Cell::from(Span::styled(state_word(t), theme.state(t.state, false))),
                Cell::from(since_label(app.now, t.since)),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(12),
        Constraint::Fill(1),
        Constraint::Length(14),
        Constraint::Length(8),
        Constraint::Length(6),
    ];
    let table = Table::new(rows, widths)
        .header(
            Row::new(vec!["ID", "Name", "Code", "State", "For"])
                .style(theme.dim().add_modifier(ratatui::style::Modifier::BOLD)),
        )
        .column_spacing(1)
        .row_highlight_style(theme.row_selected());
    let mut state = TableState::default().with_selected(Some(selected.min(list.len() - 1)));
    StatefulWidget::render(table, inner, buf, &mut state);
}
