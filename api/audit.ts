import { createHash } from 'node:crypto';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import { recordAudit, type AuditEntry } from '../store/audit';
import type { Queryable } from '../store/db';
import { latestRequestEvent } from './ws-replay';

/**
 * Records an action that has already happened. Should the write fail, the
 * entry goes to the error log instead (it holds no secrets) and the caller
 * still answers with the action's real outcome: it did take place.
 */
export async function audit(deps: { db: Db; log: Logger }, entry: AuditEntry): Promise<void> {
  try {
    await recordAudit(deps.db, entry);
  } catch (err) {
    deps.log.error({ audit: entry, err: (err as Error).message }, 'audit entry not stored');
  }
}

/**
 * What an approval or question asked about, for the audit entry of its
 * answer: the tool, the request's event, and its input as a SHA-256. The
 * input's text stays in the session's events (until retention); the hash
 * still proves later which input was approved. Read before the answer is
 * sent, so a request that follows it cannot be mistaken for it.
 */
export async function requestAuditDetails(db: Queryable, sessionId: string, requestId: string): Promise<Record<string, unknown>> {
  const e = await latestRequestEvent(db, sessionId, Number.MAX_SAFE_INTEGER);
  if (!e || e.payload.request_id !== requestId) return {};
  const input = e.type === 'tool_approval_request' ? e.payload.input : e.payload.questions;
  return {
    tool_name: e.type === 'tool_approval_request' ? e.payload.tool_name : 'AskUserQuestion',
    event_seq: e.seq,
    input_sha256: createHash('sha256').update(JSON.stringify(input ?? null)).digest('hex'),
  };
}
