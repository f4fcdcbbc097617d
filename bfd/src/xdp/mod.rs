//! Kernel bypass for plain UDP BFD (single hop and multihop) on one
//! device: an XDP program steers BFD frames addressed to us into AF_XDP
//! sockets, and our transmissions leave as whole frames through the same
//! sockets, so neither direction crosses the kernel's IP and UDP layers.
//! At tens of thousands of sessions those layers were three quarters of the
//! CPU (README, performance).
//!
//! It is an accelerator, never a dependency:
//! - everything the program does not match (ARP, other traffic, IP options,
//!   fragments, BFD to addresses not on the device) goes to the kernel as
//!   before;
//! - a transmission whose route leaves by another device, or whose next
//!   hop's MAC the kernel has not resolved, goes through the kernel's
//!   sockets (which resolves it); so does one packet per remote every
//!   `kernel_every`, which keeps the kernel's neighbour entry confirmed, so
//!   a peer that moved to another MAC is followed;
//! - the program is attached through a BPF link owned by this process: it
//!   disappears with the process however that ends.
//!
//! Received frames are checked as the kernel would (IPv4 header checksum,
//! UDP length and checksum); a frame that fails is counted and dropped.

pub mod bpf;
pub mod nexthop;
pub mod xsk;

use crate::fasthash::FastMap;
use crate::manager::{Datagram, Encap, Transmit};
use crate::wire::UdpIpv4Repr;
use bpf::{Map, Program, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
use nexthop::RouteQuery;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};
use xsk::Xsk;

/// Soonest re-read of the neighbour table after a miss.
const NEIGHBOUR_RETRY: Duration = Duration::from_millis(50);

/// Settings of the XDP path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// The device (its every receive queue gets a socket).
    pub ifname: String,
    /// Receive frames for the device (2 KiB each), shared out over its
    /// receive queues (see [`per_queue`]): how many packets wait while the
    /// loop is busy; past that the kernel drops. RSS spreads packets over
    /// the queues, so the device's total is what absorbs a stall.
    pub rx_frames: u32,
    /// Transmit frames for the device, shared out the same way. A turn
    /// with more to send than a queue holds sends what it queued and goes
    /// on, so this bounds system-call batching, not what can be sent.
    pub tx_frames: u32,
    /// How often the device's addresses, the neighbour table and the routes
    /// are re-read.
    pub refresh: Duration,
    /// One packet per remote this often goes through the kernel instead.
    pub kernel_every: Duration,
}

impl XdpConfig {
    /// Defaults for `ifname`: 32,768 receive frames (about 170 ms of
    /// 190,000 packets a second, 64 MiB) and 4,096 transmit frames (8 MiB)
    /// for the device, refresh every second, one kernel packet per remote
    /// every 5 seconds.
    pub fn new(ifname: &str) -> Self {
        XdpConfig {
            ifname: ifname.to_owned(),
            rx_frames: 32768,
            tx_frames: 4096,
            refresh: Duration::from_secs(1),
            kernel_every: Duration::from_secs(5),
        }
    }
}

/// Fewest receive frames a queue gets, however many queues share.
pub const MIN_RX_FRAMES: u32 = 2048;
/// Fewest transmit frames a queue gets.
pub const MIN_TX_FRAMES: u32 = 256;

/// A queue's share of `total` frames over `queues` queues: a power of two
/// (the rings need one), rounded down, at least `min`. A 64-queue NIC with
/// the defaults gets 2,048 receive frames a queue (256 MiB in all) rather
/// than 64 times the default.
pub fn per_queue(total: u32, queues: u32, min: u32) -> u32 {
    let share = total / queues.max(1);
    let pow2 = if share == 0 {
        0
    } else {
        1u32 << (31 - share.leading_zeros())
    };
    pow2.max(min)
}

/// Counters of the XDP path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames received through the sockets.
    pub received: u64,
    /// Frames refused (checksums, lengths, not BFD's port).
    pub rejected: u64,
    /// Frames queued for sending.
    pub sent: u64,
    /// Transmissions handed to the kernel instead (unresolved, other
    /// device, or the periodic neighbour confirmation).
    pub via_kernel: u64,
    /// Transmissions dropped: no free frame or ring slot.
    pub tx_full: u64,
    /// Doorbell system calls (sendto).
    pub doorbells: u64,
    /// Frames the kernel could not hand to our sockets
    /// ([`XdpPort::kernel_drops`]); [`XdpPort::stats`] leaves it 0 and
    /// [`crate::udp::Driver::io_stats`] fills it in.
    pub kernel_drops: u64,
}

#[derive(Debug, Clone, Copy)]
struct Hop {
    /// Output device of the route, and the neighbour it goes to.
    route: Option<nexthop::Route>,
    /// Last packet sent through the kernel for this remote.
    last_kernel: Option<Instant>,
    /// Last transmission to this remote: remotes of removed sessions are
    /// forgotten after [`FORGET_AFTER`].
    last_used: Instant,
}

/// A remote not sent to for this long is dropped from the route cache.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// The XDP program, its maps and one AF_XDP socket per receive queue.
#[derive(Debug)]
pub struct XdpPort {
    config: XdpConfig,
    ifindex: u32,
    mac: [u8; 6],
    /// "native" or "generic": which XDP hook took the program.
    mode: &'static str,
    xsks: Vec<Xsk>,
    locals_map: Map,
    locals: HashSet<Ipv4Addr>,
    routes: RouteQuery,
    hops: FastMap<Ipv4Addr, Hop>,
    neighbours: HashMap<Ipv4Addr, [u8; 6]>,
    next_refresh: Instant,
    /// A transmission found no neighbour entry: re-read the table soon
    /// (the kernel resolves it within milliseconds of its own packet).
    neighbour_missing: bool,
    neighbours_read: Instant,
    stats: XdpStats,
    // Dropping the link detaches the program; kept after the sockets so the
    // program never redirects to a closed socket slot for long.
    _link: OwnedFd,
    _program: Program,
    _xsks_map: Map,
}

impl XdpPort {
    /// Loads and attaches the steering program on `config.ifname` (native
    /// mode, else generic), and opens a socket per receive queue.
    pub fn attach(config: XdpConfig) -> io::Result<XdpPort> {
        let ctx = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("XDP on {}: {what}: {e}", config.ifname))
        };
        let ifindex = nexthop::ifindex(&config.ifname)?;
        let mac = nexthop::device_mac(&config.ifname).map_err(|e| ctx("MAC", e))?;
        let queues = nexthop::rx_queues(&config.ifname);
        let locals_map = Map::ipv4_set(4096).map_err(|e| ctx("address map", e))?;
        let xsks_map = Map::xsks(queues).map_err(|e| ctx("socket map", e))?;
        let mut xsks = Vec::new();
        for q in 0..queues {
            let x = Xsk::open(
                ifindex,
                q,
                per_queue(config.rx_frames, queues, MIN_RX_FRAMES),
                per_queue(config.tx_frames, queues, MIN_TX_FRAMES),
            )
            .map_err(|e| ctx(&format!("AF_XDP socket for queue {q}"), e))?;
            xsks_map
                .update(&q.to_ne_bytes(), &x.raw_fd().to_ne_bytes())
                .map_err(|e| ctx("socket map update", e))?;
            xsks.push(x);
        }
        let program =
            Program::load_xdp(&bpf::steering_program(&locals_map, &xsks_map), "bfd_steer")?;
        let (link, mode) = match program.attach_xdp(ifindex, XDP_FLAGS_DRV_MODE) {
            Ok(l) => (l, "native"),
            Err(native) => {
                let l = program
                    .attach_xdp(ifindex, XDP_FLAGS_SKB_MODE)
                    .map_err(|e| ctx(&format!("attach (native: {native})"), e))?;
                (l, "generic")
            }
        };
        tracing::info!(device = %config.ifname, queues, mode, "BFD XDP path attached");
        let mut port = XdpPort {
            ifindex,
            mac,
            mode,
            xsks,
            locals_map,
            locals: HashSet::new(),
            routes: RouteQuery::open().map_err(|e| ctx("netlink", e))?,
            hops: FastMap::default(),
            neighbours: HashMap::new(),
            next_refresh: Instant::now(),
            neighbour_missing: false,
            neighbours_read: Instant::now(),
            stats: XdpStats::default(),
            _link: link,
            _program: program,
            _xsks_map: xsks_map,
            config,
        };
        port.refresh(Instant::now())?;
        Ok(port)
    }

    /// Which hook the program runs in: "native" or "generic".
    pub fn mode(&self) -> &'static str {
        self.mode
    }

    /// The device.
    pub fn ifname(&self) -> &str {
        &self.config.ifname
    }

    /// Counters.
    pub fn stats(&self) -> XdpStats {
        self.stats
    }

    /// Frames the kernel dropped before our sockets, summed over queues
    /// (one `getsockopt` per queue: for scrapes, not the hot path).
    pub fn kernel_drops(&self) -> u64 {
        self.xsks.iter().map(|x| x.stats().drops()).sum()
    }

    /// Descriptors to poll for input.
    pub fn raw_fds(&self) -> impl Iterator<Item = libc::c_int> + '_ {
        self.xsks.iter().map(Xsk::raw_fd)
    }

    /// Re-reads the device's addresses (into the program's map), the
    /// neighbour table and every known remote's route, when due.
    pub fn refresh(&mut self, now: Instant) -> io::Result<()> {
        if now < self.next_refresh {
            if self.neighbour_missing && now >= self.neighbours_read + NEIGHBOUR_RETRY {
                self.neighbour_missing = false;
                self.neighbours_read = now;
                self.neighbours = nexthop::neighbours(&self.config.ifname)?;
            }
            return Ok(());
        }
        self.next_refresh = now + self.config.refresh;
        let current: HashSet<Ipv4Addr> = nexthop::device_addresses(&self.config.ifname)?
            .into_iter()
            .collect();
        for gone in self.locals.difference(&current) {
            self.locals_map.delete(&gone.octets())?;
        }
        for new in current.difference(&self.locals) {
            self.locals_map.update(&new.octets(), &[1])?;
        }
        self.locals = current;
        self.neighbours = nexthop::neighbours(&self.config.ifname)?;
        self.neighbours_read = now;
        self.hops
            .retain(|_, h| now.duration_since(h.last_used) < FORGET_AFTER);
        let remotes: Vec<Ipv4Addr> = self.hops.keys().copied().collect();
        for r in remotes {
            let route = self.routes.get(r)?;
            if let Some(h) = self.hops.get_mut(&r) {
                h.route = route;
            }
        }
        Ok(())
    }

    /// Hands every received BFD datagram to `deliver`; returns the frames
    /// taken (delivered or rejected).
    pub fn receive(&mut self, mut deliver: impl FnMut(&Datagram<'_>)) -> usize {
        let stats = &mut self.stats;
        let mut frames = 0;
        for x in &mut self.xsks {
            frames += x.receive(|frame| match parse(frame) {
                Some(d) => deliver(&d),
                None => stats.rejected += 1,
            });
        }
        stats.received += frames as u64;
        frames
    }

    /// Queues `t` as a frame; false when it must go through the kernel
    /// instead (not IPv4 plain UDP, unresolved, another device, or this
    /// remote's periodic kernel packet is due).
    pub fn queue(&mut self, t: &Transmit, now: Instant) -> bool {
        let (IpAddr::V4(remote), IpAddr::V4(local)) = (t.peer.remote, t.peer.local) else {
            return false;
        };
        if t.peer.encap == Encap::Vxlan || !self.locals.contains(&local) {
            return false;
        }
        let hop = match self.hops.get_mut(&remote) {
            Some(h) => h,
            None => {
                let route = self.routes.get(remote).unwrap_or_else(|e| {
                    tracing::debug!(%remote, error = %e, "route lookup failed");
                    None
                });
                self.hops.entry(remote).or_insert(Hop {
                    route,
                    last_kernel: None,
                    last_used: now,
                })
            }
        };
        hop.last_used = now;
        let dst_mac = match hop.route {
            Some(r) if r.oif == self.ifindex => {
                let mac = self.neighbours.get(&r.via).copied();
                self.neighbour_missing |= mac.is_none();
                mac
            }
            _ => None,
        };
        let kernel_due = hop
            .last_kernel
            .is_none_or(|at| now.duration_since(at) >= self.config.kernel_every);
        let Some(dst_mac) = dst_mac.filter(|_| !kernel_due) else {
            hop.last_kernel = Some(now);
            self.stats.via_kernel += 1;
            return false;
        };
        let repr = UdpIpv4Repr {
            src_mac: self.mac,
            dst_mac,
            src_ip: local,
            dst_ip: remote,
            ttl: t.ttl,
            src_port: t.src_port,
            dst_port: t.peer.encap.dst_port(),
        };
        // Spread over queues by remote, so one queue's ring is not the limit.
        let q = (u32::from(remote) as usize) % self.xsks.len();
        let x = &mut self.xsks[q];
        let write = |buf: &mut [u8]| repr.emit(t.bytes(), true, buf);
        let mut queued = x.queue(write);
        if !queued {
            // Every frame or ring slot is taken: a turn that runs late has
            // more to send than the ring holds (at 180,000 packets a second
            // 4,096 frames are 23 ms). Send what is queued (copy mode
            // transmits within the call and hands the frames back) rather
            // than drop: a dropped packet is a step towards a false Down.
            self.stats.doorbells += x.flush();
            queued = x.queue(write);
        }
        if queued {
            self.stats.sent += 1;
        } else {
            self.stats.tx_full += 1;
        }
        true
    }

    /// Sends everything queued.
    pub fn flush(&mut self) {
        for x in &mut self.xsks {
            self.stats.doorbells += x.flush();
        }
    }
}

/// A received frame as a BFD datagram: IPv4 to UDP 3784 (single hop) or
/// 4784 (multihop), checksums right.
fn parse(frame: &[u8]) -> Option<Datagram<'_>> {
    let (h, payload) = UdpIpv4Repr::parse(frame).ok()?;
    let encap = match h.dst_port {
        3784 => Encap::SingleHop,
        4784 => Encap::MultiHop,
        _ => return None,
    };
    Some(Datagram {
        remote: IpAddr::V4(h.src_ip),
        local: IpAddr::V4(h.dst_ip),
        ttl: Some(h.ttl),
        encap,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst_port: u16, checksum: bool) -> Vec<u8> {
        let r = UdpIpv4Repr {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(198, 51, 100, 1),
            dst_ip: Ipv4Addr::new(198, 18, 0, 1),
            ttl: 254,
            src_port: 49152,
            dst_port,
        };
        let mut buf = vec![0u8; 128];
        let n = r.emit(&[0x20, 0x40, 3, 24], checksum, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn frames_are_shared_out_over_queues_in_powers_of_two() {
        assert_eq!(per_queue(32768, 1, MIN_RX_FRAMES), 32768);
        assert_eq!(per_queue(32768, 4, MIN_RX_FRAMES), 8192);
        assert_eq!(per_queue(32768, 3, MIN_RX_FRAMES), 8192);
        assert_eq!(per_queue(32768, 64, MIN_RX_FRAMES), 2048);
        assert_eq!(per_queue(4096, 0, MIN_TX_FRAMES), 4096);
        assert_eq!(per_queue(64, 1, 64), 64);
        assert_eq!(per_queue(100, 1, 64), 64);
        assert_eq!(per_queue(0, 8, MIN_TX_FRAMES), 256);
    }

    #[test]
    fn frames_become_datagrams_by_port() {
        let f = frame(4784, true);
        let d = parse(&f).unwrap();
        assert_eq!(d.encap, Encap::MultiHop);
        assert_eq!(d.ttl, Some(254));
        assert_eq!(d.remote, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(d.local, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(d.payload, &[0x20, 0x40, 3, 24]);
        assert_eq!(parse(&frame(3784, false)).unwrap().encap, Encap::SingleHop);
        assert!(parse(&frame(4789, true)).is_none());
    }

    #[test]
    fn damaged_frames_are_refused() {
        let good = frame(3784, true);
        // A flipped payload byte breaks the UDP checksum.
        let mut f = good.clone();
        *f.last_mut().unwrap() ^= 1;
        assert!(parse(&f).is_none());
        // A flipped TTL breaks the IPv4 header checksum.
        let mut f = good.clone();
        f[14 + 8] ^= 1;
        assert!(parse(&f).is_none());
        // Every truncation is refused, never a panic.
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_none(), "{n} bytes");
        }
    }
}
