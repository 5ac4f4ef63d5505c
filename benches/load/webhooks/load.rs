//! The requests and the load generator: prebuilt signed Messenger events sent over keep-alive
//! connections by a minimal HTTP/1.1 client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{APP_SECRET, SENDERS};

/// The Messenger event number `idx`: a text message from one of [`SENDERS`] customers, compact as
/// Meta sends it, its `mid` ending in the ten digits of `idx`.
pub(crate) fn event_body(idx: usize, page: &str) -> String {
    let sender = 7_254_398_172_000_000u64 + (idx % SENDERS) as u64;
    let ts = 1_770_031_204_871u64 + idx as u64;
    // Real mids are ~90 characters of base64url; the last ten digits make this one unique.
    let mid = format!(
        "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_{idx:010}"
    );
    let text = "Hallo, ist mein Paket schon unterwegs? Bestellnummer 48213. Ich habe vor einer \
                Woche bestellt und noch keine Versandbestätigung bekommen. Können Sie bitte \
                nachsehen, wo es gerade ist? Die Lieferadresse ist die gleiche wie bei meiner \
                letzten Bestellung. Danke und viele Grüße";
    format!(
        r#"{{"object":"page","entry":[{{"id":"{page}","time":{t},"messaging":[{{"sender":{{"id":"{sender}"}},"recipient":{{"id":"{page}"}},"timestamp":{ts},"message":{{"mid":"{mid}","text":"{text} #{n}"}}}}]}}]}}"#,
        t = ts + 252,
        n = idx % 1000,
    )
}

/// The whole HTTP/1.1 request for event `idx`: head (with the signature) and body in one buffer.
pub(crate) fn build_request(idx: usize, page: &str) -> Vec<u8> {
    let body = event_body(idx, page);
    let sig = masterz::messaging::signature::meta_header(APP_SECRET.as_bytes(), body.as_bytes());
    let mut req = format!(
        "POST /webhooks/meta HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: facebookexternalua\r\n\
         Accept: */*\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {sig}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    req
}

/// The event number in a stored body's `mid`.
pub(crate) fn mid_index(mid: &str) -> Option<usize> {
    mid.get(mid.len().checked_sub(10)?..)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The load generator.

/// One request as the generator saw it.
#[derive(Clone, Copy)]
pub(crate) struct Rec {
    /// When it completed (or failed), µs since the epoch of the run.
    pub(crate) end_us: u64,
    /// Round trip in µs.
    pub(crate) lat_us: u32,
    /// HTTP status; 0 for a transport error.
    pub(crate) status: u16,
    /// The event it carried.
    pub(crate) idx: u32,
}

pub(crate) struct Load {
    pub(crate) addr: String,
    pub(crate) requests: Arc<Vec<Vec<u8>>>,
    pub(crate) page: &'static str,
    pub(crate) next: AtomicUsize,
    pub(crate) stop: AtomicBool,
    pub(crate) epoch: Instant,
    pub(crate) built_on_the_fly: AtomicUsize,
}

/// One request and its response on a keep-alive connection: (status, keep the connection).
pub(crate) async fn exchange(
    stream: &mut tokio::net::TcpStream,
    req: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    stream.write_all(req).await?;
    buf.clear();
    let head_end = loop {
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(std::io::Error::other)?;
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let mut length = 0usize;
    let mut keep = true;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(std::io::Error::other)?;
            } else if name.eq_ignore_ascii_case("connection") && value.trim() == "close" {
                keep = false;
            }
        }
    }
    while buf.len() < head_end + length {
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok((status, keep))
}

pub(crate) async fn connection(load: Arc<Load>) -> Vec<Rec> {
    let mut recs = Vec::with_capacity(4096);
    let mut stream: Option<tokio::net::TcpStream> = None;
    let mut buf = Vec::with_capacity(1024);
    while !load.stop.load(Ordering::Relaxed) {
        if stream.is_none() {
            match tokio::net::TcpStream::connect(&load.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                }
                Err(_) => {
                    recs.push(Rec {
                        end_us: load.epoch.elapsed().as_micros() as u64,
                        lat_us: 0,
                        status: 0,
                        idx: u32::MAX,
                    });
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let idx = load.next.fetch_add(1, Ordering::Relaxed);
        let owned;
        let req: &[u8] = match load.requests.get(idx) {
            Some(r) => r,
            None => {
                load.built_on_the_fly.fetch_add(1, Ordering::Relaxed);
                owned = build_request(idx, load.page);
                &owned
            }
        };
        let started = Instant::now();
        let result = exchange(s, req, &mut buf).await;
        let ended = Instant::now();
        let status = match result {
            Ok((status, keep)) => {
                if !keep {
                    stream = None;
                }
                status
            }
            Err(_) => {
                stream = None;
                0
            }
        };
        recs.push(Rec {
            end_us: ended.duration_since(load.epoch).as_micros() as u64,
            lat_us: ended
                .duration_since(started)
                .as_micros()
                .min(u32::MAX as u128) as u32,
            status,
            idx: idx as u32,
        });
    }
    recs
}

/// Runs `conns` connections on a one-thread runtime until `load.stop`; every request's record.
pub(crate) fn generate(load: Arc<Load>, conns: usize) -> Vec<Rec> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let tasks: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(connection(load.clone())))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("connection task"));
        }
        all
    })
}
