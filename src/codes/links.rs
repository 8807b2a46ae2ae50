//! Student links: the student page's address with the code in the fragment
//! (`https://host/page#code`), the form the stock student page, the Moodle
//! plugin and the RTCProctor spreadsheet all use. The page fills the code in
//! from the fragment; the fragment never reaches a server or its logs.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::{Error, Result};

/// Characters escaped in the fragment: the WHATWG fragment set plus `%` and
/// `#`, so the page can decode what it reads back exactly.
const FRAGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'%')
    .add(b'#');

/// The student page's address, checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentPage {
    url: url::Url,
}

impl StudentPage {
    /// Accepts an http(s) URL with a host and without a fragment (the code
    /// goes there). The error says what to type instead.
    pub fn parse(text: &str) -> Result<StudentPage> {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            Error::Invalid(format!(
                "--url {text:?} is not a web address ({e}); give the student page's address, \
                 e.g. https://proctor.example.org:8443/"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Invalid(format!(
                "--url {text:?} must start with https:// (or http:// on a local network)"
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::Invalid(format!("--url {text:?} has no host name")));
        }
        if url.fragment().is_some() {
            return Err(Error::Invalid(format!(
                "--url {text:?} already has a #fragment; the code goes there, so give the \
                 address without it"
            )));
        }
        Ok(StudentPage { url })
    }

    /// The page's address, normalised (e.g. a trailing `/` after the host).
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The student's link: the page address, `#`, the code (escaped only
    /// where needed; generated and Moodle codes never need it).
    pub fn link(&self, code: &str) -> String {
        format!("{}#{}", self.url, utf8_percent_encode(code, FRAGMENT))
    }
}

/// True when the code had to be escaped in the link. The stock RTCProctor
/// student page does not decode its fragment, so such links only work with
/// our page.
pub fn needs_escaping(code: &str) -> bool {
    utf8_percent_encode(code, FRAGMENT).to_string() != code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_append_the_code_as_fragment() {
        let page = StudentPage::parse("https://proctor.example.org:8443").unwrap();
        assert_eq!(
            page.link("k7m9x2p4q"),
            "https://proctor.example.org:8443/#k7m9x2p4q"
        );
        let page = StudentPage::parse("https://h.example/rtcproctor-s.html?x=1").unwrap();
        assert_eq!(
            page.link("6b5207d7"),
            "https://h.example/rtcproctor-s.html?x=1#6b5207d7"
        );
        assert!(!needs_escaping("6b5207d7"));
    }

    #[test]
    fn odd_codes_are_escaped() {
        let page = StudentPage::parse("http://127.0.0.1:8443/").unwrap();
        assert_eq!(
            page.link("a%b#c\"d"),
            "http://127.0.0.1:8443/#a%25b%23c%22d"
        );
        assert_eq!(page.link("Åsa"), "http://127.0.0.1:8443/#%C3%85sa");
        assert!(needs_escaping("Åsa"));
    }

    #[test]
    fn bad_urls_are_refused_with_advice() {
        for (url, hint) in [
            ("proctor.example.org", "not a web address"),
            ("ftp://proctor.example.org/", "https://"),
            ("https://h.example/#x", "fragment"),
            ("file:///tmp/x.html", "https://"),
        ] {
            let e = StudentPage::parse(url).unwrap_err().to_string();
            assert!(e.contains(hint), "{url}: {e}");
        }
    }
}
