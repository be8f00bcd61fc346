-- Requests queued behind a debounce key: only the newest waiting one per key
-- runs when the active session ends; the others are marked superseded.
CREATE TABLE dr_pending (
  id text PRIMARY KEY,
  org_id text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  debounce_key text NOT NULL,
  -- The session to start, sealed: an inline profile may carry literal environment secrets.
  sealed_params text NOT NULL,
  state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'started', 'superseded')),
  session_id text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dr_pending_key ON dr_pending (org_id, debounce_key, created_at);
