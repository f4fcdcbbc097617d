//! `RTM_{NEW,DEL,GET}NEXTHOP` messages (linux/nexthop.h), which
//! netlink-packet-route 0.34 does not model.
//!
//! ```text
//! struct nhmsg {                      followed by NLAs:
//!     u8  nh_family;                    NHA_ID      (1)  u32
//!     u8  nh_scope;                     NHA_GROUP   (2)  struct nexthop_grp[]
//!     u8  nh_protocol;                  NHA_GATEWAY (6)  in_addr (family AF_INET)
//!     u8  resvd;                        NHA_FDB     (11) flag
//!     u32 nh_flags;                     (others kept raw for round trips)
//! };
//! struct nexthop_grp { u32 id; u8 weight /* minus one */; u8 weight_high; u16 resvd2; };
//! ```

use std::net::Ipv4Addr;

/// `RTM_NEWNEXTHOP`.
pub const RTM_NEWNEXTHOP: u16 = 104;
/// `RTM_DELNEXTHOP`.
pub const RTM_DELNEXTHOP: u16 = 105;
/// `RTM_GETNEXTHOP`.
pub const RTM_GETNEXTHOP: u16 = 106;
/// Multicast group of nexthop notifications (`RTNLGRP_NEXTHOP`).
pub const RTNLGRP_NEXTHOP: u32 = 32;

const NHMSG_LEN: usize = 8;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_GATEWAY: u16 = 6;
const NHA_FDB: u16 = 11;
const NLA_TYPE_MASK: u16 = 0x3fff;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;

/// A nexthop message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NexthopError {
    /// Fewer bytes than the fixed header or an attribute claims.
    #[error("nexthop message truncated at byte {0}")]
    Truncated(usize),
    /// An attribute whose length does not fit its type.
    #[error("nexthop attribute {kind} has bad length {len}")]
    BadAttribute {
        /// NLA type.
        kind: u16,
        /// Value length.
        len: usize,
    },
}

/// One member of a nexthop group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMember {
    /// Member nexthop id.
    pub id: u32,
    /// Weight 1..=65536 as the user sees it (the wire stores weight - 1).
    pub weight: u32,
}

/// Validated representation of one nexthop message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NexthopMessage {
    /// `nh_family`: AF_INET for a gateway nexthop, AF_UNSPEC for a group or a filter.
    pub family: u8,
    /// `nh_scope`.
    pub scope: u8,
    /// `nh_protocol`: who installed it.
    pub protocol: u8,
    /// `nh_flags` (RTNH_F_*).
    pub flags: u32,
    /// `NHA_ID`.
    pub id: Option<u32>,
    /// `NHA_GROUP` members (empty: not a group).
    pub group: Vec<GroupMember>,
    /// `NHA_GATEWAY` (IPv4 only; we never create IPv6 underlays).
    pub gateway: Option<Ipv4Addr>,
    /// `NHA_FDB`: usable by vxlan FDB entries.
    pub fdb: bool,
    /// Attributes we do not interpret, as (type, value), so emit reproduces them.
    pub other: Vec<(u16, Vec<u8>)>,
}

fn nla_len(value_len: usize) -> usize {
    (4 + value_len + 3) & !3
}

fn push_nla(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + (nla_len(value.len()) - len), 0);
}

impl NexthopMessage {
    /// A `via GATEWAY fdb` nexthop owned by `protocol`.
    pub fn fdb_gateway(id: u32, gateway: Ipv4Addr, protocol: u8) -> Self {
        NexthopMessage {
            family: AF_INET,
            protocol,
            id: Some(id),
            gateway: Some(gateway),
            fdb: true,
            ..Default::default()
        }
    }

    /// A `group A/B/.. fdb` nexthop group with equal weights, owned by `protocol`.
    pub fn fdb_group(id: u32, members: &[u32], protocol: u8) -> Self {
        NexthopMessage {
            family: AF_UNSPEC,
            protocol,
            id: Some(id),
            group: members
                .iter()
                .map(|&id| GroupMember { id, weight: 1 })
                .collect(),
            fdb: true,
            ..Default::default()
        }
    }

    /// A message naming only an id (delete, get).
    pub fn with_id(id: u32) -> Self {
        NexthopMessage {
            id: Some(id),
            ..Default::default()
        }
    }

    /// Parses an `nhmsg` and its attributes; short or inconsistent input is an error.
    pub fn parse(buf: &[u8]) -> Result<Self, NexthopError> {
        if buf.len() < NHMSG_LEN {
            return Err(NexthopError::Truncated(buf.len()));
        }
        let mut msg = NexthopMessage {
            family: buf[0],
            scope: buf[1],
            protocol: buf[2],
            flags: u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ..Default::default()
        };
        let mut at = NHMSG_LEN;
        while at < buf.len() {
            let hdr = buf
                .get(at..at + 4)
                .ok_or(NexthopError::Truncated(buf.len()))?;
            let len = u16::from_ne_bytes([hdr[0], hdr[1]]) as usize;
            let kind = u16::from_ne_bytes([hdr[2], hdr[3]]) & NLA_TYPE_MASK;
            if len < 4 {
                return Err(NexthopError::BadAttribute { kind, len });
            }
            let value = buf
                .get(at + 4..at + len)
                .ok_or(NexthopError::Truncated(buf.len()))?;
            let bad = || NexthopError::BadAttribute {
                kind,
                len: value.len(),
            };
            match kind {
                NHA_ID => {
                    let b: [u8; 4] = value.try_into().map_err(|_| bad())?;
                    msg.id = Some(u32::from_ne_bytes(b));
                }
                NHA_GATEWAY if value.len() == 4 => {
                    msg.gateway = Some(Ipv4Addr::new(value[0], value[1], value[2], value[3]));
                }
                NHA_GROUP => {
                    if value.len() % 8 != 0 {
                        return Err(bad());
                    }
                    for m in value.chunks_exact(8) {
                        let id = u32::from_ne_bytes([m[0], m[1], m[2], m[3]]);
                        let weight = (u32::from(m[5]) << 8 | u32::from(m[4])) + 1;
                        msg.group.push(GroupMember { id, weight });
                    }
                }
                NHA_FDB => msg.fdb = true,
                _ => msg.other.push((kind, value.to_vec())),
            }
            at += nla_len(value.len()).min(buf.len() - at);
        }
        Ok(msg)
    }

    /// Serialises into a fresh buffer (header + attributes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buffer_len());
        out.extend_from_slice(&[self.family, self.scope, self.protocol, 0]);
        out.extend_from_slice(&self.flags.to_ne_bytes());
        if let Some(id) = self.id {
            push_nla(&mut out, NHA_ID, &id.to_ne_bytes());
        }
        if !self.group.is_empty() {
            let mut v = Vec::with_capacity(8 * self.group.len());
            for m in &self.group {
                let w = m.weight.clamp(1, 65536) - 1;
                v.extend_from_slice(&m.id.to_ne_bytes());
                v.extend_from_slice(&[(w & 0xff) as u8, (w >> 8) as u8, 0, 0]);
            }
            push_nla(&mut out, NHA_GROUP, &v);
        }
        if let Some(gw) = self.gateway {
            push_nla(&mut out, NHA_GATEWAY, &gw.octets());
        }
        if self.fdb {
            push_nla(&mut out, NHA_FDB, &[]);
        }
        for (kind, value) in &self.other {
            push_nla(&mut out, *kind, value);
        }
        out
    }

    /// Length of [`Self::to_bytes`].
    pub fn buffer_len(&self) -> usize {
        NHMSG_LEN
            + self.id.map_or(0, |_| nla_len(4))
            + if self.group.is_empty() {
                0
            } else {
                nla_len(8 * self.group.len())
            }
            + self.gateway.map_or(0, |_| nla_len(4))
            + if self.fdb { nla_len(0) } else { 0 }
            + self
                .other
                .iter()
                .map(|(_, v)| nla_len(v.len()))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Payload (after the nlmsghdr) of an RTM_NEWNEXTHOP for
    // `ip nexthop add id 1 via 198.18.0.20 fdb`, written by hand from
    // linux/nexthop.h for little endian: family AF_INET, scope 0, proto boot
    // (3), NHA_ID 1, NHA_GATEWAY, NHA_FDB. The root tests check the same
    // parser against real kernel dumps.
    const GATEWAY_FDB: [u8; 32] = [
        0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, // nhmsg
        0x08, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, // NHA_ID 1
        0x08, 0x00, 0x06, 0x00, 198, 18, 0, 20, // NHA_GATEWAY
        0x04, 0x00, 0x0b, 0x00, // NHA_FDB
        0x08, 0x00, 0x0e, 0x00, // unknown attribute kept raw (shortened for the test)
    ];

    #[test]
    fn parse_gateway_fdb() {
        let bytes = &GATEWAY_FDB[..28];
        let m = NexthopMessage::parse(bytes).unwrap();
        assert_eq!(m.family, AF_INET);
        assert_eq!(m.protocol, 3);
        assert_eq!(m.id, Some(1));
        assert_eq!(m.gateway, Some(Ipv4Addr::new(198, 18, 0, 20)));
        assert!(m.fdb);
        assert_eq!(m.to_bytes(), bytes);
    }

    #[test]
    fn group_round_trip_and_weights() {
        let mut m = NexthopMessage::fdb_group(0x1000_1388, &[0x2000_0000, 0x2000_0001], 183);
        m.group[1].weight = 300;
        let b = m.to_bytes();
        assert_eq!(b.len(), m.buffer_len());
        let back = NexthopMessage::parse(&b).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn short_input_is_an_error() {
        assert_eq!(
            NexthopMessage::parse(&[2, 0, 3]),
            Err(NexthopError::Truncated(3))
        );
        // Attribute claims 8 bytes, only 6 present.
        assert!(NexthopMessage::parse(&GATEWAY_FDB[..14]).is_err());
        // Attribute length below its own header.
        let mut b = GATEWAY_FDB[..16].to_vec();
        b[8] = 2;
        assert!(matches!(
            NexthopMessage::parse(&b),
            Err(NexthopError::BadAttribute { .. })
        ));
        // NHA_ID of the wrong size.
        let mut b = GATEWAY_FDB[..16].to_vec();
        b[8] = 6;
        b.truncate(14);
        assert!(matches!(
            NexthopMessage::parse(&b),
            Err(NexthopError::BadAttribute { .. })
        ));
    }
}
