-- Hibernation: an idle user session's workspace is archived to the blob area
-- (<BLOB_DIR>/archives/<session id>.*) and its container removed. While
-- dormant_since is set the session is "Waiting" with no sandbox; the next
-- prompt clears it. archived_at/archive_bytes describe the newest archive
-- (a fork's is a copy of its source's, restored into its first sandbox).
ALTER TABLE sessions ADD COLUMN dormant_since timestamptz;
ALTER TABLE sessions ADD COLUMN archived_at timestamptz;
ALTER TABLE sessions ADD COLUMN archive_bytes bigint;
CREATE INDEX sessions_forked_from ON sessions (forked_from_session_id) WHERE forked_from_session_id IS NOT NULL;
