//! Stored ciphertexts are read back from the database: a corrupted or forged value is an error,
//! never a panic and never a plaintext.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use masterz::secrets::{Key, KeySource, Keyring};

fn ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| Keyring::new(vec![Key::generate().unwrap()], KeySource::Config).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Forging a valid ciphertext would mean breaking AES-GCM.
    assert!(ring().decrypt(text, "channel_accounts.credentials").is_err());
    // A value prefixed with the real key id exercises the decryption path itself.
    let forged = format!("v1.{}.{text}", ring().current().id());
    assert!(ring().decrypt(&forged, "channel_accounts.credentials").is_err());
});
