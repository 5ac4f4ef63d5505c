//! What the company export holds: one entity (a JSON Lines file) per company-scoped table, the
//! columns written for each, the columns left out with the reason, and the company-scoped tables
//! left out with the reason.
//!
//! Columns are named, never `SELECT *`: a column added by a later migration is not exported until
//! someone decides here whether it may leave. The privacy suite (`p26_…`) reads the schema of both
//! databases and fails when a table with a `company_id` column, or a column of an exported table,
//! is neither exported nor listed below with its reason.

/// How a column's value is written into a row of the JSON Lines file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit integer (ids, counts, Unix-millisecond timestamps).
    Int,
    /// A string.
    Text,
    /// `true` or `false`.
    Bool,
    /// A floating-point number.
    Real,
    /// Text the server always writes as JSON: embedded as the JSON value it holds (kept as a
    /// string if it does not parse).
    Json,
    /// A space-separated list of names: written as an array of strings.
    Words,
}

/// One exported column.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// The column's name, also the key in the JSON row.
    pub name: &'static str,
    /// How it is written.
    pub kind: Kind,
}

/// One exported entity: a table, the rows of the company, the columns that may leave.
#[derive(Debug)]
pub struct Entity {
    /// The file stem in the archive: `<name>.jsonl`.
    pub name: &'static str,
    /// The table.
    pub table: &'static str,
    /// The column holding the company id (`id` for the company itself).
    pub scope: &'static str,
    /// A unique key of the table within the company, to page through rows in its order.
    pub key: &'static [&'static str],
    /// The columns written, in order.
    pub columns: &'static [Column],
    /// Columns of the table that are never written, each with the reason.
    pub omitted: &'static [(&'static str, &'static str)],
}

impl Entity {
    /// The file of this entity in the archive.
    pub fn file(&self) -> String {
        format!("{}.jsonl", self.name)
    }

    /// The kind of column `name`, if it is exported.
    pub fn kind_of(&self, name: &str) -> Option<Kind> {
        self.columns.iter().find(|c| c.name == name).map(|c| c.kind)
    }
}

macro_rules! cols {
    ($($name:ident: $kind:ident),* $(,)?) => {
        &[$(Column { name: stringify!($name), kind: Kind::$kind }),*]
    };
}

const ENCRYPTED: &str = "encrypted under the application key (P23); secrets never leave the server";
const TOKEN_HASH: &str =
    "hash of a bearer secret; useless to the company and a target for guessing";

/// Every exported entity, in the order the archive holds them (parents before children).
pub static ENTITIES: &[Entity] = &[
    Entity {
        name: "company",
        table: "companies",
        scope: "id",
        key: &["id"],
        columns: cols!(id: Int, name: Text, slug: Text, plan_tier: Text, time_zone: Text,
            theme: Text, status: Text, closed_at: Int, delete_after: Int, recording_enabled: Bool,
            recording_retention_days: Int, ai_base_url: Text, ai_model: Text, created_at: Int,
            updated_at: Int),
        omitted: &[("ai_api_key", ENCRYPTED)],
    },
    Entity {
        name: "roles",
        table: "roles",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, name: Text, permissions: Words, builtin: Bool, created_at: Int,
            updated_at: Int),
        omitted: &[],
    },
    Entity {
        name: "users",
        table: "users",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, role_id: Int, name: Text, email: Text, avatar_url: Text,
            created_at: Int, updated_at: Int),
        omitted: &[(
            "password_hash",
            "a bcrypt hash of the password (P24): a secret, and one that can be attacked offline",
        )],
    },
    Entity {
        name: "invitations",
        table: "invitations",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, email: Text, name: Text, role_id: Int, invited_by: Int,
            expires_at: Int, accepted_at: Int, created_at: Int),
        omitted: &[("token_hash", TOKEN_HASH)],
    },
    Entity {
        name: "api_tokens",
        table: "api_tokens",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, user_id: Int, name: Text, last_used_at: Int, created_at: Int),
        omitted: &[("token_hash", TOKEN_HASH)],
    },
    Entity {
        name: "channel_accounts",
        table: "channel_accounts",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, kind: Text, name: Text, external_id: Text, settings: Json,
            credential_keys: Words, status: Text, status_reason: Text, ai_suggestions: Bool,
            ai_auto_reply: Bool, created_at: Int, updated_at: Int),
        omitted: &[(
            "credentials",
            "provider tokens and passwords, encrypted under the application key (P23); only their \
             names leave, in credential_keys",
        )],
    },
    Entity {
        name: "customers",
        table: "customers",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, display_name: Text, avatar_url: Text, locale: Text,
            merged_into_id: Int, created_at: Int, updated_at: Int),
        omitted: &[],
    },
    Entity {
        name: "customer_identities",
        table: "customer_identities",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, customer_id: Int, kind: Text, channel_account_id: Int,
            external_id: Text, display_name: Text, avatar_url: Text, locale: Text, username: Text,
            created_at: Int, updated_at: Int),
        omitted: &[],
    },
    Entity {
        name: "customer_merges",
        table: "customer_merges",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, source_customer_id: Int, target_customer_id: Int, merged_by: Int,
            moved: Json, created_at: Int),
        omitted: &[],
    },
    Entity {
        name: "conversations",
        table: "conversations",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, customer_id: Int, channel_account_id: Int, subject: Text,
            status: Text, assignee_id: Int, last_activity_at: Int, last_inbound_at: Int,
            created_at: Int, updated_at: Int),
        omitted: &[],
    },
    Entity {
        name: "messages",
        table: "messages",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, conversation_id: Int, customer_id: Int, channel_account_id: Int,
            direction: Text, kind: Text, sender_user_id: Int, body: Text, attachments: Json,
            reply_to: Text, thread: Json, reaction: Text, status: Text, error: Text,
            external_id: Text, removed_at: Int, created_at: Int, updated_at: Int),
        omitted: &[],
    },
    Entity {
        name: "message_receipts",
        table: "message_receipts",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, channel_account_id: Int, external_id: Text, status: Text,
            error: Text, at: Int),
        omitted: &[],
    },
    Entity {
        name: "notes",
        table: "notes",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, customer_id: Int, conversation_id: Int, author_id: Int,
            body: Text, created_at: Int),
        omitted: &[],
    },
    Entity {
        name: "calls",
        table: "calls",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, customer_id: Int, conversation_id: Int, direction: Text,
            from_uri: Text, to_uri: Text, status: Text, agent_user_id: Int, trunk_id: Int,
            group_id: Int, sip_call_id: Text, hangup_by: Text, sip_status: Int, codec: Text,
            rtp_packets_in: Int, rtp_packets_out: Int, rtp_packets_lost: Int,
            rtp_jitter_us: Int, media: Json, started_at: Int, answered_at: Int, ended_at: Int,
            end_reason: Text),
        omitted: &[],
    },
    Entity {
        name: "call_events",
        table: "call_events",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, call_id: Int, at: Int, kind: Text, user_id: Int, detail: Text),
        omitted: &[],
    },
    Entity {
        name: RECORDINGS,
        table: "recordings",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, call_id: Int, path: Text, format: Text, status: Text,
            started_at: Int, ended_at: Int, duration_ms: Int, size_bytes: Int, sha256: Text,
            frames_dropped: Int),
        omitted: &[],
    },
    Entity {
        name: "call_groups",
        table: "call_groups",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, name: Text, ring_timeout_secs: Int, no_answer_status: Int,
            overflow_group_id: Int, created_at: Int, updated_at: Int),
        omitted: &[],
    },
    Entity {
        name: "call_group_members",
        table: "call_group_members",
        scope: "company_id",
        key: &["group_id", "user_id"],
        columns: cols!(group_id: Int, user_id: Int),
        omitted: &[],
    },
    Entity {
        name: "did_routes",
        table: "did_routes",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, did: Text, group_id: Int, created_at: Int),
        omitted: &[],
    },
    Entity {
        name: "sip_accounts",
        table: "sip_accounts",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, user_id: Int, username: Text, created_at: Int, updated_at: Int),
        omitted: &[("password", ENCRYPTED)],
    },
    Entity {
        name: PROMPTS,
        table: "trunk_prompts",
        scope: "company_id",
        key: &["channel_account_id"],
        columns: cols!(channel_account_id: Int, filename: Text, sha256: Text, duration_ms: Int,
            updated_at: Int),
        omitted: &[(
            "content",
            "the uploaded audio: a file of the archive (prompts/…, named in the row's `file`), \
             not text in a row",
        )],
    },
    Entity {
        name: "kb_documents",
        table: "kb_documents",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, title: Text, body: Text, created_by: Int, created_at: Int,
            updated_at: Int),
        omitted: &[],
    },
    Entity {
        name: "ai_suggestions",
        table: "ai_suggestions",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, conversation_id: Int, customer_id: Int, message_id: Int,
            channel_account_id: Int, state: Text, reason: Text, context: Json, model: Text,
            text: Text, reply_message_id: Int, decided_by: Int, attempts: Int,
            next_attempt_at: Int, created_at: Int, updated_at: Int),
        omitted: &[],
    },
    Entity {
        name: "usage_counters",
        table: "usage_counters",
        scope: "company_id",
        key: &["month", "metric"],
        columns: cols!(month: Text, metric: Text, value: Int),
        omitted: &[],
    },
    Entity {
        name: "audit_logs",
        table: "audit_logs",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, actor_id: Int, actor_label: Text, action: Text,
            entity_type: Text, entity_id: Int, ip: Text, user_agent: Text, changes: Json,
            created_at: Int),
        omitted: &[],
    },
    Entity {
        name: "integration_logs",
        table: "integration_logs",
        scope: "company_id",
        key: &["id"],
        // The bodies were redacted before they were stored (P25): `[redacted]` stands in for
        // every token, key and Authorization header.
        columns: cols!(id: Int, channel_account_id: Int, direction: Text, provider: Text,
            method: Text, endpoint: Text, status: Int, duration_ms: Int, request_headers: Text,
            request_body: Text, response_body: Text, error: Text, state: Text, attempts: Int,
            processed_at: Int, message_id: Int, created_at: Int),
        omitted: &[],
    },
    Entity {
        name: "deletion_requests",
        table: "deletion_requests",
        scope: "company_id",
        key: &["id"],
        columns: cols!(id: Int, code: Text, source: Text, state: Text, reason: Text,
            deleted: Json, requested_at: Int, completed_at: Int),
        omitted: &[],
    },
];

/// The entity whose rows name recording files; those files go into the archive.
pub const RECORDINGS: &str = "recordings";
/// The entity whose rows are consent prompts; their audio goes into the archive.
pub const PROMPTS: &str = "trunk_prompts";

/// Company-scoped tables that are not exported, each with the reason.
pub static EXCLUDED_TABLES: &[(&str, &str)] = &[
    (
        "sessions",
        "sign-in sessions: token hashes (secrets) and the IPs of live logins; they end anyway",
    ),
    (
        "login_events",
        "the security record of sign-in attempts, failed ones included: emails typed by anyone \
         and their IPs, kept for abuse detection; an admin reads a user's logins through \
         GET /users/{id}/logins",
    ),
    (
        "sip_registrations",
        "live softphone bindings (contact addresses, IPs), rebuilt by each phone's next REGISTER",
    ),
    (
        "trunk_status",
        "the registration state of trunks as the server last saw it: runtime state, not data",
    ),
    (
        "agent_presence",
        "the away/available switch of each agent: runtime state, not data",
    ),
    (
        "outbox",
        "the queue of replies waiting for the provider: transient; each reply is in messages",
    ),
    (
        "kb_chunks",
        "derived: kb_documents.body cut into passages for retrieval; cut again from the documents",
    ),
];
