//! One relay step of the pure media relay (parse, latch check, statistics, rewrite, counters),
//! with the same codec on both legs and with PCMU → PCMA transcoding of a 160-byte (20 ms)
//! frame; the same steps through `handle_rtp_tapped` with a tap that copies the frame out; and
//! the transcoding and the G.711 decoding of 160 samples alone. Figures, with the command and
//! machine, are in docs/benchmarks.md.
//!
//! `CARGO_TARGET_DIR=/work/target-rtp cargo bench -p masterz-media --bench relay`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use masterz_media::codec::{Codec, Direction};
use masterz_media::relay::{LegConfig, Relay, RelayConfig, Side, TapFrame, Verdict};
use masterz_media::{g711, rtp, transcode};

fn leg(remote: SocketAddr, codec: Codec) -> LegConfig {
    LegConfig {
        remote_rtp: Some(remote),
        remote_rtcp: None,
        codec,
        payload_type: codec.static_payload_type(),
        telephone_event: Some(101),
        ptime_ms: 20,
        direction: Direction::SendRecv,
    }
}

fn relay_step(c: &mut Criterion, name: &str, b_codec: Codec, tapped: bool) {
    // Benchmarks may read the clock: this is the origin of the virtual time below.
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let a: SocketAddr = ([198, 51, 100, 10], 4000).into();
    let b: SocketAddr = ([192, 0, 2, 20], 5000).into();
    let mut relay = Relay::new(
        t0,
        RelayConfig {
            ssrc: [1, 2],
            initial_seq: [0, 0],
            initial_ts: [0, 0],
            media_timeout: Duration::from_secs(30),
            rtcp_interval: Duration::from_secs(5),
            ntp_at_start: 0,
        },
    );
    relay.configure(t0, Side::A, leg(a, Codec::Pcmu));
    relay.configure(t0, Side::B, leg(b, b_codec));
    let mut template = [0u8; 172];
    rtp::write_header(&mut template, false, 0, 0, 0, 0x1234).expect("12 bytes fit");
    for (i, s) in template[12..].iter_mut().enumerate() {
        *s = i as u8;
    }
    let mut buf = [0u8; 1500];
    let mut seq: u16 = 0;
    let mut now = t0;
    // What a recorder's tap costs: copy the frame into a fixed buffer (as it would into a
    // preallocated ring before handing it to the recording task).
    let mut recorded = [0u8; 1500];
    let mut recorded_len = 0usize;
    let mut tap = |f: TapFrame<'_>| {
        let n = f.payload.len().min(recorded.len());
        recorded[..n].copy_from_slice(&f.payload[..n]);
        recorded_len = n;
    };
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |bench| {
        bench.iter(|| {
            seq = seq.wrapping_add(1);
            now += Duration::from_millis(20);
            buf[..172].copy_from_slice(&template);
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            let ts = u32::from(seq) * 160;
            buf[4..8].copy_from_slice(&ts.to_be_bytes());
            let v = if tapped {
                relay.handle_rtp_tapped(now, Side::A, a, black_box(&mut buf), 172, &mut tap)
            } else {
                relay.handle_rtp(now, Side::A, a, black_box(&mut buf), 172)
            };
            debug_assert!(matches!(v, Verdict::Forward { .. }));
            black_box(v)
        })
    });
    group.finish();
    black_box((recorded, recorded_len));
}

fn same_codec(c: &mut Criterion) {
    relay_step(c, "step_pcmu_to_pcmu_160", Codec::Pcmu, false);
}

fn transcoding(c: &mut Criterion) {
    relay_step(c, "step_pcmu_to_pcma_160", Codec::Pcma, false);
}

fn tapped(c: &mut Criterion) {
    relay_step(c, "step_tapped_pcmu_to_pcmu_160", Codec::Pcmu, true);
    relay_step(c, "step_tapped_pcmu_to_pcma_160", Codec::Pcma, true);
}

fn g711_only(c: &mut Criterion) {
    let mut frame = [0u8; 160];
    for (i, s) in frame.iter_mut().enumerate() {
        *s = i as u8;
    }
    let mut group = c.benchmark_group("g711");
    group.throughput(Throughput::Bytes(160));
    group.bench_function("ulaw_to_alaw_160", |b| {
        b.iter(|| transcode::ulaw_to_alaw(black_box(&mut frame)))
    });
    let mut pcm = [0i16; 160];
    group.bench_function("decode_ulaw_160", |b| {
        b.iter(|| g711::decode(Codec::Pcmu, black_box(&frame), black_box(&mut pcm)))
    });
    group.finish();
}

criterion_group!(benches, same_codec, transcoding, tapped, g711_only);
criterion_main!(benches);
