//! Builds the whole server from a [`Config`]: database, keys, first run, HTTP. Tests start it on
//! port 0 and read the bound address from [`Server::http_addr`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::secrets::{Keyring, new_token};
use crate::store::{self, Db, audit::Actor};

/// Connects to the configured database and applies migrations.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let url = config.effective_database_url();
    // The data directory holds the key file even when the database is PostgreSQL.
    create_private_dir(&config.data_dir)?;
    let db = Db::connect(&url, config.database_max_connections)
        .await
        .with_context(|| format!("cannot open database ({})", redact_url(&url)))?;
    db.migrate().await.context("database migration failed")?;
    let mut conn = db.conn().await?;
    store::companies::sync_builtin_roles(&mut conn.ex()).await?;
    drop(conn);
    Ok(db)
}

/// Creates the data directory readable by the server's user only (it holds personal data and the
/// key); an existing directory is left as the operator made it.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

/// Loads the application keys, generating the key file on first start.
pub fn open_keyring(config: &Config) -> anyhow::Result<Keyring> {
    let (ring, created) = Keyring::load_or_create(config.app_key.as_ref(), &config.data_dir)?;
    if created {
        tracing::warn!(
            file = %config.data_dir.join(crate::secrets::KEY_FILE).display(),
            "generated a new application key: BACK IT UP. Without it the stored channel credentials cannot be decrypted."
        );
    }
    Ok(ring)
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:{}{}",
                    &url[..scheme + 3],
                    crate::secrets::REDACTED,
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The base URL of links this server hands out: `public_url`, else the HTTP address (`localhost`
/// for a wildcard address).
pub fn base_url(config: &Config, http_addr: SocketAddr) -> String {
    let scheme = if config.tls_enabled() {
        "https"
    } else {
        "http"
    };
    match config.public_url.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            if http_addr.ip().is_unspecified() {
                format!("{scheme}://localhost:{}", http_addr.port())
            } else {
                // SocketAddr's Display brackets IPv6 addresses, as URLs need.
                format!("{scheme}://{http_addr}")
            }
        }
    }
}

/// On an empty database, creates the first company and its admin, and says how to log in.
pub async fn first_run(db: &Db, config: &Config, http_base: &str) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    if store::companies::any_user(&mut tx.ex()).await? {
        return Ok(());
    }
    let company = match store::companies::by_slug(&mut tx.ex(), "default").await? {
        Some(c) => c,
        None => store::companies::create(&mut tx.ex(), "My company", "default").await?,
    };
    let email = crate::domain::normalize_email(&config.initial_admin_email)
        .context("initial_admin_email is not an email address")?;
    let (password, generated) = match &config.initial_admin_password {
        Some(p) if !p.expose().is_empty() => (p.clone(), false),
        _ => (new_token("")?, true),
    };
    let hash = crate::auth::hash_password(password.expose()).await?;
    let role = store::users::role_by_name(&mut tx.ex(), company.id, store::companies::ADMIN_ROLE)
        .await?
        .context("admin role missing")?;
    let user = store::users::create_user(
        &mut tx.ex(),
        company.id,
        &store::users::NewUser {
            role_id: role.id,
            name: "Administrator",
            email: &email,
            password_hash: &hash,
            avatar_url: None,
        },
    )
    .await?;
    store::audit::record(
        &mut tx.ex(),
        company.id,
        &Actor {
            label: "first-run".into(),
            ..Actor::cli()
        },
        "create",
        "user",
        Some(user.id.0),
        &serde_json::json!({"email": email, "role": "admin"}),
    )
    .await?;
    tx.commit().await?;
    let shown = if generated {
        password.expose().as_str()
    } else {
        "(the configured initial_admin_password)"
    };
    // Printed, not logged: the one place the generated password appears, once.
    eprintln!(
        "\n  masterz is ready. First admin created:\n\n    url:      {http_base}\n    email:    {email}\n    password: {shown}\n\n  Log in: curl -c cookies -H 'content-type: application/json' \\\n    -d '{{\"email\":\"{email}\",\"password\":\"…\"}}' {http_base}/api/v1/auth/login\n  Change the password, or reset it with `masterz admin reset-password --email {email} --password …`.\n"
    );
    Ok(())
}

/// A running server.
pub struct Server {
    /// The bound HTTP address (with the real port when 0 was configured).
    pub http_addr: SocketAddr,
    /// Shared state (database, keys, metrics).
    pub state: Arc<AppState>,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Starts everything `config` describes and returns once the HTTP socket is bound.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let db = open_database(&config).await?;
        let keyring = open_keyring(&config)?;
        let listener = std::net::TcpListener::bind(config.http_listen)
            .with_context(|| format!("cannot listen on {}", config.http_listen))?;
        listener.set_nonblocking(true)?;
        let http_addr = listener.local_addr()?;
        let scheme = if config.tls_enabled() {
            "https"
        } else {
            "http"
        };
        let base = base_url(&config, http_addr);
        first_run(&db, &config, &base).await?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
            _ => None,
        };
        let state = Arc::new(AppState::new(db, keyring, config, base));
        let app = http::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let task = match tls {
            Some(tls) => {
                let server = axum_server::from_tcp_rustls(listener, tls)?.handle(handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
            None => {
                let server = axum_server::from_tcp(listener)?.handle(handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
        };
        tracing::info!(%http_addr, %scheme, backend = ?state.db.backend(), "HTTP listening");
        let telephony = Arc::new(crate::telephony::start(state.clone()).await?);
        let _ = state.telephony.set(telephony);
        crate::messaging::spawn(&state);
        crate::lifecycle::spawn(&state);
        crate::ai::spawn(state.clone());
        spawn_housekeeping(state.clone());
        Ok(Self {
            http_addr,
            state,
            handle,
            task,
        })
    }

    /// Stops accepting, lets requests in flight finish for up to `grace`, closes the database.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<()> {
        if let Some(t) = self.state.telephony.get() {
            t.shutdown();
        }
        self.handle.graceful_shutdown(Some(grace));
        match self.task.await {
            Ok(result) => result.context("HTTP server failed")?,
            Err(e) => anyhow::bail!("HTTP server task failed: {e}"),
        }
        self.state.db.close().await;
        Ok(())
    }

    /// Runs until SIGTERM or Ctrl-C, then shuts down gracefully. If the HTTP server stops by
    /// itself (it should not), that is an error rather than a process that serves nothing.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        let signal = ShutdownSignal::install()?;
        self.run_until(signal).await
    }

    /// Like [`Server::run_until_signal`], with signals listened for since before the start.
    pub async fn run_until(mut self, mut signal: ShutdownSignal) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs);
        tokio::select! {
            () = signal.recv() => {}
            ended = &mut self.task => {
                self.state.db.close().await;
                return match ended {
                    Ok(Ok(())) => Err(anyhow::anyhow!("HTTP server stopped unexpectedly")),
                    Ok(Err(e)) => Err(anyhow::Error::new(e).context("HTTP server failed")),
                    Err(e) => Err(anyhow::anyhow!("HTTP server task failed: {e}")),
                };
            }
        }
        tracing::info!("shutting down");
        self.shutdown(grace).await
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from the moment this is created: create it before
/// starting the server, so that a signal arriving while the server starts (after it has printed
/// its address) shuts it down gracefully instead of killing the process.
pub struct ShutdownSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Starts listening (needs a running tokio runtime).
    pub fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
                interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the first signal.
    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn spawn_housekeeping(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let pruned = async {
                let mut conn = state.db.conn().await?;
                store::auth::prune_sessions(&mut conn.ex()).await
            }
            .await;
            match pruned {
                Ok(n) if n > 0 => tracing::info!(sessions = n, "pruned expired sessions"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "session pruning failed"),
            }
            match crate::messaging::prune_logs(&state).await {
                Ok(n) if n > 0 => tracing::info!(rows = n, "pruned old integration log rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "integration log pruning failed"),
            }
        }
    });
}

fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    let config = rustls_server_config(cert, key, &[b"http/1.1"])?;
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}

/// A TLS server configuration from PEM files, shared by HTTPS and SIP over TLS.
pub(crate) fn rustls_server_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    alpn: &[&[u8]],
) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
