//! The signalling server: socket.io in the RTCMultiConnection dialect
//! (handlers in [`super::handlers`], state in [`super::rooms`]) plus the
//! student page, `/config.json` (ICE servers for the page) and `/healthz`.
//!
//! Embed it with [`start`] (the monitor and the demo do), or run it with
//! `rtcproctor serve` ([`run_serve`]). Lifecycle:
//!
//! 1. bind the listening socket first, so "port in use" is a one-line error;
//! 2. make the TLS setup (self-signed certificate, PEM files, or none);
//! 3. build the router: socket.io layer, static routes, CORS on everything;
//! 4. serve on a task until [`ServerHandle::shutdown`] closes every socket
//!    and stops accepting.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::RustlsAcceptor;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler;
use tower_http::cors::CorsLayer;

use super::handlers::{self, Shared};
use super::protocol::{IceServer, PageConfig};
pub use super::rooms::Limits;
use super::rooms::Registry;
pub use super::tls::TlsMode;
use crate::cli::ServeArgs;
use crate::roster::Roster;
use crate::{Error, Result};

/// Everything a server needs; [`ServerConfig::loopback`] is a plain-HTTP
/// server on 127.0.0.1 with a random port, for tests and embedding.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free port ([`ServerHandle::addr`]).
    pub bind: SocketAddr,
    pub tls: TlsMode,
    /// The key proctors need to view; `None` makes a random one.
    pub proctor_key: Option<String>,
    /// Anyone who knows a code may view it (the stock RTCProctor monitor
    /// page cannot send a key).
    pub open_viewing: bool,
    /// Only these codes may go live; `None` = any code.
    pub roster: Option<Roster>,
    /// ICE servers handed to the student page via `/config.json`.
    pub ice: Vec<IceServer>,
    /// Message sizes and rates.
    pub limits: Limits,
}

impl ServerConfig {
    /// Plain HTTP on 127.0.0.1, random port, random key, default limits.
    pub fn loopback() -> ServerConfig {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: TlsMode::Http,
            proctor_key: None,
            open_viewing: false,
            roster: None,
            ice: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// The configuration `rtcproctor serve` runs with.
    pub fn from_args(args: &ServeArgs) -> Result<ServerConfig> {
        let tls = match (&args.cert, &args.key, args.http) {
            (_, _, true) => TlsMode::Http,
            (Some(cert), Some(key), false) => TlsMode::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => TlsMode::SelfSigned,
        };
        let roster = args.roster.as_deref().map(Roster::load).transpose()?;
        let ice = IceServer::from_cli(
            &args.server.ice,
            args.server.turn_user.as_deref(),
            args.server.turn_pass.as_deref(),
        )
        .map_err(Error::Invalid)?;
        Ok(ServerConfig {
            bind: args.bind,
            tls,
            proctor_key: args.proctor_key.clone(),
            open_viewing: args.open_viewing,
            roster,
            ice,
            limits: Limits::default(),
        })
    }
}

/// A running server. Dropping it stops accepting at once; prefer
/// [`ServerHandle::shutdown`], which also says goodbye to every socket.
pub struct ServerHandle {
    addr: SocketAddr,
    base_url: String,
    proctor_key: String,
    fingerprint: Option<String>,
    io: SocketIo,
    http: axum_server::Handle<SocketAddr>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Sweeps registry entries of sockets that vanished while connecting.
    reaper: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// The address the server listens on (with the real port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key proctors need to view streams.
    pub fn proctor_key(&self) -> &str {
        &self.proctor_key
    }

    /// Where students and clients reach the server, e.g.
    /// `http://127.0.0.1:8443/` (socket.io clients need the trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The link a student opens: the page with the code after `#`.
    pub fn student_link(&self, code: &str) -> String {
        match url::Url::parse(&self.base_url) {
            Ok(mut u) => {
                u.set_fragment(Some(code));
                u.to_string()
            }
            Err(_) => format!("{}#{code}", self.base_url),
        }
    }

    /// SHA-256 fingerprint of the certificate (HTTPS only).
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// Registered sockets and open rooms right now.
    pub fn counts(&self) -> (usize, usize) {
        let reg = self.shared.registry();
        (reg.user_count(), reg.room_count())
    }

    /// Disconnect every socket, stop accepting, and wait for the server task.
    pub async fn shutdown(mut self) {
        self.reaper.abort();
        self.io.close().await;
        self.http.graceful_shutdown(Some(Duration::from_secs(2)));
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Err(e)) => tracing::warn!("server stopped with an error: {e}"),
                Err(e) => tracing::warn!("server task failed: {e}"),
                Ok(Ok(())) => {}
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.reaper.abort();
        if self.task.is_some() {
            self.http.shutdown();
        }
    }
}

/// A random proctor key: 96 bits as 24 lowercase hex digits.
fn random_key() -> String {
    let mut b = [0u8; 12];
    rand::fill(&mut b);
    hex::encode(b)
}

/// The address of this machine on its default route, for links when the
/// server listens on all addresses (a connected UDP socket sends nothing).
fn lan_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    s.local_addr()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
}

fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Start a server; it runs on a task of the current tokio runtime.
pub async fn start(config: ServerConfig) -> Result<ServerHandle> {
    if config.proctor_key.as_deref() == Some("") {
        return Err(Error::Invalid(
            "the proctor key is empty: give a non-empty --proctor-key, or leave it out for a random one"
                .into(),
        ));
    }
    let listener =
        std::net::TcpListener::bind(config.bind).map_err(|e| Error::bind(config.bind, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::bind(config.bind, e))?;
    let host_ip = if addr.ip().is_unspecified() {
        lan_ip().unwrap_or(IpAddr::from([127, 0, 0, 1]))
    } else {
        addr.ip()
    };
    let tls = super::tls::prepare(&config.tls, &[host_ip.to_string()]).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{}:{}/", url_host(host_ip), addr.port());
    let proctor_key = config.proctor_key.clone().unwrap_or_else(random_key);

    let roster = config
        .roster
        .as_ref()
        .map(|r| r.students.iter().map(|s| s.code.clone()).collect());
    let shared = Arc::new(Shared {
        registry: Mutex::new(Registry::new(
            config.limits.clone(),
            config.open_viewing,
            roster,
        )),
        proctor_key: proctor_key.clone(),
    });
    let (layer, io) = SocketIo::builder()
        // Packets queued per client before emits to it fail: a polling
        // student with several proctors gathering ICE gets bursts of
        // relays between two polls (the default is 128).
        .max_buffer_size(1024)
        .max_payload(config.limits.max_payload)
        .ws_max_message_size(config.limits.max_payload as usize)
        .ws_max_frame_size(config.limits.max_payload as usize)
        .build_layer();
    let sh = shared.clone();
    let connecting = move |s: SocketRef, io: SocketIo| {
        let sh = sh.clone();
        async move {
            handlers::on_connecting(&sh, &io, &s);
            Ok::<(), std::convert::Infallible>(())
        }
    };
    let connected = async |s: SocketRef, io: SocketIo| handlers::on_connected(&io, &s);
    io.ns("/", connected.with(connecting));
    let reaper = {
        let (sh, io) = (shared.clone(), io.clone());
        tokio::spawn(async move {
            let mut missing = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                missing = handlers::reap(&sh, &io, &missing);
            }
        })
    };

    let page_config = Arc::new(
        serde_json::to_string(&PageConfig {
            ice_servers: config.ice.clone(),
        })
        .map_err(|e| Error::Other(e.into()))?,
    );
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/config.json",
            get(move || {
                let body = page_config.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        body.as_str().to_owned(),
                    )
                }
            }),
        )
        .fallback(page_asset)
        .layer(layer)
        .layer(CorsLayer::very_permissive());

    let http = axum_server::Handle::new();
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    let fingerprint = tls.as_ref().map(|t| t.fingerprint.clone());
    // Signalling messages are small and latency-bound: no Nagle delay
    // (the default acceptor leaves it on; Node's http server turns it off).
    let plain = axum_server::from_tcp(listener)
        .map_err(|e| Error::bind(addr, e))?
        .handle(http.clone());
    let task = match tls {
        None => tokio::spawn(plain.acceptor(NoDelayAcceptor::new()).serve(make)),
        Some(tls) => tokio::spawn(
            plain
                .acceptor(RustlsAcceptor::new(tls.config).acceptor(NoDelayAcceptor::new()))
                .serve(make),
        ),
    };
    tracing::info!(%addr, %base_url, "signalling server listening");
    Ok(ServerHandle {
        addr,
        base_url,
        proctor_key,
        fingerprint,
        io,
        http,
        task: Some(task),
        reaper,
        shared,
    })
}

/// The student page's files, from [`crate::web::asset`]. The page itself is
/// revalidated on every load (so a new build is picked up at once); other
/// files may be cached for an hour. ETags make revalidation cheap.
async fn page_asset(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let Some((mime, bytes)) = crate::web::asset(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let etag = format!(
        "\"{}\"",
        &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))[..16]
    );
    let cache = if mime.starts_with("text/html") {
        "no-cache"
    } else {
        "public, max-age=3600"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(bytes))
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Entry point of `rtcproctor serve`: start, print what people need, wait
/// for Ctrl-C, shut down cleanly.
pub async fn run_serve(args: ServeArgs) -> Result<()> {
    let config = ServerConfig::from_args(&args)?;
    let open_viewing = config.open_viewing;
    let roster_len = config.roster.as_ref().map(Roster::len);
    let server = start(config).await?;
    println!("rtcproctor signalling server on {}", server.addr());
    println!("  student page:  {}", server.base_url());
    println!("  student link:  {}", server.student_link("CODE"));
    if let Some(fp) = server.fingerprint() {
        println!("  certificate:   SHA-256 {fp}");
    }
    if open_viewing {
        println!("  viewing:       open (anyone who knows a code may view it)");
    } else {
        println!("  proctor key:   {}", server.proctor_key());
    }
    if let Some(n) = roster_len {
        println!("  roster:        {n} codes may go live");
    }
    println!("Press Ctrl-C to stop.");
    stop_signal().await?;
    println!("stopping");
    server.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM from a service manager.
async fn stop_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::Other(anyhow::anyhow!("cannot watch for SIGTERM: {e}")))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| Error::Other(anyhow::anyhow!("cannot wait for Ctrl-C: {e}"))),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn routes_and_cors() {
        let server = start(ServerConfig::loopback()).await.unwrap();
        let base = server.base_url().to_string();
        assert!(base.starts_with("http://127.0.0.1:"));
        assert_eq!(server.student_link("ab c"), format!("{base}#ab%20c"));
        assert_eq!(server.proctor_key().len(), 24);
        assert!(server.fingerprint().is_none());
        server.shutdown().await;
    }

    #[tokio::test]
    async fn port_in_use_is_one_clear_line() {
        let server = start(ServerConfig::loopback()).await.unwrap();
        let mut config = ServerConfig::loopback();
        config.bind = server.addr();
        let err = start(config).await.err().unwrap().to_string();
        assert!(err.contains("another program uses this port"), "{err}");
        assert!(!err.contains('\n'));
        server.shutdown().await;
    }
}
