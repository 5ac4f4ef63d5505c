//! The two header values: a challenge (`WWW-Authenticate`, `Proxy-Authenticate`; RFC 7616 §3.3)
//! and its answer (`Authorization`, `Proxy-Authorization`; RFC 7616 §3.4).

use std::fmt;

use super::params::{Params, Quoted};
use super::{Algorithm, DigestError, Qop, ha1, response, session_ha1};

/// A digest challenge from a 401 or 407.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space; with the username it selects the password.
    pub realm: String,
    /// Server nonce, echoed in the answer.
    pub nonce: String,
    /// Server state the client must echo unchanged.
    pub opaque: Option<String>,
    /// Hash to use; MD5 when the parameter is absent.
    pub algorithm: Algorithm,
    /// Qualities of protection offered; empty means an RFC 2069 server.
    pub qop: Vec<Qop>,
    /// The previous answer was right but its nonce expired: retry without asking the user.
    pub stale: bool,
    /// The raw `domain` URI list, kept for the caller; SIP (RFC 3261 §22.1) ignores it.
    pub domain: Option<String>,
}

impl Challenge {
    /// Reads a `WWW-Authenticate` or `Proxy-Authenticate` value.
    ///
    /// Unknown parameters are ignored; unknown qop values too, unless none is known.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let p = Params::parse(value)?;
        let algorithm = match p.get("algorithm") {
            Some(a) => a.parse()?,
            None => Algorithm::Md5,
        };
        let mut qop = Vec::new();
        if let Some(list) = p.get("qop") {
            for q in list.split(',').map(str::trim).filter(|q| !q.is_empty()) {
                if let Ok(q) = q.parse::<Qop>()
                    && !qop.contains(&q)
                {
                    qop.push(q);
                }
            }
            if qop.is_empty() {
                return Err(DigestError::UnsupportedQop(list.to_owned()));
            }
        }
        Ok(Self {
            realm: p.require("realm")?,
            nonce: p.require("nonce")?,
            opaque: p.get("opaque").map(str::to_owned),
            algorithm,
            qop,
            // RFC 7616 §3.3: anything but a case-insensitive TRUE means false.
            stale: p
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
            domain: p.get("domain").map(str::to_owned),
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest realm={}, nonce={}",
            Quoted(&self.realm),
            Quoted(&self.nonce)
        )?;
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if !self.qop.is_empty() {
            let list: Vec<&str> = self.qop.iter().map(|q| q.as_str()).collect();
            write!(f, ", qop=\"{}\"", list.join(","))?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        if let Some(domain) = &self.domain {
            write!(f, ", domain={}", Quoted(domain))?;
        }
        Ok(())
    }
}

/// A digest answer carried in `Authorization` or `Proxy-Authorization`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Who is authenticating.
    pub username: String,
    /// Realm of the challenge answered.
    pub realm: String,
    /// Nonce of the challenge answered.
    pub nonce: String,
    /// The Request-URI as the client saw it; the hash covers it.
    pub uri: String,
    /// The hash proving knowledge of the password, lowercase hex.
    pub response: String,
    /// Hash used; MD5 when the parameter is absent.
    pub algorithm: Algorithm,
    /// Client nonce: present with a qop, and with the `-sess` algorithms.
    pub cnonce: Option<String>,
    /// The challenge's `opaque`, echoed.
    pub opaque: Option<String>,
    /// Quality of protection chosen; `None` for an RFC 2069 answer.
    pub qop: Option<Qop>,
    /// How many requests this client has sent with this nonce, the server's replay guard.
    pub nc: Option<u32>,
}

impl Credentials {
    /// Reads an `Authorization` or `Proxy-Authorization` value.
    ///
    /// The `response` must be hex of the algorithm's length; it is kept lowercased. With a qop,
    /// `cnonce` and `nc` (8 hex digits) are required.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let p = Params::parse(value)?;
        let algorithm = match p.get("algorithm") {
            Some(a) => a.parse()?,
            None => Algorithm::Md5,
        };
        let response = p.require("response")?.to_ascii_lowercase();
        if response.len() != algorithm.hex_len() || !response.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(DigestError::BadParam("response"));
        }
        let qop = p.get("qop").map(str::parse::<Qop>).transpose()?;
        let nc = match p.get("nc") {
            Some(nc) if nc.len() == 8 && nc.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(u32::from_str_radix(nc, 16).map_err(|_| DigestError::BadParam("nc"))?)
            }
            Some(_) => return Err(DigestError::BadParam("nc")),
            None => None,
        };
        let cnonce = p.get("cnonce").map(str::to_owned);
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(DigestError::MissingParam("cnonce"));
            }
            if nc.is_none() {
                return Err(DigestError::MissingParam("nc"));
            }
        }
        Ok(Self {
            username: p.require("username")?,
            realm: p.require("realm")?,
            nonce: p.require("nonce")?,
            uri: p.require("uri")?,
            response,
            algorithm,
            cnonce,
            opaque: p.get("opaque").map(str::to_owned),
            qop,
            nc,
        })
    }

    /// Answers `challenge` for a request `method uri` (RFC 3261 §22.2–22.4).
    ///
    /// Uses `qop=auth` when offered, an RFC 2069 answer (no qop, nc or cnonce unless `-sess`
    /// needs it) when the challenge has no qop, and fails with [`DigestError::UnsupportedQop`]
    /// when only `auth-int` is offered. `cnonce` should be fresh randomness per nonce, and `nc`
    /// count the requests sent with this nonce, from 1.
    pub fn answer(
        challenge: &Challenge,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
        cnonce: &str,
        nc: u32,
    ) -> Result<Self, DigestError> {
        let qop = if challenge.qop.is_empty() {
            None
        } else if challenge.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else {
            return Err(DigestError::UnsupportedQop(Qop::AuthInt.as_str().into()));
        };
        let algorithm = challenge.algorithm;
        let base = ha1(algorithm, username, &challenge.realm, password);
        let key = session_ha1(algorithm, &base, &challenge.nonce, cnonce);
        let auth = qop.map(|_| (nc, cnonce));
        let response = response(algorithm, &key, &challenge.nonce, auth, method, uri);
        Ok(Self {
            username: username.to_owned(),
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: uri.to_owned(),
            response,
            algorithm,
            cnonce: (qop.is_some() || algorithm.is_session()).then(|| cnonce.to_owned()),
            opaque: challenge.opaque.clone(),
            qop,
            nc: qop.map(|_| nc),
        })
    }

    /// The response a client knowing `password` would have sent for `method` with these
    /// parameters; `None` for `qop=auth-int`, which we cannot check.
    pub fn expected_response(&self, method: &str, password: &str) -> Option<String> {
        let cnonce = self.cnonce.as_deref().unwrap_or_default();
        let auth = match (self.qop, self.nc) {
            (None, _) => None,
            (Some(Qop::Auth), Some(nc)) => Some((nc, cnonce)),
            (Some(Qop::Auth), None) | (Some(Qop::AuthInt), _) => return None,
        };
        let a = self.algorithm;
        let base = ha1(a, &self.username, &self.realm, password);
        let key = session_ha1(a, &base, &self.nonce, cnonce);
        Some(response(a, &key, &self.nonce, auth, method, &self.uri))
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(&self.nonce),
            Quoted(&self.uri),
            Quoted(&self.response),
            self.algorithm,
        )?;
        if let Some(cnonce) = &self.cnonce {
            write!(f, ", cnonce={}", Quoted(cnonce))?;
        }
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        if let Some(qop) = self.qop {
            write!(f, ", qop={qop}")?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
