import {
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  ParentClosePolicy,
  patched,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { EndReason } from '../lib/end-reasons';
import { outputDeliveryWorkflowId, SA_STATUS } from './messages';
import type { outputDeliveryWorkflow } from './outputs';
import { runPrompt } from './prompt-turns';
import { hibernate, hibernateAfterMs, removeSandbox, startSandbox, startWatching } from './sandbox-lifecycle';
import { registerSessionHandlers } from './session-handlers';
import { SessionRun } from './session-run';
import type { SessionInput, SessionOutcome, SessionState } from './types';

export type { SessionInput, SessionOutcome, SessionState, SessionTimings } from './types';

/**
 * One session: provision the sandbox, answer prompts with model turns and
 * tool calls, enforce limits, bill each started period, hibernate when idle,
 * and always clean up. The parts live in session-handlers.ts (query and
 * updates), prompt-turns.ts (a prompt's turns and tools) and
 * sandbox-lifecycle.ts (start, billing, hibernation, removal).
 */
export async function sessionWorkflow(input: SessionInput, carried?: SessionState): Promise<SessionOutcome> {
  const s: SessionState = carried ?? {
    startedAtMs: workflowInfo().startTime.getTime(),
    billedThrough: -1,
    turns: 0,
    costUsd: 0,
    promptCount: 0,
    queue: [],
    sessionPatterns: [],
    recentClientMessageIds: [],
  };
  const run = new SessionRun(input, s);
  if (!carried && input.initialPromptRef) run.enqueue(input.initialPromptRef);
  if (!carried && input.restoreWorkspace) s.restorePending = true;
  registerSessionHandlers(run);

  try {
    if (!s.sandbox && !s.dormant) await startSandbox(run);
    if (!run.end) {
      const ttlSeconds = Math.min(input.limits.ttlSeconds ?? input.timings.maxTtlSeconds, input.timings.maxTtlSeconds);
      const deadline = s.startedAtMs + ttlSeconds * 1000;
      void condition(() => run.ended, Math.max(1, deadline - Date.now())).then((ended) => {
        if (!ended) run.requestEnd('max_duration_exceeded');
      });
      startWatching(run);
    }
    while (!run.end) {
      const wake = () =>
        run.ended || s.queue.length > 0 || workflowInfo().continueAsNewSuggested || (run.wakeRequests > 0 && s.dormant === true);
      const idleMs = hibernateAfterMs(run);
      if (idleMs === undefined) await condition(wake);
      else if (!(await condition(wake, idleMs))) {
        // A file transfer in flight keeps the session awake.
        if (allHandlersFinished()) await hibernate(run);
        continue;
      }
      if (run.end) break;
      if (s.dormant && (s.queue.length > 0 || run.wakeRequests > 0)) {
        run.activity = 'resuming';
        await startSandbox(run);
        if (run.end) break;
        startWatching(run);
      }
      if (s.queue.length === 0) {
        if (!workflowInfo().continueAsNewSuggested) continue;
        await condition(allHandlersFinished);
        if (s.queue.length === 0 && !run.end) return await continueAsNew<typeof sessionWorkflow>(input, s);
        continue;
      }
      await runPrompt(run, s.queue.shift()!);
      if (input.limits.oneShot && !run.end) run.requestEnd('completed');
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    run.requestEnd('user_requested', 'the workflow was cancelled');
  }

  const outcome = run.end ?? { reason: 'failed' as EndReason, error: 'ended without a reason' };
  await CancellationScope.nonCancellable(async () => {
    await removeSandbox(run);
    await run.acts.endSession({ sessionId: input.sessionId, reason: outcome.reason, errorMessage: outcome.error });
    if (input.owner.type === 'org' && patched('org-outputs')) {
      // Its own workflow, so a receiver that is down for hours keeps retrying after this one has closed.
      await startChild<typeof outputDeliveryWorkflow>('outputDeliveryWorkflow', {
        workflowId: outputDeliveryWorkflowId(input.sessionId),
        taskQueue: input.taskQueue,
        args: [{ sessionId: input.sessionId }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      }).catch((err) => {
        // A run that was reset and ended again finds its deliveries already under way: that is fine.
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      });
    }
  });
  upsertSearchAttributes([{ key: SA_STATUS, value: 'ended' }]);
  await condition(allHandlersFinished);
  return { endReason: outcome.reason, errorMessage: outcome.error };
}
