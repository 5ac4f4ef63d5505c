//! Calls: one row per call, written by call control as the call progresses (created ringing,
//! answered, ended), and its events (which agents were rung, holds, transfers, DTMF…).
//!
//! Call control owns the call id and calls these in order; they are forgiving on purpose. A call
//! whose row is gone (deleted with its customer while it rang) or that is not of `company`
//! makes [`answered`], [`ended`], [`set_agent`] and [`add_event`] do nothing, so a late BYE never
//! turns into an error path; [`ended`] writes only the first end, and [`answered`] only answers
//! a ringing call (a 200 OK that crosses a CANCEL does not resurrect the call).
//!
//! Timestamps are Unix milliseconds in and [`Timestamp`]s out.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, StoreError, UserId, q};
use crate::domain::Timestamp;

/// The directions of a call: from a customer, to a customer, between two agents.
pub const DIRECTIONS: &[&str] = &["in", "out", "internal"];
/// Every status: `ringing` and `answered` while it lasts, then one of the final ones.
pub const STATUSES: &[&str] = &[
    "ringing",
    "answered",
    "completed",
    "missed",
    "failed",
    "rejected",
    "cancelled",
];
/// The statuses a call can end with.
pub const FINAL_STATUSES: &[&str] = &["completed", "missed", "failed", "rejected", "cancelled"];
/// Who can hang up.
pub const HANGUP_BY: &[&str] = &["caller", "agent", "system"];
/// The kinds of [`CallEvent`].
pub const EVENT_KINDS: &[&str] = &[
    "ringing",
    "answered",
    "held",
    "resumed",
    "transfer_requested",
    "transferred",
    "transfer_failed",
    "dtmf",
    "ended",
    "no_answer",
    "overflow",
    "recording_started",
    "recording_failed",
    "prompt_played",
];

/// A call as stored: every column.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Call {
    /// Id.
    pub id: i64,
    /// The customer on the other end (none for internal calls).
    pub customer_id: Option<i64>,
    /// Conversation, if the call belongs to one.
    pub conversation_id: Option<i64>,
    /// `in`, `out` or `internal`.
    pub direction: String,
    /// Caller URI.
    pub from_uri: String,
    /// Callee URI.
    pub to_uri: String,
    /// `ringing`, `answered`, `completed`, `missed`, `failed`, `rejected` or `cancelled`.
    pub status: String,
    /// The agent who has the call (the last one, after a transfer).
    pub agent_user_id: Option<UserId>,
    /// The trunk (channel account) it came in or went out on.
    pub trunk_id: Option<i64>,
    /// The call group that was rung.
    pub group_id: Option<i64>,
    /// SIP Call-ID of the customer's leg.
    pub sip_call_id: Option<String>,
    /// When it started ringing.
    pub started_at: Timestamp,
    /// When it was answered.
    pub answered_at: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// Why it ended, e.g. `bye`, `cancel`, `timeout`, `busy`.
    pub end_reason: Option<String>,
    /// `caller`, `agent` or `system`.
    pub hangup_by: Option<String>,
    /// The final SIP status the caller got when the call was not answered.
    pub sip_status: Option<u16>,
    /// Codec of the customer's leg, e.g. `PCMU`.
    pub codec: Option<String>,
    /// RTP packets received, over both legs.
    pub rtp_packets_in: Option<i64>,
    /// RTP packets sent, over both legs.
    pub rtp_packets_out: Option<i64>,
    /// RTP packets lost, over both legs.
    pub rtp_packets_lost: Option<i64>,
    /// Largest interarrival jitter seen, in microseconds.
    pub rtp_jitter_us: Option<i64>,
    /// Per-leg media detail as the media engine wrote it (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub media: Option<serde_json::Value>,
}

#[derive(sqlx::FromRow)]
struct CallRow {
    id: i64,
    customer_id: Option<i64>,
    conversation_id: Option<i64>,
    direction: String,
    from_uri: String,
    to_uri: String,
    status: String,
    agent_user_id: Option<UserId>,
    trunk_id: Option<i64>,
    group_id: Option<i64>,
    sip_call_id: Option<String>,
    started_at: Timestamp,
    answered_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
    end_reason: Option<String>,
    hangup_by: Option<String>,
    sip_status: Option<i64>,
    codec: Option<String>,
    rtp_packets_in: Option<i64>,
    rtp_packets_out: Option<i64>,
    rtp_packets_lost: Option<i64>,
    rtp_jitter_us: Option<i64>,
    media: Option<String>,
}

impl From<CallRow> for Call {
    fn from(r: CallRow) -> Self {
        // Written only by `ended` from serialised JSON; anything else is kept as the raw text
        // rather than failing the whole read.
        let media = r
            .media
            .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)));
        Call {
            id: r.id,
            customer_id: r.customer_id,
            conversation_id: r.conversation_id,
            direction: r.direction,
            from_uri: r.from_uri,
            to_uri: r.to_uri,
            status: r.status,
            agent_user_id: r.agent_user_id,
            trunk_id: r.trunk_id,
            group_id: r.group_id,
            sip_call_id: r.sip_call_id,
            started_at: r.started_at,
            answered_at: r.answered_at,
            ended_at: r.ended_at,
            end_reason: r.end_reason,
            hangup_by: r.hangup_by,
            sip_status: r.sip_status.and_then(|s| u16::try_from(s).ok()),
            codec: r.codec,
            rtp_packets_in: r.rtp_packets_in,
            rtp_packets_out: r.rtp_packets_out,
            rtp_packets_lost: r.rtp_packets_lost,
            rtp_jitter_us: r.rtp_jitter_us,
            media,
        }
    }
}

macro_rules! call_columns {
    () => {
        "id, customer_id, conversation_id, direction, from_uri, to_uri, status, agent_user_id, \
         trunk_id, group_id, sip_call_id, started_at, answered_at, ended_at, end_reason, \
         hangup_by, sip_status, codec, rtp_packets_in, rtp_packets_out, rtp_packets_lost, \
         rtp_jitter_us, media"
    };
}

/// A call that starts ringing.
#[derive(Clone, Debug)]
pub struct NewCall<'a> {
    /// The customer (none for internal calls).
    pub customer_id: Option<i64>,
    /// `in`, `out` or `internal`.
    pub direction: &'a str,
    /// Caller URI.
    pub from_uri: &'a str,
    /// Callee URI.
    pub to_uri: &'a str,
    /// Trunk (channel account).
    pub trunk_id: Option<i64>,
    /// Call group rung.
    pub group_id: Option<i64>,
    /// SIP Call-ID of the customer's leg.
    pub sip_call_id: &'a str,
    /// The agent, when known from the start (outbound and internal calls).
    pub agent_user_id: Option<UserId>,
    /// Unix milliseconds.
    pub started_at: i64,
}

/// Creates a call with status `ringing`; returns its id. Every reference (customer, trunk,
/// group, agent) must be of `company`, else [`StoreError::Reference`] and nothing is written.
pub async fn create(ex: &mut Ex<'_>, company: CompanyId, c: &NewCall<'_>) -> Result<i64> {
    debug_assert!(DIRECTIONS.contains(&c.direction), "{}", c.direction);
    // One statement: the references are checked against the company where they are written.
    let id = q!(ex, scalar_opt i64,
        "INSERT INTO calls (company_id, customer_id, direction, from_uri, to_uri, status, \
           agent_user_id, trunk_id, group_id, sip_call_id, started_at) \
         SELECT $1, $2, $3, $4, $5, 'ringing', $6, $7, $8, $9, $10 \
         WHERE (CAST($2 AS BIGINT) IS NULL OR EXISTS \
                 (SELECT 1 FROM customers WHERE company_id = $1 AND id = $2)) \
           AND (CAST($6 AS BIGINT) IS NULL OR EXISTS \
                 (SELECT 1 FROM users WHERE company_id = $1 AND id = $6)) \
           AND (CAST($7 AS BIGINT) IS NULL OR EXISTS \
                 (SELECT 1 FROM channel_accounts WHERE company_id = $1 AND id = $7)) \
           AND (CAST($8 AS BIGINT) IS NULL OR EXISTS \
                 (SELECT 1 FROM call_groups WHERE company_id = $1 AND id = $8)) \
         RETURNING id",
        company, c.customer_id, c.direction, c.from_uri, c.to_uri, c.agent_user_id, c.trunk_id,
        c.group_id, c.sip_call_id, c.started_at)?;
    id.ok_or_else(|| {
        StoreError::Reference(format!(
            "customer, agent, trunk or group of the call is not of company {company}"
        ))
    })
}

/// Marks a ringing call answered by `agent` (kept as it was when `None`) at `at` with `codec`.
/// A call that is no longer ringing (cancelled, ended), or an agent not of `company`, leaves the
/// call as it is.
pub async fn answered(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    agent: Option<UserId>,
    at: i64,
    codec: &str,
) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE calls SET status = 'answered', answered_at = $3, codec = $4, \
           agent_user_id = COALESCE(CAST($5 AS BIGINT), agent_user_id) \
         WHERE company_id = $1 AND id = $2 AND status = 'ringing' \
           AND (CAST($5 AS BIGINT) IS NULL OR EXISTS \
                 (SELECT 1 FROM users WHERE company_id = $1 AND id = $5))",
        company,
        id,
        at,
        codec,
        agent
    )?;
    Ok(())
}

/// Media counters of a call over both legs, and the per-leg detail as JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaFigures {
    /// RTP packets received.
    pub packets_in: i64,
    /// RTP packets sent.
    pub packets_out: i64,
    /// RTP packets lost.
    pub packets_lost: i64,
    /// Largest interarrival jitter, microseconds.
    pub jitter_us: i64,
    /// Per-leg detail, a JSON object (shown as is by the API).
    pub detail_json: String,
}

/// How a call ended.
#[derive(Clone, Debug)]
pub struct CallEnd<'a> {
    /// Unix milliseconds.
    pub ended_at: i64,
    /// `completed`, `missed`, `failed`, `rejected` or `cancelled`.
    pub status: &'a str,
    /// Why, e.g. `bye`, `cancel`, `timeout`, `busy`.
    pub end_reason: &'a str,
    /// `caller`, `agent` or `system`.
    pub hangup_by: Option<&'a str>,
    /// The final SIP status the caller got, when it was not answered.
    pub sip_status: Option<u16>,
    /// Media counters, when media flowed.
    pub media: Option<&'a MediaFigures>,
}

/// Ends a call. Only the first end is written: a call that has `ended_at` is left as it is.
/// An answered call adds its talk time (answer to end) to the company's `call_seconds`.
pub async fn ended(ex: &mut Ex<'_>, company: CompanyId, id: i64, end: &CallEnd<'_>) -> Result<()> {
    debug_assert!(FINAL_STATUSES.contains(&end.status), "{}", end.status);
    debug_assert!(end.hangup_by.is_none_or(|h| HANGUP_BY.contains(&h)));
    let m = end.media;
    // A row comes back only for the first end, so a call is counted once.
    let answered_at = q!(
        ex,
        scalar_opt Option<i64>,
        "UPDATE calls SET status = $3, ended_at = $4, end_reason = $5, hangup_by = $6, \
           sip_status = $7, rtp_packets_in = $8, rtp_packets_out = $9, rtp_packets_lost = $10, \
           rtp_jitter_us = $11, media = $12 \
         WHERE company_id = $1 AND id = $2 AND ended_at IS NULL RETURNING answered_at",
        company,
        id,
        end.status,
        end.ended_at,
        end.end_reason,
        end.hangup_by,
        end.sip_status.map(i64::from),
        m.map(|m| m.packets_in),
        m.map(|m| m.packets_out),
        m.map(|m| m.packets_lost),
        m.map(|m| m.jitter_us),
        m.map(|m| m.detail_json.as_str())
    )?;
    if let Some(Some(answered_at)) = answered_at {
        let seconds = super::usage::seconds_ceil(end.ended_at - answered_at);
        super::usage::add(
            ex,
            company,
            super::usage::CALL_SECONDS,
            seconds,
            end.ended_at,
        )
        .await?;
    }
    Ok(())
}

/// Ends every call still in progress at `at` with the reason `server restart` (at start-up,
/// after a crash: nothing can be in progress then). Answered calls become `completed`, the
/// others `failed`; each gets an `ended` event. Returns how many.
pub async fn end_interrupted(ex: &mut Ex<'_>, at: i64) -> Result<u64> {
    q!(
        ex,
        exec,
        "INSERT INTO call_events (company_id, call_id, at, kind, detail) \
         SELECT company_id, id, $1, 'ended', 'server restart' FROM calls WHERE ended_at IS NULL",
        at
    )?;
    Ok(q!(
        ex,
        exec,
        "UPDATE calls SET ended_at = $1, end_reason = 'server restart', hangup_by = 'system', \
           status = CASE WHEN answered_at IS NULL THEN 'failed' ELSE 'completed' END \
         WHERE ended_at IS NULL",
        at
    )?)
}

/// Sets the agent who has the call (after a transfer); `None` clears it. An agent who is not of
/// `company` changes nothing.
pub async fn set_agent(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    agent: Option<UserId>,
) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE calls SET agent_user_id = $3 WHERE company_id = $1 AND id = $2 \
           AND (CAST($3 AS BIGINT) IS NULL OR EXISTS \
                 (SELECT 1 FROM users WHERE company_id = $1 AND id = $3))",
        company,
        id,
        agent
    )?;
    Ok(())
}

/// One step in the progress of a call.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct CallEvent {
    /// Id (events of a call are in id order).
    pub id: i64,
    /// The call.
    pub call_id: i64,
    /// When.
    pub at: Timestamp,
    /// `ringing`, `answered`, `held`, `resumed`, `transferred`, `dtmf`, `ended`, `no_answer` or
    /// `overflow`.
    pub kind: String,
    /// The agent concerned (the one rung, who answered, who transferred…).
    pub user_id: Option<UserId>,
    /// Free text, e.g. the DTMF digit, the transfer target or the overflow group.
    pub detail: Option<String>,
}

/// Adds an event to call `call_id`. Nothing is written when the call is not of `company`; a
/// `user` not of `company` is recorded as none.
pub async fn add_event(
    ex: &mut Ex<'_>,
    company: CompanyId,
    call_id: i64,
    at: i64,
    kind: &str,
    user: Option<UserId>,
    detail: Option<&str>,
) -> Result<()> {
    debug_assert!(EVENT_KINDS.contains(&kind), "{kind}");
    q!(
        ex,
        exec,
        "INSERT INTO call_events (company_id, call_id, at, kind, user_id, detail) \
         SELECT company_id, id, $3, $4, \
           (SELECT u.id FROM users u WHERE u.company_id = $1 AND u.id = $5), $6 \
         FROM calls WHERE company_id = $1 AND id = $2",
        company,
        call_id,
        at,
        kind,
        user,
        detail
    )?;
    Ok(())
}

/// The call `id` of `company`.
pub async fn get(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<Call>> {
    let sql = concat!(
        "SELECT ",
        call_columns!(),
        " FROM calls WHERE company_id = $1 AND id = $2"
    );
    Ok(q!(ex, opt CallRow, sql, company, id)?.map(Call::from))
}

/// The events of call `id` of `company`, in order.
pub async fn events(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Vec<CallEvent>> {
    Ok(q!(ex, all CallEvent,
        "SELECT id, call_id, at, kind, user_id, detail FROM call_events \
         WHERE company_id = $1 AND call_id = $2 ORDER BY id",
        company, id)?)
}

/// Filters for [`list`].
#[derive(Clone, Debug)]
pub struct CallFilter {
    /// Only calls with this customer.
    pub customer_id: Option<i64>,
    /// Only calls with this status.
    pub status: Option<String>,
    /// Only calls in this direction.
    pub direction: Option<String>,
    /// Only calls this agent has (or had last).
    pub agent: Option<UserId>,
    /// Cursor: only ids below this.
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

impl Default for CallFilter {
    fn default() -> Self {
        Self {
            customer_id: None,
            status: None,
            direction: None,
            agent: None,
            before_id: None,
            limit: 50,
        }
    }
}

/// The calls of `company`, newest first.
pub async fn list(ex: &mut Ex<'_>, company: CompanyId, f: &CallFilter) -> Result<Vec<Call>> {
    let sql = concat!(
        "SELECT ",
        call_columns!(),
        " FROM calls WHERE company_id = $1 \
         AND (CAST($2 AS BIGINT) IS NULL OR customer_id = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR status = $3) \
         AND (CAST($4 AS TEXT) IS NULL OR direction = $4) \
         AND (CAST($5 AS BIGINT) IS NULL OR agent_user_id = $5) \
         AND (CAST($6 AS BIGINT) IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7"
    );
    let rows = q!(ex, all CallRow, sql, company, f.customer_id, f.status.as_deref(),
        f.direction.as_deref(), f.agent, f.before_id, f.limit)?;
    Ok(rows.into_iter().map(Call::from).collect())
}
