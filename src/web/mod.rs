//! The student page, embedded into the binary.

/// The page served at `/`.
pub const INDEX_HTML: &str = include_str!("index.html");
