-- Foundation: tenants, people, customers, conversations, the timeline, credentials, audit.
-- Timestamps are Unix milliseconds (UTC) in BIGINT columns, the same in SQLite and PostgreSQL.

CREATE TABLE companies (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    slug        TEXT    NOT NULL UNIQUE,
    plan_tier   TEXT    NOT NULL DEFAULT 'free',
    time_zone   TEXT    NOT NULL DEFAULT 'UTC',
    theme       TEXT    NOT NULL DEFAULT 'light',
    status      TEXT    NOT NULL DEFAULT 'active',
    closed_at   BIGINT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE roles (
    id          INTEGER PRIMARY KEY,
    company_id  BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    permissions TEXT    NOT NULL,
    builtin     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    UNIQUE (company_id, name)
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    company_id    BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    role_id       BIGINT  NOT NULL REFERENCES roles(id),
    name          TEXT    NOT NULL,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    avatar_url    TEXT,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX users_company ON users(company_id);

CREATE TABLE invitations (
    id          INTEGER PRIMARY KEY,
    company_id  BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    name        TEXT,
    role_id     BIGINT  NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    token_hash  TEXT    NOT NULL UNIQUE,
    invited_by  BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    expires_at  BIGINT  NOT NULL,
    accepted_at BIGINT,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX invitations_company ON invitations(company_id);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    company_id   BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    user_id      BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL UNIQUE,
    ip           TEXT    NOT NULL,
    user_agent   TEXT,
    created_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE login_events (
    id          INTEGER PRIMARY KEY,
    company_id  BIGINT  REFERENCES companies(id) ON DELETE CASCADE,
    user_id     BIGINT  REFERENCES users(id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    ip          TEXT    NOT NULL,
    user_agent  TEXT,
    outcome     TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX login_events_user ON login_events(user_id, created_at);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    company_id   BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    user_id      BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    last_used_at BIGINT,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX api_tokens_company ON api_tokens(company_id);

CREATE TABLE channel_accounts (
    id            INTEGER PRIMARY KEY,
    company_id    BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    external_id   TEXT,
    settings      TEXT    NOT NULL DEFAULT '{}',
    credentials   TEXT,
    credential_keys TEXT  NOT NULL DEFAULT '',
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX channel_accounts_company ON channel_accounts(company_id);

CREATE TABLE customers (
    id             INTEGER PRIMARY KEY,
    company_id     BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    display_name   TEXT,
    avatar_url     TEXT,
    locale         TEXT,
    merged_into_id BIGINT  REFERENCES customers(id) ON DELETE SET NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE INDEX customers_company ON customers(company_id, id);

CREATE TABLE customer_identities (
    id                 INTEGER PRIMARY KEY,
    company_id         BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    customer_id        BIGINT  NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    kind               TEXT    NOT NULL,
    channel_account_id BIGINT  REFERENCES channel_accounts(id) ON DELETE CASCADE,
    external_id        TEXT    NOT NULL,
    display_name       TEXT,
    avatar_url         TEXT,
    locale             TEXT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);
-- One identity per (company, kind, channel account, external id); a phone number has no account.
CREATE UNIQUE INDEX customer_identities_key
    ON customer_identities(company_id, kind, COALESCE(channel_account_id, 0), external_id);
CREATE INDEX customer_identities_customer ON customer_identities(customer_id);
CREATE INDEX customer_identities_external ON customer_identities(company_id, external_id);

CREATE TABLE customer_merges (
    id                 INTEGER PRIMARY KEY,
    company_id         BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    source_customer_id BIGINT  NOT NULL,
    target_customer_id BIGINT  NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    merged_by          BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    moved              TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL
);

CREATE TABLE conversations (
    id                 INTEGER PRIMARY KEY,
    company_id         BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    customer_id        BIGINT  NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    channel_account_id BIGINT  REFERENCES channel_accounts(id) ON DELETE SET NULL,
    subject            TEXT,
    status             TEXT    NOT NULL DEFAULT 'open',
    assignee_id        BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    last_activity_at   BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);
CREATE INDEX conversations_company ON conversations(company_id, last_activity_at);
CREATE INDEX conversations_customer ON conversations(customer_id);

CREATE TABLE messages (
    id               INTEGER PRIMARY KEY,
    company_id       BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    conversation_id  BIGINT  NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    customer_id      BIGINT  NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    direction        TEXT    NOT NULL,
    sender_user_id   BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    body             TEXT,
    status           TEXT    NOT NULL DEFAULT 'received',
    external_id      TEXT,
    created_at       BIGINT  NOT NULL
);
CREATE INDEX messages_customer ON messages(customer_id, created_at);
CREATE INDEX messages_conversation ON messages(conversation_id, created_at);

CREATE TABLE calls (
    id              INTEGER PRIMARY KEY,
    company_id      BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    customer_id     BIGINT  REFERENCES customers(id) ON DELETE CASCADE,
    conversation_id BIGINT  REFERENCES conversations(id) ON DELETE SET NULL,
    direction       TEXT    NOT NULL,
    from_uri        TEXT    NOT NULL,
    to_uri          TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    agent_user_id   BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    started_at      BIGINT  NOT NULL,
    answered_at     BIGINT,
    ended_at        BIGINT,
    end_reason      TEXT
);
CREATE INDEX calls_customer ON calls(customer_id, started_at);

CREATE TABLE notes (
    id              INTEGER PRIMARY KEY,
    company_id      BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    customer_id     BIGINT  NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    conversation_id BIGINT  REFERENCES conversations(id) ON DELETE SET NULL,
    author_id       BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    body            TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX notes_customer ON notes(customer_id, created_at);

CREATE TABLE audit_logs (
    id          INTEGER PRIMARY KEY,
    company_id  BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    actor_id    BIGINT,
    actor_label TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    entity_type TEXT    NOT NULL,
    entity_id   BIGINT,
    ip          TEXT,
    user_agent  TEXT,
    changes     TEXT    NOT NULL DEFAULT '{}',
    created_at  BIGINT  NOT NULL
);
CREATE INDEX audit_logs_company ON audit_logs(company_id, id);
