import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  ParentClosePolicy,
  patched,
  setHandler,
  startChild,
  TimeoutFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { ToolUseRef } from '../activities';
import { decide, sessionPatternFor } from '../lib/permissions';
import type { EndReason } from '../lib/end-reasons';
import {
  answerUpdate,
  approvalUpdate,
  interruptUpdate,
  outputDeliveryWorkflowId,
  promptUpdate,
  SA_STATUS,
  sandboxTaskQueue,
  statusQuery,
  terminateUpdate,
  type ApprovalDecision,
  type PendingRequest,
} from './messages';
import { sessionActivities } from './activity-proxies';
import { describeFailure } from './failures';
import type { outputDeliveryWorkflow } from './outputs';
import { handleFileUpdates } from './files';
import type { SessionInput, SessionOutcome, SessionState } from './types';

export type { SessionInput, SessionOutcome, SessionState, SessionTimings } from './types';

/**
 * One session: provision the sandbox, answer prompts with model turns and
 * tool calls, enforce limits, bill each started period, and always clean up.
 */
export async function sessionWorkflow(input: SessionInput, carried?: SessionState): Promise<SessionOutcome> {
  const { sessionId, timings } = input;
  const s: SessionState = carried ?? {
    startedAtMs: workflowInfo().startTime.getTime(),
    billedThrough: -1,
    turns: 0,
    costUsd: 0,
    promptCount: 0,
    queue: [],
    sessionPatterns: [],
    recentClientMessageIds: [],
  };
  if (!carried && input.initialPromptRef) enqueue(input.initialPromptRef);
  if (!carried && input.restoreWorkspace) s.restorePending = true;

  const { acts, model, provisioning, onSandbox, cleanupOn } = sessionActivities(input);

  let end: { reason: EndReason; error?: string } | undefined;
  let work: CancellationScope | undefined;
  let pending: (PendingRequest & { decision?: ApprovalDecision; answerRef?: string }) | undefined;
  let activity = s.sandbox ? 'idle' : s.dormant ? 'dormant' : 'starting';
  let busy = false;
  let hibernating = false;
  /** File transfers waiting for a dormant session to resume. */
  let wakeRequests = 0;
  let watching: Promise<void> | undefined;
  let stopWatching = false;

  function enqueue(textRef: string) {
    s.promptCount += 1;
    s.queue.push({ textRef, promptKey: `p${s.promptCount}` });
  }
  function requestEnd(reason: EndReason, error?: string) {
    if (!end) end = { reason, error };
    work?.cancel();
  }

  setHandler(statusQuery, () => ({
    status: end ? 'ended' : s.sandbox || s.dormant ? 'running' : 'starting',
    activity: end ? 'ended' : activity,
    turns: s.turns,
    costUsd: s.costUsd,
    queuedPrompts: s.queue.length,
    pending: pending && { kind: pending.kind, requestId: pending.requestId, toolName: pending.toolName, expiresAt: pending.expiresAt },
    endReason: end?.reason,
  }));
  setHandler(
    promptUpdate,
    ({ textRef, clientMessageId }) => {
      if (clientMessageId && s.recentClientMessageIds.includes(clientMessageId)) {
        return { queued: false, position: 0 };
      }
      if (clientMessageId) s.recentClientMessageIds = [...s.recentClientMessageIds.slice(-99), clientMessageId];
      enqueue(textRef);
      return { queued: busy || s.queue.length > 1, position: s.queue.length };
    },
    {
      validator: (p) => {
        if (!p || typeof p.textRef !== 'string' || p.textRef === '') throw new Error('prompt: textRef is required');
        if (end) throw new Error('session has ended');
      },
    },
  );
  setHandler(interruptUpdate, () => {
    if (!busy || !work) return { interrupted: false };
    work.cancel();
    return { interrupted: true };
  });
  setHandler(
    terminateUpdate,
    ({ reason }) => {
      requestEnd(reason);
      return { terminated: true };
    },
    {
      validator: (p) => {
        if (!p || (p.reason !== 'user_requested' && p.reason !== 'org_api_requested')) {
          throw new Error('terminate: reason must be user_requested or org_api_requested');
        }
      },
    },
  );
  setHandler(
    approvalUpdate,
    ({ decision }) => {
      pending!.decision = decision;
      return { accepted: true };
    },
    {
      validator: (p) => {
        if (!p || !['y', 'n', 'session'].includes(p.decision)) throw new Error('approve: decision must be y, n or session');
        if (!pending || pending.kind !== 'approval' || pending.requestId !== p.requestId || pending.decision) {
          throw new Error(`approve: no pending approval ${String(p.requestId)}`);
        }
      },
    },
  );
  setHandler(
    answerUpdate,
    ({ answerRef }) => {
      pending!.answerRef = answerRef;
      return { accepted: true };
    },
    {
      validator: (p) => {
        if (!p || typeof p.answerRef !== 'string' || p.answerRef === '') throw new Error('answer: answerRef is required');
        if (!pending || pending.kind !== 'question' || pending.requestId !== p.requestId || pending.answerRef) {
          throw new Error(`answer: no pending question ${String(p.requestId)}`);
        }
      },
    },
  );

  /** Resolves once the session has a sandbox again: a dormant one is woken (a file transfer). */
  async function awake() {
    await condition(() => !hibernating);
    if (!s.dormant) return;
    wakeRequests += 1;
    try {
      await condition(() => end !== undefined || !s.dormant);
    } finally {
      wakeRequests -= 1;
    }
  }

  handleFileUpdates({ sessionId, state: s, ended: () => end !== undefined, onSandbox, awake });

  const setActivity = (next: string) => {
    activity = next;
  };

  async function waitForHuman(kind: PendingRequest['kind'], use: ToolUseRef, turn: number) {
    const expiresAt = new Date(Date.now() + timings.approvalTimeoutSeconds * 1000).toISOString();
    pending = { kind, requestId: use.id, toolName: use.name, expiresAt };
    setActivity(kind === 'approval' ? 'waiting_approval' : 'waiting_answer');
    try {
      if (kind === 'approval') {
        await acts.requestApproval({ sessionId, turn, toolUseId: use.id, reason: 'needs approval', expiresAt });
      } else {
        await acts.askUserQuestion({ sessionId, turn, toolUseId: use.id, expiresAt });
      }
      const answered = await condition(
        () => pending?.decision !== undefined || pending?.answerRef !== undefined,
        timings.approvalTimeoutSeconds * 1000,
      );
      if (!answered) {
        const what = kind === 'approval' ? `approval of ${use.name}` : 'the question';
        requestEnd('failed', `no answer to ${what} within ${timings.approvalTimeoutSeconds} s`);
        throw ApplicationFailure.nonRetryable('unanswered', 'Unanswered');
      }
      return { decision: pending.decision, answerRef: pending.answerRef };
    } finally {
      pending = undefined;
      setActivity('running_tool');
    }
  }

  async function handleToolUse(use: ToolUseRef, turn: number) {
    const sandbox = onSandbox(s.sandbox!.hostId);
    const rules = { ...input.rules, allowed: [...input.rules.allowed, ...s.sessionPatterns] };
    const decision = decide(rules, { name: use.name, command: use.command });
    if (decision.behavior === 'deny') {
      await acts.recordToolResult({ sessionId, toolUseId: use.id, isError: true, content: `Permission denied: ${decision.reason}` });
      return;
    }
    if (use.name === 'AskUserQuestion') {
      const { answerRef } = await waitForHuman('question', use, turn);
      await acts.recordToolResult({ sessionId, toolUseId: use.id, isError: false, contentRef: answerRef });
      return;
    }
    if (decision.behavior === 'ask') {
      const { decision: answer } = await waitForHuman('approval', use, turn);
      if (answer === 'n') {
        await acts.recordToolResult({ sessionId, toolUseId: use.id, isError: true, content: 'The user declined this tool call.' });
        return;
      }
      if (answer === 'session') {
        const pattern = sessionPatternFor({ name: use.name, command: use.command });
        if (pattern && !s.sessionPatterns.includes(pattern)) s.sessionPatterns.push(pattern);
      }
    }
    setActivity('running_tool');
    const call = { sessionId, containerId: s.sandbox!.containerId, turn, toolUseId: use.id };
    // The web tools run on the shared queue: the worker fetches, so the sandbox can stay offline.
    if ((use.name === 'WebFetch' || use.name === 'WebSearch') && patched('web-tools')) s.costUsd += (await model.runWebTool(call)).costUsd;
    else if (use.name.startsWith('mcp__') && patched('mcp-servers')) await sandbox.callMcpTool(call);
    else await sandbox.runTool(call);
  }

  /** One prompt: model turns and tool calls until the model stops asking for tools. */
  async function runPrompt(prompt: { textRef: string; promptKey: string }) {
    let promptTurns = 0;
    let lastTurn = 0;
    let success = false;
    let note: string | undefined;
    busy = true;
    work = new CancellationScope();
    try {
      await work.run(async () => {
        await acts.beginPrompt({ sessionId, textRef: prompt.textRef, promptKey: prompt.promptKey });
        for (;;) {
          setActivity('thinking');
          s.turns += 1;
          promptTurns += 1;
          const turn = s.turns;
          const result = await model.callModel({ sessionId, turn });
          lastTurn = turn;
          s.costUsd += result.costUsd;
          if (input.limits.maxBudgetUsd !== undefined && s.costUsd >= input.limits.maxBudgetUsd) {
            note = `Stopped: the session spent $${s.costUsd.toFixed(4)}, reaching its budget of $${input.limits.maxBudgetUsd}.`;
            requestEnd('max_budget_exceeded');
            return;
          }
          const turnsLeft = input.limits.maxTurns === undefined || s.turns < input.limits.maxTurns;
          if (result.toolUses.length === 0) {
            success = true;
            if (!turnsLeft) requestEnd('max_turns_reached');
            return;
          }
          if (!turnsLeft) {
            note = `Stopped: the session reached its limit of ${input.limits.maxTurns} turns.`;
            requestEnd('max_turns_reached');
            return;
          }
          for (const use of result.toolUses) await handleToolUse(use, turn);
        }
      });
    } catch (err) {
      const failure = describeFailure(err);
      if (failure) {
        requestEnd(failure.reason, failure.message);
        note = `Failed: ${failure.message}`;
      } else if (!end) {
        note = 'Interrupted by the user.';
      } else {
        note ??= end.error ? `Failed: ${end.error}` : `Stopped: the session ended (${end.reason}).`;
      }
    } finally {
      work = undefined;
    }
    await CancellationScope.nonCancellable(() =>
      acts.finishPrompt({ sessionId, promptKey: prompt.promptKey, lastTurn, success, turns: promptTurns, note }),
    );
    busy = false;
    setActivity('idle');
  }

  /** Bills each started period and notices a vanished sandbox, until the session ends. */
  async function watchSandbox() {
    const periodMs = timings.billingSeconds * 1000;
    while (!end && s.sandbox && !stopWatching) {
      try {
        const r = await onSandbox(s.sandbox.hostId).recordUsage({
          sessionId,
          containerId: s.sandbox.containerId,
          createdAt: billingStart(s.sandbox),
          periodSeconds: timings.billingSeconds,
          billedThrough: s.billedThrough,
        });
        s.billedThrough = r.billedThrough;
        if (!r.alive) requestEnd('heartbeat_stale', 'the session sandbox is gone');
      } catch (err) {
        if (isCancellation(err)) return;
      }
      const nextBoundary = Date.parse(billingStart(s.sandbox)) + (s.billedThrough + 1) * periodMs;
      const wait = Math.max(50, Math.min(nextBoundary - Date.now(), timings.sandboxCheckSeconds * 1000));
      await condition(() => end !== undefined || stopWatching, wait);
    }
  }
  function startWatching() {
    stopWatching = false;
    watching = watchSandbox();
  }

  /** Provisions a sandbox, unpacks the session's archive into it when there is one, and starts its MCP servers. */
  async function startSandbox() {
    work = new CancellationScope();
    try {
      await work.run(async () => {
        const box = await provisioning.provisionSandbox({ sessionId });
        // A resumed session's periods continue the numbering where its last sandbox's stopped.
        const billedMs = (s.billedThrough + 1) * timings.billingSeconds * 1000;
        s.sandbox = billedMs > 0 ? { ...box, billingStart: new Date(Date.parse(box.createdAt) - billedMs).toISOString() } : box;
        if (s.restorePending) {
          await onSandbox(s.sandbox.hostId).restoreSandbox({ sessionId, containerId: s.sandbox.containerId });
          s.restorePending = false;
        }
        // Tools are listed before the first prompt; a server that fails is reported and left out.
        if (patched('mcp-servers')) {
          await onSandbox(s.sandbox.hostId).startMcpServers({ sessionId, containerId: s.sandbox.containerId });
        }
      });
      s.dormant = false;
      upsertSearchAttributes([{ key: SA_STATUS, value: 'running' }]);
      setActivity('idle');
    } catch (err) {
      const timedOut = err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
      if (timedOut) requestEnd('startup_timeout', `the sandbox was not ready within ${timings.startupTimeoutSeconds} s`);
      else if (!end) requestEnd('failed', describeFailure(err)?.message ?? 'sandbox provisioning failed');
    } finally {
      work = undefined;
    }
  }

  /** How long the idle wait may last before the session hibernates; undefined: it never does. */
  function hibernateAfterMs(): number | undefined {
    const seconds = timings.hibernateIdleSeconds ?? 0;
    if (input.owner.type !== 'user' || !s.sandbox || seconds <= 0 || !patched('hibernation')) return undefined;
    return seconds * 1000;
  }

  /** Archives the idle sandbox and removes it: no compute and no billing until the next prompt resumes it. */
  async function hibernate() {
    const box = s.sandbox!;
    hibernating = true;
    setActivity('hibernating');
    stopWatching = true;
    try {
      await watching;
      if (end) return;
      const { bytes } = await onSandbox(box.hostId).archiveSandbox({ sessionId, containerId: box.containerId });
      const { billedThrough } = await cleanupOn(sandboxTaskQueue(input.taskQueue, box.hostId), 10 * 60_000).cleanupSandbox({
        sessionId,
        createdAt: billingStart(box),
        periodSeconds: timings.billingSeconds,
        billedThrough: s.billedThrough,
      });
      s.billedThrough = billedThrough;
      s.sandbox = undefined;
      s.dormant = true;
      s.restorePending = true;
      await acts.markDormant({ sessionId, bytes });
      setActivity('dormant');
    } catch (err) {
      if (isCancellation(err)) throw err;
      // Not archived, or not removed: the sandbox stays (its watcher ends the session if it is gone) and the next idle period tries again.
      setActivity('idle');
      startWatching();
    } finally {
      hibernating = false;
    }
  }

  try {
    if (!s.sandbox && !s.dormant) await startSandbox();
    if (!end) {
      const ttlSeconds = Math.min(input.limits.ttlSeconds ?? timings.maxTtlSeconds, timings.maxTtlSeconds);
      const deadline = s.startedAtMs + ttlSeconds * 1000;
      void condition(() => end !== undefined, Math.max(1, deadline - Date.now())).then((ended) => {
        if (!ended) requestEnd('max_duration_exceeded');
      });
      startWatching();
    }
    while (!end) {
      const wake = () => end !== undefined || s.queue.length > 0 || workflowInfo().continueAsNewSuggested || (wakeRequests > 0 && s.dormant === true);
      const idleMs = hibernateAfterMs();
      if (idleMs === undefined) await condition(wake);
      else if (!(await condition(wake, idleMs))) {
        // A file transfer in flight keeps the session awake.
        if (allHandlersFinished()) await hibernate();
        continue;
      }
      if (end) break;
      if (s.dormant && (s.queue.length > 0 || wakeRequests > 0)) {
        setActivity('resuming');
        await startSandbox();
        if (end) break;
        startWatching();
      }
      if (s.queue.length === 0) {
        if (!workflowInfo().continueAsNewSuggested) continue;
        await condition(allHandlersFinished);
        if (s.queue.length === 0 && !end) return await continueAsNew<typeof sessionWorkflow>(input, s);
        continue;
      }
      await runPrompt(s.queue.shift()!);
      if (input.limits.oneShot && !end) requestEnd('completed');
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    requestEnd('user_requested', 'the workflow was cancelled');
  }

  const outcome = end ?? { reason: 'failed' as EndReason, error: 'ended without a reason' };
  await CancellationScope.nonCancellable(async () => {
    try {
      if (s.sandbox) {
        await cleanupOn(sandboxTaskQueue(input.taskQueue, s.sandbox.hostId), 10 * 60_000).cleanupSandbox({
          sessionId,
          createdAt: billingStart(s.sandbox),
          periodSeconds: timings.billingSeconds,
          billedThrough: s.billedThrough,
        });
      } else {
        // Provisioning may have left something behind on whichever host took it: best effort.
        await cleanupOn(input.taskQueue, timings.startupTimeoutSeconds * 1000).cleanupSandbox({
          sessionId,
          periodSeconds: timings.billingSeconds,
          billedThrough: s.billedThrough,
        });
      }
    } catch {
      // The Docker host is unreachable: the session still ends; what is left carries our labels for the reaper.
    }
    await acts.endSession({ sessionId, reason: outcome.reason, errorMessage: outcome.error });
    if (input.owner.type === 'org' && patched('org-outputs')) {
      // Its own workflow, so a receiver that is down for hours keeps retrying after this one has closed.
      await startChild<typeof outputDeliveryWorkflow>('outputDeliveryWorkflow', {
        workflowId: outputDeliveryWorkflowId(sessionId),
        taskQueue: input.taskQueue,
        args: [{ sessionId }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      }).catch((err) => {
        // A run that was reset and ended again finds its deliveries already under way: that is fine.
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      });
    }
  });
  upsertSearchAttributes([{ key: SA_STATUS, value: 'ended' }]);
  await condition(allHandlersFinished);
  return { endReason: outcome.reason, errorMessage: outcome.error };
}

/** Where the sandbox's billing period 0 begins: its creation, or earlier for a resumed session's later sandbox. */
function billingStart(box: NonNullable<SessionState['sandbox']>): string {
  return box.billingStart ?? box.createdAt;
}
