//! SIP over WebSocket (RFC 7118) on the HTTP listener: OPTIONS and an authenticated REGISTER
//! whose binding shows transport `ws`.

use futures_util::{SinkExt as _, StreamExt as _};
use masterz_sip::auth::{ChallengeKind, ClientAuth};
use masterz_sip::message::{Limits, Message, StdHeader};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

use crate::common::{Backend, TestServer, seed_tenant};
use crate::raw::{Seeded, code};
use crate::registrar::{give_sip_account, registrations};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn exchange(ws: &mut Ws, text: String) -> Message {
    ws.send(tungstenite::Message::text(text)).await.unwrap();
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(3), ws.next())
            .await
            .expect("an answer within 3 s")
            .expect("the socket stays open")
            .unwrap();
        let bytes = match frame {
            tungstenite::Message::Text(t) => bytes::Bytes::from(t.as_str().to_owned()),
            tungstenite::Message::Binary(b) => b,
            _ => continue,
        };
        let m = Message::parse(bytes, &Limits::default()).unwrap();
        if m.status().is_some_and(|s| s.is_provisional()) {
            continue;
        }
        return m;
    }
}

fn request(method: &str, user: &str, cseq: u32, extra: &[String]) -> String {
    let mut s = format!(
        "{method} sip:masterz SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws{cseq}{method}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@masterz>;tag=ws1\r\nTo: <sip:{user}@masterz>\r\n\
         Call-ID: ws-{user}@invalid\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:{user}@df7jal23ls0d.invalid;transport=ws>\r\nExpires: 600\r\n"
    );
    for e in extra {
        s.push_str(e);
        s.push_str("\r\n");
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_and_register_over_websocket() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let t = seed_tenant(s.store(), "acme").await;
    give_sip_account(&s, &t.admin_token, t.agent.0, "webby", "webby-secret-1").await;

    let mut req = s
        .url("/sip")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("sip")
    );

    let ok = exchange(&mut ws, request("OPTIONS", "webby", 1, &[])).await;
    assert_eq!(code(&ok), 200, "{ok}");

    let challenge = exchange(&mut ws, request("REGISTER", "webby", 2, &[])).await;
    assert_eq!(code(&challenge), 401, "{challenge}");
    let mut auth = ClientAuth::new("webby", "webby-secret-1");
    let values: Vec<String> = challenge
        .headers
        .get_all(StdHeader::WwwAuthenticate)
        .map(|v| v.to_string())
        .collect();
    auth.handle_challenges(ChallengeKind::Www, values.iter().map(String::as_str))
        .unwrap();
    let creds: Vec<String> = auth
        .authorize(&mut Seeded(3), "REGISTER", "sip:masterz")
        .into_iter()
        .map(|(kind, c)| format!("{}: {c}", kind.answer_header()))
        .collect();
    let ok = exchange(&mut ws, request("REGISTER", "webby", 3, &creds)).await;
    assert_eq!(code(&ok), 200, "{ok}");
    let regs = registrations(&s, &t.admin_token).await;
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0]["transport"], "ws");
}
