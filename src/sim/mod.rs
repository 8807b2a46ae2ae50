//! Synthetic students: publish an H.264 test pattern like the student page does.
//!
//! - [`pattern`]: the picture (name, moving square, machine-readable marks)
//!   and `read_marks`, which monitors use to measure from pixels alone.
//! - [`encoder`]: openh264, Constrained Baseline like Chromium.

pub mod encoder;
mod font;
pub mod pattern;

use crate::cli::StudentArgs;
use crate::{Error, Result};

/// Entry point of `rtcproctor student`.
pub async fn run_student(_args: StudentArgs) -> Result<()> {
    Err(Error::NotAvailable("student"))
}
