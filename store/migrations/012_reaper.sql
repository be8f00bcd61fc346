-- The reaper. Each worker registers the Docker host it drives, so a sweep can
-- reach every host's task queue; a host whose worker stopped polling is skipped.
CREATE TABLE docker_hosts (
  host_id text PRIMARY KEY,
  task_queue text NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now()
);

-- Set when retention removed an ended session's content and archives; the row
-- itself stays (usage and billing are the platform's accounting).
ALTER TABLE sessions ADD COLUMN purged_at timestamptz;
CREATE INDEX sessions_ended_unpurged ON sessions (terminated_at) WHERE status = 'ended' AND purged_at IS NULL;
