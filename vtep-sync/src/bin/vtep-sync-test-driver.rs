//! Runs one reconciler from a JSON desired-state file and prints its status
//! as one JSON line per change on stdout. It exists so tests and the lab can
//! kill a real vtep-sync process (`kill -9`) and start another one.
//!
//! Usage: `vtep-sync-test-driver TARGET DESIRED.json [LOCK|-]`
//! (`-` runs without the writer lock).

use std::process::ExitCode;

use vtep_sync::desired::DesiredState;
use vtep_sync::reconciler::{DEFAULT_LOCK, Reconciler, ReconcilerConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: vtep-sync-test-driver TARGET DESIRED.json [LOCK|-]");
        return ExitCode::from(2);
    }
    let target = match args[0].parse() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let desired: DesiredState = match std::fs::read_to_string(&args[1])
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", args[1]);
            return ExitCode::from(2);
        }
    };
    let mut cfg = ReconcilerConfig::new("test-switch", target);
    cfg.lock = match args.get(2).map(String::as_str) {
        Some("-") => None,
        Some(l) => Some(l.to_owned()),
        None => Some(DEFAULT_LOCK.to_owned()),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let r = Reconciler::start(cfg, desired);
        let mut st = r.watch_status();
        loop {
            let line = serde_json::to_string(&*st.borrow_and_update()).unwrap_or_default();
            println!("{line}");
            if st.changed().await.is_err() {
                break;
            }
        }
    });
    ExitCode::SUCCESS
}
