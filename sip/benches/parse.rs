//! The message parser and printer on a typical INVITE (about 1 KB: three Vias, Record-Route,
//! tagged From, Contact, Allow, Supported, User-Agent, a 300-byte SDP body) and its 200 OK:
//! parse, print, parse plus the typed views a transaction layer reads, and stream framing.
//! Figures, with the command and machine, are in docs/benchmarks.md.
//!
//! `CARGO_TARGET_DIR=/tmp/tgt-fz cargo bench -p masterz-sip --bench parse`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use masterz_sip::headers::{CSeq, CallIdHeader, From, To, Via};
use masterz_sip::message::{Frame, Limits, Message, frame};

const SDP: &str = "v=0\r\n\
o=alice 3904517216 3904517216 IN IP4 192.0.2.55\r\n\
s=call\r\n\
c=IN IP4 192.0.2.55\r\n\
t=0 0\r\n\
m=audio 40376 RTP/AVP 0 8 9 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=rtcp:40377\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

const INVITE_HEAD: &str = "INVITE sip:+4930123456@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-524287-1;rport\r\n\
Via: SIP/2.0/TCP 198.51.100.20;branch=z9hG4bK8f2c.0b1d7e3a\r\n\
Via: SIP/2.0/UDP 192.168.1.34:5062;rport=5062;received=192.0.2.55;branch=z9hG4bK.Hx7Pq2mQz\r\n\
Record-Route: <sip:198.51.100.20;lr;ftag=as6f1b2c3d>\r\n\
Max-Forwards: 68\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=as6f1b2c3d\r\n\
To: <sip:+4930123456@pbx.example.com>\r\n\
Call-ID: 3c26700a9b2f4e1c@192.168.1.34\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:alice@192.0.2.55:5062;ob>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: Zoiper rv2.10.19.6\r\n\
Content-Type: application/sdp\r\n";

const OK_HEAD: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-524287-1;rport=5060\r\n\
Via: SIP/2.0/TCP 198.51.100.20;branch=z9hG4bK8f2c.0b1d7e3a\r\n\
Via: SIP/2.0/UDP 192.168.1.34:5062;rport=5062;received=192.0.2.55;branch=z9hG4bK.Hx7Pq2mQz\r\n\
Record-Route: <sip:198.51.100.20;lr;ftag=as6f1b2c3d>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=as6f1b2c3d\r\n\
To: <sip:+4930123456@pbx.example.com>;tag=8f4e2a1c\r\n\
Call-ID: 3c26700a9b2f4e1c@192.168.1.34\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+4930123456@203.0.113.7:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
Supported: replaces, timer\r\n\
Server: masterz\r\n\
Content-Type: application/sdp\r\n";

fn with_body(head: &str, body: &str) -> Bytes {
    Bytes::from(format!(
        "{head}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

fn invite() -> Bytes {
    let m = with_body(INVITE_HEAD, SDP);
    assert!(
        (950..=1100).contains(&m.len()),
        "INVITE is {} bytes",
        m.len()
    );
    assert!(
        (280..=330).contains(&SDP.len()),
        "SDP is {} bytes",
        SDP.len()
    );
    m
}

fn ok() -> Bytes {
    with_body(OK_HEAD, SDP)
}

/// What a transaction and dialog layer reads from every message: the top Via (branch), CSeq,
/// Call-ID and the From and To tags.
fn transaction_views(m: &Message) -> (usize, u32, usize, usize, usize) {
    let via = m.require::<Via>().unwrap();
    let cseq = m.require::<CSeq>().unwrap();
    let call_id = m.require::<CallIdHeader>().unwrap();
    let from = m.require::<From>().unwrap();
    let to = m.require::<To>().unwrap();
    (
        via.branch().map_or(0, str::len),
        cseq.seq,
        call_id.0.len(),
        from.tag().map_or(0, str::len),
        to.tag().map_or(0, str::len),
    )
}

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));
    for (name, bytes) in [("invite", invite()), ("200_ok", ok())] {
        // `Bytes::clone` is a reference count: the parser gets the datagram as a driver would.
        g.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| Message::parse(black_box(bytes.clone()), &limits).unwrap())
        });
        g.bench_function(format!("parse_views/{name}"), |b| {
            b.iter(|| {
                let m = Message::parse(black_box(bytes.clone()), &limits).unwrap();
                black_box(transaction_views(&m));
                m
            })
        });
        let message = Message::parse(bytes.clone(), &limits).unwrap();
        assert_eq!(message.to_bytes(), bytes, "{name} prints as received");
        g.bench_function(format!("print_to_bytes/{name}"), |b| {
            b.iter(|| black_box(&message).to_bytes())
        });
        let mut out = BytesMut::with_capacity(2048);
        g.bench_function(format!("print_encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&message).encode(&mut out);
                black_box(out.len())
            })
        });
    }
    // A TCP read that holds the INVITE, the 200 OK and the start of the next message.
    let mut stream = BytesMut::new();
    stream.extend_from_slice(&invite());
    stream.extend_from_slice(&ok());
    stream.extend_from_slice(b"ACK sip:+4930123456@203.0.113.7:5060 SIP/2.0\r\nVia: SIP/2.0/UDP");
    let stream = stream.freeze();
    let invite_len = invite().len();
    assert_eq!(frame(&stream, &limits), Ok(Frame::Message(invite_len)));
    g.bench_function("frame/invite", |b| {
        b.iter(|| frame(black_box(&stream), &limits).unwrap())
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
