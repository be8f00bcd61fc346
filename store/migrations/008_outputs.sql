-- Per-organization outputs: where a D&R session's summary and transcript go
-- when it ends. The URL (which often carries a token) and the signing secret
-- are sealed together; only the URL's origin stays readable for listings.
CREATE TABLE org_outputs (
  org_id text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  name text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  url_origin text NOT NULL,
  include_transcript boolean NOT NULL DEFAULT true,
  sealed text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, name)
);

-- One row per (output, session): its state and every attempt made.
CREATE TABLE output_deliveries (
  id text PRIMARY KEY,
  org_id text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  output_name text NOT NULL,
  session_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts jsonb NOT NULL DEFAULT '[]',
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  UNIQUE (org_id, output_name, session_id)
);
CREATE INDEX output_deliveries_org ON output_deliveries (org_id, output_name, created_at DESC);
