//! Call routing: groups of agents rung together, which DID rings which group, and where the
//! agents can be reached (their SIP registrations).
//!
//! A DID must be one of the numbers on the company's trunks (`dids` of [`TrunkSettings`]), so a
//! group cannot claim a number the company does not have. A DID with no route rings every
//! available agent of the company; that decision is call control's, not the store's.
//!
//! [`TrunkSettings`]: crate::domain::trunk::TrunkSettings

use std::collections::HashSet;

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, StoreError, UserId, now_ms, q};
use crate::domain::sip::SipTransport;
use crate::domain::trunk::FieldError;

/// Bounds of [`Group::ring_timeout_secs`].
pub const RING_TIMEOUT_SECS: std::ops::RangeInclusive<i64> = 5..=600;
/// Bounds of [`Group::no_answer_status`] (a final SIP failure status).
pub const NO_ANSWER_STATUS: std::ops::RangeInclusive<i64> = 400..=699;
/// Defaults of a new group, as in the schema.
pub const DEFAULT_RING_TIMEOUT_SECS: i64 = 30;
/// See [`DEFAULT_RING_TIMEOUT_SECS`].
pub const DEFAULT_NO_ANSWER_STATUS: i64 = 480;

/// A group of agents rung together (ring-all), with the DIDs that ring it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Group {
    /// Id.
    pub id: i64,
    /// Company.
    pub company_id: CompanyId,
    /// Name, unique in the company.
    pub name: String,
    /// How long the agents ring before the call overflows or is refused, seconds (5–600).
    pub ring_timeout_secs: i64,
    /// SIP status the caller gets when nobody answered and there is no overflow (400–699).
    pub no_answer_status: i64,
    /// The group rung next when nobody answered.
    pub overflow_group_id: Option<i64>,
    /// The agents, by user id (ascending).
    pub members: Vec<UserId>,
    /// The numbers (E.164) that ring this group (ascending).
    pub dids: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: i64,
    company_id: CompanyId,
    name: String,
    ring_timeout_secs: i64,
    no_answer_status: i64,
    overflow_group_id: Option<i64>,
}

/// Why a group change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// A field is not acceptable (`members[1]`, `dids[0]`, `overflow_group_id`, …).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The database refused (a name or a DID taken is [`StoreError::Conflict`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RoutingError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> RoutingError {
    RoutingError::Invalid(FieldError {
        field: field.into(),
        message: message.into(),
    })
}

async fn complete(ex: &mut Ex<'_>, row: GroupRow) -> Result<Group> {
    let members = q!(
        ex,
        all(UserId,),
        "SELECT user_id FROM call_group_members WHERE company_id = $1 AND group_id = $2 \
         ORDER BY user_id",
        row.company_id,
        row.id
    )?;
    let dids = q!(
        ex,
        all(String,),
        "SELECT did FROM did_routes WHERE company_id = $1 AND group_id = $2 ORDER BY did",
        row.company_id,
        row.id
    )?;
    Ok(Group {
        id: row.id,
        company_id: row.company_id,
        name: row.name,
        ring_timeout_secs: row.ring_timeout_secs,
        no_answer_status: row.no_answer_status,
        overflow_group_id: row.overflow_group_id,
        members: members.into_iter().map(|(m,)| m).collect(),
        dids: dids.into_iter().map(|(d,)| d).collect(),
    })
}

macro_rules! group_columns {
    () => {
        "g.id, g.company_id, g.name, g.ring_timeout_secs, g.no_answer_status, g.overflow_group_id"
    };
}

/// The group that DID `did_e164` of `company` rings, if it has a route.
pub async fn group_for_did(
    ex: &mut Ex<'_>,
    company: CompanyId,
    did_e164: &str,
) -> Result<Option<Group>> {
    let sql = concat!(
        "SELECT ",
        group_columns!(),
        " FROM did_routes r JOIN call_groups g ON g.id = r.group_id \
         WHERE r.company_id = $1 AND g.company_id = $1 AND r.did = $2"
    );
    match q!(ex, opt GroupRow, sql, company, did_e164)? {
        Some(row) => complete(ex, row).await.map(Some),
        None => Ok(None),
    }
}

/// The group `id` of `company`.
pub async fn group(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<Group>> {
    let sql = concat!(
        "SELECT ",
        group_columns!(),
        " FROM call_groups g WHERE g.company_id = $1 AND g.id = $2"
    );
    match q!(ex, opt GroupRow, sql, company, id)? {
        Some(row) => complete(ex, row).await.map(Some),
        None => Ok(None),
    }
}

/// The group named `name` in `company` (names are unique per company).
pub async fn group_by_name(
    ex: &mut Ex<'_>,
    company: CompanyId,
    name: &str,
) -> Result<Option<Group>> {
    let sql = concat!(
        "SELECT ",
        group_columns!(),
        " FROM call_groups g WHERE g.company_id = $1 AND g.name = $2"
    );
    match q!(ex, opt GroupRow, sql, company, name)? {
        Some(row) => complete(ex, row).await.map(Some),
        None => Ok(None),
    }
}

/// The groups of `company`, by name.
pub async fn list_groups(ex: &mut Ex<'_>, company: CompanyId) -> Result<Vec<Group>> {
    let sql = concat!(
        "SELECT ",
        group_columns!(),
        " FROM call_groups g WHERE g.company_id = $1 ORDER BY g.name, g.id"
    );
    let rows = q!(ex, all GroupRow, sql, company)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(complete(ex, row).await?);
    }
    Ok(out)
}

/// The settings of a group (members and DIDs are set apart, with [`set_members`] and
/// [`set_dids`]).
#[derive(Clone, Debug)]
pub struct GroupSettings<'a> {
    /// Name, unique in the company.
    pub name: &'a str,
    /// Seconds, within [`RING_TIMEOUT_SECS`].
    pub ring_timeout_secs: i64,
    /// SIP status, within [`NO_ANSWER_STATUS`].
    pub no_answer_status: i64,
    /// The group rung next; of the same company, not this group, and not leading back to it.
    pub overflow_group_id: Option<i64>,
}

fn check_settings(s: &GroupSettings<'_>) -> Result<(), RoutingError> {
    if s.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if !RING_TIMEOUT_SECS.contains(&s.ring_timeout_secs) {
        return Err(invalid("ring_timeout_secs", "must be 5–600"));
    }
    if !NO_ANSWER_STATUS.contains(&s.no_answer_status) {
        return Err(invalid("no_answer_status", "must be 400–699"));
    }
    Ok(())
}

/// Checks that `overflow` is a group of `company` whose overflow chain does not come back to
/// `this` (ring-all would then loop forever).
async fn check_overflow(
    ex: &mut Ex<'_>,
    company: CompanyId,
    this: Option<i64>,
    overflow: i64,
) -> Result<(), RoutingError> {
    const FIELD: &str = "overflow_group_id";
    if this == Some(overflow) {
        return Err(invalid(FIELD, "must not be the group itself"));
    }
    let mut seen = HashSet::new();
    let mut next = Some(overflow);
    while let Some(id) = next {
        if !seen.insert(id) {
            // A loop further down that does not pass through `this`: not made by this change.
            break;
        }
        let row = q!(
            ex,
            scalar_opt Option<i64>,
            "SELECT overflow_group_id FROM call_groups WHERE company_id = $1 AND id = $2",
            company,
            id
        )?;
        match row {
            None if id == overflow => return Err(invalid(FIELD, "no such group")),
            None => break,
            Some(after) => next = after,
        }
        if next.is_some() && next == this {
            return Err(invalid(FIELD, "would make the overflow chain a loop"));
        }
    }
    Ok(())
}

/// Creates a group without members or DIDs. A name taken in the company is
/// [`StoreError::Conflict`].
pub async fn create_group(
    ex: &mut Ex<'_>,
    company: CompanyId,
    s: &GroupSettings<'_>,
) -> Result<Group, RoutingError> {
    check_settings(s)?;
    if let Some(overflow) = s.overflow_group_id {
        check_overflow(ex, company, None, overflow).await?;
    }
    let id = q!(ex, scalar i64,
        "INSERT INTO call_groups (company_id, name, ring_timeout_secs, no_answer_status, \
           overflow_group_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
         RETURNING id",
        company, s.name.trim(), s.ring_timeout_secs, s.no_answer_status, s.overflow_group_id,
        now_ms())?;
    group(ex, company, id)
        .await?
        .ok_or(RoutingError::Store(StoreError::Database(
            sqlx::Error::RowNotFound,
        )))
}

/// Replaces the settings of group `id`; `None` if there is no such group in `company`.
pub async fn update_group(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    s: &GroupSettings<'_>,
) -> Result<Option<Group>, RoutingError> {
    check_settings(s)?;
    if group(ex, company, id).await?.is_none() {
        return Ok(None);
    }
    if let Some(overflow) = s.overflow_group_id {
        check_overflow(ex, company, Some(id), overflow).await?;
    }
    q!(
        ex,
        exec,
        "UPDATE call_groups SET name = $3, ring_timeout_secs = $4, no_answer_status = $5, \
           overflow_group_id = $6, updated_at = $7 WHERE company_id = $1 AND id = $2",
        company,
        id,
        s.name.trim(),
        s.ring_timeout_secs,
        s.no_answer_status,
        s.overflow_group_id,
        now_ms()
    )?;
    Ok(group(ex, company, id).await?)
}

/// Deletes group `id` with its members and routes (its DIDs then ring every agent; groups that
/// overflowed into it no longer overflow); `false` if there is no such group.
pub async fn delete_group(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<bool> {
    // Members and routes go by cascade; overflows into it and calls rung on it are set null.
    let n = q!(
        ex,
        exec,
        "DELETE FROM call_groups WHERE company_id = $1 AND id = $2",
        company,
        id
    )?;
    Ok(n > 0)
}

/// Replaces the members of group `id` of `company`. Every user must be of `company`
/// ([`RoutingError::Invalid`] naming `members[i]` otherwise); duplicates count once. `None` if
/// there is no such group. Run it in a transaction.
pub async fn set_members(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    members: &[UserId],
) -> Result<Option<Group>, RoutingError> {
    if group(ex, company, id).await?.is_none() {
        return Ok(None);
    }
    for (i, user) in members.iter().enumerate() {
        let found = q!(ex, scalar_opt i64,
            "SELECT id FROM users WHERE company_id = $1 AND id = $2", company, *user)?;
        if found.is_none() {
            return Err(invalid(format!("members[{i}]"), "no such user"));
        }
    }
    q!(
        ex,
        exec,
        "DELETE FROM call_group_members WHERE company_id = $1 AND group_id = $2",
        company,
        id
    )?;
    let unique: HashSet<UserId> = members.iter().copied().collect();
    for user in unique {
        q!(
            ex,
            exec,
            "INSERT INTO call_group_members (group_id, user_id, company_id) VALUES ($1, $2, $3)",
            id,
            user,
            company
        )?;
    }
    touch(ex, company, id).await?;
    Ok(group(ex, company, id).await?)
}

/// Replaces the DIDs that ring group `id` of `company`. Each must be in E.164 and on one of the
/// company's trunks ([`RoutingError::Invalid`] naming `dids[i]`); one routed to another group
/// is [`StoreError::Conflict`]. `None` if there is no such group. Run it in a transaction.
pub async fn set_dids(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    dids: &[String],
) -> Result<Option<Group>, RoutingError> {
    if group(ex, company, id).await?.is_none() {
        return Ok(None);
    }
    let trunks = super::trunks::list_trunks(ex, company).await?;
    let owned: HashSet<&str> = trunks
        .iter()
        .flat_map(|t| t.dids.iter().map(String::as_str))
        .collect();
    for (i, did) in dids.iter().enumerate() {
        if !owned.contains(did.as_str()) {
            return Err(invalid(
                format!("dids[{i}]"),
                "is not a DID of any of the company's trunks",
            ));
        }
    }
    q!(
        ex,
        exec,
        "DELETE FROM did_routes WHERE company_id = $1 AND group_id = $2",
        company,
        id
    )?;
    let now = now_ms();
    let unique: HashSet<&str> = dids.iter().map(String::as_str).collect();
    for did in unique {
        q!(
            ex,
            exec,
            "INSERT INTO did_routes (company_id, did, group_id, created_at) VALUES ($1, $2, $3, $4)",
            company,
            did,
            id,
            now
        )
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("DID {did} rings another group"))
            }
            other => other,
        })?;
    }
    touch(ex, company, id).await?;
    Ok(group(ex, company, id).await?)
}

async fn touch(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE call_groups SET updated_at = $3 WHERE company_id = $1 AND id = $2",
        company,
        id,
        now_ms()
    )?;
    Ok(())
}

/// Where an agent's softphone can be rung: one unexpired registration.
#[derive(Clone, sqlx::FromRow)]
pub struct AgentContact {
    /// The agent.
    pub user_id: UserId,
    /// SIP username, which is the agent's extension.
    pub username: String,
    /// The agent's name.
    pub display_name: Option<String>,
    /// The Contact URI it registered.
    pub contact: String,
    /// `ip:port` the REGISTER came from.
    pub source: String,
    /// Transport it registered over.
    #[sqlx(try_from = "String")]
    pub transport: SipTransport,
    /// When the registration expires, Unix milliseconds.
    pub expires_at: i64,
    /// The presence the agent chose: `available` or `away`.
    pub presence: String,
}

// Contacts and sources are personal data.
impl std::fmt::Debug for AgentContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentContact")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("contact", &crate::pii::Pii(&self.contact))
            .field("source", &crate::pii::Pii(&self.source))
            .field("transport", &self.transport)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Unexpired bindings of the company's users that have SIP accounts, in an active company:
/// `members` `None` is every such user, `Some` only those. Users have no deactivated state of
/// their own; a deleted user's bindings go with the user. By user, then most preferred first
/// (as [`super::sip::bindings_for_user`]).
pub async fn agent_contacts(
    ex: &mut Ex<'_>,
    company: CompanyId,
    members: Option<&[UserId]>,
    now_ms: i64,
) -> Result<Vec<AgentContact>> {
    if members.is_some_and(|m| m.is_empty()) {
        return Ok(Vec::new());
    }
    let all = q!(ex, all AgentContact,
        "SELECT r.user_id, s.username, NULLIF(u.name, '') AS display_name, r.contact, r.source, \
           r.transport, r.expires_at, COALESCE(p.presence, 'available') AS presence \
         FROM sip_registrations r \
           JOIN sip_accounts s ON s.user_id = r.user_id AND s.company_id = r.company_id \
           JOIN users u ON u.id = r.user_id AND u.company_id = r.company_id \
           LEFT JOIN agent_presence p ON p.user_id = r.user_id \
           JOIN companies c ON c.id = r.company_id \
         WHERE r.company_id = $1 AND r.expires_at > $2 AND c.status = 'active' \
         ORDER BY r.user_id, COALESCE(r.q, 1.0) DESC, r.updated_at DESC, r.id DESC",
        company, now_ms)?;
    // Groups are small; filtering here keeps one statement that both databases run alike
    // (neither binds a list portably).
    Ok(match members {
        None => all,
        Some(m) => all.into_iter().filter(|c| m.contains(&c.user_id)).collect(),
    })
}

/// The user of `company` whose SIP username (extension) is `extension`.
pub async fn agent_by_extension(
    ex: &mut Ex<'_>,
    company: CompanyId,
    extension: &str,
) -> Result<Option<UserId>> {
    Ok(q!(ex, scalar_opt UserId,
        "SELECT user_id FROM sip_accounts WHERE company_id = $1 AND username = $2",
        company, extension)?)
}

/// The SIP username (extension) of `user` of `company`, if it has a SIP account.
pub async fn extension_of(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
) -> Result<Option<String>> {
    Ok(q!(ex, scalar_opt String,
        "SELECT username FROM sip_accounts WHERE company_id = $1 AND user_id = $2",
        company, user)?)
}
