-- Call recordings: opt-in per company with a per-trunk override (trunk settings `recording`),
-- one row per recorded call, the files under the data directory, and the queue of files to
-- remove. Timestamps are Unix milliseconds (UTC), as in 0001.

-- Whether calls are recorded when a trunk does not say (default: never).
ALTER TABLE companies ADD COLUMN recording_enabled BOOLEAN NOT NULL DEFAULT FALSE;
-- Days a recording is kept; NULL keeps it until its call, customer or company is deleted.
ALTER TABLE companies ADD COLUMN recording_retention_days BIGINT;

CREATE TABLE recordings (
    id             INTEGER PRIMARY KEY,
    company_id     BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    call_id        BIGINT NOT NULL UNIQUE REFERENCES calls(id) ON DELETE CASCADE,
    -- Relative to the data directory: recordings/<company>/<yyyy>/<mm>/<dd>/call-<call>.wav
    path           TEXT   NOT NULL,
    -- `wav`: RIFF WAVE, 8 kHz, 16-bit PCM, stereo (left: customer, right: agent).
    format         TEXT   NOT NULL,
    -- `recording` while the call lasts, then `complete`, `repaired` (after a crash) or `failed`.
    status         TEXT   NOT NULL,
    started_at     BIGINT NOT NULL,
    ended_at       BIGINT,
    duration_ms    BIGINT,
    size_bytes     BIGINT,
    sha256         TEXT,
    -- Frames the tap dropped because the recorder fell behind (each is a gap of silence).
    frames_dropped BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX recordings_company ON recordings(company_id, started_at);
CREATE INDEX recordings_status ON recordings(status);

-- Files whose recording row is gone (retention, or a call, customer or company deleted, by any
-- path: the trigger sees cascades too). The reaper removes each file, then its row here.
CREATE TABLE recording_deletions (
    id   INTEGER PRIMARY KEY,
    path TEXT NOT NULL
);

CREATE TRIGGER recordings_deleted AFTER DELETE ON recordings
BEGIN
    INSERT INTO recording_deletions (path) VALUES (OLD.path);
END;

-- An announcement played to callers before agents ring on a trunk whose calls are recorded
-- (the consent notice). The uploaded file as it came; decoded and cached by the server.
CREATE TABLE trunk_prompts (
    channel_account_id BIGINT PRIMARY KEY REFERENCES channel_accounts(id) ON DELETE CASCADE,
    company_id         BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    filename           TEXT   NOT NULL,
    content            BLOB   NOT NULL,
    sha256             TEXT   NOT NULL,
    -- Length of the decoded audio.
    duration_ms        BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- Agents listen to recordings: the built-in agent role of existing companies gets the new
-- permission (new companies get it at creation).
UPDATE roles SET permissions = permissions || ' recordings:read'
 WHERE builtin = TRUE AND name = 'agent' AND permissions NOT LIKE '%recordings:read%';
