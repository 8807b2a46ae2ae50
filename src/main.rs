use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rtcproctor::cli::Cli::parse();
    match rtcproctor::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line a user can act on; details are in the log (-v).
            eprintln!("rtcproctor: {err}");
            ExitCode::FAILURE
        }
    }
}
