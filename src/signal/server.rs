//! The signalling server.

use crate::cli::ServeArgs;
use crate::{Error, Result};

/// Entry point of `rtcproctor serve`.
pub async fn run_serve(_args: ServeArgs) -> Result<()> {
    Err(Error::NotAvailable("serve"))
}
