//! One benchmark run: N sessions between the two namespaces, either two
//! `bfd run` processes or two FRR bfdd processes, brought Up, then measured
//! for the duration: CPU of each process (utime+stime from /proc), packets
//! per second, and false Down events (any session leaving Up after all were
//! Up: nothing fails in this network, so every one is false).

use crate::netns::{Pair, run};
use anyhow::{Context, Result, bail};
use bfd::report::{StatusReport, Summary};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM: the sleeps below give up, so every guard (the
/// processes, then the namespaces) is dropped and cleans up.
static INTERRUPTED: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::OnceLock::new();

/// Makes SIGINT and SIGTERM stop the benchmark cleanly.
pub fn catch_signals() -> Result<()> {
    let flag = INTERRUPTED.get_or_init(Default::default);
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(())
}

/// A signal asked to stop.
pub fn interrupted() -> bool {
    INTERRUPTED
        .get()
        .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
}

/// Sleeps `d` in short slices; an error once a signal asked to stop.
pub fn nap(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        if interrupted() {
            bail!("interrupted: stopping the daemons and removing the namespaces");
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(200)));
    }
}

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
    /// Side A runs on CPU 0 and side B on CPU 1 (each process with the
    /// kernel work it causes: a veth runs the peer's receive in the
    /// sender's context), as on two machines.
    pub pin_sides: bool,
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
    /// CPU of the process, percent of one core (user + system).
    pub cpu_pct: f64,
    /// The system (kernel) part of `cpu_pct`.
    pub sys_pct: f64,
    /// Packets sent per second.
    pub tx_pps: f64,
    /// Packets received per second.
    pub rx_pps: f64,
    /// Sessions that left Up during the measurement.
    pub false_downs: u64,
    /// UDP receive-buffer overflows in the namespace during the measurement.
    pub rcvbuf_errors: u64,
    /// Bridgehead only: its own counters over the measurement (where
    /// deadlines were late and packets lost); FRR has none of these.
    pub diag: Summary,
}

/// The whole machine during one measurement, percent of one core (so a
/// 2-core machine tops out at 200).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostResult {
    /// Every core's busy time: both sides, the kernel's packet work outside
    /// them (softirq), and anything else running.
    pub busy_pct: f64,
    /// Of that, softirq.
    pub softirq_pct: f64,
    /// Of that, steal: time the hypervisor gave this machine's virtual CPUs
    /// to someone else (on a VM a loop can stall for it, whatever its load).
    pub steal_pct: f64,
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
    /// The whole machine during the measurement.
    pub host: HostResult,
    /// Why a run did not hold up, if it did not.
    pub note: String,
    /// False when the run was skipped or failed before measuring.
    pub measured: bool,
}

impl Outcome {
    /// A row for a run that measured nothing (skipped, or failed), with why.
    pub fn not_run(implementation: &str, sessions: usize, note: String) -> Outcome {
        Outcome {
            implementation: if implementation == "frr" {
                "frr-bfdd"
            } else {
                "bridgehead"
            },
            sessions,
            bring_up: None,
            sides: Default::default(),
            host: Default::default(),
            note,
            measured: false,
        }
    }
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

/// CPU time of a process, seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    user: f64,
    sys: f64,
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// utime and stime of a process.
fn cpu_seconds(pid: u32) -> Cpu {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Cpu::default();
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Cpu::default();
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let hz = clock_ticks_per_second();
    Cpu {
        user: ticks(11) as f64 / hz,
        sys: ticks(12) as f64 / hz,
    }
}

/// The whole machine's CPU from /proc/stat, seconds summed over cores:
/// (busy, softirq, steal). Busy is everything but idle and iowait; it
/// includes the softirq time the kernel spends on packets outside any
/// process, and steal.
fn host_cpu_seconds() -> (f64, f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0, 0.0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let hz = clock_ticks_per_second();
    // user nice system idle iowait irq softirq steal ...
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    (busy as f64 / hz, get(6) as f64 / hz, get(7) as f64 / hz)
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
    cpu_before: Cpu,
    /// ...and after it (excluded from the start sample).
    cpu_after: Cpu,
    rcvbuf: u64,
    diag: Summary,
}

fn side_result(a: &Sample, b: &Sample, up_min: u64, secs: f64) -> SideResult {
    SideResult {
        up_start: a.up,
        up_min,
        up_end: b.up,
        cpu_pct: (b.cpu_before.user + b.cpu_before.sys - a.cpu_after.user - a.cpu_after.sys) / secs
            * 100.0,
        sys_pct: (b.cpu_before.sys - a.cpu_after.sys) / secs * 100.0,
        tx_pps: (b.tx - a.tx) as f64 / secs,
        rx_pps: (b.rx - a.rx) as f64 / secs,
        false_downs: b.downs.saturating_sub(a.downs),
        rcvbuf_errors: b.rcvbuf.saturating_sub(a.rcvbuf),
        diag: b.diag.since(&a.diag),
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
        nap(Duration::from_millis(500))?;
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
) -> Result<([SideResult; 2], HostResult)> {
    let t0 = Instant::now();
    let host0 = host_cpu_seconds();
    let start = [sample(0)?, sample(1)?];
    let mut up_min = [start[0].up, start[1].up];
    let end_at = t0 + duration;
    while cheap_up && Instant::now() + Duration::from_secs(5) < end_at {
        nap(Duration::from_secs(5))?;
        for (i, m) in up_min.iter_mut().enumerate() {
            *m = (*m).min(sample(i)?.up);
        }
    }
    nap(end_at.saturating_duration_since(Instant::now()))?;
    let end = [sample(0)?, sample(1)?];
    let host1 = host_cpu_seconds();
    let secs = t0.elapsed().as_secs_f64();
    for (m, e) in up_min.iter_mut().zip(&end) {
        *m = (*m).min(e.up);
    }
    Ok((
        [
            side_result(&start[0], &end[0], up_min[0], secs),
            side_result(&start[1], &end[1], up_min[1], secs),
        ],
        HostResult {
            busy_pct: (host1.0 - host0.0) / secs * 100.0,
            softirq_pct: (host1.1 - host0.1) / secs * 100.0,
            steal_pct: (host1.2 - host0.2) / secs * 100.0,
        },
    ))
}

/// `argv` in namespace `ns`, on CPU `cpu` if given, its stderr to `log`.
fn ns_command(ns: &str, argv: &[&str], log: &Path, cpu: Option<usize>) -> Result<Command> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]);
    if let Some(cpu) = cpu {
        c.args(["taskset", "-c", &cpu.to_string()]);
    }
    c.args(argv);
    c.stdout(Stdio::null())
        .stderr(std::fs::File::create(log).context("log file")?);
    Ok(c)
}

fn bfd_config(
    pairs: &[(Ipv4Addr, Ipv4Addr)],
    local_is_a: bool,
    p: &Params,
    xdp_device: Option<&str>,
) -> String {
    let mut s = format!(
        "[daemon]\nbind = \"0.0.0.0\"\nsrc_port_count = 16\nmultihop_min_ttl = 254\n{x}[defaults]\ntx_interval_ms = {i}\nrx_interval_ms = {i}\nmultiplier = {m}\n",
        x = xdp_device.map_or(String::new(), |d| format!("xdp_device = \"{d}\"\n")),
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
/// Waits for every session to come Up (or the bring-up timeout), then
/// measures the steady state: one row of the table.
fn bring_up_and_measure(
    implementation: &'static str,
    n: usize,
    p: &Params,
    mut sample: impl FnMut(usize) -> Result<Sample>,
    cheap_up: bool,
) -> Result<Outcome> {
    let up = bring_up(n, p.bring_up_timeout, &mut sample)?;
    let (sides, host) = measure(p.duration, &mut sample, cheap_up)?;
    Ok(Outcome {
        implementation,
        sessions: n,
        bring_up: up,
        note: if up.is_none() {
            "not all Up".into()
        } else {
            String::new()
        },
        sides,
        host,
        measured: true,
    })
}

/// Restores TX checksum offload on the veths after an XDP run.
struct OffloadBack<'a>(&'a Pair);

impl Drop for OffloadBack<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.set_tx_checksum_offload(true) {
            eprintln!("  restoring TX checksum offload: {e:#}");
        }
    }
}

/// Two `bfd run` processes with `n` multihop sessions each; with `xdp`,
/// each runs its sessions on the XDP path of its veth end.
pub fn run_bridgehead(
    bin: &Path,
    pair: &Pair,
    n: usize,
    p: &Params,
    dir: &Path,
    xdp: bool,
) -> Result<Outcome> {
    let pairs = pair.pairs(n);
    let _offload = if xdp {
        pair.set_tx_checksum_offload(false)?;
        Some(OffloadBack(pair))
    } else {
        None
    };
    let name = if xdp { "bridgehead-xdp" } else { "bridgehead" };
    let mut procs = Vec::new();
    let mut sockets = Vec::new();
    let mut logs = Vec::new();
    for (i, ns) in [&pair.a, &pair.b].into_iter().enumerate() {
        let side = ["a", "b"][i];
        let conf = dir.join(format!("bfd-{n}-{side}.toml"));
        let dev = [&pair.dev_a, &pair.dev_b][i].as_str();
        std::fs::write(&conf, bfd_config(&pairs, i == 0, p, xdp.then_some(dev)))?;
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
            p.pin_sides.then_some(i),
        )?;
        c.env(
            "RUST_LOG",
            std::env::var("BFD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        );
        procs.push(Proc(c.spawn()?));
        sockets.push(sock);
        logs.push(log);
    }
    let pids: Vec<u32> = procs.iter().map(|p| p.0.id()).collect();
    let nss = [pair.a.clone(), pair.b.clone()];
    let sample = |i: usize| -> Result<Sample> {
        procs[i].check_alive("bfd run", &logs[i])?;
        let cpu_before = cpu_seconds(pids[i]);
        let Ok(r) = bfd_summary(&sockets[i]) else {
            // Still starting: no counters, but its CPU counts.
            return Ok(Sample {
                cpu_before,
                cpu_after: cpu_seconds(pids[i]),
                ..Sample::default()
            });
        };
        Ok(Sample {
            up: r.summary.up,
            downs: r.summary.flaps,
            tx: r.summary.sent,
            rx: r.summary.received,
            cpu_before,
            cpu_after: cpu_seconds(pids[i]),
            rcvbuf: Pair::udp_rcvbuf_errors(&nss[i]),
            diag: r.summary,
        })
    };
    bring_up_and_measure(name, n, p, sample, true)
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
            p.pin_sides.then_some(i),
        )?;
        let mut c = c;
        procs.push(Proc(c.spawn()?));
        sides.push(FrrSide { dir: d });
        logs.push(log);
    }
    let pids: Vec<u32> = procs.iter().map(|p| p.0.id()).collect();
    let nss = [pair.a.clone(), pair.b.clone()];
    let sample = |i: usize| -> Result<Sample> {
        procs[i].check_alive("bfdd", &logs[i])?;
        let cpu_before = cpu_seconds(pids[i]);
        let Ok(brief) = sides[i].vtysh(&nss[i], "show bfd peers brief json") else {
            // vty not answering (bfdd still reading its configuration):
            // no counters, but the CPU it burns meanwhile counts.
            return Ok(Sample {
                cpu_before,
                cpu_after: cpu_seconds(pids[i]),
                ..Sample::default()
            });
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
            diag: Summary::default(),
        })
    };
    // vtysh walks every peer: sample only at the start and the end.
    bring_up_and_measure("frr-bfdd", n, p, sample, false)
}
