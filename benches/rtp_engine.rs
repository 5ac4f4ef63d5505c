//! The media engine over real sockets: `MASTERZ_LOAD_CALLS` sessions (default 1000), one
//! G.711 stream A → B each at 50 packets/s for 5 s, from one sending socket to one receiving
//! socket. Prints what was sent, relayed and received, the process CPU per 1000 packets (the
//! test phones' own send/receive syscalls included) and RSS per session.
//!
//! `MASTERZ_LOAD_CALLS=1000 cargo bench --bench rtp_engine`

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use masterz::config::PortRange;
use masterz::media_engine::{LegParams, MediaConfig, MediaEngine, Side};
use masterz_media::codec::{Codec, Direction};
use masterz_media::rtp;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn params(remote: SocketAddr) -> LegParams {
    LegParams {
        remote_rtp: Some(remote),
        remote_rtcp: None,
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event: Some(101),
        ptime_ms: 20,
        direction: Direction::SendRecv,
    }
}

/// Resident memory of the process, in KB.
fn rss_kb() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Process CPU time (user + system) from /proc/self/stat, in ms (USER_HZ = 100).
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) * 10
}

async fn run(calls: usize) {
    let engine = MediaEngine::new(MediaConfig {
        // Generous: other processes may hold some of these ports.
        ports: PortRange {
            first: 20_000,
            last: 40_000,
        },
        bind_ip: [127, 0, 0, 1].into(),
        public_ip: [127, 0, 0, 1].into(),
        media_timeout: Duration::from_secs(30),
    });
    let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let sink = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let sink_addr = sink.local_addr().expect("addr");
    let (tx, _rx) = mpsc::unbounded_channel();
    let rss0 = rss_kb();
    let mut sessions = Vec::new();
    let mut targets = Vec::new();
    for i in 0..calls {
        let s = engine.allocate(i as u64, tx.clone()).await.expect("ports");
        s.configure(Side::A, params(loopback(9)));
        s.configure(Side::B, params(sink_addr));
        targets.push(loopback(s.local_rtp(Side::A).port()));
        sessions.push(s);
    }
    let rss_per_call = (rss_kb() - rss0) as f64 / calls as f64;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let receiver = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok(Ok(_)) = timeout(Duration::from_secs(1), sink.recv_from(&mut buf)).await {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let rounds = 250u16; // 5 s at 20 ms
    let cpu0 = cpu_ms();
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut packet = vec![0u8; rtp::HEADER_LEN + 160];
    packet[rtp::HEADER_LEN..].fill(0xFF);
    for r in 0..rounds {
        for (i, to) in targets.iter().enumerate() {
            rtp::write_header(&mut packet, false, 0, r, u32::from(r) * 160, i as u32)
                .expect("header");
            sender.send_to(&packet, *to).await.expect("send");
            sent += 1;
        }
        let next = t0 + Duration::from_millis(20 * u64::from(r + 1));
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
    receiver.await.expect("receiver");
    let cpu = cpu_ms() - cpu0;
    let got = received.load(Ordering::Relaxed);
    let relayed: u64 = sessions.iter().map(|s| s.stats().b.packets_out).sum();
    let mut metrics = String::new();
    engine.render_metrics(&mut metrics);
    if let Some(l) = metrics
        .lines()
        .find(|l| l.starts_with("masterz_media_send_failures_total "))
    {
        println!("{l}");
    }
    println!(
        "calls {calls}, sent {sent}, relayed {relayed}, received {got}, lost {}, wall {:?}, \
         CPU {cpu} ms, {:.2} CPU-ms per 1000 packets (phones included), RSS {rss_per_call:.1} KB \
         per call at set-up",
        sent - got,
        t0.elapsed(),
        cpu as f64 * 1000.0 / sent as f64
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it with no flag: keep that short.
    let benching = std::env::args().any(|a| a == "--bench");
    let calls: usize = std::env::var("MASTERZ_LOAD_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 1000 } else { 10 });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(calls));
}
