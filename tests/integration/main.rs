//! One integration test binary (short link times); a module per area.

mod cli;
mod tui;
