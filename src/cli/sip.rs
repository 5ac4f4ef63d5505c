//! `masterz admin` commands for SIP: users' registrar credentials and SIP trunks.

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

use crate::app;
use crate::config::Config;
use crate::domain::normalize_email;
use crate::domain::sip::{check_sip_password, valid_sip_username};
use crate::domain::trunk::{TrunkSettings, split_host_port};
use crate::domain::{CompanyId, UserId};
use crate::secrets::Keyring;
use crate::store::{self, audit::Actor};

#[derive(Args)]
pub(super) struct SetSipCredentials {
    /// The user's email.
    #[arg(long)]
    email: String,
    /// Username (unique across masterz; 1–64 of A-Z a-z 0-9 . _ - +).
    #[arg(long)]
    sip_username: String,
    /// Password (8–128 characters); stored encrypted.
    #[arg(long)]
    sip_password: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS.
    Tls,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    /// Yes.
    On,
    /// No.
    Off,
    /// As the company says (`masterz admin set-recording`).
    Inherit,
}

#[derive(Args)]
pub(super) struct CreateTrunk {
    /// Company slug.
    #[arg(long)]
    company: String,
    /// Label.
    #[arg(long)]
    name: String,
    /// The provider: DNS name or IP address, optionally with :PORT ([IPv6]:PORT).
    #[arg(long, value_name = "HOST[:PORT]")]
    host: String,
    /// Transport towards the provider.
    #[arg(long, value_enum, default_value = "udp")]
    transport: TransportArg,
    /// Digest username at the provider.
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// Digest password at the provider; stored encrypted.
    #[arg(long, requires = "username")]
    password: Option<String>,
    /// Register to HOST with the username and password.
    #[arg(long)]
    register: bool,
    /// An address or CIDR range that may send calls in (repeatable).
    #[arg(long, value_name = "CIDR")]
    source: Vec<String>,
    /// A number (E.164) that rings on this trunk (repeatable).
    #[arg(long, value_name = "E164")]
    did: Vec<String>,
    /// Record calls on this trunk: on, off, or inherit the company's setting (off unless
    /// switched on with `masterz admin set-recording`).
    #[arg(long, value_enum, default_value = "inherit")]
    recording: OnOff,
}

/// Checks `--sip-username` and `--sip-password`.
pub(super) fn check_sip_credentials(username: &str, password: &str) -> anyhow::Result<()> {
    if !valid_sip_username(username) {
        bail!(
            "invalid --sip-username {username:?}: use 1–64 characters of A-Z, a-z, 0-9, '.', '_', '-' and '+'"
        );
    }
    check_sip_password(password).map_err(|e| anyhow::anyhow!("--sip-password {e}"))
}

/// Sets a user's SIP credentials in `tx`; a taken username is a one-line error.
pub(super) async fn set_sip(
    tx: &mut store::Tx,
    keyring: &Keyring,
    company: CompanyId,
    user: UserId,
    username: &str,
    password: &str,
) -> anyhow::Result<()> {
    match store::sip::set_credentials(&mut tx.ex(), keyring, company, user, username, password)
        .await
    {
        Ok(Some(_)) => Ok(()),
        Ok(None) => bail!("no user {user}"),
        Err(store::StoreError::Conflict(_)) => bail!("SIP username {username:?} is taken"),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn set_sip_credentials(
    config: &Config,
    db: &store::Db,
    args: SetSipCredentials,
) -> anyhow::Result<()> {
    let SetSipCredentials {
        email,
        sip_username,
        sip_password,
    } = args;
    check_sip_credentials(&sip_username, &sip_password)?;
    let email = normalize_email(&email).with_context(|| format!("invalid --email {email:?}"))?;
    let mut conn = db.conn().await?;
    let login = store::users::login_user(&mut conn.ex(), &email)
        .await?
        .with_context(|| format!("no user {email}"))?;
    drop(conn);
    let keyring = app::open_keyring(config)?;
    let mut tx = db.begin().await?;
    set_sip(
        &mut tx,
        &keyring,
        login.company_id,
        login.id,
        &sip_username,
        &sip_password,
    )
    .await?;
    store::audit::record(
        &mut tx.ex(),
        login.company_id,
        &Actor::cli(),
        "update",
        "user",
        Some(login.id.0),
        &store::audit::redact(
            &serde_json::json!({"sip_username": sip_username, "sip_password": "set"}),
        ),
    )
    .await?;
    tx.commit().await?;
    println!("SIP credentials set for {email}: sip_username={sip_username}");
    Ok(())
}

pub(super) async fn create_trunk(
    config: &Config,
    db: &store::Db,
    args: CreateTrunk,
) -> anyhow::Result<()> {
    let CreateTrunk {
        company,
        name,
        host,
        transport,
        username,
        password,
        register,
        source,
        did,
        recording,
    } = args;
    let mut conn = db.conn().await?;
    let c = store::companies::by_slug(&mut conn.ex(), &company)
        .await?
        .with_context(|| format!("no company with slug {company:?}"))?;
    drop(conn);
    let name = name.trim();
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    if register && (username.is_none() || password.is_none()) {
        bail!("--register needs --username and --password");
    }
    if password.as_deref().is_some_and(str::is_empty) {
        bail!("--password must not be empty");
    }
    let (host, port) =
        split_host_port(&host).map_err(|e| anyhow::anyhow!("invalid --host: {e}"))?;
    let transport = match transport {
        TransportArg::Udp => "udp",
        TransportArg::Tcp => "tcp",
        TransportArg::Tls => "tls",
    };
    let settings = TrunkSettings::from_json(&serde_json::json!({
        "host": host, "port": port, "transport": transport, "register": register,
        "username": username, "sources": source, "dids": did,
        "recording": match recording {
            OnOff::On => Some(true),
            OnOff::Off => Some(false),
            OnOff::Inherit => None,
        },
    }))
    .map_err(|e| anyhow::anyhow!("invalid {}: {}", flag_of(&e.field), e.message))?;
    let keyring = app::open_keyring(config)?;
    let mut tx = db.begin().await?;
    let account = store::trunks::create_trunk(
        &mut tx.ex(),
        &keyring,
        c.id,
        name,
        &settings,
        password.as_deref(),
    )
    .await?;
    let changes = serde_json::json!({"kind": account.kind, "name": name,
        "settings": settings.to_json(), "credentials": password.as_ref().map(|_| "set")});
    store::audit::record(
        &mut tx.ex(),
        c.id,
        &Actor::cli(),
        "create",
        "channel_account",
        Some(account.id),
        &store::audit::redact(&changes),
    )
    .await?;
    tx.commit().await?;
    println!("{}", account.id);
    Ok(())
}

/// The command-line flag behind a trunk setting that [`TrunkSettings::from_json`] refused.
fn flag_of(field: &str) -> &'static str {
    let name = field.trim_start_matches("settings.");
    match name.split('[').next().unwrap_or(name) {
        "host" | "port" => "--host",
        "transport" => "--transport",
        "username" => "--username",
        "sources" => "--source",
        "dids" => "--did",
        "recording" => "--recording",
        _ => "trunk setting",
    }
}
