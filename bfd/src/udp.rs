//! The Linux socket edge of the [`Manager`]: one event loop, shared sockets,
//! batched I/O. Two receive sockets (UDP 3784 single hop, 4784 multihop)
//! serve every session, reporting the TTL (`IP_RECVTTL`, for GTSM) and the
//! destination address (`IP_PKTINFO`, for demultiplexing) of each datagram;
//! one send socket per source port in the manager's pool (49152–65535, so a
//! session's port is fixed, RFC 5881 §4) with TTL 255. Datagrams move with
//! `recvmmsg`/`sendmmsg`, a batch per system call. The only clock reads of
//! the crate are here.
//!
//! IPv4 only. BFD inside VXLAN goes through kernel VXLAN devices in the BFD
//! VNI (VNI 0 for the OVS convention, the Management VNI for RFC 8971)
//! attached with [`Driver::attach_vxlan`] (see [`crate::vxlan_link`]); the
//! frames of one flush, for every device, leave in one `sendmmsg`.

use crate::control::{Control, EventSink};
use crate::manager::{Datagram, Encap, Manager, PeerKey, Transmit};
use crate::packet::MAX_LEN;
use crate::stats::Snapshot;
use crate::turn_watch::{TurnStats, TurnTimes, TurnWatch, thread_cpu};
use crate::vxlan::VxlanFlavor;
use crate::vxlan_link::{self, Frame, VxlanLink};
use crate::xdp::{XdpConfig, XdpPort, XdpStats};
use std::collections::BTreeMap;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Socket-layer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// The local IPv4 address sessions run from; 0.0.0.0 binds the wildcard
    /// and serves any local address (each packet then carries its session's
    /// local address as source through `IP_PKTINFO`).
    pub local: Ipv4Addr,
    /// Datagrams per `recvmmsg`/`sendmmsg` call.
    pub batch: usize,
    /// Timer and receive coalescing: the loop sleeps this much past the
    /// earliest deadline so deadlines close together are served by one
    /// wake-up and their packets share a `sendmmsg`, and never wakes twice
    /// within this, so received datagrams are taken in batches. Late, never
    /// early: an interval only grows by at most this, which §6.8.7 allows
    /// (it bounds intervals from below).
    pub coalesce: Duration,
    /// Receive buffer of the shared receive sockets, bytes (0: the kernel's
    /// default). Every session's packets queue in one socket: at 50,000
    /// sessions that is about 190,000 packets a second, which the default
    /// (about 200 KiB, a few hundred datagrams) absorbs for only a
    /// millisecond or two of loop delay.
    pub recv_buffer: usize,
}

impl DriverConfig {
    /// Defaults for `local`: batches of 64, 1 ms coalescing.
    pub fn new(local: Ipv4Addr) -> Self {
        DriverConfig {
            local,
            batch: 64,
            coalesce: Duration::from_millis(1),
            recv_buffer: 8 << 20,
        }
    }
}

/// System-call and packet counts, to see batching work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// `recvmmsg` calls that returned data.
    pub recv_calls: u64,
    /// Datagrams received.
    pub recv_packets: u64,
    /// `sendmmsg` calls.
    pub send_calls: u64,
    /// Datagrams sent.
    pub send_packets: u64,
    /// Datagrams dropped because a send failed (buffer full, no route...).
    pub send_errors: u64,
    /// Frames read from a VXLAN device that its flavor refuses (not BFD,
    /// a bad checksum, RFC 8971's MAC or 127/8 checks); inner-TTL failures
    /// are the manager's GTSM drops instead.
    pub vxlan_rejected: u64,
    /// Loop wake-ups.
    pub wakeups: u64,
    /// The XDP path's counters (all zero without one); its packets are
    /// also in `recv_packets`/`send_packets`, its doorbells in `send_calls`.
    pub xdp: XdpStats,
    /// Turns that stalled (see [`crate::turn_watch`]).
    pub turns: TurnStats,
}

/// While sending a long flush on the XDP path, the receive rings are read
/// after every this many frames (about 5 ms of copy-mode transmission).
const XDP_RECEIVE_EVERY: usize = 1024;

/// A manager with its sockets: the event loop of one BFD instance.
#[derive(Debug)]
pub struct Driver {
    manager: Manager,
    config: DriverConfig,
    rx: Vec<(Encap, UdpSocket)>,
    tx: BTreeMap<u16, UdpSocket>,
    recv: RecvBatch,
    stats: IoStats,
    vxlan: Vec<VxlanLink>,
    /// VXLAN frames of the current flush, kept to reuse the buffers.
    vxlan_send: vxlan_link::SendBatch,
    /// Transmissions of the current flush, kept to reuse the allocation.
    pending: Vec<Transmit>,
    send: SendBatch,
    /// The `ppoll` set, rebuilt in place on every wake-up.
    pollfds: Vec<libc::pollfd>,
    /// When `ppoll` last returned, for receive coalescing.
    last_wake: Option<Instant>,
    /// Kernel bypass for plain UDP sessions on one device, if attached.
    xdp: Option<XdpPort>,
    /// Slow turns: counted, the worst logged.
    watch: TurnWatch,
}

fn setsockopt_int(
    sock: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the fd is open for the socket's lifetime, and the option value
    // is a c_int whose size we pass.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets SO_RCVBUF, past `net.core.rmem_max` when privileged (SO_RCVBUFFORCE).
fn set_recv_buffer(sock: &UdpSocket, bytes: usize) -> io::Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    // The kernel doubles the value for bookkeeping; ask for half.
    let v = libc::c_int::try_from(bytes / 2).unwrap_or(libc::c_int::MAX);
    setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v)
        .or_else(|_| setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_RCVBUF, v))
}

impl Driver {
    /// Binds the receive sockets on `local`:3784 and :4784 and one send
    /// socket per source port of the manager's pool.
    pub fn bind(manager: Manager, config: DriverConfig) -> io::Result<Self> {
        let mut rx = Vec::new();
        for encap in [Encap::SingleHop, Encap::MultiHop] {
            let s = UdpSocket::bind(SocketAddrV4::new(config.local, encap.dst_port()))?;
            setsockopt_int(&s, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
            setsockopt_int(&s, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
            set_recv_buffer(&s, config.recv_buffer)?;
            s.set_nonblocking(true)?;
            rx.push((encap, s));
        }
        let mut tx = BTreeMap::new();
        for port in manager.src_ports() {
            let s = UdpSocket::bind(SocketAddrV4::new(config.local, port))?;
            // GTSM (RFC 5881 §5, RFC 5883 §5): always send with TTL 255.
            setsockopt_int(&s, libc::IPPROTO_IP, libc::IP_TTL, 255)?;
            // DF: a BFD packet never needs fragmenting, and with DF on an
            // unconnected socket the kernel skips the per-packet IP ID
            // generation (a shared hashed counter, visible in profiles).
            setsockopt_int(
                &s,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_DO,
            )?;
            s.set_nonblocking(true)?;
            tx.insert(port, s);
        }
        let recv = RecvBatch::new(config.batch.max(1));
        Ok(Driver {
            manager,
            config,
            rx,
            tx,
            recv,
            stats: IoStats::default(),
            vxlan: Vec::new(),
            vxlan_send: vxlan_link::SendBatch::default(),
            pending: Vec::new(),
            send: SendBatch::default(),
            pollfds: Vec::new(),
            last_wake: None,
            xdp: None,
            watch: TurnWatch::default(),
        })
    }

    /// Serves BFD inside VXLAN through device `ifname`, in the BFD VNI of
    /// `flavor` (see [`crate::vxlan_link`]): sessions with `Encap::Vxlan`,
    /// remote `peer.remote` and local `peer.local` (the device's underlay
    /// addresses) then use it. A device attached before for those addresses
    /// is replaced, so a reload can change the device or the flavor; on
    /// error the old one stays.
    pub fn attach_vxlan(
        &mut self,
        ifname: &str,
        peer: PeerKey,
        flavor: VxlanFlavor,
    ) -> io::Result<()> {
        let link = VxlanLink::open(ifname, peer.remote, peer.local, flavor)?;
        match self
            .vxlan
            .iter_mut()
            .find(|l| l.remote == peer.remote && l.local == peer.local)
        {
            Some(old) => *old = link,
            None => self.vxlan.push(link),
        }
        Ok(())
    }

    /// Moves plain UDP BFD (single hop and multihop) on `config.ifname` to
    /// the XDP path (see [`crate::xdp`]); the sockets stay for everything
    /// else and as its fallback. Replaces an earlier attachment.
    pub fn attach_xdp(&mut self, config: XdpConfig) -> io::Result<()> {
        self.xdp = None; // one program per device: detach the old one first
        self.xdp = Some(XdpPort::attach(config)?);
        Ok(())
    }

    /// The XDP path, if attached.
    pub fn xdp(&self) -> Option<&XdpPort> {
        self.xdp.as_ref()
    }

    /// The manager, to read status.
    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// The manager, to add sessions or change them between runs.
    pub fn manager_mut(&mut self) -> &mut Manager {
        &mut self.manager
    }

    /// Hands the manager back.
    pub fn into_manager(self) -> Manager {
        self.manager
    }

    /// System-call counters.
    pub fn io_stats(&self) -> IoStats {
        let mut s = self.stats;
        s.turns = self.watch.stats();
        if let Some(x) = &self.xdp {
            s.xdp = x.stats();
            s.xdp.kernel_drops = x.kernel_drops();
        }
        s
    }

    /// Runs the loop until `until`: sleep in `ppoll` until the next session
    /// deadline or a datagram, receive in batches, run due sessions, send in
    /// batches. A bad datagram is counted by the manager and dropped.
    pub fn run_until(&mut self, until: Instant) -> io::Result<()> {
        while self.turn(Some(until), None)? {}
        Ok(())
    }

    /// Runs the loop for a daemon until [`crate::control::Handle::stop`] or
    /// until every handle is dropped: commands from `control` are applied
    /// between turns and state changes go to `events` (a closed receiver is
    /// ignored).
    pub fn run(&mut self, control: &Control, events: &impl EventSink) -> io::Result<()> {
        loop {
            let keep_going = self.turn(None, Some(control.wake_fd()))?;
            while let Some(e) = self.manager.poll_event() {
                events.deliver(e);
            }
            if !keep_going || !control.apply(self) {
                return Ok(());
            }
        }
    }

    /// Counters and aggregates for metrics, without walking the sessions.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counters: self.manager.counters(),
            states: self.manager.state_counts(),
            lag: self.manager.lag(),
            io: self.io_stats(),
        }
    }

    /// A VXLAN device between `peer.local` and `peer.remote` is attached.
    pub fn has_vxlan(&self, peer: PeerKey) -> bool {
        self.vxlan
            .iter()
            .any(|l| l.remote == peer.remote && l.local == peer.local)
    }

    /// One wake-up: run due sessions, send, sleep until the next deadline (or
    /// `until`, or `extra_fd` readable), receive. False once `until` passed.
    fn turn(&mut self, until: Option<Instant>, extra_fd: Option<libc::c_int>) -> io::Result<bool> {
        let now = Instant::now();
        let cpu_start = thread_cpu();
        self.manager.handle_timeout(now);
        let timers_done = Instant::now();
        self.flush();
        let sent = Instant::now();
        if until.is_some_and(|u| now >= u) {
            return Ok(false);
        }
        let next = self
            .manager
            .poll_timeout()
            .map(|t| t + self.config.coalesce);
        let wake = match (next, until) {
            (Some(n), Some(u)) => Some(n.min(u)),
            (n, u) => n.or(u),
        };
        // The loop plans to run again at `wake`, or at once if that passed
        // while it worked: later than that is time the CPU went elsewhere.
        let planned = wake.map(|w| w.max(Instant::now()));
        // Receive coalescing: no two wake-ups closer than `coalesce`. What
        // arrives meanwhile waits in the socket buffers and is taken in one
        // batch, instead of each datagram waking the loop on its own (at a
        // few thousand packets a second those wake-ups were most of the
        // cost). A datagram is handled at most `coalesce` late, which only
        // shortens the remote's margin by that much.
        if let Some(prev) = self.last_wake {
            let calm = wake.map_or(prev + self.config.coalesce, |w| {
                w.min(prev + self.config.coalesce)
            });
            let now = Instant::now();
            if calm > now {
                std::thread::sleep(calm - now);
            }
        }
        // Without any deadline (no sessions) sleep in slices until a command comes.
        let timeout = wake.map_or(Duration::from_secs(1), |w| {
            w.saturating_duration_since(Instant::now())
        });
        self.wait(timeout, extra_fd)?;
        let woke = Instant::now();
        self.last_wake = Some(woke);
        self.stats.wakeups += 1;
        for i in 0..self.rx.len() {
            self.drain_socket(i)?;
        }
        for i in 0..self.vxlan.len() {
            self.drain_vxlan(i)?;
        }
        self.drain_xdp();
        let done = Instant::now();
        self.watch.record(
            TurnTimes {
                timers: timers_done - now,
                send: sent - timers_done,
                receive: done - woke,
                // ppoll may return early (a datagram, a command), never
                // meaningfully late unless the CPU went elsewhere.
                late: planned.map_or(Duration::ZERO, |p| woke.saturating_duration_since(p)),
                // The sleep between uses next to no CPU.
                on_cpu: thread_cpu().saturating_sub(cpu_start),
            },
            done,
        );
        Ok(true)
    }

    fn wait(&mut self, timeout: Duration, extra_fd: Option<libc::c_int>) -> io::Result<()> {
        let fds = &mut self.pollfds;
        fds.clear();
        fds.extend(
            self.rx
                .iter()
                .map(|(_, s)| s.as_raw_fd())
                .chain(self.vxlan.iter().map(VxlanLink::raw_fd))
                .chain(self.xdp.iter().flat_map(XdpPort::raw_fds))
                .chain(extra_fd)
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                }),
        );
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd; `ts` outlives the call.
        let rc = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }

    fn drain_socket(&mut self, i: usize) -> io::Result<()> {
        let (encap, fd) = (self.rx[i].0, self.rx[i].1.as_raw_fd());
        loop {
            let n = match self.recv.recv(fd) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.stats.recv_calls += 1;
            self.stats.recv_packets += n as u64;
            let now = Instant::now();
            for k in 0..n {
                let m = self.recv.meta(k);
                let d = Datagram {
                    remote: IpAddr::V4(m.src),
                    local: IpAddr::V4(m.dst.unwrap_or(self.config.local)),
                    ttl: m.ttl,
                    encap,
                    payload: self.recv.payload(k),
                };
                // Errors are counted by the manager; the loop goes on.
                let _ = self.manager.handle_datagram(now, &d);
            }
            if n < self.recv.len() {
                return Ok(());
            }
        }
    }

    fn drain_xdp(&mut self) {
        let Some(xdp) = &mut self.xdp else { return };
        if let Err(e) = xdp.refresh(Instant::now()) {
            tracing::warn!(device = xdp.ifname(), error = %e, "XDP path: refreshing addresses, neighbours and routes failed");
        }
        self.receive_xdp();
    }

    /// Handles the frames waiting in the XDP sockets' receive rings.
    fn receive_xdp(&mut self) {
        let Some(xdp) = &mut self.xdp else { return };
        let now = Instant::now();
        let manager = &mut self.manager;
        // Errors are counted by the manager; the loop goes on.
        let got = xdp.receive(|d| {
            let _ = manager.handle_datagram(now, d);
        });
        if got > 0 {
            self.stats.recv_calls += 1;
            self.stats.recv_packets += got as u64;
        }
    }

    fn drain_vxlan(&mut self, i: usize) -> io::Result<()> {
        let mut buf = [0u8; MAX_LEN];
        while let Some(got) = self.vxlan[i].recv(&mut buf)? {
            let (ttl, n) = match got {
                Frame::Bfd { ttl, len } => (ttl, len),
                Frame::Outgoing => continue,
                Frame::Rejected(e) => {
                    self.stats.vxlan_rejected += 1;
                    tracing::debug!(remote = %self.vxlan[i].remote, error = %e, "vxlan frame dropped");
                    continue;
                }
            };
            self.stats.recv_calls += 1;
            self.stats.recv_packets += 1;
            let d = Datagram {
                remote: self.vxlan[i].remote,
                local: self.vxlan[i].local,
                ttl: Some(ttl),
                encap: Encap::Vxlan,
                payload: &buf[..n],
            };
            let _ = self.manager.handle_datagram(Instant::now(), &d);
        }
        Ok(())
    }

    /// Sends everything queued, one `sendmmsg` per source port and batch,
    /// and one for the frames of every VXLAN device.
    fn flush(&mut self) {
        if self.manager.pending_transmits() == 0 {
            return;
        }
        // Reused between turns: no allocation per wake-up.
        let mut list = std::mem::take(&mut self.pending);
        list.clear();
        let now = Instant::now();
        let xdp_before = self.xdp.as_ref().map(|x| x.stats());
        let mut queued_xdp = 0usize;
        while let Some(t) = self.manager.poll_transmit() {
            if t.peer.encap == Encap::Vxlan {
                let batch = &mut self.vxlan_send;
                let queued = self
                    .vxlan
                    .iter()
                    .find(|l| l.remote == t.peer.remote && l.local == t.peer.local)
                    .is_some_and(|l| batch.queue(l, &t));
                if !queued {
                    self.stats.send_errors += 1;
                }
                continue;
            }
            if let Some(x) = &mut self.xdp
                && x.queue(&t, now)
            {
                queued_xdp += 1;
                if queued_xdp % XDP_RECEIVE_EVERY == 0 {
                    // A turn that runs late sends for tens of ms (copy mode
                    // transmits within the doorbell call); meanwhile the
                    // receive rings fill, and a full ring drops frames.
                    x.flush();
                    self.receive_xdp();
                }
                continue;
            }
            list.push(t);
        }
        if let (Some(x), Some(before)) = (&mut self.xdp, xdp_before) {
            x.flush();
            let after = x.stats();
            self.stats.send_calls += after.doorbells - before.doorbells;
            self.stats.send_packets += after.sent - before.sent;
            self.stats.send_errors += after.tx_full - before.tx_full;
        }
        if let Some(link) = self.vxlan.first() {
            let queued = self.vxlan_send.queued();
            let (calls, sent) = self.vxlan_send.send(link.raw_fd());
            self.stats.send_calls += calls;
            self.stats.send_packets += sent as u64;
            self.stats.send_errors += (queued - sent) as u64;
        }
        list.sort_unstable_by_key(|t| t.src_port);
        let set_source = self.config.local.is_unspecified();
        for group in list.chunk_by(|a, b| a.src_port == b.src_port) {
            let Some(sock) = self.tx.get(&group[0].src_port) else {
                self.stats.send_errors += group.len() as u64;
                continue;
            };
            for chunk in group.chunks(self.config.batch.max(1)) {
                let (calls, sent) = self.send.send(sock.as_raw_fd(), chunk, set_source);
                self.stats.send_calls += calls;
                self.stats.send_packets += sent as u64;
                self.stats.send_errors += (chunk.len() - sent) as u64;
            }
        }
        self.pending = list;
    }
}

fn sockaddr_v4(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut a: libc::sockaddr_in = unsafe { zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr = libc::in_addr {
        s_addr: u32::from(ip).to_be(),
    };
    a
}

/// Buffers for `sendmmsg`, reused across calls.
#[derive(Debug, Default)]
struct SendBatch {
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<[u64; 4]>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside are only meaningful during `send`, which
// rebuilds them from its arguments each call; between calls they are dead.
unsafe impl Send for SendBatch {}

impl SendBatch {
    /// `sendmmsg` of one batch; returns (system calls, datagrams sent). A
    /// datagram the kernel refuses is skipped (BFD tolerates loss), not retried.
    fn send(&mut self, fd: libc::c_int, list: &[Transmit], set_source: bool) -> (u64, usize) {
        self.addrs.clear();
        self.addrs.extend(list.iter().map(|t| match t.peer.remote {
            IpAddr::V4(v4) => sockaddr_v4(v4, t.peer.encap.dst_port()),
            // IPv6 is not bound by this driver; an all-zero address fails below.
            IpAddr::V6(_) => sockaddr_v4(Ipv4Addr::UNSPECIFIED, 0),
        }));
        self.iovs.clear();
        self.iovs.extend(list.iter().map(|t| libc::iovec {
            iov_base: t.payload.as_ptr() as *mut libc::c_void,
            iov_len: t.len,
        }));
        // One IP_PKTINFO control message per datagram when the socket is bound to
        // the wildcard address: it picks the session's local address as source.
        self.cmsgs.clear();
        self.cmsgs
            .resize(if set_source { list.len() } else { 0 }, [0; 4]);
        self.hdrs.clear();
        for (i, t) in list.iter().enumerate() {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            if let (Some(c), IpAddr::V4(src)) = (self.cmsgs.get_mut(i), t.peer.local) {
                h.msg_hdr.msg_control = c.as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE is a pure size computation.
                h.msg_hdr.msg_controllen =
                    unsafe { libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) } as _;
                // SAFETY: the control buffer (32 bytes, 8-aligned) holds one
                // cmsghdr plus an in_pktinfo, which is what CMSG_SPACE reserved.
                unsafe {
                    let cm = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                    (*cm).cmsg_level = libc::IPPROTO_IP;
                    (*cm).cmsg_type = libc::IP_PKTINFO;
                    (*cm).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                    let info = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from(src).to_be(),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<libc::in_pktinfo>(), info);
                }
            }
            self.hdrs.push(h);
        }
        // SAFETY: every header points into `self.addrs`, `self.iovs` and
        // `self.cmsgs`, which are not touched until after the call, and
        // each iovec into a `Transmit` of `list`.
        unsafe { crate::mmsg::send_all(fd, &mut self.hdrs, "udp") }
    }
}

/// What the kernel told us about one received datagram.
#[derive(Debug, Clone, Copy)]
struct Meta {
    src: Ipv4Addr,
    dst: Option<Ipv4Addr>,
    ttl: Option<u8>,
}

/// Buffers for one `recvmmsg` call, reused across calls.
#[derive(Debug)]
struct RecvBatch {
    bufs: Vec<[u8; 256]>,
    addrs: Vec<libc::sockaddr_in>,
    cmsgs: Vec<[u64; 16]>,
    lens: Vec<usize>,
    metas: Vec<Meta>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs` and `hdrs` are only meaningful during
// `recv`, which rebuilds them from `self` each call; between calls they are dead.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    fn new(n: usize) -> Self {
        RecvBatch {
            bufs: vec![[0; 256]; n],
            addrs: vec![sockaddr_v4(Ipv4Addr::UNSPECIFIED, 0); n],
            cmsgs: vec![[0; 16]; n],
            lens: vec![0; n],
            metas: vec![
                Meta {
                    src: Ipv4Addr::UNSPECIFIED,
                    dst: None,
                    ttl: None
                };
                n
            ],
            iovs: Vec::with_capacity(n),
            hdrs: Vec::with_capacity(n),
        }
    }

    fn len(&self) -> usize {
        self.bufs.len()
    }

    fn payload(&self, k: usize) -> &[u8] {
        // Longer datagrams were truncated by the kernel; MAX_LEN bounds BFD anyway.
        &self.bufs[k][..self.lens[k].min(256)]
    }

    fn meta(&self, k: usize) -> Meta {
        self.metas[k]
    }

    fn recv(&mut self, fd: libc::c_int) -> io::Result<usize> {
        let n = self.len();
        // Rebuilt in place every call (the kernel rewrites the lengths), so
        // receiving allocates nothing.
        self.iovs.clear();
        self.iovs.extend(self.bufs.iter_mut().map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        }));
        self.hdrs.clear();
        for i in 0..n {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = size_of::<[u64; 16]>() as _;
            self.hdrs.push(h);
        }
        let hdrs = &mut self.hdrs;
        // SAFETY: each header points at buffers owned by `self` (`bufs` via
        // `iovs`, `addrs`, `cmsgs`), all alive and unaliased for the call.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = rc as usize;
        for (k, h) in hdrs.iter().enumerate().take(got) {
            self.lens[k] = h.msg_len as usize;
            let a = &self.addrs[k];
            let src = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            let (mut dst, mut ttl) = (None, None);
            // SAFETY: the kernel filled `msg_control` up to `msg_controllen`;
            // the CMSG_* helpers stay within it, and we read each payload
            // with read_unaligned at the size its (level, type) defines.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                while !c.is_null() {
                    let data = libc::CMSG_DATA(c);
                    match ((*c).cmsg_level, (*c).cmsg_type) {
                        (libc::IPPROTO_IP, libc::IP_TTL) => {
                            let v = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                            ttl = u8::try_from(v).ok();
                        }
                        (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                            let p = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                            dst = Some(Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr)));
                        }
                        _ => {}
                    }
                    c = libc::CMSG_NXTHDR(&h.msg_hdr, c);
                }
            }
            self.metas[k] = Meta { src, dst, ttl };
        }
        Ok(got)
    }
}

const _: () = assert!(MAX_LEN <= 256);
