//! The netlink message type of our rtnetlink connection: everything
//! netlink-packet-route models, plus nexthop messages it does not.

use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{
    DecodeError, Emitable, NetlinkDeserializable, NetlinkHeader, NetlinkSerializable,
};

use crate::nexthop::{NexthopMessage, RTM_DELNEXTHOP, RTM_GETNEXTHOP, RTM_NEWNEXTHOP};

/// One rtnetlink message as sent or received on our connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelMessage {
    /// Links, neighbours/FDB, addresses, ...: netlink-packet-route's types.
    Route(RouteNetlinkMessage),
    /// `RTM_NEWNEXTHOP`.
    NewNexthop(NexthopMessage),
    /// `RTM_DELNEXTHOP`.
    DelNexthop(NexthopMessage),
    /// `RTM_GETNEXTHOP`.
    GetNexthop(NexthopMessage),
    /// A type neither models; kept so a notification never kills the connection.
    Unknown {
        /// `nlmsg_type`.
        kind: u16,
        /// Payload bytes.
        payload: Vec<u8>,
    },
}

impl NetlinkSerializable for KernelMessage {
    fn message_type(&self) -> u16 {
        match self {
            KernelMessage::Route(m) => m.message_type(),
            KernelMessage::NewNexthop(_) => RTM_NEWNEXTHOP,
            KernelMessage::DelNexthop(_) => RTM_DELNEXTHOP,
            KernelMessage::GetNexthop(_) => RTM_GETNEXTHOP,
            KernelMessage::Unknown { kind, .. } => *kind,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            KernelMessage::Route(m) => Emitable::buffer_len(m),
            KernelMessage::NewNexthop(m)
            | KernelMessage::DelNexthop(m)
            | KernelMessage::GetNexthop(m) => m.buffer_len(),
            KernelMessage::Unknown { payload, .. } => payload.len(),
        }
    }

    fn serialize(&self, buffer: &mut [u8]) {
        match self {
            KernelMessage::Route(m) => m.emit(buffer),
            KernelMessage::NewNexthop(m)
            | KernelMessage::DelNexthop(m)
            | KernelMessage::GetNexthop(m) => {
                let bytes = m.to_bytes();
                buffer[..bytes.len()].copy_from_slice(&bytes);
            }
            KernelMessage::Unknown { payload, .. } => {
                buffer[..payload.len()].copy_from_slice(payload)
            }
        }
    }
}

impl NetlinkDeserializable for KernelMessage {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        let nh = |p: &[u8]| NexthopMessage::parse(p).map_err(|e| DecodeError::from(e.to_string()));
        Ok(match header.message_type {
            RTM_NEWNEXTHOP => KernelMessage::NewNexthop(nh(payload)?),
            RTM_DELNEXTHOP => KernelMessage::DelNexthop(nh(payload)?),
            RTM_GETNEXTHOP => KernelMessage::GetNexthop(nh(payload)?),
            kind => match RouteNetlinkMessage::deserialize(header, payload) {
                Ok(m) => KernelMessage::Route(m),
                Err(e) => {
                    // Notifications only wake the loop up, so keep the connection alive;
                    // a dump entry lost this way shows up as a failing action instead.
                    tracing::debug!(kind, error = %e, "undecodable rtnetlink message kept raw");
                    KernelMessage::Unknown {
                        kind,
                        payload: payload.to_vec(),
                    }
                }
            },
        })
    }
}
