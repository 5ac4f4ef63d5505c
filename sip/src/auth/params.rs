//! The `Digest` auth-param list (RFC 3261 §25.1 `digest-cln`, RFC 7235 §2.1) and its quoting.
//!
//! Reading is lenient where peers differ (case, whitespace, empty list elements, a quoted
//! `algorithm` or `nc`, an unquoted `nonce`) and strict where ambiguity would be dangerous
//! (duplicates, unterminated or control characters in quoted strings).

use std::fmt;

use super::DigestError;

/// The parameters of one `Digest` header value, names lowercased, values unescaped, in order.
#[derive(Debug)]
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    /// Reads `Digest name=value, name="quoted", …`.
    pub(super) fn parse(value: &str) -> Result<Self, DigestError> {
        let mut r = Reader {
            s: value.as_bytes(),
            pos: 0,
        };
        r.skip_ws();
        let scheme = r.token();
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let mut list: Vec<(String, String)> = Vec::new();
        if !r.at_end() && !r.skip_ws() {
            return Err(r.bad("whitespace after \"Digest\""));
        }
        loop {
            r.skip_ws();
            match r.peek() {
                None => break,
                // RFC 7230 §7: recipients accept empty list elements.
                Some(b',') => {
                    r.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            let name = r.token().to_ascii_lowercase();
            if name.is_empty() {
                return Err(r.bad("a parameter name"));
            }
            r.skip_ws();
            if r.peek() != Some(b'=') {
                return Err(r.bad("'=' after a parameter name"));
            }
            r.pos += 1;
            r.skip_ws();
            let value = if r.peek() == Some(b'"') {
                r.quoted()
                    .ok_or_else(|| DigestError::BadQuotedString(name.clone()))?
            } else {
                let v = r.value_token();
                if v.is_empty() {
                    return Err(r.bad("a parameter value"));
                }
                v.to_owned()
            };
            if list.iter().any(|(n, _)| *n == name) {
                return Err(DigestError::DuplicateParam(name));
            }
            list.push((name, value));
            r.skip_ws();
            match r.peek() {
                None => break,
                Some(b',') => r.pos += 1,
                Some(_) => return Err(r.bad("',' between parameters")),
            }
        }
        Ok(Self(list))
    }

    /// The value of `name` (lowercase), if present.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a parameter the grammar requires.
    pub(super) fn require(&self, name: &'static str) -> Result<String, DigestError> {
        self.get(name)
            .map(str::to_owned)
            .ok_or(DigestError::MissingParam(name))
    }
}

struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn bad(&self, expected: &'static str) -> DigestError {
        DigestError::BadSyntax {
            pos: self.pos,
            expected,
        }
    }

    /// Skips LWS (CR and LF too, in case the value was not unfolded); whether any was skipped.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        // Only ASCII bytes are taken, so the slice ends on a char boundary.
        let s: &'a [u8] = self.s;
        std::str::from_utf8(s.get(start..self.pos).unwrap_or_default()).unwrap_or_default()
    }

    /// An RFC 3261 `token`.
    fn token(&mut self) -> &'a str {
        self.take_while(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
    }

    /// An unquoted value: any visible ASCII but separators of the list, so that the odd peer
    /// sending a base64 nonce unquoted is still understood.
    fn value_token(&mut self) -> &'a str {
        self.take_while(|b| b.is_ascii_graphic() && b != b',' && b != b'"')
    }

    /// A quoted string starting at the opening quote, unescaped; `None` if unterminated, or if it
    /// holds a control character (which would let a value smuggle a line break into a header).
    fn quoted(&mut self) -> Option<String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            let b = match b {
                b'"' => break,
                b'\\' => {
                    let escaped = self.peek()?;
                    self.pos += 1;
                    escaped
                }
                other => other,
            };
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                return None;
            }
            out.push(b);
        }
        // Bytes were copied from a `&str` minus ASCII backslashes: still UTF-8, checked anyway.
        String::from_utf8(out).ok()
    }
}

/// Prints `s` as a quoted string: `"` and `\` escaped; control characters, which only our own
/// API could have put there, become spaces rather than a header injection.
pub(super) struct Quoted<'a>(pub(super) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => write!(f, "\\{c}")?,
                c if c.is_ascii_control() && c != '\t' => f.write_str(" ")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &str) -> Vec<(String, String)> {
        match Params::parse(s) {
            Ok(p) => p.0,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_tokens_quoted_strings_and_odd_whitespace() {
        assert_eq!(
            params(
                "dIgEsT  REALM = \"a\\\"b\\\\c\" ,nonce=\"x,y\",\t algorithm=md5 ,, qop=\"auth, auth-int\"  "
            ),
            pairs(&[
                ("realm", "a\"b\\c"),
                ("nonce", "x,y"),
                ("algorithm", "md5"),
                ("qop", "auth, auth-int"),
            ])
        );
        assert_eq!(params("Digest"), pairs(&[]));
        assert_eq!(
            params("Digest nonce=abc/+=="),
            pairs(&[("nonce", "abc/+==")])
        );
        assert_eq!(
            params("Digest realm=\"ünïcode\""),
            pairs(&[("realm", "ünïcode")])
        );
        assert_eq!(params("Digest a=\"\""), pairs(&[("a", "")]));
    }

    #[test]
    fn rejects_what_is_ambiguous() {
        use DigestError::*;
        let err = |s: &str| Params::parse(s).map(|p| p.0);
        assert_eq!(err("Basic realm=\"x\""), Err(NotDigest));
        assert_eq!(err(""), Err(NotDigest));
        assert_eq!(err("Digestrealm=x").map(|_| ()), Err(NotDigest));
        assert_eq!(
            err("Digest, realm=x").map(|_| ()),
            Err(BadSyntax {
                pos: 6,
                expected: "whitespace after \"Digest\""
            })
        );
        assert_eq!(
            err("Digest realm=\"x"),
            Err(BadQuotedString("realm".into()))
        );
        assert_eq!(
            err("Digest realm=\"x\\"),
            Err(BadQuotedString("realm".into()))
        );
        assert_eq!(
            err("Digest realm=\"a\r\nb\""),
            Err(BadQuotedString("realm".into()))
        );
        assert_eq!(
            err("Digest realm=x, REALM=y"),
            Err(DuplicateParam("realm".into()))
        );
        assert!(matches!(
            err("Digest realm"),
            Err(BadSyntax { pos: 12, .. })
        ));
        assert!(matches!(
            err("Digest realm="),
            Err(BadSyntax { pos: 13, .. })
        ));
        assert!(matches!(err("Digest =x"), Err(BadSyntax { pos: 7, .. })));
        assert!(matches!(
            err("Digest a=\"x\" b=y"),
            Err(BadSyntax { pos: 13, .. })
        ));
    }

    #[test]
    fn quoting_escapes_and_neutralises_line_breaks() {
        assert_eq!(Quoted("a\"b\\c").to_string(), "\"a\\\"b\\\\c\"");
        assert_eq!(Quoted("x\r\nVia: evil").to_string(), "\"x  Via: evil\"");
        let printed = format!("Digest realm={}", Quoted("q\"\\é"));
        assert_eq!(params(&printed), pairs(&[("realm", "q\"\\é")]));
    }
}
