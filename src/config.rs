//! Configuration: built-in defaults, then a TOML file, then `MASTERZ_*` environment variables.
//!
//! Every option is declared once, in the `settings!` table below, with its type, default and
//! documentation. The table generates the [`Config`] struct, the TOML schema (same names in lower
//! case), the environment overlay (`MASTERZ_` + the name in upper case) and [`Config::KEYS`], which a
//! test compares against `docs/configuration.md` so the documentation cannot fall behind.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::secrets::Secret;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML file is not valid or names an unknown key.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// An environment variable holds a value of the wrong shape.
    #[error("invalid value for {name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// What was wrong.
        message: String,
    },
    /// The combination of values is inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Parses an option from the text of an environment variable.
pub trait FromEnv: Sized {
    /// Parses `text`; the error names what was expected.
    fn from_env(text: &str) -> Result<Self, String>;
}

macro_rules! from_env_via_fromstr {
    ($($ty:ty),*) => {$(
        impl FromEnv for $ty {
            fn from_env(text: &str) -> Result<Self, String> {
                text.trim().parse::<$ty>().map_err(|e| e.to_string())
            }
        }
    )*};
}
from_env_via_fromstr!(
    String,
    PathBuf,
    SocketAddr,
    std::net::IpAddr,
    u16,
    u32,
    u64,
    usize,
    bool,
    PortRange,
    LogFormat,
    ProxyList
);

impl<T: FromEnv> FromEnv for Option<T> {
    fn from_env(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            T::from_env(text).map(Some)
        }
    }
}

impl FromEnv for Secret<String> {
    fn from_env(text: &str) -> Result<Self, String> {
        Ok(Secret::new(text.trim().to_owned()))
    }
}

macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident : $ty:ty = $default:expr;
    )*) => {
        /// The server's configuration. See `docs/configuration.md` for every option.
        #[derive(Clone, Debug)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
        }

        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct FileConfig {
            $( #[serde(default)] $field: Option<$ty>, )*
        }

        impl Config {
            /// Every option: its name in the TOML file and its documentation.
            pub const KEYS: &'static [(&'static str, &'static str)] = &[
                $( (stringify!($field), concat!($($doc, "\n"),+)), )*
            ];

            /// The built-in defaults.
            pub fn defaults() -> Self {
                Self { $( $field: $default, )* }
            }

            fn apply_file(&mut self, file: FileConfig) {
                $( if let Some(value) = file.$field { self.$field = value; } )*
            }

            fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
                $(
                    let name = concat!("MASTERZ_", stringify!($field)).to_ascii_uppercase();
                    if let Some(text) = env(&name) {
                        self.$field = <$ty as FromEnv>::from_env(&text)
                            .map_err(|message| ConfigError::Env { name, message })?;
                    }
                )*
                Ok(())
            }
        }
    };
}

settings! {
    /// Directory for the SQLite database, the application key and (later) recordings.
    data_dir: PathBuf = PathBuf::from("./data");
    /// Database URL. Empty: the SQLite file `masterz.db` in the data directory.
    /// A `postgres://` URL selects PostgreSQL; `sqlite://PATH` another SQLite file.
    database_url: Option<String> = None;
    /// Maximum number of pooled database connections.
    database_max_connections: u32 = 16;
    /// Address for HTTP (API, webhooks, agent web app). Port 0 picks a free port; the chosen
    /// address is logged.
    http_listen: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 8080));
    /// Address for SIP over UDP and TCP. Port 0 picks a free port.
    sip_listen: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 5060));
    /// Digest realm the SIP registrar challenges softphones with (RFC 3261 §22). One realm
    /// for the whole server: SIP usernames are unique across companies.
    sip_realm: String = "masterz".to_owned();
    /// Address for SIP over TLS (RFC 3261 §26.2), e.g. `0.0.0.0:5061`, with the certificate of
    /// `sip_tls_cert`/`sip_tls_key` (default: `tls_cert`/`tls_key`). Empty: no SIP over TLS.
    sip_tls_listen: Option<SocketAddr> = None;
    /// PEM certificate chain for SIP over TLS. Empty: `tls_cert`.
    sip_tls_cert: Option<PathBuf> = None;
    /// PEM private key for `sip_tls_cert`. Empty: `tls_key`.
    sip_tls_key: Option<PathBuf> = None;
    /// Host name or IP address this server gives peers in Via and Contact headers (a NAT's
    /// public address). Empty: the listening address, or the address of the default route.
    sip_public_host: Option<String> = None;
    /// Digest algorithms offered in registrar challenges, one challenge each, most preferred
    /// first: `MD5`, `SHA-256` (RFC 8760). Default `MD5` alone: SIPp 3.6 knows only MD5, and
    /// libre-based phones (baresip 1.0) fail outright on a SHA-256 challenge instead of skipping it.
    sip_digest_algorithms: String = "MD5".to_owned();
    /// Shortest registration accepted, in seconds; shorter ones get 423 Interval Too Brief.
    sip_min_expires: u32 = 60;
    /// Longest registration granted, in seconds; longer requests are shortened.
    sip_max_expires: u32 = 3600;
    /// Failed digest answers allowed per source IP and per SIP username within
    /// `login_window_secs`; then REGISTERs get 403 until the window ends.
    sip_max_auth_failures: u32 = 10;
    /// Requests without credentials allowed per source IP within `login_window_secs`
    /// (every first REGISTER counts); then 403 until the window ends.
    sip_max_unauthenticated: u32 = 600;
    /// SIP timer T1 (the round-trip estimate, RFC 3261 §17.1.1.1) in milliseconds.
    sip_t1_ms: u64 = 500;
    /// How often trunk changes are picked up, in seconds.
    sip_trunk_poll_secs: u64 = 5;
    /// Inclusive range of UDP ports for RTP, written `FIRST-LAST`.
    rtp_ports: PortRange = PortRange { first: 20000, last: 29999 };
    /// Address the RTP sockets bind to. Empty: the IP of `sip_listen`.
    rtp_listen_ip: Option<std::net::IpAddr> = None;
    /// Address written into SDP for the RTP sockets (a NAT's public address). Empty: the
    /// advertised SIP host when it is an IP address, else `rtp_listen_ip`.
    rtp_public_ip: Option<std::net::IpAddr> = None;
    /// Address offered to browsers as the ICE host candidate of WebRTC legs (1:1 NAT: the
    /// public address). Empty: the RTP public address.
    webrtc_public_ip: Option<std::net::IpAddr> = None;
    /// Seconds a browser has, after its SDP answer, to complete ICE and DTLS; then its leg
    /// fails and the call goes on ringing the other agents.
    webrtc_connect_timeout_secs: u64 = 10;
    /// Seconds without RTP from a leg that is not on hold before both legs are hung up.
    media_timeout_secs: u64 = 30;
    /// Longest call, in seconds; then both legs are hung up.
    call_max_duration_secs: u64 = 4 * 3600;
    /// Seconds agents ring when the DID has no group (a group has its own timeout).
    call_ring_timeout_secs: u64 = 30;
    /// Final response to the caller when nobody answered and the DID has no group.
    call_no_answer_status: u16 = 480;
    /// Session interval (RFC 4028) asked for and granted, in seconds.
    sip_session_expires_secs: u32 = 1800;
    /// Smallest session interval accepted (RFC 4028 Min-SE), in seconds; smaller → 422.
    sip_min_se_secs: u32 = 90;
    /// Audio frames the media engine may queue for the recorder; when the queue is full,
    /// frames are dropped (counted, and heard as silence) rather than slowing the relay.
    recording_queue_frames: usize = 16_384;
    /// Seconds between runs of the recording retention job (each company's
    /// `recording_retention_days`).
    recording_retention_check_secs: u64 = 3600;
    /// Application key(s) for encrypting credentials at rest: base64 of 32 bytes. Several keys may
    /// be given separated by commas; the first encrypts, all decrypt. Empty: the key file
    /// `app.key` in the data directory, generated on first start.
    app_key: Option<Secret<String>> = None;
    /// Public base URL of this server (for links such as invitations), e.g.
    /// `https://pbx.example.com`. Empty: derived from `http_listen`.
    public_url: Option<String> = None;
    /// PEM certificate chain. With `tls_key`, HTTP is served as HTTPS.
    tls_cert: Option<PathBuf> = None;
    /// PEM private key for `tls_cert`.
    tls_key: Option<PathBuf> = None;
    /// Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are trusted, as a
    /// comma-separated list of IP addresses. Empty: the peer address is the client address.
    trusted_proxies: ProxyList = ProxyList::default();
    /// Log format: `text` (human, coloured in a terminal) or `json` (one object per line).
    log_format: LogFormat = LogFormat::Text;
    /// Log filter in `tracing` syntax, e.g. `info` or `masterz=debug,sqlx=warn`.
    log_level: String = "info".to_owned();
    /// Largest accepted HTTP request body, in bytes; larger bodies get 413.
    max_body_bytes: usize = 1024 * 1024;
    /// Lifetime of a web session, in hours.
    session_ttl_hours: u64 = 24 * 14;
    /// Failed logins allowed per account within `login_window_secs` before 429.
    login_max_failures_per_account: u32 = 5;
    /// Failed logins allowed per client IP within `login_window_secs` before 429.
    login_max_failures_per_ip: u32 = 20;
    /// Window of the login rate limit, in seconds.
    login_window_secs: u64 = 15 * 60;
    /// Lifetime of an invitation, in hours.
    invitation_ttl_hours: u64 = 7 * 24;
    /// Email of the first admin, created on the first start of an empty database.
    initial_admin_email: String = "admin@masterz.local".to_owned();
    /// Password of the first admin. Empty: a random one, printed once on the first start.
    initial_admin_password: Option<Secret<String>> = None;
    /// Bearer token that `GET /metrics` requires. Empty: `/metrics` is open (the Prometheus
    /// convention; it carries counts only, no personal data).
    metrics_token: Option<Secret<String>> = None;
    /// App secret of the Meta app that masterz runs as: `X-Hub-Signature-256` of every POST to
    /// `/webhooks/meta` is checked with it. A channel account with its own `app_secret` (a business
    /// that brings its own Meta app) is checked with that instead. Empty: only channel secrets.
    meta_app_secret: Option<Secret<String>> = None;
    /// Verify token of Meta's webhook handshake (`GET /webhooks/meta?hub.verify_token=…`). A
    /// channel account's own `verify_token` is accepted too.
    meta_verify_token: Option<Secret<String>> = None;
    /// Base URL of Meta's Graph API, with the pinned version, for sending (Messenger, Instagram,
    /// WhatsApp Cloud API). Tests point it at a local fake.
    meta_graph_url: String = "https://graph.facebook.com/v23.0".to_owned();
    /// Largest accepted webhook body, in bytes (Meta batches up to 1000 entries); larger → 413.
    webhook_max_body_bytes: usize = 8 * 1024 * 1024;
    /// Days an `integration_logs` row is kept (privacy promise P18); a job prunes older rows.
    integration_log_retention_days: u64 = 30;
    /// Attempts to send one outbound message before it is marked failed (transient errors and
    /// rate limits are retried with exponential backoff and jitter, or after `Retry-After`).
    outbox_max_attempts: u32 = 8;
    /// Base URL of the OpenAI-compatible Chat Completions API used for reply suggestions
    /// (`{url}/chat/completions`). A company's own `ai.base_url` wins over it.
    openai_url: String = "https://api.openai.com/v1".to_owned();
    /// Model asked for reply suggestions when the company names none.
    openai_model: String = "gpt-4o-mini".to_owned();
    /// API key for companies that set none of their own. Empty: only companies with their own
    /// key get suggestions.
    openai_api_key: Option<Secret<String>> = None;
    /// Messages of the conversation (the newest) sent as context with a suggestion request
    /// (privacy promise P17: nothing else of the conversation goes).
    ai_context_messages: u32 = 10;
    /// Knowledge-base passages (best full-text matches for the inbound message) sent with it.
    ai_knowledge_chunks: u32 = 3;
    /// Attempts at one suggestion before it is marked failed (429 with `Retry-After` and 5xx are
    /// retried; `insufficient_quota` and other 4xx are not).
    ai_max_attempts: u32 = 4;
    /// Days between closing a company and deleting all its data (privacy promise P20). 0 deletes
    /// at once.
    company_deletion_days: u64 = 30;
    /// Seconds a graceful shutdown waits for requests in flight before exiting.
    shutdown_grace_secs: u64 = 10;
    /// Billing plans (privacy promise P15): per plan, the most of each metric a company may use
    /// in a calendar month. TOML tables `[plans.NAME]` with `METRIC = LIMIT`; in the environment
    /// `NAME:METRIC=LIMIT,…;NAME:…`. They overlay the built-in `free`, `pro` and `enterprise`.
    plans: crate::billing::Plans = crate::billing::Plans::builtin();
    /// Bearer token of the server operator for `GET /operator/stats` (aggregate counts, no
    /// personal data, P16). Empty: that endpoint does not exist (404).
    operator_token: Option<Secret<String>> = None;
}

impl Config {
    /// Loads the configuration: defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, &|name| std::env::var(name).ok())
    }

    /// Like [`Config::load`] with an explicit environment (tests use this).
    pub fn load_with(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::defaults();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let parsed: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            config.apply_file(parsed);
        }
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key must be set together".into(),
            ));
        }
        if self.database_max_connections < 2 {
            // A login holds one connection while its transaction takes another.
            return Err(ConfigError::Invalid(
                "database_max_connections must be at least 2".into(),
            ));
        }
        if self.login_window_secs == 0 || self.session_ttl_hours == 0 {
            return Err(ConfigError::Invalid(
                "login_window_secs and session_ttl_hours must be positive".into(),
            ));
        }
        let realm = self.sip_realm.trim();
        if realm.is_empty()
            || realm.len() > 128
            || realm
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            // It is sent inside a quoted string: `realm="…"`.
            return Err(ConfigError::Invalid(
                "sip_realm must be 1–128 characters without quotes, backslashes or control characters".into(),
            ));
        }
        if self.sip_min_expires == 0 || self.sip_min_expires > self.sip_max_expires {
            return Err(ConfigError::Invalid(
                "sip_min_expires must be positive and at most sip_max_expires".into(),
            ));
        }
        if self.sip_t1_ms == 0 || self.sip_max_auth_failures == 0 {
            return Err(ConfigError::Invalid(
                "sip_t1_ms and sip_max_auth_failures must be positive".into(),
            ));
        }
        let algorithms = self.sip_digest_algorithms.split(',').map(str::trim);
        if algorithms.clone().all(str::is_empty)
            || algorithms
                .filter(|a| !a.is_empty())
                .any(|a| !a.eq_ignore_ascii_case("MD5") && !a.eq_ignore_ascii_case("SHA-256"))
        {
            return Err(ConfigError::Invalid(
                "sip_digest_algorithms must list MD5 and/or SHA-256".into(),
            ));
        }
        if self.sip_tls_listen.is_some() && self.sip_tls_files().is_none() {
            return Err(ConfigError::Invalid(
                "sip_tls_listen needs sip_tls_cert and sip_tls_key (or tls_cert and tls_key)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The certificate and key for SIP over TLS: `sip_tls_cert`/`sip_tls_key`, else the HTTPS ones.
    pub fn sip_tls_files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        match (
            &self.sip_tls_cert,
            &self.sip_tls_key,
            &self.tls_cert,
            &self.tls_key,
        ) {
            (Some(c), Some(k), _, _) | (None, None, Some(c), Some(k)) => Some((c, k)),
            _ => None,
        }
    }

    /// The database URL in effect: the configured one, or the SQLite file in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.trim().to_owned(),
            _ => format!("sqlite://{}", self.data_dir.join("masterz.db").display()),
        }
    }

    /// Whether HTTP is served over TLS by masterz itself.
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }
}

/// An inclusive UDP port range, `FIRST-LAST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("expected FIRST-LAST, got {s:?}"))?;
        let first: u16 = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
        let last: u16 = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
        if first == 0 || first > last {
            return Err(format!("empty or invalid range {s:?}"));
        }
        Ok(Self { first, last })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("expected text or json, got {other:?}")),
        }
    }
}

/// The addresses of trusted reverse proxies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyList(pub Vec<IpAddr>);

impl FromStr for ProxyList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().map_err(|_| format!("bad IP address {p:?}")))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for ProxyList {
    #[allow(clippy::enum_variant_names)]
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<String>),
            Text(String),
        }
        let text = match Form::deserialize(d)? {
            Form::List(items) => items.join(","),
            Form::Text(text) => text,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_match_the_documented_interface() {
        let c = Config::load_with(None, &env_of(&[])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.http_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.sip_listen.to_string(), "0.0.0.0:5060");
        assert_eq!(c.rtp_ports.to_string(), "20000-29999");
        assert_eq!(c.effective_database_url(), "sqlite://./data/masterz.db");
        assert_eq!(c.sip_realm, "masterz");
    }

    #[test]
    fn file_then_environment_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("masterz.toml");
        std::fs::write(
            &path,
            "http_listen = \"127.0.0.1:9000\"\nrtp_ports = \"30000-30010\"\ndata_dir = \"/srv/mz\"\n",
        )
        .unwrap();
        let c = Config::load_with(
            Some(&path),
            &env_of(&[
                ("MASTERZ_HTTP_LISTEN", "127.0.0.1:0"),
                ("MASTERZ_TRUSTED_PROXIES", "10.0.0.1, ::1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.http_listen.to_string(), "127.0.0.1:0");
        assert_eq!(
            c.rtp_ports,
            PortRange {
                first: 30000,
                last: 30010
            }
        );
        assert_eq!(c.data_dir, PathBuf::from("/srv/mz"));
        assert_eq!(c.trusted_proxies.0.len(), 2);
        assert_eq!(c.effective_database_url(), "sqlite:///srv/mz/masterz.db");
    }

    #[test]
    fn bad_values_name_the_culprit() {
        let err = Config::load_with(None, &env_of(&[("MASTERZ_SIP_REALM", "a\"b")])).unwrap_err();
        assert!(err.to_string().contains("sip_realm"), "{err}");
        let err = Config::load_with(None, &env_of(&[("MASTERZ_RTP_PORTS", "9-1")])).unwrap_err();
        assert!(err.to_string().contains("MASTERZ_RTP_PORTS"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "no_such_key = 1\n").unwrap();
        let err = Config::load_with(Some(&path), &env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("no_such_key"), "{err}");
    }

    #[test]
    fn every_key_is_documented() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/configuration.md"
        ))
        .unwrap();
        for (key, _) in Config::KEYS {
            let env = format!("MASTERZ_{}", key.to_ascii_uppercase());
            assert!(doc.contains(&format!("`{key}`")), "{key} missing in docs");
            assert!(doc.contains(&env), "{env} missing in docs");
        }
    }
}
