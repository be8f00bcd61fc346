import { randomUUID } from 'node:crypto';
import type { Queryable } from './db';
import { open, seal, type Keyring } from './encryption';
import type { CredentialType } from './sessions';
import { decodeTokens, encodeTokens, needsRefresh, refreshTokens, type ClaudeOAuthSettings } from '../lib/claude-oauth';

export type OAuthFlowStatus = 'pending' | 'exchanging' | 'completed';

export interface OAuthFlow {
  id: string;
  state: string;
  status: OAuthFlowStatus;
  /** Open only while the flow is pending: it is wiped once the code is exchanged. */
  codeVerifier?: string;
}

/** Starts a sign-in: the verifier is sealed; flows past their expiry are swept on the way. */
export async function createFlow(
  db: Queryable,
  keyring: Keyring,
  f: { userId: string; state: string; codeVerifier: string; ttlSeconds: number },
): Promise<{ id: string }> {
  await db.query('DELETE FROM oauth_flows WHERE expires_at < now()');
  const id = `oauth_${randomUUID()}`;
  await db.query(
    `INSERT INTO oauth_flows (id, user_id, state, code_verifier, expires_at)
     VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))`,
    [id, f.userId, f.state, seal(keyring, f.codeVerifier), f.ttlSeconds],
  );
  return { id };
}

/** The user's flow if it exists and has not expired; another user's flow is as absent as an unknown one. */
export async function liveFlow(db: Queryable, keyring: Keyring, userId: string, id: string): Promise<OAuthFlow | undefined> {
  const { rows } = await db.query<{ id: string; state: string; status: OAuthFlowStatus; code_verifier: string | null }>(
    'SELECT id, state, status, code_verifier FROM oauth_flows WHERE id = $1 AND user_id = $2 AND expires_at > now()',
    [id, userId],
  );
  const r = rows[0];
  if (!r) return undefined;
  return { id: r.id, state: r.state, status: r.status, ...(r.code_verifier ? { codeVerifier: open(keyring, r.code_verifier) } : {}) };
}

/** Takes a pending flow for one exchange; false when another exchange has it or it is used or expired. */
export async function claimFlow(db: Queryable, userId: string, id: string): Promise<boolean> {
  const { rows } = await db.query(
    `UPDATE oauth_flows SET status = 'exchanging'
      WHERE id = $1 AND user_id = $2 AND status = 'pending' AND expires_at > now() RETURNING id`,
    [id, userId],
  );
  return rows.length > 0;
}

/** An exchange that failed gives the flow back: the user may submit the code again. */
export async function releaseFlow(db: Queryable, id: string): Promise<void> {
  await db.query(`UPDATE oauth_flows SET status = 'pending' WHERE id = $1 AND status = 'exchanging'`, [id]);
}

export async function completeFlow(db: Queryable, id: string): Promise<void> {
  await db.query(`UPDATE oauth_flows SET status = 'completed', code_verifier = NULL WHERE id = $1`, [id]);
}

/**
 * A credential for a model call. An OAuth credential whose access token is
 * close to expiry is refreshed first when it has a refresh token and a client
 * id is configured; the new tokens replace the sealed secret only if no one
 * else refreshed meanwhile. When the refresh fails, the token as stored is
 * used (the model API then says whether it still works).
 */
export async function modelCredential(
  db: Queryable,
  keyring: Keyring,
  oauth: ClaudeOAuthSettings,
  id: string,
): Promise<{ type: CredentialType; secret: string } | undefined> {
  const read = async () => {
    const { rows } = await db.query<{ type: CredentialType; secret: string }>('SELECT type, secret FROM credentials WHERE id = $1', [id]);
    return rows[0];
  };
  const row = await read();
  if (!row) return undefined;
  const plain = open(keyring, row.secret);
  if (row.type !== 'oauth_token') return { type: row.type, secret: plain };
  const tokens = decodeTokens(plain);
  if (!oauth.clientId || !needsRefresh(tokens)) return { type: row.type, secret: tokens.access_token };
  try {
    const fresh = await refreshTokens(oauth, oauth.clientId, tokens);
    const { rows } = await db.query(
      'UPDATE credentials SET secret = $3 WHERE id = $1 AND secret = $2 RETURNING id',
      [id, row.secret, seal(keyring, encodeTokens(fresh))],
    );
    if (rows.length > 0) return { type: 'oauth_token', secret: fresh.access_token };
  } catch {
    // Fall through: another process may have refreshed (and rotated the refresh token) first.
  }
  const now = await read();
  if (!now) return undefined;
  const current = open(keyring, now.secret);
  return { type: now.type, secret: now.type === 'oauth_token' ? decodeTokens(current).access_token : current };
}
