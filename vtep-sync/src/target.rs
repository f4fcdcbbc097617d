//! Where a switch's OVSDB server is (`tcp:`, `unix:`, `ssl:`) and how to
//! open a byte stream to it, including TLS with our CA, certificate and key.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// Why a target could not be parsed or connected.
#[derive(Debug, Error)]
pub enum TargetError {
    /// The string is not `tcp:IP:PORT`, `ssl:IP:PORT` or `unix:PATH`.
    #[error("bad OVSDB target {0:?}: expected tcp:IP:PORT, ssl:IP:PORT or unix:PATH")]
    BadTarget(String),
    /// An `ssl:` target without CA, certificate and key.
    #[error("ssl: target needs TLS files (CA certificate, certificate, private key)")]
    NoTlsFiles,
    /// Reading or using the TLS files failed.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The socket could not be opened.
    #[error("connect to {target}: {source}")]
    Io {
        /// The target we tried.
        target: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// An OVSDB connection target in the syntax of ovsdb-server(1) and vtep(5) `Manager:target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Plain TCP.
    Tcp(SocketAddr),
    /// TLS over TCP.
    Ssl(SocketAddr),
    /// A unix domain socket.
    Unix(PathBuf),
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port.parse().ok()?))
}

impl FromStr for Target {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TargetError::BadTarget(s.to_owned());
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "tcp" => parse_addr(rest).map(Target::Tcp).ok_or_else(bad),
            "ssl" => parse_addr(rest).map(Target::Ssl).ok_or_else(bad),
            "unix" if !rest.is_empty() => Ok(Target::Unix(PathBuf::from(rest))),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = |a: &SocketAddr| match a.ip() {
            IpAddr::V4(v4) => format!("{v4}:{}", a.port()),
            IpAddr::V6(v6) => format!("[{v6}]:{}", a.port()),
        };
        match self {
            Target::Tcp(a) => write!(f, "tcp:{}", ip(a)),
            Target::Ssl(a) => write!(f, "ssl:{}", ip(a)),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// PEM files for an `ssl:` target, as ovsdb-server's `--ca-cert`,
/// `--certificate` and `--private-key` take them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) the switch's certificate must chain to.
    pub ca_cert: PathBuf,
    /// Our certificate chain, presented to the switch.
    pub certificate: PathBuf,
    /// Our private key.
    pub private_key: PathBuf,
}

/// Accepts a server certificate that chains to our CA whatever names it
/// carries: OVSDB peers (ovsdb-server, switches) authenticate by CA only and
/// their certificates rarely name the management IP we dial.
#[derive(Debug)]
struct CaOnlyVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for CaOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name, so a name error means the
        // chain to our CA was already verified.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Builds the rustls client configuration from PEM files.
pub fn tls_config(files: &TlsFiles) -> Result<rustls::ClientConfig, TargetError> {
    let tls = |what: &str, e: &dyn fmt::Display| TargetError::Tls(format!("{what}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca_iter = CertificateDer::pem_file_iter(&files.ca_cert)
        .map_err(|e| tls(&files.ca_cert.display().to_string(), &e))?;
    for cert in ca_iter {
        let cert = cert.map_err(|e| tls(&files.ca_cert.display().to_string(), &e))?;
        roots.add(cert).map_err(|e| tls("CA certificate", &e))?;
    }
    if roots.is_empty() {
        return Err(TargetError::Tls(format!(
            "no certificate in {}",
            files.ca_cert.display()
        )));
    }
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| tls("verifier", &e))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.certificate)
        .map_err(|e| tls(&files.certificate.display().to_string(), &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls(&files.certificate.display().to_string(), &e))?;
    let key = PrivateKeyDer::from_pem_file(&files.private_key)
        .map_err(|e| tls(&files.private_key.display().to_string(), &e))?;
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("protocol versions", &e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaOnlyVerifier { inner }))
        .with_client_auth_cert(certs, key)
        .map_err(|e| tls("client certificate", &e))
}

/// A connected byte stream of any of the target kinds.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Opens a stream to the target (TLS handshake included for `ssl:`).
pub async fn connect(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Box<dyn Stream>, TargetError> {
    let io = |source| TargetError::Io {
        target: target.to_string(),
        source,
    };
    match target {
        Target::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a).await.map_err(io)?;
            // Requests are small and latency matters more than batching.
            let _ = s.set_nodelay(true);
            Ok(Box::new(s))
        }
        Target::Unix(p) => Ok(Box::new(
            tokio::net::UnixStream::connect(p).await.map_err(io)?,
        )),
        Target::Ssl(a) => {
            let cfg = tls.ok_or(TargetError::NoTlsFiles)?;
            let s = tokio::net::TcpStream::connect(a).await.map_err(io)?;
            let _ = s.set_nodelay(true);
            let name = ServerName::IpAddress(a.ip().into());
            let c = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, s)
                .await
                .map_err(io)?;
            Ok(Box::new(c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            "tcp:127.0.0.1:6640".parse::<Target>().unwrap(),
            Target::Tcp("127.0.0.1:6640".parse().unwrap())
        );
        assert_eq!(
            "ssl:[::1]:6640".parse::<Target>().unwrap(),
            Target::Ssl("[::1]:6640".parse().unwrap())
        );
        assert_eq!(
            "unix:/run/x.sock".parse::<Target>().unwrap(),
            Target::Unix("/run/x.sock".into())
        );
        for bad in [
            "tcp:1.2.3.4",
            "tcp:host:1",
            "udp:1.2.3.4:5",
            "unix:",
            "ssl:1.2.3.4:99999",
            "nothing",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
        for s in ["tcp:127.0.0.1:6640", "ssl:[::1]:6640", "unix:/run/x.sock"] {
            assert_eq!(s.parse::<Target>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn missing_tls_files_are_a_clear_error() {
        let files = TlsFiles {
            ca_cert: "/nonexistent/ca.pem".into(),
            certificate: "/nonexistent/c.pem".into(),
            private_key: "/nonexistent/k.pem".into(),
        };
        let e = tls_config(&files).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
