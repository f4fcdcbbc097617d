//! The `sendmmsg` loop both send paths share (UDP sockets in [`crate::udp`],
//! the VXLAN packet socket in [`crate::vxlan_link`]).

use std::io;

/// Sends every prepared header on `fd`, as many per call as the kernel
/// takes: retried on EINTR; a refused datagram (no route, ...) is skipped
/// and the rest still go; a full socket buffer drops the rest of the batch.
/// Returns (system calls, datagrams sent).
///
/// # Safety
/// Every header must point at buffers (name, iovecs, control data) that
/// stay valid and untouched for the duration of the call.
pub(crate) unsafe fn send_all(
    fd: libc::c_int,
    hdrs: &mut [libc::mmsghdr],
    what: &'static str,
) -> (u64, usize) {
    let (mut calls, mut sent, mut at) = (0u64, 0usize, 0usize);
    while at < hdrs.len() {
        // SAFETY: the caller vouches for what the headers point at.
        let rc = unsafe {
            libc::sendmmsg(
                fd,
                hdrs[at..].as_mut_ptr(),
                (hdrs.len() - at) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        calls += 1;
        if rc < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    tracing::debug!(error = %e, what, "bfd send buffer full: batch cut short");
                    break;
                }
                _ => {
                    tracing::debug!(error = %e, what, "bfd send refused a datagram");
                    at += 1;
                }
            }
            continue;
        }
        at += rc as usize;
        sent += rc as usize;
    }
    (calls, sent)
}
