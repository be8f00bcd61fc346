-- The built-in rule engine: rules per organization as written (YAML or JSON)
-- with their parsed form, and the detections that `report` records.
CREATE TABLE dr_rules (
  org_id text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  name text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  source text NOT NULL,
  rule jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, name)
);

CREATE TABLE dr_detections (
  id text PRIMARY KEY,
  org_id text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  rule_name text NOT NULL,
  cat text NOT NULL,
  detection jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dr_detections_org ON dr_detections (org_id, created_at DESC);
