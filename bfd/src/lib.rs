//! BFD (RFC 5880) for Bridgehead's tunnel health monitoring: wire format,
//! a deterministic sans-IO session core, and (next) the scalable manager.
//!
//! How the pieces fit, bottom to top:
//!
//! - [`packet`]: the Control packet as a checked view [`packet::Packet`] over
//!   any buffer and a validated, allocation-free [`packet::Repr`]. `Repr::parse`
//!   applies every §6.8.6 discard rule that needs only the packet and returns a
//!   [`packet::ReceptionError`] naming the rule.
//! - [`auth`]: the authentication section (§4.2–§4.4) and procedures (§6.7):
//!   simple password, keyed and meticulous keyed MD5/SHA1, signing in place
//!   after `emit`, verification and the replay window.
//! - [`config`] and [`timers`]: what an operator sets, and the timing rules as
//!   pure functions (§6.8.4 detection time, §6.8.7 interval and jitter).
//! - [`session`]: one session's §6.8 state machine, quinn-proto shaped. The
//!   owner feeds packets and `now`, and drains transmissions and events:
//!
//! ```
//! use bfd::{config::SessionConfig, session::Session};
//! use std::time::{Duration, Instant};
//!
//! let t0 = Instant::now(); // any origin: the core only compares instants
//! let a = Session::new(SessionConfig::default(), 1, t0).unwrap();
//! let b = Session::new(SessionConfig::default(), 2, t0).unwrap();
//! let mut s = [a, b];
//! let mut buf = [0u8; bfd::packet::MAX_LEN];
//! let mut now = t0;
//! for _ in 0..20 {
//!     for from in 0..2 {
//!         s[from].handle_timeout(now);
//!         while let Some(n) = s[from].poll_transmit_into(now, &mut buf) {
//!             // Zero-delay link; a bad packet would just be counted and dropped.
//!             let _ = s[1 - from].handle_datagram(now, &buf[..n]);
//!         }
//!     }
//!     now = s.iter().filter_map(|x| x.poll_timeout()).min().unwrap();
//! }
//! assert_eq!(s[0].state(), bfd::packet::State::Up);
//! assert_eq!(s[0].status().tx_interval, Duration::from_millis(300));
//! ```
//!
//! - [`timer_wheel`]: one timing wheel (1 ms slots) holding every session's
//!   `poll_timeout()`, so an event loop sleeps once for all sessions.
//! - [`wire`] and [`vxlan`]: Ethernet/IPv4/UDP views and the BFD-in-VXLAN
//!   frames of two flavours: the Open vSwitch / hardware_vtep convention
//!   (VNI 0, switch 169.254.1.1 at 00:23:20:00:00:01 <-> us 169.254.1.0) and
//!   RFC 8971 (a Management VNI, VTEP address -> 127.0.0.1 at
//!   00-00-5E-00-52-02). Plain single-hop and multihop BFD (UDP 3784 / 4784)
//!   need only the UDP payload from `packet`.
//! - [`manager`]: many sessions, still sans-IO: §6.8.6 demultiplexing by Your
//!   Discriminator or by addresses, GTSM, a fixed source port per session,
//!   one [`timer_wheel::TimerWheel`], counters.
//! - [`udp`]: the Linux edge, the only code that reads the clock: shared
//!   receive sockets on 3784/4784, one send socket per source port,
//!   `recvmmsg`/`sendmmsg`, and one `ppoll` sleep until the manager's next
//!   deadline.
//!
//! - [`control`]: a cloneable `Handle` (commands through a channel, an
//!   eventfd to wake the loop) so a daemon's other tasks can add, change and
//!   read sessions while `Driver::run` owns them. Each request has a
//!   blocking form and an `_async` form returning a `Pending` future (no
//!   runtime needed); state changes go to any [`control::EventSink`]: a std
//!   channel, or a futures channel whose receiver is a `Stream`.
//! - [`stats`] and [`metrics`]: the loop keeps sessions-by-state counts and a
//!   deadline-lag histogram incrementally (bounded, no walk over sessions);
//!   `Handle::snapshot` hands them out with the packet and drop counters, and
//!   `metrics::Metrics` renders them for Prometheus with bounded labels only.
//!   [`turn_watch`] counts loop turns that stalled past 50 ms, telling the
//!   loop's own work from wake-ups the CPU was elsewhere for, and logs the
//!   worst of every 10 s.
//!
//! - [`vxlan_link`]: BFD inside VXLAN through a kernel VXLAN device (in the
//!   flavour's BFD VNI) per remote VTEP and an `AF_PACKET` socket carrying the
//!   inner frames of [`vxlan`].
//! - [`xdp`]: kernel bypass for plain UDP BFD on one device. An XDP
//!   program (assembled in [`xdp::bpf`], attached through a BPF link so it
//!   leaves with the process) steers UDP 3784/4784 frames to our addresses
//!   into AF_XDP sockets, and transmissions leave as frames through them,
//!   built from the kernel's own route and neighbour answers
//!   ([`xdp::nexthop`]); whatever it cannot resolve goes through the
//!   sockets of [`udp`]. At 50,000 sessions a side this is what fits one
//!   core (README, performance).
//! - [`file_config`], [`reload`], [`report`]: what the `bfd` command (and a
//!   daemon embedding this crate) reads and shows: a TOML file of sessions
//!   validated field by field, the add/retime/replace/remove plan of a
//!   reload keyed by addresses (unchanged sessions are never touched), and
//!   the per-session status report (state, diag, discriminators, negotiated
//!   intervals, flaps, last change). Removed sessions are retired: AdminDown
//!   for a Detection Time, then deleted ([`manager::Manager::retire_session`]).
//!
//! The `bfd` binary (src/bin/bfd): `bfd run --config FILE [--metrics-listen
//! ADDR] [--status-socket PATH]` runs one event loop thread with the file's
//! sessions, logs each state change, reloads on SIGHUP, stops on
//! SIGTERM/SIGINT after sending AdminDown; `bfd status [--json]` reads a
//! running instance over its unix socket; `bfd check --config FILE`
//! validates a file.
//!
//! Tested against independent peers: FRR bfdd (plain UDP) and Open vSwitch
//! (BFD inside VXLAN), both in network namespaces (feature `root-tests`);
//! the lab crate's `bfd_ovs_vtep` test has an ovs-vtep emulated hardware
//! switch monitor us through its `Tunnel` row (`bfd_params` in,
//! `bfd_status` out), the hardware_vtep way.
//!
//! Scale: `bfd-bench` (src/bin/bfd-bench, root, not a test) runs N
//! multihop sessions between two `bfd run` processes in two namespaces, then
//! the same with FRR bfdd, and prints CPU per process, packets per second
//! and false Down events side by side.
//!
//! Not yet: IPv6 (sockets and the XDP path), Demand mode, Echo.

//! # Choices where the RFC leaves room, or where we deviate
//!
//! - Poll Sequences run only while Up (as FRR bfdd does): every §6.8.3 hold
//!   rule is conditioned on Up, and outside Up new values apply at once and
//!   ride on every packet. One Poll Sequence at a time: changes made during
//!   one start the next when its Final arrives, so a Final always confirms
//!   exactly the values its Polls carried.
//! - When the negotiated interval grows, the packet already scheduled keeps
//!   its time (the remote's Detection Time still reflects the old rate); when
//!   it shrinks, the next packet is pulled in at once.
//! - Jitter (§6.8.7): each interval is reduced by 0–25 %, or by 10–25 % when
//!   `bfd.DetectMult` is 1 (so 75–90 % of the interval, as the RFC requires).
//! - Keyed (non-meticulous) MD5/SHA1 advance the sequence number on every
//!   packet too ("occasionally" allows it). The replay window counts in the
//!   received packet's Detect Mult.
//! - Bytes between 24 and Length with the A bit clear are ignored (no §6.8.6
//!   rule discards them); bytes after Length (padding) are not BFD's.
//! - A remote in Demand mode is not honoured: we keep sending periodically.
//! - Demultiplexing by discriminator also checks the source address and
//!   encapsulation: the discriminator is not a secret.

pub mod auth;
pub mod config;
pub mod control;
pub mod fasthash;
pub mod file_config;
pub mod manager;
pub mod metrics;
mod mmsg;
pub mod packet;
pub mod reload;
pub mod report;
pub mod session;
pub mod stats;
pub mod timer_wheel;
pub mod timers;
pub mod turn_watch;
pub mod udp;
pub mod vxlan;
pub mod vxlan_link;
pub mod wire;
pub mod xdp;
