//! One integration test binary (short link times); a module per area.

mod cli;
mod codes;
mod rust_viewer;
mod signal_client;
mod stock_server;
mod student;
