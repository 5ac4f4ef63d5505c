//! Complete non-INVITE transactions per second through two sans-IO endpoints in memory:
//! UAC `send_request` → bytes → UAS `handle_input` → `Request` event → `response_to` +
//! `send_response` → bytes → UAC `handle_input` → `Response` event, with Timers K and J drained
//! by advancing the virtual clock every 1024 transactions.
//!
//! `CARGO_TARGET_DIR=/tmp/tgt-tx cargo bench -p masterz-sip --bench transactions`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use masterz_sip::endpoint::{Endpoint, EndpointConfig, Event, response_to};
use masterz_sip::ident::{RandomSource, Tag};
use masterz_sip::message::{Message, Method, StatusCode, StdHeader};
use masterz_sip::transport::{Peer, Transport};

/// xorshift64*: deterministic and cheap, so the figure measures the endpoint, not the RNG.
struct Seeded(u64);

impl RandomSource for Seeded {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

struct Pair {
    uac: Endpoint,
    uas: Endpoint,
    uac_peer: Peer,
    uas_peer: Peer,
    now: Instant,
    rng: Seeded,
    template: Message,
    done: u64,
}

impl Pair {
    fn new() -> Self {
        let config = |local: &str| EndpointConfig {
            local: vec![(Transport::Udp, local.to_owned())],
            user_agent: Some("masterz".to_owned()),
            ..EndpointConfig::default()
        };
        let mut template = Message::request(Method::Options, "sip:bob@192.0.2.2");
        let h = &mut template.headers;
        h.push(
            StdHeader::From,
            "\"Alice\" <sip:alice@192.0.2.1>;tag=9fxced76sl",
        );
        h.push(StdHeader::To, "<sip:bob@192.0.2.2>");
        h.push(StdHeader::CallId, "3848276298220188511@192.0.2.1");
        h.push(StdHeader::CSeq, "1 OPTIONS");
        h.push(
            StdHeader::Contact,
            "<sip:alice@192.0.2.1:5060;transport=udp>",
        );
        h.push(StdHeader::Accept, "application/sdp");
        #[allow(clippy::disallowed_methods)] // one real instant; the clock is virtual after it
        let now = Instant::now();
        Self {
            uac: Endpoint::new(config("192.0.2.1:5060"), Box::new(Seeded(1))),
            uas: Endpoint::new(config("192.0.2.2:5060"), Box::new(Seeded(2))),
            uac_peer: Peer::new(Transport::Udp, "192.0.2.1:5060".parse().unwrap()),
            uas_peer: Peer::new(Transport::Udp, "192.0.2.2:5060".parse().unwrap()),
            now,
            rng: Seeded(3),
            template,
            done: 0,
        }
    }

    fn transaction(&mut self) {
        let now = self.now;
        self.uac
            .send_request(now, self.template.clone(), self.uas_peer);
        while let Some(t) = self.uac.poll_transmit() {
            self.uas.handle_input(now, self.uac_peer, t.bytes);
        }
        while let Some(event) = self.uas.poll_event() {
            if let Event::Request { tx, request, .. } = event {
                let tag = Tag::generate(&mut self.rng);
                let ok = StatusCode::new(200).unwrap();
                let response = response_to(&request, ok, Some(tag.as_str()));
                self.uas.send_response(now, tx, response).unwrap();
            }
        }
        while let Some(t) = self.uas.poll_transmit() {
            self.uac.handle_input(now, self.uas_peer, t.bytes);
        }
        while let Some(event) = self.uac.poll_event() {
            assert!(matches!(event, Event::Response { .. }));
            black_box(event);
        }
        self.done += 1;
        self.now += Duration::from_micros(10);
        if self.done.is_multiple_of(1024) {
            // Past Timer J (32 s) and K (5 s): every finished transaction is forgotten.
            self.now += Duration::from_secs(40);
            self.uac.handle_timeout(self.now);
            self.uas.handle_timeout(self.now);
            assert_eq!(
                self.uac.client_transactions() + self.uas.server_transactions(),
                0
            );
            assert!(self.uac.poll_transmit().is_none() && self.uas.poll_transmit().is_none());
        }
    }
}

fn transactions(c: &mut Criterion) {
    let mut group = c.benchmark_group("endpoint");
    group.throughput(Throughput::Elements(1));
    group.bench_function("non_invite_transaction_udp", |b| {
        let mut pair = Pair::new();
        b.iter(|| pair.transaction());
    });
    group.finish();
}

criterion_group!(benches, transactions);
criterion_main!(benches);
