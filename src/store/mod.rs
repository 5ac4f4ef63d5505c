//! Storage: one sqlx pool, SQLite (the embedded default) or PostgreSQL, and one module per aggregate.
//!
//! Queries are written once in SQL that both databases accept (`$1` placeholders, `RETURNING`,
//! `CAST(… AS BIGINT)` for optional parameters, BIGINT millisecond timestamps) and run with runtime `query_as` + `FromRow`; the
//! [`q!`] macro sends the same statement to whichever driver the connection belongs to. Every
//! function that touches company data takes a [`CompanyId`], so nothing can be read without a scope.

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};

pub mod ai;
pub mod audit;
pub mod auth;
pub mod calls;
pub mod channels;
pub mod companies;
pub mod conversations;
pub mod customers;
pub mod deletion;
pub mod integration_logs;
pub mod knowledge;
pub mod messages;
pub mod outbox;
pub mod recordings;
pub mod routing;
pub mod sip;
pub mod timeline;
pub mod trunks;
pub mod usage;
pub mod users;

pub use crate::domain::{CompanyId, UserId};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A storage error. Constraint violations are told apart so the API can answer 409.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same unique key exists.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A referenced row does not exist, or the row is still referenced.
    #[error("reference violated: {0}")]
    Reference(String),
    /// Anything else the database said.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be decrypted.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    return Self::Conflict(db.message().to_owned());
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return Self::Reference(db.message().to_owned());
                }
                _ => {}
            }
        }
        Self::Database(e)
    }
}

/// Result of a store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The connection pool.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// One pooled connection.
pub enum Conn {
    /// SQLite.
    Sqlite(PoolConnection<Sqlite>),
    /// PostgreSQL.
    Postgres(PoolConnection<Postgres>),
}

/// An open transaction; dropped without [`Tx::commit`] it rolls back.
pub enum Tx {
    /// SQLite.
    Sqlite(Transaction<'static, Sqlite>),
    /// PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

/// A borrowed connection, from a [`Conn`] or a [`Tx`]: what store functions run on.
pub enum Ex<'c> {
    /// SQLite.
    Sqlite(&'c mut SqliteConnection),
    /// PostgreSQL.
    Postgres(&'c mut PgConnection),
}

impl Conn {
    /// The connection as an executor.
    pub fn ex(&mut self) -> Ex<'_> {
        match self {
            Conn::Sqlite(c) => Ex::Sqlite(c),
            Conn::Postgres(c) => Ex::Postgres(c),
        }
    }
}

impl Tx {
    /// The transaction as an executor.
    pub fn ex(&mut self) -> Ex<'_> {
        match self {
            Tx::Sqlite(t) => Ex::Sqlite(t),
            Tx::Postgres(t) => Ex::Postgres(t),
        }
    }

    /// Commits.
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// Runs one statement on an [`Ex`], whichever database it is.
///
/// `q!(ex, all T, sql, args…)` → `Vec<T>`; `opt T` → `Option<T>`; `one T` → `T`;
/// `scalar T` → one value of type `T`; `exec` → rows affected.
macro_rules! q {
    (@run $ex:expr, $build:ident, $ty:ty, $finish:ident, $sql:expr, [$($arg:expr),*]) => {
        match $ex {
            $crate::store::Ex::Sqlite(c) => {
                sqlx::$build::<_, $ty>($sql)$(.bind($arg))*.$finish(&mut **c).await
            }
            $crate::store::Ex::Postgres(c) => {
                sqlx::$build::<_, $ty>($sql)$(.bind($arg))*.$finish(&mut **c).await
            }
        }
    };
    ($ex:expr, all $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        q!(@run $ex, query_as, $ty, fetch_all, $sql, [$($arg),*])
    };
    ($ex:expr, opt $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        q!(@run $ex, query_as, $ty, fetch_optional, $sql, [$($arg),*])
    };
    ($ex:expr, one $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        q!(@run $ex, query_as, $ty, fetch_one, $sql, [$($arg),*])
    };
    ($ex:expr, scalar $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        q!(@run $ex, query_scalar, $ty, fetch_one, $sql, [$($arg),*])
    };
    ($ex:expr, scalars $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        q!(@run $ex, query_scalar, $ty, fetch_all, $sql, [$($arg),*])
    };
    ($ex:expr, scalar_opt $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        q!(@run $ex, query_scalar, $ty, fetch_optional, $sql, [$($arg),*])
    };
    ($ex:expr, exec, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $ex {
            $crate::store::Ex::Sqlite(c) => {
                sqlx::query($sql)$(.bind($arg))*.execute(&mut **c).await.map(|r| r.rows_affected())
            }
            $crate::store::Ex::Postgres(c) => {
                sqlx::query($sql)$(.bind($arg))*.execute(&mut **c).await.map(|r| r.rows_affected())
            }
        }
    };
}
pub(crate) use q;

impl Db {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`), creating a SQLite file if missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            return Ok(Db::Postgres(pool));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a webhook or call acknowledged to a peer survives power loss, not only kill -9.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Db::Sqlite(pool))
    }

    /// A second, small pool on the same database for work that can be derived again from what is
    /// already durable (the webhook processor's groups): on SQLite its commits do not wait for
    /// an fsync (`synchronous=NORMAL`), so they hold the single write lock only for the writing.
    /// WAL keeps the log in commit order, so such a commit can only be lost in a power cut
    /// together with everything committed after it, and the next fsync by anyone else (a durable
    /// commit, the webhook committer's flush) makes it durable too. On PostgreSQL, the same pool.
    pub fn relaxed(&self, max_connections: u32) -> Db {
        match self {
            Db::Sqlite(pool) => {
                let options = (*pool.connect_options())
                    .clone()
                    .synchronous(SqliteSynchronous::Normal);
                Db::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(max_connections)
                        .acquire_timeout(Duration::from_secs(10))
                        .connect_lazy_with(options),
                )
            }
            Db::Postgres(_) => self.clone(),
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the pending migrations of this database's set.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    /// A pooled connection.
    pub async fn conn(&self) -> Result<Conn> {
        Ok(match self {
            Db::Sqlite(p) => Conn::Sqlite(p.acquire().await?),
            Db::Postgres(p) => Conn::Postgres(p.acquire().await?),
        })
    }

    /// A new transaction, for writing.
    ///
    /// On SQLite it starts with `BEGIN IMMEDIATE`: it takes the write lock at once (waiting up to
    /// the busy timeout) instead of upgrading a read lock later, which SQLite refuses at once with
    /// "database is locked" when another writer got in between.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let one = q!(&mut conn.ex(), scalar i32, "SELECT 1")?;
        debug_assert_eq!(one, 1);
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// The current time in Unix milliseconds: the one clock of the store layer.
pub fn now_ms() -> i64 {
    crate::domain::Timestamp::now().0
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for ch in text.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}
