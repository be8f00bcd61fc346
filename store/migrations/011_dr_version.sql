-- Bumped whenever an org's rules or lookup lists change, so a gateway can keep
-- their compiled form and reload only when this moves.
ALTER TABLE orgs ADD COLUMN dr_version bigint NOT NULL DEFAULT 0;
