-- The platform acts on its own too (the reaper ending abandoned sessions and
-- purging expired ones): such entries have actor type 'system'.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_type_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_type_check CHECK (actor_type IN ('user', 'org', 'admin', 'system'));
