//! The customer timeline: messages, calls and notes interleaved by time, cursor-paginated.
//!
//! The order is `(at, kind, id)` descending, a total order, so a cursor made of the last item's
//! three values continues exactly where the page ended even when many items share a millisecond.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, q};
use crate::domain::{Timestamp, UserId};

/// One item of a timeline. Fields that do not apply to the item's kind are null.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct TimelineItem {
    /// `message`, `call` or `note`.
    pub kind: String,
    /// Id of the message, call or note.
    pub id: i64,
    /// When it happened (message sent, call started, note written).
    pub at: Timestamp,
    /// Conversation, if any.
    pub conversation_id: Option<i64>,
    /// `in` or `out` (messages and calls).
    pub direction: Option<String>,
    /// Message text or note text.
    pub body: Option<String>,
    /// Message delivery status or call status.
    pub status: Option<String>,
    /// Sender of an outbound message, agent of a call, author of a note.
    pub user_id: Option<UserId>,
    /// Caller URI (calls).
    pub from_uri: Option<String>,
    /// Callee URI (calls).
    pub to_uri: Option<String>,
    /// Answer time (calls).
    pub answered_at: Option<Timestamp>,
    /// End time (calls).
    pub ended_at: Option<Timestamp>,
    /// Why the call ended.
    pub end_reason: Option<String>,
    /// Talk time in seconds (calls that were answered and ended).
    pub duration_secs: Option<i64>,
    /// The call's recording (`GET /api/v1/recordings/{id}` plays it), when it was recorded.
    pub recording_id: Option<i64>,
    /// Messages: `message`, `comment` or `postback`.
    pub message_kind: Option<String>,
    /// Messages: the channel account it came through.
    pub channel_account_id: Option<i64>,
    /// Messages: attachment references.
    #[sqlx(try_from = "Option<String>")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub attachments: super::messages::OptionalJson,
    /// Messages: why sending failed, with the provider's code.
    pub error: Option<String>,
}

/// A position in a timeline: the `(at, kind, id)` of the last item seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    at: i64,
    kind: String,
    id: i64,
}

impl Cursor {
    /// The cursor after `item`.
    pub fn after(item: &TimelineItem) -> Self {
        Self {
            at: item.at.0,
            kind: item.kind.clone(),
            id: item.id,
        }
    }

    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", self.at, self.kind, self.id))
    }

    /// Parses the opaque text form.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let mut parts = raw.splitn(3, ':');
        let at = parts.next()?.parse().ok()?;
        let kind = parts.next()?.to_owned();
        let id = parts.next()?.parse().ok()?;
        matches!(kind.as_str(), "message" | "call" | "note").then_some(Self { at, kind, id })
    }
}

macro_rules! union {
    () => {
        "\
    SELECT 'message' AS kind, id, created_at AS at, conversation_id, direction, body, status, \
           sender_user_id AS user_id, CAST(NULL AS TEXT) AS from_uri, CAST(NULL AS TEXT) AS to_uri, \
           CAST(NULL AS BIGINT) AS answered_at, CAST(NULL AS BIGINT) AS ended_at, \
           CAST(NULL AS TEXT) AS end_reason, CAST(NULL AS BIGINT) AS duration_secs, \
           CAST(NULL AS BIGINT) AS recording_id, kind AS message_kind, channel_account_id, attachments, error \
      FROM messages WHERE company_id = $1 AND customer_id = $2 \
    UNION ALL \
    SELECT 'call', id, started_at, conversation_id, direction, CAST(NULL AS TEXT), status, agent_user_id, \
           from_uri, to_uri, answered_at, ended_at, end_reason, \
           CASE WHEN answered_at IS NOT NULL AND ended_at IS NOT NULL \
                THEN (ended_at - answered_at) / 1000 END, \
           (SELECT r.id FROM recordings r WHERE r.call_id = calls.id AND r.company_id = $1), \
           CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT) \
      FROM calls WHERE company_id = $1 AND customer_id = $2 \
    UNION ALL \
    SELECT 'note', id, created_at, conversation_id, CAST(NULL AS TEXT), body, CAST(NULL AS TEXT), author_id, \
           CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), \
           CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), \
           CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT) \
      FROM notes WHERE company_id = $1 AND customer_id = $2"
    };
}

/// One page of a customer's timeline, newest first, after `cursor`.
pub async fn page(
    ex: &mut Ex<'_>,
    company: CompanyId,
    customer: i64,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<TimelineItem>> {
    let sql = concat!(
        "SELECT * FROM (",
        union!(),
        ") t \
         WHERE CAST($3 AS BIGINT) IS NULL OR t.at < $3 OR (t.at = $3 AND (t.kind < $4 OR (t.kind = $4 AND t.id < $5))) \
         ORDER BY t.at DESC, t.kind DESC, t.id DESC LIMIT $6"
    );
    Ok(q!(ex, all TimelineItem, sql, company, customer,
        cursor.map(|c| c.at), cursor.map(|c| c.kind.clone()), cursor.map(|c| c.id), limit)?)
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        let c = Cursor {
            at: 1_764_075_600_123,
            kind: "call".into(),
            id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("!!"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("1:bogus:2")), None);
    }
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
}
