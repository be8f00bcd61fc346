import crypto from 'node:crypto';
import type { Queryable } from './db';
import { open, seal, type Keyring } from './encryption';

/** An output as the API shows it: no URL path or query (they often hold a token), never the secret. */
export interface OutputRecord {
  name: string;
  type: 'webhook';
  enabled: boolean;
  url: string;
  include_transcript: boolean;
  /** Where the signing secret comes from: `hive://secret/NAME`, or "stored" for a sealed one. */
  signing_secret: string;
  created_at: string;
  updated_at: string;
}

/** What only the delivering activity opens. */
export interface OutputTarget {
  url: string;
  /** The signing secret itself, or a `hive://secret/NAME` reference resolved at delivery. */
  secret: string;
}

type Row = {
  name: string;
  enabled: boolean;
  url_origin: string;
  include_transcript: boolean;
  sealed: string;
  created_at: string;
  updated_at: string;
};

const COLUMNS = 'name, enabled, url_origin, include_transcript, sealed, created_at, updated_at';

function toRecord(keyring: Keyring, r: Row): OutputRecord {
  const { secret } = JSON.parse(open(keyring, r.sealed)) as OutputTarget;
  return {
    name: r.name,
    type: 'webhook',
    enabled: r.enabled,
    url: `${r.url_origin}/…`,
    include_transcript: r.include_transcript,
    signing_secret: secret.startsWith('hive://') ? secret : 'stored',
    created_at: new Date(r.created_at).toISOString(),
    updated_at: new Date(r.updated_at).toISOString(),
  };
}

export async function listOutputs(db: Queryable, keyring: Keyring, orgId: string): Promise<OutputRecord[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM org_outputs WHERE org_id = $1 ORDER BY name`, [orgId]);
  return rows.map((r) => toRecord(keyring, r));
}

export async function getOutput(db: Queryable, keyring: Keyring, orgId: string, name: string): Promise<OutputRecord | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM org_outputs WHERE org_id = $1 AND name = $2`, [orgId, name]);
  return rows[0] && toRecord(keyring, rows[0]);
}

/** The URL and secret of an output, for the delivering activity only. */
export async function outputTarget(db: Queryable, keyring: Keyring, orgId: string, name: string): Promise<(OutputTarget & { includeTranscript: boolean }) | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM org_outputs WHERE org_id = $1 AND name = $2`, [orgId, name]);
  if (!rows[0]) return undefined;
  return { ...(JSON.parse(open(keyring, rows[0].sealed)) as OutputTarget), includeTranscript: rows[0].include_transcript };
}

/**
 * Creates or replaces an output. A replacement without a URL or secret keeps
 * the stored ones; a new output without a secret gets a generated one, which
 * is returned here and never again.
 */
export async function putOutput(
  db: Queryable,
  keyring: Keyring,
  p: { orgId: string; name: string; url?: string; secret?: string; enabled?: boolean; includeTranscript?: boolean },
): Promise<{ record: OutputRecord; created: boolean; generatedSecret?: string }> {
  const { rows: old } = await db.query<Row>(`SELECT ${COLUMNS} FROM org_outputs WHERE org_id = $1 AND name = $2 FOR UPDATE`, [p.orgId, p.name]);
  const current = old[0] ? (JSON.parse(open(keyring, old[0].sealed)) as OutputTarget) : undefined;
  const url = p.url ?? current?.url;
  if (!url) throw new OutputError('url: required for a new output');
  const generatedSecret = !p.secret && !current ? `whsec_${crypto.randomBytes(32).toString('base64url')}` : undefined;
  const secret = p.secret ?? current?.secret ?? generatedSecret!;
  const { rows } = await db.query<Row & { created: boolean }>(
    `INSERT INTO org_outputs (org_id, name, enabled, url_origin, include_transcript, sealed) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (org_id, name) DO UPDATE SET enabled = EXCLUDED.enabled, url_origin = EXCLUDED.url_origin,
       include_transcript = EXCLUDED.include_transcript, sealed = EXCLUDED.sealed, updated_at = now()
     RETURNING ${COLUMNS}, (xmax = 0) AS created`,
    [
      p.orgId, p.name, p.enabled ?? old[0]?.enabled ?? true, new URL(url).origin,
      p.includeTranscript ?? old[0]?.include_transcript ?? true, seal(keyring, JSON.stringify({ url, secret })),
    ],
  );
  const { created, ...row } = rows[0];
  return { record: toRecord(keyring, row), created, generatedSecret };
}

export async function deleteOutput(db: Queryable, orgId: string, name: string): Promise<boolean> {
  const { rows } = await db.query('DELETE FROM org_outputs WHERE org_id = $1 AND name = $2 RETURNING name', [orgId, name]);
  return rows.length > 0;
}

export class OutputError extends Error {
  override name = 'OutputError';
}

export interface DeliveryAttempt {
  attempt: number;
  at: string;
  status_code?: number;
  error?: string;
  duration_ms: number;
}

export interface DeliveryRecord {
  id: string;
  output: string;
  session_id: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: DeliveryAttempt[];
  last_error: string | null;
  created_at: string;
  updated_at: string;
  delivered_at: string | null;
}

type DeliveryRow = Omit<DeliveryRecord, 'output'> & { output_name: string; org_id: string };
const iso = (v: string | null) => (v === null ? null : new Date(v).toISOString());
const toDelivery = ({ output_name, org_id: _org, ...r }: DeliveryRow): DeliveryRecord => ({
  ...r,
  output: output_name,
  created_at: iso(r.created_at)!,
  updated_at: iso(r.updated_at)!,
  delivered_at: iso(r.delivered_at),
});

/** One pending delivery per enabled output for a session that ended; repeated calls find the same rows. */
export async function planDeliveries(db: Queryable, orgId: string, sessionId: string): Promise<string[]> {
  const { rows: outputs } = await db.query<{ name: string }>(
    'SELECT name FROM org_outputs WHERE org_id = $1 AND enabled ORDER BY name',
    [orgId],
  );
  const ids: string[] = [];
  for (const { name } of outputs) {
    const { rows } = await db.query<{ id: string }>(
      `INSERT INTO output_deliveries (id, org_id, output_name, session_id, status) VALUES ($1, $2, $3, $4, 'pending')
       ON CONFLICT (org_id, output_name, session_id) DO UPDATE SET updated_at = output_deliveries.updated_at
       RETURNING id`,
      [`dlv_${crypto.randomUUID()}`, orgId, name, sessionId],
    );
    ids.push(rows[0].id);
  }
  return ids;
}

export async function getDelivery(db: Queryable, id: string): Promise<(DeliveryRecord & { org_id: string }) | undefined> {
  const { rows } = await db.query<DeliveryRow>('SELECT * FROM output_deliveries WHERE id = $1', [id]);
  return rows[0] && { ...toDelivery(rows[0]), org_id: rows[0].org_id };
}

export async function listDeliveries(
  db: Queryable,
  orgId: string,
  filter: { output?: string; sessionId?: string; limit: number },
): Promise<DeliveryRecord[]> {
  const { rows } = await db.query<DeliveryRow>(
    `SELECT * FROM output_deliveries WHERE org_id = $1 AND ($2::text IS NULL OR output_name = $2)
       AND ($3::text IS NULL OR session_id = $3) ORDER BY created_at DESC, id LIMIT $4`,
    [orgId, filter.output ?? null, filter.sessionId ?? null, filter.limit],
  );
  return rows.map(toDelivery);
}

/** Appends one attempt; a success marks the delivery delivered, a final failure marks it failed. */
export async function recordAttempt(
  db: Queryable,
  id: string,
  attempt: DeliveryAttempt,
  outcome: 'delivered' | 'retrying' | 'failed',
): Promise<void> {
  await db.query(
    // Only the latest 50 attempts are kept: a receiver down for weeks must not grow the row without end.
    `UPDATE output_deliveries SET attempts = jsonb_path_query_array(attempts || $2::jsonb, '$[last - 49 to last]'), updated_at = now(),
       status = CASE $3::text WHEN 'delivered' THEN 'delivered' WHEN 'failed' THEN 'failed' ELSE 'pending' END,
       delivered_at = CASE WHEN $3::text = 'delivered' THEN now() ELSE delivered_at END,
       last_error = CASE WHEN $3::text = 'delivered' THEN NULL ELSE $4 END
     WHERE id = $1`,
    [id, JSON.stringify([attempt]), outcome, attempt.error ?? null],
  );
}

/** Sets a delivery back to pending for another round of attempts. */
export async function resetDelivery(db: Queryable, id: string): Promise<void> {
  await db.query(`UPDATE output_deliveries SET status = 'pending', updated_at = now() WHERE id = $1`, [id]);
}
