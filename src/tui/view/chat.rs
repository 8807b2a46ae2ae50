//! The chat pane: one student's history with timestamps, an unread marker,
//! and the input line.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Widget};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::truncate;
use crate::proctor::Party;
use crate::tui::app::{App, Focus, clock};
use crate::tui::theme::Theme;

/// Draw the pane; returns the cursor position when the input has focus.
pub fn draw(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) -> Option<Position> {
    let focused = app.focus == Focus::Chat;
    let target = app.chat_target().map(|i| &app.tiles[i]);
    let title = match target {
        Some(t) => format!(" Chat · {} ", t.label()),
        None => " Chat ".to_string(),
    };
    let block = Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Rounded
        })
        .border_style(theme.pane_border(focused))
        .title_top(Line::styled(
            truncate(&title, area.width.saturating_sub(2) as usize),
            theme.pane_border(focused),
        ));
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height < 2 || inner.width < 4 {
        return None;
    }
    let t = target?;
    let history = Rect::new(inner.x, inner.y, inner.width, inner.height - 2);
    let width = history.width as usize;

    // Lay out every message into display rows, newest last.
    let mut rows: Vec<Line> = Vec::new();
    let who = truncate(t.label(), 12);
    for (k, line) in t.chat.iter().enumerate() {
        if t.unread_from == Some(k) {
            let label = " new ";
            let side = width.saturating_sub(label.len()) / 2;
            rows.push(Line::styled(
                format!(
                    "{}{label}{}",
                    "─".repeat(side),
                    "─".repeat(width.saturating_sub(side + label.len()))
                ),
                theme.unread(),
            ));
        }
        let (author, style) = match line.from {
            Party::Student => (who.clone(), theme.chat_author(true)),
            Party::Proctor => ("you".to_string(), theme.chat_author(false)),
        };
        let head = vec![
            Span::styled(clock(line.at), theme.chat_time()),
            Span::raw(" "),
            Span::styled(author, style),
            Span::raw(" "),
        ];
        let head_w: usize = head.iter().map(|s| s.width()).sum();
        let wrapped = wrap(&line.text, width, head_w.min(width / 2));
        for (j, part) in wrapped.into_iter().enumerate() {
            if j == 0 {
                let mut spans = head.clone();
                spans.push(Span::styled(part, theme.text()));
                rows.push(Line::from(spans));
            } else {
                rows.push(Line::from(vec![
                    Span::raw("  "),
                    Span::styled(part, theme.text()),
                ]));
            }
        }
    }
    if rows.is_empty() {
        rows.push(Line::styled("No messages yet.", theme.dim()));
        rows.push(Line::styled("Type below, Enter sends.", theme.dim()));
    }
    let skip = rows.len().saturating_sub(history.height as usize);
    for (k, row) in rows.iter().skip(skip).enumerate() {
        buf.set_line(history.x, history.y + k as u16, row, history.width);
    }

    // Separator and input line.
    let sep_y = inner.y + inner.height - 2;
    buf.set_string(inner.x, sep_y, "─".repeat(width), theme.pane_border(false));
    let input_y = inner.y + inner.height - 1;
    let prompt = "› ";
    buf.set_style(Rect::new(inner.x, input_y, inner.width, 1), theme.input());
    buf.set_string(inner.x, input_y, prompt, theme.key());
    let avail = width.saturating_sub(prompt.width() + 1);
    let chars: Vec<char> = app.chat_input.text().chars().collect();
    let cursor = app.chat_input.cursor();
    // Scroll horizontally so the cursor stays visible.
    let mut start = 0;
    while chars[start..cursor]
        .iter()
        .map(|c| c.width().unwrap_or(0))
        .sum::<usize>()
        > avail
    {
        start += 1;
    }
    let visible: String = chars[start..].iter().collect();
    let shown = truncate(&visible, avail + 1);
    let x0 = inner.x + prompt.width() as u16;
    if chars.is_empty() && !focused {
        buf.set_string(
            x0,
            input_y,
            truncate("c or Tab to type", avail),
            theme.dim().bg(theme.input_bg),
        );
    } else {
        buf.set_string(x0, input_y, shown, theme.input());
    }
    let cx: usize = chars[start..cursor]
        .iter()
        .map(|c| c.width().unwrap_or(0))
        .sum();
    focused.then(|| Position::new(x0 + cx as u16, input_y))
}

/// Word-wrap `text` to `width` columns. The first row has `first_used`
/// columns taken by the time and author; later rows are indented by two.
fn wrap(text: &str, width: usize, first_used: usize) -> Vec<String> {
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut row_w = 0;
    let mut limit = width.saturating_sub(first_used).max(1);
    let cont = width.saturating_sub(2).max(1);
    for word in text.split(' ') {
        let ww = word.width();
        let space = usize::from(!row.is_empty());
        if row_w + space + ww <= limit {
            if space == 1 {
                row.push(' ');
            }
            row.push_str(word);
            row_w += space + ww;
            continue;
        }
        if !row.is_empty() {
            rows.push(std::mem::take(&mut row));
            row_w = 0;
            limit = cont;
        }
        // A word longer than a row is broken by characters.
        for c in word.chars() {
            let cw = c.width().unwrap_or(0);
            if row_w + cw > limit {
                rows.push(std::mem::take(&mut row));
                row_w = 0;
                limit = cont;
            }
            row.push(c);
            row_w += cw;
        }
    }
    if !row.is_empty() || rows.is_empty() {
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_words_and_long_words() {
        assert_eq!(
            wrap("hello there world", 12, 0),
            vec!["hello there", "world"]
        );
        assert_eq!(wrap("abcdefghij", 6, 2), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 10, 0), vec![""]);
    }
}
