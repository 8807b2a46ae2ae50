//! One integration test binary (short link times); a module per area.

mod cli;
mod signal_client;
mod stock_server;
