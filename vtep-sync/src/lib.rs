//! vtep-sync: OVSDB client, typed hardware_vtep tables and the per-switch
//! reconciler that makes a hardware VTEP match the controller.
//!
//! # How the pieces fit
//!
//! ```text
//!             bytes                JSON values            messages
//!  socket ─────────────▶ framing ─────────────▶ jsonrpc ─────────────▶ client task
//!  (target: tcp/unix/ssl)  JsonSplitter          Message, Pending        │   │
//!                                                                        │   ├─ echo answered at once
//!                                                  liveness::Prober ◀────┤   ├─ our own echo probe
//!                                                  liveness::Backoff ◀───┤   ├─ reconnect + fresh monitor
//!                                                                        │   └─ lock / steal / unlock
//!                                update / update2                        ▼
//!                     replica::Replica  ◀────────────────────────  notifications
//!                          │ rows (datum::Row)
//!                          ▼
//!                  vtep_tables::{LogicalSwitch, PhysicalPort, ...}  (typed reads)
//!                  vtep_tables::check_schema(schema)                 (refuse old switches)
//!
//!  writes:  ops::Operation builders ─▶ Client::transact ─▶ ops::parse_transact_result
//! ```
//!
//! The reconciler sits on top:
//!
//! ```text
//!  api::model objects ──desired::compute(switch)──▶ DesiredState (names, MACs, IPs)
//!                                                        │
//!  Replica of the switch ─────────────────────────────▶ plan::plan ──▶ Plan (one transaction:
//!                                                        │              assert lock, wait guards,
//!                                                        │              inserts, updates, mutates, deletes)
//!  reconciler::Pacer (sans-IO: synced? locked? schema ok? debounce, backoff,
//!                     own update seen?) ──▶ Go::Plan ──▶ reconciler edge ──▶ Client::transact (timeout)
//!                                                                      └──▶ ReconcilerStatus (watch)
//! ```
//!
//! What the switch reports flows the other way, and into the metrics:
//!
//! ```text
//!  Replica ──observed::observe──▶ Observed (LearnedMac per Ucast_Macs_Local row, named by the
//!     │                                     store's logical switch of its VNI; TunnelStatus from
//!     │                                     Tunnel.bfd_status; SwitchStatus: connection + faults)
//!     │                               │ Reconciler::watch_observed()
//!     │                               ▼
//!     │                    observed::diff(prev, cur) ──▶ puts / deletes for a store writer
//!     │
//!     └──metrics::StatsTracker (Logical_Binding_Stats → reset-safe increments)
//!                               ──▶ metrics::Metrics (one Registry, `switch` label per reconciler):
//!                                   connection, lock, in-sync, transactions by result, latency,
//!                                   plan time, rows written, rows per table, learned MACs,
//!                                   tunnels by BFD state, store revision applied and lag
//! ```
//!
//! Everything except [`client`], [`target`] and the edge of [`reconciler`]
//! is sans-IO: [`framing`], [`jsonrpc`], [`datum`], [`ops`], [`schema`],
//! [`replica`], [`liveness`], [`vtep_tables`], [`desired`], [`plan`],
//! [`observed`], [`metrics::StatsTracker`] and [`reconciler::Pacer`] are
//! plain data and functions, fed bytes, JSON,
//! rows and `now`, and are unit tested on JSON captured from ovsdb-server
//! 3.1 (the planner also on a small in-crate simulation of the server's
//! transaction semantics, `testsim`, including garbage collection). The
//! [`client::Client`] runs one tokio task per server connection that owns
//! the socket; callers send requests through a channel and get oneshot
//! replies, and receive [`client::Event`]s (connected, synced, updated,
//! locked, stolen, disconnected). The monitored [`replica::Replica`] is
//! rebuilt from a fresh initial dump after every reconnect and swapped in
//! whole, so readers never see a half-built copy.
//!
//! # The reconciler's rules
//!
//! - **Level-based and diff-only.** Every pass plans from the switch's
//!   current rows; rows that are still desired are never rewritten, so a
//!   controller restart, a crash (`kill -9`) or a switch reconnect writes
//!   nothing. Stopping deletes nothing.
//! - **Ownership** (see [`plan`]): the `*_Remote` tables are the
//!   controller's; logical switches it created carry
//!   `other_config:bridgehead-owner=vtep-sync`; foreign logical switches and
//!   the switch's own tables (`Ucast_Macs_Local`, ...) are never written.
//! - **One writer per switch**: the OVSDB lock [`reconciler::DEFAULT_LOCK`]
//!   in the switch's database, asserted inside every transaction. A dead
//!   holder's connection closes and the next instance gets the lock at once;
//!   a hung holder is dropped by the switch's inactivity probe (the
//!   `Manager` row's `inactivity_probe`; twice the probe in the worst case).
//! - **Races**: `wait` guards on rows read then modified (port bindings,
//!   logical switches); no plan before our previous commit shows up in the
//!   replica (no duplicates, no reference to a garbage-collected locator);
//!   failures are retried with backoff, forever.
//! - **Source-node fallback**: a switch reporting
//!   `unsupported_source_node_replication` gets service_node replication on
//!   all its logical switches, remembered on the rows
//!   (`other_config:bridgehead-replication-fallback`) and in the status.
//!
//! # The daemon
//!
//! [`daemon`] (binary `bridgehead-vtep-sync`) wires the reconcilers to the
//! controller's store through [`store_sync`]: one reflector computes every
//! served switch's desired state ([`desired::compute`]) at each store
//! revision and hands it to that switch's reconciler
//! ([`reconciler::Reconciler::set_desired_at`]; a revision that changes
//! nothing for a switch in sync only advances its applied revision, so the
//! store lag metric is head minus applied); reconcilers come and go with
//! their switches' transport nodes (OVSDB target from the store). The
//! switch's lock holder writes the observed state as LearnedMac,
//! TunnelStatus and SwitchStatus objects under a lease, diffed against the
//! store's copy. Its root test against a real controller and ovsdb-server
//! is `tests/daemon.rs`; in the end-to-end overlay lab it drives the
//! ovs-vtep switch `sw1` (`lab/tests/overlay_e2e.rs`).
//!
//! Tests against the real ovsdb-server and vtep-ctl live in
//! `tests/ovsdb_server.rs` (client), `tests/reconciler.rs` (reconciler),
//! `tests/observed.rs` (observed state) and `tests/metrics.rs` (metrics,
//! binding statistics, the test driver's metrics listener) behind the
//! `root-tests` feature; `src/bin/vtep-sync-test-driver.rs` runs one
//! reconciler from a JSON desired state so tests can kill it with `-9`.
//! Against the ovs-vtep emulator, end to end with traffic:
//! `lab/tests/vtep_sync_ovs_vtep.rs`. Speed against `vtep-ctl`:
//! `benches/push.rs`.

#![warn(missing_docs)]

pub mod client;
pub mod daemon;
pub mod datum;
pub mod desired;
pub mod framing;
pub mod jsonrpc;
pub mod liveness;
pub mod metrics;
pub mod observed;
pub mod ops;
pub mod plan;
pub mod reconciler;
pub mod replica;
pub mod schema;
pub mod store_sync;
pub mod target;
#[cfg(test)]
mod testsim;
pub mod vtep_tables;
