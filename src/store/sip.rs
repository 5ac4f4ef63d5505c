//! SIP accounts of users (what the registrar challenges for) and their registrations.
//!
//! A SIP account is a username, unique across the server, and a password encrypted with the
//! application key. A registration (binding, RFC 3261 §10.3) is one Contact of one user, written
//! by the registrar on every REGISTER and kept here so that a restart keeps them. Expired bindings
//! are invisible to every reader; [`delete_expired`] removes them for good.

use std::fmt;

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, StoreError, UserId, now_ms, q};
use crate::domain::Timestamp;
use crate::domain::sip::SipTransport;
use crate::pii::Pii;
use crate::secrets::{Keyring, Secret, SecretError};

/// The associated data that binds a SIP password ciphertext to its column.
pub const PASSWORD_AAD: &str = "sip_accounts.password";

/// A user's SIP account as the API shows it: never the password.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct SipAccount {
    /// The user.
    pub user_id: UserId,
    /// Company.
    pub company_id: CompanyId,
    /// Username for the registrar (unique across masterz).
    pub username: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Sets (inserts or replaces) the SIP username and password of `user` in `company`. `None` if
/// there is no such user. A username held by another user is [`StoreError::Conflict`]. When the
/// username changes, the user's bindings go: they were registered under the old address.
pub async fn set_credentials(
    ex: &mut Ex<'_>,
    keyring: &Keyring,
    company: CompanyId,
    user: UserId,
    username: &str,
    password: &str,
) -> Result<Option<SipAccount>> {
    let cipher = keyring.encrypt(password.as_bytes(), PASSWORD_AAD)?;
    let previous = get_account(ex, company, user).await?;
    // The WHERE clause scopes the user to the company (and lets SQLite parse the upsert).
    let n = q!(
        ex,
        exec,
        "INSERT INTO sip_accounts (company_id, user_id, username, password, created_at, updated_at) \
         SELECT company_id, id, $3, $4, $5, $5 FROM users WHERE company_id = $1 AND id = $2 \
         ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, \
           password = excluded.password, updated_at = excluded.updated_at",
        company,
        user,
        username,
        cipher,
        now_ms()
    )
    .map_err(|e| match StoreError::from(e) {
        // The only other unique key is the username.
        StoreError::Conflict(_) => StoreError::Conflict(format!("SIP username {username:?} is taken")),
        other => other,
    })?;
    if n == 0 {
        return Ok(None);
    }
    if previous.is_some_and(|p| p.username != username) {
        remove_all_bindings(ex, company, user).await?;
    }
    get_account(ex, company, user).await
}

/// Removes the SIP account of `user` and its bindings; `false` if it had none.
pub async fn clear_credentials(ex: &mut Ex<'_>, company: CompanyId, user: UserId) -> Result<bool> {
    remove_all_bindings(ex, company, user).await?;
    let n = q!(
        ex,
        exec,
        "DELETE FROM sip_accounts WHERE company_id = $1 AND user_id = $2",
        company,
        user
    )?;
    Ok(n > 0)
}

/// The SIP account of `user`, if any.
pub async fn get_account(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
) -> Result<Option<SipAccount>> {
    Ok(q!(ex, opt SipAccount,
        "SELECT user_id, company_id, username, created_at, updated_at FROM sip_accounts \
         WHERE company_id = $1 AND user_id = $2", company, user)?)
}

/// What the registrar needs to authenticate a REGISTER: who the username belongs to, and the
/// password to check the digest against.
#[derive(Debug)]
pub struct SipLogin {
    /// Company.
    pub company_id: CompanyId,
    /// The company's slug.
    pub company_slug: String,
    /// The user.
    pub user_id: UserId,
    /// The user's display name.
    pub user_name: String,
    /// The SIP username (as stored; lookups are exact).
    pub username: String,
    /// The decrypted password.
    pub password: Secret<String>,
}

/// The account with SIP username `username`, password decrypted, in an active company.
///
/// Deliberately not company-scoped: a REGISTER names only a username (its realm is the server's,
/// `sip_realm`), so the username is the key that finds the company, as the email does for a web
/// login; this is why usernames are unique across the server. A closed company's users are not
/// found, so their softphones get the same answer as an unknown user.
pub async fn account_by_username(
    ex: &mut Ex<'_>,
    keyring: &Keyring,
    username: &str,
) -> Result<Option<SipLogin>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        company_id: CompanyId,
        company_slug: String,
        user_id: UserId,
        user_name: String,
        username: String,
        password: String,
    }
    let row = q!(ex, opt Row,
        "SELECT s.company_id, c.slug AS company_slug, s.user_id, u.name AS user_name, s.username, \
           s.password FROM sip_accounts s JOIN users u ON u.id = s.user_id \
           JOIN companies c ON c.id = s.company_id WHERE s.username = $1 AND c.status = 'active'",
        username)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let plain = keyring.decrypt(&row.password, PASSWORD_AAD)?;
    let password = String::from_utf8(plain.expose().clone()).map_err(|_| SecretError::Malformed)?;
    Ok(Some(SipLogin {
        company_id: row.company_id,
        company_slug: row.company_slug,
        user_id: row.user_id,
        user_name: row.user_name,
        username: row.username,
        password: Secret::new(password),
    }))
}

/// Re-encrypts every SIP password under the keyring's current key; returns how many. Run it in
/// the transaction that re-encrypts the channel credentials.
pub async fn reencrypt_all(ex: &mut Ex<'_>, keyring: &Keyring) -> Result<u64> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        password: String,
    }
    let rows = q!(ex, all Row, "SELECT id, password FROM sip_accounts ORDER BY id")?;
    let mut n = 0;
    for row in rows {
        let plain = keyring.decrypt(&row.password, PASSWORD_AAD)?;
        let again = keyring.encrypt(plain.expose(), PASSWORD_AAD)?;
        n += q!(
            ex,
            exec,
            "UPDATE sip_accounts SET password = $2 WHERE id = $1",
            row.id,
            again
        )?;
    }
    Ok(n)
}

/// A binding in full, as the registrar and call routing use it.
#[derive(Clone, sqlx::FromRow)]
pub struct Binding {
    /// Id.
    pub id: i64,
    /// Company.
    pub company_id: CompanyId,
    /// The user.
    pub user_id: UserId,
    /// Address of record (the To URI of the REGISTER).
    pub aor: String,
    /// The Contact URI to send requests to.
    pub contact: String,
    /// `ip:port` the REGISTER came from (where to send when the Contact is not reachable).
    pub source: String,
    /// Transport it came over.
    #[sqlx(try_from = "String")]
    pub transport: SipTransport,
    /// `User-Agent` of the softphone.
    pub user_agent: Option<String>,
    /// Call-ID of the last REGISTER.
    pub call_id: String,
    /// CSeq number of the last REGISTER.
    pub cseq: i64,
    /// When the binding expires.
    pub expires_at: Timestamp,
    /// `+sip.instance` (RFC 5626).
    pub instance_id: Option<String>,
    /// `reg-id` (RFC 5626).
    pub reg_id: Option<i64>,
    /// `q` preference, 0–1.
    pub q: Option<f64>,
    /// Created.
    pub created_at: Timestamp,
    /// Last refreshed.
    pub updated_at: Timestamp,
}

// Contact, source, AoR and user agent are personal data: they print as fingerprints.
impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("id", &self.id)
            .field("company_id", &self.company_id)
            .field("user_id", &self.user_id)
            .field("aor", &Pii(&self.aor))
            .field("contact", &Pii(&self.contact))
            .field("source", &Pii(&self.source))
            .field("transport", &self.transport)
            .field("cseq", &self.cseq)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

macro_rules! binding_columns {
    () => {
        "id, company_id, user_id, aor, contact, source, transport, user_agent, call_id, cseq, \
         expires_at, instance_id, reg_id, q, created_at, updated_at"
    };
}

/// What a REGISTER asks to store for one Contact.
#[derive(Clone, Copy)]
pub struct NewBinding<'a> {
    /// Company of the user.
    pub company: CompanyId,
    /// The user the username belongs to.
    pub user: UserId,
    /// Address of record.
    pub aor: &'a str,
    /// Contact URI.
    pub contact: &'a str,
    /// `ip:port` the request came from.
    pub source: &'a str,
    /// Transport.
    pub transport: SipTransport,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq: i64,
    /// Expiry, Unix milliseconds.
    pub expires_at: i64,
    /// `+sip.instance`.
    pub instance_id: Option<&'a str>,
    /// `reg-id`.
    pub reg_id: Option<i64>,
    /// `q`.
    pub q: Option<f64>,
}

/// What [`upsert_binding`] did.
#[derive(Debug)]
pub enum Upserted {
    /// The binding is stored (new or refreshed).
    Stored(Box<Binding>),
    /// Nothing changed: the binding has the same Call-ID and a CSeq at least as high, so this
    /// REGISTER is a retransmission or arrived out of order (RFC 3261 §10.3 step 7: "the update
    /// MUST be aborted and the request fails").
    OutOfOrder,
}

/// Stores or refreshes the binding of `(user, contact)`. The Call-ID/CSeq ordering check of RFC
/// 3261 §10.3 runs in the same statement, so two concurrent REGISTERs cannot both win. A user
/// not in `company` (deleted meanwhile) is [`StoreError::Reference`].
pub async fn upsert_binding(ex: &mut Ex<'_>, b: &NewBinding<'_>) -> Result<Upserted> {
    let id = q!(ex, scalar_opt i64,
        "INSERT INTO sip_registrations (company_id, user_id, aor, contact, source, transport, \
           user_agent, call_id, cseq, expires_at, instance_id, reg_id, q, created_at, updated_at) \
         SELECT company_id, id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14 \
           FROM users WHERE company_id = $1 AND id = $2 \
         ON CONFLICT (user_id, contact) DO UPDATE SET aor = excluded.aor, source = excluded.source, \
           transport = excluded.transport, user_agent = excluded.user_agent, \
           call_id = excluded.call_id, cseq = excluded.cseq, expires_at = excluded.expires_at, \
           instance_id = excluded.instance_id, reg_id = excluded.reg_id, q = excluded.q, \
           updated_at = excluded.updated_at \
         WHERE sip_registrations.call_id <> excluded.call_id OR sip_registrations.cseq < excluded.cseq \
         RETURNING id",
        b.company, b.user, b.aor, b.contact, b.source, b.transport.as_str(), b.user_agent,
        b.call_id, b.cseq, b.expires_at, b.instance_id, b.reg_id, b.q, now_ms())?;
    let Some(id) = id else {
        let user_exists = q!(ex, scalar_opt i64,
            "SELECT id FROM users WHERE company_id = $1 AND id = $2", b.company, b.user)?;
        return match user_exists {
            Some(_) => Ok(Upserted::OutOfOrder),
            None => Err(StoreError::Reference(format!(
                "no user {} in company {}",
                b.user, b.company
            ))),
        };
    };
    let sql = concat!(
        "SELECT ",
        binding_columns!(),
        " FROM sip_registrations WHERE id = $1"
    );
    Ok(Upserted::Stored(Box::new(q!(ex, one Binding, sql, id)?)))
}

/// Removes the binding of `(user, contact)` (a REGISTER with `Expires: 0`); `false` if none.
pub async fn remove_binding(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
    contact: &str,
) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "DELETE FROM sip_registrations WHERE company_id = $1 AND user_id = $2 AND contact = $3",
        company,
        user,
        contact
    )?;
    Ok(n > 0)
}

/// Removes every binding of `user` (`Contact: *` with `Expires: 0`); returns how many.
pub async fn remove_all_bindings(ex: &mut Ex<'_>, company: CompanyId, user: UserId) -> Result<u64> {
    Ok(q!(
        ex,
        exec,
        "DELETE FROM sip_registrations WHERE company_id = $1 AND user_id = $2",
        company,
        user
    )?)
}

/// The unexpired bindings of `user`, most preferred first (highest `q`, an absent `q` counting
/// as 1.0; then the most recently refreshed): where to ring the user.
pub async fn bindings_for_user(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
    now: i64,
) -> Result<Vec<Binding>> {
    let sql = concat!(
        "SELECT ",
        binding_columns!(),
        " FROM sip_registrations WHERE company_id = $1 AND user_id = $2 AND expires_at > $3 \
         ORDER BY COALESCE(q, 1.0) DESC, updated_at DESC, id DESC"
    );
    Ok(q!(ex, all Binding, sql, company, user, now)?)
}

/// Every unexpired binding of every company, for the registrar to load at start-up.
pub async fn all_unexpired(ex: &mut Ex<'_>, now: i64) -> Result<Vec<Binding>> {
    let sql = concat!(
        "SELECT ",
        binding_columns!(),
        " FROM sip_registrations WHERE expires_at > $1 ORDER BY id"
    );
    Ok(q!(ex, all Binding, sql, now)?)
}

/// Deletes the bindings that expired at or before `now`; returns how many.
pub async fn delete_expired(ex: &mut Ex<'_>, now: i64) -> Result<u64> {
    Ok(q!(
        ex,
        exec,
        "DELETE FROM sip_registrations WHERE expires_at <= $1",
        now
    )?)
}

/// A registration as the API lists it: who, from where, with what, until when.
#[derive(Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Registration {
    /// The user.
    pub user_id: UserId,
    /// The user's display name.
    pub user_name: String,
    /// The SIP username the softphone registered with (`null` if the account was removed in
    /// the meantime).
    pub sip_username: Option<String>,
    /// Address of record.
    pub aor: String,
    /// Contact URI.
    pub contact: String,
    /// `ip:port` the REGISTER came from.
    pub source: String,
    /// Transport.
    #[sqlx(try_from = "String")]
    pub transport: SipTransport,
    /// The softphone's `User-Agent`.
    pub user_agent: Option<String>,
    /// When the binding expires unless refreshed.
    pub expires_at: Timestamp,
    /// Last REGISTER.
    pub updated_at: Timestamp,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("user_id", &self.user_id)
            .field("contact", &Pii(&self.contact))
            .field("source", &Pii(&self.source))
            .field("transport", &self.transport)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The unexpired bindings of `company`, by user and then in order of registration.
pub async fn list_bindings(
    ex: &mut Ex<'_>,
    company: CompanyId,
    now: i64,
) -> Result<Vec<Registration>> {
    Ok(q!(ex, all Registration,
        "SELECT r.user_id, u.name AS user_name, s.username AS sip_username, r.aor, r.contact, \
           r.source, r.transport, r.user_agent, r.expires_at, r.updated_at \
         FROM sip_registrations r JOIN users u ON u.id = r.user_id \
           LEFT JOIN sip_accounts s ON s.user_id = r.user_id \
         WHERE r.company_id = $1 AND r.expires_at > $2 ORDER BY r.user_id, r.id",
        company, now)?)
}
