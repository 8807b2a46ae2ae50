//! Our socket.io client: Engine.IO v4 straight over one WebSocket
//! (`transport=websocket`), speaking the RTCMultiConnection 3.7 dialect.
//!
//! Used by the monitor engine (one socket per watched student) and the
//! synthetic students. Why not rust_socketio 0.6 (shared/reference/rust-stack.md):
//! its ack ids are random in 0..999 (a monitor holding 100+ sockets with
//! pending acks collides), it cannot answer server-initiated acks, and its
//! `connect()` returns before the namespace CONNECT ack so early emits are
//! dropped by Node socket.io. Here:
//!
//! 1. [`SignalClient::connect`] opens the WebSocket (ws:// or wss://, see
//!    [`ClientTls`]), reads the Engine.IO open packet, sends `40` and returns
//!    only after the server's `40{sid}`; every emit after that is delivered.
//! 2. One task per connection owns the socket: it answers pings (`2` → `3`),
//!    matches acks to their waiting callers by sequential id, forwards server
//!    events to the [`ClientEvent`] channel, and reports
//!    [`ClientEvent::Disconnected`] once when the socket closes or the server
//!    stops pinging for longer than `pingInterval + pingTimeout`.
//! 3. The handle is cheap to clone; dropping every handle closes the socket.
//!
//! Reconnection is the caller's job (reconnect with the same userid and
//! re-open or re-join the room); [`Backoff`] gives the delays.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::packet::{self, EnginePacket, OpenInfo, SocketPacket};
use crate::{Error, Result};

/// How the client treats the server's TLS certificate on `https://` URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTls {
    /// Normal verification against the system's CA bundle.
    Verify,
    /// Accept exactly the certificate whose DER has this SHA-256 fingerprint
    /// (hex, colons and case ignored), e.g. the self-signed one `rtcproctor
    /// serve` prints at start. Any other certificate is refused.
    PinSha256(String),
    /// Accept any certificate, but only when the host is a loopback address
    /// or `localhost` (tests, local demos). Refused for any other host.
    InsecureLoopback,
}

/// What to connect to and who we are, as RTCMultiConnection puts it in the
/// handshake query (protocol notes §6.2).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server as RTCMultiConnection's `socketURL`: `http(s)://host:port/`.
    pub url: url::Url,
    /// Our identity on the server (`userid`); reuse it when reconnecting.
    pub userid: String,
    /// The relay event name (`msgEvent`), "rtc-video-proctoring" for RTCProctor.
    pub msg_event: String,
    /// `sessionid` in the query: the room being opened or joined first.
    pub session_id: String,
    /// The initial `extra` object (sent as JSON in the query).
    pub extra: Value,
    /// Our server's proctor key (`proctorKey` query parameter) for viewers.
    pub proctor_key: Option<String>,
    /// Certificate policy for `https://` URLs.
    pub tls: ClientTls,
}

impl ClientConfig {
    /// The configuration RTCProctor pages use: relay event
    /// "rtc-video-proctoring", empty extra, no proctor key, verified TLS.
    pub fn rtcproctor(url: url::Url, userid: &str, session_id: &str) -> Self {
        ClientConfig {
            url,
            userid: userid.to_string(),
            msg_event: super::protocol::RTCPROCTOR_MSG_EVENT.to_string(),
            session_id: session_id.to_string(),
            extra: Value::Object(Default::default()),
            proctor_key: None,
            tls: ClientTls::Verify,
        }
    }

    /// The WebSocket URL with the handshake query exactly as
    /// RTCMultiConnection 3.7 + socket.io-client 3 send it (plus
    /// `proctorKey` when set), then `EIO=4&transport=websocket`.
    pub fn websocket_url(&self) -> Result<url::Url> {
        let scheme = match self.url.scheme() {
            "http" | "ws" => "ws",
            "https" | "wss" => "wss",
            other => {
                return Err(invalid(format!(
                    "signalling server URL \"{}\" has scheme \"{other}\"; use http://host:port/ or https://host:port/",
                    self.url
                )));
            }
        };
        if self.url.host_str().is_none() {
            return Err(invalid(format!(
                "signalling server URL \"{}\" has no host; use http://host:port/",
                self.url
            )));
        }
        let mut ws = self.url.clone();
        // Infallible for http(s)/ws(s) URLs with a host.
        ws.set_scheme(scheme)
            .map_err(|_| invalid(format!("cannot use URL \"{}\"", self.url)))?;
        // socket.io-client treats a path in the URL as a namespace, and
        // RTCMultiConnection always uses the root: the endpoint is /socket.io/.
        ws.set_path("/socket.io/");
        ws.set_fragment(None);
        ws.set_query(None);
        {
            let mut q = ws.query_pairs_mut();
            q.append_pair("userid", &self.userid)
                .append_pair("sessionid", &self.session_id)
                .append_pair("msgEvent", &self.msg_event)
                .append_pair("socketCustomEvent", "RTCMultiConnection-Custom-Message")
                .append_pair("autoCloseEntireSession", "false")
                .append_pair("maxParticipantsAllowed", "1000")
                .append_pair("extra", &self.extra.to_string());
            if let Some(key) = &self.proctor_key {
                q.append_pair(super::protocol::PROCTOR_KEY_PARAM, key);
            }
            q.append_pair("EIO", "4")
                .append_pair("transport", "websocket");
        }
        Ok(ws)
    }
}

/// What the server tells us.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// A server event: `42[name, args...]`.
    Event { name: String, args: Vec<Value> },
    /// The connection is gone (sent once, last). `reason` is for logs.
    Disconnected { reason: String },
}

/// Answers server events that ask for an ack: called on the client task with
/// the event name and arguments, returns the ack arguments.
pub type AckHandler = Arc<dyn Fn(&str, &[Value]) -> Vec<Value> + Send + Sync>;

/// A connected socket.io client. Cheap to clone; all clones share the socket.
#[derive(Clone)]
pub struct SignalClient {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    next_ack_id: AtomicU64,
    /// The namespace socket id from the CONNECT ack (`40{"sid":...}`).
    sid: String,
    /// The server's maxPayload: longer packets would make it drop us.
    max_payload: usize,
    ack_handler: Arc<Mutex<Option<AckHandler>>>,
}

enum Command {
    Send(String),
    SendWithAck {
        id: u64,
        text: String,
        reply: oneshot::Sender<Vec<Value>>,
    },
    ForgetAck(u64),
    Close(oneshot::Sender<()>),
}

/// Upper bound on TCP + TLS + WebSocket + open + namespace CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Events waiting for the caller; past this the client task waits (and the
/// server sees back-pressure), it never grows without bound.
const EVENT_QUEUE: usize = 1024;

impl SignalClient {
    /// Connect and join the default namespace. Returns after the server's
    /// namespace CONNECT ack, so emits right after this are delivered.
    pub async fn connect(cfg: ClientConfig) -> Result<(SignalClient, mpsc::Receiver<ClientEvent>)> {
        Self::connect_with_acks(cfg, None).await
    }

    /// [`connect`](Self::connect), answering server events that ask for an
    /// ack (`42<id>[...]`) with `handler` from the first packet on. Without a
    /// handler such events are delivered as plain [`ClientEvent::Event`] and
    /// not acked (like a JS handler that never calls its callback). The
    /// events are delivered in either case.
    pub async fn connect_with_acks(
        cfg: ClientConfig,
        handler: Option<AckHandler>,
    ) -> Result<(SignalClient, mpsc::Receiver<ClientEvent>)> {
        let ws_url = cfg.websocket_url()?;
        let attempt = Self::handshake(&cfg, ws_url, handler);
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(r) => r,
            Err(_) => Err(other(format!(
                "signalling server {} did not complete the socket.io handshake within {}s; is it running and reachable?",
                cfg.url,
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn handshake(
        cfg: &ClientConfig,
        ws_url: url::Url,
        handler: Option<AckHandler>,
    ) -> Result<(SignalClient, mpsc::Receiver<ClientEvent>)> {
        let stream = open_stream(cfg, &ws_url).await?;
        let (ws, _response) = tokio_tungstenite::client_async(ws_url.as_str(), stream)
            .await
            .map_err(|e| {
                other(format!(
                    "WebSocket handshake with {} failed: {e}; is it a socket.io (Engine.IO v4) server?",
                    cfg.url
                ))
            })?;
        let (mut sink, mut stream) = ws.split();

        // 1. The open packet.
        let open: OpenInfo = loop {
            match next_text(&mut stream).await? {
                Some(text) => match packet::parse_engine(&text) {
                    Ok(EnginePacket::Open(info)) => break info,
                    Ok(_) => continue,
                    Err(e) => return Err(other(format!("bad handshake from {}: {e}", cfg.url))),
                },
                None => {
                    return Err(other(format!(
                        "{} closed the connection during the handshake",
                        cfg.url
                    )));
                }
            }
        };
        // 2. Join the default namespace and wait for the CONNECT ack.
        let connect = packet::format_engine(&EnginePacket::Message(SocketPacket::Connect {
            ns: packet::DEFAULT_NS.into(),
            data: None,
        }));
        sink.send(Message::text(connect))
            .await
            .map_err(|e| other(format!("sending to {} failed: {e}", cfg.url)))?;
        let mut early = Vec::new();
        let sid = loop {
            let Some(text) = next_text(&mut stream).await? else {
                return Err(other(format!(
                    "{} closed the connection before accepting the namespace",
                    cfg.url
                )));
            };
            match packet::parse_engine(&text) {
                Ok(EnginePacket::Ping) => {
                    sink.send(Message::text("3"))
                        .await
                        .map_err(|e| other(format!("sending to {} failed: {e}", cfg.url)))?;
                }
                Ok(EnginePacket::Message(SocketPacket::Connect { data, .. })) => {
                    break data
                        .as_ref()
                        .and_then(|d| d.get("sid"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                }
                Ok(EnginePacket::Message(SocketPacket::ConnectError { data, .. })) => {
                    return Err(other(format!(
                        "{} refused the socket.io connection: {data}",
                        cfg.url
                    )));
                }
                // Events the server sends right after accepting (before the
                // ack is parsed here) are kept and delivered first.
                Ok(EnginePacket::Message(p)) => early.push(p),
                Ok(EnginePacket::Close) => {
                    return Err(other(format!("{} closed the session", cfg.url)));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("ignoring bad frame from {}: {e}", cfg.url),
            }
        };

        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let ack_handler: Arc<Mutex<Option<AckHandler>>> = Arc::new(Mutex::new(handler));
        let task = ConnectionTask {
            server: cfg.url.to_string(),
            heartbeat: Duration::from_millis(open.ping_interval + open.ping_timeout),
            events: ev_tx,
            pending: HashMap::new(),
            ack_handler: ack_handler.clone(),
        };
        tokio::spawn(task.run(sink, stream, cmd_rx, early));
        Ok((
            SignalClient {
                inner: Arc::new(Inner {
                    commands: cmd_tx,
                    next_ack_id: AtomicU64::new(0),
                    sid,
                    max_payload: open.max_payload,
                    ack_handler,
                }),
            },
            ev_rx,
        ))
    }

    /// The socket id the server gave this connection.
    pub fn sid(&self) -> &str {
        &self.inner.sid
    }

    /// Emit `42[event, args...]`.
    pub async fn emit(&self, event: &str, args: Vec<Value>) -> Result<()> {
        let text = self.frame(event, None, args)?;
        self.inner
            .commands
            .send(Command::Send(text))
            .await
            .map_err(|_| not_connected())
    }

    /// Emit with an ack id and wait for the server's ack; returns the ack's
    /// argument list (e.g. `[true]` or `[false, "Room not available"]`).
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Vec<Value>> {
        let id = self.inner.next_ack_id.fetch_add(1, Ordering::Relaxed);
        let text = self.frame(event, Some(id), args)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::SendWithAck { id, text, reply })
            .await
            .map_err(|_| not_connected())?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(args)) => Ok(args),
            Ok(Err(_)) => Err(other(format!(
                "the connection closed before the server answered \"{event}\""
            ))),
            Err(_) => {
                let _ = self.inner.commands.try_send(Command::ForgetAck(id));
                Err(other(format!(
                    "the server did not answer \"{event}\" within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }

    /// Replace the handler that answers server events asking for an ack (see
    /// [`connect_with_acks`](Self::connect_with_acks)).
    pub fn on_ack_request(
        &self,
        handler: impl Fn(&str, &[Value]) -> Vec<Value> + Send + Sync + 'static,
    ) {
        if let Ok(mut slot) = self.inner.ack_handler.lock() {
            *slot = Some(Arc::new(handler));
        }
    }

    /// Leave the namespace and close the socket. The event channel then
    /// reports `Disconnected { reason: "closed by client" }`.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.commands.send(Command::Close(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        }
    }

    /// Whether the connection task is still running.
    pub fn is_connected(&self) -> bool {
        !self.inner.commands.is_closed()
    }

    fn frame(&self, event: &str, id: Option<u64>, args: Vec<Value>) -> Result<String> {
        let text = packet::format_engine(&EnginePacket::Message(SocketPacket::Event {
            ns: packet::DEFAULT_NS.into(),
            id,
            name: event.to_string(),
            args,
        }));
        if text.len() > self.inner.max_payload {
            return Err(invalid(format!(
                "\"{event}\" is {} bytes, more than the server accepts ({} bytes)",
                text.len(),
                self.inner.max_payload
            )));
        }
        Ok(text)
    }
}

/// The task that owns one connection.
struct ConnectionTask {
    server: String,
    heartbeat: Duration,
    events: mpsc::Sender<ClientEvent>,
    pending: HashMap<u64, oneshot::Sender<Vec<Value>>>,
    ack_handler: Arc<Mutex<Option<AckHandler>>>,
}

type WsSink =
    futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<BoxedStream>, Message>;
type WsStream = futures_util::stream::SplitStream<tokio_tungstenite::WebSocketStream<BoxedStream>>;

impl ConnectionTask {
    async fn run(
        mut self,
        mut sink: WsSink,
        mut stream: WsStream,
        mut commands: mpsc::Receiver<Command>,
        early: Vec<SocketPacket>,
    ) {
        for p in early {
            if let Some(reply) = self.on_socket_packet(p).await {
                let _ = sink.send(Message::text(reply)).await;
            }
        }
        let mut deadline = tokio::time::Instant::now() + self.heartbeat;
        let reason = loop {
            tokio::select! {
                frame = stream.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Binary(_))) => {
                            tracing::warn!("{}: ignoring a binary frame (not used by RTCMultiConnection)", self.server);
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None => break "the server closed the connection".to_string(),
                        Some(Ok(_)) => continue, // WebSocket-level ping/pong
                        Some(Err(e)) => break format!("connection lost: {e}"),
                    };
                    // Any packet shows the server is alive (as engine.io-client does).
                    deadline = tokio::time::Instant::now() + self.heartbeat;
                    match packet::parse_engine(text.as_str()) {
                        Ok(EnginePacket::Ping) => {
                            if let Err(e) = sink.send(Message::text("3")).await {
                                break format!("connection lost: {e}");
                            }
                        }
                        Ok(EnginePacket::Close) => break "the server closed the session".to_string(),
                        Ok(EnginePacket::Message(SocketPacket::Disconnect { .. })) => {
                            break "the server disconnected us".to_string();
                        }
                        Ok(EnginePacket::Message(p)) => {
                            if let Some(reply) = self.on_socket_packet(p).await
                                && let Err(e) = sink.send(Message::text(reply)).await
                            {
                                break format!("connection lost: {e}");
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("{}: ignoring frame: {e}", self.server),
                    }
                }
                cmd = commands.recv() => {
                    let text = match cmd {
                        Some(Command::Send(text)) => text,
                        Some(Command::SendWithAck { id, text, reply }) => {
                            self.pending.insert(id, reply);
                            text
                        }
                        Some(Command::ForgetAck(id)) => {
                            self.pending.remove(&id);
                            continue;
                        }
                        Some(Command::Close(done)) => {
                            let _ = sink.send(Message::text("41")).await;
                            let _ = sink.close().await;
                            let _ = done.send(());
                            break "closed by client".to_string();
                        }
                        None => {
                            // Every handle is gone: nobody can use the socket.
                            let _ = sink.send(Message::text("41")).await;
                            let _ = sink.close().await;
                            break "closed by client".to_string();
                        }
                    };
                    if let Err(e) = sink.send(Message::text(text)).await {
                        break format!("connection lost: {e}");
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    break format!(
                        "the server stopped pinging (nothing for {} s)",
                        self.heartbeat.as_secs()
                    );
                }
            }
        };
        tracing::debug!("{}: disconnected: {reason}", self.server);
        // Pending acks fail now (their senders drop with `self`).
        self.pending.clear();
        let _ = self.events.send(ClientEvent::Disconnected { reason }).await;
    }

    /// Handle one Socket.IO packet; returns a frame to send back, if any.
    async fn on_socket_packet(&mut self, p: SocketPacket) -> Option<String> {
        match p {
            SocketPacket::Ack { id, args, .. } => {
                if let Some(reply) = self.pending.remove(&id) {
                    let _ = reply.send(args);
                }
                None
            }
            SocketPacket::Event { id, name, args, .. } => {
                let handler = self.ack_handler.lock().ok().and_then(|h| h.clone());
                let reply = match (id, handler) {
                    (Some(id), Some(h)) => {
                        let ack_args = h(&name, &args);
                        Some(packet::format_engine(&EnginePacket::Message(
                            SocketPacket::Ack {
                                ns: packet::DEFAULT_NS.into(),
                                id,
                                args: ack_args,
                            },
                        )))
                    }
                    _ => None,
                };
                // A caller that dropped the receiver still gets acks and emits.
                let _ = self.events.send(ClientEvent::Event { name, args }).await;
                reply
            }
            SocketPacket::Connect { .. } | SocketPacket::ConnectError { .. } => None,
            SocketPacket::Disconnect { .. } => None,
        }
    }
}

/// Reads the next text frame; `None` when the socket closes.
async fn next_text(stream: &mut WsStream) -> Result<Option<String>> {
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => return Ok(Some(t.as_str().to_string())),
            Some(Ok(Message::Close(_))) | None => return Ok(None),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(other(format!("connection lost: {e}"))),
        }
    }
}

// ---------------------------------------------------------------------------
// Transport: TCP, optionally TLS with the chosen certificate policy.

trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}
type BoxedStream = Box<dyn AsyncStream>;

async fn open_stream(cfg: &ClientConfig, ws_url: &url::Url) -> Result<BoxedStream> {
    let host = ws_url.host_str().unwrap_or_default().to_string();
    let port = ws_url.port_or_known_default().unwrap_or(80);
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = tokio::net::TcpStream::connect((bare_host.as_str(), port))
        .await
        .map_err(|e| {
            other(format!(
                "cannot reach signalling server {}: {e}; check the address and that the server runs",
                cfg.url
            ))
        })?;
    let _ = tcp.set_nodelay(true);
    if ws_url.scheme() != "wss" {
        return Ok(Box::new(tcp));
    }
    let config = tls_config(&cfg.tls, &bare_host)?;
    let server_name = rustls::pki_types::ServerName::try_from(bare_host.clone())
        .map_err(|_| invalid(format!("\"{host}\" is not a valid TLS server name")))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| {
            other(format!(
                "TLS with {} failed: {e}{}",
                cfg.url,
                match cfg.tls {
                    ClientTls::Verify => {
                        "; for a self-signed server pin its SHA-256 fingerprint (printed by `rtcproctor serve`)"
                    }
                    _ => "",
                }
            ))
        })?;
    Ok(Box::new(tls))
}

fn tls_config(policy: &ClientTls, host: &str) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| other(format!("TLS setup failed: {e}")))?;
    let config = match policy {
        ClientTls::Verify => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        ClientTls::PinSha256(hex_pin) => {
            let pin = parse_fingerprint(hex_pin)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCert {
                    pin: Some(pin),
                    provider,
                }))
                .with_no_client_auth()
        }
        ClientTls::InsecureLoopback => {
            if !is_loopback_host(host) {
                return Err(invalid(format!(
                    "refusing to skip certificate checks for \"{host}\": that is only allowed for loopback addresses; pin the server's SHA-256 fingerprint instead"
                )));
            }
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCert {
                    pin: None,
                    provider,
                }))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// Where Debian, Fedora/RHEL, Alpine/OpenSUSE and macOS (Homebrew) keep
/// the system CA bundle.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/opt/homebrew/etc/ca-certificates/cert.pem",
];

fn system_roots() -> Result<rustls::RootCertStore> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let from_env = std::env::var("SSL_CERT_FILE").ok();
    for path in from_env
        .iter()
        .map(String::as_str)
        .chain(CA_BUNDLES.iter().copied())
    {
        if let Ok(certs) = rustls::pki_types::CertificateDer::pem_file_iter(path) {
            roots.add_parsable_certificates(certs.flatten());
            if !roots.is_empty() {
                return Ok(roots);
            }
        }
    }
    Err(other(
        "no CA certificates found (looked for the system bundle, e.g. /etc/ssl/certs/ca-certificates.crt); install ca-certificates or set SSL_CERT_FILE".to_string(),
    ))
}

/// Hex SHA-256 fingerprint, colons/spaces and case ignored.
fn parse_fingerprint(text: &str) -> Result<[u8; 32]> {
    let clean: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    let bytes = hex::decode(&clean).ok().filter(|b| b.len() == 32);
    bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
        invalid(format!(
            "\"{text}\" is not a SHA-256 fingerprint; expected 64 hex digits (colons allowed)"
        ))
    })
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Accepts the server certificate whose SHA-256 matches `pin` (or any
/// certificate when `pin` is None: loopback only, checked before use). The
/// handshake signatures are still verified, so the server must hold the key.
#[derive(Debug)]
struct PinnedCert {
    pin: Option<[u8; 32]>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        if let Some(pin) = self.pin {
            let actual: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
            if actual != pin {
                return Err(rustls::Error::General(format!(
                    "server certificate fingerprint {} does not match the pinned {}",
                    hex::encode(actual),
                    hex::encode(pin)
                )));
            }
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// ---------------------------------------------------------------------------

/// Reconnect delays: exponential from `min` to `max`, each drawn at random
/// from [d/2, d] so many clients cut off together do not return in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let full = self.min.saturating_mul(factor).min(self.max);
        let jitter: f64 = rand::random_range(0.5..=1.0);
        full.mul_f64(jitter)
    }

    /// Call after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    /// 0.5 s up to 10 s: quick enough for a student to be back within
    /// seconds, slow enough not to hammer a restarting server.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(10))
    }
}

fn other(msg: String) -> Error {
    Error::Other(anyhow::anyhow!(msg))
}

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

fn not_connected() -> Error {
    other("not connected to the signalling server (the connection closed)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(url: &str) -> ClientConfig {
        let mut c = ClientConfig::rtcproctor(url::Url::parse(url).expect("url"), "stu1", "room1");
        c.extra = json!({});
        c
    }

    #[test]
    fn query_matches_rtcmulticonnection() {
        let url = cfg("http://127.0.0.1:9001/").websocket_url().expect("url");
        assert_eq!(
            url.as_str(),
            "ws://127.0.0.1:9001/socket.io/?userid=stu1&sessionid=room1&msgEvent=rtc-video-proctoring&socketCustomEvent=RTCMultiConnection-Custom-Message&autoCloseEntireSession=false&maxParticipantsAllowed=1000&extra=%7B%7D&EIO=4&transport=websocket"
        );
    }

    #[test]
    fn https_becomes_wss_and_proctor_key_is_sent() {
        let mut c = cfg("https://proctor.example.org:8443/");
        c.proctor_key = Some("k 1".into());
        c.extra = json!({"name": "Ann"});
        let url = c.websocket_url().expect("url");
        assert_eq!(url.scheme(), "wss");
        let pairs: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["proctorKey"], "k 1");
        assert_eq!(pairs["extra"], r#"{"name":"Ann"}"#);
        assert_eq!(pairs["EIO"], "4");
    }

    #[test]
    fn unusable_urls_are_refused_with_a_hint() {
        let err = cfg("ftp://x/").websocket_url().expect_err("ftp");
        assert!(err.to_string().contains("http://host:port/"), "{err}");
    }

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex64 = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex64).expect("hex"), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons).expect("colons"), [0xab; 32]);
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn insecure_mode_is_only_for_loopback() {
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("::1"));
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("10.0.0.1"));
        assert!(tls_config(&ClientTls::InsecureLoopback, "example.org").is_err());
        assert!(tls_config(&ClientTls::InsecureLoopback, "127.0.0.1").is_ok());
    }

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(1));
        }
        let late = b.next_delay();
        assert!(late >= Duration::from_millis(500), "{late:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    /// A scripted Engine.IO server on loopback: checks the handshake order,
    /// ack matching, pings and server-initiated acks without Node.
    #[tokio::test]
    async fn talks_to_a_scripted_server() {
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("ws");
            async fn send(
                ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
                t: &str,
            ) {
                ws.send(Message::text(t.to_string())).await.expect("send");
            }
            send(&mut ws, r#"0{"sid":"e1","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":100000}"#).await;
            let mut got = Vec::new();
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                let t = t.as_str().to_string();
                got.push(t.clone());
                match t.as_str() {
                    "40" => {
                        send(&mut ws, r#"40{"sid":"s1"}"#).await;
                        send(&mut ws, "2").await;
                    }
                    "3" => {
                        // After the pong: ask the client for an ack.
                        send(&mut ws, r#"427["ask",1]"#).await;
                    }
                    t if t.starts_with("437[") => {
                        send(&mut ws, r#"42["hello","x"]"#).await;
                    }
                    t if t.starts_with(r#"420["open-room""#) => {
                        send(&mut ws, r#"430[false,"Room not available"]"#).await;
                    }
                    t if t.starts_with(r#"421["open-room""#) => {
                        send(&mut ws, "431[true]").await;
                        // Then go silent: the client must notice.
                    }
                    _ => {}
                }
            }
            got
        });

        let handler: AckHandler = Arc::new(|name, args| vec![json!(name), json!(args.len())]);
        let (client, mut events) = tokio::time::timeout(
            Duration::from_secs(5),
            SignalClient::connect_with_acks(cfg(&format!("http://{addr}/")), Some(handler)),
        )
        .await
        .expect("connect in time")
        .expect("connect");
        assert_eq!(client.sid(), "s1");

        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("event in time");
        assert_eq!(
            ev,
            Some(ClientEvent::Event {
                name: "ask".into(),
                args: vec![json!(1)]
            })
        );
        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("event in time");
        assert_eq!(
            ev,
            Some(ClientEvent::Event {
                name: "hello".into(),
                args: vec![json!("x")]
            })
        );
        let a = client
            .emit_with_ack(
                "open-room",
                vec![json!({"sessionid":"r"})],
                Duration::from_secs(5),
            )
            .await
            .expect("ack 0");
        assert_eq!(a, vec![json!(false), json!("Room not available")]);
        let b = client
            .emit_with_ack(
                "open-room",
                vec![json!({"sessionid":"r"})],
                Duration::from_secs(5),
            )
            .await
            .expect("ack 1");
        assert_eq!(b, vec![json!(true)]);

        // The server stops pinging: Disconnected within interval + timeout.
        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("disconnect in time");
        assert!(
            matches!(&ev, Some(ClientEvent::Disconnected { reason }) if reason.contains("stopped pinging")),
            "{ev:?}"
        );
        assert!(client.emit("x", vec![]).await.is_err());
        drop(client);
        let got = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server ends")
            .expect("server task");
        assert_eq!(got[0], "40");
        assert_eq!(got[1], "3");
        assert_eq!(got[2], r#"437["ask",1]"#);
    }
}
