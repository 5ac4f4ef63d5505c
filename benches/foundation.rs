//! Micro-benchmarks of the foundation's per-request and per-frame work. Figures, with the command
//! and machine, are in docs/benchmarks.md. Run: `cargo bench --bench foundation`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use masterz::domain::phone::normalize_e164;
use masterz::secrets::{Key, KeySource, Keyring};
use masterz_media::g711;

fn g711_frames(c: &mut Criterion) {
    // One 20 ms frame at 8 kHz: what the relay handles per packet and direction.
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i as f32 * 0.3).sin() * 12_000.0) as i16)
        .collect();
    let ulaw: Vec<u8> = pcm.iter().map(|&s| g711::linear_to_ulaw(s)).collect();
    let mut out_pcm = [0i16; 160];
    let mut out_law = [0u8; 160];
    c.bench_function("g711/ulaw_encode_160", |b| {
        b.iter(|| {
            for (o, &s) in out_law.iter_mut().zip(black_box(&pcm)) {
                *o = g711::linear_to_ulaw(s);
            }
            black_box(&out_law);
        })
    });
    c.bench_function("g711/ulaw_decode_160", |b| {
        b.iter(|| {
            for (o, &u) in out_pcm.iter_mut().zip(black_box(&ulaw)) {
                *o = g711::ulaw_to_linear(u);
            }
            black_box(&out_pcm);
        })
    });
}

fn secrets(c: &mut Criterion) {
    let ring = Keyring::new(vec![Key::generate().unwrap()], KeySource::Config).unwrap();
    let credential = br#"{"page_access_token":"EAAGm0PX4ZCpsBAKZCZBkZBxZBZBZCZAZBZBZAZBZBZBZBZBZBZBZBZBZBZBZBZBZBZBZBZBZB"}"#;
    let sealed = ring
        .encrypt(credential, "channel_accounts.credentials")
        .unwrap();
    c.bench_function("secrets/encrypt_credential", |b| {
        b.iter(|| {
            ring.encrypt(black_box(credential), "channel_accounts.credentials")
                .unwrap()
        })
    });
    c.bench_function("secrets/decrypt_credential", |b| {
        b.iter(|| {
            ring.decrypt(black_box(&sealed), "channel_accounts.credentials")
                .unwrap()
        })
    });
    c.bench_function("secrets/token_hash", |b| {
        b.iter(|| {
            masterz::secrets::token_hash(black_box(
                "mzt_qHk3mB0yY5cVd4fG7hJ8kL9zX1cV2bN3mQ4wE5rT6yU",
            ))
        })
    });
}

fn phones(c: &mut Criterion) {
    c.bench_function("phone/normalize_e164", |b| {
        b.iter(|| normalize_e164(black_box("0049 (151) 2345-6789")))
    });
}

fn passwords(c: &mut Criterion) {
    // What one login costs the server in CPU: a bcrypt verification at cost 12.
    let hash = masterz::auth::hash_password_blocking("correct-horse-battery").unwrap();
    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    group.bench_function("bcrypt_verify_cost12", |b| {
        b.iter(|| bcrypt::verify(black_box("correct-horse-battery"), &hash).unwrap())
    });
    group.finish();
}

criterion_group!(benches, g711_frames, secrets, phones, passwords);
criterion_main!(benches);
