//! The recorder's cost per call: one 20 ms step of a stereo recording is two frames pushed into
//! the aligner, one drain, and one append of 160 stereo frames to the WAV file (with a
//! checkpoint every second). Run with `cargo bench -p masterz-recordings --bench recorder`.

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use masterz_recordings::{AlignConfig, Aligner, Channel, Frame, StereoWav};

const FRAME: usize = 160;

fn voice(seed: i16) -> Vec<i16> {
    (0..FRAME as i16)
        .map(|i| i.wrapping_mul(97).wrapping_add(seed))
        .collect()
}

/// Both channels push one 20 ms frame each, in order, and the aligner drains once.
fn aligner(c: &mut Criterion) {
    let (left, right) = (voice(1), voice(-7));
    let mut g = c.benchmark_group("aligner");
    g.throughput(Throughput::Elements(1));
    g.bench_function("push_2_frames_and_drain_per_20ms", |b| {
        let mut a = Aligner::new(AlignConfig::default());
        let mut out = Vec::with_capacity(4 * FRAME);
        let mut k = 0u64;
        b.iter(|| {
            let t = k * FRAME as u64;
            let ts = (k as u32).wrapping_mul(FRAME as u32);
            for (channel, ssrc, samples) in
                [(Channel::Customer, 11, &left), (Channel::Agent, 22, &right)]
            {
                a.push(Frame {
                    channel,
                    ssrc,
                    timestamp: ts.wrapping_add(ssrc),
                    arrival: t,
                    samples,
                });
            }
            a.drain(t, &mut out);
            black_box(&out);
            out.clear();
            k += 1;
        });
    });
    // Every other pair of packets swapped (heavy reordering), same totals.
    g.bench_function("push_2_frames_and_drain_per_20ms_reordered", |b| {
        let mut a = Aligner::new(AlignConfig::default());
        let mut out = Vec::with_capacity(8 * FRAME);
        let mut k = 0u64;
        b.iter(|| {
            let sent = k ^ 1;
            let t = k * FRAME as u64;
            let ts = (sent as u32).wrapping_mul(FRAME as u32);
            for (channel, ssrc, samples) in
                [(Channel::Customer, 11, &left), (Channel::Agent, 22, &right)]
            {
                a.push(Frame {
                    channel,
                    ssrc,
                    timestamp: ts,
                    arrival: t,
                    samples,
                });
            }
            a.drain(t, &mut out);
            black_box(&out);
            out.clear();
            k += 1;
        });
    });
    g.finish();
}

/// One 20 ms append of interleaved audio, and a checkpoint after every 50 (once a second), into
/// an in-memory file that is reused: timed over minutes of audio at a time.
// A benchmark reads the clock by nature; the crate's ban on it is about the library's logic.
#[allow(clippy::disallowed_methods)]
fn wav(c: &mut Criterion) {
    let stereo: Vec<i16> = voice(3).into_iter().flat_map(|s| [s, -s]).collect();
    let mut file = Cursor::new(Vec::with_capacity(44 + 3000 * 4 * FRAME));
    let mut g = c.benchmark_group("wav");
    g.throughput(Throughput::Elements(1));
    g.bench_function("append_20ms_checkpoint_1s", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                // One minute of audio per file, then the buffer is reused from the start.
                let n = left.min(3000);
                file.set_position(0);
                file.get_mut().clear();
                let mut w = StereoWav::new(&mut file).expect("header");
                let start = std::time::Instant::now();
                for i in 0..n {
                    w.append(black_box(&stereo)).expect("append");
                    if i % 50 == 49 {
                        w.checkpoint().expect("checkpoint");
                    }
                }
                spent += start.elapsed();
                w.finish().expect("finish");
                left -= n;
            }
            spent
        });
    });
    g.finish();
}

criterion_group!(benches, aligner, wav);
criterion_main!(benches);
