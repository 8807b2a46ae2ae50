//! The synthetic student's tone (`student --tone`) reaches the monitor's
//! audio meter: the level from the RFC 6464 extension is clearly above
//! silence for a toned student and at the floor for a silent one.

// Test fixtures: a failed step should panic right there.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use rtcproctor::proctor::{EngineCommand, EngineConfig, EngineEvent, Timing, engine};
use rtcproctor::roster::Roster;
use rtcproctor::signal::client::ClientTls;
use rtcproctor::signal::server::{ServerConfig, start};
use rtcproctor::sim::student::{StudentConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meter_hears_the_tone_and_silence_stays_at_the_floor() {
    let server = start(ServerConfig::loopback()).await.unwrap();
    let url = url::Url::parse(server.base_url()).unwrap();
    let cancel = CancellationToken::new();
    for (code, tone) in [("toned", Some(440.0)), ("quiet", None)] {
        let cfg = StudentConfig {
            tls: ClientTls::InsecureLoopback,
            width: 160,
            height: 120,
            tone,
            udp_bind: vec!["127.0.0.1:0".into()],
            ..StudentConfig::new(url.clone(), code, code)
        };
        tokio::spawn(run(cfg, cancel.clone(), None));
    }
    let mut cfg = EngineConfig::new(url.clone());
    cfg.proctor_key = Some(server.proctor_key().to_string());
    cfg.decode_workers = 1;
    cfg.timing = Timing {
        poll_off_air: Duration::from_millis(500),
        stats_every: Duration::from_millis(500),
        ..Timing::default()
    };
    let mut e = engine::start(Roster::parse("t\ttoned\nq\tquiet\n").unwrap(), cfg).unwrap();
    let r = timeout(Duration::from_secs(60), async {
        // Stats come every 500 ms, a beep every second, and the beeps'
        // loudness cycles every 3 s: collect 5 s of each.
        let (mut toned, mut quiet) = (Vec::new(), Vec::new());
        while toned.len() < 10 || quiet.len() < 10 {
            let Some(ev) = e.events.recv().await else {
                panic!("engine stopped")
            };
            if let EngineEvent::Stats { student, stats } = ev
                && stats.fps_received > 0.0
            {
                match student.0.as_str() {
                    "t" => toned.push(stats.audio_level),
                    "q" => quiet.push(stats.audio_level),
                    _ => {}
                }
            }
        }
        let loudest = toned.iter().cloned().fold(0.0f32, f32::max);
        // The loudest beep is -9 dBov: 0.85 on the meter; the softest
        // (-27 dBov, 0.55) shows the meter moving.
        assert!((0.75..=0.95).contains(&loudest), "toned levels {toned:?}");
        assert!(
            toned.iter().any(|l| (0.4..0.65).contains(l)),
            "the meter does not move with the beeps: {toned:?}"
        );
        assert!(
            quiet.iter().all(|l| *l == 0.0),
            "silence is above the floor: {quiet:?}"
        );
        e.commands.send(EngineCommand::Shutdown).await.unwrap();
        while e.events.recv().await.is_some() {}
    })
    .await;
    cancel.cancel();
    server.shutdown().await;
    r.expect("tone meter test timed out");
}
