//! Which picture protocol the terminal speaks (`--graphics auto`).
//!
//! Half-blocks work everywhere, so they are the answer whenever in doubt:
//! inside tmux or screen (they swallow or mangle image sequences unless
//! passthrough is set up, which we cannot know), over ssh (images cost 5 to
//! 30 times the bytes of half-blocks), on the Linux console, and when the
//! terminal does not answer in time.
//!
//! Otherwise the terminal is asked, once, before the event loop starts and
//! while raw mode is on: the kitty graphics query (`a=q` on a 1x1 image),
//! XTSMGRAPHICS for the sixel colour registers and largest image, the cell
//! size in pixels (`CSI 16 t`), then primary device attributes (DA1). Every
//! terminal answers DA1 and answers in order, so once the DA1 reply is in,
//! everything the terminal will say has been said and nothing is left to
//! leak into the input. Attribute 4 in the DA1 reply means sixel. iTerm2's
//! inline images have no query: TERM_PROGRAM / LC_TERMINAL name the
//! terminals that have them (iTerm2, WezTerm, mintty).

use std::io::Write;
use std::time::{Duration, Instant};

use crate::cli::GraphicsMode;

/// How pictures are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Halfblocks,
    Kitty,
    Sixel,
    Iterm2,
}

impl Protocol {
    /// The name shown to the proctor (the `--graphics` value).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Halfblocks => "halfblocks",
            Protocol::Kitty => "kitty",
            Protocol::Sixel => "sixel",
            Protocol::Iterm2 => "iterm2",
        }
    }
}

/// What the terminal said about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replies {
    /// The DA1 reply arrived (so the others, if any, are complete).
    pub da1: bool,
    /// DA1 lists attribute 4 (sixel graphics).
    pub sixel: bool,
    /// The kitty graphics query was answered OK.
    pub kitty: bool,
    /// Sixel colour registers (XTSMGRAPHICS).
    pub sixel_colors: Option<u16>,
    /// Largest sixel image in pixels (XTSMGRAPHICS).
    pub sixel_max: Option<(u32, u32)>,
    /// Cell size in pixels, width x height (`CSI 16 t`).
    pub cell_px: Option<(u32, u32)>,
}

/// The environment variables detection looks at.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub term: String,
    pub term_program: String,
    pub lc_terminal: String,
    pub tmux: bool,
    pub screen: bool,
    pub ssh: bool,
}

impl Env {
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        let term = var("TERM");
        Env {
            tmux: std::env::var_os("TMUX").is_some() || term.starts_with("tmux"),
            screen: std::env::var_os("STY").is_some() || term.starts_with("screen"),
            ssh: std::env::var_os("SSH_CONNECTION").is_some()
                || std::env::var_os("SSH_TTY").is_some()
                || std::env::var_os("SSH_CLIENT").is_some(),
            term_program: var("TERM_PROGRAM"),
            lc_terminal: var("LC_TERMINAL"),
            term,
        }
    }

    /// A terminal known to show iTerm2 inline images.
    fn iterm2_terminal(&self) -> bool {
        ["iTerm.app", "WezTerm", "mintty"]
            .iter()
            .any(|t| self.term_program.eq_ignore_ascii_case(t))
            || ["iTerm2", "WezTerm"]
                .iter()
                .any(|t| self.lc_terminal.eq_ignore_ascii_case(t))
    }
}

/// What to do before choosing: nothing to ask, or ask the terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Decided from the flags and environment alone.
    Fixed(Protocol, String),
    /// Ask the terminal (for `auto`, or for the cell size of a forced mode).
    Query,
}

/// The first step: what the flag and environment decide on their own.
pub fn plan(mode: GraphicsMode, env: &Env) -> Plan {
    match mode {
        GraphicsMode::Halfblocks => Plan::Fixed(Protocol::Halfblocks, "--graphics".into()),
        GraphicsMode::Auto if env.tmux => Plan::Fixed(Protocol::Halfblocks, "inside tmux".into()),
        GraphicsMode::Auto if env.screen => {
            Plan::Fixed(Protocol::Halfblocks, "inside screen".into())
        }
        GraphicsMode::Auto if env.ssh => Plan::Fixed(Protocol::Halfblocks, "over ssh".into()),
        GraphicsMode::Auto if env.term == "linux" || env.term == "dumb" || env.term.is_empty() => {
            Plan::Fixed(
                Protocol::Halfblocks,
                format!(
                    "TERM={}",
                    if env.term.is_empty() {
                        "unset"
                    } else {
                        &env.term
                    }
                ),
            )
        }
        _ => Plan::Query,
    }
}

/// The choice after the terminal answered (or did not: `replies.da1` false).
pub fn choose(mode: GraphicsMode, env: &Env, replies: &Replies) -> (Protocol, String) {
    match mode {
        GraphicsMode::Halfblocks => (Protocol::Halfblocks, "--graphics".into()),
        GraphicsMode::Kitty => (Protocol::Kitty, "--graphics".into()),
        GraphicsMode::Sixel => (Protocol::Sixel, "--graphics".into()),
        GraphicsMode::Iterm2 => (Protocol::Iterm2, "--graphics".into()),
        GraphicsMode::Auto => {
            if !replies.da1 {
                (
                    Protocol::Halfblocks,
                    "the terminal did not answer the query".into(),
                )
            } else if env.iterm2_terminal() {
                let who = if env.term_program.is_empty() {
                    &env.lc_terminal
                } else {
                    &env.term_program
                };
                (Protocol::Iterm2, format!("detected {who}"))
            } else if replies.kitty {
                (Protocol::Kitty, "detected: kitty graphics query OK".into())
            } else if replies.sixel {
                (Protocol::Sixel, "detected: DA1 attribute 4".into())
            } else {
                (Protocol::Halfblocks, "no graphics protocol detected".into())
            }
        }
    }
}

/// The query: kitty graphics, sixel colour registers (current), largest
/// sixel image (the maximum: xterm's current limit is the window's size at
/// start, which a later resize changes), cell size, then DA1 (last: its
/// reply ends the wait).
pub const QUERY: &[u8] = b"\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\\
\x1b[?1;1;0S\x1b[?2;4;0S\x1b[16t\x1b[c";

/// Parse what the terminal sent back (any order, any garbage between).
pub fn parse(bytes: &[u8]) -> Replies {
    let mut r = Replies::default();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0x1b || i + 1 >= bytes.len() {
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'_' => {
                // APC ... ST: the kitty reply "Gi=31;OK".
                let body_start = i + 2;
                let end = find(bytes, body_start, b"\x1b\\").unwrap_or(bytes.len());
                let body = &bytes[body_start..end];
                if body.starts_with(b"G")
                    && let Some(semi) = body.iter().position(|&b| b == b';')
                {
                    let keys = &body[1..semi];
                    let msg = &body[semi + 1..];
                    if keys.split(|&b| b == b',').any(|k| k == b"i=31") && msg == b"OK" {
                        r.kitty = true;
                    }
                }
                i = end + 2;
            }
            b'[' => {
                // CSI params final.
                let mut j = i + 2;
                while j < bytes.len() && (0x30..=0x3f).contains(&bytes[j]) {
                    j += 1;
                }
                while j < bytes.len() && (0x20..=0x2f).contains(&bytes[j]) {
                    j += 1;
                }
                let Some(&fin) = bytes.get(j) else { break };
                let params = &bytes[i + 2..j];
                csi(&mut r, params, fin);
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    r
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn numbers(params: &[u8]) -> Vec<u32> {
    params
        .split(|&b| b == b';')
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

fn csi(r: &mut Replies, params: &[u8], fin: u8) {
    let private = params.first() == Some(&b'?');
    let nums = numbers(if private { &params[1..] } else { params });
    match (private, fin) {
        (true, b'c') => {
            r.da1 = true;
            // The first number is the conformance level, the rest attributes.
            r.sixel = nums.iter().skip(1).any(|&n| n == 4);
        }
        (true, b'S') => match nums.as_slice() {
            [1, 0, n, ..] => r.sixel_colors = Some((*n).min(u16::MAX as u32) as u16),
            [2, 0, w, h, ..] if *w > 0 && *h > 0 => r.sixel_max = Some((*w, *h)),
            _ => {}
        },
        (false, b't') => {
            if let [6, h, w, ..] = nums.as_slice()
                && *h > 0
                && *w > 0
            {
                r.cell_px = Some((*w, *h));
            }
        }
        _ => {}
    }
}

/// True if `bytes` hold a complete DA1 reply.
fn has_da1(bytes: &[u8]) -> bool {
    let mut i = 0;
    while let Some(p) = find(bytes, i, b"\x1b[?") {
        let mut j = p + 3;
        while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b';') {
            j += 1;
        }
        if bytes.get(j) == Some(&b'c') {
            return true;
        }
        i = p + 1;
    }
    false
}

/// Send [`QUERY`] and collect the replies until DA1 arrives or `timeout`
/// passes. Raw mode must be on; the event loop must not be reading yet.
/// Returns what was read (possibly without DA1 when the terminal is silent).
pub fn ask_terminal(out: &mut impl Write, timeout: Duration) -> std::io::Result<Vec<u8>> {
    let tty = Tty::open()?;
    out.write_all(QUERY)?;
    out.flush()?;
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while !has_da1(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let n = tty.read_within(&mut chunk, left)?;
        got.extend_from_slice(&chunk[..n]);
    }
    Ok(got)
}

/// The terminal's input: stdin when it is a terminal, /dev/tty otherwise
/// (where crossterm reads too).
struct Tty {
    fd: i32,
    _file: Option<std::fs::File>,
}

impl Tty {
    fn open() -> std::io::Result<Tty> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(libc::STDIN_FILENO) } == 1 {
            return Ok(Tty {
                fd: libc::STDIN_FILENO,
                _file: None,
            });
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")?;
        Ok(Tty {
            fd: std::os::fd::AsRawFd::as_raw_fd(&f),
            _file: Some(f),
        })
    }

    /// Read what is there within `wait` (0 bytes when nothing came).
    fn read_within(&self, buf: &mut [u8], wait: Duration) -> std::io::Result<usize> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        if r == 0 || pfd.revents & libc::POLLIN == 0 {
            if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                return Err(std::io::Error::other("the terminal closed"));
            }
            return Ok(0);
        }
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize)
    }
}

/// The outcome of detection, for the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub protocol: Protocol,
    /// Why (shown in the help pane and logged).
    pub reason: String,
    pub replies: Replies,
}

impl Detected {
    /// "sixel (detected: DA1 attribute 4)".
    pub fn label(&self) -> String {
        format!("{} ({})", self.protocol.name(), self.reason)
    }
}

/// Decide the protocol, asking the terminal through `out` when needed.
pub fn detect(mode: GraphicsMode, env: &Env, out: &mut impl Write) -> Detected {
    if let Plan::Fixed(protocol, reason) = plan(mode, env) {
        return Detected {
            protocol,
            reason,
            replies: Replies::default(),
        };
    }
    let replies = match ask_terminal(out, QUERY_TIMEOUT) {
        Ok(bytes) => {
            tracing::debug!(reply = ?String::from_utf8_lossy(&bytes), "terminal query");
            parse(&bytes)
        }
        Err(e) => {
            tracing::warn!("cannot query the terminal: {e}");
            Replies::default()
        }
    };
    let (protocol, reason) = choose(mode, env, &replies);
    Detected {
        protocol,
        reason,
        replies,
    }
}

/// How long the terminal has to answer. Local terminals answer in
/// milliseconds once running (ssh is never queried), but a terminal that
/// starts together with the dashboard may take most of a second: kitty on
/// software OpenGL answered after 0.83 s.
pub const QUERY_TIMEOUT: Duration = Duration::from_millis(1500);

#[cfg(test)]
mod tests {
    use super::*;

    // Replies to `QUERY` recorded from real terminals under Xvfb (Debian 12).
    /// xterm 379 `-ti vt340 -xrm 'XTerm*numColorRegisters: 256'`.
    const XTERM_VT340: &[u8] = b"\x1b[?1;0;256S\x1b[?2;0;1000;1000S\x1b[?63;1;2;4;6;9;15;16;22;28c";
    /// kitty 0.26.5 (no sixel, no XTSMGRAPHICS).
    const KITTY: &[u8] = b"\x1b_Gi=31;OK\x1b\\\x1b[6;20;9t\x1b[?62;c";
    /// mlterm 3.9.0 (sixel, no kitty; odd answer to the geometry query).
    const MLTERM: &[u8] =
        b"\x1b[?1;0;1024S\x1b[?1;3;0S\x1b[6;22;10t\x1b[?63;1;2;3;4;6;7;15;18;22;29c";
    /// xterm 379 as installed (VT420 id: no sixel; XTSMGRAPHICS errors).
    const XTERM_PLAIN: &[u8] = b"\x1b[?1;3S\x1b[?2;3S\x1b[?64;1;2;6;9;15;16;17;18;21;22;28c";

    fn env() -> Env {
        Env {
            term: "xterm-256color".into(),
            ..Env::default()
        }
    }

    #[test]
    fn parses_recorded_replies() {
        let x = parse(XTERM_VT340);
        assert!(x.da1 && x.sixel && !x.kitty);
        assert_eq!(x.sixel_colors, Some(256));
        assert_eq!(x.sixel_max, Some((1000, 1000)));
        let k = parse(KITTY);
        assert!(k.da1 && k.kitty && !k.sixel);
        assert_eq!(k.cell_px, Some((9, 20)));
        let m = parse(MLTERM);
        assert!(m.da1 && m.sixel && !m.kitty);
        assert_eq!(m.cell_px, Some((10, 22)));
        assert_eq!(m.sixel_colors, Some(1024));
        assert_eq!(m.sixel_max, None);
        let p = parse(XTERM_PLAIN);
        assert!(p.da1 && !p.sixel);
        assert_eq!((p.sixel_colors, p.sixel_max, p.cell_px), (None, None, None));
        // An error reply to the kitty query is not support.
        assert!(!parse(b"\x1b_Gi=31;ENOTSUPPORTED:x\x1b\\\x1b[?62c").kitty);
        // Keys typed meanwhile do not confuse the parser.
        assert!(parse(b"jj\x1b[A\x1b[?62;4c").sixel);
        assert!(!parse(b"\x1b[?62;14c").sixel);
        assert!(has_da1(KITTY) && !has_da1(b"\x1b[?1;0;256S\x1b[?62;"));
    }

    #[test]
    fn auto_chooses_from_replies() {
        let e = env();
        let pick = |r: &[u8]| choose(GraphicsMode::Auto, &e, &parse(r)).0;
        assert_eq!(pick(XTERM_VT340), Protocol::Sixel);
        assert_eq!(pick(KITTY), Protocol::Kitty);
        assert_eq!(pick(MLTERM), Protocol::Sixel);
        assert_eq!(pick(XTERM_PLAIN), Protocol::Halfblocks);
        // Silence (no DA1 before the deadline) means half-blocks.
        assert_eq!(pick(b"\x1b_Gi=31;OK\x1b\\"), Protocol::Halfblocks);
        let wez = Env {
            term_program: "WezTerm".into(),
            ..env()
        };
        assert_eq!(
            choose(GraphicsMode::Auto, &wez, &parse(KITTY)).0,
            Protocol::Iterm2
        );
        let iterm = Env {
            lc_terminal: "iTerm2".into(),
            ..env()
        };
        assert_eq!(
            choose(GraphicsMode::Auto, &iterm, &parse(XTERM_PLAIN)).0,
            Protocol::Iterm2
        );
        // A forced mode is kept whatever the terminal says.
        assert_eq!(
            choose(GraphicsMode::Sixel, &e, &Replies::default()).0,
            Protocol::Sixel
        );
    }

    #[test]
    fn tmux_ssh_and_console_never_query() {
        for e in [
            Env {
                tmux: true,
                ..env()
            },
            Env {
                screen: true,
                ..env()
            },
            Env { ssh: true, ..env() },
            Env {
                term: "linux".into(),
                ..Env::default()
            },
        ] {
            assert!(
                matches!(
                    plan(GraphicsMode::Auto, &e),
                    Plan::Fixed(Protocol::Halfblocks, _)
                ),
                "{e:?}"
            );
        }
        assert_eq!(plan(GraphicsMode::Auto, &env()), Plan::Query);
        // A forced image mode still asks (for the cell size).
        let tmux = Env {
            tmux: true,
            ..env()
        };
        assert_eq!(plan(GraphicsMode::Sixel, &tmux), Plan::Query);
        assert!(matches!(
            plan(GraphicsMode::Halfblocks, &env()),
            Plan::Fixed(Protocol::Halfblocks, _)
        ));
    }
}
