import { Context } from '@temporalio/activity';
import type Anthropic from '@anthropic-ai/sdk';
import { publishDelta } from '../store/events';
import { appendMessage, getMessage, loadConversation, type ContentBlock } from '../store/conversation';
import { modelUsageFor, recordModelUsage } from '../store/metering';
import { BUILTIN_TOOLS, WEB_FETCH_TOOL, WEB_SEARCH_TOOL } from '../lib/tool-specs';
import { decide } from '../lib/permissions';
import { getMcpTools } from '../store/mcp-tools';
import { costUsd } from '../lib/pricing';
import { classifyModelError, sanitize, SYSTEM_PROMPT } from './model';
import { sessionModelClient } from './model-credentials';
import { assistantKey, sessionStore, withHeartbeat, type ActivityDeps } from './shared';
import { modelCallSeconds, modelLabel, modelTokens, secondsSince } from '../lib/metrics';

/** `model` is a label (modelLabel), never the raw id. */
function countTokens(model: string, u: Anthropic.Usage) {
  modelTokens.inc({ model, direction: 'input' }, u.input_tokens);
  modelTokens.inc({ model, direction: 'output' }, u.output_tokens);
  modelTokens.inc({ model, direction: 'cache_read' }, u.cache_read_input_tokens ?? 0);
  modelTokens.inc({ model, direction: 'cache_creation' }, u.cache_creation_input_tokens ?? 0);
}

export interface ToolUseRef {
  id: string;
  name: string;
  /** The Bash command, for the permission check; other inputs stay in the store. */
  command?: string;
}

export interface ModelTurn {
  toolUses: ToolUseRef[];
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
}

/** One model turn: streamed, stored under the turn's key, announced as events. */
export function createModelActivities({ db, config, log, keyring }: ActivityDeps) {
  const { emit, sessionOrFail } = sessionStore(db);

  return {
    async callModel({ sessionId, turn }: { sessionId: string; turn: number }): Promise<ModelTurn> {
      const session = await sessionOrFail(sessionId);
      const key = assistantKey(turn);
      let message = await getMessage(db, sessionId, key);
      if (!message) {
        const started = performance.now();
        const model = modelLabel(session.model, config.pricing.models);
        const final = await streamModel(await sessionModelClient({ db, keyring, config }, session), session, turn).catch((err) => {
          modelCallSeconds.observe({ model, outcome: 'error' }, secondsSince(started));
          throw err;
        });
        modelCallSeconds.observe({ model, outcome: 'ok' }, secondsSince(started));
        countTokens(modelLabel(final.model, config.pricing.models), final.usage);
        const content = final.content as unknown as ContentBlock[];
        await appendMessage(db, { sessionId, key, role: 'assistant', content });
        const cost = costUsd(final.model, final.usage, config.pricing.models);
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
      }
      return publishTurn(session.id, session.model, turn, message.content);
    },
  };

  async function streamModel(client: Anthropic, session: { id: string; model: string; profile: { denied_tools?: string[] } }, turn: number) {
    const ctx = Context.current();
    const messages = await loadConversation(db, session.id);
    // A tool denied outright is not offered at all: the model would only waste a turn on it.
    const denied = session.profile.denied_tools ?? [];
    const deniedOutright = new Set(denied.filter((p) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)));
    const mcpTools = (await getMcpTools(db, session.id))
      .filter((t) => decide({ allowed: [], denied, mode: 'bypassPermissions' }, { name: t.name }).behavior !== 'deny')
      .map(({ name, description, input_schema }) => ({ name, ...(description ? { description } : {}), input_schema }));
    const offered = [...BUILTIN_TOOLS, WEB_FETCH_TOOL, ...(config.webSearch.url ? [WEB_SEARCH_TOOL] : [])];
    const tools = [...offered.filter((t) => !deniedOutright.has(t.name)), ...mcpTools];
    const key = assistantKey(turn);
    // Text goes out as it arrives; what arrives while a publish is in flight is coalesced into the next.
    const queue: Array<{ block: number; text: string }> = [];
    let sending: Promise<void> | undefined;
    const pump = (): Promise<void> =>
      (sending ??= (async () => {
        while (queue.length > 0) {
          const { block, text } = queue.shift()!;
          const delta = { session_id: session.id, message_key: key, block_index: block, attempt: ctx.info.attempt, text };
          await publishDelta(db, delta).catch(() => undefined);
        }
        sending = undefined;
      })());
    const addText = (block: number, text: string) => {
      const last = queue.at(-1);
      if (last && last.block === block) last.text += text;
      else queue.push({ block, text });
      void pump();
    };
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
          if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') addText(event.index, event.delta.text);
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
      await pump();
    }
  }

  async function publishTurn(sessionId: string, model: string, turn: number, content: ContentBlock[]): Promise<ModelTurn> {
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
    const u = await modelUsageFor(db, sessionId, assistantKey(turn));
    await emit(sessionId, `usage-${turn}`, 'usage_delta', {
      model,
      input_tokens: u.inputTokens,
      cache_creation_input_tokens: u.cacheCreationInputTokens,
      cache_read_input_tokens: u.cacheReadInputTokens,
      output_tokens: u.outputTokens,
      cost_usd: u.costUsd,
    });
    return { toolUses, ...u };
  }
}
