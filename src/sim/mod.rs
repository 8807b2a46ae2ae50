//! Synthetic students: publish an H.264 test pattern like the student page does.
//!
//! - [`pattern`]: the picture (name, moving square, machine-readable marks)
//!   and `read_marks`, which monitors use to measure from pixels alone.
//! - [`encoder`]: openh264, Constrained Baseline like Chromium.
//! - [`source`]: one video thread per student feeding all its viewers.
//! - [`peer`]: one WebRTC peer connection per watching proctor.
//! - [`student`]: signalling, reconnection and the demo schedules.
//!
//! `--count N` runs N students in one process. Each has its own encoder:
//! every picture carries its student's name, counter and timestamp, so
//! sharing encoded frames between students would not be honest. Cost per
//! student is in BENCHMARKS.md.

pub mod encoder;
mod font;
pub mod pattern;
pub mod peer;
pub mod source;
pub mod student;
pub mod tone;

use std::time::Duration;

use rtc::peer_connection::configuration::RTCIceServer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::{ServerOpts, StudentArgs};
use crate::signal::client::ClientTls;
use crate::{Error, Result};
use student::{Schedule, StudentConfig, StudentEvent};

/// Entry point of `rtcproctor student`.
pub async fn run_student(args: StudentArgs) -> Result<()> {
    let configs = configs_from_args(&args)?;
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(1024);
    let mut tasks = tokio::task::JoinSet::new();
    for cfg in configs {
        let (cancel, tx) = (cancel.clone(), tx.clone());
        tasks.spawn(async move { student::run(cfg, cancel, Some(tx)).await });
    }
    drop(tx);
    let stop = async {
        match args.duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            ev = rx.recv() => match ev {
                Some(ev) => println!("{}", describe(&ev)),
                None => break,
            },
            Some(done) = tasks.join_next() => {
                // A student ends only on a setup error (bad size, no encoder).
                if let Ok(Err(e)) = done {
                    cancel.cancel();
                    return Err(e);
                }
            }
        }
    }
    cancel.cancel();
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            return Err(e);
        }
    }
    Ok(())
}

/// One line per event for the terminal.
pub fn describe(ev: &StudentEvent) -> String {
    match ev {
        StudentEvent::Live { code } => format!("{code}: live"),
        StudentEvent::Offline { code, reason } => format!("{code}: off-air ({reason})"),
        StudentEvent::ViewerJoined { code, viewer } => format!("{code}: proctor {viewer} joins"),
        StudentEvent::ViewerConnected { code, viewer } => {
            format!("{code}: streaming to proctor {viewer}")
        }
        StudentEvent::ViewerLeft { code, viewer } => format!("{code}: proctor {viewer} left"),
        StudentEvent::Sent {
            code,
            attention,
            text,
            ..
        } => {
            if *attention {
                format!("{code}: raised attention")
            } else {
                format!("{code}: said \"{text}\"")
            }
        }
        StudentEvent::FromProctor {
            code,
            viewer,
            extra,
        } => format!("{code}: from proctor {viewer}: {extra}"),
    }
}

/// The students `args` describe: codes CODE (or CODE-1..CODE-N), names.
pub fn configs_from_args(args: &StudentArgs) -> Result<Vec<StudentConfig>> {
    let server = url::Url::parse(&args.server).map_err(|e| {
        Error::Invalid(format!(
            "--server \"{}\" is not a URL ({e}); use e.g. http://127.0.0.1:8443/",
            args.server
        ))
    })?;
    let (width, height) = parse_size(&args.size)?;
    if args.count == 0 {
        return Err(Error::Invalid("--count must be at least 1".into()));
    }
    if args.fps == 0 || args.fps > 60 {
        return Err(Error::Invalid(format!(
            "--fps {} is out of range; use 1 to 60",
            args.fps
        )));
    }
    if let Some(hz) = args.tone
        && !tone::TONE_HZ.contains(&hz)
    {
        return Err(Error::Invalid(format!(
            "--tone {hz} is out of range; use 20 to 20000 Hz, e.g. --tone 440"
        )));
    }
    let tls = match (&args.server_cert_sha256, args.insecure_loopback) {
        (Some(pin), _) => ClientTls::PinSha256(pin.clone()),
        (None, true) => ClientTls::InsecureLoopback,
        (None, false) => ClientTls::Verify,
    };
    let secs = |name: &str, v: Option<f64>| -> Result<Option<Duration>> {
        match v {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            Some(s) => Err(Error::Invalid(format!(
                "{name} {s} must be a positive number of seconds"
            ))),
        }
    };
    let schedule = Schedule {
        chat_every: secs("--chat-every", args.chat_every)?,
        attention_every: secs("--attention-every", args.attention_every)?,
        drop_every: secs("--drop-every", args.drop_every)?,
        drop_for: secs("--drop-for", Some(args.drop_for))?.unwrap_or_default(),
        phase: 0.0,
    };
    let ice_servers = ice_servers(&args.ice);
    let mut out = Vec::with_capacity(args.count);
    for i in 1..=args.count {
        let (code, name) = if args.count == 1 {
            (
                args.code.clone(),
                args.name.clone().unwrap_or_else(|| args.code.clone()),
            )
        } else {
            (
                format!("{}-{i}", args.code),
                match &args.name {
                    Some(n) => format!("{n} {i}"),
                    None => format!("{}-{i}", args.code),
                },
            )
        };
        let mut schedule = schedule.clone();
        if args.stagger && args.count > 1 {
            // Student i first acts at i/N of each period.
            schedule.phase = i as f64 / args.count as f64;
        }
        out.push(StudentConfig {
            tls: tls.clone(),
            width,
            height,
            fps: args.fps,
            texture: args.texture,
            audio: !args.no_audio,
            tone: args.tone,
            ice_servers: ice_servers.clone(),
            udp_bind: vec![args.udp_bind.clone()],
            schedule,
            ..StudentConfig::new(server.clone(), &code, &name)
        });
    }
    Ok(out)
}

/// "WxH" with even numbers of at least 32x24.
pub fn parse_size(text: &str) -> Result<(usize, usize)> {
    let parsed = text.split_once(['x', 'X']).and_then(|(w, h)| {
        Some((
            w.trim().parse::<usize>().ok()?,
            h.trim().parse::<usize>().ok()?,
        ))
    });
    match parsed {
        Some((w, h))
            if w >= 32
                && h >= 24
                && w.is_multiple_of(2)
                && h.is_multiple_of(2)
                && w <= 4096
                && h <= 4096 =>
        {
            Ok((w, h))
        }
        _ => Err(Error::Invalid(format!(
            "--size \"{text}\" is not a usable picture size; use WIDTHxHEIGHT with even numbers from 32x24 up, e.g. 320x240"
        ))),
    }
}

/// ICE servers from --ice/--turn-user/--turn-pass (credentials go to turn: URLs).
pub fn ice_servers(opts: &ServerOpts) -> Vec<RTCIceServer> {
    opts.ice
        .iter()
        .map(|url| {
            let turn = url.starts_with("turn:") || url.starts_with("turns:");
            RTCIceServer {
                urls: vec![url.clone()],
                username: if turn {
                    opts.turn_user.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                credential: if turn {
                    opts.turn_pass.clone().unwrap_or_default()
                } else {
                    String::new()
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> StudentArgs {
        let mut argv = vec![
            "rtcproctor",
            "student",
            "--server",
            "http://127.0.0.1:9/",
            "--code",
            "C",
        ];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv)
            .expect("parse")
            .command
        {
            crate::cli::Command::Student(a) => a,
            _ => panic!("not student"),
        }
    }

    #[test]
    fn sizes_parse_or_explain() {
        assert_eq!(parse_size("320x240").expect("ok"), (320, 240));
        assert_eq!(parse_size("640X480").expect("ok"), (640, 480));
        for bad in ["320", "321x240", "16x12", "axb", "320x240x1"] {
            let e = parse_size(bad).expect_err(bad).to_string();
            assert!(e.contains("e.g. 320x240"), "{e}");
        }
    }

    #[test]
    fn tone_defaults_to_440_and_is_checked() {
        assert_eq!(configs_from_args(&args(&[])).expect("cfg")[0].tone, None);
        let one = configs_from_args(&args(&["--tone"])).expect("cfg");
        assert_eq!(one[0].tone, Some(440.0));
        let one = configs_from_args(&args(&["--tone", "880"])).expect("cfg");
        assert_eq!(one[0].tone, Some(880.0));
        let e = configs_from_args(&args(&["--tone", "30000"])).expect_err("too high");
        assert!(e.to_string().contains("e.g. --tone 440"), "{e}");
        assert!(
            crate::cli::Cli::try_parse_from([
                "rtcproctor",
                "student",
                "--server",
                "x",
                "--code",
                "C",
                "--tone",
                "--no-audio"
            ])
            .is_err(),
            "a tone needs the audio track"
        );
    }

    #[test]
    fn count_makes_numbered_codes_and_names() {
        let cfgs = configs_from_args(&args(&["--count", "3", "--name", "Ann"])).expect("cfgs");
        let codes: Vec<_> = cfgs.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes, ["C-1", "C-2", "C-3"]);
        assert_eq!(cfgs[2].name, "Ann 3");
        let one = configs_from_args(&args(&[])).expect("cfg");
        assert_eq!((one[0].code.as_str(), one[0].name.as_str()), ("C", "C"));
        assert!(one[0].audio);
        assert_eq!(one[0].tls, ClientTls::Verify);
    }

    #[test]
    fn schedules_and_tls_flags_map_to_the_config() {
        let cfgs = configs_from_args(&args(&[
            "--count",
            "2",
            "--chat-every",
            "10",
            "--drop-every",
            "30",
            "--drop-for",
            "4",
            "--stagger",
            "--insecure-loopback",
            "--ice",
            "turn:127.0.0.1:3478",
            "--turn-user",
            "u",
            "--turn-pass",
            "p",
        ]))
        .expect("cfgs");
        assert_eq!(cfgs[0].schedule.chat_every, Some(Duration::from_secs(10)));
        assert_eq!((cfgs[0].schedule.phase, cfgs[1].schedule.phase), (0.5, 1.0));
        assert_eq!(cfgs[0].schedule.drop_for, Duration::from_secs(4));
        assert_eq!(cfgs[0].schedule.attention_every, None);
        assert_eq!(cfgs[0].tls, ClientTls::InsecureLoopback);
        assert_eq!(cfgs[0].ice_servers[0].username, "u");
        assert!(configs_from_args(&args(&["--chat-every=-1"])).is_err());
        assert!(configs_from_args(&args(&["--fps", "0"])).is_err());
    }
}
