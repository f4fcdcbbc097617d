//! Gateway: kernel VTEP dataplane over rtnetlink and the gateway daemon.
//!
//! How the pieces fit:
//!
//! ```text
//!   DesiredNode (from the store)          kernel (links, FDB, neighbours, nexthops)
//!          │                                   │  dump            ▲ apply
//!          ▼                                   ▼                  │
//!   desired.rs ──► diff::diff(desired, observed::Observed) ──► Vec<Action>
//!                                   ▲                               │
//!   reconciler.rs: level-based loop: dump + diff + apply at start, on a periodic
//!   resync and (debounced) on every RTNLGRP_LINK/NEIGH/NEXTHOP notification, so
//!   whatever someone else deletes or changes is put back.
//! ```
//!
//! - [`desired`]: the node's desired VTEP state and the deterministic names /
//!   alias / nexthop-protocol marks that make our kernel objects recognisable.
//! - [`observed`]: the kernel snapshot the diff reads.
//! - [`diff`]: sans-IO; (desired, observed) -> ordered [`action::Action`]s. Only
//!   objects we own are ever deleted.
//! - [`action`]: the kernel changes, one per `ip`/`bridge` command they replace.
//! - [`kernel`]: the one owner of the netlink socket: dumps into [`observed::Observed`]
//!   and applies actions, one error per failed action (a failure never aborts a pass);
//!   `kernel_msgs.rs` builds and decodes its netlink messages.
//! - [`nexthop`]: the `RTM_*NEXTHOP` wire format, which netlink-packet-route lacks.
//! - [`message`]: the netlink message type of our connection (route messages + nexthops).
//! - [`netns`]: run a thread inside a named network namespace before any runtime exists.
//! - [`reconciler`]: the loop. It reads each notification ([`kernel::classify`]):
//!   learned (dynamic) bridge FDB entries only feed learning, everything else
//!   asks for a debounced pass.
//! - [`daemon`]: the `bridgehead-gateway` event loop (binary in
//!   `src/bin/bridgehead-gateway.rs`): takes the desired state from the
//!   controller or a file, runs the reconciler, serves metrics, reports
//!   learned MACs, and stops on SIGTERM/SIGINT leaving the dataplane as it is.
//! - [`store_source`]: pure function from the store's objects (api model) to
//!   one transport node's [`DesiredNode`]: which logical switches are present
//!   (gateway: bound to one of its groups, sourced from the group VTEP IP;
//!   hypervisor: has one of its VM MACs), remote MACs (placed and learned by
//!   others), flood targets.
//! - [`store_client`]: the controller edge, two tasks: a reflector (list +
//!   watch, resume, relist) that recomputes the node's state on every change,
//!   and a publisher that writes learned MACs as `LearnedMac` objects under a
//!   lease it renews (and deletes withdrawn ones). Headless: an unreachable
//!   controller changes nothing in the kernel; a restarted daemon relists.
//! - [`file_store`]: the other source: a per-node desired-state JSON file
//!   (with its store revision; an older revision is ignored, a missing or bad
//!   file keeps the state in force) and a learned-MAC output file; for tests
//!   and boxes configured by other tooling.
//! - [`metrics`]: the Prometheus registry (objects by kind, netlink errors by
//!   operation, passes and their duration, learned MACs, desired revision and
//!   store lag) and the `/metrics` listener (default [`metrics::DEFAULT_LISTEN`]).
//! - [`learning`]: sans-IO learned-MAC tracker: dynamic bridge FDB entries on
//!   the local (non-VXLAN) ports of our bridges become `Learned` /
//!   `Withdrawn` events, from each pass's dump (the truth) and from
//!   `RTM_NEWNEIGH`/`RTM_DELNEIGH` notifications (the latency).
//!
//! Kernel objects per logical switch (VNI): a bridge `bhbr<vni>`; a VXLAN device
//! `bhvx<vni>` (local tunnel IP, dstport 4789, nolearning, bound to the underlay
//! NIC) enslaved to it; bound physical ports (the NIC itself for VLAN 0, a
//! `bhq<ifindex>.<vlan>` sub-interface otherwise); in host mode, VM ports
//! (veth/tap named in the desired state, attached untagged when they appear,
//! released but never deleted when no longer desired) with each declared VM
//! MAC pinned by a static bridge entry (`master static`); per remote MAC a vxlan FDB
//! entry (`dst VTEP self`) and a static bridge FDB entry (`master static`);
//! BUM flooding as all-zeros FDB entries, one per remote VTEP (source_node) or
//! one `nhid` entry pointing at an FDB nexthop group of the service nodes
//! (service_node); for remote MACs with a known IP, a permanent neighbour entry
//! on the bridge plus `neigh_suppress` on the VXLAN port (ARP suppression).
//! Links carry the alias `bridgehead:<role>:vni=<vni>`, nexthops the protocol
//! number [`desired::NEXTHOP_PROTOCOL`]; nothing else is ever deleted.

//!
//! Measured (`cargo bench -p gateway --bench fdb`, root, release; kernel
//! 6.18, 2 cores): programming 100,000 remote MACs (200,000 kernel entries)
//! takes the reconciler's first pass about as long as `bridge -batch` adding
//! the same entries (~1.2 s each); a no-op pass at that size costs ~3.6 s,
//! almost all of it the kernel's AF_BRIDGE FDB dump (`bridge fdb show` alone
//! takes ~3.3 s of system time there), which is why learned-entry
//! notifications do not trigger passes.

pub mod action;
pub mod daemon;
pub mod desired;
pub mod diff;
#[cfg(test)]
mod diff_tests;
pub mod file_store;
pub mod kernel;
mod kernel_msgs;
pub mod learning;
pub mod mac;
pub mod message;
pub mod metrics;
pub mod netns;
pub mod nexthop;
pub mod observed;
pub mod reconciler;
pub mod store_client;
pub mod store_source;

pub use desired::{DesiredNode, DesiredSwitch, PortBinding, RemoteMac, Replication, VmPort};
pub use mac::MacAddr;
