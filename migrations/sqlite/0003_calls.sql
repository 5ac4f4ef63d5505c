-- Calls: routing of DIDs to groups of agents, the progress of each call, and its media figures.
-- Timestamps are Unix milliseconds (UTC), as in 0001.

-- A group of agents rung together (ring-all). A DID with no route rings every available agent
-- of the company.
CREATE TABLE call_groups (
    id                INTEGER PRIMARY KEY,
    company_id        BIGINT  NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    name              TEXT    NOT NULL,
    ring_timeout_secs BIGINT  NOT NULL DEFAULT 30,
    -- Final response to the caller when nobody answered and there is no overflow group.
    no_answer_status  BIGINT  NOT NULL DEFAULT 480,
    overflow_group_id BIGINT  REFERENCES call_groups(id) ON DELETE SET NULL,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    UNIQUE (company_id, name)
);

CREATE TABLE call_group_members (
    group_id   BIGINT NOT NULL REFERENCES call_groups(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    company_id BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX call_group_members_user ON call_group_members(user_id);

-- Which group a DID (E.164, with its +) of the company rings.
CREATE TABLE did_routes (
    id         INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    did        TEXT   NOT NULL,
    group_id   BIGINT NOT NULL REFERENCES call_groups(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    UNIQUE (company_id, did)
);

ALTER TABLE calls ADD COLUMN trunk_id BIGINT REFERENCES channel_accounts(id) ON DELETE SET NULL;
ALTER TABLE calls ADD COLUMN group_id BIGINT REFERENCES call_groups(id) ON DELETE SET NULL;
ALTER TABLE calls ADD COLUMN sip_call_id TEXT;
-- Who ended it: caller, agent or system (timeouts, errors).
ALTER TABLE calls ADD COLUMN hangup_by TEXT;
-- The SIP status the caller got when the call was not answered.
ALTER TABLE calls ADD COLUMN sip_status BIGINT;
ALTER TABLE calls ADD COLUMN codec TEXT;
-- Media counters over both legs; per-leg detail is in media (JSON).
ALTER TABLE calls ADD COLUMN rtp_packets_in BIGINT;
ALTER TABLE calls ADD COLUMN rtp_packets_out BIGINT;
ALTER TABLE calls ADD COLUMN rtp_packets_lost BIGINT;
ALTER TABLE calls ADD COLUMN rtp_jitter_us BIGINT;
ALTER TABLE calls ADD COLUMN media TEXT;
CREATE INDEX calls_company ON calls(company_id, started_at);

-- The progress of a call: ringing (which agent), answered, held, resumed, transferred, ended.
CREATE TABLE call_events (
    id         INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    call_id    BIGINT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    user_id    BIGINT REFERENCES users(id) ON DELETE SET NULL,
    detail     TEXT
);
CREATE INDEX call_events_call ON call_events(call_id, id);
