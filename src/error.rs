//! Crate-level error type. Library layers return [`Error`]; the binary turns
//! any error into one line on stderr and exit status 1 (usage errors are 2,
//! from clap).

use std::path::PathBuf;

/// Errors a user can act on. Each message says what went wrong and, where it
/// can, what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A subcommand that is planned but not built yet.
    #[error("`{0}` is not available yet in this build of rtcproctor")]
    NotAvailable(&'static str),

    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Bad input in a file, with its place.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A value given on the command line or in a config that cannot be used.
    #[error("{0}")]
    Invalid(String),

    /// Anything else, already worded for the user.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    /// Wrap an I/O error with the path it concerns.
    pub fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::File {
            path: path.into(),
            source,
        }
    }

    /// A bind error with a hint for the common causes.
    pub fn bind(addr: std::net::SocketAddr, source: std::io::Error) -> Self {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                " (another program uses this port: stop it, or pick another with --bind ADDR:PORT)"
            }
            std::io::ErrorKind::PermissionDenied => {
                " (ports below 1024 need root: pick a port above 1024 with --bind ADDR:PORT)"
            }
            std::io::ErrorKind::AddrNotAvailable => {
                " (this machine has no such address: use 0.0.0.0 or 127.0.0.1 with --bind)"
            }
            _ => "",
        };
        Error::Bind { addr, source, hint }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
