-- Agents in the browser: the presence each agent chose (`available` or `away`). Routing rings
-- no agent who is away; `on_call` is not stored, it is known while the call lasts.
ALTER TABLE users ADD COLUMN presence TEXT NOT NULL DEFAULT 'available';
