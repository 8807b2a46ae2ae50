//! Where `codes` commands write: stdout, or files that are never overwritten
//! without `--force` and that only their owner can read (codes are secrets).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Write `text` to `out`, or to stdout when there is no `out`. A closed pipe
/// (`| head`) is not an error.
pub fn write_text(out: Option<&Path>, text: &str, force: bool) -> Result<()> {
    match out {
        Some(path) => write_file(path, text.as_bytes(), force),
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Error::Other(anyhow::anyhow!("cannot write to stdout: {e}")))
                }
                _ => Ok(()),
            }
        }
    }
}

/// Create `path` with `bytes`. Without `force` an existing file is an error
/// (checked atomically by the create call); with it the file is replaced.
pub fn write_file(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Invalid(format!(
                "{} already exists; pick another name, or add --force to replace it",
                path.display()
            ))
        } else {
            Error::file(path, e)
        }
    })?;
    file.write_all(bytes).map_err(|e| Error::file(path, e))
}

/// Make `out` a directory to write into: created when missing; an existing
/// one must be empty unless `force`.
pub fn prepare_dir(out: &Path, force: bool) -> Result<()> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if !force && entries.next().is_some() {
                return Err(Error::Invalid(format!(
                    "{} is not empty; pick a new directory, or add --force to replace files in it",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))
        }
        Err(e) => Err(Error::file(out, e)),
    }
}

/// File-name stems for IDs: letters, digits, `-`, `_` and `.` are kept, the
/// rest becomes `_`; names are unique ignoring case (case-insensitive file
/// systems), a clash gets `-2`, `-3`, ...
pub fn safe_names<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut used: HashSet<String> = HashSet::new();
    ids.into_iter()
        .map(|id| {
            let mut stem: String = id
                .chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
                    _ => '_',
                })
                .take(64)
                .collect();
            if stem.is_empty() || stem.starts_with('.') || is_reserved(&stem) {
                stem.insert(0, '_');
            }
            let mut name = stem.clone();
            let mut n = 1;
            while !used.insert(name.to_lowercase()) {
                n += 1;
                name = format!("{stem}-{n}");
            }
            name
        })
        .collect()
}

/// Names Windows will not create a file under, whatever the extension.
fn is_reserved(stem: &str) -> bool {
    let base = stem.split('.').next().unwrap_or(stem).to_ascii_uppercase();
    matches!(base.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (base.len() == 4
            && (base.starts_with("COM") || base.starts_with("LPT"))
            && base.as_bytes()[3].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_are_plain_unique_and_not_hidden() {
        let names = safe_names([
            "s1",
            "../etc/passwd",
            "a/b",
            "a_b",
            "A_B",
            ".hidden",
            "",
            "Åsa",
            "con",
        ]);
        assert_eq!(
            names,
            [
                "s1",
                "_.._etc_passwd",
                "a_b",
                "a_b-2",
                "A_B-3",
                "_.hidden",
                "_",
                "_sa",
                "_con"
            ]
        );
    }

    #[test]
    fn files_are_not_overwritten_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.csv");
        write_file(&path, b"one", false).unwrap();
        let e = write_file(&path, b"two", false).unwrap_err().to_string();
        assert!(e.contains("--force"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_file(&path, b"two", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "roster readable by others: {mode:o}");
        }
    }

    #[test]
    fn output_directory_must_be_new_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("qr");
        prepare_dir(&out, false).unwrap();
        prepare_dir(&out, false).unwrap();
        std::fs::write(out.join("x"), "x").unwrap();
        assert!(prepare_dir(&out, false).is_err());
        prepare_dir(&out, true).unwrap();
    }
}
