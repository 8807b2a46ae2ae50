//! One student's tile: picture inside a border whose top row names the
//! student and whose bottom row tells the state, the time since, fps,
//! bitrate and audio level.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Widget};
use unicode_width::UnicodeWidthStr;

use super::{DrawCtx, truncate};
use crate::proctor::{StreamState, StreamStats};
use crate::tui::app::{App, Tile, since_label};
use crate::tui::theme::Theme;

/// The glyph of a state (colour is never the only cue).
pub fn glyph(t: &Tile) -> &'static str {
    if t.unknown && !t.off_air() {
        return "?";
    }
    match t.state {
        StreamState::Live => "●",
        StreamState::Joining => "◌",
        StreamState::Stalled => "◐",
        StreamState::Reconnecting => "↻",
        StreamState::OffAir => "○",
        StreamState::Left => "×",
    }
}

/// The word for a state.
pub fn state_word(t: &Tile) -> &'static str {
    if t.unknown && !t.off_air() {
        return "unknown";
    }
    match t.state {
        StreamState::Live => "live",
        StreamState::Joining => "joining",
        StreamState::Stalled => "stalled",
        StreamState::Reconnecting => "reconnecting",
        StreamState::OffAir => "off-air",
        StreamState::Left => "left",
    }
}

/// True if the state has a picture to show.
pub fn has_picture(t: &Tile) -> bool {
    matches!(
        t.state,
        StreamState::Live | StreamState::Stalled | StreamState::Reconnecting
    )
}

/// "5fps 310k" (or shorter variants).
pub fn rate_badge(stats: &StreamStats, long: bool) -> String {
    let fps = stats.fps_received.round() as u32;
    let kbps = stats.bitrate_kbps.round() as u32;
    if long {
        format!("{fps}fps {kbps}k")
    } else {
        format!("{fps}fps")
    }
}

/// An audio meter `width` cells wide: one eighth-block bar for width 1,
/// filled/empty blocks otherwise.
pub fn audio_meter(level: f32, width: usize) -> (String, String) {
    let level = level.clamp(0.0, 1.0);
    if width <= 1 {
        const BARS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
        let k = (level * 8.0).round() as usize;
        return (BARS[k.min(8)].to_string(), String::new());
    }
    let filled = (level * width as f32).round() as usize;
    ("█".repeat(filled), "░".repeat(width - filled.min(width)))
}

/// Draw tile `i` into `area`.
pub fn draw(buf: &mut Buffer, area: Rect, app: &App, i: usize, selected: bool, ctx: &mut DrawCtx) {
    let theme = ctx.theme;
    let t = &app.tiles[i];
    let waiting = t.attention_since.is_some();
    let flash = waiting && app.flash_on();
    let block = Block::bordered()
        .border_type(if selected || flash {
            BorderType::Thick
        } else {
            BorderType::Rounded
        })
        .border_style(theme.tile_border(selected, waiting, flash));
    let inner = block.inner(area);
    block.render(area, buf);

    // Picture or placeholder.
    let drew = has_picture(t)
        && ctx
            .thumbs
            .draw(buf, inner, &t.id, ctx.frames, ctx.now, theme.letterbox);
    if drew {
        picture_badges(buf, inner, app, t, theme);
    } else {
        placeholder(buf, inner, app, t, theme);
        conflict_badge(buf, inner, app, t, theme);
    }

    // Top border: glyph, name, markers.
    let w = area.width.saturating_sub(2) as usize;
    let mut right: Vec<Span> = Vec::new();
    if t.unread > 0 {
        right.push(Span::styled(format!("✉{}", t.unread), theme.unread()));
    }
    if t.pinged_at.is_some() {
        right.push(Span::styled("◆", theme.pinged()));
    }
    if waiting {
        let since = t
            .attention_since
            .map(|s| since_label(app.now, s))
            .unwrap_or_default();
        let text = if w >= 24 {
            format!("⚑ {since}")
        } else {
            "⚑".to_string()
        };
        right.push(Span::styled(text, theme.attention(flash)));
    }
    let right_w: usize = right.iter().map(|s| s.width() + 1).sum();
    let name_w = w.saturating_sub(right_w + 3);
    let title_style = if flash {
        theme.attention(true)
    } else {
        theme.tile_title(selected)
    };
    let top = vec![
        Span::styled(glyph(t), theme.state(t.state, t.unknown)),
        Span::styled(" ", title_style),
        Span::styled(truncate(t.label(), name_w), title_style),
        Span::styled(" ", title_style),
    ];
    let used: usize = top.iter().map(|s| s.width()).sum();
    set_row(buf, area.x + 1, area.y, w, top, used, right);

    // Bottom border: state + time, rate badge, audio.
    let since = since_label(app.now, t.since);
    let left_text = format!("{} {since}", state_word(t));
    let mut right = Vec::new();
    if let Some(s) = t.stats.as_ref().filter(|_| t.state == StreamState::Live) {
        let (meter_w, long) = match w {
            0..=21 => (1, false),
            22..=29 => (1, true),
            _ => (4, true),
        };
        let (on, off) = audio_meter(s.audio_level, meter_w);
        let badge = rate_badge(s, long);
        if left_text.width() + badge.width() + meter_w + 4 <= w {
            right.push(Span::styled(badge, theme.dim()));
        }
        right.push(Span::styled(
            format!("{on}{off}"),
            Style::new().fg(theme.live),
        ));
    }
    let left = vec![Span::styled(
        truncate(&left_text, w.saturating_sub(2)),
        theme.state(t.state, t.unknown),
    )];
    let used: usize = left.iter().map(|s| s.width()).sum();
    set_row(
        buf,
        area.x + 1,
        area.y + area.height - 1,
        w,
        left,
        used,
        right,
    );
}

/// Write `left` at the start of a border row and `right` (spans separated by
/// a space) at its end, leaving the border line in between.
fn set_row(
    buf: &mut Buffer,
    x: u16,
    y: u16,
    width: usize,
    left: Vec<Span>,
    left_w: usize,
    right: Vec<Span>,
) {
    let line = Line::from(left);
    buf.set_line(x, y, &line, width as u16);
    let mut spans = Vec::new();
    for s in right {
        spans.push(s);
        spans.push(Span::raw(" "));
    }
    spans.pop();
    let rl = Line::from(spans);
    let rw = rl.width();
    if rw > 0 && left_w + rw < width {
        buf.set_line(x + (width - rw) as u16, y, &rl, rw as u16);
    }
}

/// A centred label over the picture (stalled, reconnecting).
/// Words over a drawn picture (tile or enlarged view): a useless camera,
/// a state other than live, another device trying the code.
pub fn picture_badges(buf: &mut Buffer, area: Rect, app: &App, t: &Tile, theme: &Theme) {
    if t.state == StreamState::Live
        && let Some(problem) = t.camera
    {
        // Frames arrive, but the picture is useless: say so on it.
        let word = match problem {
            crate::media::camera_check::CameraProblem::Black => " CAMERA BLACK ",
            crate::media::camera_check::CameraProblem::Frozen => " PICTURE FROZEN ",
        };
        badge(
            buf,
            area,
            word,
            theme
                .state(StreamState::Stalled, false)
                .add_modifier(Modifier::REVERSED),
        );
    }
    if t.state != StreamState::Live {
        badge(
            buf,
            area,
            &format!(" {} ", state_word(t).to_uppercase()),
            theme
                .state(t.state, t.unknown)
                .add_modifier(Modifier::REVERSED),
        );
    }
    conflict_badge(buf, area, app, t, theme);
}

/// Drawn last: it matters more than a camera or state badge.
pub fn conflict_badge(buf: &mut Buffer, area: Rect, app: &App, t: &Tile, theme: &Theme) {
    if t.conflict_active(app.now) {
        badge(buf, area, " CODE CONFLICT ", theme.attention(true));
    }
}

fn badge(buf: &mut Buffer, area: Rect, text: &str, style: Style) {
    let w = (text.width() as u16).min(area.width);
    let x = area.x + (area.width - w) / 2;
    let y = area.y + area.height / 2;
    buf.set_stringn(x, y, text, w as usize, style);
}

/// What an off-air, joining or picture-less tile shows.
fn placeholder(buf: &mut Buffer, area: Rect, app: &App, t: &Tile, theme: &Theme) {
    let since = since_label(app.now, t.since);
    let mut lines: Vec<Line> = Vec::new();
    let state_line = match t.state {
        StreamState::OffAir if t.unknown => "not on the roster".to_string(),
        StreamState::OffAir => "OFF-AIR".to_string(),
        StreamState::Left => "LEFT".to_string(),
        StreamState::Joining => "joining…".to_string(),
        _ => "waiting for picture…".to_string(),
    };
    lines.push(Line::styled(state_line, theme.state(t.state, t.unknown)));
    if t.off_air() {
        lines.push(Line::styled(format!("for {since}"), theme.dim()));
    }
    if let Some(code) = &t.code {
        lines.push(Line::styled(format!("code {code}"), theme.dim()));
    }
    if t.name.is_some() {
        lines.push(Line::styled(t.id.0.clone(), theme.dim()));
    }
    let h = (lines.len() as u16).min(area.height);
    let y0 = area.y + (area.height - h) / 2;
    for (k, l) in lines.iter().take(h as usize).enumerate() {
        let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
        let text = truncate(&text, area.width as usize);
        let x = area.x + (area.width.saturating_sub(text.width() as u16)) / 2;
        buf.set_stringn(x, y0 + k as u16, &text, area.width as usize, l.style);
    }
}
