//! One student as large as the pane allows.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Widget};

use super::tile::{audio_meter, conflict_badge, glyph, has_picture, picture_badges, state_word};
use super::{DrawCtx, centered, truncate};
use crate::proctor::StreamState;
use crate::tui::app::{App, since_label};

/// Draw student `i` enlarged into `area`.
pub fn draw(buf: &mut Buffer, area: Rect, app: &App, i: usize, ctx: &mut DrawCtx) {
    let theme = ctx.theme;
    let t = &app.tiles[i];
    let waiting = t.attention_since.is_some();
    let flash = waiting && app.flash_on();
    let mut title = vec![
        Span::raw(" "),
        Span::styled(glyph(t), theme.state(t.state, t.unknown)),
        Span::styled(format!(" {} ", t.label()), theme.tile_title(true)),
    ];
    if t.name.is_some() {
        title.push(Span::styled(format!("{} ", t.id), theme.dim()));
    }
    if let Some(code) = &t.code {
        title.push(Span::styled(format!("· code {code} "), theme.dim()));
    }
    if waiting {
        let since = t
            .attention_since
            .map(|s| since_label(app.now, s))
            .unwrap_or_default();
        title.push(Span::styled(
            format!(" ⚑ asks for attention ({since}) "),
            theme.attention(flash),
        ));
    }
    if t.unread > 0 {
        title.push(Span::styled(format!(" ✉{} ", t.unread), theme.unread()));
    }
    if let Some(last) = t.snapshots.last() {
        let name = std::path::Path::new(last)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| last.clone());
        title.push(Span::styled(
            format!(" ▣ {} snapshot(s), last {name} ", t.snapshots.len()),
            theme.dim(),
        ));
    }
    let mut status = vec![Span::styled(
        format!(" {} {} ", state_word(t), since_label(app.now, t.since)),
        theme.state(t.state, t.unknown),
    )];
    if let Some(s) = t.stats.as_ref().filter(|_| t.state == StreamState::Live) {
        // Most useful first; later pieces are left out when the row is full.
        let mut pieces = vec![
            format!("{:.0} fps", s.fps_received),
            format!("{:.0} kbit/s", s.bitrate_kbps),
            format!("{}x{} {}", s.width, s.height, s.codec),
            format!("loss {:.1}%", s.packet_loss * 100.0),
        ];
        if let Some(age) = s.frame_age_ms {
            pieces.push(format!("age {age} ms"));
        }
        let meter_w = 8;
        let mut room = (area.width as usize)
            .saturating_sub(status.iter().map(|s| s.width()).sum::<usize>() + meter_w + 12);
        let mut text = String::new();
        for p in pieces {
            if p.len() + 3 > room {
                break;
            }
            room -= p.len() + 3;
            text.push_str(&format!("· {p} "));
        }
        status.push(Span::styled(text, theme.dim()));
        let (on, off) = audio_meter(s.audio_level, meter_w);
        status.push(Span::styled("· audio ", theme.dim()));
        status.push(Span::styled(
            on,
            ratatui::style::Style::new().fg(theme.live),
        ));
        status.push(Span::styled(off, theme.dim()));
        status.push(Span::raw(" "));
    }
    let block = Block::bordered()
        .border_type(BorderType::Thick)
        .border_style(theme.tile_border(true, waiting, flash))
        .title_top(Line::from(title))
        .title_bottom(Line::from(status));
    let inner = block.inner(area);
    block.render(area, buf);
    let drew = has_picture(t)
        && ctx
            .thumbs
            .draw(buf, inner, &t.id, ctx.frames, ctx.now, theme.letterbox);
    if !drew {
        let word = match t.state {
            StreamState::Joining => "joining…".to_string(),
            StreamState::OffAir | StreamState::Left => format!(
                "{} for {}",
                state_word(t).to_uppercase(),
                since_label(app.now, t.since)
            ),
            _ => "waiting for picture…".to_string(),
        };
        let text = truncate(&word, inner.width as usize);
        let r = centered(inner, text.chars().count() as u16, 1);
        buf.set_string(r.x, r.y, text, theme.state(t.state, t.unknown));
        conflict_badge(buf, inner, app, t, theme);
    } else {
        picture_badges(buf, inner, app, t, theme);
    }
}
