//! Secrets: encryption at rest (AES-256-GCM under the application key) and redaction.
//!
//! A ciphertext is stored as text, `v1.<key id>.<base64(nonce ‖ ciphertext ‖ tag)>`. Every value
//! gets a fresh random 96-bit nonce. The key id (the first 4 bytes of SHA-256 of the key, in hex)
//! says which key of the [`Keyring`] opened it, so `masterz admin rotate-key` can re-encrypt values
//! under a new key while the old one still decrypts. The associated data binds a ciphertext to the
//! column it belongs to, so a value cannot be moved to another column and still open.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The text that stands for a secret wherever one would otherwise be printed or persisted.
pub const REDACTED: &str = "[redacted]";

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself; call sites are the places that need to read a secret.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Why a key or a ciphertext could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key text is not base64 of 32 bytes.
    #[error("application key is not base64 of 32 bytes")]
    BadKey,
    /// The ciphertext is not in the `v1.<kid>.<data>` form.
    #[error("stored ciphertext is malformed")]
    Malformed,
    /// No key in the ring has the ciphertext's key id.
    #[error("no application key with id {0} (was the key rotated or lost?)")]
    UnknownKey(String),
    /// The key is right but authentication failed: tampered data or wrong column.
    #[error("stored ciphertext failed authentication")]
    Tampered,
    /// The key file could not be read or written.
    #[error("application key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Rng,
}

/// One AES-256 key with its id.
#[derive(Clone)]
pub struct Key {
    id: String,
    bytes: [u8; 32],
}

impl Key {
    /// A fresh random key.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| SecretError::Rng)?;
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        Self {
            id: hex::encode(&digest[..4]),
            bytes,
        }
    }

    /// Parses base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let raw = B64.decode(text.trim()).map_err(|_| SecretError::BadKey)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as base64 (what goes into the key file or `MASTERZ_APP_KEY`).
    pub fn to_base64(&self) -> Secret<String> {
        Secret::new(B64.encode(self.bytes))
    }

    /// The key id stored with every ciphertext.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.bytes.into())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}, {REDACTED})", self.id)
    }
}

/// Where the keys of a [`Keyring`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `MASTERZ_APP_KEY` (or `app_key` in the config file).
    Config,
    /// The key file in the data directory.
    File(std::path::PathBuf),
}

/// The application keys: the first encrypts, every one decrypts.
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<Key>,
    source: KeySource,
}

/// The name of the key file in the data directory.
pub const KEY_FILE: &str = "app.key";

impl Keyring {
    /// A ring of the given keys (the first encrypts).
    pub fn new(keys: Vec<Key>, source: KeySource) -> Result<Self, SecretError> {
        if keys.is_empty() {
            return Err(SecretError::BadKey);
        }
        Ok(Self { keys, source })
    }

    /// Parses a comma- or newline-separated list of base64 keys.
    pub fn parse(text: &str, source: KeySource) -> Result<Self, SecretError> {
        let keys = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
            .map(Key::from_base64)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys, source)
    }

    /// Loads the ring from the configured key, or from the key file in `data_dir`, creating the file
    /// (mode 0600) with a fresh key when neither exists. The flag says whether a key was generated.
    pub fn load_or_create(
        configured: Option<&Secret<String>>,
        data_dir: &Path,
    ) -> Result<(Self, bool), SecretError> {
        if let Some(text) = configured.filter(|t| !t.expose().trim().is_empty()) {
            return Ok((Self::parse(text.expose(), KeySource::Config)?, false));
        }
        let path = data_dir.join(KEY_FILE);
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Self::parse(&text, KeySource::File(path.clone()))?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let key = Key::generate()?;
                let ring = Self::new(vec![key], KeySource::File(path.clone()))?;
                ring.write_file(&path).map_err(io)?;
                Ok((ring, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Writes the ring to `path` with mode 0600, atomically (temporary file, then rename).
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        writeln!(
            file,
            "# masterz application key: back this file up; without it stored credentials are lost."
        )?;
        for key in &self.keys {
            writeln!(file, "{}", key.to_base64().expose())?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Where the keys came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The key that encrypts.
    pub fn current(&self) -> &Key {
        &self.keys[0]
    }

    /// A new ring whose current key is `key`, keeping the others for decryption.
    pub fn with_new_current(&self, key: Key) -> Self {
        let mut keys = vec![key];
        keys.extend(self.keys.iter().cloned());
        Self {
            keys,
            source: self.source.clone(),
        }
    }

    /// A ring of only the current key (after every value was re-encrypted under it).
    pub fn only_current(&self) -> Self {
        Self {
            keys: vec![self.keys[0].clone()],
            source: self.source.clone(),
        }
    }

    /// Encrypts `plaintext` for the column named by `aad`.
    pub fn encrypt(&self, plaintext: &[u8], aad: &str) -> Result<String, SecretError> {
        let key = self.current();
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| SecretError::Rng)?;
        let sealed = key
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            // AES-GCM encryption fails only for messages beyond 64 GiB.
            .map_err(|_| SecretError::Malformed)?;
        let mut blob = Vec::with_capacity(12 + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!("v1.{}.{}", key.id(), B64.encode(blob)))
    }

    /// Decrypts a value made by [`Keyring::encrypt`] for the same `aad`.
    pub fn decrypt(&self, stored: &str, aad: &str) -> Result<Secret<Vec<u8>>, SecretError> {
        let mut parts = stored.splitn(3, '.');
        let (Some("v1"), Some(kid), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SecretError::Malformed);
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id() == kid)
            .ok_or_else(|| SecretError::UnknownKey(kid.to_owned()))?;
        let blob = B64.decode(data).map_err(|_| SecretError::Malformed)?;
        if blob.len() < 12 + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, sealed) = blob.split_at(12);
        let nonce = Nonce::try_from(nonce).map_err(|_| SecretError::Malformed)?;
        key.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map(Secret::new)
            .map_err(|_| SecretError::Tampered)
    }

    /// The key id a stored value was encrypted under.
    pub fn key_id_of(stored: &str) -> Option<&str> {
        stored.split('.').nth(1)
    }
}

/// SHA-256 of a token, in hex: how session, API and invitation tokens are stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token: `prefix` followed by 32 random bytes in URL-safe base64.
pub fn new_token(prefix: &str) -> Result<Secret<String>, SecretError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|_| SecretError::Rng)?;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    Ok(Secret::new(format!("{prefix}{body}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new(vec![Key::generate().unwrap()], KeySource::Config).unwrap()
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let ring = ring();
        let a = ring.encrypt(b"EAAB-page-token", "t.c").unwrap();
        let b = ring.encrypt(b"EAAB-page-token", "t.c").unwrap();
        assert_ne!(a, b, "every value gets its own nonce");
        assert!(!a.contains("EAAB"));
        assert_eq!(
            ring.decrypt(&a, "t.c").unwrap().expose(),
            b"EAAB-page-token"
        );
    }

    #[test]
    fn wrong_column_or_tampering_fails() {
        let ring = ring();
        let a = ring.encrypt(b"secret", "t.c").unwrap();
        assert!(matches!(
            ring.decrypt(&a, "t.other"),
            Err(SecretError::Tampered)
        ));
        let mut bad = a.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert!(ring.decrypt(&bad, "t.c").is_err());
        assert!(matches!(
            ring.decrypt("garbage", "t.c"),
            Err(SecretError::Malformed)
        ));
    }

    #[test]
    fn rotation_keeps_old_values_readable_until_re_encrypted() {
        let old = ring();
        let value = old.encrypt(b"x", "t.c").unwrap();
        let rotated = old.with_new_current(Key::generate().unwrap());
        assert_eq!(rotated.decrypt(&value, "t.c").unwrap().expose(), b"x");
        let again = rotated.encrypt(b"x", "t.c").unwrap();
        assert_eq!(Keyring::key_id_of(&again), Some(rotated.current().id()));
        let only_new = rotated.only_current();
        assert!(matches!(
            only_new.decrypt(&value, "t.c"),
            Err(SecretError::UnknownKey(_))
        ));
        assert_eq!(only_new.decrypt(&again, "t.c").unwrap().expose(), b"x");
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
    }

    #[test]
    fn key_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, created) = Keyring::load_or_create(None, dir.path()).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = Keyring::load_or_create(None, dir.path()).unwrap();
        assert!(!created);
        assert_eq!(again.current().id(), ring.current().id());
    }
}
