/**
 * The reaper's decisions, kept pure so every case is a table row in a test:
 * which unfinished sessions are over, which sandboxes on a host to remove,
 * which hosts to sweep.
 */

/** What Temporal says about a session's workflow (the latest run of its id). */
export type WorkflowState =
  | { kind: 'running' }
  | { kind: 'closed'; status: string; closedAt?: string }
  | { kind: 'not_found' };

/** A session the store does not yet count as ended. */
export interface OpenSession {
  createdAt: string;
  /** Set once a sandbox was provisioned for it. */
  startedAt: string | null;
}

/** Why the reaper ended a session: a short code for the audit trail. */
export type ReapReason = 'workflow_terminated' | 'workflow_timed_out' | 'workflow_failed' | 'workflow_closed' | 'workflow_gone' | 'never_started';

export type SessionVerdict = { action: 'keep' } | { action: 'end'; reason: ReapReason; message: string; billUntil?: string };

/** Only RUNNING (and PAUSED, where servers have it) runs can still end the session themselves. */
const OPEN_STATUSES = new Set(['RUNNING', 'PAUSED', 'UNSPECIFIED', 'UNKNOWN']);
export const isOpenStatus = (status: string) => OPEN_STATUSES.has(status);

export const TERMINATED_MESSAGE = "the session's workflow was terminated outside the platform; its sandbox was reclaimed";

function closedVerdict(status: string): { reason: ReapReason; message: string } {
  switch (status) {
    case 'TERMINATED':
      return { reason: 'workflow_terminated', message: TERMINATED_MESSAGE };
    case 'TIMED_OUT':
      return { reason: 'workflow_timed_out', message: "the session's workflow timed out before it could clean up; its sandbox was reclaimed" };
    case 'FAILED':
      return { reason: 'workflow_failed', message: "the session's workflow failed before it could clean up; its sandbox was reclaimed" };
    default:
      return {
        reason: 'workflow_closed',
        message: `the session's workflow closed (${status.toLowerCase()}) without ending the session; its sandbox was reclaimed`,
      };
  }
}

/**
 * Whether an unfinished session is over. A closed workflow cannot end it any
 * more (the workflow records the end before it closes, so the caller asks
 * Temporal first and the store second). A missing workflow is over once it
 * had a sandbox (its history was purged); one that never started is given
 * neverLaunchedGraceMs, because a duplicate D&R request or a debounce queue
 * may still launch it.
 */
export function sessionVerdict(s: OpenSession, wf: WorkflowState, nowMs: number, neverLaunchedGraceMs: number): SessionVerdict {
  if (wf.kind === 'running') return { action: 'keep' };
  if (wf.kind === 'closed') {
    if (isOpenStatus(wf.status)) return { action: 'keep' };
    return { action: 'end', ...closedVerdict(wf.status), billUntil: wf.closedAt };
  }
  if (s.startedAt) return { action: 'end', reason: 'workflow_gone', message: "the session's workflow no longer exists; its sandbox was reclaimed" };
  if (nowMs - Date.parse(s.createdAt) > neverLaunchedGraceMs) {
    return { action: 'end', reason: 'never_started', message: "the session's workflow never started" };
  }
  return { action: 'keep' };
}

/** One run of a workflow id as a visibility list reports it. */
export interface ListedRun {
  workflowId: string;
  status: string;
}

/**
 * The workflow ids a visibility list shows with a run that can still end its
 * session (a continued-as-new chain shows its closed runs too). Only these are
 * settled by the list: for every other id the caller asks Temporal directly,
 * since a list lags and a closed run may have a newer one (a reset, a
 * continue-as-new) it does not show yet.
 */
export function runningIds(runs: Iterable<ListedRun>): Set<string> {
  const ids = new Set<string>();
  for (const r of runs) if (isOpenStatus(r.status)) ids.add(r.workflowId);
  return ids;
}

/** How long a recorded session may wait for its workflow: a D&R duplicate or a debounce queue can still start it. */
export function neverLaunchedGraceMs(p: { idempotencyWindowSeconds: number; maxTtlSeconds: number; startupTimeoutSeconds: number }): number {
  return (Math.max(p.idempotencyWindowSeconds, p.maxTtlSeconds) + p.startupTimeoutSeconds) * 1000;
}

/** The platform's containers and volumes on one host, grouped by the session label. */
export interface HostSandbox {
  sessionId: string;
  containers: number;
  volumes: number;
}

/**
 * The sessions whose sandboxes to remove: those the store has ended. A
 * session the store does not know is left alone: on a shared Docker engine it
 * may belong to another deployment (or a test), and nothing here proves it
 * is abandoned. Starting and running sessions are never touched.
 */
export function sandboxesToReap(found: HostSandbox[], statusOf: ReadonlyMap<string, string>): HostSandbox[] {
  return found.filter((f) => statusOf.get(f.sessionId) === 'ended');
}

/** A registered host and the last time a worker polled its queue, if Temporal still remembers one. */
export interface HostPollers {
  hostId: string;
  taskQueue: string;
  lastPollAt?: string;
}

/**
 * Hosts whose queue a worker polled within maxSilenceMs: a sweep sent to any
 * other would wait for nobody. An idle worker's long poll lasts about a
 * minute, so the silence allowed must be longer than that.
 */
export function liveHosts(hosts: HostPollers[], nowMs: number, maxSilenceMs: number): HostPollers[] {
  return hosts.filter((h) => h.lastPollAt !== undefined && nowMs - Date.parse(h.lastPollAt) <= maxSilenceMs);
}

/** What one reaper run did, for logs and metrics. */
export interface ReaperReport {
  sessionsEnded: number;
  hostsSwept: number;
  hostsFailed: string[];
  sandboxesRemoved: number;
  volumesRemoved: number;
  sessionsPurged: number;
  archivesRemoved: number;
  /** Steps that failed this run (the others still ran): 'endAbandonedSessions', 'reachableDockerHosts', 'purgeExpiredSessions'. */
  stepsFailed?: string[];
}
