//! The audit log (P13, P19): who changed roles, users, invitations, channel accounts, tokens,
//! customers and the company, from which IP and user agent, and what changed (secrets redacted).
//! Rows are never pruned while the company exists.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, UserId, now_ms, q};
use crate::domain::{JsonText, Timestamp};

/// One audit entry.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct AuditEntry {
    /// Id.
    pub id: i64,
    /// The user who acted (none for the operator's command line).
    pub actor_id: Option<UserId>,
    /// Who acted, readable: an email, or `cli` for `masterz admin`.
    pub actor_label: String,
    /// `create`, `update`, `delete`, …
    pub action: String,
    /// `role`, `user`, `invitation`, `channel_account`, `api_token`, `customer`, `company`.
    pub entity_type: String,
    /// The entity's id.
    pub entity_id: Option<i64>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The change, as a JSON object (secrets appear as `[redacted]`).
    #[sqlx(try_from = "String")]
    pub changes: JsonText,
    /// When.
    pub created_at: Timestamp,
}

macro_rules! columns {
    () => {
        "id, actor_id, actor_label, action, entity_type, entity_id, ip, user_agent, changes, created_at"
    };
}

/// Who did something, and from where.
#[derive(Clone, Debug)]
pub struct Actor {
    /// The user, if a user acted.
    pub user_id: Option<UserId>,
    /// Readable label.
    pub label: String,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
}

impl Actor {
    /// The operator at the command line.
    pub fn cli() -> Self {
        Self {
            user_id: None,
            label: "cli".into(),
            ip: None,
            user_agent: None,
        }
    }
}

/// Writes one audit entry; `changes` must already be redacted.
pub async fn record(
    ex: &mut Ex<'_>,
    company: CompanyId,
    actor: &Actor,
    action: &str,
    entity_type: &str,
    entity_id: Option<i64>,
    changes: &serde_json::Value,
) -> Result<()> {
    q!(
        ex,
        exec,
        "INSERT INTO audit_logs (company_id, actor_id, actor_label, action, entity_type, entity_id, ip, \
           user_agent, changes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        company,
        actor.user_id,
        &actor.label,
        action,
        entity_type,
        entity_id,
        actor.ip.as_deref(),
        actor.user_agent.as_deref(),
        changes.to_string(),
        now_ms()
    )?;
    Ok(())
}

/// Filters for listing the audit log.
#[derive(Debug, Default)]
pub struct Filter {
    /// Only this action.
    pub action: Option<String>,
    /// Only this entity type.
    pub entity_type: Option<String>,
    /// Only this entity.
    pub entity_id: Option<i64>,
    /// Only this actor.
    pub actor_id: Option<UserId>,
    /// Only at or after (Unix ms).
    pub since: Option<i64>,
    /// Only before (Unix ms).
    pub until: Option<i64>,
    /// Cursor: only ids below this.
    pub before_id: Option<i64>,
}

/// Lists audit entries, newest first.
pub async fn list(
    ex: &mut Ex<'_>,
    company: CompanyId,
    f: &Filter,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM audit_logs WHERE company_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR action = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR entity_type = $3) \
         AND (CAST($4 AS BIGINT) IS NULL OR entity_id = $4) \
         AND (CAST($5 AS BIGINT) IS NULL OR actor_id = $5) \
         AND (CAST($6 AS BIGINT) IS NULL OR created_at >= $6) \
         AND (CAST($7 AS BIGINT) IS NULL OR created_at < $7) \
         AND (CAST($8 AS BIGINT) IS NULL OR id < $8) \
         ORDER BY id DESC LIMIT $9"
    );
    Ok(
        q!(ex, all AuditEntry, sql, company, f.action.as_deref(), f.entity_type.as_deref(),
        f.entity_id, f.actor_id, f.since, f.until, f.before_id, limit)?,
    )
}

/// The audit entry `id` of `company`.
pub async fn get(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<AuditEntry>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM audit_logs WHERE company_id = $1 AND id = $2"
    );
    Ok(q!(ex, opt AuditEntry, sql, company, id)?)
}

/// Counts every audit entry (tests and statistics).
pub async fn count(ex: &mut Ex<'_>, company: CompanyId) -> Result<i64> {
    Ok(q!(ex, scalar i64, "SELECT COUNT(*) FROM audit_logs WHERE company_id = $1", company)?)
}

/// Replaces the values of secret-looking keys by `[redacted]`, recursively.
pub fn redact(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    const SECRET_WORDS: &[&str] = &[
        "password",
        "secret",
        "token",
        "key",
        "credential",
        "authorization",
        "signature",
    ];
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let secret = SECRET_WORDS.iter().any(|w| lower.contains(w));
                    let v = if secret && !v.is_null() && lower != "credential_keys" {
                        Value::String(crate::secrets::REDACTED.into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;
    use serde_json::json;

    #[test]
    fn redacts_nested_secrets() {
        let v = json!({"name": "Page", "credentials": {"page_access_token": "EAAB"},
                       "list": [{"api_key": "k"}], "credential_keys": ["page_access_token"]});
        let r = redact(&v);
        assert_eq!(r["credentials"], "[redacted]");
        assert_eq!(r["list"][0]["api_key"], "[redacted]");
        assert_eq!(r["name"], "Page");
        assert_eq!(r["credential_keys"][0], "page_access_token");
    }
}
