//! The tokio edge: one task owns the OVSDB connection, answers the server's
//! echo, probes an idle server, keeps the monitored replica current, holds
//! the locks we asked for, and reconnects with backoff when the connection
//! drops. Callers talk to it through [`Client`] (requests with oneshot
//! replies) and receive [`Event`]s.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::framing::{DEFAULT_MAX_MESSAGE_SIZE, JsonSplitter};
use crate::jsonrpc::{Message, Pending};
use crate::liveness::{Backoff, ProbeAction, Prober};
use crate::ops::{OpResult, Operation, TransactError, parse_transact_result, transact_params};
use crate::replica::{Change, MonitorSpec, Replica, monitor_params};
use crate::schema::{DatabaseSchema, SchemaError};
use crate::target::{Stream, Target, TargetError, TlsFiles, connect, tls_config};

/// Why a request through the client failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No connection right now (the client is between reconnect attempts).
    #[error("not connected to the OVSDB server")]
    NotConnected,
    /// The connection dropped before the reply arrived; the request may or
    /// may not have been carried out.
    #[error("connection lost before the reply arrived")]
    Disconnected,
    /// The client task has stopped (shut down or every handle dropped).
    #[error("OVSDB client task has stopped")]
    Stopped,
    /// The server answered with a JSON-RPC error.
    #[error("server error: {0}")]
    Server(String),
    /// A transaction did not commit.
    #[error(transparent)]
    Transact(#[from] TransactError),
    /// The server's schema could not be parsed.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A reply without the shape RFC 7047 gives it.
    #[error("unexpected reply: {0}")]
    BadReply(String),
    /// TLS files unusable, so the client cannot start.
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// What to monitor, re-issued on every (re)connect.
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// Database name, e.g. `hardware_vtep`.
    pub db: String,
    /// Tables and columns.
    pub tables: MonitorSpec,
    /// Try `monitor_cond` first (falls back to `monitor` if the server lacks it).
    pub prefer_monitor_cond: bool,
}

/// Everything the connection task needs to know.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Where the server is.
    pub target: Target,
    /// Files for `ssl:` targets.
    pub tls: Option<TlsFiles>,
    /// Largest single message accepted from the server.
    pub max_message_size: usize,
    /// Send an echo after this long without traffic; `None` disables it.
    pub inactivity_probe: Option<Duration>,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// How long one connect (with TLS handshake) may take.
    pub connect_timeout: Duration,
    /// The monitor to keep, if any.
    pub monitor: Option<MonitorConfig>,
}

impl ClientConfig {
    /// Defaults in line with OVS: 5 s probe, backoff 100 ms .. 8 s.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            tls: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            inactivity_probe: Some(Duration::from_secs(5)),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(5),
            monitor: None,
        }
    }
}

/// Things the connection task reports, in the order they happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The transport is up (the replica is not rebuilt yet).
    Connected,
    /// The replica was rebuilt from a fresh initial dump (after every connect).
    Synced {
        /// True when `monitor_cond` was used, false for plain `monitor`.
        monitor_cond: bool,
    },
    /// The replica changed because of an update notification.
    Updated(Vec<Change>),
    /// We now hold this lock.
    Locked(String),
    /// Another client stole this lock; we no longer hold it, but stay queued
    /// for it (ovsdb-server sends `locked` again when the thief releases it).
    Stolen(String),
    /// The connection ended; locks are lost and will be asked for again.
    Disconnected {
        /// Why, for logs.
        reason: String,
    },
}

/// Counters kept by the connection task.
#[derive(Debug, Default)]
pub struct Stats {
    /// Echo requests from the server that we answered.
    pub echo_answered: AtomicU64,
    /// Echo probes we sent.
    pub echo_sent: AtomicU64,
    /// Successful connects.
    pub connects: AtomicU64,
}

#[derive(Debug, Default)]
struct Shared {
    replica: RwLock<Option<Replica>>,
    stats: Stats,
    connected: AtomicBool,
}

type Reply = oneshot::Sender<Result<Value, ClientError>>;

#[derive(Debug)]
enum Command {
    Request {
        method: String,
        params: Value,
        reply: Reply,
    },
    Lock {
        name: String,
        steal: bool,
        reply: Reply,
    },
    Unlock {
        name: String,
        reply: Reply,
    },
    Shutdown,
}

/// A handle to the connection task; cheap to clone. The task stops when
/// [`Client::shutdown`] is called or every handle is dropped.
#[derive(Clone, Debug)]
pub struct Client {
    cmd: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl Client {
    /// Starts the connection task on the current tokio runtime.
    ///
    /// Events are delivered on an unbounded channel: the consumer must keep
    /// reading it (the replica itself is always readable through [`Client::with_replica`]).
    pub fn start(
        config: ClientConfig,
    ) -> Result<(Client, mpsc::UnboundedReceiver<Event>), ClientError> {
        let tls = match (&config.target, &config.tls) {
            (_, Some(files)) => Some(Arc::new(tls_config(files)?)),
            (Target::Ssl(_), None) => return Err(TargetError::NoTlsFiles.into()),
            _ => None,
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let task = Task {
            config,
            tls,
            cmd_rx,
            events: ev_tx,
            shared: shared.clone(),
            wanted_locks: BTreeSet::new(),
        };
        tokio::spawn(task.run());
        Ok((
            Client {
                cmd: cmd_tx,
                shared,
            },
            ev_rx,
        ))
    }

    async fn call(&self, make: impl FnOnce(Reply) -> Command) -> Result<Value, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(make(tx)).map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    /// Sends any JSON-RPC request and returns its result.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.call(|reply| Command::Request {
            method: method.to_owned(),
            params,
            reply,
        })
        .await
    }

    /// RFC 7047 §4.1.1: the databases the server has.
    pub async fn list_dbs(&self) -> Result<Vec<String>, ClientError> {
        let v = self.request("list_dbs", json!([])).await?;
        serde_json::from_value(v.clone()).map_err(|_| ClientError::BadReply(v.to_string()))
    }

    /// RFC 7047 §4.1.2: the schema of one database.
    pub async fn get_schema(&self, db: &str) -> Result<DatabaseSchema, ClientError> {
        let v = self.request("get_schema", json!([db])).await?;
        Ok(DatabaseSchema::from_json(&v)?)
    }

    /// RFC 7047 §4.1.3: runs operations atomically.
    pub async fn transact(
        &self,
        db: &str,
        ops: &[Operation],
    ) -> Result<Vec<OpResult>, ClientError> {
        let v = self.request("transact", transact_params(db, ops)).await?;
        Ok(parse_transact_result(ops, &v)?)
    }

    /// RFC 7047 §4.1.11: echo, to check the server is responsive.
    pub async fn echo(&self, payload: Value) -> Result<Value, ClientError> {
        self.request("echo", payload).await
    }

    /// RFC 7047 §4.1.8: asks for a lock; true if held now, otherwise an
    /// [`Event::Locked`] follows when it is granted. The lock is asked for
    /// again after every reconnect until [`Client::unlock`].
    pub async fn lock(&self, name: &str) -> Result<bool, ClientError> {
        let v = self
            .call(|reply| Command::Lock {
                name: name.to_owned(),
                steal: false,
                reply,
            })
            .await?;
        Ok(v.get("locked").and_then(Value::as_bool).unwrap_or(false))
    }

    /// RFC 7047 §4.1.9: takes a lock from its holder, who gets `stolen`.
    pub async fn steal(&self, name: &str) -> Result<bool, ClientError> {
        let v = self
            .call(|reply| Command::Lock {
                name: name.to_owned(),
                steal: true,
                reply,
            })
            .await?;
        Ok(v.get("locked").and_then(Value::as_bool).unwrap_or(false))
    }

    /// RFC 7047 §4.1.10: releases a lock (or stops waiting for it).
    pub async fn unlock(&self, name: &str) -> Result<(), ClientError> {
        self.call(|reply| Command::Unlock {
            name: name.to_owned(),
            reply,
        })
        .await
        .map(|_| ())
    }

    /// Reads the replica (None until the first sync).
    pub fn with_replica<R>(&self, f: impl FnOnce(Option<&Replica>) -> R) -> R {
        let guard = self
            .shared
            .replica
            .read()
            .unwrap_or_else(|e| e.into_inner());
        f(guard.as_ref())
    }

    /// True while a transport connection is up.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Counters of the connection task.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Stops the connection task; pending requests fail with [`ClientError::Disconnected`].
    pub fn shutdown(&self) {
        let _ = self.cmd.send(Command::Shutdown);
    }
}

enum Waiter {
    User(Reply),
    Schema,
    Monitor { cond: bool },
    Lock { name: String, reply: Option<Reply> },
}

/// How a session ended.
enum End {
    Shutdown,
    Lost(String),
}

struct Task {
    config: ClientConfig,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    shared: Arc<Shared>,
    /// Locks the user wants; re-requested after each reconnect.
    wanted_locks: BTreeSet<String>,
}

const MONITOR_ID: &str = "bridgehead";

/// Queues a message for the writer task; never blocks, so reading goes on
/// while a large request is being written (ovsdb-server stops reading from a
/// client it has a send backlog to, so blocking here could deadlock).
fn send(out: &mpsc::UnboundedSender<Vec<u8>>, msg: &Message) -> Result<(), End> {
    let bytes = serde_json::to_vec(&msg.to_json()).map_err(|e| End::Lost(e.to_string()))?;
    out.send(bytes)
        .map_err(|_| End::Lost("writer stopped".into()))
}

impl Task {
    fn emit(&self, ev: Event) {
        let _ = self.events.send(ev);
    }

    async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        loop {
            let attempt = tokio::time::timeout(
                self.config.connect_timeout,
                connect(&self.config.target, self.tls.as_ref()),
            )
            .await;
            let reason = match attempt {
                Ok(Ok(stream)) => {
                    self.shared.connected.store(true, Ordering::Relaxed);
                    self.shared.stats.connects.fetch_add(1, Ordering::Relaxed);
                    info!(target = %self.config.target, "OVSDB connected");
                    self.emit(Event::Connected);
                    let (end, healthy) = self.session(stream).await;
                    self.shared.connected.store(false, Ordering::Relaxed);
                    if healthy {
                        backoff.reset();
                    }
                    match end {
                        End::Shutdown => {
                            self.emit(Event::Disconnected {
                                reason: "shut down".into(),
                            });
                            return;
                        }
                        End::Lost(r) => r,
                    }
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("connect to {} timed out", self.config.target),
            };
            warn!(target = %self.config.target, %reason, "OVSDB connection down");
            self.emit(Event::Disconnected { reason });
            let until = Instant::now() + backoff.next_delay(rand::random::<f64>());
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    cmd = self.cmd_rx.recv() => match cmd {
                        None | Some(Command::Shutdown) => return,
                        Some(c) => self.offline_command(c),
                    }
                }
            }
        }
    }

    fn offline_command(&mut self, c: Command) {
        match c {
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(ClientError::NotConnected));
            }
            Command::Lock { name, reply, .. } => {
                // Remembered; asked for as soon as we are connected again.
                self.wanted_locks.insert(name);
                let _ = reply.send(Ok(json!({"locked": false})));
            }
            Command::Unlock { name, reply } => {
                self.wanted_locks.remove(&name);
                let _ = reply.send(Ok(json!({})));
            }
            Command::Shutdown => {}
        }
    }

    /// Runs one connection until it ends; the bool says whether the server
    /// talked to us at all (which resets the backoff).
    async fn session(&mut self, stream: Box<dyn Stream>) -> (End, bool) {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (werr_tx, mut werr_rx) = oneshot::channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                let res = match wr.write_all(&bytes).await {
                    Ok(()) => wr.flush().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = res {
                    let _ = werr_tx.send(format!("write: {e}"));
                    return;
                }
            }
        });
        let mut s = Session {
            out,
            pending: Pending::default(),
            building: None,
            live_kind: None,
        };
        let mut healthy = false;
        let end = self
            .drive(&mut s, &mut rd, &mut werr_rx, &mut healthy)
            .await;
        // Dropping both halves closes the connection.
        writer.abort();
        for w in s.pending.drain() {
            match w {
                Waiter::User(reply)
                | Waiter::Lock {
                    reply: Some(reply), ..
                } => {
                    let _ = reply.send(Err(ClientError::Disconnected));
                }
                _ => {}
            }
        }
        (end, healthy)
    }

    async fn drive(
        &mut self,
        s: &mut Session,
        rd: &mut tokio::io::ReadHalf<Box<dyn Stream>>,
        werr: &mut oneshot::Receiver<String>,
        healthy: &mut bool,
    ) -> End {
        let mut splitter = JsonSplitter::new(self.config.max_message_size);
        let mut prober = Prober::new(self.config.inactivity_probe, Instant::now().into_std());
        if let Some(m) = &self.config.monitor {
            let msg = s.pending.start("get_schema", json!([m.db]), Waiter::Schema);
            if let Err(e) = send(&s.out, &msg) {
                return e;
            }
        }
        for name in self.wanted_locks.clone() {
            let msg = s.pending.start(
                "lock",
                json!([name]),
                Waiter::Lock {
                    name: name.clone(),
                    reply: None,
                },
            );
            if let Err(e) = send(&s.out, &msg) {
                return e;
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let deadline = prober.poll_timeout().map(Instant::from_std);
            let sleep = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let step = tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) => Err(End::Lost("connection closed by the server".into())),
                    Err(e) => Err(End::Lost(format!("read: {e}"))),
                    Ok(n) => {
                        prober.on_receive(Instant::now().into_std());
                        splitter.push(&buf[..n]);
                        self.drain_messages(s, &mut splitter, healthy).await
                    }
                },
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(Command::Shutdown) => Err(End::Shutdown),
                    Some(c) => self.command(s, c).await,
                },
                e = &mut *werr => Err(End::Lost(e.unwrap_or_else(|_| "writer stopped".into()))),
                _ = sleep => match prober.handle_timeout(Instant::now().into_std()) {
                    ProbeAction::SendEcho => {
                        self.shared.stats.echo_sent.fetch_add(1, Ordering::Relaxed);
                        let probe = Message::Request { id: json!("probe"), method: "echo".into(), params: json!([]) };
                        send(&s.out, &probe)
                    }
                    ProbeAction::Disconnect => Err(End::Lost(format!(
                        "inactivity probe: no reply for {:?}",
                        self.config.inactivity_probe.unwrap_or_default() * 2
                    ))),
                    ProbeAction::Nothing => Ok(()),
                },
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn drain_messages(
        &mut self,
        s: &mut Session,
        splitter: &mut JsonSplitter,
        healthy: &mut bool,
    ) -> Result<(), End> {
        loop {
            let v = match splitter.next_value() {
                Ok(Some(v)) => v,
                Ok(None) => return Ok(()),
                Err(e) => return Err(End::Lost(e.to_string())),
            };
            *healthy = true;
            match Message::from_json(v) {
                Ok(m) => self.message(s, m).await?,
                // Valid JSON but not JSON-RPC: log and carry on, the stream is still in sync.
                Err(e) => debug!(error = %e, "ignoring non-JSON-RPC message"),
            }
        }
    }

    async fn command(&mut self, s: &mut Session, c: Command) -> Result<(), End> {
        let msg = match c {
            Command::Request {
                method,
                params,
                reply,
            } => s.pending.start(&method, params, Waiter::User(reply)),
            Command::Lock { name, steal, reply } => {
                self.wanted_locks.insert(name.clone());
                let method = if steal { "steal" } else { "lock" };
                s.pending.start(
                    method,
                    json!([name]),
                    Waiter::Lock {
                        name,
                        reply: Some(reply),
                    },
                )
            }
            Command::Unlock { name, reply } => {
                self.wanted_locks.remove(&name);
                s.pending
                    .start("unlock", json!([name]), Waiter::User(reply))
            }
            Command::Shutdown => return Err(End::Shutdown),
        };
        send(&s.out, &msg)
    }

    async fn message(&mut self, s: &mut Session, m: Message) -> Result<(), End> {
        match m {
            Message::Request { id, method, params } => {
                let result = if method == "echo" {
                    self.shared
                        .stats
                        .echo_answered
                        .fetch_add(1, Ordering::Relaxed);
                    Ok(params)
                } else {
                    Err(json!("unknown method"))
                };
                send(&s.out, &Message::Response { id, result })
            }
            Message::Notification { method, params } => self.notification(s, &method, &params),
            Message::Response { id, result } => match s.pending.finish(&id) {
                Some(w) => self.response(s, w, result).await,
                None => Ok(()), // our probe's echo reply, or a stale id
            },
        }
    }

    fn notification(&mut self, s: &mut Session, method: &str, params: &Value) -> Result<(), End> {
        let first = params.get(0);
        match method {
            "update" | "update2" => {
                if first != Some(&json!(MONITOR_ID)) {
                    return Ok(());
                }
                let cond = method == "update2";
                if s.live_kind != Some(cond) {
                    return Err(End::Lost(format!("unexpected {method} notification")));
                }
                let updates = params.get(1).unwrap_or(&Value::Null);
                let mut guard = self
                    .shared
                    .replica
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                let replica = guard
                    .as_mut()
                    .ok_or_else(|| End::Lost("update before sync".into()))?;
                let applied = if cond {
                    replica.apply_update2(updates)
                } else {
                    replica.apply_update(updates)
                };
                drop(guard);
                match applied {
                    // A notification we cannot apply means the replica may
                    // have diverged: reconnect and take a fresh dump.
                    Err(e) => Err(End::Lost(format!("replica out of sync: {e}"))),
                    Ok(changes) if changes.is_empty() => Ok(()),
                    Ok(changes) => {
                        self.emit(Event::Updated(changes));
                        Ok(())
                    }
                }
            }
            "locked" | "stolen" => {
                if let Some(name) = first.and_then(Value::as_str) {
                    info!(lock = name, method, "OVSDB lock notification");
                    self.emit(if method == "locked" {
                        Event::Locked(name.to_owned())
                    } else {
                        Event::Stolen(name.to_owned())
                    });
                }
                Ok(())
            }
            other => {
                debug!(method = other, "ignoring notification");
                Ok(())
            }
        }
    }

    async fn response(
        &mut self,
        s: &mut Session,
        w: Waiter,
        result: Result<Value, Value>,
    ) -> Result<(), End> {
        match w {
            Waiter::User(reply) => {
                let _ = reply.send(result.map_err(|e| ClientError::Server(server_error_text(&e))));
                Ok(())
            }
            Waiter::Lock { name, reply } => {
                let locked = result
                    .as_ref()
                    .ok()
                    .and_then(|v| v.get("locked"))
                    .and_then(Value::as_bool);
                if locked == Some(true) {
                    self.emit(Event::Locked(name));
                }
                if let Some(reply) = reply {
                    let _ =
                        reply.send(result.map_err(|e| ClientError::Server(server_error_text(&e))));
                }
                Ok(())
            }
            Waiter::Schema => {
                let m = self
                    .config
                    .monitor
                    .clone()
                    .ok_or_else(|| End::Lost("schema without monitor".into()))?;
                let v = result.map_err(|e| {
                    End::Lost(format!("get_schema {}: {}", m.db, server_error_text(&e)))
                })?;
                let schema = DatabaseSchema::from_json(&v).map_err(|e| End::Lost(e.to_string()))?;
                s.building = Some(Replica::new(schema));
                self.send_monitor(s, &m, m.prefer_monitor_cond).await
            }
            Waiter::Monitor { cond } => {
                let m = self
                    .config
                    .monitor
                    .clone()
                    .ok_or_else(|| End::Lost("monitor reply without monitor".into()))?;
                let v = match result {
                    Ok(v) => v,
                    Err(e) if cond => {
                        // Older servers have no monitor_cond: use plain monitor.
                        debug!(error = %server_error_text(&e), "monitor_cond refused, using monitor");
                        return self.send_monitor(s, &m, false).await;
                    }
                    Err(e) => return Err(End::Lost(format!("monitor: {}", server_error_text(&e)))),
                };
                let mut replica = s
                    .building
                    .take()
                    .ok_or_else(|| End::Lost("monitor reply before schema".into()))?;
                let applied = if cond {
                    replica.apply_update2(&v)
                } else {
                    replica.apply_update(&v)
                };
                applied.map_err(|e| End::Lost(format!("initial monitor dump: {e}")))?;
                *self
                    .shared
                    .replica
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = Some(replica);
                s.live_kind = Some(cond);
                self.emit(Event::Synced { monitor_cond: cond });
                Ok(())
            }
        }
    }

    async fn send_monitor(
        &mut self,
        s: &mut Session,
        m: &MonitorConfig,
        cond: bool,
    ) -> Result<(), End> {
        let method = if cond { "monitor_cond" } else { "monitor" };
        let params = monitor_params(&m.db, &json!(MONITOR_ID), &m.tables);
        let msg = s.pending.start(method, params, Waiter::Monitor { cond });
        send(&s.out, &msg)
    }
}

struct Session {
    /// Serialized messages for the writer task.
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending<Waiter>,
    /// Replica being built from a fresh dump; swapped in when complete.
    building: Option<Replica>,
    /// Which notification feeds the live replica: Some(true) update2, Some(false) update.
    live_kind: Option<bool>,
}

/// The text of a JSON-RPC error: `error: details` for ovsdb-server's objects.
fn server_error_text(e: &Value) -> String {
    match (
        e.get("error").and_then(Value::as_str),
        e.get("details").and_then(Value::as_str),
    ) {
        (Some(err), Some(d)) => format!("{err}: {d}"),
        (Some(err), None) => err.to_owned(),
        _ => e
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| e.to_string()),
    }
}
