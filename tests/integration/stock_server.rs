//! The stock npm `rtcmulticonnection-server@1.3.3` (what RTCProctor
//! deployments run), started by node on 127.0.0.1 for a test and killed when
//! the handle drops. Installed by `scripts/setup --test`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/setup --test` put the node packages.
pub fn node_dir() -> PathBuf {
    let dir = std::env::var_os("RTCPROCTOR_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/node"));
    assert!(
        dir.join("node_modules/rtcmulticonnection-server/server.js")
            .exists(),
        "node test packages missing in {}: run `scripts/setup --test` (or set RTCPROCTOR_NODE_DIR)",
        dir.display()
    );
    dir
}

/// A running stock server; killed on drop.
pub struct StockServer {
    child: Child,
    pub port: u16,
    /// SHA-256 of the server's TLS certificate (DER, hex) when started with TLS.
    pub cert_sha256: Option<String>,
    _tls_dir: Option<TempDir>,
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "rtcproctor-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl StockServer {
    /// Plain HTTP on 127.0.0.1.
    pub fn start() -> StockServer {
        Self::spawn(false, free_port())
    }

    /// Plain HTTP on 127.0.0.1:`port` (to restart a server where it was).
    pub fn start_on(port: u16) -> StockServer {
        Self::spawn(false, port)
    }

    /// HTTPS on 127.0.0.1 with a fresh self-signed certificate (the
    /// package's own test certificate is X.509 v1 with RSA-1024, which no
    /// modern TLS stack accepts).
    pub fn start_tls() -> StockServer {
        Self::spawn(true, free_port())
    }

    fn spawn(tls: bool, port: u16) -> StockServer {
        use sha2::Digest;
        let pkg = node_dir().join("node_modules/rtcmulticonnection-server");
        let mut cmd = Command::new("node");
        cmd.arg("server.js")
            .current_dir(&pkg)
            .env("IP", "127.0.0.1")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut tls_dir = None;
        let mut cert_sha256 = None;
        if tls {
            let dir = TempDir::new("stock-tls");
            let ck = rcgen::generate_simple_self_signed(vec![
                "127.0.0.1".to_string(),
                "localhost".to_string(),
            ])
            .expect("self-signed certificate");
            let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
            std::fs::write(&cert, ck.cert.pem()).expect("write cert");
            std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
            cert_sha256 = Some(hex::encode(sha2::Sha256::digest(ck.cert.der())));
            cmd.arg("--ssl")
                .arg(format!("--sslKey={}", key.display()))
                .arg(format!("--sslCert={}", cert.display()));
            tls_dir = Some(dir);
        }
        let child = cmd
            .spawn()
            .expect("start node (is nodejs installed? run scripts/setup --test)");
        let server = StockServer {
            child,
            port,
            cert_sha256,
            _tls_dir: tls_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the stock rtcmulticonnection-server did not listen on 127.0.0.1:{port} within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The URL as RTCMultiConnection's socketURL.
    pub fn url(&self) -> url::Url {
        let scheme = if self.cert_sha256.is_some() {
            "https"
        } else {
            "http"
        };
        url::Url::parse(&format!("{scheme}://127.0.0.1:{}/", self.port)).expect("url")
    }
}

impl Drop for StockServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
