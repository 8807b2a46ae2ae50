//! Loading a record back. A kill can tear the last line; that line is
//! dropped (it is at most the last half second). A bad line elsewhere is
//! skipped and counted, never a reason to lose the rest of the exam.

use std::path::{Path, PathBuf};

use super::entry::Entry;
use crate::{Error, Result};

/// One proctor's record as read from disk.
#[derive(Debug, Clone)]
pub struct Record {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
    /// Lines that could not be read, with their line numbers and why.
    pub skipped: Vec<(usize, String)>,
    /// The last line was incomplete (the writer was killed mid-line).
    pub torn_tail: bool,
}

/// Read a record file.
pub fn load_record(path: &Path) -> Result<Record> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    Ok(parse_record(path, &bytes))
}

fn parse_record(path: &Path, bytes: &[u8]) -> Record {
    let mut rec = Record {
        path: path.to_path_buf(),
        entries: Vec::new(),
        skipped: Vec::new(),
        torn_tail: false,
    };
    let complete = bytes.ends_with(b"\n") || bytes.is_empty();
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let n = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Entry>(line) {
            Ok(e) => rec.entries.push(e),
            Err(_) if i + 1 == n && !complete => rec.torn_tail = true,
            Err(e) => rec.skipped.push((i + 1, e.to_string())),
        }
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_dropped_and_bad_lines_counted() {
        let text =
            b"{\"t\":1,\"kind\":\"end\"}\nnot json\n{\"t\":2,\"kind\":\"end\"}\n{\"t\":3,\"ki";
        let rec = parse_record(Path::new("r"), text);
        assert_eq!(rec.entries.len(), 2);
        assert!(rec.torn_tail);
        assert_eq!(rec.skipped.len(), 1);
        assert_eq!(rec.skipped[0].0, 2);
    }

    #[test]
    fn empty_record_is_fine() {
        let rec = parse_record(Path::new("r"), b"");
        assert!(rec.entries.is_empty() && !rec.torn_tail && rec.skipped.is_empty());
    }
}
