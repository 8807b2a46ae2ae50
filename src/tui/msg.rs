//! The dashboard's vocabulary: [`Msg`] (facts coming in), [`Action`] (what
//! the proctor asked for with a key) and [`Command`] (requests going out).

use std::path::PathBuf;
use std::time::SystemTime;

use ratatui::crossterm::event::{KeyEvent, MouseEvent};
use serde::Deserialize;

use crate::proctor::{EngineCommand, EngineEvent};

/// Everything that can change the app state arrives as one of these, on one
/// channel, in order.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A fact from the monitor engine.
    Engine(EngineEvent),
    /// The engine's event channel closed (the engine stopped).
    EngineClosed,
    /// A key press from the terminal.
    Key(KeyEvent),
    /// A mouse event, where the terminal reports them.
    Mouse(MouseEvent),
    /// Bracketed paste: the whole pasted text at once.
    Paste(String),
    /// The terminal changed size (columns, rows).
    Resize(u16, u16),
    /// The clock moved on (drives "time since" labels and flashing).
    Tick(SystemTime),
    /// SIGTERM, SIGHUP or SIGINT: leave now.
    Terminate,
}

/// What the proctor can ask for; keymaps name these in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Move the selection one tile left.
    Left,
    /// Move the selection one tile right.
    Right,
    /// Move the selection one row up.
    Up,
    /// Move the selection one row down.
    Down,
    /// Previous page of tiles.
    PageUp,
    /// Next page of tiles.
    PageDown,
    /// First student.
    First,
    /// Last student.
    Last,
    /// Show the selected student as large as the pane allows.
    Enlarge,
    /// Leave the enlarged view, close the chat, or clear the filter.
    Back,
    /// Open the chat pane for the selected student (or move focus to it).
    Chat,
    /// Raise attention to the selected student (their page alerts).
    RaiseAttention,
    /// Acknowledge the selected student's attention request.
    Acknowledge,
    /// Jump to the next student waiting for attention.
    NextAttention,
    /// Show who is not streaming.
    OffAirList,
    /// Filter tiles by name, ID or code.
    Filter,
    /// Save a snapshot of the selected student's picture.
    Snapshot,
    /// Take the selected student's code away from the device live on it
    /// (asks for confirmation; answers a code conflict).
    ReleaseCode,
    /// Show every key.
    Help,
    /// Quit (asks for confirmation).
    Quit,
    /// Quit without asking (Ctrl-C).
    ForceQuit,
    /// Suspend to the shell (Ctrl-Z).
    Suspend,
}

/// Requests [`crate::tui::App::update`] returns; the loop carries them out.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Forward to the engine.
    Engine(EngineCommand),
    /// Ring the terminal bell.
    Bell,
    /// A desktop notification: through the terminal (OSC 9 / OSC 777) and,
    /// on a local desktop session, through the notification daemon.
    Notify { title: String, body: String },
    /// Write a text file (the off-air CSV export).
    WriteFile { path: PathBuf, contents: String },
    /// Give the terminal back to the shell until `fg` (Ctrl-Z).
    Suspend,
    /// Restore the terminal and return from the dashboard.
    Quit,
}
