//! A few RTP datagrams made by hand, for the tests that send media themselves (spoofed and
//! garbage packets).

use std::net::{SocketAddr, UdpSocket};

/// An RTP packet (RFC 3550, no CSRC, no extension) with `payload`.
pub(crate) fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(pt & 0x7f);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Sends `n` PCMU packets of silence (0xff) with a foreign SSRC from a new socket (another
/// port than the caller's) to `to`: what an attacker who guessed the port would send.
pub(crate) fn send_spoofed(to: SocketAddr, n: u16) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind a spoofing socket");
    for i in 0..n {
        let p = packet(0, 40000 + i, 160 * u32::from(i), 0x5bad_5bad, &[0xff; 160]);
        s.send_to(&p, to).expect("send spoofed RTP");
    }
    s.local_addr().unwrap()
}

/// Sends `n` datagrams that are not RTP (too short, wrong version, random bytes) to `to`.
pub(crate) fn send_garbage(to: SocketAddr, n: u16) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind a garbage socket");
    for i in 0..n {
        let p: Vec<u8> = match i % 3 {
            0 => vec![0x01, 0x02, 0x03],
            1 => {
                let mut p = packet(0, i, 0, 1, &[0u8; 20]);
                p[0] = 0x40; // version 1
                p
            }
            _ => (0..200u16)
                .map(|b| (b.wrapping_mul(31) ^ i) as u8)
                .collect(),
        };
        s.send_to(&p, to).expect("send garbage");
    }
}
