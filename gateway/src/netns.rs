//! Running code inside a named network namespace.
//!
//! `setns(CLONE_NEWNET)` changes the namespace of the calling *thread* only,
//! and every socket created afterwards belongs to it. rtnetlink's own
//! namespace helper forks inside an async function, which is unsafe in a
//! multi-threaded runtime. So: enter the namespace on a fresh, dedicated
//! std thread first, and only then build a current-thread tokio runtime on
//! that thread. Every netlink socket the runtime opens lives in the namespace.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::thread::JoinHandle;

use nix::sched::{CloneFlags, setns};

/// Where `ip netns add NAME` bind-mounts a namespace.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Entering a namespace or starting the runtime in it failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `/run/netns/NAME` could not be opened (namespace missing?).
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `setns` system call failed (needs CAP_SYS_ADMIN).
    #[error("setns into {path} failed: {source}")]
    Setns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },
    /// Building the tokio runtime failed.
    #[error("cannot build tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// Spawning the thread failed.
    #[error("cannot spawn namespace thread: {0}")]
    Spawn(std::io::Error),
}

/// Moves the calling thread into the named namespace. Only call this on a
/// thread you own and that has no runtime yet.
pub fn enter(name: &str) -> Result<(), NetnsError> {
    let path = PathBuf::from(NETNS_RUN_DIR).join(name);
    let file = File::open(&path).map_err(|source| NetnsError::Open {
        path: path.clone(),
        source,
    })?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Setns { path, source })
}

/// Spawns a thread that enters namespace `name`, builds a current-thread
/// runtime there and runs the future made by `make` to completion.
pub fn spawn_in<F, Fut, T>(
    name: &str,
    make: F,
) -> Result<JoinHandle<Result<T, NetnsError>>, NetnsError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let name = name.to_string();
    std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            enter(&name)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(NetnsError::Runtime)?;
            Ok(rt.block_on(make()))
        })
        .map_err(NetnsError::Spawn)
}

/// Runs `make()`'s future inside namespace `name` and waits for its result.
pub fn run_in<F, Fut, T>(name: &str, make: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    match spawn_in(name, make)?.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
