import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import { appendEvent, type EventType } from '../store/events';
import { appendMessage, getMessage, type ContentBlock } from '../store/conversation';
import { getSession } from '../store/sessions';
import { HiveError, resolveSecret } from '../store/hive';
import { hiveSecretName } from '../lib/dr/action';
import type { DockerSandboxes } from './docker-sandbox';
import type { Keyring } from '../store/encryption';

export interface ActivityDeps {
  db: Db;
  sandboxes: DockerSandboxes;
  config: Config;
  log: Logger;
  /** Opens sealed credentials and profile secrets. */
  keyring: Keyring;
  /** The Docker host this worker drives; sandbox activities for it run on its own task queue. */
  hostId: string;
}

export const assistantKey = (turn: number) => `assistant-${turn}`;

/** Calls fn while heartbeating, so cancellation (interrupt) reaches the activity promptly. */
export async function withHeartbeat<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(), 1000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Store access every activity group shares. */
export function sessionStore(db: Db) {
  const emit = (sessionId: string, key: string, type: EventType, payload: Record<string, unknown>) =>
    appendEvent(db, { sessionId, key, type, payload });

  return {
    emit,

    async sessionOrFail(sessionId: string) {
      const s = await getSession(db, sessionId);
      if (!s) throw ApplicationFailure.nonRetryable(`session ${sessionId} not found in the store`, 'SessionNotFound');
      return s;
    },

    async storedToolUse(sessionId: string, turn: number, toolUseId: string) {
      const msg = await getMessage(db, sessionId, assistantKey(turn));
      const block = msg?.content.find((b) => b.type === 'tool_use' && b.id === toolUseId);
      if (!block) throw ApplicationFailure.nonRetryable(`tool_use ${toolUseId} not found`, 'ToolUseNotFound');
      return block as unknown as { id: string; name: string; input: Record<string, unknown> };
    },

    /** content: text, or blocks (text and image) in the Messages API shape. */
    async storeToolResult(sessionId: string, toolUseId: string, content: string | ContentBlock[], isError: boolean) {
      const block: ContentBlock = { type: 'tool_result', tool_use_id: toolUseId, content, is_error: isError };
      await appendMessage(db, { sessionId, key: `tool_result-${toolUseId}`, role: 'user', content: [block] });
      await emit(sessionId, `tool_result-${toolUseId}`, 'tool_result', { tool_use_id: toolUseId, content, is_error: isError });
    },
  };
}


/**
 * Replaces `hive://secret/NAME` values with the organization's secrets, here in
 * the activity that needs them: they never pass through workflow history. A
 * missing or disabled secret fails the session with a message naming it.
 */
export async function resolveHiveValues(
  db: Db,
  keyring: Keyring,
  orgId: string | null,
  values: Record<string, string>,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    const name = hiveSecretName(v);
    out[k] = name !== undefined ? await hiveSecret(db, keyring, orgId, name) : v;
  }
  return out;
}

export async function hiveSecret(db: Db, keyring: Keyring, orgId: string | null, name: string): Promise<string> {
  if (!orgId) throw ApplicationFailure.nonRetryable(`hive://secret/${name} needs an organization`, 'HiveSecretMissing');
  try {
    return await resolveSecret(db, keyring, orgId, name);
  } catch (err) {
    if (err instanceof HiveError) throw ApplicationFailure.nonRetryable(err.message, 'HiveSecretMissing');
    throw err;
  }
}

export { hiveSecretName };
