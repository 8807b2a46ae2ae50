//! Drawing: pure functions of the [`App`] state, the frame slots and the
//! theme. The only thing they change is the thumbnail cache (pictures
//! already on screen), which is drawing memory, not state.

pub mod chat;
pub mod enlarged;
pub mod grid;
pub mod help;
pub mod layout;
pub mod off_air;
pub mod status_bar;
pub mod thumbnail;
pub mod tile;

use std::time::Instant;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::Color;
use ratatui::widgets::{Block, Clear, Widget};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::{App, Overlay};
use super::halfblock;
use super::theme::Theme;
use crate::proctor::FrameSlots;
pub use thumbnail::ThumbCache;

/// Colours the terminal can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    /// 24-bit colour (COLORTERM=truecolor or 24bit).
    TrueColor,
    /// The xterm 256-colour palette.
    Ansi256,
}

impl ColorDepth {
    /// From the environment: COLORTERM says whether 24-bit colour works.
    pub fn detect() -> Self {
        match std::env::var("COLORTERM") {
            Ok(v) if v.eq_ignore_ascii_case("truecolor") || v.eq_ignore_ascii_case("24bit") => {
                ColorDepth::TrueColor
            }
            _ => ColorDepth::Ansi256,
        }
    }
}

/// What drawing needs besides the app state.
pub struct DrawCtx<'a> {
    pub theme: &'a Theme,
    pub frames: &'a FrameSlots,
    pub thumbs: &'a mut ThumbCache,
    pub depth: ColorDepth,
    pub now: Instant,
}

/// Draw the whole screen.
pub fn draw(f: &mut Frame, app: &App, ctx: &mut DrawCtx) {
    let area = f.area();
    let cursor = draw_buffer(f.buffer_mut(), area, app, ctx);
    if let Some(p) = cursor {
        f.set_cursor_position(p);
    }
}

/// Draw into a buffer; returns where the text cursor goes, if anywhere.
pub fn draw_buffer(buf: &mut Buffer, area: Rect, app: &App, ctx: &mut DrawCtx) -> Option<Position> {
    ctx.thumbs.begin();
    let theme = ctx.theme;
    Block::new().style(theme.text()).render(area, buf);
    let screen = layout::screen(area, app.chat_open);
    let mut cursor = None;
    status_bar::draw_header(buf, screen.header, app, theme);
    match app.enlarged {
        Some(i) => enlarged::draw(buf, screen.main, app, i, ctx),
        None => grid::draw(buf, screen.main, app, ctx),
    }
    if let Some(chat_area) = screen.chat {
        cursor = chat::draw(buf, chat_area, app, theme);
    }
    if let Some(c) = status_bar::draw_footer(buf, screen.footer, app, theme) {
        cursor = Some(c);
    }
    match app.overlay {
        Overlay::Help => help::draw(buf, area, app, theme),
        Overlay::OffAir { selected } => off_air::draw(buf, area, app, selected, theme),
        Overlay::ConfirmQuit => draw_confirm(buf, area, theme, "Quit rtcproctor?", " quit   "),
        Overlay::ConfirmRelease { student } => {
            let who = app.tiles.get(student).map(|t| t.label()).unwrap_or("?");
            let text = format!("Take {who}'s code from the device live on it?");
            draw_confirm(buf, area, theme, &text, " take it   ")
        }
        Overlay::None => {}
    }
    if app.overlay != Overlay::None {
        cursor = None;
    }
    ctx.thumbs.end();
    if ctx.depth == ColorDepth::Ansi256 {
        to_256_colours(buf, area);
    }
    cursor
}

/// A yes/no question: `y` does `yes`, any other key cancels.
fn draw_confirm(buf: &mut Buffer, area: Rect, theme: &Theme, text: &str, yes: &str) {
    use ratatui::text::{Line, Span};
    let keys = Line::from(vec![
        Span::styled("y", theme.key()),
        Span::styled(yes, theme.popup()),
        Span::styled("any other key", theme.key()),
        Span::styled(" cancel", theme.popup()),
    ]);
    let text = truncate(text, area.width.saturating_sub(4) as usize);
    let w = (keys.width().max(text.width()) as u16 + 4).min(area.width);
    let r = centered(area, w, 4);
    Clear.render(r, buf);
    let block = Block::bordered()
        .border_type(ratatui::widgets::BorderType::Rounded)
        .border_style(theme.pane_border(true))
        .style(theme.popup());
    let inner = block.inner(r);
    block.render(r, buf);
    buf.set_string(
        inner.x + (inner.width.saturating_sub(text.width() as u16)) / 2,
        inner.y,
        text,
        theme.popup().add_modifier(ratatui::style::Modifier::BOLD),
    );
    buf.set_line(
        inner.x + inner.width.saturating_sub(keys.width() as u16) / 2,
        inner.y + 1,
        &keys,
        inner.width,
    );
}

/// Map every 24-bit colour in the buffer to the 256-colour palette.
fn to_256_colours(buf: &mut Buffer, area: Rect) {
    let map = |c: Color| match c {
        Color::Rgb(r, g, b) => Color::Indexed(halfblock::to_ansi256([r, g, b])),
        other => other,
    };
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            if let Some(cell) = buf.cell_mut((x, y)) {
                let (fg, bg) = (map(cell.fg), map(cell.bg));
                cell.set_fg(fg).set_bg(bg);
            }
        }
    }
}

/// A rectangle of `w` x `h` centred in `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// Cut `s` to `width` columns, ending in '…' when cut.
pub fn truncate(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > width - 1 {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_by_width() {
        assert_eq!(truncate("Ann Lee", 10), "Ann Lee");
        assert_eq!(truncate("Annabelle Lee", 6), "Annab…");
        assert_eq!(truncate("学生学生", 5), "学生…");
        assert_eq!(truncate("abc", 0), "");
    }
}
