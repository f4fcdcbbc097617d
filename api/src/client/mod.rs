//! Client library for the daemons and `bridgehead-ctl`.
//!
//! - [`Client`]: typed CRUD over the REST API, leases, `list()` (objects and
//!   the revision they reflect) and `watch(from)` as a stream; HTTP/1.1 over
//!   TCP or TLS (a CA file), with a bearer token.
//! - [`LeaseKeeper`]: the lease a daemon writes its observed objects under
//!   (grant when needed, renew every TTL/3, re-grant once it is found gone).
//! - [`Reflector`]: the informer a daemon runs: list, then watch from that
//!   revision; on a broken stream resume from the last revision seen, with
//!   exponential backoff and jitter; relist on `compacted`; refuse a server
//!   whose revision is behind the highest this client has seen (a store
//!   restored from an old backup, or another cluster at the same address)
//!   without touching its state.
//!
//! ```no_run
//! # async fn f() -> Result<(), api::client::ClientError> {
//! use api::client::{Client, ClientConfig, Reflector, ReflectorEvent};
//! use api::model::Kind;
//! let client = Client::new(ClientConfig::new("https://198.18.1.10:7480")
//!     .token("secret-token-of-gw1")
//!     .ca_file("/etc/bridgehead/ca.pem"))?;
//! let mut r = Reflector::new(client, Some(vec![Kind::LogicalSwitch, Kind::Binding]));
//! loop {
//!     match r.next().await {
//!         ReflectorEvent::Synced { .. } | ReflectorEvent::Changed { .. } => {
//!             // reconcile against r.objects()
//!         }
//!         ReflectorEvent::Progress { .. } => {}
//!         ReflectorEvent::Error(e) => tracing::warn!(error = %e, "controller"),
//!     }
//! }
//! # }
//! ```

mod lease;
mod reflector;
mod transport;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
pub use hyper::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use lease::{Held, LeaseKeeper};
pub use reflector::{Backoff, Reflector, ReflectorEvent};
pub use watch::WatchStream;

use crate::model::{Key, Kind, LeaseId, Object, Stored};
use crate::validate::ValidationError;
use crate::wire::{Lease, List, REVISION_HEADER, Written};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body (`{error, field, reason, errors}`).
    #[error("{status} {error}: {field}: {reason}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error class (`invalid`, `conflict`, `not_found`, `unauthorized`, `forbidden`, ...).
        error: String,
        /// First offending field.
        field: String,
        /// Why.
        reason: String,
        /// Every problem.
        errors: Vec<ValidationError>,
    },
    /// The server URL is not usable.
    #[error("bad server URL: {0}")]
    BadUrl(String),
    /// The token cannot travel in an HTTP header.
    #[error("token contains characters not allowed in an HTTP header")]
    BadToken,
    /// TLS configuration (CA file) problem.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// TCP connect or TLS handshake failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// HTTP-level failure (connection reset, malformed answer).
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// No answer in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// An answer that is not what the API promises.
    #[error("decode: {0}")]
    Decode(String),
    /// The server is behind what this client has already seen: a store
    /// restored from an older backup, or a different cluster. Its answers
    /// are refused.
    #[error("server revision {server} is behind revision {seen} already seen; refusing it")]
    ServerBehind {
        /// The server's revision.
        server: u64,
        /// Highest revision this client has seen.
        seen: u64,
    },
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Where and how to reach the controller.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub server: String,
    /// Bearer token.
    pub token: Option<String>,
    /// PEM file of CAs to trust for https.
    pub ca_file: Option<PathBuf>,
    /// Connect (and TLS handshake) timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout of non-streaming calls.
    pub request_timeout: Duration,
    /// Progress bookmark interval asked of watch streams.
    pub watch_progress: Duration,
    /// A watch stream silent for this long counts as broken (a few bookmark intervals).
    pub watch_idle_timeout: Duration,
}

impl ClientConfig {
    /// Defaults for `server`: 5 s connect, 15 s requests, 1 s bookmarks, 5 s watch idle timeout.
    pub fn new(server: impl Into<String>) -> ClientConfig {
        ClientConfig {
            server: server.into(),
            token: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            watch_progress: Duration::from_secs(1),
            watch_idle_timeout: Duration::from_secs(5),
        }
    }

    /// Sets the bearer token.
    pub fn token(mut self, t: impl Into<String>) -> ClientConfig {
        self.token = Some(t.into());
        self
    }

    /// Sets the CA file for https.
    pub fn ca_file(mut self, p: impl Into<PathBuf>) -> ClientConfig {
        self.ca_file = Some(p.into());
        self
    }
}

/// A handle on the controller's API; cheap to clone (connections are shared).
#[derive(Debug, Clone)]
pub struct Client {
    t: transport::Transport,
    cfg: ClientConfig,
}

/// The error body the server sends.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    field: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    errors: Vec<ValidationError>,
}

/// Percent-encodes one path segment (names are restricted, but keys of
/// observed state hold IPs and MACs, and callers may pass anything).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path of one object.
pub fn object_path(key: &Key) -> String {
    let name: Vec<String> = key.name.split('/').map(enc).collect();
    format!("{}/{}", key.kind.collection_path(), name.join("/"))
}

impl Client {
    /// Builds a client (reads the CA file now, so a bad one fails early).
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientError> {
        let target = transport::Target::parse(&cfg.server)?;
        let tls = match &cfg.ca_file {
            Some(ca) => Some(crate::tls::client_config(ca)?),
            None => None,
        };
        let t = transport::Transport::new(target, tls, cfg.token.as_deref(), cfg.connect_timeout)?;
        Ok(Client { t, cfg })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self
            .t
            .call(method, path, body, self.cfg.request_timeout)
            .await?;
        if !(200..300).contains(&status) {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(format!("{path}: {e}")))
    }

    fn body<T: serde::Serialize>(v: &T) -> Result<Bytes, ClientError> {
        serde_json::to_vec(v)
            .map(Bytes::from)
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Any API call with a JSON body, answered as JSON: the escape hatch for
    /// tools that pass user-written objects through (the server names bad fields).
    pub async fn request_json(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let body = body.map(Self::body).transpose()?;
        self.call(method, path, body).await
    }

    /// Creates a desired object (409 if it exists).
    pub async fn create(&self, object: &Object) -> Result<Written, ClientError> {
        let path = object.kind().collection_path();
        self.call(Method::POST, &path, Some(spec_body(object)?))
            .await
    }

    /// Creates or replaces a desired object.
    pub async fn put(&self, object: &Object) -> Result<Written, ClientError> {
        let path = object_path(&object.key());
        self.call(Method::PUT, &path, Some(spec_body(object)?))
            .await
    }

    /// Creates or replaces an observed object under a lease.
    pub async fn put_observed(
        &self,
        object: &Object,
        lease: LeaseId,
    ) -> Result<Written, ClientError> {
        let path = format!("{}?lease={lease}", object_path(&object.key()));
        self.call(Method::PUT, &path, Some(spec_body(object)?))
            .await
    }

    /// Reads one object; `None` if it does not exist.
    pub async fn get(&self, key: &Key) -> Result<Option<Stored>, ClientError> {
        match self.call(Method::GET, &object_path(key), None).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object (desired or observed).
    pub async fn delete(&self, key: &Key) -> Result<Written, ClientError> {
        self.call(Method::DELETE, &object_path(key), None).await
    }

    /// Lists one kind, or everything (`None`), at one revision.
    pub async fn list(&self, kind: Option<Kind>) -> Result<List, ClientError> {
        let path = match kind {
            Some(k) => k.collection_path(),
            None => "/v1/state".into(),
        };
        self.call(Method::GET, &path, None).await
    }

    /// Lists several kinds at one revision (filters `/v1/state`).
    pub async fn list_kinds(&self, kinds: Option<&[Kind]>) -> Result<List, ClientError> {
        match kinds {
            Some([k]) => self.list(Some(*k)).await,
            Some(ks) => {
                let mut l = self.list(None).await?;
                l.items.retain(|s| ks.contains(&s.object.kind()));
                Ok(l)
            }
            None => self.list(None).await,
        }
    }

    /// Grants a lease of `ttl`.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<Lease, ClientError> {
        let body = serde_json::json!({"ttl_ms": ttl.as_millis() as u64});
        self.call(Method::POST, "/v1/leases", Some(Self::body(&body)?))
            .await
    }

    /// Renews a lease (404: it expired; grant a new one and rewrite).
    pub async fn renew_lease(&self, id: LeaseId) -> Result<Lease, ClientError> {
        self.call(Method::POST, &format!("/v1/leases/{id}/renew"), None)
            .await
    }

    /// Revokes a lease and everything written under it.
    pub async fn revoke_lease(&self, id: LeaseId) -> Result<Written, ClientError> {
        self.call(Method::DELETE, &format!("/v1/leases/{id}"), None)
            .await
    }

    /// Every live lease.
    pub async fn leases(&self) -> Result<Vec<Lease>, ClientError> {
        self.call(Method::GET, "/v1/leases", None).await
    }

    /// Watches every revision after `from` (optionally only some kinds).
    ///
    /// Refuses ([`ClientError::ServerBehind`]) a server whose current
    /// revision is below `from`: it cannot have produced what the caller
    /// already saw.
    pub async fn watch(
        &self,
        from: u64,
        kinds: Option<&[Kind]>,
    ) -> Result<WatchStream, ClientError> {
        let mut q = format!(
            "/v1/watch?revision={from}&progress_ms={}",
            self.cfg.watch_progress.as_millis().clamp(100, 3_600_000)
        );
        if let Some(ks) = kinds {
            let segs: Vec<&str> = ks.iter().map(|k| k.segment()).collect();
            q.push_str("&kinds=");
            q.push_str(&segs.join(","));
        }
        let resp = self.t.stream(&q, self.cfg.request_timeout).await?;
        let status = resp.status().as_u16();
        if status != 200 {
            use http_body_util::BodyExt;
            let b = resp.into_body().collect().await?.to_bytes();
            return Err(api_error(status, &b));
        }
        let server = resp
            .headers()
            .get(REVISION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                ClientError::Decode("watch answer without X-Bridgehead-Revision".into())
            })?;
        if server < from {
            return Err(ClientError::ServerBehind { server, seen: from });
        }
        Ok(WatchStream::new(
            resp.into_body(),
            server,
            self.cfg.watch_idle_timeout,
        ))
    }
}

/// The request body of an object: its spec, as the REST API takes it.
fn spec_body(object: &Object) -> Result<Bytes, ClientError> {
    let v = serde_json::to_value(object).map_err(|e| ClientError::Decode(e.to_string()))?;
    Client::body(&v["spec"])
}

fn api_error(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => ClientError::Api {
            status,
            error: b.error,
            field: b.field,
            reason: b.reason,
            errors: b.errors,
        },
        Err(_) => ClientError::Api {
            status,
            error: "http".into(),
            field: String::new(),
            reason: String::from_utf8_lossy(body).trim().to_string(),
            errors: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_key_segments() {
        let k = Key::new(Kind::RemoteMac, "web/02:00:00:00:00:01");
        assert_eq!(object_path(&k), "/v1/remote-macs/web/02:00:00:00:00:01");
        let k = Key::new(Kind::LearnedMac, "tor 1/web/02:00:00:00:00:01");
        assert_eq!(
            object_path(&k),
            "/v1/observed/learned-macs/tor%201/web/02:00:00:00:00:01"
        );
        assert_eq!(Kind::Binding.collection_path(), "/v1/bindings");
    }
}
