//! The file source (`--desired`): the desired state comes from a JSON file,
//! learned MACs go to another. For tests, and for boxes whose state other
//! tooling writes; with a controller, [`crate::store_client`] is the source.
//!
//! The desired file is the flattened per-node view that
//! [`crate::store_source::compute`] derives from the api model
//! (LogicalSwitch, Binding, RemoteMac, TransportNode) at a store revision:
//!
//! ```json
//! {
//!   "revision": 42,
//!   "node": "gw1",
//!   "local_tunnel_ip": "198.18.0.10",
//!   "underlay_dev": "eth0",
//!   "switches": [{
//!     "name": "web", "vni": 5000, "replication": "source_node",
//!     "flood": ["198.18.0.20"],
//!     "remote_macs": [{"mac": "02:00:00:00:00:21", "vtep": "198.18.0.20", "ip": "192.0.2.21"}],
//!     "ports": [{"ifname": "eth1", "vlan": 0}],
//!     "vm_ports": [{"ifname": "vm1", "macs": ["02:00:00:00:05:01"]}]
//!   }]
//! }
//! ```
//!
//! `flood` lists the remote VTEPs (`source_node`) or the healthy service nodes
//! (`service_node`). The learned file is a JSON array of objects shaped like
//! the api model's `LearnedMac` (`reporter`, `logical_switch`, `mac`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::desired::{
    DesiredError, DesiredNode, DesiredSwitch, PortBinding, RemoteMac, Replication, VmPort,
};
use crate::mac::MacAddr;

/// BUM replication mode as the api model spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationMode {
    /// Flood through service nodes (`flood` = their tunnel IPs).
    ServiceNode,
    /// Flood to every remote VTEP (`flood` = their tunnel IPs).
    SourceNode,
}

/// The desired-state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredFile {
    /// Store revision this state was computed at; a file with a lower
    /// revision than the one in force is stale and ignored. 0 = unknown.
    #[serde(default)]
    pub revision: u64,
    /// This node's transport-node name: the reporter of its learned MACs.
    pub node: String,
    /// This node's tunnel IP.
    pub local_tunnel_ip: Ipv4Addr,
    /// Underlay NIC the VXLAN devices are bound to.
    #[serde(default)]
    pub underlay_dev: Option<String>,
    /// Logical switches on this node.
    #[serde(default)]
    pub switches: Vec<FileSwitch>,
}

/// One logical switch in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSwitch {
    /// Logical switch name (names its learned MACs in the store).
    pub name: String,
    /// VNI.
    pub vni: u32,
    /// Replication mode.
    pub replication: ReplicationMode,
    /// Flood targets (see [`ReplicationMode`]).
    #[serde(default)]
    pub flood: Vec<Ipv4Addr>,
    /// MACs behind other VTEPs.
    #[serde(default)]
    pub remote_macs: Vec<FileRemoteMac>,
    /// Physical bindings (gateway mode).
    #[serde(default)]
    pub ports: Vec<FilePort>,
    /// VM ports (host mode).
    #[serde(default)]
    pub vm_ports: Vec<FileVmPort>,
}

/// A remote MAC in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRemoteMac {
    /// The MAC.
    pub mac: MacAddr,
    /// Tunnel IP of its VTEP.
    pub vtep: Ipv4Addr,
    /// Its IPv4 address, for ARP suppression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
}

/// A physical binding in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePort {
    /// NIC name.
    pub ifname: String,
    /// VLAN id, 0 = untagged.
    #[serde(default)]
    pub vlan: u16,
}

/// A VM port in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileVmPort {
    /// veth/tap name.
    pub ifname: String,
    /// The VM's declared MACs.
    #[serde(default)]
    pub macs: Vec<MacAddr>,
}

/// The desired file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading failed (missing, permissions).
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid JSON of the expected shape; `field` says where.
    #[error("{path}: at {field}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// JSON path of the offending field.
        field: String,
        /// What serde said.
        message: String,
    },
    /// Well-formed, but the state is not valid (every problem listed).
    #[error("{path}: invalid desired state: {}", list(.problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, each naming its field.
        problems: Vec<DesiredError>,
    },
}

fn list(problems: &[DesiredError]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl DesiredFile {
    /// Parses and validates a file's text; errors name the field.
    pub fn parse(path: &Path, text: &str) -> Result<DesiredFile, FileError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let file: DesiredFile =
            serde_path_to_error::deserialize(de).map_err(|e| FileError::Parse {
                path: path.to_path_buf(),
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        let problems = file.validate();
        if !problems.is_empty() {
            return Err(FileError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(file)
    }

    /// Every problem: the reconciler's own checks plus the file's names.
    pub fn validate(&self) -> Vec<DesiredError> {
        let mut errs = self.to_desired().validate();
        if self.node.is_empty() {
            errs.push(DesiredError {
                field: "node".into(),
                problem: "must not be empty".into(),
            });
        }
        let mut names = BTreeMap::new();
        for s in &self.switches {
            if s.name.is_empty() {
                errs.push(DesiredError {
                    field: format!("switches[vni={}].name", s.vni),
                    problem: "must not be empty".into(),
                });
            } else if let Some(other) = names.insert(s.name.as_str(), s.vni) {
                errs.push(DesiredError {
                    field: format!("switches[vni={}].name", s.vni),
                    problem: format!("{} already names VNI {other}", s.name),
                });
            }
        }
        errs
    }

    /// The reconciler's view.
    pub fn to_desired(&self) -> DesiredNode {
        DesiredNode {
            revision: self.revision,
            local_tunnel_ip: self.local_tunnel_ip,
            underlay_dev: self.underlay_dev.clone(),
            switches: self
                .switches
                .iter()
                .map(|s| DesiredSwitch {
                    local_tunnel_ip: None,
                    vni: s.vni,
                    replication: match s.replication {
                        ReplicationMode::ServiceNode => Replication::ServiceNode {
                            service_nodes: s.flood.clone(),
                        },
                        ReplicationMode::SourceNode => Replication::SourceNode {
                            remote_vteps: s.flood.clone(),
                        },
                    },
                    remote_macs: s
                        .remote_macs
                        .iter()
                        .map(|m| RemoteMac {
                            mac: m.mac,
                            vtep: m.vtep,
                            ip: m.ip,
                        })
                        .collect(),
                    ports: s
                        .ports
                        .iter()
                        .map(|p| PortBinding {
                            ifname: p.ifname.clone(),
                            vlan: p.vlan,
                        })
                        .collect(),
                    vm_ports: s
                        .vm_ports
                        .iter()
                        .map(|p| VmPort {
                            ifname: p.ifname.clone(),
                            macs: p.macs.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Logical switch name of a VNI.
    pub fn switch_name(&self, vni: u32) -> Option<&str> {
        self.switches
            .iter()
            .find(|s| s.vni == vni)
            .map(|s| s.name.as_str())
    }
}

/// What one poll of the desired file found.
#[derive(Debug)]
pub enum Poll {
    /// Same file as last time (or still the same failure): nothing to do.
    Unchanged,
    /// A new, valid desired state.
    Loaded(Box<DesiredFile>),
    /// The file changed (or vanished) and cannot be used; the state in force stays.
    Failed(FileError),
}

/// Identity of a file version: cheap to compare on every poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// Watches the desired file by polling its metadata (no inotify: works the
/// same on every filesystem, and an atomic rename is seen as a new inode).
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    /// `Some(Ok)` after a good or bad read of that version, `Some(Err)` after a failed stat.
    last: Option<Result<Stamp, std::io::ErrorKind>>,
}

impl FileSource {
    /// A source that has read nothing yet.
    pub fn new(path: impl Into<PathBuf>) -> FileSource {
        FileSource {
            path: path.into(),
            last: None,
        }
    }

    /// The watched path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file if it changed since the last poll (or if `force`, as on SIGHUP).
    pub fn poll(&mut self, force: bool) -> Poll {
        use std::os::unix::fs::MetadataExt;
        let stamp = std::fs::metadata(&self.path).map(|m| Stamp {
            modified: m.modified().ok(),
            len: m.len(),
            inode: m.ino(),
        });
        let now = stamp.as_ref().map(|s| *s).map_err(|e| e.kind());
        if !force && self.last == Some(now) {
            return Poll::Unchanged;
        }
        self.last = Some(now);
        let text = match stamp.and_then(|_| std::fs::read_to_string(&self.path)) {
            Ok(t) => t,
            Err(source) => {
                return Poll::Failed(FileError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        match DesiredFile::parse(&self.path, &text) {
            Ok(f) => Poll::Loaded(Box::new(f)),
            Err(e) => Poll::Failed(e),
        }
    }
}

/// One learned MAC as the store will hold it (the api model's `LearnedMac`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedRecord {
    /// Transport node that learned it.
    pub reporter: String,
    /// Logical switch name.
    pub logical_switch: String,
    /// The MAC.
    pub mac: MacAddr,
}

/// Writes the learned set as a JSON array, atomically (temp file + rename),
/// so a reader never sees half a file.
pub fn write_learned(path: &Path, records: &[LearnedRecord]) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(records).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
      "revision": 7,
      "node": "gw1",
      "local_tunnel_ip": "198.18.0.10",
      "underlay_dev": "eth0",
      "switches": [{
        "name": "web", "vni": 5000, "replication": "source_node",
        "flood": ["198.18.0.20"],
        "remote_macs": [{"mac": "02:00:00:00:00:21", "vtep": "198.18.0.20", "ip": "192.0.2.21"}],
        "ports": [{"ifname": "eth1", "vlan": 0}],
        "vm_ports": [{"ifname": "vm1", "macs": ["02:00:00:00:05:01"]}]
      }, {
        "name": "db", "vni": 5001, "replication": "service_node", "flood": ["198.18.0.100"]
      }]
    }"#;

    #[test]
    fn parses_into_the_reconciler_view() {
        let f = DesiredFile::parse(Path::new("d.json"), GOOD).unwrap();
        assert_eq!(f.revision, 7);
        assert_eq!(f.switch_name(5001), Some("db"));
        let d = f.to_desired();
        assert_eq!(d.switches.len(), 2);
        assert_eq!(
            d.switches[0].replication,
            Replication::SourceNode {
                remote_vteps: vec!["198.18.0.20".parse().unwrap()]
            }
        );
        assert_eq!(d.switches[0].vm_ports[0].macs.len(), 1);
        assert_eq!(
            d.switches[0].remote_macs[0].ip,
            Some("192.0.2.21".parse().unwrap())
        );
        assert!(matches!(
            d.switches[1].replication,
            Replication::ServiceNode { .. }
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let bad = GOOD.replace("\"02:00:00:00:00:21\"", "\"02:00\"");
        let e = DesiredFile::parse(Path::new("d.json"), &bad).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("switches[0].remote_macs[0].mac"), "{text}");
        let typo = GOOD.replace("\"flood\": [\"198.18.0.100\"]", "\"floood\": []");
        let text = DesiredFile::parse(Path::new("d.json"), &typo)
            .unwrap_err()
            .to_string();
        assert!(text.contains("floood"), "{text}");
        let dup = GOOD.replace("\"name\": \"db\"", "\"name\": \"web\"");
        let text = DesiredFile::parse(Path::new("d.json"), &dup)
            .unwrap_err()
            .to_string();
        assert!(text.contains("already names VNI 5000"), "{text}");
    }

    #[test]
    fn source_reports_changes_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desired.json");
        let mut src = FileSource::new(&path);
        assert!(matches!(
            src.poll(false),
            Poll::Failed(FileError::Read { .. })
        ));
        assert!(matches!(src.poll(false), Poll::Unchanged));
        std::fs::write(&path, GOOD).unwrap();
        assert!(matches!(src.poll(false), Poll::Loaded(_)));
        assert!(matches!(src.poll(false), Poll::Unchanged));
        assert!(matches!(src.poll(true), Poll::Loaded(_)));
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            src.poll(false),
            Poll::Failed(FileError::Parse { .. })
        ));
        assert!(matches!(src.poll(false), Poll::Unchanged));
    }

    #[test]
    fn learned_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("learned.json");
        let recs = vec![LearnedRecord {
            reporter: "gw1".into(),
            logical_switch: "web".into(),
            mac: "02:00:00:00:aa:01".parse().unwrap(),
        }];
        write_learned(&path, &recs).unwrap();
        let back: Vec<LearnedRecord> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, recs);
    }
}
