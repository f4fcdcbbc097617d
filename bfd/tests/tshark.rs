//! Wireshark's dissector as an independent reader of what we emit: every
//! frame must decode as BFD with the fields we wrote and no malformed-packet
//! or error expert info. Needs the `tshark` binary (a real peer tool), so it
//! runs under the `root-tests` feature like the project's other peer tests.
#![cfg(feature = "root-tests")]

mod common;

use bfd::auth::{self, AuthKey, AuthType};
use bfd::packet::{Diagnostic, Repr, State};
use bfd::vxlan;
use bfd::wire::UdpIpv4Repr;
use common::tshark_fields;
use std::net::Ipv4Addr;

fn bfd_bytes(auth: Option<&AuthKey>, state: State, my: u32) -> Vec<u8> {
    let r = Repr {
        diag: Diagnostic::ControlDetectionTimeExpired,
        state,
        poll: true,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: my,
        your_discriminator: 0x0a0b_0c0d,
        desired_min_tx: 300_000,
        required_min_rx: 250_000,
        required_min_echo_rx: 0,
        auth: auth.map(|k| k.section(41)),
    };
    let mut buf = [0u8; 64];
    let n = r.emit(&mut buf).unwrap();
    if let Some(k) = auth {
        auth::sign(&mut buf[..n], k).unwrap();
    }
    buf[..n].to_vec()
}

fn underlay(src_port: u16, dst_port: u16) -> UdpIpv4Repr {
    UdpIpv4Repr {
        src_mac: [0x02, 0, 0, 0, 0, 1],
        dst_mac: [0x02, 0, 0, 0, 0, 2],
        src_ip: Ipv4Addr::new(198, 18, 0, 1),
        dst_ip: Ipv4Addr::new(198, 18, 0, 2),
        ttl: 255,
        src_port,
        dst_port,
    }
}

fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    // Classic pcap global header: magic, v2.4, zone 0, sigfigs 0, snaplen, LINKTYPE_ETHERNET.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

#[test]
fn tshark_decodes_every_frame_we_build() {
    let keys = [
        None,
        Some(AuthKey::new(AuthType::SimplePassword, 1, b"secret").unwrap()),
        Some(AuthKey::new(AuthType::KeyedMd5, 2, b"md5-key").unwrap()),
        Some(AuthKey::new(AuthType::MeticulousKeyedSha1, 3, b"sha1-key").unwrap()),
    ];
    let mut frames = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        // Single hop (RFC 5881, port 3784) and multihop (RFC 5883, port 4784).
        for port in [vxlan::BFD_CONTROL_PORT, vxlan::BFD_MULTIHOP_PORT] {
            let bfd = bfd_bytes(k.as_ref(), State::Up, 0x100 + i as u32);
            let mut buf = vec![0u8; 256];
            let n = underlay(49152 + i as u16, port)
                .emit(&bfd, true, &mut buf)
                .unwrap();
            frames.push(buf[..n].to_vec());
        }
    }
    // BFD inside VXLAN (OVS convention), carried in an underlay UDP/4789 datagram.
    let bfd = bfd_bytes(None, State::Down, 0x200);
    let mut inner = vec![0u8; 256];
    let n = vxlan::emit(
        0,
        &vxlan::ovs_inner([0x02, 0, 0, 0, 0, 9], 50000),
        &bfd,
        &mut inner,
    )
    .unwrap();
    let mut buf = vec![0u8; 512];
    let m = underlay(50001, vxlan::VXLAN_PORT)
        .emit(&inner[..n], true, &mut buf)
        .unwrap();
    frames.push(buf[..m].to_vec());
    // RFC 8971 in Management VNI 777: VTEP address -> 127.0.0.1 at the IANA MAC.
    let n = vxlan::emit(
        777,
        &vxlan::rfc8971_inner([0x02, 0, 0, 0, 0, 9], Ipv4Addr::new(198, 18, 0, 1), 50002),
        &bfd,
        &mut inner,
    )
    .unwrap();
    let m = underlay(50003, vxlan::VXLAN_PORT)
        .emit(&inner[..n], true, &mut buf)
        .unwrap();
    frames.push(buf[..m].to_vec());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bfd.pcap");
    std::fs::write(&path, pcap(&frames)).unwrap();
    let text = tshark_fields(
        &path,
        &common::TSHARK_CHECKED_BFD,
        &[
            "bfd.version",
            "bfd.sta",
            "bfd.my_discriminator",
            "bfd.your_discriminator",
            "bfd.desired_min_tx_interval",
            "bfd.auth.type",
            "bfd.flags.p",
            "_ws.expert.severity",
            "_ws.malformed",
            "vxlan.vni",
            "ip.checksum.status",
            "udp.checksum.status",
            "eth.dst",
            "ip.dst",
            "ip.ttl",
            "udp.dstport",
        ],
    );
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), frames.len(), "{text}");
    let auth_types = ["", "1", "2", "5"];
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], "1", "row {i}: {text}");
        assert!(row[3].contains("0x0a0b0c0d"), "row {i}: {text}");
        assert_eq!(row[4], "300000", "row {i}: {text}");
        assert_eq!(row[6], "1", "row {i}: P bit: {text}");
        assert!(row[8].is_empty(), "row {i} malformed: {text}");
        // No expert info at Error severity (0x00800000 in Wireshark 4.0).
        assert!(
            !row[7].split(',').any(|s| s == "8388608"),
            "row {i} expert error: {text}"
        );
        // Checksum status 1 = Good in Wireshark (0 bad, 2 unverified): every
        // checksum we compute, outer and inner, must verify.
        assert!(
            row[10].split(',').all(|s| s == "1"),
            "row {i} ip checksum: {text}"
        );
        assert!(
            row[11].split(',').all(|s| s == "1"),
            "row {i} udp checksum: {text}"
        );
        if i < 8 {
            assert_eq!(row[1], "0x03", "row {i}: Up");
            assert_eq!(row[5], auth_types[i / 2], "row {i}: auth type: {text}");
            assert!(
                row[2].contains(&format!("{:#010x}", 0x100 + i / 2)),
                "row {i}: {text}"
            );
        } else {
            assert_eq!(row[1], "0x01", "VXLAN row: Down");
            assert!(row[2].contains("0x00000200"), "{text}");
            // No expert info at Warning severity (0x00600000) either.
            assert!(
                !row[7].split(',').any(|s| s == "6291456"),
                "row {i} expert warning: {text}"
            );
            // Outer then inner values, comma-separated by tshark.
            assert!(row[14].ends_with(",255"), "row {i} inner TTL: {text}");
            assert!(row[15].ends_with(",3784"), "row {i} inner port: {text}");
        }
        if i == 8 {
            assert_eq!(row[9], "0", "OVS row: VNI 0");
        }
        if i == 9 {
            assert_eq!(row[9], "777", "RFC 8971 row: management VNI");
            assert!(
                row[12].ends_with(",00:00:5e:00:52:02"),
                "RFC 8971 inner MAC: {text}"
            );
            assert_eq!(
                row[13], "198.18.0.2,127.0.0.1",
                "RFC 8971 inner dst: {text}"
            );
        }
    }
}
