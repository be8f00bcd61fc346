import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptionsStartWorkflowAction } from '@temporalio/client';
import type { Config } from '../lib/config';
import { reaperScheduleId } from '../workflows/messages';
import type { reaperWorkflow } from '../workflows/reaper';

/**
 * Creates the reaper's schedule, or brings an existing one in line with this
 * worker's configuration (every worker does this at start; the last one wins,
 * and a pause set by an operator is kept). Overlapping runs are skipped.
 */
export async function ensureReaperSchedule(client: Client, config: Config): Promise<'created' | 'updated'> {
  const { taskQueue } = config.temporal;
  const periodMs = Math.round(config.reaper.periodSeconds * 1000);
  const scheduleId = reaperScheduleId(taskQueue);
  const action: ScheduleOptionsStartWorkflowAction<typeof reaperWorkflow> = {
    type: 'startWorkflow',
    workflowType: 'reaperWorkflow',
    workflowId: scheduleId,
    taskQueue,
    args: [{ taskQueue }],
    // A run no worker picks up (the deployment is gone) must not hold the schedule forever.
    workflowRunTimeout: Math.max(10 * periodMs, 30 * 60_000),
  };
  const spec = { intervals: [{ every: periodMs }] };
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(periodMs, 60_000) };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((previous) => ({ spec, action, policies, state: { paused: previous.state.paused, note: previous.state.note } }));
  return 'updated';
}
