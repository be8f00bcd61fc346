-- D&R launches. An idempotent_key is claimed in the same transaction that
-- creates its session row, so a crash before the workflow starts loses
-- nothing: a repeat of the request finds the row and starts that workflow.

CREATE TABLE dr_idempotency (
  org_id text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  key text NOT NULL,
  session_id text NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, key)
);

ALTER TABLE sessions ADD COLUMN rule_name text;
