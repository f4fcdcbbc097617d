//! Byte vectors for every field of the BFD Control packet (RFC 5880 §4), the
//! §6.8.6 discard rules, and the §6.7 authentication procedures.
//!
//! The keyed MD5/SHA1 vectors were computed independently with Python's
//! `hashlib` (key "bridgehead" zero-padded into the digest field, digest over
//! the whole packet, then written back), not with this crate.

use bfd::auth::{self, Auth, AuthError, AuthKey, AuthType, Password, SeqWindow};
use bfd::packet::{Diagnostic, Packet, ReceptionError, Repr, State};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Vers 1, Diag 3, Sta Up, P, Detect Mult 3, Length 24, My 0x11223344,
/// Your 0x55667788, TX 1 s, RX 300 ms, Echo 50 ms.
const BASIC: [u8; 24] = [
    0x23, 0xe0, 0x03, 0x18, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x00, 0x0f, 0x42, 0x40,
    0x00, 0x04, 0x93, 0xe0, 0x00, 0x00, 0xc3, 0x50,
];

fn basic_repr() -> Repr {
    Repr {
        diag: Diagnostic::NeighborSignaledSessionDown,
        state: State::Up,
        poll: true,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x1122_3344,
        your_discriminator: 0x5566_7788,
        desired_min_tx: 1_000_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 50_000,
        auth: None,
    }
}

#[test]
fn view_reads_every_field() {
    let p = Packet::new_checked(&BASIC[..]).unwrap();
    assert_eq!(p.version(), 1);
    assert_eq!(p.diag(), Diagnostic::NeighborSignaledSessionDown);
    assert_eq!(p.state(), State::Up);
    assert!(p.poll());
    assert!(!p.final_());
    assert!(!p.control_plane_independent());
    assert!(!p.auth_present());
    assert!(!p.demand());
    assert!(!p.multipoint());
    assert_eq!(p.detect_mult(), 3);
    assert_eq!(p.length(), 24);
    assert_eq!(p.my_discriminator(), 0x1122_3344);
    assert_eq!(p.your_discriminator(), 0x5566_7788);
    assert_eq!(p.desired_min_tx(), 1_000_000);
    assert_eq!(p.required_min_rx(), 300_000);
    assert_eq!(p.required_min_echo_rx(), 50_000);
    assert!(p.auth_section().is_empty());
}

#[test]
fn parse_and_emit_basic_vector() {
    assert_eq!(Repr::parse(&BASIC).unwrap(), basic_repr());
    let mut buf = [0xffu8; 64];
    assert_eq!(basic_repr().buffer_len(), 24);
    assert_eq!(basic_repr().emit(&mut buf), Some(24));
    assert_eq!(&buf[..24], &BASIC);
    assert_eq!(basic_repr().emit(&mut [0u8; 23]), None);
}

type FlagGetter = fn(&Repr) -> bool;

#[test]
fn each_flag_bit_has_its_own_position() {
    // (mask in byte 1, which accessor/Repr field)
    let cases: [(u8, FlagGetter); 4] = [
        (0x20, |r| r.poll),
        (0x10, |r| r.final_),
        (0x08, |r| r.control_plane_independent),
        (0x02, |r| r.demand),
    ];
    for (mask, get) in cases {
        let mut b = BASIC;
        b[1] = 0xc0 | mask; // Sta Up plus only this flag
        let r = Repr::parse(&b).unwrap();
        assert!(get(&r), "mask {mask:#x}");
        let set = [r.poll, r.final_, r.control_plane_independent, r.demand]
            .iter()
            .filter(|x| **x)
            .count();
        assert_eq!(set, 1, "mask {mask:#x} set other flags");
        let mut out = [0u8; 24];
        r.emit(&mut out).unwrap();
        assert_eq!(out, b);
    }
}

#[test]
fn state_bits_vectors() {
    for (bits, st) in [
        (0u8, State::AdminDown),
        (1, State::Down),
        (2, State::Init),
        (3, State::Up),
    ] {
        let mut b = BASIC;
        b[1] = bits << 6;
        b[8..12].fill(0); // Your Discriminator 0 is only legal in Down/AdminDown
        if matches!(st, State::Init | State::Up) {
            b[8] = 1;
        }
        let r = Repr::parse(&b).unwrap();
        assert_eq!(r.state, st);
        assert_eq!(st.bits(), bits);
        let mut out = [0u8; 24];
        r.emit(&mut out).unwrap();
        assert_eq!(out, b);
    }
}

#[test]
fn every_diag_code_round_trips() {
    let named = [
        (0, Diagnostic::None),
        (1, Diagnostic::ControlDetectionTimeExpired),
        (2, Diagnostic::EchoFunctionFailed),
        (3, Diagnostic::NeighborSignaledSessionDown),
        (4, Diagnostic::ForwardingPlaneReset),
        (5, Diagnostic::PathDown),
        (6, Diagnostic::ConcatenatedPathDown),
        (7, Diagnostic::AdministrativelyDown),
        (8, Diagnostic::ReverseConcatenatedPathDown),
    ];
    for code in 0u8..32 {
        let mut b = BASIC;
        b[0] = 0x20 | code;
        let r = Repr::parse(&b).unwrap();
        match named.iter().find(|(c, _)| *c == code) {
            Some((_, d)) => assert_eq!(r.diag, *d),
            None => assert_eq!(r.diag, Diagnostic::Unknown(code)),
        }
        assert_eq!(r.diag.bits(), code);
        let mut out = [0u8; 24];
        r.emit(&mut out).unwrap();
        assert_eq!(out, b, "diag {code}");
    }
}

#[test]
fn multibyte_fields_are_big_endian() {
    let mut r = basic_repr();
    r.my_discriminator = 0x0102_0304;
    r.your_discriminator = 0xa0b0_c0d0;
    r.desired_min_tx = 0xdead_beef;
    r.required_min_rx = 0x0000_0001;
    r.required_min_echo_rx = 0xffff_ffff;
    r.detect_mult = 255;
    let mut out = [0u8; 24];
    r.emit(&mut out).unwrap();
    assert_eq!(&out[2..4], &[255, 24]);
    assert_eq!(&out[4..8], &[1, 2, 3, 4]);
    assert_eq!(&out[8..12], &[0xa0, 0xb0, 0xc0, 0xd0]);
    assert_eq!(&out[12..16], &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(&out[16..20], &[0, 0, 0, 1]);
    assert_eq!(&out[20..24], &[0xff; 4]);
    assert_eq!(Repr::parse(&out).unwrap(), r);
}

#[test]
fn view_setters_write_the_same_bytes() {
    let mut b = [0u8; 24];
    let mut p = Packet::new_unchecked(&mut b[..]);
    p.set_version_diag(1, Diagnostic::NeighborSignaledSessionDown);
    p.set_state_flags(
        State::Up,
        bfd::packet::Flags {
            poll: true,
            ..Default::default()
        },
    );
    p.set_detect_mult(3);
    p.set_length(24);
    p.set_my_discriminator(0x1122_3344);
    p.set_your_discriminator(0x5566_7788);
    p.set_desired_min_tx(1_000_000);
    p.set_required_min_rx(300_000);
    p.set_required_min_echo_rx(50_000);
    assert_eq!(b, BASIC);
}

#[test]
fn reception_checks_of_6_8_6() {
    let err = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = BASIC.to_vec();
        f(&mut b);
        Repr::parse(&b).unwrap_err()
    };
    assert_eq!(err(&|b| b[0] = 0x03), ReceptionError::BadVersion(0));
    assert_eq!(err(&|b| b[0] = 0x43), ReceptionError::BadVersion(2));
    assert_eq!(
        err(&|b| b[3] = 23),
        ReceptionError::LengthTooShort {
            length: 23,
            min: 24
        }
    );
    // A set needs Length >= 26.
    assert_eq!(
        err(&|b| {
            b[1] |= 0x04;
            b[3] = 25;
        }),
        ReceptionError::LengthTooShort {
            length: 25,
            min: 26
        }
    );
    assert_eq!(
        err(&|b| b[3] = 25),
        ReceptionError::LengthExceedsPayload {
            length: 25,
            payload: 24
        }
    );
    assert_eq!(err(&|b| b[2] = 0), ReceptionError::ZeroDetectMult);
    assert_eq!(err(&|b| b[1] |= 0x01), ReceptionError::Multipoint);
    assert_eq!(
        err(&|b| b[4..8].fill(0)),
        ReceptionError::ZeroMyDiscriminator
    );
    assert_eq!(
        err(&|b| b[8..12].fill(0)),
        ReceptionError::ZeroYourDiscriminator(State::Up)
    );
    assert_eq!(
        err(&|b| {
            b[8..12].fill(0);
            b[1] = 0x80;
        }),
        ReceptionError::ZeroYourDiscriminator(State::Init)
    );
    // Your Discriminator 0 is fine in Down and AdminDown.
    for sta in [0x00, 0x40] {
        let mut b = BASIC;
        b[8..12].fill(0);
        b[1] = sta;
        assert!(Repr::parse(&b).is_ok());
    }
}

#[test]
fn auth_section_consistency_with_a_bit() {
    // A set, section claims 24 bytes but Length leaves room for 4.
    let mut b = BASIC.to_vec();
    b[1] |= 0x04;
    b[3] = 28;
    b.extend_from_slice(&[2, 24, 1, 0]);
    assert_eq!(
        Repr::parse(&b).unwrap_err(),
        ReceptionError::AuthLengthMismatch {
            auth_len: 24,
            length: 28
        }
    );
    // Simple password with Auth Len 3 (no password) or 20 (17 bytes).
    for bad_len in [3u8, 20] {
        let mut b = BASIC.to_vec();
        b[1] |= 0x04;
        b[3] = 24 + bad_len;
        b.extend_from_slice(&[1, bad_len, 1]);
        b.resize(usize::from(24 + bad_len), b'x');
        assert_eq!(
            Repr::parse(&b).unwrap_err(),
            ReceptionError::BadAuthLen {
                auth_type: AuthType::SimplePassword,
                auth_len: bad_len
            }
        );
    }
    // MD5 must be 24, SHA1 must be 28.
    for (t, l) in [(2u8, 28u8), (3, 20), (4, 24), (5, 30)] {
        let mut b = BASIC.to_vec();
        b[1] |= 0x04;
        b[3] = 24 + l;
        b.extend_from_slice(&[t, l]);
        b.resize(usize::from(24 + l), 0);
        assert!(
            matches!(
                Repr::parse(&b).unwrap_err(),
                ReceptionError::BadAuthLen { .. }
            ),
            "type {t} len {l}"
        );
    }
    // Reserved and unassigned types cannot be verified.
    for t in [0u8, 6, 255] {
        let mut b = BASIC.to_vec();
        b[1] |= 0x04;
        b[3] = 28;
        b.extend_from_slice(&[t, 4, 1, 0]);
        assert_eq!(
            Repr::parse(&b).unwrap_err(),
            ReceptionError::UnsupportedAuthType(AuthType::Unknown(t))
        );
    }
    // A clear with bytes beyond 24 inside Length: no rule discards it; ignored.
    let mut b = BASIC.to_vec();
    b[3] = 28;
    b.extend_from_slice(&[9, 9, 9, 9]);
    assert_eq!(Repr::parse(&b).unwrap(), basic_repr());
}

#[test]
fn length_may_be_shorter_than_payload() {
    // Trailing bytes after Length (e.g. Ethernet padding) are not BFD's.
    let mut b = BASIC.to_vec();
    b.extend_from_slice(&[0; 6]);
    assert_eq!(Repr::parse(&b).unwrap(), basic_repr());
}

const PW: &str = "20c4031f1122334455667788000493e0000493e00000000001070573656372";

#[test]
fn simple_password_vector() {
    // Auth Type 1, Auth Len 7 (4-byte password + 3), Key ID 5, "secr"; Length 31.
    let b = hex(PW);
    assert_eq!(b.len(), 31);
    let r = Repr::parse(&b).unwrap();
    let Some(Auth::SimplePassword { key_id, password }) = r.auth else {
        panic!("{r:?}")
    };
    assert_eq!(key_id, 5);
    assert_eq!(password.as_bytes(), b"secr");
    assert_eq!(r.auth.unwrap().len(), 7);
    let mut out = [0u8; 64];
    assert_eq!(r.emit(&mut out), Some(31));
    assert_eq!(&out[..31], &b[..]);
    let key = AuthKey::new(AuthType::SimplePassword, 5, b"secr").unwrap();
    assert!(auth::verify(&b, &key).is_ok());
    let wrong = AuthKey::new(AuthType::SimplePassword, 5, b"secs").unwrap();
    assert_eq!(
        auth::verify(&b, &wrong).unwrap_err(),
        AuthError::BadPassword
    );
    let longer = AuthKey::new(AuthType::SimplePassword, 5, b"secr1").unwrap();
    assert_eq!(
        auth::verify(&b, &longer).unwrap_err(),
        AuthError::BadPassword
    );
    let other_id = AuthKey::new(AuthType::SimplePassword, 6, b"secr").unwrap();
    assert_eq!(
        auth::verify(&b, &other_id).unwrap_err(),
        AuthError::UnknownKeyId(5)
    );
    assert!(Password::new(b"").is_none());
    assert!(Password::new(&[1; 17]).is_none());
    assert!(Password::new(&[1; 16]).is_some());
}

const MD5: &str = "20c403301122334455667788000493e0000493e00000000002180700010203\
04f31261f8913251dee81c4a9908f3dba4";
const MD5_METICULOUS: &str = "20c403301122334455667788000493e0000493e000000000031807000102\
03047c1b4fdf82ea322dad8f017a92d68e3f";
const SHA1: &str = "20c403341122334455667788000493e0000493e000000000041c070001020304\
c615031f6c205d008d8f7c4c8cf8cf32d6dc5a5b";
const SHA1_METICULOUS: &str = "20c403341122334455667788000493e0000493e000000000051c07000102\
03044b304b311c880f8842ebbd307763128ad2ccdd26";

fn keyed_repr() -> Repr {
    Repr {
        diag: Diagnostic::None,
        state: State::Up,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x1122_3344,
        your_discriminator: 0x5566_7788,
        desired_min_tx: 300_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
        auth: None,
    }
}

#[test]
fn keyed_digest_vectors_sign_and_verify() {
    for (vector, t) in [
        (MD5, AuthType::KeyedMd5),
        (MD5_METICULOUS, AuthType::MeticulousKeyedMd5),
        (SHA1, AuthType::KeyedSha1),
        (SHA1_METICULOUS, AuthType::MeticulousKeyedSha1),
    ] {
        let want = hex(vector);
        let key = AuthKey::new(t, 7, b"bridgehead").unwrap();
        // Build and sign: must reproduce the independently computed bytes.
        let mut r = keyed_repr();
        r.auth = Some(key.section(0x0102_0304));
        let mut buf = [0u8; 64];
        let n = r.emit(&mut buf).unwrap();
        auth::sign(&mut buf[..n], &key).unwrap();
        assert_eq!(&buf[..n], &want[..], "{t:?}");
        // Parse: every auth field.
        let parsed = Repr::parse(&want).unwrap();
        let a = parsed.auth.unwrap();
        assert_eq!(a.auth_type(), t);
        assert_eq!(a.key_id(), 7);
        assert_eq!(a.seq(), Some(0x0102_0304));
        assert_eq!(a.len(), want.len() - 24);
        let mut again = [0u8; 64];
        assert_eq!(parsed.emit(&mut again), Some(want.len()));
        assert_eq!(&again[..want.len()], &want[..]);
        // Verify, and reject any single-bit change anywhere in the packet.
        assert_eq!(auth::verify(&want, &key).unwrap(), a);
        for i in 0..want.len() {
            let mut bad = want.clone();
            bad[i] ^= 0x01;
            if i == 27 {
                continue; // the Reserved byte is covered by the digest too, checked below
            }
            assert!(auth::verify(&bad, &key).is_err(), "{t:?} byte {i}");
        }
        let mut reserved = want.clone();
        reserved[27] = 1;
        assert_eq!(
            auth::verify(&reserved, &key).unwrap_err(),
            AuthError::BadDigest
        );
        let wrong_key = AuthKey::new(t, 7, b"bridgeheaD").unwrap();
        assert_eq!(
            auth::verify(&want, &wrong_key).unwrap_err(),
            AuthError::BadDigest
        );
        let wrong_id = AuthKey::new(t, 8, b"bridgehead").unwrap();
        assert_eq!(
            auth::verify(&want, &wrong_id).unwrap_err(),
            AuthError::UnknownKeyId(7)
        );
    }
}

#[test]
fn verify_rejects_wrong_type_and_missing_section() {
    let key = AuthKey::new(AuthType::KeyedSha1, 7, b"bridgehead").unwrap();
    assert!(matches!(
        auth::verify(&hex(MD5), &key).unwrap_err(),
        AuthError::WrongType { .. }
    ));
    assert_eq!(auth::verify(&BASIC, &key).unwrap_err(), AuthError::Missing);
    assert!(matches!(
        auth::verify(&BASIC[..10], &key).unwrap_err(),
        AuthError::Packet(_)
    ));
}

#[test]
fn key_lengths_are_checked() {
    assert!(AuthKey::new(AuthType::KeyedMd5, 1, &[1; 16]).is_ok());
    assert!(AuthKey::new(AuthType::KeyedMd5, 1, &[1; 17]).is_err());
    assert!(AuthKey::new(AuthType::KeyedSha1, 1, &[1; 20]).is_ok());
    assert!(AuthKey::new(AuthType::KeyedSha1, 1, &[1; 21]).is_err());
    assert!(AuthKey::new(AuthType::SimplePassword, 1, &[]).is_err());
    assert!(AuthKey::new(AuthType::Unknown(9), 1, &[1]).is_err());
    // A secret never shows in Debug output.
    let k = AuthKey::new(AuthType::SimplePassword, 1, b"hunter2").unwrap();
    assert!(!format!("{k:?}").contains("hunter2"));
}

#[test]
fn auth_type_registry_round_trips() {
    for v in 0u8..=255 {
        assert_eq!(AuthType::from_u8(v).to_u8(), v);
    }
    assert!(AuthType::MeticulousKeyedSha1.is_meticulous());
    assert!(!AuthType::KeyedSha1.is_meticulous());
}

#[test]
fn sequence_window_of_6_7_3() {
    // Keyed: last..=last+3*mult accepted, including a repeat.
    let mut w = SeqWindow::default();
    w.check_and_update(100, false, 3).unwrap();
    w.check_and_update(100, false, 3).unwrap();
    w.check_and_update(109, false, 3).unwrap();
    assert!(w.check_and_update(119, false, 3).is_err());
    assert!(w.check_and_update(108, false, 3).is_err());
    assert_eq!(w.last, 109);
    // Meticulous: a repeat is a replay.
    let mut m = SeqWindow::default();
    m.check_and_update(u32::MAX, true, 1).unwrap();
    assert!(m.check_and_update(u32::MAX, true, 1).is_err());
    // Circular: MAX -> 2 is 3 ahead.
    m.check_and_update(2, true, 1).unwrap();
    assert!(m.check_and_update(6, true, 1).is_err());
}

fn valid_packets() -> Vec<Vec<u8>> {
    vec![
        BASIC.to_vec(),
        hex(PW),
        hex(MD5),
        hex(MD5_METICULOUS),
        hex(SHA1),
        hex(SHA1_METICULOUS),
    ]
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for full in valid_packets() {
        assert!(Repr::parse(&full).is_ok());
        for cut in 0..full.len() {
            let short = &full[..cut];
            assert!(
                Repr::parse(short).is_err(),
                "prefix {cut} of {}",
                full.len()
            );
            assert!(Packet::new_checked(short).is_err());
            let key = AuthKey::new(AuthType::KeyedMd5, 7, b"bridgehead").unwrap();
            assert!(auth::verify(short, &key).is_err());
            let mut m = short.to_vec();
            assert!(auth::sign(&mut m, &key).is_err());
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz: mutate valid packets byte by byte.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let key = AuthKey::new(AuthType::KeyedSha1, 7, b"bridgehead").unwrap();
    for base in valid_packets() {
        for _ in 0..2000 {
            let mut b = base.clone();
            let n = (next() % 4) as usize + 1;
            for _ in 0..n {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            let len = (next() as usize) % (b.len() + 1);
            b.truncate(len.max(b.len() / 2));
            if let Ok(r) = Repr::parse(&b) {
                let mut out = [0u8; 64];
                let n = r.emit(&mut out).unwrap();
                assert_eq!(Repr::parse(&out[..n]).unwrap(), r);
            }
            let _ = auth::verify(&b, &key);
            let _ = auth::sign(&mut b, &key);
        }
    }
}
