//! Where the workspace's own binaries are, for scenarios that run them
//! (the controller, `bridgehead-ctl`, the gateway daemon, vtep-sync).
//!
//! They sit next to the running `lab` binary (`target/<profile>/lab`), or,
//! for a test executable (`target/<profile>/deps/<test>`), one folder up.
//! `BRIDGEHEAD_BIN_DIR` overrides both. Nothing is built here unless asked
//! ([`build_with_cargo`], which tests use): `lab up` fails with the `cargo
//! build` command that makes the missing binary.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The controller (REST API + store).
pub const CONTROLLER: &str = "bridgehead-controller";
/// The operator CLI.
pub const CTL: &str = "bridgehead-ctl";
/// The kernel VTEP daemon (gateways, hypervisors in host mode).
pub const GATEWAY: &str = "bridgehead-gateway";
/// The hardware-switch reconciler daemon (vtep-sync's store-driven binary).
pub const VTEP_SYNC: &str = "bridgehead-vtep-sync";

/// The package that builds a binary, for error messages and builds.
pub fn package_of(bin: &str) -> &'static str {
    match bin {
        CONTROLLER | CTL => "api",
        GATEWAY => "gateway",
        VTEP_SYNC => "vtep-sync",
        _ => "lab",
    }
}

/// Folders searched, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("BRIDGEHEAD_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(here) = exe.parent() {
            dirs.push(here.to_path_buf());
            // target/<profile>/deps/<test> -> target/<profile>
            if here.file_name().is_some_and(|n| n == "deps") {
                if let Some(up) = here.parent() {
                    dirs.push(up.to_path_buf());
                }
            }
        }
    }
    dirs
}

/// The path of workspace binary `name`, or an error naming the build command.
pub fn locate(name: &str) -> Result<PathBuf> {
    let dirs = search_dirs();
    find_in(name, &dirs)
}

fn find_in(name: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    for d in dirs {
        let p = d.join(name);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    bail!(
        "{name} not found in {}: build it with `cargo build --workspace --bins` \
         (or `cargo build -p {} --bin {name}`)",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        package_of(name)
    )
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Builds `bins` with the cargo that runs this process (`$CARGO`, set by
/// `cargo test` and `cargo run`) into this executable's own target folder
/// and profile, so a test finds them next to itself; a no-op when they are
/// fresh. Without `$CARGO` it only checks that they exist.
pub fn build_with_cargo(bins: &[&str]) -> Result<()> {
    let Ok(cargo) = std::env::var("CARGO") else {
        for b in bins {
            locate(b)?;
        }
        return Ok(());
    };
    let exe = std::env::current_exe()?;
    let mut profile_dir = exe.parent().context("executable has no folder")?;
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir = profile_dir.parent().context("no profile folder")?;
    }
    let target_dir = profile_dir.parent().context("no target folder")?;
    // Exactly what scripts/test prebuilds (`--workspace --all-features
    // --bins`): a narrower `-p`/`--bin` build would resolve features
    // differently and recompile shared crates inside every test run.
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--quiet",
        "--workspace",
        "--all-features",
        "--bins",
    ])
    .arg("--target-dir")
    .arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    // This crate's folder: cargo finds the workspace from there.
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
    let st = cmd.status().with_context(|| format!("run {cargo} build"))?;
    if !st.success() {
        bail!("`{cargo} build` of {} failed: {st}", bins.join(", "));
    }
    for b in bins {
        locate(b)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_build_command() {
        let dir = tempfile_dir();
        let e = find_in(GATEWAY, std::slice::from_ref(&dir))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cargo build --workspace --bins"), "{e}");
        assert!(
            e.contains("cargo build -p gateway --bin bridgehead-gateway"),
            "{e}"
        );
        // An executable file is found; a plain file is not.
        let p = dir.join(CTL);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        assert!(find_in(CTL, std::slice::from_ref(&dir)).is_err());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_in(CTL, std::slice::from_ref(&dir)).unwrap(), p);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("lab-bins-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
