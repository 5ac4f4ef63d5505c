//! Event notification (RFC 6665): `Event` / `o` (§8.2.1) and `Subscription-State` (§8.2.3).
//!
//! ```text
//! Event              = ("Event" / "o") HCOLON event-type *(SEMI event-param)
//! event-type         = event-package *("." event-template)
//! event-param        = generic-param / ("id" EQUAL token)
//! Subscription-State = "Subscription-State" HCOLON substate-value *(SEMI subexp-params)
//! substate-value     = "active" / "pending" / "terminated" / extension-substate
//! subexp-params      = ("reason" EQUAL event-reason-value) / ("expires" EQUAL delta-seconds)
//!                      / ("retry-after" EQUAL delta-seconds) / generic-param
//! ```

use std::fmt;

use super::params::Params;
use super::simple::delta_seconds;
use super::{HeaderError, TypedHeader, is_token, trim_lws};
use crate::message::StdHeader;

/// `Event`: the event package (with templates) and its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// The event type as written (`presence`, `dialog`, `presence.winfo`), compared byte for
    /// byte (§8.2.1).
    pub event_type: &'a str,
    /// Parameters (`id` and any package-specific ones), raw.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for Event<'a> {
    const NAME: StdHeader = StdHeader::Event;

    fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let (event_type, params) = value.split_once(';').unwrap_or((value, ""));
        let event_type = trim_lws(event_type);
        // token-nodot segments separated by single dots.
        if !event_type.split('.').all(is_token) {
            return Err(HeaderError::syntax("bad event type"));
        }
        let params = Params::new(trim_lws(params));
        params.validate()?;
        if let Some(id) = params.get("id")
            && !id.is_some_and(is_token)
        {
            return Err(HeaderError::syntax("id is not a token"));
        }
        Ok(Self { event_type, params })
    }
}

impl<'a> Event<'a> {
    /// The event package: the event type up to the first dot (`presence` of `presence.winfo`).
    pub fn package(&self) -> &'a str {
        self.event_type
            .split_once('.')
            .map_or(self.event_type, |(p, _)| p)
    }

    /// The event templates after the package (`winfo` of `presence.winfo`, RFC 6665 §8.2.1).
    pub fn templates(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.event_type.split('.').skip(1)
    }

    /// The `id` parameter that tells subscriptions in one dialog apart.
    pub fn id(&self) -> Option<&'a str> {
        self.params.get("id").flatten()
    }

    /// Whether a NOTIFY or a response with this Event belongs to a subscription with `other`:
    /// same event type and same `id` (or neither has one), byte for byte, other parameters
    /// ignored (RFC 6665 §8.2.1).
    pub fn matches(&self, other: &Event<'_>) -> bool {
        self.event_type == other.event_type && self.id() == other.id()
    }
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.event_type)?;
        if !self.params.as_str().is_empty() {
            write!(f, ";{}", self.params.as_str())?;
        }
        Ok(())
    }
}

/// The state of a subscription (RFC 6665 §4.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubState<'a> {
    /// Accepted and running.
    Active,
    /// Received but not yet authorized.
    Pending,
    /// Over; `reason` and `retry-after` say whether to try again.
    Terminated,
    /// An extension state, which §8.2.3 says to treat as `active` unless the package says
    /// otherwise.
    Other(&'a str),
}

impl<'a> SubState<'a> {
    /// The value as printed (lower case for the three standard states).
    pub fn as_str(&self) -> &'a str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Terminated => "terminated",
            Self::Other(s) => s,
        }
    }
}

/// `Subscription-State`: in every NOTIFY (RFC 6665 §4.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionState<'a> {
    /// The state.
    pub state: SubState<'a>,
    /// The `expires` parameter in seconds (saturating).
    pub expires: Option<u32>,
    /// The `retry-after` parameter in seconds (saturating).
    pub retry_after: Option<u32>,
    /// All parameters, raw.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for SubscriptionState<'a> {
    const NAME: StdHeader = StdHeader::SubscriptionState;

    fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let (state, params) = value.split_once(';').unwrap_or((value, ""));
        let state = trim_lws(state);
        let state = if state.eq_ignore_ascii_case("active") {
            SubState::Active
        } else if state.eq_ignore_ascii_case("pending") {
            SubState::Pending
        } else if state.eq_ignore_ascii_case("terminated") {
            SubState::Terminated
        } else if is_token(state) {
            SubState::Other(state)
        } else {
            return Err(HeaderError::syntax("bad substate-value"));
        };
        let params = Params::new(trim_lws(params));
        params.validate()?;
        let seconds = |name: &str| {
            params
                .get(name)
                .map(|v| delta_seconds(v.unwrap_or("")))
                .transpose()
        };
        if params
            .get("reason")
            .is_some_and(|r| !r.is_some_and(is_token))
        {
            return Err(HeaderError::syntax("reason is not a token"));
        }
        Ok(Self {
            state,
            expires: seconds("expires")?,
            retry_after: seconds("retry-after")?,
            params,
        })
    }
}

impl<'a> SubscriptionState<'a> {
    /// The `reason` parameter of a terminated subscription (`deactivated`, `probation`,
    /// `rejected`, `timeout`, `giveup`, `noresource`, `invariant` or an extension, §4.1.3).
    pub fn reason(&self) -> Option<&'a str> {
        self.params.get("reason").flatten()
    }
}

impl fmt::Display for SubscriptionState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.state.as_str())?;
        if !self.params.as_str().is_empty() {
            write!(f, ";{}", self.params.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6665_events() {
        let e = Event::parse("presence").unwrap();
        assert_eq!((e.package(), e.id()), ("presence", None));
        let e = Event::parse("foo; id=1234").unwrap();
        assert_eq!(e.id(), Some("1234"));
        assert!(e.matches(&Event::parse("foo;param=abcd;id=1234").unwrap()));
        assert!(!e.matches(&Event::parse("Foo;id=1234").unwrap()));
        assert!(!e.matches(&Event::parse("foo").unwrap()));
        let e = Event::parse(" presence.winfo ").unwrap();
        assert_eq!(e.package(), "presence");
        assert_eq!(e.templates().collect::<Vec<_>>(), ["winfo"]);
        assert!(
            Event::parse("refer;id=93809824")
                .unwrap()
                .matches(&Event::parse("refer ; id = 93809824").unwrap())
        );
        for bad in [
            "",
            "pres ence",
            "presence.",
            ".winfo",
            "a..b",
            "foo;id",
            "foo;id=\"x\"",
            "foo;=1",
        ] {
            assert!(Event::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc6665_subscription_states() {
        let s = SubscriptionState::parse("active;expires=3600").unwrap();
        assert_eq!(
            (s.state, s.expires, s.reason()),
            (SubState::Active, Some(3600), None)
        );
        let s = SubscriptionState::parse("terminated;reason=timeout").unwrap();
        assert_eq!(
            (s.state, s.reason()),
            (SubState::Terminated, Some("timeout"))
        );
        let s = SubscriptionState::parse(" Terminated ; reason = probation ; retry-after = 60")
            .unwrap();
        assert_eq!(s.retry_after, Some(60));
        assert_eq!(s.reason(), Some("probation"));
        let s = SubscriptionState::parse("pending").unwrap();
        assert_eq!(s.state, SubState::Pending);
        let s = SubscriptionState::parse("waiting;x=1").unwrap();
        assert_eq!(s.state, SubState::Other("waiting"));
        for bad in [
            "",
            "act ive",
            "active;expires=soon",
            "active;expires",
            "terminated;retry-after=-1",
            "terminated;reason",
            "terminated;reason=\"x\"",
            "active;=x",
        ] {
            assert!(SubscriptionState::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn print_parses_back() {
        for v in ["presence.winfo;id=1", " dialog ;  call-id=\"a;b\" ", "x"] {
            let e = Event::parse(v).unwrap();
            assert_eq!(Event::parse(&e.to_string()).unwrap(), e);
        }
        for v in [
            "ACTIVE;expires=1",
            "terminated;reason=giveup;retry-after=9",
            "Odd",
        ] {
            let s = SubscriptionState::parse(v).unwrap();
            assert_eq!(SubscriptionState::parse(&s.to_string()).unwrap(), s);
        }
        assert_eq!(
            SubscriptionState::parse("ACTIVE ;expires=1")
                .unwrap()
                .to_string(),
            "active;expires=1"
        );
    }
}
