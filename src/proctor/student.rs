//! What one student says over `extra-data-updated`, turned into chat and
//! attention facts (pure).
//!
//! RTCProctor pages send `{message, attention}` with HTML in them (links are
//! wrapped in `<a>`, attention is a red `<span>` with the time) and no ids:
//! they dedup by comparing with the last text shown. Our pages add `msgId`,
//! so two identical lines in a row both count. Both are handled here.

use serde_json::Value;

use crate::signal::protocol::EXTRA_MSG_ID;

/// Longest chat line kept (characters); longer lines are cut.
pub const MAX_CHAT_CHARS: usize = 2000;

/// A new message from the student.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Chat(String),
    /// Attention request; the text is what the page sent (time stamp).
    Attention {
        text: String,
        msg_id: Option<u64>,
    },
}

/// Remembers what was already reported for one student.
#[derive(Debug, Default, Clone)]
pub struct Dedup {
    last_id: Option<u64>,
    last_text: Option<String>,
}

impl Dedup {
    /// The new message in `extra`, if any.
    pub fn accept(&mut self, extra: &Value) -> Option<Incoming> {
        let field = |k: &str| {
            extra
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let message = field("message");
        let attention = field("attention");
        let msg_id = extra.get(EXTRA_MSG_ID).and_then(Value::as_u64);
        let (raw, is_attention) = if !message.is_empty() {
            (message, false)
        } else if !attention.is_empty() {
            (attention, true)
        } else {
            return None;
        };
        match msg_id {
            Some(id) => {
                if self.last_id == Some(id) {
                    return None;
                }
                self.last_id = Some(id);
            }
            None => {
                if self.last_text.as_deref() == Some(raw.as_str()) {
                    return None;
                }
            }
        }
        self.last_text = Some(raw.clone());
        let text = plain_text(&raw);
        Some(if is_attention {
            Incoming::Attention { text, msg_id }
        } else {
            Incoming::Chat(text)
        })
    }
}

/// Text of a chat line as the stock pages send it: tags removed, the common
/// entities decoded, control characters dropped, length bounded.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    out.trim().chars().take(MAX_CHAT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stock_pages_dedup_by_text() {
        let mut d = Dedup::default();
        let chat = json!({"message": "hello <a href='x'>http://x</a>", "attention": ""});
        assert_eq!(
            d.accept(&chat),
            Some(Incoming::Chat("hello http://x".into()))
        );
        assert_eq!(d.accept(&chat), None, "duplicate delivery");
        let attn = json!({"message": "", "attention": "<span style='color:red;'>Attn Request: 10:00:00</span>"});
        assert_eq!(
            d.accept(&attn),
            Some(Incoming::Attention {
                text: "Attn Request: 10:00:00".into(),
                msg_id: None
            })
        );
        assert_eq!(d.accept(&json!({})), None);
    }

    #[test]
    fn msg_id_lets_identical_lines_through() {
        let mut d = Dedup::default();
        assert!(d.accept(&json!({"message": "ok", "msgId": 1})).is_some());
        assert!(d.accept(&json!({"message": "ok", "msgId": 1})).is_none());
        assert!(d.accept(&json!({"message": "ok", "msgId": 2})).is_some());
    }

    #[test]
    fn plain_text_strips_markup_and_controls() {
        assert_eq!(plain_text("a\x1b[31mb&amp;<b>c</b>"), "a [31mb&c");
        assert_eq!(plain_text(&"x".repeat(5000)).len(), MAX_CHAT_CHARS);
    }
}
