//! Stream codes: generation, Moodle-plugin compatibility, links and QR codes
//! (`rtcproctor codes ...`).
//!
//! A stream code is the only thing a student types to go live, and on the
//! stock RTCProctor server the only secret. This module makes codes that
//! cannot be guessed ([`generate`]), reproduces the Moodle plugin's codes so
//! an existing course keeps working ([`moodle`]), and gets codes to students
//! as links ([`links`]), QR codes ([`qr`]) and a printable sheet.
//!
//! Every command reads and writes rosters through [`crate::roster`], so what
//! `codes new` writes is what `monitor --roster` reads.

pub mod generate;
pub mod links;
pub mod moodle;
pub mod output;
pub mod qr;
pub mod sheet;

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::Path;

use crate::cli::{
    CodesCheckArgs, CodesCommand, CodesLinksArgs, CodesMoodleArgs, CodesNewArgs, CodesQrArgs,
};
use crate::roster::{self, Need, Person, Roster, Student};
use crate::{Error, Result};

/// Longest stream code a roster may hold.
pub const MAX_CODE_CHARS: usize = 128;

/// Is this usable as a stream code? Codes are typed by students and used
/// verbatim as room names, so they are one word of printable characters.
pub fn check_code(code: &str) -> std::result::Result<(), String> {
    if code.is_empty() {
        return Err("the stream code is empty".into());
    }
    if code.chars().any(char::is_control) {
        return Err(format!("stream code {code:?} contains control characters"));
    }
    if code.chars().any(char::is_whitespace) {
        return Err(format!(
            "stream code {code:?} contains a space; codes are typed by students and must be \
             one word (is a name in the code column?)"
        ));
    }
    if code.chars().count() > MAX_CODE_CHARS {
        return Err(format!(
            "stream code {code:?} is longer than {MAX_CODE_CHARS} characters"
        ));
    }
    Ok(())
}

/// Entry point of `rtcproctor codes ...`.
pub fn run(cmd: CodesCommand) -> Result<()> {
    match cmd {
        CodesCommand::New(args) => run_new(args),
        CodesCommand::Moodle(args) => run_moodle(args),
        CodesCommand::Links(args) => run_links(args),
        CodesCommand::Qr(args) => run_qr(args),
        CodesCommand::Check(args) => run_check(args),
    }
}

/// Most students one `codes new --count` makes.
const MAX_COUNT: usize = 100_000;

fn run_new(args: CodesNewArgs) -> Result<()> {
    let length = generate::choose_length(args.bits, args.length)?;
    let people: Vec<Person> = match (&args.ids, args.count) {
        (Some(path), _) => {
            let text = roster::read_text(path)?;
            let people =
                roster::parse_people(&text, Need::Id).map_err(|e| roster::parse_error(path, e))?;
            if people.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: no student IDs found; put one ID per line, or a CSV with an id column",
                    path.display()
                )));
            }
            people
        }
        (None, Some(count)) => {
            if count == 0 || count > MAX_COUNT {
                return Err(Error::Invalid(format!(
                    "--count {count}: give a number of students from 1 to {MAX_COUNT}"
                )));
            }
            let width = count.to_string().len().max(3);
            (1..=count)
                .map(|i| Person {
                    line: 0,
                    id: Some(format!("s{i:0width$}")),
                    name: None,
                    email: None,
                })
                .collect()
        }
        (None, None) => {
            return Err(Error::Invalid(
                "give --count N or --ids FILE (see `rtcproctor codes new --help`)".into(),
            ));
        }
    };
    let codes = generate::unique_codes(&mut rand::rng(), people.len(), length, &HashSet::new())?;
    let roster = Roster {
        students: people
            .into_iter()
            .zip(codes)
            .map(|(p, code)| Student {
                id: p.id.unwrap_or_default(),
                code,
                name: p.name,
                email: p.email,
            })
            .collect(),
    };
    output::write_text(args.out.as_deref(), &roster.to_csv()?, args.force)?;
    if let Some(out) = &args.out {
        eprintln!(
            "wrote {} students to {} (codes of {length} characters, {:.0} bits each)",
            roster.len(),
            out.display(),
            generate::bits_of_length(length).floor()
        );
    }
    Ok(())
}

fn run_moodle(args: CodesMoodleArgs) -> Result<()> {
    let secret = args.secret.as_deref().filter(|s| !s.is_empty());
    if let Some(secret) = secret
        && secret.len() < moodle::MIN_SECRET_BYTES
    {
        return Err(Error::Invalid(format!(
            "--secret is {} characters long; use at least {} random characters \
             (e.g. the output of `openssl rand -base64 24`), and keep it to make the same \
             codes again",
            secret.len(),
            moodle::MIN_SECRET_BYTES
        )));
    }
    let path = &args.file;
    let text = roster::read_text(path)?;
    let people =
        roster::parse_people(&text, Need::Email).map_err(|e| roster::parse_error(path, e))?;
    if people.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no e-mail addresses found; give a CSV with an email column, or one address \
             per line",
            path.display()
        )));
    }
    let length = generate::length_for_bits(generate::DEFAULT_BITS);
    let mut by_id: HashMap<String, (usize, String)> = HashMap::new();
    let mut by_code: HashMap<String, (usize, String)> = HashMap::new();
    let mut students = Vec::with_capacity(people.len());
    for p in people {
        let email = p.email.unwrap_or_default();
        let id = moodle::local_part(&email).to_string();
        let code = match secret {
            Some(secret) => moodle::keyed_code(secret.as_bytes(), &id, args.cmid, length),
            None => moodle::plugin_code(&id, args.cmid),
        };
        if let Some((line, other)) = by_id.get(&id) {
            return Err(roster::parse_error(
                path,
                (
                    p.line,
                    format!(
                        "{email:?} has the same part before the @ as {other:?} on line {line}; \
                         the plugin would give both students one ID and one code"
                    ),
                ),
            ));
        }
        if let Some((line, other)) = by_code.get(&code) {
            return Err(roster::parse_error(
                path,
                (
                    p.line,
                    format!(
                        "{email:?} gets the same code as {other:?} on line {line} (a hash \
                         collision); use --secret for longer codes, or give one of them \
                         another code by hand"
                    ),
                ),
            ));
        }
        by_id.insert(id.clone(), (p.line, email.clone()));
        by_code.insert(code.clone(), (p.line, email.clone()));
        students.push(Student {
            id,
            code,
            name: p.name,
            email: Some(email),
        });
    }
    if secret.is_none() {
        eprintln!(
            "warning: Moodle-plugin codes are an unkeyed hash of the e-mail and the activity id: \
             anyone who knows both can compute a student's code. Use them only to keep an \
             existing Moodle course working; for new exams use `rtcproctor codes new` or \
             add --secret."
        );
    }
    let roster = Roster { students };
    output::write_text(args.out.as_deref(), &roster.to_csv()?, args.force)?;
    if let Some(out) = &args.out {
        eprintln!("wrote {} students to {}", roster.len(), out.display());
    }
    Ok(())
}

/// Warn (once, with an example) about codes that only work with our page.
fn warn_escaped(roster: &Roster) {
    let escaped: Vec<&Student> = roster
        .students
        .iter()
        .filter(|s| links::needs_escaping(&s.code))
        .collect();
    if let Some(first) = escaped.first() {
        eprintln!(
            "warning: {} code(s) have characters that must be escaped in a link (e.g. student \
             {:?}); the stock RTCProctor student page does not unescape them, so those links \
             only work with rtcproctor's page",
            escaped.len(),
            first.id
        );
    }
}

fn run_links(args: CodesLinksArgs) -> Result<()> {
    let page = links::StudentPage::parse(&args.url)?;
    let roster = Roster::load(&args.file)?;
    warn_escaped(&roster);
    let text = if args.csv {
        let missing = roster.students.iter().filter(|s| s.email.is_none()).count();
        if missing > 0 {
            eprintln!(
                "warning: {missing} of {} students have no e-mail in {}; their rows have an \
                 empty email column",
                roster.len(),
                args.file.display()
            );
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| Error::Other(anyhow::anyhow!("cannot write CSV: {e}"));
        w.write_record(["email", "name", "link", "id", "code"])
            .map_err(csv_err)?;
        for s in &roster.students {
            let link = page.link(&s.code);
            w.write_record([
                &*spreadsheet_safe(s.email.as_deref().unwrap_or("")),
                &*spreadsheet_safe(s.label()),
                &link,
                &*spreadsheet_safe(&s.id),
                &s.code,
            ])
            .map_err(csv_err)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| Error::Other(anyhow::anyhow!("cannot write CSV: {e}")))?;
        String::from_utf8(bytes).map_err(|e| Error::Other(anyhow::anyhow!("{e}")))?
    } else {
        roster
            .students
            .iter()
            .map(|s| format!("{}\t{}\n", s.id, page.link(&s.code)))
            .collect()
    };
    output::write_text(args.out.as_deref(), &text, args.force)
}

/// A mail-merge file is opened in a spreadsheet, and names can come from
/// students (Moodle profiles): a cell starting with `=`, `+`, `-` or `@` would
/// run as a formula, so such text gets a leading `'` (OWASP's advice for CSV
/// injection). Codes and links are left exact.
fn spreadsheet_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn run_qr(args: CodesQrArgs) -> Result<()> {
    let page = links::StudentPage::parse(&args.url)?;
    let roster = Roster::load(&args.file)?;
    let students: Vec<&Student> = if args.ids.is_empty() {
        roster.students.iter().collect()
    } else {
        args.ids
            .iter()
            .map(|id| {
                roster.by_id(id).ok_or_else(|| {
                    Error::Invalid(format!(
                        "no student with ID {id:?} in {}",
                        args.file.display()
                    ))
                })
            })
            .collect::<Result<_>>()?
    };
    let chosen = Roster {
        students: students.iter().map(|s| (*s).clone()).collect(),
    };
    warn_escaped(&chosen);
    match &args.out {
        None => draw_in_terminal(&page, &students),
        Some(dir) => write_qr_files(&page, &students, dir, args.force),
    }
}

fn draw_in_terminal(page: &links::StudentPage, students: &[&Student]) -> Result<()> {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut text = String::new();
    for s in students {
        let link = page.link(&s.code);
        let qr = qr::Qr::new(&link)?;
        let title = match &s.name {
            Some(name) => format!("{name} (ID {})", s.id),
            None => format!("ID {}", s.id),
        };
        text.push_str(&format!("{title}  code {}\n", s.code));
        text.push_str(&qr.to_terminal(colour));
        text.push_str(&link);
        text.push_str("\n\n");
    }
    output::write_text(None, &text, false)
}

/// PNG pixels per QR module: a 33-module code with its quiet zone is 328 px.
const PNG_SCALE: u32 = 8;

fn write_qr_files(
    page: &links::StudentPage,
    students: &[&Student],
    dir: &Path,
    force: bool,
) -> Result<()> {
    output::prepare_dir(dir, force)?;
    let names = output::safe_names(students.iter().map(|s| s.id.as_str()));
    let mut cards = Vec::with_capacity(students.len());
    for (s, name) in students.iter().zip(&names) {
        let link = page.link(&s.code);
        let qr = qr::Qr::new(&link)?;
        let title = format!("{}: {link}", s.label());
        output::write_file(
            &dir.join(format!("{name}.png")),
            &qr.to_png(PNG_SCALE)?,
            force,
        )?;
        let side = (qr.width() + 8) * 8;
        let svg = qr.to_svg(&side.to_string(), &title);
        output::write_file(&dir.join(format!("{name}.svg")), svg.as_bytes(), force)?;
        cards.push(sheet::Card {
            id: &s.id,
            name: s.name.as_deref(),
            code: &s.code,
            svg: qr.to_svg("100%", &title),
            link,
        });
    }
    let html = sheet::html(page.as_str(), &cards);
    let sheet_path = dir.join("sheet.html");
    output::write_file(&sheet_path, html.as_bytes(), force)?;
    eprintln!(
        "wrote {n} PNG and {n} SVG files and the printable sheet {} (open it in a browser and print)",
        sheet_path.display(),
        n = students.len()
    );
    Ok(())
}

fn run_check(args: CodesCheckArgs) -> Result<()> {
    let roster = Roster::load(&args.file)?;
    let names = roster.students.iter().filter(|s| s.name.is_some()).count();
    let emails = roster.students.iter().filter(|s| s.email.is_some()).count();
    let mut report = format!(
        "{}: {} students, IDs and codes unique, {names} with names, {emails} with e-mails\n",
        args.file.display(),
        roster.len()
    );
    let weakest = roster
        .students
        .iter()
        .map(|s| (strength(&s.code), s))
        .min_by(|a, b| a.0.bits.total_cmp(&b.0.bits));
    if let Some((strength, student)) = weakest {
        report.push_str(&format!(
            "weakest code: student {:?}, about {:.0} bits ({})\n",
            student.id, strength.bits, strength.kind
        ));
    }
    output::write_text(None, &report, false)?;
    let weak: Vec<&Student> = roster
        .students
        .iter()
        .filter(|s| strength(&s.code).bits < f64::from(generate::MIN_BITS))
        .collect();
    if !weak.is_empty() {
        eprintln!(
            "warning: {} of {} codes can be guessed (under {} bits, e.g. student {:?}); make \
             new ones with `rtcproctor codes new --ids {}`",
            weak.len(),
            roster.len(),
            generate::MIN_BITS,
            weak[0].id,
            args.file.display()
        );
    }
    Ok(())
}

/// A rough guess at how hard a code is to guess: the bits of a random
/// string of its length over the smallest character set that contains it.
/// Hand-made codes (`room1`) carry far less than this; it is an upper bound.
struct Strength {
    bits: f64,
    kind: &'static str,
}

fn strength(code: &str) -> Strength {
    let len = code.chars().count() as f64;
    let is_hex = code
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    if is_hex && code.len() == 8 {
        // The plugin's codes are a function of public facts.
        return Strength {
            bits: 0.0,
            kind: "8 hex digits: a Moodle-plugin code, computable from the e-mail",
        };
    }
    if code.bytes().all(|b| generate::ALPHABET.contains(&b)) {
        return Strength {
            bits: len * generate::bits_per_symbol(),
            kind: "rtcproctor alphabet",
        };
    }
    let mut set = 0.0;
    if code.chars().any(|c| c.is_ascii_digit()) {
        set += 10.0;
    }
    if code.chars().any(|c| c.is_ascii_lowercase()) {
        set += 26.0;
    }
    if code.chars().any(|c| c.is_ascii_uppercase()) {
        set += 26.0;
    }
    if code.chars().any(|c| !c.is_ascii_alphanumeric()) {
        set += 32.0;
    }
    Strength {
        bits: len * f64::log2(set),
        kind: "if every character were random",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_shape() {
        assert!(check_code("k7m9x2p4q").is_ok());
        assert!(check_code("6b5207d7").is_ok());
        assert!(check_code("MmMMjAyD").is_ok());
        assert!(check_code("").is_err());
        assert!(check_code("a b").unwrap_err().contains("space"));
        assert!(check_code("a\u{7}").unwrap_err().contains("control"));
        assert!(check_code(&"x".repeat(129)).is_err());
    }

    #[test]
    fn formulas_are_defused_in_mail_merge_cells() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("Ann Lee"), "Ann Lee");
        assert_eq!(spreadsheet_safe(""), "");
    }

    #[test]
    fn strength_estimates() {
        assert_eq!(strength("6b5207d7").bits, 0.0);
        assert!((strength("k7m9x2p4q").bits - 44.59).abs() < 0.01);
        // The RTCProctor spreadsheet's 8 mixed-case letters: 45.6 bits.
        assert!((strength("MmMMjAyD").bits - 45.6).abs() < 0.1);
        assert!(strength("room1").bits < 30.0);
    }
}
