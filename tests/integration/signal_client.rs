//! Our socket.io client against the stock Node RTCMultiConnection-Server:
//! the RTCProctor flows (open, join, join request, relay, extra-data,
//! disconnect), many concurrent acks on one socket, and TLS pinning.

use std::time::Duration;

use rtcproctor::signal::client::{ClientConfig, ClientEvent, ClientTls, SignalClient};
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

use crate::stock_server::StockServer;
use rtcproctor::signal::server::{ServerConfig, start};

const T: Duration = Duration::from_secs(10);

async fn connect(
    url: &url::Url,
    userid: &str,
    room: &str,
) -> (SignalClient, Receiver<ClientEvent>) {
    connect_with_key(url, userid, room, None).await
}

async fn connect_with_key(
    url: &url::Url,
    userid: &str,
    room: &str,
    key: Option<&str>,
) -> (SignalClient, Receiver<ClientEvent>) {
    let mut cfg = ClientConfig::rtcproctor(url.clone(), userid, room);
    cfg.proctor_key = key.map(str::to_string);
    timeout(T, SignalClient::connect(cfg))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Wait for the named event, skipping others; returns its args.
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

fn room_args(code: &str) -> Vec<Value> {
    vec![json!({
        "sessionid": code,
        "session": {"audio": true, "video": true, "oneway": true},
        "mediaConstraints": {}, "sdpConstraints": {}, "streams": [],
        "extra": {}, "identifier": "", "password": ""
    })]
}

#[tokio::test]
async fn rtcproctor_session_through_the_stock_server() {
    let server = StockServer::start();
    session_flow(&server.url(), None).await;
}

#[tokio::test]
async fn rtcproctor_session_through_our_server() {
    let server = start(ServerConfig::loopback()).await.expect("our server");
    let url = url::Url::parse(server.base_url()).expect("url");
    session_flow(&url, Some(server.proctor_key())).await;
    server.shutdown().await;
}

/// Open, join (absent and present), join request, relay, extra-data,
/// disconnect: the RTCProctor flows on one server. `key`: the proctor key
/// our server wants from viewers.
async fn session_flow(url: &url::Url, key: Option<&str>) {
    let (stu, mut stu_rx) = connect(url, "stuUser1", "room1").await;
    // Emitted right after connect() returns: must not be dropped.
    let ack = stu
        .emit_with_ack("open-room", room_args("room1"), T)
        .await
        .expect("open-room ack");
    assert_eq!(ack, vec![json!(true)]);

    let (mon, mut mon_rx) = connect_with_key(url, "monUser1", "room1", key).await;
    let absent = mon
        .emit_with_ack("join-room", room_args("nobody"), T)
        .await
        .expect("join ack");
    assert_eq!(absent, vec![json!(false), json!("Room not available")]);
    let joined = mon
        .emit_with_ack("join-room", room_args("room1"), T)
        .await
        .expect("join ack");
    assert_eq!(joined, vec![json!(true)]);

    let request = json!({"remoteUserId": "room1", "sender": "monUser1", "message": {
        "newParticipationRequest": true, "isOneWay": true, "isDataOnly": false,
        "localPeerSdpConstraints": {"OfferToReceiveAudio": true, "OfferToReceiveVideo": true},
        "remotePeerSdpConstraints": {"OfferToReceiveAudio": true, "OfferToReceiveVideo": true}}});
    mon.emit("rtc-video-proctoring", vec![request])
        .await
        .expect("emit");
    let got = expect_event(&mut stu_rx, "rtc-video-proctoring").await;
    assert_eq!(got[0]["sender"], "monUser1");
    assert_eq!(got[0]["remoteUserId"], "stuUser1");
    assert_eq!(got[0]["message"]["newParticipationRequest"], true);

    let offer = json!({"remoteUserId": "monUser1", "sender": "stuUser1",
        "message": {"type": "offer", "sdp": "v=0\r\n"}});
    stu.emit("rtc-video-proctoring", vec![offer])
        .await
        .expect("emit");
    let got = expect_event(&mut mon_rx, "rtc-video-proctoring").await;
    assert_eq!(got[0]["message"]["type"], "offer");
    assert_eq!(got[0]["extra"], json!({}));

    stu.emit(
        "extra-data-updated",
        vec![json!({"message": "hello proctor", "attention": ""})],
    )
    .await
    .expect("emit");
    let got = expect_event(&mut mon_rx, "extra-data-updated").await;
    assert_eq!(
        got,
        vec![
            json!("stuUser1"),
            json!({"message": "hello proctor", "attention": ""})
        ]
    );

    stu.close().await;
    let got = expect_event(&mut mon_rx, "user-disconnected").await;
    assert_eq!(got, vec![json!("stuUser1")]);
    // The student's own channel ends with Disconnected.
    let last = timeout(T, async {
        let mut last = None;
        while let Some(ev) = stu_rx.recv().await {
            last = Some(ev);
        }
        last
    })
    .await
    .expect("student channel ends");
    assert_eq!(
        last,
        Some(ClientEvent::Disconnected {
            reason: "closed by client".into()
        })
    );
    // After the owner left the oneway room is gone.
    let gone = mon
        .emit_with_ack("join-room", room_args("room1"), T)
        .await
        .expect("join ack");
    assert_eq!(gone, vec![json!(false), json!("Room not available")]);
    mon.close().await;
}

/// A monitor fires hundreds of acks at once on one socket: each answer must
/// reach its own caller (rust_socketio's random 0..999 ids would collide).
#[tokio::test]
async fn hundreds_of_concurrent_acks_reach_their_callers() {
    let server = StockServer::start();
    let url = server.url();
    let (stu, _stu_rx) = connect(&url, "stuA", "live-room").await;
    assert_eq!(
        stu.emit_with_ack("open-room", room_args("live-room"), T)
            .await
            .expect("ack"),
        vec![json!(true)]
    );
    let (mon, _mon_rx) = connect(&url, "monA", "x").await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let mon = mon.clone();
        tasks.push(tokio::spawn(async move {
            let room = if i % 3 == 0 {
                "live-room".to_string()
            } else {
                format!("absent-{i}")
            };
            let ack = mon
                .emit_with_ack("check-presence", vec![json!(room)], T)
                .await
                .expect("check-presence ack");
            (i, room, ack)
        }));
    }
    for t in tasks {
        let (i, room, ack) = timeout(T, t).await.expect("in time").expect("task");
        assert_eq!(ack[0], json!(i % 3 == 0), "presence of {room}");
        assert_eq!(ack[1], json!(room), "ack {i} answered another request");
    }
}

#[tokio::test]
async fn wss_with_pinned_or_loopback_certificates() {
    let server = StockServer::start_tls();
    let url = server.url();
    let pin = server.cert_sha256.clone().expect("tls server");

    let mut cfg = ClientConfig::rtcproctor(url.clone(), "tlsUser", "r");
    cfg.tls = ClientTls::PinSha256(pin.to_uppercase());
    let (c, _rx) = timeout(T, SignalClient::connect(cfg.clone()))
        .await
        .expect("in time")
        .expect("pinned certificate accepted");
    let ack = c
        .emit_with_ack("check-presence", vec![json!("r")], T)
        .await
        .expect("ack");
    assert_eq!(ack[0], json!(false));
    c.close().await;

    cfg.tls = ClientTls::InsecureLoopback;
    let (c, _rx) = timeout(T, SignalClient::connect(cfg.clone()))
        .await
        .expect("in time")
        .expect("loopback accepted");
    c.close().await;

    cfg.tls = ClientTls::PinSha256("00".repeat(32));
    let err = timeout(T, SignalClient::connect(cfg.clone()))
        .await
        .expect("in time")
        .err()
        .expect("a wrong pin must be refused");
    assert!(err.to_string().contains("TLS"), "{err}");

    // A self-signed certificate fails normal verification.
    cfg.tls = ClientTls::Verify;
    assert!(
        timeout(T, SignalClient::connect(cfg))
            .await
            .expect("in time")
            .is_err()
    );
}

#[tokio::test]
async fn wss_to_our_self_signed_server_with_its_printed_fingerprint() {
    let mut config = ServerConfig::loopback();
    config.tls = rtcproctor::signal::tls::TlsMode::SelfSigned;
    let server = start(config).await.expect("our server");
    let url = url::Url::parse(server.base_url()).expect("url");
    assert_eq!(url.scheme(), "https");
    let pin = server.fingerprint().expect("a fingerprint").to_string();
    let mut cfg = ClientConfig::rtcproctor(url.clone(), "tlsOurs", "r");
    // As printed ("AB:CD:..."): colons and case are accepted.
    cfg.tls = ClientTls::PinSha256(pin);
    let (c, _rx) = timeout(T, SignalClient::connect(cfg.clone()))
        .await
        .expect("in time")
        .expect("pinned certificate accepted");
    let ack = c
        .emit_with_ack("check-presence", vec![json!("r")], T)
        .await
        .expect("ack");
    assert_eq!(ack[0], json!(false));
    c.close().await;
    cfg.tls = ClientTls::PinSha256("00".repeat(32));
    assert!(
        timeout(T, SignalClient::connect(cfg))
            .await
            .expect("in time")
            .is_err()
    );
    server.shutdown().await;
}
