//! Minimal Ethernet II, IPv4 and UDP checked views: just what building and
//! parsing a BFD frame carried inside VXLAN needs (see [`crate::vxlan`]).
//! Sockets handle these headers for plain UDP BFD; inside VXLAN we own them.

use std::net::Ipv4Addr;
use thiserror::Error;

/// Ethernet II header length (no 802.1Q tag).
pub const ETHERNET_LEN: usize = 14;
/// IPv4 header length without options.
pub const IPV4_LEN: usize = 20;
/// UDP header length.
pub const UDP_LEN: usize = 8;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// Why a frame could not be read as Ethernet/IPv4/UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    /// Shorter than the header it must hold.
    #[error("truncated {what}: {len} bytes")]
    Truncated {
        /// Which header.
        what: &'static str,
        /// Bytes available.
        len: usize,
    },
    /// EtherType is not IPv4.
    #[error("ethertype {0:#06x} is not IPv4")]
    NotIpv4(u16),
    /// IPv4 version or header length field invalid.
    #[error("bad IPv4 version/IHL byte {0:#04x}")]
    BadIpHeader(u8),
    /// IPv4 total length disagrees with the buffer.
    #[error("IPv4 total length {total} does not fit {len} bytes")]
    BadIpLength {
        /// Total Length field.
        total: u16,
        /// Bytes after the Ethernet header.
        len: usize,
    },
    /// IPv4 header checksum wrong.
    #[error("bad IPv4 header checksum")]
    BadIpChecksum,
    /// A fragment: BFD never needs fragmenting, so we do not reassemble.
    #[error("IPv4 fragment")]
    Fragment,
    /// Not UDP.
    #[error("IP protocol {0} is not UDP")]
    NotUdp(u8),
    /// UDP length disagrees with the IP payload.
    #[error("UDP length {udp} does not fit {len} bytes")]
    BadUdpLength {
        /// Length field.
        udp: u16,
        /// IP payload bytes.
        len: usize,
    },
    /// UDP checksum nonzero and wrong (zero means "none" on IPv4, RFC 768).
    #[error("bad UDP checksum")]
    BadUdpChecksum,
}

/// Internet checksum (RFC 1071) accumulation over `data`, unfolded.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The RFC 1071 checksum of `data` (a header with its checksum field zeroed
/// yields the value to store; a header with it filled yields 0 when valid).
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum16(0, data))
}

/// The IPv4 pseudo-header's share of a UDP checksum (RFC 768), unfolded.
fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, udp_len: usize) -> u32 {
    sum16(sum16(0, &src.octets()), &dst.octets()) + u32::from(PROTO_UDP) + udp_len as u32
}

/// UDP checksum over the IPv4 pseudo-header and the UDP segment (RFC 768);
/// a computed 0 is sent as 0xffff because 0 means "no checksum".
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    let c = fold(sum16(pseudo_header_sum(src, dst, segment.len()), segment));
    if c == 0 { 0xffff } else { c }
}

/// Ethernet II header view.
///
/// ```text
/// | destination MAC (6) | source MAC (6) | EtherType (2) | payload ...
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps after checking the header fits.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let len = buffer.as_ref().len();
        if len < ETHERNET_LEN {
            return Err(WireError::Truncated {
                what: "ethernet",
                len,
            });
        }
        Ok(EthernetFrame { buffer })
    }
    /// Destination MAC.
    pub fn dst(&self) -> [u8; 6] {
        self.buffer.as_ref()[0..6].try_into().unwrap_or_default()
    }
    /// Source MAC.
    pub fn src(&self) -> [u8; 6] {
        self.buffer.as_ref()[6..12].try_into().unwrap_or_default()
    }
    /// EtherType.
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[12], b[13]])
    }
    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[ETHERNET_LEN..]
    }
}

/// IPv4 header view (RFC 791).
///
/// ```text
///  0                   1                   2                   3
/// |Version|  IHL  |Type of Service|          Total Length         |
/// |         Identification        |Flags|      Fragment Offset    |
/// |  Time to Live |    Protocol   |         Header Checksum       |
/// |                       Source Address                          |
/// |                    Destination Address                        |
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps after checking version, IHL, total length, checksum and fragmenting.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < IPV4_LEN {
            return Err(WireError::Truncated {
                what: "ipv4",
                len: b.len(),
            });
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if b[0] >> 4 != 4 || ihl < IPV4_LEN || ihl > b.len() {
            return Err(WireError::BadIpHeader(b[0]));
        }
        let total = u16::from_be_bytes([b[2], b[3]]);
        if usize::from(total) < ihl || usize::from(total) > b.len() {
            return Err(WireError::BadIpLength {
                total,
                len: b.len(),
            });
        }
        if checksum(&b[..ihl]) != 0 {
            return Err(WireError::BadIpChecksum);
        }
        // More Fragments set, or a nonzero offset.
        if u16::from_be_bytes([b[6], b[7]]) & 0x3fff != 0 {
            return Err(WireError::Fragment);
        }
        Ok(Ipv4Packet { buffer })
    }
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0f) * 4
    }
    /// Total Length.
    pub fn total_len(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }
    /// Time to Live: GTSM (RFC 5082, RFC 5881 §5) checks it is 255.
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }
    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    /// The payload the Total Length covers (trailing Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..usize::from(self.total_len())]
    }
}

/// UDP header view (RFC 768).
///
/// ```text
/// |          Source Port          |       Destination Port        |
/// |            Length             |           Checksum            |
/// ```
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps after checking the Length field against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < UDP_LEN {
            return Err(WireError::Truncated {
                what: "udp",
                len: b.len(),
            });
        }
        let udp = u16::from_be_bytes([b[4], b[5]]);
        if usize::from(udp) < UDP_LEN || usize::from(udp) > b.len() {
            return Err(WireError::BadUdpLength { udp, len: b.len() });
        }
        Ok(UdpPacket { buffer })
    }
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[0], self.b()[1]])
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }
    /// Length (header plus payload).
    pub fn len(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }
    /// Never true for a checked packet (the header alone is 8 bytes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }
    /// Checks the checksum against the pseudo-header; 0 means none (IPv4 only).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Result<(), WireError> {
        if self.checksum() == 0 {
            return Ok(());
        }
        let seg = &self.b()[..usize::from(self.len())];
        if fold(sum16(pseudo_header_sum(src, dst, seg.len()), seg)) == 0 {
            Ok(())
        } else {
            Err(WireError::BadUdpChecksum)
        }
    }
    /// The payload the Length field covers.
    pub fn payload(&self) -> &[u8] {
        &self.b()[UDP_LEN..usize::from(self.len())]
    }
}

/// Addresses and ports of an Ethernet/IPv4/UDP datagram, for building one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpIpv4Repr {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source IPv4 address.
    pub src_ip: Ipv4Addr,
    /// Destination IPv4 address.
    pub dst_ip: Ipv4Addr,
    /// Time to Live.
    pub ttl: u8,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
}

impl UdpIpv4Repr {
    /// Frame length for a payload of `payload_len` bytes.
    pub fn buffer_len(payload_len: usize) -> usize {
        ETHERNET_LEN + IPV4_LEN + UDP_LEN + payload_len
    }

    /// Writes Ethernet, IPv4 (DF set, ID 0, checksummed) and UDP (checksummed
    /// when `udp_checksum` is true, else 0) headers and the payload. Returns
    /// the frame length, or `None` if `buf` is short or the payload too large.
    pub fn emit(&self, payload: &[u8], udp_checksum_on: bool, buf: &mut [u8]) -> Option<usize> {
        let len = Self::buffer_len(payload.len());
        let ip_total = u16::try_from(IPV4_LEN + UDP_LEN + payload.len()).ok()?;
        let buf = buf.get_mut(..len)?;
        buf[0..6].copy_from_slice(&self.dst_mac);
        buf[6..12].copy_from_slice(&self.src_mac);
        buf[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut buf[ETHERNET_LEN..ETHERNET_LEN + IPV4_LEN];
        ip[0] = 0x45;
        ip[1] = 0xc0; // DSCP CS6, network control, as RFC 5881 BFD traffic usually is
        ip[2..4].copy_from_slice(&ip_total.to_be_bytes());
        ip[4..6].copy_from_slice(&[0, 0]);
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
        ip[8] = self.ttl;
        ip[9] = PROTO_UDP;
        ip[10..12].copy_from_slice(&[0, 0]);
        ip[12..16].copy_from_slice(&self.src_ip.octets());
        ip[16..20].copy_from_slice(&self.dst_ip.octets());
        let c = checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let udp_start = ETHERNET_LEN + IPV4_LEN;
        let udp_len = (UDP_LEN + payload.len()) as u16;
        let udp = &mut buf[udp_start..];
        udp[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        udp[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        udp[6..8].copy_from_slice(&[0, 0]);
        udp[UDP_LEN..].copy_from_slice(payload);
        if udp_checksum_on {
            let c = udp_checksum(self.src_ip, self.dst_ip, udp);
            udp[6..8].copy_from_slice(&c.to_be_bytes());
        }
        Some(len)
    }

    /// Reads an Ethernet/IPv4/UDP frame, checking both checksums; returns the
    /// headers and the UDP payload.
    pub fn parse(frame: &[u8]) -> Result<(UdpIpv4Repr, &[u8]), WireError> {
        let eth = EthernetFrame::new_checked(frame)?;
        if eth.ethertype() != ETHERTYPE_IPV4 {
            return Err(WireError::NotIpv4(eth.ethertype()));
        }
        let ip = Ipv4Packet::new_checked(&frame[ETHERNET_LEN..])?;
        if ip.protocol() != PROTO_UDP {
            return Err(WireError::NotUdp(ip.protocol()));
        }
        let udp = UdpPacket::new_checked(ip.payload())?;
        udp.verify_checksum(ip.src(), ip.dst())?;
        let repr = UdpIpv4Repr {
            src_mac: eth.src(),
            dst_mac: eth.dst(),
            src_ip: ip.src(),
            dst_ip: ip.dst(),
            ttl: ip.ttl(),
            src_port: udp.src_port(),
            dst_port: udp.dst_port(),
        };
        let start = ETHERNET_LEN + ip.header_len() + UDP_LEN;
        Ok((
            repr,
            &frame[start..start + usize::from(udp.len()) - UDP_LEN],
        ))
    }
}
