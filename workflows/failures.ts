import { ActivityFailure, ApplicationFailure, isCancellation, TimeoutFailure } from '@temporalio/workflow';
import type { EndReason } from '../lib/end-reasons';

/** Failures that end the session, mapped to their end reason; undefined for cancellations. */
export function describeFailure(err: unknown): { reason: EndReason; message: string } | undefined {
  if (isCancellation(err)) return undefined;
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    if (cause.type === 'Unanswered') return undefined;
    if (cause.type === 'SandboxGone') return { reason: 'heartbeat_stale', message: cause.message };
    return { reason: 'failed', message: cause.message };
  }
  if (cause instanceof TimeoutFailure) return { reason: 'failed', message: `activity timed out (${cause.timeoutType})` };
  return { reason: 'failed', message: cause instanceof Error ? cause.message : String(cause) };
}

