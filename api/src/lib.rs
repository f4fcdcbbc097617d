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
//!   `bridgehead-controller` binary:
//!   - [`http::auth`]: bearer tokens from a TOML file (re-read on SIGHUP)
//!     with roles `admin` (everything), `node` (read all; write only its
//!     own observed state under its own leases) and `reader`; 401 with
//!     `WWW-Authenticate: Bearer`, 403 for a role that may not. The binary
//!     refuses to start without `--tokens` unless `--insecure-no-auth`.
//!   - [`http::metrics`]: Prometheus `/metrics` (requests by route
//!     template and status, latency histogram, revision, raft term/commit/
//!     applied, watchers, store file size, leases, objects).
//!   - `/openapi.json`: every path, typed schemas with ranges and enums,
//!     checked against the server by `tests/openapi.rs`.
//! - [`tls`]: rustls (ring) for the server (`--tls-cert`, `--tls-key`;
//!   handshakes off the accept loop) and for clients (a CA file).
//! - [`client`]: the library daemons use: typed CRUD, leases, list, watch
//!   as a stream, and the [`client::Reflector`] (list, watch, resume with
//!   backoff and jitter, relist on `compacted`, refuse a server behind what
//!   it has seen). `bridgehead-ctl` is the operators' command line on it.
//! - [`wire`]: the answers client and server share (writes, lists, leases,
//!   watch lines).
//! - `testing` (feature `test-support`): builds and runs a real
//!   `bridgehead-controller` for tests, this crate's and the daemons'.
//!
//! Feature `server` (default) builds the store, the API and the binaries;
//! without it the crate is the daemons' client only (model, validation,
//! placement, client, TLS client side, `daemon_main`), with no raft, redb
//! or axum in the build.
//!
//! Binaries: `bridgehead-controller` (the store and API) and
//! `bridgehead-ctl` (create/replace/get/list/delete every kind, watch,
//! leases; table or JSON output). `benches/store.rs` compares write
//! throughput and watch latency with etcd (`cargo bench -p api --bench store`).
//!
//! Not built yet: the raft peer transport (more than one voter over the
//! network), a cluster identity (a server *ahead* of a client but from
//! another cluster is not detected; only one *behind* is), client
//! certificates (mTLS).
//!
//! ```text
//!  HTTP (axum) ──propose──▶ Node thread: RawNode ─ready─▶ apply ─┐
//!      ▲   ▲                                                     ▼
//!      │   └──── list (RwLock<State>)         one redb txn: log + hs + state + history
//!      └──────── watch ◀── broadcast (after commit) + history replay from redb
//! ```

pub mod client;
pub mod daemon_main;
pub mod duration;
#[cfg(feature = "server")]
pub mod http;
pub mod model;
#[cfg(feature = "server")]
pub mod node;
pub mod placement;
#[cfg(feature = "server")]
pub mod state_machine;
#[cfg(feature = "server")]
pub mod storage;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tls;
pub mod validate;
#[cfg(feature = "server")]
pub mod watch;
pub mod wire;
