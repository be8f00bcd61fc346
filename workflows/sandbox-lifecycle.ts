import { ActivityFailure, CancellationScope, condition, isCancellation, patched, TimeoutFailure, upsertSearchAttributes } from '@temporalio/workflow';
import { describeFailure } from './failures';
import { SA_STATUS, sandboxTaskQueue } from './messages';
import type { SessionRun } from './session-run';
import type { SessionState } from './types';

/**
 * The sandbox's life inside a session: start (or resume from an archive),
 * bill each started period while it lives, hibernate when idle, and remove it
 * at the end. Every step runs on the Docker host that holds the container.
 */

/** Provisions a sandbox, unpacks the session's archive into it when there is one, and starts its MCP servers. */
export async function startSandbox(run: SessionRun): Promise<void> {
  const { s, sessionId, timings } = run;
  run.work = new CancellationScope();
  try {
    await run.work.run(async () => {
      const box = await run.provisioning.provisionSandbox({ sessionId });
      // A resumed session's periods continue the numbering where its last sandbox's stopped.
      const billedMs = (s.billedThrough + 1) * timings.billingSeconds * 1000;
      s.sandbox = billedMs > 0 ? { ...box, billingStart: new Date(Date.parse(box.createdAt) - billedMs).toISOString() } : box;
      if (s.restorePending) {
        await run.onSandbox(s.sandbox.hostId).restoreSandbox({ sessionId, containerId: s.sandbox.containerId });
        s.restorePending = false;
      }
      // Tools are listed before the first prompt; a server that fails is reported and left out.
      if (patched('mcp-servers')) {
        await run.onSandbox(s.sandbox.hostId).startMcpServers({ sessionId, containerId: s.sandbox.containerId });
      }
    });
    s.dormant = false;
    upsertSearchAttributes([{ key: SA_STATUS, value: 'running' }]);
    run.activity = 'idle';
  } catch (err) {
    const timedOut = err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
    if (timedOut) run.requestEnd('startup_timeout', `the sandbox was not ready within ${timings.startupTimeoutSeconds} s`);
    else if (!run.end) run.requestEnd('failed', describeFailure(err)?.message ?? 'sandbox provisioning failed');
  } finally {
    run.work = undefined;
  }
}

/** Starts the billing watcher of the current sandbox, unless the last one is still in its final call (it carries on). */
export function startWatching(run: SessionRun): void {
  run.stopWatching = false;
  if (!run.watcherRunning) void watchSandbox(run);
}

/** Bills each started period and notices a vanished sandbox, until the session ends or the watcher is stopped. */
async function watchSandbox(run: SessionRun): Promise<void> {
  const { s, sessionId, timings } = run;
  const periodMs = timings.billingSeconds * 1000;
  run.watcherRunning = true;
  try {
    while (!run.end && s.sandbox && !run.stopWatching) {
      try {
        const r = await run.onSandbox(s.sandbox.hostId).recordUsage({
          sessionId,
          containerId: s.sandbox.containerId,
          createdAt: billingStart(s.sandbox),
          periodSeconds: timings.billingSeconds,
          billedThrough: s.billedThrough,
        });
        s.billedThrough = r.billedThrough;
        if (!r.alive) run.requestEnd('heartbeat_stale', 'the session sandbox is gone');
      } catch (err) {
        if (isCancellation(err)) return;
      }
      const nextBoundary = Date.parse(billingStart(s.sandbox)) + (s.billedThrough + 1) * periodMs;
      const wait = Math.max(50, Math.min(nextBoundary - Date.now(), timings.sandboxCheckSeconds * 1000));
      await condition(() => run.end !== undefined || run.stopWatching, wait);
    }
  } finally {
    run.watcherRunning = false;
  }
}

/** How long the idle wait may last before the session hibernates; undefined: it never does. */
export function hibernateAfterMs(run: SessionRun): number | undefined {
  const seconds = run.timings.hibernateIdleSeconds ?? 0;
  if (run.input.owner.type !== 'user' || !run.s.sandbox || seconds <= 0 || !patched('hibernation')) return undefined;
  return seconds * 1000;
}

/**
 * Archives the idle sandbox and removes it: no compute and no billing until
 * the next prompt resumes it. Cancellable like a prompt: an end requested
 * meanwhile abandons it, and the end's own cleanup removes the sandbox.
 */
export async function hibernate(run: SessionRun): Promise<void> {
  const { s, sessionId, timings } = run;
  const box = s.sandbox!;
  run.hibernating = true;
  run.activity = 'hibernating';
  run.stopWatching = true;
  // Runs recorded before hibernation could be cut short waited for it to finish: replaying them must too.
  const cancellable = patched('hibernation-cancellable');
  const scope = cancellable ? new CancellationScope() : undefined;
  run.work = scope;
  try {
    const steps = async () => {
      // The watcher's last call lands first: against a removed container it would report the sandbox gone.
      await condition(() => !run.watcherRunning || (cancellable && run.ended));
      if (run.end) return undefined;
      const archiving = cancellable ? run.archiveOn(box.hostId) : run.onSandbox(box.hostId);
      const { bytes } = await archiving.archiveSandbox({ sessionId, containerId: box.containerId });
      const { billedThrough } = await run.cleanupOn(sandboxTaskQueue(run.input.taskQueue, box.hostId), 10 * 60_000).cleanupSandbox({
        sessionId,
        createdAt: billingStart(box),
        periodSeconds: timings.billingSeconds,
        billedThrough: s.billedThrough,
      });
      return { bytes, billedThrough };
    };
    const done = scope ? await scope.run(steps) : await steps();
    if (!done) return;
    s.billedThrough = done.billedThrough;
    s.sandbox = undefined;
    s.dormant = true;
    s.restorePending = true;
    const mark = () => run.acts.markDormant({ sessionId, bytes: done.bytes });
    await (cancellable ? CancellationScope.nonCancellable(mark) : mark());
    run.activity = 'dormant';
  } catch (err) {
    if (cancellable && run.end) return;
    if (isCancellation(err)) throw err;
    // Not archived, or not removed: the sandbox stays (its watcher ends the session if it is gone) and the next idle period tries again.
    run.activity = 'idle';
    startWatching(run);
  } finally {
    run.work = undefined;
    run.hibernating = false;
  }
}

/** At the end: removes the sandbox (billing its last period), or whatever a failed start left behind. Never throws. */
export async function removeSandbox(run: SessionRun): Promise<void> {
  const { s, sessionId, timings, input } = run;
  try {
    if (s.sandbox) {
      await run.cleanupOn(sandboxTaskQueue(input.taskQueue, s.sandbox.hostId), 10 * 60_000).cleanupSandbox({
        sessionId,
        createdAt: billingStart(s.sandbox),
        periodSeconds: timings.billingSeconds,
        billedThrough: s.billedThrough,
      });
    } else {
      // Provisioning may have left something behind on whichever host took it: best effort.
      await run.cleanupOn(input.taskQueue, timings.startupTimeoutSeconds * 1000).cleanupSandbox({
        sessionId,
        periodSeconds: timings.billingSeconds,
        billedThrough: s.billedThrough,
      });
    }
  } catch {
    // The Docker host is unreachable: the session still ends; what is left carries our labels for the reaper.
  }
}

/** Where the sandbox's billing period 0 begins: its creation, or earlier for a resumed session's later sandbox. */
function billingStart(box: NonNullable<SessionState['sandbox']>): string {
  return box.billingStart ?? box.createdAt;
}
