-- A fork in progress holds a claim on its source, so a second POST .../fork
-- of the same source (from any gateway) answers 409 instead of making a
-- second fork. A claim is released when its fork is made or fails; one left
-- by a gateway that died mid-fork is taken over once it is old (api/fork-service.ts).
CREATE TABLE fork_claims (
  source_session_id text PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
  claim_id text NOT NULL,
  claimed_at timestamptz NOT NULL DEFAULT now()
);
