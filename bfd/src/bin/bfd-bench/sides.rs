//! One benchmark run: N sessions between the two namespaces, either two
//! `bfd run` processes or two FRR bfdd processes, brought Up, then measured
//! for the duration: CPU of each process (utime+stime from /proc), packets
//! per second, and false Down events (any session leaving Up after all were
//! Up: nothing fails in this network, so every one is false).

use crate::netns::{Pair, run};
use anyhow::{Context, Result, bail};
use bfd::report::StatusReport;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Benchmark parameters shared by every run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Transmit and receive interval, ms.
    pub interval_ms: u32,
    /// Detect multiplier.
    pub mult: u8,
    /// Steady-state measurement time.
    pub duration: Duration,
    /// Longest wait for all sessions to come Up.
    pub bring_up_timeout: Duration,
}

/// What one side measured.
#[derive(Debug, Clone, Default)]
pub struct SideResult {
    /// Sessions Up when the measurement started.
    pub up_start: u64,
    /// Fewest Up seen during the measurement (sampled).
    pub up_min: u64,
    /// Sessions Up at the end.
    pub up_end: u64,
    /// CPU of the process, percent of one core.
    pub cpu_pct: f64,
    /// Packets sent per second.
    pub tx_pps: f64,
    /// Packets received per second.
    pub rx_pps: f64,
    /// Sessions that left Up during the measurement.
    pub false_downs: u64,
    /// UDP receive-buffer overflows in the namespace during the measurement.
    pub rcvbuf_errors: u64,
}

/// One implementation at one session count.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `bridgehead` or `frr-bfdd`.
    pub implementation: &'static str,
    /// Sessions configured per side.
    pub sessions: usize,
    /// Time until every session was Up on both sides (None: never).
    pub bring_up: Option<Duration>,
    /// Side A, side B.
    pub sides: [SideResult; 2],
    /// Why a run did not hold up, if it did not.
    pub note: String,
}

/// A process killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn check_alive(&mut self, what: &str, log: &Path) -> Result<()> {
        if let Some(st) = self.0.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            bail!("{what} exited ({st}): {}", tail.join(" | "));
        }
        Ok(())
    }
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// Counters read from one side at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    up: u64,
    downs: u64,
    tx: u64,
    rx: u64,
    /// CPU seconds read before the query (the query's own cost excluded
    /// from the end sample)...
    cpu_before: f64,
    /// ...and after it (excluded from the start sample).
    cpu_after: f64,
    rcvbuf: u64,
}

fn side_result(a: &Sample, b: &Sample, up_min: u64, secs: f64) -> SideResult {
    SideResult {
        up_start: a.up,
        up_min,
        up_end: b.up,
        cpu_pct: (b.cpu_before - a.cpu_after) / secs * 100.0,
        tx_pps: (b.tx - a.tx) as f64 / secs,
        rx_pps: (b.rx - a.rx) as f64 / secs,
        false_downs: b.downs.saturating_sub(a.downs),
        rcvbuf_errors: b.rcvbuf.saturating_sub(a.rcvbuf),
    }
}

/// Waits until both sides report `n` Up; returns the time taken.
fn bring_up(
    n: usize,
    timeout: Duration,
    mut sample: impl FnMut(usize) -> Result<Sample>,
) -> Result<Option<Duration>> {
    let t0 = Instant::now();
    let mut last = (0, 0);
    while t0.elapsed() < timeout {
        let (a, b) = (sample(0)?, sample(1)?);
        last = (a.up, b.up);
        if a.up as usize == n && b.up as usize == n {
            return Ok(Some(t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "  not all Up after {timeout:?}: A {} / B {} of {n}",
        last.0, last.1
    );
    Ok(None)
}

/// Measures both sides for `duration`, sampling Up every few seconds.
fn measure(
    duration: Duration,
    mut sample: impl FnMut(usize) -> Result<Sample>,
    cheap_up: bool,
) -> Result<[SideResult; 2]> {
    let t0 = Instant::now();
    let start = [sample(0)?, sample(1)?];
    let mut up_min = [start[0].up, start[1].up];
    let end_at = t0 + duration;
    while cheap_up && Instant::now() + Duration::from_secs(5) < end_at {
        std::thread::sleep(Duration::from_secs(5));
        for (i, m) in up_min.iter_mut().enumerate() {
            *m = (*m).min(sample(i)?.up);
        }
    }
    std::thread::sleep(end_at.saturating_duration_since(Instant::now()));
    let end = [sample(0)?, sample(1)?];
    let secs = t0.elapsed().as_secs_f64();
    for (m, e) in up_min.iter_mut().zip(&end) {
        *m = (*m).min(e.up);
    }
    Ok([
        side_result(&start[0], &end[0], up_min[0], secs),
        side_result(&start[1], &end[1], up_min[1], secs),
    ])
}

fn ns_command(ns: &str, argv: &[&str], log: &Path) -> Result<Command> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(argv);
    c.stdout(Stdio::null())
        .stderr(std::fs::File::create(log).context("log file")?);
    Ok(c)
}

fn bfd_config(pairs: &[(Ipv4Addr, Ipv4Addr)], local_is_a: bool, p: &Params) -> String {
    let mut s = format!(
        "[daemon]\nbind = \"0.0.0.0\"\nsrc_port_count = 16\nmultihop_min_ttl = 254\n[defaults]\ntx_interval_ms = {i}\nrx_interval_ms = {i}\nmultiplier = {m}\n",
        i = p.interval_ms,
        m = p.mult
    );
    for (a, b) in pairs {
        let (l, r) = if local_is_a { (a, b) } else { (b, a) };
        s += &format!("[[peer]]\nlocal = \"{l}\"\nremote = \"{r}\"\nmode = \"multihop\"\n");
    }
    s
}

fn bfd_summary(socket: &Path) -> Result<StatusReport> {
    let mut c = std::os::unix::net::UnixStream::connect(socket)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    c.write_all(b"summary\n")?;
    c.shutdown(std::net::Shutdown::Write)?;
    let mut text = String::new();
    c.read_to_string(&mut text)?;
    Ok(serde_json::from_str(&text)?)
}

/// Two `bfd run` processes with `n` sessions each.
pub fn run_bridgehead(
    bin: &Path,
    pair: &Pair,
    n: usize,
    p: &Params,
    dir: &Path,
) -> Result<Outcome> {
    let pairs = pair.pairs(n);
    let mut procs = Vec::new();
    let mut sockets = Vec::new();
    let mut logs = Vec::new();
    for (i, ns) in [&pair.a, &pair.b].into_iter().enumerate() {
        let side = ["a", "b"][i];
        let conf = dir.join(format!("bfd-{n}-{side}.toml"));
        std::fs::write(&conf, bfd_config(&pairs, i == 0, p))?;
        let sock = dir.join(format!("bfd-{n}-{side}.sock"));
        let log = dir.join(format!("bfd-{n}-{side}.log"));
        let bin = bin.to_string_lossy();
        let mut c = ns_command(
            ns,
            &[
                &bin,
                "run",
                "--config",
                &conf.to_string_lossy(),
                "--status-socket",
                &sock.to_string_lossy(),
            ],
            &log,
        )?;
        c.env("RUST_LOG", "warn");
        procs.push(Proc(c.spawn()?));
        sockets.push(sock);
        logs.push(log);
    }
    let pids: Vec<u32> = procs.iter().map(|p| p.0.id()).collect();
    let nss = [pair.a.clone(), pair.b.clone()];
    let mut sample = |i: usize| -> Result<Sample> {
        procs[i].check_alive("bfd run", &logs[i])?;
        let cpu_before = cpu_seconds(pids[i]);
        let Ok(r) = bfd_summary(&sockets[i]) else {
            return Ok(Sample::default()); // still starting
        };
        Ok(Sample {
            up: r.summary.up,
            downs: r.summary.flaps,
            tx: r.summary.sent,
            rx: r.summary.received,
            cpu_before,
            cpu_after: cpu_seconds(pids[i]),
            rcvbuf: Pair::udp_rcvbuf_errors(&nss[i]),
        })
    };
    let up = bring_up(n, p.bring_up_timeout, &mut sample)?;
    let sides = measure(p.duration, &mut sample, true)?;
    Ok(Outcome {
        implementation: "bridgehead",
        sessions: n,
        bring_up: up,
        note: if up.is_none() {
            "not all Up".into()
        } else {
            String::new()
        },
        sides,
    })
}

/// FRR's files for one side.
struct FrrSide {
    dir: PathBuf,
}

impl FrrSide {
    fn vtysh(&self, ns: &str, cmd: &str) -> Result<String> {
        let d = self.dir.to_string_lossy();
        // bfdd answers nothing while it reads its configuration (minutes
        // for thousands of peers): never wait on it unbounded.
        run(&[
            "timeout",
            "30",
            "ip",
            "netns",
            "exec",
            ns,
            "vtysh",
            "--vty_socket",
            &d,
            "--config_dir",
            &d,
            "-c",
            cmd,
        ])
    }
}

fn json_sum(v: &serde_json::Value, key: &str) -> u64 {
    v.as_array()
        .map(|a| a.iter().filter_map(|p| p.get(key)?.as_u64()).sum::<u64>())
        .unwrap_or(0)
}

/// Two FRR bfdd processes with `n` multihop peers each (no zebra: the
/// peers name no interface).
pub fn run_frr(pair: &Pair, n: usize, p: &Params, dir: &Path) -> Result<Outcome> {
    let pairs = pair.pairs(n);
    let mut procs = Vec::new();
    let mut sides = Vec::new();
    let mut logs = Vec::new();
    for (i, ns) in [&pair.a, &pair.b].into_iter().enumerate() {
        let d = dir.join(format!("frr-{n}-{}", ["a", "b"][i]));
        std::fs::create_dir_all(&d)?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
        let mut conf = format!(
            "hostname bench{i}\nlog file {}/bfdd.log\nbfd\n",
            d.display()
        );
        for (a, b) in &pairs {
            let (l, r) = if i == 0 { (a, b) } else { (b, a) };
            conf += &format!(
                " peer {r} multihop local-address {l}\n  receive-interval {iv}\n  transmit-interval {iv}\n  detect-multiplier {m}\n !\n",
                iv = p.interval_ms,
                m = p.mult
            );
        }
        conf += "!\n";
        std::fs::write(d.join("bfdd.conf"), conf)?;
        std::fs::write(d.join("vtysh.conf"), "service integrated-vtysh-config\n")?;
        run(&["chown", "-R", "frr:frr", &d.to_string_lossy()])?;
        let f = |x: &str| d.join(x).to_string_lossy().into_owned();
        let log = d.join("stderr.log");
        let c = ns_command(
            ns,
            &[
                "/usr/lib/frr/bfdd",
                "-f",
                &f("bfdd.conf"),
                "-i",
                &f("bfdd.pid"),
                "-z",
                &f("zserv.api"),
                "--vty_socket",
                &d.to_string_lossy(),
                "-P",
                "0",
                "--bfdctl",
                &f("bfdd.sock"),
                "-u",
                "frr",
                "-g",
                "frr",
            ],
            &log,
        )?;
        let mut c = c;
        procs.push(Proc(c.spawn()?));
        sides.push(FrrSide { dir: d });
        logs.push(log);
    }
    let pids: Vec<u32> = procs.iter().map(|p| p.0.id()).collect();
    let nss = [pair.a.clone(), pair.b.clone()];
    let mut sample = |i: usize| -> Result<Sample> {
        procs[i].check_alive("bfdd", &logs[i])?;
        let cpu_before = cpu_seconds(pids[i]);
        let Ok(brief) = sides[i].vtysh(&nss[i], "show bfd peers brief json") else {
            return Ok(Sample::default()); // vty not up yet
        };
        let brief: serde_json::Value = serde_json::from_str(&brief).unwrap_or_default();
        let up = brief
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| p.get("status").and_then(|s| s.as_str()) == Some("up"))
                    .count() as u64
            })
            .unwrap_or(0);
        let counters = sides[i]
            .vtysh(&nss[i], "show bfd peers counters json")
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .unwrap_or_default();
        Ok(Sample {
            up,
            downs: json_sum(&counters, "session-down"),
            tx: json_sum(&counters, "control-packet-output"),
            rx: json_sum(&counters, "control-packet-input"),
            cpu_before,
            cpu_after: cpu_seconds(pids[i]),
            rcvbuf: Pair::udp_rcvbuf_errors(&nss[i]),
        })
    };
    let up = bring_up(n, p.bring_up_timeout, &mut sample)?;
    // vtysh walks every peer: sample only at the start and the end.
    let sides = measure(p.duration, &mut sample, false)?;
    Ok(Outcome {
        implementation: "frr-bfdd",
        sessions: n,
        bring_up: up,
        note: if up.is_none() {
            "not all Up".into()
        } else {
            String::new()
        },
        sides,
    })
}
