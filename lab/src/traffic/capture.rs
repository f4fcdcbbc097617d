//! Packet capture inside a lab host (tcpdump writes a pcap) decoded by tshark,
//! so tests can prove what is on the wire (a VNI, a BFD field) and that
//! Wireshark's dissectors find nothing malformed in what we send.

use crate::cmd;
use crate::lab::{Host, Lab};
use crate::wait;
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// A capture in progress.
#[derive(Debug)]
pub struct Capture {
    name: String,
    /// The pcap file (kept in the run folder after the lab is gone).
    pub file: PathBuf,
}

/// A finished capture, ready to decode.
#[derive(Debug, Clone)]
pub struct Pcap {
    /// The pcap file.
    pub file: PathBuf,
}

impl Capture {
    /// Starts capturing on `iface` in `host` with BPF `filter`; returns once
    /// tcpdump is listening, so no packet sent afterwards is missed.
    pub fn start(lab: &Lab, host: &Host, iface: &str, filter: &str) -> Result<Capture> {
        cmd::require_program("tcpdump", "tcpdump")?;
        let tag = format!("{}-{iface}-{}", host.name, lab.state().processes.len());
        let file = lab.run_dir().join(format!("{tag}.pcap"));
        let name = format!("capture/{tag}");
        let f = file.to_string_lossy().into_owned();
        // --immediate-mode: no 1 s block timeout; -U: write every packet at once.
        let mut argv = vec![
            "tcpdump",
            "-i",
            iface,
            "--immediate-mode",
            "-U",
            "-n",
            "-s",
            "512",
            "-w",
            &f,
        ];
        argv.extend(cmd::words(filter));
        lab.spawn(Some(host), &name, &argv, &[])?;
        let log = lab.process_log(&name)?;
        wait::until(
            "tcpdump to listen",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("listening on")),
        )
        .or_else(|e| lab.check_alive(&name).and(Err(e)))?;
        Ok(Capture { name, file })
    }

    /// Stops tcpdump (SIGTERM flushes the file) and returns the pcap.
    pub fn stop(self, lab: &Lab) -> Result<Pcap> {
        // tcpdump exits on SIGTERM without draining what the kernel already
        // queued for it: wait until the file stops growing first.
        let size = || std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0);
        let mut last = size();
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            let now = size();
            if now == last {
                break;
            }
            last = now;
        }
        lab.stop_process(&self.name)?;
        Ok(Pcap { file: self.file })
    }
}

impl Pcap {
    fn tshark(&self, extra: &[&str]) -> Result<String> {
        cmd::require_program("tshark", "tshark")?;
        let f = self.file.to_string_lossy().into_owned();
        let mut argv = vec!["tshark", "-n", "-r", &f];
        argv.extend_from_slice(extra);
        cmd::run(None, &argv)
    }

    /// Decodes every packet matching display filter `display` (empty: all)
    /// into the values of `fields` (tshark field names such as `vxlan.vni`).
    pub fn fields(&self, display: &str, fields: &[&str]) -> Result<Vec<Vec<String>>> {
        let mut argv = vec!["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"];
        if !display.is_empty() {
            argv.extend(["-Y", display]);
        }
        for f in fields {
            argv.extend(["-e", f]);
        }
        let out = self.tshark(&argv)?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect())
    }

    /// Number of packets matching display filter `display`.
    pub fn count(&self, display: &str) -> Result<usize> {
        Ok(self.fields(display, &["frame.number"])?.len())
    }

    /// Summary lines of packets tshark flags as malformed or with an expert
    /// warning or error. Empty means every packet decoded cleanly.
    pub fn problems(&self) -> Result<Vec<String>> {
        let out = self.tshark(&["-Y", r#"_ws.malformed || _ws.expert.severity >= "Warning""#])?;
        Ok(out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect())
    }
}
