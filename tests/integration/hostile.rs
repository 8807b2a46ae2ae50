//! Hostile input: property tests that throw random and malformed input at
//! every parser that sees data from outside (framing, envelopes, chat,
//! rosters, themes) and check that each one fails cleanly and that well
//! behaved users keep working. Each property prints how many cases it tried.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use rtcproctor::proctor::student::{Dedup, Incoming, MAX_CHAT_CHARS, plain_text};
use rtcproctor::roster::{Roster, decode_text};
use rtcproctor::signal::packet::{
    EnginePacket, FrameError, SocketPacket, format_socket, parse_engine, parse_socket,
};
use rtcproctor::signal::protocol::{Envelope, HandshakeQuery, RoomRequest};
use rtcproctor::signal::rooms::{Connect, Effect, KeyStatus, Limits, Registry, Sid};
use rtcproctor::tui::sanitize::{MAX_CHARS, clean, label};
use rtcproctor::tui::theme::Theme;

/// Cases per property: enough to hit the odd corners, small enough for a
/// two-core machine.
const CASES: u32 = 2000;

/// Run `test` on `cases` values of `strategy`; print the count tried.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let tried = Cell::new(0u32);
    let result = runner.run(&strategy, |v| {
        tried.set(tried.get() + 1);
        test(v)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    eprintln!("hostile: {name}: {} cases tried, all passed", tried.get());
    assert!(tried.get() >= cases, "{name}: only {} cases", tried.get());
}

/// Characters that start or are terminal escapes, plus ordinary ones, so
/// random strings are dense in near-miss sequences.
fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec![
            '\x1b', '[', ']', 'P', '_', '^', 'X', '\\', '\x07', '\u{9b}', '\u{9c}', '\u{9d}',
            '\u{90}', '\u{9e}', '\u{9f}', '\u{85}', '\u{202a}', '\u{202b}', '\u{202c}',
            '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200e}',
            '\u{200f}', '\u{061c}', '\u{feff}', '\n', '\r', '\t', '\0', '\x7f', 'a', ' ', ';',
            '0', '<', '>', '&', '"', '\'', ',', '/', '{', '}',
        ]),
    ]
}

fn nasty_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(nasty_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        nasty_string(40).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((nasty_string(12), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

// ---------------------------------------------------------------- framing

#[test]
fn framing_random_bytes_never_panic() {
    check(
        "framing/random bytes",
        CASES,
        prop::collection::vec(any::<u8>(), 0..600),
        |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_engine(&text);
            let _ = parse_socket(&text);
            Ok(())
        },
    );
}

/// Frames that look right at the start: a real packet prefix, a namespace,
/// an ack id, then JSON that may be truncated, oversized or deeply nested.
#[test]
fn framing_near_miss_frames_fail_cleanly() {
    let prefix = prop::sample::select(vec![
        "",
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "40",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "47",
        "42/",
        "42/a,",
        "4/x",
        "43/n,",
        "40/admin,",
    ]);
    let body = prop_oneof![
        json_value().prop_map(|v| v.to_string()),
        (json_value(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            // Truncated JSON, cut on a character boundary.
            let s = v.to_string();
            let n = s.chars().count();
            s.chars().take(cut.index(n + 1)).collect()
        }),
        (0usize..400).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
        (0usize..400).prop_map(|d| "[".repeat(d)),
        (1usize..200_000).prop_map(|n| format!("[\"e\",\"{}\"]", "x".repeat(n))),
        nasty_string(80),
    ];
    let ack = prop_oneof![
        Just(String::new()),
        "[0-9]{1,30}".prop_map(String::from),
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
    ];
    check(
        "framing/near-miss frames",
        CASES,
        (prefix, ack, body),
        |(prefix, ack, body)| {
            let frame = format!("{prefix}{ack}{body}");
            match parse_engine(&frame) {
                Ok(EnginePacket::Message(p)) => {
                    // Whatever parses must survive a format/parse round trip
                    // (up to float precision: serde_json parses floats to
                    // the nearest value only with `float_roundtrip`).
                    let shape = |p: &SocketPacket| match p {
                        SocketPacket::Event { ns, id, name, args } => {
                            Some((ns.clone(), *id, Some(name.clone()), args.len()))
                        }
                        SocketPacket::Ack { ns, id, args } => {
                            Some((ns.clone(), Some(*id), None, args.len()))
                        }
                        _ => None,
                    };
                    if let Some(want) = shape(&p) {
                        let again = parse_socket(&format_socket(&p))
                            .map_err(|e| TestCaseError::fail(format!("{frame:?}: {e}")))?;
                        prop_assert_eq!(shape(&again), Some(want), "frame {:?}", frame);
                    }
                }
                Ok(_) => {}
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            Ok(())
        },
    );
}

#[test]
fn framing_ack_ids_are_checked() {
    check(
        "framing/ack ids",
        CASES,
        ("[0-9]{1,40}", prop::sample::select(vec!["2", "3"])),
        |(digits, kind)| {
            let frame = format!("{kind}{digits}[\"x\"]");
            let parsed = parse_socket(&frame);
            match digits.parse::<u64>() {
                Ok(id) => match parsed {
                    Ok(SocketPacket::Event { id: got, .. }) => prop_assert_eq!(got, Some(id)),
                    Ok(SocketPacket::Ack { id: got, .. }) => prop_assert_eq!(got, id),
                    other => prop_assert!(false, "{frame}: {other:?}"),
                },
                Err(_) => prop_assert_eq!(
                    parsed,
                    Err(FrameError::Malformed("ack id out of range")),
                    "frame {}",
                    frame
                ),
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------ server state rules

const GOOD_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const BAD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// One thing a hostile socket does.
#[derive(Debug, Clone)]
enum Hostile {
    Connect(String, bool),
    Open(Value),
    Join(Value),
    Relay(Value),
    Extra(Value),
    Presence(String),
    Leave(String),
}

fn hostile_step() -> impl Strategy<Value = Hostile> {
    // Names a hostile socket picks; never the good users' names or code
    // (those contain capitals), so takeovers are out of scope here: they
    // are the reclaim rule, tested in tests/node/rules.js.
    let name = prop_oneof![
        "[a-z0-9-]{0,12}",
        Just("room".to_string()),
        Just(String::new())
    ]
    .boxed();
    let request = (name.clone(), json_value(), json_value(), json_value()).prop_map(
        |(sessionid, session, extra, password)| {
            json!({"sessionid": sessionid, "session": session, "extra": extra, "password": password})
        },
    )
    .boxed();
    let envelope = (name.clone(), name.clone(), json_value()).prop_map(
        |(to, from, message)| json!({"remoteUserId": to, "sender": from, "message": message}),
    );
    prop_oneof![
        (nasty_string(60), any::<bool>()).prop_map(|(q, k)| Hostile::Connect(q, k)),
        prop_oneof![request.clone(), json_value()].prop_map(Hostile::Open),
        prop_oneof![request, json_value()].prop_map(Hostile::Join),
        prop_oneof![envelope, json_value()].prop_map(Hostile::Relay),
        json_value().prop_map(Hostile::Extra),
        name.clone().prop_map(Hostile::Presence),
        name.prop_map(Hostile::Leave),
    ]
}

fn connect(reg: &mut Registry, query: &str, key: KeyStatus, ip: IpAddr, now: Instant) -> Sid {
    let sid = Sid::new();
    let _ = reg.connect(
        Connect {
            sid,
            query: HandshakeQuery::parse(query),
            key,
            ip,
            fallback_userid: format!("fallback-{sid}"),
        },
        now,
    );
    sid
}

fn emits_to(effects: &[Effect], to: Sid) -> Vec<(String, Vec<Value>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit { to: t, event, args } if *t == to => Some((event.clone(), args.clone())),
            _ => None,
        })
        .collect()
}

/// Random sequences of hostile events (bad handshakes, malformed room
/// requests, forged envelopes, huge or odd extra) from two sockets, then a
/// well-behaved student and proctor on the same registry: they still go
/// live, the join request reaches the student, the offer reaches the
/// proctor, and chat fans out. Every failure is a clean `Err` or a `false`
/// ack, never a panic.
#[test]
fn hostile_sockets_do_not_disturb_a_good_pair() {
    check(
        "rooms/hostile sockets then a good pair",
        CASES,
        prop::collection::vec(hostile_step(), 1..24),
        |steps| {
            let now = Instant::now();
            let mut reg = Registry::new(Limits::default(), false, None);
            let mut bad = vec![
                connect(&mut reg, "userid=h1", KeyStatus::Missing, BAD_IP, now),
                connect(&mut reg, "userid=h2", KeyStatus::Wrong, BAD_IP, now),
            ];
            for (i, step) in steps.into_iter().enumerate() {
                let sid = bad[i % bad.len()];
                match step {
                    Hostile::Connect(q, wrong) => {
                        let key = if wrong {
                            KeyStatus::Wrong
                        } else {
                            KeyStatus::Missing
                        };
                        // Hostile queries may not pick the good users' names.
                        if !q.contains('S') && !q.contains('P') {
                            bad.push(connect(&mut reg, &q, key, BAD_IP, now));
                        }
                    }
                    Hostile::Open(v) => {
                        if let Ok(req) = serde_json::from_value::<RoomRequest>(v) {
                            let (ack, _) = reg.open_room(sid, req, now);
                            prop_assert!(!ack.is_empty());
                        }
                    }
                    Hostile::Join(v) => {
                        if let Ok(req) = serde_json::from_value::<RoomRequest>(v) {
                            let (ack, _) = reg.join_room(sid, req, now);
                            // Without the proctor key no join succeeds.
                            prop_assert_eq!(&ack[0], &json!(false));
                        }
                    }
                    Hostile::Relay(v) => {
                        if let Ok(env) = serde_json::from_value::<Envelope>(v) {
                            let _ = reg.relay(sid, env);
                        }
                    }
                    Hostile::Extra(v) => {
                        let _ = reg.extra_updated(sid, v);
                    }
                    Hostile::Presence(room) => {
                        let _ = reg.check_presence(sid, &room);
                    }
                    Hostile::Leave(remote) => {
                        let _ = reg.disconnect_with(sid, &remote);
                    }
                }
            }

            let s = connect(&mut reg, "userid=STU", KeyStatus::Missing, GOOD_IP, now);
            let m = connect(&mut reg, "userid=PROCTOR", KeyStatus::Valid, GOOD_IP, now);
            let room = |code: &str| -> RoomRequest {
                RoomRequest {
                    sessionid: code.into(),
                    session: json!({"audio": true, "video": true, "oneway": true}),
                    extra: json!({}),
                    ..RoomRequest::default()
                }
            };
            prop_assert_eq!(reg.open_room(s, room("CODE-1"), now).0, vec![json!(true)]);
            prop_assert_eq!(reg.join_room(m, room("CODE-1"), now).0, vec![json!(true)]);
            let env = |from: &str, to: &str, message: Value| Envelope {
                remote_user_id: to.into(),
                sender: from.into(),
                message,
                rest: Default::default(),
            };
            let fx = reg
                .relay(
                    m,
                    env(
                        "PROCTOR",
                        "CODE-1",
                        json!({"newParticipationRequest": true}),
                    ),
                )
                .map_err(TestCaseError::fail)?;
            prop_assert_eq!(
                emits_to(&fx, s).len(),
                1,
                "join request reaches the student"
            );
            let fx = reg
                .relay(
                    s,
                    env("STU", "PROCTOR", json!({"type": "offer", "sdp": "v=0"})),
                )
                .map_err(TestCaseError::fail)?;
            prop_assert!(
                emits_to(&fx, m)
                    .iter()
                    .any(|(_, a)| a[0]["message"]["type"] == "offer"),
                "offer reaches the proctor"
            );
            let fx = reg
                .extra_updated(s, json!({"message": "hello", "attention": ""}))
                .map_err(TestCaseError::fail)?;
            prop_assert!(!emits_to(&fx, m).is_empty(), "chat reaches the proctor");
            for sid in bad {
                prop_assert!(emits_to(&fx, sid).is_empty(), "chat leaked to {}", sid);
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------------ chat, extra

fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{feff}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}')
}

#[test]
fn sanitize_never_passes_controls_or_bidi() {
    check(
        "sanitize/clean and label",
        CASES,
        prop_oneof![
            3 => nasty_string(300),
            1 => (nasty_string(20), 900usize..3000)
                .prop_map(|(s, n)| s.repeat(n / (s.len() + 1) + 1)),
        ],
        |text| {
            for out in [clean(&text), label(&text)] {
                prop_assert!(
                    out.chars().all(|c| !is_forbidden(c)),
                    "{:?} -> {:?}",
                    text,
                    out
                );
                prop_assert!(out.chars().count() <= MAX_CHARS);
            }
            let l = label(&text);
            prop_assert_eq!(l.trim(), l.as_str());
            Ok(())
        },
    );
}

#[test]
fn chat_from_extra_is_plain_and_bounded() {
    let extra = prop_oneof![
        json_value(),
        (
            nasty_string(200),
            nasty_string(40),
            prop::option::of(any::<u64>())
        )
            .prop_map(|(m, a, id)| {
                let mut v = json!({"message": m, "attention": a});
                if let Some(id) = id {
                    v["msgId"] = json!(id);
                }
                v
            }),
        (1usize..10_000).prop_map(|n| json!({"message": "<b>".repeat(n)})),
    ];
    check("chat/Dedup::accept and plain_text", CASES, extra, |extra| {
        let mut d = Dedup::default();
        let first = d.accept(&extra);
        if let Some(got) = &first {
            let text = match got {
                Incoming::Chat(t) => t,
                Incoming::Attention { text, .. } => text,
            };
            prop_assert!(!text.chars().any(char::is_control), "{:?}", text);
            prop_assert!(text.chars().count() <= MAX_CHAT_CHARS);
            // The same delivery twice is one message.
            prop_assert_eq!(d.accept(&extra), None);
        }
        if let Some(s) = extra.get("message").and_then(Value::as_str) {
            let p = plain_text(s);
            prop_assert!(!p.chars().any(char::is_control));
            prop_assert!(p.chars().count() <= MAX_CHAT_CHARS);
        }
        Ok(())
    });
}

// -------------------------------------------------------- roster, themes

fn roster_text() -> impl Strategy<Value = String> {
    let cell = prop_oneof![
        "[a-z0-9-]{0,10}",
        Just("id".to_string()),
        Just("code".to_string()),
        Just("name".to_string()),
        Just("\"quoted, cell\"".to_string()),
        Just("\"unterminated".to_string()),
        nasty_string(12),
    ];
    let line = (
        prop::collection::vec(cell, 0..5),
        prop::sample::select(vec!["\t", ",", ";"]),
    )
        .prop_map(|(cells, sep)| cells.join(sep));
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

#[test]
fn roster_errors_name_a_line() {
    check("roster/parse", CASES, roster_text(), |text| {
        // Lines as the roster counts them: CRLF, LF or a lone CR (old Mac
        // files) end a line.
        let lines = text
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .split('\n')
            .count();
        if let Err((line, message)) = Roster::parse(&text) {
            prop_assert!(line <= lines + 1, "line {} of {}: {}", line, lines, message);
            prop_assert!(!message.is_empty());
        }
        Ok(())
    });
    check(
        "roster/decode random bytes",
        CASES,
        prop::collection::vec(any::<u8>(), 0..400),
        |bytes| {
            if let Ok(text) = decode_text(&bytes) {
                let _ = Roster::parse(&text);
            }
            Ok(())
        },
    );
}

#[test]
fn theme_errors_are_clean() {
    let line = prop_oneof![
        Just("[colors]".to_string()),
        Just("[state]".to_string()),
        "[a-z_]{1,10} = \"#[0-9a-fA-F]{0,8}\"",
        "[a-z_]{1,10} = \"[a-z_]{0,10}\"",
        "[a-z_]{1,10} = [0-9]{1,4}",
        nasty_string(30),
    ];
    check(
        "theme/from_toml",
        CASES,
        prop::collection::vec(line, 0..10).prop_map(|l| l.join("\n")),
        |text| {
            let syntax_ok = text.parse::<toml::Table>().is_ok();
            match Theme::from_toml(&text, "fuzz.toml") {
                Ok(_) => {}
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(msg.contains("fuzz.toml"), "{}", msg);
                    if !syntax_ok {
                        prop_assert!(msg.contains("line"), "no line number: {}", msg);
                    }
                }
            }
            Ok(())
        },
    );
}

// ------------------------------------------------- a real server, over TCP

mod live {
    use std::time::Duration;

    use futures_util::SinkExt;
    use proptest::strategy::ValueTree;
    use rtcproctor::signal::client::{ClientConfig, ClientEvent, SignalClient};
    use rtcproctor::signal::server::{ServerConfig, start};
    use tokio::sync::mpsc::Receiver;
    use tokio::time::timeout;
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    const T: Duration = Duration::from_secs(10);
    /// Random events the hostile clients send, and raw frames.
    const EVENTS: usize = 400;
    const FRAMES: usize = 400;

    async fn connect(
        url: &url::Url,
        userid: &str,
        key: Option<&str>,
    ) -> (SignalClient, Receiver<ClientEvent>) {
        let mut cfg = ClientConfig::rtcproctor(url.clone(), userid, "");
        cfg.proctor_key = key.map(String::from);
        timeout(T, SignalClient::connect(cfg))
            .await
            .expect("connect in time")
            .expect("connect")
    }

    async fn expect_event(rx: &mut Receiver<ClientEvent>, name: &str) -> Vec<Value> {
        timeout(T, async {
            loop {
                match rx.recv().await {
                    Some(ClientEvent::Event { name: n, args }) if n == name => return args,
                    Some(ClientEvent::Event { .. }) => continue,
                    other => panic!("waiting for {name}, got {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {name} within {T:?}"))
    }

    fn sample<S: Strategy>(runner: &mut TestRunner, s: &S, n: usize) -> Vec<S::Value> {
        (0..n)
            .map(|_| s.new_tree(runner).expect("strategy").current())
            .collect()
    }

    fn room(code: &str) -> Vec<Value> {
        vec![json!({
            "sessionid": code,
            "session": {"audio": true, "video": true, "oneway": true},
            "extra": {}, "identifier": "", "password": ""
        })]
    }

    /// Hostile clients send random event names with random payloads and
    /// raw garbage frames to a real server; a good student and proctor on
    /// the same server then connect, exchange a join request and an offer,
    /// and chat.
    #[tokio::test]
    async fn a_real_server_keeps_serving_after_hostile_clients() {
        let server = start(ServerConfig::loopback()).await.expect("server");
        let url = url::Url::parse(server.base_url()).expect("url");
        let mut runner = TestRunner::new(Config {
            failure_persistence: None,
            ..Config::default()
        });
        let event_name = prop_oneof![
            prop::sample::select(vec![
                "open-room",
                "join-room",
                "rtc-video-proctoring",
                "extra-data-updated",
                "check-presence",
                "disconnect-with",
                "RTCMultiConnection-Custom-Message",
                "changed-uuid",
                "set-password",
                "get-public-rooms",
            ])
            .prop_map(String::from),
            nasty_string(30),
        ];
        let events = sample(
            &mut runner,
            &(event_name, prop::collection::vec(json_value(), 0..3)),
            EVENTS,
        );
        let frames = sample(
            &mut runner,
            &prop_oneof![
                nasty_string(200),
                (
                    prop::sample::select(vec!["4", "40", "42", "43", "2", "3"]),
                    json_value()
                )
                    .prop_map(|(p, v)| format!("{p}{v}")),
            ],
            FRAMES,
        );

        let (h1, _h1_rx) = connect(&url, "hostile-1", None).await;
        let (h2, _h2_rx) = connect(&url, "hostile-2", Some("wrong-key")).await;
        for (i, (name, args)) in events.iter().enumerate() {
            let h = if i % 2 == 0 { &h1 } else { &h2 };
            // Refusals and disconnects are fine; panics and hangs are not.
            let _ = timeout(T, h.emit(name, args.clone())).await;
        }
        let ws = format!(
            "ws://{}/socket.io/?EIO=4&transport=websocket",
            server.addr()
        );
        let mut sent = 0;
        for chunk in frames.chunks(50) {
            let Ok(Ok((mut sock, _))) = timeout(T, tokio_tungstenite::connect_async(&ws)).await
            else {
                panic!("raw WebSocket connect failed");
            };
            for f in chunk {
                if timeout(T, sock.send(Message::text(f.clone())))
                    .await
                    .is_ok_and(|r| r.is_ok())
                {
                    sent += 1;
                }
            }
            let _ = timeout(T, sock.close(None)).await;
        }
        eprintln!(
            "hostile: live server: {} random events, {} raw frames ({sent} sent before any hang-up)",
            events.len(),
            frames.len()
        );

        let (stu, mut stu_rx) = connect(&url, "GoodStudent", None).await;
        let ack = stu
            .emit_with_ack("open-room", room("GOOD-CODE"), T)
            .await
            .expect("open-room ack");
        assert_eq!(ack, vec![json!(true)]);
        let (mon, mut mon_rx) = connect(&url, "GoodProctor", Some(server.proctor_key())).await;
        let ack = mon
            .emit_with_ack("join-room", room("GOOD-CODE"), T)
            .await
            .expect("join-room ack");
        assert_eq!(ack, vec![json!(true)]);
        mon.emit(
            "rtc-video-proctoring",
            vec![json!({"remoteUserId": "GOOD-CODE", "sender": "GoodProctor",
                "message": {"newParticipationRequest": true, "isOneWay": true}})],
        )
        .await
        .expect("emit");
        let got = expect_event(&mut stu_rx, "rtc-video-proctoring").await;
        assert_eq!(got[0]["sender"], "GoodProctor");
        stu.emit(
            "rtc-video-proctoring",
            vec![
                json!({"remoteUserId": "GoodProctor", "sender": "GoodStudent",
                "message": {"type": "offer", "sdp": "v=0\r\n"}}),
            ],
        )
        .await
        .expect("emit");
        let got = expect_event(&mut mon_rx, "rtc-video-proctoring").await;
        assert_eq!(got[0]["message"]["type"], "offer");
        stu.emit(
            "extra-data-updated",
            vec![json!({"message": "still here", "attention": ""})],
        )
        .await
        .expect("emit");
        let got = expect_event(&mut mon_rx, "extra-data-updated").await;
        assert_eq!(got[1]["message"], "still here");
        for c in [&stu, &mon, &h1, &h2] {
            c.close().await;
        }
        server.shutdown().await;
    }
}
