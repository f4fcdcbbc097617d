//! Running one-shot commands, optionally inside a network namespace, with
//! errors that quote the command line and its stderr (what you want at 3 a.m.).

use anyhow::{Context, Result, bail};
use std::process::{Command, Output, Stdio};

/// Builds a `Command` that runs `argv` inside namespace `ns` (or in the
/// caller's namespace when `ns` is `None`) through `ip netns exec`, which keeps
/// the PID of the exec'd program and remounts /sys for the namespace.
pub fn command_in(ns: Option<&str>, argv: &[&str]) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).args(argv);
            c
        }
        None => {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        }
    }
}

/// Renders a command line for error messages and logs.
pub fn render(ns: Option<&str>, argv: &[&str]) -> String {
    let line = argv.join(" ");
    match ns {
        Some(ns) => format!("[{ns}] {line}"),
        None => line,
    }
}

/// Runs a command to completion and returns its output, whatever its status.
pub fn output(mut cmd: Command, what: &str) -> Result<Output> {
    cmd.stdin(Stdio::null());
    cmd.output()
        .with_context(|| format!("cannot start `{what}`"))
}

/// Runs a command and fails with its stderr unless it exits 0; returns stdout.
pub fn run_checked(cmd: Command, what: &str) -> Result<String> {
    let out = output(cmd, what)?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `argv` (in `ns` if given) and returns stdout, failing on a non-zero exit.
pub fn run(ns: Option<&str>, argv: &[&str]) -> Result<String> {
    run_checked(command_in(ns, argv), &render(ns, argv))
}

/// Runs `argv` and reports only whether it exited 0 (for probes and polls).
pub fn succeeds(ns: Option<&str>, argv: &[&str]) -> bool {
    output(command_in(ns, argv), &render(ns, argv))
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Splits a command written as one string on whitespace (no quoting: lab
/// commands never need it, and it keeps the rendering honest).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Fails early with an installation hint when a program the lab needs is absent.
pub fn require_program(prog: &str, package: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
        || std::path::Path::new(prog).is_file();
    if !found {
        bail!(
            "`{prog}` not found: install the Debian package `{package}` (the README's set-up commands do)"
        );
    }
    Ok(())
}
