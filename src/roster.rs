//! Students and their stream codes (pure state, no I/O beyond reading a file).
//!
//! Accepted input (see `Roster::parse`): "ID<TAB>code" lines as copied from a
//! spreadsheet or the Moodle plugin's table, or CSV/TSV with a header naming
//! `id`, `code` and optionally `name`, `email`. Blank lines and `#` comments
//! are skipped; anything else that cannot be read is an error with its line.

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

impl Roster {
    /// Read and parse a roster file.
    pub fn load(path: &Path) -> Result<Roster> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        Roster::parse(&text).map_err(|(line, message)| Error::Parse {
            path: path.to_path_buf(),
            line,
            message,
        })
    }

    /// Parse roster text. Errors are `(line number, problem)`.
    pub fn parse(text: &str) -> std::result::Result<Roster, (usize, String)> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut students = Vec::new();
        let mut columns: Option<Columns> = None;
        let mut first = true;
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let sep = if line.contains('\t') { '\t' } else { ',' };
            let fields: Vec<&str> = line
                .split(sep)
                .map(|f| f.trim().trim_matches('"'))
                .collect();
            if first {
                first = false;
                if let Some(c) = Columns::from_header(&fields) {
                    columns = Some(c);
                    continue;
                }
            }
            let cols = columns.unwrap_or(Columns::DEFAULT);
            let get = |i: Option<usize>| i.and_then(|i| fields.get(i)).map(|s| s.to_string());
            let id = get(Some(cols.id)).unwrap_or_default();
            let code = get(Some(cols.code)).unwrap_or_default();
            if id.is_empty() || code.is_empty() {
                return Err((
                    line_no,
                    format!("expected a student ID and a stream code, found {line:?}"),
                ));
            }
            if let Some(prev) = students.iter().position(|s: &Student| s.id == id) {
                return Err((
                    line_no,
                    format!("duplicate student ID {id:?} (also on entry {})", prev + 1),
                ));
            }
            if students.iter().any(|s: &Student| s.code == code) {
                return Err((line_no, format!("duplicate stream code {code:?}")));
            }
            students.push(Student {
                id,
                code,
                name: get(cols.name).filter(|s| !s.is_empty()),
                email: get(cols.email).filter(|s| !s.is_empty()),
            });
        }
        Ok(Roster { students })
    }

    /// The student with this stream code.
    pub fn by_code(&self, code: &str) -> Option<&Student> {
        self.students.iter().find(|s| s.code == code)
    }

    pub fn len(&self) -> usize {
        self.students.len()
    }

    pub fn is_empty(&self) -> bool {
        self.students.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
struct Columns {
    id: usize,
    code: usize,
    name: Option<usize>,
    email: Option<usize>,
}

impl Columns {
    const DEFAULT: Columns = Columns {
        id: 0,
        code: 1,
        name: None,
        email: None,
    };

    fn from_header(fields: &[&str]) -> Option<Columns> {
        let find = |names: &[&str]| {
            fields.iter().position(|f| {
                let f = f.to_ascii_lowercase().replace([' ', '_', '-'], "");
                names.iter().any(|n| f == *n)
            })
        };
        let id = find(&["id", "studentid", "student"])?;
        let code = find(&["code", "streamcode", "passcode"])?;
        Some(Columns {
            id,
            code,
            name: find(&["name", "fullname"]),
            email: find(&["email", "mail"]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_lines_and_header() {
        let r =
            Roster::parse("studentid\tstreamcode\n00000001\troom1\r\n\n# c\n2\troom2\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.students[0].code, "room1");
        assert_eq!(r.by_code("room2").unwrap().id, "2");
    }

    #[test]
    fn csv_with_name_and_bom() {
        let r = Roster::parse("\u{feff}id,code,name\ns1,AbCdEfGh,Ann Lee\n").unwrap();
        assert_eq!(r.students[0].label(), "Ann Lee");
    }

    #[test]
    fn duplicates_are_errors() {
        assert_eq!(Roster::parse("a\tx\nb\tx\n").unwrap_err().0, 2);
        assert_eq!(Roster::parse("a\tx\na\ty\n").unwrap_err().0, 2);
        assert_eq!(Roster::parse("a\n").unwrap_err().0, 1);
    }
}
