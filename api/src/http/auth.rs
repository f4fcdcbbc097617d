//! Bearer-token authentication and role-based authorization.
//!
//! Tokens come from a TOML file (`--tokens FILE`), re-read on SIGHUP:
//!
//! ```toml
//! [[tokens]]
//! name = "ops-alice"          # who; appears in logs, never the token
//! role = "admin"              # admin | node | reader
//! token = "a-long-random-secret"   # at least 16 visible ASCII characters
//!
//! [[tokens]]
//! name = "gw1-daemon"
//! role = "node"
//! node = "gw1"                # the transport node this daemon runs as
//! acts_for = ["tor1"]         # optional: switches whose vtep-sync it runs
//! token = "another-long-random-secret"
//! ```
//!
//! Roles:
//!
//! - `admin`: everything.
//! - `node`: reads everything (desired state, and other daemons' observed
//!   state, which daemons react to); grants leases (owned by its node);
//!   renews and revokes only its own leases; writes and deletes observed
//!   objects only as itself: the object's reporting field (`reporter` of
//!   learned MACs and tunnel status, `member` of election state, `switch`
//!   of switch status) must be its `node` or one of `acts_for`, and the
//!   lease must be its own.
//! - `reader`: reads only (including watch).
//!
//! A missing, malformed or unknown token is 401 with `WWW-Authenticate:
//! Bearer`; a known token whose role may not do the request is 403. Both
//! carry the usual JSON error body. `/healthz`, `/readyz`, `/metrics` and
//! `/openapi.json` need no token: they carry no object data (metrics are
//! counts with bounded labels), and probes and scrapers rarely hold secrets.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiError;
use crate::model::{Key, Object};
use crate::state_machine::Lease;
use crate::validate::ValidationError;

/// Shortest accepted token: shorter secrets are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// Paths served without a token.
pub const PUBLIC_PATHS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Operators: everything.
    Admin,
    /// Daemons: read all, write their own observed state and leases.
    Node,
    /// Dashboards and audits: read only.
    Reader,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Node => "node",
            Role::Reader => "reader",
        }
    }
}

/// One `[[tokens]]` entry of the tokens file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    token: String,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    acts_for: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// Why a tokens file was refused; names every problem.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML of the expected shape.
    #[error("parsing tokens file: {0}")]
    Syntax(String),
    /// Entries that break the rules, each with its field.
    #[error("invalid tokens file: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ValidationError>),
}

/// The authenticated caller of a request (inserted as a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `name`.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// For `node`: its node first, then `acts_for`.
    pub nodes: Vec<String>,
}

impl Caller {
    /// The caller when authentication is off (`--insecure-no-auth`).
    pub fn insecure() -> Caller {
        Caller {
            name: "anonymous".into(),
            role: Role::Admin,
            nodes: Vec::new(),
        }
    }

    fn forbidden(&self, field: &str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            error: "forbidden",
            errors: vec![ValidationError::new(field, reason)],
        }
    }

    /// Admin only: desired-state writes.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            r => Err(self.forbidden(
                "role",
                format!(
                    "role {} may not change desired state (admin only)",
                    r.as_str()
                ),
            )),
        }
    }

    /// Admin or node: lease grants and observed writes (ownership checked separately).
    pub fn require_writer(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::Node => Ok(()),
            Role::Reader => Err(self.forbidden("role", "role reader may only read")),
        }
    }

    /// The owner recorded on a lease this caller grants.
    pub fn lease_owner(&self) -> Option<String> {
        match self.role {
            Role::Node => self.nodes.first().cloned(),
            _ => None,
        }
    }

    /// A node may renew, revoke or write under only a lease it was granted.
    pub fn may_use_lease(&self, lease: &Lease) -> Result<(), ApiError> {
        self.require_writer()?;
        if self.role == Role::Admin {
            return Ok(());
        }
        if lease.owner.is_some() && lease.owner == self.nodes.first().cloned() {
            return Ok(());
        }
        Err(self.forbidden(
            "lease",
            format!(
                "lease {} does not belong to node {}",
                lease.id,
                self.nodes.first().map(String::as_str).unwrap_or("?")
            ),
        ))
    }

    /// A node may write or delete only observed objects it reports itself.
    pub fn may_write_observed(&self, object: &Object) -> Result<(), ApiError> {
        self.require_writer()?;
        if self.role == Role::Admin {
            return Ok(());
        }
        let (field, who) = reporting_field(object);
        if self.nodes.iter().any(|n| n == who) {
            return Ok(());
        }
        Err(self.forbidden(
            field,
            format!(
                "{} writes observed state only as {} ({field} is {who:?})",
                self.name,
                self.nodes.join(", ")
            ),
        ))
    }

    /// For a delete of an observed key that may not exist: checks the stored object if any.
    pub fn may_delete_observed(&self, key: &Key, stored: Option<&Object>) -> Result<(), ApiError> {
        self.require_writer()?;
        match stored {
            Some(o) => self.may_write_observed(o),
            None if self.role == Role::Admin => Ok(()),
            // Nothing to own: say 404 as for an admin, without leaking more
            // than a read (which a node may do) would.
            None => Err(ApiError::not_found("name", format!("{key} does not exist"))),
        }
    }
}

/// The field of an observed object that names who reports it.
fn reporting_field(object: &Object) -> (&'static str, &str) {
    match object {
        Object::LearnedMac(o) => ("reporter", &o.reporter),
        Object::TunnelStatus(o) => ("reporter", &o.reporter),
        Object::ElectionState(o) => ("member", &o.member),
        Object::SwitchStatus(o) => ("switch", &o.switch),
        // Desired kinds never reach here (admin-only); no node owns them.
        _ => ("kind", ""),
    }
}

/// Validated tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    entries: Vec<TokenEntry>,
}

impl Tokens {
    /// Parses and validates a tokens file's text.
    pub fn parse(text: &str) -> Result<Tokens, TokensError> {
        let f: TokenFile = toml::from_str(text).map_err(|e| TokensError::Syntax(e.to_string()))?;
        let mut errs = Vec::new();
        let mut names = HashSet::new();
        let mut secrets = HashSet::new();
        for (i, t) in f.tokens.iter().enumerate() {
            let at = |f: &str| format!("tokens[{i}].{f}");
            if t.name.is_empty() {
                errs.push(ValidationError::new(at("name"), "must not be empty"));
            } else if !names.insert(t.name.as_str()) {
                errs.push(ValidationError::new(at("name"), "duplicate name"));
            }
            if t.token.len() < MIN_TOKEN_LEN {
                errs.push(ValidationError::new(
                    at("token"),
                    format!("must be at least {MIN_TOKEN_LEN} characters"),
                ));
            }
            if !t.token.bytes().all(|b| b.is_ascii_graphic()) {
                errs.push(ValidationError::new(
                    at("token"),
                    "only visible ASCII characters (it travels in an HTTP header)",
                ));
            }
            if !secrets.insert(t.token.as_str()) {
                errs.push(ValidationError::new(at("token"), "duplicate token"));
            }
            match (t.role, &t.node) {
                (Role::Node, None) => errs.push(ValidationError::new(
                    at("node"),
                    "role node needs the transport node it runs as",
                )),
                (Role::Node, Some(n)) if n.is_empty() => {
                    errs.push(ValidationError::new(at("node"), "must not be empty"))
                }
                (Role::Admin | Role::Reader, Some(_)) => errs.push(ValidationError::new(
                    at("node"),
                    "only role node is bound to a node",
                )),
                _ => {}
            }
            if t.role != Role::Node && !t.acts_for.is_empty() {
                errs.push(ValidationError::new(
                    at("acts_for"),
                    "only role node acts for other nodes",
                ));
            }
        }
        if errs.is_empty() {
            Ok(Tokens { entries: f.tokens })
        } else {
            Err(TokensError::Invalid(errs))
        }
    }

    /// Reads and validates a tokens file.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Io {
            path: path.to_owned(),
            source,
        })?;
        Tokens::parse(&text)
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no token is configured (every request is then refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller a presented token belongs to.
    ///
    /// Compares against every entry in constant time per entry and never
    /// stops early, so timing tells neither which entry matched nor how
    /// much of a secret was right (only, as usual, its length).
    pub fn authenticate(&self, presented: &[u8]) -> Option<Caller> {
        let mut found = None;
        for e in &self.entries {
            if ct_eq(e.token.as_bytes(), presented) {
                found = Some(e);
            }
        }
        found.map(|e| Caller {
            name: e.name.clone(),
            role: e.role,
            nodes: e.node.iter().chain(&e.acts_for).cloned().collect(),
        })
    }
}

/// Equality whose time depends only on the lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The tokens in force and where they came from; shared by the server and its SIGHUP handler.
#[derive(Debug)]
pub struct Auth {
    tokens: RwLock<Arc<Tokens>>,
    path: Option<PathBuf>,
}

impl Auth {
    /// Loads the tokens file.
    pub fn from_file(path: &Path) -> Result<Auth, TokensError> {
        Ok(Auth {
            tokens: RwLock::new(Arc::new(Tokens::load(path)?)),
            path: Some(path.to_owned()),
        })
    }

    /// Fixed tokens (tests, embedding).
    pub fn from_tokens(tokens: Tokens) -> Auth {
        Auth {
            tokens: RwLock::new(Arc::new(tokens)),
            path: None,
        }
    }

    /// Re-reads the file; on error the old tokens stay in force.
    pub fn reload(&self) -> Result<usize, TokensError> {
        let Some(path) = &self.path else {
            return Ok(self.current().len());
        };
        let t = Tokens::load(path)?;
        let n = t.len();
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
        Ok(n)
    }

    fn current(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The bearer token of a request, if it has a well-formed one.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at(v.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let t = rest.trim_ascii();
    (!t.is_empty()).then_some(t)
}

fn unauthorized(reason: &str, www: &'static str) -> Response {
    let mut r = ApiError {
        status: StatusCode::UNAUTHORIZED,
        error: "unauthorized",
        errors: vec![ValidationError::new("authorization", reason)],
    }
    .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(www));
    r
}

/// Middleware: turns the bearer token into a [`Caller`] extension, or answers 401.
pub async fn authenticate(
    State(auth): State<Option<Arc<Auth>>>,
    mut req: Request,
    next: Next,
) -> Response {
    if PUBLIC_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let caller = match &auth {
        None => Caller::insecure(),
        Some(auth) => match bearer(req.headers()) {
            None => {
                return unauthorized(
                    "missing bearer token (Authorization: Bearer TOKEN)",
                    "Bearer realm=\"bridgehead\"",
                );
            }
            Some(t) => match auth.current().authenticate(t) {
                Some(c) => c,
                None => {
                    return unauthorized(
                        "unknown token",
                        "Bearer realm=\"bridgehead\", error=\"invalid_token\"",
                    );
                }
            },
        },
    };
    tracing::debug!(caller = %caller.name, method = %req.method(), path = %req.uri().path(), "request");
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[tokens]]
name = "ops"
role = "admin"
token = "admin-token-0123456789"

[[tokens]]
name = "gw1-daemon"
role = "node"
node = "gw1"
acts_for = ["tor1"]
token = "node-token-0123456789"
"#;

    #[test]
    fn authenticates_by_token() {
        let t = Tokens::parse(FILE).unwrap();
        assert_eq!(
            t.authenticate(b"admin-token-0123456789").unwrap().role,
            Role::Admin
        );
        let c = t.authenticate(b"node-token-0123456789").unwrap();
        assert_eq!(
            (c.role, c.nodes.as_slice()),
            (Role::Node, &["gw1".to_string(), "tor1".into()][..])
        );
        assert!(t.authenticate(b"node-token-012345678").is_none());
        assert!(t.authenticate(b"").is_none());
    }

    #[test]
    fn every_problem_is_named() {
        let bad = r#"
[[tokens]]
name = "a"
role = "node"
token = "short"
[[tokens]]
name = "a"
role = "reader"
node = "x"
acts_for = ["y"]
token = "short"
"#;
        let Err(TokensError::Invalid(e)) = Tokens::parse(bad) else {
            panic!("accepted")
        };
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "tokens[0].token",
                "tokens[0].node",
                "tokens[1].name",
                "tokens[1].token",
                "tokens[1].token",
                "tokens[1].node",
                "tokens[1].acts_for"
            ]
        );
        assert!(matches!(
            Tokens::parse("[[tokens]]\nname='a'\nrole='root'\ntoken='0123456789abcdef'"),
            Err(TokensError::Syntax(_))
        ));
    }

    #[test]
    fn bearer_header_parsing() {
        let mut h = HeaderMap::new();
        assert!(bearer(&h).is_none());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer(&h).is_none());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  tok "),
        );
        assert_eq!(bearer(&h), Some(&b"tok"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert!(bearer(&h).is_none());
    }
}
