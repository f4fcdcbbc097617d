//! BFD inside VXLAN through a kernel VXLAN device: a VNI 0 device whose
//! remote is one switch does the outer encapsulation (and shares UDP/4789
//! with the kernel's other VXLAN devices, which a user socket could not);
//! we read and write the inner frames of the OVS convention
//! ([`crate::vxlan`]) on it with an `AF_PACKET` socket. Building the inner
//! Ethernet header ourselves means no address or ARP entry is needed on the
//! device (OVS does not answer ARP for its BFD address anyway).
//!
//! Create the device outside (the gateway's netlink code, or `ip link add
//! NAME type vxlan id 0 remote SWITCH local US dstport 4789`) and attach it
//! with [`crate::udp::Driver::attach_vxlan`]. Give it no IP address and
//! turn IPv6 off on it (`net.ipv6.conf.NAME.disable_ipv6=1`): otherwise the
//! kernel's own link-local chatter (neighbour solicitations, MLD, router
//! solicitations) rides VNI 0 into the switch's BFD port.

use crate::manager::Transmit;
use crate::vxlan::{self, BFD_CONTROL_PORT};
use crate::wire::UdpIpv4Repr;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETH_P_IP: u16 = 0x0800;

/// One VNI 0 VXLAN device and its packet socket, for one remote switch.
#[derive(Debug)]
pub struct VxlanLink {
    fd: OwnedFd,
    ifindex: i32,
    mac: [u8; 6],
    /// The switch's underlay address: the sessions' `PeerKey::remote`.
    pub remote: IpAddr,
    /// Our underlay address on the device: the sessions' `PeerKey::local`.
    pub local: IpAddr,
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
    /// Opens a packet socket on device `name` (a VNI 0 VXLAN device from
    /// `local` toward `remote`).
    pub fn open(name: &str, remote: IpAddr, local: IpAddr) -> io::Result<VxlanLink> {
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
        Ok(VxlanLink {
            fd,
            ifindex,
            mac,
            remote,
            local,
        })
    }

    pub(crate) fn raw_fd(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }

    /// Sends one BFD packet as an inner frame: our device MAC to
    /// 00:23:20:00:00:01, 169.254.1.0 -> 169.254.1.1, TTL 255.
    pub(crate) fn send(&self, t: &Transmit) -> io::Result<()> {
        let inner = vxlan::ovs_inner(self.mac, t.src_port);
        let mut frame = [0u8; 128];
        let n = inner
            .emit(t.bytes(), true, &mut frame)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_IP.to_be();
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&vxlan::BFD_DST_MAC);
        // SAFETY: sends `n` bytes of `frame` to a sockaddr_ll of the size we pass.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                n,
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Reads one frame; `Ok(None)` when nothing is queued. Returns the inner
    /// TTL and the BFD payload length copied into `out`, for frames that are
    /// UDP to port 3784 and not our own transmissions.
    pub(crate) fn recv(&self, out: &mut [u8]) -> io::Result<Option<Option<(u8, usize)>>> {
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
        // A packet socket also sees what we send.
        if sll.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(Some(None));
        }
        let Ok((repr, bfd)) = UdpIpv4Repr::parse(&frame[..rc as usize]) else {
            return Ok(Some(None));
        };
        if repr.dst_port != BFD_CONTROL_PORT || bfd.len() > out.len() {
            return Ok(Some(None));
        }
        out[..bfd.len()].copy_from_slice(bfd);
        Ok(Some(Some((repr.ttl, bfd.len()))))
    }
}
