import { Context } from '@temporalio/activity';
import { reaperRemovals } from '../lib/metrics';
import { archiveStoreFor } from '../lib/archive-store';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import {
  liveHosts,
  neverLaunchedGraceMs,
  runningIds,
  sandboxesToReap,
  sessionVerdict,
  type HostSandbox,
  type ReaperReport,
  type WorkflowState,
} from '../lib/reaper';
import {
  dockerHosts,
  endAbandonedSession,
  expiredSessions,
  forgetDockerHosts,
  openSessions,
  purgeSessions,
  recordFinalPeriods,
  registerDockerHost,
  sessionStatuses,
} from '../store/reaper';
import { LABEL_MANAGED, LABEL_SESSION } from './docker-sandbox';
import { sessionWorkflowId, sandboxTaskQueue } from '../workflows/messages';
import type { ActivityDeps } from './shared';

export interface ReaperDeps extends ActivityDeps {
  /** Asks Temporal whether sessions' workflows still run and which host queues are polled. */
  temporal: Client;
}

/** A worker's long poll lasts about a minute: a queue polled within two is served. */
const HOST_SILENCE_MS = 2 * 60_000;
/** A host no worker has registered or swept for a week is taken as decommissioned. */
const HOST_FORGET_SECONDS = 7 * 86400;
const DESCRIBE_CONCURRENCY = 8;
const PURGE_BATCH = 200;
/** Workflow ids per visibility query: keeps the query string a few kB. */
const LIST_BATCH = 100;
/** Ids safe to quote in a visibility query; any other is simply described. */
const LISTABLE_ID = /^[\w.:-]+$/;

/** The reaper's activities: thin over the store, Temporal and dockerode; decisions live in lib/reaper.ts. */
export function createReaperActivities({ db, sandboxes, config, log, hostId, temporal: client }: ReaperDeps) {
  const archiveStore = archiveStoreFor(config);
  const grace = neverLaunchedGraceMs({
    idempotencyWindowSeconds: config.limits.idempotencyWindowSeconds,
    maxTtlSeconds: config.periods.maxTtlSeconds,
    startupTimeoutSeconds: config.periods.startupTimeoutSeconds,
  });

  async function workflowState(sessionId: string): Promise<WorkflowState> {
    try {
      const d = await client.workflow.getHandle(sessionWorkflowId(sessionId)).describe();
      if (d.status.name === 'RUNNING') return { kind: 'running' };
      return { kind: 'closed', status: d.status.name, closedAt: d.closeTime?.toISOString() };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { kind: 'not_found' };
      throw err;
    }
  }

  /**
   * The workflow ids among these that have a running run, by one visibility
   * query per batch instead of one describe per session. A failed query
   * settles nothing: its ids are described one by one.
   */
  async function listedRunning(workflowIds: string[]): Promise<Set<string>> {
    const running = new Set<string>();
    const listable = workflowIds.filter((id) => LISTABLE_ID.test(id));
    for (let i = 0; i < listable.length; i += LIST_BATCH) {
      const batch = listable.slice(i, i + LIST_BATCH);
      const runs: Array<{ workflowId: string; status: string }> = [];
      try {
        const query = `ExecutionStatus = 'Running' AND WorkflowId IN (${batch.map((id) => `'${id}'`).join(', ')})`;
        for await (const w of client.workflow.list({ query })) runs.push({ workflowId: w.workflowId, status: w.status.name });
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'reaper: listing session workflows failed; describing each');
        continue;
      }
      for (const id of runningIds(runs)) running.add(id);
      Context.current().heartbeat();
    }
    return running;
  }

  return {
    /**
     * Ends, in the store, every open session whose workflow is gone: closed
     * without ending it (terminated from the UI or CLI, failed, timed out) or
     * no longer there. Temporal is asked before the store, so a workflow that
     * ends its session normally is never taken for an abandoned one. A
     * visibility list settles the running ones (most, dormant included);
     * only the rest are described, so a verdict to end always rests on describe.
     */
    async endAbandonedSessions(): Promise<{ ended: string[]; described: number }> {
      const all = await openSessions(db);
      const running = await listedRunning(all.map((s) => sessionWorkflowId(s.id)));
      const open = all.filter((s) => !running.has(sessionWorkflowId(s.id)));
      const ended: string[] = [];
      let next = 0;
      const worker = async () => {
        while (next < open.length) {
          const s = open[next++];
          const wf = await workflowState(s.id);
          const verdict = sessionVerdict(s, wf, Date.now(), grace);
          Context.current().heartbeat();
          if (verdict.action !== 'end') continue;
          if (!(await endAbandonedSession(db, s.id, verdict))) continue;
          if (verdict.billUntil) {
            await recordFinalPeriods(db, s.id, {
              until: verdict.billUntil,
              defaultPeriodSeconds: config.periods.billingSeconds,
              pricePerMinuteUsd: config.pricing.runtimePerMinuteUsd,
            });
          }
          ended.push(s.id);
          log.warn({ sessionId: s.id, workflow: wf.kind === 'closed' ? wf.status : wf.kind }, 'reaper ended an abandoned session');
        }
      };
      await Promise.all(Array.from({ length: DESCRIBE_CONCURRENCY }, worker));
      return { ended, described: open.length };
    },

    /** The registered hosts whose queue a worker is polling now: the ones a sweep can reach. */
    async reachableDockerHosts(): Promise<Array<{ hostId: string; taskQueue: string }>> {
      await forgetDockerHosts(db, HOST_FORGET_SECONDS);
      const hosts = await dockerHosts(db);
      // One host Temporal cannot describe is taken as unreachable; the others are still swept.
      const settled = await Promise.allSettled(
        hosts.map(async (h) => {
          const r = await client.workflowService.describeTaskQueue({
            namespace: config.temporal.namespace,
            taskQueue: { name: h.taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
            taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
          });
          const last = Math.max(0, ...(r.pollers ?? []).map((p) => optionalTsToMs(p.lastAccessTime) ?? 0));
          return { ...h, lastPollAt: last > 0 ? new Date(last).toISOString() : undefined };
        }),
      );
      const polled = settled.flatMap((r, i) => {
        if (r.status === 'fulfilled') return [r.value];
        log.warn({ hostId: hosts[i].hostId, taskQueue: hosts[i].taskQueue, err: (r.reason as Error)?.message }, 'reaper: could not describe a host queue; not sweeping it');
        return [];
      });
      return liveHosts(polled, Date.now(), HOST_SILENCE_MS).map(({ hostId: id, taskQueue }) => ({ hostId: id, taskQueue }));
    },

    /** On a host's own queue: its sandboxes whose session the store has ended. */
    async findReapableSandboxes(): Promise<{ hostId: string; reap: HostSandbox[] }> {
      await registerDockerHost(db, hostId, sandboxTaskQueue(config.temporal.taskQueue, hostId));
      const filters = { label: [`${LABEL_MANAGED}=true`] };
      const [containers, volumes] = await Promise.all([
        sandboxes.docker.listContainers({ all: true, filters }),
        sandboxes.docker.listVolumes({ filters }),
      ]);
      const bySession = new Map<string, HostSandbox>();
      const entry = (sessionId: string) => {
        let e = bySession.get(sessionId);
        if (!e) bySession.set(sessionId, (e = { sessionId, containers: 0, volumes: 0 }));
        return e;
      };
      for (const c of containers) if (c.Labels?.[LABEL_SESSION]) entry(c.Labels[LABEL_SESSION]).containers += 1;
      for (const v of volumes.Volumes ?? []) if (v.Labels?.[LABEL_SESSION]) entry(v.Labels[LABEL_SESSION]).volumes += 1;
      const statuses = await sessionStatuses(db, [...bySession.keys()]);
      return { hostId, reap: sandboxesToReap([...bySession.values()], statuses) };
    },

    /** Removes the records and archives of sessions ended longer ago than the retention period. */
    async purgeExpiredSessions(): Promise<{ purged: number; archives: number }> {
      let purged = 0;
      let archives = 0;
      for (;;) {
        const ids = await expiredSessions(db, config.reaper.retentionSeconds, PURGE_BATCH);
        if (ids.length === 0) break;
        // Archives first: a crash before the rows are marked purged leaves them to the next run.
        for (const id of ids) archives += await archiveStore.remove(id);
        await purgeSessions(db, ids, config.reaper.retentionSeconds);
        purged += ids.length;
        Context.current().heartbeat();
      }
      return { purged, archives };
    },

    /** One line per run, and the place a metrics counter hooks in. */
    async reportReaperRun(report: ReaperReport): Promise<void> {
      const acted = report.sessionsEnded + report.sandboxesRemoved + report.volumesRemoved + report.sessionsPurged + report.archivesRemoved;
      if (report.stepsFailed?.length) log.warn(report, 'reaper run');
      else if (acted > 0 || report.hostsFailed.length > 0) log.info(report, 'reaper run');
      else log.debug(report, 'reaper run');
      reaperRemovals.inc({ kind: 'session_ended' }, report.sessionsEnded);
      reaperRemovals.inc({ kind: 'container' }, report.sandboxesRemoved);
      reaperRemovals.inc({ kind: 'volume' }, report.volumesRemoved);
      reaperRemovals.inc({ kind: 'session_purged' }, report.sessionsPurged);
      reaperRemovals.inc({ kind: 'archive' }, report.archivesRemoved);
    },
  };
}

export type ReaperActivities = ReturnType<typeof createReaperActivities>;
