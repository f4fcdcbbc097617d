//! BFD inside VXLAN in the Open vSwitch / hardware_vtep convention: the BFD
//! Control packet rides in a complete inner Ethernet/IPv4/UDP frame in VNI 0
//! with link-local addresses. A switch (OVS, ovs-vtep) owns 169.254.1.1: it
//! sends from it, to `bfd_config_remote:bfd_dst_ip` at MAC
//! `bfd_config_remote:bfd_dst_mac`, and accepts BFD addressed to 169.254.1.1
//! at MAC 00:23:20:00:00:01 (`bfd_config_local`). The far end, us, is
//! 169.254.1.0 (the controller writes `bfd_dst_ip=169.254.1.0`), so the switch
//! sends 169.254.1.1 -> 169.254.1.0 and we send 169.254.1.0 -> 169.254.1.1.
//! (Observed with OVS 3.1 on this project's lab; see PEERS.md.)
//!
//! The outer UDP/4789 datagram is the socket's business; this module builds
//! and parses its payload: the VXLAN header (RFC 7348) and the inner frame.

use crate::wire::{UdpIpv4Repr, WireError};
use std::net::Ipv4Addr;
use thiserror::Error;

/// IANA VXLAN port (RFC 7348 §5).
pub const VXLAN_PORT: u16 = 4789;
/// VXLAN header length.
pub const VXLAN_HEADER_LEN: usize = 8;
/// BFD single-hop control port (RFC 5881 §4), also used inside VXLAN.
pub const BFD_CONTROL_PORT: u16 = 3784;
/// BFD multihop control port (RFC 5883 §5).
pub const BFD_MULTIHOP_PORT: u16 = 4784;
/// The MAC a switch accepts BFD at (vtep(5) `bfd_config_local:bfd_dst_mac`
/// default), our inner destination MAC.
pub const BFD_DST_MAC: [u8; 6] = [0x00, 0x23, 0x20, 0x00, 0x00, 0x01];
/// The switch's own BFD address: its inner source and the destination it accepts.
pub const SWITCH_BFD_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// Our BFD address (vtep(5) `bfd_config_local:bfd_dst_ip` default): our inner
/// source, and where we have the switch send.
pub const LOCAL_BFD_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 0);
/// The VNI BFD travels in.
pub const BFD_VNI: u32 = 0;

const FLAG_I: u8 = 0x08;

/// Why a VXLAN payload is not a BFD frame we can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum VxlanError {
    /// Shorter than the VXLAN header.
    #[error("truncated VXLAN header: {0} bytes")]
    Truncated(usize),
    /// RFC 7348: the I flag must be set for a valid VNI.
    #[error("VXLAN I flag clear")]
    NoVniFlag,
    /// The inner frame is not Ethernet/IPv4/UDP or fails a checksum.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Inner UDP destination port is not BFD's.
    #[error("inner UDP port {0} is not BFD")]
    NotBfd(u16),
}

/// VXLAN header view (RFC 7348 §5).
///
/// ```text
/// |R|R|R|R|I|R|R|R|            Reserved                           |
/// |                VXLAN Network Identifier (VNI) |   Reserved    |
/// ```
#[derive(Debug, Clone, Copy)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    /// Wraps after checking length and the I flag.
    pub fn new_checked(buffer: T) -> Result<Self, VxlanError> {
        let b = buffer.as_ref();
        if b.len() < VXLAN_HEADER_LEN {
            return Err(VxlanError::Truncated(b.len()));
        }
        if b[0] & FLAG_I == 0 {
            return Err(VxlanError::NoVniFlag);
        }
        Ok(VxlanHeader { buffer })
    }
    /// VNI.
    pub fn vni(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[4], b[5], b[6]])
    }
    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[VXLAN_HEADER_LEN..]
    }
}

/// Headers of the inner frame we send to a switch in the OVS convention,
/// from `src_mac` and a per-session source port (RFC 5881 §4: 49152–65535),
/// TTL 255 (GTSM): 169.254.1.0 -> 169.254.1.1 at 00:23:20:00:00:01.
pub fn ovs_inner(src_mac: [u8; 6], src_port: u16) -> UdpIpv4Repr {
    UdpIpv4Repr {
        src_mac,
        dst_mac: BFD_DST_MAC,
        src_ip: LOCAL_BFD_IP,
        dst_ip: SWITCH_BFD_IP,
        ttl: 255,
        src_port,
        dst_port: BFD_CONTROL_PORT,
    }
}

/// Bytes [`emit`] writes for a BFD packet of `bfd_len` bytes.
pub fn buffer_len(bfd_len: usize) -> usize {
    VXLAN_HEADER_LEN + UdpIpv4Repr::buffer_len(bfd_len)
}

/// Writes the outer UDP payload: VXLAN header with `vni`, then the inner
/// frame around the (already emitted and signed) BFD packet `bfd`. The inner
/// UDP checksum is computed. Returns the length, or `None` if `buf` is short.
pub fn emit(vni: u32, inner: &UdpIpv4Repr, bfd: &[u8], buf: &mut [u8]) -> Option<usize> {
    let len = buffer_len(bfd.len());
    let buf = buf.get_mut(..len)?;
    buf[0] = FLAG_I;
    buf[1..4].fill(0);
    buf[4..7].copy_from_slice(&vni.to_be_bytes()[1..]);
    buf[7] = 0;
    inner.emit(bfd, true, &mut buf[VXLAN_HEADER_LEN..])?;
    Some(len)
}

/// Reads an outer UDP payload: VNI, inner headers and the BFD bytes (still to
/// be parsed with [`crate::packet::Repr::parse`]). Checks the inner IPv4 and
/// UDP checksums and that the inner destination port is 3784; the caller
/// checks VNI, MAC and TTL against its configuration.
pub fn parse(payload: &[u8]) -> Result<(u32, UdpIpv4Repr, &[u8]), VxlanError> {
    let vx = VxlanHeader::new_checked(payload)?;
    let (inner, bfd) = UdpIpv4Repr::parse(&payload[VXLAN_HEADER_LEN..])?;
    if inner.dst_port != BFD_CONTROL_PORT {
        return Err(VxlanError::NotBfd(inner.dst_port));
    }
    Ok((vx.vni(), inner, bfd))
}
