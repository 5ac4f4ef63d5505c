-- AI reply suggestions (opt-in per channel, a knowledge base per company), billing counters, and
-- the data lifecycle: deletion requests and company closure. Timestamps are Unix milliseconds.

-- The OpenAI-compatible endpoint a company uses; NULL falls back to the server's configuration.
-- The key is AES-256-GCM under the application key, like channel credentials; never returned.
ALTER TABLE companies ADD COLUMN ai_base_url TEXT;
ALTER TABLE companies ADD COLUMN ai_model TEXT;
ALTER TABLE companies ADD COLUMN ai_api_key TEXT;
-- When a closed company's data is deleted (closed_at + company_deletion_days).
ALTER TABLE companies ADD COLUMN delete_after BIGINT;

-- Off by default (P17): nothing of a channel's conversations goes to a model unless switched on.
ALTER TABLE channel_accounts ADD COLUMN ai_suggestions BOOLEAN NOT NULL DEFAULT FALSE;
-- With suggestions on: send each suggestion as the reply without an agent.
ALTER TABLE channel_accounts ADD COLUMN ai_auto_reply BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE kb_documents (
    id          INTEGER PRIMARY KEY,
    company_id  BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    title       TEXT   NOT NULL,
    body        TEXT   NOT NULL,
    created_by  BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX kb_documents_company ON kb_documents(company_id, id);

-- A document cut into passages of a few hundred words; retrieval ranks these.
CREATE TABLE kb_chunks (
    id          INTEGER PRIMARY KEY,
    company_id  BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    document_id BIGINT NOT NULL REFERENCES kb_documents(id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    content     TEXT   NOT NULL
);
CREATE INDEX kb_chunks_document ON kb_chunks(document_id, position);

-- Full-text index over the chunks (external content: the text lives once, in kb_chunks).
CREATE VIRTUAL TABLE kb_chunks_fts USING fts5(
    content, content = 'kb_chunks', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER kb_chunks_ai AFTER INSERT ON kb_chunks BEGIN
    INSERT INTO kb_chunks_fts (rowid, content) VALUES (NEW.id, NEW.content);
END;
CREATE TRIGGER kb_chunks_ad AFTER DELETE ON kb_chunks BEGIN
    INSERT INTO kb_chunks_fts (kb_chunks_fts, rowid, content) VALUES ('delete', OLD.id, OLD.content);
END;

-- A suggested reply to an inbound message, with exactly the context that was sent (P10).
CREATE TABLE ai_suggestions (
    id                 INTEGER PRIMARY KEY,
    company_id         BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    conversation_id    BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    customer_id        BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    -- The inbound message it answers.
    message_id         BIGINT NOT NULL UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
    channel_account_id BIGINT REFERENCES channel_accounts(id) ON DELETE SET NULL,
    -- pending → ready | failed | skipped; ready → accepted | dismissed; auto-reply: ready → sent
    state              TEXT   NOT NULL,
    -- Why it failed or was skipped (plan limit, quota, no key…).
    reason             TEXT,
    -- JSON {messages:[{id, role, text}], chunks:[{id, document_id, content}]}: what the model saw.
    context            TEXT,
    model              TEXT,
    text               TEXT,
    -- The message sent from it (accepted as is, edited, or auto-replied).
    reply_message_id   BIGINT REFERENCES messages(id) ON DELETE SET NULL,
    decided_by         BIGINT REFERENCES users(id) ON DELETE SET NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX ai_suggestions_due ON ai_suggestions(next_attempt_at) WHERE state = 'pending';
CREATE INDEX ai_suggestions_conversation ON ai_suggestions(conversation_id, id);

-- Billing counts per company and calendar month (UTC, 'YYYY-MM'): messages_in, messages_out,
-- ai_replies, call_seconds, recorded_seconds. Counts only (P16); they go with the company.
CREATE TABLE usage_counters (
    company_id  BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    month       TEXT   NOT NULL,
    metric      TEXT   NOT NULL,
    value       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (company_id, month, metric)
);

-- An end user's deletion request (API, the public page, or Meta's callback) and its outcome.
-- No personal data: the status page is looked up by the opaque code; the counts say what went.
CREATE TABLE deletion_requests (
    id           INTEGER PRIMARY KEY,
    code         TEXT   NOT NULL UNIQUE,
    -- Kept NULL once the company itself is gone, so the code still answers.
    company_id   BIGINT REFERENCES companies(id) ON DELETE SET NULL,
    source       TEXT   NOT NULL,              -- api | page | meta
    -- pending → completed | refused
    state        TEXT   NOT NULL,
    reason       TEXT,
    -- JSON counts: customers, messages, calls, recordings, integration_logs, ai_suggestions.
    deleted      TEXT,
    requested_at BIGINT NOT NULL,
    completed_at BIGINT
);
