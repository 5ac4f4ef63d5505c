//! Shared test harness: databases (SQLite in a temp dir, or a fresh database on the PostgreSQL
//! server named by `MASTERZ_TEST_POSTGRES_URL`), a server on port 0, and seeding helpers.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::OnceLock;

use masterz::app::Server;
use masterz::config::Config;
use masterz::domain::{CompanyId, UserId};
use masterz::store::{self, Db};

/// The password every seeded user has.
pub const PASSWORD: &str = "correct-horse-battery";

/// A cost-12 hash of [`PASSWORD`], computed once per test binary.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| masterz::auth::hash_password_blocking(PASSWORD).expect("hash"))
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test, with the directory that holds its files.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
}

impl TestDb {
    /// A fresh, empty database. For PostgreSQL the admin URL comes from
    /// `MASTERZ_TEST_POSTGRES_URL`; without it the test is skipped loudly, except under CI
    /// (`CI` set), where a missing server is a failure.
    pub async fn new(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("masterz.db").display()),
            Backend::Postgres => {
                let Ok(admin) = std::env::var("MASTERZ_TEST_POSTGRES_URL") else {
                    if std::env::var_os("CI").is_some() {
                        panic!(
                            "MASTERZ_TEST_POSTGRES_URL is not set: the Postgres suite must run in CI (scripts/test.sh starts a server)"
                        );
                    }
                    eprintln!(
                        "SKIPPED: MASTERZ_TEST_POSTGRES_URL not set (scripts/test.sh sets it)"
                    );
                    return None;
                };
                let name = format!("mz_test_{}", random_suffix());
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .expect("connect to Postgres");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .expect("create database");
                pool.close().await;
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        };
        Some(Self { url, dir, backend })
    }

    /// Connects and migrates.
    pub async fn open(&self) -> Db {
        let db = Db::connect(&self.url, 5).await.expect("connect");
        db.migrate().await.expect("migrate");
        db
    }

    /// A configuration for a server on this database, listening on 127.0.0.1:0.
    pub fn config(&self) -> Config {
        let mut c = Config::defaults();
        c.data_dir = self.dir.path().to_owned();
        c.database_url = Some(self.url.clone());
        c.http_listen = "127.0.0.1:0".parse().unwrap();
        c.sip_listen = "127.0.0.1:0".parse().unwrap();
        c.initial_admin_password = Some(masterz::secrets::Secret::new(PASSWORD.into()));
        c
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// A seeded company with an admin and an agent, each with an API token.
pub struct Tenant {
    pub company: CompanyId,
    pub slug: String,
    pub admin: UserId,
    pub admin_email: String,
    pub admin_token: String,
    pub agent: UserId,
    pub agent_email: String,
    pub agent_token: String,
}

/// Creates a company `slug` with an admin and an agent (password [`PASSWORD`]) and API tokens.
pub async fn seed_tenant(db: &Db, slug: &str) -> Tenant {
    let mut tx = db.begin().await.unwrap();
    let company = store::companies::create(&mut tx.ex(), &format!("Company {slug}"), slug)
        .await
        .unwrap();
    let mut users = Vec::new();
    for role in ["admin", "agent"] {
        let r = store::users::role_by_name(&mut tx.ex(), company.id, role)
            .await
            .unwrap()
            .unwrap();
        let email = format!("{role}@{slug}.example.com");
        let user = store::users::create_user(
            &mut tx.ex(),
            company.id,
            &store::users::NewUser {
                role_id: r.id,
                name: role,
                email: &email,
                password_hash: password_hash(),
                avatar_url: None,
            },
        )
        .await
        .unwrap();
        let token = format!("mzt_test_{slug}_{role}_{}", random_suffix());
        store::auth::create_token(
            &mut tx.ex(),
            company.id,
            user.id,
            "test",
            &masterz::secrets::token_hash(&token),
        )
        .await
        .unwrap();
        users.push((user.id, email, token));
    }
    tx.commit().await.unwrap();
    let (agent, agent_email, agent_token) = users.pop().unwrap();
    let (admin, admin_email, admin_token) = users.pop().unwrap();
    Tenant {
        company: company.id,
        slug: slug.into(),
        admin,
        admin_email,
        admin_token,
        agent,
        agent_email,
        agent_token,
    }
}

/// A running server with an HTTP client.
pub struct TestServer {
    pub server: Option<Server>,
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
}

impl TestServer {
    /// Starts a server on a fresh database of `backend`; `None` when Postgres is not available.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, |_| {}).await
    }

    /// Like [`TestServer::start`], adjusting the configuration first.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let mut config = db.config();
        adjust(&mut config);
        let server = Server::start(config).await.expect("server starts");
        let base = format!("http://{}", server.http_addr);
        let http = reqwest::Client::builder()
            .user_agent("masterz-tests/1")
            .build()
            .unwrap();
        Some(Self {
            server: Some(server),
            base,
            http,
            db,
        })
    }

    /// Starts a server again on the database (and data directory) of a stopped one.
    pub async fn on(db: TestDb) -> Self {
        let server = Server::start(db.config()).await.expect("server restarts");
        let base = format!("http://{}", server.http_addr);
        let http = reqwest::Client::builder()
            .user_agent("masterz-tests/1")
            .build()
            .unwrap();
        Self {
            server: Some(server),
            base,
            http,
            db,
        }
    }

    /// The text of `/metrics` (no `metrics_token` configured).
    pub async fn metrics(&self) -> String {
        let r = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert!(r.status().is_success(), "GET /metrics: {}", r.status());
        r.text().await.unwrap()
    }

    /// The server's database.
    pub fn store(&self) -> &Db {
        &self.server.as_ref().unwrap().state.db
    }

    /// A URL on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with a bearer token.
    pub fn req(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// Stops the server.
    pub async fn stop(mut self) -> TestDb {
        if let Some(s) = self.server.take() {
            s.shutdown(std::time::Duration::from_secs(5)).await.unwrap();
        }
        self.db
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.db.dir.path().to_owned()
    }
}

/// Runs an async test body on both backends: `sqlite_<name>` and `postgres_<name>`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A self-signed EC certificate for `cn` with its key, made by `openssl` in `dir` (valid one day).
pub fn self_signed_certificate(dir: &std::path::Path, cn: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "openssl is needed to make a test certificate"
    );
    (cert, key)
}
