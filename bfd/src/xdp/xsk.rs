//! One AF_XDP socket in copy mode: its UMEM (frames shared with the kernel)
//! and its four rings. Frames are split once: the first `rx` feed the fill
//! ring (receive), the other `tx` are the transmit pool, returned through
//! the completion ring. The receive ring is what absorbs a loop that is
//! late (the kernel drops what does not fit), so it is the big one. Copy mode works on every driver (zero-copy needs
//! driver support, and a BFD packet is 66 bytes: the copy is not the cost).

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// UMEM chunk size: the smallest the kernel takes.
pub const FRAME_SIZE: usize = 2048;

/// A mapped ring: producer and consumer indexes plus the descriptor array.
#[derive(Debug)]
struct Ring {
    map: *mut u8,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    descs: *mut u8,
    size: u32,
    /// Our cached copy of the index we own (producer or consumer).
    cached: u32,
}

impl Ring {
    /// Maps ring `pgoff` of `fd` with `size` entries of `entry` bytes.
    fn map(
        fd: libc::c_int,
        off: &libc::xdp_ring_offset,
        pgoff: u64,
        size: u32,
        entry: usize,
    ) -> io::Result<Ring> {
        let len = off.desc as usize + size as usize * entry;
        // SAFETY: mapping a ring the kernel created for this socket, at the
        // offsets it reported; checked for MAP_FAILED below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = map.cast::<u8>();
        // SAFETY: the offsets are inside the mapping (the kernel's layout).
        unsafe {
            Ok(Ring {
                map: base,
                map_len: len,
                producer: base.add(off.producer as usize).cast(),
                consumer: base.add(off.consumer as usize).cast(),
                descs: base.add(off.desc as usize),
                size,
                cached: 0,
            })
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping, 4-aligned by the kernel.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.consumer }
    }

    fn mask(&self) -> u32 {
        self.size - 1
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.map.cast(), self.map_len) };
    }
}

/// Socket-level counters of the kernel (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Dropped for another reason (no room in the UMEM...).
    pub rx_dropped: u64,
    /// Dropped because the receive ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
}

impl XskStats {
    /// Frames dropped for any of the reasons above.
    pub fn drops(&self) -> u64 {
        self.rx_dropped + self.rx_ring_full + self.rx_fill_ring_empty
    }
}

/// An AF_XDP socket bound to one queue of one device.
#[derive(Debug)]
pub struct Xsk {
    rx: Ring,
    tx: Ring,
    fill: Ring,
    comp: Ring,
    /// Transmit frames not in flight.
    free_tx: Vec<u64>,
    // Dropped last: the rings (which hold the socket) unmap first.
    fd: OwnedFd,
    umem: Umem,
}

// SAFETY: the raw pointers are into mappings this value owns exclusively;
// nothing else in the process touches them.
unsafe impl Send for Xsk {}

fn setsockopt<T>(fd: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is a live T whose size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Xsk {
    /// Opens a socket with `rx` receive and `tx` transmit frames (each a
    /// power of two, at least 64) and binds it in copy mode to `queue` of
    /// `ifindex`.
    pub fn open(ifindex: u32, queue: u32, rx: u32, tx: u32) -> io::Result<Xsk> {
        if [rx, tx].iter().any(|n| !n.is_power_of_two() || *n < 64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "AF_XDP frame counts must be powers of two, at least 64",
            ));
        }
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem = Umem::new((rx + tx) as usize * FRAME_SIZE)?;
        let mut xsk = Self::with_umem(fd, umem, rx, tx)?;
        // Receive frames go to the kernel now; transmit frames wait with us.
        for i in 0..rx {
            xsk.fill_push(u64::from(i) * FRAME_SIZE as u64);
        }
        xsk.fill_commit();
        xsk.free_tx = (rx..rx + tx)
            .map(|i| u64::from(i) * FRAME_SIZE as u64)
            .collect();
        // SAFETY: sockaddr_xdp is plain data.
        let mut sa: libc::sockaddr_xdp = unsafe { zeroed() };
        sa.sxdp_family = libc::AF_XDP as u16;
        sa.sxdp_flags = libc::XDP_COPY;
        sa.sxdp_ifindex = ifindex;
        sa.sxdp_queue_id = queue;
        // SAFETY: binding our socket to a valid sockaddr_xdp of its size.
        let rc = unsafe {
            libc::bind(
                xsk.fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(xsk)
    }

    fn with_umem(fd: OwnedFd, umem: Umem, rx_n: u32, tx_n: u32) -> io::Result<Xsk> {
        let raw = fd.as_raw_fd();
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr as u64,
            len: umem.len as u64,
            chunk_size: FRAME_SIZE as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(raw, libc::XDP_UMEM_REG, &reg)?;
        setsockopt(raw, libc::XDP_UMEM_FILL_RING, &rx_n)?;
        setsockopt(raw, libc::XDP_UMEM_COMPLETION_RING, &tx_n)?;
        setsockopt(raw, libc::XDP_RX_RING, &rx_n)?;
        setsockopt(raw, libc::XDP_TX_RING, &tx_n)?;
        // SAFETY: xdp_mmap_offsets is plain data, filled by the kernel.
        let mut off: libc::xdp_mmap_offsets = unsafe { zeroed() };
        let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` is writable for `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let desc = size_of::<libc::xdp_desc>();
        let rx = Ring::map(raw, &off.rx, libc::XDP_PGOFF_RX_RING as u64, rx_n, desc)?;
        let tx = Ring::map(raw, &off.tx, libc::XDP_PGOFF_TX_RING as u64, tx_n, desc)?;
        let fill = Ring::map(raw, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING, rx_n, 8)?;
        let comp = Ring::map(raw, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING, tx_n, 8)?;
        let mut x = Xsk {
            fd,
            umem,
            rx,
            tx,
            fill,
            comp,
            free_tx: Vec::new(),
        };
        // Our side of each ring starts where the kernel says it is.
        x.fill.cached = x.fill.producer().load(Ordering::Relaxed);
        x.tx.cached = x.tx.producer().load(Ordering::Relaxed);
        x.rx.cached = x.rx.consumer().load(Ordering::Relaxed);
        x.comp.cached = x.comp.consumer().load(Ordering::Relaxed);
        Ok(x)
    }

    /// The socket's descriptor (for poll and the XSKMAP).
    pub fn raw_fd(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }

    fn frame(&self, addr: u64, len: usize) -> &[u8] {
        let start = (addr as usize).min(self.umem.len);
        let len = len.min(self.umem.len - start).min(FRAME_SIZE);
        // SAFETY: bounded to the UMEM; the kernel no longer writes a frame
        // it handed us through the receive ring.
        unsafe { std::slice::from_raw_parts(self.umem.ptr.add(start), len) }
    }

    fn frame_mut(&mut self, addr: u64) -> &mut [u8] {
        let start = (addr as usize).min(self.umem.len - FRAME_SIZE);
        // SAFETY: bounded to the UMEM; a free transmit frame is ours alone.
        unsafe { std::slice::from_raw_parts_mut(self.umem.ptr.add(start), FRAME_SIZE) }
    }

    fn fill_push(&mut self, addr: u64) {
        let i = self.fill.cached & self.fill.mask();
        // SAFETY: index masked into the ring; the fill ring holds u64s.
        unsafe { self.fill.descs.cast::<u64>().add(i as usize).write(addr) };
        self.fill.cached = self.fill.cached.wrapping_add(1);
    }

    fn fill_commit(&mut self) {
        self.fill
            .producer()
            .store(self.fill.cached, Ordering::Release);
    }

    /// Hands every received frame to `f` (its bytes), then returns the
    /// frames to the fill ring. Returns the number of frames.
    pub fn receive(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let prod = self.rx.producer().load(Ordering::Acquire);
        let n = prod.wrapping_sub(self.rx.cached);
        for k in 0..n {
            let i = self.rx.cached.wrapping_add(k) & self.rx.mask();
            // SAFETY: masked index; the kernel published these descriptors
            // (Acquire on the producer above).
            let d = unsafe {
                self.rx
                    .descs
                    .cast::<libc::xdp_desc>()
                    .add(i as usize)
                    .read()
            };
            f(self.frame(d.addr, d.len as usize));
            // The frame goes straight back: the fill ring has room for it
            // (it had the frame before the kernel took it).
            self.fill_push(d.addr & !(FRAME_SIZE as u64 - 1));
        }
        if n > 0 {
            self.rx.cached = prod;
            self.rx.consumer().store(prod, Ordering::Release);
            self.fill_commit();
        }
        n as usize
    }

    /// Takes back the frames the kernel finished sending.
    fn reclaim(&mut self) {
        let prod = self.comp.producer().load(Ordering::Acquire);
        let n = prod.wrapping_sub(self.comp.cached);
        for k in 0..n {
            let i = self.comp.cached.wrapping_add(k) & self.comp.mask();
            // SAFETY: masked index into the completion ring of u64s.
            let addr = unsafe { self.comp.descs.cast::<u64>().add(i as usize).read() };
            self.free_tx.push(addr);
        }
        if n > 0 {
            self.comp.cached = prod;
            self.comp.consumer().store(prod, Ordering::Release);
        }
    }

    /// Queues one frame written by `write` (into a 2 KiB buffer, returning
    /// its length or None to give up). False when no frame or ring slot is
    /// free: the caller counts a send error.
    pub fn queue(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        if self.free_tx.is_empty() {
            self.reclaim();
        }
        let cons = self.tx.consumer().load(Ordering::Acquire);
        if self.tx.cached.wrapping_sub(cons) >= self.tx.size {
            return false;
        }
        let Some(addr) = self.free_tx.pop() else {
            return false;
        };
        let Some(len) = write(self.frame_mut(addr)) else {
            self.free_tx.push(addr);
            return false;
        };
        let i = self.tx.cached & self.tx.mask();
        let d = libc::xdp_desc {
            addr,
            len: len as u32,
            options: 0,
        };
        // SAFETY: masked index into the transmit ring, a slot the kernel has
        // consumed (checked against its consumer index above).
        unsafe {
            self.tx
                .descs
                .cast::<libc::xdp_desc>()
                .add(i as usize)
                .write(d)
        };
        self.tx.cached = self.tx.cached.wrapping_add(1);
        true
    }

    /// Publishes queued frames and kicks the kernel until it took them all
    /// (copy mode sends a bounded batch per call). Returns system calls made.
    pub fn flush(&mut self) -> u64 {
        self.tx.producer().store(self.tx.cached, Ordering::Release);
        let mut calls = 0;
        let mut stalls = 0;
        loop {
            let cons = self.tx.consumer().load(Ordering::Acquire);
            if cons == self.tx.cached || stalls > 3 {
                break;
            }
            // SAFETY: a zero-length send on our socket is the TX doorbell.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            calls += 1;
            if rc < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR) => {}
                    _ => {
                        tracing::debug!(error = %e, "AF_XDP transmit doorbell failed");
                        stalls += 1;
                    }
                }
            }
            if self.tx.consumer().load(Ordering::Acquire) == cons {
                stalls += 1;
            }
        }
        self.reclaim();
        calls
    }

    /// The kernel's counters for this socket.
    pub fn stats(&self) -> XskStats {
        // SAFETY: plain data, filled by the kernel.
        let mut s: libc::xdp_statistics = unsafe { zeroed() };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `s` is writable for `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut s as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return XskStats::default();
        }
        XskStats {
            rx_dropped: s.rx_dropped,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
        }
    }
}

/// The frame area, unmapped on drop (the kernel keeps its own page
/// references while a socket still uses it).
#[derive(Debug)]
struct Umem {
    ptr: *mut u8,
    len: usize,
}

impl Umem {
    fn new(len: usize) -> io::Result<Umem> {
        // SAFETY: an anonymous private mapping; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Umem {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
