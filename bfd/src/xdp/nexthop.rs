//! Where an IPv4 packet leaves, asked of the kernel: the route
//! (`RTM_GETROUTE`, as `ip route get` does: output device and gateway, so
//! policy routing and VRFs are the kernel's answer, not ours), the
//! neighbour's MAC (`/proc/net/arp`, complete entries only) and the
//! device's own MAC and addresses. The XDP path builds its frames from
//! these; anything unresolved goes through the kernel's sockets instead,
//! which also makes the kernel resolve it.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A route's first hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Output device.
    pub oif: u32,
    /// The neighbour to send to: the gateway, or the destination itself.
    pub via: Ipv4Addr,
}

/// A netlink socket for route queries.
#[derive(Debug)]
pub struct RouteQuery {
    fd: OwnedFd,
    seq: u32,
}

const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTN_UNICAST: u8 = 1;

impl RouteQuery {
    /// Opens a NETLINK_ROUTE socket.
    pub fn open() -> io::Result<RouteQuery> {
        // SAFETY: plain socket(2).
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: setting a timeval option of its size on our socket.
        unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(RouteQuery { fd, seq: 0 })
    }

    /// The first hop towards `dst`; `None` when the kernel has no unicast
    /// route (unreachable, local, blackhole...).
    pub fn get(&mut self, dst: Ipv4Addr) -> io::Result<Option<Route>> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = [0u8; 36];
        req[0..4].copy_from_slice(&36u32.to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_GETROUTE.to_ne_bytes());
        req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        req[16] = libc::AF_INET as u8;
        req[17] = 32; // rtm_dst_len
        req[28..30].copy_from_slice(&8u16.to_ne_bytes());
        req[30..32].copy_from_slice(&RTA_DST.to_ne_bytes());
        req[32..36].copy_from_slice(&dst.octets());
        // SAFETY: sending our buffer on our socket (to the kernel: no address).
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: receiving into our buffer.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            match parse_reply(&buf[..n as usize], self.seq)? {
                Reply::Route(r) => return Ok(r),
                Reply::Other => continue,
            }
        }
    }
}

enum Reply {
    Route(Option<Route>),
    Other,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn parse_reply(buf: &[u8], seq: u32) -> io::Result<Reply> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "short netlink route reply");
    let len = u32_at(buf, 0).ok_or_else(bad)? as usize;
    let kind = u16_at(buf, 4).ok_or_else(bad)?;
    if u32_at(buf, 8) != Some(seq) {
        return Ok(Reply::Other);
    }
    let msg = buf.get(..len).ok_or_else(bad)?;
    if kind == NLMSG_ERROR {
        let errno = u32_at(msg, 16).ok_or_else(bad)? as i32;
        return match -errno {
            0 => Ok(Reply::Other),
            libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EINVAL | libc::EACCES => {
                Ok(Reply::Route(None))
            }
            e => Err(io::Error::from_raw_os_error(e)),
        };
    }
    if kind != RTM_NEWROUTE {
        return Ok(Reply::Other);
    }
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(4)
    if *msg.get(16 + 7).ok_or_else(bad)? != RTN_UNICAST {
        return Ok(Reply::Route(None));
    }
    let (mut oif, mut gateway, mut dst) = (None, None, None);
    let mut at = 16 + 12;
    while at + 4 <= msg.len() {
        let alen = usize::from(u16_at(msg, at).ok_or_else(bad)?);
        let atype = u16_at(msg, at + 2).ok_or_else(bad)? & 0x3fff;
        if alen < 4 || at + alen > msg.len() {
            break;
        }
        let val = &msg[at + 4..at + alen];
        let v4 = || <[u8; 4]>::try_from(val).ok().map(Ipv4Addr::from);
        match atype {
            RTA_OIF => oif = u32_at(val, 0),
            RTA_GATEWAY => gateway = v4(),
            RTA_DST => dst = v4(),
            _ => {}
        }
        at += (alen + 3) & !3;
    }
    Ok(Reply::Route(match (oif, gateway.or(dst)) {
        (Some(oif), Some(via)) => Some(Route { oif, via }),
        _ => None,
    }))
}

/// Complete IPv4 neighbour entries of device `ifname`: address -> MAC,
/// from the ARP table of the calling thread's network namespace
/// (`/proc/thread-self`: a thread may have entered another one).
pub fn neighbours(ifname: &str) -> io::Result<HashMap<Ipv4Addr, [u8; 6]>> {
    Ok(parse_arp(
        &std::fs::read_to_string("/proc/thread-self/net/arp")?,
        ifname,
    ))
}

/// Parses `/proc/net/arp` text (header line, then `IP type flags MAC mask
/// device`); keeps complete (ATF_COM, 0x2) entries of `ifname`.
pub fn parse_arp(text: &str, ifname: &str) -> HashMap<Ipv4Addr, [u8; 6]> {
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [ip, _hw, flags, mac, _mask, dev] = f[..] else {
            continue;
        };
        if dev != ifname {
            continue;
        }
        let complete =
            u32::from_str_radix(flags.trim_start_matches("0x"), 16).is_ok_and(|fl| fl & 0x2 != 0);
        let (Ok(ip), Some(mac)) = (ip.parse::<Ipv4Addr>(), parse_mac(mac)) else {
            continue;
        };
        if complete && mac != [0; 6] {
            out.insert(ip, mac);
        }
    }
    out
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// An `ifreq` for `ifname`, and a datagram socket in the calling thread's
/// network namespace to ask about it (sysfs shows the namespace it was
/// mounted in, which a thread that entered another one does not see).
fn ifreq(ifname: &str) -> io::Result<(OwnedFd, libc::ifreq)> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad device name {ifname:?}"),
        ));
    }
    // SAFETY: plain socket(2).
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
        *d = s as libc::c_char;
    }
    Ok((fd, req))
}

/// The device's MAC address.
pub fn device_mac(ifname: &str) -> io::Result<[u8; 6]> {
    let (fd, mut req) = ifreq(ifname)?;
    // SAFETY: SIOCGIFHWADDR fills the ifreq we pass.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the hardware-address member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    if sa.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ifname} is not an Ethernet device"),
        ));
    }
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// The device's index.
pub fn ifindex(ifname: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in device name"))?;
    // SAFETY: a NUL-terminated name.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no device {ifname}: {}", io::Error::last_os_error()),
        )),
        i => Ok(i),
    }
}

/// Receive queues of the device (one AF_XDP socket each), from the
/// driver's channel counts (`ethtool -l`); 1 when it does not say.
pub fn rx_queues(ifname: &str) -> u32 {
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    let Ok((fd, mut req)) = ifreq(ifname) else {
        return 1;
    };
    // struct ethtool_channels: cmd, max_rx, max_tx, max_other, max_combined,
    // rx_count, tx_count, other_count, combined_count.
    let mut ch = [0u32; 9];
    ch[0] = ETHTOOL_GCHANNELS;
    req.ifr_ifru.ifru_data = ch.as_mut_ptr().cast();
    // SAFETY: SIOCETHTOOL reads the command from and writes the counts to
    // `ch`, which lives across the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &mut req) } != 0 {
        return 1;
    }
    ch[5].max(ch[8]).max(1)
}

/// The IPv4 addresses assigned to `ifname`.
pub fn device_addresses(ifname: &str) -> io::Result<Vec<Ipv4Addr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: walking the list getifaddrs returned; each node, name and
        // address is valid until freeifaddrs.
        unsafe {
            let ifa = &*p;
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name);
            if !ifa.ifa_addr.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
                && name.to_bytes() == ifname.as_bytes()
            {
                let sin = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
            p = ifa.ifa_next;
        }
    }
    // SAFETY: freeing the list getifaddrs gave us, once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_keeps_complete_entries_of_the_device() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device
198.51.100.1     0x1         0x2         02:00:00:00:00:01     *        veth0
198.51.100.2     0x1         0x0         00:00:00:00:00:00     *        veth0
198.51.100.3     0x1         0x2         02:00:00:00:00:03     *        eth9
198.51.100.4     0x1         0x6         02:00:00:00:00:04     *        veth0
";
        let m = parse_arp(text, "veth0");
        assert_eq!(m.len(), 2);
        assert_eq!(m[&Ipv4Addr::new(198, 51, 100, 1)], [2, 0, 0, 0, 0, 1]);
        assert!(m.contains_key(&Ipv4Addr::new(198, 51, 100, 4)));
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("02:aB:00:00:00:ff\n"),
            Some([2, 0xab, 0, 0, 0, 0xff])
        );
        assert_eq!(parse_mac("02:ab:00:00:00"), None);
        assert_eq!(parse_mac("02:ab:00:00:00:00:01"), None);
        assert_eq!(parse_mac("zz:ab:00:00:00:00"), None);
    }

    #[test]
    fn route_replies_give_the_gateway_or_the_destination() {
        // nlmsghdr(16) rtmsg(12) RTA_DST RTA_OIF RTA_GATEWAY
        let mut m = vec![0u8; 28];
        m[4..6].copy_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        m[8..12].copy_from_slice(&7u32.to_ne_bytes());
        m[16 + 7] = RTN_UNICAST;
        for (t, v) in [
            (RTA_DST, [198, 51, 100, 9]),
            (RTA_OIF, 3u32.to_ne_bytes()),
            (RTA_GATEWAY, [198, 18, 0, 254]),
        ] {
            m.extend_from_slice(&8u16.to_ne_bytes());
            m.extend_from_slice(&t.to_ne_bytes());
            m.extend_from_slice(&v);
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        let Ok(Reply::Route(Some(r))) = parse_reply(&m, 7) else {
            panic!("no route parsed");
        };
        assert_eq!(
            r,
            Route {
                oif: 3,
                via: Ipv4Addr::new(198, 18, 0, 254)
            }
        );
        // Without a gateway the neighbour is the destination.
        m.truncate(m.len() - 8);
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        let Ok(Reply::Route(Some(r))) = parse_reply(&m, 7) else {
            panic!("no route parsed");
        };
        assert_eq!(r.via, Ipv4Addr::new(198, 51, 100, 9));
        // Another sequence number is not ours.
        assert!(matches!(parse_reply(&m, 8), Ok(Reply::Other)));
        // A local route is not one to send frames on.
        m[16 + 7] = 2;
        assert!(matches!(parse_reply(&m, 7), Ok(Reply::Route(None))));
    }
}
