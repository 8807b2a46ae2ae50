//! Keys to [`Action`]s for the grid and enlarged views.
//!
//! Text inputs (chat, filter) and overlays handle their own keys in
//! [`crate::tui::app`]; this table is only what a proctor may want to rebind.
//! Bindings are written like `"ctrl-c"`, `"shift-tab"`, `"pgdn"`, `"?"`.

use std::collections::HashMap;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::msg::Action;

/// A key with its modifiers, shift folded into the character for letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyBinding {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

impl KeyBinding {
    /// Normalise a terminal key event: SHIFT is dropped for characters (the
    /// character already says it), so `?` matches on every layout.
    pub fn from_event(key: &KeyEvent) -> Self {
        let mut modifiers = key.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        if !matches!(key.code, KeyCode::Char(_)) && key.modifiers.contains(KeyModifiers::SHIFT) {
            modifiers |= KeyModifiers::SHIFT;
        }
        KeyBinding {
            code: key.code,
            modifiers,
        }
    }

    /// Parse `"ctrl-c"`, `"enter"`, `"?"`, `"shift-tab"`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut modifiers = KeyModifiers::NONE;
        let mut rest = text;
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("ctrl-") {
                modifiers |= KeyModifiers::CONTROL;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("alt-") {
                modifiers |= KeyModifiers::ALT;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("shift-") {
                modifiers |= KeyModifiers::SHIFT;
                rest = &rest[rest.len() - r.len()..];
            } else {
                break;
            }
        }
        let code = match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "tab" if modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "space" => KeyCode::Char(' '),
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "pgup" | "pageup" => KeyCode::PageUp,
            "pgdn" | "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            _ => {
                let mut chars = rest.chars();
                let c = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                KeyCode::Char(c)
            }
        };
        if matches!(code, KeyCode::Char(_) | KeyCode::BackTab) {
            modifiers.remove(KeyModifiers::SHIFT);
        }
        Some(KeyBinding { code, modifiers })
    }
}

/// The binding table.
#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: HashMap<KeyBinding, Action>,
}

impl Default for Keymap {
    fn default() -> Self {
        use Action::*;
        let table: &[(&str, Action)] = &[
            ("left", Left),
            ("h", Left),
            ("right", Right),
            ("l", Right),
            ("up", Up),
            ("k", Up),
            ("down", Down),
            ("j", Down),
            ("pgup", PageUp),
            ("pgdn", PageDown),
            ("home", First),
            ("g", First),
            ("end", Last),
            ("G", Last),
            ("enter", Enlarge),
            ("esc", Back),
            ("c", Chat),
            ("tab", Chat),
            ("a", RaiseAttention),
            ("space", Acknowledge),
            ("n", NextAttention),
            ("o", OffAirList),
            ("/", Filter),
            ("s", Snapshot),
            ("R", ReleaseCode),
            ("?", Help),
            ("q", Quit),
            ("ctrl-c", ForceQuit),
            ("ctrl-z", Suspend),
        ];
        let mut bindings = HashMap::new();
        for (key, action) in table {
            if let Some(b) = KeyBinding::parse(key) {
                bindings.insert(b, *action);
            }
        }
        Keymap { bindings }
    }
}

impl Keymap {
    /// The action bound to a key, if any.
    pub fn action(&self, key: &KeyEvent) -> Option<Action> {
        self.bindings.get(&KeyBinding::from_event(key)).copied()
    }

    /// Bind more keys over the defaults (`key = "action"` pairs from a config
    /// file). Errors name the bad entry and say what is accepted.
    pub fn with_overrides(mut self, table: &HashMap<String, Action>) -> Result<Self, String> {
        for (key, action) in table {
            let binding = KeyBinding::parse(key).ok_or_else(|| {
                format!(
                    "unknown key {key:?} in the keymap: use a character or a name like \
                     \"ctrl-x\", \"enter\", \"pgdn\", \"shift-tab\""
                )
            })?;
            self.bindings.insert(binding, *action);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn defaults_cover_vim_and_arrows() {
        let km = Keymap::default();
        assert_eq!(
            km.action(&key(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Action::Down)
        );
        assert_eq!(
            km.action(&key(KeyCode::Down, KeyModifiers::NONE)),
            Some(Action::Down)
        );
        assert_eq!(
            km.action(&key(KeyCode::Char('?'), KeyModifiers::SHIFT)),
            Some(Action::Help)
        );
        assert_eq!(
            km.action(&key(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Last)
        );
        assert_eq!(
            km.action(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::ForceQuit)
        );
        assert_eq!(
            km.action(&key(KeyCode::Char('x'), KeyModifiers::NONE)),
            None
        );
    }

    #[test]
    fn overrides_parse_and_reject() {
        let mut t = HashMap::new();
        t.insert("ctrl-x".to_string(), Action::Quit);
        let km = Keymap::default().with_overrides(&t).unwrap();
        assert_eq!(
            km.action(&key(KeyCode::Char('x'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        t.insert("nonsense-key".to_string(), Action::Quit);
        assert!(Keymap::default().with_overrides(&t).is_err());
    }
}
