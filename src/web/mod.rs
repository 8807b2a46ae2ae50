//! The student page, embedded into the binary.
//!
//! Plain HTML/CSS/JS written for rtcproctor (no framework, no third-party
//! scripts): `index.html` is the page, `style.css` its look, `sio.js` a small
//! Socket.IO v5 / Engine.IO v4 WebSocket client and `app.js` the page logic
//! (RTCMultiConnection dialect, see `signal::protocol`).

/// The page served at `/`.
pub const INDEX_HTML: &str = include_str!("index.html");
/// The page's stylesheet.
pub const STYLE_CSS: &str = include_str!("style.css");
/// The page logic.
pub const APP_JS: &str = include_str!("app.js");
/// Our Socket.IO client.
pub const SIO_JS: &str = include_str!("sio.js");

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every embedded file by URL path.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/index.html", HTML, INDEX_HTML),
    ("/style.css", CSS, STYLE_CSS),
    ("/app.js", JS, APP_JS),
    ("/sio.js", JS, SIO_JS),
];

/// An embedded file of the student page by URL path (`/` is the page
/// itself): its MIME type and bytes. `None` for unknown paths. A query
/// string is ignored, so `/app.js?v=2` works for cache-busting links.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, mime, body)| (*mime, body.as_bytes()))
}

/// Escape text for HTML element content and quoted attribute values.
/// Control characters (terminal escapes pasted into a chat or a roster) are
/// shown as `\u{..}`, never passed through.
pub fn html_escape(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_page() {
        let (mime, body) = asset("/").expect("root");
        assert_eq!(mime, HTML);
        assert_eq!(body, INDEX_HTML.as_bytes());
        assert_eq!(asset("/index.html"), asset("/"));
    }

    #[test]
    fn every_file_the_page_loads_is_served_with_its_type() {
        for (needle, mime) in [
            ("href=\"style.css\"", CSS),
            ("src=\"sio.js\"", JS),
            ("src=\"app.js\"", JS),
        ] {
            assert!(INDEX_HTML.contains(needle), "index.html lost {needle}");
            let file = needle.split('"').nth(1).expect("quoted name");
            let (got, body) = asset(&format!("/{file}")).expect(file);
            assert_eq!(got, mime, "{file}");
            assert!(!body.is_empty());
        }
    }

    #[test]
    fn query_strings_are_ignored_and_unknown_paths_are_none() {
        assert_eq!(asset("/app.js?v=3"), asset("/app.js"));
        assert!(asset("/nope.js").is_none());
        assert!(asset("/../Cargo.toml").is_none());
        assert!(asset("").is_none());
    }

    #[test]
    fn page_never_renders_network_text_as_html() {
        for (name, src) in [("app.js", APP_JS), ("sio.js", SIO_JS)] {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!src.contains(sink), "{name} uses {sink}");
            }
        }
    }
}
