//! The REST API (axum): CRUD per resource, observed state under leases, the
//! watch stream, health/readiness and an OpenAPI document.
//!
//! | path | methods |
//! |---|---|
//! | `/v1/{kind}` (`logical-switches`, `transport-nodes`, `gateway-groups`, `bindings`, `remote-macs`) | GET list, POST create |
//! | `/v1/{kind}/{name}` (remote MACs: `{logical_switch}/{mac}`) | GET, PUT (create or replace), DELETE |
//! | `/v1/observed/{kind}` (`learned-macs`, `tunnel-status`, `election-state`, `switch-status`) | GET list |
//! | `/v1/observed/{kind}/{name}?lease=ID` | GET, PUT (under the lease), DELETE |
//! | `/v1/leases` | GET list, POST grant `{ttl_ms}` |
//! | `/v1/leases/{id}` | GET, DELETE (revoke) |
//! | `/v1/leases/{id}/renew` | POST |
//! | `/v1/state` | GET: every object at one revision |
//! | `/v1/watch?revision=R&kinds=a,b&progress_ms=N` | GET: newline-delimited JSON, one line per revision |
//! | `/healthz`, `/readyz`, `/openapi.json` | GET |
//! | `/metrics` | GET: Prometheus text ([`metrics`]) |
//!
//! Writes answer after the change is applied and durable, with its revision.
//! Errors are `{error, field, reason, errors: [{field, reason}...]}`: 400 for
//! a request invalid on its own, 404 for an unknown object or lease, 409 for
//! a conflict with current state (duplicate key/VNI/IP, unknown reference,
//! object still referenced), 405 for a wrong method, 413 for a body over
//! 2 MiB, 503 when the store cannot take writes (not the leader, stopped, or
//! leadership changed before the write committed: re-read to learn the
//! outcome). MAC segments in paths are case-insensitive.
//!
//! Every path except `/healthz`, `/readyz`, `/metrics` and `/openapi.json`
//! needs `Authorization: Bearer TOKEN` ([`auth`]: roles admin, node,
//! reader); 401 for a missing or unknown token, 403 for a role that may not
//! do the request. Leases carry the node that was granted them (`owner`).

pub mod auth;
mod error;
pub mod metrics;
mod openapi;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use serde::Deserialize;

pub use auth::{Auth, Caller, Role};
pub use error::ApiError;

use crate::model::{Key, Kind, LeaseId, Object};
use crate::node::Node;
use crate::state_machine::{Applied, Command, Lease};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Default interval of watch progress bookmarks.
    pub progress_every: Duration,
    /// Bearer tokens; `None` serves everyone as admin (`--insecure-no-auth`).
    pub auth: Option<Arc<Auth>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            progress_every: Duration::from_secs(5),
            auth: None,
        }
    }
}

#[derive(Debug, Clone)]
struct App {
    node: Node,
    cfg: HttpConfig,
    metrics: Arc<metrics::Metrics>,
}

pub use crate::wire::{REVISION_HEADER, Written};

/// Builds the router over a running node.
pub fn router(node: Node, cfg: HttpConfig) -> Router {
    let metrics = Arc::new(metrics::Metrics::new());
    let mut r = Router::new();
    for kind in Kind::ALL {
        let base = kind.collection_path();
        let coll = if kind.is_observed() {
            get(move |s: State<App>| list(s, kind))
        } else {
            get(move |s: State<App>| list(s, kind)).post(
                move |s: State<App>, c: Extension<Caller>, b: BodyResult| create(s, c, kind, b),
            )
        };
        r = r.route(&base, coll);
        r = r.route(
            &format!("{base}/{{*name}}"),
            get(move |s: State<App>, p: Path<String>| get_one(s, kind, p))
                .put(
                    move |s: State<App>,
                          c: Extension<Caller>,
                          p: Path<String>,
                          q: QueryResult<LeaseQuery>,
                          b: BodyResult| { put(s, c, kind, p, q, b) },
                )
                .delete(
                    move |s: State<App>, c: Extension<Caller>, p: Path<String>| {
                        delete(s, c, kind, p)
                    },
                ),
        );
    }
    r.route("/v1/leases", get(list_leases).post(grant))
        .route("/v1/leases/{id}", get(get_lease).delete(revoke))
        .route("/v1/leases/{id}/renew", post(renew))
        .route("/v1/state", get(state))
        .route("/v1/watch", get(watch))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .route(
            "/metrics",
            get(|State(app): State<App>| async move { metrics::answer(&app.metrics, &app.node) }),
        )
        .fallback(|| async { ApiError::not_found("path", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                error: "invalid",
                errors: vec![crate::validate::ValidationError::new(
                    "method",
                    "method not allowed on this path",
                )],
            }
        })
        .layer(axum::middleware::from_fn_with_state(
            cfg.auth.clone(),
            auth::authenticate,
        ))
        // Outermost, so 401s and 404s are counted too.
        .layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            metrics::track,
        ))
        .with_state(App { node, cfg, metrics })
}

fn parse_object(kind: Kind, body: &[u8]) -> Result<Object, ApiError> {
    Ok(match kind {
        Kind::LogicalSwitch => Object::LogicalSwitch(ApiError::parse(body)?),
        Kind::TransportNode => Object::TransportNode(ApiError::parse(body)?),
        Kind::GatewayGroup => Object::GatewayGroup(ApiError::parse(body)?),
        Kind::Binding => Object::Binding(ApiError::parse(body)?),
        Kind::RemoteMac => Object::RemoteMac(ApiError::parse(body)?),
        Kind::LearnedMac => Object::LearnedMac(ApiError::parse(body)?),
        Kind::TunnelStatus => Object::TunnelStatus(ApiError::parse(body)?),
        Kind::ElectionState => Object::ElectionState(ApiError::parse(body)?),
        Kind::SwitchStatus => Object::SwitchStatus(ApiError::parse(body)?),
    })
}

/// Path names as keys spell them: a MAC segment may be typed in upper case.
fn canonical_name(kind: Kind, name: String) -> String {
    if !matches!(kind, Kind::RemoteMac | Kind::LearnedMac) {
        return name;
    }
    match name.rsplit_once('/') {
        Some((head, mac)) => match mac.parse::<crate::model::MacAddr>() {
            Ok(m) => format!("{head}/{m}"),
            Err(_) => name,
        },
        None => name,
    }
}

fn written(a: &Applied, key: &Key) -> Written {
    let k = key.to_string();
    Written {
        revision: a.revision,
        value: a
            .events
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.clone()),
    }
}

async fn list(State(app): State<App>, kind: Kind) -> Response {
    Json(app.node.list(Some(&[kind]))).into_response()
}

async fn state(State(app): State<App>) -> Response {
    Json(app.node.list(None)).into_response()
}

async fn get_one(State(app): State<App>, kind: Kind, Path(name): Path<String>) -> Response {
    let key = Key::new(kind, canonical_name(kind, name));
    let found = app.node.state().get(&key).cloned();
    match found {
        Some(s) => Json(s).into_response(),
        None => ApiError::not_found("name", format!("{key} does not exist")).into_response(),
    }
}

async fn create(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    kind: Kind,
    b: BodyResult,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let object = parse_object(kind, &body(b)?)?;
    let key = object.key();
    let a = app.node.propose(Command::Create { object }).await?;
    Ok((StatusCode::CREATED, Json(written(&a, &key))).into_response())
}

/// A request body, or why it could not be read (too large, broken stream).
type BodyResult = Result<Bytes, axum::extract::rejection::BytesRejection>;

fn body(b: BodyResult) -> Result<Bytes, ApiError> {
    b.map_err(|e| ApiError {
        status: e.status(),
        error: "invalid",
        errors: vec![crate::validate::ValidationError::new("body", e.body_text())],
    })
}

/// A query string, or why it did not parse (answered as a JSON 400, not axum's plain text).
type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// `?lease=ID` for observed writes.
#[derive(Debug, Deserialize)]
struct LeaseQuery {
    lease: Option<LeaseId>,
}

async fn put(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    kind: Kind,
    Path(name): Path<String>,
    q: QueryResult<LeaseQuery>,
    b: BodyResult,
) -> Result<Response, ApiError> {
    if kind.is_observed() {
        caller.require_writer()?;
    } else {
        caller.require_admin()?;
    }
    let Query(q) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let object = parse_object(kind, &body(b)?)?;
    // Report what is wrong with the body itself before comparing its key
    // with the path (the state machine validates again at apply time).
    crate::validate::validate_object(&object).map_err(|errors| ApiError {
        status: StatusCode::BAD_REQUEST,
        error: "invalid",
        errors,
    })?;
    let key = object.key();
    let name = canonical_name(kind, name);
    if key.name != name {
        return Err(ApiError::invalid(
            "name",
            format!("the body names {:?} but the path names {name:?}", key.name),
        ));
    }
    let cmd = if kind.is_observed() {
        let lease = q
            .lease
            .ok_or_else(|| ApiError::invalid("lease", "observed state needs ?lease=ID"))?;
        caller.may_write_observed(&object)?;
        // Lease ids are never reused and owners never change, so checking
        // before proposing is as good as checking at apply time; a lease
        // revoked meanwhile makes the proposal fail with 404.
        let l = app.node.state().lease(lease).cloned();
        if let Some(l) = l {
            caller.may_use_lease(&l)?;
        }
        Command::PutObserved { object, lease }
    } else {
        if q.lease.is_some() {
            return Err(ApiError::invalid(
                "lease",
                "desired state does not hang off a lease",
            ));
        }
        Command::Put { object }
    };
    let a = app.node.propose(cmd).await?;
    Ok(Json(written(&a, &key)).into_response())
}

async fn delete(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    kind: Kind,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let key = Key::new(kind, canonical_name(kind, name));
    let cmd = if kind.is_observed() {
        caller.require_writer()?;
        let stored = app.node.state().get(&key).map(|s| s.object.clone());
        caller.may_delete_observed(&key, stored.as_ref())?;
        Command::DeleteObserved { key }
    } else {
        caller.require_admin()?;
        Command::Delete { key }
    };
    let a = app.node.propose(cmd).await?;
    Ok(Json(Written {
        revision: a.revision,
        value: None,
    })
    .into_response())
}

/// Body of a lease grant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    ttl_ms: u64,
}

fn lease_id(s: &str) -> Result<LeaseId, ApiError> {
    s.parse()
        .map_err(|_| ApiError::invalid("id", "lease id must be an unsigned integer"))
}

/// Checks that the caller may renew or revoke lease `id` (if it exists: otherwise the proposal answers 404).
fn check_lease_owner(app: &App, caller: &Caller, id: LeaseId) -> Result<(), ApiError> {
    caller.require_writer()?;
    let l = app.node.state().lease(id).cloned();
    match l {
        Some(l) => caller.may_use_lease(&l),
        None => Ok(()),
    }
}

async fn grant(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    b: BodyResult,
) -> Result<Response, ApiError> {
    caller.require_writer()?;
    let g: GrantBody = ApiError::parse(&body(b)?)?;
    let a = app
        .node
        .propose(Command::GrantLease {
            ttl_ms: g.ttl_ms,
            now_ms: 0,
            owner: caller.lease_owner(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(a.lease)).into_response())
}

async fn renew(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_writer()?;
    let id = lease_id(&id)?;
    check_lease_owner(&app, &caller, id)?;
    let a = app
        .node
        .propose(Command::RenewLease { id, now_ms: 0 })
        .await?;
    Ok(Json(a.lease).into_response())
}

async fn revoke(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_writer()?;
    let id = lease_id(&id)?;
    check_lease_owner(&app, &caller, id)?;
    let a = app.node.propose(Command::RevokeLease { id }).await?;
    Ok(Json(Written {
        revision: a.revision,
        value: None,
    })
    .into_response())
}

async fn list_leases(State(app): State<App>) -> Response {
    let leases: Vec<Lease> = app.node.state().leases().cloned().collect();
    Json(leases).into_response()
}

async fn get_lease(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = lease_id(&id)?;
    let l = app.node.state().lease(id).cloned();
    match l {
        Some(l) => Ok(Json(l).into_response()),
        None => Err(ApiError::not_found(
            "id",
            format!("lease {id} does not exist"),
        )),
    }
}

/// Query of `GET /v1/watch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchQuery {
    /// Start after this revision; default: the current revision.
    revision: Option<u64>,
    /// Comma-separated kind segments to include; default: all.
    kinds: Option<String>,
    /// Bookmark interval in ms.
    progress_ms: Option<u64>,
}

async fn watch(State(app): State<App>, q: QueryResult<WatchQuery>) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let kinds =
        match &q.kinds {
            None => None,
            Some(s) => {
                let mut v = Vec::new();
                for part in s.split(',').filter(|p| !p.is_empty()) {
                    v.push(Kind::from_segment(part).ok_or_else(|| {
                        ApiError::invalid("kinds", format!("unknown kind {part:?}"))
                    })?);
                }
                Some(v)
            }
        };
    let progress = match q.progress_ms {
        Some(ms) if !(100..=3_600_000).contains(&ms) => {
            return Err(ApiError::invalid("progress_ms", "must be in 100..=3600000"));
        }
        Some(ms) => Duration::from_millis(ms),
        None => app.cfg.progress_every,
    };
    let current = app.node.state().revision();
    let from = q.revision.unwrap_or(current);
    let watcher = app.node.watch(from, kinds, progress);
    // Lives as long as the stream: counts open watchers.
    let open = app.metrics.watcher();
    let stream = futures::stream::unfold((watcher, open), |(mut w, open)| async move {
        let msg = w.next().await?;
        let mut line = serde_json::to_vec(&msg).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, Infallible>(Bytes::from(line)), (w, open)))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            // Lets a client see at once that this server is behind what it
            // has already seen (a restored backup, another cluster).
            (REVISION_HEADER, current.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn healthz(State(app): State<App>) -> Response {
    if app.node.is_stopped() {
        (StatusCode::SERVICE_UNAVAILABLE, "store stopped\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn readyz(State(app): State<App>) -> Response {
    if app.node.is_leader() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not the leader\n").into_response()
    }
}
