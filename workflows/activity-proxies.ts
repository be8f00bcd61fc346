import { proxyActivities } from '@temporalio/workflow';
import type { SessionActivities } from '../activities';
import { sandboxTaskQueue } from './messages';
import type { SessionInput } from './types';

/**
 * Every activity the session workflow calls, with its timeouts and retry
 * policy declared here and nowhere else. Periods come from the input, so
 * tests can shorten them.
 */
export function sessionActivities(input: SessionInput) {
  const { timings } = input;
  const heartbeatTimeout = timings.heartbeatSeconds * 1000;
  // A tool call may run for Bash's maximum timeout; leave a minute for the exec around it.
  const sandboxCallMs = (Math.max(timings.modelCallTimeoutSeconds, timings.toolMaxSeconds) + 60) * 1000;
  const acts = proxyActivities<SessionActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
  });
  const model = proxyActivities<SessionActivities>({
    startToCloseTimeout: `${timings.modelCallTimeoutSeconds}s`,
    heartbeatTimeout,
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
  });
  const provisioning = proxyActivities<SessionActivities>({
    scheduleToCloseTimeout: `${timings.startupTimeoutSeconds}s`,
    startToCloseTimeout: `${timings.startupTimeoutSeconds}s`,
    // An end requested mid-provisioning waits for it, so cleanup cannot run before the container exists.
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s' },
  });
  // Everything that touches the container runs on the queue of the Docker host that holds it.
  const onSandbox = (hostId: string) =>
    proxyActivities<SessionActivities>({
      taskQueue: sandboxTaskQueue(input.taskQueue, hostId),
      startToCloseTimeout: sandboxCallMs,
      heartbeatTimeout,
      cancellationType: 'WAIT_CANCELLATION_COMPLETED',
      retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 5 },
    });

  // Hibernation's archive step is abandoned when the session ends meanwhile, and must not wait on a host that is gone.
  const archiveOn = (hostId: string) =>
    proxyActivities<SessionActivities>({
      taskQueue: sandboxTaskQueue(input.taskQueue, hostId),
      scheduleToStartTimeout: '1 minute',
      startToCloseTimeout: '30 minutes',
      heartbeatTimeout,
      cancellationType: 'TRY_CANCEL',
      retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 3 },
    });

  const cleanupOn = (taskQueue: string, budgetMs: number) =>
    proxyActivities<SessionActivities>({
      taskQueue,
      scheduleToCloseTimeout: budgetMs,
      startToCloseTimeout: Math.min(budgetMs, 60_000),
      retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
    });

  return { acts, model, provisioning, onSandbox, archiveOn, cleanupOn };
}
