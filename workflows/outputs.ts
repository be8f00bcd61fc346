import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { SessionActivities } from '../activities';

export interface OutputDeliveryInput {
  sessionId: string;
  /** A redelivery names its deliveries; otherwise one is planned per enabled output of the session's org. */
  deliveryIds?: string[];
}

const acts = proxyActivities<SessionActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

/**
 * Started (and abandoned) by a session as it ends: delivers its summary and
 * transcript to every output of its organization, each retried on its own
 * schedule so one slow receiver never delays another.
 */
export async function outputDeliveryWorkflow(input: OutputDeliveryInput): Promise<{ delivered: number; failed: number }> {
  const { deliveryIds, retry } = await acts.planOutputDeliveries(input);
  const deliver = proxyActivities<SessionActivities>({
    // Ample for one POST with its timeout, plus reading the transcript from the store.
    startToCloseTimeout: '2 minutes',
    retry: {
      initialInterval: `${retry.initialSeconds}s`,
      maximumInterval: `${retry.maxSeconds}s`,
      backoffCoefficient: 2,
      maximumAttempts: retry.maxAttempts,
      nonRetryableErrorTypes: ['DeliveryNotFound', 'OutputDeleted', 'SessionNotFound', 'DeliveryRefused'],
    },
  });
  const outcomes = await Promise.all(
    deliveryIds.map(async (deliveryId) => {
      try {
        await deliver.deliverOutput({ deliveryId });
        return true;
      } catch (err) {
        const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause.message : String(err);
        await acts.failOutputDelivery({ deliveryId, reason: cause });
        return false;
      }
    }),
  );
  return { delivered: outcomes.filter(Boolean).length, failed: outcomes.filter((ok) => !ok).length };
}
