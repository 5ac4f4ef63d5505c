//! The relay driven on a virtual clock: latching, spoofing, garbage, continuity, transcoding,
//! DTMF both ways, hold, RTCP and the media timeout.

use super::*;
use crate::dtmf::TelephoneEvent;
use crate::g711;
use crate::rtcp::{self, ReportBlock, RtcpPacket, SenderInfo};
use crate::rtp::{HEADER_LEN, RtpPacket};
use crate::{rtp, transcode};
use proptest::prelude::*;

/// The origin of the virtual clock: the one wall-clock read in these tests.
#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

const PHONE_A: &str = "198.51.100.10:4000";
const NAT_A: &str = "203.0.113.7:61000";
const PHONE_B: &str = "192.0.2.20:5000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn leg(remote: &str, codec: Codec, te: Option<u8>) -> LegConfig {
    LegConfig {
        remote_rtp: Some(addr(remote)),
        remote_rtcp: None,
        codec,
        payload_type: codec.static_payload_type(),
        telephone_event: te,
        ptime_ms: 20,
        direction: Direction::SendRecv,
    }
}

fn relay(t0: Instant) -> Relay {
    Relay::new(
        t0,
        RelayConfig {
            ssrc: [0xA0A0_A0A0, 0xB0B0_B0B0],
            initial_seq: [100, 200],
            initial_ts: [1000, 2000],
            media_timeout: Duration::from_secs(10),
            rtcp_interval: Duration::from_secs(5),
            ntp_at_start: 0xE000_0000_0000_0000,
        },
    )
}

fn configured(t0: Instant, a: Codec, b: Codec) -> Relay {
    let mut r = relay(t0);
    r.configure(t0, Side::A, leg(PHONE_A, a, Some(101)));
    r.configure(t0, Side::B, leg(PHONE_B, b, Some(96)));
    r
}

fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> ([u8; 1500], usize) {
    let mut buf = [0u8; 1500];
    let n = rtp::write_header(&mut buf, false, pt, seq, ts, ssrc).unwrap();
    buf[n..n + payload.len()].copy_from_slice(payload);
    (buf, n + payload.len())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn forwards_and_latches_to_the_real_source() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    // A is behind NAT: it sends from NAT_A, not from its SDP address.
    let (mut buf, n) = packet(0, 7, 160, 0x1234, &[0x55; 160]);
    let v = r.handle_rtp(t0, Side::A, addr(NAT_A), &mut buf, n);
    assert_eq!(
        v,
        Verdict::Forward {
            to: addr(PHONE_B),
            len: n
        }
    );
    let out = RtpPacket::parse(&buf[..n]).unwrap();
    assert_eq!(out.ssrc(), 0xB0B0_B0B0);
    assert_eq!((out.sequence(), out.timestamp()), (200, 2000));
    assert_eq!(out.payload(), &[0x55; 160]);
    assert_eq!(r.latched(Side::A), Some(addr(NAT_A)));
    // B answers; it goes to A's latched address, not to its SDP address.
    let (mut buf, n) = packet(0, 1, 1, 0x9999, &[0xFF; 160]);
    let v = r.handle_rtp(t0 + ms(5), Side::B, addr(PHONE_B), &mut buf, n);
    assert_eq!(
        v,
        Verdict::Forward {
            to: addr(NAT_A),
            len: n
        }
    );
    assert_eq!(r.counters(Side::A).packets_in, 1);
    assert_eq!(r.counters(Side::B).packets_out, 1);
    assert_eq!(r.counters(Side::B).bytes_out, n as u64);
}

#[test]
fn spoofed_source_after_latching_is_dropped_and_counted() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    let (mut buf, n) = packet(0, 7, 160, 1, &[0; 160]);
    r.handle_rtp(t0, Side::A, addr(PHONE_A), &mut buf, n);
    let (mut buf, n) = packet(0, 8, 320, 1, &[0; 160]);
    let v = r.handle_rtp(t0, Side::A, addr("10.6.6.6:666"), &mut buf, n);
    assert_eq!(v, Verdict::Drop(DropReason::ForeignSource));
    assert_eq!(r.counters(Side::A).dropped(DropReason::ForeignSource), 1);
    assert_eq!(r.counters(Side::A).packets_in, 1);
    // A re-INVITE re-arms latching: the new source is accepted.
    r.configure(t0, Side::A, leg(PHONE_A, Codec::Pcmu, Some(101)));
    let (mut buf, n) = packet(0, 9, 480, 1, &[0; 160]);
    let v = r.handle_rtp(t0, Side::A, addr("10.6.6.6:666"), &mut buf, n);
    assert!(matches!(v, Verdict::Forward { .. }));
}

#[test]
fn garbage_is_dropped_and_does_not_latch() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    for junk in [&[][..], &[1, 2, 3], &[0x40; 20], &[0x8F; 13]] {
        let mut buf = [0u8; 64];
        buf[..junk.len()].copy_from_slice(junk);
        let v = r.handle_rtp(t0, Side::A, addr("10.0.0.1:1"), &mut buf, junk.len());
        assert_eq!(v, Verdict::Drop(DropReason::Malformed), "{junk:?}");
    }
    // A length past the buffer is malformed too, not a panic.
    let mut small = [0u8; 4];
    assert_eq!(
        r.handle_rtp(t0, Side::A, addr(PHONE_A), &mut small, 100),
        Verdict::Drop(DropReason::Malformed)
    );
    assert_eq!(r.counters(Side::A).dropped(DropReason::Malformed), 5);
    assert_eq!(r.latched(Side::A), None);
    // Unknown payload type: dropped.
    let (mut buf, n) = packet(18, 1, 1, 1, &[0; 20]);
    assert_eq!(
        r.handle_rtp(t0, Side::A, addr(PHONE_A), &mut buf, n),
        Verdict::Drop(DropReason::UnknownPayloadType)
    );
}

#[test]
fn ssrc_change_keeps_the_output_continuous() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcma, Codec::Pcma);
    let mut last = (0u16, 0u32);
    for i in 0..5u16 {
        let (mut buf, n) = packet(8, 1000 + i, 160 * u32::from(i), 0x1111, &[0; 160]);
        r.handle_rtp(
            t0 + ms(20 * u64::from(i)),
            Side::A,
            addr(PHONE_A),
            &mut buf,
            n,
        );
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        last = (p.sequence(), p.timestamp());
    }
    // Transfer: A's phone is replaced, new address and SSRC, 60 ms after the last packet.
    r.configure(
        t0 + ms(100),
        Side::A,
        leg("198.51.100.99:7000", Codec::Pcma, None),
    );
    let (mut buf, n) = packet(8, 50_000, 3_000_000, 0x2222, &[0; 160]);
    r.handle_rtp(
        t0 + ms(140),
        Side::A,
        addr("198.51.100.99:7000"),
        &mut buf,
        n,
    );
    let p = RtpPacket::parse(&buf[..n]).unwrap();
    assert_eq!(p.ssrc(), 0xB0B0_B0B0);
    assert_eq!(p.sequence(), last.0.wrapping_add(1));
    assert_eq!(p.timestamp(), last.1 + 60 * 8);
}

#[test]
fn transcodes_only_when_codecs_differ() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcma);
    let frame: Vec<u8> = (0..160).map(|i| g711::linear_to_ulaw(i * 100)).collect();
    let (mut buf, n) = packet(0, 1, 0, 1, &frame);
    r.handle_rtp(t0, Side::A, addr(PHONE_A), &mut buf, n);
    let p = RtpPacket::parse(&buf[..n]).unwrap();
    assert_eq!(p.payload_type(), 8);
    for (u, a) in frame.iter().zip(p.payload()) {
        assert_eq!(*a, transcode::ulaw_byte_to_alaw(*u));
    }
    // And back: B's A-law reaches A as µ-law with PT 0.
    let (mut buf, n) = packet(8, 1, 0, 2, &[0xD5; 160]);
    r.handle_rtp(t0, Side::B, addr(PHONE_B), &mut buf, n);
    let p = RtpPacket::parse(&buf[..n]).unwrap();
    assert_eq!(p.payload_type(), 0);
    assert_eq!(p.payload()[0], transcode::alaw_byte_to_ulaw(0xD5));
}

#[test]
fn telephone_events_are_relayed_mapped_and_reported_once() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    let mut verdicts = Vec::new();
    for (i, (end, dur)) in [
        (false, 400),
        (false, 800),
        (true, 960),
        (true, 960),
        (true, 960),
    ]
    .into_iter()
    .enumerate()
    {
        let e = TelephoneEvent {
            event: 5,
            end,
            volume: 10,
            duration: dur,
        };
        let (mut buf, n) = packet(101, 10 + i as u16, 8000, 3, &e.write());
        verdicts.push(r.handle_rtp(t0, Side::A, addr(PHONE_A), &mut buf, n));
        assert_eq!(RtpPacket::parse(&buf[..n]).unwrap().payload_type(), 96);
    }
    assert!(
        verdicts
            .iter()
            .all(|v| matches!(v, Verdict::Forward { .. }))
    );
    assert_eq!(
        r.poll_event(),
        Some(Event::Dtmf {
            from: Side::A,
            digit: '5',
            duration_ms: 120
        })
    );
    assert_eq!(r.poll_event(), None);
    assert_eq!(r.counters(Side::A).dtmf_in, 1);
    // A truncated event is malformed.
    let (mut buf, n) = packet(101, 20, 9000, 3, &[1, 2]);
    assert_eq!(
        r.handle_rtp(t0, Side::A, addr(PHONE_A), &mut buf, n),
        Verdict::Drop(DropReason::Malformed)
    );
}

#[test]
fn nothing_goes_to_a_side_on_hold() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    let mut held = leg(PHONE_B, Codec::Pcmu, Some(96));
    held.direction = Direction::SendOnly;
    r.configure(t0, Side::B, held);
    let (mut buf, n) = packet(0, 1, 0, 1, &[0; 160]);
    assert_eq!(
        r.handle_rtp(t0, Side::A, addr(PHONE_A), &mut buf, n),
        Verdict::Drop(DropReason::OnHold)
    );
    // B's music on hold still reaches A.
    let (mut buf, n) = packet(0, 1, 0, 2, &[0; 160]);
    assert!(matches!(
        r.handle_rtp(t0, Side::B, addr(PHONE_B), &mut buf, n),
        Verdict::Forward { .. }
    ));
    // Unconfigured other side: no destination.
    let mut r = relay(t0);
    r.configure(t0, Side::A, leg(PHONE_A, Codec::Pcmu, None));
    let (mut buf, n) = packet(0, 1, 0, 1, &[0; 160]);
    assert_eq!(
        r.handle_rtp(t0, Side::A, addr(PHONE_A), &mut buf, n),
        Verdict::Drop(DropReason::NoDestination)
    );
}

/// Drives the relay's timers from `from` to `until`, collecting generated packets.
fn drive(r: &mut Relay, from: Instant, until: Instant) -> Vec<(Instant, Transmit, Vec<u8>)> {
    let mut out = Vec::new();
    let mut now = from;
    let mut buf = [0u8; 1500];
    loop {
        while let Some(t) = r.poll_transmit(&mut buf) {
            out.push((now, t, buf[..t.len].to_vec()));
        }
        match r.poll_timeout() {
            Some(at) if at <= until => {
                now = now.max(at);
                r.handle_timeout(now);
            }
            _ => return out,
        }
    }
}

#[test]
fn injected_dtmf_continues_the_stream_and_pauses_audio() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    // Audio A -> B establishes the stream toward B.
    let (mut buf, n) = packet(0, 1, 0, 1, &[0; 160]);
    r.handle_rtp(t0, Side::A, addr(PHONE_A), &mut buf, n);
    assert_eq!(
        r.send_dtmf(t0 + ms(20), Side::B, 'x', 100),
        Err(InjectError::NotADigit)
    );
    r.send_dtmf(t0 + ms(20), Side::B, '7', 100).unwrap();
    let sent = drive(&mut r, t0 + ms(20), t0 + ms(400));
    let rtp: Vec<_> = sent
        .iter()
        .filter(|(_, t, _)| t.port == Port::Rtp)
        .collect();
    // 100 ms: the first packet at 0 ms covers 50 ms, the one at 50 ms reaches 100 ms and is
    // the first end packet; two more ends at 70 and 90 ms.
    assert_eq!(rtp.len(), 4);
    for (i, (_, t, bytes)) in rtp.iter().enumerate() {
        assert_eq!((t.side, t.to), (Side::B, addr(PHONE_B)));
        let p = RtpPacket::parse(bytes).unwrap();
        assert_eq!(p.payload_type(), 96);
        assert_eq!(p.ssrc(), 0xB0B0_B0B0);
        assert_eq!(p.sequence(), 201 + i as u16);
        // 20 ms after the audio packet at ts 2000.
        assert_eq!(p.timestamp(), 2160);
        assert_eq!(p.marker(), i == 0);
        let e = TelephoneEvent::parse(p.payload()).unwrap();
        assert_eq!((e.event, e.end), (7, i >= 1));
    }
    // While a train is running, audio toward B is suppressed.
    r.send_dtmf(t0 + ms(400), Side::B, '1', 100).unwrap();
    let first = drive(&mut r, t0 + ms(400), t0 + ms(400));
    assert_eq!(first.len(), 1);
    let (mut buf, n) = packet(0, 2, 160, 1, &[0; 160]);
    assert_eq!(
        r.handle_rtp(t0 + ms(410), Side::A, addr(PHONE_A), &mut buf, n),
        Verdict::Drop(DropReason::Suppressed)
    );
    let rest = drive(&mut r, t0 + ms(410), t0 + ms(1000));
    let (mut buf, n) = packet(0, 3, 320, 1, &[0; 160]);
    r.handle_rtp(t0 + ms(1000), Side::A, addr(PHONE_A), &mut buf, n);
    let p = RtpPacket::parse(&buf[..n]).unwrap();
    let last_dtmf = rest
        .iter()
        .filter(|(_, t, _)| t.port == Port::Rtp)
        .map(|(_, _, b)| RtpPacket::parse(b).unwrap().sequence())
        .max()
        .unwrap();
    assert_eq!(p.sequence(), last_dtmf + 1);
    assert_eq!(r.counters(Side::B).dtmf_injected, 8);
}

#[test]
fn rtcp_reports_both_ways() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    // 50 packets from A with one lost (seq 120).
    for i in 0..50u16 {
        if i == 20 {
            continue;
        }
        let (mut buf, n) = packet(0, 100 + i, 160 * u32::from(i), 0x1111, &[0; 160]);
        let at = t0 + ms(20 * u64::from(i));
        r.handle_rtp(at, Side::A, addr(PHONE_A), &mut buf, n);
    }
    // A sends an SR first (for LSR), then we report at 5 s.
    let mut sr = [0u8; 100];
    let info = SenderInfo {
        ntp: 0x1234_5678_9ABC_0000,
        ..SenderInfo::default()
    };
    let len = rtcp::write_sender_report(&mut sr, 0x1111, &info, &[]).unwrap();
    r.handle_rtcp(t0 + ms(4000), Side::A, addr(NAT_A), &sr[..len])
        .unwrap();
    let sent = drive(&mut r, t0 + ms(1000), t0 + ms(5000));
    let to_a: Vec<_> = sent.iter().filter(|(_, t, _)| t.side == Side::A).collect();
    assert_eq!(to_a.len(), 1);
    let (_, t, bytes) = to_a[0];
    assert_eq!((t.port, t.to), (Port::Rtcp, addr(NAT_A)));
    let mut packets = rtcp::parse_compound(bytes);
    match packets.next() {
        // Nothing was sent to A: an RR, with a block about A's stream.
        Some(Ok(RtcpPacket::ReceiverReport { ssrc, mut blocks })) => {
            assert_eq!(ssrc, 0xA0A0_A0A0);
            let b = blocks.next().unwrap();
            assert_eq!(b.ssrc, 0x1111);
            assert_eq!(b.cumulative_lost, 1);
            assert_eq!(b.highest_seq, 149);
            assert_eq!(b.lsr, 0x5678_9ABC);
            assert_eq!(b.dlsr, 65536);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        packets.next(),
        Some(Ok(RtcpPacket::Sdes { cname: Some(c), .. })) if c == b"masterz-a0a0a0a0"
    ));
    // B got an SR (we sent it 49 packets) to its RTP port + 1.
    let to_b: Vec<_> = sent.iter().filter(|(_, t, _)| t.side == Side::B).collect();
    assert_eq!(to_b[0].1.to, addr("192.0.2.20:5001"));
    match rtcp::parse_compound(&to_b[0].2).next() {
        Some(Ok(RtcpPacket::SenderReport { ssrc, info, .. })) => {
            assert_eq!(ssrc, 0xB0B0_B0B0);
            assert_eq!(info.packets, 49);
            assert_eq!(info.octets, 49 * 160);
        }
        other => panic!("{other:?}"),
    }
    // B's receiver report about our stream, echoing our SR: RTT from LSR/DLSR.
    let our_sr_ntp = r.ntp_at(t0 + ms(5000));
    let block = ReportBlock {
        ssrc: 0xB0B0_B0B0,
        fraction_lost: 3,
        cumulative_lost: 2,
        highest_seq: 300,
        jitter: 40,
        lsr: rtcp::ntp_middle(our_sr_ntp),
        dlsr: 65536 / 10,
    };
    let mut rr = [0u8; 100];
    let len = rtcp::write_receiver_report(&mut rr, 0x2222, &[block]).unwrap();
    r.handle_rtcp(t0 + ms(5200), Side::B, addr(PHONE_B), &rr[..len])
        .unwrap();
    let report = r.peer_report(Side::B).unwrap();
    assert_eq!((report.fraction_lost, report.jitter), (3, 40));
    let rtt = report.rtt.unwrap().as_millis();
    assert!((99..=101).contains(&rtt), "{rtt}");
    // RTCP from elsewhere after latching: dropped.
    assert_eq!(
        r.handle_rtcp(t0 + ms(5300), Side::B, addr("10.1.1.1:9"), &rr[..len]),
        Err(DropReason::ForeignSource)
    );
    assert_eq!(
        r.handle_rtcp(t0, Side::B, addr(PHONE_B), &[0x80, 1]),
        Err(DropReason::Malformed)
    );
    assert_eq!(r.counters(Side::B).rtcp_in, 1);
}

#[test]
fn media_timeout_only_while_both_sides_sendrecv() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    // A keeps talking every second; B is silent.
    for s in 1..=12u64 {
        let (mut buf, n) = packet(0, s as u16, 0, 1, &[0; 10]);
        r.handle_rtp(
            t0 + Duration::from_secs(s),
            Side::A,
            addr(PHONE_A),
            &mut buf,
            n,
        );
        drive(
            &mut r,
            t0 + Duration::from_secs(s),
            t0 + Duration::from_secs(s),
        );
    }
    assert_eq!(r.poll_event(), Some(Event::Timeout { side: Side::B }));
    assert_eq!(r.poll_event(), None);
    // Put on hold: silence is expected, no event however long.
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    let mut held = leg(PHONE_B, Codec::Pcmu, Some(96));
    held.direction = Direction::RecvOnly;
    r.configure(t0, Side::B, held);
    drive(&mut r, t0, t0 + Duration::from_secs(120));
    assert_eq!(r.poll_event(), None);
    // Off hold: the count restarts from the re-INVITE, and both sides time out 10 s later.
    let t1 = t0 + Duration::from_secs(120);
    r.configure(t1, Side::B, leg(PHONE_B, Codec::Pcmu, Some(96)));
    drive(&mut r, t1, t1 + Duration::from_secs(9));
    assert_eq!(r.poll_event(), None);
    drive(&mut r, t1, t1 + Duration::from_secs(11));
    let mut got = [r.poll_event(), r.poll_event()];
    got.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        got,
        [
            Some(Event::Timeout { side: Side::A }),
            Some(Event::Timeout { side: Side::B })
        ]
    );
}

#[test]
fn rtcp_on_the_rtp_port_is_read_not_relayed() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    let mut buf = [0u8; 100];
    let n = rtcp::write_receiver_report(&mut buf, 5, &[]).unwrap();
    assert_eq!(
        r.handle_rtp(t0, Side::A, addr(PHONE_A), &mut buf, n),
        Verdict::Drop(DropReason::Rtcp)
    );
    assert_eq!(r.counters(Side::A).rtcp_in, 1);
    let _ = HEADER_LEN;
}

proptest! {
    #[test]
    fn handle_rtp_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        claimed in 0usize..400,
        side_b in any::<bool>(),
        port in 1u16..4,
    ) {
        let t0 = origin();
        let mut r = configured(t0, Codec::Pcmu, Codec::Pcma);
        let side = if side_b { Side::B } else { Side::A };
        let from = SocketAddr::from(([10, 0, 0, 1], port));
        let mut buf = bytes.clone();
        let len = claimed.min(buf.len() + 50);
        let _ = r.handle_rtp(t0, side, from, &mut buf, len);
        let mut buf = bytes;
        let n = buf.len();
        let _ = r.handle_rtp(t0, side, from, &mut buf, n);
        let _ = r.handle_rtcp(t0, side, from, &buf);
        let _ = drive(&mut r, t0, t0 + Duration::from_secs(6));
    }
}

#[test]
fn a_train_stops_when_telephone_event_is_renegotiated_away() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    r.send_dtmf(t0, Side::B, '1', 500).unwrap();
    r.send_dtmf(t0, Side::B, '2', 500).unwrap();
    assert_eq!(drive(&mut r, t0, t0).len(), 1);
    r.configure(t0 + ms(10), Side::B, leg(PHONE_B, Codec::Pcmu, None));
    let mut buf = [0u8; 1500];
    r.handle_timeout(t0 + ms(60));
    assert!(r.poll_transmit(&mut buf).is_none());
    // Only the RTCP and timeout timers remain, in the future.
    assert!(r.poll_timeout().is_some_and(|t| t > t0 + ms(60)));
}

mod playback;
mod tap;
