//! The terminal dashboard.

use crate::cli::DemoArgs;
use crate::{Error, Result};

/// Entry point of `rtcproctor demo`.
pub async fn run_demo(_args: DemoArgs) -> Result<()> {
    Err(Error::NotAvailable("demo"))
}
