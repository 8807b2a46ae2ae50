//! Semantic styles: views ask for "the style of a live state" or "a selected
//! tile's border", never for a colour.
//!
//! Themes are TOML files (`themes/*.toml`, embedded into the binary). A
//! theme is chosen by name (`default`, `light`, `high-contrast`) or by path
//! (`--theme PATH`), and a user file `$XDG_CONFIG_HOME/rtcproctor/theme.toml`
//! is merged over it key by key, so a user can change one colour.

use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};

use crate::proctor::StreamState;
use crate::{Error, Result};

const DEFAULT: &str = include_str!("../../themes/default.toml");
const LIGHT: &str = include_str!("../../themes/light.toml");
const HIGH_CONTRAST: &str = include_str!("../../themes/high-contrast.toml");

/// Names of the embedded themes.
pub const BUILT_IN: &[&str] = &["default", "light", "high-contrast"];

/// Every colour the views use.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub bg: Color,
    pub fg: Color,
    pub dim: Color,
    pub accent: Color,
    pub border: Color,
    pub border_selected: Color,
    pub header_bg: Color,
    pub header_fg: Color,
    pub brand_bg: Color,
    pub brand_fg: Color,
    pub popup_bg: Color,
    pub letterbox: Color,
    pub key: Color,
    pub notice: Color,
    pub error: Color,
    pub input_bg: Color,
    pub live: Color,
    pub joining: Color,
    pub stalled: Color,
    pub reconnecting: Color,
    pub off_air: Color,
    pub left: Color,
    pub unknown: Color,
    pub attention_fg: Color,
    pub attention_bg: Color,
    pub unread: Color,
    pub pinged: Color,
    pub chat_student: Color,
    pub chat_proctor: Color,
    pub chat_time: Color,
}

impl Default for Theme {
    fn default() -> Self {
        // The embedded default is checked by a unit test; fall back to a
        // plain reset theme rather than panic if it ever breaks.
        Theme::from_toml(DEFAULT, "default").unwrap_or_else(|_| Theme::plain())
    }
}

impl Theme {
    /// Resolve `--theme NAME|PATH`, then merge the user's override file.
    pub fn load(name_or_path: &str) -> Result<Theme> {
        let user = directories::ProjectDirs::from("", "", "rtcproctor")
            .map(|d| d.config_dir().join("theme.toml"))
            .filter(|p| p.exists());
        Theme::load_with(name_or_path, user.as_deref())
    }

    /// [`Theme::load`] with an explicit override file (tests).
    pub fn load_with(name_or_path: &str, user_override: Option<&Path>) -> Result<Theme> {
        let mut table = parse(DEFAULT, "default")?;
        let chosen = match name_or_path {
            "default" | "dark" => None,
            "light" => Some((LIGHT.to_string(), "light".to_string())),
            "high-contrast" | "high_contrast" => {
                Some((HIGH_CONTRAST.to_string(), "high-contrast".to_string()))
            }
            path => {
                let p = Path::new(path);
                if !p.exists() {
                    return Err(Error::Invalid(format!(
                        "unknown theme \"{path}\": use one of {} or the path of a theme TOML file",
                        BUILT_IN.join(", ")
                    )));
                }
                let text = std::fs::read_to_string(p).map_err(|e| Error::file(p, e))?;
                Some((text, p.display().to_string()))
            }
        };
        if let Some((text, origin)) = chosen {
            merge(&mut table, parse(&text, &origin)?, &origin, "")?;
        }
        if let Some(p) = user_override {
            let text = std::fs::read_to_string(p).map_err(|e| Error::file(p, e))?;
            let origin = p.display().to_string();
            merge(&mut table, parse(&text, &origin)?, &origin, "")?;
        }
        Theme::from_table(&table, name_or_path)
    }

    /// A theme from TOML text with every key present.
    pub fn from_toml(text: &str, origin: &str) -> Result<Theme> {
        Theme::from_table(&parse(text, origin)?, origin)
    }

    /// Terminal default colours only (a last resort).
    fn plain() -> Theme {
        let r = Color::Reset;
        Theme {
            name: "plain".into(),
            bg: r,
            fg: r,
            dim: Color::DarkGray,
            accent: Color::Cyan,
            border: Color::DarkGray,
            border_selected: Color::Cyan,
            header_bg: r,
            header_fg: r,
            brand_bg: Color::Blue,
            brand_fg: Color::White,
            popup_bg: r,
            letterbox: r,
            key: Color::Yellow,
            notice: Color::Cyan,
            error: Color::Red,
            input_bg: r,
            live: Color::Green,
            joining: Color::Cyan,
            stalled: Color::Yellow,
            reconnecting: Color::Cyan,
            off_air: Color::DarkGray,
            left: Color::DarkGray,
            unknown: Color::Magenta,
            attention_fg: Color::Black,
            attention_bg: Color::Yellow,
            unread: Color::Yellow,
            pinged: Color::Magenta,
            chat_student: Color::Cyan,
            chat_proctor: Color::Green,
            chat_time: Color::DarkGray,
        }
    }

    fn from_table(t: &toml::Table, origin: &str) -> Result<Theme> {
        let c = |key: &str| colour(t, key, origin);
        Ok(Theme {
            name: t
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or(origin)
                .to_string(),
            bg: c("ui.bg")?,
            fg: c("ui.fg")?,
            dim: c("ui.dim")?,
            accent: c("ui.accent")?,
            border: c("ui.border")?,
            border_selected: c("ui.border_selected")?,
            header_bg: c("ui.header_bg")?,
            header_fg: c("ui.header_fg")?,
            brand_bg: c("ui.brand_bg")?,
            brand_fg: c("ui.brand_fg")?,
            popup_bg: c("ui.popup_bg")?,
            letterbox: c("ui.letterbox")?,
            key: c("ui.key")?,
            notice: c("ui.notice")?,
            error: c("ui.error")?,
            input_bg: c("ui.input_bg")?,
            live: c("state.live")?,
            joining: c("state.joining")?,
            stalled: c("state.stalled")?,
            reconnecting: c("state.reconnecting")?,
            off_air: c("state.off_air")?,
            left: c("state.left")?,
            unknown: c("state.unknown")?,
            attention_fg: c("attention.fg")?,
            attention_bg: c("attention.bg")?,
            unread: c("attention.unread")?,
            pinged: c("attention.pinged")?,
            chat_student: c("chat.student")?,
            chat_proctor: c("chat.proctor")?,
            chat_time: c("chat.time")?,
        })
    }

    // ---- semantic accessors ------------------------------------------------

    /// Plain text on the screen background.
    pub fn text(&self) -> Style {
        Style::new().fg(self.fg).bg(self.bg)
    }

    /// Secondary text (hints, times).
    pub fn dim(&self) -> Style {
        Style::new().fg(self.dim)
    }

    /// The colour of a stream state (also used for unknown publishers).
    pub fn state_color(&self, state: StreamState, unknown: bool) -> Color {
        if unknown {
            return self.unknown;
        }
        match state {
            StreamState::Live => self.live,
            StreamState::Joining => self.joining,
            StreamState::Stalled => self.stalled,
            StreamState::Reconnecting => self.reconnecting,
            StreamState::OffAir => self.off_air,
            StreamState::Left => self.left,
        }
    }

    /// A state label or glyph.
    pub fn state(&self, state: StreamState, unknown: bool) -> Style {
        Style::new()
            .fg(self.state_color(state, unknown))
            .add_modifier(Modifier::BOLD)
    }

    /// A tile's border: selection and attention win over the plain border.
    pub fn tile_border(&self, selected: bool, attention: bool, flash_on: bool) -> Style {
        match (selected, attention, flash_on) {
            (_, true, true) => Style::new()
                .fg(self.attention_bg)
                .add_modifier(Modifier::BOLD),
            (true, _, _) => Style::new()
                .fg(self.border_selected)
                .add_modifier(Modifier::BOLD),
            (false, true, false) => Style::new().fg(self.attention_bg),
            _ => Style::new().fg(self.border),
        }
    }

    /// A tile's name: bold when selected.
    pub fn tile_title(&self, selected: bool) -> Style {
        let s = Style::new().fg(self.fg);
        if selected {
            s.add_modifier(Modifier::BOLD)
        } else {
            s
        }
    }

    /// The attention marker (flashing phase inverts it).
    pub fn attention(&self, flash_on: bool) -> Style {
        if flash_on {
            Style::new()
                .fg(self.attention_fg)
                .bg(self.attention_bg)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new()
                .fg(self.attention_bg)
                .add_modifier(Modifier::BOLD)
        }
    }

    /// Unread chat count.
    pub fn unread(&self) -> Style {
        Style::new().fg(self.unread).add_modifier(Modifier::BOLD)
    }

    /// Marker of attention the proctor raised.
    pub fn pinged(&self) -> Style {
        Style::new().fg(self.pinged).add_modifier(Modifier::BOLD)
    }

    /// The header bar.
    pub fn header(&self) -> Style {
        Style::new().fg(self.header_fg).bg(self.header_bg)
    }

    /// The product name in the header.
    pub fn brand(&self) -> Style {
        Style::new()
            .fg(self.brand_fg)
            .bg(self.brand_bg)
            .add_modifier(Modifier::BOLD)
    }

    /// A key in hints and help.
    pub fn key(&self) -> Style {
        Style::new().fg(self.key).add_modifier(Modifier::BOLD)
    }

    /// Transient notices.
    pub fn notice(&self) -> Style {
        Style::new().fg(self.notice)
    }

    /// Errors worded for the proctor.
    pub fn error(&self) -> Style {
        Style::new().fg(self.error).add_modifier(Modifier::BOLD)
    }

    /// Pop-up panes (help, off-air list).
    pub fn popup(&self) -> Style {
        Style::new().fg(self.fg).bg(self.popup_bg)
    }

    /// Pane borders (chat, popups); focused ones use the accent.
    pub fn pane_border(&self, focused: bool) -> Style {
        if focused {
            Style::new().fg(self.accent).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(self.border)
        }
    }

    /// Text inputs.
    pub fn input(&self) -> Style {
        Style::new().fg(self.fg).bg(self.input_bg)
    }

    /// A highlighted row of a list.
    pub fn row_selected(&self) -> Style {
        Style::new()
            .fg(self.brand_fg)
            .bg(self.brand_bg)
            .add_modifier(Modifier::BOLD)
    }

    /// Who wrote a chat line.
    pub fn chat_author(&self, student: bool) -> Style {
        let c = if student {
            self.chat_student
        } else {
            self.chat_proctor
        };
        Style::new().fg(c).add_modifier(Modifier::BOLD)
    }

    /// Chat timestamps.
    pub fn chat_time(&self) -> Style {
        Style::new().fg(self.chat_time)
    }
}

fn parse(text: &str, origin: &str) -> Result<toml::Table> {
    text.parse::<toml::Table>()
        .map_err(|e| Error::Invalid(format!("theme {origin:?} is not valid TOML: {e}")))
}

/// Overlay `over` on `base`; keys unknown to the default theme are errors
/// (a typo should not be silently ignored).
fn merge(base: &mut toml::Table, over: toml::Table, origin: &str, prefix: &str) -> Result<()> {
    for (k, v) in over {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, origin, &path)?,
            (Some(slot), v) if !slot.is_table() => *slot = v,
            _ => {
                return Err(Error::Invalid(format!(
                    "theme {origin:?}: unknown key \"{path}\" (see themes/default.toml for the keys)"
                )));
            }
        }
    }
    Ok(())
}

fn colour(t: &toml::Table, key: &str, origin: &str) -> Result<Color> {
    let mut value: Option<&toml::Value> = None;
    let mut table = Some(t);
    for part in key.split('.') {
        value = table.and_then(|t| t.get(part));
        table = value.and_then(|v| v.as_table());
    }
    let text = value.and_then(|v| v.as_str()).ok_or_else(|| {
        Error::Invalid(format!(
            "theme {origin:?}: \"{key}\" is missing or not a string"
        ))
    })?;
    Color::from_str(text).map_err(|_| {
        Error::Invalid(format!(
            "theme {origin:?}: \"{key}\" = \"{text}\" is not a colour: use \"#rrggbb\", a name like \"red\" or \"reset\", or 0-255"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_themes_load() {
        for name in BUILT_IN {
            let t = Theme::load_with(name, None).unwrap();
            assert_eq!(t.name, *name);
        }
        assert_eq!(Theme::default().live, Color::Rgb(0x00, 0x9e, 0x73));
        assert_ne!(
            Theme::load_with("light", None).unwrap().fg,
            Theme::default().fg
        );
    }

    #[test]
    fn user_file_overrides_one_key_and_rejects_typos() {
        let dir = std::env::temp_dir().join(format!("rtcp-theme-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("theme.toml");
        std::fs::write(&p, "[state]\nlive = \"#010203\"\n").unwrap();
        let t = Theme::load_with("default", Some(&p)).unwrap();
        assert_eq!(t.live, Color::Rgb(1, 2, 3));
        assert_eq!(t.stalled, Theme::default().stalled);
        std::fs::write(&p, "[state]\nlvie = \"#010203\"\n").unwrap();
        let err = Theme::load_with("default", Some(&p))
            .unwrap_err()
            .to_string();
        assert!(err.contains("state.lvie"), "{err}");
        std::fs::write(&p, "[state]\nlive = \"greenish\"\n").unwrap();
        let err = Theme::load_with("default", Some(&p))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a colour"), "{err}");
        assert!(Theme::load_with("no-such-theme", None).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
