//! The student page, embedded into the binary.

/// The page served at `/`.
pub const INDEX_HTML: &str = include_str!("index.html");

/// An embedded file of the student page by URL path (`/` is the page
/// itself): its MIME type and bytes. `None` for unknown paths.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    match path {
        "/" | "/index.html" => Some(("text/html; charset=utf-8", INDEX_HTML.as_bytes())),
        _ => None,
    }
}
