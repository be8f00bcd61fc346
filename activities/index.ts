import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type Anthropic from '@anthropic-ai/sdk';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import { appendEvent, publishDelta, type EventType } from '../store/events';
import { appendMessage, getMessage, loadConversation, type ContentBlock } from '../store/conversation';
import { getCredential, getSession, getText, markEnded, markRunning, setActivity } from '../store/sessions';
import { recordBillingPeriods, recordModelUsage, sessionTotals } from '../store/metering';
import { BUILTIN_TOOLS } from '../lib/tool-specs';
import { parsePattern } from '../lib/permissions';
import { costUsd } from '../lib/pricing';
import { DockerSandboxes, SandboxGoneError } from './docker-sandbox';
import { classifyModelError, modelClient, sanitize, SYSTEM_PROMPT } from './model';
import { runSandboxTool } from './tools';

export interface ActivityDeps {
  db: Db;
  sandboxes: DockerSandboxes;
  config: Config;
  log: Logger;
  /** The Docker host this worker drives; sandbox activities for it run on its own task queue. */
  hostId: string;
}

export interface ToolUseRef {
  id: string;
  name: string;
  /** The Bash command, for the permission check; other inputs stay in the store. */
  command?: string;
}

export interface ModelTurn {
  stopReason: string | null;
  toolUses: ToolUseRef[];
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
}

const assistantKey = (turn: number) => `assistant-${turn}`;

/** Calls fn while heartbeating, so cancellation (interrupt) reaches the activity promptly. */
async function withHeartbeat<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(), 1000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

export function createActivities({ db, sandboxes, config, log, hostId }: ActivityDeps) {
  const emit = (sessionId: string, key: string, type: EventType, payload: Record<string, unknown>) =>
    appendEvent(db, { sessionId, key, type, payload });

  async function sessionOrFail(sessionId: string) {
    const s = await getSession(db, sessionId);
    if (!s) throw ApplicationFailure.nonRetryable(`session ${sessionId} not found in the store`, 'SessionNotFound');
    return s;
  }

  async function storedToolUse(sessionId: string, turn: number, toolUseId: string) {
    const msg = await getMessage(db, sessionId, assistantKey(turn));
    const block = msg?.content.find((b) => b.type === 'tool_use' && b.id === toolUseId);
    if (!block) throw ApplicationFailure.nonRetryable(`tool_use ${toolUseId} not found`, 'ToolUseNotFound');
    return block as unknown as { id: string; name: string; input: Record<string, unknown> };
  }

  async function storeToolResult(sessionId: string, toolUseId: string, content: string, isError: boolean) {
    const block: ContentBlock = { type: 'tool_result', tool_use_id: toolUseId, content, is_error: isError };
    await appendMessage(db, { sessionId, key: `tool_result-${toolUseId}`, role: 'user', content: [block] });
    await emit(sessionId, `tool_result-${toolUseId}`, 'tool_result', {
      tool_use_id: toolUseId,
      content,
      is_error: isError,
    });
  }

  return {
    async provisionSandbox({ sessionId }: { sessionId: string }) {
      const session = await sessionOrFail(sessionId);
      const image = await sandboxes.docker.getImage(config.runnerImage).inspect().catch((err: { statusCode?: number }) => {
        if (err.statusCode === 404) return undefined;
        throw err;
      });
      if (!image) {
        throw ApplicationFailure.nonRetryable(`the runner image ${config.runnerImage} is not on this Docker host`, 'RunnerImageMissing');
      }
      const info = await sandboxes.provision({
        sessionId,
        image: config.runnerImage,
        env: session.profile.environment ?? {},
        network: session.profile.network_access === true,
        cpus: config.sandbox.cpus,
        memoryMb: config.sandbox.memoryMb,
        pidsLimit: config.sandbox.pidsLimit,
      });
      await markRunning(db, sessionId, { containerId: info.containerId, host: hostId });
      await emit(sessionId, 'status-running', 'session_status', { status: 'running' });
      await emit(sessionId, 'system-init', 'system', {
        subtype: 'init',
        message: 'Working directory: /workspace',
        model: session.model,
      });
      log.info({ sessionId, container: info.containerId.slice(0, 12) }, 'sandbox ready');
      return { ...info, hostId };
    },

    async beginPrompt({ sessionId, textRef, promptKey }: { sessionId: string; textRef: string; promptKey: string }) {
      const text = await getText(db, textRef);
      await appendMessage(db, { sessionId, key: `user-${promptKey}`, role: 'user', content: [{ type: 'text', text }] });
      await emit(sessionId, `user-${promptKey}`, 'user', { text });
      await setActivity(db, sessionId, 'thinking');
    },

    async callModel({ sessionId, turn }: { sessionId: string; turn: number }): Promise<ModelTurn> {
      const session = await sessionOrFail(sessionId);
      const key = assistantKey(turn);
      let message = await getMessage(db, sessionId, key);
      if (!message) {
        if (!session.credential_id) throw ApplicationFailure.nonRetryable('session has no model credential', 'ModelAuthError');
        const credential = await getCredential(db, session.credential_id);
        if (!credential) throw ApplicationFailure.nonRetryable('the model credential was deleted', 'ModelAuthError');
        const final = await streamModel(modelClient(credential, config.model.baseURL), session, turn);
        const content = final.content as unknown as ContentBlock[];
        await appendMessage(db, { sessionId, key, role: 'assistant', content });
        const cost = costUsd(final.model, final.usage);
        await recordModelUsage(db, {
          sessionId,
          callKey: key,
          model: final.model,
          inputTokens: final.usage.input_tokens,
          outputTokens: final.usage.output_tokens,
          cacheCreationInputTokens: final.usage.cache_creation_input_tokens ?? 0,
          cacheReadInputTokens: final.usage.cache_read_input_tokens ?? 0,
          costUsd: cost,
        });
        message = (await getMessage(db, sessionId, key))!;
        (message as { stopReason?: string | null }).stopReason = final.stop_reason;
      }
      return publishTurn(session.id, session.model, turn, message.content, (message as { stopReason?: string | null }).stopReason);
    },

    async runTool(p: { sessionId: string; containerId: string; turn: number; toolUseId: string }) {
      const existing = await getMessage(db, p.sessionId, `tool_result-${p.toolUseId}`);
      if (existing) return { isError: existing.content[0]?.is_error === true };
      const use = await storedToolUse(p.sessionId, p.turn, p.toolUseId);
      await setActivity(db, p.sessionId, 'running_tool');
      const ctx = Context.current();
      let outcome;
      try {
        outcome = await withHeartbeat(() =>
          runSandboxTool(sandboxes, p.containerId, use.name, use.input ?? {}, {
            defaultTimeoutMs: config.tools.defaultTimeoutSeconds * 1000,
            maxTimeoutMs: config.tools.maxTimeoutSeconds * 1000,
            outputLimitBytes: config.tools.outputLimitBytes,
          }, ctx.cancellationSignal),
        );
      } catch (err) {
        if (err instanceof SandboxGoneError) throw ApplicationFailure.nonRetryable(err.message, 'SandboxGone');
        throw err;
      }
      ctx.cancellationSignal.throwIfAborted();
      await storeToolResult(p.sessionId, p.toolUseId, outcome.content, outcome.isError);
      return { isError: outcome.isError };
    },

    /** A result decided by the workflow: a denial, a refused approval, an answer to a question. */
    async recordToolResult(p: { sessionId: string; toolUseId: string; content?: string; contentRef?: string; isError: boolean }) {
      const content = p.contentRef ? await getText(db, p.contentRef) : (p.content ?? '');
      await storeToolResult(p.sessionId, p.toolUseId, content, p.isError);
    },

    async requestApproval(p: { sessionId: string; turn: number; toolUseId: string; reason: string; expiresAt: string }) {
      const use = await storedToolUse(p.sessionId, p.turn, p.toolUseId);
      await setActivity(db, p.sessionId, 'waiting_approval');
      await emit(p.sessionId, `approval-${p.toolUseId}`, 'tool_approval_request', {
        request_id: p.toolUseId,
        tool_use_id: p.toolUseId,
        tool_name: use.name,
        input: use.input,
        reason: p.reason,
        options: ['y', 'n', 'session'],
        expires_at: p.expiresAt,
      });
    },

    async askUserQuestion(p: { sessionId: string; turn: number; toolUseId: string; expiresAt: string }) {
      const use = await storedToolUse(p.sessionId, p.turn, p.toolUseId);
      await setActivity(db, p.sessionId, 'waiting_answer');
      await emit(p.sessionId, `question-${p.toolUseId}`, 'ask_user_question', {
        request_id: p.toolUseId,
        tool_use_id: p.toolUseId,
        questions: use.input.questions ?? [],
        expires_at: p.expiresAt,
      });
    },

    async finishPrompt(p: { sessionId: string; promptKey: string; lastTurn: number; success: boolean; turns: number; note?: string }) {
      const msg = p.lastTurn > 0 ? await getMessage(db, p.sessionId, assistantKey(p.lastTurn)) : undefined;
      const text = (msg?.content ?? []).filter((b) => b.type === 'text').map((b) => String(b.text)).join('\n').trim();
      const totals = await sessionTotals(db, p.sessionId);
      await emit(p.sessionId, `result-${p.promptKey}`, 'result', {
        success: p.success,
        summary: p.note ?? (text.length > 2000 ? `${text.slice(0, 2000)}…` : text),
        turns: p.turns,
        cost_usd: totals.costUsd,
        input_tokens: totals.inputTokens,
        output_tokens: totals.outputTokens,
      });
      await setActivity(db, p.sessionId, 'idle');
    },

    async emitSystem(p: { sessionId: string; key: string; subtype: string; message: string }) {
      await emit(p.sessionId, p.key, 'system', { subtype: p.subtype, message: p.message });
    },

    async setSessionActivity(p: { sessionId: string; activity: string }) {
      await setActivity(db, p.sessionId, p.activity);
    },

    /** Records every billing period started so far and reports whether the sandbox is still there. */
    async sandboxTick(p: { sessionId: string; containerId: string; createdAt: string; periodSeconds: number; billedThrough: number }) {
      const alive = await sandboxes.isRunning(p.containerId);
      const now = Date.now();
      const current = Math.floor((now - Date.parse(p.createdAt)) / (p.periodSeconds * 1000));
      await recordBillingPeriods(db, { ...p, sandboxStartedAt: p.createdAt, fromIndex: p.billedThrough + 1, toIndex: current });
      return { alive, billedThrough: Math.max(p.billedThrough, current) };
    },

    async cleanupSandbox(p: { sessionId: string; createdAt?: string; periodSeconds: number; billedThrough: number }) {
      const { removed } = await sandboxes.destroy(p.sessionId);
      // The final periods: everything started before the sandbox was gone.
      if (p.createdAt) {
        const last = Math.floor((Date.now() - Date.parse(p.createdAt)) / (p.periodSeconds * 1000));
        await recordBillingPeriods(db, {
          sessionId: p.sessionId,
          sandboxStartedAt: p.createdAt,
          periodSeconds: p.periodSeconds,
          fromIndex: p.billedThrough + 1,
          toIndex: last,
        });
      }
      log.info({ sessionId: p.sessionId, removed }, 'sandbox removed');
      return { removed };
    },

    async endSession(p: { sessionId: string; reason: string; errorMessage?: string }) {
      const exitCode = p.reason === 'completed' || p.reason === 'user_requested' || p.reason === 'org_api_requested' ? 0 : 1;
      if (p.errorMessage) {
        await emit(p.sessionId, 'session-error', 'session_error', { error: p.errorMessage, details: `end reason: ${p.reason}` });
      }
      await markEnded(db, p.sessionId, { reason: p.reason, exitCode, errorMessage: p.errorMessage });
      await emit(p.sessionId, 'session-end', 'session_end', { reason: p.reason, exit_code: exitCode });
      log.info({ sessionId: p.sessionId, reason: p.reason }, 'session ended');
    },
  };

  async function streamModel(client: Anthropic, session: { id: string; model: string; profile: { denied_tools?: string[] } }, turn: number) {
    const ctx = Context.current();
    const messages = await loadConversation(db, session.id);
    const bareDenied = new Set(
      (session.profile.denied_tools ?? []).map((p) => parsePattern(p)).filter((p) => p.kind === 'tool').map((p) => (p as { name: string }).name),
    );
    const tools = BUILTIN_TOOLS.filter((t) => !bareDenied.has(t.name));
    const key = assistantKey(turn);
    let pending = '';
    let pendingBlock = 0;
    // Deltas go out in order: each publish waits for the one before it.
    let published: Promise<void> = Promise.resolve();
    const flush = () => {
      if (pending) {
        const delta = { session_id: session.id, message_key: key, block_index: pendingBlock, attempt: ctx.info.attempt, text: pending };
        pending = '';
        published = published.then(() => publishDelta(db, delta)).catch(() => undefined);
      }
      return published;
    };
    const flusher = setInterval(flush, 50);
    try {
      return await withHeartbeat(async () => {
        const stream = client.messages.stream(
          {
            model: session.model,
            max_tokens: config.model.maxTokens,
            system: SYSTEM_PROMPT,
            tools: tools as unknown as Anthropic.Tool[],
            messages: messages as unknown as Anthropic.MessageParam[],
          },
          { signal: ctx.cancellationSignal },
        );
        stream.on('streamEvent', (event) => {
          if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') {
            if (event.index !== pendingBlock) flush();
            pendingBlock = event.index;
            pending += event.delta.text;
          }
        });
        return await stream.finalMessage();
      });
    } catch (err) {
      // An interrupt: report the cancellation itself (the SDK's APIUserAbortError would count as a failure).
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? err;
      const failure = classifyModelError(err);
      log.warn({ sessionId: session.id, turn, type: failure.type, attempt: ctx.info.attempt }, sanitize(failure.message));
      throw failure;
    } finally {
      clearInterval(flusher);
      await flush();
    }
  }

  async function publishTurn(sessionId: string, model: string, turn: number, content: ContentBlock[], stopReason?: string | null): Promise<ModelTurn> {
    const text = content.filter((b) => b.type === 'text');
    if (text.length > 0) await emit(sessionId, assistantKey(turn), 'assistant', { content: text, model });
    const toolUses: ToolUseRef[] = [];
    for (const b of content) {
      if (b.type !== 'tool_use') continue;
      const input = (b.input ?? {}) as Record<string, unknown>;
      await emit(sessionId, `tool_use-${b.id}`, 'tool_use', { id: b.id, name: b.name, input });
      toolUses.push({
        id: String(b.id),
        name: String(b.name),
        ...(b.name === 'Bash' && typeof input.command === 'string' ? { command: input.command } : {}),
      });
    }
    const { rows } = await db.query<{ input_tokens: string; output_tokens: string; cost_usd: number }>(
      `SELECT input_tokens + cache_creation_input_tokens + cache_read_input_tokens AS input_tokens, output_tokens, cost_usd
         FROM model_usage WHERE session_id = $1 AND call_key = $2`,
      [sessionId, assistantKey(turn)],
    );
    const u = rows[0] ?? { input_tokens: '0', output_tokens: '0', cost_usd: 0 };
    await emit(sessionId, `usage-${turn}`, 'usage_delta', {
      model,
      input_tokens: Number(u.input_tokens),
      output_tokens: Number(u.output_tokens),
      cost_usd: Number(u.cost_usd),
    });
    return {
      stopReason: stopReason ?? (toolUses.length > 0 ? 'tool_use' : 'end_turn'),
      toolUses,
      costUsd: Number(u.cost_usd),
      inputTokens: Number(u.input_tokens),
      outputTokens: Number(u.output_tokens),
    };
  }
}

export type SessionActivities = ReturnType<typeof createActivities>;
