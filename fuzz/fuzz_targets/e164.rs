//! Phone number normalisation: never panics; whatever it accepts is E.164 and a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masterz::domain::phone::normalize_e164;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(e164) = normalize_e164(text) {
        assert!(e164.starts_with('+'));
        let digits = &e164[1..];
        assert!((8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()));
        assert!(!digits.starts_with('0'));
        assert_eq!(normalize_e164(&e164).as_deref(), Some(e164.as_str()));
    }
});
