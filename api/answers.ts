import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import { appendEvent } from '../store/events';

/**
 * Tells every watcher that a request was answered, and how: the tool's
 * result may come minutes later, and until then other clients would still
 * show the request as open. Once per request (the event key); a failure is
 * logged, since the answer itself has taken effect.
 */
export async function announceAnswer(
  deps: { db: Db; log: Logger },
  sessionId: string,
  requestId: string,
  answer: { kind: 'approval'; decision: string; via: string } | { kind: 'question'; via: string },
): Promise<void> {
  try {
    await appendEvent(deps.db, {
      sessionId,
      key: `answered-${requestId}`,
      type: 'system',
      payload: { subtype: 'request_answered', request_id: requestId, ...answer },
    });
  } catch (err) {
    deps.log.error({ sessionId, requestId, err: (err as Error).message }, 'answer not announced');
  }
}
