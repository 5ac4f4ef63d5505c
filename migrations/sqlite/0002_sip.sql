-- SIP: softphone credentials of users, their registrations (bindings), and the registration
-- state of SIP trunks. Timestamps are Unix milliseconds (UTC), as in 0001.

-- At most one SIP account per user. The username is unique across the whole server, like a login
-- email: the registrar finds the user, and so the company, from the username of a REGISTER.
CREATE TABLE sip_accounts (
    id          INTEGER PRIMARY KEY,
    company_id  BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    user_id     BIGINT  NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    username    TEXT    NOT NULL UNIQUE,
    -- Encrypted with the application key, associated data "sip_accounts.password".
    password    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX sip_accounts_company ON sip_accounts(company_id);

-- One row per (user, Contact URI): RFC 3261 §10.3 bindings, kept across restarts.
CREATE TABLE sip_registrations (
    id          INTEGER PRIMARY KEY,
    company_id  BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    user_id     BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    aor         TEXT    NOT NULL,
    contact     TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    transport   TEXT    NOT NULL CHECK (transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')),
    user_agent  TEXT,
    call_id     TEXT    NOT NULL,
    cseq        BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    instance_id TEXT,
    reg_id      BIGINT,
    q           REAL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    UNIQUE (user_id, contact)
);
CREATE INDEX sip_registrations_company ON sip_registrations(company_id);
CREATE INDEX sip_registrations_expires ON sip_registrations(expires_at);

-- Written by the trunk registration driver; no row yet means "not tried since start".
CREATE TABLE trunk_status (
    channel_account_id BIGINT PRIMARY KEY REFERENCES channel_accounts(id) ON DELETE CASCADE,
    company_id         BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    state              TEXT   NOT NULL CHECK (state IN ('disabled', 'registering', 'registered', 'failed')),
    reason             TEXT,
    registered_until   BIGINT,
    next_attempt_at    BIGINT,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX trunk_status_company ON trunk_status(company_id);
