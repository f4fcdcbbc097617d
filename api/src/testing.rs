//! A real `bridgehead-controller` for other crates' tests (and this
//! crate's own), behind the `test-support` feature: build it, start it on
//! a loopback port, stop it by PID.
//!
//! Test support, so a failure to build or start the controller panics with
//! what went wrong instead of returning an error.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Builds (or refreshes) `bridgehead-controller` next to the running test
/// binary and returns its path.
///
/// Another package's binary: the test asks the cargo that runs it
/// (`$CARGO`) to build it into this test's own target directory, with the
/// same profile. The command is exactly the prebuild of `scripts/test`
/// (`--workspace --all-features --bins`), so there it is a no-op; a
/// narrower `-p`/`--bin` build would resolve features differently and
/// recompile.
pub fn build_controller() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary under target/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("target dir");
    let bin = profile_dir.join("bridgehead-controller");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--quiet",
        "--workspace",
        "--all-features",
        "--bins",
    ])
    .arg("--target-dir")
    .arg(target_dir)
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    let st = cmd.status();
    assert!(
        st.as_ref().is_ok_and(|s| s.success()) || bin.exists(),
        "cannot build the controller ({st:?}): run `cargo build --workspace --all-features --bins`"
    );
    bin
}

/// How to start one controller: the binary, its store, where it listens,
/// how it authenticates, and where its log goes.
#[derive(Debug)]
pub struct ControllerCmd {
    bin: PathBuf,
    data_dir: PathBuf,
    listen: String,
    tokens: Option<PathBuf>,
    args: Vec<OsString>,
    wrapper: Vec<OsString>,
    log: Option<PathBuf>,
}

impl ControllerCmd {
    /// `bin` on store `data_dir`, on a free loopback port, without
    /// authentication (`--insecure-no-auth`) and with stderr discarded.
    pub fn new(bin: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> ControllerCmd {
        ControllerCmd {
            bin: bin.into(),
            data_dir: data_dir.into(),
            listen: "127.0.0.1:0".into(),
            tokens: None,
            args: Vec::new(),
            wrapper: Vec::new(),
            log: None,
        }
    }

    /// Listens on `addr` (e.g. the address of a previous run, to restart on the same port).
    pub fn listen(mut self, addr: impl Into<String>) -> ControllerCmd {
        self.listen = addr.into();
        self
    }

    /// Authenticates with this tokens file instead of `--insecure-no-auth`.
    pub fn tokens(mut self, path: impl Into<PathBuf>) -> ControllerCmd {
        self.tokens = Some(path.into());
        self
    }

    /// More command-line arguments (e.g. `--progress-ms 200`, TLS files).
    pub fn args<I, S>(mut self, args: I) -> ControllerCmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs the controller through a command that execs it (e.g. `ip netns
    /// exec NAME`), so its PID is still the controller's.
    pub fn wrapped_in<I, S>(mut self, wrapper: I) -> ControllerCmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.wrapper = wrapper.into_iter().map(Into::into).collect();
        self
    }

    /// Appends the controller's stderr (its log) to this file.
    pub fn log(mut self, path: impl Into<PathBuf>) -> ControllerCmd {
        self.log = Some(path.into());
        self
    }

    /// Starts the controller; returns once it says `listening on ADDR`
    /// (bound, not necessarily ready to take writes).
    pub fn spawn(self) -> Controller {
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(&self.listen);
        match &self.tokens {
            Some(t) => cmd.arg("--tokens").arg(t),
            None => cmd.arg("--insecure-no-auth"),
        };
        let stderr = match &self.log {
            Some(p) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap_or_else(|e| panic!("controller log {}: {e}", p.display())),
            ),
            None => Stdio::null(),
        };
        let mut child = cmd
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.bin.display()));
        // Owned by the Controller from here on, so a panic below still stops it.
        let stdout = child.stdout.take().expect("piped stdout");
        let mut c = Controller {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the controller's stdout");
        c.addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("controller said {line:?}"));
        c
    }
}

/// A running controller; killed (SIGKILL, by PID) and reaped on drop, also on panic.
#[derive(Debug)]
pub struct Controller {
    /// The process, for its PID and exit status.
    pub child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl Controller {
    /// SIGKILL and reap, like a power cut for the process.
    pub fn kill9(self) {
        drop(self);
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
