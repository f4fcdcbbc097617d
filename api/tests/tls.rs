//! HTTPS: the real binary with a certificate signed by a CA made by openssl.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{make_certs, spawn_controller};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// One HTTP/1.1 request over TLS, trusting `ca`; returns the raw answer.
async fn https(addr: SocketAddr, ca: &Path, host: &str, req: &str) -> std::io::Result<String> {
    let cfg = api::tls::client_config(ca).map_err(std::io::Error::other)?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?;
    let mut s = TlsConnector::from(cfg).connect(name, tcp).await?;
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn get(path: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn serves_https_with_auth_and_refuses_untrusted_clients() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken = \"admin-token-0123456789\"\n",
    )
    .unwrap();
    let c = spawn_controller(
        &dir.path().join("data"),
        &[
            "--tokens",
            tokens.to_str().unwrap(),
            "--tls-cert",
            certs.cert.to_str().unwrap(),
            "--tls-key",
            certs.key.to_str().unwrap(),
        ],
    );
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = https(c.addr, &certs.ca, "127.0.0.1", &get("/readyz", None)).await {
            if r.starts_with("HTTP/1.1 200") {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "never ready over TLS");
    // By IP and by DNS name, both in the certificate.
    for host in ["127.0.0.1", "localhost"] {
        let r = https(c.addr, &certs.ca, host, &get("/v1/state", None))
            .await
            .unwrap();
        assert!(r.starts_with("HTTP/1.1 401"), "{r}");
        let r = https(
            c.addr,
            &certs.ca,
            host,
            &get("/v1/state", Some("admin-token-0123456789")),
        )
        .await
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("\"revision\""), "{r}");
    }
    // A name the certificate does not cover.
    assert!(
        https(c.addr, &certs.ca, "example.test", &get("/healthz", None))
            .await
            .is_err()
    );
    // A client trusting another CA refuses the server.
    let other = tempfile::tempdir().unwrap();
    let other = make_certs(other.path());
    assert!(
        https(c.addr, &other.ca, "127.0.0.1", &get("/healthz", None))
            .await
            .is_err()
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = tokio::time::timeout(Duration::from_secs(5), async {
        let mut s = tokio::net::TcpStream::connect(c.addr).await.unwrap();
        s.write_all(get("/healthz", None).as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        out
    })
    .await
    .expect("the server hangs up");
    assert!(!plain.starts_with(b"HTTP/1.1 200"));
    // And the server still serves after those failed handshakes.
    let r = https(c.addr, &certs.ca, "127.0.0.1", &get("/healthz", None))
        .await
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[test]
fn a_missing_or_bad_certificate_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let run = |cert: &Path, key: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bridgehead-controller"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--insecure-no-auth",
                "--tls-cert",
            ])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&dir.path().join("nope.pem"), &certs.key);
    assert!(e.contains("nope.pem"), "{e}");
    // The key is not a certificate.
    let e = run(&certs.key, &certs.key);
    assert!(e.contains("server.key"), "{e}");
    // A key that does not match the certificate.
    let e = run(&certs.cert, &dir.path().join("ca.key"));
    assert!(!e.is_empty());
}
