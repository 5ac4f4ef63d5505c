//! Writes call progress to the database off the SIP core: a task takes the queued writes, runs
//! everything queued in one transaction (group commit) and tells call control which of them it
//! was waiting for. An `answered` row is on disk before the caller gets its 200 OK.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{CallInput, CallKey};
use crate::domain::{CompanyId, UserId};
use crate::http::AppState;
use crate::store::{self, calls};

/// A new call row; its id goes back on `reply` once committed.
pub(crate) struct NewRow {
    pub(crate) company: CompanyId,
    pub(crate) customer_id: Option<i64>,
    pub(crate) direction: &'static str,
    pub(crate) from_uri: String,
    pub(crate) to_uri: String,
    pub(crate) trunk_id: Option<i64>,
    pub(crate) group_id: Option<i64>,
    pub(crate) sip_call_id: String,
    pub(crate) agent_user_id: Option<UserId>,
    pub(crate) started_at: i64,
}

/// One queued write.
pub(crate) enum Write {
    Create {
        row: NewRow,
        reply: oneshot::Sender<Result<i64, String>>,
    },
    Event {
        company: CompanyId,
        row: i64,
        at: i64,
        kind: &'static str,
        user: Option<UserId>,
        detail: Option<String>,
    },
    Answered {
        company: CompanyId,
        row: i64,
        agent: Option<UserId>,
        at: i64,
        codec: String,
        /// Call control waits for this one.
        notify: Option<CallKey>,
    },
    SetAgent {
        company: CompanyId,
        row: i64,
        agent: Option<UserId>,
    },
    Ended {
        company: CompanyId,
        row: i64,
        ended_at: i64,
        status: &'static str,
        reason: String,
        hangup_by: Option<&'static str>,
        sip_status: Option<u16>,
        media: Option<calls::MediaFigures>,
    },
}

/// The handle call control (and its routing jobs) queue writes on.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Write>,
}

/// Most writes in one transaction.
const BATCH: usize = 512;

impl Writer {
    pub(crate) fn start(state: Arc<AppState>, inputs: mpsc::UnboundedSender<CallInput>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(state, rx, inputs));
        Self { tx }
    }

    pub(crate) fn write(&self, w: Write) {
        if let Write::Event { kind, .. } = &w
            && !calls::EVENT_KINDS.contains(kind)
        {
            // A kind the store does not know would fail the whole batch.
            tracing::error!(kind, "unknown call event kind not saved");
            return;
        }
        if self.tx.send(w).is_err() {
            tracing::error!("the call writer stopped; call progress is not being saved");
        }
    }

    /// Creates a call row in the next batch and returns its id.
    pub(crate) async fn create(&self, row: NewRow) -> Result<i64, String> {
        let (reply, rx) = oneshot::channel();
        self.write(Write::Create { row, reply });
        rx.await.map_err(|_| "the call writer stopped".to_owned())?
    }

    pub(crate) fn event(
        &self,
        company: CompanyId,
        row: i64,
        kind: &'static str,
        user: Option<UserId>,
        detail: Option<String>,
    ) {
        self.write(Write::Event {
            company,
            row,
            at: super::unix_ms(),
            kind,
            user,
            detail,
        });
    }
}

async fn run(
    state: Arc<AppState>,
    mut rx: mpsc::UnboundedReceiver<Write>,
    inputs: mpsc::UnboundedSender<CallInput>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut ids = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut attempt = 0u32;
        let outcome = loop {
            ids.clear();
            match write_all(&state, &batch, &mut ids).await {
                Ok(()) => break Ok(()),
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "saving call progress failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, writes = batch.len(), "saving call progress failed; giving up on this batch");
                    break Err(e.to_string());
                }
            }
        };
        let mut ids = ids.drain(..);
        for w in batch.drain(..) {
            match w {
                Write::Answered {
                    notify: Some(key), ..
                } => {
                    // The caller's 200 goes out even when the write failed: a call must not
                    // hang because of the database; the failure is logged above.
                    let _ = inputs.send(CallInput::Persisted { key });
                }
                Write::Create { reply, .. } => {
                    let result = match (&outcome, ids.next()) {
                        (Ok(()), Some(id)) => id,
                        (Err(e), _) => Err(e.clone()),
                        (Ok(()), None) => Err("no id for the new call".to_owned()),
                    };
                    let _ = reply.send(result);
                }
                _ => {}
            }
        }
    }
}

async fn write_all(
    state: &AppState,
    batch: &[Write],
    ids: &mut Vec<Result<i64, String>>,
) -> store::Result<()> {
    let mut tx = state.db.begin().await?;
    for w in batch {
        let mut ex = tx.ex();
        match w {
            Write::Create { row, .. } => {
                let id = calls::create(
                    &mut ex,
                    row.company,
                    &calls::NewCall {
                        customer_id: row.customer_id,
                        direction: row.direction,
                        from_uri: &row.from_uri,
                        to_uri: &row.to_uri,
                        trunk_id: row.trunk_id,
                        group_id: row.group_id,
                        sip_call_id: &row.sip_call_id,
                        agent_user_id: row.agent_user_id,
                        started_at: row.started_at,
                    },
                )
                .await;
                match id {
                    Ok(id) => ids.push(Ok(id)),
                    // Nothing was inserted (a reference went away): that call fails, the batch
                    // goes on.
                    Err(store::StoreError::Reference(m)) => ids.push(Err(m)),
                    Err(e) => return Err(e),
                }
            }
            Write::Event {
                company,
                row,
                at,
                kind,
                user,
                detail,
            } => {
                calls::add_event(&mut ex, *company, *row, *at, kind, *user, detail.as_deref())
                    .await?;
            }
            Write::Answered {
                company,
                row,
                agent,
                at,
                codec,
                ..
            } => {
                calls::answered(&mut ex, *company, *row, *agent, *at, codec).await?;
                calls::add_event(&mut ex, *company, *row, *at, "answered", *agent, None).await?;
            }
            Write::SetAgent {
                company,
                row,
                agent,
            } => calls::set_agent(&mut ex, *company, *row, *agent).await?,
            Write::Ended {
                company,
                row,
                ended_at,
                status,
                reason,
                hangup_by,
                sip_status,
                media,
            } => {
                calls::ended(
                    &mut ex,
                    *company,
                    *row,
                    &calls::CallEnd {
                        ended_at: *ended_at,
                        status,
                        end_reason: reason,
                        hangup_by: *hangup_by,
                        sip_status: *sip_status,
                        media: media.as_ref(),
                    },
                )
                .await?;
                calls::add_event(
                    &mut ex,
                    *company,
                    *row,
                    *ended_at,
                    "ended",
                    None,
                    Some(reason),
                )
                .await?;
            }
        }
    }
    tx.commit().await
}
