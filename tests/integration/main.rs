//! One integration test binary (short link times); a module per area.

mod bench_grid;
mod cli;
mod codes;
mod engine;
mod faults;
mod hostile;
mod page;
mod record;
mod rust_viewer;
mod server;
mod signal_client;
mod stock_server;
mod student;
mod tone;
mod tui;
mod unknown;
