import { condition, setHandler } from '@temporalio/workflow';
import { handleFileUpdates } from './files';
import { answerUpdate, approvalUpdate, interruptUpdate, promptUpdate, statusQuery, terminateUpdate } from './messages';
import type { SessionRun } from './session-run';

/**
 * The session's query and updates. Validators refuse what does not apply
 * (an ended session, an approval nobody asked for), so a refused update
 * leaves no trace in history.
 */
export function registerSessionHandlers(run: SessionRun): void {
  const { s } = run;

  setHandler(statusQuery, () => ({
    status: run.end ? 'ended' : s.sandbox || s.dormant ? 'running' : 'starting',
    activity: run.end ? 'ended' : run.activity,
    turns: s.turns,
    costUsd: s.costUsd,
    queuedPrompts: s.queue.length,
    pending: run.pending && {
      kind: run.pending.kind,
      requestId: run.pending.requestId,
      toolName: run.pending.toolName,
      expiresAt: run.pending.expiresAt,
    },
    endReason: run.end?.reason,
  }));

  setHandler(
    promptUpdate,
    ({ textRef, clientMessageId }) => {
      if (clientMessageId && s.recentClientMessageIds.includes(clientMessageId)) {
        return { queued: false, position: 0 };
      }
      if (clientMessageId) s.recentClientMessageIds = [...s.recentClientMessageIds.slice(-99), clientMessageId];
      run.enqueue(textRef);
      return { queued: run.busy || s.queue.length > 1, position: s.queue.length };
    },
    {
      validator: (p) => {
        if (!p || typeof p.textRef !== 'string' || p.textRef === '') throw new Error('prompt: textRef is required');
        if (run.end) throw new Error('session has ended');
      },
    },
  );

  setHandler(interruptUpdate, () => {
    if (!run.busy || !run.work) return { interrupted: false };
    run.work.cancel();
    return { interrupted: true };
  });

  setHandler(
    terminateUpdate,
    ({ reason }) => {
      run.requestEnd(reason);
      return { terminated: true };
    },
    {
      validator: (p) => {
        if (!p || (p.reason !== 'user_requested' && p.reason !== 'org_api_requested')) {
          throw new Error('terminate: reason must be user_requested or org_api_requested');
        }
      },
    },
  );

  setHandler(
    approvalUpdate,
    ({ decision }) => {
      run.pending!.decision = decision;
      return { accepted: true };
    },
    {
      validator: (p) => {
        if (!p || !['y', 'n', 'session'].includes(p.decision)) throw new Error('approve: decision must be y, n or session');
        const pending = run.pending;
        if (!pending || pending.kind !== 'approval' || pending.requestId !== p.requestId || pending.decision) {
          throw new Error(`approve: no pending approval ${String(p.requestId)}`);
        }
      },
    },
  );

  setHandler(
    answerUpdate,
    ({ answerRef }) => {
      run.pending!.answerRef = answerRef;
      return { accepted: true };
    },
    {
      validator: (p) => {
        if (!p || typeof p.answerRef !== 'string' || p.answerRef === '') throw new Error('answer: answerRef is required');
        const pending = run.pending;
        if (!pending || pending.kind !== 'question' || pending.requestId !== p.requestId || pending.answerRef) {
          throw new Error(`answer: no pending question ${String(p.requestId)}`);
        }
      },
    },
  );

  /** Resolves once the session has a sandbox again: a dormant one is woken (a file transfer). */
  async function awake() {
    await condition(() => !run.hibernating);
    if (!s.dormant) return;
    run.wakeRequests += 1;
    try {
      await condition(() => run.ended || !s.dormant);
    } finally {
      run.wakeRequests -= 1;
    }
  }

  handleFileUpdates({ sessionId: run.sessionId, state: s, ended: () => run.ended, onSandbox: run.onSandbox, awake });
}
