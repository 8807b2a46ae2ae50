//! A one-line text editor for the chat input and the filter.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::sanitize;

/// Longest input accepted (characters).
pub const MAX_INPUT: usize = 500;

/// Text and a cursor, edited with the usual readline keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineEditor {
    chars: Vec<char>,
    cursor: usize,
}

/// What a key did to the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// The text changed.
    Changed,
    /// Only the cursor moved.
    Moved,
    /// Not an editing key.
    Ignored,
}

impl LineEditor {
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Cursor position in characters.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    pub fn clear(&mut self) {
        self.chars.clear();
        self.cursor = 0;
    }

    /// Take the text out and leave the line empty.
    pub fn take(&mut self) -> String {
        let t = self.text();
        self.clear();
        t
    }

    /// Insert text at the cursor (pasted text is cleaned first).
    pub fn insert_str(&mut self, text: &str) {
        for c in sanitize::clean(text).chars() {
            self.insert(c);
        }
    }

    fn insert(&mut self, c: char) {
        if self.chars.len() < MAX_INPUT && !c.is_control() {
            self.chars.insert(self.cursor, c);
            self.cursor += 1;
        }
    }

    /// Apply an editing key: characters, Backspace/Delete, Left/Right,
    /// Home/End, Ctrl-A/E/U/K/W, Alt-B/F.
    pub fn handle_key(&mut self, key: &KeyEvent) -> Edit {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Char('a') if ctrl => self.move_to(0),
            KeyCode::Char('e') if ctrl => self.move_to(self.chars.len()),
            KeyCode::Char('b') if ctrl => self.move_to(self.cursor.saturating_sub(1)),
            KeyCode::Char('f') if ctrl => self.move_to(self.cursor + 1),
            KeyCode::Char('b') if alt => self.move_to(self.word_start()),
            KeyCode::Char('f') if alt => self.move_to(self.word_end()),
            KeyCode::Char('u') if ctrl => {
                self.chars.drain(..self.cursor);
                self.cursor = 0;
                Edit::Changed
            }
            KeyCode::Char('k') if ctrl => {
                self.chars.truncate(self.cursor);
                Edit::Changed
            }
            KeyCode::Char('w') if ctrl => {
                let start = self.word_start();
                self.chars.drain(start..self.cursor);
                self.cursor = start;
                Edit::Changed
            }
            KeyCode::Char(_) if ctrl || alt => Edit::Ignored,
            KeyCode::Char(c) => {
                self.insert(c);
                Edit::Changed
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.chars.remove(self.cursor);
                Edit::Changed
            }
            KeyCode::Delete if self.cursor < self.chars.len() => {
                self.chars.remove(self.cursor);
                Edit::Changed
            }
            KeyCode::Backspace | KeyCode::Delete => Edit::Moved,
            KeyCode::Left => self.move_to(self.cursor.saturating_sub(1)),
            KeyCode::Right => self.move_to(self.cursor + 1),
            KeyCode::Home => self.move_to(0),
            KeyCode::End => self.move_to(self.chars.len()),
            _ => Edit::Ignored,
        }
    }

    fn move_to(&mut self, pos: usize) -> Edit {
        self.cursor = pos.min(self.chars.len());
        Edit::Moved
    }

    fn word_start(&self) -> usize {
        let mut i = self.cursor;
        while i > 0 && self.chars[i - 1] == ' ' {
            i -= 1;
        }
        while i > 0 && self.chars[i - 1] != ' ' {
            i -= 1;
        }
        i
    }

    fn word_end(&self) -> usize {
        let mut i = self.cursor;
        let n = self.chars.len();
        while i < n && self.chars[i] == ' ' {
            i += 1;
        }
        while i < n && self.chars[i] != ' ' {
            i += 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(e: &mut LineEditor, code: KeyCode, m: KeyModifiers) {
        e.handle_key(&KeyEvent::new(code, m));
    }

    #[test]
    fn readline_keys() {
        let mut e = LineEditor::default();
        e.insert_str("hello world");
        press(&mut e, KeyCode::Char('w'), KeyModifiers::CONTROL);
        assert_eq!(e.text(), "hello ");
        press(&mut e, KeyCode::Home, KeyModifiers::NONE);
        press(&mut e, KeyCode::Char('>'), KeyModifiers::NONE);
        assert_eq!((e.text().as_str(), e.cursor()), (">hello ", 1));
        press(&mut e, KeyCode::Delete, KeyModifiers::NONE);
        press(&mut e, KeyCode::Char('k'), KeyModifiers::CONTROL);
        assert_eq!(e.text(), ">");
        press(&mut e, KeyCode::Backspace, KeyModifiers::NONE);
        press(&mut e, KeyCode::Backspace, KeyModifiers::NONE);
        assert!(e.is_empty());
        e.insert_str("a\x1b[2Jb");
        assert_eq!(e.take(), "ab");
    }
}
