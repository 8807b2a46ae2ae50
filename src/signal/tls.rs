//! TLS for the server. Phones only grant the camera to pages on HTTPS (or
//! localhost), so `serve` defaults to HTTPS with a certificate made at start;
//! its SHA-256 fingerprint is printed so people can check what their browser
//! warns about. Real certificates come from `--cert/--key`; `--http` is for
//! loopback and development.

use std::path::{Path, PathBuf};

use axum_server::tls_rustls::RustlsConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// How the server speaks to browsers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain HTTP (loopback, development, or behind a TLS proxy).
    Http,
    /// HTTPS with a certificate generated at start (browsers warn once).
    SelfSigned,
    /// HTTPS with these PEM files: the certificate chain and its private key.
    Files { cert: PathBuf, key: PathBuf },
}

/// A ready TLS setup: the rustls config and the leaf certificate's fingerprint.
pub struct Tls {
    pub config: RustlsConfig,
    /// SHA-256 of the leaf certificate, as browsers show it ("AB:CD:...").
    pub fingerprint: String,
}

/// SHA-256 fingerprint in the colon-separated form browsers display.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Build the TLS setup for `mode`; `None` for plain HTTP. `hosts` are the
/// names and addresses the self-signed certificate is made for.
pub async fn prepare(mode: &TlsMode, hosts: &[String]) -> Result<Option<Tls>> {
    let (certs, key) = match mode {
        TlsMode::Http => return Ok(None),
        TlsMode::SelfSigned => self_signed(hosts)?,
        TlsMode::Files { cert, key } => (read_certs(cert)?, read_key(key)?),
    };
    let fingerprint = fingerprint(certs[0].as_ref());
    let config = RustlsConfig::from_der(
        certs.iter().map(|c| c.as_ref().to_vec()).collect(),
        key.secret_der().to_vec(),
    )
    .await
    .map_err(|e| {
        Error::Invalid(format!(
            "the certificate and key cannot be used together: {e} (check that --key is the private key of --cert)"
        ))
    })?;
    Ok(Some(Tls {
        config,
        fingerprint,
    }))
}

fn self_signed(hosts: &[String]) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for h in hosts {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| {
        Error::Other(anyhow::anyhow!(
            "cannot make a self-signed certificate: {e} (use --cert/--key, or --http on loopback)"
        ))
    })?;
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
        .map_err(|e| Error::Other(anyhow::anyhow!("self-signed key: {e}")))?;
    Ok((vec![made.cert.der().clone()], key))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::Invalid(format!(
            "cannot read the {what} {}: {e} (give the path of a PEM file)",
            path.display()
        ))
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read_file(path, "certificate (--cert)")?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            Error::Invalid(format!(
                "{} is not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Invalid(format!(
            "{} has no \"BEGIN CERTIFICATE\" block: --cert needs the PEM certificate chain (e.g. fullchain.pem)",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read_file(path, "private key (--key)")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        Error::Invalid(format!(
            "{} has no usable PEM private key ({e}): --key needs the key of the certificate (e.g. privkey.pem)",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_format() {
        let f = fingerprint(b"abc");
        assert!(f.starts_with("BA:78:16:BF:"), "{f}");
        assert_eq!(f.len(), 32 * 3 - 1);
    }

    #[tokio::test]
    async fn self_signed_and_files() {
        let tls = prepare(&TlsMode::SelfSigned, &["example.test".into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tls.fingerprint.len(), 95);

        let dir = std::env::temp_dir().join(format!("rtcproctor-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["x.test".to_string()]).unwrap();
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let files = TlsMode::Files {
            cert: cert.clone(),
            key: key.clone(),
        };
        let tls = prepare(&files, &[]).await.unwrap().unwrap();
        assert_eq!(tls.fingerprint, fingerprint(made.cert.der()));

        // Swapped files and missing files give errors that say what to do.
        let swapped = TlsMode::Files {
            cert: key.clone(),
            key: cert.clone(),
        };
        let err = prepare(&swapped, &[]).await.err().unwrap().to_string();
        assert!(err.contains("--cert"), "{err}");
        let missing = TlsMode::Files {
            cert: dir.join("nope.pem"),
            key,
        };
        let err = prepare(&missing, &[]).await.err().unwrap().to_string();
        assert!(err.contains("cannot read the certificate"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
