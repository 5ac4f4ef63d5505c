-- The messaging bridge: every inbound webhook and outbound provider call (integration_logs, also
-- the durable inbox of webhook bodies waiting to be processed), the outbox of replies, receipts
-- that may arrive before the send's answer, and the columns messages and conversations need.

CREATE TABLE integration_logs (
    id                 INTEGER PRIMARY KEY,
    -- NULL: the event could not be routed to a company (rejected signature, unknown account).
    company_id         BIGINT  REFERENCES companies(id) ON DELETE CASCADE,
    channel_account_id BIGINT  REFERENCES channel_accounts(id) ON DELETE SET NULL,
    direction          TEXT    NOT NULL,              -- in | out
    provider           TEXT    NOT NULL,              -- meta | waha | openai
    method             TEXT    NOT NULL,
    endpoint           TEXT    NOT NULL,
    status             INTEGER,                       -- HTTP status answered (in) or received (out)
    duration_ms        BIGINT,
    request_headers    TEXT,
    request_body       TEXT,
    response_body      TEXT,
    error              TEXT,
    -- in: pending → processed | ignored | failed, or rejected; out: done
    state              TEXT    NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    processed_at       BIGINT,
    -- out: the message the call was for
    message_id         BIGINT,
    created_at         BIGINT  NOT NULL
);
CREATE INDEX integration_logs_pending ON integration_logs(id) WHERE state = 'pending';
CREATE INDEX integration_logs_created ON integration_logs(created_at);
CREATE INDEX integration_logs_company ON integration_logs(company_id, id);

CREATE TABLE outbox (
    id                 INTEGER PRIMARY KEY,
    company_id         BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    channel_account_id BIGINT  NOT NULL REFERENCES channel_accounts(id) ON DELETE CASCADE,
    message_id         BIGINT  REFERENCES messages(id) ON DELETE CASCADE,
    action             TEXT    NOT NULL,              -- send | mark_read
    payload            TEXT    NOT NULL,
    state              TEXT    NOT NULL DEFAULT 'pending', -- pending | done | failed
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    BIGINT  NOT NULL,
    last_error         TEXT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE state = 'pending';

CREATE TABLE message_receipts (
    id                 INTEGER PRIMARY KEY,
    company_id         BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    channel_account_id BIGINT  NOT NULL REFERENCES channel_accounts(id) ON DELETE CASCADE,
    external_id        TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    error              TEXT,
    at                 BIGINT  NOT NULL,
    UNIQUE (channel_account_id, external_id, status)
);

ALTER TABLE messages ADD COLUMN channel_account_id BIGINT REFERENCES channel_accounts(id) ON DELETE SET NULL;
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
ALTER TABLE messages ADD COLUMN attachments TEXT;
ALTER TABLE messages ADD COLUMN reply_to TEXT;
ALTER TABLE messages ADD COLUMN thread TEXT;
ALTER TABLE messages ADD COLUMN error TEXT;
ALTER TABLE messages ADD COLUMN reaction TEXT;
ALTER TABLE messages ADD COLUMN removed_at BIGINT;
ALTER TABLE messages ADD COLUMN updated_at BIGINT;
-- Idempotency: one message per provider id per channel account (at-least-once webhooks).
CREATE UNIQUE INDEX messages_external ON messages(channel_account_id, external_id);

ALTER TABLE conversations ADD COLUMN last_inbound_at BIGINT;

ALTER TABLE channel_accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'connected';
ALTER TABLE channel_accounts ADD COLUMN status_reason TEXT;

ALTER TABLE customer_identities ADD COLUMN username TEXT;
