-- Users of the gateway, their profiles, and secrets sealed at rest
-- (store/encryption.ts): credentials, profile and session environment values,
-- MCP headers. Sealed columns hold "v1.<master key id>.…" strings.

CREATE TABLE users (
  id text PRIMARY KEY,
  email text,
  registered_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE profiles (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL,
  description text,
  is_default boolean NOT NULL DEFAULT false,
  settings jsonb NOT NULL,
  sealed_secrets text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX profiles_user ON profiles (user_id, created_at);
CREATE UNIQUE INDEX profiles_one_default ON profiles (user_id) WHERE is_default;

ALTER TABLE credentials ADD COLUMN provider text NOT NULL DEFAULT 'anthropic';
CREATE INDEX credentials_owner ON credentials (owner_id, provider);

ALTER TABLE sessions ADD COLUMN sealed_secrets text;
ALTER TABLE sessions ADD COLUMN forked_from_session_id text;

-- A deleted session record keeps its row (usage and billing stay whole) but loses its content.
ALTER TABLE sessions ADD COLUMN deleted_at timestamptz;
