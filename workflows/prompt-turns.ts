import { ApplicationFailure, CancellationScope, condition, patched } from '@temporalio/workflow';
import type { ToolUseRef } from '../activities';
import { decide, sessionPatternFor } from '../lib/permissions';
import { describeFailure } from './failures';
import type { PendingRequest } from './messages';
import type { SessionRun } from './session-run';

/** One prompt: model turns and tool calls until the model stops asking for tools, a limit is reached or the user interrupts. */
export async function runPrompt(run: SessionRun, prompt: { textRef: string; promptKey: string }): Promise<void> {
  const { s, input, sessionId, acts, model } = run;
  let promptTurns = 0;
  let lastTurn = 0;
  let success = false;
  let note: string | undefined;
  run.busy = true;
  run.work = new CancellationScope();
  try {
    await run.work.run(async () => {
      await acts.beginPrompt({ sessionId, textRef: prompt.textRef, promptKey: prompt.promptKey });
      for (;;) {
        run.activity = 'thinking';
        s.turns += 1;
        promptTurns += 1;
        const turn = s.turns;
        const result = await model.callModel({ sessionId, turn });
        lastTurn = turn;
        s.costUsd += result.costUsd;
        if (input.limits.maxBudgetUsd !== undefined && s.costUsd >= input.limits.maxBudgetUsd) {
          note = `Stopped: the session spent $${s.costUsd.toFixed(4)}, reaching its budget of $${input.limits.maxBudgetUsd}.`;
          run.requestEnd('max_budget_exceeded');
          return;
        }
        const turnsLeft = input.limits.maxTurns === undefined || s.turns < input.limits.maxTurns;
        if (result.toolUses.length === 0) {
          success = true;
          if (!turnsLeft) run.requestEnd('max_turns_reached');
          return;
        }
        if (!turnsLeft) {
          note = `Stopped: the session reached its limit of ${input.limits.maxTurns} turns.`;
          run.requestEnd('max_turns_reached');
          return;
        }
        for (const use of result.toolUses) await handleToolUse(run, use, turn);
      }
    });
  } catch (err) {
    const failure = describeFailure(err);
    if (failure) {
      run.requestEnd(failure.reason, failure.message);
      note = `Failed: ${failure.message}`;
    } else if (!run.end) {
      note = 'Interrupted by the user.';
    } else {
      note ??= run.end.error ? `Failed: ${run.end.error}` : `Stopped: the session ended (${run.end.reason}).`;
    }
  } finally {
    run.work = undefined;
  }
  await CancellationScope.nonCancellable(() =>
    acts.finishPrompt({ sessionId, promptKey: prompt.promptKey, lastTurn, success, turns: promptTurns, note }),
  );
  run.busy = false;
  run.activity = 'idle';
}

/** One tool call: the permission rules decide, a human may be asked, then it runs where it belongs. */
async function handleToolUse(run: SessionRun, use: ToolUseRef, turn: number): Promise<void> {
  const { s, input, sessionId, acts, model } = run;
  const sandbox = run.onSandbox(s.sandbox!.hostId);
  const rules = { ...input.rules, allowed: [...input.rules.allowed, ...s.sessionPatterns] };
  const decision = decide(rules, { name: use.name, command: use.command });
  if (decision.behavior === 'deny') {
    await acts.recordToolResult({ sessionId, toolUseId: use.id, isError: true, content: `Permission denied: ${decision.reason}` });
    return;
  }
  if (use.name === 'AskUserQuestion') {
    const { answerRef } = await waitForHuman(run, 'question', use, turn);
    await acts.recordToolResult({ sessionId, toolUseId: use.id, isError: false, contentRef: answerRef });
    return;
  }
  if (decision.behavior === 'ask') {
    const { decision: answer } = await waitForHuman(run, 'approval', use, turn);
    if (answer === 'n') {
      await acts.recordToolResult({ sessionId, toolUseId: use.id, isError: true, content: 'The user declined this tool call.' });
      return;
    }
    if (answer === 'session') {
      const pattern = sessionPatternFor({ name: use.name, command: use.command });
      if (pattern && !s.sessionPatterns.includes(pattern)) s.sessionPatterns.push(pattern);
    }
  }
  run.activity = 'running_tool';
  const call = { sessionId, containerId: s.sandbox!.containerId, turn, toolUseId: use.id };
  // The web tools run on the shared queue: the worker fetches, so the sandbox can stay offline.
  if ((use.name === 'WebFetch' || use.name === 'WebSearch') && patched('web-tools')) s.costUsd += (await model.runWebTool(call)).costUsd;
  else if (use.name.startsWith('mcp__') && patched('mcp-servers')) await sandbox.callMcpTool(call);
  else await sandbox.runTool(call);
}

/** Asks the user (an approval or a question) and waits; no answer in time ends the session. */
async function waitForHuman(run: SessionRun, kind: PendingRequest['kind'], use: ToolUseRef, turn: number) {
  const { sessionId, acts, timings } = run;
  const expiresAt = new Date(Date.now() + timings.approvalTimeoutSeconds * 1000).toISOString();
  run.pending = { kind, requestId: use.id, toolName: use.name, expiresAt };
  run.activity = kind === 'approval' ? 'waiting_approval' : 'waiting_answer';
  try {
    if (kind === 'approval') {
      await acts.requestApproval({ sessionId, turn, toolUseId: use.id, reason: 'needs approval', expiresAt });
    } else {
      await acts.askUserQuestion({ sessionId, turn, toolUseId: use.id, expiresAt });
    }
    const answered = await condition(
      () => run.pending?.decision !== undefined || run.pending?.answerRef !== undefined,
      timings.approvalTimeoutSeconds * 1000,
    );
    const pending = run.pending!;
    if (!answered) {
      const what = kind === 'approval' ? `approval of ${use.name}` : 'the question';
      run.requestEnd('failed', `no answer to ${what} within ${timings.approvalTimeoutSeconds} s`);
      throw ApplicationFailure.nonRetryable('unanswered', 'Unanswered');
    }
    return { decision: pending.decision, answerRef: pending.answerRef };
  } finally {
    run.pending = undefined;
    run.activity = 'running_tool';
  }
}
