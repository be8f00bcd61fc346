import { Context } from '@temporalio/activity';
import { getMessage } from '../store/conversation';
import { setActivity } from '../store/sessions';
import { modelUsageFor, recordModelUsage } from '../store/metering';
import { costUsd } from '../lib/pricing';
import { buildAnswerPrompt, fetchPage, WebFetchError } from '../lib/web-fetch';
import { formatHits, search, searchInputProblem, type SearchInput } from '../lib/web-search';
import { classifyModelError, sanitize } from './model';
import { sessionModelClient } from './model-credentials';
import { sessionStore, withHeartbeat, type ActivityDeps } from './shared';
import { observeTool } from '../lib/metrics';

type Outcome = { content: string; isError: boolean };

/**
 * WebFetch and WebSearch, run by the worker rather than in the sandbox, so
 * the sandbox can stay offline. A fetch is answered by one model call over
 * the page text, billed to the session like any other.
 */
export function createWebActivities(deps: ActivityDeps) {
  const { db, config, log } = deps;
  const store = sessionStore(db);

  return {
    async runWebTool(p: { sessionId: string; turn: number; toolUseId: string }): Promise<{ isError: boolean; costUsd: number }> {
      const callKey = `webfetch-${p.toolUseId}`;
      const existing = await getMessage(db, p.sessionId, `tool_result-${p.toolUseId}`);
      if (existing) return { isError: existing.content[0]?.is_error === true, costUsd: (await modelUsageFor(db, p.sessionId, callKey)).costUsd };
      const use = await store.storedToolUse(p.sessionId, p.turn, p.toolUseId);
      await setActivity(db, p.sessionId, 'running_tool');
      const signal = Context.current().cancellationSignal;
      const outcome = await observeTool(use.name, () =>
        withHeartbeat(() => (use.name === 'WebFetch' ? webFetch(p.sessionId, callKey, use.input ?? {}, signal) : webSearch(use.input ?? {}, signal))),
      );
      if (signal.aborted) throw signal.reason ?? new Error('cancelled');
      await store.storeToolResult(p.sessionId, p.toolUseId, outcome.content, outcome.isError);
      return { isError: outcome.isError, costUsd: (await modelUsageFor(db, p.sessionId, callKey)).costUsd };
    },
  };

  async function webFetch(sessionId: string, callKey: string, input: Record<string, unknown>, signal: AbortSignal): Promise<Outcome> {
    if (typeof input.url !== 'string' || input.url.trim() === '') return { content: 'WebFetch: "url" must be a non-empty string', isError: true };
    if (typeof input.prompt !== 'string' || input.prompt.trim() === '') return { content: 'WebFetch: "prompt" must say what to find out from the page', isError: true };
    let page;
    try {
      page = await fetchPage(input.url.trim(), {
        allowPrivate: config.webFetch.allowPrivate,
        timeoutMs: config.webFetch.timeoutSeconds * 1000,
        maxBytes: config.webFetch.maxBytes,
        signal,
        userAgent: `ai-sessions/${config.version} (WebFetch)`,
      });
    } catch (err) {
      if (err instanceof WebFetchError) return { content: `WebFetch: ${err.message}`, isError: true };
      throw err;
    }
    const session = await store.sessionOrFail(sessionId);
    const prompt = buildAnswerPrompt(page, input.prompt);
    let answer: string;
    try {
      const client = await sessionModelClient(deps, session);
      const reply = await client.messages.create(
        { model: session.model, max_tokens: 2048, system: prompt.system, messages: [{ role: 'user', content: prompt.user }] },
        { signal },
      );
      await recordModelUsage(db, {
        sessionId, callKey, model: reply.model,
        inputTokens: reply.usage.input_tokens, outputTokens: reply.usage.output_tokens,
        cacheCreationInputTokens: reply.usage.cache_creation_input_tokens ?? 0, cacheReadInputTokens: reply.usage.cache_read_input_tokens ?? 0,
        costUsd: costUsd(reply.model, reply.usage, config.pricing.models),
      });
      answer = reply.content.filter((b) => b.type === 'text').map((b) => b.text).join('\n').trim();
    } catch (err) {
      if (signal.aborted) throw err;
      const failure = classifyModelError(err);
      // Transient trouble is retried by the activity's policy; a refused request is the tool's error, not the session's.
      if (!failure.nonRetryable || failure.type === 'ModelAuthError') throw failure;
      log.warn({ sessionId, type: failure.type }, sanitize(failure.message));
      return { content: `WebFetch: the page was fetched but could not be read by the model (${failure.message})`, isError: true };
    }
    const facts = [
      page.finalUrl !== page.url ? `redirected to ${page.finalUrl}` : undefined,
      `HTTP ${page.status}`,
      `${page.bytes} bytes`,
      prompt.truncated ? 'content truncated' : undefined,
    ].filter(Boolean).join(', ');
    return { content: `${answer || '(no answer)'}\n\n[WebFetch ${page.url}: ${facts}]`, isError: page.status >= 400 };
  }

  async function webSearch(input: Record<string, unknown>, signal: AbortSignal): Promise<Outcome> {
    if (!config.webSearch.url) return { content: 'WebSearch is not available: no search endpoint is configured.', isError: true };
    const problem = searchInputProblem(input);
    if (problem) return { content: problem, isError: true };
    const query = input as unknown as SearchInput;
    try {
      const hits = await search(config.webSearch.url, query, {
        timeoutMs: config.webFetch.timeoutSeconds * 1000, maxResults: config.webSearch.maxResults, signal,
      });
      return { content: formatHits(query.query, hits), isError: false };
    } catch (err) {
      if (signal.aborted) throw err;
      const reason = (err as Error).name === 'TimeoutError' ? 'the search endpoint did not answer in time' : (err as Error).message;
      return { content: `WebSearch failed: ${reason}`, isError: true };
    }
  }
}
