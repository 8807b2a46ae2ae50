//! Getting a proctor's attention: the terminal bell, desktop notifications
//! through the terminal itself (OSC 9 and OSC 777, which travel over ssh),
//! and notify-rust when a local desktop session exists.

use super::sanitize;

/// Where notifications go; each can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifySwitches {
    pub bell: bool,
    pub osc: bool,
    pub desktop: bool,
    pub flash: bool,
}

impl Default for NotifySwitches {
    fn default() -> Self {
        NotifySwitches {
            bell: true,
            osc: true,
            desktop: true,
            flash: true,
        }
    }
}

/// The bell.
pub const BELL: &[u8] = b"\x07";

/// OSC 9 (iTerm2, kitty, WezTerm, foot, Windows Terminal) and OSC 777
/// (rxvt-unicode, VTE terminals such as GNOME Terminal, Konsole) desktop
/// notifications. Under tmux they are wrapped for passthrough (tmux needs
/// `set -g allow-passthrough on` to forward them).
pub fn osc_sequences(title: &str, body: &str, in_tmux: bool) -> Vec<u8> {
    // Text from the network must not end the sequence early or add its own.
    let clean = |s: &str| sanitize::clean(s).replace(';', ",");
    let (title, body) = (clean(title), clean(body));
    // OSC 9;4 is a progress report in some terminals: never start with "4;".
    let osc9 = format!("\x1b]9;{title}: {body}\x1b\\");
    let osc777 = format!("\x1b]777;notify;{title};{body}\x1b\\");
    let mut out = Vec::new();
    for seq in [osc9, osc777] {
        if in_tmux {
            out.extend_from_slice(b"\x1bPtmux;");
            out.extend_from_slice(seq.replace('\x1b', "\x1b\x1b").as_bytes());
            out.extend_from_slice(b"\x1b\\");
        } else {
            out.extend_from_slice(seq.as_bytes());
        }
    }
    out
}

/// True when a local graphical session can show notify-rust notifications
/// (not over ssh, where they would pop up on the remote machine's screen).
pub fn local_desktop() -> bool {
    let ssh = std::env::var_os("SSH_CONNECTION").is_some() || std::env::var_os("SSH_TTY").is_some();
    let display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    !ssh && (display || cfg!(target_os = "macos"))
}

/// Send a desktop notification through the notification daemon. Blocking
/// (D-Bus): call it from a blocking task.
pub fn desktop(title: &str, body: &str) {
    let r = notify_rust::Notification::new()
        .summary(&sanitize::clean(title))
        .body(&sanitize::clean(body))
        .appname("rtcproctor")
        .show();
    if let Err(e) = r {
        tracing::debug!("desktop notification failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc_sequences_are_clean_and_wrapped_for_tmux() {
        let s = String::from_utf8(osc_sequences(
            "rtcproctor",
            "Ann\x1b]52;c;x\x07 asks; now",
            false,
        ))
        .unwrap();
        assert_eq!(
            s,
            "\x1b]9;rtcproctor: Ann asks, now\x1b\\\x1b]777;notify;rtcproctor;Ann asks, now\x1b\\"
        );
        let t = String::from_utf8(osc_sequences("a", "b", true)).unwrap();
        assert!(
            t.starts_with("\x1bPtmux;\x1b\x1b]9;a: b\x1b\x1b\\\x1b\\"),
            "{t:?}"
        );
    }
}
