//! RFC 4475 (SIP torture test messages) and RFC 5118 (IPv6 torture test messages), one named
//! test per fixture in `tests/fixtures/`: a valid message parses and its typed views give the
//! values the RFC describes; an invalid one is refused with a precise error — by the parser
//! ([`masterz_sip::message::ParseError`]) or by request/response validation
//! ([`masterz_sip::message::InvalidMessage`]) — or tolerated where the RFC lets a robust element
//! repair it, in which case the test asserts what we extract.
//!
//! `fixtures/manifest.json` holds what every message must yield; [`fixture::Fixture`] checks its
//! common fields (method, Request-URI, Call-ID, CSeq, Via count, Content-Length against the body)
//! for every message that parses, and each test asserts the rest. The test
//! `every_fixture_has_a_named_test` fails when a fixture is added without a test.

/// Lists a module's tests as `(name, fn)` pairs: naming a function that does not exist does not
/// compile, so the list cannot drift from the tests.
macro_rules! named_tests {
    ($($name:ident),* $(,)?) => {
        pub(crate) const TESTS: &[(&str, fn())] = &[$((stringify!($name), $name as fn())),*];
    };
}

mod fixture;
mod rfc4475_invalid;
mod rfc4475_semantic;
mod rfc4475_valid;
mod rfc5118;

use std::collections::BTreeSet;

/// The test that covers `rfc4475/wsinv.dat` is `rfc4475_wsinv`, the one for
/// `rfc5118/ipv6-good.dat` is `rfc5118_ipv6_good`.
fn test_name(file: &str) -> String {
    file.trim_end_matches(".dat").replace(['/', '-'], "_")
}

#[test]
fn every_fixture_has_a_named_test() {
    let tests: Vec<&str> = [
        rfc4475_valid::TESTS,
        rfc4475_invalid::TESTS,
        rfc4475_semantic::TESTS,
        rfc5118::TESTS,
    ]
    .concat()
    .iter()
    .map(|(name, _)| *name)
    .collect();
    let named: BTreeSet<String> = tests.iter().map(|t| t.to_string()).collect();
    assert_eq!(named.len(), tests.len(), "a test is listed twice");

    let on_disk = fixture::files_on_disk();
    let in_manifest = fixture::files_in_manifest();
    assert_eq!(
        on_disk, in_manifest,
        "fixture files and manifest.json differ"
    );

    let wanted: BTreeSet<String> = in_manifest.iter().map(|f| test_name(f)).collect();
    let missing: Vec<_> = wanted.difference(&named).collect();
    let stray: Vec<_> = named.difference(&wanted).collect();
    assert!(missing.is_empty(), "fixtures without a test: {missing:?}");
    assert!(stray.is_empty(), "tests without a fixture: {stray:?}");

    let count = |prefix: &str| in_manifest.iter().filter(|f| f.starts_with(prefix)).count();
    assert_eq!((count("rfc4475/"), count("rfc5118/")), (49, 12));
}
