import { isCancellation, patched, proxyActivities } from '@temporalio/workflow';
import type { SessionActivities } from '../activities';
import type { ReaperActivities } from '../activities/reaper-activities';
import type { ReaperReport } from '../lib/reaper';

export interface ReaperInput {
  /** The shared queue; each host's sweep runs on that host's queue. */
  taskQueue: string;
}

const acts = proxyActivities<ReaperActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
});
// A host whose worker died since its queue was checked never picks its sweep up: give up after a minute.
const onHost = (taskQueue: string) =>
  proxyActivities<ReaperActivities & SessionActivities>({
    taskQueue,
    scheduleToStartTimeout: '1 minute',
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 3 },
  });

/**
 * One reaper run, started by the reaper schedule (overlaps skipped): end the
 * sessions whose workflow is gone, sweep every reachable Docker host for
 * sandboxes of ended sessions, then purge what is past retention. A step that
 * fails is reported and the later ones still run: retention must not wait on
 * a broken host or a Temporal hiccup.
 */
export async function reaperWorkflow(_input: ReaperInput): Promise<ReaperReport> {
  // Runs recorded before this patch failed on a step's failure; replaying them must do the same.
  const tolerant = patched('reaper-step-failures');
  const stepsFailed: string[] = [];
  async function step<T>(name: string, fallback: T, fn: () => Promise<T>): Promise<T> {
    if (!tolerant) return fn();
    try {
      return await fn();
    } catch (err) {
      if (isCancellation(err)) throw err;
      stepsFailed.push(name);
      return fallback;
    }
  }
  const { ended } = await step('endAbandonedSessions', { ended: [] as string[], described: 0 }, () => acts.endAbandonedSessions());
  const hosts = await step('reachableDockerHosts', [] as Array<{ hostId: string; taskQueue: string }>, () => acts.reachableDockerHosts());
  const sweeps = await Promise.allSettled(hosts.map((h) => sweepHost(h.taskQueue)));
  const { purged, archives } = await step('purgeExpiredSessions', { purged: 0, archives: 0 }, () => acts.purgeExpiredSessions());
  const report: ReaperReport = {
    sessionsEnded: ended.length,
    hostsSwept: sweeps.filter((s) => s.status === 'fulfilled').length,
    hostsFailed: hosts.filter((_, i) => sweeps[i].status === 'rejected').map((h) => h.hostId),
    sandboxesRemoved: 0,
    volumesRemoved: 0,
    sessionsPurged: purged,
    archivesRemoved: archives,
    stepsFailed,
  };
  for (const s of sweeps) {
    if (s.status !== 'fulfilled') continue;
    report.sandboxesRemoved += s.value.containers;
    report.volumesRemoved += s.value.volumes;
  }
  await acts.reportReaperRun(report);
  return report;
}

/** Removes, through the host's own cleanupSandbox, the sandboxes of sessions the store has ended. */
async function sweepHost(taskQueue: string): Promise<{ containers: number; volumes: number }> {
  const host = onHost(taskQueue);
  const { reap } = await host.findReapableSandboxes();
  let containers = 0;
  let volumes = 0;
  for (const s of reap) {
    // No createdAt: a session's billing is settled when it ends, not when its sandbox is reclaimed.
    await host.cleanupSandbox({ sessionId: s.sessionId, periodSeconds: 1, billedThrough: -1 });
    containers += s.containers;
    volumes += s.volumes;
  }
  return { containers, volumes };
}
