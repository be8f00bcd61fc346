-- Organizations, their API keys (only a hash is kept: a key is shown once, at
-- creation) and their hive: named records per kind (secret, ai_agent, lookup).
-- Secret values are sealed like user credentials; other data stays readable.

CREATE TABLE orgs (
  id text PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE org_api_keys (
  id text PRIMARY KEY,
  org_id text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  key_hash text NOT NULL UNIQUE,
  key_prefix text NOT NULL,
  name text,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);

CREATE TABLE hive_records (
  org_id text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  hive text NOT NULL CHECK (hive IN ('secret', 'ai_agent', 'lookup')),
  name text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  data jsonb NOT NULL DEFAULT '{}',
  sealed text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, hive, name)
);
