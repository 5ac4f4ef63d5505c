//! Parse/print tests of [`Challenge`] and [`Credentials`], with RFC vectors and headers as
//! Asterisk, Kamailio and baresip send them.

use super::*;

const RFC7616_CHALLENGE: &str = "Digest\r\n realm=\"http-auth@example.org\",\r\n qop=\"auth, auth-int\",\r\n algorithm=SHA-256,\r\n nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

fn challenge(s: &str) -> Challenge {
    Challenge::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn credentials(s: &str) -> Credentials {
    Credentials::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn rfc7616_example_answered_with_sha256_and_md5() {
    let mut c = challenge(RFC7616_CHALLENGE);
    assert_eq!(c.qop, [Qop::Auth, Qop::AuthInt]);
    assert_eq!(c.algorithm, Algorithm::Sha256);
    assert!(!c.stale);
    let uri = "/dir/index.html";
    let a = Credentials::answer(&c, "GET", uri, "Mufasa", "Circle of Life", CNONCE, 1);
    let a = a.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        a.response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    assert_eq!(
        a.opaque.as_deref(),
        Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
    );
    let printed = a.to_string();
    assert!(printed.contains(", algorithm=SHA-256, "), "{printed}");
    assert!(printed.ends_with(", qop=auth, nc=00000001"), "{printed}");
    assert_eq!(credentials(&printed), a);
    c.algorithm = Algorithm::Md5;
    let a = Credentials::answer(&c, "GET", uri, "Mufasa", "Circle of Life", CNONCE, 1);
    assert_eq!(
        a.map(|a| a.response),
        Ok("8ca523f5e9506fed4657c9700eebdbec".to_owned())
    );
}

#[test]
fn rfc2617_example_authorization_checks_out() {
    let c = credentials(
        "Digest username=\"Mufasa\",\n realm=\"testrealm@host.com\",\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\n uri=\"/dir/index.html\",\n qop=auth,\n nc=00000001,\n cnonce=\"0a4f113b\",\n response=\"6629fae49393a05397450978507c4ef1\",\n opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    );
    assert_eq!(
        (c.qop, c.nc, c.algorithm),
        (Some(Qop::Auth), Some(1), Algorithm::Md5)
    );
    assert_eq!(
        c.expected_response("GET", "Circle Of Life"),
        Some(c.response.clone())
    );
    assert_ne!(
        c.expected_response("GET", "Circle of Life"),
        Some(c.response.clone())
    );
}

#[test]
fn real_peer_headers_round_trip() {
    // Asterisk (res_pjsip), Kamailio (auth module, no qop and with qop), a domain list.
    for s in [
        "Digest realm=\"asterisk\",nonce=\"1712345678/3c1f6a0e8f1b6f0b2a9a3e1d9b7c1f2e\",opaque=\"4b1d6f0c2a3e5f7d\",algorithm=md5,qop=\"auth\"",
        "Digest realm=\"kamailio.org\", nonce=\"XqjF1V6oxKmCVxCOdn2SM1BY/Kbv1EU9\"",
        "Digest realm=\"sip.example.com\", nonce=\"Zl7d3WZe3Cv7dHr0Q2l1a0pHt0h1vS7m\", qop=\"auth\", algorithm=SHA-256, stale=TRUE",
        "DIGEST REALM=\"x\", NONCE=abc, Domain=\"sip:a sip:b\", charset=UTF-8, userhash=false",
    ] {
        let c = challenge(s);
        assert_eq!(challenge(&c.to_string()), c, "{s}");
    }
    let asterisk = challenge(
        "Digest realm=\"asterisk\",nonce=\"1712345678/3c1f\",opaque=\"4b1d\",algorithm=md5,qop=\"auth\"",
    );
    assert_eq!(
        asterisk.to_string(),
        "Digest realm=\"asterisk\", nonce=\"1712345678/3c1f\", opaque=\"4b1d\", algorithm=MD5, qop=\"auth\""
    );
    let c = challenge("Digest realm=\"x\", nonce=\"y\", domain=\"sip:a sip:b\", stale=true");
    assert_eq!(
        c.to_string(),
        "Digest realm=\"x\", nonce=\"y\", algorithm=MD5, stale=true, domain=\"sip:a sip:b\""
    );
    for s in ["stale=false", "stale=maybe", "stale=\"TRUE\""] {
        let c = challenge(&format!("Digest realm=x, nonce=y, {s}"));
        assert_eq!(c.stale, s.contains("TRUE"), "{s}");
    }

    // baresip (libre), Linphone (quoted algorithm), MicroSIP-like upper-case hex.
    let resp = "0123456789abcdef0123456789abcdef";
    let canonical = format!(
        "Digest username=\"alice\", realm=\"masterz\", nonce=\"n\", uri=\"sip:127.0.0.1\", response=\"{resp}\", algorithm=MD5, cnonce=\"c0ffee\", qop=auth, nc=00000001"
    );
    for s in [
        format!(
            "Digest username=\"alice\",realm=\"masterz\",nonce=\"n\",uri=\"sip:127.0.0.1\",response=\"{resp}\",cnonce=\"c0ffee\",qop=auth,nc=00000001"
        ),
        format!(
            "Digest realm=\"masterz\", nonce=\"n\", algorithm=\"MD5\", username=\"alice\",  uri=\"sip:127.0.0.1\", response=\"{resp}\", cnonce=\"c0ffee\", nc=00000001, qop=\"auth\""
        ),
        format!(
            "Digest username=\"alice\", realm=\"masterz\", nonce=\"n\", uri=\"sip:127.0.0.1\", response=\"{}\", algorithm=md5, cnonce=\"c0ffee\", qop=auth, nc=00000001",
            resp.to_ascii_uppercase()
        ),
        canonical.clone(),
    ] {
        let c = credentials(&s);
        assert_eq!(c.to_string(), canonical, "{s}");
    }
    let odd = credentials(&format!(
        "Digest username=\"a\\\"b\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"{resp}\", opaque=\"o\", nc=FFFFFFFF, cnonce=\"c\", qop=auth"
    ));
    assert_eq!((odd.username.as_str(), odd.nc), ("a\"b", Some(u32::MAX)));
    assert_eq!(credentials(&odd.to_string()), odd);
}

#[test]
fn rfc2069_and_sess_answers() {
    let c = challenge("Digest realm=\"r\", nonce=\"n\"");
    let a = Credentials::answer(&c, "REGISTER", "sip:r", "u", "p", "cn", 7);
    let a = a.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((a.qop, a.nc, a.cnonce.as_deref()), (None, None, None));
    assert_eq!(
        a.expected_response("REGISTER", "p"),
        Some(a.response.clone())
    );
    assert_eq!(credentials(&a.to_string()), a);
    let c = challenge("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess");
    let a = Credentials::answer(&c, "REGISTER", "sip:r", "u", "p", "cn", 1);
    let a = a.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((a.qop, a.cnonce.as_deref()), (None, Some("cn")));
    assert_eq!(
        a.expected_response("REGISTER", "p"),
        Some(a.response.clone())
    );
    let c = challenge("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256-sess, qop=\"auth\"");
    let a = Credentials::answer(&c, "INVITE", "sip:b@r", "u", "p", "cn", 2);
    let a = a.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.expected_response("INVITE", "p"), Some(a.response.clone()));
    assert_ne!(a.expected_response("BYE", "p"), Some(a.response.clone()));
}

#[test]
fn every_error_names_its_culprit() {
    use DigestError::*;
    let ok = "response=\"0123456789abcdef0123456789abcdef\"";
    let creds = |extra: &str| {
        Credentials::parse(&format!(
            "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", {extra}"
        ))
    };
    assert_eq!(Challenge::parse("Basic realm=\"r\""), Err(NotDigest));
    assert_eq!(Credentials::parse("Bearer abc"), Err(NotDigest));
    assert!(matches!(
        Challenge::parse("Digest realm=\"r\" nonce=\"n\""),
        Err(BadSyntax { .. })
    ));
    assert_eq!(
        Challenge::parse("Digest realm=\"r, nonce=\"n\""),
        Err(BadSyntax {
            pos: 24,
            expected: "',' between parameters"
        })
    );
    assert_eq!(
        Challenge::parse("Digest nonce=\"n\", realm=\"r"),
        Err(BadQuotedString("realm".into()))
    );
    assert_eq!(
        Challenge::parse("Digest realm=r, nonce=a, Nonce=b"),
        Err(DuplicateParam("nonce".into()))
    );
    assert_eq!(
        Challenge::parse("Digest realm=\"r\""),
        Err(MissingParam("nonce"))
    );
    assert_eq!(
        Challenge::parse("Digest nonce=\"n\""),
        Err(MissingParam("realm"))
    );
    assert_eq!(
        Challenge::parse("Digest realm=r, nonce=n, algorithm=SHA-512-256"),
        Err(UnsupportedAlgorithm("SHA-512-256".into()))
    );
    assert_eq!(
        Challenge::parse("Digest realm=r, nonce=n, qop=\"auth-conf, x\""),
        Err(UnsupportedQop("auth-conf, x".into()))
    );
    let auth_int = challenge("Digest realm=r, nonce=n, qop=\"auth-int\"");
    assert_eq!(
        Credentials::answer(&auth_int, "INVITE", "sip:r", "u", "p", "c", 1),
        Err(UnsupportedQop("auth-int".into()))
    );
    assert_eq!(creds(""), Err(MissingParam("response")));
    assert_eq!(creds("response=\"abc\""), Err(BadParam("response")));
    assert_eq!(
        creds("response=\"0123456789abcdef0123456789abcdeg\""),
        Err(BadParam("response"))
    );
    assert_eq!(
        creds(&format!("{ok}, algorithm=SHA-256")),
        Err(BadParam("response"))
    );
    assert_eq!(
        creds(&format!("{ok}, qop=auth, nc=1, cnonce=c")),
        Err(BadParam("nc"))
    );
    assert_eq!(
        creds(&format!("{ok}, qop=auth, nc=0000000g, cnonce=c")),
        Err(BadParam("nc"))
    );
    assert_eq!(
        creds(&format!("{ok}, qop=auth, nc=00000001")),
        Err(MissingParam("cnonce"))
    );
    assert_eq!(
        creds(&format!("{ok}, qop=auth, cnonce=c")),
        Err(MissingParam("nc"))
    );
    assert_eq!(
        creds(&format!("{ok}, qop=other")),
        Err(UnsupportedQop("other".into()))
    );
    assert_eq!(
        Credentials::parse(&format!("Digest realm=r, nonce=n, uri=u, {ok}")),
        Err(MissingParam("username"))
    );
    assert!(creds(ok).is_ok());
    let q = credentials(&format!(
        "Digest username=u, realm=r, nonce=n, uri=u, {ok}, qop=auth-int, nc=00000001, cnonce=c"
    ));
    assert_eq!(q.expected_response("INVITE", "p"), None);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Text a quoted string can carry unchanged: no control character but tab.
    const TEXT: &str = "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,40}";

    fn algorithm() -> impl Strategy<Value = Algorithm> {
        prop_oneof![
            Just(Algorithm::Md5),
            Just(Algorithm::Md5Sess),
            Just(Algorithm::Sha256),
            Just(Algorithm::Sha256Sess),
        ]
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}", tail in "[ -~]{0,60}") {
            let _ = Challenge::parse(&s);
            let _ = Credentials::parse(&s);
            let _ = Challenge::parse(&format!("Digest {tail}"));
            let _ = Credentials::parse(&format!("Digest {tail}"));
        }

        #[test]
        fn challenge_print_then_parse_is_identity(
            realm in TEXT, nonce in TEXT, opaque in proptest::option::of(TEXT),
            algorithm in algorithm(), auth in any::<bool>(), stale in any::<bool>(),
            domain in proptest::option::of(TEXT),
        ) {
            let c = Challenge {
                realm, nonce, opaque, algorithm, stale, domain,
                qop: if auth { vec![Qop::Auth, Qop::AuthInt] } else { Vec::new() },
            };
            prop_assert_eq!(Challenge::parse(&c.to_string()), Ok(c));
        }

        #[test]
        fn answers_print_then_parse_and_check_out(
            realm in TEXT, nonce in TEXT, user in TEXT, password in TEXT, uri in TEXT,
            cnonce in TEXT, nc in any::<u32>(), algorithm in algorithm(), auth in any::<bool>(),
        ) {
            let c = Challenge {
                realm, nonce, opaque: None, algorithm, stale: false, domain: None,
                qop: if auth { vec![Qop::Auth] } else { Vec::new() },
            };
            let a = Credentials::answer(&c, "INVITE", &uri, &user, &password, &cnonce, nc);
            let a = a.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(a.expected_response("INVITE", &password), Some(a.response.clone()));
            prop_assert_eq!(Credentials::parse(&a.to_string()), Ok(a));
        }
    }
}
