import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { getMessage } from '../store/conversation';
import { markRunning, sessionProfile, setActivity } from '../store/sessions';
import { recordBillingPeriods } from '../store/metering';
import { imageProblem } from '../lib/runner-images';
import { SandboxGoneError } from './docker-sandbox';
import type { McpConnections } from './mcp-client';
import { runSandboxTool } from './tools';
import { resolveHiveValues, sessionStore, withHeartbeat, type ActivityDeps } from './shared';
import { observeTool, sessionStartSeconds } from '../lib/metrics';
import { markVenvBaseline } from './hibernation-activities';

/** Activities that touch the container: they run on the task queue of the Docker host holding it. */
export function createSandboxActivities({ db, sandboxes, config, log, hostId, keyring }: ActivityDeps, mcp?: McpConnections) {
  const store = sessionStore(db);
  const periodIndex = (createdAt: string, periodSeconds: number) =>
    Math.floor((Date.now() - Date.parse(createdAt)) / (periodSeconds * 1000));
  const pricePerMinuteUsd = config.pricing.runtimePerMinuteUsd;

  return {
    async provisionSandbox({ sessionId }: { sessionId: string }) {
      const session = await store.sessionOrFail(sessionId);
      const profile = (await sessionProfile(db, keyring, sessionId)) ?? session.profile;
      const image = profile.image ?? config.runnerImage;
      // Checked again here: this worker's allow-list may have changed since the session was accepted.
      const refused = imageProblem(profile.image, config);
      if (refused) throw ApplicationFailure.nonRetryable(refused, 'RunnerImageNotAllowed');
      const present = await sandboxes.docker.getImage(image).inspect().catch((err: { statusCode?: number }) => {
        if (err.statusCode === 404) return undefined;
        throw err;
      });
      // The worker builds only the default image (at start); another allowed one is the operator's to put on each host.
      if (!present) {
        throw ApplicationFailure.nonRetryable(`the runner image ${image} is not on this Docker host (${hostId})`, 'RunnerImageMissing');
      }
      const info = await sandboxes.provision({
        sessionId,
        image,
        env: await resolveHiveValues(db, keyring, session.org_id, profile.environment ?? {}),
        network: profile.network_access === true,
        cpus: config.sandbox.cpus,
        memoryMb: config.sandbox.memoryMb,
        pidsLimit: config.sandbox.pidsLimit,
      });
      await markVenvBaseline(sandboxes, info.containerId);
      await markRunning(db, sessionId, { containerId: info.containerId, host: hostId });
      // Only the first sandbox is a start: a resume after hibernation would add hours-long samples.
      if (session.started_at === null) sessionStartSeconds.observe((Date.now() - Date.parse(session.created_at)) / 1000);
      await store.emit(sessionId, 'status-running', 'session_status', { status: 'running' });
      await store.emit(sessionId, 'system-init', 'system', {
        subtype: 'init',
        message: 'Working directory: /workspace',
        model: session.model,
      });
      if (!config.webSearch.url && (profile.allowed_tools ?? []).some((t) => t === 'WebSearch' || t.startsWith('WebSearch('))) {
        await store.emit(sessionId, 'system-websearch', 'system', {
          subtype: 'notice',
          message: 'WebSearch is allowed by the profile but not available: this deployment has no search endpoint (WEBSEARCH_URL), so the tool is not offered.',
        });
      }
      log.info({ sessionId, container: info.containerId.slice(0, 12) }, 'sandbox ready');
      return { ...info, hostId };
    },

    async runTool(p: { sessionId: string; containerId: string; turn: number; toolUseId: string }) {
      const existing = await getMessage(db, p.sessionId, `tool_result-${p.toolUseId}`);
      if (existing) return { isError: existing.content[0]?.is_error === true };
      const use = await store.storedToolUse(p.sessionId, p.turn, p.toolUseId);
      await setActivity(db, p.sessionId, 'running_tool');
      const ctx = Context.current();
      let outcome;
      try {
        outcome = await observeTool(use.name, () =>
          withHeartbeat(() =>
            runSandboxTool(sandboxes, p.containerId, use.name, use.input ?? {}, {
              defaultTimeoutMs: config.tools.defaultTimeoutSeconds * 1000,
              maxTimeoutMs: config.tools.maxTimeoutSeconds * 1000,
              outputLimitBytes: config.tools.outputLimitBytes,
            }, ctx.cancellationSignal),
          ),
        );
      } catch (err) {
        if (err instanceof SandboxGoneError) throw ApplicationFailure.nonRetryable(err.message, 'SandboxGone');
        throw err;
      }
      ctx.cancellationSignal.throwIfAborted();
      await store.storeToolResult(p.sessionId, p.toolUseId, outcome.content, outcome.isError);
      return { isError: outcome.isError };
    },

    /** Records every billing period started so far, and reports whether the sandbox is still there. */
    async recordUsage(p: { sessionId: string; containerId: string; createdAt: string; periodSeconds: number; billedThrough: number }) {
      const alive = await sandboxes.isRunning(p.containerId);
      const current = periodIndex(p.createdAt, p.periodSeconds);
      await recordBillingPeriods(db, { ...p, sandboxStartedAt: p.createdAt, fromIndex: p.billedThrough + 1, toIndex: current, pricePerMinuteUsd });
      return { alive, billedThrough: Math.max(p.billedThrough, current) };
    },

    async cleanupSandbox(p: { sessionId: string; createdAt?: string; periodSeconds: number; billedThrough: number }) {
      await mcp?.closeSession(p.sessionId);
      const { removed } = await sandboxes.destroy(p.sessionId);
      // The final periods: everything started before the sandbox was gone.
      let billedThrough = p.billedThrough;
      if (p.createdAt) {
        const last = periodIndex(p.createdAt, p.periodSeconds);
        billedThrough = Math.max(billedThrough, last);
        await recordBillingPeriods(db, {
          sessionId: p.sessionId,
          sandboxStartedAt: p.createdAt,
          periodSeconds: p.periodSeconds,
          fromIndex: p.billedThrough + 1,
          toIndex: last,
          pricePerMinuteUsd,
        });
      }
      log.info({ sessionId: p.sessionId, removed }, 'sandbox removed');
      return { removed, billedThrough };
    },

  };
}
