import { appendMessage, getMessage } from '../store/conversation';
import { getText, markEnded, setActivity } from '../store/sessions';
import { sessionUsage } from '../store/usage';
import { assistantKey, sessionStore, type ActivityDeps } from './shared';

/** Prompts, human answers, results and the end: the session's own records and events. */
export function createSessionActivities({ db, log }: ActivityDeps) {
  const { emit, storedToolUse, storeToolResult } = sessionStore(db);

  return {
    async beginPrompt({ sessionId, textRef, promptKey }: { sessionId: string; textRef: string; promptKey: string }) {
      const text = await getText(db, textRef);
      await appendMessage(db, { sessionId, key: `user-${promptKey}`, role: 'user', content: [{ type: 'text', text }] });
      await emit(sessionId, `user-${promptKey}`, 'user', { text });
      await setActivity(db, sessionId, 'thinking');
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
      // The session's totals so far: model cost and tokens, and the runtime billed until now.
      const usage = await sessionUsage(db, p.sessionId);
      await emit(p.sessionId, `result-${p.promptKey}`, 'result', {
        success: p.success,
        summary: p.note ?? (text.length > 2000 ? `${text.slice(0, 2000)}…` : text),
        turns: p.turns,
        cost_usd: usage.cost_usd,
        input_tokens: usage.input_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
        output_tokens: usage.output_tokens,
        runtime_minutes: usage.runtime_minutes,
        total_cost_usd: usage.total_cost_usd,
      });
      await setActivity(db, p.sessionId, 'idle');
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
}
