import type { Queryable } from './db';

export interface RuleRecord {
  name: string;
  enabled: boolean;
  source: string;
  rule: unknown;
  created_at: string;
  updated_at: string;
}

const iso = (v: unknown) => new Date(v as string).toISOString();

export async function putRule(db: Queryable, r: { orgId: string; name: string; enabled: boolean; source: string; rule: unknown }): Promise<boolean> {
  const { rows } = await db.query<{ created: boolean }>(
    `INSERT INTO dr_rules (org_id, name, enabled, source, rule) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (org_id, name) DO UPDATE SET enabled = EXCLUDED.enabled, source = EXCLUDED.source, rule = EXCLUDED.rule, updated_at = now()
     RETURNING (xmax = 0) AS created`,
    [r.orgId, r.name, r.enabled, r.source, JSON.stringify(r.rule)],
  );
  await bumpDrVersion(db, r.orgId);
  return rows[0].created;
}

/** After the change it stamps: a reader that saw the old stamp reloads next time. */
export async function bumpDrVersion(db: Queryable, orgId: string): Promise<void> {
  await db.query('UPDATE orgs SET dr_version = dr_version + 1 WHERE id = $1', [orgId]);
}

export async function drVersion(db: Queryable, orgId: string): Promise<string> {
  const { rows } = await db.query<{ v: string }>('SELECT dr_version::text AS v FROM orgs WHERE id = $1', [orgId]);
  return rows[0]?.v ?? '0';
}

export async function listRules(db: Queryable, orgId: string, onlyEnabled = false): Promise<RuleRecord[]> {
  const { rows } = await db.query<RuleRecord>(
    `SELECT name, enabled, source, rule, created_at, updated_at FROM dr_rules WHERE org_id = $1 ${onlyEnabled ? 'AND enabled' : ''} ORDER BY name`,
    [orgId],
  );
  return rows.map((r) => ({ ...r, created_at: iso(r.created_at), updated_at: iso(r.updated_at) }));
}

export async function getRule(db: Queryable, orgId: string, name: string): Promise<RuleRecord | undefined> {
  const { rows } = await db.query<RuleRecord>(
    'SELECT name, enabled, source, rule, created_at, updated_at FROM dr_rules WHERE org_id = $1 AND name = $2',
    [orgId, name],
  );
  return rows[0] && { ...rows[0], created_at: iso(rows[0].created_at), updated_at: iso(rows[0].updated_at) };
}

export async function deleteRule(db: Queryable, orgId: string, name: string): Promise<boolean> {
  const { rows } = await db.query('DELETE FROM dr_rules WHERE org_id = $1 AND name = $2 RETURNING name', [orgId, name]);
  if (rows.length > 0) await bumpDrVersion(db, orgId);
  return rows.length > 0;
}

export async function recordDetection(db: Queryable, d: { id: string; orgId: string; ruleName: string; cat: string; detection: unknown }): Promise<void> {
  await db.query('INSERT INTO dr_detections (id, org_id, rule_name, cat, detection) VALUES ($1, $2, $3, $4, $5)', [
    d.id, d.orgId, d.ruleName, d.cat, JSON.stringify(d.detection),
  ]);
}

export async function listDetections(db: Queryable, orgId: string, limit: number): Promise<Array<{ id: string; rule_name: string; cat: string; detection: unknown; created_at: string }>> {
  const { rows } = await db.query<{ id: string; rule_name: string; cat: string; detection: unknown; created_at: string }>(
    'SELECT id, rule_name, cat, detection, created_at FROM dr_detections WHERE org_id = $1 ORDER BY created_at DESC, id LIMIT $2',
    [orgId, limit],
  );
  return rows.map((r) => ({ ...r, created_at: iso(r.created_at) }));
}
