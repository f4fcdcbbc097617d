//! Controller: resource model, replicated store, REST API and watch.
//!
//! How the pieces fit, bottom to top:
//!
//! - [`model`]: the objects. Desired state written by operators
//!   (LogicalSwitch, TransportNode, GatewayGroup, Binding, RemoteMac) and
//!   observed state written by daemons under a lease (learned MACs, tunnel
//!   status, election state, switch status). Every object has a key
//!   `kind-segment/name`.
//! - [`validate`]: checks an object needs to pass on its own; reports every
//!   problem with its field name.
//! - [`state_machine`]: the deterministic `apply(Command)`: referential
//!   checks (at apply time, so concurrent requests are serialised), the
//!   delete policy, leases, and one global revision per change.
//! - [`storage`]: the one redb file (raft log, hard/conf state, state
//!   machine, revision, watch history) and `raft::Storage` on it.
//! - [`node`]: the raft-rs Ready loop on its own thread; one fsynced redb
//!   transaction per Ready; a proposal is answered once it is applied and
//!   durable. A single voter is the embedded default; more voters are a
//!   `ConfChangeV2` away (the peer transport is not built yet).
//! - [`watch`]: list at a revision, then watch from it (etcd v3 shape).
//! - [`http`]: the axum REST API over a [`node::Node`], served by the
//!   `bridgehead-controller` binary.
//!
//! ```text
//!  HTTP (axum) ──propose──▶ Node thread: RawNode ─ready─▶ apply ─┐
//!      ▲   ▲                                                     ▼
//!      │   └──── list (RwLock<State>)         one redb txn: log + hs + state + history
//!      └──────── watch ◀── broadcast (after commit) + history replay from redb
//! ```

pub mod client;
pub mod http;
pub mod model;
pub mod node;
pub mod state_machine;
pub mod storage;
pub mod tls;
pub mod validate;
pub mod watch;
