//! A WebRTC leg against a real WebRTC stack: str0m with full ICE, in the browser's role (the
//! Chromium end-to-end tests in tests/calls/browser.rs do the same with a browser).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use masterz_media::codec::Codec;
use str0m::change::SdpOffer;
use str0m::media::{Frequency, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::mpsc;

use super::{MediaConfig, MediaEngine, WebRtcEvent, WebRtcLeg};

fn engine(first: u16) -> Arc<MediaEngine> {
    MediaEngine::new(MediaConfig {
        ports: crate::config::PortRange {
            first,
            last: first + 9,
        },
        bind_ip: [127, 0, 0, 1].into(),
        public_ip: [127, 0, 0, 1].into(),
        webrtc_public_ip: [127, 0, 0, 1].into(),
        media_timeout: Duration::from_secs(30),
    })
}

/// The browser: an `Rtc` with full ICE on its own socket.
struct Browser {
    rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    received: Vec<(u8, Vec<u8>)>,
    connected: bool,
    mid: Option<str0m::media::Mid>,
}

impl Browser {
    fn answering(leg: &WebRtcLeg, codecs: &[Codec]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let addr = socket.local_addr().unwrap();
        let mut config = Rtc::builder().clear_codecs();
        for c in codecs {
            config = match c {
                Codec::Pcmu => config.enable_pcmu(true, false),
                Codec::Pcma => config.enable_pcma(true, false),
            };
        }
        let mut rtc = config.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let offer = SdpOffer::from_sdp_string(leg.offer()).unwrap();
        let answer = rtc.sdp_api().accept_offer(offer).unwrap();
        leg.accept_answer(answer.to_sdp_string());
        Self {
            rtc,
            socket,
            addr,
            received: Vec::new(),
            connected: false,
            mid: None,
        }
    }

    /// Runs the browser's stack for a moment: reads its socket, fires timers, sends output.
    fn step(&mut self) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            let input = Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: self.addr,
                    contents: buf[..n].try_into().unwrap(),
                },
            );
            self.rtc.handle_input(input).unwrap();
            self.drain();
        }
        self.rtc
            .handle_input(Input::Timeout(Instant::now()))
            .unwrap();
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => return,
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaAdded(m)) => self.mid = Some(m.mid),
                Output::Event(Event::MediaData(m)) => self.received.push((*m.pt, m.data.to_vec())),
                Output::Event(_) => {}
            }
        }
    }

    fn send_audio(&mut self, n: u64, byte: u8) {
        let Some(mid) = self.mid else {
            return;
        };
        let Some(w) = self.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = w.payload_params().next().map(|p| p.pt()) else {
            return;
        };
        let time = MediaTime::new(n * 160, Frequency::EIGHT_KHZ);
        w.write(pt, Instant::now(), time, vec![byte; 160]).unwrap();
        self.drain();
    }
}

fn rtp(seq: u16, pt: u8, byte: u8) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend(std::iter::repeat_n(byte, 160));
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_leg_connects_and_carries_g711_both_ways_untouched() {
    let engine = engine(44_100);
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The other side speaks PCMA: it is offered first, and the browser takes it.
    let leg = engine
        .webrtc(7, &[Codec::Pcma, Codec::Pcmu], Duration::from_secs(5), tx)
        .unwrap();
    assert!(leg.offer().contains("a=ice-lite"), "{}", leg.offer());
    let m_line = leg
        .offer()
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .unwrap()
        .to_owned();
    assert!(m_line.ends_with(" 8 0"), "{m_line}");
    let session = UdpSocket::bind("127.0.0.1:0").unwrap();
    session.set_nonblocking(true).unwrap();
    leg.bridge(session.local_addr().unwrap());
    let mut browser = Browser::answering(&leg, &[Codec::Pcma, Codec::Pcmu]);

    let deadline = Instant::now() + Duration::from_secs(8);
    let mut connected = None;
    let mut from_browser = Vec::new();
    let mut n = 0u16;
    while Instant::now() < deadline && (from_browser.len() < 20 || browser.received.len() < 20) {
        browser.step();
        if let Ok(notice) = rx.try_recv() {
            assert_eq!(notice.owner, 7);
            connected = Some(notice.event);
        }
        if browser.connected && connected.is_some() {
            n += 1;
            browser.send_audio(u64::from(n), 0x55);
            session.send_to(&rtp(n, 8, 0xd5), leg.rtp_addr()).unwrap();
        }
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = session.recv_from(&mut buf) {
            assert_eq!(from, leg.rtp_addr());
            from_browser.push(buf[..len].to_vec());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        connected,
        Some(WebRtcEvent::Connected {
            codec: Codec::Pcma,
            payload_type: 8
        })
    );
    assert!(
        from_browser.len() >= 20,
        "{} packets from the browser",
        from_browser.len()
    );
    for p in &from_browser {
        let p = masterz_media::rtp::RtpPacket::parse(p).unwrap();
        assert_eq!(p.payload_type(), 8);
        assert_eq!(p.payload(), &[0x55; 160][..]);
    }
    assert!(
        browser.received.len() >= 20,
        "{} packets to the browser",
        browser.received.len()
    );
    assert!(
        browser
            .received
            .iter()
            .all(|(pt, d)| *pt == 8 && d == &[0xd5; 160])
    );

    // On hold, the browser's audio stops at the leg; the other way goes on.
    leg.hold(true);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut buf = [0u8; 2048];
    while session.recv_from(&mut buf).is_ok() {}
    let before = browser.received.len();
    for _ in 0..20 {
        n += 1;
        browser.send_audio(u64::from(n), 0x55);
        session.send_to(&rtp(n, 8, 0xd5), leg.rtp_addr()).unwrap();
        browser.step();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    browser.step();
    assert!(
        session.recv_from(&mut buf).is_err(),
        "audio passed on while held"
    );
    assert!(
        browser.received.len() > before,
        "the browser hears nothing on hold"
    );
}

#[tokio::test]
async fn a_browser_that_never_connects_fails_with_a_reason() {
    let engine = engine(44_120);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let leg = engine
        .webrtc(9, &[Codec::Pcmu], Duration::from_millis(300), tx)
        .unwrap();
    // A valid answer, but nobody behind its candidate.
    let browser = Browser::answering(&leg, &[Codec::Pcmu]);
    drop(browser);
    let notice = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&notice.event, WebRtcEvent::Failed(r) if r.contains("did not complete")),
        "{notice:?}"
    );
}

#[tokio::test]
async fn a_bad_answer_fails_and_the_port_returns_to_the_pool() {
    let engine = engine(44_140);
    let free = engine.pool.free();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let leg = engine
        .webrtc(3, &[Codec::Pcmu], Duration::from_secs(5), tx)
        .unwrap();
    assert_eq!(engine.pool.free(), free - 1);
    leg.accept_answer("v=0\r\nnot sdp".into());
    let notice = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(notice.event, WebRtcEvent::Failed(_)), "{notice:?}");
    drop(leg);
    let back = Instant::now() + Duration::from_secs(2);
    while engine.pool.free() != free && Instant::now() < back {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(engine.pool.free(), free);
}
