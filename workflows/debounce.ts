import { allHandlersFinished, condition, executeChild, proxyActivities, setHandler } from '@temporalio/workflow';
import type { SessionActivities } from '../activities';
import { debounceRequestSignal, SA_ORG, SA_OWNER, SA_SESSION_ID, SA_STATUS, SA_TRIGGER, sessionWorkflowId } from './messages';
import type { sessionWorkflow } from './session';

export interface DebounceInput {
  orgId: string;
  /** The rendered debounce key, for the operator; the workflow id carries its hash. */
  key: string;
  taskQueue: string;
}

const acts = proxyActivities<SessionActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

/**
 * One per debounce key, started by signal-with-start: runs one session at a
 * time as a child; requests that arrive meanwhile wait, and only the newest
 * of them runs next. Exits when nothing waits.
 */
export async function debounceWorkflow(input: DebounceInput): Promise<{ sessions: string[] }> {
  let latest: string | undefined;
  const superseded: string[] = [];
  const sessions: string[] = [];
  setHandler(debounceRequestSignal, ({ pendingId }) => {
    if (latest) superseded.push(latest);
    latest = pendingId;
  });

  for (;;) {
    await condition(() => latest !== undefined || allHandlersFinished());
    if (latest === undefined) return { sessions };
    const next = latest;
    latest = undefined;
    if (superseded.length > 0) await acts.supersedePending({ pendingIds: superseded.splice(0) });
    const { sessionId, input: sessionInput } = await acts.startPending({ pendingId: next });
    sessions.push(sessionId);
    try {
      await executeChild<typeof sessionWorkflow>('sessionWorkflow', {
        workflowId: sessionWorkflowId(sessionId),
        taskQueue: input.taskQueue,
        args: [sessionInput],
        typedSearchAttributes: [
          { key: SA_SESSION_ID, value: sessionId },
          { key: SA_OWNER, value: `org:${input.orgId}` },
          { key: SA_ORG, value: input.orgId },
          { key: SA_TRIGGER, value: 'dr' },
          { key: SA_STATUS, value: 'starting' },
        ],
      });
    } catch {
      // A session that failed is still over: the next waiting request runs.
    }
  }
}
