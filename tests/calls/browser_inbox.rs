//! AI reply suggestions in the agent web app (`/app/`), in headless Chromium driven over
//! WebDriver ([`crate::webdriver`]): a WhatsApp Cloud API channel opted in to suggestions, the
//! company's model a fake OpenAI-compatible server, and the Graph API a fake too (both
//! [`Upstream`], on 127.0.0.1). [`browser_agent_edits_and_dismisses_ai_suggestions`] proves, as
//! an agent sees it:
//!
//! - a customer's message before the opt-in gets no suggestion and makes no request (P17);
//! - with the agent's conversation open, a signed webhook's message brings the model's
//!   suggestion into `#suggestion` through the `suggestion` frame: the document is the one the
//!   conversation was opened in (the page reads suggestions over HTTP only when a conversation is
//!   opened), and the frame is among what its socket received;
//! - "Edit and send" puts it in the reply box; the agent's edit is what the Graph API gets,
//!   once, and the suggestion is `accepted` with that reply and the agent as `decided_by`
//!   (`sent` is auto-reply's state); the panel hides;
//! - "Dismiss" on the next suggestion makes it `dismissed`, hides the panel and sends nothing.
//!
//! Every wait is bounded; one browser test runs at a time ([`crate::webdriver::exclusive`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use masterz::secrets::Secret;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::PASSWORD;
use crate::pbx::{Agent, Pbx, items, num, text};
use crate::webdriver::{self, Browser, artifacts_dir};

/// Logging in, and the socket connecting.
const T_LOGIN: Duration = Duration::from_secs(20);
/// A webhook's message to its suggestion in the page: ingestion, processing, the AI worker,
/// the model's answer and the frame.
const T_SUGGESTION: Duration = Duration::from_secs(20);
/// The page's reaction to a click, and the outbox's send.
const T_ACT: Duration = Duration::from_secs(15);

const APP_SECRET: &str = "inbox-ai-app-secret-71d0";
/// The WhatsApp Business phone number id, its account, and the customer's WhatsApp id.
const PHONE_NUMBER_ID: &str = "106540352242922";
const WABA_ID: &str = "102290129340398";
const WA_ID: &str = "4915112345678";
/// The company's own key for the model (the fake checks it comes as the bearer).
const AI_KEY: &str = "sk-inbox-test-4d1a";
const AI_MODEL: &str = "fake-model-1";

/// What the customer writes: before the opt-in, then the two messages that get suggestions.
const CUSTOMER: [&str; 3] = [
    "Hallo, ist mein Paket schon unterwegs?",
    "Bestellung 4711, bitte um Rückruf.",
    "Und die Rechnung dazu?",
];
/// The model's answers, in the order it is asked.
const SUGGESTIONS: [&str; 2] = [
    "Your order 4711 left our warehouse today and arrives tomorrow.",
    "I will send you the invoice by e-mail right away.",
];
/// What the agent types after the first suggestion before sending it.
const EDIT: &str = " Kind regards, Ada";

/// One request a fake upstream received.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// masterz's upstreams, faked on one port: the OpenAI-compatible API under `/v1` (its
/// completions answer [`SUGGESTIONS`] in turn) and the Graph API under `/graph` (WhatsApp sends
/// and read receipts succeed). Every request is kept.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    async fn start() -> Self {
        let seen = Arc::<Mutex<Vec<Seen>>>::default();
        let app = Router::new().fallback(answer).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake upstream");
        let addr = listener.local_addr().expect("the fake upstream's address");
        // Ends with the test's runtime.
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, seen }
    }

    fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn graph_base(&self) -> String {
        format!("http://{}/graph", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// The Chat Completions requests.
    fn completions(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.ends_with("/chat/completions"))
            .collect()
    }

    /// The WhatsApp messages sent to the customer (read receipts left out).
    fn sent_texts(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.ends_with("/messages") && s.body["type"] == "text")
            .collect()
    }

    /// Waits (at most `timeout`) until `n` WhatsApp texts were sent; returns them.
    async fn wait_texts(&self, n: usize, timeout: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        loop {
            let texts = self.sent_texts();
            if texts.len() >= n {
                return texts;
            }
            assert!(
                Instant::now() < deadline,
                "the Graph API got {} WhatsApp texts within {timeout:?}, not {n}; all requests:\n{:#?}",
                texts.len(),
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn lock(seen: &Mutex<Vec<Seen>>) -> MutexGuard<'_, Vec<Seen>> {
    // A test that panicked while holding it left nothing half-written: a push is one step.
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

async fn answer(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Seen {
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let completion = |s: &Seen| s.path.ends_with("/chat/completions");
    let (n, asked) = {
        let mut seen = lock(&seen);
        seen.push(request.clone());
        (seen.len(), seen.iter().filter(|s| completion(s)).count())
    };
    if completion(&request) {
        let content = SUGGESTIONS
            .get(asked - 1)
            .map_or_else(|| format!("Suggested reply {asked}"), |s| (*s).to_owned());
        return axum::Json(json!({
            "id": format!("chatcmpl-{n}"), "object": "chat.completion", "created": 1_764_000_000,
            "model": AI_MODEL,
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "refusal": null}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52},
        }))
        .into_response();
    }
    if request.path.ends_with("/messages") && request.body["status"] == "read" {
        return axum::Json(json!({"success": true})).into_response();
    }
    if request.path.ends_with("/messages") {
        let to = request.body["to"].clone();
        return axum::Json(json!({"messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": format!("wamid.reply-{n}")}]}))
        .into_response();
    }
    let error = json!({"error": {"message": "unknown path in the fake upstream", "code": 803}});
    (StatusCode::NOT_FOUND, axum::Json(error)).into_response()
}

/// An API call as the company's admin; its JSON answer, which must have status `expect`.
async fn api(pbx: &Pbx, method: Method, path: &str, body: Option<Value>, expect: u16) -> Value {
    let mut req = pbx.req(method.clone(), path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = r.status();
    let body = r
        .text()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert_eq!(status.as_u16(), expect, "{method} {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
}

/// The suggestion `id` of conversation `conv` once `done` holds for it.
async fn wait_suggestion(
    pbx: &Pbx,
    conv: i64,
    id: i64,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/api/v1/conversations/{conv}/suggestions");
    let list = pbx
        .wait_api(&path, what, |v| {
            items(v).iter().any(|s| s["id"] == id && done(s))
        })
        .await;
    items(&list)
        .into_iter()
        .find(|s| s["id"] == id)
        .expect("the suggestion just seen")
}

/// Posts the customer's WhatsApp message `text` (provider id `wamid.inbox-{n}`, sent now) to
/// `/webhooks/meta`, signed with the app secret as Meta signs it.
async fn customer_writes(pbx: &Pbx, n: usize, text: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Anna Müller"}, "wa_id": WA_ID}],
            "messages": [{"from": WA_ID, "id": format!("wamid.inbox-{n}"),
                "timestamp": now.to_string(), "type": "text", "text": {"body": text}}],
        },
    }]}]})
    .to_string()
    .into_bytes();
    let status = pbx.meta_webhook(APP_SECRET, body).await;
    assert_eq!(status, 200, "the signed webhook {n} is taken");
}

/// Opens the app and logs in as `agent`; waits for the socket.
async fn log_in(b: &Browser, pbx: &Pbx, agent: &Agent) {
    b.navigate(&pbx.s.url("/app/")).await;
    b.wait_visible("#login-form", T_LOGIN).await;
    b.set_value(
        "#login-email",
        &format!("{}@acme.example.com", agent.sip_user),
    )
    .await;
    b.set_value("#login-password", PASSWORD).await;
    b.click("#login-submit").await;
    b.wait_present("#ws-status[data-state=connected]", T_LOGIN)
        .await;
}

/// Marks the document (a reload or navigation loses the mark) and records every frame of the
/// page's socket into `window.__frames`.
const MARK_AND_CAPTURE: &str = "
  const s = window.masterz && window.masterz.socket;
  if (!s) return false;
  window.__sameDocument = true;
  window.__frames = [];
  s.addEventListener('message', (e) => {
    try { window.__frames.push(JSON.parse(e.data)); } catch (x) { window.__frames.push({unparsed: String(e.data)}); }
  });
  return true;";

/// Waits for the panel to show `expected`, then checks the page got it as a `suggestion`
/// frame in the document marked by [`MARK_AND_CAPTURE`]; returns the frame's suggestion.
async fn pushed_suggestion(b: &Browser, expected: &str) -> Value {
    b.wait_for("#suggestion-text", T_SUGGESTION, |p| {
        p.displayed && p.text.trim() == expected
    })
    .await;
    let p = b.probe("#suggestion").await.expect("#suggestion");
    assert!(p.displayed, "the panel is hidden around its text: {p:?}");
    let frame = b
        .execute(
            "if (window.__sameDocument !== true) return 'reloaded';
             const f = (window.__frames || []).find((f) => f.type === 'suggestion'
               && f.suggestion && f.suggestion.state === 'ready' && f.suggestion.text === arguments[0]);
             return f ? f.suggestion : null;",
            vec![json!(expected)],
        )
        .await;
    assert!(
        frame.is_object(),
        "the suggestion came without its frame (or the page reloaded): {frame}\n{}",
        b.diagnostics().await
    );
    frame
}

/// Waits until `#suggestion` is hidden.
async fn panel_hidden(b: &Browser, after: &str) {
    b.wait_js(
        &format!("#suggestion hidden after {after}"),
        T_ACT,
        "const p = document.querySelector('#suggestion');
         return !!p && (p.hidden || p.offsetParent === null);",
        vec![],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_agent_edits_and_dismisses_ai_suggestions() {
    if !webdriver::require() {
        return;
    }
    let _one = webdriver::exclusive().await;
    let up = Upstream::start().await;
    let graph = up.graph_base();
    let pbx = Pbx::start(|c| {
        c.meta_app_secret = Some(Secret::new(APP_SECRET.into()));
        c.meta_graph_url = graph;
        // The company's own settings below are the only model: none from the server.
        c.openai_api_key = None;
        c.openai_url = "http://127.0.0.1:9".into();
    })
    .await;
    let agent = pbx.agent("ada").await;
    let channel = api(
        &pbx,
        Method::POST,
        "/api/v1/channel-accounts",
        Some(
            json!({"kind": "whatsapp_cloud", "name": "WhatsApp", "external_id": PHONE_NUMBER_ID,
            "settings": {"waba_id": WABA_ID}, "credentials": {"access_token": "EAAB-inbox-token"}}),
        ),
        201,
    )
    .await;
    let channel = num(&channel, "id");

    // The customer writes before the channel is opted in: a conversation, no suggestion.
    customer_writes(&pbx, 0, CUSTOMER[0]).await;
    let list = pbx
        .wait_api(
            "/api/v1/conversations",
            "the customer's conversation",
            |v| items(v).len() == 1,
        )
        .await;
    let conv = num(&items(&list)[0], "id");
    let suggestions = format!("/api/v1/conversations/{conv}/suggestions");
    let none = api(&pbx, Method::GET, &suggestions, None, 200).await;
    assert!(
        items(&none).is_empty(),
        "a suggestion before the opt-in: {none:#}"
    );

    // The company's model is the fake; the channel is opted in.
    let settings = api(
        &pbx,
        Method::PUT,
        "/api/v1/ai/settings",
        Some(json!({"base_url": up.openai_base(), "model": AI_MODEL, "api_key": AI_KEY})),
        200,
    )
    .await;
    assert_eq!(
        text(&settings, "effective_base_url"),
        up.openai_base(),
        "{settings:#}"
    );
    assert_eq!(settings["effective_api_key_set"], true, "{settings:#}");
    let switched = api(
        &pbx,
        Method::PUT,
        &format!("/api/v1/channel-accounts/{channel}/ai"),
        Some(json!({"suggestions": true, "auto_reply": false})),
        200,
    )
    .await;
    assert_eq!(switched["suggestions"], true, "{switched:#}");

    // The agent opens the conversation: a WhatsApp reply box, no suggestion yet.
    let b = Browser::start("agent-suggestions").await;
    log_in(&b, &pbx, &agent).await;
    let row = format!("#conversations .conversation[data-id=\"{conv}\"]");
    b.wait_visible(&row, T_ACT).await;
    b.click(&row).await;
    b.wait_for("#reply-send", T_ACT, |p| p.text.trim() == "Send")
        .await;
    b.wait_visible("#reply-channel", T_ACT).await;
    let p = b.probe("#suggestion").await.expect("#suggestion");
    assert!(!p.displayed, "a suggestion shows before any: {p:?}");
    assert_eq!(b.execute(MARK_AND_CAPTURE, vec![]).await, true);

    // A message while the conversation is open: its suggestion is pushed into the page.
    customer_writes(&pbx, 1, CUSTOMER[1]).await;
    let first = pushed_suggestion(&b, SUGGESTIONS[0]).await;
    let first_id = num(&first, "id");
    assert_eq!(first["conversation_id"], conv, "{first:#}");
    b.save_screenshot(&artifacts_dir().join("agent-suggestion.png"))
        .await;
    let asked = up.completions();
    assert_eq!(
        asked.len(),
        1,
        "one request for one opted-in message: {asked:#?}"
    );
    assert_eq!(
        asked[0].authorization.as_deref(),
        Some(format!("Bearer {AI_KEY}").as_str()),
        "the company's key"
    );
    assert_eq!(asked[0].body["model"], AI_MODEL, "{:#}", asked[0].body);
    let last = asked[0].body["messages"]
        .as_array()
        .and_then(|m| m.last().cloned())
        .unwrap_or_default();
    assert_eq!(
        last["content"], CUSTOMER[1],
        "the model answers the new message"
    );

    // Path A: "Edit and send", the agent's addition, send.
    b.click("#suggestion-use").await;
    b.wait_for("#reply-text", T_ACT, |p| {
        p.value.as_deref() == Some(SUGGESTIONS[0])
    })
    .await;
    b.find("#reply-text").await.send_keys(EDIT).await;
    let edited = format!("{}{EDIT}", SUGGESTIONS[0]);
    b.wait_for("#reply-text", T_ACT, |p| {
        p.value.as_deref() == Some(edited.as_str())
    })
    .await;
    b.click("#reply-send").await;
    let sent = up.wait_texts(1, T_ACT).await;
    assert_eq!(sent.len(), 1, "one WhatsApp text: {sent:#?}");
    assert_eq!(
        sent[0].body["text"]["body"],
        edited.as_str(),
        "{:#}",
        sent[0].body
    );
    assert_eq!(sent[0].body["to"], WA_ID, "{:#}", sent[0].body);
    panel_hidden(&b, "sending").await;
    b.wait_for("#reply-text", T_ACT, |p| p.value.as_deref() == Some(""))
        .await;
    let accepted = wait_suggestion(&pbx, conv, first_id, "the first accepted", |s| {
        s["state"] == "accepted" && s["reply_message_id"].is_i64()
    })
    .await;
    assert_eq!(accepted["decided_by"], agent.user.0, "{accepted:#}");
    assert_eq!(
        text(&accepted, "text"),
        SUGGESTIONS[0],
        "the suggestion keeps its own text"
    );
    let reply_id = num(&accepted, "reply_message_id");
    let messages = pbx
        .wait_api(
            &format!("/api/v1/conversations/{conv}/messages"),
            "the reply sent",
            |v| {
                items(v)
                    .iter()
                    .any(|m| m["id"] == reply_id && m["status"] == "sent")
            },
        )
        .await;
    let reply = items(&messages)
        .into_iter()
        .find(|m| m["id"] == reply_id)
        .expect("the reply just seen");
    assert_eq!(text(&reply, "direction"), "out", "{reply:#}");
    assert_eq!(text(&reply, "body"), edited, "{reply:#}");
    assert_eq!(reply["sender_user_id"], agent.user.0, "{reply:#}");
    // The agent sees it in the timeline, sent (the page refreshes it on the message's frames).
    let item = format!("#timeline .timeline-item[data-kind=\"message\"][data-id=\"{reply_id}\"]");
    let shown = b
        .wait_for(&item, T_ACT, |p| {
            p.text.contains(&edited) && p.text.contains("sent")
        })
        .await;
    // Nothing but the item's own words (an absent part once showed as the text "null").
    assert!(!shown.text.contains("null"), "{:?}", shown.text);

    // Path B: the next message's suggestion, dismissed.
    customer_writes(&pbx, 2, CUSTOMER[2]).await;
    let second = pushed_suggestion(&b, SUGGESTIONS[1]).await;
    let second_id = num(&second, "id");
    assert_ne!(second_id, first_id);
    b.click("#suggestion-dismiss").await;
    panel_hidden(&b, "dismissing").await;
    let dismissed = wait_suggestion(&pbx, conv, second_id, "the second dismissed", |s| {
        s["state"] == "dismissed"
    })
    .await;
    assert_eq!(dismissed["decided_by"], agent.user.0, "{dismissed:#}");
    assert!(dismissed["reply_message_id"].is_null(), "{dismissed:#}");
    // A dismissal queues nothing: one reply in the conversation, one text at the provider.
    let messages = api(
        &pbx,
        Method::GET,
        &format!("/api/v1/conversations/{conv}/messages"),
        None,
        200,
    )
    .await;
    let out: Vec<Value> = items(&messages)
        .into_iter()
        .filter(|m| m["direction"] == "out")
        .collect();
    assert_eq!(out.len(), 1, "only the edited reply went out: {out:#?}");
    assert_eq!(up.sent_texts().len(), 1, "{:#?}", up.seen());
    assert_eq!(up.completions().len(), 2, "{:#?}", up.completions());
    let p = b.probe("#reply-text").await.expect("#reply-text");
    assert_eq!(p.value.as_deref(), Some(""), "{p:?}");
    let thrown = b
        .execute(
            "return (window.__errors || []).filter((e) => /^(uncaught|unhandled)/.test(e));",
            vec![],
        )
        .await;
    assert_eq!(thrown, json!([]), "the page threw");
}
