import type { Logger } from '../lib/log';
import type { ApprovalDecision } from '../workflows/messages';
import type { Db } from '../store/db';
import { appendEvent } from '../store/events';
import { audit, requestAuditDetails } from './audit';
import type { SessionService } from './session-service';

type Deps = { db: Db; log: Logger; service: SessionService };
type Via = 'rest' | 'websocket';

/**
 * Answers to an approval or a question, however they arrive (REST or the
 * socket): what was asked is read first (so a request that follows cannot be
 * mistaken for it), the workflow decides, and an accepted answer is audited
 * and announced to every watcher. A refusal throws as the service does.
 */
export async function approveTool(deps: Deps, p: { userId?: string; sessionId: string; requestId: string; decision: ApprovalDecision; via: Via }) {
  const asked = await requestAuditDetails(deps.db, p.sessionId, p.requestId);
  const r = await deps.service.approve(p.sessionId, p.requestId, p.decision);
  if (!r.accepted) return r;
  if (p.userId) {
    await audit(deps, {
      actor: { type: 'user', id: p.userId },
      action: p.decision === 'n' ? 'session.deny_tool' : 'session.approve_tool',
      target: { type: 'session', id: p.sessionId },
      details: { request_id: p.requestId, decision: p.decision, via: p.via, ...asked },
    });
  }
  await announceAnswer(deps, p.sessionId, p.requestId, { kind: 'approval', decision: p.decision, via: p.via });
  return r;
}

export async function answerQuestion(deps: Deps, p: { userId?: string; sessionId: string; requestId: string; answer: string; via: Via }) {
  const asked = await requestAuditDetails(deps.db, p.sessionId, p.requestId);
  const r = await deps.service.answer(p.sessionId, p.requestId, p.answer);
  if (!r.accepted) return r;
  // The answer's text stays out of the trail: it may hold anything.
  if (p.userId) {
    await audit(deps, {
      actor: { type: 'user', id: p.userId },
      action: 'session.answer_question',
      target: { type: 'session', id: p.sessionId },
      details: { request_id: p.requestId, via: p.via, ...asked },
    });
  }
  await announceAnswer(deps, p.sessionId, p.requestId, { kind: 'question', via: p.via });
  return r;
}

/**
 * Tells every watcher that a request was answered, and how: the tool's
 * result may come minutes later, and until then other clients would still
 * show the request as open. Once per request (the event key); a failure is
 * logged, since the answer itself has taken effect.
 */
async function announceAnswer(
  deps: { db: Db; log: Logger },
  sessionId: string,
  requestId: string,
  answer: { kind: 'approval'; decision: string; via: Via } | { kind: 'question'; via: Via },
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
