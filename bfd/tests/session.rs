//! Single-session checks of the §6.8.6 session-level rules and the §6.8.7
//! transmit rules, driving one `Session` by hand with crafted packets.

use bfd::auth::{AuthError, AuthKey, AuthType};
use bfd::config::{ConfigError, SessionConfig};
use bfd::packet::{Diagnostic, Repr, State};
use bfd::session::{Discard, Event, Session};
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn peer(state: State, your: u32) -> Repr {
    Repr {
        diag: Diagnostic::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 77,
        your_discriminator: your,
        desired_min_tx: 100_000,
        required_min_rx: 100_000,
        required_min_echo_rx: 0,
        auth: None,
    }
}

fn session(t0: Instant) -> Session {
    let c = SessionConfig {
        desired_min_tx: ms(100),
        required_min_rx: ms(100),
        ..Default::default()
    };
    Session::new(c, 5, t0).unwrap()
}

fn states(s: &mut Session) -> Vec<(State, State, Diagnostic)> {
    std::iter::from_fn(|| s.poll_event())
        .map(|Event::StateChange { from, to, diag, .. }| (from, to, diag))
        .collect()
}

#[test]
fn config_errors_name_every_field() {
    let bad = SessionConfig {
        desired_min_tx: Duration::ZERO,
        detect_mult: 0,
        ..Default::default()
    };
    let e = bad.validate().unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("desired_min_tx") && text.contains("detect_mult"),
        "{text}"
    );
    assert!(matches!(e, ConfigError::Many(ref v) if v.len() == 2));
    let t0 = Instant::now();
    assert!(
        Session::new(SessionConfig::default(), 0, t0).is_err(),
        "discriminator 0 is reserved"
    );
    let mut s = session(t0);
    assert!(s.set_params(ms(100), ms(100), 0).is_err());
    assert!(
        s.set_params(Duration::from_secs(5_000), ms(100), 3)
            .is_err(),
        "beyond 32-bit µs"
    );
}

#[test]
fn three_way_handshake_from_one_side() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let first = s.poll_transmit(t0).unwrap();
    assert_eq!(
        (
            first.state,
            first.my_discriminator,
            first.your_discriminator
        ),
        (State::Down, 5, 0)
    );
    assert_eq!(
        first.desired_min_tx, 1_000_000,
        "§6.8.3: at least 1 s while not Up"
    );
    assert!(s.poll_transmit(t0).is_none(), "one packet per interval");
    s.handle_packet(t0 + ms(10), &peer(State::Down, 0)).unwrap();
    assert_eq!(s.state(), State::Init);
    s.handle_packet(t0 + ms(20), &peer(State::Up, 5)).unwrap();
    assert_eq!(s.state(), State::Up);
    assert_eq!(
        states(&mut s),
        vec![
            (State::Down, State::Init, Diagnostic::None),
            (State::Init, State::Up, Diagnostic::None)
        ]
    );
    // Going Up starts a Poll Sequence for the configured 100 ms, sent at once
    // because the faster interval is already due since the last packet.
    let p = s.poll_transmit(t0 + ms(1_000)).unwrap();
    assert!(p.poll && !p.final_);
    assert_eq!(
        (p.state, p.your_discriminator, p.desired_min_tx),
        (State::Up, 77, 100_000)
    );
}

#[test]
fn init_ignores_down_and_up_goes_down_on_down() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_packet(t0, &peer(State::Down, 0)).unwrap();
    s.handle_packet(t0, &peer(State::Down, 0)).unwrap();
    assert_eq!(s.state(), State::Init);
    s.handle_packet(t0, &peer(State::Init, 5)).unwrap();
    assert_eq!(s.state(), State::Up);
    s.handle_packet(t0 + ms(5), &peer(State::Down, 5)).unwrap();
    assert_eq!(s.state(), State::Down);
    assert_eq!(
        s.status().local_diag,
        Diagnostic::NeighborSignaledSessionDown
    );
    assert_eq!(s.status().flaps, 1);
}

#[test]
fn admin_down_from_the_peer_is_not_acted_on_in_down() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_packet(t0, &peer(State::AdminDown, 0)).unwrap();
    assert_eq!(s.state(), State::Down);
    assert!(states(&mut s).is_empty());
    s.handle_packet(t0, &peer(State::Down, 0)).unwrap();
    assert_eq!(s.state(), State::Init);
    s.handle_packet(t0, &peer(State::AdminDown, 5)).unwrap();
    assert_eq!(
        (s.state(), s.status().local_diag),
        (State::Down, Diagnostic::NeighborSignaledSessionDown)
    );
}

#[test]
fn admin_down_session_discards_and_does_not_answer_polls() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.set_admin_down(t0, Diagnostic::AdministrativelyDown);
    let mut p = peer(State::Down, 0);
    p.poll = true;
    s.handle_packet(t0, &p).unwrap();
    assert_eq!(s.state(), State::AdminDown);
    let out = s.poll_transmit(t0).unwrap();
    assert!(!out.final_);
    assert_eq!(
        (out.state, out.diag),
        (State::AdminDown, Diagnostic::AdministrativelyDown)
    );
    // The remote's fields were still recorded (§6.8.6 sets them before the discard).
    assert_eq!(s.status().remote_discriminator, 77);
}

#[test]
fn poll_is_answered_at_once_with_final_and_no_poll() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.poll_transmit(t0).unwrap();
    let mut p = peer(State::Down, 0);
    p.poll = true;
    s.handle_packet(t0 + ms(3), &p).unwrap();
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + ms(3)),
        "a Final is due immediately"
    );
    let f = s.poll_transmit(t0 + ms(3)).unwrap();
    assert!(f.final_ && !f.poll);
    assert!(
        s.poll_transmit(t0 + ms(3)).is_none(),
        "the Final did not consume a periodic slot early"
    );
}

#[test]
fn session_level_discards() {
    let t0 = Instant::now();
    let mut s = session(t0);
    assert_eq!(
        s.handle_packet(t0, &peer(State::Up, 6)).unwrap_err(),
        Discard::NotOurDiscriminator { got: 6, ours: 5 }
    );
    // A bit set while no authentication is configured.
    let key = AuthKey::new(AuthType::KeyedSha1, 1, b"k").unwrap();
    let mut r = peer(State::Down, 0);
    r.auth = Some(key.section(1));
    let mut buf = [0u8; 64];
    let n = r.emit(&mut buf).unwrap();
    bfd::auth::sign(&mut buf[..n], &key).unwrap();
    assert_eq!(
        s.handle_datagram(t0, &buf[..n]).unwrap_err(),
        Discard::Auth(AuthError::Unexpected)
    );
    assert_eq!(
        s.handle_packet(t0, &r).unwrap_err(),
        Discard::Auth(AuthError::Unexpected)
    );
    // A bit clear while authentication is configured, and a Repr is not enough.
    let c = SessionConfig {
        auth: Some(key),
        ..Default::default()
    };
    let mut a = Session::new(c, 5, t0).unwrap();
    let plain = peer(State::Down, 0);
    let n = plain.emit(&mut buf).unwrap();
    assert_eq!(
        a.handle_datagram(t0, &buf[..n]).unwrap_err(),
        Discard::Auth(AuthError::Missing)
    );
    assert_eq!(
        a.handle_packet(t0, &plain).unwrap_err(),
        Discard::NeedsRawPacket
    );
    // Malformed bytes are a counted discard, never a panic.
    assert!(matches!(
        s.handle_datagram(t0, &buf[..10]).unwrap_err(),
        Discard::Reception(_)
    ));
    assert_eq!(s.state(), State::Down);
}

#[test]
fn passive_role_waits_for_the_remote() {
    let t0 = Instant::now();
    let c = SessionConfig {
        passive: true,
        ..Default::default()
    };
    let mut s = Session::new(c, 5, t0).unwrap();
    assert!(
        s.poll_transmit(t0).is_none(),
        "§6.8.7: passive and bfd.RemoteDiscr zero"
    );
    let next = s.poll_timeout().unwrap();
    assert!(
        next > t0,
        "the skipped slot does not leave a deadline in the past"
    );
    s.handle_packet(t0 + ms(1), &peer(State::Down, 0)).unwrap();
    let mut now = t0 + ms(1);
    let mut sent = None;
    for _ in 0..10 {
        now = s.poll_timeout().unwrap().max(now);
        s.handle_timeout(now);
        if let Some(r) = s.poll_transmit(now) {
            sent = Some(r);
            break;
        }
    }
    assert_eq!(sent.unwrap().your_discriminator, 77);
}

#[test]
fn required_min_rx_zero_from_the_remote_stops_periodic_packets() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.poll_transmit(t0).unwrap();
    let mut quiet = peer(State::Down, 0);
    quiet.required_min_rx = 0;
    quiet.poll = true;
    s.handle_packet(t0 + ms(1), &quiet).unwrap();
    // The Final still goes out (it is not periodic) ...
    assert!(s.poll_transmit(t0 + ms(1)).unwrap().final_);
    // ... but nothing periodic for a long while.
    for k in 1..50 {
        assert!(s.poll_transmit(t0 + ms(100 * k)).is_none());
    }
}

#[test]
fn detection_in_init_and_remote_discriminator_reset() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_packet(t0, &peer(State::Down, 0)).unwrap();
    assert_eq!(s.state(), State::Init);
    // Not Up: Detection Time = 3 x max(100 ms, 100 ms).
    assert_eq!(s.status().detection_time, ms(300));
    assert_eq!(
        s.poll_timeout().unwrap().min(t0 + ms(300)),
        s.poll_timeout().unwrap()
    );
    s.handle_timeout(t0 + ms(299));
    assert_eq!(s.state(), State::Init);
    s.handle_timeout(t0 + ms(300));
    assert_eq!(
        (s.state(), s.status().local_diag),
        (State::Down, Diagnostic::ControlDetectionTimeExpired)
    );
    assert_eq!(s.status().remote_discriminator, 0);
    // A Down session's timer expiring again changes nothing and leaves no deadline behind.
    s.handle_timeout(t0 + ms(5_000));
    assert_eq!(states(&mut s).len(), 2);
}

#[test]
fn remote_desired_tx_lengthens_detection_time_at_once() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_packet(t0, &peer(State::Down, 0)).unwrap();
    let mut slow = peer(State::Up, 5);
    slow.desired_min_tx = 1_000_000;
    slow.detect_mult = 4;
    s.handle_packet(t0 + ms(10), &slow).unwrap();
    assert_eq!(s.status().detection_time, ms(4_000));
    s.handle_timeout(t0 + ms(4_009));
    assert_eq!(s.state(), State::Up);
    s.handle_timeout(t0 + ms(4_010));
    assert_eq!(s.state(), State::Down);
}
