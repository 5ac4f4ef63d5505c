//! New messages and status changes reach the agent web app over its WebSocket.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::common::{Backend, seed_tenant};
use crate::harness::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(b: &Bridge, token: &str) -> Ws {
    let mut req =
        b.s.url("/api/v1/agent/ws?tab=inbox")
            .replace("http://", "ws://")
            .into_client_request()
            .expect("request");
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    ws
}

/// The next frame of `type`, or `None` after `wait`.
async fn frame(ws: &mut Ws, kind: &str, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        let tungstenite::Message::Text(t) = m else {
            continue;
        };
        let f: Value = serde_json::from_str(t.as_str()).ok()?;
        if f["type"] == kind {
            return Some(f);
        }
    }
}

#[tokio::test]
async fn a_new_message_is_pushed_to_the_company_agents_only() {
    let Some(b) = Bridge::start(Backend::Sqlite, None).await else {
        return;
    };
    let other = seed_tenant(b.s.store(), "elsewhere").await;
    let mut mine = connect(&b, &b.t.agent_token).await;
    let mut theirs = connect(&b, &other.agent_token).await;
    assert!(
        frame(&mut mine, "hello", Duration::from_secs(5))
            .await
            .is_some()
    );
    assert!(
        frame(&mut theirs, "hello", Duration::from_secs(5))
            .await
            .is_some()
    );
    assert_eq!(
        b.meta(&fixture("meta/whatsapp_text.json")).await,
        StatusCode::OK
    );
    b.settle().await;
    let f = frame(&mut mine, "message", Duration::from_secs(10))
        .await
        .expect("a message frame");
    assert_eq!(f["message"]["direction"], "in");
    assert_eq!(f["message"]["status"], "received");
    assert!(f["message"]["body"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        frame(&mut theirs, "message", Duration::from_millis(500))
            .await
            .is_none(),
        "another company's agent hears nothing"
    );
}
