//! Runs one reconciler from a JSON desired-state file and prints its status
//! as one JSON line per change on stdout. It exists so tests and the lab can
//! kill a real vtep-sync process (`kill -9`) and start another one.
//!
//! Usage: `vtep-sync-test-driver [OPTIONS] TARGET DESIRED.json [LOCK|-]`
//! (`-` runs without the writer lock). Options:
//!
//! - `--switch NAME`: the switch's transport node name (status, observed
//!   objects and metric labels; default `test-switch`);
//! - `--observed`: also print every change of the observed state, as a line
//!   `{"observed": {...}}`;
//! - `--metrics-listen ADDR`: serve the Prometheus text format on
//!   `http://ADDR/` (any path), one request per connection.

use std::process::ExitCode;

use tokio::net::TcpListener;
use vtep_sync::daemon::http;
use vtep_sync::desired::DesiredState;
use vtep_sync::metrics::Metrics;
use vtep_sync::reconciler::{DEFAULT_LOCK, Reconciler, ReconcilerConfig};

const USAGE: &str = "usage: vtep-sync-test-driver [--switch NAME] [--observed] \
                     [--metrics-listen ADDR] TARGET DESIRED.json [LOCK|-]";

struct Args {
    switch: String,
    observed: bool,
    metrics_listen: Option<String>,
    positional: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        switch: "test-switch".into(),
        observed: false,
        metrics_listen: None,
        positional: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--switch" => a.switch = it.next().ok_or("--switch needs a name")?,
            "--observed" => a.observed = true,
            "--metrics-listen" => {
                a.metrics_listen = Some(it.next().ok_or("--metrics-listen needs an address")?)
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => a.positional.push(arg),
        }
    }
    if !(2..=3).contains(&a.positional.len()) {
        return Err("expected TARGET DESIRED.json [LOCK|-]".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let target = match args.positional[0].parse() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let path = &args.positional[1];
    let desired: DesiredState = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cfg = ReconcilerConfig::new(args.switch.clone(), target);
    cfg.lock = match args.positional.get(2).map(String::as_str) {
        Some("-") => None,
        Some(l) => Some(l.to_owned()),
        None => Some(DEFAULT_LOCK.to_owned()),
    };
    let registry = prometheus::Registry::new();
    if args.metrics_listen.is_some() {
        match Metrics::new(&registry) {
            Ok(m) => cfg.metrics = Some(m),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        if let (Some(addr), Some(m)) = (&args.metrics_listen, &cfg.metrics) {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    tokio::spawn(http::serve(l, m.registry().clone()));
                }
                Err(e) => {
                    eprintln!("--metrics-listen {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let r = Reconciler::start(cfg, desired);
        let mut st = r.watch_status();
        let mut obs = r.watch_observed();
        let (mut print_status, mut print_observed) = (true, args.observed);
        loop {
            if print_status {
                let line = serde_json::to_string(&*st.borrow_and_update()).unwrap_or_default();
                println!("{line}");
            }
            if print_observed {
                let o = obs.borrow_and_update().clone();
                match serde_json::to_value(&*o) {
                    Ok(v) => println!("{}", serde_json::json!({ "observed": v })),
                    Err(e) => eprintln!("observed state not serializable: {e}"),
                }
            }
            // changed() marks the value seen: print whichever woke us.
            let r = if args.observed {
                tokio::select! {
                    r = st.changed() => { (print_status, print_observed) = (true, false); r }
                    r = obs.changed() => { (print_status, print_observed) = (false, true); r }
                }
            } else {
                st.changed().await
            };
            if r.is_err() {
                break;
            }
        }
        ExitCode::SUCCESS
    })
}
