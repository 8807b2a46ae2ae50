//! Students and their stream codes (pure state, no I/O beyond reading a file).
//!
//! A roster arrives the way schools keep lists, so [`Roster::parse`] accepts:
//!
//! - "ID<TAB>code" lines as copied from a spreadsheet or from the RTCProctor
//!   Moodle plugin's table (its header line "Student ID<TAB>Passcode", or the
//!   stock monitor page's sample header "studentid<TAB>streamcode", is
//!   recognised and skipped);
//! - CSV or TSV (comma, semicolon or tab) with a header line naming the
//!   columns: `id` and `code`, optionally `name` (or first name + last name)
//!   and `email`, in any order; other columns are ignored. Quoted fields may
//!   hold commas.
//!
//! Text may be UTF-8 with or without a byte-order mark, or UTF-16 with one (a
//! spreadsheet's "Unicode text" export), with LF or CRLF line ends. Blank
//! lines and lines starting with `#` are skipped. Every other line becomes a
//! student or an error naming its line: nothing is dropped silently, and a
//! duplicate ID or code is an error, because two students sharing a code
//! would share one stream.
//!
//! [`parse_people`] reads the same formats for lists that have no codes yet
//! (the input of `codes new --ids` and `codes moodle`).

use std::collections::HashMap;
use std::path::Path;

use crate::{Error, Result};

/// One student of the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Student {
    /// The student's ID as the school knows it (unique in a roster).
    pub id: String,
    /// The stream code the student types on the student page (unique).
    pub code: String,
    /// Display name, if the roster has one.
    pub name: Option<String>,
    /// E-mail, if the roster has one (for mail merges).
    pub email: Option<String>,
}

impl Student {
    /// What the dashboard shows: the name when known, else the ID.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// An ordered list of students; order is the roster's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    pub students: Vec<Student>,
}

/// A parse problem: the 1-based line it is on (0 for the whole text) and
/// what is wrong, worded for the user.
pub type LineError = (usize, String);

impl Roster {
    /// Read and parse a roster file. An empty roster is an error here: every
    /// command that loads a file needs at least one student.
    pub fn load(path: &Path) -> Result<Roster> {
        let text = read_text(path)?;
        let roster = Roster::parse(&text).map_err(|e| parse_error(path, e))?;
        if roster.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no students found; a roster has one \"ID<TAB>code\" line per student, \
                 or a header line (id,code,name,email) and one line per student",
                path.display()
            )));
        }
        Ok(roster)
    }

    /// Parse roster text (see the module docs for the formats). The error is
    /// the first problem with its line; when there are more, the message
    /// says how many.
    pub fn parse(text: &str) -> std::result::Result<Roster, LineError> {
        let table = Table::read(text)?;
        let mut problems = Problems::default();
        let mut students = Vec::new();
        let mut seen = Seen::default();
        match &table.header {
            Some(header) => {
                let (Some(id_col), Some(code_col)) =
                    (header.get(Column::Id), header.get(Column::Code))
                else {
                    return Err((
                        header.line,
                        header.missing_message(&[Column::Id, Column::Code]),
                    ));
                };
                for row in &table.rows {
                    let id = row.field(id_col);
                    let code = row.field(code_col);
                    let student = Student {
                        id: id.to_string(),
                        code: code.to_string(),
                        name: header.name_of(row),
                        email: header.get(Column::Email).map(|c| row.field(c).to_string()),
                    };
                    problems.check(
                        row.line,
                        check_student(student, row.line, &mut seen),
                        &mut students,
                    );
                }
            }
            None => {
                for row in &table.rows {
                    let result = match row.fields.len() {
                        2 => Ok(Student {
                            id: row.fields[0].clone(),
                            code: row.fields[1].clone(),
                            name: None,
                            email: None,
                        }),
                        1 if row.fields[0].contains(char::is_whitespace) => Err(format!(
                            "found {:?}, with spaces but no tab or comma: separate the \
                             student ID and the stream code with a tab or a comma",
                            row.fields[0]
                        )),
                        1 => Err(format!(
                            "expected a student ID and a stream code separated by a tab, found {:?}",
                            row.fields[0]
                        )),
                        n => Err(format!(
                            "found {n} fields; a roster without a header line has two \
                             (ID and code): add a header line such as \"id,code,name,email\" \
                             naming the columns"
                        )),
                    };
                    let result = result.and_then(|s| check_student(s, row.line, &mut seen));
                    problems.check(row.line, result, &mut students);
                }
            }
        }
        problems.into_result()?;
        Ok(Roster { students })
    }

    /// The student with this stream code.
    pub fn by_code(&self, code: &str) -> Option<&Student> {
        self.students.iter().find(|s| s.code == code)
    }

    /// The student with this ID.
    pub fn by_id(&self, id: &str) -> Option<&Student> {
        self.students.iter().find(|s| s.id == id)
    }

    pub fn len(&self) -> usize {
        self.students.len()
    }

    pub fn is_empty(&self) -> bool {
        self.students.is_empty()
    }

    /// The roster as CSV with a header line: `id,code`, then `name` and
    /// `email` when any student has one. [`Roster::parse`] reads it back.
    pub fn to_csv(&self) -> Result<String> {
        let names = self.students.iter().any(|s| s.name.is_some());
        let emails = self.students.iter().any(|s| s.email.is_some());
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["id", "code"];
        names.then(|| header.push("name"));
        emails.then(|| header.push("email"));
        w.write_record(&header).map_err(csv_write_error)?;
        for s in &self.students {
            let mut record = vec![s.id.as_str(), s.code.as_str()];
            names.then(|| record.push(s.name.as_deref().unwrap_or("")));
            emails.then(|| record.push(s.email.as_deref().unwrap_or("")));
            w.write_record(&record).map_err(csv_write_error)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| Error::Other(anyhow::anyhow!("cannot write CSV: {e}")))?;
        String::from_utf8(bytes).map_err(|e| Error::Other(anyhow::anyhow!("cannot write CSV: {e}")))
    }
}

fn csv_write_error(e: csv::Error) -> Error {
    Error::Other(anyhow::anyhow!("cannot write CSV: {e}"))
}

/// Someone on a list that has no codes yet: one line of the input of
/// `codes new --ids` or `codes moodle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Line in the input file (for error messages about this person later).
    pub line: usize,
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// Which column a list of people must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `codes new --ids`: one ID per line, or a CSV with an `id` column.
    Id,
    /// `codes moodle`: one e-mail per line, or a CSV with an `email` column.
    Email,
}

/// Parse a list of people without codes (see [`Need`]). A `code` column is
/// an error: the command would replace those codes, so the user should know.
pub fn parse_people(text: &str, need: Need) -> std::result::Result<Vec<Person>, LineError> {
    let table = Table::read(text)?;
    let mut problems = Problems::default();
    let mut people = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let key = match need {
        Need::Id => Column::Id,
        Need::Email => Column::Email,
    };
    if let Some(header) = &table.header {
        if let Some(c) = header.get(Column::Code) {
            return Err((
                header.line,
                format!(
                    "this list already has a code column ({:?}); remove that column to make new \
                     codes, or use the file as a roster as it is",
                    header.names[c]
                ),
            ));
        }
        if header.get(key).is_none() {
            return Err((header.line, header.missing_message(&[key])));
        }
    }
    for row in &table.rows {
        let person = match &table.header {
            Some(header) => Ok(Person {
                line: row.line,
                id: header.get(Column::Id).map(|c| row.field(c).to_string()),
                name: header.name_of(row),
                email: header.get(Column::Email).map(|c| row.field(c).to_string()),
            }),
            None if row.fields.len() == 1 => {
                let value = row.fields[0].clone();
                Ok(match need {
                    Need::Id => Person {
                        line: row.line,
                        id: Some(value),
                        name: None,
                        email: None,
                    },
                    Need::Email => Person {
                        line: row.line,
                        id: None,
                        name: None,
                        email: Some(value),
                    },
                })
            }
            None => Err(format!(
                "found {} fields; without a header line the list has one {} per line: add a \
                 header line such as \"{}\" naming the columns",
                row.fields.len(),
                match need {
                    Need::Id => "student ID",
                    Need::Email => "e-mail address",
                },
                match need {
                    Need::Id => "id,name,email",
                    Need::Email => "email,name",
                },
            )),
        };
        let person = person.and_then(|p| {
            let p = Person {
                name: p.name.filter(|s| !s.is_empty()),
                email: p.email.filter(|s| !s.is_empty()),
                id: p.id.filter(|s| !s.is_empty()),
                ..p
            };
            match need {
                Need::Id if p.id.is_none() => return Err("no student ID on this line".into()),
                Need::Email if p.email.is_none() => {
                    return Err("no e-mail address on this line".into());
                }
                _ => {}
            }
            if let Some(id) = &p.id {
                check_text("student ID", id, MAX_ID_CHARS)?;
                if let Some(first) = ids.get(id) {
                    return Err(format!(
                        "duplicate student ID {id:?} (also on line {first})"
                    ));
                }
                ids.insert(id.clone(), p.line);
            }
            if let Some(name) = &p.name {
                check_text("name", name, MAX_NAME_CHARS)?;
            }
            if let Some(email) = &p.email {
                check_email(email)?;
            }
            Ok(p)
        });
        problems.check(row.line, person, &mut people);
    }
    problems.into_result()?;
    Ok(people)
}

/// Read a text file for the roster parsers: UTF-8 (a byte-order mark is
/// dropped) or UTF-16 with a byte-order mark. Anything else is an error that
/// names the file and line and says how to re-save it.
pub fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::file(path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::Invalid(format!(
            "{} is larger than {} MiB; a roster is a small text file (is this the right file?)",
            path.display(),
            MAX_FILE_BYTES >> 20
        )));
    }
    decode_text(&bytes).map_err(|e| parse_error(path, e))
}

/// See [`read_text`].
pub fn decode_text(bytes: &[u8]) -> std::result::Result<String, LineError> {
    let utf16 = |le: bool| {
        let units = bytes[2..]
            .chunks(2)
            .map(|c| match (c, le) {
                ([a, b], true) => Ok(u16::from_le_bytes([*a, *b])),
                ([a, b], false) => Ok(u16::from_be_bytes([*a, *b])),
                _ => Err((
                    0,
                    "UTF-16 text with an odd number of bytes (truncated?)".to_string(),
                )),
            })
            .collect::<std::result::Result<Vec<u16>, _>>()?;
        String::from_utf16(&units).map_err(|_| {
            (
                0,
                "broken UTF-16 text; save the file as UTF-8 (\"CSV UTF-8\" in spreadsheets)".into(),
            )
        })
    };
    match bytes {
        [0xFF, 0xFE, ..] => utf16(true),
        [0xFE, 0xFF, ..] => utf16(false),
        _ => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            match std::str::from_utf8(bytes) {
                Ok(text) => Ok(text.to_string()),
                Err(e) => {
                    let good = &bytes[..e.valid_up_to()];
                    let line = good.iter().filter(|b| **b == b'\n').count() + 1;
                    Err((
                        line,
                        format!(
                            "not UTF-8 text (byte 0x{:02X}); save the file as UTF-8 \
                             (\"CSV UTF-8\" in spreadsheets)",
                            bytes[e.valid_up_to()]
                        ),
                    ))
                }
            }
        }
    }
}

/// Turn a parser error into the crate error that names the file.
pub fn parse_error(path: &Path, (line, message): LineError) -> Error {
    if line == 0 {
        Error::Invalid(format!("{}: {message}", path.display()))
    } else {
        Error::Parse {
            path: path.to_path_buf(),
            line,
            message,
        }
    }
}

/// Ten thousand students with long names fit in a few MiB: anything bigger
/// is the wrong file.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// IDs and names are labels on a terminal: long ones are mistakes.
const MAX_ID_CHARS: usize = 100;
const MAX_NAME_CHARS: usize = 200;

fn check_student(s: Student, line: usize, seen: &mut Seen) -> std::result::Result<Student, String> {
    if s.id.is_empty() {
        return Err(match s.code.is_empty() {
            true => "no student ID and no stream code on this line".into(),
            false => format!("no student ID for stream code {:?}", s.code),
        });
    }
    if s.code.is_empty() {
        return Err(format!("no stream code for student {:?}", s.id));
    }
    check_text("student ID", &s.id, MAX_ID_CHARS)?;
    crate::codes::check_code(&s.code).map_err(|e| format!("student {:?}: {e}", s.id))?;
    let name = s.name.filter(|n| !n.is_empty());
    if let Some(name) = &name {
        check_text("name", name, MAX_NAME_CHARS)?;
    }
    let email = s.email.filter(|e| !e.is_empty());
    if let Some(email) = &email {
        check_email(email)?;
    }
    seen.claim(&s.id, &s.code, line)?;
    Ok(Student { name, email, ..s })
}

/// Labels are drawn in a terminal: control characters (escape sequences)
/// are refused rather than stripped, so the file gets fixed.
fn check_text(what: &str, value: &str, max: usize) -> std::result::Result<(), String> {
    if value.chars().any(char::is_control) {
        return Err(format!("{what} {value:?} contains control characters"));
    }
    if value.chars().count() > max {
        return Err(format!("{what} {value:?} is longer than {max} characters"));
    }
    Ok(())
}

fn check_email(email: &str) -> std::result::Result<(), String> {
    check_text("e-mail address", email, MAX_NAME_CHARS)?;
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !email.contains(' ') =>
        {
            Ok(())
        }
        _ => Err(format!("{email:?} is not an e-mail address")),
    }
}

/// IDs and codes seen so far, with the line that claimed them.
#[derive(Default)]
struct Seen {
    ids: HashMap<String, usize>,
    codes: HashMap<String, String>,
}

impl Seen {
    fn claim(&mut self, id: &str, code: &str, line: usize) -> std::result::Result<(), String> {
        if let Some(first) = self.ids.get(id) {
            return Err(format!(
                "duplicate student ID {id:?} (also on line {first})"
            ));
        }
        if let Some(other) = self.codes.get(code) {
            return Err(format!(
                "duplicate stream code {code:?}: student {other:?} has it too, and two \
                 students with one code would share one stream"
            ));
        }
        self.ids.insert(id.to_string(), line);
        self.codes.insert(code.to_string(), id.to_string());
        Ok(())
    }
}

/// Collects per-line problems: the first one is reported, with a count of
/// the rest, so one run shows how much of a file needs fixing.
#[derive(Default)]
struct Problems {
    first: Option<LineError>,
    more: usize,
}

impl Problems {
    fn check<T>(&mut self, line: usize, r: std::result::Result<T, String>, out: &mut Vec<T>) {
        match r {
            Ok(v) => out.push(v),
            Err(message) if self.first.is_none() => self.first = Some((line, message)),
            Err(_) => self.more += 1,
        }
    }

    fn into_result(self) -> std::result::Result<(), LineError> {
        match self.first {
            None => Ok(()),
            Some((line, message)) if self.more == 0 => Err((line, message)),
            Some((line, message)) => Err((
                line,
                format!(
                    "{message} (and {} more line{} with problems)",
                    self.more,
                    if self.more == 1 { "" } else { "s" }
                ),
            )),
        }
    }
}

/// What a header field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Id,
    Code,
    Name,
    FirstName,
    LastName,
    Email,
}

impl Column {
    fn of(header: &str) -> Option<Column> {
        let key: String = header
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        Some(match key.as_str() {
            "id" | "studentid" | "studentnumber" | "studentno" | "idnumber" | "username"
            | "userid" => Column::Id,
            "code" | "streamcode" | "passcode" | "roomcode" | "room" => Column::Code,
            "name" | "fullname" | "studentname" | "displayname" => Column::Name,
            "firstname" | "givenname" => Column::FirstName,
            "lastname" | "surname" | "familyname" => Column::LastName,
            "email" | "emailaddress" | "mail" => Column::Email,
            _ => return None,
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Column::Id => "ID column (id, student id, username)",
            Column::Code => "code column (code, stream code, passcode)",
            Column::Name => "name column",
            Column::FirstName => "first-name column",
            Column::LastName => "last-name column",
            Column::Email => "e-mail column (email, email address)",
        }
    }
}

/// The header line: which field holds which column.
struct Header {
    line: usize,
    names: Vec<String>,
    columns: Vec<(Column, usize)>,
}

impl Header {
    /// A header when at least one field names a known column.
    fn detect(line: usize, fields: &[String]) -> std::result::Result<Option<Header>, LineError> {
        let mut columns: Vec<(Column, usize)> = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if let Some(col) = Column::of(f) {
                if let Some((_, j)) = columns.iter().find(|(c, _)| *c == col) {
                    return Err((
                        line,
                        format!(
                            "header columns {:?} and {f:?} both look like the {}; rename one",
                            fields[*j],
                            col.describe()
                        ),
                    ));
                }
                columns.push((col, i));
            }
        }
        Ok((!columns.is_empty()).then(|| Header {
            line,
            names: fields.to_vec(),
            columns,
        }))
    }

    fn get(&self, col: Column) -> Option<usize> {
        self.columns
            .iter()
            .find(|(c, _)| *c == col)
            .map(|(_, i)| *i)
    }

    /// The name column, or first and last name joined.
    fn name_of(&self, row: &Row) -> Option<String> {
        let name = match self.get(Column::Name) {
            Some(c) => row.field(c).to_string(),
            None => {
                let first = self.get(Column::FirstName).map(|c| row.field(c));
                let last = self.get(Column::LastName).map(|c| row.field(c));
                [first, last]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        (!name.is_empty()).then_some(name)
    }

    fn missing_message(&self, wanted: &[Column]) -> String {
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|c| self.get(**c).is_none())
            .map(|c| c.describe())
            .collect();
        format!(
            "the header line ({}) has no {}",
            self.names.join(", "),
            missing.join(" and no ")
        )
    }
}

/// One data line: trimmed fields, trailing empty ones removed.
struct Row {
    line: usize,
    fields: Vec<String>,
}

impl Row {
    fn field(&self, i: usize) -> &str {
        self.fields.get(i).map(String::as_str).unwrap_or("")
    }
}

/// The text split into an optional header and data rows.
struct Table {
    header: Option<Header>,
    rows: Vec<Row>,
}

impl Table {
    /// Line by line (so line numbers are exact): skip blank and comment
    /// lines, split each other line with the `csv` crate (quotes, doubled
    /// quotes, the delimiter inside quotes), trim fields. A quoted field
    /// cannot span lines: in a roster that is always a missing quote.
    fn read(text: &str) -> std::result::Result<Table, LineError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Old Mac line ends (CR only).
        let text = if text.contains('\r') && !text.contains('\n') {
            std::borrow::Cow::Owned(text.replace('\r', "\n"))
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        let delimiter = text
            .lines()
            .find(|l| !is_skipped(l))
            .map(delimiter_of)
            .unwrap_or(b',');
        let mut header = None;
        let mut first = true;
        let mut rows = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if is_skipped(raw) {
                continue;
            }
            if raw.matches('"').count() % 2 == 1 {
                return Err((
                    line,
                    "unbalanced \" quote: a field that starts with \" must end with \" on the \
                     same line (write \"\" for a quote inside it)"
                        .into(),
                ));
            }
            let mut fields = split_line(raw, delimiter).map_err(|e| (line, e))?;
            while fields.last().is_some_and(String::is_empty) {
                fields.pop();
            }
            let only_separators = fields
                .iter()
                .all(|f| f.chars().all(|c| matches!(c, ',' | ';' | '\t')));
            if only_separators {
                continue;
            }
            if first {
                first = false;
                header = Header::detect(line, &fields)?;
                if header.is_some() {
                    continue;
                }
            }
            rows.push(Row { line, fields });
        }
        Ok(Table { header, rows })
    }
}

/// One line's fields, trimmed.
fn split_line(line: &str, delimiter: u8) -> std::result::Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_reader(line.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => Ok(record.iter().map(str::to_string).collect()),
        Some(Err(e)) => Err(format!("cannot read this line: {e}")),
        None => Ok(Vec::new()),
    }
}

fn is_skipped(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#') || t.chars().all(|c| c == ',' || c == ';' || c == '\t')
}

/// Tab when the line has one (spreadsheet paste, TSV), else semicolon when
/// it has more of those than commas (spreadsheets in locales with a decimal
/// comma), else comma.
fn delimiter_of(line: &str) -> u8 {
    if line.contains('\t') {
        b'\t'
    } else if line.matches(';').count() > line.matches(',').count() {
        b';'
    } else {
        b','
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> LineError {
        Roster::parse(text).expect_err("should not parse")
    }

    #[test]
    fn tab_lines_and_stock_header() {
        let r =
            Roster::parse("studentid\tstreamcode\n00000001\troom1\r\n\n# c\n2\troom2\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.students[0].code, "room1");
        assert_eq!(r.by_code("room2").unwrap().id, "2");
        assert_eq!(r.by_id("00000001").unwrap().code, "room1");
    }

    #[test]
    fn moodle_table_paste_with_and_without_header() {
        let with = Roster::parse("Student ID\tPasscode\r\n6400001\t6b5207d7\r\n").unwrap();
        let without = Roster::parse("6400001\t6b5207d7\n").unwrap();
        assert_eq!(with, without);
        assert_eq!(with.students[0].id, "6400001");
        assert_eq!(with.students[0].code, "6b5207d7");
        assert_eq!(with.students[0].label(), "6400001");
    }

    #[test]
    fn headerless_csv_pair_and_trailing_empty_cells() {
        let r = Roster::parse("a,code1\nb,code2,,\n").unwrap();
        assert_eq!(r.len(), 2);
        let r = Roster::parse("a\tcode1\t\t\n").unwrap();
        assert_eq!(r.students[0].code, "code1");
    }

    #[test]
    fn csv_with_header_name_email_bom_and_quotes() {
        let r = Roster::parse(
            "\u{feff}Email,Code,Name,ID,Group\r\n\
             ann@example.org,AbCdEfGh,\"Lee, Ann\",s1,g1\r\n\
             ,k7m9x2p4q,Bob,s2,\r\n",
        )
        .unwrap();
        assert_eq!(r.students[0].label(), "Lee, Ann");
        assert_eq!(r.students[0].email.as_deref(), Some("ann@example.org"));
        assert_eq!(r.students[1].email, None);
        assert_eq!(r.students[1].id, "s2");
    }

    #[test]
    fn semicolon_csv_and_tsv_with_first_and_last_names() {
        let r = Roster::parse("id;code;name\n1;abcdefghj;Ann\n").unwrap();
        assert_eq!(r.students[0].label(), "Ann");
        let r =
            Roster::parse("First name\tSurname\tUsername\tStream code\nAnn\tLee\tal\txyzxyzxyz\n")
                .unwrap();
        assert_eq!(r.students[0].label(), "Ann Lee");
        assert_eq!(r.students[0].id, "al");
    }

    #[test]
    fn utf16_spreadsheet_export() {
        let text = "id\tcode\nÅsa\tq2w3e4r5t\n";
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
        let decoded = decode_text(&bytes).unwrap();
        assert_eq!(Roster::parse(&decoded).unwrap().students[0].id, "Åsa");
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
        assert_eq!(decode_text(&be).unwrap(), text);
    }

    #[test]
    fn latin1_is_an_error_with_its_line() {
        let (line, msg) = decode_text(b"id,code\na,b\nJos\xE9,c\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(msg.contains("UTF-8"), "{msg}");
    }

    #[test]
    fn duplicates_are_errors_naming_both() {
        let (line, msg) = err("a\tx\nb\tx\n");
        assert_eq!(line, 2);
        assert!(
            msg.contains("duplicate stream code") && msg.contains("\"a\""),
            "{msg}"
        );
        let (line, msg) = err("# roster\n\na\tx\na\ty\n");
        assert_eq!(line, 4);
        assert!(msg.contains("also on line 3"), "{msg}");
    }

    #[test]
    fn each_line_problem_is_named() {
        assert_eq!(err("a\n").0, 1);
        assert!(
            err("s001   k7m9x2p4q\n")
                .1
                .contains("with spaces but no tab")
        );
        assert!(err("a\n").1.contains("separated by a tab"));
        let (line, msg) = err("a\tb\tc\n");
        assert_eq!(line, 1);
        assert!(msg.contains("3 fields"), "{msg}");
        let (line, msg) = err("id,code\ns1,\n");
        assert_eq!(line, 2);
        assert!(msg.contains("no stream code for student \"s1\""), "{msg}");
        let (line, msg) = err("id,code\n,abc\n");
        assert_eq!(line, 2);
        assert!(msg.contains("no student ID"), "{msg}");
        let (line, msg) = err("id,code\ns1,has space\n");
        assert_eq!(line, 2);
        assert!(msg.contains("space"), "{msg}");
        let (line, msg) = err("id,code,email\ns1,abc,not-an-address\n");
        assert_eq!(line, 2);
        assert!(msg.contains("not an e-mail"), "{msg}");
        let (line, msg) = err("id,code,name\ns1,abc,\"evil\x1b[2J\"\n");
        assert_eq!(line, 2);
        assert!(msg.contains("control characters"), "{msg}");
    }

    #[test]
    fn header_without_code_column_is_an_error() {
        let (line, msg) = err("\n\nid,name\ns1,Ann\n");
        assert_eq!(line, 3);
        assert!(msg.contains("has no code column"), "{msg}");
        let (line, msg) = err("id,code,stream code\n");
        assert_eq!(line, 1);
        assert!(msg.contains("both look like"), "{msg}");
    }

    #[test]
    fn unclosed_quote_is_an_error() {
        let (line, msg) = err("id,code\ns1,\"abc\ns2,def\n");
        assert_eq!(line, 2);
        assert!(msg.contains("quote"), "{msg}");
        let r = Roster::parse("id,code,name\ns1,abc,\"Ann \"\"Nan\"\" Lee\"\n").unwrap();
        assert_eq!(r.students[0].label(), "Ann \"Nan\" Lee");
    }

    #[test]
    fn counts_further_problems() {
        let (line, msg) = err("a\n\tb\nc\n");
        assert_eq!(line, 1);
        assert!(msg.contains("and 2 more lines"), "{msg}");
    }

    #[test]
    fn blank_comment_and_empty_cell_lines_are_skipped() {
        let r = Roster::parse("\r\n  \n# header comment\n\t\t\n,,\na\tb\n   # indented\n").unwrap();
        assert_eq!(r.len(), 1);
        assert!(Roster::parse("").unwrap().is_empty());
        assert!(Roster::parse("id,code\n").unwrap().is_empty());
    }

    #[test]
    fn csv_round_trip() {
        let r = Roster::parse("id,code,name\ns1,abc,\"Lee, Ann\"\ns2,def,\n").unwrap();
        let csv = r.to_csv().unwrap();
        assert!(csv.starts_with("id,code,name\n"), "{csv}");
        assert_eq!(Roster::parse(&csv).unwrap(), r);
        let plain = Roster::parse("a\tb\n").unwrap().to_csv().unwrap();
        assert_eq!(plain, "id,code\na,b\n");
    }

    #[test]
    fn people_lists() {
        let p = parse_people("s1\ns2\r\n\n# x\ns3\n", Need::Id).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[2].line, 5);
        let p = parse_people("ID,Name,Email\n1,\"Lee, Ann\",a@x.org\n", Need::Id).unwrap();
        assert_eq!(p[0].name.as_deref(), Some("Lee, Ann"));
        assert_eq!(p[0].email.as_deref(), Some("a@x.org"));
        let p = parse_people("email\nann@x.org\n", Need::Email).unwrap();
        assert_eq!(p[0].email.as_deref(), Some("ann@x.org"));
        let p = parse_people("ann@x.org\nbob@x.org\n", Need::Email).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(parse_people("s1\ns1\n", Need::Id).unwrap_err().0, 2);
        assert_eq!(parse_people("email\nnope\n", Need::Email).unwrap_err().0, 2);
        assert_eq!(
            parse_people("name,email\nAnn,a@x\n", Need::Id)
                .unwrap_err()
                .0,
            1
        );
        let (line, msg) = parse_people("id,code\n1,x\n", Need::Id).unwrap_err();
        assert_eq!(line, 1);
        assert!(msg.contains("already has a code column"), "{msg}");
        let (line, msg) = parse_people("s1\ns2,extra\n", Need::Id).unwrap_err();
        assert_eq!(line, 2);
        assert!(msg.contains("2 fields"), "{msg}");
    }
}
