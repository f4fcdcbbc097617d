//! The edge that talks to the kernel: one rtnetlink connection for requests
//! (dumps and changes), one for notifications. Turns dumps into
//! [`Observed`] and [`Action`]s into netlink messages, built with
//! rtnetlink's builders where they exist and raw attributes where the crates
//! stop (`NDA_NH_ID`, nexthop messages).

use std::collections::{BTreeMap, HashSet};

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::proto::{ConnectionHandle, NetlinkProtoError};
use rtnetlink::sys::{AsyncSocket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkUnspec, LinkVlan, LinkVxlan};

use crate::action::FdbWrite;
use crate::desired::{NEXTHOP_PROTOCOL, VXLAN_PORT};
use crate::diff::Action;
use crate::kernel_msgs::{
    bridge_fdb_from, fdb_from, fdb_message, libc_eopnotsupp, link_from, neigh_from, neigh_message,
    port_fdb_message,
};
use crate::learning::{BridgeFdbEntry, EntryOrigin};
use crate::message::KernelMessage;
use crate::nexthop::{NexthopMessage, RTNLGRP_NEXTHOP};
use crate::observed::{LinkKind, Observed, ObservedNexthop, ObservedPortFdb};

/// `RTNLGRP_LINK`.
const RTNLGRP_LINK: u32 = 1;
/// `RTNLGRP_NEIGH`.
const RTNLGRP_NEIGH: u32 = 3;
/// Receive buffer of the notification socket: large, so bursts (a flush of
/// thousands of FDB entries) are less likely to overrun it; an overrun is
/// covered by the periodic resync anyway.
const NOTIFY_RCVBUF: usize = 8 << 20;

/// A netlink exchange or an action failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Opening or configuring a netlink socket failed.
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The netlink connection task is gone.
    #[error("netlink connection: {0}")]
    Proto(#[from] NetlinkProtoError),
    /// The kernel refused a request.
    #[error("{op}: kernel said {} (errno {errno})", std::io::Error::from_raw_os_error(*errno))]
    Errno {
        /// What we asked for.
        op: String,
        /// Positive errno.
        errno: i32,
    },
    /// The kernel lacks a feature an action needs.
    #[error(
        "{op}: this kernel has no {feature} (errno {errno}); enable it or bind the port untagged (vlan 0)"
    )]
    MissingFeature {
        /// What we asked for.
        op: String,
        /// The missing kernel feature.
        feature: &'static str,
        /// Positive errno.
        errno: i32,
    },
    /// A dump raced with changes (NLM_F_DUMP_INTR); retry it.
    #[error("{op}: interrupted by concurrent changes")]
    DumpInterrupted {
        /// Which dump.
        op: String,
    },
    /// An action names a link that does not exist (yet).
    #[error("{op}: no link named {name}")]
    NoSuchLink {
        /// What we asked for.
        op: String,
        /// The missing link.
        name: String,
    },
}

impl KernelError {
    /// The errno, when the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            KernelError::Errno { errno, .. } | KernelError::MissingFeature { errno, .. } => {
                Some(*errno)
            }
            _ => None,
        }
    }
}

/// Notifications from the kernel; see [`classify`] for what each one means.
pub type Notifications = UnboundedReceiver<(NetlinkMessage<KernelMessage>, SocketAddr)>;

/// A bridge FDB change carried by a notification, for the learning tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbNotice {
    /// `RTM_NEWNEIGH`.
    New(BridgeFdbEntry),
    /// `RTM_DELNEIGH`.
    Del(BridgeFdbEntry),
}

/// What one notification means to the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// The bridge FDB entry it adds or removes, if it is one.
    pub fdb: Option<FdbNotice>,
    /// Whether it can concern an object the reconciler manages. Learned
    /// (dynamic) bridge entries never do: they only feed learning, so a busy
    /// physical segment does not cause a full re-dump per learned MAC.
    pub needs_pass: bool,
}

/// Reads one notification: anything but a learned bridge FDB entry may have
/// touched our objects and asks for a (debounced) pass.
pub fn classify(msg: &NetlinkMessage<KernelMessage>) -> Notice {
    let fdb = match &msg.payload {
        NetlinkPayload::InnerMessage(KernelMessage::Route(RouteNetlinkMessage::NewNeighbour(
            n,
        ))) => bridge_fdb_from(n).map(FdbNotice::New),
        NetlinkPayload::InnerMessage(KernelMessage::Route(RouteNetlinkMessage::DelNeighbour(
            n,
        ))) => bridge_fdb_from(n).map(FdbNotice::Del),
        _ => None,
    };
    let learned = matches!(
        fdb,
        Some(FdbNotice::New(e) | FdbNotice::Del(e)) if e.origin == EntryOrigin::Learned
    );
    Notice {
        fdb,
        needs_pass: !learned,
    }
}

fn route(msg: RouteNetlinkMessage) -> KernelMessage {
    KernelMessage::Route(msg)
}

/// Owner of the request connection. Not `Clone` on purpose: one task owns it.
#[derive(Debug)]
pub struct Kernel {
    handle: ConnectionHandle<KernelMessage>,
    /// Name -> ifindex, from the last dump plus links created since.
    names: BTreeMap<String, u32>,
}

/// The result of applying a plan: one failure never stops the rest.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Actions the kernel accepted.
    pub applied: usize,
    /// Actions that failed, with why.
    pub failed: Vec<(Action, KernelError)>,
}

impl Kernel {
    /// Opens the request connection and spawns its driver on the current runtime.
    pub fn connect() -> Result<Kernel, KernelError> {
        let (conn, handle, _unsolicited) =
            rtnetlink::proto::new_connection::<KernelMessage>(NETLINK_ROUTE)?;
        tokio::spawn(conn);
        Ok(Kernel {
            handle,
            names: BTreeMap::new(),
        })
    }

    /// Opens a socket subscribed to link, neighbour (incl. FDB) and nexthop
    /// notifications, and spawns its driver.
    pub fn subscribe() -> Result<Notifications, KernelError> {
        let (mut conn, _handle, notifications) =
            rtnetlink::proto::new_connection::<KernelMessage>(NETLINK_ROUTE)?;
        let sock = conn.socket_mut().socket_mut();
        sock.bind(&SocketAddr::new(0, 0))?;
        sock.set_rx_buf_sz(NOTIFY_RCVBUF)?;
        for g in [RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_NEXTHOP] {
            sock.add_membership(g)?;
        }
        tokio::spawn(conn);
        Ok(notifications)
    }

    async fn request(
        &self,
        op: &str,
        msg: KernelMessage,
        flags: u16,
    ) -> Result<Vec<KernelMessage>, KernelError> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        let req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        let mut resp = self.handle.request(req, SocketAddr::new(0, 0))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        while let Some(m) = resp.next().await {
            // The table changed during the dump: the snapshot may be torn.
            interrupted |= m.header.flags & NLM_F_DUMP_INTR != 0;
            match m.payload {
                NetlinkPayload::InnerMessage(x) => out.push(x),
                NetlinkPayload::Error(e) => {
                    if let Some(code) = e.code {
                        return Err(KernelError::Errno {
                            op: op.to_string(),
                            errno: -code.get(),
                        });
                    }
                }
                _ => {}
            }
        }
        if interrupted {
            return Err(KernelError::DumpInterrupted { op: op.to_string() });
        }
        Ok(out)
    }

    /// Dumps links, vxlan FDB entries, IPv4 neighbours and nexthops.
    pub async fn dump(&mut self) -> Result<Observed, KernelError> {
        let dump = NLM_F_REQUEST | NLM_F_DUMP;
        let mut obs = Observed::default();
        let links = self
            .request(
                "dump links",
                KernelMessage::Route(RouteNetlinkMessage::GetLink(LinkMessage::default())),
                dump,
            )
            .await?;
        obs.links = links
            .into_iter()
            .filter_map(|m| match m {
                KernelMessage::Route(RouteNetlinkMessage::NewLink(l)) => Some(link_from(&l)),
                _ => None,
            })
            .collect();
        self.names = obs
            .links
            .iter()
            .map(|l| (l.name.clone(), l.index))
            .collect();

        let vxlans: Vec<u32> = obs
            .links
            .iter()
            .filter(|l| matches!(l.kind, LinkKind::Vxlan(_)))
            .map(|l| l.index)
            .collect();
        // Ports of our bridges: their static entries are VM MAC pins.
        let our_bridges: HashSet<u32> = obs
            .links
            .iter()
            .filter(|l| l.is_our_bridge())
            .map(|l| l.index)
            .collect();
        let our_ports: HashSet<u32> = obs
            .links
            .iter()
            .filter(|l| l.master.is_some_and(|m| our_bridges.contains(&m)))
            .map(|l| l.index)
            .collect();
        let mut q = NeighbourMessage::default();
        q.header.family = AddressFamily::Bridge;
        for m in self
            .request(
                "dump fdb",
                KernelMessage::Route(RouteNetlinkMessage::GetNeighbour(q)),
                dump,
            )
            .await?
        {
            if let KernelMessage::Route(RouteNetlinkMessage::NewNeighbour(n)) = m {
                if let Some(e) = bridge_fdb_from(&n).filter(|e| e.origin == EntryOrigin::Learned) {
                    obs.learned.push(e);
                    continue;
                }
                // Bridge entries come without NTF_SELF (and with NDA_MASTER);
                // `static` ones are NUD_NOARP, learned ones REACHABLE/STALE.
                let static_master = !n.header.flags.contains(NeighbourFlags::Own)
                    && n.header.state == NeighbourState::Noarp;
                let ix = n.header.ifindex;
                if (vxlans.contains(&ix) || our_ports.contains(&ix)) && static_master {
                    if let Some(e) = fdb_from(&n) {
                        obs.port_fdb.push(ObservedPortFdb {
                            port: e.ifindex,
                            mac: e.mac,
                        });
                    }
                } else if vxlans.contains(&n.header.ifindex)
                    && n.header.flags.contains(NeighbourFlags::Own)
                {
                    if let Some(e) = fdb_from(&n) {
                        obs.fdb.push(e);
                    }
                }
            }
        }

        let mut q = NeighbourMessage::default();
        q.header.family = AddressFamily::Inet;
        for m in self
            .request(
                "dump neighbours",
                KernelMessage::Route(RouteNetlinkMessage::GetNeighbour(q)),
                dump,
            )
            .await?
        {
            if let KernelMessage::Route(RouteNetlinkMessage::NewNeighbour(n)) = m {
                if let Some(e) = neigh_from(&n) {
                    obs.neighbours.push(e);
                }
            }
        }

        match self
            .request(
                "dump nexthops",
                KernelMessage::GetNexthop(NexthopMessage::default()),
                dump,
            )
            .await
        {
            Ok(msgs) => {
                for m in msgs {
                    if let KernelMessage::NewNexthop(n) = m {
                        if let Some(id) = n.id {
                            obs.nexthops.push(ObservedNexthop {
                                id,
                                protocol: n.protocol,
                                gateway: n.gateway,
                                group: n.group.iter().map(|g| g.id).collect(),
                                fdb: n.fdb,
                            });
                        }
                    }
                }
            }
            // A kernel without nexthop objects simply has none.
            Err(e) if e.errno() == Some(libc_eopnotsupp()) => {
                tracing::debug!("kernel has no nexthop objects: {e}");
            }
            Err(e) => return Err(e),
        }
        Ok(obs)
    }

    fn index(&self, op: &str, name: &str) -> Result<u32, KernelError> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| KernelError::NoSuchLink {
                op: op.to_string(),
                name: name.to_string(),
            })
    }

    async fn refresh_index(&mut self, op: &str, name: &str) -> Result<(), KernelError> {
        let msg = LinkUnspec::new_with_name(name).build();
        let reply = self
            .request(
                op,
                KernelMessage::Route(RouteNetlinkMessage::GetLink(msg)),
                NLM_F_REQUEST,
            )
            .await?;
        for m in reply {
            if let KernelMessage::Route(RouteNetlinkMessage::NewLink(l)) = m {
                self.names.insert(name.to_string(), l.header.index);
            }
        }
        Ok(())
    }

    /// Sends one change and waits for the kernel's acknowledgement.
    async fn change(&self, op: &str, msg: KernelMessage, flags: u16) -> Result<(), KernelError> {
        self.request(op, msg, NLM_F_REQUEST | NLM_F_ACK | flags)
            .await
            .map(drop)
    }

    async fn link_change(&self, op: &str, msg: LinkMessage) -> Result<(), KernelError> {
        self.change(op, route(RouteNetlinkMessage::SetLink(msg)), 0)
            .await
    }

    async fn create_link(
        &mut self,
        op: &str,
        name: &str,
        msg: LinkMessage,
    ) -> Result<(), KernelError> {
        self.change(
            op,
            route(RouteNetlinkMessage::NewLink(msg)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await?;
        self.refresh_index(op, name).await
    }

    /// Applies one action.
    pub async fn apply(&mut self, action: &Action) -> Result<(), KernelError> {
        let op = action.to_string();
        let op = op.as_str();
        let new_neigh = |m| route(RouteNetlinkMessage::NewNeighbour(m));
        let del_neigh = |m| route(RouteNetlinkMessage::DelNeighbour(m));
        match action {
            Action::CreateBridge { name } => {
                self.create_link(op, name, LinkBridge::new(name).build())
                    .await
            }
            Action::CreateVxlan {
                name,
                vni,
                local,
                underlay,
            } => {
                let mut b = LinkVxlan::new(name, *vni)
                    .local(*local)
                    .port(VXLAN_PORT)
                    .learning(false);
                if let Some(u) = underlay {
                    b = b.dev(self.index(op, u)?);
                }
                self.create_link(op, name, b.build()).await
            }
            Action::CreateVlan { name, parent, vlan } => {
                let msg = LinkVlan::new(name, self.index(op, parent)?, *vlan).build();
                match self.create_link(op, name, msg).await {
                    // `ip link add type vlan` prints "Unknown device type" for this.
                    Err(KernelError::Errno { op, errno }) if errno == libc_eopnotsupp() => {
                        Err(KernelError::MissingFeature {
                            op,
                            feature: "802.1Q VLAN support (8021q)",
                            errno,
                        })
                    }
                    r => r,
                }
            }
            Action::DelLink { name } => {
                let mut msg = LinkMessage::default();
                msg.header.index = self.index(op, name)?;
                self.change(op, route(RouteNetlinkMessage::DelLink(msg)), 0)
                    .await?;
                self.names.remove(name);
                Ok(())
            }
            Action::SetAlias { dev, alias } => {
                let ix = self.index(op, dev)?;
                self.link_change(
                    op,
                    LinkUnspec::new_with_index(ix).alias(alias.clone()).build(),
                )
                .await
            }
            Action::SetMaster { dev, master } => {
                let (ix, m) = (self.index(op, dev)?, self.index(op, master)?);
                self.link_change(op, LinkUnspec::new_with_index(ix).controller(m).build())
                    .await
            }
            Action::SetNomaster { dev } => {
                let ix = self.index(op, dev)?;
                self.link_change(op, LinkUnspec::new_with_index(ix).nocontroller().build())
                    .await
            }
            Action::SetUp { dev } => {
                let ix = self.index(op, dev)?;
                self.link_change(op, LinkUnspec::new_with_index(ix).up().build())
                    .await
            }
            Action::SetNeighSuppress { dev, on } => {
                // Port options go through RTM_NEWLINK's slave changelink, not RTM_SETLINK.
                let msg = LinkBridgePort::new(self.index(op, dev)?)
                    .neigh_suppress(*on)
                    .build();
                self.change(op, route(RouteNetlinkMessage::NewLink(msg)), 0)
                    .await
            }
            Action::AddFdb { dev, mac, dst, .. } => {
                let msg = fdb_message(self.index(op, dev)?, *mac, Some(*dst));
                let how = match FdbWrite::of(*mac, *dst) {
                    FdbWrite::Replace => NLM_F_REPLACE,
                    FdbWrite::Append => NLM_F_APPEND,
                    FdbWrite::Add => NLM_F_EXCL,
                };
                self.change(op, new_neigh(msg), NLM_F_CREATE | how).await
            }
            Action::DelFdb { dev, mac, dst } => {
                let msg = fdb_message(self.index(op, dev)?, *mac, *dst);
                self.change(op, del_neigh(msg), 0).await
            }
            Action::AddPortFdb { dev, mac } => {
                let msg = port_fdb_message(self.index(op, dev)?, *mac);
                self.change(op, new_neigh(msg), NLM_F_CREATE | NLM_F_REPLACE)
                    .await
            }
            Action::DelPortFdb { dev, mac } => {
                let msg = port_fdb_message(self.index(op, dev)?, *mac);
                self.change(op, del_neigh(msg), 0).await
            }
            Action::AddNeigh { dev, ip, mac } => {
                let mut msg = neigh_message(self.index(op, dev)?, *ip);
                msg.attributes
                    .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
                self.change(op, new_neigh(msg), NLM_F_CREATE | NLM_F_REPLACE)
                    .await
            }
            Action::DelNeigh { dev, ip } => {
                let msg = neigh_message(self.index(op, dev)?, *ip);
                self.change(op, del_neigh(msg), 0).await
            }
            Action::AddNexthop { id, gateway } => {
                let msg = NexthopMessage::fdb_gateway(*id, *gateway, NEXTHOP_PROTOCOL);
                self.change(
                    op,
                    KernelMessage::NewNexthop(msg),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
                .await
            }
            Action::SetNexthopGroup {
                id,
                members,
                replace,
            } => {
                let msg = NexthopMessage::fdb_group(*id, members, NEXTHOP_PROTOCOL);
                let how = if *replace { NLM_F_REPLACE } else { NLM_F_EXCL };
                self.change(op, KernelMessage::NewNexthop(msg), NLM_F_CREATE | how)
                    .await
            }
            Action::DelNexthop { id } => {
                let msg = NexthopMessage::with_id(*id);
                self.change(op, KernelMessage::DelNexthop(msg), 0).await
            }
        }
    }

    /// Applies actions in order; a failure is recorded and the rest still run.
    pub async fn apply_all(&mut self, actions: &[Action]) -> ApplyReport {
        let mut report = ApplyReport::default();
        for a in actions {
            match self.apply(a).await {
                Ok(()) => report.applied += 1,
                Err(e) => {
                    tracing::warn!(action = %a, error = %e, "kernel action failed");
                    report.failed.push((a.clone(), e));
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::neighbour::NeighbourAttribute;

    fn notification(new: bool, state: NeighbourState, flags: NeighbourFlags) -> Notice {
        let mut n = NeighbourMessage::default();
        n.header.family = AddressFamily::Bridge;
        n.header.ifindex = 7;
        n.header.state = state;
        n.header.flags = flags;
        n.attributes
            .push(NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 1]));
        n.attributes.push(NeighbourAttribute::Controller(9));
        let m = if new {
            RouteNetlinkMessage::NewNeighbour(n)
        } else {
            RouteNetlinkMessage::DelNeighbour(n)
        };
        classify(&NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(KernelMessage::Route(m)),
        ))
    }

    #[test]
    fn learned_entries_feed_learning_only() {
        let none = NeighbourFlags::empty();
        let n = notification(true, NeighbourState::Reachable, none);
        assert!(!n.needs_pass);
        let Some(FdbNotice::New(e)) = n.fdb else {
            panic!("{n:?}")
        };
        assert_eq!(
            (e.port, e.master, e.origin),
            (7, Some(9), EntryOrigin::Learned)
        );
        let n = notification(false, NeighbourState::Stale, none);
        assert!(!n.needs_pass && matches!(n.fdb, Some(FdbNotice::Del(_))));
        // Our static entries, the bridge's local ones and VXLAN self entries need a pass.
        for (state, flags, origin) in [
            (NeighbourState::Noarp, none, EntryOrigin::Static),
            (NeighbourState::Permanent, none, EntryOrigin::Permanent),
            (
                NeighbourState::Permanent,
                NeighbourFlags::Own,
                EntryOrigin::Device,
            ),
        ] {
            let n = notification(false, state, flags);
            assert!(n.needs_pass);
            assert!(matches!(n.fdb, Some(FdbNotice::Del(e)) if e.origin == origin));
        }
        // Anything else (links, IPv4 neighbours, nexthops) needs a pass.
        let link = classify(&NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(KernelMessage::Route(RouteNetlinkMessage::NewLink(
                LinkMessage::default(),
            ))),
        ));
        assert_eq!(
            link,
            Notice {
                fdb: None,
                needs_pass: true
            }
        );
    }
}
