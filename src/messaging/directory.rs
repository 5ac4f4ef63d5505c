//! Which channel account a webhook belongs to, with the secrets that check it: an in-memory map
//! of every messaging channel account, reloaded from the database when it is older than
//! [`MAX_AGE`], when the API changed a channel ([`Directory::invalidate`]), or on a miss (at
//! most once per [`MISS_RELOAD`], so unknown ids cannot turn every request into a reload). A
//! channel created by `masterz admin create-channel` in another process is thus found on its
//! first webhook.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::domain::{ChannelKind, CompanyId};
use crate::secrets::{Keyring, Secret};
use crate::store::{self, Db, channels};

/// Reload the map when it is older than this.
pub const MAX_AGE: Duration = Duration::from_secs(10);
/// Reload on a miss at most this often.
pub const MISS_RELOAD: Duration = Duration::from_secs(1);

/// One channel account as the webhook router sees it.
#[derive(Debug)]
pub struct Route {
    /// Company.
    pub company: CompanyId,
    /// Channel account id.
    pub account_id: i64,
    /// Kind.
    pub kind: ChannelKind,
    /// The provider's id (Page id, Instagram account id, phone number id, WAHA session).
    pub external_id: Option<String>,
    /// The business's own Meta app secret, when it brings its own app.
    pub app_secret: Option<Secret<String>>,
    /// The business's own verify token.
    pub verify_token: Option<Secret<String>>,
    /// WAHA: the API key (outbound `X-Api-Key`; inbound, when WAHA sends it as a custom header).
    pub api_key: Option<Secret<String>>,
    /// WAHA: the webhook HMAC key.
    pub hmac_key: Option<Secret<String>>,
}

impl Route {
    /// Every secret of the account, for scrubbing logs.
    pub fn secrets(&self) -> Vec<&str> {
        [
            &self.app_secret,
            &self.verify_token,
            &self.api_key,
            &self.hmac_key,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose().as_str())
        .collect()
    }
}

#[derive(Default)]
struct Snapshot {
    /// Meta routing keys (external id, WhatsApp Business Account id) → route.
    by_key: HashMap<String, Arc<Route>>,
    by_id: HashMap<i64, Arc<Route>>,
    loaded_at: Option<Instant>,
    last_miss_reload: Option<Instant>,
    stale: bool,
}

/// The routing map. See the module documentation.
pub struct Directory {
    db: Db,
    keyring: Keyring,
    snapshot: RwLock<Snapshot>,
    reload: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").finish_non_exhaustive()
    }
}

fn text(map: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<Secret<String>> {
    map.get(key)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(|s| Secret::new(s.to_owned()))
}

impl Directory {
    /// An empty map over `db`; it loads on first use.
    pub fn new(db: Db, keyring: Keyring) -> Self {
        Self {
            db,
            keyring,
            snapshot: RwLock::default(),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the map stale: the next lookup reloads it. Called after any channel change.
    pub fn invalidate(&self) {
        self.snapshot
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .stale = true;
    }

    fn fresh(&self) -> bool {
        let s = self.read();
        !s.stale && s.loaded_at.is_some_and(|t| t.elapsed() < MAX_AGE)
    }

    async fn ensure_fresh(&self) {
        if !self.fresh() {
            self.reload_now(false).await;
        }
    }

    /// Reloads; with `miss`, only if the last reload on a miss was long enough ago.
    async fn reload_now(&self, miss: bool) {
        let _one = self.reload.lock().await;
        {
            let s = self.read();
            if miss
                && s.last_miss_reload
                    .is_some_and(|t| t.elapsed() < MISS_RELOAD)
            {
                return;
            }
            if !miss && !s.stale && s.loaded_at.is_some_and(|t| t.elapsed() < MAX_AGE) {
                return; // another request reloaded while this one waited
            }
        }
        match self.load().await {
            Ok(mut fresh) => {
                fresh.loaded_at = Some(Instant::now());
                let mut s = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
                fresh.last_miss_reload = if miss {
                    Some(Instant::now())
                } else {
                    s.last_miss_reload
                };
                *s = fresh;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load channel accounts for webhook routing");
                let mut s = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
                if miss {
                    s.last_miss_reload = Some(Instant::now());
                }
            }
        }
    }

    async fn load(&self) -> store::Result<Snapshot> {
        let rows = {
            let mut conn = self.db.conn().await?;
            channels::routable(&mut conn.ex()).await?
        };
        let mut snap = Snapshot::default();
        for row in rows {
            let Some(kind) = ChannelKind::parse(&row.kind) else {
                continue;
            };
            let creds = match row.credentials.as_deref() {
                Some(c) => match channels::open(&self.keyring, c) {
                    Ok(m) => m.expose().clone(),
                    Err(e) => {
                        tracing::error!(account = row.id, error = %e, "cannot decrypt channel credentials");
                        Default::default()
                    }
                },
                None => Default::default(),
            };
            let settings: serde_json::Value =
                serde_json::from_str(&row.settings).unwrap_or_default();
            let route = Arc::new(Route {
                company: row.company_id,
                account_id: row.id,
                kind,
                external_id: row.external_id.clone(),
                app_secret: text(&creds, "app_secret"),
                verify_token: text(&creds, "verify_token"),
                api_key: text(&creds, "api_key"),
                hmac_key: text(&creds, "hmac_key"),
            });
            if kind != ChannelKind::Waha {
                if let Some(ext) = row.external_id.filter(|e| !e.is_empty()) {
                    snap.by_key.insert(ext, route.clone());
                }
                if let Some(waba) = settings.get("waba_id").and_then(|v| v.as_str()) {
                    snap.by_key.entry(waba.to_owned()).or_insert(route.clone());
                }
            }
            snap.by_id.insert(row.id, route);
        }
        Ok(snap)
    }

    /// The Meta channel account for a routing key (entry id or phone number id).
    pub async fn meta(&self, key: &str) -> Option<Arc<Route>> {
        self.ensure_fresh().await;
        if let Some(r) = self.read().by_key.get(key) {
            return Some(r.clone());
        }
        self.reload_now(true).await;
        self.read().by_key.get(key).cloned()
    }

    /// The channel account with this id (WAHA webhooks name theirs in the URL).
    pub async fn by_id(&self, id: i64) -> Option<Arc<Route>> {
        self.ensure_fresh().await;
        if let Some(r) = self.read().by_id.get(&id) {
            return Some(r.clone());
        }
        self.reload_now(true).await;
        self.read().by_id.get(&id).cloned()
    }

    /// Whether `token` is the verify token of some Meta channel account.
    pub async fn is_verify_token(&self, token: &str) -> bool {
        self.ensure_fresh().await;
        self.read().by_id.values().any(|r| {
            r.kind != ChannelKind::Waha
                && r.verify_token.as_ref().is_some_and(|t| {
                    super::signature::same_secret(t.expose().as_bytes(), token.as_bytes())
                })
        })
    }
}
