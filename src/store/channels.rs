//! Channel accounts. Credentials are encrypted before they reach this module and never leave it
//! except through [`credentials`], which decrypts for the code that calls the provider.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, StoreError, now_ms, q};
use crate::domain::{JsonText, Timestamp};
use crate::secrets::{Keyring, Secret};

/// The associated data that binds a credential ciphertext to its column.
pub const CREDENTIALS_AAD: &str = "channel_accounts.credentials";

/// A channel account as the API shows it: never the credentials, only which fields are set.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct ChannelAccount {
    /// Id.
    pub id: i64,
    /// `messenger`, `instagram`, `whatsapp_cloud`, `waha`, `sip_trunk` or `openai`.
    pub kind: String,
    /// Label.
    pub name: String,
    /// The provider's id for the account: Page id, Instagram account id, phone number id, WAHA
    /// session, trunk host…
    pub external_id: Option<String>,
    /// Non-secret settings as a JSON object.
    #[sqlx(try_from = "String")]
    pub settings: JsonText,
    /// Names of the credential fields that are set (their values are write-only).
    #[serde(serialize_with = "split_keys")]
    #[schema(value_type = Vec<String>)]
    pub credential_keys: String,
    /// `connected`, `needs_reconnection` (the provider refused the credentials, e.g. an expired
    /// token: update them) or `disconnected` (a WAHA session stopped or failed).
    pub status: String,
    /// Why it is not `connected`.
    pub status_reason: Option<String>,
    /// AI reply suggestions for this channel's conversations (off by default, P17).
    pub ai_suggestions: bool,
    /// With suggestions on: each suggestion is sent as the reply without an agent.
    pub ai_auto_reply: bool,
    /// Where the provider must send this account's webhooks (set by the API).
    #[sqlx(skip)]
    pub webhook_url: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

fn split_keys<S: serde::Serializer>(keys: &str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(keys.split_whitespace())
}

macro_rules! columns {
    () => {
        "id, kind, name, external_id, settings, credential_keys, status, status_reason, ai_suggestions, \
         ai_auto_reply, created_at, updated_at"
    };
}

/// Encrypts a credentials object; returns the ciphertext and the space-separated key names.
pub fn seal(
    keyring: &Keyring,
    credentials: &serde_json::Map<String, serde_json::Value>,
) -> Result<(String, String)> {
    let mut names: Vec<&str> = credentials.keys().map(String::as_str).collect();
    names.sort_unstable();
    let plaintext = serde_json::to_vec(credentials)
        .map_err(|e| StoreError::Database(sqlx::Error::Protocol(e.to_string())))?;
    Ok((
        keyring.encrypt(&plaintext, CREDENTIALS_AAD)?,
        names.join(" "),
    ))
}

/// Creates a channel account; `sealed` comes from [`seal`].
pub async fn create(
    ex: &mut Ex<'_>,
    company: CompanyId,
    kind: &str,
    name: &str,
    external_id: Option<&str>,
    settings: &serde_json::Value,
    sealed: Option<(String, String)>,
) -> Result<ChannelAccount> {
    let now = now_ms();
    let (cipher, keys) = sealed.map_or((None, String::new()), |(c, k)| (Some(c), k));
    let id = q!(ex, scalar i64,
        "INSERT INTO channel_accounts (company_id, kind, name, external_id, settings, credentials, credential_keys, \
           created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        company, kind, name, external_id, settings.to_string(), cipher, keys, now)?;
    get(ex, company, id)
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
}

/// The channel account `id` of `company`.
pub async fn get(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<ChannelAccount>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM channel_accounts WHERE company_id = $1 AND id = $2"
    );
    Ok(q!(ex, opt ChannelAccount, sql, company, id)?)
}

/// The channel accounts of `company`, optionally of one kind.
pub async fn list(
    ex: &mut Ex<'_>,
    company: CompanyId,
    kind: Option<&str>,
) -> Result<Vec<ChannelAccount>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM channel_accounts WHERE company_id = $1 AND (CAST($2 AS TEXT) IS NULL OR kind = $2) ORDER BY id"
    );
    Ok(q!(ex, all ChannelAccount, sql, company, kind)?)
}

/// Changes name, external id, settings or credentials (`sealed` replaces them all).
pub async fn update(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    name: Option<&str>,
    external_id: Option<Option<String>>,
    settings: Option<&serde_json::Value>,
    sealed: Option<(String, String)>,
) -> Result<Option<ChannelAccount>> {
    let (set_creds, cipher, keys) = match sealed {
        Some((c, k)) => (true, Some(c), Some(k)),
        None => (false, None, None),
    };
    let n = q!(
        ex,
        exec,
        "UPDATE channel_accounts SET name = COALESCE($3, name), \
           external_id = CASE WHEN $4 THEN $5 ELSE external_id END, \
           settings = COALESCE($6, settings), \
           credentials = CASE WHEN $7 THEN $8 ELSE credentials END, \
           credential_keys = COALESCE($9, credential_keys), updated_at = $10, \
           status = CASE WHEN $7 THEN 'connected' ELSE status END, \
           status_reason = CASE WHEN $7 THEN NULL ELSE status_reason END \
         WHERE company_id = $1 AND id = $2",
        company,
        id,
        name,
        external_id.is_some(),
        external_id.flatten(),
        settings.map(|s| s.to_string()),
        set_creds,
        cipher,
        keys,
        now_ms()
    )?;
    if n == 0 {
        return Ok(None);
    }
    get(ex, company, id).await
}

/// Deletes a channel account.
pub async fn delete(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "DELETE FROM channel_accounts WHERE company_id = $1 AND id = $2",
        company,
        id
    )?;
    Ok(n > 0)
}

/// The decrypted credentials of a channel account, for the code that calls its provider.
pub async fn credentials(
    ex: &mut Ex<'_>,
    keyring: &Keyring,
    company: CompanyId,
    id: i64,
) -> Result<Option<Secret<serde_json::Map<String, serde_json::Value>>>> {
    let stored = q!(ex, scalar_opt Option<String>,
        "SELECT credentials FROM channel_accounts WHERE company_id = $1 AND id = $2", company, id)?;
    let Some(Some(cipher)) = stored else {
        return Ok(None);
    };
    open(keyring, &cipher).map(Some)
}

/// Decrypts a stored credentials ciphertext.
pub(crate) fn open(
    keyring: &Keyring,
    cipher: &str,
) -> Result<Secret<serde_json::Map<String, serde_json::Value>>> {
    let plain = keyring.decrypt(cipher, CREDENTIALS_AAD)?;
    let map = serde_json::from_slice(plain.expose())
        .map_err(|e| StoreError::Database(sqlx::Error::Protocol(e.to_string())))?;
    Ok(Secret::new(map))
}

/// Re-encrypts every stored credential under the keyring's current key; returns how many.
/// Run it in a transaction, so a failure leaves every value as it was.
pub async fn reencrypt_all(ex: &mut Ex<'_>, keyring: &Keyring) -> Result<u64> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        credentials: String,
    }
    let rows = q!(ex, all Row,
        "SELECT id, credentials FROM channel_accounts WHERE credentials IS NOT NULL ORDER BY id")?;
    let mut n = 0;
    for row in rows {
        let plain = keyring.decrypt(&row.credentials, CREDENTIALS_AAD)?;
        let again = keyring.encrypt(plain.expose(), CREDENTIALS_AAD)?;
        n += q!(
            ex,
            exec,
            "UPDATE channel_accounts SET credentials = $2 WHERE id = $1",
            row.id,
            again
        )?;
    }
    Ok(n)
}

/// Marks a channel account `connected`, `needs_reconnection` or `disconnected`; returns whether
/// the status changed.
pub async fn set_status(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    status: &str,
    reason: Option<&str>,
) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "UPDATE channel_accounts SET status = $3, status_reason = $4, updated_at = $5 \
         WHERE company_id = $1 AND id = $2 AND (status <> $3 OR COALESCE(status_reason, '') <> COALESCE($4, ''))",
        company,
        id,
        status,
        reason,
        now_ms()
    )?;
    Ok(n > 0)
}

/// A messaging channel account of any active company, with its sealed credentials: what the
/// webhook router needs to find the account an event belongs to and to check its signature.
/// Operator-level (crosses companies): only the webhook router calls it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Routable {
    /// Id.
    pub id: i64,
    /// Company.
    pub company_id: CompanyId,
    /// Kind.
    pub kind: String,
    /// Provider's id.
    pub external_id: Option<String>,
    /// Settings (JSON text).
    pub settings: String,
    /// Sealed credentials.
    pub credentials: Option<String>,
}

/// Every messaging channel account (Meta and WAHA kinds) of every active company.
pub async fn routable(ex: &mut Ex<'_>) -> Result<Vec<Routable>> {
    Ok(q!(ex, all Routable,
        "SELECT a.id, a.company_id, a.kind, a.external_id, a.settings, a.credentials \
         FROM channel_accounts a JOIN companies c ON c.id = a.company_id \
         WHERE c.status = 'active' AND a.kind IN ('messenger', 'instagram', 'whatsapp_cloud', 'waha') \
         ORDER BY a.id")?)
}
