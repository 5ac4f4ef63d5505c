//! `masterz admin create-channel` and `masterz replay`.

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

use crate::app;
use crate::config::Config;
use crate::store::{self, audit::Actor};

/// A messaging channel kind.
#[derive(Clone, Copy, ValueEnum)]
pub(super) enum KindArg {
    /// A Facebook Page's Messenger inbox (and its Page comments); external id: the Page id.
    Messenger,
    /// An Instagram professional account (DMs and comments); external id: its Instagram id.
    Instagram,
    /// A WhatsApp Cloud API number; external id: its phone number id.
    WhatsappCloud,
    /// A WAHA session; external id: the session name (e.g. `default`).
    Waha,
}

impl KindArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Messenger => "messenger",
            Self::Instagram => "instagram",
            Self::WhatsappCloud => "whatsapp_cloud",
            Self::Waha => "waha",
        }
    }
}

/// `masterz admin create-channel`.
#[derive(Args)]
pub(super) struct CreateChannel {
    /// Company slug.
    #[arg(long)]
    company: String,
    /// Channel kind.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// The provider's id: Page id, Instagram account id, WhatsApp phone number id, WAHA session.
    #[arg(long)]
    external_id: String,
    /// Label (default: kind and external id).
    #[arg(long)]
    name: Option<String>,
    /// Page access token, Instagram token or WhatsApp system-user token (Meta kinds).
    #[arg(long)]
    access_token: Option<String>,
    /// The business's own Meta app secret (default: MASTERZ_META_APP_SECRET checks its webhooks).
    #[arg(long)]
    app_secret: Option<String>,
    /// The business's own webhook verify token (default: MASTERZ_META_VERIFY_TOKEN).
    #[arg(long)]
    verify_token: Option<String>,
    /// WhatsApp Business Account id, so events addressed to the WABA reach this number.
    #[arg(long)]
    waba_id: Option<String>,
    /// WAHA: base URL of the WAHA server, e.g. http://127.0.0.1:3000.
    #[arg(long)]
    base_url: Option<String>,
    /// WAHA: API key (sent as X-Api-Key; accepted on webhooks as X-Api-Key too).
    #[arg(long)]
    api_key: Option<String>,
    /// WAHA: webhook HMAC key (X-Webhook-Hmac, SHA-512).
    #[arg(long)]
    hmac_key: Option<String>,
    /// Messenger/Instagram: reply with the HUMAN_AGENT tag up to 7 days after the customer's last
    /// message (needs Meta's Human Agent permission).
    #[arg(long)]
    human_agent_tag: bool,
}

pub(super) async fn create_channel(
    config: &Config,
    db: &store::Db,
    args: CreateChannel,
) -> anyhow::Result<()> {
    let kind = args.kind.as_str();
    let external_id = args.external_id.trim();
    if external_id.is_empty() || external_id.len() > 512 {
        bail!("--external-id must be 1–512 characters");
    }
    let waha = matches!(args.kind, KindArg::Waha);
    if waha {
        if args.access_token.is_some() || args.app_secret.is_some() || args.verify_token.is_some() {
            bail!("--access-token, --app-secret and --verify-token are for Meta channels");
        }
        let Some(url) = args.base_url.as_deref() else {
            bail!("--kind waha needs --base-url (and --api-key and/or --hmac-key)");
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--base-url must be an http:// or https:// URL");
        }
        if args.api_key.is_none() && args.hmac_key.is_none() {
            bail!(
                "--kind waha needs --api-key and/or --hmac-key: its webhooks are checked with them"
            );
        }
    } else if args.base_url.is_some() || args.api_key.is_some() || args.hmac_key.is_some() {
        bail!("--base-url, --api-key and --hmac-key are for WAHA channels");
    }
    let mut creds = serde_json::Map::new();
    for (key, value) in [
        ("access_token", &args.access_token),
        ("app_secret", &args.app_secret),
        ("verify_token", &args.verify_token),
        ("api_key", &args.api_key),
        ("hmac_key", &args.hmac_key),
    ] {
        if let Some(v) = value {
            if v.is_empty() {
                bail!("--{} must not be empty", key.replace('_', "-"));
            }
            creds.insert(key.into(), serde_json::Value::String(v.clone()));
        }
    }
    let mut settings = serde_json::Map::new();
    if let Some(url) = &args.base_url {
        settings.insert("base_url".into(), url.trim_end_matches('/').into());
        settings.insert("session".into(), external_id.into());
    }
    if let Some(waba) = &args.waba_id {
        settings.insert("waba_id".into(), waba.trim().into());
    }
    if args.human_agent_tag {
        settings.insert("human_agent_tag".into(), true.into());
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{kind} {external_id}"));
    let keyring = app::open_keyring(config)?;
    let sealed = if creds.is_empty() {
        None
    } else {
        Some(store::channels::seal(&keyring, &creds)?)
    };
    let mut tx = db.begin().await?;
    let company = store::companies::by_slug(&mut tx.ex(), &args.company)
        .await?
        .with_context(|| format!("no company with slug {:?}", args.company))?;
    let settings = serde_json::Value::Object(settings);
    let account = store::channels::create(
        &mut tx.ex(),
        company.id,
        kind,
        &name,
        Some(external_id),
        &settings,
        sealed,
    )
    .await?;
    let changes = serde_json::json!({"kind": kind, "name": name, "external_id": external_id,
        "settings": settings, "credentials": creds.keys().collect::<Vec<_>>()});
    store::audit::record(
        &mut tx.ex(),
        company.id,
        &Actor::cli(),
        "create",
        "channel_account",
        Some(account.id),
        &store::audit::redact(&changes),
    )
    .await?;
    tx.commit().await?;
    let base = app::base_url(config, config.http_listen);
    println!("{}", account.id);
    if let Some(url) = crate::messaging::webhook_url(&base, kind, account.id) {
        println!("{url}");
    }
    Ok(())
}

/// `masterz replay <id>`: processes a stored inbound webhook again, idempotently.
pub(super) async fn replay(config: Config, id: i64) -> anyhow::Result<()> {
    let db = app::open_database(&config).await?;
    let keyring = app::open_keyring(&config)?;
    let base = app::base_url(&config, config.http_listen);
    let state = crate::http::AppState::new(db.clone(), keyring, config, base);
    let result = crate::messaging::process::replay(&state, id).await;
    db.close().await;
    let report = result?;
    println!(
        "replayed {id}: {} events, {} messages added, {} changed, state {}",
        report.events, report.added, report.changed, report.state
    );
    for why in &report.skipped {
        println!("  skipped: {why}");
    }
    Ok(())
}
