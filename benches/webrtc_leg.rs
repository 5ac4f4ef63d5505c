//! WebRTC legs over real sockets: `MASTERZ_LOAD_LEGS` browser legs (default 100), each carrying
//! G.711 both ways at 50 packets/s for `MASTERZ_LOAD_SECS` (default 10): a str0m peer with full
//! ICE plays each browser (all of them on one thread of their own), a plain UDP socket plays each
//! media session side. Prints packets each way and the CPU the legs cost per 1000 packets: the
//! process's CPU minus the browser thread's (measured on that thread), so SRTP, DTLS and ICE on
//! our side and the loopback hop are in it; the session sockets' own sends are too (small).
//!
//! `MASTERZ_LOAD_LEGS=100 cargo bench --bench webrtc_leg`

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use masterz::config::PortRange;
use masterz::media_engine::{MediaConfig, MediaEngine, WebRtcEvent, WebRtcLeg};
use masterz_media::codec::Codec;
use str0m::change::SdpOffer;
use str0m::media::{Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) in ms of `/proc/<path>/stat` (USER_HZ = 100).
fn cpu_ms(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields after the name: state is not numeric, so utime/stime are at 10 and 11 here.
    (f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)) * 10
}

struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    mid: Option<Mid>,
    connected: bool,
    sent: u64,
}

impl Peer {
    fn answer(leg: &WebRtcLeg) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        let addr = socket.local_addr().expect("addr");
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_pcmu(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let offer = SdpOffer::from_sdp_string(leg.offer()).expect("offer");
        let answer = rtc.sdp_api().accept_offer(offer).expect("answer");
        leg.accept_answer(answer.to_sdp_string());
        Self {
            rtc,
            socket,
            addr,
            mid: None,
            connected: false,
            sent: 0,
        }
    }

    fn step(&mut self, started: Instant, received: &AtomicU64) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            let Ok(contents) = buf[..n].try_into() else {
                continue;
            };
            let input = Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: self.addr,
                    contents,
                },
            );
            let _ = self.rtc.handle_input(input);
            self.drain(received);
        }
        let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
        self.drain(received);
        if !self.connected {
            return;
        }
        let due = started.elapsed().as_millis() as u64 / 20;
        while self.sent < due {
            self.sent += 1;
            let (Some(mid), n) = (self.mid, self.sent) else {
                return;
            };
            let pt = self
                .rtc
                .writer(mid)
                .and_then(|w| w.payload_params().next().map(|p| p.pt()));
            if let (Some(pt), Some(w)) = (pt, self.rtc.writer(mid)) {
                let t = MediaTime::new(n * 160, Frequency::EIGHT_KHZ);
                let _ = w.write(pt, Instant::now(), t, vec![0xff; 160]);
            }
            self.drain(received);
        }
    }

    fn drain(&mut self, received: &AtomicU64) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(_)) | Err(_) => return,
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::MediaAdded(m))) => self.mid = Some(m.mid),
                Ok(Output::Event(Event::MediaData(_))) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Output::Event(_)) => {}
            }
        }
    }
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x0bad_cafe_u32.to_be_bytes());
    p.extend(std::iter::repeat_n(0xffu8, 160));
    p
}

async fn run(legs: usize, secs: u64) {
    let engine = MediaEngine::new(MediaConfig {
        ports: PortRange {
            first: 20_000,
            last: 40_000,
        },
        bind_ip: [127, 0, 0, 1].into(),
        public_ip: [127, 0, 0, 1].into(),
        webrtc_public_ip: [127, 0, 0, 1].into(),
        media_timeout: Duration::from_secs(60),
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut all = Vec::new();
    let mut peers = Vec::new();
    for i in 0..legs {
        let leg = engine
            .webrtc(
                i as u64,
                &[Codec::Pcmu],
                Duration::from_secs(20),
                tx.clone(),
            )
            .expect("leg");
        let session = UdpSocket::bind("127.0.0.1:0").expect("bind");
        session.set_nonblocking(true).expect("nonblocking");
        leg.bridge(session.local_addr().expect("addr"));
        peers.push(Peer::answer(&leg));
        all.push((leg, session));
    }
    // The browsers, on a thread of their own whose CPU is measured apart.
    let to_browser = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let peer_cpu = Arc::new(AtomicU64::new(0));
    let browsers = {
        let (received, stop, peer_cpu) = (to_browser.clone(), stop.clone(), peer_cpu.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let cpu0 = cpu_ms("/proc/thread-self/stat");
            while !stop.load(Ordering::Relaxed) {
                for p in &mut peers {
                    p.step(started, &received);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peer_cpu.store(cpu_ms("/proc/thread-self/stat") - cpu0, Ordering::Relaxed);
            peers.iter().map(|p| p.sent).sum::<u64>()
        })
    };
    let mut connected = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while connected < legs && Instant::now() < deadline {
        if let Ok(Some(n)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await
            && matches!(n.event, WebRtcEvent::Connected { .. })
        {
            connected += 1;
        }
    }
    println!("{connected}/{legs} legs connected");
    let cpu0 = cpu_ms("/proc/self/stat");
    let started = Instant::now();
    let mut seq = 0u16;
    let mut to_session = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut buf = [0u8; 2048];
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        seq = seq.wrapping_add(1);
        let p = rtp(seq);
        for (leg, session) in &all {
            let _ = session.send_to(&p, leg.rtp_addr());
            while session.recv_from(&mut buf).is_ok() {
                to_session += 1;
            }
        }
    }
    let cpu = cpu_ms("/proc/self/stat") - cpu0;
    stop.store(true, Ordering::Relaxed);
    let browser_sent = browsers.join().unwrap_or(0);
    let peer = peer_cpu.load(Ordering::Relaxed);
    let sent_to_browser = u64::from(seq) * legs as u64;
    let packets = to_session + to_browser.load(Ordering::Relaxed);
    let ours = cpu.saturating_sub(peer);
    println!(
        "{legs} legs, {secs} s: session→browser sent {sent_to_browser}, received {}; \
         browser→session sent {browser_sent}, received {to_session}",
        to_browser.load(Ordering::Relaxed)
    );
    println!(
        "CPU: process {cpu} ms, browsers' thread {peer} ms, legs {ours} ms = \
         {:.1} CPU-ms per 1000 packets relayed (both directions), {:.2} % of a core per leg",
        ours as f64 * 1000.0 / packets.max(1) as f64,
        ours as f64 / 10.0 / secs as f64 / legs as f64
    );
}

fn main() {
    let legs = env("MASTERZ_LOAD_LEGS", 100) as usize;
    let secs = env("MASTERZ_LOAD_SECS", 10);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(legs, secs));
}
