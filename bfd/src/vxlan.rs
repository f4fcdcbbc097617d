//! BFD inside VXLAN, in two flavours ([`VxlanFlavor`]). Both carry the BFD
//! Control packet in a complete inner Ethernet/IPv4/UDP frame to port 3784
//! with TTL 255; they differ in the VNI and the inner addresses.
//!
//! RFC 8971 (BFD for VXLAN): a configured Management VNI that carries no
//! tenant traffic (§3); inner destination MAC 00-00-5E-00-52-02, the IANA
//! "BFD for VXLAN" address (§7; §3.1's "00-52-02" as corrected by erratum
//! 6427); inner source MAC and IP the sending VTEP's own; inner destination
//! IP from 127/8 (we use 127.0.0.1), so the frame can never be routed on if
//! it escapes decapsulation. On receipt (§4) the frame must be in the
//! Management VNI and the inner UDP port and TTL (GTSM, RFC 5881 §5) must
//! be validated; [`parse_rfc8971`] checks those, the MAC and the 127/8
//! destination, each failure its own [`VxlanError`].
//!
//! The Open vSwitch / hardware_vtep convention uses VNI 0 and link-local
//! addresses. A switch (OVS, ovs-vtep) owns 169.254.1.1: it
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
/// The VNI BFD travels in (OVS convention).
pub const BFD_VNI: u32 = 0;
/// RFC 8971 inner destination MAC: IANA's "BFD for VXLAN" unicast address.
pub const RFC8971_DST_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x52, 0x02];
/// RFC 8971 inner destination IP: §3.1 takes it from 127/8.
pub const RFC8971_DST_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

/// Which BFD-in-VXLAN convention a link speaks: a property of the device,
/// not of the session (the manager sees one `Encap::Vxlan` either way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum VxlanFlavor {
    /// Open vSwitch / hardware_vtep: VNI 0, 169.254.1.0 -> 169.254.1.1.
    #[default]
    OvsVtep,
    /// RFC 8971: the Management VNI, VTEP address -> 127.0.0.1.
    Rfc8971 {
        /// The Management VNI (1..=16777215, not used by any tenant).
        management_vni: u32,
    },
}

impl VxlanFlavor {
    /// The VNI BFD travels in.
    pub fn vni(self) -> u32 {
        match self {
            VxlanFlavor::OvsVtep => BFD_VNI,
            VxlanFlavor::Rfc8971 { management_vni } => management_vni,
        }
    }

    /// The inner destination MAC of the frames we send.
    pub fn dst_mac(self) -> [u8; 6] {
        match self {
            VxlanFlavor::OvsVtep => BFD_DST_MAC,
            VxlanFlavor::Rfc8971 { .. } => RFC8971_DST_MAC,
        }
    }

    /// Inner headers of a frame we send from `src_mac` (our device) and
    /// `vtep_ip` (our underlay address; only RFC 8971 carries it) with the
    /// session's fixed source port.
    pub fn inner(self, src_mac: [u8; 6], vtep_ip: Ipv4Addr, src_port: u16) -> UdpIpv4Repr {
        match self {
            VxlanFlavor::OvsVtep => ovs_inner(src_mac, src_port),
            VxlanFlavor::Rfc8971 { .. } => rfc8971_inner(src_mac, vtep_ip, src_port),
        }
    }

    /// Receive checks on the inner headers of a decapsulated frame, but for
    /// the TTL (GTSM, the receiver's own check: the manager's for a device
    /// link, [`parse_rfc8971`]'s for a whole frame). OVS: the UDP port only.
    /// RFC 8971 §4: the UDP port, the IANA MAC and a 127/8 destination.
    pub fn check_inner(self, inner: &UdpIpv4Repr) -> Result<(), VxlanError> {
        if inner.dst_port != BFD_CONTROL_PORT {
            return Err(VxlanError::NotBfd(inner.dst_port));
        }
        if let VxlanFlavor::Rfc8971 { .. } = self {
            if inner.dst_mac != RFC8971_DST_MAC {
                return Err(VxlanError::WrongDstMac(inner.dst_mac));
            }
            if !inner.dst_ip.is_loopback() {
                return Err(VxlanError::DstNotLoopback(inner.dst_ip));
            }
        }
        Ok(())
    }
}

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
    /// RFC 8971 §4: not the Management VNI.
    #[error("VNI {got} is not the management VNI {want}")]
    WrongVni {
        /// VNI received.
        got: u32,
        /// The configured Management VNI.
        want: u32,
    },
    /// RFC 8971: inner destination MAC is not 00-00-5E-00-52-02.
    #[error("inner destination MAC {0:02x?} is not BFD for VXLAN's")]
    WrongDstMac([u8; 6]),
    /// RFC 8971 §3.1: inner destination IP outside 127/8.
    #[error("inner destination {0} is not in 127/8")]
    DstNotLoopback(Ipv4Addr),
    /// RFC 8971 §4 with RFC 5881 §5 (GTSM): inner TTL not 255.
    #[error("inner TTL {0} is not 255")]
    Ttl(u8),
    /// The inner UDP payload is longer than any BFD Control packet.
    #[error("inner payload of {0} bytes is longer than a BFD packet")]
    Oversized(usize),
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

/// Headers of an RFC 8971 inner frame (§3.1): our device MAC to
/// 00-00-5E-00-52-02, our VTEP address `vtep_ip` to 127.0.0.1, TTL 255, the
/// session's source port (RFC 5881 §4) to 3784.
pub fn rfc8971_inner(src_mac: [u8; 6], vtep_ip: Ipv4Addr, src_port: u16) -> UdpIpv4Repr {
    UdpIpv4Repr {
        src_mac,
        dst_mac: RFC8971_DST_MAC,
        src_ip: vtep_ip,
        dst_ip: RFC8971_DST_IP,
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

/// Reads an outer UDP payload as RFC 8971 BFD (§4): [`parse`], then
/// `management_vni`, the checks of [`VxlanFlavor::check_inner`] and TTL 255.
/// Returns the inner headers and the BFD bytes.
pub fn parse_rfc8971(
    payload: &[u8],
    management_vni: u32,
) -> Result<(UdpIpv4Repr, &[u8]), VxlanError> {
    let (vni, inner, bfd) = parse(payload)?;
    if vni != management_vni {
        return Err(VxlanError::WrongVni {
            got: vni,
            want: management_vni,
        });
    }
    VxlanFlavor::Rfc8971 { management_vni }.check_inner(&inner)?;
    if inner.ttl != 255 {
        return Err(VxlanError::Ttl(inner.ttl));
    }
    Ok((inner, bfd))
}
