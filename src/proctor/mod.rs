//! The monitor engine: joins every roster student's room, receives and
//! decodes their streams, and keeps one state per student.
//!
//! This module is the contract between the engine and its front ends (the
//! dashboard in [`crate::tui`] and the JSON-lines headless mode):
//!
//! - the engine sends [`EngineEvent`]s (facts) on one channel;
//! - front ends send [`EngineCommand`]s (requests) on another;
//! - decoded pictures do not travel through the channel: the engine writes
//!   the newest [`Frame`] of each student into [`FrameSlots`] and sends only
//!   [`EngineEvent::FrameReady`]; the UI pulls the latest value when it draws.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::cli::MonitorArgs;
use crate::{Error, Result};

pub mod discovery;
pub mod engine;
pub mod headless;
pub mod recording;
pub mod student;

pub use engine::{EngineConfig, Timing};

/// A student as the engine knows them: the roster ID, or `?CODE` for someone
/// who publishes a code that is not on the roster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StudentId(pub String);

impl std::fmt::Display for StudentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a student's stream stands, as the proctor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// On the roster, not streaming (never came, or gone).
    OffAir,
    /// The room exists; we are negotiating the peer connection.
    Joining,
    /// Frames are arriving.
    Live,
    /// Connected but no media for longer than the stall threshold.
    Stalled,
    /// The connection broke; the engine is rejoining by itself.
    Reconnecting,
    /// The student stopped streaming (Stop button, closed page).
    Left,
}

/// Who wrote a chat line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Student,
    Proctor,
}

/// Per-student stream statistics, sent periodically.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamStats {
    /// Frames received per second (complete access units from RTP).
    pub fps_received: f32,
    /// Frames decoded per second (0 for students not on screen).
    pub fps_decoded: f32,
    pub width: u32,
    pub height: u32,
    /// "H264", "VP8", ...
    pub codec: String,
    pub bitrate_kbps: f32,
    /// Fraction of RTP packets lost, 0.0..=1.0.
    pub packet_loss: f32,
    /// Age of the newest decoded frame in milliseconds.
    pub frame_age_ms: Option<u64>,
    /// Audio level 0.0 (silence) ..= 1.0 (loud).
    pub audio_level: f32,
    /// Mean milliseconds of decode + scale + colour conversion per decoded
    /// frame in this interval (0 when nothing was decoded).
    pub decode_ms: f32,
    /// Keyframe requests (RTCP PLI) sent to the student in this interval:
    /// after loss, a decode error, or becoming visible.
    pub keyframe_requests: u32,
}

/// Facts the engine reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EngineEvent {
    /// A student's stream changed state.
    State {
        student: StudentId,
        state: StreamState,
        /// When the state began; for stalled, when the last packet came.
        #[serde(with = "unix_millis")]
        since: SystemTime,
    },
    /// Someone not on the roster is publishing this code.
    Unknown { student: StudentId, code: String },
    /// A chat line, from the student or sent by this proctor.
    Chat {
        student: StudentId,
        from: Party,
        text: String,
        #[serde(with = "unix_millis")]
        at: SystemTime,
    },
    /// A student raised attention (`raised: true`) or it was acknowledged.
    Attention {
        student: StudentId,
        from: Party,
        raised: bool,
        #[serde(with = "unix_millis")]
        at: SystemTime,
    },
    /// Periodic statistics of one student.
    Stats {
        student: StudentId,
        stats: StreamStats,
    },
    /// A new frame of this student is in [`FrameSlots`].
    FrameReady { student: StudentId },
    /// The signalling connection went up or down.
    Server { connected: bool, detail: String },
    /// The picture of a live student turned black or froze (`Some`), or
    /// is fine again (`None`). From decoded pictures, so on-screen students.
    Camera {
        student: StudentId,
        problem: Option<crate::media::camera_check::CameraProblem>,
    },
    /// Another device tried to go live on this student's code while it is
    /// live (our server tells the proctors watching it; at most one event
    /// per student every few seconds). Either the student reconnects from a
    /// second device, or someone else went live on their code first.
    CodeConflict {
        student: StudentId,
        #[serde(with = "unix_millis")]
        at: SystemTime,
    },
    /// A snapshot was written.
    Snapshot { student: StudentId, path: String },
    /// Something the proctor should read (a warning worded for users).
    Notice { text: String },
}

/// Requests to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineCommand {
    /// Send a chat line to one student.
    SendChat { student: StudentId, text: String },
    /// Raise attention to a student (their page alerts).
    RaiseAttention { student: StudentId },
    /// Acknowledge the student's attention request (their page shows it).
    AckAttention { student: StudentId },
    /// These students are on screen: decode them, and only them.
    SetVisible { students: Vec<StudentId> },
    /// Keep this student at full decoded resolution (and ask the page for a
    /// bigger picture); `None` releases.
    Enlarge { student: Option<StudentId> },
    /// Take the student's code away from the device publishing it (after a
    /// code conflict, when the face is not the student's): our server
    /// disconnects it and keeps it off the code, so the real student's page
    /// gets in. Answered with a notice.
    ReleaseCode { student: StudentId },
    /// Write the current frame of a student to a PNG file.
    Snapshot {
        student: StudentId,
        path: std::path::PathBuf,
    },
    /// Add students to the roster (a roster pasted into the dashboard).
    AddStudents {
        students: Vec<crate::roster::Student>,
    },
    /// Leave every room politely and stop.
    Shutdown,
}

/// A decoded picture, RGB8, row-major, `width * height * 3` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    /// Increases by one per published frame of this student.
    pub seq: u64,
    /// When it was decoded (for the frame-age figure).
    pub decoded_at: Instant,
}

/// The newest frame of every student: latest value wins, never a queue.
#[derive(Debug, Clone, Default)]
pub struct FrameSlots {
    inner: Arc<Mutex<HashMap<StudentId, Arc<Frame>>>>,
}

impl FrameSlots {
    /// Replace the student's frame.
    pub fn publish(&self, student: &StudentId, frame: Frame) {
        if let Ok(mut map) = self.inner.lock() {
            map.insert(student.clone(), Arc::new(frame));
        }
    }

    /// The newest frame of a student, if any.
    pub fn latest(&self, student: &StudentId) -> Option<Arc<Frame>> {
        self.inner.lock().ok()?.get(student).cloned()
    }

    /// Forget a student's frame (off-air tiles show no stale picture).
    pub fn clear(&self, student: &StudentId) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(student);
        }
    }
}

/// What a front end holds of a running engine.
pub struct EngineHandle {
    /// Facts from the engine, in order.
    pub events: tokio::sync::mpsc::Receiver<EngineEvent>,
    /// Requests to the engine.
    pub commands: tokio::sync::mpsc::Sender<EngineCommand>,
    /// The newest frame of each student.
    pub frames: FrameSlots,
    /// The roster the engine started with (students added later arrive as
    /// events or through [`EngineCommand::AddStudents`]).
    pub roster: crate::roster::Roster,
}

/// Entry point of `rtcproctor monitor`.
///
/// With `--server` the engine joins that server. Without it an embedded
/// server starts first (the student link and proctor key go to stderr, so
/// stdout stays JSON lines in headless mode), and stops with the monitor.
///
/// Without `--roster` every publisher is watched as it appears (shown and
/// recorded as not on the roster, since there is none), up to
/// [`MAX_UNKNOWN_WITHOUT_ROSTER`] at once.
pub async fn run_monitor(args: MonitorArgs) -> Result<()> {
    let roster = match &args.roster {
        Some(path) => crate::roster::Roster::load(path)?,
        None => crate::roster::Roster::default(),
    };
    let ice = ice_servers(&args.server_opts);
    if args.ice_relay_only
        && !ice
            .iter()
            .any(|s| s.urls.iter().any(|u| u.starts_with("turn")))
    {
        return Err(Error::Invalid(
            "--ice-relay-only needs a TURN server: add --ice turn:HOST:PORT with --turn-user and --turn-pass"
                .into(),
        ));
    }
    let (config, server) = match &args.server {
        Some(server) => {
            let mut config = EngineConfig::new(parse_server_url(server)?);
            config.proctor_key = args.proctor_key.clone();
            (config, None)
        }
        None => {
            let (config, server) = embedded_server(&args).await?;
            (config, Some(server))
        }
    };
    let mut config = config;
    config.media.ice_servers = ice;
    config.media.relay_only = args.ice_relay_only;
    if args.roster.is_none() {
        config.max_unknown = MAX_UNKNOWN_WITHOUT_ROSTER;
    }
    let record = open_record(&args, &roster);
    let engine = engine::start(roster, config)?;
    let opts = recording::RecordingOptions {
        snapshot_every: (args.snapshot_every > 0)
            .then(|| std::time::Duration::from_secs(args.snapshot_every * 60)),
        ..Default::default()
    };
    let engine = recording::attach(engine, record, opts);
    let result = if args.headless {
        headless::run(engine).await
    } else {
        match crate::tui::DashboardOptions::from_monitor_args(&args) {
            Ok(mut opts) => {
                // The link printed on stderr is hidden by the dashboard.
                opts.startup_notice = server
                    .as_ref()
                    .map(|s| format!("students join at {}", s.student_link("CODE")));
                crate::tui::run_dashboard(engine, opts).await
            }
            Err(e) => Err(e),
        }
    };
    if let Some(server) = server {
        server.shutdown().await;
    }
    result
}

/// How many students a monitor without a roster watches at most.
pub const MAX_UNKNOWN_WITHOUT_ROSTER: usize = 300;

/// Open this proctor's record of the session (resuming it if it exists).
/// An error is worded for the proctor; the monitor runs on without a record.
fn open_record(
    args: &MonitorArgs,
    roster: &crate::roster::Roster,
) -> std::result::Result<(crate::store::Recorder, Option<crate::store::SessionSummary>), String> {
    use crate::store::{
        Recorder, SessionDir, default_session_name, proctor_name, report::fmt_time, sessions_dir,
    };
    let today = fmt_time(crate::store::entry::now_ms());
    let name = args.session.clone().unwrap_or_else(|| {
        let roster = args.roster.as_deref();
        default_session_name(roster.unwrap_or(std::path::Path::new("exam")), &today[..10])
    });
    let dir = SessionDir::new(&sessions_dir(), &name);
    let resuming = dir.exists();
    let (rec, prev) = Recorder::start(dir.clone(), &proctor_name(), roster, |m| {
        tracing::error!("{m}")
    })
    .map_err(|e| {
        format!("no session record: {e} (set RTCPROCTOR_DATA_DIR to a writable directory)")
    })?;
    eprintln!(
        "rtcproctor: {} session \"{}\" in {}",
        if resuming { "resuming" } else { "recording" },
        dir.name,
        dir.path.display()
    );
    Ok((rec, prev))
}

/// Start the embedded signalling server and tell the proctor how students
/// reach it.
async fn embedded_server(
    args: &MonitorArgs,
) -> Result<(EngineConfig, crate::signal::server::ServerHandle)> {
    use crate::signal::server::{ServerConfig, TlsMode, start};
    let mut sc = ServerConfig::loopback();
    sc.bind = args.bind;
    sc.tls = if args.http {
        TlsMode::Http
    } else {
        TlsMode::SelfSigned
    };
    sc.proctor_key = args.proctor_key.clone();
    sc.ice = crate::signal::protocol::IceServer::from_cli(
        &args.server_opts.ice,
        args.server_opts.turn_user.as_deref(),
        args.server_opts.turn_pass.as_deref(),
    )
    .map_err(Error::Invalid)?;
    let server = start(sc).await?;
    eprintln!("rtcproctor: signalling server on {}", server.addr());
    eprintln!("  student link:  {}", server.student_link("CODE"));
    if let Some(fp) = server.fingerprint() {
        eprintln!("  certificate:   SHA-256 {fp}");
    }
    eprintln!("  proctor key:   {}", server.proctor_key());
    // The engine reaches the server on loopback whatever address it binds.
    let port = server.addr().port();
    let scheme = if args.http { "http" } else { "https" };
    let url = parse_server_url(&format!("{scheme}://127.0.0.1:{port}/"))?;
    let mut config = EngineConfig::new(url);
    config.proctor_key = Some(server.proctor_key().to_string());
    if let Some(fp) = server.fingerprint() {
        config.tls = crate::signal::client::ClientTls::PinSha256(fp.to_string());
    }
    // Students on other machines reach us through the bound address: gather
    // candidates on every interface unless the server is loopback-only.
    if !server.addr().ip().is_loopback() {
        config.media = crate::media::MediaConfig::default();
    }
    Ok((config, server))
}

/// `host:port`, `http://host:port` or `https://...`, normalised to the
/// `socketURL` form with a trailing slash.
pub fn parse_server_url(s: &str) -> Result<url::Url> {
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| {
        Error::Invalid(format!(
            "--server \"{s}\" is not a URL ({e}); use e.g. https://proctor.example.org:8443/"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::Invalid(format!(
            "--server \"{s}\" must be an http:// or https:// address with a host"
        )));
    }
    Ok(url)
}

/// ICE servers from `--ice` / `--turn-user` / `--turn-pass`.
pub fn ice_servers(opts: &crate::cli::ServerOpts) -> Vec<webrtc::peer_connection::RTCIceServer> {
    opts.ice
        .iter()
        .map(|u| webrtc::peer_connection::RTCIceServer {
            urls: vec![u.clone()],
            username: if u.starts_with("turn") {
                opts.turn_user.clone().unwrap_or_default()
            } else {
                String::new()
            },
            credential: if u.starts_with("turn") {
                opts.turn_pass.clone().unwrap_or_default()
            } else {
                String::new()
            },
        })
        .collect()
}

mod unix_millis {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        s.serialize_u64(ms)
    }
}
