import { ApplicationFailure } from '@temporalio/common';
import { recordSession, sessionInputFor, type NewSessionParams } from '../store/session-input';
import { open } from '../store/encryption';
import type { ActivityDeps } from './shared';
import { pendingSessionId } from '../workflows/messages';

/** What the debounce workflow needs from the store: turning a waiting request into a session, or dropping it. */
export function createDrActivities({ db, keyring, config }: ActivityDeps) {
  return {
    /** Records the session of a waiting request (once: a retry gets the same session) and returns its input. */
    async startPending({ pendingId }: { pendingId: string }) {
      const sessionId = await db.transaction(async (tx) => {
        const { rows } = await tx.query<{ sealed_params: string; state: string; session_id: string | null }>(
          'SELECT sealed_params, state, session_id FROM dr_pending WHERE id = $1 FOR UPDATE',
          [pendingId],
        );
        const row = rows[0];
        if (!row) throw ApplicationFailure.nonRetryable(`queued request ${pendingId} not found`, 'PendingNotFound');
        if (row.session_id) return row.session_id;
        const params = JSON.parse(open(keyring, row.sealed_params)) as NewSessionParams;
        const { sessionId: id } = await recordSession(tx, keyring, config, { ...params, sessionId: pendingSessionId(pendingId) });
        await tx.query(`UPDATE dr_pending SET state = 'started', session_id = $2 WHERE id = $1`, [pendingId, id]);
        return id;
      });
      const { input } = await sessionInputFor(db, config, sessionId);
      return { sessionId, input };
    },

    async supersedePending({ pendingIds }: { pendingIds: string[] }) {
      await db.query(`UPDATE dr_pending SET state = 'superseded' WHERE id = ANY($1::text[]) AND state = 'queued'`, [pendingIds]);
    },
  };
}
