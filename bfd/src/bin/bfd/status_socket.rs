//! The status socket: a running `bfd run` answers each connection that
//! sends `status\n` with one JSON [`StatusReport`] and closes it; `summary\n`
//! gets the totals only (no walk over the sessions: cheap at any count).

use crate::run::Shared;
use anyhow::{Context, Result, bail};
use bfd::control::Handle;
use bfd::report::{SessionReport, StatusReport, Summary};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Builds the report from the loop's statuses and the configured names.
pub fn report(handle: &Handle, shared: &Shared) -> Result<StatusReport> {
    let statuses = handle.statuses()?;
    let snap = handle.snapshot()?;
    let (now, wall) = (Instant::now(), SystemTime::now());
    let names = shared.names();
    let mut sessions: Vec<SessionReport> = statuses
        .iter()
        .map(|(_, key, s)| {
            let name = names
                .get(key)
                .cloned()
                .unwrap_or_else(|| key.remote.to_string());
            SessionReport::new(&name, key, s, now, wall)
        })
        .collect();
    sessions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(StatusReport {
        sessions,
        summary: Summary::from_snapshot(&snap),
    })
}

/// Answers status requests until the loop ends.
pub fn serve(listener: UnixListener, handle: Handle, shared: Shared) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        if let Err(e) = answer(&mut conn, &handle, &shared) {
            tracing::debug!(error = %e, "status request failed");
            if handle.counters().is_err() {
                return; // the loop is gone
            }
        }
    }
}

fn answer(conn: &mut UnixStream, handle: &Handle, shared: &Shared) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&mut *conn).take(64).read_line(&mut line)?;
    let r = match line.trim() {
        "status" => report(handle, shared)?,
        "summary" => StatusReport {
            sessions: Vec::new(),
            summary: Summary::from_snapshot(&handle.snapshot()?),
        },
        _ => {
            conn.write_all(b"{\"error\":\"send status or summary\"}\n")?;
            return Ok(());
        }
    };
    serde_json::to_writer(&mut *conn, &r)?;
    conn.write_all(b"\n")?;
    Ok(())
}

/// Asks a running instance (the `bfd status` side); `summary_only` skips
/// the per-session entries.
pub fn query(socket: &Path, summary_only: bool) -> Result<StatusReport> {
    let mut c = UnixStream::connect(socket)
        .with_context(|| format!("connect {} (is `bfd run` running?)", socket.display()))?;
    c.set_read_timeout(Some(Duration::from_secs(30)))?;
    c.write_all(if summary_only {
        b"summary\n"
    } else {
        b"status\n"
    })?;
    c.shutdown(std::net::Shutdown::Write)?;
    let mut text = String::new();
    c.read_to_string(&mut text)?;
    if text.trim().is_empty() {
        bail!("empty answer from {}", socket.display());
    }
    serde_json::from_str(&text).with_context(|| format!("bad answer: {}", text.trim()))
}
