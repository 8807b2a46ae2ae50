//! The signalling server driven by real socket.io clients on loopback:
//! node scripts with socket.io-client 3.0.4 (tests/node/*.js), the stock
//! RTCMultiConnection-Server for the compatibility check, and rust_socketio.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rtcproctor::roster::Roster;
use rtcproctor::signal::server::{Limits, ServerConfig, ServerHandle, start};
use tokio::process::Command;
use tokio::time::timeout;

/// Upper bound for one node script (each script also has its own deadline).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// Where `scripts/setup --test` installed the node packages.
fn node_dir() -> PathBuf {
    let dir = std::env::var_os("RTCPROCTOR_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/node"));
    let client = dir.join("node_modules/socket.io-client/package.json");
    assert!(
        client.exists(),
        "the node test packages are missing in {}: run `scripts/setup --test` \
         (or set RTCPROCTOR_NODE_DIR to where they are installed)",
        dir.display()
    );
    dir
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/node")
        .join(name)
}

/// Run a node script with these environment variables; panic with its
/// output unless it exits 0. Returns its stdout.
async fn run_node(name: &str, env: &[(&str, &str)]) -> String {
    let dir = node_dir();
    let mut cmd = Command::new("node");
    cmd.arg(script(name))
        .env("NODE_PATH", dir.join("node_modules"))
        .env("RTCPROCTOR_NODE_DIR", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .expect("node must be installed (scripts/setup --test)");
    let out = timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {SCRIPT_TIMEOUT:?}"))
        .expect("wait for node");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}

async fn loopback(f: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    // Server logs when RUST_LOG is set (e.g. RUST_LOG=rtcproctor=debug).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = ServerConfig::loopback();
    f(&mut config);
    timeout(Duration::from_secs(10), start(config))
        .await
        .expect("server starts in time")
        .expect("server starts")
}

async fn session_over(transports: &str) {
    let server = loopback(|_| {}).await;
    run_node(
        "session.js",
        &[
            ("SERVER_URL", server.base_url()),
            ("PROCTOR_KEY", server.proctor_key()),
            ("TRANSPORTS", transports),
        ],
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn full_session_polling_then_websocket() {
    session_over("polling,websocket").await;
}

#[tokio::test]
async fn full_session_websocket_only() {
    session_over("websocket").await;
}

#[tokio::test]
async fn full_session_polling_only() {
    session_over("polling").await;
}

/// Run one SCENARIO of rules.js against a server set up by `f`.
async fn scenario(name: &str, f: impl FnOnce(&mut ServerConfig), extra_env: &[(&str, &str)]) {
    let server = loopback(f).await;
    let mut env = vec![
        ("SERVER_URL", server.base_url()),
        ("PROCTOR_KEY", server.proctor_key()),
        ("SCENARIO", name),
    ];
    env.extend_from_slice(extra_env);
    run_node("rules.js", &env).await;
    server.shutdown().await;
}

#[tokio::test]
async fn error_acks() {
    scenario("acks", |_| {}, &[]).await;
}

#[tokio::test]
async fn proctor_key_and_reach_rules() {
    scenario("keys", |c| c.proctor_key = Some("exam-key-1".into()), &[]).await;
}

#[tokio::test]
async fn open_viewing_needs_no_key() {
    scenario("openViewing", |c| c.open_viewing = true, &[]).await;
}

#[tokio::test]
async fn failed_joins_and_floods_are_rate_limited() {
    scenario(
        "rateLimit",
        |c| {
            c.limits = Limits {
                failure_burst: 5.0,
                failures_per_min: 1.0,
                event_burst: 20.0,
                events_per_sec: 5.0,
                ..Limits::default()
            }
        },
        &[],
    )
    .await;
}

#[tokio::test]
async fn roster_restricts_publishing() {
    let roster = Roster::parse("id\tcode\ns1\tgood-code-1\n").expect("roster");
    scenario("roster", |c| c.roster = Some(roster), &[]).await;
}

#[tokio::test]
async fn oversize_and_malformed_messages() {
    scenario(
        "bounds",
        |c| {
            c.limits = Limits {
                max_extra_chars: 100,
                ..Limits::default()
            }
        },
        &[],
    )
    .await;
}

#[tokio::test]
async fn reclaim_by_userid() {
    scenario("reclaim", |_| {}, &[]).await;
}

#[tokio::test]
async fn a_class_arriving_at_once_is_served() {
    scenario("burst", |_| {}, &[("TRANSPORTS", "websocket")]).await;
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let server = loopback(|c| c.tls = rtcproctor::signal::server::TlsMode::SelfSigned).await;
    assert!(server.base_url().starts_with("https://127.0.0.1:"));
    let fingerprint = server
        .fingerprint()
        .expect("HTTPS has a fingerprint")
        .to_string();
    run_node(
        "rules.js",
        &[
            ("SERVER_URL", server.base_url()),
            ("SCENARIO", "https"),
            ("EXPECT_FINGERPRINT", &fingerprint),
        ],
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn http_routes_and_cors() {
    use rtcproctor::signal::protocol::IceServer;
    let ice = IceServer::from_cli(
        &["stun:127.0.0.1:3478".into(), "turn:127.0.0.1:3478".into()],
        Some("u"),
        Some("p"),
    )
    .expect("ice");
    let expect = serde_json::json!({"iceServers": [
        {"urls": ["stun:127.0.0.1:3478"]},
        {"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": "p"}
    ]})
    .to_string();
    scenario("http", |c| c.ice = ice, &[("EXPECT_CONFIG", &expect)]).await;
}

/// The stock npm rtcmulticonnection-server@1.3.3 (`node server.js`) on a
/// free loopback port; killed when dropped.
struct StockServer {
    url: String,
    _child: tokio::process::Child,
}

/// A free loopback port (bound and released; the server binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

async fn stock_server() -> StockServer {
    let pkg = node_dir().join("node_modules/rtcmulticonnection-server");
    assert!(
        pkg.join("server.js").exists(),
        "rtcmulticonnection-server@1.3.3 is missing in {}: run `scripts/setup --test`",
        pkg.display()
    );
    let port = free_port();
    // server.js reads config.json (port 9001, HTTP, admin off) from its own
    // folder; IP and PORT from the environment override address and port.
    let child = Command::new("node")
        .arg("server.js")
        .current_dir(&pkg)
        .env("IP", "127.0.0.1")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the stock server with node");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let ready = timeout(Duration::from_secs(15), async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        ready.is_ok(),
        "the stock server did not listen on {addr} within 15 s"
    );
    StockServer {
        url: format!("http://{addr}/"),
        _child: child,
    }
}

#[tokio::test]
async fn same_session_same_messages_as_the_stock_server() {
    let stock = stock_server().await;
    let ours = loopback(|_| {}).await;
    let out = run_node(
        "compat.js",
        &[
            ("STOCK_URL", &stock.url),
            ("OURS_URL", ours.base_url()),
            ("PROCTOR_KEY", ours.proctor_key()),
        ],
    )
    .await;
    assert!(out.contains("compat ok"), "{out}");
    ours.shutdown().await;
}

/// A rust_socketio client whose incoming events land on a channel.
mod rust_client {
    use std::time::Duration;

    use futures_util::FutureExt;
    use rust_socketio::Payload;
    use rust_socketio::asynchronous::{Client, ClientBuilder};
    use serde_json::Value;
    use tokio::sync::mpsc;

    pub struct Peer {
        pub client: Client,
        pub events: mpsc::UnboundedReceiver<(String, Vec<Value>)>,
    }

    pub async fn connect(base: &str, userid: &str, key: Option<&str>) -> Peer {
        let mut url = format!(
            "{base}?userid={userid}&sessionid=x&msgEvent=rtc-video-proctoring&extra=%7B%7D"
        );
        if let Some(k) = key {
            url.push_str(&format!("&proctorKey={k}"));
        }
        let (tx, events) = mpsc::unbounded_channel();
        let (connected_tx, mut connected) = mpsc::unbounded_channel();
        let client = ClientBuilder::new(url)
            .reconnect(false)
            .on(rust_socketio::Event::Connect, move |_, _| {
                connected_tx.send(()).ok();
                async {}.boxed()
            })
            .on_any(move |event, payload, _| {
                let tx = tx.clone();
                async move {
                    if let Payload::Text(values) = payload {
                        tx.send((String::from(event), values)).ok();
                    }
                }
                .boxed()
            })
            .connect()
            .await
            .expect("rust_socketio connects");
        // Wait for the server's CONNECT, as socket.io-client does (an event
        // sent before it is a protocol error). This client runs in the
        // server's process, so its first emit follows the CONNECT within
        // microseconds: that is what exposed the race between socketioxide's
        // spawned connect handler and a client's first events (handlers are
        // now installed in a connect middleware, before the CONNECT).
        tokio::time::timeout(Duration::from_secs(5), connected.recv())
            .await
            .expect("socket.io CONNECT within 5 s");
        Peer { client, events }
    }

    impl Peer {
        /// Emit and wait for the ack's arguments.
        pub async fn ack(&self, event: &str, data: Value) -> Vec<Value> {
            let (tx, mut rx) = mpsc::unbounded_channel();
            self.client
                .emit_with_ack(event, data, Duration::from_secs(5), move |p, _| {
                    let tx = tx.clone();
                    async move {
                        if let Payload::Text(v) = p {
                            tx.send(v).ok();
                        }
                    }
                    .boxed()
                })
                .await
                .expect("emit");
            let args = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("ack in time")
                .expect("ack");
            // rust_socketio hands an ack's argument list over as one array.
            match args.as_slice() {
                [Value::Array(inner)] => inner.clone(),
                _ => args,
            }
        }

        /// The next event named `name` (others are skipped).
        pub async fn next(&mut self, name: &str) -> Vec<Value> {
            let wait = async {
                loop {
                    match self.events.recv().await {
                        Some((event, args)) if event == name => return args,
                        Some(_) => continue,
                        None => panic!("client closed while waiting for {name}"),
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .unwrap_or_else(|_| panic!("no {name} within 5 s"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_socketio_session() {
    use serde_json::json;
    let server = loopback(|_| {}).await;
    let base = server.base_url().to_string();
    let room = json!({"sessionid": "rs-room", "session": {"audio": true, "video": true, "oneway": true}, "extra": {}});

    let mut stu = rust_client::connect(&base, "rs-stu", None).await;
    assert_eq!(stu.ack("open-room", room.clone()).await, vec![json!(true)]);
    let mut mon = rust_client::connect(&base, "rs-mon", Some(server.proctor_key())).await;
    let keyless = rust_client::connect(&base, "rs-x", None).await;
    assert_eq!(
        keyless.ack("join-room", room.clone()).await[0],
        json!(false),
        "viewing without the key"
    );
    assert_eq!(mon.ack("join-room", room).await, vec![json!(true)]);

    mon.client
        .emit(
            "rtc-video-proctoring",
            json!({"remoteUserId": "rs-room", "sender": "rs-mon",
                   "message": {"newParticipationRequest": true, "isOneWay": true}}),
        )
        .await
        .expect("emit join request");
    let req = stu.next("rtc-video-proctoring").await;
    assert_eq!(req[0]["remoteUserId"], "rs-stu");

    stu.client
        .emit(
            "rtc-video-proctoring",
            json!({"remoteUserId": "rs-mon", "sender": "rs-stu",
                   "message": {"type": "offer", "sdp": "v=0"}}),
        )
        .await
        .expect("emit offer");
    assert_eq!(mon.next("user-connected").await, vec![json!("rs-stu")]);
    let offer = mon.next("rtc-video-proctoring").await;
    assert_eq!(offer[0]["message"]["type"], "offer");
    assert_eq!(offer[0]["extra"], json!({}));

    stu.client
        .emit(
            "extra-data-updated",
            json!({"message": "hi", "attention": ""}),
        )
        .await
        .expect("emit chat");
    assert_eq!(
        mon.next("extra-data-updated").await,
        vec![json!("rs-stu"), json!({"message": "hi", "attention": ""})]
    );

    stu.client.disconnect().await.expect("disconnect");
    assert_eq!(mon.next("user-disconnected").await, vec![json!("rs-stu")]);
    mon.client.disconnect().await.ok();
    keyless.client.disconnect().await.ok();
    server.shutdown().await;
}

/// The RTCMultiConnection 3.7 library itself (student and proctor, over a
/// fake RTCPeerConnection) completes the RTCProctor flow on the stock server
/// and on ours; listing live rooms: the stock server lists only rooms opened
/// with a public identifier (RTCProctor's page sets none), ours lists every
/// live room to the proctor and none to the student.
#[tokio::test]
async fn rtcmulticonnection_library_on_stock_and_ours() {
    let stock = stock_server().await;
    let ours = loopback(|_| {}).await;
    for (kind, url) in [("stock", stock.url.as_str()), ("ours", ours.base_url())] {
        let out = run_node(
            "rtcmc.js",
            &[
                ("SERVER_URL", url),
                ("PROCTOR_KEY", ours.proctor_key()),
                ("SERVER_KIND", kind),
            ],
        )
        .await;
        assert!(out.contains("rtcmc ok"), "{url}: {out}");
    }
    ours.shutdown().await;
}
