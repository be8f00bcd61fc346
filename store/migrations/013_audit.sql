-- Who approved, denied, answered, terminated or deleted what, and when.
-- Written by the gateway after each such action succeeds; never updated.
-- org_id is the organization the entry concerns (its sessions, hive, rules,
-- outputs, keys), so an org reads its trail whoever acted. details holds ids
-- and choices only, never secrets or free text.
CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor_type text NOT NULL CHECK (actor_type IN ('user', 'org', 'admin')),
  actor_id text NOT NULL,
  action text NOT NULL,
  target_type text NOT NULL,
  target_id text NOT NULL,
  org_id text,
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_actor ON audit_log (actor_type, actor_id, id DESC);
CREATE INDEX audit_log_org ON audit_log (org_id, id DESC) WHERE org_id IS NOT NULL;
