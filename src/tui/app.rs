//! The dashboard's state and its one entry point, [`App::update`].
//!
//! `update` is synchronous and does no I/O: it changes the state, marks the
//! view dirty and returns [`Command`]s for the loop in [`crate::tui`] to
//! carry out. Tests drive it with plain [`Msg`]s and read the state back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;

use super::input::{Edit, LineEditor};
use super::keymap::Keymap;
use super::msg::{Action, Command, Msg};
use super::sanitize;
use super::view::layout::{self, GridGeom, Screen};
use crate::proctor::{EngineCommand, EngineEvent, Party, StreamState, StreamStats, StudentId};
use crate::roster::{Roster, Student};

/// Chat lines kept per student (older ones are dropped from the screen; the
/// session record keeps everything).
pub const CHAT_HISTORY: usize = 500;
/// Snapshot paths remembered per student (the record keeps them all).
const SNAPSHOT_HISTORY: usize = 200;
/// How long a tile keeps its CODE CONFLICT badge after the last report.
pub const CONFLICT_SHOWN_FOR: Duration = Duration::from_secs(30);
/// How long a notice stays in the footer.
pub const NOTICE_FOR: Duration = Duration::from_secs(6);
/// Half period of the attention flash.
pub const FLASH_HALF_PERIOD_MS: u128 = 500;

/// Switches and places the app needs (no I/O is done with them here).
#[derive(Debug, Clone, PartialEq)]
pub struct AppOptions {
    /// Ring the terminal bell when a student asks for attention.
    pub bell: bool,
    /// Desktop notification through the terminal (OSC 9 / OSC 777).
    pub osc_notify: bool,
    /// Desktop notification through the local notification daemon.
    pub desktop_notify: bool,
    /// Flash the tiles of students waiting for attention.
    pub flash: bool,
    /// Where snapshots go.
    pub snapshot_dir: PathBuf,
    /// Where the off-air CSV export goes.
    pub export_dir: PathBuf,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            bell: true,
            osc_notify: true,
            desktop_notify: true,
            flash: true,
            snapshot_dir: PathBuf::from("."),
            export_dir: PathBuf::from("."),
        }
    }
}

/// One chat line, already sanitised.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatLine {
    pub from: Party,
    pub text: String,
    pub at: SystemTime,
}

/// Everything the dashboard knows about one student.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub id: StudentId,
    /// Name if the roster has one, else the ID (sanitised).
    pub name: Option<String>,
    /// Stream code (roster students and unknown publishers).
    pub code: Option<String>,
    /// A publisher whose code is not on the roster.
    pub unknown: bool,
    pub state: StreamState,
    pub since: SystemTime,
    pub stats: Option<StreamStats>,
    /// Chat lines the proctor has not seen.
    pub unread: usize,
    /// Index of the first line that was unread when the chat was opened.
    pub unread_from: Option<usize>,
    /// When the student asked for attention (None: not waiting).
    pub attention_since: Option<SystemTime>,
    /// When this proctor raised attention to the student.
    pub pinged_at: Option<SystemTime>,
    pub chat: Vec<ChatLine>,
    /// The camera shows black or a still picture.
    pub camera: Option<crate::media::camera_check::CameraProblem>,
    /// Snapshot files of this student, oldest first (this run and, after a
    /// resume, the recorded session's).
    pub snapshots: Vec<String>,
    /// When another device last tried to go live on this student's code.
    pub code_conflict: Option<SystemTime>,
    /// When a student who was live stopped being live (None while live,
    /// and for a student not seen live yet).
    away_since: Option<SystemTime>,
}

impl Tile {
    fn new(id: StudentId, name: Option<String>, code: Option<String>, since: SystemTime) -> Self {
        Tile {
            id,
            name,
            code,
            unknown: false,
            state: StreamState::OffAir,
            since,
            stats: None,
            unread: 0,
            unread_from: None,
            attention_since: None,
            pinged_at: None,
            chat: Vec::new(),
            camera: None,
            snapshots: Vec::new(),
            code_conflict: None,
            away_since: None,
        }
    }

    /// What the tile's title shows.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id.0)
    }

    /// True while another device keeps trying this student's code (the
    /// engine repeats the event every ~10 s while it goes on).
    pub fn conflict_active(&self, now: SystemTime) -> bool {
        self.code_conflict
            .is_some_and(|t| now.duration_since(t).unwrap_or_default() < CONFLICT_SHOWN_FOR)
    }

    /// True if the student is not streaming.
    pub fn off_air(&self) -> bool {
        matches!(self.state, StreamState::OffAir | StreamState::Left)
    }

    /// Case-insensitive match of a filter against name, ID and code.
    fn matches(&self, needle: &str) -> bool {
        if needle.is_empty() {
            return true;
        }
        let n = needle.to_lowercase();
        self.id.0.to_lowercase().contains(&n)
            || self
                .name
                .as_ref()
                .is_some_and(|s| s.to_lowercase().contains(&n))
            || self
                .code
                .as_ref()
                .is_some_and(|s| s.to_lowercase().contains(&n))
    }
}

/// A pane over the screen that takes the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    /// The off-air list with its selected row.
    OffAir {
        selected: usize,
    },
    /// "Quit? y/N".
    ConfirmQuit,
    /// "Take this student's code from the device live on it? y/N".
    ConfirmRelease {
        student: usize,
    },
}

/// Where typed keys go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Grid,
    Chat,
    Filter,
}

/// A footer message.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
    pub at: SystemTime,
}

/// The whole state.
pub struct App {
    /// Roster order, then unknown publishers and pasted students as they come.
    pub tiles: Vec<Tile>,
    index: HashMap<StudentId, usize>,
    /// Index into `tiles` of the selected student.
    pub selected: Option<usize>,
    /// Index into `tiles` of the enlarged student.
    pub enlarged: Option<usize>,
    pub chat_open: bool,
    pub focus: Focus,
    pub chat_input: LineEditor,
    pub filter: LineEditor,
    pub overlay: Overlay,
    /// Students waiting for attention, first asked first.
    pub attention_queue: Vec<usize>,
    pub notice: Option<Notice>,
    /// Signalling connection: (connected, detail), once known.
    pub server: Option<(bool, String)>,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// The clock as of the last tick (time labels and flashing use it).
    pub now: SystemTime,
    /// Something on screen changed since the last draw.
    pub dirty: bool,
    /// Set once the proctor confirmed quitting.
    pub quitting: bool,
    pub options: AppOptions,
    /// How pictures are drawn and why ("sixel (detected: DA1 attribute 4)").
    pub graphics: String,
    keymap: Keymap,
    /// Last visibility sent to the engine, to send only changes.
    last_visible: Option<Vec<StudentId>>,
}

impl App {
    /// A dashboard over a roster: every student starts off-air.
    pub fn new(roster: &Roster, size: (u16, u16), now: SystemTime, options: AppOptions) -> Self {
        let mut app = App {
            tiles: Vec::new(),
            index: HashMap::new(),
            selected: None,
            enlarged: None,
            chat_open: false,
            focus: Focus::Grid,
            chat_input: LineEditor::default(),
            filter: LineEditor::default(),
            overlay: Overlay::None,
            attention_queue: Vec::new(),
            notice: None,
            server: None,
            size,
            now,
            dirty: true,
            quitting: false,
            options,
            graphics: "halfblocks".to_string(),
            keymap: Keymap::default(),
            last_visible: None,
        };
        app.add_students(&roster.students);
        app.selected = (!app.tiles.is_empty()).then_some(0);
        app
    }

    /// Use another keymap (from the config file).
    pub fn set_keymap(&mut self, keymap: Keymap) {
        self.keymap = keymap;
    }

    /// The tile of a student.
    pub fn tile(&self, id: &StudentId) -> Option<&Tile> {
        self.index.get(id).map(|&i| &self.tiles[i])
    }

    /// The commands to send once at start (visibility).
    pub fn start(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        self.sync_visible(&mut out);
        out
    }

    /// Apply one message.
    pub fn update(&mut self, msg: Msg) -> Vec<Command> {
        let mut out = Vec::new();
        match msg {
            Msg::Engine(ev) => self.on_engine(ev, &mut out),
            Msg::EngineClosed => {
                self.set_notice(
                    "the monitor engine stopped: see the log file (rtcproctor -v)",
                    true,
                );
            }
            Msg::Key(key) => self.on_key(key, &mut out),
            Msg::Mouse(m) => self.on_mouse(m, &mut out),
            Msg::Paste(text) => self.on_paste(&text, &mut out),
            Msg::Resize(w, h) => {
                self.size = (w, h);
                self.dirty = true;
            }
            Msg::Tick(now) => {
                let second_changed = secs(now) != secs(self.now);
                let flash_changed = self.flash_on_at(now) != self.flash_on();
                self.now = now;
                if let Some(n) = &self.notice
                    && now.duration_since(n.at).unwrap_or_default() > NOTICE_FOR
                {
                    self.notice = None;
                    self.dirty = true;
                }
                if second_changed || (flash_changed && !self.attention_queue.is_empty()) {
                    self.dirty = true;
                }
            }
            Msg::Terminate => self.quit(&mut out),
        }
        self.sync_visible(&mut out);
        out
    }

    // ---- derived views of the state -----------------------------------------

    /// Indices of the tiles that pass the filter, in display order.
    pub fn filtered(&self) -> Vec<usize> {
        let needle = self.filter.text();
        (0..self.tiles.len())
            .filter(|&i| self.tiles[i].matches(&needle))
            .collect()
    }

    /// The screen split for the current size.
    pub fn screen(&self) -> Screen {
        layout::screen(Rect::new(0, 0, self.size.0, self.size.1), self.chat_open)
    }

    /// The grid geometry for the current size and filter.
    pub fn grid(&self, count: usize) -> GridGeom {
        layout::grid(self.screen().main, count)
    }

    /// The page shown: (page index, page count, tile indices on it).
    pub fn page(&self) -> (usize, usize, Vec<usize>) {
        let list = self.filtered();
        let per = self.grid(list.len()).per_page();
        let pos = self
            .selected
            .and_then(|s| list.iter().position(|&i| i == s))
            .unwrap_or(0);
        let page = pos / per;
        let pages = list.len().div_ceil(per).max(1);
        let start = page * per;
        let tiles = list.iter().skip(start).take(per).copied().collect();
        (page, pages, tiles)
    }

    /// Students on screen now.
    pub fn visible(&self) -> Vec<StudentId> {
        if let Some(e) = self.enlarged {
            return vec![self.tiles[e].id.clone()];
        }
        self.page()
            .2
            .into_iter()
            .map(|i| self.tiles[i].id.clone())
            .collect()
    }

    /// The student the chat pane shows.
    pub fn chat_target(&self) -> Option<usize> {
        self.enlarged.or(self.selected)
    }

    /// Whether flashing elements are in their "on" half period.
    pub fn flash_on(&self) -> bool {
        self.flash_on_at(self.now)
    }

    fn flash_on_at(&self, t: SystemTime) -> bool {
        !self.options.flash || (millis(t) / FLASH_HALF_PERIOD_MS).is_multiple_of(2)
    }

    /// Counts for the header: (live, off-air, attention, total).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let live = self
            .tiles
            .iter()
            .filter(|t| t.state == StreamState::Live)
            .count();
        let off = self
            .tiles
            .iter()
            .filter(|t| t.off_air() && !t.unknown)
            .count();
        (live, off, self.attention_queue.len(), self.tiles.len())
    }

    /// Off-air roster students, longest gone first.
    pub fn off_air_list(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.tiles.len())
            .filter(|&i| self.tiles[i].off_air() && !self.tiles[i].unknown)
            .collect();
        v.sort_by_key(|&i| self.tiles[i].since);
        v
    }

    /// The off-air list as CSV (id, name, code, state, since, seconds).
    pub fn off_air_csv(&self) -> String {
        let mut s = String::from("id,name,code,state,since_utc,off_air_seconds\n");
        for i in self.off_air_list() {
            let t = &self.tiles[i];
            let state = match t.state {
                StreamState::Left => "left",
                _ => "off_air",
            };
            let secs = self
                .now
                .duration_since(t.since)
                .unwrap_or_default()
                .as_secs();
            s.push_str(&format!(
                "{},{},{},{},{},{}\n",
                csv_field(&t.id.0),
                csv_field(t.name.as_deref().unwrap_or("")),
                csv_field(t.code.as_deref().unwrap_or("")),
                state,
                utc_timestamp(t.since),
                secs
            ));
        }
        s
    }

    // ---- engine events -------------------------------------------------------

    fn on_engine(&mut self, ev: EngineEvent, out: &mut Vec<Command>) {
        match ev {
            EngineEvent::State {
                student,
                state,
                since,
            } => {
                let i = self.ensure(&student);
                let t = &mut self.tiles[i];
                let was_live = t.state == StreamState::Live;
                t.state = state;
                // A student who drops off goes stalled, reconnecting,
                // joining, off-air as the engine's rejoin attempts move on;
                // the tile and the off-air list keep the moment the stream
                // went away, not the latest of those steps.
                if state == StreamState::Live {
                    t.away_since = None;
                } else if was_live {
                    t.away_since = Some(since);
                }
                t.since = match t.away_since {
                    Some(away) if state != StreamState::Live => away,
                    _ => since,
                };
                if t.off_air() {
                    t.stats = None;
                }
                self.dirty = true;
            }
            EngineEvent::Unknown { student, code } => {
                let i = self.ensure(&student);
                let t = &mut self.tiles[i];
                t.unknown = true;
                t.code = Some(sanitize::label(&code));
                t.name = t.code.clone();
                self.dirty = true;
            }
            EngineEvent::Chat {
                student,
                from,
                text,
                at,
            } => {
                let i = self.ensure(&student);
                let reading = self.chat_open && self.chat_target() == Some(i);
                let t = &mut self.tiles[i];
                t.chat.push(ChatLine {
                    from,
                    text: sanitize::clean(&text),
                    at,
                });
                if t.chat.len() > CHAT_HISTORY {
                    let drop = t.chat.len() - CHAT_HISTORY;
                    t.chat.drain(..drop);
                    t.unread_from = t.unread_from.map(|u| u.saturating_sub(drop));
                }
                if from == Party::Student && !reading {
                    t.unread += 1;
                    let msg = format!("{}: {}", t.label(), sanitize::clean(&text));
                    self.set_notice(&msg, false);
                }
                self.dirty = true;
            }
            EngineEvent::Attention {
                student,
                from,
                raised,
                at,
            } => {
                let i = self.ensure(&student);
                match (from, raised) {
                    (Party::Student, true) => {
                        if self.tiles[i].attention_since.is_none() {
                            self.tiles[i].attention_since = Some(at);
                            self.attention_queue.push(i);
                            self.alert(i, out);
                        }
                    }
                    (Party::Proctor, true) => self.tiles[i].pinged_at = Some(at),
                    // The proctor acknowledged the request.
                    (Party::Proctor, false) => self.clear_attention(i),
                    // The student withdrew the request or saw the ping.
                    (Party::Student, false) => {
                        self.clear_attention(i);
                        self.tiles[i].pinged_at = None;
                    }
                }
                self.dirty = true;
            }
            EngineEvent::Stats { student, stats } => {
                if let Some(&i) = self.index.get(&student) {
                    self.tiles[i].stats = Some(stats);
                    self.dirty |= self.is_visible(i);
                }
            }
            EngineEvent::FrameReady { student } => {
                if let Some(&i) = self.index.get(&student) {
                    self.dirty |= self.is_visible(i);
                }
            }
            EngineEvent::Server { connected, detail } => {
                let detail = sanitize::label(&detail);
                if !connected {
                    self.set_notice(&format!("signalling server lost: {detail}"), true);
                } else if self.server.as_ref().is_some_and(|s| !s.0) {
                    self.set_notice("signalling server back", false);
                }
                self.server = Some((connected, detail));
                self.dirty = true;
            }
            EngineEvent::Snapshot { student, path } => {
                let i = self.ensure(&student);
                let snaps = &mut self.tiles[i].snapshots;
                snaps.push(sanitize::label(&path));
                if snaps.len() > SNAPSHOT_HISTORY {
                    snaps.remove(0);
                }
                self.dirty = true;
                let label = self.tile(&student).map(|t| t.label().to_string());
                let who = label.unwrap_or_else(|| student.0.clone());
                self.set_notice(
                    &format!("snapshot of {who} saved to {}", sanitize::label(&path)),
                    false,
                );
            }
            EngineEvent::Notice { text } => self.set_notice(&sanitize::clean(&text), false),
            EngineEvent::CodeConflict { student, at } => {
                let i = self.ensure(&student);
                let fresh = !self.tiles[i].conflict_active(at);
                self.tiles[i].code_conflict = Some(at);
                if fresh {
                    let who = self.tiles[i].label().to_string();
                    if self.options.bell {
                        out.push(Command::Bell);
                    }
                    if self.options.osc_notify || self.options.desktop_notify {
                        out.push(Command::Notify {
                            title: "rtcproctor: code conflict".into(),
                            body: format!("another device tried to go live on {who}'s code"),
                        });
                    }
                    self.set_notice(
                        &format!(
                            "another device tried to go live on {who}'s code: is the face on the tile {who}?"
                        ),
                        true,
                    );
                }
                self.dirty = true;
            }
            EngineEvent::Camera { student, problem } => {
                let i = self.ensure(&student);
                self.tiles[i].camera = problem;
                if let Some(p) = problem {
                    let what = match p {
                        crate::media::camera_check::CameraProblem::Black => "camera is black",
                        crate::media::camera_check::CameraProblem::Frozen => "picture is frozen",
                    };
                    let msg = format!("{}: {what}", self.tiles[i].label());
                    self.set_notice(&msg, true);
                }
                self.dirty = true;
            }
        }
    }

    /// Bell and notifications for a new attention request.
    fn alert(&mut self, i: usize, out: &mut Vec<Command>) {
        let t = &self.tiles[i];
        let who = match &t.name {
            Some(n) => format!("{n} ({})", t.id),
            None => t.id.0.clone(),
        };
        if self.options.bell {
            out.push(Command::Bell);
        }
        if self.options.osc_notify || self.options.desktop_notify {
            out.push(Command::Notify {
                title: "rtcproctor: attention".into(),
                body: format!("{who} asks for attention"),
            });
        }
        self.set_notice(
            &format!("{who} asks for attention (n: go there, space: acknowledge)"),
            false,
        );
    }

    fn clear_attention(&mut self, i: usize) {
        self.tiles[i].attention_since = None;
        self.attention_queue.retain(|&q| q != i);
    }

    /// The tile of a student, created for students the roster did not have.
    fn ensure(&mut self, id: &StudentId) -> usize {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let label = sanitize::label(&id.0);
        let mut tile = Tile::new(StudentId(label.clone()), None, None, self.now);
        tile.id = id.clone();
        if let Some(code) = label.strip_prefix('?') {
            tile.unknown = true;
            tile.code = Some(code.to_string());
            tile.name = Some(code.to_string());
        }
        self.push_tile(tile)
    }

    fn push_tile(&mut self, tile: Tile) -> usize {
        let i = self.tiles.len();
        self.index.insert(tile.id.clone(), i);
        self.tiles.push(tile);
        if self.selected.is_none() {
            self.selected = Some(i);
        }
        i
    }

    /// Add roster students not yet known; returns how many were new.
    fn add_students(&mut self, students: &[Student]) -> usize {
        let mut added = 0;
        for s in students {
            let id = StudentId(s.id.clone());
            if self.index.contains_key(&id) {
                continue;
            }
            let name = s
                .name
                .as_deref()
                .map(sanitize::label)
                .filter(|n| !n.is_empty());
            let tile = Tile::new(id, name, Some(sanitize::label(&s.code)), self.now);
            self.push_tile(tile);
            added += 1;
        }
        added
    }

    fn is_visible(&self, i: usize) -> bool {
        match self.enlarged {
            Some(e) => e == i,
            None => self.page().2.contains(&i),
        }
    }

    // ---- input ---------------------------------------------------------------

    fn on_key(&mut self, key: KeyEvent, out: &mut Vec<Command>) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        self.dirty = true;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return self.quit(out);
        }
        if ctrl && key.code == KeyCode::Char('z') {
            out.push(Command::Suspend);
            return;
        }
        match self.overlay.clone() {
            Overlay::ConfirmQuit => {
                self.overlay = Overlay::None;
                if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                    self.quit(out);
                }
                return;
            }
            Overlay::ConfirmRelease { student } => {
                self.overlay = Overlay::None;
                if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                    let t = &mut self.tiles[student];
                    t.code_conflict = None;
                    out.push(Command::Engine(EngineCommand::ReleaseCode {
                        student: t.id.clone(),
                    }));
                    let msg = format!("releasing {}'s code…", t.label());
                    self.set_notice(&msg, false);
                }
                return;
            }
            Overlay::Help => {
                self.overlay = Overlay::None;
                return;
            }
            Overlay::OffAir { selected } => return self.off_air_key(key, selected, out),
            Overlay::None => {}
        }
        match self.focus {
            Focus::Filter => self.filter_key(key),
            Focus::Chat => self.chat_key(key, out),
            Focus::Grid => {
                if let Some(action) = self.keymap.action(&key) {
                    self.act(action, out);
                }
            }
        }
    }

    fn filter_key(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Enter => self.focus = Focus::Grid,
            KeyCode::Esc => {
                self.filter.clear();
                self.focus = Focus::Grid;
                self.fix_selection();
            }
            _ => {
                if self.filter.handle_key(&key) == Edit::Changed {
                    self.fix_selection();
                }
            }
        }
    }

    fn chat_key(&mut self, key: KeyEvent, out: &mut Vec<Command>) {
        match key.code {
            KeyCode::Esc => {
                self.chat_open = false;
                self.focus = Focus::Grid;
            }
            KeyCode::Tab | KeyCode::BackTab => self.focus = Focus::Grid,
            KeyCode::Enter => {
                let text = self.chat_input.text().trim().to_string();
                if let Some(i) = self.chat_target()
                    && !text.is_empty()
                {
                    self.chat_input.clear();
                    out.push(Command::Engine(EngineCommand::SendChat {
                        student: self.tiles[i].id.clone(),
                        text,
                    }));
                }
            }
            _ => {
                self.chat_input.handle_key(&key);
            }
        }
    }

    fn off_air_key(&mut self, key: KeyEvent, selected: usize, out: &mut Vec<Command>) {
        let list = self.off_air_list();
        let last = list.len().saturating_sub(1);
        let sel = |s: usize| Overlay::OffAir {
            selected: s.min(last),
        };
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.overlay = sel(selected.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => self.overlay = sel(selected + 1),
            KeyCode::PageUp => self.overlay = sel(selected.saturating_sub(10)),
            KeyCode::PageDown => self.overlay = sel(selected + 10),
            KeyCode::Char('e' | 'x') => {
                let path = self
                    .options
                    .export_dir
                    .join(format!("offair-{}.csv", utc_file_stamp(self.now)));
                out.push(Command::WriteFile {
                    path: path.clone(),
                    contents: self.off_air_csv(),
                });
                self.set_notice(
                    &format!(
                        "off-air list ({} students) exported to {}",
                        list.len(),
                        path.display()
                    ),
                    false,
                );
            }
            KeyCode::Enter => {
                if let Some(&i) = list.get(selected) {
                    self.filter.clear();
                    self.selected = Some(i);
                    self.enlarged = None;
                }
                self.overlay = Overlay::None;
            }
            _ => self.overlay = Overlay::None,
        }
    }

    /// Carry out a proctor's action.
    pub fn act(&mut self, action: Action, out: &mut Vec<Command>) {
        self.dirty = true;
        match action {
            Action::Left => self.step(-1, out),
            Action::Right => self.step(1, out),
            Action::Up | Action::Down if self.enlarged.is_some() => {
                self.step(if action == Action::Up { -1 } else { 1 }, out)
            }
            Action::Up => {
                let cols = self.grid(self.filtered().len()).cols as isize;
                self.move_by(-cols);
            }
            Action::Down => {
                let cols = self.grid(self.filtered().len()).cols as isize;
                self.move_by(cols);
            }
            // Same place on the previous/next page (clamped to the ends).
            Action::PageUp | Action::PageDown => {
                let n = self.filtered().len();
                let per = self.grid(n).per_page() as isize;
                let pos = self.position() as isize;
                let page = pos / per + if action == Action::PageUp { -1 } else { 1 };
                if page >= 0 && (page * per) < n as isize {
                    self.move_by(if action == Action::PageUp { -per } else { per });
                }
            }
            Action::First => self.move_by(isize::MIN / 2),
            Action::Last => self.move_by(isize::MAX / 2),
            Action::Enlarge => {
                if let Some(s) = self.selected
                    && self.enlarged != Some(s)
                {
                    self.enlarge(Some(s), out);
                }
            }
            Action::Back => {
                if self.enlarged.is_some() {
                    self.enlarge(None, out);
                } else if self.chat_open {
                    self.chat_open = false;
                } else if !self.filter.is_empty() {
                    self.filter.clear();
                    self.fix_selection();
                }
            }
            Action::Chat => {
                if self.chat_target().is_some() {
                    self.chat_open = true;
                    self.focus = Focus::Chat;
                    self.mark_read();
                }
            }
            Action::RaiseAttention => {
                if let Some(i) = self.selected {
                    let t = &self.tiles[i];
                    out.push(Command::Engine(EngineCommand::RaiseAttention {
                        student: t.id.clone(),
                    }));
                    let msg = format!("attention raised to {}", t.label());
                    self.set_notice(&msg, false);
                }
            }
            Action::Acknowledge => {
                let target = self
                    .selected
                    .filter(|s| self.attention_queue.contains(s))
                    .or_else(|| self.attention_queue.first().copied());
                if let Some(i) = target {
                    out.push(Command::Engine(EngineCommand::AckAttention {
                        student: self.tiles[i].id.clone(),
                    }));
                    self.clear_attention(i);
                    let msg = format!("acknowledged {}", self.tiles[i].label());
                    self.set_notice(&msg, false);
                } else {
                    self.set_notice("nobody is waiting for attention", false);
                }
            }
            Action::NextAttention => {
                let q = &self.attention_queue;
                let next = match self.selected.and_then(|s| q.iter().position(|&i| i == s)) {
                    Some(p) => q.get((p + 1) % q.len()).copied(),
                    None => q.first().copied(),
                };
                match next {
                    Some(i) => {
                        if !self.filtered().contains(&i) {
                            self.filter.clear();
                        }
                        self.selected = Some(i);
                        if self.enlarged.is_some() {
                            self.enlarge(Some(i), out);
                        }
                        if self.chat_open {
                            self.mark_read();
                        }
                    }
                    None => self.set_notice("nobody is waiting for attention", false),
                }
            }
            Action::OffAirList => self.overlay = Overlay::OffAir { selected: 0 },
            Action::Filter => self.focus = Focus::Filter,
            Action::Snapshot => {
                if let Some(i) = self.chat_target() {
                    let t = &self.tiles[i];
                    let file = format!("{}-{}.png", file_safe(&t.id.0), utc_file_stamp(self.now));
                    out.push(Command::Engine(EngineCommand::Snapshot {
                        student: t.id.clone(),
                        path: self.options.snapshot_dir.join(file),
                    }));
                }
            }
            Action::ReleaseCode => match self.chat_target() {
                Some(i) if !self.tiles[i].off_air() => {
                    self.overlay = Overlay::ConfirmRelease { student: i }
                }
                Some(_) => self.set_notice("nobody is live on this code", false),
                None => {}
            },
            Action::Help => self.overlay = Overlay::Help,
            Action::Quit => self.overlay = Overlay::ConfirmQuit,
            Action::ForceQuit => self.quit(out),
            Action::Suspend => out.push(Command::Suspend),
        }
    }

    fn enlarge(&mut self, which: Option<usize>, out: &mut Vec<Command>) {
        self.enlarged = which;
        out.push(Command::Engine(EngineCommand::Enlarge {
            student: which.map(|i| self.tiles[i].id.clone()),
        }));
    }

    /// Left/right: in the enlarged view this switches student.
    fn step(&mut self, delta: isize, out: &mut Vec<Command>) {
        self.move_by(delta);
        if self.enlarged.is_some() && self.enlarged != self.selected {
            self.enlarge(self.selected, out);
        }
        if self.chat_open {
            self.mark_read();
        }
    }

    fn position(&self) -> usize {
        let list = self.filtered();
        self.selected
            .and_then(|s| list.iter().position(|&i| i == s))
            .unwrap_or(0)
    }

    fn move_by(&mut self, delta: isize) {
        let list = self.filtered();
        if list.is_empty() {
            return;
        }
        let pos = self.position() as isize;
        let new = (pos.saturating_add(delta)).clamp(0, list.len() as isize - 1);
        self.selected = Some(list[new as usize]);
        if self.chat_open {
            self.mark_read();
        }
    }

    /// Keep the selection on a tile that passes the filter.
    fn fix_selection(&mut self) {
        let list = self.filtered();
        if !self.selected.is_some_and(|s| list.contains(&s)) {
            self.selected = list.first().copied().or(self.selected);
        }
    }

    fn mark_read(&mut self) {
        if let Some(i) = self.chat_target() {
            let t = &mut self.tiles[i];
            t.unread_from = (t.unread > 0).then(|| t.chat.len().saturating_sub(t.unread));
            t.unread = 0;
        }
    }

    fn on_mouse(&mut self, m: MouseEvent, out: &mut Vec<Command>) {
        if self.overlay != Overlay::None {
            if matches!(m.kind, MouseEventKind::Down(_)) {
                self.overlay = Overlay::None;
                self.dirty = true;
            }
            return;
        }
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                let screen = self.screen();
                if let Some(chat) = screen.chat
                    && chat.contains((m.column, m.row).into())
                {
                    self.focus = Focus::Chat;
                    self.dirty = true;
                    return;
                }
                if self.enlarged.is_some() {
                    return;
                }
                let (_, _, tiles) = self.page();
                let g = self.grid(self.filtered().len());
                if let Some(&i) = g.hit(m.column, m.row).and_then(|k| tiles.get(k)) {
                    self.focus = Focus::Grid;
                    if self.selected == Some(i) {
                        self.enlarge(Some(i), out);
                    } else {
                        self.selected = Some(i);
                        if self.chat_open {
                            self.mark_read();
                        }
                    }
                    self.dirty = true;
                }
            }
            MouseEventKind::ScrollDown if self.enlarged.is_none() => {
                self.act(Action::PageDown, out)
            }
            MouseEventKind::ScrollUp if self.enlarged.is_none() => self.act(Action::PageUp, out),
            _ => {}
        }
    }

    fn on_paste(&mut self, text: &str, out: &mut Vec<Command>) {
        self.dirty = true;
        match self.focus {
            Focus::Chat => return self.chat_input.insert_str(text),
            Focus::Filter => {
                self.filter.insert_str(text);
                return self.fix_selection();
            }
            Focus::Grid => {}
        }
        // Terminals send pasted line breaks as CR.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        match Roster::parse(&text) {
            Ok(r) if !r.is_empty() => {
                let before = self.tiles.len();
                let total = r.len();
                let added = self.add_students(&r.students);
                let new: Vec<Student> = r
                    .students
                    .into_iter()
                    .filter(|s| {
                        self.index
                            .get(&StudentId(s.id.clone()))
                            .is_some_and(|&i| i >= before)
                    })
                    .collect();
                if !new.is_empty() {
                    out.push(Command::Engine(EngineCommand::AddStudents {
                        students: new,
                    }));
                }
                let skipped = match total - added {
                    0 => String::new(),
                    k => format!(" ({k} already known)"),
                };
                self.set_notice(
                    &format!(
                        "added {added} student{} from the pasted roster{skipped}",
                        if added == 1 { "" } else { "s" }
                    ),
                    false,
                );
            }
            Ok(_) => self.set_notice("the pasted text has no students", true),
            Err((line, problem)) => self.set_notice(
                &format!(
                    "pasted text is not a roster (line {line}: {}); paste \"ID<TAB>code\" lines",
                    sanitize::clean(&problem)
                ),
                true,
            ),
        }
    }

    fn quit(&mut self, out: &mut Vec<Command>) {
        if !self.quitting {
            self.quitting = true;
            out.push(Command::Engine(EngineCommand::Shutdown));
            out.push(Command::Quit);
        }
    }

    /// Show a message in the footer for a few seconds.
    pub fn set_notice(&mut self, text: &str, error: bool) {
        self.notice = Some(Notice {
            text: text.to_string(),
            error,
            at: self.now,
        });
        self.dirty = true;
    }

    /// Tell the engine what is on screen when that changed.
    fn sync_visible(&mut self, out: &mut Vec<Command>) {
        if self.quitting {
            return;
        }
        let v = self.visible();
        if self.last_visible.as_ref() != Some(&v) {
            self.last_visible = Some(v.clone());
            out.push(Command::Engine(EngineCommand::SetVisible { students: v }));
        }
    }
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn split_utc(t: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let s = secs(t);
    let (y, m, d) = civil((s / 86_400) as i64);
    let tod = s % 86_400;
    (y, m, d, tod / 3600, tod / 60 % 60, tod % 60)
}

/// RFC 3339 in UTC, seconds precision.
pub fn utc_timestamp(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = split_utc(t);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// `YYYYMMDD-HHMMSS` (UTC) for file names.
pub fn utc_file_stamp(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = split_utc(t);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

/// Compact "time since": `42s`, `12m`, `1h05`, `3d`.
pub fn since_label(now: SystemTime, since: SystemTime) -> String {
    let s = now.duration_since(since).unwrap_or_default().as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}", s / 3600, s / 60 % 60),
        _ => format!("{}d", s / 86_400),
    }
}

/// `HH:MM` of a chat line (UTC; the session record has full timestamps).
pub fn clock(t: SystemTime) -> String {
    let (_, _, _, hh, mm, _) = split_utc(t);
    format!("{hh:02}:{mm:02}")
}
