-- Claude OAuth sign-ins in progress (authorization code with PKCE). A flow is
-- short-lived: its code verifier is sealed (store/encryption.ts) and wiped once
-- the code has been exchanged. The state is not secret: it travels in the URL.

CREATE TABLE oauth_flows (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  state text NOT NULL,
  code_verifier text,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'exchanging', 'completed')),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX oauth_flows_user ON oauth_flows (user_id, created_at);
CREATE INDEX oauth_flows_expiry ON oauth_flows (expires_at);
