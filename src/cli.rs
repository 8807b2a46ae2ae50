//! Command-line interface: one `Cli` with a subcommand per job.
//!
//! The flag spellings here are a contract (DESIGN.md, "CLI contract"): scripts,
//! tests and users rely on them. Add flags; do not rename them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Watch remote exam students from a terminal: live camera thumbnails,
/// off-air list, attention requests and chat, over WebRTC.
#[derive(Debug, Parser)]
#[command(name = "rtcproctor", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Write logs to this file instead of stderr (the dashboard always logs to a file).
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the signalling server and serve the student page.
    Serve(ServeArgs),
    /// Watch the students of a roster (the dashboard, or JSON lines with --headless).
    Monitor(MonitorArgs),
    /// Make and check rosters and stream codes, links and QR codes.
    #[command(subcommand)]
    Codes(CodesCommand),
    /// A synthetic student streaming an H.264 test pattern (for demos, tests and benchmarks).
    Student(StudentArgs),
    /// One-command demo: embedded server, synthetic students and the dashboard.
    Demo(DemoArgs),
    /// Report of a recorded session: HTML (self-contained) and CSV.
    Report(ReportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Session name, session directory or record file (several merge
    /// records of the same exam from different proctors).
    #[arg(required = true, value_name = "SESSION")]
    pub sessions: Vec<String>,
    /// Write a self-contained HTML report here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write CSV exports (students, timeline, attention, chat) into this directory.
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,
}

/// Options shared by everything that runs a signalling server (`serve`, and the
/// embedded server of `monitor`).
#[derive(Debug, Clone, Args)]
pub struct ServerOpts {
    /// ICE server URL handed to students and used by the monitor (repeatable),
    /// e.g. stun:stun.example.org:3478 or turn:turn.example.org:3478?transport=udp
    #[arg(long = "ice", value_name = "URL")]
    pub ice: Vec<String>,

    /// Username for the turn: URLs given with --ice.
    #[arg(long, value_name = "USER", requires = "turn_pass")]
    pub turn_user: Option<String>,

    /// Password for the turn: URLs given with --ice.
    #[arg(long, value_name = "PASS", requires = "turn_user")]
    pub turn_pass: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR:PORT")]
    pub bind: SocketAddr,

    /// Serve plain HTTP instead of HTTPS. Browsers only allow the camera on
    /// plain HTTP for localhost, so use this for loopback tests and development.
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    pub http: bool,

    /// TLS certificate chain (PEM). Without --cert/--key a self-signed
    /// certificate is generated at start and its fingerprint printed.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// TLS private key (PEM) for --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Key that proctors need to view streams. Default: a random key printed at start.
    #[arg(long, value_name = "KEY", env = "RTCPROCTOR_PROCTOR_KEY")]
    pub proctor_key: Option<String>,

    /// Let anyone who knows a stream code view it, without the proctor key
    /// (needed by the stock RTCProctor monitor page; weaker security).
    #[arg(long)]
    pub open_viewing: bool,

    /// Only codes on this roster may go live.
    #[arg(long, value_name = "FILE")]
    pub roster: Option<PathBuf>,

    #[command(flatten)]
    pub server: ServerOpts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphicsMode {
    Auto,
    Halfblocks,
    Sixel,
    Kitty,
    Iterm2,
}

#[derive(Debug, Clone, Args)]
pub struct MonitorArgs {
    /// Roster of students: "ID<TAB>code" lines or a CSV/TSV with a header (id, code, name, email).
    /// Students streaming a code that is not on it are shown as unknown; without
    /// a roster every student is shown as they go live.
    #[arg(long, value_name = "FILE")]
    pub roster: Option<PathBuf>,

    /// Signalling server to join, e.g. https://proctor.example.org:8443/ .
    /// Without it an embedded server is started and the student link printed.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,

    /// Proctor key for viewing on the server (printed by `rtcproctor serve`).
    #[arg(long, value_name = "KEY", env = "RTCPROCTOR_PROCTOR_KEY")]
    pub proctor_key: Option<String>,

    /// No terminal UI: write JSON lines of events and stats on stdout.
    #[arg(long)]
    pub headless: bool,

    /// Address of the embedded server (only without --server).
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR:PORT")]
    pub bind: SocketAddr,

    /// Serve the embedded server over plain HTTP (loopback/development).
    #[arg(long)]
    pub http: bool,

    /// Colour theme: default, light, high-contrast, or a path to a theme TOML file.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub theme: String,

    /// How thumbnails are drawn.
    #[arg(long, value_enum, default_value_t = GraphicsMode::Auto)]
    pub graphics: GraphicsMode,

    /// Session name for the record (default: the roster's name and today's
    /// date). An existing session is resumed: chat, attention queue, off-air times.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,

    /// Reach students only through the TURN servers given with --ice (ICE
    /// transport policy "relay"): for networks that block direct UDP, and
    /// to check a TURN deployment.
    #[arg(long)]
    pub ice_relay_only: bool,

    /// Also save a snapshot of every live student every N minutes (0 = off).
    #[arg(long, default_value_t = 0, value_name = "MINUTES")]
    pub snapshot_every: u64,

    #[command(flatten)]
    pub server_opts: ServerOpts,

    #[command(flatten)]
    pub dashboard: DashboardArgs,
}

/// Dashboard switches of `monitor` (and `demo`).
#[derive(Debug, Clone, Default, Args)]
pub struct DashboardArgs {
    /// Do not ring the terminal bell when a student asks for attention.
    #[arg(long)]
    pub no_bell: bool,

    /// No desktop notifications through the terminal (OSC 9 / OSC 777).
    #[arg(long)]
    pub no_osc_notify: bool,

    /// No desktop notifications through the local notification daemon.
    #[arg(long)]
    pub no_desktop_notify: bool,

    /// Do not flash the tiles of students asking for attention.
    #[arg(long)]
    pub no_flash: bool,

    /// Directory for snapshots (default: the data directory, e.g.
    /// ~/.local/share/rtcproctor/snapshots).
    #[arg(long, value_name = "DIR")]
    pub snapshot_dir: Option<PathBuf>,

    /// Tests and benchmarks only: run the dashboard on a fake engine with N
    /// live students instead of joining a server.
    #[arg(long, hide = true, value_name = "N")]
    pub fake_engine: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum CodesCommand {
    /// Generate random, unguessable codes for a list of IDs or a count of students.
    New(CodesNewArgs),
    /// RTCProctor Moodle-plugin-compatible codes from a CSV of emails.
    Moodle(CodesMoodleArgs),
    /// Each student's link (URL#code) from a roster.
    Links(CodesLinksArgs),
    /// QR codes of the students' links (terminal, PNG, SVG, printable HTML sheet).
    Qr(CodesQrArgs),
    /// Read a roster and report what it holds and how guessable its codes are.
    Check(CodesCheckArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("students").required(true).args(["count", "ids"])))]
pub struct CodesNewArgs {
    /// Number of students (IDs s001, s002, ... are generated).
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// File with one student ID per line (or a CSV with an id column; name and
    /// email columns are carried into the roster).
    #[arg(long, value_name = "FILE")]
    pub ids: Option<PathBuf>,
    /// Write the roster CSV here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the --out file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Strength of each code in bits (default 40, at least 30).
    #[arg(long, value_name = "B", conflicts_with = "length")]
    pub bits: Option<u32>,
    /// Length of each code in characters (instead of --bits).
    #[arg(long, value_name = "L")]
    pub length: Option<usize>,
}

#[derive(Debug, Args)]
pub struct CodesMoodleArgs {
    /// The Moodle course-module id of the RTCProctor activity (the `id=` in
    /// the activity's address).
    #[arg(long, value_name = "N")]
    pub cmid: u64,
    /// Secret for keyed (HMAC) codes instead of the guessable plugin-compatible ones.
    #[arg(
        long,
        value_name = "SECRET",
        env = "RTCPROCTOR_CODE_SECRET",
        hide_env_values = true
    )]
    pub secret: Option<String>,
    /// CSV with an `email` column (and optional `name`), or one e-mail per line.
    pub file: PathBuf,
    /// Write the roster CSV here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the --out file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CodesLinksArgs {
    /// Address of the student page, e.g. https://proctor.example.org:8443/
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The roster.
    pub file: PathBuf,
    /// Write a mail-merge CSV (email, name, link) instead of plain lines.
    #[arg(long)]
    pub csv: bool,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the --out file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CodesQrArgs {
    /// Address of the student page.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The roster.
    pub file: PathBuf,
    /// Directory for PNG/SVG files and the printable sheet (default: draw in the terminal).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace files in a non-empty --out directory.
    #[arg(long)]
    pub force: bool,
    /// Only this student (by ID; repeatable).
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CodesCheckArgs {
    /// The roster.
    pub file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct StudentArgs {
    /// Signalling server, e.g. http://127.0.0.1:8443/
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Stream code to publish (with --count N, codes CODE-1 .. CODE-N).
    #[arg(long, value_name = "CODE")]
    pub code: String,
    /// Number of synthetic students in this process.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub count: usize,
    /// Picture size.
    #[arg(long, default_value = "320x240", value_name = "WxH")]
    pub size: String,
    /// Frames per second.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub fps: u32,
    /// Name drawn into the picture (default: the code).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,

    /// Send a chat line every SECS seconds (demo schedule).
    #[arg(long, value_name = "SECS")]
    pub chat_every: Option<f64>,
    /// Raise attention every SECS seconds (demo schedule).
    #[arg(long, value_name = "SECS")]
    pub attention_every: Option<f64>,
    /// Drop off every SECS seconds: close the connection and all peers, stay
    /// away for --drop-for seconds, then go live again with the same code.
    #[arg(long, value_name = "SECS")]
    pub drop_every: Option<f64>,
    /// How long a scheduled drop-off lasts.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub drop_for: f64,
    /// With --count N, spread the scheduled events of the N students evenly
    /// over each period (student i first acts at i/N of it) instead of all at once.
    #[arg(long)]
    pub stagger: bool,

    /// Camera-like texture and sensor noise behind the name (for benchmarks):
    /// the stream then costs about what a webcam's does to encode and decode.
    /// The default picture is mostly flat and nearly free.
    #[arg(long)]
    pub texture: bool,

    /// Send video only (default: also an Opus audio track carrying silence).
    #[arg(long, conflicts_with = "tone")]
    pub no_audio: bool,
    /// Send a tone instead of silence: beeps at HZ (default 440), encoded as
    /// Opus, with the audio level the monitor's meter shows.
    #[arg(long, value_name = "HZ", num_args = 0..=1, default_missing_value = "440")]
    pub tone: Option<f32>,

    /// Accept only the server TLS certificate with this SHA-256 fingerprint
    /// (hex; printed by `rtcproctor serve` for its self-signed certificate).
    #[arg(long, value_name = "HEX", conflicts_with = "insecure_loopback")]
    pub server_cert_sha256: Option<String>,
    /// Accept any TLS certificate, for a server on 127.0.0.1/::1/localhost only.
    #[arg(long)]
    pub insecure_loopback: bool,

    /// Local UDP address for WebRTC (ICE host candidates), e.g. 127.0.0.1:0
    /// to stay on loopback. Default: every interface.
    #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR:PORT")]
    pub udp_bind: String,

    #[command(flatten)]
    pub ice: ServerOpts,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of synthetic students.
    #[arg(long, default_value_t = 12, value_name = "N")]
    pub students: usize,
    /// Address of the embedded server.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR:PORT")]
    pub bind: SocketAddr,
    /// Colour theme: default, light, high-contrast, or a path to a theme TOML file.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub theme: String,
}
