//! A minimal UA over a UDP socket, built from the `masterz-sip` crate's own message types, for
//! the cases SIPp cannot script well (restarts, 423, several contacts, garbage).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use masterz_sip::auth::{ChallengeKind, ClientAuth};
use masterz_sip::ident::RandomSource;
use masterz_sip::message::{Limits, Message, StdHeader};
use tokio::net::UdpSocket;

pub(crate) struct Seeded(pub(crate) u64);

impl RandomSource for Seeded {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
}

pub(crate) struct RawUa {
    pub(crate) socket: UdpSocket,
    pub(crate) server: SocketAddr,
    pub(crate) user: String,
    pub(crate) auth: ClientAuth,
    pub(crate) call_id: String,
    pub(crate) cseq: u32,
    rng: Seeded,
}

impl RawUa {
    pub(crate) async fn new(server: SocketAddr, user: &str, password: &str) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        Self {
            socket,
            server,
            user: user.to_owned(),
            auth: ClientAuth::new(user, password),
            call_id: format!("raw-{port}-{user}@127.0.0.1"),
            cseq: 0,
            rng: Seeded(u64::from(port) * 7919 + 1),
        }
    }

    pub(crate) fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Sends raw bytes and returns the next datagram, if one comes within two seconds.
    pub(crate) async fn exchange_raw(&self, bytes: &[u8]) -> Option<Message> {
        self.socket.send_to(bytes, self.server).await.unwrap();
        self.recv().await
    }

    pub(crate) async fn recv(&self) -> Option<Message> {
        let mut buf = vec![0u8; 65_535];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(2), self.socket.recv(&mut buf))
                .await
                .ok()?
                .unwrap();
            let m = Message::parse(Bytes::copy_from_slice(&buf[..n]), &Limits::default())
                .expect("masterz sends well-formed messages");
            // Skip provisional responses.
            if m.status().is_some_and(|s| s.is_provisional()) {
                continue;
            }
            return Some(m);
        }
    }

    /// A REGISTER with the given Contact header values and Expires.
    pub(crate) fn register(&mut self, contacts: &[&str], expires: Option<u32>) -> Message {
        self.cseq += 1;
        let uri = format!("sip:{}", self.server);
        let local = self.local();
        let mut m = Message::request(masterz_sip::message::Method::Register, uri.clone());
        let h = &mut m.headers;
        h.push(
            StdHeader::Via,
            format!(
                "SIP/2.0/UDP {local};rport;branch=z9hG4bK-raw-{}-{}",
                self.cseq,
                local.port()
            ),
        );
        h.push(StdHeader::MaxForwards, "70");
        h.push(
            StdHeader::From,
            format!("<sip:{}@127.0.0.1>;tag=raw{}", self.user, local.port()),
        );
        h.push(StdHeader::To, format!("<sip:{}@127.0.0.1>", self.user));
        h.push(StdHeader::CallId, self.call_id.clone());
        h.push(StdHeader::CSeq, format!("{} REGISTER", self.cseq));
        for c in contacts {
            h.push(StdHeader::Contact, c.to_string());
        }
        if let Some(e) = expires {
            h.push(StdHeader::Expires, e.to_string());
        }
        h.push(StdHeader::UserAgent, "raw-ua/1.0");
        for (kind, creds) in self.auth.authorize(&mut self.rng, "REGISTER", &uri) {
            h.push(kind.answer_header(), creds.to_string());
        }
        m.set_body(Bytes::new(), None);
        m
    }

    /// REGISTER, answering one 401; returns the final response.
    pub(crate) async fn register_authenticated(
        &mut self,
        contacts: &[&str],
        expires: Option<u32>,
    ) -> Message {
        let first = self.register(contacts, expires);
        let r = self
            .exchange_raw(&first.to_bytes())
            .await
            .expect("an answer");
        if r.status().map(|s| s.as_u16()) != Some(401) {
            return r;
        }
        let values: Vec<String> = r
            .headers
            .get_all(StdHeader::WwwAuthenticate)
            .map(|v| v.to_string())
            .collect();
        self.auth
            .handle_challenges(ChallengeKind::Www, values.iter().map(String::as_str))
            .expect("a usable challenge");
        let second = self.register(contacts, expires);
        self.exchange_raw(&second.to_bytes())
            .await
            .expect("an answer")
    }
}

pub(crate) fn code(m: &Message) -> u16 {
    m.status().map_or(0, |s| s.as_u16())
}

pub(crate) fn reason(m: &Message) -> String {
    match &m.start {
        masterz_sip::message::StartLine::Response { reason, .. } => reason.to_string(),
        _ => String::new(),
    }
}
