//! The terminal dashboard.
//!
//! # Data flow
//!
//! 1. Producers (tokio tasks) send [`Msg`]s into one channel: the crossterm
//!    `EventStream` (keys, mouse, paste, resize), the engine's events, a
//!    250 ms tick and SIGTERM/SIGHUP/SIGINT.
//! 2. The loop drains the channel (`recv_many`), feeds each message to
//!    [`App::update`] and carries out the returned [`Command`]s: engine
//!    requests, bell and notifications, file writes, suspend, quit.
//! 3. It draws only when something changed, at most `max_fps` times a
//!    second. Pictures are pulled from [`FrameSlots`] at draw time, never
//!    queued; each tile is repainted no more often than the [`Pacer`] allows
//!    for the measured throughput of the terminal link.
//! 4. The terminal is restored on every way out: return, error, panic
//!    (hook), signals, and around Ctrl-Z.
//!
//! # Layout
//!
//! - [`app`]: the state and `update`; [`msg`]: Msg, Action, Command;
//!   [`keymap`]: keys to actions; [`input`]: line editing.
//! - [`view`]: drawing (grid, tile, thumbnail, chat, off-air list, help,
//!   enlarged view, header/footer) and the shared [`view::layout`].
//! - [`halfblock`]: pictures to half-block cells (the default, works over
//!   ssh and tmux); [`kitty`]: the kitty graphics protocol
//!   (`--graphics kitty`); [`pacer`]: throughput
//!   metering and adaptation; [`theme`]: semantic styles from TOML;
//!   [`notify`]: bell, OSC 9/777, desktop; [`sanitize`]: network text.
//! - [`fake`]: a fake engine for tests, benchmarks and development.

pub mod app;
pub mod fake;
pub mod halfblock;
pub mod input;
pub mod keymap;
pub mod kitty;
pub mod msg;
pub mod notify;
pub mod pacer;
pub mod sanitize;
pub mod theme;
pub mod view;

use std::io::{BufWriter, Stdout, Write};
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream,
};
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::crossterm::{cursor, execute};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use app::{App, AppOptions};
pub use msg::{Action, Command, Msg};
pub use notify::NotifySwitches;
pub use pacer::{Meter, MeteredWriter, Pacer};
pub use theme::Theme;
pub use view::ColorDepth;

use crate::cli::{GraphicsMode, MonitorArgs};
use crate::proctor::{EngineCommand, EngineEvent, EngineHandle, FrameSlots};
use crate::roster::Roster;
use crate::{Error, Result};
use halfblock::Quantiser;
use view::{DrawCtx, ThumbCache};

/// Everything the dashboard is told at start.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    pub theme: Theme,
    /// Requested picture mode (`--graphics`).
    pub graphics: GraphicsMode,
    /// Colour depth; `None` detects it from COLORTERM.
    pub color: Option<ColorDepth>,
    pub notify: NotifySwitches,
    pub snapshot_dir: PathBuf,
    /// Where the off-air CSV goes.
    pub export_dir: PathBuf,
    /// Most screen updates per second.
    pub max_fps: f64,
    /// Most repaints per second of one tile.
    pub tile_fps: f64,
    /// Key bindings (defaults, plus the user's keys.toml).
    pub keymap: keymap::Keymap,
    /// Shown in the footer at start (e.g. where students connect).
    pub startup_notice: Option<String>,
    /// Benchmark knobs (from RTCPROCTOR_DASH_BENCH).
    pub bench: BenchOptions,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            theme: Theme::default(),
            graphics: GraphicsMode::Auto,
            color: None,
            notify: NotifySwitches::default(),
            snapshot_dir: default_snapshot_dir(),
            export_dir: PathBuf::from("."),
            max_fps: 12.0,
            tile_fps: 10.0,
            keymap: keymap::Keymap::default(),
            startup_notice: None,
            bench: BenchOptions::default(),
        }
    }
}

impl DashboardOptions {
    /// Options from `monitor`'s flags (theme file errors are reported here,
    /// before the terminal is taken over).
    pub fn from_monitor_args(args: &MonitorArgs) -> Result<Self> {
        let d = &args.dashboard;
        Ok(DashboardOptions {
            theme: Theme::load(&args.theme)?,
            graphics: args.graphics,
            notify: NotifySwitches {
                bell: !d.no_bell,
                osc: !d.no_osc_notify,
                desktop: !d.no_desktop_notify,
                flash: !d.no_flash,
            },
            snapshot_dir: d.snapshot_dir.clone().unwrap_or_else(default_snapshot_dir),
            keymap: load_keymap()?,
            bench: BenchOptions::from_env()?,
            ..DashboardOptions::default()
        })
    }
}

/// Knobs for measuring the dashboard (`RTCPROCTOR_DASH_BENCH`, comma
/// separated): `full_redraw` (repaint every cell every frame), `exact`
/// (no colour quantisation or hysteresis), `no_draw` (run everything but
/// drawing, to measure the fake engine's own cost), `link_kbit=N` (emulate a
/// slow link), `seconds=N` (quit after N s), `report=PATH` (write a JSON
/// summary).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchOptions {
    pub full_redraw: bool,
    pub exact: bool,
    pub no_draw: bool,
    pub link_kbit: Option<u64>,
    pub seconds: Option<f64>,
    pub report: Option<PathBuf>,
}

impl BenchOptions {
    pub fn from_env() -> Result<Self> {
        match std::env::var("RTCPROCTOR_DASH_BENCH") {
            Ok(s) => BenchOptions::parse(&s),
            Err(_) => Ok(BenchOptions::default()),
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        let mut b = BenchOptions::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = || {
                Error::Invalid(format!(
                    "RTCPROCTOR_DASH_BENCH: cannot use \"{item}\": expected full_redraw, exact, \
                     no_draw, link_kbit=N, seconds=N or report=PATH"
                ))
            };
            match item.split_once('=') {
                None if item == "full_redraw" => b.full_redraw = true,
                None if item == "exact" => b.exact = true,
                None if item == "no_draw" => b.no_draw = true,
                Some(("link_kbit", v)) => b.link_kbit = Some(v.parse().map_err(|_| bad())?),
                Some(("seconds", v)) => b.seconds = Some(v.parse().map_err(|_| bad())?),
                Some(("report", v)) => b.report = Some(PathBuf::from(v)),
                _ => return Err(bad()),
            }
        }
        Ok(b)
    }
}

/// The default keymap with `$XDG_CONFIG_HOME/rtcproctor/keys.toml` over it
/// (`"ctrl-x" = "quit"` lines; actions are named as in [`Action`]).
pub fn load_keymap() -> Result<keymap::Keymap> {
    let Some(path) = directories::ProjectDirs::from("", "", "rtcproctor")
        .map(|d| d.config_dir().join("keys.toml"))
        .filter(|p| p.exists())
    else {
        return Ok(keymap::Keymap::default());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
    let table: std::collections::HashMap<String, Action> = toml::from_str(&text).map_err(|e| {
        Error::Invalid(format!(
            "{}: {e}\nwrite lines like \"ctrl-x\" = \"quit\" (actions: left, right, up, down, \
             page_up, page_down, first, last, enlarge, back, chat, raise_attention, acknowledge, \
             next_attention, off_air_list, filter, snapshot, help, quit)",
            path.display()
        ))
    })?;
    keymap::Keymap::default()
        .with_overrides(&table)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// `$XDG_DATA_HOME/rtcproctor/snapshots` (or the platform equivalent).
pub fn default_snapshot_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "rtcproctor")
        .map(|d| d.data_dir().join("snapshots"))
        .unwrap_or_else(|| PathBuf::from("snapshots"))
}

/// `monitor --fake-engine N`: the dashboard on the fake engine, with the
/// roster file's students (extended with generated ones up to N).
pub async fn run_fake_monitor(args: MonitorArgs) -> Result<()> {
    let live = args.dashboard.fake_engine.unwrap_or(6);
    let mut roster = match &args.roster {
        Some(path) => Roster::load(path)?,
        None => Roster::default(),
    };
    let extra = fake::roster(live.saturating_sub(roster.len()) + roster.len());
    for s in extra.students {
        if roster.len() >= live {
            break;
        }
        if !roster
            .students
            .iter()
            .any(|r| r.id == s.id || r.code == s.code)
        {
            roster.students.push(s);
        }
    }
    let opts = DashboardOptions::from_monitor_args(&args)?;
    let handle = fake::spawn(
        roster,
        fake::FakeConfig {
            live,
            ..fake::FakeConfig::default()
        },
    );
    run_dashboard(handle, opts).await
}

type Backend = CrosstermBackend<MeteredWriter<BufWriter<Stdout>>>;

/// The terminal in dashboard mode; leaving it (drop) restores the terminal.
struct Term {
    terminal: Terminal<Backend>,
    active: bool,
}

impl Term {
    fn enter(meter: Arc<Meter>, link_kbit: Option<u64>) -> Result<Term> {
        install_panic_hook();
        let mut writer =
            MeteredWriter::new(BufWriter::with_capacity(1 << 16, std::io::stdout()), meter);
        if let Some(k) = link_kbit {
            writer = writer.with_link_limit(k * 1000);
        }
        let terminal = Terminal::new(CrosstermBackend::new(writer))
            .map_err(|e| Error::Other(anyhow::anyhow!("cannot use the terminal: {e}")))?;
        let mut t = Term {
            terminal,
            active: false,
        };
        t.resume()?;
        Ok(t)
    }

    fn resume(&mut self) -> Result<()> {
        enable_raw_mode().map_err(|e| {
            Error::Other(anyhow::anyhow!(
                "cannot switch the terminal to raw mode ({e}); run the dashboard in a terminal, \
                 or use --headless"
            ))
        })?;
        self.active = true;
        set_ui_thread(true);
        let w = self.terminal.backend_mut();
        execute!(
            w,
            EnterAlternateScreen,
            EnableMouseCapture,
            EnableBracketedPaste,
            cursor::Hide
        )
        .map_err(|e| Error::Other(anyhow::anyhow!("cannot set up the terminal: {e}")))?;
        self.repaint_all()
            .map_err(|e| Error::Other(anyhow::anyhow!("cannot clear the terminal: {e}")))
    }

    /// Clear the screen and forget what is on it, so the next draw sends
    /// every cell. (`Terminal::clear` would ask the terminal for the cursor
    /// position, and the input task eats the answer.)
    fn repaint_all(&mut self) -> std::io::Result<()> {
        let (w, h) = self.size();
        self.terminal.resize(ratatui::layout::Rect::new(0, 0, w, h))
    }

    fn leave(&mut self) {
        if self.active {
            self.active = false;
            set_ui_thread(false);
            let w = self.terminal.backend_mut();
            let _ = execute!(
                w,
                DisableBracketedPaste,
                DisableMouseCapture,
                LeaveAlternateScreen,
                cursor::Show
            );
            let _ = w.flush();
            let _ = disable_raw_mode();
        }
    }

    fn size(&self) -> (u16, u16) {
        self.terminal
            .size()
            .map(|s| (s.width, s.height))
            .unwrap_or((80, 24))
    }

    /// Write raw bytes (bell, OSC notifications).
    fn write_raw(&mut self, bytes: &[u8]) {
        let w = self.terminal.backend_mut();
        let _ = w.write_all(bytes);
        let _ = w.flush();
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The thread that draws, while the dashboard owns the terminal.
static UI_THREAD: std::sync::Mutex<Option<std::thread::ThreadId>> = std::sync::Mutex::new(None);

fn set_ui_thread(active: bool) {
    if let Ok(mut t) = UI_THREAD.lock() {
        *t = active.then(|| std::thread::current().id());
    }
}

/// Panics while the dashboard owns the terminal.
///
/// On the drawing thread: restore the terminal first, so the panic report is
/// readable and the shell is not left in raw mode. On other threads (a task
/// of the engine, say) the dashboard keeps running: the report goes to the
/// log file instead of tearing the screen.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ui = UI_THREAD.lock().ok().and_then(|t| *t);
            match ui {
                Some(id) if id != std::thread::current().id() => {
                    tracing::error!(
                        "panic in a background task: {info}\n{}",
                        std::backtrace::Backtrace::force_capture()
                    );
                }
                Some(_) => {
                    let mut out = std::io::stdout();
                    let _ = execute!(
                        out,
                        DisableBracketedPaste,
                        DisableMouseCapture,
                        LeaveAlternateScreen,
                        cursor::Show
                    );
                    let _ = disable_raw_mode();
                    set_ui_thread(false);
                    previous(info);
                }
                None => previous(info),
            }
        }));
    });
}

/// Run the dashboard until the proctor quits, the process is told to stop,
/// or the terminal goes away.
pub async fn run_dashboard(handle: EngineHandle, opts: DashboardOptions) -> Result<()> {
    let EngineHandle {
        events,
        commands,
        frames,
        roster,
    } = handle;
    let meter = Arc::new(Meter::default());
    let mut term = Term::enter(meter.clone(), opts.bench.link_kbit)?;
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::channel::<Msg>(4096);
    spawn_producers(events, tx, cancel.clone());

    let depth = opts.color.unwrap_or_else(ColorDepth::detect);
    let app_options = AppOptions {
        bell: opts.notify.bell,
        osc_notify: opts.notify.osc,
        desktop_notify: opts.notify.desktop && notify::local_desktop(),
        flash: opts.notify.flash,
        snapshot_dir: opts.snapshot_dir.clone(),
        export_dir: opts.export_dir.clone(),
    };
    let mut app = App::new(&roster, term.size(), SystemTime::now(), app_options);
    app.set_keymap(opts.keymap.clone());
    if let Some(text) = &opts.startup_notice {
        app.set_notice(text, false);
    }
    let use_kitty = opts.graphics == GraphicsMode::Kitty;
    match opts.graphics {
        GraphicsMode::Auto | GraphicsMode::Halfblocks | GraphicsMode::Kitty => {}
        other => app.set_notice(
            &format!(
                "--graphics {} is not available yet: drawing with half-blocks",
                format!("{other:?}").to_lowercase()
            ),
            false,
        ),
    }
    let mut lp = Loop {
        term: &mut term,
        commands,
        frames,
        meter,
        thumbs: ThumbCache::new(if opts.bench.exact {
            Quantiser::OFF
        } else {
            Quantiser::default()
        }),
        pacer: Pacer::for_environment(opts.tile_fps),
        depth,
        theme: opts.theme.clone(),
        in_tmux: std::env::var_os("TMUX").is_some(),
        stats: BenchStats::default(),
        last_size: None,
    };
    if use_kitty {
        lp.thumbs.kitty = Some(view::thumbnail::KittyState::new(kitty::cell_pixels()));
    }
    let started = Instant::now();
    let result = lp.run(&mut app, rx, &opts).await;
    if use_kitty {
        lp.term.write_raw(kitty::DELETE_ALL);
    }
    cancel.cancel();
    let elapsed = started.elapsed();
    let stats = lp.stats.clone();
    term.leave();
    if let Some(path) = &opts.bench.report {
        write_report(path, &stats, elapsed)?;
    }
    result
}

/// Counters for the benchmark report.
#[derive(Debug, Clone, Default)]
struct BenchStats {
    bytes: u64,
    draws: u64,
    repaints: u64,
    visible: usize,
    throughput: f64,
    /// Wall time of each draw (diff + write), for the latency figures.
    draw_times: Vec<Duration>,
}

fn write_report(path: &std::path::Path, s: &BenchStats, elapsed: Duration) -> Result<()> {
    let bytes = s.bytes;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let cpu = process_cpu_seconds();
    let mut times = s.draw_times.clone();
    times.sort();
    let pct = |p: f64| -> f64 {
        if times.is_empty() {
            return 0.0;
        }
        let i = ((times.len() - 1) as f64 * p).round() as usize;
        times[i].as_secs_f64() * 1000.0
    };
    let json = serde_json::json!({
        "seconds": secs,
        "bytes": bytes,
        "bytes_per_sec": bytes as f64 / secs,
        "draws": s.draws,
        "draws_per_sec": s.draws as f64 / secs,
        "tile_repaints_per_sec": s.repaints as f64 / secs,
        "visible_tiles": s.visible,
        "cpu_seconds": cpu,
        "cpu_percent": cpu.map(|c| 100.0 * c / secs),
        "link_estimate_bytes_per_sec": s.throughput,
        "draw_ms_p50": pct(0.5),
        "draw_ms_p95": pct(0.95),
        "draw_ms_max": pct(1.0),
    });
    std::fs::write(path, format!("{json}\n")).map_err(|e| Error::file(path, e))
}

/// User + system CPU time of this process (Linux /proc; None elsewhere).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn spawn_producers(
    mut events: mpsc::Receiver<EngineEvent>,
    tx: mpsc::Sender<Msg>,
    cancel: CancellationToken,
) {
    // Terminal input.
    let (t, c) = (tx.clone(), cancel.clone());
    tokio::spawn(async move {
        let mut stream = EventStream::new();
        loop {
            let ev = tokio::select! {
                _ = c.cancelled() => break,
                ev = stream.next() => ev,
            };
            let msg = match ev {
                Some(Ok(Event::Key(k))) => Msg::Key(k),
                Some(Ok(Event::Mouse(m))) => Msg::Mouse(m),
                Some(Ok(Event::Paste(p))) => Msg::Paste(p),
                Some(Ok(Event::Resize(w, h))) => Msg::Resize(w, h),
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::warn!("terminal input failed: {e}");
                    Msg::Terminate
                }
                None => Msg::Terminate,
            };
            let stop = matches!(msg, Msg::Terminate);
            if t.send(msg).await.is_err() || stop {
                break;
            }
        }
    });
    // Engine events.
    let (t, c) = (tx.clone(), cancel.clone());
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                _ = c.cancelled() => return,
                ev = events.recv() => ev,
            };
            let msg = match ev {
                Some(ev) => Msg::Engine(ev),
                None => {
                    let _ = t.send(Msg::EngineClosed).await;
                    return;
                }
            };
            if t.send(msg).await.is_err() {
                return;
            }
        }
    });
    // Clock.
    let (t, c) = (tx.clone(), cancel.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = c.cancelled() => return,
                _ = tick.tick() => {}
            }
            if t.send(Msg::Tick(SystemTime::now())).await.is_err() {
                return;
            }
        }
    });
    // Signals.
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(Msg::Terminate).await;
    });
}

/// The loop's working set.
struct Loop<'t> {
    term: &'t mut Term,
    commands: mpsc::Sender<EngineCommand>,
    frames: FrameSlots,
    meter: Arc<Meter>,
    thumbs: ThumbCache,
    pacer: Pacer,
    depth: ColorDepth,
    theme: Theme,
    in_tmux: bool,
    stats: BenchStats,
    /// Terminal size at the last draw (a change clears kitty images).
    last_size: Option<(u16, u16)>,
}

impl Loop<'_> {
    async fn run(
        &mut self,
        app: &mut App,
        mut rx: mpsc::Receiver<Msg>,
        opts: &DashboardOptions,
    ) -> Result<()> {
        let min_gap = Duration::from_secs_f64(1.0 / opts.max_fps.max(1.0));
        let mut last_draw: Option<Instant> = None;
        let end = opts
            .bench
            .seconds
            .map(|s| Instant::now() + Duration::from_secs_f64(s));
        let mut batch = Vec::with_capacity(512);
        let start_cmds = app.start();
        if self.dispatch(app, start_cmds).await? {
            return Ok(());
        }
        loop {
            let now = Instant::now();
            let earliest = last_draw.map_or(now, |l| l + min_gap);
            let wake = if app.dirty {
                Some(earliest)
            } else {
                self.thumbs.deferred.map(|d| d.max(earliest))
            };
            let far = now + Duration::from_secs(3600);
            tokio::select! {
                n = rx.recv_many(&mut batch, 512) => {
                    if n == 0 {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep_until(wake.unwrap_or(far).into()), if wake.is_some() => {}
                _ = tokio::time::sleep_until(end.unwrap_or(far).into()), if end.is_some() => return Ok(()),
            }
            // A key answers at once: the frame-rate cap is for pictures, and
            // waiting for it added up to 1/max_fps to every key press.
            let mut typed = false;
            for msg in batch.drain(..) {
                typed |= matches!(msg, Msg::Key(_) | Msg::Paste(_) | Msg::Resize(..));
                let cmds = app.update(msg);
                if self.dispatch(app, cmds).await? {
                    return Ok(());
                }
            }
            let now = Instant::now();
            let due = app.dirty || self.thumbs.deferred.is_some_and(|d| d <= now);
            if due && opts.bench.no_draw {
                app.dirty = false;
            } else if due && (typed || last_draw.is_none_or(|l| now >= l + min_gap)) {
                self.draw(app, opts.bench.full_redraw)?;
                last_draw = Some(now);
            }
        }
    }

    fn draw(&mut self, app: &mut App, full_redraw: bool) -> Result<()> {
        let now = Instant::now();
        let (b0, t0) = self.meter.totals();
        let visible = if app.enlarged.is_some() {
            1
        } else {
            app.page().2.len()
        };
        self.thumbs.interval = self.pacer.tile_interval(visible);
        let term_err =
            |e: std::io::Error| Error::Other(anyhow::anyhow!("cannot draw on the terminal: {e}"));
        if full_redraw {
            self.term.repaint_all().map_err(term_err)?;
            self.thumbs.forget_images();
        }
        let size = self.term.size();
        if self.last_size != Some(size) {
            // A resize clears the screen, and with it the images.
            self.last_size = Some(size);
            self.thumbs.forget_images();
        }
        if let Some(k) = &mut self.thumbs.kitty {
            // Images would cover pop-ups: draw half-blocks under them.
            k.allowed = app.overlay == app::Overlay::None;
        }
        let mut ctx = DrawCtx {
            theme: &self.theme,
            frames: &self.frames,
            thumbs: &mut self.thumbs,
            depth: self.depth,
            now,
        };
        let terminal = &mut self.term.terminal;
        let app_ref: &App = app;
        let mut draw = || {
            terminal
                .draw(|f| view::draw(f, app_ref, &mut ctx))
                .map(|_| ())
        };
        let r = if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(draw)
        } else {
            draw()
        };
        r.map_err(term_err)?;
        let images = self.thumbs.take_output();
        if !images.is_empty() {
            self.term.write_raw(&images);
        }
        app.dirty = false;
        let (b1, t1) = self.meter.totals();
        self.pacer
            .record(now, b1 - b0, t1 - t0, self.thumbs.repaints);
        tracing::trace!(
            bytes = b1 - b0,
            blocked_ms = (t1 - t0).as_secs_f64() * 1000.0,
            repaints = self.thumbs.repaints,
            interval_ms = self.thumbs.interval.as_secs_f64() * 1000.0,
            link_estimate = self.pacer.throughput() as u64,
            "draw"
        );
        self.stats.bytes = b1;
        self.stats.draws += 1;
        self.stats.repaints += self.thumbs.repaints as u64;
        self.stats.visible = visible;
        self.stats.throughput = self.pacer.throughput();
        self.stats.draw_times.push(now.elapsed());
        Ok(())
    }

    /// Carry out commands; true means quit.
    async fn dispatch(&mut self, app: &mut App, cmds: Vec<Command>) -> Result<bool> {
        let mut quit = false;
        for cmd in cmds {
            match cmd {
                Command::Engine(c) => self.send_engine(c).await,
                Command::Bell => self.term.write_raw(notify::BELL),
                Command::Notify { title, body } => {
                    if app.options.osc_notify {
                        self.term
                            .write_raw(&notify::osc_sequences(&title, &body, self.in_tmux));
                    }
                    if app.options.desktop_notify {
                        tokio::task::spawn_blocking(move || notify::desktop(&title, &body));
                    }
                }
                Command::WriteFile { path, contents } => {
                    let r = path
                        .parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|_| std::fs::write(&path, contents));
                    if let Err(e) = r {
                        app.set_notice(&format!("cannot write {}: {e}", path.display()), true);
                    }
                }
                Command::Suspend => {
                    self.term.leave();
                    let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTSTP);
                    self.term.resume()?;
                    self.thumbs.forget_images();
                    app.dirty = true;
                }
                Command::Quit => quit = true,
            }
        }
        Ok(quit)
    }

    /// Engine commands keep their order; a full channel waits a moment
    /// rather than dropping a request.
    async fn send_engine(&mut self, cmd: EngineCommand) {
        match self.commands.try_send(cmd) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(cmd)) => {
                let r = tokio::time::timeout(Duration::from_secs(1), self.commands.send(cmd)).await;
                if !matches!(r, Ok(Ok(()))) {
                    tracing::warn!("the engine does not take commands; one was dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!("engine gone; command dropped");
            }
        }
    }
}
