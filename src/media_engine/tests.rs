//! The engine on real sockets: two plain UDP sockets play the phones.

use super::*;
use masterz_media::dtmf::TelephoneEvent;
use masterz_media::rtp::{self, RtpPacket};
use std::sync::atomic::AtomicU16;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(2);

/// Each test gets its own slice of ports so that tests can run in parallel.
fn engine(media_timeout: Duration) -> Arc<MediaEngine> {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = NEXT.fetch_add(1, Ordering::Relaxed);
    let first = 43_000 + slot * 40;
    MediaEngine::new(MediaConfig {
        ports: crate::config::PortRange {
            first,
            last: first + 39,
        },
        bind_ip: [127, 0, 0, 1].into(),
        public_ip: [192, 0, 2, 1].into(),
        webrtc_public_ip: [192, 0, 2, 1].into(),
        media_timeout,
    })
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn params(remote: SocketAddr, codec: Codec) -> LegParams {
    LegParams {
        remote_rtp: Some(remote),
        remote_rtcp: None,
        codec,
        payload_type: codec.static_payload_type(),
        telephone_event: Some(101),
        ptime_ms: 20,
        direction: Direction::SendRecv,
    }
}

fn rtp_packet(pt: u8, seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; rtp::HEADER_LEN + payload.len()];
    rtp::write_header(&mut p, false, pt, seq, u32::from(seq) * 160, ssrc).unwrap();
    p[rtp::HEADER_LEN..].copy_from_slice(payload);
    p
}

/// Receives the next RTP packet (skipping RTCP) on `sock`.
async fn recv_rtp(sock: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    loop {
        let (n, _) = timeout(WAIT, sock.recv_from(&mut buf))
            .await
            .expect("a packet in time")
            .unwrap();
        if !rtp::is_rtcp(&buf[..n]) {
            return buf[..n].to_vec();
        }
    }
}

struct Call {
    engine: Arc<MediaEngine>,
    session: MediaSession,
    notices: UnboundedReceiver<MediaNotice>,
    phone_a: UdpSocket,
    phone_b: UdpSocket,
    port_a: SocketAddr,
    port_b: SocketAddr,
}

async fn call(codec_b: Codec, media_timeout: Duration) -> Call {
    let engine = engine(media_timeout);
    let (tx, notices) = mpsc::unbounded_channel();
    let session = engine.allocate(7, tx).await.unwrap();
    let phone_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The SDP address of A is wrong on purpose (NAT): latching must find the real one.
    session.configure(Side::A, params(loopback(9), Codec::Pcmu));
    session.configure(Side::B, params(phone_b.local_addr().unwrap(), codec_b));
    let port_a = loopback(session.local_rtp(Side::A).port());
    let port_b = loopback(session.local_rtp(Side::B).port());
    Call {
        engine,
        session,
        notices,
        phone_a,
        phone_b,
        port_a,
        port_b,
    }
}

#[tokio::test]
async fn relays_latches_drops_spoofs_and_garbage_transcodes() {
    let c = call(Codec::Pcma, Duration::from_secs(30)).await;
    assert_eq!(
        c.session.local_rtp(Side::A).ip(),
        IpAddr::from([192, 0, 2, 1])
    );
    assert_eq!(c.session.local_rtp(Side::A).port() % 2, 0);
    assert_eq!(c.engine.active_sessions(), 1);

    // A -> B, transcoded PCMU -> PCMA.
    let frame = [0xFFu8; 160];
    c.phone_a
        .send_to(&rtp_packet(0, 1, 0xAAAA, &frame), c.port_a)
        .await
        .unwrap();
    let got = recv_rtp(&c.phone_b).await;
    let p = RtpPacket::parse(&got).unwrap();
    assert_eq!(p.payload_type(), 8);
    assert_eq!(p.payload(), &[0xD5; 160]);
    assert_ne!(p.ssrc(), 0xAAAA);

    // B -> A reaches A at its real (latched) address, not the SDP one, as PCMU.
    c.phone_b
        .send_to(&rtp_packet(8, 1, 0xBBBB, &[0xD5; 160]), c.port_b)
        .await
        .unwrap();
    let got = recv_rtp(&c.phone_a).await;
    assert_eq!(RtpPacket::parse(&got).unwrap().payload_type(), 0);

    // A spoofer on A's port, and garbage: dropped and counted.
    let spoofer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    spoofer
        .send_to(&rtp_packet(0, 2, 0xAAAA, &frame), c.port_a)
        .await
        .unwrap();
    c.phone_a.send_to(b"hello", c.port_a).await.unwrap();
    // A marker packet after them proves they were handled.
    c.phone_a
        .send_to(&rtp_packet(0, 3, 0xAAAA, &frame), c.port_a)
        .await
        .unwrap();
    let got = recv_rtp(&c.phone_b).await;
    assert_eq!(RtpPacket::parse(&got).unwrap().sequence(), p.sequence() + 2);
    let stats = c.session.stats();
    assert_eq!(stats.a.packets_in, 2);
    assert_eq!(stats.a.dropped_foreign, 1);
    assert_eq!(stats.a.dropped_malformed, 1);
    assert_eq!(stats.a.latched, Some(c.phone_a.local_addr().unwrap()));
    assert_eq!(stats.b.packets_out, 2);
    assert_eq!(stats.b.packets_in, 1);

    let mut metrics = String::new();
    c.engine.render_metrics(&mut metrics);
    assert!(metrics.contains("masterz_media_sessions 1"), "{metrics}");
    assert!(metrics.contains("masterz_media_rtp_dropped_total{reason=\"foreign_source\"} 1"));
    assert!(metrics.contains("masterz_media_rtp_packets_total{direction=\"in\"} 3"));
}

#[tokio::test]
async fn dtmf_both_ways() {
    let mut c = call(Codec::Pcmu, Duration::from_secs(30)).await;
    // A's SDP address is wrong (NAT): it must send once to be latched before it can hear DTMF.
    c.phone_a
        .send_to(&rtp_packet(0, 1, 0xAAAA, &[0xFF; 160]), c.port_a)
        .await
        .unwrap();
    recv_rtp(&c.phone_b).await;
    // Injected toward A: a train of telephone events, the last three with E.
    c.session.send_dtmf(Side::A, '5', 100);
    let mut ends = 0;
    while ends < 3 {
        let got = recv_rtp(&c.phone_a).await;
        let p = RtpPacket::parse(&got).unwrap();
        assert_eq!(p.payload_type(), 101);
        let e = TelephoneEvent::parse(p.payload()).unwrap();
        assert_eq!(e.digit(), Some('5'));
        ends += usize::from(e.end);
    }
    // Received from B: reported once.
    for (seq, end) in [(2u16, false), (3, true), (4, true), (5, true)] {
        let e = TelephoneEvent {
            event: 11,
            end,
            volume: 10,
            duration: 800,
        };
        let mut p = rtp_packet(101, seq, 0xBBBB, &e.write());
        p[4..8].copy_from_slice(&4242u32.to_be_bytes());
        c.phone_b.send_to(&p, c.port_b).await.unwrap();
    }
    let n = timeout(WAIT, c.notices.recv()).await.unwrap().unwrap();
    assert_eq!(
        n,
        MediaNotice {
            owner: 7,
            event: MediaEvent::Dtmf {
                from: Side::B,
                digit: '#',
                duration_ms: 100
            }
        }
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(c.notices.try_recv().is_err());
    assert_eq!(c.session.stats().b.dtmf_in, 1);
}

#[tokio::test]
async fn timeout_event_and_ports_freed_on_drop() {
    let mut c = call(Codec::Pcmu, Duration::from_millis(300)).await;
    let free_before = {
        let mut m = String::new();
        c.engine.render_metrics(&mut m);
        m
    };
    assert!(
        free_before.contains("masterz_media_port_pairs_free 18"),
        "{free_before}"
    );
    let mut sides = Vec::new();
    for _ in 0..2 {
        let n = timeout(WAIT, c.notices.recv()).await.unwrap().unwrap();
        if let MediaEvent::Timeout { side } = n.event {
            sides.push(side);
        }
    }
    sides.sort_by_key(|s| s.index());
    assert_eq!(sides, [Side::A, Side::B]);

    let ports = [c.port_a.port(), c.port_b.port()];
    drop(c.session);
    for _ in 0..100 {
        if c.engine.active_sessions() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(c.engine.active_sessions(), 0);
    // The ports are closed: they can be bound again.
    for p in ports {
        std::net::UdpSocket::bind(loopback(p)).unwrap();
        std::net::UdpSocket::bind(loopback(p + 1)).unwrap();
    }
    let mut m = String::new();
    c.engine.render_metrics(&mut m);
    assert!(m.contains("masterz_media_port_pairs_free 20"), "{m}");
    assert!(m.contains("masterz_media_timeouts_total 2"), "{m}");
}

#[tokio::test]
async fn the_pool_runs_out() {
    let engine = MediaEngine::new(MediaConfig {
        ports: crate::config::PortRange {
            first: 42_900,
            last: 42_903,
        },
        bind_ip: [127, 0, 0, 1].into(),
        public_ip: [127, 0, 0, 1].into(),
        webrtc_public_ip: [127, 0, 0, 1].into(),
        media_timeout: Duration::from_secs(30),
    });
    let (tx, _rx) = mpsc::unbounded_channel();
    let s = engine.allocate(1, tx.clone()).await.unwrap();
    assert!(matches!(
        engine.allocate(2, tx).await,
        Err(MediaError::PortsExhausted)
    ));
    drop(s);
}
