//! Test helpers: the controller as a child process, and a tiny HTTP/1.1 client
//! (std only, so the tests exercise the real binary over a real socket).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub use api::testing::Controller;
use api::testing::ControllerCmd;

/// Starts the binary on `data_dir`, listening on a free loopback port, and
/// waits until it is ready; without `--tokens` in `extra` it runs with
/// `--insecure-no-auth`.
pub fn start_controller(data_dir: &Path, extra: &[&str]) -> Controller {
    start_controller_on(data_dir, "127.0.0.1:0", extra)
}

/// Like [`start_controller`] on a given address (to restart on the same port).
pub fn start_controller_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Controller {
    let c = spawn_controller_on(data_dir, listen, extra);
    // Wait until the store is leader and takes writes.
    for _ in 0..200 {
        if let Ok((200, _)) = request(c.addr, "GET", "/readyz", None) {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("controller never became ready");
}

/// Starts the binary and returns once it listens (not necessarily ready).
pub fn spawn_controller(data_dir: &Path, extra: &[&str]) -> Controller {
    spawn_controller_on(data_dir, "127.0.0.1:0", extra)
}

/// Like [`spawn_controller`] on a given address.
pub fn spawn_controller_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Controller {
    let cmd =
        ControllerCmd::new(env!("CARGO_BIN_EXE_bridgehead-controller"), data_dir).listen(listen);
    let cmd = match extra.iter().position(|a| *a == "--tokens") {
        Some(i) => cmd
            .tokens(extra[i + 1])
            .args(extra[..i].iter().chain(&extra[i + 2..])),
        None => cmd.args(extra),
    };
    cmd.spawn()
}

fn read_head(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool, Option<usize>)> {
    read_head_with(r, &mut Vec::new())
}

fn read_head_with(
    r: &mut BufReader<TcpStream>,
    headers: &mut Vec<(String, String)>,
) -> std::io::Result<(u16, bool, Option<usize>)> {
    let mut status_line = String::new();
    r.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut chunked = false;
    let mut len = None;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok();
        }
    }
    Ok((status, chunked, len))
}

fn read_chunk(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut size = String::new();
    if r.read_line(&mut size)? == 0 {
        return Ok(None);
    }
    let n = usize::from_str_radix(size.trim(), 16)
        .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
    if n == 0 {
        return Ok(None);
    }
    let mut buf = vec![0; n + 2];
    r.read_exact(&mut buf)?;
    buf.truncate(n);
    Ok(Some(buf))
}

fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<BufReader<TcpStream>> {
    send_with(addr, method, path, body, &[])
}

fn send_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<BufReader<TcpStream>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let body = body.unwrap_or("");
    let mut extra = String::new();
    for (k, v) in headers {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )?;
    Ok(BufReader::new(s))
}

/// A whole answer: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (a string value if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| serde_json::Value::String(self.body.clone()))
    }
}

/// One request with extra headers (e.g. `authorization`).
pub fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<Answer> {
    let mut r = send_with(addr, method, path, body, headers)?;
    let mut hs = Vec::new();
    let (status, chunked, len) = read_head_with(&mut r, &mut hs)?;
    let out = read_body(&mut r, chunked, len)?;
    Ok(Answer {
        status,
        headers: hs,
        body: String::from_utf8_lossy(&out).into_owned(),
    })
}

/// One request with a bearer token; returns (status, JSON body).
pub fn json_as(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {token}");
    let a = request_with(addr, method, path, body, &[("Authorization", &auth)]).expect("request");
    (a.status, a.json())
}

fn read_body(
    r: &mut BufReader<TcpStream>,
    chunked: bool,
    len: Option<usize>,
) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    if chunked {
        while let Some(c) = read_chunk(r)? {
            out.extend(c);
        }
    } else if let Some(n) = len {
        out.resize(n, 0);
        r.read_exact(&mut out)?;
    } else {
        r.read_to_end(&mut out)?;
    }
    Ok(out)
}

/// One request; returns (status, body).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut r = send(addr, method, path, body)?;
    let (status, chunked, len) = read_head(&mut r)?;
    let out = read_body(&mut r, chunked, len)?;
    Ok((status, String::from_utf8_lossy(&out).into_owned()))
}

/// Like [`request`] but parses the body as JSON.
pub fn json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (s, b) = request(addr, method, path, body).expect("request");
    (
        s,
        serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b)),
    )
}

/// A streaming `GET /v1/watch`, read line by line.
pub struct WatchStream {
    r: BufReader<TcpStream>,
    buf: Vec<u8>,
    pub chunks: usize,
}

impl WatchStream {
    pub fn open(addr: SocketAddr, query: &str) -> WatchStream {
        WatchStream::open_with(addr, query, &[])
    }

    /// Like [`WatchStream::open`] with extra headers.
    pub fn open_with(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> WatchStream {
        let mut r =
            send_with(addr, "GET", &format!("/v1/watch?{query}"), None, headers).expect("watch");
        let (status, chunked, _) = read_head(&mut r).expect("head");
        assert_eq!(status, 200);
        assert!(chunked);
        WatchStream {
            r,
            buf: Vec::new(),
            chunks: 0,
        }
    }

    /// The next line as JSON; None at end of stream.
    pub fn next_line(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).expect("json line"));
            }
            let c = read_chunk(&mut self.r).expect("chunk")?;
            self.chunks += 1;
            self.buf.extend(c);
        }
    }
}

/// A CA and a server certificate for 127.0.0.1/localhost signed by it, made with the openssl CLI.
pub struct Certs {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Writes a fresh CA and server certificate into `dir`.
pub fn make_certs(dir: &Path) -> Certs {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=bridgehead test CA",
    ]);
    run(&a);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&a);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}
