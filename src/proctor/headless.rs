//! Headless mode: the engine without a terminal.
//!
//! stdout gets one JSON object per line: every [`EngineEvent`] except
//! `frame_ready` (a picture is not text; its rate is in the stats lines),
//! and every second one `stats` line per live student. stdin may carry
//! commands, one JSON object per line (for scripts and tests):
//!
//! ```text
//! {"cmd":"chat","student":"s1","text":"Please face the camera"}
//! {"cmd":"attention","student":"s1"}
//! {"cmd":"ack","student":"s1"}
//! {"cmd":"visible","students":["s1","s2"]}
//! {"cmd":"enlarge","student":"s1"}          (or null to release)
//! {"cmd":"snapshot","student":"s1","path":"s1.png"}
//! {"cmd":"release","student":"s1"}           (take the code from its device)
//! {"cmd":"quit"}
//! ```
//!
//! Students not on the roster appear with an `unknown` line
//! (`{"event":"unknown","student":"?CODE","code":"CODE"}`) before their first
//! state line, and are addressed as `?CODE` in commands.
//!
//! End of stdin does not stop the engine (it may run with `< /dev/null`);
//! SIGINT/SIGTERM or `quit` do.

use std::io::Write;

use serde::Deserialize;

use super::{EngineCommand, EngineEvent, EngineHandle, StudentId};
use crate::{Error, Result};

/// A command line on stdin.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum HeadlessCommand {
    Chat {
        student: String,
        text: String,
    },
    Attention {
        student: String,
    },
    Ack {
        student: String,
    },
    Visible {
        students: Vec<String>,
    },
    Enlarge {
        student: Option<String>,
    },
    Snapshot {
        student: String,
        path: std::path::PathBuf,
    },
    Release {
        student: String,
    },
    Quit,
}

impl From<HeadlessCommand> for EngineCommand {
    fn from(c: HeadlessCommand) -> Self {
        match c {
            HeadlessCommand::Chat { student, text } => EngineCommand::SendChat {
                student: StudentId(student),
                text,
            },
            HeadlessCommand::Attention { student } => EngineCommand::RaiseAttention {
                student: StudentId(student),
            },
            HeadlessCommand::Ack { student } => EngineCommand::AckAttention {
                student: StudentId(student),
            },
            HeadlessCommand::Visible { students } => EngineCommand::SetVisible {
                students: students.into_iter().map(StudentId).collect(),
            },
            HeadlessCommand::Enlarge { student } => EngineCommand::Enlarge {
                student: student.map(StudentId),
            },
            HeadlessCommand::Snapshot { student, path } => EngineCommand::Snapshot {
                student: StudentId(student),
                path,
            },
            HeadlessCommand::Release { student } => EngineCommand::ReleaseCode {
                student: StudentId(student),
            },
            HeadlessCommand::Quit => EngineCommand::Shutdown,
        }
    }
}

/// The JSON line of an event, or None for events headless mode leaves out.
pub fn event_line(event: &EngineEvent) -> Option<String> {
    if matches!(event, EngineEvent::FrameReady { .. }) {
        return None;
    }
    serde_json::to_string(event).ok()
}

/// Print events until the engine stops; feed stdin commands to it.
pub async fn run(mut engine: EngineHandle) -> Result<()> {
    let commands = engine.commands.clone();
    let stdin_cmds = commands.clone();
    // A plain thread, not tokio's stdin: a blocked read on tokio's blocking
    // pool would keep the runtime (and the process) from exiting.
    std::thread::Builder::new()
        .name("stdin-commands".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_str::<HeadlessCommand>(line) {
                    Ok(cmd) => {
                        if stdin_cmds.blocking_send(cmd.into()).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("rtcproctor: ignored command line {line:?}: {e}"),
                }
            }
        })
        .map_err(|e| Error::Other(anyhow::anyhow!("cannot start the stdin reader: {e}")))?;
    let stop = commands.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(EngineCommand::Shutdown).await;
    });
    drop(commands);
    let mut out = std::io::stdout().lock();
    while let Some(event) = engine.events.recv().await {
        if let Some(line) = event_line(&event) {
            writeln!(out, "{line}")
                .and_then(|_| out.flush())
                .map_err(|e| Error::Other(anyhow::anyhow!("cannot write to stdout: {e}")))?;
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_parse() {
        let c: HeadlessCommand =
            serde_json::from_str(r#"{"cmd":"chat","student":"s1","text":"hi"}"#).unwrap();
        assert_eq!(
            EngineCommand::from(c),
            EngineCommand::SendChat {
                student: StudentId("s1".into()),
                text: "hi".into()
            }
        );
        let c: HeadlessCommand =
            serde_json::from_str(r#"{"cmd":"enlarge","student":null}"#).unwrap();
        assert_eq!(c, HeadlessCommand::Enlarge { student: None });
        assert!(serde_json::from_str::<HeadlessCommand>(r#"{"cmd":"dance"}"#).is_err());
    }

    #[test]
    fn frame_ready_is_not_printed() {
        let s = StudentId("s".into());
        assert!(event_line(&EngineEvent::FrameReady { student: s.clone() }).is_none());
        let line = event_line(&EngineEvent::Notice { text: "x".into() }).unwrap();
        assert_eq!(line, r#"{"event":"notice","text":"x"}"#);
    }
}
