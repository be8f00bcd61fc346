import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import { recordAudit, type AuditEntry } from '../store/audit';

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
