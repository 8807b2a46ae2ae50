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
