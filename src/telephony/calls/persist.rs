//! Writes call progress to the database off the SIP core: a task takes the queued writes, runs
//! everything queued in one transaction (group commit) and tells call control which of them it
//! was waiting for. An `answered` row is on disk before the caller gets its 200 OK.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{CallInput, CallKey};
use crate::domain::{CompanyId, UserId};
use crate::http::AppState;
use crate::store::{self, calls};

/// One queued write.
pub(crate) enum Write {
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

/// The handle call control queues writes on.
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
        if self.tx.send(w).is_err() {
            tracing::error!("the call writer stopped; call progress is not being saved");
        }
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
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut attempt = 0u32;
        loop {
            match write_all(&state, &batch).await {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "saving call progress failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, writes = batch.len(), "saving call progress failed; giving up on this batch");
                    break;
                }
            }
        }
        for w in batch.drain(..) {
            if let Write::Answered {
                notify: Some(key), ..
            } = w
            {
                // The caller's 200 goes out even when the write failed: a call must not hang
                // because of the database; the failure is logged above.
                let _ = inputs.send(CallInput::Persisted { key });
            }
        }
    }
}

async fn write_all(state: &AppState, batch: &[Write]) -> store::Result<()> {
    let mut tx = state.db.begin().await?;
    for w in batch {
        let mut ex = tx.ex();
        match w {
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
