//! Authentication: passwords (bcrypt, cost 12), the login rate limit, and who a request is.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::domain::{CompanyId, Permission, PermissionSet, UserId};

/// bcrypt cost for new password hashes (P24).
pub const BCRYPT_COST: u32 = 12;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// bcrypt reads at most 72 bytes; longer passwords are refused rather than silently cut.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Why a password was refused or could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error(
        "password must have at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes"
    )]
    Length,
    /// bcrypt failed.
    #[error("password hashing failed: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    /// The blocking task was cancelled.
    #[error("password hashing task failed")]
    Task,
}

/// Checks a new password's length.
pub fn check_password_policy(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Length);
    }
    Ok(())
}

/// Hashes a password with bcrypt cost 12 on the blocking pool (it takes a few hundred ms).
pub async fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_password_policy(password)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST))
        .await
        .map_err(|_| PasswordError::Task)?
        .map_err(PasswordError::from)
}

/// Hashes synchronously (command-line use).
pub fn hash_password_blocking(password: &str) -> Result<String, PasswordError> {
    check_password_policy(password)?;
    Ok(bcrypt::hash(password, BCRYPT_COST)?)
}

/// Verifies `password` against a bcrypt hash (`$2a$`, `$2b$` and Laravel's `$2y$`). With no hash
/// (unknown user) it verifies against a dummy hash, so both cases take the same time.
pub async fn verify_password(password: &str, hash: Option<&str>) -> bool {
    let password = password.to_owned();
    let hash = hash.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => (dummy_hash().to_owned(), false),
        };
        bcrypt::verify(password, &hash).unwrap_or(false) && real
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        bcrypt::hash("masterz-timing-equaliser", BCRYPT_COST)
            // Hashing a constant of valid length with a valid cost cannot fail.
            .expect("bcrypt of a constant")
    })
}

/// The cost recorded in a bcrypt hash.
pub fn hash_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

/// Who is making a request: a user of a company, by session cookie or API token.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// The user's company: the scope of every query the request makes.
    pub company_id: CompanyId,
    /// The user's email.
    pub email: String,
    /// What the user's role allows.
    pub permissions: PermissionSet,
    /// The session, for cookie logins.
    pub session_id: Option<i64>,
    /// The token, for API tokens.
    pub token_id: Option<i64>,
}

impl Principal {
    /// Whether the role allows `p`.
    pub fn can(&self, p: Permission) -> bool {
        self.permissions.contains(p)
    }
}

impl From<crate::store::auth::Principal> for Principal {
    fn from(p: crate::store::auth::Principal) -> Self {
        Self {
            user_id: p.user_id,
            company_id: p.company_id,
            email: p.email,
            permissions: PermissionSet::from_stored(&p.permissions),
            session_id: p.session_id,
            token_id: p.token_id,
        }
    }
}

/// Counts failures per key in fixed windows; past the limit a key is refused until its window ends.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    state: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// A limiter allowing `limit` failures per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// If `key` is over its limit at `now`, how long until it may try again.
    pub fn blocked_for(&self, key: &str, now: Instant) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (start, count) = state.get(key)?;
        let end = *start + self.window;
        (*count >= self.limit && now < end).then(|| end - now)
    }

    /// Counts one failure of `key` at `now`.
    pub fn fail(&self, key: &str, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.len() > 100_000 {
            // Bound memory under a spray of distinct keys: forget finished windows.
            let window = self.window;
            state.retain(|_, (start, _)| now < *start + window);
        }
        let entry = state.entry(key.to_owned()).or_insert((now, 0));
        if now >= entry.0 + self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// Forgets `key` (after a successful login).
    pub fn reset(&self, key: &str) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_limit_until_window_ends() {
        let l = RateLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(l.blocked_for("a", t0).is_none());
        l.fail("a", t0);
        l.fail("a", t0);
        let wait = l.blocked_for("a", t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(l.blocked_for("b", t0).is_none());
        assert!(l.blocked_for("a", t0 + Duration::from_secs(61)).is_none());
        l.fail("a", t0 + Duration::from_secs(61));
        assert!(l.blocked_for("a", t0 + Duration::from_secs(62)).is_none());
        l.reset("a");
        assert!(l.blocked_for("a", t0).is_none());
    }

    #[tokio::test]
    async fn bcrypt_cost_12_and_laravel_hashes() {
        let hash = hash_password("correct horse").await.unwrap();
        assert_eq!(hash_cost(&hash), Some(12));
        assert!(verify_password("correct horse", Some(&hash)).await);
        assert!(!verify_password("wrong horse", Some(&hash)).await);
        // A cost-12 hash of "password" in the `$2y$` form that Laravel's Hash::make writes, made
        // by an independent implementation (Python's bcrypt, relabelled as PHP labels it).
        let laravel = "$2y$12$5gvgLkK.57fvicP27wu9cuAbiNqBx70xf9Xb9UiPrNCyTrrDVOlqq";
        assert!(verify_password("password", Some(laravel)).await);
        assert!(!verify_password("Password", Some(laravel)).await);
        assert!(!verify_password("password", None).await);
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy(&"x".repeat(73)).is_err());
    }
}
