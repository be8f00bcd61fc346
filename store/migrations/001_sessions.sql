-- Sessions, their events, conversation and metering. Text that may hold
-- secrets or grow large (prompts, profiles, tool output) lives here, never in
-- Temporal history: workflows carry the ids of these rows.

CREATE TABLE credentials (
  id text PRIMARY KEY,
  owner_id text NOT NULL,
  type text NOT NULL CHECK (type IN ('api_key', 'oauth_token')),
  secret text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
  id text PRIMARY KEY,
  owner_type text NOT NULL CHECK (owner_type IN ('user', 'org')),
  owner_id text NOT NULL,
  org_id text,
  trigger text NOT NULL CHECK (trigger IN ('user', 'dr')),
  name text,
  status text NOT NULL DEFAULT 'starting' CHECK (status IN ('starting', 'running', 'ended')),
  activity text NOT NULL DEFAULT 'starting',
  model text NOT NULL,
  profile jsonb NOT NULL,
  credential_id text,
  workflow_id text NOT NULL,
  container_id text,
  sandbox_host text,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  terminated_at timestamptz,
  end_reason text,
  exit_code integer,
  error_message text,
  last_event_seq bigint NOT NULL DEFAULT 0
);
CREATE INDEX sessions_owner ON sessions (owner_type, owner_id, created_at DESC);
CREATE INDEX sessions_status ON sessions (status);

-- Claim-checked text: prompts and other inputs the workflow refers to by id.
CREATE TABLE session_texts (
  id text PRIMARY KEY,
  session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  kind text NOT NULL,
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- seq is allocated under the session row lock, so it has no gaps in commit order.
CREATE TABLE session_events (
  session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  seq bigint NOT NULL,
  event_key text NOT NULL,
  type text NOT NULL,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, seq),
  UNIQUE (session_id, event_key)
);

CREATE TABLE conversation_messages (
  session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  position bigint NOT NULL,
  message_key text NOT NULL,
  role text NOT NULL CHECK (role IN ('user', 'assistant')),
  content jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, position),
  UNIQUE (session_id, message_key)
);

-- One row per started billing period while a sandbox exists.
CREATE TABLE billing_periods (
  session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  period_index integer NOT NULL,
  period_start timestamptz NOT NULL,
  period_seconds double precision NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, period_index)
);

-- One row per model call, keyed by the call so retries record it once.
CREATE TABLE model_usage (
  session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  call_key text NOT NULL,
  model text NOT NULL,
  input_tokens bigint NOT NULL,
  output_tokens bigint NOT NULL,
  cache_creation_input_tokens bigint NOT NULL DEFAULT 0,
  cache_read_input_tokens bigint NOT NULL DEFAULT 0,
  cost_usd double precision NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, call_key)
);
