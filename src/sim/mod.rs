//! Synthetic students: publish an H.264 test pattern like the student page does.

use crate::cli::StudentArgs;
use crate::{Error, Result};

/// Entry point of `rtcproctor student`.
pub async fn run_student(_args: StudentArgs) -> Result<()> {
    Err(Error::NotAvailable("student"))
}
