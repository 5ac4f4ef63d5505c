//! AI reply suggestions (privacy promises P10, P17): opt-in per channel, off by default.
//!
//! When the processor stores an inbound message on a channel with suggestions on, it queues a
//! `pending` suggestion in the same transaction ([`store::ai::enqueue_if_enabled`]). The worker
//! here takes each one, checks again that the channel is still opted in, that the plan allows
//! another AI reply and that a key is configured, and only then builds the context: the newest
//! `ai_context_messages` messages of that conversation and the `ai_knowledge_chunks` best
//! knowledge-base passages for the message — nothing else. It asks the company's
//! OpenAI-compatible endpoint, logs the exchange (key redacted), and stores the suggestion with
//! exactly that context. The agent accepts (as is or edited) or dismisses it; with auto-reply on,
//! the suggestion is sent as the reply at once.

pub mod knowledge;
pub mod openai;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;

use crate::agents::ServerFrame;
use crate::domain::CompanyId;
use crate::http::AppState;
use crate::messaging::clients::Exchange;
use crate::messaging::reply::{self, Reply};
use crate::store::ai::{self as sugg, Due, Outcome};
use crate::store::integration_logs::{self, NewLog};
use crate::store::{self, now_ms, usage};
use openai::{ChatMessage, Completion};

/// The instructions every request starts with; the knowledge-base passages follow them.
pub const INSTRUCTIONS: &str = "You draft replies for a customer service agent, who reviews \
each draft before it is sent. Write the next reply to the customer: short, friendly, in the \
customer's language. Use only facts from the knowledge-base passages below or from the \
conversation; when they do not answer the question, say that you will check and get back.";

/// How long a claimed suggestion stays with its worker before another may take it.
const LEASE: Duration = Duration::from_secs(120);
/// Suggestions taken per round.
const BATCH: i64 = 16;
/// The worker looks for due suggestions at least this often.
const IDLE: Duration = Duration::from_secs(30);

/// The AI part of [`AppState`].
#[derive(Debug)]
pub struct Ai {
    /// The Chat Completions client.
    pub client: openai::Client,
    /// Woken when a suggestion was queued.
    pub queued: Arc<Notify>,
}

impl Ai {
    /// The client with the standard timeouts.
    ///
    /// # Panics
    /// When the TLS backend cannot be initialised (the server could reach no provider then).
    pub fn new() -> Self {
        match openai::Client::new() {
            Ok(client) => Self {
                client,
                queued: Arc::new(Notify::new()),
            },
            Err(e) => panic!("cannot build the HTTP client: {e}"),
        }
    }
}

impl Default for Ai {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts the suggestion worker.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        loop {
            let wait = match run_once(&state).await {
                Ok(0) => idle_wait(&state).await,
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "AI suggestion worker failed");
                    IDLE
                }
            };
            tokio::select! {
                () = state.ai.queued.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
}

/// Until the next pending suggestion is due (at most [`IDLE`]).
async fn idle_wait(state: &AppState) -> Duration {
    let Ok(mut conn) = state.db.conn().await else {
        return IDLE;
    };
    match sugg::next_due(&mut conn.ex()).await {
        Ok(Some(at)) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)).min(IDLE),
        _ => IDLE,
    }
}

/// Makes every due suggestion once; returns how many were taken.
pub async fn run_once(state: &AppState) -> store::Result<usize> {
    let due = {
        let mut conn = state.db.conn().await?;
        let lease = i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        sugg::claim(&mut conn.ex(), BATCH, lease).await?
    };
    for item in &due {
        if let Err(e) = make(state, item).await {
            tracing::warn!(suggestion = item.id, error = %e, "suggestion attempt failed");
        }
    }
    Ok(due.len())
}

/// One attempt at one suggestion.
async fn make(state: &AppState, item: &Due) -> store::Result<()> {
    let company = item.company_id;
    let prepared = {
        let mut conn = state.db.conn().await?;
        prepare(state, &mut conn.ex(), item).await?
    };
    let request = match prepared {
        Err(reason) => {
            let mut conn = state.db.conn().await?;
            sugg::finish(
                &mut conn.ex(),
                item.id,
                &Outcome::Skipped { reason: &reason },
            )
            .await?;
            announce(state, company, item.id).await;
            return Ok(());
        }
        Ok(r) => r,
    };
    let (completion, exchange) = state
        .ai
        .client
        .complete(&request.base, &request.key, &request.body)
        .await;
    log_exchange(state, item, exchange).await?;
    let context = request.context.to_string();
    let mut auto_sent = false;
    let mut tx = state.db.begin().await?;
    match &completion {
        Completion::Text { text, model } => {
            let model = if model.is_empty() {
                &request.model
            } else {
                model
            };
            sugg::finish(
                &mut tx.ex(),
                item.id,
                &Outcome::Ready {
                    context: &context,
                    model,
                    text,
                },
            )
            .await?;
            usage::add(&mut tx.ex(), company, usage::AI_REPLIES, 1, now_ms()).await?;
            if request.auto_reply {
                auto_sent = auto_reply(&mut tx.ex(), item, text).await?;
            }
        }
        Completion::Retry {
            reason,
            retry_after,
        } if item.attempts < max_attempts(state) => {
            let wait = retry_after
                .unwrap_or_else(|| crate::messaging::outbox::backoff(item.attempts))
                .min(Duration::from_secs(3600));
            let at = now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
            let outcome = Outcome::Retry {
                at,
                reason,
                context: Some(&context),
            };
            sugg::finish(&mut tx.ex(), item.id, &outcome).await?;
        }
        Completion::Retry { reason, .. } | Completion::Fail { reason } => {
            let outcome = Outcome::Failed {
                reason,
                context: Some(&context),
            };
            sugg::finish(&mut tx.ex(), item.id, &outcome).await?;
        }
    }
    tx.commit().await?;
    if auto_sent {
        state.messaging.outbound.notify_one();
    }
    announce(state, company, item.id).await;
    Ok(())
}

fn max_attempts(state: &AppState) -> i32 {
    i32::try_from(state.config.ai_max_attempts.max(1)).unwrap_or(i32::MAX)
}

/// A request ready to send.
struct Request {
    base: String,
    key: crate::secrets::Secret<String>,
    model: String,
    body: serde_json::Value,
    /// What the body holds, as stored with the suggestion.
    context: serde_json::Value,
    auto_reply: bool,
}

/// Checks that the suggestion may be made and builds its request; `Err(reason)` to skip it.
/// Nothing of the conversation is read before the checks pass.
async fn prepare(
    state: &AppState,
    ex: &mut store::Ex<'_>,
    item: &Due,
) -> store::Result<Result<Request, String>> {
    let company = item.company_id;
    let account = match item.channel_account_id {
        Some(id) => store::channels::get(ex, company, id).await?,
        None => None,
    };
    let Some(account) = account.filter(|a| a.ai_suggestions) else {
        return Ok(Err(
            "AI suggestions are switched off for this channel".into()
        ));
    };
    let now = now_ms();
    if let Some(reason) =
        crate::billing::limit_reached(ex, &state.config, company, usage::AI_REPLIES, now).await?
    {
        return Ok(Err(reason));
    }
    let settings = sugg::settings(ex, company).await?;
    let key = match settings.key(&state.keyring)? {
        Some(k) => k,
        None => match &state.config.openai_api_key {
            Some(k) => k.clone(),
            None => {
                return Ok(Err(
                    "no API key: set one in the company's AI settings".into()
                ));
            }
        },
    };
    let base = settings
        .ai_base_url
        .unwrap_or_else(|| state.config.openai_url.clone());
    let model = settings
        .ai_model
        .unwrap_or_else(|| state.config.openai_model.clone());

    let limit = i64::from(state.config.ai_context_messages.max(1));
    let messages =
        sugg::context_messages(ex, company, item.conversation_id, item.message_id, limit).await?;
    let Some(question) = messages
        .iter()
        .find(|m| m.id == item.message_id)
        .map(|m| m.body.clone())
    else {
        return Ok(Err("the message has no text to answer".into()));
    };
    let terms = knowledge::query_terms(&question);
    let k = i64::from(state.config.ai_knowledge_chunks);
    let chunks = store::knowledge::search(ex, company, &terms, k).await?;

    let mut instructions = INSTRUCTIONS.to_owned();
    if !chunks.is_empty() {
        instructions.push_str("\n\nKnowledge-base passages:");
        for (i, c) in chunks.iter().enumerate() {
            instructions.push_str(&format!("\n[{}] {}", i + 1, c.content));
        }
    }
    let conversation: Vec<ChatMessage> = messages
        .iter()
        .map(|m| ChatMessage {
            role: if m.direction == "in" {
                "user"
            } else {
                "assistant"
            },
            content: m.body.clone(),
        })
        .collect();
    let body = openai::request_body(&model, &instructions, &conversation);
    let context = json!({
        "messages": messages.iter().zip(&conversation)
            .map(|(m, c)| json!({"id": m.id, "role": c.role, "text": c.content}))
            .collect::<Vec<_>>(),
        "chunks": chunks,
    });
    Ok(Ok(Request {
        base,
        key,
        model,
        body,
        context,
        auto_reply: account.ai_auto_reply,
    }))
}

/// Sends a fresh suggestion as the reply (auto-reply mode); whether it was queued. A reply that
/// cannot be queued (the channel needs reconnection…) leaves the suggestion for an agent.
async fn auto_reply(ex: &mut store::Ex<'_>, item: &Due, text: &str) -> store::Result<bool> {
    let company = item.company_id;
    let Some(conversation) = store::conversations::get(ex, company, item.conversation_id).await?
    else {
        return Ok(false);
    };
    match reply::queue_reply(
        ex,
        company,
        &conversation,
        None,
        &Reply::Text(text.to_owned()),
    )
    .await
    {
        Ok(message) => {
            sugg::decide(ex, company, item.id, "sent", None, Some(message)).await?;
            Ok(true)
        }
        Err(reply::ReplyError::Store(e)) => Err(e),
        Err(e) => {
            tracing::info!(suggestion = item.id, reason = %e, "auto-reply not sent; left for an agent");
            Ok(false)
        }
    }
}

/// Writes the exchange to `integration_logs` (P12), against the inbound message answered.
async fn log_exchange(state: &AppState, item: &Due, exchange: Exchange) -> store::Result<()> {
    let log = NewLog {
        company_id: Some(item.company_id),
        channel_account_id: item.channel_account_id,
        direction: "out",
        provider: exchange.provider,
        method: exchange.method,
        endpoint: exchange.endpoint,
        status: exchange.status.map(i32::from),
        duration_ms: Some(exchange.duration_ms),
        request_headers: Some(exchange.request_headers.to_string()),
        request_body: exchange.request_body,
        response_body: exchange.response_body,
        error: exchange.error,
        state: "done",
        message_id: Some(item.message_id),
        created_at: now_ms(),
    };
    let mut conn = state.db.conn().await?;
    integration_logs::insert(&mut conn.ex(), &log).await?;
    Ok(())
}

/// Pushes the suggestion to the company's agents.
pub async fn announce(state: &AppState, company: CompanyId, id: i64) {
    let Ok(mut conn) = state.db.conn().await else {
        return;
    };
    if let Ok(Some(s)) = sugg::get(&mut conn.ex(), company, id).await {
        let frame = ServerFrame::Suggestion {
            suggestion: serde_json::to_value(s).unwrap_or_default(),
        };
        state.agents.broadcast(company, &frame);
    }
}
