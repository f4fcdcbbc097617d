//! What a configuration reload changes, computed before touching anything:
//! sessions are identified by their addresses and encapsulation
//! ([`PeerKey`]), so a reload adds, retimes or removes exactly the sessions
//! whose lines changed and leaves every other session undisturbed (same
//! discriminator, same state, no Poll Sequence).

use crate::file_config::Peer;
use crate::manager::PeerKey;
use std::collections::HashMap;

/// The changes from one set of sessions to another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// New sessions.
    pub add: Vec<Peer>,
    /// Sessions to take AdminDown and remove.
    pub remove: Vec<PeerKey>,
    /// Sessions whose timers changed only: a §6.8.3 Poll Sequence, no flap.
    pub retime: Vec<Peer>,
    /// Sessions whose role, authentication or device changed: these cannot
    /// change in place, so they are removed and added again.
    pub replace: Vec<Peer>,
    /// Sessions that only got a new name (nothing to do on the wire).
    pub rename: Vec<Peer>,
}

impl ReloadPlan {
    /// Compares the running sessions with the new file's.
    pub fn new(running: &[Peer], wanted: &[Peer]) -> ReloadPlan {
        let old: HashMap<PeerKey, &Peer> = running.iter().map(|p| (p.key, p)).collect();
        let mut plan = ReloadPlan::default();
        for p in wanted {
            let Some(o) = old.get(&p.key) else {
                plan.add.push(p.clone());
                continue;
            };
            let (a, b) = (&o.session, &p.session);
            let same_timing = a.desired_min_tx == b.desired_min_tx
                && a.required_min_rx == b.required_min_rx
                && a.detect_mult == b.detect_mult;
            let same_rest = a.passive == b.passive
                && a.control_plane_independent == b.control_plane_independent
                && a.auth == b.auth
                && o.vxlan_device == p.vxlan_device
                && o.vxlan_flavor == p.vxlan_flavor;
            if !same_rest {
                plan.replace.push(p.clone());
            } else if !same_timing {
                plan.retime.push(p.clone());
            } else if o.name != p.name {
                plan.rename.push(p.clone());
            }
        }
        let keep: std::collections::HashSet<PeerKey> = wanted.iter().map(|p| p.key).collect();
        plan.remove = running
            .iter()
            .map(|p| p.key)
            .filter(|k| !keep.contains(k))
            .collect();
        plan
    }

    /// Nothing changes.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.remove.is_empty()
            && self.retime.is_empty()
            && self.replace.is_empty()
            && self.rename.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthKey, AuthType};
    use crate::config::SessionConfig;
    use crate::manager::Encap;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    fn peer(n: u8, name: &str) -> Peer {
        Peer {
            name: name.into(),
            key: PeerKey {
                remote: IpAddr::V4(Ipv4Addr::new(198, 18, 0, n)),
                local: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
                encap: Encap::SingleHop,
            },
            session: SessionConfig::default(),
            vxlan_device: None,
            vxlan_flavor: Default::default(),
        }
    }

    #[test]
    fn only_changed_sessions_are_touched() {
        let running = vec![
            peer(2, "same"),
            peer(3, "retimed"),
            peer(4, "reauth"),
            peer(5, "gone"),
            peer(6, "old-name"),
        ];
        let mut retimed = peer(3, "retimed");
        retimed.session.desired_min_tx = Duration::from_millis(100);
        let mut reauth = peer(4, "reauth");
        reauth.session.auth = Some(AuthKey::new(AuthType::KeyedSha1, 1, b"k").unwrap());
        let wanted = vec![
            peer(2, "same"),
            retimed.clone(),
            reauth.clone(),
            peer(6, "new-name"),
            peer(7, "new"),
        ];
        let plan = ReloadPlan::new(&running, &wanted);
        assert_eq!(plan.add, vec![peer(7, "new")]);
        assert_eq!(plan.remove, vec![peer(5, "gone").key]);
        assert_eq!(plan.retime, vec![retimed]);
        assert_eq!(plan.replace, vec![reauth]);
        assert_eq!(plan.rename, vec![peer(6, "new-name")]);
        assert!(ReloadPlan::new(&wanted, &wanted).is_empty());
    }
}
