//! Generators of structurally valid SIP: URIs, name-addrs, header values and whole messages,
//! each remembering what it was built from so that a property can compare the parse with it.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use masterz_sip::headers::quote;
use masterz_sip::message::{HeaderName, Message, Method, StartLine, StatusCode, StdHeader, Text};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::Union;

/// `cases` per property (or `PROPTEST_CASES` for a long hunt), drawn with XorShift: in a debug
/// build the default ChaCha generator, forked for every arm of every union, took half of the
/// suite's time.
pub(crate) fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            cases
        },
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..default
    }
}

/// An RFC 3261 token.
pub(crate) fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.!%*_+`'~-]{1,12}"
}

/// Linear whitespace that a view must skip where the grammar allows SWS/LWS.
pub(crate) fn lws() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just(""),
        2 => Just(" "),
        1 => Just("\t"),
        1 => Just("  "),
        1 => Just(" \t "),
    ]
}

/// Text without control characters (what a quoted string or reason phrase can carry).
pub(crate) fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[\\PC\t]{{0,{max}}}")).expect("valid regex")
}

/// A host as generated, with its expected parse.
#[derive(Clone, Debug)]
pub(crate) enum GenHost {
    /// A DNS name.
    Name(String),
    /// IPv4.
    V4(Ipv4Addr),
    /// IPv6, printed as a reference.
    V6(Ipv6Addr),
}

impl GenHost {
    /// The host as written in a URI or Via.
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Name(n) => n.clone(),
            Self::V4(a) => a.to_string(),
            Self::V6(a) => format!("[{a}]"),
        }
    }
}

pub(crate) fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    // Runs of zero segments, so that `::` compression (and v4-mapped forms) come up often.
    vec(prop_oneof![Just(0u16), any::<u16>()], 8).prop_map(|s| {
        let mut a = [0u16; 8];
        a.copy_from_slice(&s);
        Ipv6Addr::from(a)
    })
}

pub(crate) fn host() -> impl Strategy<Value = GenHost> {
    prop_oneof![
        "[a-zA-Z][a-zA-Z0-9_-]{0,8}(\\.[a-zA-Z][a-zA-Z0-9-]{0,8}){0,3}".prop_map(GenHost::Name),
        any::<[u8; 4]>().prop_map(|b| GenHost::V4(Ipv4Addr::from(b))),
        ipv6().prop_map(GenHost::V6),
    ]
}

const ESCAPED: &str = "%[0-9A-Fa-f]{2}";

fn chars(class: &str, min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("([{class}]|{ESCAPED}){{{min},{max}}}"))
        .expect("valid regex")
}

/// `user` (§25.1): unreserved, escaped and user-unreserved (`&=+$,;?/`).
pub(crate) fn user() -> impl Strategy<Value = String> {
    chars("a-zA-Z0-9_.!~*'()&=+$,;?/-", 1, 10)
}

/// `password`: unreserved, escaped and `&=+$,`.
pub(crate) fn password() -> impl Strategy<Value = String> {
    chars("a-zA-Z0-9_.!~*'()&=+$,-", 0, 8)
}

/// `paramchar`: param-unreserved (`[]/:&+$`), unreserved and escaped.
fn paramchars() -> impl Strategy<Value = String> {
    chars("a-zA-Z0-9_.!~*'()\\[\\]/:&+$-", 1, 8)
}

/// `hname` / `hvalue` characters: hnv-unreserved (`[]/?:+$`), unreserved and escaped.
fn hchars(min: usize) -> impl Strategy<Value = String> {
    chars("a-zA-Z0-9_.!~*'()\\[\\]/?:+$-", min, 8)
}

/// A URI as generated.
#[derive(Clone, Debug)]
pub(crate) struct GenUri {
    /// `sip`, `sips` or `tel`, in some case.
    pub(crate) scheme: String,
    /// The user, or the telephone number.
    pub(crate) user: Option<String>,
    /// The password.
    pub(crate) password: Option<String>,
    /// The host (none for tel).
    pub(crate) host: Option<GenHost>,
    /// The port.
    pub(crate) port: Option<u16>,
    /// URI parameters.
    pub(crate) params: Vec<(String, Option<String>)>,
    /// URI headers.
    pub(crate) headers: Vec<(String, String)>,
}

impl GenUri {
    /// The URI as written.
    pub(crate) fn text(&self) -> String {
        let mut s = format!("{}:", self.scheme);
        if let Some(u) = &self.user {
            s.push_str(u);
            if let Some(p) = &self.password {
                s.push(':');
                s.push_str(p);
            }
            if self.host.is_some() {
                s.push('@');
            }
        }
        if let Some(h) = &self.host {
            s.push_str(&h.text());
        }
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        for (n, v) in &self.params {
            s.push(';');
            s.push_str(n);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
        for (i, (n, v)) in self.headers.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(&format!("{n}={v}"));
        }
        s
    }

    /// Whether the URI can stand bare (addr-spec) in a name-addr header: no parameters, headers,
    /// commas or semicolons that the header would claim.
    pub(crate) fn bare_ok(&self) -> bool {
        !self.text().contains([',', ';', '?'])
    }
}

fn uri_params() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    vec((paramchars(), option::of(paramchars())), 0..4)
}

/// `sip:` / `sips:` URIs with users, passwords, IPv4/IPv6/names, ports, parameters, headers.
pub(crate) fn sip_uri() -> impl Strategy<Value = GenUri> {
    (
        prop_oneof![Just("sip"), Just("sips"), Just("SIP"), Just("Sip")],
        option::of((user(), option::of(password()))),
        host(),
        option::of(any::<u16>()),
        uri_params(),
        vec((hchars(1), hchars(0)), 0..3),
    )
        .prop_map(|(scheme, user, host, port, params, headers)| GenUri {
            scheme: scheme.to_owned(),
            password: user.as_ref().and_then(|(_, p)| p.clone()),
            user: user.map(|(u, _)| u),
            host: Some(host),
            port,
            params,
            headers,
        })
}

/// `tel:` URIs (RFC 3966) with parameters.
pub(crate) fn tel_uri() -> impl Strategy<Value = GenUri> {
    ("\\+?[0-9A-F().*#-]{1,15}", uri_params()).prop_map(|(number, params)| GenUri {
        scheme: "tel".into(),
        user: Some(number),
        password: None,
        host: None,
        port: None,
        params,
        headers: Vec::new(),
    })
}

pub(crate) fn uri() -> impl Strategy<Value = GenUri> {
    prop_oneof![4 => sip_uri(), 1 => tel_uri()]
}

/// A display name as written: a quoted string with escapes, or space-separated tokens.
pub(crate) fn display_name() -> impl Strategy<Value = String> {
    prop_oneof![
        text(20).prop_map(|t| quote(&t)),
        vec(token(), 1..4).prop_map(|w| w.join(" ")),
    ]
}

/// A header parameter as written: `name`, `name=token` or `name="quoted"`.
pub(crate) fn generic_param() -> impl Strategy<Value = (String, Option<String>)> {
    (
        token(),
        option::of(prop_oneof![token(), text(12).prop_map(|t| quote(&t))]),
    )
}

pub(crate) fn params_text(params: &[(String, Option<String>)], ws: &str) -> String {
    params
        .iter()
        .map(|(n, v)| match v {
            Some(v) => format!("{ws};{ws}{n}{ws}={ws}{v}"),
            None => format!("{ws};{ws}{n}"),
        })
        .collect()
}

/// A name-addr / addr-spec as generated.
#[derive(Clone, Debug)]
pub(crate) struct GenNameAddr {
    /// The display name as written.
    pub(crate) display: Option<String>,
    /// The URI.
    pub(crate) uri: GenUri,
    /// Whether to write it without angle brackets.
    pub(crate) bare: bool,
    /// Header parameters.
    pub(crate) params: Vec<(String, Option<String>)>,
}

impl GenNameAddr {
    pub(crate) fn text(&self, ws: &str) -> String {
        let params = params_text(&self.params, ws);
        if self.bare {
            format!("{}{params}", self.uri.text())
        } else {
            match &self.display {
                Some(d) => format!("{d}{ws}<{}>{params}", self.uri.text()),
                None => format!("<{}>{params}", self.uri.text()),
            }
        }
    }
}

pub(crate) fn name_addr() -> impl Strategy<Value = GenNameAddr> {
    (
        option::of(display_name()),
        uri(),
        any::<bool>(),
        vec(generic_param(), 0..3),
    )
        .prop_map(|(display, uri, bare, params)| {
            let bare = bare && display.is_none() && uri.bare_ok();
            GenNameAddr {
                display,
                uri,
                bare,
                params,
            }
        })
}

/// A Via value.
pub(crate) fn via() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            prop::sample::select(vec!["UDP", "TCP", "TLS", "WS", "WSS"]).prop_map(str::to_owned),
            token(),
        ],
        host(),
        option::of(any::<u16>()),
        token(),
        vec(generic_param(), 0..3),
    )
        .prop_map(|(transport, host, port, branch, params)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let params = params_text(&params, "");
            format!(
                "SIP/2.0/{transport} {}{port};branch=z9hG4bK{branch}{params}",
                host.text()
            )
        })
}

fn list(item: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (
        vec(item, 1..4),
        prop_oneof![Just(", "), Just(","), Just(" ,\t")],
    )
        .prop_map(|(items, sep)| items.join(sep))
}

fn token_list(min: usize) -> impl Strategy<Value = String> {
    vec(token(), min..5).prop_map(|t| t.join(", "))
}

/// A header value that every element may carry: no CR or LF, no whitespace at either end.
pub(crate) fn raw_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        proptest::string::string_regex("[!-~é€]([ -~é€\t]{0,30}[!-~é€])?").expect("valid regex"),
    ]
}

/// A header name this crate does not know, as written.
pub(crate) fn unknown_name() -> impl Strategy<Value = String> {
    token().prop_filter("a standard name", |n| {
        StdHeader::from_name(n.as_bytes()).is_none()
    })
}

/// One header line: the name and a value valid for its typed view.
pub(crate) fn header() -> impl Strategy<Value = (HeaderName, String)> {
    type Arm = (u32, BoxedStrategy<(HeaderName, String)>);
    fn typed(h: StdHeader, s: impl Strategy<Value = String> + 'static) -> Arm {
        (1, s.prop_map(move |v| (HeaderName::Std(h), v)).boxed())
    }
    let na = || name_addr().prop_map(|a| a.text(""));
    let arms: Vec<Arm> = vec![
        typed(StdHeader::Via, list(via())),
        typed(
            StdHeader::From,
            (na(), token()).prop_map(|(a, t)| format!("{a};tag={t}")),
        ),
        typed(StdHeader::To, na()),
        typed(
            StdHeader::Contact,
            prop_oneof![1 => Just("*".to_owned()), 4 => list(na())],
        ),
        typed(StdHeader::Route, list(na())),
        typed(StdHeader::RecordRoute, list(na())),
        typed(
            StdHeader::CallId,
            "[a-zA-Z0-9.!%*_+`'~()<>:\\\\\"/?{}\\[\\]-]{1,20}(@[a-z0-9.]{1,12})?",
        ),
        typed(
            StdHeader::CSeq,
            (0u32..1 << 31, token()).prop_map(|(n, m)| format!("{n} {m}")),
        ),
        typed(
            StdHeader::MaxForwards,
            any::<u8>().prop_map(|n| n.to_string()),
        ),
        typed(StdHeader::Expires, any::<u32>().prop_map(|n| n.to_string())),
        typed(StdHeader::Supported, token_list(0)),
        typed(StdHeader::Require, token_list(1)),
        typed(StdHeader::Allow, token_list(0)),
        typed(
            StdHeader::SessionExpires,
            (
                any::<u32>(),
                prop_oneof![Just(""), Just(";refresher=uac"), Just(";refresher=uas")],
            )
                .prop_map(|(n, r)| format!("{n}{r}")),
        ),
        typed(
            StdHeader::Event,
            ("[A-Za-z0-9!%*_+`'~-]{1,12}", option::of(token())).prop_map(|(e, id)| match id {
                Some(id) => format!("{e};id={id}"),
                None => e,
            }),
        ),
        // The bare form of an identity has no header parameters (RFC 3325 §9.1).
        typed(
            StdHeader::PAssertedIdentity,
            list(name_addr().prop_map(|a| if a.bare { a.uri.text() } else { a.text("") })),
        ),
        typed(StdHeader::Subject, raw_value()),
        typed(StdHeader::UserAgent, raw_value()),
        typed(
            StdHeader::ContentType,
            (token(), token()).prop_map(|(t, s)| format!("{t}/{s}")),
        ),
        typed(
            StdHeader::WwwAuthenticate,
            (text(10), token()).prop_map(|(r, n)| {
                format!(
                    "Digest realm={}, nonce=\"{n}\", algorithm=SHA-256, qop=\"auth\"",
                    quote(&r)
                )
            }),
        ),
        (
            6,
            (unknown_name(), raw_value())
                .prop_map(|(n, v)| (HeaderName::Other(Text::from(n)), v))
                .boxed(),
        ),
    ];
    Union::new_weighted(arms)
}

/// The start line of a message.
#[derive(Clone, Debug)]
pub(crate) enum GenStart {
    /// A request with a method and a Request-URI.
    Request(Method, GenUri),
    /// A response.
    Response(StatusCode, String),
}

pub(crate) fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        prop::sample::select(vec![
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "REGISTER",
            "OPTIONS",
            "INFO",
            "UPDATE",
            "PRACK",
            "SUBSCRIBE",
            "NOTIFY",
            "REFER",
            "MESSAGE",
            "PUBLISH",
        ])
        .prop_map(|m| m.to_owned()),
        token(),
    ]
    .prop_filter_map("not a token", |m| Method::parse(&m))
}

pub(crate) fn start() -> impl Strategy<Value = GenStart> {
    prop_oneof![
        (method(), uri()).prop_map(|(m, u)| GenStart::Request(m, u)),
        (100u16..=699, text(30)).prop_filter_map("in range", |(c, r)| {
            StatusCode::new(c).map(|c| GenStart::Response(c, r))
        }),
    ]
}

/// A whole message as built through the public API, Content-Length right, somewhere among the
/// headers.
pub(crate) fn message() -> impl Strategy<Value = Message> {
    (
        start(),
        vec(header(), 0..14),
        vec(any::<u8>(), 0..200),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(start, headers, body, at)| {
            let mut m = match start {
                GenStart::Request(method, uri) => Message::request(method, uri.text()),
                GenStart::Response(code, reason) => Message {
                    start: StartLine::Response {
                        code,
                        reason: Text::from(reason),
                    },
                    ..Message::response(code)
                },
            };
            let at = at.index(headers.len() + 1);
            for (i, (name, value)) in headers.into_iter().enumerate() {
                if i == at {
                    m.headers
                        .push(StdHeader::ContentLength, body.len().to_string());
                }
                m.headers.push(name, value);
            }
            if !m.headers.contains(StdHeader::ContentLength) {
                m.headers
                    .push(StdHeader::ContentLength, body.len().to_string());
            }
            m.body = Bytes::from(body);
            m
        })
}
