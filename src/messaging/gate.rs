//! The write gate: turns at SQLite's single write lock for the bridge's busy writers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::{Backend, Db};

/// Turns at SQLite's single write lock for the bridge's busy writers: the committer (webhook
/// answers wait for it) and the background ones (the processor, erasures).
///
/// Without it they meet in SQLite's busy handler, which sleeps in growing steps (up to 100 ms)
/// before it retries: under load the webhook answers waited for those sleeps. An async mutex hands
/// the lock over the moment the other transaction commits. The committer goes first: a background
/// writer waits while the committer is waiting, writing or having a group flushed ([`Claim`]),
/// for at most [`MAX_DEFER`] so that it is never starved, and cuts its own transaction short when
/// the committer starts waiting ([`WriteGate::urgent`]; the processor after 2 ms of work). A
/// webhook then waits for a sliver of background work, not a whole group. PostgreSQL locks rows,
/// so it needs no gate.
#[derive(Clone, Debug, Default)]
pub struct WriteGate(Arc<GateInner>);

#[derive(Debug, Default)]
struct GateInner {
    lock: tokio::sync::Mutex<()>,
    /// Committer turns asked for and not yet finished.
    urgent: AtomicUsize,
    /// Notified when the last of them finishes.
    idle: Notify,
}

/// Longest a background writer defers to the committer before it takes its turn anyway.
pub const MAX_DEFER: Duration = Duration::from_millis(10);

/// A turn at the gate; the write lock is released when it is dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    _lock: Option<tokio::sync::MutexGuard<'a, ()>>,
    urgent: Option<&'a GateInner>,
}

impl GateInner {
    /// Gives a committer claim back; the last one wakes the waiting background writers.
    fn release(&self) {
        if self.urgent.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Some(inner) = self.urgent {
            inner.release();
        }
    }
}

/// The committer's claim on the gate without the lock: background writers keep deferring to it
/// (as they do while it writes) until it is dropped. The committer hands it on with a group whose
/// log is being flushed, so the processor does not slip in between a flush and the next group.
#[derive(Debug)]
pub struct Claim(WriteGate);

impl Drop for Claim {
    fn drop(&mut self) {
        (self.0).0.release();
    }
}

impl Turn<'_> {
    /// Releases the write lock but keeps the committer's claim (see [`Claim`]); `None` for a turn
    /// that had no claim (PostgreSQL, or a background turn).
    pub fn keep_claim(mut self, gate: &WriteGate) -> Option<Claim> {
        self._lock = None;
        // Taken out, so this turn's drop does not give the claim back; the Claim does.
        self.urgent.take().map(|_| Claim(gate.clone()))
    }
}

impl WriteGate {
    /// The committer's turn: on SQLite, background writers make way for it.
    pub async fn turn(&self, db: &Db) -> Turn<'_> {
        match db.backend() {
            Backend::Sqlite => {
                let inner = &*self.0;
                inner.urgent.fetch_add(1, Ordering::AcqRel);
                // The counter is taken back by the drop, even if this future is dropped early.
                let mut turn = Turn {
                    _lock: None,
                    urgent: Some(inner),
                };
                turn._lock = Some(inner.lock.lock().await);
                turn
            }
            Backend::Postgres => Turn {
                _lock: None,
                urgent: None,
            },
        }
    }

    /// A background writer's turn: on SQLite, after the committer's waiting turns (for at most
    /// [`MAX_DEFER`]); on PostgreSQL at once.
    pub async fn background_turn(&self, db: &Db) -> Turn<'_> {
        if db.backend() == Backend::Postgres {
            return Turn {
                _lock: None,
                urgent: None,
            };
        }
        let inner = &*self.0;
        let deadline = tokio::time::Instant::now() + MAX_DEFER;
        while self.urgent() {
            let idle = inner.idle.notified();
            tokio::pin!(idle);
            // Registered before the check again, so a wake-up in between is not lost.
            idle.as_mut().enable();
            if !self.urgent() {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        Turn {
            _lock: Some(inner.lock.lock().await),
            urgent: None,
        }
    }

    /// Whether the committer is waiting for the lock, writing, or waiting for its group's flush:
    /// a background writer in a turn should commit what it has and make way.
    pub fn urgent(&self) -> bool {
        self.0.urgent.load(Ordering::Acquire) > 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    async fn sqlite() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("gate.db").display());
        let db = Db::connect(&url, 2).await.expect("database");
        (dir, db)
    }

    #[tokio::test]
    async fn background_writers_wait_for_the_committer_but_not_forever() {
        let (_dir, db) = sqlite().await;
        let gate = WriteGate::default();
        assert!(!gate.urgent());

        // The committer holds the lock: a background writer waits for it to finish.
        let held = gate.turn(&db).await;
        assert!(gate.urgent());
        let got = Arc::new(AtomicBool::new(false));
        let background = tokio::spawn({
            let (gate, db, got) = (gate.clone(), db.clone(), got.clone());
            async move {
                let _turn = gate.background_turn(&db).await;
                got.store(true, Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !got.load(Ordering::SeqCst),
            "took the lock from the committer"
        );
        drop(held);
        background.await.expect("background writer");
        assert!(got.load(Ordering::SeqCst));
        assert!(!gate.urgent());

        // A committer busy turn after turn (never idle in between) defers a background writer
        // for MAX_DEFER, not for ever: it then gets its turn in line.
        let stop = Arc::new(AtomicBool::new(false));
        let committer = tokio::spawn({
            let (gate, db, stop) = (gate.clone(), db.clone(), stop.clone());
            async move {
                let mut turns = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    let _turn = gate.turn(&db).await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    turns += 1;
                }
                turns
            }
        });
        while !gate.urgent() {
            tokio::task::yield_now().await;
        }
        let started = tokio::time::Instant::now();
        let deferred = tokio::time::timeout(Duration::from_secs(5), gate.background_turn(&db))
            .await
            .expect("a background writer gets its turn while the committer stays busy");
        let waited = started.elapsed();
        drop(deferred);
        stop.store(true, Ordering::SeqCst);
        assert!(committer.await.expect("committer") > 1);
        assert!(waited >= MAX_DEFER, "{waited:?}");
        assert!(!gate.urgent());
    }

    #[tokio::test]
    async fn a_dropped_committer_turn_gives_its_claim_back() {
        let (_dir, db) = sqlite().await;
        let gate = WriteGate::default();
        let held = gate.background_turn(&db).await;
        // A committer that gives up while waiting (its future dropped) must not stay "urgent".
        let wait = tokio::time::timeout(Duration::from_millis(20), gate.turn(&db)).await;
        assert!(wait.is_err());
        assert!(!gate.urgent());
        drop(held);
    }

    #[tokio::test]
    async fn a_kept_claim_frees_the_lock_but_keeps_background_writers_waiting() {
        let (_dir, db) = sqlite().await;
        let gate = WriteGate::default();
        let claim = gate
            .turn(&db)
            .await
            .keep_claim(&gate)
            .expect("a committer turn on SQLite has a claim");
        assert!(gate.urgent(), "the claim outlives the turn");
        // The lock itself is free: the committer's next group gets it at once.
        let next = tokio::time::timeout(Duration::from_millis(200), gate.turn(&db))
            .await
            .expect("the lock was released");
        drop(next);
        assert!(gate.urgent());
        drop(claim);
        assert!(!gate.urgent(), "dropping the claim gives it back");
        // A background turn has no claim to keep.
        assert!(gate.background_turn(&db).await.keep_claim(&gate).is_none());
        assert!(!gate.urgent());
    }
}
