//! SIP transports (RFC 3261 §18): UDP, TCP, TLS and WebSocket (RFC 7118). Each socket task only
//! reads bytes, frames them (streams) and hands them to the core; writes come back from the core
//! through [`Transports::send`], which never blocks it: UDP uses `try_send_to`, streams a bounded
//! queue per connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use masterz_sip::message::{Frame, Limits, frame};
use masterz_sip::transport::{ConnectionId, Peer, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::SipMetrics;
use super::core::Inbound;

/// How long a stream connection may stay silent (RFC 5626 keep-alives arrive far more often).
const IDLE: Duration = Duration::from_secs(900);
/// Writes queued per connection before the connection is considered stuck and closed.
const WRITE_QUEUE: usize = 1024;

struct Conn {
    transport: Transport,
    addr: SocketAddr,
    tx: mpsc::Sender<Bytes>,
}

#[derive(Default)]
struct Conns {
    by_id: HashMap<u64, Conn>,
    by_addr: HashMap<(Transport, SocketAddr), u64>,
}

/// The open sockets and connections, shared by the socket tasks and the core.
pub(crate) struct Transports {
    udp: Arc<UdpSocket>,
    conns: Mutex<Conns>,
    next_id: AtomicU64,
    inbound: mpsc::Sender<Inbound>,
    limits: Limits,
    metrics: Arc<SipMetrics>,
}

impl Transports {
    pub(crate) fn new(
        udp: Arc<UdpSocket>,
        inbound: mpsc::Sender<Inbound>,
        limits: Limits,
        metrics: Arc<SipMetrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            udp,
            conns: Mutex::new(Conns::default()),
            next_id: AtomicU64::new(1),
            inbound,
            limits,
            metrics,
        })
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The number of open stream connections.
    pub(crate) fn connections(&self) -> usize {
        self.conns().by_id.len()
    }

    /// Sends `bytes` to `to` without waiting: over the connection the peer used (or any open one
    /// to its address, §18.2.2 connection reuse), opening a TCP connection when there is none.
    pub(crate) fn send(self: &Arc<Self>, to: Peer, bytes: Bytes) {
        self.metrics.sent.fetch_add(1, Ordering::Relaxed);
        if to.transport == Transport::Udp {
            if let Err(e) = self.udp.try_send_to(&bytes, to.addr) {
                self.metrics.send_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "UDP send failed");
            }
            return;
        }
        let found = {
            let conns = self.conns();
            let id = to
                .connection
                .map(|c| c.0)
                .filter(|id| conns.by_id.contains_key(id))
                .or_else(|| conns.by_addr.get(&(to.transport, to.addr)).copied());
            id.and_then(|id| conns.by_id.get(&id)).map(|c| c.tx.clone())
        };
        match found {
            Some(tx) => {
                if tx.try_send(bytes).is_err() {
                    self.metrics.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            None if to.transport == Transport::Tcp => {
                let this = self.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(to.addr))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            let _ = stream.set_nodelay(true);
                            this.run_stream(stream, Transport::Tcp, to.addr, Some(bytes))
                                .await;
                        }
                        _ => {
                            this.metrics.send_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::info!("SIP TCP connect failed");
                        }
                    }
                });
            }
            None => {
                // A browser (WS) or TLS peer without an open connection cannot be reached.
                self.metrics.send_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    transport = to.transport.as_str(),
                    "no connection to send on"
                );
            }
        }
    }

    fn register(&self, transport: Transport, addr: SocketAddr) -> (u64, mpsc::Receiver<Bytes>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let mut conns = self.conns();
        conns.by_id.insert(
            id,
            Conn {
                transport,
                addr,
                tx,
            },
        );
        conns.by_addr.insert((transport, addr), id);
        (id, rx)
    }

    fn unregister(&self, id: u64) {
        let mut conns = self.conns();
        if let Some(c) = conns.by_id.remove(&id)
            && conns.by_addr.get(&(c.transport, c.addr)) == Some(&id)
        {
            conns.by_addr.remove(&(c.transport, c.addr));
        }
    }

    /// Receives datagrams until the socket fails.
    pub(crate) async fn run_udp(self: Arc<Self>) {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (n, addr) = match self.udp.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    // ICMP port unreachable surfaces here on some systems; keep going.
                    tracing::debug!(error = %e, "UDP receive error");
                    continue;
                }
            };
            let datagram = &buf[..n];
            if datagram.iter().all(|b| *b == b'\r' || *b == b'\n') {
                // A CRLF keep-alive on UDP: nothing to answer.
                continue;
            }
            if let Some(reply) = stun_binding_response(datagram, addr) {
                // RFC 5626 §4.4.2: UDP flows are kept alive with STUN binding requests.
                let _ = self.udp.try_send_to(&reply, addr);
                continue;
            }
            let inbound = Inbound {
                from: Peer {
                    transport: Transport::Udp,
                    addr,
                    connection: None,
                },
                bytes: Bytes::copy_from_slice(datagram),
            };
            if self.inbound.try_send(inbound).is_err() {
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Accepts TCP (and, with an acceptor, TLS) connections until the listener fails.
    pub(crate) async fn run_listener(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "SIP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let this = self.clone();
            match tls.clone() {
                None => {
                    tokio::spawn(this.run_stream(stream, Transport::Tcp, addr, None));
                }
                Some(acceptor) => {
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(tls)) => this.run_stream(tls, Transport::Tls, addr, None).await,
                            _ => tracing::info!("SIP TLS handshake failed"),
                        }
                    });
                }
            }
        }
    }

    /// Serves one stream connection: frames messages by Content-Length (§18.3), answers CRLF
    /// keep-alive pings (RFC 5626 §4.4.1), writes what the core queues for it.
    async fn run_stream<S>(
        self: Arc<Self>,
        stream: S,
        transport: Transport,
        addr: SocketAddr,
        first: Option<Bytes>,
    ) where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (id, mut rx) = self.register(transport, addr);
        let (mut reader, mut writer) = tokio::io::split(stream);
        let pong = self.conns().by_id.get(&id).map(|c| c.tx.clone());
        let write = tokio::spawn(async move {
            if let Some(b) = first
                && writer.write_all(&b).await.is_err()
            {
                return;
            }
            while let Some(b) = rx.recv().await {
                if writer.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        let from = Peer {
            transport,
            addr,
            connection: Some(ConnectionId(id)),
        };
        let mut buf = BytesMut::with_capacity(8192);
        'read: loop {
            match tokio::time::timeout(IDLE, reader.read_buf(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
            loop {
                match frame(&buf, &self.limits) {
                    Ok(Frame::Message(n)) => {
                        let bytes = buf.split_to(n).freeze();
                        let inbound = Inbound { from, bytes };
                        if self.inbound.send(inbound).await.is_err() {
                            break 'read;
                        }
                    }
                    Ok(Frame::KeepAlive { len, ping }) => {
                        let _ = buf.split_to(len);
                        if ping && let Some(p) = &pong {
                            let _ = p.try_send(Bytes::from_static(b"\r\n"));
                        }
                    }
                    Ok(Frame::Incomplete) => break,
                    Err(e) => {
                        // A stream cannot be resynchronised after a framing error (§18.3).
                        self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(transport = transport.as_str(), error = %e, "closing SIP connection");
                        break 'read;
                    }
                }
            }
        }
        self.unregister(id);
        drop(pong);
        write.abort();
    }

    /// Serves one SIP-over-WebSocket connection (RFC 7118: one message per frame).
    pub(crate) async fn run_websocket(
        self: Arc<Self>,
        mut socket: axum::extract::ws::WebSocket,
        addr: SocketAddr,
        secure: bool,
    ) {
        use axum::extract::ws::Message as Ws;
        let transport = if secure {
            Transport::Wss
        } else {
            Transport::Ws
        };
        let (id, mut rx) = self.register(transport, addr);
        let from = Peer {
            transport,
            addr,
            connection: Some(ConnectionId(id)),
        };
        loop {
            tokio::select! {
                received = tokio::time::timeout(IDLE, socket.recv()) => {
                    let bytes = match received {
                        Ok(Some(Ok(Ws::Text(t)))) => Bytes::from(t.as_str().to_owned()),
                        Ok(Some(Ok(Ws::Binary(b)))) => b,
                        Ok(Some(Ok(Ws::Ping(_) | Ws::Pong(_)))) => continue,
                        _ => break,
                    };
                    if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
                        continue;
                    }
                    if self.inbound.send(Inbound { from, bytes }).await.is_err() {
                        break;
                    }
                }
                Some(out) = rx.recv() => {
                    let frame = match std::str::from_utf8(&out) {
                        Ok(s) => Ws::Text(s.to_owned().into()),
                        Err(_) => Ws::Binary(out),
                    };
                    if socket.send(frame).await.is_err() {
                        break;
                    }
                }
            }
        }
        self.unregister(id);
    }
}

/// The STUN magic cookie (RFC 8489 §5).
const STUN_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// Answers a STUN Binding request (RFC 8489) with a success response carrying
/// XOR-MAPPED-ADDRESS; `None` for anything that is not one. A SIP message never starts with
/// bytes 0x00 0x01, so the two cannot be confused (RFC 5626 §3.5.1).
fn stun_binding_response(datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    if datagram.len() < 20 || datagram[0..2] != [0x00, 0x01] || datagram[4..8] != STUN_COOKIE {
        return None;
    }
    let transaction_id = &datagram[8..20];
    let port = from.port() ^ 0x2112;
    let mut attr = Vec::with_capacity(24);
    match from.ip() {
        std::net::IpAddr::V4(ip) => {
            attr.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
            attr.extend_from_slice(&port.to_be_bytes());
            let octets = ip.octets();
            for (i, b) in octets.iter().enumerate() {
                attr.push(b ^ STUN_COOKIE[i]);
            }
        }
        std::net::IpAddr::V6(ip) => {
            attr.extend_from_slice(&[0x00, 0x20, 0x00, 0x14, 0x00, 0x02]);
            attr.extend_from_slice(&port.to_be_bytes());
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&STUN_COOKIE);
            key[4..].copy_from_slice(transaction_id);
            for (b, k) in ip.octets().iter().zip(key) {
                attr.push(b ^ k);
            }
        }
    }
    let mut out = Vec::with_capacity(20 + attr.len());
    out.extend_from_slice(&[0x01, 0x01]);
    out.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    out.extend_from_slice(&STUN_COOKIE);
    out.extend_from_slice(transaction_id);
    out.extend_from_slice(&attr);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_binding_requests_get_the_mapped_address() {
        let mut req = vec![0x00, 0x01, 0x00, 0x00];
        req.extend_from_slice(&STUN_COOKIE);
        req.extend_from_slice(&[7u8; 12]);
        let from: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        let resp = stun_binding_response(&req, from).unwrap();
        assert_eq!(&resp[0..2], &[0x01, 0x01]);
        assert_eq!(&resp[8..20], &[7u8; 12]);
        // RFC 5769 §2.2-style check: X-Port and X-Address undo with the cookie.
        let port = u16::from_be_bytes([resp[26], resp[27]]) ^ 0x2112;
        assert_eq!(port, 32853);
        let ip: Vec<u8> = resp[28..32]
            .iter()
            .zip(STUN_COOKIE)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(ip, [192, 0, 2, 1]);
        assert!(stun_binding_response(b"OPTIONS sip:x SIP/2.0\r\n\r\n", from).is_none());
        assert!(stun_binding_response(&req[..19], from).is_none());
    }
}
