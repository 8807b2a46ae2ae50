//! The header (counts, page, server) and the footer (key hints, prompts,
//! notices).

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthStr;

use super::truncate;
use crate::proctor::StreamState;
use crate::tui::app::{App, Focus};
use crate::tui::theme::Theme;

/// Draw the header row.
pub fn draw_header(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    buf.set_style(area, theme.header());
    let (live, off, waiting, total) = app.counts();
    let hdr = theme.header();
    let wide = area.width >= 100;
    let mut left = vec![
        Span::styled(" rtcproctor ", theme.brand()),
        Span::styled(" ", hdr),
        Span::styled(
            "●",
            theme.state(StreamState::Live, false).bg(theme.header_bg),
        ),
        Span::styled(format!(" {live} live  "), hdr),
        Span::styled(
            "○",
            theme.state(StreamState::OffAir, false).bg(theme.header_bg),
        ),
        Span::styled(format!(" {off} off-air  "), hdr),
    ];
    if wide {
        left.push(Span::styled(
            format!("{total} students  "),
            theme.dim().bg(theme.header_bg),
        ));
    }
    if waiting > 0 {
        let first = app
            .attention_queue
            .first()
            .map(|&i| app.tiles[i].label().to_string());
        let text = match (first, wide || area.width >= 80) {
            (Some(name), true) => format!(" ⚑ {waiting} waiting: {} ", truncate(&name, 16)),
            _ => format!(" ⚑ {waiting} waiting "),
        };
        left.push(Span::styled(text, theme.attention(app.flash_on())));
    }
    let (page, pages, _) = app.page();
    let mut right: Vec<Span> = Vec::new();
    if !app.filter.is_empty() && app.focus != Focus::Filter {
        right.push(Span::styled(
            format!("/{} ", truncate(&app.filter.text(), 12)),
            theme.key().bg(theme.header_bg),
        ));
        right.push(Span::styled(
            format!("{} shown  ", app.filtered().len()),
            hdr,
        ));
    }
    if app.enlarged.is_none() {
        right.push(Span::styled(format!("page {}/{} ", page + 1, pages), hdr));
    }
    if let Some((connected, _)) = &app.server {
        let (text, style) = if *connected {
            ("server ✓ ", theme.state(StreamState::Live, false))
        } else {
            ("server ✗ ", theme.error())
        };
        right.push(Span::styled(text, style.bg(theme.header_bg)));
    }
    let lw: usize = left.iter().map(|s| s.width()).sum();
    let rw: usize = right.iter().map(|s| s.width()).sum();
    buf.set_line(area.x, area.y, &Line::from(left), area.width);
    if lw + rw < area.width as usize {
        buf.set_line(
            area.x + area.width - rw as u16,
            area.y,
            &Line::from(right),
            rw as u16,
        );
    }
}

/// Draw the footer row; returns the cursor position while filtering.
pub fn draw_footer(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) -> Option<Position> {
    if area.height == 0 || area.y == 0 {
        return None;
    }
    if app.focus == Focus::Filter {
        let text = app.filter.text();
        let line = Line::from(vec![
            Span::styled("/", theme.key()),
            Span::styled(text.clone(), theme.input()),
            Span::styled("  ⏎ keep  Esc clear", theme.dim()),
        ]);
        buf.set_line(area.x, area.y, &line, area.width);
        let cx = text
            .chars()
            .take(app.filter.cursor())
            .collect::<String>()
            .width();
        return Some(Position::new(area.x + 1 + cx as u16, area.y));
    }
    if let Some(n) = &app.notice {
        let style = if n.error {
            theme.error()
        } else {
            theme.notice()
        };
        let icon = if n.error { "✗ " } else { "› " };
        buf.set_string(
            area.x,
            area.y,
            truncate(&format!("{icon}{}", n.text), area.width as usize),
            style,
        );
        return None;
    }
    let hints: &[(&str, &str)] = if app.focus == Focus::Chat {
        &[
            ("⏎", "send"),
            ("Esc", "close"),
            ("Tab", "grid"),
            ("Ctrl-U", "clear"),
            ("←→", "edit"),
        ]
    } else if app.enlarged.is_some() {
        &[
            ("Esc", "back"),
            ("←→", "prev/next"),
            ("c", "chat"),
            ("a", "attention"),
            ("space", "ack"),
            ("n", "next asking"),
            ("s", "snapshot"),
            ("?", "help"),
            ("q", "quit"),
        ]
    } else {
        &[
            ("←↓↑→", "move"),
            ("⏎", "enlarge"),
            ("c", "chat"),
            ("a", "attention"),
            ("space", "ack"),
            ("n", "next asking"),
            ("o", "off-air"),
            ("/", "filter"),
            ("s", "snap"),
            ("?", "help"),
            ("q", "quit"),
        ]
    };
    let mut spans = Vec::new();
    let mut used = 0usize;
    let help_w = " ? help".width() + 1;
    for (k, (key, what)) in hints.iter().enumerate() {
        let w = key.width() + what.width() + 3;
        let last = k + 1 == hints.len();
        if used + w + if last { 0 } else { help_w } > area.width as usize {
            spans.push(Span::styled(" ?", theme.key()));
            spans.push(Span::styled(" help", theme.dim()));
            break;
        }
        spans.push(Span::styled(format!(" {key}"), theme.key()));
        spans.push(Span::styled(format!(" {what} "), theme.dim()));
        used += w;
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    None
}
