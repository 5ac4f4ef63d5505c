//! Generic parameters (`;name=value`, §25.1 `generic-param`) as they follow URIs, name-addrs,
//! Via and most other headers — and quoted strings.

use std::borrow::Cow;
use std::fmt;

/// A parameter list, borrowed raw (the text after the first `;`) and parsed while iterating.
/// Whitespace around `;` and `=` is allowed (§25.1 SEMI, EQUAL); a value may be a quoted string.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a>(&'a str);

impl<'a> Params<'a> {
    /// Wraps the text after the first `;` (empty for none).
    pub const fn new(raw: &'a str) -> Self {
        Self(raw)
    }

    /// The raw text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The parameters in order: name, and value if any (raw: a quoted value keeps its quotes).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        split_unquoted(self.0, b';').filter_map(|p| {
            let p = super::trim_lws(p);
            if p.is_empty() {
                return None;
            }
            Some(match p.split_once('=') {
                Some((n, v)) => (super::trim_lws(n), Some(super::trim_lws(v))),
                None => (p, None),
            })
        })
    }

    /// The first parameter called `name` (ignoring case): `Some(None)` for a flag like `lr`.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// A parameter's value with the quotes and escapes of a quoted string removed.
    pub fn get_unquoted(&self, name: &str) -> Option<Cow<'a, str>> {
        self.get(name).flatten().map(unquote)
    }

    /// Checks that every name is a token and every value a token, host or quoted string.
    pub fn validate(&self) -> Result<(), super::HeaderError> {
        for (name, value) in self.iter() {
            if !super::is_token(name) {
                return Err(super::HeaderError::syntax("bad parameter name"));
            }
            if let Some(v) = value {
                let ok = if v.starts_with('"') {
                    is_quoted_string(v)
                } else {
                    !v.is_empty()
                        && v.bytes().all(|b| {
                            crate::message::is_token_byte(b) || matches!(b, b'[' | b']' | b':')
                        })
                };
                if !ok {
                    return Err(super::HeaderError::syntax("bad parameter value"));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Whether `v` (starting with `"`) is one quoted string: its closing quote, found by skipping
/// quoted-pairs, is the last character — so `"a\\"` is one and `"a\"` is not.
fn is_quoted_string(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1 == b.len(),
            _ => i += 1,
        }
    }
    false
}

/// Splits at `sep` outside quoted strings.
pub(crate) fn split_unquoted(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let b = s.as_bytes();
    let mut start = 0;
    let mut done = s.is_empty();
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut i = start;
        let mut quoted = false;
        while i < b.len() {
            match b[i] {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                c if c == sep && !quoted => break,
                _ => {}
            }
            i += 1;
        }
        let end = i.min(b.len());
        let part = &s[start..end];
        if end >= b.len() {
            done = true;
        } else {
            start = end + 1;
        }
        Some(part)
    })
}

/// The content of a quoted string (`"a \"b\""` → `a "b"`); other text is returned as is.
pub fn unquote(s: &str) -> Cow<'_, str> {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return Cow::Borrowed(s);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A quoted string for `s`, escaping `"` and `\` (§25.1 quoted-pair).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        if c != '\r' && c != '\n' {
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_with_whitespace_flags_and_quotes() {
        let p = Params::new(" branch = z9hG4bK1 ; rport;received=1.2.3.4; x=\"a;b\\\"c\"");
        let v: Vec<_> = p.iter().collect();
        assert_eq!(
            v,
            [
                ("branch", Some("z9hG4bK1")),
                ("rport", None),
                ("received", Some("1.2.3.4")),
                ("x", Some("\"a;b\\\"c\"")),
            ]
        );
        assert_eq!(p.get("BRANCH"), Some(Some("z9hG4bK1")));
        assert_eq!(p.get_unquoted("x").as_deref(), Some("a;b\"c"));
        assert_eq!(p.get("nope"), None);
        assert!(p.validate().is_ok());
        assert!(Params::new("a=b c").validate().is_err());
        // A value ending in an escaped backslash is closed by the quote after it.
        assert!(Params::new(r#"x="a\\";y="\\""#).validate().is_ok());
        assert!(Params::new(r#"x="a\""#).validate().is_err());
        assert!(Params::new(r#"x="a"b""#).validate().is_err());
        assert!(Params::default().is_empty());
    }

    #[test]
    fn quote_round_trips() {
        for s in ["plain", "with \"quotes\"", "back\\slash", ""] {
            assert_eq!(unquote(&quote(s)), s);
        }
    }
}
