//! Digest header values (`WWW-Authenticate`, `Authorization`): parsing never panics; a parsed
//! challenge or answer prints to a value that parses back to it; an answer computed for a parsed
//! challenge prints, parses back, and verifies against the same password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masterz_sip::auth::{Challenge, Credentials};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(challenge) = Challenge::parse(text) {
        let printed = challenge.to_string();
        assert_eq!(
            Challenge::parse(&printed).as_ref(),
            Ok(&challenge),
            "{printed}"
        );
        if let Ok(answer) = Credentials::answer(
            &challenge,
            "REGISTER",
            "sip:example.com",
            "alice",
            "secret",
            "0a4f113b",
            1,
        ) {
            let printed = answer.to_string();
            assert_eq!(
                Credentials::parse(&printed).as_ref(),
                Ok(&answer),
                "{printed}"
            );
            assert_eq!(
                answer.expected_response("REGISTER", "secret").as_deref(),
                Some(answer.response.as_str())
            );
        }
    }
    if let Ok(credentials) = Credentials::parse(text) {
        let printed = credentials.to_string();
        assert_eq!(
            Credentials::parse(&printed).as_ref(),
            Ok(&credentials),
            "{printed}"
        );
        let _ = credentials.expected_response("INVITE", "secret");
    }
});
