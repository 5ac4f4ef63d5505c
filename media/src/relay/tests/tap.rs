//! The recording tap: it sees exactly the audio that is forwarded, as it was received.

use super::*;

/// An owned copy of a [`TapFrame`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tapped {
    from: Side,
    codec: Codec,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    payload: Vec<u8>,
}

fn recorder(into: &mut Vec<Tapped>) -> impl FnMut(TapFrame<'_>) + '_ {
    |f| {
        into.push(Tapped {
            from: f.from,
            codec: f.codec,
            ssrc: f.ssrc,
            sequence: f.sequence,
            timestamp: f.timestamp,
            payload: f.payload.to_vec(),
        })
    }
}

#[test]
fn tapped_frames_are_the_forwarded_audio_before_transcoding() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcma);
    let mut tapped = Vec::new();
    let mut forwarded = Vec::new();
    let mut tap = recorder(&mut tapped);
    for i in 0..10u16 {
        let at = t0 + ms(20 * u64::from(i));
        let frame: Vec<u8> = (0..160)
            .map(|k| (k as u8).wrapping_mul(7) ^ i as u8)
            .collect();
        let (mut buf, n) = packet(0, 500 + i, 8000 + 160 * u32::from(i), 0x1111, &frame);
        let v = r.handle_rtp_tapped(at, Side::A, addr(PHONE_A), &mut buf, n, &mut tap);
        assert!(matches!(v, Verdict::Forward { .. }));
        let out = RtpPacket::parse(&buf[..n]).unwrap();
        forwarded.push((frame, out.payload().to_vec()));
        // B answers in A-law every other packet.
        if i % 2 == 0 {
            let (mut buf, n) = packet(8, 40 + i, 320 * u32::from(i), 0x2222, &[0x2A; 80]);
            let v = r.handle_rtp_tapped(at, Side::B, addr(PHONE_B), &mut buf, n, &mut tap);
            assert!(matches!(v, Verdict::Forward { .. }));
        }
    }
    drop(tap);
    let from_a: Vec<_> = tapped.iter().filter(|t| t.from == Side::A).collect();
    let from_b: Vec<_> = tapped.iter().filter(|t| t.from == Side::B).collect();
    assert_eq!((from_a.len(), from_b.len()), (10, 5));
    for (i, (t, (sent, out))) in from_a.iter().zip(&forwarded).enumerate() {
        // The sender's own numbers and codec; the payload as it arrived, in µ-law, while B
        // received it in A-law.
        assert_eq!(t.codec, Codec::Pcmu);
        assert_eq!(t.ssrc, 0x1111);
        assert_eq!(t.sequence, 500 + i as u16);
        assert_eq!(t.timestamp, 8000 + 160 * i as u32);
        assert_eq!(&t.payload, sent);
        let transcoded: Vec<u8> = sent
            .iter()
            .map(|&u| transcode::ulaw_byte_to_alaw(u))
            .collect();
        assert_eq!(out, &transcoded);
    }
    assert!(
        from_b
            .iter()
            .all(|t| t.codec == Codec::Pcma && t.ssrc == 0x2222 && t.payload == [0x2A; 80])
    );
}

#[test]
fn nothing_is_tapped_toward_a_side_on_hold() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    let mut held = leg(PHONE_B, Codec::Pcmu, Some(96));
    held.direction = Direction::SendOnly;
    r.configure(t0, Side::B, held);
    let mut tapped = Vec::new();
    let mut tap = recorder(&mut tapped);
    let (mut buf, n) = packet(0, 1, 0, 1, &[0x11; 160]);
    assert_eq!(
        r.handle_rtp_tapped(t0, Side::A, addr(PHONE_A), &mut buf, n, &mut tap),
        Verdict::Drop(DropReason::OnHold)
    );
    // B's music on hold reaches A: that is tapped.
    let (mut buf, n) = packet(0, 1, 0, 2, &[0x22; 160]);
    assert!(matches!(
        r.handle_rtp_tapped(t0, Side::B, addr(PHONE_B), &mut buf, n, &mut tap),
        Verdict::Forward { .. }
    ));
    drop(tap);
    assert_eq!(tapped.len(), 1);
    assert_eq!((tapped[0].from, tapped[0].payload[0]), (Side::B, 0x22));
}

#[test]
fn telephone_events_and_dropped_packets_are_not_tapped() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    let mut count = 0;
    let mut tap = |_: TapFrame<'_>| count += 1;
    // A telephone event is forwarded, not tapped.
    let e = TelephoneEvent {
        event: 1,
        end: false,
        volume: 10,
        duration: 160,
    };
    let (mut buf, n) = packet(101, 1, 0, 1, &e.write());
    let v = r.handle_rtp_tapped(t0, Side::A, addr(PHONE_A), &mut buf, n, &mut tap);
    assert!(matches!(v, Verdict::Forward { .. }));
    // Latched to PHONE_A: audio from elsewhere is dropped, not tapped.
    let (mut buf, n) = packet(0, 2, 160, 1, &[0; 160]);
    let v = r.handle_rtp_tapped(t0, Side::A, addr(NAT_A), &mut buf, n, &mut tap);
    assert_eq!(v, Verdict::Drop(DropReason::ForeignSource));
    // Nor garbage, an unknown payload type or RTCP on the RTP port.
    let (mut buf, n) = packet(18, 3, 320, 1, &[0; 20]);
    let v = r.handle_rtp_tapped(t0, Side::A, addr(PHONE_A), &mut buf, n, &mut tap);
    assert_eq!(v, Verdict::Drop(DropReason::UnknownPayloadType));
    let mut junk = [0x80u8, 0, 0];
    let v = r.handle_rtp_tapped(t0, Side::A, addr(PHONE_A), &mut junk, 3, &mut tap);
    assert_eq!(v, Verdict::Drop(DropReason::Malformed));
    let mut rr = [0u8; 100];
    let len = rtcp::write_receiver_report(&mut rr, 5, &[]).unwrap();
    let v = r.handle_rtp_tapped(t0, Side::A, addr(PHONE_A), &mut rr, len, &mut tap);
    assert_eq!(v, Verdict::Drop(DropReason::Rtcp));
    // Audio toward a side hearing generated DTMF is suppressed, so not tapped either.
    r.send_dtmf(t0, Side::B, '5', 200).unwrap();
    assert_eq!(drive(&mut r, t0, t0).len(), 1);
    let (mut buf, n) = packet(0, 4, 480, 1, &[0; 160]);
    let v = r.handle_rtp_tapped(t0 + ms(10), Side::A, addr(PHONE_A), &mut buf, n, &mut tap);
    assert_eq!(v, Verdict::Drop(DropReason::Suppressed));
    // Nor toward an unconfigured side.
    let mut lone = relay(t0);
    lone.configure(t0, Side::A, leg(PHONE_A, Codec::Pcmu, None));
    let (mut buf, n) = packet(0, 1, 0, 1, &[0; 160]);
    let v = lone.handle_rtp_tapped(t0, Side::A, addr(PHONE_A), &mut buf, n, &mut tap);
    assert_eq!(v, Verdict::Drop(DropReason::NoDestination));
    assert_eq!(count, 0);
}

proptest! {
    /// The tapped path is the untapped one plus the tap: same verdicts, same bytes, and one
    /// frame per forwarded audio packet.
    #[test]
    fn tapping_changes_nothing(
        packets in proptest::collection::vec(
            (any::<bool>(), prop_oneof![Just(0u8), Just(8), Just(101), Just(96), any::<u8>()],
             any::<u16>(), 0usize..200, any::<bool>()),
            1..40,
        ),
    ) {
        let t0 = origin();
        let mut plain = configured(t0, Codec::Pcmu, Codec::Pcma);
        let mut tapped = configured(t0, Codec::Pcmu, Codec::Pcma);
        let mut frames = 0usize;
        let mut tap = |f: TapFrame<'_>| {
            frames += 1;
            assert!(f.payload.len() <= 200);
        };
        let mut audio_forwarded = 0usize;
        for (i, (side_b, pt, seq, len, stranger)) in packets.into_iter().enumerate() {
            let side = if side_b { Side::B } else { Side::A };
            let from = match (side, stranger) {
                (_, true) => addr("10.9.9.9:9"),
                (Side::A, false) => addr(PHONE_A),
                (Side::B, false) => addr(PHONE_B),
            };
            let payload: Vec<u8> = (0..len).map(|k| (k * 31 + i) as u8).collect();
            let (mut a, n) = packet(pt, seq, u32::from(seq) * 160, 7, &payload);
            let mut b = a;
            let at = t0 + ms(20 * i as u64);
            let va = plain.handle_rtp(at, side, from, &mut a, n);
            let vb = tapped.handle_rtp_tapped(at, side, from, &mut b, n, &mut tap);
            prop_assert_eq!(va, vb);
            prop_assert_eq!(&a[..n], &b[..n]);
            let audio_pt = match side { Side::A => 0, Side::B => 8 };
            // (`packet` keeps the low 7 bits of `pt`.)
            if matches!(va, Verdict::Forward { .. }) && pt & 0x7F == audio_pt {
                audio_forwarded += 1;
            }
        }
        prop_assert_eq!(frames, audio_forwarded);
        prop_assert_eq!(plain.counters(Side::A), tapped.counters(Side::A));
        prop_assert_eq!(plain.counters(Side::B), tapped.counters(Side::B));
    }
}
