//! The data lifecycle (privacy promises P20 and P21; see `docs/data-lifecycle.md`):
//! - [`erase`]: deleting one person, a customer, with everything that names them — the single
//!   path behind the API's customer deletion and Meta's data-deletion callback — and the
//!   deletion request with its confirmation code;
//! - [`signed_request`] and [`callback`]: Meta's data-deletion callback;
//! - [`page`]: the public Data Deletion page where a code's status is looked up;
//! - [`closure`]: closing a company (access ends at once) and the job that deletes a closed
//!   company's data after `company_deletion_days`.

pub mod callback;
pub mod closure;
pub mod erase;
pub mod page;
pub mod signed_request;

use std::sync::Arc;

use crate::http::AppState;

/// The status page of confirmation code `code`, under the server's public base URL.
pub fn status_url(base: &str, code: &str) -> String {
    format!("{}{}/{code}", base.trim_end_matches('/'), page::PATH)
}

/// Starts the lifecycle's background work: the purge of closed companies (at start-up, then
/// hourly).
pub fn spawn(state: &Arc<AppState>) {
    closure::spawn(state.clone());
}
