//! BFD inside VXLAN through a kernel VXLAN device: a device in the BFD VNI
//! whose remote is one VTEP does the outer encapsulation (and shares
//! UDP/4789 with the kernel's other VXLAN devices, which a user socket could
//! not); we read and write the inner frames of the link's
//! [`VxlanFlavor`] ([`crate::vxlan`]) on it with an `AF_PACKET` socket.
//! Building the inner Ethernet header ourselves means no address or ARP
//! entry is needed on the device (OVS does not answer ARP for its BFD
//! address, and RFC 8971's 127.0.0.1 is not an address to resolve).
//!
//! Create the device outside (the gateway's netlink code, or `ip link add
//! NAME type vxlan id VNI remote VTEP local US dstport 4789`, VNI 0 for the
//! OVS convention, the Management VNI for RFC 8971) and attach it with
//! [`crate::udp::Driver::attach_vxlan`]. Give it no IP address and turn
//! IPv6 off on it (`net.ipv6.conf.NAME.disable_ipv6=1`): otherwise the
//! kernel's own link-local chatter (neighbour solicitations, MLD, router
//! solicitations) rides the BFD VNI to the remote's BFD port.
//!
//! Linux allows one VXLAN device per VNI and UDP port in a namespace
//! (whatever its local and remote addresses: `ip link add` answers "A VXLAN
//! device with the specified VNI already exists"), so devices toward several
//! remotes need distinct VNIs (a Management VNI per remote VTEP for RFC
//! 8971), as the tests do; one shared external (collect-metadata) device is
//! not supported here.
//!
//! The transmissions of one flush, whatever their device, are built into a
//! `SendBatch` and leave in one `sendmmsg` on one packet socket (each
//! frame names its device in its `sockaddr_ll`), from buffers kept between
//! flushes. A link normally carries a single session (one per remote VTEP),
//! so batching per device would rarely put more than one frame in a call.

use crate::manager::Transmit;
use crate::packet::MAX_LEN;
use crate::vxlan::{VxlanError, VxlanFlavor};
use crate::wire::UdpIpv4Repr;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETH_P_IP: u16 = 0x0800;
/// Room for the largest inner frame: Ethernet, IPv4, UDP and a BFD packet.
const FRAME_MAX: usize = 64 + MAX_LEN;

/// One VXLAN device in the BFD VNI and its packet socket, for one remote VTEP.
#[derive(Debug)]
pub struct VxlanLink {
    fd: OwnedFd,
    mac: [u8; 6],
    flavor: VxlanFlavor,
    /// Our underlay IPv4 address: RFC 8971's inner source.
    vtep_ip: Ipv4Addr,
    /// Where every frame goes: the device and the flavor's inner MAC.
    dst: libc::sockaddr_ll,
    /// The remote VTEP's underlay address: the sessions' `PeerKey::remote`.
    pub remote: IpAddr,
    /// Our underlay address on the device: the sessions' `PeerKey::local`.
    pub local: IpAddr,
}

/// What one read from a link's socket produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A copy of our own transmission (packet sockets see those too).
    Outgoing,
    /// A BFD payload of `len` bytes with its inner TTL (GTSM is the manager's).
    Bfd {
        /// Inner IPv4 TTL.
        ttl: u8,
        /// Bytes copied out.
        len: usize,
    },
    /// A frame the link's flavor does not accept.
    Rejected(VxlanError),
}

/// VXLAN frames of one flush, for every device, and the `sendmmsg`
/// headers pointing at them; kept between flushes so sending allocates only
/// when a flush is bigger than every one before it.
#[derive(Debug, Default)]
pub(crate) struct SendBatch {
    frames: Vec<[u8; FRAME_MAX]>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_ll>,
    queued: usize,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs` and `hdrs` are only meaningful during
// `SendBatch::send`, which rebuilds them each call; between calls they are
// dead.
unsafe impl Send for SendBatch {}

impl SendBatch {
    /// Builds the inner frame of one BFD packet for `link` into the batch;
    /// false if it does not fit a frame.
    pub(crate) fn queue(&mut self, link: &VxlanLink, t: &Transmit) -> bool {
        let inner = link.flavor.inner(link.mac, link.vtep_ip, t.src_port);
        if self.queued == self.frames.len() {
            self.frames.push([0; FRAME_MAX]);
            self.lens.push(0);
            self.addrs.push(link.dst);
        }
        let Some(n) = inner.emit(t.bytes(), true, &mut self.frames[self.queued]) else {
            return false;
        };
        self.lens[self.queued] = n;
        self.addrs[self.queued] = link.dst;
        self.queued += 1;
        true
    }

    /// Frames queued since the last [`SendBatch::send`].
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Sends the queued frames with `sendmmsg` on packet socket `fd` (any
    /// link's: the address picks the device) and empties the batch; returns
    /// (system calls, frames sent). A frame the kernel refuses (its device
    /// down...) is skipped, since BFD tolerates loss; a full socket buffer
    /// drops the rest.
    pub(crate) fn send(&mut self, fd: libc::c_int) -> (u64, usize) {
        let n = std::mem::take(&mut self.queued);
        if n == 0 {
            return (0, 0);
        }
        self.iovs.clear();
        self.iovs.extend(
            self.frames[..n]
                .iter_mut()
                .zip(&self.lens)
                .map(|(f, &len)| libc::iovec {
                    iov_base: f.as_mut_ptr().cast(),
                    iov_len: len,
                }),
        );
        self.hdrs.clear();
        for (iov, addr) in self.iovs.iter_mut().zip(&mut self.addrs) {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = (addr as *mut libc::sockaddr_ll).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            self.hdrs.push(h);
        }
        // SAFETY: every header points into `self.addrs` and `self.iovs`,
        // whose iovecs point into `self.frames`; none is touched until the
        // call returns.
        unsafe { crate::mmsg::send_all(fd, &mut self.hdrs, "vxlan") }
    }
}

fn ifindex(name: &str) -> io::Result<i32> {
    let c =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i as i32)
    }
}

/// The device's MAC through `SIOCGIFHWADDR` on `fd` (sysfs would show the
/// mounter's namespace, not the caller's).
fn read_mac(fd: libc::c_int, name: &str) -> io::Result<[u8; 6]> {
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the NUL-terminated name and fills the union.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFHWADDR the union holds a sockaddr with the MAC.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data) {
        *m = d as u8;
    }
    Ok(mac)
}

impl VxlanLink {
    /// Opens a packet socket on device `name` (a VXLAN device in the BFD VNI
    /// of `flavor`, from `local` toward `remote`). RFC 8971 needs an IPv4
    /// `local`: it is the inner source address.
    pub fn open(
        name: &str,
        remote: IpAddr,
        local: IpAddr,
        flavor: VxlanFlavor,
    ) -> io::Result<VxlanLink> {
        let vtep_ip = match (local, flavor) {
            (IpAddr::V4(a), _) => a,
            (IpAddr::V6(_), VxlanFlavor::OvsVtep) => Ipv4Addr::UNSPECIFIED,
            (IpAddr::V6(_), VxlanFlavor::Rfc8971 { .. }) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "RFC 8971 over an IPv6 underlay is not supported",
                ));
            }
        };
        let ifindex = ifindex(name)?;
        // SAFETY: plain socket(2); we own the result on success.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_IP.to_be()),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mac = read_mac(fd.as_raw_fd(), name)?;
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_IP.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: binds our socket to a sockaddr_ll of the size we pass.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut dst = sll;
        dst.sll_halen = 6;
        dst.sll_addr[..6].copy_from_slice(&flavor.dst_mac());
        Ok(VxlanLink {
            fd,
            mac,
            flavor,
            vtep_ip,
            dst,
            remote,
            local,
        })
    }

    pub(crate) fn raw_fd(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }

    /// Reads one frame; `Ok(None)` when nothing is queued. A BFD frame's
    /// payload is copied into `out`, with its TTL for the manager's GTSM
    /// check, which drops and counts a bad one like every other
    /// encapsulation's.
    pub(crate) fn recv(&self, out: &mut [u8]) -> io::Result<Option<Frame>> {
        let mut frame = [0u8; 256];
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: reads into `frame` and `sll`, both live, with their sizes.
        let rc = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                frame.as_mut_ptr().cast(),
                frame.len(),
                0,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if sll.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(Some(Frame::Outgoing));
        }
        let (repr, bfd) = match UdpIpv4Repr::parse(&frame[..rc as usize]) {
            Ok(v) => v,
            Err(e) => return Ok(Some(Frame::Rejected(e.into()))),
        };
        if let Err(e) = self.flavor.check_inner(&repr) {
            return Ok(Some(Frame::Rejected(e)));
        }
        let Some(dst) = out.get_mut(..bfd.len()) else {
            return Ok(Some(Frame::Rejected(VxlanError::Oversized(bfd.len()))));
        };
        dst.copy_from_slice(bfd);
        Ok(Some(Frame::Bfd {
            ttl: repr.ttl,
            len: bfd.len(),
        }))
    }
}
