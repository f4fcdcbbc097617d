//! BFD inside VXLAN (OVS / hardware_vtep convention and RFC 8971) and the
//! Ethernet/IPv4/UDP views under it. The vectors were built independently in
//! Python (struct + an RFC 1071 checksum written there), not with this crate.

use bfd::packet::{Diagnostic, Repr, State};
use bfd::vxlan::{
    self, BFD_DST_MAC, LOCAL_BFD_IP, RFC8971_DST_IP, RFC8971_DST_MAC, SWITCH_BFD_IP, VxlanError,
    VxlanFlavor,
};
use bfd::wire::{UdpIpv4Repr, WireError, checksum};
use std::net::Ipv4Addr;

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

/// RFC 8971: VXLAN I flag, Management VNI 777 (0x000309) | dst
/// 00:00:5e:00:52:02 (IANA "BFD for VXLAN") src 02:00:00:00:00:0a IPv4 |
/// IPv4 DSCP CS6, len 52, DF, TTL 255, UDP, csum 0x35e4, 198.18.0.1 (the
/// sending VTEP) -> 127.0.0.1 | UDP 49152 -> 3784, len 32, csum 0xee3e | the
/// same BFD packet as [`FRAME`].
const RFC8971_FRAME: &str = "0800000000030900\
00005e005202\
02000000000a\
0800\
45c0003400004000ff1135e4c61200017f000001\
c0000ec80020ee3e\
204003180102030400000000000f4240000493e000000000";

const VTEP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const MGMT_VNI: u32 = 777;

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

/// 20,000 copies of `f`, each with one byte changed and cut at some length
/// (xorshift from `seed`, so a failure repeats).
fn mutants(f: &[u8], seed: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut x = seed;
    (0..20_000).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = f.to_vec();
        let i = (x as usize) % b.len();
        b[i] = (x >> 32) as u8;
        b.truncate(((x >> 40) as usize) % (b.len() + 1));
        b
    })
}

#[test]
fn arbitrary_mutations_never_panic() {
    for b in mutants(&hex(FRAME), 0x2545_f491_4f6c_dd1d) {
        let _ = vxlan::parse(&b);
        let _ = UdpIpv4Repr::parse(&b);
    }
}

#[test]
fn rfc8971_emit_matches_the_independent_vector() {
    let mut bfd = [0u8; 24];
    bfd_repr().emit(&mut bfd).unwrap();
    let flavor = VxlanFlavor::Rfc8971 {
        management_vni: MGMT_VNI,
    };
    let inner = flavor.inner(SRC_MAC, VTEP, 49152);
    assert_eq!(inner, vxlan::rfc8971_inner(SRC_MAC, VTEP, 49152));
    let mut buf = [0u8; 128];
    let n = vxlan::emit(flavor.vni(), &inner, &bfd, &mut buf).unwrap();
    assert_eq!(&buf[..n], &hex(RFC8971_FRAME)[..]);
    // The OVS flavor is VNI 0 with the link-local inner addresses.
    assert_eq!(VxlanFlavor::OvsVtep.vni(), 0);
    assert_eq!(
        VxlanFlavor::OvsVtep.inner(SRC_MAC, VTEP, 49152),
        vxlan::ovs_inner(SRC_MAC, 49152)
    );
}

#[test]
fn rfc8971_parse_reads_every_field() {
    let f = hex(RFC8971_FRAME);
    // VXLAN header: I flag only, reserved bits zero, 24-bit VNI.
    assert_eq!(f[0], 0x08);
    assert_eq!(&f[1..4], &[0, 0, 0]);
    assert_eq!(f[7], 0);
    let (vni, _, _) = vxlan::parse(&f).unwrap();
    assert_eq!(vni, MGMT_VNI);
    let (inner, bfd) = vxlan::parse_rfc8971(&f, MGMT_VNI).unwrap();
    assert_eq!(inner.dst_mac, RFC8971_DST_MAC);
    assert_eq!(inner.dst_mac, [0x00, 0x00, 0x5e, 0x00, 0x52, 0x02]);
    assert_eq!(inner.src_mac, SRC_MAC);
    assert_eq!(inner.src_ip, VTEP);
    assert_eq!(inner.dst_ip, RFC8971_DST_IP);
    assert!(inner.dst_ip.is_loopback());
    assert_eq!(inner.ttl, 255);
    assert_eq!((inner.src_port, inner.dst_port), (49152, 3784));
    assert_eq!(Repr::parse(bfd).unwrap(), bfd_repr());
    // Inner IPv4: version/IHL, DSCP CS6, DF, protocol UDP, checksum verifies.
    assert_eq!(&f[22..24], &[0x45, 0xc0]);
    assert_eq!(&f[28..30], &[0x40, 0x00]);
    assert_eq!(f[31], 17);
    assert_eq!(checksum(&f[22..42]), 0);
}

/// The vector re-emitted with one inner field changed (checksums recomputed,
/// so only that field is wrong).
fn rfc8971_with(vni: u32, change: impl FnOnce(&mut UdpIpv4Repr)) -> Vec<u8> {
    let mut bfd = [0u8; 24];
    bfd_repr().emit(&mut bfd).unwrap();
    let mut inner = vxlan::rfc8971_inner(SRC_MAC, VTEP, 49152);
    change(&mut inner);
    let mut buf = [0u8; 128];
    let n = vxlan::emit(vni, &inner, &bfd, &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn rfc8971_each_receive_check_has_its_own_error() {
    let parse = |f: &[u8]| vxlan::parse_rfc8971(f, MGMT_VNI).map(|(r, _)| r);
    assert!(parse(&rfc8971_with(MGMT_VNI, |_| {})).is_ok());
    // Any 127/8 destination is fine (§3.1 says "from the range 127/8").
    assert!(parse(&rfc8971_with(MGMT_VNI, |r| r.dst_ip = Ipv4Addr::new(127, 9, 8, 7))).is_ok());
    assert_eq!(
        parse(&rfc8971_with(778, |_| {})).unwrap_err(),
        VxlanError::WrongVni {
            got: 778,
            want: MGMT_VNI
        }
    );
    assert_eq!(
        parse(&rfc8971_with(0, |_| {})).unwrap_err(),
        VxlanError::WrongVni {
            got: 0,
            want: MGMT_VNI
        }
    );
    assert_eq!(
        parse(&rfc8971_with(MGMT_VNI, |r| r.dst_mac = BFD_DST_MAC)).unwrap_err(),
        VxlanError::WrongDstMac(BFD_DST_MAC)
    );
    assert_eq!(
        parse(&rfc8971_with(MGMT_VNI, |r| r.dst_ip = SWITCH_BFD_IP)).unwrap_err(),
        VxlanError::DstNotLoopback(SWITCH_BFD_IP)
    );
    assert_eq!(
        parse(&rfc8971_with(MGMT_VNI, |r| r.ttl = 254)).unwrap_err(),
        VxlanError::Ttl(254)
    );
    assert_eq!(
        parse(&rfc8971_with(MGMT_VNI, |r| r.dst_port = 4784)).unwrap_err(),
        VxlanError::NotBfd(4784)
    );
    let mut no_i = hex(RFC8971_FRAME);
    no_i[0] = 0;
    assert_eq!(parse(&no_i).unwrap_err(), VxlanError::NoVniFlag);
    let mut bad_udp = hex(RFC8971_FRAME);
    *bad_udp.last_mut().unwrap() ^= 1;
    assert_eq!(
        parse(&bad_udp).unwrap_err(),
        VxlanError::Wire(WireError::BadUdpChecksum)
    );
    // The same checks on a decapsulated inner frame, as a device link sees it.
    let flavor = VxlanFlavor::Rfc8971 {
        management_vni: MGMT_VNI,
    };
    let mut r = vxlan::rfc8971_inner(SRC_MAC, VTEP, 49152);
    assert_eq!(flavor.check_inner(&r), Ok(()));
    // TTL is GTSM, the receiver's own check (parse_rfc8971's above, the
    // manager's for a device link), in both flavours.
    r.ttl = 1;
    assert_eq!(flavor.check_inner(&r), Ok(()));
    // The OVS flavor leaves the addresses to the switch's convention: only
    // the port is checked.
    assert_eq!(VxlanFlavor::OvsVtep.check_inner(&r), Ok(()));
    r.dst_port = 9;
    assert_eq!(
        VxlanFlavor::OvsVtep.check_inner(&r),
        Err(VxlanError::NotBfd(9))
    );
}

#[test]
fn rfc8971_truncations_and_mutations_never_panic() {
    let f = hex(RFC8971_FRAME);
    for cut in 0..f.len() {
        assert!(
            vxlan::parse_rfc8971(&f[..cut], MGMT_VNI).is_err(),
            "prefix {cut}"
        );
    }
    for b in mutants(&f, 0x9e37_79b9_7f4a_7c15) {
        let _ = vxlan::parse_rfc8971(&b, MGMT_VNI);
    }
}
