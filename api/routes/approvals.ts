import { Router } from 'express';
import { z } from 'zod';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { GatewayDeps } from '../deps';
import { principalOf } from '../auth';
import { badRequest, conflict } from '../errors';
import { parseOr400 } from '../validation';
import { answerQuestion, approveTool } from '../answers';
import { latestRequestEvent } from '../ws-replay';
import { ownSession } from './sessions';

export const ApprovalBody = z.object({ decision: z.enum(['y', 'n', 'session'], { message: 'must be one of y, n, session' }) }).strict();
export const AnswerBody = z.object({ answer: z.string().min(1, 'must not be empty').max(100_000) }).strict();

/**
 * Approvals and questions over REST, beside the WebSocket frames: how a SOAR
 * playbook or a chat bot answers a waiting session without holding a socket.
 * The workflow decides, as it does for the socket: an answer to anything but
 * the open request is refused and changes nothing.
 */
export function approvalRoutes(deps: GatewayDeps): Router {
  const r = Router();

  r.get('/v1/sessions/:sessionId/pending', async (req, res) => {
    const me = principalOf(req);
    const s = await ownSession(deps, me.userId, req.params.sessionId);
    if (s.status === 'ended') return void res.json({ pending: null });
    const status = await deps.service.status(s.id).catch((err) => {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    });
    const open = status?.pending;
    if (!open) return void res.json({ pending: null });
    // The request as the socket showed it (the tool's input, the questions), when its event is stored.
    const event = await latestRequestEvent(deps.db, s.id, Number.MAX_SAFE_INTEGER);
    const request = event?.payload.request_id === open.requestId ? event.payload : undefined;
    res.json({
      pending: {
        kind: open.kind,
        request_id: open.requestId,
        tool_name: open.toolName,
        expires_at: open.expiresAt,
        ...(open.kind === 'approval' ? { input: request?.input ?? null, options: ['y', 'n', 'session'] } : { questions: request?.questions ?? [] }),
      },
    });
  });

  r.post('/v1/sessions/:sessionId/approvals/:requestId', async (req, res) => {
    const me = principalOf(req);
    const s = await ownSession(deps, me.userId, req.params.sessionId);
    const requestId = checkedRequestId(req.params.requestId);
    const { decision } = parseOr400(ApprovalBody, req.body ?? {});
    await refusedAsConflict(s.status, () => approveTool(deps, { userId: me.userId, sessionId: s.id, requestId, decision, via: 'rest' }));
    res.json({ request_id: requestId, decision, accepted: true });
  });

  r.post('/v1/sessions/:sessionId/questions/:requestId', async (req, res) => {
    const me = principalOf(req);
    const s = await ownSession(deps, me.userId, req.params.sessionId);
    const requestId = checkedRequestId(req.params.requestId);
    const { answer } = parseOr400(AnswerBody, req.body ?? {});
    await refusedAsConflict(s.status, () => answerQuestion(deps, { userId: me.userId, sessionId: s.id, requestId, answer, via: 'rest' }));
    res.json({ request_id: requestId, accepted: true });
  });

  return r;
}

function checkedRequestId(id: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(id)) throw badRequest('requestId: not a request id (letters, digits, _ and -, at most 128)');
  return id;
}

/** Sends an answer; the workflow's refusal (nothing open under that id, or the session ended) becomes a 409 naming why. */
async function refusedAsConflict(status: string, send: () => Promise<unknown>): Promise<void> {
  if (status === 'ended') throw conflict('the session has ended', 'session_not_running');
  try {
    await send();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw conflict('the session has ended', 'session_not_running');
    const cause = err instanceof WorkflowUpdateFailedError ? ((err.cause as Error | undefined)?.message ?? err.message) : (err as Error).message;
    if (/session has ended/.test(cause)) throw conflict('the session has ended', 'session_not_running');
    if (err instanceof WorkflowUpdateFailedError) {
      if (/no pending (approval|question)/.test(cause)) throw conflict(`${cause}: it was answered, timed out, or never asked`, 'request_not_pending');
      throw badRequest(cause);
    }
    throw err;
  }
}
