//! BFD inside VXLAN (OVS / hardware_vtep convention) and the Ethernet/IPv4/UDP
//! views under it. The vector was built independently in Python (struct +
//! an RFC 1071 checksum written there), not with this crate.

use bfd::packet::{Diagnostic, Repr, State};
use bfd::vxlan::{self, BFD_DST_MAC, LOCAL_BFD_IP, SWITCH_BFD_IP, VxlanError};
use bfd::wire::{UdpIpv4Repr, WireError, checksum};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// VXLAN I flag, VNI 0 | dst 00:23:20:00:00:01 src 02:00:00:00:00:0a IPv4 |
/// IPv4 DSCP CS6, len 52, DF, TTL 255, UDP, csum 0x24fb, 169.254.1.0 -> 169.254.1.1 |
/// UDP 49152 -> 3784, len 32, csum 0xdd55 | BFD Down, mult 3, My 0x01020304,
/// Your 0, TX 1 s, RX 300 ms.
const FRAME: &str = "0800000000000000\
002320000001\
02000000000a\
0800\
45c0003400004000ff1124fba9fe0100a9fe0101\
c0000ec80020dd55\
204003180102030400000000000f4240000493e000000000";

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

fn bfd_repr() -> Repr {
    Repr {
        diag: Diagnostic::None,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x0102_0304,
        your_discriminator: 0,
        desired_min_tx: 1_000_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
        auth: None,
    }
}

#[test]
fn emit_matches_the_independent_vector() {
    let mut bfd = [0u8; 24];
    bfd_repr().emit(&mut bfd).unwrap();
    let inner = vxlan::ovs_inner(SRC_MAC, 49152);
    let mut buf = [0u8; 128];
    let n = vxlan::emit(vxlan::BFD_VNI, &inner, &bfd, &mut buf).unwrap();
    assert_eq!(n, vxlan::buffer_len(24));
    assert_eq!(&buf[..n], &hex(FRAME)[..]);
    assert_eq!(vxlan::emit(0, &inner, &bfd, &mut [0u8; 65]), None);
}

#[test]
fn parse_reads_every_header_field() {
    let f = hex(FRAME);
    let (vni, inner, bfd) = vxlan::parse(&f).unwrap();
    assert_eq!(vni, 0);
    assert_eq!(inner.dst_mac, BFD_DST_MAC);
    assert_eq!(inner.src_mac, SRC_MAC);
    assert_eq!((inner.src_ip, inner.dst_ip), (LOCAL_BFD_IP, SWITCH_BFD_IP));
    assert_eq!(inner.ttl, 255);
    assert_eq!((inner.src_port, inner.dst_port), (49152, 3784));
    assert_eq!(Repr::parse(bfd).unwrap(), bfd_repr());
}

#[test]
fn vni_is_24_bits_big_endian() {
    let mut bfd = [0u8; 24];
    bfd_repr().emit(&mut bfd).unwrap();
    let mut buf = [0u8; 128];
    let n = vxlan::emit(
        0x00ab_cdef,
        &vxlan::ovs_inner(SRC_MAC, 50000),
        &bfd,
        &mut buf,
    )
    .unwrap();
    assert_eq!(&buf[4..8], &[0xab, 0xcd, 0xef, 0x00]);
    assert_eq!(vxlan::parse(&buf[..n]).unwrap().0, 0x00ab_cdef);
}

#[test]
fn checksums_are_checked() {
    let f = hex(FRAME);
    // The IPv4 header of the vector sums to zero with its checksum in place.
    assert_eq!(checksum(&f[22..42]), 0);
    let mut bad_ip = f.clone();
    bad_ip[30] ^= 1; // TTL
    assert_eq!(
        vxlan::parse(&bad_ip).unwrap_err(),
        VxlanError::Wire(WireError::BadIpChecksum)
    );
    let mut bad_udp = f.clone();
    bad_udp[f.len() - 1] ^= 1; // last BFD byte
    assert_eq!(
        vxlan::parse(&bad_udp).unwrap_err(),
        VxlanError::Wire(WireError::BadUdpChecksum)
    );
    // A zero UDP checksum means "none" on IPv4 (RFC 768) and is accepted.
    let mut zero = f.clone();
    zero[48..50].fill(0);
    assert!(vxlan::parse(&zero).is_ok());
}

#[test]
fn structural_errors() {
    let f = hex(FRAME);
    let with = |i: usize, v: u8| {
        let mut b = f.clone();
        b[i] = v;
        vxlan::parse(&b).unwrap_err()
    };
    assert_eq!(with(0, 0), VxlanError::NoVniFlag);
    assert_eq!(with(20, 0x86), VxlanError::Wire(WireError::NotIpv4(0x8600)));
    assert_eq!(
        with(22, 0x65),
        VxlanError::Wire(WireError::BadIpHeader(0x65))
    );
    // Protocol and port changes also break the checksums, so fix those up.
    let mut tcp = f.clone();
    tcp[31] = 6;
    tcp[32..34].fill(0);
    let c = checksum(&tcp[22..42]);
    tcp[32..34].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        vxlan::parse(&tcp).unwrap_err(),
        VxlanError::Wire(WireError::NotUdp(6))
    );
    let mut port = f.clone();
    port[44..46].copy_from_slice(&4784u16.to_be_bytes());
    port[48..50].fill(0);
    assert_eq!(vxlan::parse(&port).unwrap_err(), VxlanError::NotBfd(4784));
    let mut frag = f.clone();
    frag[28] = 0x20; // More Fragments
    frag[32..34].fill(0);
    let c = checksum(&frag[22..42]);
    frag[32..34].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        vxlan::parse(&frag).unwrap_err(),
        VxlanError::Wire(WireError::Fragment)
    );
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let f = hex(FRAME);
    for cut in 0..f.len() {
        assert!(vxlan::parse(&f[..cut]).is_err(), "prefix {cut}");
    }
}

#[test]
fn ethernet_padding_after_ip_is_ignored() {
    let mut f = hex(FRAME);
    f.extend_from_slice(&[0; 8]);
    let (_, _, bfd) = vxlan::parse(&f).unwrap();
    assert_eq!(bfd.len(), 24);
}

#[test]
fn ipv4_options_are_skipped() {
    // Rebuild the inner frame with IHL 6 (one NOP-padded option word).
    let f = hex(FRAME);
    let inner = &f[8..];
    let mut g = inner[..14].to_vec();
    let mut ip = inner[14..34].to_vec();
    ip[0] = 0x46;
    let total = u16::from_be_bytes([ip[2], ip[3]]) + 4;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[1, 1, 1, 0]);
    ip[10..12].fill(0);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    g.extend_from_slice(&ip);
    g.extend_from_slice(&inner[34..]);
    let (repr, bfd) = UdpIpv4Repr::parse(&g).unwrap();
    assert_eq!(repr.dst_port, 3784);
    assert_eq!(Repr::parse(bfd).unwrap(), bfd_repr());
}

#[test]
fn arbitrary_mutations_never_panic() {
    let f = hex(FRAME);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = f.clone();
        let i = (x as usize) % b.len();
        b[i] = (x >> 32) as u8;
        b.truncate(((x >> 40) as usize) % (b.len() + 1));
        let _ = vxlan::parse(&b);
        let _ = UdpIpv4Repr::parse(&b);
    }
}
