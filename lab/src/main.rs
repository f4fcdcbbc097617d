//! `lab`: build, inspect and tear down Bridgehead labs from the command line.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use lab::state::{self, LabState};
use lab::teardown;
use lab::topology::Topology;
use lab::{Lab, scenarios};
use std::collections::HashMap;
use std::process::ExitCode;

/// Build network-namespace labs with real peers (run as root).
#[derive(Debug, Parser)]
#[command(name = "lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a scenario (see `lab list`) or a topology file (*.toml) and leave it running.
    Up {
        /// Scenario name or path to a topology TOML file.
        topology: String,
        /// Stay in the foreground; Ctrl-C tears the lab down.
        #[arg(long)]
        hold: bool,
        /// When building fails, leave the lab running for inspection.
        #[arg(long)]
        keep_on_error: bool,
    },
    /// Show every lab on this machine: namespaces, processes, liveness.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Tear down labs by id or name (default: all of them), stopping processes by PID.
    Down {
        /// Lab ids (bh123456) or names (vtep); none means all.
        which: Vec<String>,
    },
    /// Run a command inside a host of a running lab: `lab exec vm1 -- ping 192.0.2.21`.
    Exec {
        /// Host name (namespace suffix).
        host: String,
        /// Lab id or name when more than one lab runs.
        #[arg(long)]
        lab: Option<String>,
        /// The command.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// List the built-in scenarios.
    List,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(_) if lab::lab::signalled() => {
            // The signal thread is tearing down and will exit with 128 + signal;
            // the failure here is a consequence of that teardown.
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("lab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::List => {
            for (n, d) in scenarios::NAMES {
                println!("{n:8} {d}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Up {
            topology,
            hold,
            keep_on_error,
        } => up(&topology, hold, keep_on_error),
        Command::Status { json } => status(json),
        Command::Down { which } => down(&which),
        Command::Exec { host, lab, argv } => exec(&host, lab.as_deref(), &argv),
    }
}

fn up(topology: &str, hold: bool, keep_on_error: bool) -> Result<ExitCode> {
    let (name, file) = if topology.ends_with(".toml") {
        let t = Topology::from_toml(
            &std::fs::read_to_string(topology).with_context(|| format!("read {topology}"))?,
        )?;
        (t.name.clone(), Some(t))
    } else {
        (topology.to_owned(), None)
    };
    // Running `lab up X` again replaces the previous X: safe to repeat.
    for old in state::load_all()
        .into_iter()
        .flatten()
        .filter(|s| s.name == name)
    {
        eprintln!("lab: replacing running lab {} ({})", old.id, old.name);
        report_down(&old, teardown::teardown(&old, &mut HashMap::new()));
    }
    let lab = Lab::new(&name)?;
    let built = match &file {
        Some(t) => t.build(&lab).map(|_| Vec::new()),
        None => scenarios::build(&lab, &name),
    };
    let notes = match built {
        Ok(notes) => notes,
        Err(e) if keep_on_error => {
            let st = lab.detach()?;
            eprintln!(
                "lab: building failed; kept lab {} for inspection (lab down {})",
                st.id, st.id
            );
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    for n in &notes {
        lab.note(n.clone())?;
    }
    let st = lab.state();
    println!(
        "lab {} ({}) is up; logs in {}",
        st.id,
        st.name,
        st.run_dir.display()
    );
    for n in &notes {
        println!("  {n}");
    }
    if hold {
        println!("holding; Ctrl-C tears it down");
        loop {
            std::thread::park();
        }
    }
    lab.detach()?;
    println!("tear down with: lab down {name}");
    Ok(ExitCode::SUCCESS)
}

fn status(json: bool) -> Result<ExitCode> {
    let labs: Vec<LabState> = state::load_all()
        .into_iter()
        .filter_map(|r| r.map_err(|e| eprintln!("lab: {e:#}")).ok())
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&labs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if labs.is_empty() {
        println!("no labs");
    }
    let existing = teardown::existing_namespaces();
    for st in &labs {
        let owner = if st.detached {
            "detached".to_string()
        } else if st.owner_alive() {
            format!("owned by pid {}", st.owner_pid)
        } else {
            format!(
                "ORPHANED (pid {} is gone; `lab down {}` cleans it)",
                st.owner_pid, st.id
            )
        };
        println!(
            "{} {}  [{owner}]  logs {}",
            st.id,
            st.name,
            st.run_dir.display()
        );
        let hosts: Vec<String> = st
            .namespaces
            .iter()
            .map(|n| {
                let short = n.strip_prefix(&format!("{}-", st.id)).unwrap_or(n);
                if existing.contains(n) {
                    short.to_string()
                } else {
                    format!("{short}(missing)")
                }
            })
            .collect();
        println!("  hosts: {}", hosts.join(" "));
        for p in &st.processes {
            let alive = if state::pid_matches(p.pid, p.start_ticks) {
                "running"
            } else {
                "DEAD"
            };
            println!(
                "  {:28} pid {:7} {alive:8} log {}",
                p.name,
                p.pid,
                p.log.display()
            );
        }
        for n in &st.notes {
            println!("  {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn down(which: &[String]) -> Result<ExitCode> {
    let labs: Vec<LabState> = state::load_all().into_iter().flatten().collect();
    let chosen: Vec<&LabState> = labs
        .iter()
        .filter(|s| which.is_empty() || which.iter().any(|w| *w == s.id || *w == s.name))
        .collect();
    if chosen.is_empty() {
        if which.is_empty() {
            println!("no labs");
            return Ok(ExitCode::SUCCESS);
        }
        bail!("no lab matches {}", which.join(" "));
    }
    let mut ok = true;
    for st in chosen {
        if !st.detached && st.owner_alive() {
            eprintln!(
                "lab: {} is owned by running pid {}; tearing it down anyway",
                st.id, st.owner_pid
            );
        }
        let rep = teardown::teardown(st, &mut HashMap::new());
        ok &= rep.is_clean();
        report_down(st, rep);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn report_down(st: &LabState, rep: teardown::TeardownReport) {
    println!(
        "lab {} ({}): stopped {} processes, deleted {} namespaces",
        st.id,
        st.name,
        rep.stopped.len(),
        rep.deleted_namespaces.len()
    );
    for e in &rep.errors {
        eprintln!("  error: {e}");
    }
}

fn exec(host: &str, which: Option<&str>, argv: &[String]) -> Result<ExitCode> {
    let labs: Vec<LabState> = state::load_all()
        .into_iter()
        .flatten()
        .filter(|s| which.is_none_or(|w| w == s.id || w == s.name))
        .filter(|s| {
            s.namespaces
                .iter()
                .any(|n| n.strip_prefix(&format!("{}-", s.id)) == Some(host))
        })
        .collect();
    let st = match labs.as_slice() {
        [one] => one,
        [] => bail!("no running lab has a host {host}"),
        _ => bail!("several labs have a host {host}: choose one with --lab"),
    };
    let ns = format!("{}-{host}", st.id);
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(argv)
        .status()
        .context("run ip netns exec")?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
