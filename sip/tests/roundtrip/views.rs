//! One property per typed header: a value built from known parts, with whitespace where the
//! grammar allows it, parses to those parts, and its printed form parses back to an equal view.

use masterz_sip::auth::{Algorithm, Challenge, Qop};
use masterz_sip::headers::*;
use masterz_sip::uri::{Host, Scheme, Uri};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::strategies::*;

/// Parses `s` as `H`, checks that its print parses back to an equal view, and returns it.
fn round_trip<'a, H>(s: &'a str) -> Result<H, TestCaseError>
where
    H: TypedHeader<'a> + std::fmt::Display + std::fmt::Debug + PartialEq,
{
    let h = H::parse(s).map_err(|e| TestCaseError::fail(format!("{s:?}: {e}")))?;
    let printed = h.to_string();
    // The printed text is owned here, so compare through a second parse of it.
    let again = H::parse(leak(printed)).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&again, &h, "{:?} printed as {:?}", s, again.to_string());
    Ok(h)
}

/// Views borrow the text they were parsed from, and `H` names one lifetime: the printed text
/// must live as long as the original, so it is leaked (a few KiB per test run).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn check_uri(u: &GenUri, parsed: &Uri<'_>) -> Result<(), TestCaseError> {
    let scheme = match u.scheme.to_ascii_lowercase().as_str() {
        "sip" => Scheme::Sip,
        "sips" => Scheme::Sips,
        _ => Scheme::Tel,
    };
    prop_assert_eq!(parsed.scheme, scheme);
    prop_assert_eq!(parsed.user, u.user.as_deref());
    prop_assert_eq!(parsed.password, u.password.as_deref());
    prop_assert_eq!(parsed.port, u.port);
    match (&u.host, parsed.host) {
        (None, None) => {}
        (Some(GenHost::Name(n)), Some(Host::Name(p))) => prop_assert_eq!(n.as_str(), p),
        (Some(GenHost::V4(a)), Some(Host::V4(b))) => prop_assert_eq!(*a, b),
        (Some(GenHost::V6(a)), Some(Host::V6(b))) => prop_assert_eq!(*a, b),
        (g, p) => prop_assert!(false, "host {:?} parsed as {:?}", g, p),
    }
    let params: Vec<_> = parsed.params.iter().collect();
    let expected: Vec<_> = u
        .params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    prop_assert_eq!(params, expected);
    let headers = (!u.headers.is_empty()).then(|| {
        u.headers
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    prop_assert_eq!(parsed.headers, headers.as_deref());
    Ok(())
}

fn check_name_addr(a: &GenNameAddr, parsed: &NameAddr<'_>) -> Result<(), TestCaseError> {
    prop_assert_eq!(parsed.display, a.display.as_deref().map(str::trim));
    prop_assert_eq!(parsed.uri, a.uri.text());
    let params: Vec<_> = parsed.params.iter().collect();
    let expected: Vec<_> = a
        .params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    prop_assert_eq!(params, expected);
    check_uri(&a.uri, &parsed.uri().or_fail()?)
}

trait OrFail<T> {
    fn or_fail(self) -> Result<T, TestCaseError>;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self) -> Result<T, TestCaseError> {
        self.map_err(|e| TestCaseError::fail(e.to_string()))
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn uris_parse_to_their_parts(u in uri()) {
        let text = u.text();
        let parsed = Uri::parse(&text).or_fail()?;
        check_uri(&u, &parsed)?;
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn name_addr_headers(a in name_addr(), ws in lws()) {
        let text = a.text(ws);
        check_name_addr(&a, &round_trip::<From>(&text)?.0)?;
        check_name_addr(&a, &round_trip::<To>(&text)?.0)?;
        check_name_addr(&a, &round_trip::<Route>(&text)?.0)?;
        check_name_addr(&a, &round_trip::<RecordRoute>(&text)?.0)?;
        check_name_addr(&a, &round_trip::<ReferTo>(&text)?.0)?;
        check_name_addr(&a, &round_trip::<ReferredBy>(&text)?.0)?;
        let c = round_trip::<Contact>(&text)?;
        check_name_addr(&a, c.addr().ok_or_else(|| TestCaseError::fail("not *"))?)?;
    }

    #[test]
    fn contact_expires_and_q(a in name_addr(), secs in any::<u32>(), q in 0u16..=1000, ws in lws()) {
        // The first parameter of a name wins: no generated `q` or `expires` before ours.
        let mut a = a;
        a.params.retain(|(n, _)| !n.eq_ignore_ascii_case("q") && !n.eq_ignore_ascii_case("expires"));
        let text = format!("{}{ws};{ws}expires={secs};q={}", a.text(ws), f64::from(q) / 1000.0);
        let c = round_trip::<Contact>(&text)?;
        prop_assert_eq!(c.expires(), Some(Ok(secs)));
        prop_assert_eq!(c.q(), Some(q));
        let star = format!("{ws}*{ws}");
        prop_assert_eq!(round_trip::<Contact>(&star)?, Contact::Any);
    }

    #[test]
    fn identities(a in name_addr(), ws in lws()) {
        // The bare form of an identity has no header parameters: they are the URI's.
        let text = if a.bare { a.uri.text() } else { a.text(ws) };
        for p in [
            round_trip::<PAssertedIdentity>(&text)?.0,
            round_trip::<PPreferredIdentity>(&text)?.0,
        ] {
            prop_assert_eq!(p.uri, a.uri.text());
            check_uri(&a.uri, &p.uri().or_fail()?)?;
        }
    }

    #[test]
    fn vias(
        transport in token(), h in host(), port in option::of(any::<u16>()), branch in token(),
        rport in any::<bool>(), ws in lws(),
    ) {
        let port_text = port.map(|p| format!("{ws}:{ws}{p}")).unwrap_or_default();
        let rport_text = if rport { format!("{ws};{ws}rport") } else { String::new() };
        let text = format!(
            "SIP{ws}/{ws}2.0{ws}/{ws}{transport} {}{port_text}{ws};{ws}branch{ws}={ws}z9hG4bK{branch}{rport_text}",
            h.text()
        );
        let v = round_trip::<Via>(&text)?;
        prop_assert_eq!(v.transport, transport.as_str());
        prop_assert_eq!(v.host_raw, h.text());
        prop_assert_eq!(v.port, port);
        let branch = format!("z9hG4bK{branch}");
        prop_assert_eq!(v.branch(), Some(branch.as_str()));
        prop_assert_eq!(v.rport(), rport.then_some(None));
    }

    #[test]
    fn numbers_and_call_ids(
        n in any::<u32>(), seq in 0u32..1 << 31, method in method(), hops in any::<u8>(),
        id in "[a-zA-Z0-9.!%*_+`'~()<>:/?{}-]{1,20}(@[a-zA-Z0-9.-]{1,12})?", ws in lws(),
    ) {
        prop_assert_eq!(round_trip::<Expires>(&format!("{ws}{n}{ws}"))?, Expires(n));
        prop_assert_eq!(round_trip::<MinExpires>(&format!("{n}"))?, MinExpires(n));
        prop_assert_eq!(round_trip::<ContentLength>(&format!("{n}{ws}"))?, ContentLength(n));
        prop_assert_eq!(round_trip::<MaxForwards>(&format!("{ws}{hops}"))?, MaxForwards(hops));
        let c = round_trip::<CSeq>(&format!("{ws}{seq} {ws}{method}{ws}"))?;
        prop_assert_eq!((c.seq, c.method), (seq, method));
        let id_text = format!("{ws}{id}{ws}");
        prop_assert_eq!(round_trip::<CallIdHeader>(&id_text)?.0, id.as_str());
    }

    #[test]
    fn digest_challenges_survive_the_view(
        realm in text(20), nonce in text(20), opaque in option::of(text(10)),
        sha in any::<bool>(), qop in any::<bool>(), stale in any::<bool>(),
    ) {
        let c = Challenge {
            realm, nonce, opaque, stale, domain: None,
            algorithm: if sha { Algorithm::Sha256 } else { Algorithm::Md5 },
            qop: if qop { vec![Qop::Auth] } else { Vec::new() },
        };
        let text = c.to_string();
        let w = round_trip::<WwwAuthenticate>(&text)?;
        prop_assert!(w.is_digest());
        let realm = w.param("realm");
        prop_assert_eq!(realm.as_deref(), Some(c.realm.as_str()));
        prop_assert_eq!(w.digest_challenge(), Ok(c.clone()));
        prop_assert_eq!(round_trip::<ProxyAuthenticate>(&text)?.digest_challenge(), Ok(c));
    }

    #[test]
    fn auth_params_of_any_scheme(
        scheme in token(),
        params in vec((token(), prop_oneof![token(), text(12).prop_map(|t| quote(&t))]), 1..5),
        ws in lws(),
    ) {
        let list: Vec<String> = params.iter().map(|(n, v)| format!("{n}{ws}={ws}{v}")).collect();
        let text = format!("{scheme} {ws}{}", list.join(&format!("{ws},{ws}")));
        for a in [
            round_trip::<Authorization>(&text)?.0,
            round_trip::<ProxyAuthorization>(&text)?.0,
        ] {
            prop_assert_eq!(a.scheme(), scheme.as_str());
            let got: Vec<_> = a.params().collect();
            let expected: Vec<_> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn token_lists(tokens in vec(token(), 1..6), ws in lws()) {
        let text = tokens.join(&format!("{ws},{ws}"));
        macro_rules! check {
            ($($h:ident),*) => {$(
                let l = round_trip::<$h>(&text)?;
                prop_assert_eq!(l.iter().collect::<Vec<_>>(), tokens.iter().map(String::as_str).collect::<Vec<_>>());
                for t in &tokens {
                    prop_assert!(l.contains(&t.to_ascii_uppercase()) && l.contains_exact(t));
                }
                prop_assert_eq!(l.to_string(), tokens.join(", "));
            )*};
        }
        check!(Allow, Supported, Require, ProxyRequire, Unsupported, AllowEvents);
    }

    #[test]
    fn session_timers(
        n in any::<u32>(), refresher in option::of(any::<bool>()),
        extra in vec(generic_param().prop_filter("refresher", |(n, _)| !n.eq_ignore_ascii_case("refresher")), 0..3),
        ws in lws(),
    ) {
        let r = refresher.map(|uac| if uac { Refresher::Uac } else { Refresher::Uas });
        let mut text = format!("{ws}{n}");
        if let Some(r) = r {
            text.push_str(&format!("{ws};{ws}refresher{ws}={ws}{r}"));
        }
        text.push_str(&params_text(&extra, ws));
        let s = round_trip::<SessionExpires>(&text)?;
        prop_assert_eq!((s.delta, s.refresher), (n, r));
        prop_assert_eq!(round_trip::<MinSe>(&text)?.delta, n);
    }

    #[test]
    fn replaces_and_attended_transfer(
        call_id in "[a-zA-Z0-9.!%*_+`'~()<>:/?{}-]{1,20}(@[a-zA-Z0-9.-]{1,12})?",
        to_tag in token(), from_tag in token(), early in any::<bool>(),
        extra in vec(generic_param().prop_filter("tags", |(n, _)| {
            !["to-tag", "from-tag", "early-only"].iter().any(|t| n.eq_ignore_ascii_case(t))
        }), 0..3),
        swap in any::<bool>(), target in sip_uri(), ws in lws(),
    ) {
        let (a, b) = (format!("to-tag{ws}={ws}{to_tag}"), format!("from-tag={from_tag}"));
        let (a, b) = if swap { (b, a) } else { (a, b) };
        let early_text = if early { format!("{ws};early-only") } else { String::new() };
        let text = format!("{call_id}{ws};{ws}{a};{b}{early_text}{}", params_text(&extra, ws));
        let r = round_trip::<Replaces>(&text)?;
        prop_assert_eq!(&r.call_id, &call_id);
        prop_assert_eq!((&*r.to_tag, &*r.from_tag), (to_tag.as_str(), from_tag.as_str()));
        prop_assert_eq!(r.early_only, early);
        let target_text = format!("<{}>", target.text());
        let refer = refer_to_with_replaces(&NameAddr::parse(&target_text).or_fail()?, &r);
        let refer_to = round_trip::<ReferTo>(&refer)?;
        prop_assert_eq!(refer_to.replaces(), Ok(Some(r.into_owned())));
    }

    #[test]
    fn events(
        segments in vec("[A-Za-z0-9!%*_+`'~-]{1,8}", 1..4), id in option::of(token()),
        extra in vec(generic_param().prop_filter("id", |(n, _)| !n.eq_ignore_ascii_case("id")), 0..3),
        ws in lws(),
    ) {
        let event_type = segments.join(".");
        let id_text = id.as_ref().map(|i| format!("{ws};{ws}id{ws}={ws}{i}")).unwrap_or_default();
        let text = format!("{ws}{event_type}{id_text}{}", params_text(&extra, ws));
        let e = round_trip::<Event>(&text)?;
        prop_assert_eq!(e.event_type, event_type.as_str());
        prop_assert_eq!(e.package(), segments[0].as_str());
        prop_assert_eq!(e.id(), id.as_deref());
        let plain = format!("{event_type}{id_text}");
        prop_assert!(e.matches(&Event::parse(&plain).or_fail()?));
    }

    #[test]
    fn subscription_states(
        state in prop::sample::select(vec!["active", "PENDING", "Terminated", "x-waiting"]),
        expires in option::of(any::<u32>()), retry in option::of(any::<u32>()),
        reason in option::of(token()), ws in lws(),
    ) {
        let mut text = format!("{state}{ws}");
        if let Some(e) = expires {
            text.push_str(&format!(";{ws}expires={ws}{e}"));
        }
        if let Some(r) = &reason {
            text.push_str(&format!(";reason={r}"));
        }
        if let Some(r) = retry {
            text.push_str(&format!("{ws};retry-after={r}"));
        }
        let s = round_trip::<SubscriptionState>(&text)?;
        prop_assert!(s.state.as_str().eq_ignore_ascii_case(state));
        prop_assert_eq!((s.expires, s.retry_after, s.reason()), (expires, retry, reason.as_deref()));
    }

    #[test]
    fn content_types(
        t in token(), st in token(),
        params in vec((token(), prop_oneof![token(), text(12).prop_map(|t| quote(&t))]), 0..3),
        ws in lws(),
    ) {
        let p: Vec<_> = params.iter().map(|(n, v)| (n.clone(), Some(v.clone()))).collect();
        let text = format!("{ws}{t}{ws}/{ws}{st}{}", params_text(&p, ws));
        let c = round_trip::<ContentType>(&text)?;
        prop_assert!(c.is(&t.to_ascii_uppercase(), &st.to_ascii_lowercase()));
        for (n, v) in &params {
            // The first parameter of that name wins.
            let first = params.iter().find(|(m, _)| m.eq_ignore_ascii_case(n)).map(|(_, v)| v);
            if first == Some(v) {
                let (got, expected) = (c.param(n), unquote(v));
                prop_assert_eq!(got.as_deref(), Some(expected.as_ref()));
            }
        }
        let disposition = format!("{t}{}", params_text(&p, ws));
        let d = round_trip::<ContentDisposition>(&disposition)?;
        prop_assert!(d.is(&t));
    }
}
