//! The media engine over real sockets: `MASTERZ_LOAD_CALLS` sessions (default 1000), one
//! G.711 stream A → B each at 50 packets/s for 5 s, from one sending socket to one receiving
//! socket. Prints what was sent, relayed and received, the process CPU per 1000 packets (the
//! test phones' own send/receive syscalls included) and RSS per session.
//!
//! With `MASTERZ_LOAD_DUPLEX=1` each session also carries a stream B → A, as a conversation
//! does; both legs then latch to the sending socket (symmetric RTP), so the relayed packets go
//! back to it unread and "received" counts only the first ones. With `MASTERZ_LOAD_RECORD=1` every session is also recorded (a tap into the recorder, WAV files
//! in a temporary directory): the difference between the two runs is what recording costs.
//!
//! `MASTERZ_LOAD_CALLS=1000 cargo bench --bench rtp_engine`
//! `MASTERZ_LOAD_CALLS=500 MASTERZ_LOAD_RECORD=1 cargo bench --bench rtp_engine`

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

/// A recorder over a temporary SQLite database with one call row per session, and its taps.
async fn recorder(
    calls: usize,
) -> (
    tempfile::TempDir,
    Arc<masterz::recording::Recorder>,
    Vec<masterz::recording::Tap>,
) {
    use masterz::store;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = store::Db::connect(&format!("sqlite://{}/bench.db", dir.path().display()), 4)
        .await
        .expect("db");
    db.migrate().await.expect("migrate");
    let mut conn = db.conn().await.expect("conn");
    let company = store::companies::create(&mut conn.ex(), "Bench", "bench")
        .await
        .expect("company");
    let mut rows = Vec::new();
    for _ in 0..calls {
        let call = store::calls::NewCall {
            customer_id: None,
            direction: "in",
            from_uri: "sip:caller@bench",
            to_uri: "sip:did@bench",
            trunk_id: None,
            group_id: None,
            sip_call_id: "bench",
            agent_user_id: None,
            started_at: store::now_ms(),
        };
        rows.push(
            store::calls::create(&mut conn.ex(), company.id, &call)
                .await
                .expect("call"),
        );
    }
    drop(conn);
    let recorder =
        masterz::recording::Recorder::start(db, dir.path(), 16_384, Duration::from_secs(3600))
            .expect("recorder");
    let mut taps = Vec::new();
    for row in rows {
        taps.push(
            recorder
                .start_call(company.id, row, Side::A)
                .await
                .expect("recording"),
        );
    }
    (dir, recorder, taps)
}

async fn run(calls: usize, record: bool, duplex: bool) {
    let engine = MediaEngine::new(MediaConfig {
        // Generous: other processes may hold some of these ports.
        ports: PortRange {
            first: 20_000,
            last: 40_000,
        },
        bind_ip: [127, 0, 0, 1].into(),
        public_ip: [127, 0, 0, 1].into(),
        webrtc_public_ip: [127, 0, 0, 1].into(),
        media_timeout: Duration::from_secs(30),
    });
    let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let sink = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let sink_addr = sink.local_addr().expect("addr");
    let sink2 = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let sink2_addr = sink2.local_addr().expect("addr");
    let (tx, _rx) = mpsc::unbounded_channel();
    let rss0 = rss_kb();
    let mut sessions = Vec::new();
    let mut targets = Vec::new();
    for i in 0..calls {
        let s = engine.allocate(i as u64, tx.clone()).await.expect("ports");
        s.configure(
            Side::A,
            params(if duplex { sink2_addr } else { loopback(9) }),
        );
        s.configure(Side::B, params(sink_addr));
        targets.push(loopback(s.local_rtp(Side::A).port()));
        if duplex {
            targets.push(loopback(s.local_rtp(Side::B).port()));
        }
        sessions.push(s);
    }
    let recording = if record {
        let (dir, recorder, taps) = recorder(calls).await;
        for (s, tap) in sessions.iter().zip(taps) {
            s.record(tap);
        }
        Some((dir, recorder))
    } else {
        None
    };
    let rss_per_call = (rss_kb() - rss0) as f64 / calls as f64;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let counter2 = received.clone();
    let receiver = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok(Ok(_)) = timeout(Duration::from_secs(1), sink.recv_from(&mut buf)).await {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let receiver2 = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        if !duplex {
            return;
        }
        while let Ok(Ok(_)) = timeout(Duration::from_secs(1), sink2.recv_from(&mut buf)).await {
            counter2.fetch_add(1, Ordering::Relaxed);
        }
    });
    // 5 s at 20 ms, or MASTERZ_LOAD_SECS.
    let rounds: u16 = std::env::var("MASTERZ_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse::<u16>().ok())
        .map_or(250, |s| s.saturating_mul(50));
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
    receiver2.await.expect("receiver");
    let cpu = cpu_ms() - cpu0;
    let got = received.load(Ordering::Relaxed);
    let relayed: u64 = sessions
        .iter()
        .map(|s| s.stats().b.packets_out + s.stats().a.packets_out)
        .sum();
    let mut metrics = String::new();
    engine.render_metrics(&mut metrics);
    if let Some(l) = metrics
        .lines()
        .find(|l| l.starts_with("masterz_media_send_failures_total "))
    {
        println!("{l}");
    }
    println!(
        "calls {calls} (duplex: {duplex}, recorded: {record}), sent {sent}, relayed {relayed}, received {got}, lost {}, wall {:?}, \
         CPU {cpu} ms, {:.2} CPU-ms per 1000 packets (phones included), RSS {rss_per_call:.1} KB \
         per call at set-up",
        sent - got,
        t0.elapsed(),
        cpu as f64 * 1000.0 / sent as f64
    );
    if let Some((dir, recorder)) = recording {
        drop(sessions);
        // The recordings close on the recorder's next tick; their rows a moment later.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut m = String::new();
        recorder.render_metrics(&mut m);
        for l in m.lines().filter(|l| !l.starts_with('#')) {
            println!("{l}");
        }
        let bytes: u64 = walk(dir.path());
        println!(
            "recorded {calls} calls: {:.1} MB of WAV, {:.2} CPU-ms per 1000 packets with recording",
            bytes as f64 / 1e6,
            cpu as f64 * 1000.0 / sent as f64
        );
    }
}

/// Bytes of the files under `dir`.
fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
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
        .block_on(run(
            calls,
            std::env::var("MASTERZ_LOAD_RECORD").is_ok_and(|v| v == "1"),
            std::env::var("MASTERZ_LOAD_DUPLEX").is_ok_and(|v| v == "1"),
        ));
}
