import type { Config } from '../lib/config';
import { permissionRules } from '../lib/profile';
import type { SessionInput } from '../workflows/types';
import { sessionWorkflowId } from '../workflows/messages';
import type { Queryable } from './db';
import { createSession, getSession, putText } from './sessions';
import type { Keyring } from './encryption';
import type { SessionProfile } from '../lib/profile';

export interface NewSessionParams {
  ownerType: 'user' | 'org';
  ownerId: string;
  orgId?: string;
  trigger: 'user' | 'dr';
  name?: string;
  profile: SessionProfile;
  credentialId: string;
  initialPrompt?: string;
  /** The idempotency key: the same id never starts a second workflow. */
  sessionId?: string;
  /** The D&R rule that started it, for the org API and usage by rule. */
  ruleName?: string;
}

/** Stores a new session and its first prompt (in the caller's transaction); its workflow starts afterwards. */
export async function recordSession(
  tx: Queryable,
  keyring: Keyring,
  config: Config,
  p: NewSessionParams & { sessionId: string },
): Promise<{ sessionId: string; workflowId: string }> {
  const workflowId = sessionWorkflowId(p.sessionId);
  await createSession(tx, keyring, {
    id: p.sessionId,
    ownerType: p.ownerType,
    ownerId: p.ownerId,
    orgId: p.orgId,
    trigger: p.trigger,
    name: p.name,
    ruleName: p.ruleName,
    model: p.profile.model ?? config.model.defaultModel,
    profile: p.profile,
    credentialId: p.credentialId,
    workflowId,
  });
  if (p.initialPrompt !== undefined) await putText(tx, p.sessionId, 'prompt', p.initialPrompt);
  return { sessionId: p.sessionId, workflowId };
}

/**
 * The workflow input of a recorded session, read back from the store: the
 * gateway starts sessions with it, and so does the debounce workflow's activity.
 */
export async function sessionInputFor(db: Queryable, config: Config, sessionId: string): Promise<{ input: SessionInput; workflowId: string; searchOwner: string; orgId: string | null; trigger: 'user' | 'dr' }> {
  const row = await getSession(db, sessionId);
  if (!row) throw new Error(`session ${sessionId} is not recorded`);
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM session_texts WHERE session_id = $1 AND kind = 'prompt' ORDER BY created_at, id LIMIT 1`,
    [sessionId],
  );
  const profile = row.profile;
  const input: SessionInput = {
    sessionId,
    owner: { type: row.owner_type, id: row.owner_id, ...(row.org_id ? { orgId: row.org_id } : {}) },
    trigger: row.trigger,
    credentialRef: row.credential_id ?? '',
    rules: permissionRules(profile, row.trigger),
    limits: {
      maxTurns: profile.max_turns,
      maxBudgetUsd: profile.max_budget_usd,
      ttlSeconds: profile.ttl_seconds,
      oneShot: profile.one_shot ?? row.trigger === 'dr',
    },
    initialPromptRef: rows[0]?.id,
    // A fork of an archived session starts from its copy of the source's workspace.
    restoreWorkspace: row.forked_from_session_id !== null && row.archived_at !== null,
    taskQueue: config.temporal.taskQueue,
    timings: { ...config.periods, toolMaxSeconds: config.tools.maxTimeoutSeconds },
  };
  return { input, workflowId: row.workflow_id, searchOwner: `${row.owner_type}:${row.owner_id}`, orgId: row.org_id, trigger: row.trigger };
}
