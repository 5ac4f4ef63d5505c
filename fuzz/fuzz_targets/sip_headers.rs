//! Typed header views: the first byte picks a header, the rest is its raw value (as the message
//! parser hands it over: one line, maybe a comma-joined list). Parsing never panics; every element
//! that parses prints to a value that parses back to the same view.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masterz_sip::headers::{
    Allow, AllowEvents, Authorization, CSeq, CallIdHeader, Contact, ContentDisposition,
    ContentLength, ContentType, Event, Expires, From, MaxForwards, MinExpires, MinSe, NameAddr,
    PAssertedIdentity, PPreferredIdentity, ProxyAuthenticate, ProxyAuthorization, ProxyRequire,
    RecordRoute, ReferTo, ReferredBy, Replaces, Require, Route, SessionExpires, SubscriptionState,
    Supported, To, TypedHeader, Unsupported, Via, WwwAuthenticate,
};
use masterz_sip::message::split_list;

/// Parses `value` (each list element when the header is a list) as `$ty`; a parsed element must
/// survive print → parse. `$extra` runs on each parsed element (accessors, for coverage).
macro_rules! check {
    ($ty:ty, $value:expr, |$h:ident| $extra:expr) => {{
        let value: &str = $value;
        let elements: Vec<&str> = if <$ty as TypedHeader>::LIST {
            split_list(value).collect()
        } else {
            vec![value]
        };
        for element in elements {
            let Ok($h) = <$ty as TypedHeader>::parse(element) else {
                continue;
            };
            let printed = $h.to_string();
            match <$ty as TypedHeader>::parse(&printed) {
                Ok(again) => assert_eq!(again, $h, "{element:?} printed as {printed:?}"),
                Err(e) => panic!("{element:?} printed as {printed:?}, which fails: {e}"),
            }
            $extra;
        }
    }};
    ($ty:ty, $value:expr) => {
        check!($ty, $value, |_h| ())
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    match selector % 34 {
        0 => check!(Via<'_>, value, |v| (
            v.branch(),
            v.received(),
            v.rport(),
            v.maddr()
        )),
        1 => check!(From<'_>, value, |f| (
            f.tag(),
            f.display_name(),
            f.uri().ok()
        )),
        2 => check!(To<'_>, value, |t| (t.tag(), t.display_name(), t.uri().ok())),
        3 => check!(Contact<'_>, value, |c| (
            c.expires(),
            c.q(),
            c.addr().map(|a| a.uri())
        )),
        4 => check!(Route<'_>, value, |r| r.uri().ok()),
        5 => check!(RecordRoute<'_>, value, |r| r.uri().ok()),
        6 => check!(CSeq, value),
        7 => check!(CallIdHeader<'_>, value),
        8 => check!(MaxForwards, value),
        9 => check!(Expires, value),
        10 => check!(MinExpires, value),
        11 => check!(ContentLength, value),
        12 => {
            if let Ok(a) = NameAddr::parse(value) {
                let printed = a.to_string();
                assert_eq!(
                    NameAddr::parse(&printed),
                    Ok(a),
                    "{value:?} printed as {printed:?}"
                );
            }
        }
        13 => check!(Authorization<'_>, value, |a| a.digest_credentials().ok()),
        14 => check!(ProxyAuthorization<'_>, value, |a| a
            .digest_credentials()
            .ok()),
        15 => check!(WwwAuthenticate<'_>, value, |a| a.digest_challenge().ok()),
        16 => check!(ProxyAuthenticate<'_>, value, |a| (
            a.digest_challenge().ok(),
            a.token68()
        )),
        17 => check!(ContentType<'_>, value, |c| (
            c.is_multipart(),
            c.param("charset")
        )),
        18 => check!(ContentDisposition<'_>, value, |c| c.is_optional()),
        19 => check!(Event<'_>, value, |e| (
            e.package(),
            e.templates().count(),
            e.id()
        )),
        20 => check!(SubscriptionState<'_>, value, |s| s.reason()),
        21 => check!(PAssertedIdentity<'_>, value),
        22 => check!(PPreferredIdentity<'_>, value),
        23 => check!(ReferTo<'_>, value, |r| r.replaces()),
        24 => check!(ReferredBy<'_>, value, |r| r.cid()),
        25 => check!(Replaces<'_>, value, |r| r.to_uri_header()),
        26 => check!(SessionExpires<'_>, value),
        27 => check!(MinSe<'_>, value),
        28 => check!(Allow<'_>, value, |a| a.iter().count()),
        29 => check!(AllowEvents<'_>, value),
        30 => check!(Require<'_>, value),
        31 => check!(ProxyRequire<'_>, value),
        32 => check!(Supported<'_>, value, |s| s.contains("timer")),
        _ => check!(Unsupported<'_>, value),
    }
});
