//! The command line: `masterz serve`, `masterz migrate`, `masterz admin …`.
//!
//! Admin commands use the database that the environment (`MASTERZ_*`) and `--config` name. Each
//! prints what it did, or exits non-zero with a one-line reason on bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app;
use crate::config::{Config, LogFormat};
use crate::domain::{normalize_email, valid_slug};
use crate::secrets::{Key, KeySource, new_token, token_hash};
use crate::store::{self, audit::Actor};

mod calls;
mod export;
mod lifecycle;
mod messaging;
mod recordings;
mod sip;

/// masterz: SIP B2BUA, RTP media, WebRTC agents and an omnichannel customer timeline.
#[derive(Parser)]
#[command(name = "masterz", version, about, propagate_version = true)]
struct Cli {
    /// TOML configuration file (keys as in docs/configuration.md); MASTERZ_* variables override it.
    #[arg(long, global = true, value_name = "FILE", env = "MASTERZ_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP API; SIP and media as they land). Migrates the database first.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Administer companies, users, tokens and keys on the configured database.
    #[command(subcommand)]
    Admin(Admin),
    /// Process a stored inbound webhook (an `integration_logs` row) again. Idempotent: events
    /// already applied change nothing.
    Replay {
        /// The integration log row id.
        id: i64,
    },
    /// Export a company's data (P26): one .tar.gz with a JSON Lines file per entity, the
    /// recording files and a manifest. Progress on stderr, a summary on stdout. Audited.
    Export(export::ExportArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Log one JSON object per line (same as MASTERZ_LOG_FORMAT=json).
    #[arg(long)]
    log_json: bool,
    /// Seed a demo company (slug `demo`) with an agent, customers, messages, a call and notes,
    /// once; prints the agent's login.
    #[arg(long)]
    demo: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    /// Every permission.
    Admin,
    /// Customers, conversations and calls.
    Agent,
}

#[derive(Subcommand)]
enum Admin {
    /// Create a company (with its built-in admin and agent roles).
    CreateCompany {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Unique slug: 2–63 of a-z, 0-9 and -.
        #[arg(long)]
        slug: String,
    },
    /// List companies.
    ListCompanies,
    /// Change a company's name, plan tier or time zone (the plan tier is the operator's to set).
    UpdateCompany {
        /// Company slug.
        #[arg(long)]
        slug: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New plan tier, e.g. free, team, business.
        #[arg(long)]
        plan_tier: Option<String>,
        /// New IANA time zone, e.g. Europe/Berlin.
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// Create a user in a company.
    CreateUser {
        /// Company slug.
        #[arg(long)]
        company: String,
        /// Login email.
        #[arg(long)]
        email: String,
        /// Password (8–72 bytes).
        #[arg(long)]
        password: String,
        /// Role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Display name (default: the email's local part).
        #[arg(long)]
        name: Option<String>,
        /// Username for the SIP registrar (unique across masterz; 1–64 of A-Z a-z 0-9 . _ - +).
        #[arg(long, requires = "sip_password")]
        sip_username: Option<String>,
        /// Password for the SIP registrar (8–128 characters); stored encrypted.
        #[arg(long, requires = "sip_username")]
        sip_password: Option<String>,
    },
    /// Set (or replace) a user's SIP credentials for the registrar.
    SetSipCredentials(sip::SetSipCredentials),
    /// Create a SIP trunk (a `sip_trunk` channel account); prints its id alone on stdout.
    CreateTrunk(sip::CreateTrunk),
    /// Create a messaging channel account (Messenger, Instagram, WhatsApp Cloud API or WAHA);
    /// prints its id, then the webhook URL to configure at the provider.
    CreateChannel(messaging::CreateChannel),
    /// Create a call group (agents rung together for DIDs); prints its id alone on stdout.
    CreateCallGroup(calls::CreateCallGroup),
    /// List a company's newest calls as a table.
    ListCalls(calls::ListCalls),
    /// Switch call recording on or off for a company (default off) or a trunk (on, off or
    /// inherit), and set how long recordings are kept. Audited.
    SetRecording(recordings::SetRecording),
    /// Set or remove the consent prompt a trunk plays to callers before a recorded call rings.
    SetConsentPrompt(recordings::SetConsentPrompt),
    /// Close a company (P20): logins, sessions, API tokens and SIP registrations end at once;
    /// prints when all its data will be deleted (company_deletion_days; 0 deletes it now). Audited.
    CloseCompany(lifecycle::CloseCompany),
    /// Create an API token for a user; prints the token alone on stdout.
    CreateToken {
        /// Company slug.
        #[arg(long)]
        company: String,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// Label for the token.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Set a new password for a user and end their sessions.
    ResetPassword {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// New password (8–72 bytes).
        #[arg(long)]
        password: String,
    },
    /// Generate a new application key and re-encrypt every stored credential under it.
    ///
    /// With the key file (the default), the file is rewritten; with MASTERZ_APP_KEY, the new key
    /// is written to app.key.rotated in the data directory and printed on stdout; put it into
    /// MASTERZ_APP_KEY before the next start. Stop the server first: a running server keeps the
    /// old key in memory.
    RotateKey,
}

/// Runs the command line and maps failures to a one-line message and exit code 1.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line for scripts; `--help` has the rest.
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty())
                .collect();
            eprintln!("{} (see --help)", first.join(" "));
            return ExitCode::from(2);
        }
    };
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(config, args).await,
            Command::Migrate => {
                init_logging(&config, false);
                let db = app::open_database(&config).await?;
                println!("database is up to date ({:?})", db.backend());
                db.close().await;
                Ok(())
            }
            Command::Admin(cmd) => admin(config, cmd).await,
            Command::Replay { id } => {
                init_logging(&config, false);
                messaging::replay(config, id).await
            }
            Command::Export(args) => {
                if std::env::var_os("RUST_LOG").is_some() {
                    init_logging(&config, false);
                }
                export::run(config, args).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn init_logging(config: &Config, force_json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if force_json || config.log_format == LogFormat::Json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}

async fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&config, args.log_json);
    // Before the start: a SIGTERM that arrives while SIP and the demo data are being set up
    // (after the address was printed) must still end in a graceful shutdown.
    let signal = app::ShutdownSignal::install()?;
    let server = app::Server::start(config).await?;
    if args.demo {
        match crate::demo::seed(&server.state.db).await? {
            Some(password) => eprintln!(
                "\n  Demo company `{}` seeded. Agent login: {} / {password}\n",
                crate::demo::DEMO_SLUG,
                crate::demo::DEMO_AGENT_EMAIL
            ),
            None => eprintln!(
                "  Demo company `{}` exists already; left as it is.",
                crate::demo::DEMO_SLUG
            ),
        }
    }
    server.run_until(signal).await
}

async fn company_by_slug(
    conn: &mut store::Conn,
    slug: &str,
) -> anyhow::Result<store::companies::Company> {
    store::companies::by_slug(&mut conn.ex(), slug)
        .await?
        .with_context(|| format!("no company with slug {slug:?}"))
}

async fn admin(config: Config, cmd: Admin) -> anyhow::Result<()> {
    // Quiet by default: admin commands print their own results.
    if std::env::var_os("RUST_LOG").is_some() {
        init_logging(&config, false);
    }
    let db = app::open_database(&config).await?;
    let result = run_admin(&config, &db, cmd).await;
    db.close().await;
    result
}

async fn run_admin(config: &Config, db: &store::Db, cmd: Admin) -> anyhow::Result<()> {
    let mut conn = db.conn().await?;
    match cmd {
        Admin::CreateCompany { name, slug } => {
            let name = name.trim();
            if name.is_empty() {
                bail!("--name must not be empty");
            }
            if !valid_slug(&slug) {
                bail!("invalid --slug {slug:?}: use 2–63 characters of a-z, 0-9 and -");
            }
            if store::companies::by_slug(&mut conn.ex(), &slug)
                .await?
                .is_some()
            {
                bail!("a company with slug {slug:?} exists");
            }
            let mut tx = db.begin().await?;
            let c = store::companies::create(&mut tx.ex(), name, &slug).await?;
            tx.commit().await?;
            println!("created company {} slug={} name={:?}", c.id, c.slug, c.name);
        }
        Admin::ListCompanies => {
            for c in store::companies::list(&mut conn.ex()).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    c.id, c.slug, c.status, c.plan_tier, c.name
                );
            }
        }
        Admin::UpdateCompany {
            slug,
            name,
            plan_tier,
            time_zone,
        } => {
            let c = company_by_slug(&mut conn, &slug).await?;
            if let Some(tz) = &time_zone
                && !crate::domain::valid_time_zone(tz)
            {
                bail!("invalid --time-zone {tz:?}: not an IANA time zone");
            }
            if let Some(tier) = &plan_tier
                && !valid_slug(tier)
            {
                bail!("invalid --plan-tier {tier:?}: use a-z, 0-9 and -");
            }
            if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                bail!("--name must not be empty");
            }
            let patch = store::companies::CompanyPatch {
                name: name.map(|n| n.trim().to_owned()),
                plan_tier,
                time_zone,
                ..Default::default()
            };
            let mut tx = db.begin().await?;
            let c = store::companies::update(&mut tx.ex(), c.id, &patch).await?;
            store::audit::record(&mut tx.ex(), c.id, &Actor::cli(), "update", "company", Some(c.id.0),
                &serde_json::json!({"name": patch.name, "plan_tier": patch.plan_tier, "time_zone": patch.time_zone})).await?;
            tx.commit().await?;
            println!(
                "updated company {} slug={} name={:?} plan_tier={} time_zone={}",
                c.id, c.slug, c.name, c.plan_tier, c.time_zone
            );
        }
        Admin::CreateUser {
            company,
            email,
            password,
            role,
            name,
            sip_username,
            sip_password,
        } => {
            let c = company_by_slug(&mut conn, &company).await?;
            let sip_login = match (sip_username, sip_password) {
                (Some(u), Some(p)) => {
                    sip::check_sip_credentials(&u, &p)?;
                    Some((u, p, app::open_keyring(config)?))
                }
                _ => None,
            };
            let email =
                normalize_email(&email).with_context(|| format!("invalid --email {email:?}"))?;
            if store::users::login_user(&mut conn.ex(), &email)
                .await?
                .is_some()
            {
                bail!("a user with email {email} exists");
            }
            let role_name = match role {
                RoleArg::Admin => store::companies::ADMIN_ROLE,
                RoleArg::Agent => store::companies::AGENT_ROLE,
            };
            let role = store::users::role_by_name(&mut conn.ex(), c.id, role_name)
                .await?
                .with_context(|| format!("company {company} has no {role_name} role"))?;
            let hash = crate::auth::hash_password(&password)
                .await
                .map_err(|e| anyhow::anyhow!("--password: {e}"))?;
            let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_owned());
            let mut tx = db.begin().await?;
            let user = store::users::create_user(
                &mut tx.ex(),
                c.id,
                &store::users::NewUser {
                    role_id: role.id,
                    name: &name,
                    email: &email,
                    password_hash: &hash,
                    avatar_url: None,
                },
            )
            .await?;
            store::audit::record(
                &mut tx.ex(),
                c.id,
                &Actor::cli(),
                "create",
                "user",
                Some(user.id.0),
                &store::audit::redact(&serde_json::json!({"email": email, "role": role_name,
                    "password": "set", "sip_username": sip_login.as_ref().map(|s| &s.0),
                    "sip_password": sip_login.as_ref().map(|_| "set")})),
            )
            .await?;
            if let Some((username, password, keyring)) = &sip_login {
                sip::set_sip(&mut tx, keyring, c.id, user.id, username, password).await?;
            }
            tx.commit().await?;
            let sip_note = sip_login
                .map(|(u, _, _)| format!(" sip_username={u}"))
                .unwrap_or_default();
            println!(
                "created user {} email={} role={} company={}{sip_note}",
                user.id, user.email, role_name, c.slug
            );
        }
        Admin::SetSipCredentials(args) => sip::set_sip_credentials(config, db, args).await?,
        Admin::CreateTrunk(args) => sip::create_trunk(config, db, args).await?,
        Admin::CreateChannel(args) => messaging::create_channel(config, db, args).await?,
        Admin::CreateCallGroup(args) => calls::create_call_group(db, args).await?,
        Admin::ListCalls(args) => calls::list_calls(db, args).await?,
        Admin::SetRecording(args) => recordings::set_recording(db, args).await?,
        Admin::SetConsentPrompt(args) => recordings::set_consent_prompt(db, args).await?,
        Admin::CloseCompany(args) => lifecycle::close_company(config, db, args).await?,
        Admin::CreateToken {
            company,
            email,
            name,
        } => {
            let c = company_by_slug(&mut conn, &company).await?;
            let email =
                normalize_email(&email).with_context(|| format!("invalid --email {email:?}"))?;
            let user = store::users::user_by_email(&mut conn.ex(), c.id, &email)
                .await?
                .with_context(|| format!("no user {email} in company {company}"))?;
            let token = new_token(crate::http::api::TOKEN_PREFIX)?;
            let mut tx = db.begin().await?;
            let row = store::auth::create_token(
                &mut tx.ex(),
                c.id,
                user.id,
                &name,
                &token_hash(token.expose()),
            )
            .await?;
            store::audit::record(
                &mut tx.ex(),
                c.id,
                &Actor::cli(),
                "create",
                "api_token",
                Some(row.id),
                &serde_json::json!({"name": name, "user_id": user.id}),
            )
            .await?;
            tx.commit().await?;
            println!("{}", token.expose());
        }
        Admin::ResetPassword { email, password } => {
            let email =
                normalize_email(&email).with_context(|| format!("invalid --email {email:?}"))?;
            let login = store::users::login_user(&mut conn.ex(), &email)
                .await?
                .with_context(|| format!("no user {email}"))?;
            let hash = crate::auth::hash_password(&password)
                .await
                .map_err(|e| anyhow::anyhow!("--password: {e}"))?;
            let mut tx = db.begin().await?;
            let patch = store::users::UserPatch {
                password_hash: Some(hash),
                ..Default::default()
            };
            store::users::update_user(&mut tx.ex(), login.company_id, login.id, &patch).await?;
            let ended = store::auth::delete_user_sessions(&mut tx.ex(), login.id).await?;
            store::audit::record(
                &mut tx.ex(),
                login.company_id,
                &Actor::cli(),
                "update",
                "user",
                Some(login.id.0),
                &store::audit::redact(&serde_json::json!({"password": "reset"})),
            )
            .await?;
            tx.commit().await?;
            println!("password reset for {email}; {ended} session(s) ended");
        }
        Admin::RotateKey => rotate_key(config, db).await?,
    }
    Ok(())
}

/// Rotation is crash-safe: the key file first gets the new key in front of the old ones (both
/// decrypt), then one transaction re-encrypts every value, then the file keeps only the new key.
async fn rotate_key(config: &Config, db: &store::Db) -> anyhow::Result<()> {
    let ring = app::open_keyring(config)?;
    let new_ring = ring.with_new_current(Key::generate()?);
    // The new key is on disk before any value is encrypted under it.
    let key_path = match ring.source() {
        KeySource::File(path) => path.clone(),
        KeySource::Config => config.data_dir.join("app.key.rotated"),
    };
    let written = match ring.source() {
        KeySource::File(_) => &new_ring,
        KeySource::Config => &new_ring.only_current(),
    };
    written
        .write_file(&key_path)
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    let mut tx = db.begin().await?;
    let n = store::channels::reencrypt_all(&mut tx.ex(), &new_ring).await?
        + store::sip::reencrypt_all(&mut tx.ex(), &new_ring).await?
        + store::ai::reencrypt_keys(&mut tx.ex(), &new_ring).await?;
    tx.commit().await?;
    let final_ring = new_ring.only_current();
    match ring.source() {
        KeySource::File(path) => {
            final_ring
                .write_file(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "re-encrypted {n} credential(s) under key {}; {} now holds only the new key: back it up",
                final_ring.current().id(),
                path.display()
            );
        }
        KeySource::Config => {
            eprintln!(
                "re-encrypted {n} credential(s) under key {}. Set MASTERZ_APP_KEY to the key below (also saved in {}) before the next start:",
                final_ring.current().id(),
                key_path.display()
            );
            println!("{}", final_ring.current().to_base64().expose());
        }
    }
    Ok(())
}
