//! The pool of RTP port pairs: even ports of the configured range (RTP on the even port, RTCP
//! on the next one, RFC 3550 §11), handed out in turn so that a freed port rests before reuse.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Mutex;

use crate::config::PortRange;

/// The free even ports of a range.
#[derive(Debug)]
pub(crate) struct PortPool {
    free: Mutex<VecDeque<u16>>,
}

/// An RTP/RTCP socket pair bound on `port` and `port + 1`.
pub(crate) struct BoundPair {
    pub(crate) port: u16,
    pub(crate) rtp: UdpSocket,
    pub(crate) rtcp: UdpSocket,
}

impl PortPool {
    pub(crate) fn new(range: PortRange) -> Self {
        let first = range.first.saturating_add(range.first % 2);
        let free = (u32::from(first)..u32::from(range.last))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        Self {
            free: Mutex::new(free),
        }
    }

    /// Pairs not in use.
    pub(crate) fn free(&self) -> usize {
        self.lock().len()
    }

    /// Binds the next free pair on `ip`. A pair that fails to bind (another process holds one of
    /// its ports) goes to the back of the queue and the next is tried; `Ok(None)` when none of
    /// the free pairs could be bound.
    pub(crate) fn bind(&self, ip: IpAddr) -> io::Result<Option<BoundPair>> {
        let mut free = self.lock();
        for _ in 0..free.len() {
            let Some(port) = free.pop_front() else {
                break;
            };
            match bind_pair(ip, port) {
                Ok((rtp, rtcp)) => return Ok(Some(BoundPair { port, rtp, rtcp })),
                Err(e) if is_taken(&e) => free.push_back(port),
                Err(e) => {
                    free.push_front(port);
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// Returns a pair whose sockets are closed.
    pub(crate) fn release(&self, port: u16) {
        self.lock().push_back(port);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<u16>> {
        // The queue stays consistent even if a holder panicked: push/pop are atomic.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn is_taken(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let rtp = UdpSocket::bind(SocketAddr::new(ip, port))?;
    let rtcp = UdpSocket::bind(SocketAddr::new(ip, port + 1))?;
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    Ok((rtp, rtcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_only_and_taken_ones_skipped() {
        let pool = PortPool::new(PortRange {
            first: 41_001,
            last: 41_008,
        });
        // 41002, 41004, 41006 (41008 has no odd partner in range).
        assert_eq!(pool.free(), 3);
        let ip: IpAddr = [127, 0, 0, 1].into();
        // Someone else holds 41003: the first pair is skipped.
        let squatter = UdpSocket::bind((ip, 41_003));
        let a = pool.bind(ip).unwrap().unwrap();
        if squatter.is_ok() {
            assert_eq!(a.port, 41_004);
        }
        assert_eq!(a.port % 2, 0);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), a.port + 1);
        drop(a.rtp);
        drop(a.rtcp);
        pool.release(a.port);
        assert_eq!(pool.free(), 3);
    }
}
