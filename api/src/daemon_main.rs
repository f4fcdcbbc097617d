//! What every Bridgehead daemon's `main` does the same way: logging set up
//! for operators, and the run's outcome turned into an exit code.

use std::fmt::Display;
use std::future::Future;
use std::io::{self, IsTerminal};
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Logs to stderr at the level `RUST_LOG` asks for (`info` by default),
/// with colour codes only on a terminal so that log files stay greppable.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// Runs `daemon` to its end on `runtime` and returns the exit code: failure
/// (with the reason logged) if the runtime could not be built or the
/// daemon returned an error.
pub fn run_to_exit<E: Display>(
    name: &str,
    runtime: io::Result<tokio::runtime::Runtime>,
    daemon: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    let rt = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "{name}: cannot build the runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(daemon) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} failed");
            ExitCode::FAILURE
        }
    }
}
