//! SIP trunks: `sip_trunk` channel accounts read with their typed [`TrunkSettings`], and the
//! registration state that the trunk driver writes to `trunk_status`.
//!
//! The settings are validated on every way in (see [`TrunkSettings::from_json`]); rows written
//! before that validation existed may still not parse. The API shows such a trunk as `failed`
//! with the reason, and [`all_trunks`] leaves it out, so the driver only ever sees good settings.

use serde::Serialize;
use utoipa::ToSchema;

use super::channels::{self, ChannelAccount};
use super::{CompanyId, Ex, Result, now_ms, q};
use crate::domain::sip::{TrunkState, TrunkTransport};
use crate::domain::trunk::{Cidr, TrunkSettings};
use crate::domain::{ChannelKind, JsonText, Timestamp};
use crate::secrets::{Keyring, Secret};

/// The credential field that holds a trunk's password.
pub const PASSWORD_KEY: &str = "password";

/// Where masterz stands in registering to the trunk's provider.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TrunkRegistration {
    /// `disabled` (register is off), `registering` (under way, or not tried yet), `registered`
    /// or `failed`.
    pub state: TrunkState,
    /// Why the last attempt failed, e.g. `403 Forbidden` or `timeout`.
    pub reason: Option<String>,
    /// Until when the provider holds the registration.
    pub registered_until: Option<Timestamp>,
    /// When the next attempt (retry or refresh) is due.
    pub next_attempt_at: Option<Timestamp>,
}

/// A trunk as the API lists it: its settings (never the password) and its registration.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Trunk {
    /// The channel account id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Provider host: DNS name or IP address (IPv6 in brackets).
    pub host: String,
    /// Port; `null`: from DNS SRV, else the transport's default.
    pub port: Option<u16>,
    /// `udp`, `tcp` or `tls`.
    pub transport: TrunkTransport,
    /// Whether masterz registers to the provider.
    pub register: bool,
    /// Digest username at the provider.
    pub username: Option<String>,
    /// Numbers (E.164) that ring on this trunk.
    pub dids: Vec<String>,
    /// Address ranges (CIDR) that may send calls in.
    #[schema(value_type = Vec<String>)]
    pub sources: Vec<Cidr>,
    /// Whether calls are recorded: `true`/`false` override the company's `recording_enabled`,
    /// `null` follows it.
    pub recording: Option<bool>,
    /// Registration interval asked of the provider, in seconds.
    pub expires: u32,
    /// Registration state.
    pub registration: TrunkRegistration,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    #[sqlx(try_from = "String")]
    settings: JsonText,
    state: Option<String>,
    reason: Option<String>,
    registered_until: Option<i64>,
    next_attempt_at: Option<i64>,
}

impl Row {
    fn into_trunk(self) -> Trunk {
        let (settings, broken) = match TrunkSettings::from_json(&self.settings.0) {
            Ok(s) => (s, None),
            Err(e) => {
                let host = self.settings.0["host"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let fallback = TrunkSettings {
                    host,
                    port: None,
                    transport: TrunkTransport::default(),
                    register: false,
                    username: None,
                    sources: Vec::new(),
                    dids: Vec::new(),
                    recording: None,
                    expires: crate::domain::trunk::DEFAULT_EXPIRES,
                };
                (fallback, Some(format!("invalid settings: {e}")))
            }
        };
        let stored = self.state.as_deref().and_then(TrunkState::parse);
        let registration = match (broken, settings.register, stored) {
            (Some(reason), _, _) => TrunkRegistration {
                state: TrunkState::Failed,
                reason: Some(reason),
                registered_until: None,
                next_attempt_at: None,
            },
            (None, false, _) => TrunkRegistration {
                state: TrunkState::Disabled,
                reason: None,
                registered_until: None,
                next_attempt_at: None,
            },
            // Registration on, and no state yet, or the `disabled` of before it was switched on.
            (None, true, None | Some(TrunkState::Disabled)) => TrunkRegistration {
                state: TrunkState::Registering,
                reason: None,
                registered_until: None,
                next_attempt_at: None,
            },
            (None, true, Some(state)) => TrunkRegistration {
                state,
                reason: self.reason,
                registered_until: self.registered_until.map(Timestamp),
                next_attempt_at: self.next_attempt_at.map(Timestamp),
            },
        };
        Trunk {
            id: self.id,
            name: self.name,
            host: settings.host,
            port: settings.port,
            transport: settings.transport,
            register: settings.register,
            username: settings.username,
            dids: settings.dids,
            sources: settings.sources,
            recording: settings.recording,
            expires: settings.expires,
            registration,
        }
    }
}

/// The trunks of `company` with their registration state.
pub async fn list_trunks(ex: &mut Ex<'_>, company: CompanyId) -> Result<Vec<Trunk>> {
    let rows = q!(ex, all Row,
        "SELECT ca.id, ca.name, ca.settings, ts.state, ts.reason, ts.registered_until, \
           ts.next_attempt_at FROM channel_accounts ca \
           LEFT JOIN trunk_status ts ON ts.channel_account_id = ca.id \
         WHERE ca.company_id = $1 AND ca.kind = $2 ORDER BY ca.id",
        company, ChannelKind::SipTrunk.as_str())?;
    Ok(rows.into_iter().map(Row::into_trunk).collect())
}

/// A trunk as the registration driver needs it.
#[derive(Clone, Debug)]
pub struct TrunkConfig {
    /// The channel account id.
    pub id: i64,
    /// Company.
    pub company_id: CompanyId,
    /// Label.
    pub name: String,
    /// Settings.
    pub settings: TrunkSettings,
    /// The decrypted password, if set.
    pub password: Option<Secret<String>>,
    /// Last change of the account (settings, credentials or name): a trunk whose `updated_at`
    /// moved has changed and must be re-read and re-registered.
    pub updated_at: Timestamp,
}

/// Every trunk of every active company, passwords decrypted, for the registration driver. Trunks
/// whose stored settings do not parse are left out (logged, and shown as `failed` in the API).
pub async fn all_trunks(ex: &mut Ex<'_>, keyring: &Keyring) -> Result<Vec<TrunkConfig>> {
    #[derive(sqlx::FromRow)]
    struct All {
        id: i64,
        company_id: CompanyId,
        name: String,
        #[sqlx(try_from = "String")]
        settings: JsonText,
        credentials: Option<String>,
        updated_at: Timestamp,
    }
    let rows = q!(ex, all All,
        "SELECT ca.id, ca.company_id, ca.name, ca.settings, ca.credentials, ca.updated_at \
         FROM channel_accounts ca JOIN companies c ON c.id = ca.company_id \
         WHERE ca.kind = $1 AND c.status = 'active' ORDER BY ca.id",
        ChannelKind::SipTrunk.as_str())?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let settings = match TrunkSettings::from_json(&row.settings.0) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(trunk = row.id, error = %e, "sip_trunk settings do not parse; trunk ignored");
                continue;
            }
        };
        let password = match &row.credentials {
            Some(cipher) => password_of(&channels::open(keyring, cipher)?),
            None => None,
        };
        out.push(TrunkConfig {
            id: row.id,
            company_id: row.company_id,
            name: row.name,
            settings,
            password,
            updated_at: row.updated_at,
        });
    }
    Ok(out)
}

fn password_of(
    creds: &Secret<serde_json::Map<String, serde_json::Value>>,
) -> Option<Secret<String>> {
    creds
        .expose()
        .get(PASSWORD_KEY)
        .and_then(|v| v.as_str())
        .map(|p| Secret::new(p.to_owned()))
}

/// The decrypted password of trunk `id` of `company`; `None` if there is no such trunk or it has
/// no password.
pub async fn trunk_password(
    ex: &mut Ex<'_>,
    keyring: &Keyring,
    company: CompanyId,
    id: i64,
) -> Result<Option<Secret<String>>> {
    Ok(channels::credentials(ex, keyring, company, id)
        .await?
        .as_ref()
        .and_then(password_of))
}

/// Creates a `sip_trunk` channel account from checked settings and an optional password.
pub async fn create_trunk(
    ex: &mut Ex<'_>,
    keyring: &Keyring,
    company: CompanyId,
    name: &str,
    settings: &TrunkSettings,
    password: Option<&str>,
) -> Result<ChannelAccount> {
    let sealed = password
        .map(|p| {
            let mut creds = serde_json::Map::new();
            creds.insert(PASSWORD_KEY.into(), p.into());
            channels::seal(keyring, &creds)
        })
        .transpose()?;
    let kind = ChannelKind::SipTrunk.as_str();
    channels::create(ex, company, kind, name, None, &settings.to_json(), sealed).await
}

/// A registration state to record for a trunk.
#[derive(Clone, Debug, PartialEq)]
pub struct TrunkStatus {
    /// State.
    pub state: TrunkState,
    /// Why the last attempt failed.
    pub reason: Option<String>,
    /// Until when the provider holds the registration (Unix ms).
    pub registered_until: Option<i64>,
    /// When the next attempt is due (Unix ms).
    pub next_attempt_at: Option<i64>,
}

/// Records the registration state of trunk `id` of `company`; `false` if there is no such trunk
/// (it was deleted meanwhile: the driver should stop registering it).
pub async fn set_trunk_status(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    status: &TrunkStatus,
) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "INSERT INTO trunk_status (channel_account_id, company_id, state, reason, registered_until, \
           next_attempt_at, updated_at) \
         SELECT id, company_id, $4, $5, $6, $7, $8 FROM channel_accounts \
           WHERE company_id = $1 AND id = $2 AND kind = $3 \
         ON CONFLICT (channel_account_id) DO UPDATE SET state = excluded.state, \
           reason = excluded.reason, registered_until = excluded.registered_until, \
           next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at",
        company,
        id,
        ChannelKind::SipTrunk.as_str(),
        status.state.as_str(),
        status.reason.as_deref(),
        status.registered_until,
        status.next_attempt_at,
        now_ms()
    )?;
    Ok(n > 0)
}
