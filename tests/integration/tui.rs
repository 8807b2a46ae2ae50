//! The dashboard: App::update logic, screen snapshots (TestBackend + insta)
//! at 80x24 and 200x60, and an end-to-end run of the real binary in tmux.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use rtcproctor::proctor::{
    EngineCommand, EngineEvent, FrameSlots, Party, StreamState, StreamStats, StudentId,
};
use rtcproctor::tui::app::{App, AppOptions, Focus, Overlay};
use rtcproctor::tui::halfblock::Quantiser;
use rtcproctor::tui::view::{self, ColorDepth, DrawCtx, ThumbCache};
use rtcproctor::tui::{Command, Msg, Theme, fake};

/// A fixed clock: 2023-11-14T22:13:20Z, on an even flash half-period.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn ago(secs: u64) -> SystemTime {
    t0() - Duration::from_secs(secs)
}

fn id(s: &str) -> StudentId {
    StudentId(s.to_string())
}

fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn code(k: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(k, KeyModifiers::NONE))
}

fn options() -> AppOptions {
    AppOptions {
        snapshot_dir: PathBuf::from("/snaps"),
        export_dir: PathBuf::from("/exports"),
        ..AppOptions::default()
    }
}

fn state(app: &mut App, s: &str, st: StreamState, secs: u64) -> Vec<Command> {
    app.update(Msg::Engine(EngineEvent::State {
        student: id(s),
        state: st,
        since: ago(secs),
    }))
}

fn stats(app: &mut App, s: &str, audio: f32) {
    app.update(Msg::Engine(EngineEvent::Stats {
        student: id(s),
        stats: StreamStats {
            fps_received: 5.0,
            fps_decoded: 5.0,
            width: 320,
            height: 240,
            codec: "H264".into(),
            bitrate_kbps: 312.0,
            packet_loss: 0.002,
            frame_age_ms: Some(38),
            audio_level: audio,
            ..StreamStats::default()
        },
    }));
}

/// `n` roster students: a mix of live, joining, stalled, reconnecting,
/// off-air and left, plus one unknown publisher, with pictures for the live.
fn mixed(n: usize, size: (u16, u16)) -> (App, FrameSlots) {
    let roster = fake::roster(n);
    let mut app = App::new(&roster, size, t0(), options());
    let frames = FrameSlots::default();
    for (i, s) in roster.students.iter().enumerate() {
        let st = match i % 10 {
            7 => StreamState::Joining,
            8 => StreamState::OffAir,
            9 => StreamState::Left,
            5 if i > 10 => StreamState::Stalled,
            6 if i > 10 => StreamState::Reconnecting,
            _ => StreamState::Live,
        };
        state(&mut app, &s.id, st, 30 + 47 * i as u64);
        if matches!(
            st,
            StreamState::Live | StreamState::Stalled | StreamState::Reconnecting
        ) {
            frames.publish(&id(&s.id), fake::pattern_frame(i, 7, 320, 240));
            stats(&mut app, &s.id, (i % 5) as f32 / 4.0);
        }
    }
    app.update(Msg::Engine(EngineEvent::Unknown {
        student: id("?zz-9999"),
        code: "zz-9999".into(),
    }));
    state(&mut app, "?zz-9999", StreamState::Live, 12);
    frames.publish(&id("?zz-9999"), fake::pattern_frame(3, 2, 320, 240));
    app.update(Msg::Engine(EngineEvent::Chat {
        student: id("s003"),
        from: Party::Student,
        text: "Is my camera OK?".into(),
        at: ago(20),
    }));
    app.notice = None;
    (app, frames)
}

fn render(app: &App, frames: &FrameSlots) -> Terminal<TestBackend> {
    let (w, h) = app.size;
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    let theme = Theme::default();
    let mut thumbs = ThumbCache::new(Quantiser::default());
    let mut ctx = DrawCtx {
        theme: &theme,
        frames,
        thumbs: &mut thumbs,
        depth: ColorDepth::TrueColor,
        now: Instant::now(),
    };
    terminal.draw(|f| view::draw(f, app, &mut ctx)).unwrap();
    terminal
}

fn engine_cmds(cmds: &[Command]) -> Vec<EngineCommand> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Engine(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

// ---- App::update ---------------------------------------------------------------

#[test]
fn start_reports_the_visible_page() {
    let mut app = App::new(&fake::roster(40), (80, 24), t0(), options());
    let cmds = app.start();
    let Some(EngineCommand::SetVisible { students }) = engine_cmds(&cmds).pop() else {
        panic!("no SetVisible in {cmds:?}");
    };
    assert_eq!(students.len(), 12, "80x24 shows 12 tiles per page");
    assert_eq!(students[0], id("s001"));
}

#[test]
fn navigation_pages_and_reports_visibility() {
    let (mut app, _) = mixed(40, (80, 24));
    app.start();
    app.update(code(KeyCode::Right));
    assert_eq!(app.tiles[app.selected.unwrap()].id, id("s002"));
    app.update(key('j'));
    assert_eq!(
        app.tiles[app.selected.unwrap()].id,
        id("s006"),
        "down is one row of 4"
    );
    assert!(
        engine_cmds(&app.update(key('k'))).is_empty(),
        "no visibility change on the same page"
    );
    let cmds = app.update(code(KeyCode::PageDown));
    assert_eq!(app.tiles[app.selected.unwrap()].id, id("s014"));
    let v = engine_cmds(&cmds);
    assert!(
        matches!(&v[..], [EngineCommand::SetVisible { students }] if students[0] == id("s013") && students.len() == 12),
        "{v:?}"
    );
    assert_eq!(app.page().0, 1);
    app.update(key('G'));
    assert_eq!(app.tiles[app.selected.unwrap()].id, id("?zz-9999"));
    app.update(key('g'));
    assert_eq!(app.selected, Some(0));
    // A bigger terminal fits everyone: one page.
    let cmds = app.update(Msg::Resize(200, 60));
    assert_eq!(app.page().1, 1);
    assert!(
        matches!(&engine_cmds(&cmds)[..], [EngineCommand::SetVisible { students }] if students.len() == 41)
    );
}

#[test]
fn enlarge_and_back() {
    let (mut app, _) = mixed(12, (80, 24));
    app.start();
    app.update(key('l'));
    let cmds = engine_cmds(&app.update(code(KeyCode::Enter)));
    assert_eq!(
        cmds,
        vec![
            EngineCommand::Enlarge {
                student: Some(id("s002"))
            },
            EngineCommand::SetVisible {
                students: vec![id("s002")]
            }
        ]
    );
    // Right switches the enlarged student.
    let cmds = engine_cmds(&app.update(code(KeyCode::Right)));
    assert_eq!(
        cmds[0],
        EngineCommand::Enlarge {
            student: Some(id("s003"))
        }
    );
    let cmds = engine_cmds(&app.update(code(KeyCode::Esc)));
    assert_eq!(cmds[0], EngineCommand::Enlarge { student: None });
    assert!(matches!(&cmds[1], EngineCommand::SetVisible { students } if students.len() == 12));
    assert_eq!(app.enlarged, None);
}

#[test]
fn chat_sends_counts_unread_and_marks_read() {
    let (mut app, _) = mixed(12, (80, 24));
    let s3 = app.tiles.iter().position(|t| t.id == id("s003")).unwrap();
    assert_eq!(app.tiles[s3].unread, 1);
    app.update(key('l'));
    app.update(key('l'));
    app.update(key('c'));
    assert!(app.chat_open);
    assert_eq!(app.focus, Focus::Chat);
    assert_eq!(app.tiles[s3].unread, 0);
    assert_eq!(app.tiles[s3].unread_from, Some(0));
    for c in "hi q".chars() {
        app.update(key(c));
    }
    app.update(code(KeyCode::Backspace));
    app.update(code(KeyCode::Backspace));
    assert!(!app.quitting, "keys go to the chat input, not the keymap");
    let cmds = engine_cmds(&app.update(code(KeyCode::Enter)));
    assert_eq!(
        cmds,
        vec![EngineCommand::SendChat {
            student: id("s003"),
            text: "hi".into()
        }]
    );
    assert!(app.chat_input.is_empty());
    // While the chat shows s003 its lines are read at once; others count.
    for who in ["s003", "s004"] {
        app.update(Msg::Engine(EngineEvent::Chat {
            student: id(who),
            from: Party::Student,
            text: "\x1b]52;c;ZXZpbA==\x07plain\u{202e}text".into(),
            at: t0(),
        }));
    }
    assert_eq!(app.tiles[s3].unread, 0);
    assert_eq!(app.tile(&id("s004")).unwrap().unread, 1);
    assert_eq!(app.tiles[s3].chat.last().unwrap().text, "plaintext");
    app.update(code(KeyCode::Esc));
    assert!(!app.chat_open);
}

#[test]
fn attention_queue_bell_notify_next_and_acknowledge() {
    let (mut app, _) = mixed(12, (80, 24));
    let raise = |app: &mut App, who: &str, secs| {
        app.update(Msg::Engine(EngineEvent::Attention {
            student: id(who),
            from: Party::Student,
            raised: true,
            at: ago(secs),
        }))
    };
    let cmds = raise(&mut app, "s005", 9);
    assert!(cmds.contains(&Command::Bell));
    assert!(
        cmds.iter().any(
            |c| matches!(c, Command::Notify { body, .. } if body.contains("Emil Tanaka (s005)"))
        )
    );
    raise(&mut app, "s002", 3);
    // Raising twice does not queue twice or ring again.
    assert!(raise(&mut app, "s005", 1).is_empty());
    assert_eq!(app.attention_queue.len(), 2);
    assert_eq!(app.counts().2, 2);
    app.update(key('n'));
    assert_eq!(
        app.tiles[app.selected.unwrap()].id,
        id("s005"),
        "first asked first"
    );
    app.update(key('n'));
    assert_eq!(app.tiles[app.selected.unwrap()].id, id("s002"));
    let cmds = engine_cmds(&app.update(key(' ')));
    assert_eq!(
        cmds,
        vec![EngineCommand::AckAttention {
            student: id("s002")
        }]
    );
    assert_eq!(app.attention_queue.len(), 1);
    // The engine's echo of the ack clears; a student lowering it too.
    app.update(Msg::Engine(EngineEvent::Attention {
        student: id("s005"),
        from: Party::Student,
        raised: false,
        at: t0(),
    }));
    assert!(app.attention_queue.is_empty());
    // The proctor raising attention to a student.
    let cmds = engine_cmds(&app.update(key('a')));
    assert_eq!(
        cmds,
        vec![EngineCommand::RaiseAttention {
            student: id("s002")
        }]
    );
    // Switched off: no bell, no notification.
    let mut quiet = App::new(
        &fake::roster(3),
        (80, 24),
        t0(),
        AppOptions {
            bell: false,
            osc_notify: false,
            desktop_notify: false,
            ..options()
        },
    );
    quiet.start();
    assert!(raise(&mut quiet, "s001", 1).is_empty());
    assert_eq!(quiet.attention_queue.len(), 1);
}

#[test]
fn quit_needs_confirmation() {
    let (mut app, _) = mixed(3, (80, 24));
    assert!(app.update(key('q')).is_empty());
    assert_eq!(app.overlay, Overlay::ConfirmQuit);
    assert!(app.update(key('n')).is_empty(), "any other key cancels");
    assert_eq!(app.overlay, Overlay::None);
    app.update(key('q'));
    let cmds = app.update(key('y'));
    assert_eq!(
        cmds,
        vec![Command::Engine(EngineCommand::Shutdown), Command::Quit]
    );
    let (mut app, _) = mixed(3, (80, 24));
    let cmds = app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert!(cmds.contains(&Command::Quit), "Ctrl-C quits at once");
    let (mut app, _) = mixed(3, (80, 24));
    assert!(app.update(Msg::Terminate).contains(&Command::Quit));
}

#[test]
fn pasted_roster_adds_only_new_students() {
    let (mut app, _) = mixed(3, (80, 24));
    let before = app.tiles.len();
    let cmds = engine_cmds(&app.update(Msg::Paste(
        "s002\tcode5838\nx100\tnewcode1\nx101\tnewcode2\n".into(),
    )));
    let Some(EngineCommand::AddStudents { students }) = cmds.first() else {
        panic!("{cmds:?}");
    };
    let ids: Vec<&str> = students.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["x100", "x101"]);
    assert_eq!(app.tiles.len(), before + 2);
    assert!(
        app.notice
            .as_ref()
            .unwrap()
            .text
            .contains("added 2 students")
    );
    assert!(app.tile(&id("x100")).unwrap().off_air());
    // Not a roster: an error notice, nothing sent.
    let cmds = app.update(Msg::Paste("just some words\n".into()));
    assert!(engine_cmds(&cmds).is_empty());
    assert!(app.notice.as_ref().unwrap().error);
    // Pasting into the chat input inserts the text instead.
    app.update(key('c'));
    app.update(Msg::Paste("a\tb\x1b[2J".into()));
    assert_eq!(app.chat_input.text(), "a b");
}

#[test]
fn filter_by_name_id_or_code() {
    let (mut app, _) = mixed(20, (80, 24));
    app.update(key('/'));
    for c in "okafor".chars() {
        app.update(key(c));
    }
    let shown: Vec<String> = app
        .filtered()
        .iter()
        .map(|&i| app.tiles[i].id.0.clone())
        .collect();
    assert_eq!(shown, ["s003", "s010", "s017"]);
    assert_eq!(app.tiles[app.selected.unwrap()].id, id("s003"));
    app.update(code(KeyCode::Enter));
    assert_eq!(app.focus, Focus::Grid);
    assert_eq!(app.filtered().len(), 3, "Enter keeps the filter");
    app.update(code(KeyCode::Esc));
    assert_eq!(app.filtered().len(), 21, "Esc clears it");
}

#[test]
fn off_air_list_and_csv_export() {
    let (mut app, _) = mixed(20, (80, 24));
    app.update(key('o'));
    assert!(matches!(app.overlay, Overlay::OffAir { .. }));
    let list: Vec<String> = app
        .off_air_list()
        .iter()
        .map(|&i| app.tiles[i].id.0.clone())
        .collect();
    assert_eq!(list, ["s020", "s019", "s010", "s009"], "longest gone first");
    let cmds = app.update(key('e'));
    let Some(Command::WriteFile { path, contents }) = cmds.first() else {
        panic!("{cmds:?}");
    };
    assert!(path.starts_with("/exports"));
    assert!(
        path.to_string_lossy()
            .ends_with("offair-20231114-221320.csv")
    );
    let lines: Vec<&str> = contents.lines().collect();
    assert_eq!(lines[0], "id,name,code,state,since_utc,off_air_seconds");
    assert_eq!(lines.len(), 5);
    assert!(
        lines[1].starts_with("s020,Dara Weber,code8380,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(",left,2023-11-14T21:57:57Z,923"),
        "{}",
        lines[1]
    );
    app.update(code(KeyCode::Down));
    app.update(code(KeyCode::Enter));
    assert_eq!(app.overlay, Overlay::None);
    assert_eq!(app.tiles[app.selected.unwrap()].id, id("s019"));
}

#[test]
fn snapshot_unknown_and_mouse() {
    let (mut app, _) = mixed(12, (80, 24));
    app.start();
    let cmds = engine_cmds(&app.update(key('s')));
    assert_eq!(
        cmds,
        vec![EngineCommand::Snapshot {
            student: id("s001"),
            path: PathBuf::from("/snaps/s001-20231114-221320.png")
        }]
    );
    let unknown = app.tile(&id("?zz-9999")).unwrap();
    assert!(unknown.unknown);
    assert_eq!(unknown.code.as_deref(), Some("zz-9999"));
    // Click the third tile of the first row: select; click again: enlarge.
    let click = |x, y| {
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: x,
            row: y,
            modifiers: KeyModifiers::NONE,
        })
    };
    assert!(app.update(click(45, 3)).is_empty());
    assert_eq!(app.tiles[app.selected.unwrap()].id, id("s003"));
    let cmds = engine_cmds(&app.update(click(45, 3)));
    assert_eq!(
        cmds[0],
        EngineCommand::Enlarge {
            student: Some(id("s003"))
        }
    );
}

// ---- screens --------------------------------------------------------------------

fn snap_all(name: &str, setup: impl Fn(&mut App)) {
    for (size, n) in [((80, 24), 14), ((200, 60), 30)] {
        let (mut app, frames) = mixed(n, size);
        setup(&mut app);
        let terminal = render(&app, &frames);
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), terminal.backend());
    }
}

#[test]
fn screen_grid_mixed_states() {
    snap_all("grid", |_| {});
}

#[test]
fn screen_enlarged() {
    snap_all("enlarged", |app| {
        app.update(key('l'));
        app.update(code(KeyCode::Enter));
    });
}

/// Snapshots (taken now or recorded before a resume) are listed on the
/// enlarged student, and a black camera is said on the picture.
#[test]
fn enlarged_lists_snapshots_and_camera_problems() {
    let (mut app, frames) = mixed(12, (120, 30));
    app.start();
    for p in [
        "/data/snapshots/s002-1-attention.png",
        "/data/snapshots/s002-2-black.png",
    ] {
        app.update(Msg::Engine(EngineEvent::Snapshot {
            student: id("s002"),
            path: p.into(),
        }));
    }
    app.update(Msg::Engine(EngineEvent::Camera {
        student: id("s001"),
        problem: Some(rtcproctor::media::camera_check::CameraProblem::Black),
    }));
    let grid = format!("{:?}", render(&app, &frames).backend());
    assert!(
        grid.contains("CAMERA BLACK") || !grid.contains("s001"),
        "{grid}"
    );
    app.update(key('l'));
    app.update(code(KeyCode::Enter));
    let screen = format!("{:?}", render(&app, &frames).backend());
    assert!(
        screen.contains("2 snapshot(s), last s002-2-black.png"),
        "{screen}"
    );
}

/// Another device trying a live student's code rings once, says so in the
/// footer and marks the tile while it goes on.
#[test]
fn code_conflict_rings_once_and_marks_the_tile() {
    let (mut app, frames) = mixed(12, (120, 30));
    app.start();
    let conflict = |app: &mut App, secs| {
        app.update(Msg::Engine(EngineEvent::CodeConflict {
            student: id("s001"),
            at: ago(secs),
        }))
    };
    let cmds = conflict(&mut app, 2);
    assert!(cmds.contains(&Command::Bell), "{cmds:?}");
    assert!(cmds.iter().any(|c| matches!(c, Command::Notify { .. })));
    let grid = format!("{:?}", render(&app, &frames).backend());
    assert!(grid.contains("CODE CONFLICT"), "{grid}");
    assert!(grid.contains("another device tried to go live"), "{grid}");
    // The intruder retries: no second ring while the badge is up.
    assert!(conflict(&mut app, 1).is_empty());

    // R asks first; any key but y cancels, y takes the code away.
    while app.tiles[app.selected.unwrap()].id != id("s001") {
        app.update(key('h'));
    }
    app.update(key('R'));
    let screen = format!("{:?}", render(&app, &frames).backend());
    assert!(
        screen.contains("code from the device live on it?"),
        "{screen}"
    );
    assert!(engine_cmds(&app.update(key('n'))).is_empty());
    app.update(key('R'));
    assert_eq!(
        engine_cmds(&app.update(key('y'))),
        vec![EngineCommand::ReleaseCode {
            student: id("s001")
        }]
    );
    let screen = format!("{:?}", render(&app, &frames).backend());
    assert!(!screen.contains("CODE CONFLICT"), "{screen}");
}

#[test]
fn screen_chat_open() {
    snap_all("chat", |app| {
        app.update(key('l'));
        app.update(key('l'));
        app.update(key('c'));
        for c in "Yes, it".chars() {
            app.update(key(c));
        }
        app.update(Msg::Engine(EngineEvent::Chat {
            student: id("s003"),
            from: Party::Proctor,
            text: "Hello! Please turn your camera a little to the left so I can see your desk."
                .into(),
            at: ago(10),
        }));
    });
}

#[test]
fn screen_enlarged_with_chat() {
    snap_all("enlarged_chat", |app| {
        app.update(key('l'));
        app.update(key('l'));
        app.update(code(KeyCode::Enter));
        app.update(key('c'));
    });
}

#[test]
fn screen_off_air_list() {
    snap_all("off_air", |app| {
        app.update(key('o'));
    });
}

#[test]
fn screen_help() {
    snap_all("help", |app| {
        app.update(key('?'));
    });
}

#[test]
fn screen_attention_flashing() {
    snap_all("attention", |app| {
        app.update(Msg::Engine(EngineEvent::Attention {
            student: id("s002"),
            from: Party::Student,
            raised: true,
            at: ago(42),
        }));
        app.update(Msg::Engine(EngineEvent::Attention {
            student: id("s004"),
            from: Party::Proctor,
            raised: true,
            at: ago(5),
        }));
        assert!(
            app.flash_on(),
            "the fixed clock is in the flash-on half period"
        );
    });
}

#[test]
fn screen_filter_and_quit_prompt() {
    snap_all("filter_quit", |app| {
        app.update(key('/'));
        for c in "lee".chars() {
            app.update(key(c));
        }
        app.update(code(KeyCode::Enter));
        app.update(key('q'));
    });
}

#[test]
fn screen_256_colours_use_the_palette() {
    let (app, frames) = mixed(4, (80, 24));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let theme = Theme::default();
    let mut thumbs = ThumbCache::new(Quantiser::default());
    let mut ctx = DrawCtx {
        theme: &theme,
        frames: &frames,
        thumbs: &mut thumbs,
        depth: ColorDepth::Ansi256,
        now: Instant::now(),
    };
    terminal.draw(|f| view::draw(f, &app, &mut ctx)).unwrap();
    let buf = terminal.backend().buffer();
    assert!(
        buf.content()
            .iter()
            .all(|c| !matches!(c.fg, ratatui::style::Color::Rgb(..))
                && !matches!(c.bg, ratatui::style::Color::Rgb(..)))
    );
}

// ---- the real binary in tmux ----------------------------------------------------

mod e2e {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// A tmux server of our own, killed on drop.
    struct Tmux {
        socket: String,
    }

    impl Tmux {
        fn run(&self, args: &[&str]) -> String {
            let out = Command::new("tmux")
                .arg("-L")
                .arg(&self.socket)
                .args(args)
                .output()
                .expect("tmux is needed for this test: apt-get install tmux");
            assert!(
                out.status.success(),
                "tmux {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }

        fn keys(&self, keys: &[&str]) {
            for k in keys {
                self.run(&["send-keys", "-t", "t", k]);
                std::thread::sleep(Duration::from_millis(120));
            }
        }

        fn text(&self, text: &str) {
            self.run(&["send-keys", "-t", "t", "-l", text]);
            std::thread::sleep(Duration::from_millis(120));
        }

        fn screen(&self) -> String {
            self.run(&["capture-pane", "-p", "-t", "t"])
        }

        /// Wait until the screen contains `needle` (10 s at most).
        fn wait_for(&self, needle: &str) -> String {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let s = self.screen();
                if s.contains(needle) {
                    return s;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {needle:?}; screen:\n{s}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        fn wait_gone(&self, needle: &str) -> String {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let s = self.screen();
                if !s.contains(needle) {
                    return s;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {needle:?} to go; screen:\n{s}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    impl Drop for Tmux {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["-L", &self.socket, "kill-server"])
                .output();
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rtcp-tui-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn start(dir: &Path, tag: &str, w: u16, h: u16, extra: &str) -> Tmux {
        let roster = dir.join("roster.tsv");
        let mut text = String::from("id\tcode\tname\n");
        for i in 1..=14 {
            text.push_str(&format!(
                "s{i:03}\tcode{:04}\tStudent {i}\n",
                i * 7919 % 10_000
            ));
        }
        std::fs::write(&roster, text).expect("roster file");
        let bin = env!("CARGO_BIN_EXE_rtcproctor");
        let cmd = format!(
            "COLORTERM=truecolor {bin} --log-file {log} monitor --roster {roster} --fake-engine 8 \
             --snapshot-dir {snaps} --no-desktop-notify {extra}; echo EXITED:$?; sleep 30",
            log = dir.join("log.txt").display(),
            roster = roster.display(),
            snaps = dir.join("snaps").display(),
        );
        let tmux = Tmux {
            socket: format!("rtcp-e2e-{}-{tag}", std::process::id()),
        };
        let (ws, hs) = (w.to_string(), h.to_string());
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &ws,
            "-y",
            &hs,
            "-c",
            dir.to_str().expect("UTF-8 temp path"),
            "sh",
            "-c",
            &cmd,
        ]);
        tmux.run(&["set", "-g", "escape-time", "0"]);
        tmux
    }

    #[test]
    fn dashboard_in_tmux_end_to_end() {
        let dir = temp_dir("e2e");
        let tmux = start(&dir, "main", 80, 24, "");
        tmux.wait_for("rtcproctor");
        tmux.wait_for("Student 1 ");
        // The fake engine's student 2 asks for attention after 1.5 s.
        let s = tmux.wait_for("1 waiting: Student 2");
        assert!(s.contains("page 1/2"), "{s}");
        assert!(s.contains("OFF-AIR"), "{s}");
        assert!(s.contains("joining"), "{s}");

        // Navigate: n jumps to the student asking; space acknowledges.
        tmux.keys(&["n"]);
        tmux.wait_for("┏● Student 2");
        tmux.keys(&["Space"]);
        tmux.wait_for("acknowledged Student 2");
        tmux.wait_gone("waiting");
        // a raises attention to the student (◆ marker once the engine echoes).
        tmux.keys(&["a"]);
        tmux.wait_for("attention raised to Student 2");
        tmux.wait_for("◆");

        // Enlarge and back.
        tmux.keys(&["Enter"]);
        let s = tmux.wait_for("code code5838");
        assert!(s.contains("fps"), "{s}");
        tmux.keys(&["Escape"]);
        tmux.wait_for("page 1/2");

        // Chat both ways: the fake student answers.
        tmux.keys(&["c"]);
        tmux.wait_for("Chat · Student 2");
        tmux.text("hello there");
        tmux.keys(&["Enter"]);
        tmux.wait_for("you hello there");
        tmux.wait_for("ok, got");
        tmux.keys(&["Escape"]);
        tmux.wait_gone("Chat · Student 2");

        // Paging and the hjkl keys.
        tmux.keys(&["PageDown"]);
        tmux.wait_for("page 2/2");
        tmux.keys(&["PageUp", "l"]);
        tmux.wait_for("page 1/2");

        // Help overlay, closed by any key.
        tmux.keys(&["?"]);
        tmux.wait_for("any key closes");
        tmux.keys(&["x"]);
        tmux.wait_gone("any key closes");

        // Off-air list and CSV export.
        tmux.keys(&["o"]);
        tmux.wait_for("Off-air ·");
        tmux.keys(&["e"]);
        tmux.wait_for("exported to");
        tmux.keys(&["Escape"]);
        let csv = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("offair-"))
            .expect("the CSV export is in the working directory");
        let text = std::fs::read_to_string(csv.path()).unwrap();
        assert!(text.starts_with("id,name,code,state"), "{text}");
        assert!(text.contains("s014,Student 14,"), "{text}");

        // Snapshot of the selected student.
        tmux.keys(&["s"]);
        tmux.wait_for("saved to");
        let snaps: Vec<_> = std::fs::read_dir(dir.join("snaps")).unwrap().collect();
        assert_eq!(snaps.len(), 1);

        // Paste a roster (bracketed paste).
        tmux.run(&["set-buffer", "x100\tpaste001\nx101\tpaste002\n"]);
        tmux.run(&["paste-buffer", "-p", "-t", "t"]);
        tmux.wait_for("added 2 students");

        // Resize to a big terminal: everyone fits on one page.
        tmux.run(&["resize-window", "-t", "t", "-x", "200", "-y", "60"]);
        let s = tmux.wait_for("page 1/1");
        assert!(s.lines().any(|l| l.chars().count() > 150), "{s}");
        tmux.wait_for("x101");

        // Filter.
        tmux.keys(&["/"]);
        tmux.text("student 1");
        tmux.keys(&["Enter"]);
        let s = tmux.wait_for("shown");
        assert!(!s.contains("Student 9 "), "{s}");
        tmux.keys(&["Escape"]);

        // Quit: q asks, another key cancels, y confirms.
        tmux.keys(&["q"]);
        tmux.wait_for("Quit rtcproctor?");
        tmux.keys(&["n"]);
        tmux.wait_gone("Quit rtcproctor?");
        tmux.keys(&["q"]);
        tmux.wait_for("Quit rtcproctor?");
        tmux.keys(&["y"]);
        let s = tmux.wait_for("EXITED:0");
        assert!(
            !s.contains("rtcproctor  ●"),
            "the alternate screen is gone: {s}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ctrl_z_suspends_and_fg_resumes() {
        let dir = temp_dir("susp");
        let roster = dir.join("roster.tsv");
        std::fs::write(&roster, "a1\tcode1\na2\tcode2\n").expect("roster file");
        let tmux = Tmux {
            socket: format!("rtcp-e2e-{}-susp", std::process::id()),
        };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "80",
            "-y",
            "24",
            "bash",
            "--norc",
            "--noprofile",
            "-i",
        ]);
        tmux.run(&["set", "-g", "escape-time", "0"]);
        let cmd = format!(
            "PS1='PROMPT$ '; {} --log-file {} monitor --roster {} --fake-engine 2 --no-bell \
             --no-desktop-notify",
            env!("CARGO_BIN_EXE_rtcproctor"),
            dir.join("log.txt").display(),
            roster.display()
        );
        tmux.text(&cmd);
        tmux.keys(&["Enter"]);
        tmux.wait_for("rtcproctor  ●");
        tmux.keys(&["C-z"]);
        let s = tmux.wait_for("Stopped");
        assert!(
            !s.contains("rtcproctor  ●"),
            "the shell has the screen: {s}"
        );
        tmux.text("fg");
        tmux.keys(&["Enter"]);
        tmux.wait_for("rtcproctor  ●");
        tmux.keys(&["q", "y"]);
        tmux.wait_gone("rtcproctor  ●");
        // `fg` returns the job's exit status.
        tmux.text("echo EXITED:$?");
        tmux.keys(&["Enter"]);
        tmux.wait_for("EXITED:0");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `rtcproctor demo`: the real engine, embedded server and synthetic
    /// students (WebRTC on loopback) behind the dashboard.
    #[test]
    fn demo_shows_real_streams() {
        let dir = temp_dir("demo");
        let tmux = Tmux {
            socket: format!("rtcp-e2e-{}-demo", std::process::id()),
        };
        let cmd = format!(
            "COLORTERM=truecolor RTCPROCTOR_DATA_DIR={} {} --log-file {} demo --students 3; echo EXITED:$?; sleep 30",
            dir.display(),
            env!("CARGO_BIN_EXE_rtcproctor"),
            dir.join("log.txt").display()
        );
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "30",
            "sh",
            "-c",
            &cmd,
        ]);
        let deadline = Instant::now() + Duration::from_secs(60);
        let s = loop {
            let s = tmux.screen();
            // Three roster students and the walk-in who is not on it.
            if s.contains("● 4 live") && s.contains("5fps") && s.contains("walk-in") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the demo students did not go live:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        assert!(s.contains("1 off-air"), "{s}");
        assert!(s.contains("unknown"), "the walk-in is marked unknown: {s}");
        assert!(s.contains("▀"), "pictures are drawn: {s}");
        tmux.keys(&["Enter"]);
        tmux.wait_for("· code ");
        tmux.keys(&["Escape", "q", "y"]);
        tmux.wait_for("EXITED:0");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sigterm_restores_the_terminal() {
        let dir = temp_dir("term");
        let tmux = start(&dir, "term", 80, 24, "--no-bell");
        tmux.wait_for("rtcproctor");
        let pids = Command::new("pgrep")
            .args(["-f", &dir.join("snaps").display().to_string()])
            .output()
            .unwrap();
        let pids = String::from_utf8_lossy(&pids.stdout).to_string();
        let mut killed = false;
        for pid in pids.split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "rtcproctor" {
                Command::new("kill").args(["-TERM", pid]).status().unwrap();
                killed = true;
            }
        }
        assert!(killed, "no rtcproctor process found in {pids:?}");
        let s = tmux.wait_for("EXITED:0");
        assert!(!s.contains("rtcproctor  ●"), "{s}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
