-- Agents in the browser: the presence each agent chose (`available` or `away`), for routing:
-- no agent who is away is rung. A row only once an agent chose; none means `available`.
-- `on_call` is not stored: it is known while the call lasts. Kept out of `users`, which holds
-- the account profile and nothing else (privacy promise P1).
CREATE TABLE agent_presence (
    user_id     BIGINT NOT NULL PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    company_id  BIGINT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    presence    TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX agent_presence_company ON agent_presence(company_id);
