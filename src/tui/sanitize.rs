//! Make text from the network safe to draw.
//!
//! Chat lines, names and codes come from students' browsers and pasted
//! rosters. A terminal interprets control characters and escape sequences,
//! so a single `ESC ] 52 ...` in a chat line could rewrite the proctor's
//! clipboard, and bidi controls could make one student's line read as
//! another's. Everything from outside goes through [`clean`] before it is
//! stored in the app state, so the views never see raw input.

/// Longest chat line or label kept (characters); longer input is cut.
pub const MAX_CHARS: usize = 1000;

/// Strip escape sequences, control characters (C0, DEL, C1) and bidi
/// controls; turn tabs and line breaks into spaces; cut to [`MAX_CHARS`].
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_CHARS));
    let mut chars = text.chars().peekable();
    let mut count = 0;
    while let Some(c) = chars.next() {
        if count >= MAX_CHARS {
            break;
        }
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // CSI and OSC as single C1 characters start sequences too.
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\t' | '\n' | '\r' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                    count += 1;
                }
            }
            c if is_unsafe(c) => {}
            c => {
                out.push(c);
                count += 1;
            }
        }
    }
    out
}

/// Like [`clean`], then trimmed: for names, IDs and codes.
pub fn label(text: &str) -> String {
    clean(text).trim().to_string()
}

/// Control characters and invisible direction overrides.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200e}' | '\u{200f}' | '\u{061c}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
        )
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// After ESC: drop the whole sequence (CSI, OSC/DCS/APC/PM strings, or a
/// two-character escape).
fn skip_escape(chars: &mut Chars<'_>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | '_' | '^' | 'X') => skip_string(chars),
        // Character-set designations take one more character.
        Some('(' | ')' | '*' | '+' | '#' | '%') => {
            chars.next();
        }
        _ => {}
    }
}

/// Parameters and intermediates up to the final byte (0x40..=0x7e).
fn skip_csi(chars: &mut Chars<'_>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
    }
}

/// A string terminated by BEL, ST (`ESC \`) or the C1 ST.
fn skip_string(chars: &mut Chars<'_>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                break;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_sequences_and_controls() {
        assert_eq!(clean("a\x1b[31mred\x1b[0m b"), "ared b");
        assert_eq!(clean("x\x1b]52;c;aGk=\x07y"), "xy");
        assert_eq!(
            clean("x\x1b]8;;http://e\x1b\\link\x1b]8;;\x1b\\y"),
            "xlinky"
        );
        assert_eq!(clean("bell\x07 del\x7f nul\0"), "bell del nul");
        assert_eq!(clean("c1\u{9b}2Jz"), "c1z");
        assert_eq!(clean("line1\r\nline2\ttab"), "line1 line2 tab");
    }

    #[test]
    fn strips_bidi_controls_keeps_text() {
        assert_eq!(clean("abc\u{202e}fed\u{2066}x\u{2069}"), "abcfedx");
        assert_eq!(clean("Zoë 学生 🙂"), "Zoë 学生 🙂");
    }

    #[test]
    fn cuts_long_input_and_trims_labels() {
        assert_eq!(clean(&"a".repeat(5000)).chars().count(), MAX_CHARS);
        assert_eq!(label("  Ann\n"), "Ann");
    }
}
