//! Stream codes: generation, Moodle-plugin compatibility, links and QR codes.

use crate::cli::CodesCommand;
use crate::{Error, Result};

/// Entry point of `rtcproctor codes ...`.
pub fn run(_cmd: CodesCommand) -> Result<()> {
    Err(Error::NotAvailable("codes"))
}
