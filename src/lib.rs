//! rtcproctor: watch remote exam students from a terminal.
//!
//! Students open a web page, type a stream code and go live (one-way camera
//! and audio over WebRTC). Proctors run the dashboard, which shows every
//! student of the roster as a live thumbnail, who is off-air, attention
//! requests and chat.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap); flag spellings are a contract.
//! - [`error`]: the crate's error type, worded for users.
//! - [`roster`]: students and their stream codes, parsed from files (pure).
//! - [`codes`]: stream-code generation and checking (pure).
//! - [`signal`]: the socket.io protocol in the RTCMultiConnection dialect:
//!   message types, the signalling server, the client used by monitor and
//!   synthetic students.
//! - [`media`]: WebRTC peers, RTP depacketizing, decoding, scaling, the
//!   latest-frame slots.
//! - [`proctor`]: the monitor engine: one state per roster student, the
//!   events the dashboard draws and the commands it sends; headless mode.
//! - [`demo`]: `rtcproctor demo`, everything at once on loopback.
//! - [`tui`]: the ratatui dashboard (app state, views, themes, keymap).
//! - [`web`]: the student page, embedded into the binary.
//! - [`sim`]: synthetic students streaming an H.264 test pattern.
//! - [`store`]: the crash-safe session record and the report built from it.
//!
//! Data flows one way: network tasks → channels → one app state → draw.

pub mod cli;
pub mod codes;
pub mod demo;
pub mod error;
pub mod media;
pub mod proctor;
pub mod roster;
pub mod signal;
pub mod sim;
pub mod store;
pub mod tui;
pub mod web;

pub use error::{Error, Result};

use cli::{Cli, Command};

/// Run one invocation of the binary.
pub fn run(cli: Cli) -> Result<()> {
    let dashboard = matches!(&cli.command, Command::Monitor(m) if !m.headless)
        || matches!(cli.command, Command::Demo(_));
    init_logging(cli.verbose, cli.log_file.as_deref(), dashboard)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rtcproctor")
        .build()
        .map_err(|e| Error::Other(anyhow::anyhow!("cannot start the async runtime: {e}")))?;

    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => signal::server::run_serve(args).await,
            Command::Monitor(args) if args.dashboard.fake_engine.is_some() => {
                tui::run_fake_monitor(args).await
            }
            Command::Monitor(args) => proctor::run_monitor(args).await,
            Command::Codes(cmd) => codes::run(cmd),
            Command::Student(args) => sim::run_student(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Report(args) => store::report::run(args),
        }
    })
}

/// Logs go to stderr, or to a file when one is given or when the dashboard
/// owns the screen (a log line on stderr would tear the UI).
fn init_logging(verbose: u8, file: Option<&std::path::Path>, dashboard: bool) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // webrtc's ICE and DTLS layers warn about routine things (an early
        // check before candidates arrive, unknown TLS extensions from
        // browsers); at the default level only their errors are shown.
        0 => "warn,rtc_ice=error,rtc_dtls=error",
        1 => "info,rtcproctor=info",
        2 => "info,rtcproctor=debug",
        _ => "debug,rtcproctor=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let path = match file {
        Some(p) => Some(p.to_path_buf()),
        None if dashboard => Some(default_log_path()),
        None => None,
    };
    match path {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::file(&path, e))?;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init();
        }
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
        }
    }
    Ok(())
}

/// `$XDG_STATE_HOME/rtcproctor/rtcproctor.log` (or the platform equivalent).
pub fn default_log_path() -> std::path::PathBuf {
    directories::ProjectDirs::from("", "", "rtcproctor")
        .map(|d| {
            d.state_dir()
                .unwrap_or_else(|| d.data_local_dir())
                .join("rtcproctor.log")
        })
        .unwrap_or_else(|| std::env::temp_dir().join("rtcproctor.log"))
}
