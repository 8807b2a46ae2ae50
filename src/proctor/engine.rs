//! The monitor engine: one task per roster student, each with its own
//! socket.io connection and (while the student is live) its own peer
//! connection; a hub task that routes the front end's commands.
//!
//! A student task's loop (see [`StudentTask::run`]):
//! 1. Connect a socket with a fresh `userid` (a fresh id per attempt means
//!    the student's page never confuses a new attempt with a dead one).
//! 2. `join-room` with the student's code. `[false, "Room not available"]`
//!    means off-air: ask again every few seconds on the same socket (one
//!    small packet), so a student who goes live later appears quickly.
//! 3. `[true]`: send the join request (`newParticipationRequest`), wait for
//!    the student's offer, answer receive-only, trickle candidates.
//! 4. Watch: RTP arrival drives live/stalled; `user-disconnected`,
//!    `userLeft` or a stream-end message mean the student left; a failed
//!    peer or lost socket means reconnecting — back to 1 by itself.
//!
//! Students not on the roster: a control socket lists the server's live
//! rooms every `poll_off_air` ([`discover`]); the hub starts a task like a
//! roster student's for every unknown code (`?CODE`, announced with
//! [`EngineEvent::Unknown`]), at most [`EngineConfig::max_unknown`], and
//! stops it when the code is gone from the listings (its state ends `left`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::{RTCIceCandidateInit, RTCPeerConnectionState};

use super::student::{Dedup, Incoming};
use super::{EngineCommand, EngineEvent, EngineHandle, FrameSlots, Party, StreamState, StudentId};
use crate::media::{Codec, DecodePool, FrameSink, MediaConfig, MediaSession, SessionEvent};
use crate::roster::{Roster, Student};
use crate::signal::client::{Backoff, ClientConfig, ClientEvent, ClientTls, SignalClient};
use crate::signal::protocol::{
    CODE_CONFLICT, EXTRA_ATTENTION_ACK, EXTRA_DATA_UPDATED, EXTRA_MSG_ID, EXTRA_QUALITY, JOIN_ROOM,
    RELEASE_CODE, USER_DISCONNECTED,
};
use crate::{Error, Result};

/// At most one [`EngineEvent::CodeConflict`] per student this often.
const CONFLICT_EVERY: Duration = Duration::from_secs(10);

/// The engine's clocks. Defaults suit a real exam; tests shorten them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// How often an off-air student's room is asked for again.
    pub poll_off_air: Duration,
    /// No RTP for this long: stalled.
    pub stall_after: Duration,
    /// Stalled for this long: drop the peer connection and rejoin.
    pub rejoin_after: Duration,
    /// Join request sent, no offer after this long: start over.
    pub offer_timeout: Duration,
    /// Answer sent, no RTP after this long: start over.
    pub media_timeout: Duration,
    /// Server acks (join-room) must come within this.
    pub ack_timeout: Duration,
    /// Statistics period.
    pub stats_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll_off_air: Duration::from_secs(3),
            stall_after: Duration::from_secs(4),
            rejoin_after: Duration::from_secs(20),
            offer_timeout: Duration::from_secs(10),
            media_timeout: Duration::from_secs(20),
            ack_timeout: Duration::from_secs(10),
            stats_every: Duration::from_secs(1),
        }
    }
}

/// Everything the engine needs to know at start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The signalling server, `http(s)://host:port/`.
    pub server: url::Url,
    /// Our server's proctor key (the stock server ignores it).
    pub proctor_key: Option<String>,
    /// Certificate policy for https servers.
    pub tls: ClientTls,
    /// Relay event name ("rtc-video-proctoring" for RTCProctor pages).
    pub msg_event: String,
    pub media: MediaConfig,
    pub timing: Timing,
    /// Decode every student until the first [`EngineCommand::SetVisible`]
    /// (headless mode decodes everyone; the dashboard tells what it shows).
    pub decode_all_at_start: bool,
    /// Decode workers (0: one per core, at most four).
    pub decode_workers: usize,
    /// List the server's live rooms and watch publishers that are not on
    /// the roster as unknown students.
    pub discover: bool,
    /// At most this many unknown students are watched at once.
    pub max_unknown: usize,
}

impl EngineConfig {
    /// Defaults for a server URL: RTCProctor's relay event, verified TLS
    /// (any certificate on loopback), loopback-only ICE for a loopback server.
    pub fn new(server: url::Url) -> Self {
        let loopback = server_is_loopback(&server);
        EngineConfig {
            proctor_key: None,
            tls: if loopback {
                ClientTls::InsecureLoopback
            } else {
                ClientTls::Verify
            },
            msg_event: crate::signal::protocol::RTCPROCTOR_MSG_EVENT.into(),
            media: if loopback {
                MediaConfig::loopback()
            } else {
                MediaConfig::default()
            },
            timing: Timing::default(),
            decode_all_at_start: true,
            decode_workers: 0,
            discover: true,
            max_unknown: DEFAULT_MAX_UNKNOWN,
            server,
        }
    }
}

/// How many unknown students a monitor with a roster watches at most.
pub const DEFAULT_MAX_UNKNOWN: usize = 50;

/// Whether the URL names this machine (then students are on it too, and
/// loopback candidates are the ones that work).
pub fn server_is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Start the engine on the current tokio runtime.
pub fn start(roster: Roster, config: EngineConfig) -> Result<EngineHandle> {
    let pool = if config.decode_workers == 0 {
        DecodePool::for_machine()
    } else {
        DecodePool::new(config.decode_workers)
    }
    .map_err(|e| Error::Other(anyhow::anyhow!("cannot start the decode threads: {e}")))?;
    let (event_tx, event_rx) = mpsc::channel(4096);
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let frames = FrameSlots::default();
    let ctx = Arc::new(Ctx {
        config,
        events: event_tx,
        frames: frames.clone(),
        pool,
        cancel: CancellationToken::new(),
        sockets_up: AtomicUsize::new(0),
        server_reported: Mutex::new(None),
    });
    tokio::spawn(hub(Arc::clone(&ctx), roster.clone(), cmd_rx));
    Ok(EngineHandle {
        events: event_rx,
        commands: cmd_tx,
        frames,
        roster,
    })
}

/// Shared by the hub and every student task.
struct Ctx {
    config: EngineConfig,
    events: mpsc::Sender<EngineEvent>,
    frames: FrameSlots,
    pool: DecodePool,
    cancel: CancellationToken,
    /// Student sockets currently connected.
    sockets_up: AtomicUsize,
    /// Last `Server` event sent (report changes only).
    server_reported: Mutex<Option<bool>>,
}

impl Ctx {
    async fn emit(&self, event: EngineEvent) {
        let _ = self.events.send(event).await;
    }

    async fn notice(&self, text: String) {
        self.emit(EngineEvent::Notice { text }).await;
    }

    async fn report_server(&self, connected: bool, detail: String) {
        let changed = {
            let Ok(mut last) = self.server_reported.lock() else {
                return;
            };
            let changed = *last != Some(connected);
            *last = Some(connected);
            changed
        };
        if changed {
            self.emit(EngineEvent::Server { connected, detail }).await;
        }
    }

    async fn socket_up(&self) {
        self.sockets_up.fetch_add(1, Ordering::Relaxed);
        let detail = format!("connected to {}", self.config.server);
        self.report_server(true, detail).await;
    }

    async fn socket_down(&self) {
        let _ = self
            .sockets_up
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    async fn socket_failed(&self, err: &Error) {
        if self.sockets_up.load(Ordering::Relaxed) == 0 {
            self.report_server(false, err.to_string()).await;
        }
    }
}

/// Requests from the hub to one student task.
#[derive(Debug)]
enum StudentCmd {
    Visible(bool),
    FullResolution(bool),
    Chat(String),
    RaiseAttention,
    AckAttention,
    ReleaseCode,
}

struct StudentHandle {
    code: String,
    tx: mpsc::Sender<StudentCmd>,
    /// Stops this student's task alone (unknown students that left).
    retire: CancellationToken,
    /// Not on the roster: found in the server's listing.
    unknown: bool,
}

async fn hub(ctx: Arc<Ctx>, roster: Roster, mut commands: mpsc::Receiver<EngineCommand>) {
    let mut tasks = JoinSet::new();
    let mut students: HashMap<StudentId, StudentHandle> = HashMap::new();
    let mut visible: Option<HashSet<StudentId>> = None;
    let mut enlarged: Option<StudentId> = None;
    for s in roster.students {
        add_student(&ctx, &mut tasks, &mut students, s, visible.as_ref(), false).await;
    }
    let (listing_tx, mut listings) = mpsc::channel::<Vec<String>>(4);
    if ctx.config.discover {
        tasks.spawn(discover(Arc::clone(&ctx), listing_tx));
    } else {
        drop(listing_tx);
    }
    let mut unknowns = super::discovery::Unknowns::new(ctx.config.max_unknown);
    loop {
        let cmd = tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => cmd,
                None => break,
            },
            Some(codes) = listings.recv() => {
                on_listing(&ctx, &mut tasks, &mut students, &mut unknowns, &codes, visible.as_ref()).await;
                continue;
            }
        };
        let send = |id: &StudentId, c: StudentCmd| {
            let tx = students.get(id).map(|h| h.tx.clone());
            async move {
                match tx {
                    Some(tx) => tx.send(c).await.is_ok(),
                    None => false,
                }
            }
        };
        match cmd {
            EngineCommand::SendChat { student, text } => {
                if !send(&student, StudentCmd::Chat(text)).await {
                    ctx.notice(format!(
                        "chat not sent: {student} is not watched (not on the roster, or gone)"
                    ))
                    .await;
                }
            }
            EngineCommand::RaiseAttention { student } => {
                send(&student, StudentCmd::RaiseAttention).await;
            }
            EngineCommand::AckAttention { student } => {
                send(&student, StudentCmd::AckAttention).await;
            }
            EngineCommand::ReleaseCode { student } => {
                if !send(&student, StudentCmd::ReleaseCode).await {
                    ctx.notice(format!("no student {student} to release")).await;
                }
            }
            EngineCommand::SetVisible { students: list } => {
                let new: HashSet<StudentId> = list.into_iter().collect();
                for id in students.keys() {
                    let was = visible
                        .as_ref()
                        .map_or(ctx.config.decode_all_at_start, |v| v.contains(id));
                    let now = new.contains(id);
                    if was != now {
                        send(id, StudentCmd::Visible(now)).await;
                    }
                }
                visible = Some(new);
            }
            EngineCommand::Enlarge { student } => {
                if enlarged != student {
                    if let Some(old) = enlarged.take() {
                        send(&old, StudentCmd::FullResolution(false)).await;
                    }
                    if let Some(new) = &student {
                        send(new, StudentCmd::FullResolution(true)).await;
                    }
                    enlarged = student;
                }
            }
            EngineCommand::Snapshot { student, path } => {
                let ctx = Arc::clone(&ctx);
                tokio::spawn(async move { snapshot(&ctx, student, path).await });
            }
            EngineCommand::AddStudents { students: list } => {
                for s in list {
                    // A publisher watched as unknown joins the roster: its
                    // unknown tile ends, the roster student takes over.
                    if unknowns.is_watched(&s.code) {
                        unknowns.forget(&s.code);
                        retire_code(&mut students, &s.code);
                    }
                    add_student(&ctx, &mut tasks, &mut students, s, visible.as_ref(), false).await;
                }
            }
            EngineCommand::Shutdown => break,
        }
    }
    // Leave politely: every task sends `userLeft` and closes its socket.
    drop(listings);
    ctx.cancel.cancel();
    drop(students);
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

/// A listing of live rooms arrived: start watching new unknown codes, stop
/// the ones that are gone.
async fn on_listing(
    ctx: &Arc<Ctx>,
    tasks: &mut JoinSet<()>,
    students: &mut HashMap<StudentId, StudentHandle>,
    unknowns: &mut super::discovery::Unknowns,
    codes: &[String],
    visible: Option<&HashSet<StudentId>>,
) {
    let roster_codes: HashSet<&str> = students
        .values()
        .filter(|h| !h.unknown)
        .map(|h| h.code.as_str())
        .collect();
    let changes = unknowns.update(codes, |c| roster_codes.contains(c));
    for code in &changes.stop {
        tracing::info!(%code, "unknown publisher gone from the server's rooms");
        retire_code(students, code);
    }
    for code in changes.start {
        let id = unknown_id(&code);
        tracing::info!(%code, "publisher not on the roster: watching it as {id}");
        ctx.emit(EngineEvent::Unknown {
            student: id.clone(),
            code: code.clone(),
        })
        .await;
        let student = Student {
            id: id.0,
            code,
            name: None,
            email: None,
        };
        add_student(ctx, tasks, students, student, visible, true).await;
    }
    if let Some(n) = changes.capped {
        tracing::warn!(
            capped = n,
            max = ctx.config.max_unknown,
            "publishers not on the roster are not watched: over the cap"
        );
        ctx.notice(format!(
            "{n} more students not on the roster are streaming; only {} are shown",
            ctx.config.max_unknown
        ))
        .await;
    }
}

/// The engine's id of a publisher not on the roster.
pub fn unknown_id(code: &str) -> StudentId {
    StudentId(format!("?{code}"))
}

/// Stop the unknown student watching `code` (its last state is `left`).
fn retire_code(students: &mut HashMap<StudentId, StudentHandle>, code: &str) {
    let id = students
        .iter()
        .find(|(_, h)| h.unknown && h.code == code)
        .map(|(id, _)| id.clone());
    if let Some(h) = id.and_then(|id| students.remove(&id)) {
        h.retire.cancel();
    }
}

/// The control socket: list the server's live rooms every `poll_off_air`
/// and hand each listing to the hub; reconnect when the socket is lost.
/// A refusal (no proctor key, an old server) is told to the proctor once.
async fn discover(ctx: Arc<Ctx>, listings: mpsc::Sender<Vec<String>>) {
    use super::discovery::{ListError, list_rooms};
    let timing = ctx.config.timing.clone();
    let mut backoff = Backoff::default();
    let mut reported: Option<String> = None;
    let mut silent = 0u32;
    loop {
        let cfg = ClientConfig {
            url: ctx.config.server.clone(),
            userid: new_userid(),
            msg_event: ctx.config.msg_event.clone(),
            session_id: String::new(),
            extra: json!({}),
            proctor_key: ctx.config.proctor_key.clone(),
            tls: ctx.config.tls.clone(),
        };
        let connected = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            c = SignalClient::connect(cfg) => c,
        };
        let lost = match connected {
            Err(e) => {
                tracing::debug!("control socket: connect failed: {e}");
                ctx.socket_failed(&e).await;
                true
            }
            Ok((client, mut events)) => {
                ctx.socket_up().await;
                let mut tick = tokio::time::interval(timing.poll_off_air);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut first = true;
                let lost = loop {
                    tokio::select! {
                        _ = ctx.cancel.cancelled() => break false,
                        ev = events.recv() => match ev {
                            Some(ClientEvent::Event { .. }) => {}
                            _ => break true,
                        },
                        _ = tick.tick() => {
                            // See FIRST_JOIN_WAIT: a fresh socket's first
                            // event may go unanswered.
                            let wait = if first {
                                FIRST_JOIN_WAIT.min(timing.ack_timeout)
                            } else {
                                timing.ack_timeout
                            };
                            let listed = list_rooms(&client, wait).await;
                            let problem = match listed {
                                Ok(codes) => {
                                    backoff.reset();
                                    silent = 0;
                                    if reported.take().is_some() {
                                        ctx.notice("the server lists its rooms again: students not on the roster are shown".into()).await;
                                    }
                                    if listings.send(codes).await.is_err() {
                                        break false;
                                    }
                                    None
                                }
                                Err(ListError::Refused(why)) => Some(why),
                                // One lost answer is not worth a word.
                                Err(ListError::NoAnswer(why)) => {
                                    silent += 1;
                                    (silent >= 2 && !first).then(|| format!("no answer ({why})"))
                                }
                            };
                            first = false;
                            if let Some(why) = problem
                                && reported.as_deref() != Some(why.as_str())
                            {
                                tracing::warn!("the server does not list its rooms: {why}");
                                ctx.notice(format!(
                                    "students not on the roster cannot be shown: the server does not list its live rooms ({why})"
                                ))
                                .await;
                                reported = Some(why);
                            }
                        }
                    }
                };
                client.close().await;
                ctx.socket_down().await;
                lost
            }
        };
        if !lost {
            return;
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn add_student(
    ctx: &Arc<Ctx>,
    tasks: &mut JoinSet<()>,
    students: &mut HashMap<StudentId, StudentHandle>,
    student: Student,
    visible: Option<&HashSet<StudentId>>,
    unknown: bool,
) {
    let id = StudentId(student.id.clone());
    if students.contains_key(&id) || students.values().any(|h| h.code == student.code) {
        ctx.notice(format!(
            "student {id} (code {:?}) is already watched; not added again",
            student.code
        ))
        .await;
        return;
    }
    let (tx, rx) = mpsc::channel(64);
    let is_visible = visible.map_or(ctx.config.decode_all_at_start, |v| v.contains(&id));
    let retire = ctx.cancel.child_token();
    students.insert(
        id.clone(),
        StudentHandle {
            code: student.code.clone(),
            tx,
            retire: retire.clone(),
            unknown,
        },
    );
    let task = StudentTask::new(Arc::clone(ctx), id, student.code, rx, is_visible, retire);
    tasks.spawn(task.run());
}

async fn snapshot(ctx: &Ctx, student: StudentId, path: std::path::PathBuf) {
    let Some(frame) = ctx.frames.latest(&student) else {
        ctx.notice(format!("no picture of {student} to save yet"))
            .await;
        return;
    };
    let p = path.clone();
    let saved = tokio::task::spawn_blocking(move || {
        image::save_buffer(
            &p,
            &frame.rgb,
            frame.width,
            frame.height,
            image::ExtendedColorType::Rgb8,
        )
    })
    .await;
    match saved {
        Ok(Ok(())) => {
            ctx.emit(EngineEvent::Snapshot {
                student,
                path: path.display().to_string(),
            })
            .await
        }
        Ok(Err(e)) => {
            ctx.notice(format!(
                "could not save the snapshot of {student} to {}: {e}",
                path.display()
            ))
            .await
        }
        Err(e) => {
            ctx.notice(format!("snapshot of {student} failed: {e}"))
                .await
        }
    }
}

/// Why an attempt ended.
enum Outcome {
    /// Start a new attempt after this delay.
    Retry(Duration),
    Shutdown,
}

/// What the socket said while we waited.
enum Idle {
    Elapsed,
    SocketLost,
    Shutdown,
}

/// One student's stream, from the engine's side.
struct StudentTask {
    ctx: Arc<Ctx>,
    /// The engine's shutdown, or this student's retirement.
    cancel: CancellationToken,
    id: StudentId,
    code: String,
    cmds: mpsc::Receiver<StudentCmd>,
    state: Option<StreamState>,
    visible: bool,
    full_res: bool,
    /// Our `extra` as the student sees it (re-sent whole on each change).
    extra: Map<String, Value>,
    msg_id: u64,
    dedup: Dedup,
    /// The student's last attention `msgId`, for acknowledging it.
    attention_id: Option<u64>,
    /// When the last code-conflict event went out (they are throttled: the
    /// other device retries every few seconds).
    last_conflict: Option<Instant>,
    backoff: Backoff,
}

/// The live parts of an attempt (commands need them).
struct Link<'a> {
    client: &'a SignalClient,
    /// Set once the room is joined.
    joined: bool,
    session: Option<&'a MediaSession>,
}

impl StudentTask {
    fn new(
        ctx: Arc<Ctx>,
        id: StudentId,
        code: String,
        cmds: mpsc::Receiver<StudentCmd>,
        visible: bool,
        cancel: CancellationToken,
    ) -> Self {
        let mut extra = Map::new();
        extra.insert("message".into(), json!(""));
        extra.insert("attention".into(), json!(""));
        StudentTask {
            ctx,
            cancel,
            id,
            code,
            cmds,
            state: None,
            visible,
            full_res: false,
            extra,
            msg_id: 0,
            dedup: Dedup::default(),
            attention_id: None,
            last_conflict: None,
            backoff: Backoff::default(),
        }
    }

    async fn set_state(&mut self, state: StreamState) {
        self.set_state_at(state, SystemTime::now()).await;
    }

    /// Enter `state`, which began at `at`: for stalled, the last packet
    /// (the stall began when the media stopped, not when the engine's
    /// threshold noticed it seconds later).
    async fn set_state_at(&mut self, state: StreamState, at: SystemTime) {
        if self.state == Some(state) {
            return;
        }
        self.state = Some(state);
        if state != StreamState::Live && state != StreamState::Stalled {
            self.ctx.frames.clear(&self.id);
        }
        self.ctx
            .emit(EngineEvent::State {
                student: self.id.clone(),
                state,
                since: at,
            })
            .await;
    }

    /// After losing a stream: reconnecting if it was up, else unchanged.
    async fn lost(&mut self) {
        if matches!(
            self.state,
            Some(StreamState::Live | StreamState::Stalled | StreamState::Joining)
        ) {
            self.set_state(StreamState::Reconnecting).await;
        }
    }

    async fn run(mut self) {
        self.set_state(StreamState::OffAir).await;
        self.attempts().await;
        // Retired (an unknown student that left), not the engine stopping.
        if !self.ctx.cancel.is_cancelled() {
            self.set_state(StreamState::Left).await;
        }
    }

    async fn attempts(&mut self) {
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let delay = match self.attempt().await {
                Outcome::Shutdown => return,
                Outcome::Retry(d) => d,
            };
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    _ = self.cancel.cancelled() => return,
                    cmd = self.cmds.recv() => match cmd {
                        Some(cmd) => self.command(cmd, None).await,
                        None => return,
                    },
                }
            }
        }
    }

    async fn attempt(&mut self) -> Outcome {
        let userid = new_userid();
        let cfg = ClientConfig {
            url: self.ctx.config.server.clone(),
            userid: userid.clone(),
            msg_event: self.ctx.config.msg_event.clone(),
            session_id: self.code.clone(),
            extra: Value::Object(self.extra.clone()),
            proctor_key: self.ctx.config.proctor_key.clone(),
            tls: self.ctx.config.tls.clone(),
        };
        let (client, mut events) = match SignalClient::connect(cfg).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(student = %self.id, "connect failed: {e}");
                self.ctx.socket_failed(&e).await;
                self.lost().await;
                return Outcome::Retry(self.backoff.next_delay());
            }
        };
        self.ctx.socket_up().await;
        let outcome = self.on_socket(&client, &mut events, &userid).await;
        client.close().await;
        self.ctx.socket_down().await;
        outcome
    }

    async fn on_socket(
        &mut self,
        client: &SignalClient,
        events: &mut mpsc::Receiver<ClientEvent>,
        userid: &str,
    ) -> Outcome {
        let timing = self.ctx.config.timing.clone();
        // 2. Join, or poll while the room does not exist.
        let mut first = true;
        loop {
            let ack = join_room(client, &self.code, first, timing.ack_timeout).await;
            first = false;
            match ack {
                Err(e) => {
                    tracing::debug!(student = %self.id, "join-room: {e}");
                    self.lost().await;
                    return Outcome::Retry(self.backoff.next_delay());
                }
                Ok(args) if args.first() == Some(&Value::Bool(true)) => break,
                Ok(args) => {
                    self.backoff.reset();
                    tracing::trace!(student = %self.id, "join-room refused: {args:?}");
                    if self.state != Some(StreamState::Left) {
                        self.set_state(StreamState::OffAir).await;
                    }
                    let link = Link {
                        client,
                        joined: false,
                        session: None,
                    };
                    match self.idle(&link, events, timing.poll_off_air).await {
                        Idle::Elapsed => continue,
                        Idle::SocketLost => return Outcome::Retry(self.backoff.next_delay()),
                        Idle::Shutdown => return Outcome::Shutdown,
                    }
                }
            }
        }
        self.backoff.reset();
        self.set_state(StreamState::Joining).await;

        // 3. Ask the student to offer; wait for the offer.
        let msg_event = self.ctx.config.msg_event.clone();
        let request = json!({
            "remoteUserId": self.code,
            "message": {
                "newParticipationRequest": true,
                "isOneWay": true,
                "isDataOnly": false,
                "localPeerSdpConstraints": {"OfferToReceiveAudio": true, "OfferToReceiveVideo": true},
                "remotePeerSdpConstraints": {"OfferToReceiveAudio": true, "OfferToReceiveVideo": true},
            },
            "sender": userid,
        });
        if client.emit(&msg_event, vec![request]).await.is_err() {
            self.lost().await;
            return Outcome::Retry(self.backoff.next_delay());
        }
        let mut early_candidates: Vec<RTCIceCandidateInit> = Vec::new();
        let deadline = tokio::time::sleep(timing.offer_timeout);
        tokio::pin!(deadline);
        let (student_userid, offer) = loop {
            tokio::select! {
                _ = &mut deadline => {
                    tracing::debug!(student = %self.id, "no offer within {:?}", timing.offer_timeout);
                    self.lost().await;
                    return Outcome::Retry(Duration::ZERO);
                }
                _ = self.cancel.cancelled() => return Outcome::Shutdown,
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => {
                        let link = Link { client, joined: true, session: None };
                        self.command(cmd, Some(&link)).await;
                    }
                    None => return Outcome::Shutdown,
                },
                ev = events.recv() => match ev {
                    Some(ClientEvent::Event { name, args }) if name == msg_event => {
                        let Some(env) = args.first() else { continue };
                        if env.get("remoteUserId").and_then(Value::as_str) != Some(userid) {
                            continue;
                        }
                        let sender = env.get("sender").and_then(Value::as_str).unwrap_or("").to_string();
                        let message = env.get("message").cloned().unwrap_or(Value::Null);
                        if message.get("type").and_then(Value::as_str) == Some("offer") {
                            break (sender, message);
                        }
                        if let Some(c) = crate::signal::protocol::candidate_init(&message) {
                            early_candidates.push(c);
                        }
                    }
                    Some(ClientEvent::Event { .. }) => {}
                    _ => {
                        self.lost().await;
                        return Outcome::Retry(self.backoff.next_delay());
                    }
                },
            }
        };
        let offer_sdp = offer
            .get("sdp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();

        // Answer receive-only.
        let sink = Arc::new(FrameSink::new(
            self.id.clone(),
            self.ctx.frames.clone(),
            self.ctx.events.clone(),
        ));
        let answered = MediaSession::answer(
            &self.ctx.config.media,
            &offer_sdp,
            sink,
            self.ctx.pool.clone(),
            self.visible,
            self.full_res,
        )
        .await;
        let (session, answer_sdp, mut media_events) = match answered {
            Ok(a) => a,
            Err(e) => {
                self.ctx
                    .notice(format!("cannot answer the stream of {}: {e}", self.id))
                    .await;
                self.lost().await;
                return Outcome::Retry(timing.poll_off_air);
            }
        };
        let answer = json!({
            "remoteUserId": student_userid,
            "message": {
                "type": "answer",
                "sdp": answer_sdp,
                "remotePeerSdpConstraints": false,
                "renegotiatingPeer": false,
                "connectionDescription": offer.get("connectionDescription").cloned().unwrap_or(Value::Null),
                "dontGetRemoteStream": false,
                "extra": Value::Object(self.extra.clone()),
                "streamsToShare": {},
            },
            "sender": userid,
        });
        let outcome = if client.emit(&msg_event, vec![answer]).await.is_err() {
            self.lost().await;
            Outcome::Retry(self.backoff.next_delay())
        } else {
            for c in early_candidates {
                if let Err(e) = session.add_remote_candidate(c).await {
                    tracing::debug!(student = %self.id, "remote candidate refused: {e}");
                }
            }
            self.watch(
                client,
                events,
                &mut media_events,
                &session,
                userid,
                &student_userid,
            )
            .await
        };
        if matches!(outcome, Outcome::Shutdown) {
            let bye = json!({"remoteUserId": student_userid, "message": {"userLeft": true}, "sender": userid});
            let _ = client.emit(&msg_event, vec![bye]).await;
        }
        session.close().await;
        outcome
    }

    /// 4. The stream is negotiated: watch it until it ends.
    async fn watch(
        &mut self,
        client: &SignalClient,
        events: &mut mpsc::Receiver<ClientEvent>,
        media_events: &mut mpsc::UnboundedReceiver<SessionEvent>,
        session: &MediaSession,
        userid: &str,
        student_userid: &str,
    ) -> Outcome {
        let timing = self.ctx.config.timing.clone();
        let msg_event = self.ctx.config.msg_event.clone();
        let mut tick = tokio::time::interval(timing.stats_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return Outcome::Shutdown,
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => {
                        let link = Link { client, joined: true, session: Some(session) };
                        self.command(cmd, Some(&link)).await;
                    }
                    None => return Outcome::Shutdown,
                },
                ev = media_events.recv() => match ev {
                    Some(SessionEvent::LocalCandidate(c)) => {
                        let msg = json!({
                            "remoteUserId": student_userid,
                            "message": {
                                "candidate": c.candidate,
                                "sdpMid": c.sdp_mid.unwrap_or_default(),
                                "sdpMLineIndex": c.sdp_mline_index.unwrap_or(0),
                            },
                            "sender": userid,
                        });
                        let _ = client.emit(&msg_event, vec![msg]).await;
                    }
                    Some(SessionEvent::State(s)) => {
                        tracing::debug!(student = %self.id, "peer connection {s}");
                        if matches!(s, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                            self.lost().await;
                            return Outcome::Retry(Duration::from_millis(200));
                        }
                    }
                    Some(SessionEvent::Track { mime, .. }) => {
                        if mime.starts_with("video/") && Codec::from_mime(&mime).is_none() {
                            self.ctx.notice(format!(
                                "{} sends {mime} video, which rtcproctor does not decode: live, but no picture",
                                self.id
                            )).await;
                        }
                    }
                    None => {
                        self.lost().await;
                        return Outcome::Retry(Duration::ZERO);
                    }
                },
                ev = events.recv() => match ev {
                    Some(ClientEvent::Event { name, args }) => {
                        if let Some(outcome) = self.on_event(&name, &args, session, userid, student_userid).await {
                            return outcome;
                        }
                    }
                    _ => {
                        self.lost().await;
                        return Outcome::Retry(self.backoff.next_delay());
                    }
                },
                _ = tick.tick() => {
                    if let Some(outcome) = self.on_tick(session).await {
                        return outcome;
                    }
                }
            }
        }
    }

    async fn on_event(
        &mut self,
        name: &str,
        args: &[Value],
        session: &MediaSession,
        userid: &str,
        student_userid: &str,
    ) -> Option<Outcome> {
        let poll = self.ctx.config.timing.poll_off_air;
        if name == self.ctx.config.msg_event {
            let env = args.first()?;
            if env.get("remoteUserId").and_then(Value::as_str) != Some(userid)
                || env.get("sender").and_then(Value::as_str) != Some(student_userid)
            {
                return None;
            }
            let message = env.get("message")?;
            if let Some(c) = crate::signal::protocol::candidate_init(message) {
                if let Err(e) = session.add_remote_candidate(c).await {
                    tracing::debug!(student = %self.id, "remote candidate refused: {e}");
                }
                return None;
            }
            let stream_ended = message.get("streamSyncNeeded").is_some()
                && matches!(
                    message.get("action").and_then(Value::as_str),
                    Some("ended" | "inactive")
                );
            if message.get("userLeft").and_then(Value::as_bool) == Some(true) || stream_ended {
                self.set_state(StreamState::Left).await;
                return Some(Outcome::Retry(poll));
            }
        } else if name == CODE_CONFLICT {
            let code = args
                .first()
                .and_then(|a| a.get("code"))
                .and_then(Value::as_str);
            let quiet = self
                .last_conflict
                .is_some_and(|t| t.elapsed() < CONFLICT_EVERY);
            if code == Some(self.code.as_str()) && !quiet {
                self.last_conflict = Some(Instant::now());
                tracing::warn!(student = %self.id, "another device tried to go live on this student's code");
                self.ctx
                    .emit(EngineEvent::CodeConflict {
                        student: self.id.clone(),
                        at: SystemTime::now(),
                    })
                    .await;
            }
        } else if name == USER_DISCONNECTED {
            if args.first().and_then(Value::as_str) == Some(student_userid) {
                self.set_state(StreamState::Left).await;
                return Some(Outcome::Retry(poll));
            }
        } else if name == EXTRA_DATA_UPDATED {
            if args.first().and_then(Value::as_str) != Some(student_userid) {
                return None;
            }
            let extra = args.get(1)?;
            match self.dedup.accept(extra)? {
                Incoming::Chat(text) => {
                    self.ctx
                        .emit(EngineEvent::Chat {
                            student: self.id.clone(),
                            from: Party::Student,
                            text,
                            at: SystemTime::now(),
                        })
                        .await;
                }
                Incoming::Attention { msg_id, .. } => {
                    self.attention_id = msg_id;
                    self.ctx
                        .emit(EngineEvent::Attention {
                            student: self.id.clone(),
                            from: Party::Student,
                            raised: true,
                            at: SystemTime::now(),
                        })
                        .await;
                }
            }
        }
        None
    }

    async fn on_tick(&mut self, session: &MediaSession) -> Option<Outcome> {
        let timing = &self.ctx.config.timing;
        match session.last_rtp() {
            Some(t) => {
                let quiet = t.elapsed();
                if quiet < timing.stall_after {
                    self.set_state(StreamState::Live).await;
                } else if quiet < timing.rejoin_after {
                    let last = SystemTime::now()
                        .checked_sub(quiet)
                        .unwrap_or_else(SystemTime::now);
                    self.set_state_at(StreamState::Stalled, last).await;
                } else {
                    self.lost().await;
                    return Some(Outcome::Retry(Duration::ZERO));
                }
            }
            None if session.started().elapsed() > timing.media_timeout => {
                tracing::debug!(student = %self.id, "no media within {:?}", timing.media_timeout);
                self.lost().await;
                return Some(Outcome::Retry(Duration::ZERO));
            }
            None => {}
        }
        let stats = session.take_stats();
        if matches!(self.state, Some(StreamState::Live | StreamState::Stalled)) {
            self.ctx
                .emit(EngineEvent::Stats {
                    student: self.id.clone(),
                    stats,
                })
                .await;
        }
        None
    }

    /// Wait `how_long` on an idle socket (off-air polling), serving
    /// commands.
    async fn idle(
        &mut self,
        link: &Link<'_>,
        events: &mut mpsc::Receiver<ClientEvent>,
        how_long: Duration,
    ) -> Idle {
        let sleep = tokio::time::sleep(how_long);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Idle::Elapsed,
                _ = self.cancel.cancelled() => return Idle::Shutdown,
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => self.command(cmd, Some(link)).await,
                    None => return Idle::Shutdown,
                },
                ev = events.recv() => match ev {
                    Some(ClientEvent::Event { .. }) => {}
                    _ => return Idle::SocketLost,
                },
            }
        }
    }

    async fn command(&mut self, cmd: StudentCmd, link: Option<&Link<'_>>) {
        match cmd {
            StudentCmd::Visible(v) => {
                self.visible = v;
                if let Some(s) = link.and_then(|l| l.session) {
                    s.set_visible(v);
                }
            }
            StudentCmd::FullResolution(full) => {
                self.full_res = full;
                if let Some(s) = link.and_then(|l| l.session) {
                    s.set_full_resolution(full);
                    s.request_keyframe();
                }
                self.extra.insert(
                    EXTRA_QUALITY.into(),
                    json!(if full { "high" } else { "low" }),
                );
                if let Some(l) = link.filter(|l| l.joined) {
                    let _ = self.send_extra(l.client).await;
                }
            }
            StudentCmd::Chat(text) => {
                let text = super::student::plain_text(&text);
                self.msg_id += 1;
                self.extra.insert("message".into(), json!(text));
                self.extra.insert("attention".into(), json!(""));
                self.extra.insert(EXTRA_MSG_ID.into(), json!(self.msg_id));
                if self.deliver(link, "chat line").await {
                    self.ctx
                        .emit(EngineEvent::Chat {
                            student: self.id.clone(),
                            from: Party::Proctor,
                            text,
                            at: SystemTime::now(),
                        })
                        .await;
                }
            }
            StudentCmd::RaiseAttention => {
                self.msg_id += 1;
                let text = format!(
                    "Proctor asks for your attention ({})",
                    utc_hms(SystemTime::now())
                );
                self.extra.insert("message".into(), json!(""));
                self.extra.insert("attention".into(), json!(text));
                self.extra.insert(EXTRA_MSG_ID.into(), json!(self.msg_id));
                if self.deliver(link, "attention request").await {
                    self.attention_event(true).await;
                }
            }
            StudentCmd::AckAttention => {
                self.extra.insert(
                    EXTRA_ATTENTION_ACK.into(),
                    json!(self.attention_id.unwrap_or(0)),
                );
                // Acknowledging is useful even when the student is gone:
                // the dashboard clears its alert either way.
                let _ = self.deliver(link, "").await;
                self.attention_event(false).await;
            }
            StudentCmd::ReleaseCode => self.release_code(link).await,
        }
    }

    /// Ask our server to take the code away from whoever publishes it.
    async fn release_code(&self, link: Option<&Link<'_>>) {
        let Some(l) = link else {
            self.ctx
                .notice(format!(
                    "{}: not connected to the server, nothing released",
                    self.id
                ))
                .await;
            return;
        };
        let arg = json!({ "code": self.code });
        let answer = l
            .client
            .emit_with_ack(RELEASE_CODE, vec![arg], self.ctx.config.timing.ack_timeout)
            .await;
        let text = match answer {
            Ok(a) if a.first() == Some(&json!(true)) => format!(
                "{}: code released, the device that held it is disconnected and kept off it; the student can go live again",
                self.id
            ),
            Ok(a) => format!(
                "{}: code not released: {}",
                self.id,
                a.get(1).and_then(Value::as_str).unwrap_or("refused")
            ),
            Err(_) => format!(
                "{}: code not released: the server did not answer (the stock server cannot release codes)",
                self.id
            ),
        };
        self.ctx.notice(text).await;
    }

    async fn attention_event(&self, raised: bool) {
        self.ctx
            .emit(EngineEvent::Attention {
                student: self.id.clone(),
                from: Party::Proctor,
                raised,
                at: SystemTime::now(),
            })
            .await;
    }

    /// Send our extra to the student if the room is joined; otherwise tell
    /// the proctor (when `what` is not empty) that it was not delivered.
    async fn deliver(&self, link: Option<&Link<'_>>, what: &str) -> bool {
        let sent = match link.filter(|l| l.joined) {
            Some(l) => self.send_extra(l.client).await,
            None => false,
        };
        if !sent && !what.is_empty() {
            self.ctx
                .notice(format!(
                    "{what} not delivered: {} is not streaming right now",
                    self.id
                ))
                .await;
        }
        sent
    }

    async fn send_extra(&self, client: &SignalClient) -> bool {
        client
            .emit(EXTRA_DATA_UPDATED, vec![Value::Object(self.extra.clone())])
            .await
            .is_ok()
    }
}

/// Ack wait for the first `join-room` on a fresh socket. socketioxide sends
/// the namespace CONNECT before the server's handlers are installed, so an
/// event sent at once can be dropped unanswered; asking again soon (joining
/// twice is harmless) beats waiting the whole ack timeout.
const FIRST_JOIN_WAIT: Duration = Duration::from_millis(1500);

/// `join-room` with the student's code; on a fresh socket, asked a second
/// time if the first gets no answer quickly.
async fn join_room(
    client: &SignalClient,
    code: &str,
    fresh_socket: bool,
    ack_timeout: Duration,
) -> Result<Vec<Value>> {
    if fresh_socket {
        let wait = FIRST_JOIN_WAIT.min(ack_timeout);
        if let Ok(args) = client
            .emit_with_ack(JOIN_ROOM, vec![join_room_payload(code)], wait)
            .await
        {
            return Ok(args);
        }
    }
    client
        .emit_with_ack(JOIN_ROOM, vec![join_room_payload(code)], ack_timeout)
        .await
}

/// The `join-room` argument as RTCMultiConnection 3.7's viewer sends it.
fn join_room_payload(code: &str) -> Value {
    json!({
        "sessionid": code,
        "session": {"audio": true, "video": true, "oneway": true},
        "mediaConstraints": {
            "audio": {"mandatory": {}, "optional": []},
            "video": {"mandatory": {}, "optional": [{"facingMode": "user"}]},
        },
        "sdpConstraints": {
            "mandatory": {"OfferToReceiveAudio": true, "OfferToReceiveVideo": true},
            "optional": [{"VoiceActivityDetection": false}],
        },
        "streams": [],
        "extra": {},
        "password": "",
    })
}

/// A userid like RTCMultiConnection's (random, base 36), marked as ours.
fn new_userid() -> String {
    let n: u64 = rand::random();
    let mut s = String::from("proctor-");
    let mut n = n;
    while n > 0 {
        let d = (n % 36) as u32;
        s.push(char::from_digit(d, 36).unwrap_or('0'));
        n /= 36;
    }
    s
}

/// "HH:MM:SS" in UTC.
fn utc_hms(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_parse_from_the_library_shape() {
        let m = json!({"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
        let c = crate::signal::protocol::candidate_init(&m).unwrap();
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_mline_index, Some(0));
        assert!(crate::signal::protocol::candidate_init(&json!({"type": "offer"})).is_none());
        assert!(crate::signal::protocol::candidate_init(&json!({"candidate": ""})).is_none());
    }

    #[test]
    fn loopback_servers_are_recognised() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(server_is_loopback(&u("http://127.0.0.1:9001/")));
        assert!(server_is_loopback(&u("http://localhost:9001/")));
        assert!(server_is_loopback(&u("http://[::1]:9001/")));
        assert!(!server_is_loopback(&u("https://proctor.example.org/")));
    }

    #[test]
    fn userids_are_fresh() {
        let a = new_userid();
        assert!(a.starts_with("proctor-") && a.len() > 10);
        assert_ne!(a, new_userid());
        assert_eq!(
            utc_hms(SystemTime::UNIX_EPOCH + Duration::from_secs(3661)),
            "01:01:01 UTC"
        );
    }
}
