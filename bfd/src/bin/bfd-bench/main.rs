//! `bfd-bench`: Bridgehead's `bfd run` against FRR's bfdd at the same session
//! counts, each as two processes in two network namespaces joined by a veth
//! (one multihop session, RFC 5883, per distinct address pair: FRR keys a
//! single-hop session without an interface by the peer address alone, so
//! only multihop gives both implementations N sessions between two hosts).
//! Prints CPU per process (percent of one core, and its kernel part), the whole machine's
//! busy, softirq and steal time (host/si/st%, percent of one core summed
//! over cores: the kernel's packet work outside both processes shows in
//! softirq, the hypervisor's use of this VM's CPUs in steal), packets
//! per second and false Down events side by side; then, for Bridgehead,
//! its own view: deadline lag, send errors, drops, frames the kernel
//! dropped before its XDP sockets, and loop turns that stalled over 50 ms
//! (slow: mostly on the CPU, its own work; preemp: mostly off it; late:
//! it woke that long after planned).
//! Needs root, iproute2 and (for the comparison) frr.
//!
//! Not a test: it runs for minutes. Build and run:
//!
//! ```text
//! cargo build --release -p bfd --bins
//! sudo target/release/bfd-bench --sessions 1000,10000,50000 --duration 300
//! ```

mod netns;
mod sides;

use anyhow::{Context, Result, bail};
use clap::Parser;
use sides::{Outcome, Params};
use std::path::PathBuf;
use std::time::Duration;

/// BFD scale benchmark: Bridgehead vs FRR bfdd.
#[derive(Debug, Parser)]
#[command(name = "bfd-bench", about)]
struct Args {
    /// Session counts to run, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    sessions: Vec<usize>,
    /// Seconds of steady state measured per run.
    #[arg(long, default_value_t = 300)]
    duration: u64,
    /// Transmit/receive interval, ms.
    #[arg(long, default_value_t = 300)]
    interval_ms: u32,
    /// Detect multiplier.
    #[arg(long, default_value_t = 3)]
    mult: u8,
    /// Longest wait for all sessions to come Up, seconds.
    #[arg(long, default_value_t = 180)]
    bring_up_timeout: u64,
    /// Implementations: bridgehead (kernel UDP sockets), bridgehead-xdp
    /// (the XDP path on each side's veth), frr.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bridgehead,bridgehead-xdp,frr"
    )]
    implementations: Vec<String>,
    /// Pin side A to CPU 0 and side B to CPU 1, as if each had a machine
    /// (needs 2 CPUs).
    #[arg(long)]
    pin_sides: bool,
    /// The `bfd` binary (default: next to this one).
    #[arg(long)]
    bfd: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bfd-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root (network namespaces)");
    }
    let bin = match args.bfd {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("no exe dir")?
            .join("bfd"),
    };
    if !bin.exists() {
        bail!(
            "{} missing: cargo build --release -p bfd --bins",
            bin.display()
        );
    }
    sides::catch_signals()?;
    let dir = std::env::temp_dir().join(format!("bfd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // bfdd runs as frr and must reach its files.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    eprintln!("logs and configs in {}", dir.display());
    let p = Params {
        interval_ms: args.interval_ms,
        mult: args.mult,
        duration: Duration::from_secs(args.duration),
        bring_up_timeout: Duration::from_secs(args.bring_up_timeout),
        pin_sides: args.pin_sides,
    };
    let mut results: Vec<Outcome> = Vec::new();
    // An implementation that did not bring all sessions Up at one count is
    // not run at the larger ones ("as far as it holds up").
    let mut gave_up: std::collections::HashMap<String, usize> = Default::default();
    for &n in &args.sessions {
        let hosts = (n as f64).sqrt().ceil() as usize;
        let pair = netns::Pair::new(hosts.max(1), &dir)?;
        for imp in &args.implementations {
            if let Some(&m) = gave_up.get(imp).filter(|&&m| m < n) {
                eprintln!("{imp}: {n} sessions skipped: not all Up at {m}");
                results.push(Outcome::not_run(
                    imp,
                    n,
                    format!("skipped: not all Up at {m} sessions"),
                ));
                continue;
            }
            eprintln!(
                "{imp}: {n} sessions, {hosts}x{hosts} addresses, {:?} measured",
                p.duration
            );
            let r = match imp.as_str() {
                "bridgehead" => sides::run_bridgehead(&bin, &pair, n, &p, &dir, false),
                "bridgehead-xdp" => sides::run_bridgehead(&bin, &pair, n, &p, &dir, true),
                "frr" => sides::run_frr(&pair, n, &p, &dir),
                other => bail!("unknown implementation {other}"),
            };
            match r {
                Ok(o) => {
                    if o.bring_up.is_none() {
                        gave_up.entry(imp.clone()).or_insert(n);
                    }
                    print_rows(std::slice::from_ref(&o));
                    results.push(o);
                }
                Err(e) if sides::interrupted() => return Err(e),
                Err(e) => {
                    eprintln!("  {imp} at {n}: {e:#}");
                    gave_up.entry(imp.clone()).or_insert(n);
                    results.push(Outcome::not_run(imp, n, format!("failed: {e:#}")));
                }
            }
            // Let the other side's sessions and the kernel's queues settle.
            sides::nap(Duration::from_secs(2))?;
        }
    }
    println!();
    println!(
        "BFD scale, {} ms x {}, {:?} steady state per run, two processes in two namespaces:",
        args.interval_ms, args.mult, p.duration
    );
    print_rows(&results);
    Ok(())
}

fn print_rows(rows: &[Outcome]) {
    println!(
        "{:>8} {:<14} {:>4} {:>8} {:>13} {:>7} {:>6} {:>12} {:>9} {:>9} {:>6} {:>8} note",
        "sessions",
        "impl",
        "side",
        "bring-up",
        "up start/min/end",
        "cpu%",
        "sys%",
        "host/si/st%",
        "tx pps",
        "rx pps",
        "false",
        "rcvbuf",
    );
    for o in rows {
        if !o.measured {
            println!("{:>8} {:<14} {}", o.sessions, o.implementation, o.note);
            continue;
        }
        for (i, s) in o.sides.iter().enumerate() {
            println!(
                "{:>8} {:<14} {:>4} {:>8} {:>13} {:>7.1} {:>6.1} {:>12} {:>9.0} {:>9.0} {:>6} {:>8} {}",
                o.sessions,
                o.implementation,
                ["A", "B"][i],
                o.bring_up
                    .map_or("-".into(), |d| format!("{:.1}s", d.as_secs_f64())),
                format!("{}/{}/{}", s.up_start, s.up_min, s.up_end),
                s.cpu_pct,
                s.sys_pct,
                if i == 0 {
                    format!(
                        "{:.0}/{:.0}/{:.0}",
                        o.host.busy_pct, o.host.softirq_pct, o.host.steal_pct
                    )
                } else {
                    String::new()
                },
                s.tx_pps,
                s.rx_pps,
                s.false_downs,
                s.rcvbuf_errors,
                o.note
            );
        }
    }
    // Bridgehead's own view of the same runs: how late the loop served
    // deadlines and where packets were lost.
    let ours: Vec<&Outcome> = rows
        .iter()
        .filter(|o| o.measured && o.implementation != "frr-bfdd")
        .collect();
    if ours.is_empty() {
        return;
    }
    println!(
        "{:>8} {:<14} {:>4} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>6} {:>6} {:>6}",
        "sessions",
        "impl",
        "side",
        "lag p99",
        "p99.9 ms",
        ">100ms",
        ">250ms",
        "send err",
        "dropped",
        "xdp kdrop",
        "slow",
        "preemp",
        "late"
    );
    for o in ours {
        for (i, s) in o.sides.iter().enumerate() {
            let d = &s.diag;
            println!(
                "{:>8} {:<14} {:>4} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>6} {:>6} {:>6}",
                o.sessions,
                o.implementation,
                ["A", "B"][i],
                lag_quantile(&d.lag(), 0.99),
                lag_quantile(&d.lag(), 0.999),
                d.lag().later_than(Duration::from_millis(100)),
                d.lag().later_than(Duration::from_millis(250)),
                d.send_errors,
                d.dropped,
                d.xdp_kernel_drops,
                d.slow_turns,
                d.preempted_turns,
                d.late_wakeups
            );
        }
    }
}

/// Bucket bound (ms) under which fraction `q` of deadlines were served;
/// `>1000` past the last bound, `-` without any.
fn lag_quantile(h: &bfd::stats::LagHistogram, q: f64) -> String {
    if h.count() == 0 {
        return "-".into();
    }
    match h.quantile_bound(q) {
        Some(d) => format!("{}", d.as_secs_f64() * 1000.0),
        None => ">1000".into(),
    }
}
