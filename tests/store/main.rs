//! The store suite: every test runs on SQLite and on PostgreSQL.

#[path = "../common/mod.rs"]
mod common;

mod calls;
mod customers;
mod people;
mod sip;

use common::{Backend, TestDb};
use masterz::store::{self, customers::Profile};

// P19: nothing in the server deletes audit rows; they go only with their company (P20, by cascade).
#[test]
pub(crate) fn audit_logs_are_never_pruned() {
    fn scan(dir: &std::path::Path, hits: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scan(&path, hits);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap().to_lowercase();
                if text.contains("delete from audit_logs") || text.contains("update audit_logs") {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
    let mut hits = Vec::new();
    scan(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut hits,
    );
    assert!(
        hits.is_empty(),
        "audit rows are deleted or changed in {hits:?}"
    );
}

pub(crate) async fn db(backend: Backend) -> Option<(TestDb, store::Db)> {
    let t = TestDb::new(backend).await?;
    let db = t.open().await;
    Some((t, db))
}

pub(crate) fn named(name: &str) -> Profile {
    Profile {
        display_name: Some(name.into()),
        ..Default::default()
    }
}

/// An inbound message of `customer` in `conversation` at `at`; tests change what they need.
pub(crate) fn inbound(
    conversation_id: i64,
    customer_id: i64,
    at: i64,
) -> masterz::store::conversations::NewMessage<'static> {
    masterz::store::conversations::NewMessage {
        conversation_id,
        customer_id,
        direction: "in",
        sender_user_id: None,
        body: Some("m"),
        status: "received",
        external_id: None,
        at,
    }
}
