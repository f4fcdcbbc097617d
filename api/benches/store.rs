//! Store benchmark (not a test): Bridgehead's controller against etcd, same
//! workload, same machine, same run, fsync on in both.
//!
//! ```text
//! cargo bench -p api --bench store
//! ```
//!
//! Both servers run as child processes on loopback with a fresh data
//! directory on disk (not tmpfs): our release `bridgehead-controller`
//! (`--insecure-no-auth`, plain HTTP), and Debian's `etcd` 3.4 (default
//! settings: WAL fsync on every commit) driven through its JSON gateway
//! (`/v3/kv/put`, `/v3/watch`, base64 keys). Each is stopped by PID.
//!
//! Workloads, over keep-alive HTTP/1.1 connections:
//!
//! 1. sequential writes from one client (writes/s, per-write p50/p99);
//! 2. concurrent writes from 16 clients;
//! 3. watch delivery latency with 1 and with 100 watchers, each on its own
//!    connection: one client writes sequentially; for every (watcher,
//!    revision) the time from the write's acknowledgement reaching the
//!    writer to the event reaching the watcher. Negative means the
//!    watcher had the event before the writer had its answer (both leave
//!    the server at about the same moment).
//!
//! Our writes are `PUT /v1/logical-switches/NAME` (a ~50-byte JSON
//! object, validated, with VNI uniqueness checked); etcd's are puts of the
//! same JSON bytes as the value. Sizes: `BENCH_WRITES` (default 400)
//! sequential writes, 16 x `BENCH_WRITES/8` concurrent, `BENCH_WATCH_WRITES`
//! (default 200) per watch run; `BENCH_ROUNDS` (default 3) rounds, both
//! servers up at once and taking turns per workload, medians reported.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sys {
    Bridgehead,
    Etcd,
}

/// A server child process; killed and reaped by PID on drop.
struct Server {
    sys: Sys,
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data directory on the real disk (the target dir), so fsync costs what it costs.
fn disk_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).expect("target tmpdir");
    tempfile::tempdir_in(base).expect("tempdir")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_bridgehead() -> Server {
    let dir = disk_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bridgehead-controller"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--insecure-no-auth"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bridgehead-controller");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .expect("listening line");
    Server {
        sys: Sys::Bridgehead,
        child,
        addr,
        _dir: dir,
    }
}

fn start_etcd() -> Option<Server> {
    let dir = disk_dir();
    let (client, peer) = (free_port(), free_port());
    let log = std::fs::File::create(dir.path().join("etcd.log")).ok()?;
    let c = format!("http://127.0.0.1:{client}");
    let p = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--name", "bench"])
        .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
        .args([
            "--listen-peer-urls",
            &p,
            "--initial-advertise-peer-urls",
            &p,
        ])
        .args(["--initial-cluster", &format!("bench={p}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn();
    match child {
        Ok(child) => Some(Server {
            sys: Sys::Etcd,
            child,
            addr: format!("127.0.0.1:{client}").parse().ok()?,
            _dir: dir,
        }),
        Err(e) => {
            eprintln!("etcd not started ({e}); install Debian's etcd-server (scripts/setup)");
            None
        }
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    tx: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Res<Conn> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            tx,
            host: addr.to_string(),
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Res<hyper::Response<Incoming>> {
        self.tx.ready().await?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        Ok(self.tx.send_request(req).await?)
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Res<(u16, Value)> {
        let r = self.send(method, path, body).await?;
        let status = r.status().as_u16();
        let b = r.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&b).unwrap_or(Value::Null)))
    }
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Distinct names and VNIs across all writes of a run.
static SEQ: AtomicU64 = AtomicU64::new(1);

/// One write; returns the revision it was acknowledged at.
async fn write(sys: Sys, c: &mut Conn) -> Res<u64> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let obj = format!(r#"{{"name":"k{n}","vni":{n},"replication":"service_node"}}"#);
    match sys {
        Sys::Bridgehead => {
            let (s, v) = c
                .call(
                    Method::PUT,
                    &format!("/v1/logical-switches/k{n}"),
                    Some(obj.into_bytes()),
                )
                .await?;
            if s != 200 {
                return Err(format!("write: {s} {v}").into());
            }
            v["revision"].as_u64().ok_or_else(|| "no revision".into())
        }
        Sys::Etcd => {
            let body = json!({"key": b64(format!("/bench/k{n}").as_bytes()), "value": b64(obj.as_bytes())});
            let (s, v) = c
                .call(
                    Method::POST,
                    "/v3/kv/put",
                    Some(body.to_string().into_bytes()),
                )
                .await?;
            if s != 200 {
                return Err(format!("put: {s} {v}").into());
            }
            v["header"]["revision"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| "no revision".into())
        }
    }
}

async fn current_revision(sys: Sys, c: &mut Conn) -> Res<u64> {
    match sys {
        Sys::Bridgehead => {
            let (_, v) = c.call(Method::GET, "/v1/state", None).await?;
            Ok(v["revision"].as_u64().unwrap_or(0))
        }
        Sys::Etcd => {
            let body = json!({"key": b64(b"/bench/none")});
            let (_, v) = c
                .call(
                    Method::POST,
                    "/v3/kv/range",
                    Some(body.to_string().into_bytes()),
                )
                .await?;
            Ok(v["header"]["revision"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0))
        }
    }
}

async fn wait_ready(s: &Server) -> Res<()> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Ok(mut c) = Conn::open(s.addr).await {
            let ok = match s.sys {
                Sys::Bridgehead => c
                    .call(Method::GET, "/readyz", None)
                    .await
                    .map(|r| r.0 == 200),
                Sys::Etcd => c
                    .call(Method::GET, "/health", None)
                    .await
                    .map(|r| r.1["health"] == "true"),
            };
            if ok.unwrap_or(false) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{:?} never ready", s.sys).into())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Results of one system.
#[derive(Debug, Default, Clone)]
struct Numbers {
    seq_wps: f64,
    seq_p50_ms: f64,
    seq_p99_ms: f64,
    conc_wps: f64,
    /// (watchers, p50 µs, p99 µs, max µs, delivered, expected)
    watch: Vec<(usize, f64, f64, f64, usize, usize)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Per field, the median over rounds (deliveries are summed).
fn combine(rounds: &[Numbers]) -> Numbers {
    let m = |f: &dyn Fn(&Numbers) -> f64| median(rounds.iter().map(f).collect());
    let watch = (0..rounds[0].watch.len())
        .map(|i| {
            (
                rounds[0].watch[i].0,
                m(&|n| n.watch[i].1),
                m(&|n| n.watch[i].2),
                m(&|n| n.watch[i].3),
                rounds.iter().map(|n| n.watch[i].4).sum(),
                rounds.iter().map(|n| n.watch[i].5).sum(),
            )
        })
        .collect();
    Numbers {
        seq_wps: m(&|n| n.seq_wps),
        seq_p50_ms: m(&|n| n.seq_p50_ms),
        seq_p99_ms: m(&|n| n.seq_p99_ms),
        conc_wps: m(&|n| n.conc_wps),
        watch,
    }
}

async fn sequential(s: &Server, n: usize) -> Res<(f64, f64, f64)> {
    let mut c = Conn::open(s.addr).await?;
    // Warm up the connection and the server.
    for _ in 0..20 {
        write(s.sys, &mut c).await?;
    }
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        write(s.sys, &mut c).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let wps = n as f64 / t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok((wps, pct(&lat, 0.5), pct(&lat, 0.99)))
}

async fn concurrent(s: &Server, clients: usize, each: usize) -> Res<f64> {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Conn::open(s.addr).await?);
    }
    let sys = s.sys;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for mut c in conns {
        tasks.push(tokio::spawn(async move {
            for _ in 0..each {
                write(sys, &mut c).await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((clients * each) as f64 / t0.elapsed().as_secs_f64())
}

/// Revisions of the events in one watch line.
fn revisions(sys: Sys, line: &[u8]) -> Vec<u64> {
    let Ok(v) = serde_json::from_slice::<Value>(line) else {
        return Vec::new();
    };
    match sys {
        Sys::Bridgehead if v["type"] == "events" => v["revision"].as_u64().into_iter().collect(),
        Sys::Bridgehead => Vec::new(),
        Sys::Etcd => v["result"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                e["kv"]["mod_revision"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
            })
            .collect(),
    }
}

/// Opens a watch from after `from`; returns once the server has it registered.
async fn open_watch(s: &Server, from: u64) -> Res<(Conn, Incoming, Vec<u8>)> {
    let mut c = Conn::open(s.addr).await?;
    let r = match s.sys {
        Sys::Bridgehead => {
            c.send(
                Method::GET,
                &format!("/v1/watch?revision={from}&progress_ms=3600000"),
                None,
            )
            .await?
        }
        Sys::Etcd => {
            let body = json!({"create_request": {
                "key": b64(b"/bench/"), "range_end": b64(b"/bench0"),
                "start_revision": (from + 1).to_string()}});
            c.send(
                Method::POST,
                "/v3/watch",
                Some(body.to_string().into_bytes()),
            )
            .await?
        }
    };
    if r.status() != 200 {
        return Err(format!("watch: {}", r.status()).into());
    }
    let mut body = r.into_body();
    let mut buf = Vec::new();
    if s.sys == Sys::Etcd {
        // Registered once etcd says "created".
        loop {
            let f = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await?
                .ok_or("watch closed")??;
            if let Ok(d) = f.into_data() {
                buf.extend_from_slice(&d);
            }
            if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                let v: Value = serde_json::from_slice(&line)?;
                if v["result"]["created"] == true {
                    break;
                }
            }
        }
    }
    Ok((c, body, buf))
}

/// Reads a watch until `last` arrives; returns (revision, arrival) pairs.
async fn collect(
    sys: Sys,
    mut body: Incoming,
    mut buf: Vec<u8>,
    mut last: tokio::sync::watch::Receiver<u64>,
) -> Vec<(u64, Instant)> {
    let mut got = Vec::new();
    loop {
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let now = Instant::now();
            for r in revisions(sys, &line) {
                got.push((r, now));
            }
        }
        let want = *last.borrow();
        if want != 0 && got.last().is_some_and(|(r, _)| *r >= want) {
            return got;
        }
        tokio::select! {
            f = tokio::time::timeout(Duration::from_secs(20), body.frame()) => match f {
                Ok(Some(Ok(f))) => {
                    // Time is taken per line above; a frame carries whole
                    // lines here (small writes, TCP_NODELAY on both sides).
                    if let Ok(d) = f.into_data() {
                        buf.extend_from_slice(&d);
                    }
                }
                _ => return got,
            },
            // The writer finished: re-check whether the last revision is in.
            _ = last.changed() => {}
        }
    }
}

async fn watch_latency(
    s: &Server,
    watchers: usize,
    writes: usize,
) -> Res<(f64, f64, f64, usize, usize)> {
    let mut c = Conn::open(s.addr).await?;
    let from = current_revision(s.sys, &mut c).await?;
    let (last_tx, last) = tokio::sync::watch::channel(0u64);
    let mut tasks = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..watchers {
        let (conn, body, buf) = open_watch(s, from).await?;
        keep.push(conn);
        tasks.push(tokio::spawn(collect(s.sys, body, buf, last.clone())));
    }
    // Let every watcher's server side settle (ours subscribes when the request arrives).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut acks = std::collections::HashMap::new();
    let mut top = 0;
    for _ in 0..writes {
        let r = write(s.sys, &mut c).await?;
        acks.insert(r, Instant::now());
        top = r;
    }
    let _ = last_tx.send(top);
    let mut lat = Vec::new();
    let mut delivered = 0usize;
    for t in tasks {
        for (r, at) in t.await? {
            if let Some(ack) = acks.get(&r) {
                delivered += 1;
                let us = if at >= *ack {
                    at.duration_since(*ack).as_secs_f64() * 1e6
                } else {
                    -(ack.duration_since(at).as_secs_f64() * 1e6)
                };
                lat.push(us);
            }
        }
    }
    drop(keep);
    lat.sort_by(f64::total_cmp);
    Ok((
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        delivered,
        watchers * writes,
    ))
}

/// One round of every workload on every server, alternating servers per
/// workload so that noise from the machine (other work, disk) hits both alike.
async fn round(servers: &[&Server], writes: usize, watch_writes: usize) -> Res<Vec<Numbers>> {
    let mut out = vec![Numbers::default(); servers.len()];
    for (s, n) in servers.iter().zip(&mut out) {
        let (w, p50, p99) = sequential(s, writes).await?;
        (n.seq_wps, n.seq_p50_ms, n.seq_p99_ms) = (w, p50, p99);
    }
    for (s, n) in servers.iter().zip(&mut out) {
        n.conc_wps = concurrent(s, 16, (writes / 8).max(1)).await?;
    }
    for watchers in [1, 100] {
        for (s, n) in servers.iter().zip(&mut out) {
            let (p50, p99, max, d, e) = watch_latency(s, watchers, watch_writes).await?;
            n.watch.push((watchers, p50, p99, max, d, e));
        }
    }
    Ok(out)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn etcd_version() -> String {
    Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.replace("etcd Version: ", "etcd "))
        })
        .unwrap_or_else(|| "etcd".into())
}

fn main() {
    // `cargo test --all-targets` runs bench targets without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("store benchmark: run with `cargo bench -p api --bench store`");
        return;
    }
    let writes = env_usize("BENCH_WRITES", 400);
    let watch_writes = env_usize("BENCH_WATCH_WRITES", 200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rounds = env_usize("BENCH_ROUNDS", 3).max(1);
    let bh = start_bridgehead();
    let etcd = start_etcd();
    let mut servers = vec![&bh];
    servers.extend(etcd.as_ref());
    let per_round: Vec<Vec<Numbers>> = rt.block_on(async {
        for s in &servers {
            wait_ready(s).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let mut v = Vec::new();
        for r in 0..rounds {
            eprintln!("round {}/{rounds}", r + 1);
            v.push(
                round(&servers, writes, watch_writes)
                    .await
                    .unwrap_or_else(|e| panic!("round {r}: {e}")),
            );
        }
        v
    });
    let of = |i: usize| combine(&per_round.iter().map(|r| r[i].clone()).collect::<Vec<_>>());
    let ours = of(0);
    let theirs = etcd.as_ref().map(|_| of(1));
    let ev = etcd_version();
    let col = |f: &dyn Fn(&Numbers) -> String| {
        (
            f(&ours),
            theirs.as_ref().map(f).unwrap_or_else(|| "n/a".into()),
        )
    };
    let mut rows: Vec<(String, (String, String))> = vec![
        (
            format!("sequential writes/s (1 client, {writes} writes)"),
            col(&|n| format!("{:.0}", n.seq_wps)),
        ),
        (
            "  write latency p50 / p99 (ms)".into(),
            col(&|n| format!("{:.2} / {:.2}", n.seq_p50_ms, n.seq_p99_ms)),
        ),
        (
            format!("concurrent writes/s (16 clients x {})", (writes / 8).max(1)),
            col(&|n| format!("{:.0}", n.conc_wps)),
        ),
    ];
    for (i, w) in [1usize, 100].iter().enumerate() {
        rows.push((
            format!("watch latency, {w} watcher(s), p50 / p99 (µs)"),
            col(&|n| format!("{:.0} / {:.0}", n.watch[i].1, n.watch[i].2)),
        ));
        rows.push((
            "  max (µs), delivered".into(),
            col(&|n| format!("{:.0}, {}/{}", n.watch[i].3, n.watch[i].4, n.watch[i].5)),
        ));
    }
    println!();
    println!(
        "store benchmark: loopback HTTP/1.1, fsync on, data on {}",
        Path::new(env!("CARGO_TARGET_TMPDIR")).display()
    );
    println!("{:<52} {:>20} {:>20}", "workload", "bridgehead", ev);
    for (name, (a, b)) in rows.drain(..) {
        println!("{name:<52} {a:>20} {b:>20}");
    }
    println!(
        "(medians over {rounds} rounds, servers alternating per workload; watch latency: event at the \
         watcher minus acknowledgement at the writer, {watch_writes} sequential writes per run)"
    );
}
