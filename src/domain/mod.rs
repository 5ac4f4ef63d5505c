//! The domain vocabulary: ids, timestamps, permissions, channel kinds, phone numbers, SIP
//! accounts and trunk settings.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod phone;

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident;)*) => {$(
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type, ToSchema)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[schema(value_type = i64)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type! {
    /// A company (tenant). Every company-owned row carries one.
    CompanyId;
    /// A user of a company (an agent or an admin).
    UserId;
}

/// A point in time, stored as Unix milliseconds and shown as RFC 3339 in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, sqlx::Type, ToSchema)]
#[sqlx(transparent)]
#[schema(value_type = String, format = DateTime, example = "2026-11-25T13:00:00.000Z")]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_millis())
    }

    /// RFC 3339 with milliseconds, in UTC.
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_millis(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| Self(t.timestamp_millis()))
            .map_err(|_| serde::de::Error::custom("expected an RFC 3339 timestamp"))
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }

        // Written by hand: the derive does not see serde renames made through macro fragments,
        // and the schema must list the wire names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),*]))
                    .into()
            }
        }

        impl ToSchema for $name {}

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses the stored name.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// What a role may do. Every API route requires one of these.
    Permission {
        /// Read the company profile.
        CompanyRead = "company:read",
        /// Change the company profile.
        CompanyWrite = "company:write",
        /// List and read users.
        UsersRead = "users:read",
        /// Create, change and delete users and invitations.
        UsersWrite = "users:write",
        /// List and read roles.
        RolesRead = "roles:read",
        /// Create, change and delete roles.
        RolesWrite = "roles:write",
        /// List and read customers and their timelines.
        CustomersRead = "customers:read",
        /// Create and change customers, their identities and notes; merge customers.
        CustomersWrite = "customers:write",
        /// Delete customers and all their data.
        CustomersDelete = "customers:delete",
        /// List and read conversations.
        ConversationsRead = "conversations:read",
        /// Create conversations, change status and assignee.
        ConversationsWrite = "conversations:write",
        /// List channel accounts (never their credentials).
        ChannelsRead = "channels:read",
        /// Create, change and delete channel accounts and their credentials.
        ChannelsWrite = "channels:write",
        /// Read the audit log.
        AuditRead = "audit:read",
        /// Create and revoke one's own API tokens.
        TokensWrite = "tokens:write",
        /// List call recordings and play them (each playback is audited).
        RecordingsRead = "recordings:read",
        /// Delete call recordings.
        RecordingsDelete = "recordings:delete",
        /// Configure AI assistance: the company's model and key, each channel's opt-in, the
        /// knowledge base.
        AiManage = "ai:manage",
        /// Read the company's usage against its plan.
        UsageRead = "usage:read",
        /// Export the company's data, or one customer's.
        DataExport = "data:export",
        /// Close the company: logins stop at once and all its data is deleted after the grace period.
        CompanyClose = "company:close",
    }
}

impl Permission {
    /// The permissions of the built-in `agent` role.
    pub const AGENT: &'static [Permission] = &[
        Permission::CompanyRead,
        Permission::UsersRead,
        Permission::CustomersRead,
        Permission::CustomersWrite,
        Permission::ConversationsRead,
        Permission::ConversationsWrite,
        Permission::ChannelsRead,
        Permission::TokensWrite,
        // Agents listen back to calls; deleting one stays with administrators.
        Permission::RecordingsRead,
    ];
}

/// A set of permissions, stored as space-separated names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PermissionSet(Vec<Permission>);

impl PermissionSet {
    /// A set of the given permissions (duplicates dropped).
    pub fn new(perms: impl IntoIterator<Item = Permission>) -> Self {
        let mut v: Vec<Permission> = Vec::new();
        for p in perms {
            if !v.contains(&p) {
                v.push(p);
            }
        }
        v.sort_by_key(|p| p.as_str());
        Self(v)
    }

    /// Every permission.
    pub fn all() -> Self {
        Self::new(Permission::ALL.iter().copied())
    }

    /// Parses the stored form, ignoring names this version does not know.
    pub fn from_stored(text: &str) -> Self {
        Self::new(text.split_whitespace().filter_map(Permission::parse))
    }

    /// The stored form.
    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether `p` is in the set.
    pub fn contains(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }

    /// The permissions.
    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }
}

string_enum! {
    /// The kinds of channel account a company connects.
    ChannelKind {
        /// A Facebook Page's Messenger inbox.
        Messenger = "messenger",
        /// An Instagram business account.
        Instagram = "instagram",
        /// A WhatsApp Cloud API phone number.
        WhatsappCloud = "whatsapp_cloud",
        /// A WAHA (WhatsApp HTTP API) session.
        Waha = "waha",
        /// A SIP trunk.
        SipTrunk = "sip_trunk",
        /// An OpenAI-compatible API for reply suggestions.
        Openai = "openai",
    }
}

string_enum! {
    /// What kind of external id an identity is.
    IdentityKind {
        /// Facebook page-scoped id.
        Psid = "psid",
        /// Instagram-scoped id.
        Igsid = "igsid",
        /// WhatsApp id (the phone number digits).
        WaId = "wa_id",
        /// WhatsApp business-scoped user id.
        WhatsappBsuid = "whatsapp_bsuid",
        /// WAHA chat id, e.g. `4915123456789@c.us`.
        WahaChatId = "waha_chat_id",
        /// A SIP URI.
        SipUri = "sip_uri",
        /// A phone number in E.164.
        Phone = "phone",
    }
}

string_enum! {
    /// Where a conversation stands.
    ConversationStatus {
        /// Waiting for the business.
        Open = "open",
        /// Waiting for the customer or a third party.
        Pending = "pending",
        /// Done.
        Resolved = "resolved",
    }
}

// Declared after `string_enum!`, which they use.
pub mod sip;
pub mod trunk;

/// Checks an email address's shape (one `@`, a dot in the domain, no spaces) and lower-cases it.
pub fn normalize_email(text: &str) -> Option<String> {
    let email = text.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
        && email.matches('@').count() == 1
        && email.len() <= 254;
    ok.then_some(email)
}

/// Checks a slug: 2–63 characters of `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub fn valid_slug(slug: &str) -> bool {
    (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

/// Checks an IANA time zone name.
pub fn valid_time_zone(name: &str) -> bool {
    name.parse::<chrono_tz::Tz>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_sets_round_trip_and_skip_unknown() {
        let set = PermissionSet::from_stored("users:read bogus customers:read users:read");
        assert_eq!(set.to_stored(), "customers:read users:read");
        assert!(set.contains(Permission::UsersRead));
        assert!(!set.contains(Permission::UsersWrite));
    }

    #[test]
    fn emails_slugs_and_zones() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").as_deref(),
            Some("ann@example.com")
        );
        for bad in ["", "ann", "ann@", "@x.com", "a@b", "a b@c.com", "a@@b.com"] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
        assert!(valid_slug("acme-2"));
        assert!(!valid_slug("Acme") && !valid_slug("-a") && !valid_slug("a"));
        assert!(valid_time_zone("Europe/Berlin") && valid_time_zone("UTC"));
        assert!(!valid_time_zone("Mars/Base"));
    }

    #[test]
    fn timestamps_print_rfc3339() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        let json = serde_json::to_string(&Timestamp(1_764_075_600_123)).unwrap();
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Timestamp(1_764_075_600_123));
    }
}

/// A JSON value kept in a TEXT column (the same in SQLite and PostgreSQL).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct JsonText(pub serde_json::Value);

impl TryFrom<String> for JsonText {
    type Error = serde_json::Error;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&text).map(Self)
    }
}
