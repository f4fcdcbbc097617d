//! The Bridgehead lab: network-namespace topologies with real peers, for tests,
//! demos and benchmarks.
//!
//! - [`lab::Lab`] owns namespaces (hosts, L2 segments), veth links and
//!   supervised processes, and tears them all down on drop, panic, signal, or
//!   (when its builder was killed) on the next run; [`state`] is the on-disk
//!   record that makes the last case possible.
//! - [`topology`] describes hosts and segments declaratively (TOML).
//! - [`peers`] starts real daemons inside hosts: the ovs-vtep emulated
//!   hardware switch, FRR bfdd, hand-configured kernel VTEPs.
//! - [`traffic`] measures: ping timelines, tcpdump captures decoded by tshark.
//! - [`scenarios`] are the named labs behind `lab up`.
//! - [`bins`] finds the workspace's own binaries (controller, ctl, daemons)
//!   that scenarios run.
//!
//! Lab traffic stays inside the namespaces the lab creates; addresses follow
//! the plan in DESIGN.md (underlay 198.18.0.0/24, tenants 192.0.2.0/24 and
//! 198.51.100.0/24).

pub mod bins;
pub mod cmd;
pub mod lab;
pub mod peers;
pub mod process;
pub mod scenarios;
pub mod state;
pub mod teardown;
pub mod topology;
pub mod traffic;
pub mod wait;

pub use lab::{Host, Iface, Lab, Segment};
