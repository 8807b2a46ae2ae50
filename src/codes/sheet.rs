//! The printable sheet: one card per student with name, ID, code, link and
//! QR code, cut lines between cards, A4 pages. One self-contained HTML file
//! (QR codes inline as SVG) that any browser prints.

use std::fmt::Write as _;

/// One card of the sheet.
pub struct Card<'a> {
    pub id: &'a str,
    pub name: Option<&'a str>,
    pub code: &'a str,
    pub link: String,
    /// The QR code as an inline `<svg>` element.
    pub svg: String,
}

pub use crate::web::html_escape as escape;

const STYLE: &str = r#"
@page { size: A4; margin: 10mm; }
* { box-sizing: border-box; }
html { background: #e8e8e8; }
body { font-family: system-ui, "DejaVu Sans", Arial, sans-serif; color: #000; margin: 0 auto;
       max-width: 190mm; background: #fff; padding: 8mm 0; }
header { padding: 0 4mm 6mm; }
header h1 { font-size: 15pt; margin: 0 0 2mm; }
header p { font-size: 9pt; margin: 0; color: #333; }
.sheet { display: grid; grid-template-columns: repeat(3, 1fr); }
.card { border: 0.3mm dashed #888; margin: 0 -0.15mm -0.3mm 0; padding: 4mm 3mm 3mm;
        text-align: center; break-inside: avoid; page-break-inside: avoid;
        display: flex; flex-direction: column; align-items: center; gap: 1.2mm; }
.name { font-size: 12pt; font-weight: 600; line-height: 1.15; overflow-wrap: anywhere; }
.id { font-size: 8.5pt; color: #444; }
.qr svg { width: 38mm; height: 38mm; display: block; }
.label { font-size: 7pt; color: #555; text-transform: uppercase; letter-spacing: .08em; }
.code { font-family: "DejaVu Sans Mono", ui-monospace, Menlo, Consolas, monospace;
        font-size: 15pt; font-weight: 600; letter-spacing: .1em; }
.link { font-family: "DejaVu Sans Mono", ui-monospace, monospace; font-size: 6.5pt;
        color: #333; overflow-wrap: anywhere; text-decoration: none; }
.how { font-size: 7pt; color: #555; line-height: 1.25; }
@media print {
  html { background: none; }
  body { max-width: none; padding: 0; }
  header { display: none; }
}
"#;

/// The whole sheet as one HTML document.
pub fn html(page_url: &str, cards: &[Card<'_>]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Stream codes ({n} students)</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header>\n<h1>Stream codes for {n} students</h1>\n\
         <p>Student page: {url}. Print this sheet (A4, no headers), cut along the dashed \
         lines and hand each student their card. Each code is a secret between the student \
         and the proctors.</p>\n</header>\n<main class=\"sheet\">\n",
        n = cards.len(),
        url = escape(page_url),
    );
    for card in cards {
        let _ = write!(
            out,
            "<section class=\"card\">\n<div class=\"name\">{name}</div>\n\
             <div class=\"id\">ID {id}</div>\n<div class=\"qr\">{svg}</div>\n\
             <div class=\"label\">Stream code</div>\n<div class=\"code\">{code}</div>\n\
             <a class=\"link\" href=\"{href}\">{link}</a>\n\
             <div class=\"how\">Scan the code or open the link, allow the camera, then go \
             live. Keep this code to yourself.</div>\n</section>\n",
            name = escape(card.name.unwrap_or(card.id)),
            id = escape(card.id),
            svg = card.svg,
            code = escape(card.code),
            href = escape(&card.link),
            // Break a long link before the code, never inside it.
            link = escape(&card.link).replacen('#', "<wbr>#", 1),
        );
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_escapes_text_and_has_a_card_per_student() {
        let cards = [
            Card {
                id: "s1",
                name: Some("<b>Ann</b> & \"Lee\""),
                code: "abc",
                link: "https://h.example/#abc".into(),
                svg: "<svg></svg>".into(),
            },
            Card {
                id: "s2",
                name: None,
                code: "def",
                link: "https://h.example/#def".into(),
                svg: "<svg></svg>".into(),
            },
        ];
        let html = html("https://h.example/", &cards);
        assert_eq!(html.matches("<section class=\"card\">").count(), 2);
        assert!(html.contains("&lt;b&gt;Ann&lt;/b&gt; &amp; &quot;Lee&quot;"));
        assert!(!html.contains("<b>Ann"));
        assert!(html.contains("<div class=\"name\">s2</div>"));
        assert!(html.contains("@page"));
    }
}
