//! The few `bpf(2)` commands the XDP path needs (map create/update/delete,
//! program load, XDP link), and the steering program itself, assembled
//! here: it is 34 instructions, so no compiler, ELF loader or libbpf.
//!
//! The program (for every frame the device receives):
//!
//! ```text
//! Ethernet, IPv4 without options, not a fragment, UDP to 3784 or 4784,
//! destination address in `locals`  -> redirect to xsks[rx queue]
//!                                     (XDP_PASS if that queue has no socket)
//! anything else                    -> XDP_PASS (the kernel stack, as before)
//! ```
//!
//! It is attached through a BPF link, so it goes away with the process: a
//! daemon killed with -9 never leaves BFD packets steered to a dead socket.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

/// `XDP_FLAGS_SKB_MODE`: the generic hook, after the skb is built.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: the driver's native hook (veth has one).
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// Room for every `bpf_attr` variant used here (the kernel accepts a
/// shorter attr as long as the tail it knows is zero).
type Attr = [u64; 16];

fn put_u32(attr: &mut Attr, offset: usize, v: u32) {
    let word = &mut attr[offset / 8];
    let shift = (offset % 8) * 8;
    *word = (*word & !(0xffff_ffffu64 << shift)) | (u64::from(v) << shift);
}

fn put_u64(attr: &mut Attr, offset: usize, v: u64) {
    debug_assert_eq!(offset % 8, 0);
    attr[offset / 8] = v;
}

fn sys_bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable bpf_attr-sized buffer; the pointers
    // inside it (set by the callers) point at live buffers for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_result(rc: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel returned a new file descriptor that we now own.
    unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) }
}

/// A BPF map.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
}

impl Map {
    fn create(kind: u32, key: u32, value: u32, entries: u32, name: &str) -> io::Result<Map> {
        let mut a: Attr = [0; 16];
        put_u32(&mut a, 0, kind);
        put_u32(&mut a, 4, key);
        put_u32(&mut a, 8, value);
        put_u32(&mut a, 12, entries);
        set_name(&mut a, 28, name);
        Ok(Map {
            fd: fd_result(sys_bpf(BPF_MAP_CREATE, &mut a)?),
        })
    }

    /// A hash of IPv4 addresses (network order u32 -> u8).
    pub fn ipv4_set(entries: u32) -> io::Result<Map> {
        Map::create(BPF_MAP_TYPE_HASH, 4, 1, entries, "bfd_locals")
    }

    /// An XSKMAP with one slot per receive queue.
    pub fn xsks(queues: u32) -> io::Result<Map> {
        Map::create(BPF_MAP_TYPE_XSKMAP, 4, 4, queues, "bfd_xsks")
    }

    /// Sets `key` to `value` (both 4 bytes and 1 byte for the set).
    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let mut a: Attr = [0; 16];
        put_u32(&mut a, 0, self.fd.as_raw_fd() as u32);
        put_u64(&mut a, 8, key.as_ptr() as u64);
        put_u64(&mut a, 16, value.as_ptr() as u64);
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
    }

    /// Removes `key`; a missing key is not an error.
    pub fn delete(&self, key: &[u8]) -> io::Result<()> {
        let mut a: Attr = [0; 16];
        put_u32(&mut a, 0, self.fd.as_raw_fd() as u32);
        put_u64(&mut a, 8, key.as_ptr() as u64);
        match sys_bpf(BPF_MAP_DELETE_ELEM, &mut a) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

fn set_name(a: &mut Attr, offset: usize, name: &str) {
    // Object names: at most 15 bytes of [A-Za-z0-9_.], NUL-terminated.
    let bytes: Vec<u8> = name.bytes().take(15).collect();
    let mut raw = [0u8; 16];
    raw[..bytes.len()].copy_from_slice(&bytes);
    for (i, chunk) in raw.chunks(4).enumerate() {
        put_u32(
            a,
            offset + i * 4,
            u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
        );
    }
}

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn encode(self) -> u64 {
        u64::from_le_bytes([
            self.code,
            (self.src << 4) | (self.dst & 0xf),
            self.off.to_le_bytes()[0],
            self.off.to_le_bytes()[1],
            self.imm.to_le_bytes()[0],
            self.imm.to_le_bytes()[1],
            self.imm.to_le_bytes()[2],
            self.imm.to_le_bytes()[3],
        ])
    }
}

/// A tiny assembler: instructions with named jump targets, resolved at the end.
#[derive(Debug, Default)]
struct Asm {
    insns: Vec<Insn>,
    /// (instruction index, label) of jumps to patch.
    fixups: Vec<(usize, &'static str)>,
    labels: Vec<(&'static str, usize)>,
}

const LDX_W: u8 = 0x61;
const LDX_H: u8 = 0x69;
const LDX_B: u8 = 0x71;
const STX_W: u8 = 0x63;
const MOV_X: u8 = 0xbf;
const MOV_K: u8 = 0xb7;
const ADD_K: u8 = 0x07;
const AND_K: u8 = 0x57;
const JGT_X: u8 = 0x2d;
const JNE_K: u8 = 0x55;
const JEQ_K: u8 = 0x15;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const LD_IMM64: u8 = 0x18;
const PSEUDO_MAP_FD: u8 = 1;

const FN_MAP_LOOKUP_ELEM: i32 = 1;
const FN_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;

impl Asm {
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) -> &mut Self {
        self.insns.push(Insn {
            code,
            dst,
            src,
            off,
            imm,
        });
        self
    }

    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), to));
        self.op(code, dst, src, 0, imm)
    }

    fn label(&mut self, name: &'static str) -> &mut Self {
        self.labels.push((name, self.insns.len()));
        self
    }

    fn load_map(&mut self, dst: u8, map_fd: i32) -> &mut Self {
        self.op(LD_IMM64, dst, PSEUDO_MAP_FD, 0, map_fd)
            .op(0, 0, 0, 0, 0)
    }

    fn finish(mut self) -> Vec<Insn> {
        for (at, to) in std::mem::take(&mut self.fixups) {
            let target = self
                .labels
                .iter()
                .find(|(n, _)| *n == to)
                .map(|(_, i)| *i)
                .unwrap_or_else(|| panic!("assembler: no label {to}"));
            self.insns[at].off = (target as i64 - at as i64 - 1) as i16;
        }
        self.insns
    }
}

/// The steering program (see the module comment), referring to `locals`
/// (IPv4 destinations we own) and `xsks` (one AF_XDP socket per queue).
pub fn steering_program(locals: &Map, xsks: &Map) -> Vec<Insn> {
    let mut a = Asm::default();
    // r6 = ctx; r2 = data; r3 = data_end
    a.op(MOV_X, 6, 1, 0, 0)
        .op(LDX_W, 2, 1, 0, 0)
        .op(LDX_W, 3, 1, 4, 0)
        // Ethernet (14) + IPv4 (20) + UDP (8) must be there.
        .op(MOV_X, 4, 2, 0, 0)
        .op(ADD_K, 4, 0, 0, 42)
        .jump(JGT_X, 4, 3, 0, "pass")
        // EtherType 0x0800 (loaded little-endian: 0x0008).
        .op(LDX_H, 5, 2, 12, 0)
        .jump(JNE_K, 5, 0, 0x0008, "pass")
        // Version 4, IHL 5: packets with IP options stay with the kernel.
        .op(LDX_B, 5, 2, 14, 0)
        .jump(JNE_K, 5, 0, 0x45, "pass")
        .op(LDX_B, 5, 2, 23, 0)
        .jump(JNE_K, 5, 0, 17, "pass")
        // No fragments: MF flag and fragment offset zero (htons(0x3fff)).
        .op(LDX_H, 5, 2, 20, 0)
        .op(AND_K, 5, 0, 0, 0xff3f)
        .jump(JNE_K, 5, 0, 0, "pass")
        // UDP destination port 3784 or 4784 (network order, loaded LE).
        .op(LDX_H, 5, 2, 36, 0)
        .jump(JEQ_K, 5, 0, 0xc80e, "ours")
        .jump(JNE_K, 5, 0, 0xb012, "pass")
        .label("ours")
        // Only for a destination address in `locals` (routed BFD of others
        // passes through untouched).
        .op(LDX_W, 5, 2, 30, 0)
        .op(STX_W, 10, 5, -4, 0)
        .op(MOV_X, 2, 10, 0, 0)
        .op(ADD_K, 2, 0, 0, -4)
        .load_map(1, locals.raw_fd())
        .op(CALL, 0, 0, 0, FN_MAP_LOOKUP_ELEM)
        .jump(JEQ_K, 0, 0, 0, "pass")
        // return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)
        .op(LDX_W, 2, 6, 16, 0)
        .load_map(1, xsks.raw_fd())
        .op(MOV_K, 3, 0, 0, XDP_PASS)
        .op(CALL, 0, 0, 0, FN_REDIRECT_MAP)
        .op(EXIT, 0, 0, 0, 0)
        .label("pass")
        .op(MOV_K, 0, 0, 0, XDP_PASS)
        .op(EXIT, 0, 0, 0, 0);
    a.finish()
}

/// A loaded program.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
}

impl Program {
    /// Loads an XDP program; a verifier refusal carries the verifier's log.
    pub fn load_xdp(insns: &[Insn], name: &str) -> io::Result<Program> {
        let code: Vec<u64> = insns.iter().map(|i| i.encode()).collect();
        let license = b"Dual MIT/GPL\0";
        let mut log = vec![0u8; 64 * 1024];
        let mut a: Attr = [0; 16];
        put_u32(&mut a, 0, BPF_PROG_TYPE_XDP);
        put_u32(&mut a, 4, code.len() as u32);
        put_u64(&mut a, 8, code.as_ptr() as u64);
        put_u64(&mut a, 16, license.as_ptr() as u64);
        put_u32(&mut a, 24, 1); // log_level
        put_u32(&mut a, 28, log.len() as u32);
        put_u64(&mut a, 32, log.as_mut_ptr() as u64);
        set_name(&mut a, 48, name);
        match sys_bpf(BPF_PROG_LOAD, &mut a) {
            Ok(fd) => Ok(Program { fd: fd_result(fd) }),
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                Err(io::Error::new(
                    e.kind(),
                    format!("loading the XDP program: {e}; verifier: {}", text.trim()),
                ))
            }
        }
    }

    /// Attaches to `ifindex` with `flags` (driver or generic mode) through a
    /// BPF link: detached when the returned fd closes.
    pub fn attach_xdp(&self, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
        let mut a: Attr = [0; 16];
        put_u32(&mut a, 0, self.fd.as_raw_fd() as u32);
        put_u32(&mut a, 4, ifindex);
        put_u32(&mut a, 8, BPF_XDP);
        put_u32(&mut a, 12, flags);
        Ok(fd_result(sys_bpf(BPF_LINK_CREATE, &mut a)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_resolve_relative_to_the_next_instruction() {
        let mut a = Asm::default();
        a.jump(JEQ_K, 1, 0, 0, "end")
            .op(MOV_K, 0, 0, 0, 1)
            .label("end")
            .op(EXIT, 0, 0, 0, 0);
        let insns = a.finish();
        assert_eq!(insns[0].off, 1);
    }

    #[test]
    fn encoding_matches_struct_bpf_insn() {
        // r0 = 2 -> b7 00 00 00 02 00 00 00
        let i = Insn {
            code: MOV_K,
            dst: 0,
            src: 0,
            off: 0,
            imm: 2,
        };
        assert_eq!(i.encode().to_le_bytes(), [0xb7, 0, 0, 0, 2, 0, 0, 0]);
        // r2 = *(u32 *)(r6 + 16) -> 61 62 10 00 00 00 00 00
        let i = Insn {
            code: LDX_W,
            dst: 2,
            src: 6,
            off: 16,
            imm: 0,
        };
        assert_eq!(i.encode().to_le_bytes(), [0x61, 0x62, 16, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn port_constants_are_the_network_order_ports_loaded_little_endian() {
        assert_eq!(u16::from_le_bytes(3784u16.to_be_bytes()), 0xc80e);
        assert_eq!(u16::from_le_bytes(4784u16.to_be_bytes()), 0xb012);
        assert_eq!(u16::from_le_bytes(0x0800u16.to_be_bytes()), 0x0008);
        assert_eq!(u16::from_le_bytes(0x3fffu16.to_be_bytes()), 0xff3f);
    }

    #[test]
    fn attr_fields_land_at_their_offsets() {
        let mut a: Attr = [0; 16];
        put_u32(&mut a, 4, 0xdead_beef);
        put_u32(&mut a, 0, 1);
        assert_eq!(a[0], 0xdead_beef_0000_0001);
        set_name(&mut a, 48, "bfd_steer");
        let bytes: Vec<u8> = a[6..8].iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(&bytes[..10], b"bfd_steer\0");
    }
}
