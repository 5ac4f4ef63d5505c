//! The group committer: the one writer of inbound webhook rows, and what makes an acknowledged
//! webhook durable.
//!
//! A handler sends the committer its rows and waits. The committer takes everything queued (up to
//! [`MAX_BATCH`] rows) and writes it in one transaction with multi-row INSERTs. Concurrency turns
//! into bigger groups instead of more transactions. A handler answers 200 only after its rows are
//! on disk; if they cannot be stored it answers 503 and the provider retries.
//!
//! **On SQLite the fsync happens outside the write lock.** The committer has a connection of its
//! own with `synchronous=NORMAL`: its COMMIT appends the group to the write-ahead log and releases
//! SQLite's write lock without waiting for the disk. A second thread then flushes the log file
//! (`fdatasync`) and only then answers the group's handlers. While it waits for the disk, the
//! committer already writes the next group and the processor can take its turn at the lock; one
//! flush covers every group committed before it started. The guarantee is the one
//! `synchronous=FULL` gives, a group is acknowledged only once its log frames (and every frame
//! before them) are on stable storage, but the write lock is no longer held across the fsync.
//! Other writers keep the pool's `synchronous=FULL`.
//!
//! On PostgreSQL the group is one ordinary transaction on the pool (a durable commit).

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::{Notify, mpsc, oneshot};

use super::gate::{Claim, WriteGate};
use crate::store::integration_logs::{self, NewLog};
use crate::store::{Db, Ex};

/// Most rows written in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Handlers that may wait for the committer at once; more wait for a slot.
const QUEUE: usize = 4096;

struct Job {
    rows: Vec<NewLog>,
    done: oneshot::Sender<bool>,
}

/// The group committer's handle.
pub struct Committer {
    tx: mpsc::Sender<Job>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<Job>>>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

impl Default for Committer {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}

impl Committer {
    /// Starts the committer task on `db`; `written` is notified once committed rows are durable.
    /// Only the first call starts it. On SQLite, every transaction takes `gate` (see
    /// [`WriteGate`]).
    pub fn spawn(&self, db: Db, written: Arc<Notify>, gate: WriteGate) {
        let Some(rx) = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        tokio::spawn(run(rx, db, written, gate));
    }

    /// Stores `rows` durably; `false` if they could not be (answer 503).
    pub async fn commit(&self, rows: Vec<NewLog>) -> bool {
        if rows.is_empty() {
            return true;
        }
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job { rows, done }).await.is_err() {
            return false;
        }
        wait.await.unwrap_or(false)
    }
}

/// Where a group goes.
enum Writer {
    /// A transaction on the pool whose COMMIT is durable (PostgreSQL, or a SQLite database that
    /// is not in WAL mode).
    Pool,
    /// SQLite in WAL mode: a connection of the committer's own with `synchronous=NORMAL`; what it
    /// commits becomes durable when the flusher syncs `wal`.
    Wal {
        conn: Box<SqliteConnection>,
        wal: PathBuf,
    },
}

impl Writer {
    async fn open(db: &Db) -> Self {
        let Db::Sqlite(pool) = db else {
            return Writer::Pool;
        };
        let options: SqliteConnectOptions = (*pool.connect_options()).clone();
        let mut wal = options.get_filename().as_os_str().to_owned();
        wal.push("-wal");
        let opened = async {
            let mut conn = options
                .synchronous(SqliteSynchronous::Normal)
                .connect()
                .await?;
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>((conn, mode))
        };
        match opened.await {
            Ok((conn, mode)) if mode.eq_ignore_ascii_case("wal") => Writer::Wal {
                conn: Box::new(conn),
                wal: PathBuf::from(wal),
            },
            Ok((conn, mode)) => {
                tracing::info!(
                    mode,
                    "SQLite is not in WAL mode: webhook groups commit on the pool"
                );
                let _ = conn.close().await;
                Writer::Pool
            }
            Err(e) => {
                tracing::warn!(error = %e, "no connection of its own for the webhook committer: it commits on the pool");
                Writer::Pool
            }
        }
    }

    /// Writes `rows` in one transaction, at the committer's turn of the gate.
    async fn write(
        &mut self,
        db: &Db,
        gate: &WriteGate,
        rows: &[NewLog],
    ) -> crate::store::Result<Option<Claim>> {
        let turn = gate.turn(db).await;
        match self {
            Writer::Pool => {
                let mut tx = db.begin().await?;
                integration_logs::insert_many(&mut tx.ex(), rows).await?;
                tx.commit().await?;
                Ok(None)
            }
            Writer::Wal { conn, .. } => {
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                integration_logs::insert_many(&mut Ex::Sqlite(&mut tx), rows).await?;
                tx.commit().await?;
                // The lock is free for the next group; background writers keep waiting until
                // this group is flushed and answered.
                Ok(turn.keep_claim(gate))
            }
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Job>, db: Db, written: Arc<Notify>, gate: WriteGate) {
    let mut writer = Writer::open(&db).await;
    // Groups committed on the committer's own SQLite connection, waiting for the flusher.
    let flush = match &writer {
        Writer::Wal { wal, .. } => Some(spawn_flusher(wal.clone(), written.clone())),
        Writer::Pool => None,
    };
    let mut jobs: Vec<Job> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut count = first.rows.len();
        jobs.push(first);
        while count < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.rows.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let rows: Vec<NewLog> = jobs
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.rows))
            .collect();
        let (ok, claim) = match writer.write(&db, &gate, &rows).await {
            Ok(claim) => (true, claim),
            Err(e) => {
                tracing::error!(error = %e, rows = count, "cannot store webhook events");
                if matches!(writer, Writer::Wal { .. }) {
                    // A connection that failed once (its worker gone, the file replaced) is not
                    // trusted again: the next group gets a fresh one.
                    writer = Writer::open(&db).await;
                }
                (false, None)
            }
        };
        drop(rows);
        match &flush {
            Some(flush) if ok => {
                let group = Group {
                    jobs: std::mem::take(&mut jobs),
                    _claim: claim,
                };
                if let Err(mpsc::error::SendError(group)) = flush.send(group) {
                    tracing::error!("the webhook log flusher is gone");
                    answer(group.jobs, false);
                }
            }
            _ => {
                answer(std::mem::take(&mut jobs), ok);
                if ok {
                    written.notify_one();
                }
            }
        }
    }
}

/// A committed group on its way to the flusher, with the committer's claim on the gate.
struct Group {
    jobs: Vec<Job>,
    _claim: Option<Claim>,
}

fn answer(jobs: Vec<Job>, ok: bool) {
    for job in jobs {
        let _ = job.done.send(ok);
    }
}

/// The flusher: a thread that makes committed groups durable with one `fdatasync` of the
/// write-ahead log for everything committed before it starts, then answers their handlers.
fn spawn_flusher(wal: PathBuf, written: Arc<Notify>) -> mpsc::UnboundedSender<Group> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Group>();
    let spawned = std::thread::Builder::new()
        .name("masterz-wal-sync".into())
        .spawn(move || {
            let mut groups = Vec::new();
            while let Some(first) = rx.blocking_recv() {
                groups.push(first);
                while let Ok(more) = rx.try_recv() {
                    groups.push(more);
                }
                // Opened each time, so that it is always the log SQLite writes now (it deletes
                // the file when its last connection closes and creates it again).
                let synced = std::fs::File::open(&wal).and_then(|f| f.sync_data());
                if let Err(e) = &synced {
                    tracing::error!(error = %e, wal = %wal.display(), "cannot flush the webhook log to disk");
                }
                for group in groups.drain(..) {
                    answer(group.jobs, synced.is_ok());
                }
                if synced.is_ok() {
                    written.notify_one();
                }
            }
        });
    if let Err(e) = spawned {
        // Without the thread every group is answered 503 (the sender's channel is closed).
        tracing::error!(error = %e, "cannot start the webhook log flusher");
    }
    tx
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::{now_ms, q};

    fn row(n: usize) -> NewLog {
        NewLog {
            company_id: None,
            channel_account_id: None,
            direction: "in",
            provider: "meta",
            method: "POST",
            endpoint: "/webhooks/meta".into(),
            status: Some(200),
            duration_ms: None,
            request_headers: None,
            request_body: Some(format!("{{\"n\":{n}}}")),
            response_body: None,
            error: None,
            state: "ignored",
            message_id: None,
            created_at: now_ms(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_handler_is_answered_once_its_group_is_flushed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("committer.db").display());
        let db = Db::connect(&url, 4).await.expect("database");
        db.migrate().await.expect("migrations");
        assert!(
            matches!(Writer::open(&db).await, Writer::Wal { .. }),
            "a SQLite file in WAL mode gets the committer's own connection"
        );

        let committer = Arc::new(Committer::default());
        let written = Arc::new(Notify::new());
        committer.spawn(db.clone(), written.clone(), WriteGate::default());
        let notified = written.notified();
        let handlers: Vec<_> = (0..300)
            .map(|n| {
                let committer = committer.clone();
                tokio::spawn(async move { committer.commit(vec![row(n), row(n + 1000)]).await })
            })
            .collect();
        for h in handlers {
            assert!(h.await.expect("handler"), "every group is acknowledged");
        }
        tokio::time::timeout(Duration::from_secs(5), notified)
            .await
            .expect("the processor is woken after a flush");

        let mut conn = db.conn().await.expect("connection");
        let stored = q!(
            &mut conn.ex(),
            scalar i64,
            "SELECT COUNT(*) FROM integration_logs WHERE endpoint = '/webhooks/meta'"
        )
        .expect("count");
        assert_eq!(stored, 600, "every acknowledged row is in the database");
        assert!(
            dir.path().join("committer.db-wal").exists(),
            "the log the flusher syncs is the one SQLite writes"
        );
    }

    #[tokio::test]
    async fn nothing_to_store_is_answered_at_once() {
        let committer = Committer::default();
        assert!(committer.commit(Vec::new()).await);
    }
}
