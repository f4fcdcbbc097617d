//! The replicated state machine: a pure, deterministic `apply(command)`.
//!
//! Every replica applies the same committed commands in the same order and
//! must end in the same state, so `apply` reads no clock and no randomness:
//! times (`now_ms`) are chosen by the leader and carried inside the command,
//! and lease ids come from a counter in the state. Referential checks run
//! here, at apply time, because only here are concurrent requests
//! serialised: two requests that each pass a check against a stale read
//! cannot both commit.
//!
//! # Revisions
//!
//! A command that changes at least one object gets the next global revision;
//! all its events (including cascades and lease expiry deletions) carry that
//! one revision. A refused command, or one that changes no object (lease grant
//! and renew), does not consume a revision.
//!
//! # Delete policy
//!
//! | deleting | when referenced by | result |
//! |---|---|---|
//! | LogicalSwitch | a Binding | refused, 409: unbinding a segment from the physical network is a deliberate act that must be done first |
//! | LogicalSwitch | RemoteMacs | cascaded: a remote MAC is a placement *inside* that switch and means nothing without it |
//! | TransportNode | a GatewayGroup member, a Binding, a RemoteMac | refused, 409: removing a node that still carries traffic is most likely a mistake, and silently dropping MAC placements would blackhole hosts |
//! | GatewayGroup | a Binding | refused, 409 |
//! | Binding, RemoteMac | — | always allowed |
//!
//! Observed state is never referenced by desired state, and its own references
//! (reporter, logical switch...) are not checked: it reports what a daemon
//! sees, which may briefly disagree with desired state.
//!
//! Updates are checked the same way: changing a TransportNode's `kind` is
//! refused while a Binding or a GatewayGroup relies on the old kind.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::model::{
    Attachment, Event, EventType, Key, Kind, LeaseId, NodeKind, Object, RevisionEvents, Stored,
};
use crate::validate::{ValidationError, validate_object};

/// Shortest lease TTL; below this a daemon could not renew in time.
pub const MIN_LEASE_TTL_MS: u64 = 100;
/// Longest lease TTL (one day).
pub const MAX_LEASE_TTL_MS: u64 = 86_400_000;

/// A state change, as proposed through raft. Serialised as JSON into log entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Command {
    /// Create a desired object; refused if the key exists.
    Create {
        /// The object.
        object: Object,
    },
    /// Create or replace a desired object.
    Put {
        /// The object.
        object: Object,
    },
    /// Delete a desired object (see the delete policy).
    Delete {
        /// Its key.
        key: Key,
    },
    /// Create or replace an observed object under a lease.
    PutObserved {
        /// The object (an observed kind).
        object: Object,
        /// The lease it hangs off.
        lease: LeaseId,
    },
    /// Delete an observed object.
    DeleteObserved {
        /// Its key.
        key: Key,
    },
    /// Create a lease expiring at `now_ms + ttl_ms`.
    GrantLease {
        /// Time to live.
        ttl_ms: u64,
        /// Leader's wall clock, ms since the Unix epoch.
        now_ms: u64,
        /// Transport node the lease belongs to (a `node` token's node), so
        /// only that node may write under, renew or revoke it; `None` for
        /// leases an admin granted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    },
    /// Push a lease's expiry to `now_ms + ttl`.
    RenewLease {
        /// Lease.
        id: LeaseId,
        /// Leader's wall clock.
        now_ms: u64,
    },
    /// Delete a lease and everything attached to it.
    RevokeLease {
        /// Lease.
        id: LeaseId,
    },
    /// Revoke every lease whose expiry is at or before `now_ms`.
    ExpireLeases {
        /// Leader's wall clock.
        now_ms: u64,
    },
    /// Give every lease a full TTL from `now_ms`; proposed by a new leader so
    /// that time without a leader does not count against daemons.
    RefreshLeases {
        /// Leader's wall clock.
        now_ms: u64,
    },
}

pub use crate::wire::Lease;

/// Why a command was refused; maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "error")]
pub enum ApplyError {
    /// The object itself is invalid (400).
    #[error("invalid: {0:?}")]
    Invalid(Vec<ValidationError>),
    /// The object conflicts with current state: duplicate, missing reference, still referenced (409).
    #[error("conflict: {0:?}")]
    Conflict(Vec<ValidationError>),
    /// The addressed object or lease does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
}

impl ApplyError {
    fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ApplyError::Invalid(vec![ValidationError::new(field, reason)])
    }
    fn conflict(field: &str, reason: impl Into<String>) -> Self {
        ApplyError::Conflict(vec![ValidationError::new(field, reason)])
    }
}

/// What a successful command produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// The store's revision after the command (new if `events` is non-empty).
    pub revision: u64,
    /// Events, all at `revision`; empty if nothing changed.
    pub events: Vec<Event>,
    /// The lease granted, renewed or refreshed, for the reply.
    pub lease: Option<Lease>,
    /// Leases created, changed or removed (so storage rewrites only those).
    pub touched_leases: Vec<LeaseId>,
}

impl Applied {
    /// The events as the watch unit, if this command made a revision.
    pub fn revision_events(&self) -> Option<RevisionEvents> {
        (!self.events.is_empty()).then(|| RevisionEvents {
            revision: self.revision,
            events: self.events.clone(),
        })
    }
}

/// The full state a replica holds; what a raft snapshot carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    revision: u64,
    next_lease: LeaseId,
    objects: BTreeMap<Key, Stored>,
    leases: BTreeMap<LeaseId, Lease>,
    /// Derived index: lease -> keys attached; rebuilt on load, never serialised.
    lease_keys: BTreeMap<LeaseId, BTreeSet<Key>>,
}

/// Serialised form of [`State`] (map keys must be strings in JSON, so lists).
#[derive(Debug, Serialize, Deserialize)]
pub struct StateImage {
    /// Current revision.
    pub revision: u64,
    /// Next lease id.
    pub next_lease: LeaseId,
    /// Every object.
    pub objects: Vec<Stored>,
    /// Every lease.
    pub leases: Vec<Lease>,
}

impl State {
    /// An empty store at revision 0.
    pub fn new() -> State {
        State {
            next_lease: 1,
            ..Default::default()
        }
    }

    /// Rebuilds a state from its parts (storage load, snapshot install).
    pub fn from_image(img: StateImage) -> State {
        let mut s = State {
            revision: img.revision,
            next_lease: img.next_lease.max(1),
            ..Default::default()
        };
        for l in img.leases {
            s.leases.insert(l.id, l);
        }
        for st in img.objects {
            let key = st.object.key();
            if let Some(l) = st.lease {
                s.lease_keys.entry(l).or_default().insert(key.clone());
            }
            s.objects.insert(key, st);
        }
        s
    }

    /// The serialisable image of the state.
    pub fn to_image(&self) -> StateImage {
        StateImage {
            revision: self.revision,
            next_lease: self.next_lease,
            objects: self.objects.values().cloned().collect(),
            leases: self.leases.values().cloned().collect(),
        }
    }

    /// Current global revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Next lease id to hand out (persisted so ids are never reused).
    pub fn next_lease(&self) -> LeaseId {
        self.next_lease
    }

    /// One object.
    pub fn get(&self, key: &Key) -> Option<&Stored> {
        self.objects.get(key)
    }

    /// All objects of a kind, in key order.
    pub fn list(&self, kind: Kind) -> impl Iterator<Item = &Stored> {
        self.objects
            .range(Key::new(kind, String::new())..)
            .take_while(move |(k, _)| k.kind == kind)
            .map(|(_, v)| v)
    }

    /// All objects.
    pub fn objects(&self) -> impl Iterator<Item = &Stored> {
        self.objects.values()
    }

    /// One lease.
    pub fn lease(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// All leases.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Earliest lease expiry, so the leader knows when to propose `ExpireLeases`.
    pub fn next_expiry(&self) -> Option<u64> {
        self.leases.values().map(|l| l.expires_at_ms).min()
    }

    /// Applies one command. On `Err` the state is unchanged.
    pub fn apply(&mut self, cmd: &Command) -> Result<Applied, ApplyError> {
        let mut tx = Tx::new(self.revision + 1);
        let lease = match cmd {
            Command::Create { object } => {
                self.check_desired(object)?;
                let key = object.key();
                if self.objects.contains_key(&key) {
                    return Err(ApplyError::conflict(
                        name_field(object.kind()),
                        format!("{key} already exists"),
                    ));
                }
                self.check_references(object)?;
                self.put(&mut tx, object.clone(), None);
                None
            }
            Command::Put { object } => {
                self.check_desired(object)?;
                self.check_references(object)?;
                self.put(&mut tx, object.clone(), None);
                None
            }
            Command::Delete { key } => {
                if key.kind.is_observed() {
                    return Err(ApplyError::invalid(
                        "kind",
                        "observed state is deleted with DeleteObserved",
                    ));
                }
                if !self.objects.contains_key(key) {
                    return Err(ApplyError::NotFound(key.to_string()));
                }
                self.check_delete(key)?;
                if key.kind == Kind::LogicalSwitch {
                    let macs: Vec<Key> = self
                        .list(Kind::RemoteMac)
                        .filter(|s| {
                            matches!(&s.object, Object::RemoteMac(m) if m.logical_switch == key.name)
                        })
                        .map(|s| s.object.key())
                        .collect();
                    for k in macs {
                        self.remove(&mut tx, &k);
                    }
                }
                self.remove(&mut tx, key);
                None
            }
            Command::PutObserved { object, lease } => {
                if !object.kind().is_observed() {
                    return Err(ApplyError::invalid(
                        "kind",
                        "desired state is written with Create/Put",
                    ));
                }
                validate_object(object).map_err(ApplyError::Invalid)?;
                if !self.leases.contains_key(lease) {
                    return Err(ApplyError::NotFound(format!("lease {lease}")));
                }
                self.put(&mut tx, object.clone(), Some(*lease));
                None
            }
            Command::DeleteObserved { key } => {
                if !key.kind.is_observed() {
                    return Err(ApplyError::invalid("kind", "not an observed kind"));
                }
                if !self.objects.contains_key(key) {
                    return Err(ApplyError::NotFound(key.to_string()));
                }
                self.remove(&mut tx, key);
                None
            }
            Command::GrantLease {
                ttl_ms,
                now_ms,
                owner,
            } => {
                if !(MIN_LEASE_TTL_MS..=MAX_LEASE_TTL_MS).contains(ttl_ms) {
                    return Err(ApplyError::invalid(
                        "ttl_ms",
                        format!("must be in {MIN_LEASE_TTL_MS}..={MAX_LEASE_TTL_MS}"),
                    ));
                }
                let l = Lease {
                    id: self.next_lease,
                    ttl_ms: *ttl_ms,
                    expires_at_ms: now_ms.saturating_add(*ttl_ms),
                    owner: owner.clone(),
                };
                self.next_lease += 1;
                self.leases.insert(l.id, l.clone());
                tx.touched.push(l.id);
                Some(l)
            }
            Command::RenewLease { id, now_ms } => {
                let l = self
                    .leases
                    .get_mut(id)
                    .ok_or_else(|| ApplyError::NotFound(format!("lease {id}")))?;
                l.expires_at_ms = l.expires_at_ms.max(now_ms.saturating_add(l.ttl_ms));
                tx.touched.push(*id);
                Some(l.clone())
            }
            Command::RevokeLease { id } => {
                if !self.leases.contains_key(id) {
                    return Err(ApplyError::NotFound(format!("lease {id}")));
                }
                self.revoke(&mut tx, *id);
                None
            }
            Command::ExpireLeases { now_ms } => {
                let due: Vec<LeaseId> = self
                    .leases
                    .values()
                    .filter(|l| l.expires_at_ms <= *now_ms)
                    .map(|l| l.id)
                    .collect();
                for id in due {
                    self.revoke(&mut tx, id);
                }
                None
            }
            Command::RefreshLeases { now_ms } => {
                for l in self.leases.values_mut() {
                    l.expires_at_ms = l.expires_at_ms.max(now_ms.saturating_add(l.ttl_ms));
                    tx.touched.push(l.id);
                }
                None
            }
        };
        if !tx.events.is_empty() {
            self.revision = tx.revision;
        }
        Ok(Applied {
            revision: self.revision,
            events: tx.events,
            lease,
            touched_leases: tx.touched,
        })
    }

    fn revoke(&mut self, tx: &mut Tx, id: LeaseId) {
        let keys = self.lease_keys.remove(&id).unwrap_or_default();
        for k in keys {
            self.remove(tx, &k);
        }
        self.leases.remove(&id);
        tx.touched.push(id);
    }

    fn put(&mut self, tx: &mut Tx, object: Object, lease: Option<LeaseId>) {
        let key = object.key();
        let old = self
            .objects
            .get(&key)
            .map(|old| (old.create_revision, old.lease));
        let create_revision = match old {
            Some((created, old_lease)) => {
                if old_lease != lease {
                    self.detach(&key, old_lease);
                }
                created
            }
            None => tx.revision,
        };
        if let Some(l) = lease {
            self.lease_keys.entry(l).or_default().insert(key.clone());
        }
        let stored = Stored {
            object,
            create_revision,
            mod_revision: tx.revision,
            lease,
        };
        tx.events.push(Event {
            event_type: EventType::Put,
            key: key.to_string(),
            value: stored.clone(),
        });
        self.objects.insert(key, stored);
    }

    fn detach(&mut self, key: &Key, lease: Option<LeaseId>) {
        if let Some(l) = lease
            && let Some(set) = self.lease_keys.get_mut(&l)
        {
            set.remove(key);
            if set.is_empty() {
                self.lease_keys.remove(&l);
            }
        }
    }

    fn remove(&mut self, tx: &mut Tx, key: &Key) {
        if let Some(old) = self.objects.remove(key) {
            self.detach(key, old.lease);
            tx.events.push(Event {
                event_type: EventType::Delete,
                key: key.to_string(),
                value: old,
            });
        }
    }

    fn check_desired(&self, object: &Object) -> Result<(), ApplyError> {
        if object.kind().is_observed() {
            return Err(ApplyError::invalid(
                "kind",
                "observed state is written with PutObserved under a lease",
            ));
        }
        validate_object(object).map_err(ApplyError::Invalid)
    }

    fn node_kind(&self, name: &str) -> Option<NodeKind> {
        match self.objects.get(&Key::new(Kind::TransportNode, name)) {
            Some(Stored {
                object: Object::TransportNode(n),
                ..
            }) => Some(n.kind),
            _ => None,
        }
    }

    fn exists(&self, kind: Kind, name: &str) -> bool {
        self.objects.contains_key(&Key::new(kind, name))
    }

    /// Who already uses `ip` as a tunnel endpoint, other than `except` (the object being replaced).
    fn ip_user(&self, ip: Ipv4Addr, except: &Key) -> Option<String> {
        self.list(Kind::TransportNode)
            .chain(self.list(Kind::GatewayGroup))
            .find(|s| {
                let uses = match &s.object {
                    Object::TransportNode(n) => n.tunnel_ip == ip,
                    Object::GatewayGroup(g) => g.vtep_ip == ip,
                    _ => false,
                };
                // The key only for a match: building it allocates.
                uses && &s.object.key() != except
            })
            .map(|s| s.object.key().to_string())
    }

    fn check_references(&self, object: &Object) -> Result<(), ApplyError> {
        let key = object.key();
        let mut errs = Vec::new();
        let mut err = |f: String, r: String| errs.push(ValidationError::new(f, r));
        match object {
            Object::LogicalSwitch(ls) => {
                for s in self.list(Kind::LogicalSwitch) {
                    if let Object::LogicalSwitch(o) = &s.object
                        && o.vni == ls.vni
                        && o.name != ls.name
                    {
                        err(
                            "vni".into(),
                            format!("VNI {} already used by logical switch {}", ls.vni, o.name),
                        );
                    }
                }
            }
            Object::TransportNode(n) => {
                if let Some(user) = self.ip_user(n.tunnel_ip, &key) {
                    err(
                        "tunnel_ip".into(),
                        format!("{} already used by {user}", n.tunnel_ip),
                    );
                }
                if n.kind != NodeKind::HardwareSwitch {
                    let b = self.bindings_on_switch(&n.name);
                    if !b.is_empty() {
                        err(
                            "kind".into(),
                            format!("bindings {b:?} attach to this node as a hardware_switch"),
                        );
                    }
                }
                if n.kind != NodeKind::Gateway {
                    let g = self.groups_with_member(&n.name);
                    if !g.is_empty() {
                        err(
                            "kind".into(),
                            format!("gateway groups {g:?} have this node as a member"),
                        );
                    }
                }
            }
            Object::GatewayGroup(g) => {
                if let Some(user) = self.ip_user(g.vtep_ip, &key) {
                    err(
                        "vtep_ip".into(),
                        format!("{} already used by {user}", g.vtep_ip),
                    );
                }
                for (i, m) in g.members.iter().enumerate() {
                    match self.node_kind(&m.node) {
                        None => err(
                            format!("members[{i}].node"),
                            format!("transport node {} does not exist", m.node),
                        ),
                        Some(NodeKind::Gateway) => {}
                        Some(k) => err(
                            format!("members[{i}].node"),
                            format!("transport node {} is a {k:?}, not a gateway", m.node),
                        ),
                    }
                }
            }
            Object::Binding(b) => {
                if !self.exists(Kind::LogicalSwitch, &b.logical_switch) {
                    err(
                        "logical_switch".into(),
                        format!("logical switch {} does not exist", b.logical_switch),
                    );
                }
                match &b.attachment {
                    Attachment::HardwareSwitch { switch, .. } => match self.node_kind(switch) {
                        None => err(
                            "attachment.switch".into(),
                            format!("transport node {switch} does not exist"),
                        ),
                        Some(NodeKind::HardwareSwitch) => {}
                        Some(k) => err(
                            "attachment.switch".into(),
                            format!("transport node {switch} is a {k:?}, not a hardware_switch"),
                        ),
                    },
                    Attachment::GatewayGroup { group } => {
                        if !self.exists(Kind::GatewayGroup, group) {
                            err(
                                "attachment.group".into(),
                                format!("gateway group {group} does not exist"),
                            );
                        }
                    }
                }
                for s in self.list(Kind::Binding) {
                    if let Object::Binding(o) = &s.object
                        && o.name != b.name
                        && o.attachment == b.attachment
                        && o.vlan == b.vlan
                    {
                        err(
                            "vlan".into(),
                            format!(
                                "vlan {} on this attachment is already bound by {}",
                                b.vlan, o.name
                            ),
                        );
                    }
                }
            }
            Object::RemoteMac(m) => {
                if !self.exists(Kind::LogicalSwitch, &m.logical_switch) {
                    err(
                        "logical_switch".into(),
                        format!("logical switch {} does not exist", m.logical_switch),
                    );
                }
                if !self.exists(Kind::TransportNode, &m.transport_node) {
                    err(
                        "transport_node".into(),
                        format!("transport node {} does not exist", m.transport_node),
                    );
                }
            }
            _ => {}
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ApplyError::Conflict(errs))
        }
    }

    fn bindings_on_switch(&self, node: &str) -> Vec<String> {
        self.list(Kind::Binding)
            .filter_map(|s| match &s.object {
                Object::Binding(b)
                    if matches!(&b.attachment, Attachment::HardwareSwitch { switch, .. } if switch == node) =>
                {
                    Some(b.name.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn groups_with_member(&self, node: &str) -> Vec<String> {
        self.list(Kind::GatewayGroup)
            .filter_map(|s| match &s.object {
                Object::GatewayGroup(g) if g.members.iter().any(|m| m.node == node) => {
                    Some(g.name.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn check_delete(&self, key: &Key) -> Result<(), ApplyError> {
        let mut errs = Vec::new();
        let name = &key.name;
        match key.kind {
            Kind::LogicalSwitch => {
                let b: Vec<String> = self
                    .list(Kind::Binding)
                    .filter_map(|s| match &s.object {
                        Object::Binding(b) if &b.logical_switch == name => Some(b.name.clone()),
                        _ => None,
                    })
                    .collect();
                if !b.is_empty() {
                    errs.push(ValidationError::new(
                        "bindings",
                        format!("still bound by {b:?}; delete those bindings first"),
                    ));
                }
            }
            Kind::TransportNode => {
                let b = self.bindings_on_switch(name);
                if !b.is_empty() {
                    errs.push(ValidationError::new(
                        "bindings",
                        format!("still referenced by bindings {b:?}"),
                    ));
                }
                let g = self.groups_with_member(name);
                if !g.is_empty() {
                    errs.push(ValidationError::new(
                        "gateway_groups",
                        format!("still a member of gateway groups {g:?}"),
                    ));
                }
                let macs: Vec<String> = self
                    .list(Kind::RemoteMac)
                    .filter_map(|s| match &s.object {
                        Object::RemoteMac(m) if &m.transport_node == name => {
                            Some(s.object.key().name)
                        }
                        _ => None,
                    })
                    .collect();
                if !macs.is_empty() {
                    errs.push(ValidationError::new(
                        "remote_macs",
                        format!("still the location of remote MACs {macs:?}"),
                    ));
                }
            }
            Kind::GatewayGroup => {
                let b: Vec<String> = self
                    .list(Kind::Binding)
                    .filter_map(|s| match &s.object {
                        Object::Binding(b)
                            if matches!(&b.attachment, Attachment::GatewayGroup { group } if group == name) =>
                        {
                            Some(b.name.clone())
                        }
                        _ => None,
                    })
                    .collect();
                if !b.is_empty() {
                    errs.push(ValidationError::new(
                        "bindings",
                        format!("still referenced by bindings {b:?}"),
                    ));
                }
            }
            _ => {}
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ApplyError::Conflict(errs))
        }
    }
}

/// The field that names an object's key, for "already exists" errors.
fn name_field(kind: Kind) -> &'static str {
    match kind {
        Kind::RemoteMac => "mac",
        _ => "name",
    }
}

/// Changes being collected for one command.
struct Tx {
    revision: u64,
    events: Vec<Event>,
    touched: Vec<LeaseId>,
}

impl Tx {
    fn new(revision: u64) -> Tx {
        Tx {
            revision,
            events: Vec::new(),
            touched: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
