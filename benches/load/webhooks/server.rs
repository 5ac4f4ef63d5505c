//! The server under test and its database: a release `masterz serve`, its CLI, and the store the
//! durability check reads.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::{APP_SECRET, bin};

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite,
    /// The server's URL, the admin URL and the database's name (dropped at the end).
    Postgres {
        url: String,
        admin: String,
        name: String,
    },
}

impl Backend {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

/// `url` with its database replaced by `name`.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

pub(crate) struct Server {
    pub(crate) data: std::path::PathBuf,
    pub(crate) backend: Backend,
    pub(crate) log_level: &'static str,
}

impl Server {
    pub(crate) fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("MASTERZ_DATA_DIR", &self.data)
            .env("MASTERZ_SIP_LISTEN", "127.0.0.1:0")
            .env("MASTERZ_LOG_LEVEL", self.log_level)
            .env("MASTERZ_META_APP_SECRET", APP_SECRET)
            .env(
                "MASTERZ_DATABASE_URL",
                match &self.backend {
                    Backend::Sqlite => "",
                    Backend::Postgres { url, .. } => url,
                },
            );
        c
    }

    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .env("MASTERZ_HTTP_LISTEN", "127.0.0.1:0")
            .output()
            .expect("run masterz");
        assert!(
            out.status.success(),
            "masterz {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `masterz serve` on a free port, once `/readyz` answers 200: (child, port).
    pub(crate) fn start(&self, log: &str) -> (Child, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log_file = std::fs::File::create(self.data.join(log)).expect("log file");
        let mut child = self
            .command()
            .arg("serve")
            .env("MASTERZ_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start masterz serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(self.data.join(log)).unwrap_or_default();
                panic!("masterz serve exited ({status}):\n{text}");
            }
            if ready(port) {
                return (child, port);
            }
            assert!(Instant::now() < deadline, "masterz serve not ready in 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub(crate) fn ready(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

pub(crate) enum Store {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Store {
    pub(crate) async fn open(server: &Server) -> Store {
        match &server.backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", server.data.join("masterz.db").display());
                Store::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect(&url)
                        .await
                        .expect("open the SQLite database"),
                )
            }
            Backend::Postgres { url, .. } => Store::Pg(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("connect to PostgreSQL"),
            ),
        }
    }

    pub(crate) async fn count(&self, filter: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM integration_logs WHERE direction = 'in' {filter}");
        match self {
            // The filters are this file's own constants.
            Store::Sqlite(p) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(p)
                    .await
            }
            Store::Pg(p) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(p)
                    .await
            }
        }
        .expect("count integration_logs")
    }

    /// The `mid` of every stored inbound event.
    pub(crate) async fn mids(&self) -> Vec<Option<String>> {
        match self {
            Store::Sqlite(p) => {
                sqlx::query_scalar(
                    "SELECT json_extract(request_body, '$.entry[0].messaging[0].message.mid') \
                 FROM integration_logs WHERE direction = 'in'",
                )
                .fetch_all(p)
                .await
            }
            Store::Pg(p) => {
                sqlx::query_scalar(
                    "SELECT request_body::jsonb #>> '{entry,0,messaging,0,message,mid}' \
                 FROM integration_logs WHERE direction = 'in'",
                )
                .fetch_all(p)
                .await
            }
        }
        .expect("read integration_logs")
    }

    pub(crate) async fn close(self) {
        match self {
            Store::Sqlite(p) => p.close().await,
            Store::Pg(p) => p.close().await,
        }
    }
}

pub(crate) async fn admin_sql(admin: &str, sql: String) {
    let mut c = sqlx::PgConnection::connect(admin)
        .await
        .expect("connect to the PostgreSQL admin URL");
    // Database names made by this file.
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(&mut c)
        .await
        .expect(&sql);
    let _ = c.close().await;
}
