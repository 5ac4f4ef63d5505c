//! Attended transfer (RFC 5589 §7): an agent talking to a caller calls a second agent, then
//! sends REFER with Replaces naming that second call. SIPp cannot hold two dialogs in one
//! scenario, so the transferring agent is a small UA here, built from `masterz-sip`'s own types.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use masterz_sip::auth::{ChallengeKind, ClientAuth};
use masterz_sip::endpoint::response_to;
use masterz_sip::headers::{Contact, From, To};
use masterz_sip::ident::RandomSource;
use masterz_sip::message::{Limits, Message, Method, StatusCode, StdHeader};
use tokio::net::UdpSocket;

use crate::pbx::{Agent, CALLER, DID, Pbx, event_kinds, free_media_port, text, tone_8s};
use crate::peers::{self, free_port, sipp::Sipp};

struct Counter(u64);

impl RandomSource for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.0 >> 33) as u8;
        }
    }
}

/// The transferring agent's phone: one UDP socket, answers and requests written by hand.
struct Phone {
    socket: UdpSocket,
    server: SocketAddr,
    agent: Agent,
    auth: ClientAuth,
    rng: Counter,
    branch: u32,
}

impl Phone {
    async fn new(server: SocketAddr, agent: &Agent) -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            agent: agent.clone(),
            auth: ClientAuth::new(agent.sip_user.clone(), agent.password.clone()),
            rng: Counter(7),
            branch: 0,
        }
    }

    fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.agent.sip_user, self.local())
    }

    async fn send(&self, m: &Message) {
        self.socket
            .send_to(&m.to_bytes(), self.server)
            .await
            .unwrap();
    }

    /// The next message within `wait`.
    async fn recv(&self, wait: Duration) -> Option<Message> {
        let mut buf = vec![0u8; 65_535];
        let n = tokio::time::timeout(wait, self.socket.recv(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(Message::parse(Bytes::copy_from_slice(&buf[..n]), &Limits::default()).unwrap())
    }

    /// The next final response (provisional ones skipped).
    async fn final_response(&self) -> Message {
        loop {
            let m = self.recv(Duration::from_secs(5)).await.expect("a response");
            if m.status().is_some_and(|s| !s.is_provisional()) {
                return m;
            }
        }
    }

    fn request(&mut self, method: Method, uri: &str, call_id: &str, cseq: u32) -> Message {
        self.branch += 1;
        let mut m = Message::request(method.clone(), uri.to_owned());
        m.headers.push(
            StdHeader::Via,
            format!(
                "SIP/2.0/UDP {};rport;branch=z9hG4bK-att-{}-{}",
                self.local(),
                self.local().port(),
                self.branch
            ),
        );
        m.headers.push(StdHeader::MaxForwards, "70");
        m.headers.push(StdHeader::CallId, call_id.to_owned());
        m.headers
            .push(StdHeader::CSeq, format!("{cseq} {}", method.as_str()));
        m.headers.push(StdHeader::Contact, self.contact());
        m
    }

    async fn register(&mut self) {
        let uri = format!("sip:{}", self.server);
        for attempt in 0..2 {
            let mut r = self.request(Method::Register, &uri, "att-reg@127.0.0.1", attempt + 1);
            let aor = format!("<sip:{}@127.0.0.1>", self.agent.sip_user);
            r.headers.push(StdHeader::From, format!("{aor};tag=reg"));
            r.headers.push(StdHeader::To, aor);
            r.headers.push(StdHeader::Expires, "300");
            for (kind, creds) in self.auth.authorize(&mut self.rng, "REGISTER", &uri) {
                r.headers.push(kind.answer_header(), creds.to_string());
            }
            r.set_body(Bytes::new(), None);
            self.send(&r).await;
            let answer = self.final_response().await;
            match answer.status().map(|s| s.as_u16()) {
                Some(200) => return,
                Some(401) => {
                    let values: Vec<String> = answer
                        .headers
                        .get_all(StdHeader::WwwAuthenticate)
                        .map(|v| v.to_string())
                        .collect();
                    self.auth
                        .handle_challenges(ChallengeKind::Www, values.iter().map(String::as_str))
                        .unwrap();
                }
                other => panic!("REGISTER got {other:?}"),
            }
        }
        panic!("REGISTER was not accepted");
    }

    fn sdp(&self, port: u16) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        )
    }

    fn answer(&self, req: &Message, code: u16, tag: &str, sdp: Option<String>) -> Message {
        let mut r = response_to(req, StatusCode::new(code).unwrap(), Some(tag));
        r.headers.push(StdHeader::Contact, self.contact());
        match sdp {
            Some(s) => r.set_body(s.into_bytes(), Some("application/sdp")),
            None => r.set_body(Bytes::new(), None),
        }
        r
    }
}

fn header(m: &Message, name: StdHeader) -> String {
    m.headers
        .get(name)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attended_transfer_joins_the_caller_with_the_consulted_agent() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    pbx.trunk(
        ([127, 0, 0, 1], free_port()).into(),
        &["127.0.0.1/32"],
        &[DID],
        None,
    )
    .await;
    let first = pbx.agent("att1").await;
    let second = pbx.agent("att2").await;
    let mut phone = Phone::new(pbx.sip, &first).await;
    phone.register().await;

    // Call 1: the trunk caller rings the first agent (the only one registered), who answers.
    let caller = Sipp::scenario("call_trunk_uac")
        .target(pbx.sip)
        .service(DID)
        .key("caller", CALLER)
        .key("pcap", &tone_8s())
        .key("talk_ms", "9000")
        .key("session_expires", "1800")
        .calls(1)
        .timeout(Duration::from_secs(40))
        .spawn();
    let invite = loop {
        let m = phone
            .recv(Duration::from_secs(10))
            .await
            .expect("call 1 rings");
        if m.method() == Some(&Method::Invite) {
            break m;
        }
    };
    let c1 = header(&invite, StdHeader::CallId);
    let c1_masterz = invite.typed::<From>().unwrap().unwrap().to_string();
    let c1_target = match invite.typed::<Contact>().unwrap().unwrap() {
        Contact::Addr(a) => a.uri().unwrap().raw.to_owned(),
        Contact::Any => panic!("Contact: * in an INVITE"),
    };
    let c1_tag = "att-c1";
    phone
        .send(&phone.answer(&invite, 200, c1_tag, Some(phone.sdp(free_media_port()))))
        .await;
    let c1_us = format!("{};tag={c1_tag}", invite.typed::<To>().unwrap().unwrap());

    // The second agent registers (a SIPp phone answering whatever comes, echoing RTP).
    let port = free_port();
    pbx.register(&second, port).await;
    let target = Sipp::scenario("call_agent_uas")
        .local_port(port)
        .service(&second.sip_user)
        .rtp_echo()
        .media_port(free_media_port())
        .key("talk_ms", "600000")
        .calls(1)
        .timeout(Duration::from_secs(40))
        .spawn();

    // Call 2: the first agent calls the second one's extension, answering masterz's 407.
    let c2 = "att-c2@127.0.0.1";
    let c2_uri = format!("sip:{}@{}", second.sip_user, pbx.sip);
    let mut c2_invite = None;
    let mut ok = None;
    for cseq in 1..=2 {
        let mut inv = phone.request(Method::Invite, &c2_uri, c2, cseq);
        inv.headers.push(
            StdHeader::From,
            format!("<sip:{}@127.0.0.1>;tag=att-c2", first.sip_user),
        );
        inv.headers.push(StdHeader::To, format!("<{c2_uri}>"));
        for (kind, creds) in phone.auth.authorize(&mut phone.rng, "INVITE", &c2_uri) {
            inv.headers.push(kind.answer_header(), creds.to_string());
        }
        inv.set_body(
            phone.sdp(free_media_port()).into_bytes(),
            Some("application/sdp"),
        );
        phone.send(&inv).await;
        let r = phone.final_response().await;
        match r.status().map(|s| s.as_u16()) {
            Some(200) => {
                ok = Some(r);
                c2_invite = Some(inv);
                break;
            }
            Some(407) => {
                // ACK for the 407 (same branch, §17.1.1.3), then answer the challenge.
                let mut ack = Message::request(Method::Ack, c2_uri.clone());
                for name in [StdHeader::Via, StdHeader::From, StdHeader::CallId] {
                    ack.headers.push(name, header(&inv, name));
                }
                ack.headers.push(StdHeader::To, header(&r, StdHeader::To));
                ack.headers.push(StdHeader::CSeq, format!("{cseq} ACK"));
                ack.set_body(Bytes::new(), None);
                phone.send(&ack).await;
                let values: Vec<String> = r
                    .headers
                    .get_all(StdHeader::ProxyAuthenticate)
                    .map(|v| v.to_string())
                    .collect();
                phone
                    .auth
                    .handle_challenges(ChallengeKind::Proxy, values.iter().map(String::as_str))
                    .unwrap();
            }
            other => panic!("call 2 got {other:?}"),
        }
    }
    let ok = ok.expect("the second agent answers call 2");
    let c2_invite = c2_invite.unwrap();
    let c2_masterz_tag = ok.typed::<To>().unwrap().unwrap().tag().unwrap().to_owned();
    let mut ack = phone.request(Method::Ack, &c2_uri, c2, 2);
    ack.headers
        .push(StdHeader::From, header(&c2_invite, StdHeader::From));
    ack.headers.push(StdHeader::To, header(&ok, StdHeader::To));
    ack.set_body(Bytes::new(), None);
    phone.send(&ack).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // REFER in call 1, replacing call 2 (its Call-ID and tags as the first agent sees them).
    let mut refer = phone.request(Method::Refer, &c1_target, &c1, 1);
    refer.headers.push(StdHeader::From, c1_us.clone());
    refer.headers.push(StdHeader::To, c1_masterz.clone());
    refer.headers.push(
        StdHeader::ReferTo,
        format!(
            "<sip:{}@{}?Replaces=att-c2%40127.0.0.1%3Bto-tag%3D{c2_masterz_tag}%3Bfrom-tag%3Datt-c2>",
            second.sip_user, pbx.sip
        ),
    );
    refer.set_body(Bytes::new(), None);
    phone.send(&refer).await;

    // What the first agent hears: 202, NOTIFYs with sipfrag, and BYE on both calls.
    let mut accepted = false;
    let mut frags = Vec::new();
    let mut byes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !(byes.len() == 2 && frags.iter().any(|f: &String| f.contains("200")))
    {
        let Some(m) = phone.recv(Duration::from_secs(1)).await else {
            continue;
        };
        if let Some(code) = m.status() {
            if code.as_u16() == 202 && header(&m, StdHeader::CSeq).contains("REFER") {
                accepted = true;
            }
            continue;
        }
        match m.method() {
            Some(Method::Notify) => frags.push(String::from_utf8_lossy(&m.body).into_owned()),
            Some(Method::Bye) => byes.push(header(&m, StdHeader::CallId)),
            _ => {}
        }
        let tag = m
            .typed::<To>()
            .unwrap()
            .unwrap()
            .tag()
            .unwrap_or("x")
            .to_owned();
        if m.method() != Some(&Method::Ack) {
            phone.send(&phone.answer(&m, 200, &tag, None)).await;
        }
    }
    assert!(accepted, "REFER with Replaces gets 202");
    assert!(
        frags.first().is_some_and(|f| f.starts_with("SIP/2.0 1")),
        "first NOTIFY is provisional: {frags:?}"
    );
    assert!(
        frags.iter().any(|f| f.starts_with("SIP/2.0 200")),
        "a NOTIFY with 200 OK: {frags:?}"
    );
    byes.sort();
    let mut both = vec![c1.clone(), c2.to_owned()];
    both.sort();
    assert_eq!(byes, both, "the first agent leaves both calls");

    // The caller now talks to the second agent: its tone is echoed back from there.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let echoed = target.rtp_echoed_now().unwrap_or(0);
    let caller = caller.wait_async().await;
    let target = target.wait_async().await;
    caller.assert_success();
    target.assert_success();
    assert!(
        target.log_lines().iter().any(|l| l.contains("reinvite")),
        "the second agent is moved to call 1's media by a re-INVITE\n{target}"
    );
    assert!(
        echoed >= 50,
        "the caller's RTP reaches the second agent: {echoed}\n{target}"
    );

    let calls = pbx
        .wait_calls(Duration::from_secs(10), "two ended calls", |c| {
            c.len() == 2 && c.iter().all(|c| c["ended_at"].is_string())
        })
        .await;
    let trunk_call = calls
        .iter()
        .find(|c| text(c, "direction") == "in")
        .expect("the trunk call");
    assert_eq!(trunk_call["agent_user_id"], second.user.0, "{trunk_call:#}");
    let kinds = event_kinds(trunk_call);
    assert!(kinds.iter().any(|k| k == "transfer_requested"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "transferred"), "{kinds:?}");
    let consult = calls
        .iter()
        .find(|c| text(c, "direction") == "internal")
        .expect("the consultation call");
    assert!(
        text(consult, "end_reason").contains("transferred"),
        "{consult:#}"
    );
}
