-- A queued request is signalled to its key's workflow after the transaction
-- that records it; the mark lets a repeat of an idempotent request signal one
-- that a crash left unsignalled, and never re-signal one already delivered.
ALTER TABLE dr_pending ADD COLUMN signalled_at timestamptz;
