import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { GatewayDeps } from './deps';
import { badRequest, conflict } from './errors';
import { parseOr400 } from './validation';
import { ActionError, hiveSecretName, parseAction, parseDefinitionRef, parseAgentRecord, resolveAction, type ActionPlan, type AgentRecord } from '../lib/dr/action';
import { imageProblem } from '../lib/runner-images';
import { getHive } from '../store/hive';
import { claimIdempotentKey } from '../store/dr';
import { putCredential } from '../store/sessions';
import { seal } from '../store/encryption';
import type { Queryable } from '../store/db';
import type { NewSessionParams } from '../store/session-input';
import { debounceRequestSignal, debounceWorkflowId, pendingIdOf, pendingSessionId } from '../workflows/messages';

/** What an external D&R engine sends: the action, and the event (routing, event, detect) that triggered it. */
const LaunchBody = z.object({
  action: z.record(z.string(), z.unknown()),
  routing: z.record(z.string(), z.unknown()).optional(),
  event: z.record(z.string(), z.unknown()).optional(),
  detect: z.record(z.string(), z.unknown()).optional(),
  rule_name: z.string().max(256).optional(),
}).strict();

export interface LaunchResult {
  status: 'started' | 'duplicate' | 'queued';
  session_id?: string;
  /** For a queued (debounced) request: its id and key. */
  request_id?: string;
  /** For a duplicate of a debounced request that has not become a session: queued, or superseded by a newer one. */
  request_state?: string;
  debounce_key?: string;
  idempotent_key?: string;
  warnings: string[];
}


/**
 * Runs a `start ai agent` action for one event: validates it, loads its
 * ai_agent record, renders the plan, and starts the session — or, for an
 * idempotent key seen within the window, answers with the first session.
 */
export async function launchAction(deps: GatewayDeps, orgId: string, body: unknown): Promise<LaunchResult> {
  const req = parseOr400(LaunchBody, body);
  let action;
  try {
    action = parseAction(req.action, 'action');
  } catch (err) {
    if (err instanceof ActionError) throw badRequest(err.message);
    throw err;
  }
  const record = action.mode === 'definition' ? await loadAgent(deps, orgId, action.definition) : undefined;
  const plan = resolveAction(action, { routing: req.routing, event: req.event, detect: req.detect }, record);
  // Here as well as when the session is recorded: a debounced request is recorded later, by the debounce workflow.
  const imageField = action.mode === 'inline' ? 'action.profile.image' : `${action.definition}.image`;
  const problem = imageProblem(plan.profile.image, deps.config, imageField);
  if (problem) throw badRequest(problem);
  await checkSecretRefs(deps, orgId, plan);
  if (plan.debounceKey !== undefined) return queueDebounced(deps, orgId, req.rule_name, plan, plan.debounceKey);

  const sessionId = randomUUID();
  const outcome = await deps.db.transaction(async (tx) => {
    if (plan.idempotentKey !== undefined) {
      const claim = await claimIdempotentKey(tx, {
        orgId, key: plan.idempotentKey, sessionId, windowSeconds: deps.config.limits.idempotencyWindowSeconds,
      });
      if (!claim.claimed) return { status: 'duplicate' as const, sessionId: claim.sessionId };
    }
    await deps.service.record(tx, { sessionId, ...(await sessionParams(tx, deps, orgId, req.rule_name, plan)) });
    return { status: 'started' as const, sessionId };
  });
  if (outcome.status === 'duplicate' && pendingIdOf(outcome.sessionId)) {
    // The key's first request was a debounced one (another rule with the same key).
    return duplicateOfRequest(deps, orgId, outcome.sessionId, plan, { idempotent_key: plan.idempotentKey! });
  }
  // After the commit; a duplicate whose first launch never got this far is started now.
  await deps.service.launch(outcome.sessionId);
  if (plan.warnings.length) deps.log.warn({ orgId, sessionId: outcome.sessionId, warnings: plan.warnings }, 'D&R action warnings');
  return {
    status: outcome.status,
    session_id: outcome.sessionId,
    ...(plan.idempotentKey !== undefined ? { idempotent_key: plan.idempotentKey } : {}),
    warnings: plan.warnings,
  };
}

/** The session an action starts; a literal key is stored sealed, like a hive secret, and never shown again. */
async function sessionParams(tx: Queryable, deps: GatewayDeps, orgId: string, ruleName: string | undefined, plan: ActionPlan): Promise<NewSessionParams> {
  const credentialId = hiveSecretName(plan.anthropicSecret) !== undefined
    ? plan.anthropicSecret
    : await putCredential(tx, deps.keyring, { ownerId: orgId, type: 'api_key', secret: plan.anthropicSecret });
  return {
    ownerType: 'org',
    ownerId: orgId,
    orgId,
    trigger: 'dr',
    name: plan.name,
    ruleName,
    profile: plan.profile,
    credentialId,
    initialPrompt: plan.prompt,
  };
}

/**
 * A debounced request waits in the store and is signalled to its key's
 * workflow (started if there is none): one session at a time per key, and only
 * the newest waiting request runs next. With an idempotent_key as well, a
 * duplicate queues nothing: the key is claimed for the session this request
 * would become, in the transaction that records the request.
 */
async function queueDebounced(deps: GatewayDeps, orgId: string, ruleName: string | undefined, plan: ActionPlan, key: string): Promise<LaunchResult> {
  const pendingId = `dbq_${randomUUID()}`;
  const keys = { debounce_key: key, ...(plan.idempotentKey !== undefined ? { idempotent_key: plan.idempotentKey } : {}) };
  const duplicateOf = await deps.db.transaction(async (tx) => {
    if (plan.idempotentKey !== undefined) {
      const claim = await claimIdempotentKey(tx, {
        orgId, key: plan.idempotentKey, sessionId: pendingSessionId(pendingId), windowSeconds: deps.config.limits.idempotencyWindowSeconds,
      });
      if (!claim.claimed) return claim.sessionId;
    }
    const params = await sessionParams(tx, deps, orgId, ruleName, plan);
    await tx.query('INSERT INTO dr_pending (id, org_id, debounce_key, sealed_params) VALUES ($1, $2, $3, $4)', [
      pendingId, orgId, key, seal(deps.keyring, JSON.stringify(params)),
    ]);
    return undefined;
  });
  if (duplicateOf !== undefined) return duplicateOfRequest(deps, orgId, duplicateOf, plan, keys);
  await signalPending(deps, orgId, key, pendingId);
  return { status: 'queued', request_id: pendingId, ...keys, warnings: plan.warnings };
}

async function signalPending(deps: GatewayDeps, orgId: string, key: string, pendingId: string): Promise<void> {
  const keyHash = createHash('sha256').update(key).digest('hex').slice(0, 32);
  await deps.client.workflow.signalWithStart('debounceWorkflow', {
    workflowId: debounceWorkflowId(orgId, keyHash),
    taskQueue: deps.config.temporal.taskQueue,
    args: [{ orgId, key, taskQueue: deps.config.temporal.taskQueue }],
    signal: debounceRequestSignal,
    signalArgs: [{ pendingId }],
  });
  await deps.db.query('UPDATE dr_pending SET signalled_at = now() WHERE id = $1', [pendingId]);
}

/**
 * The answer to a duplicate of a debounced request: the session it became,
 * or the request itself while it waits. One that a crash left unsignalled is
 * signalled now; one already signalled never is again (that could put it back
 * in front of newer requests).
 */
async function duplicateOfRequest(
  deps: GatewayDeps, orgId: string, claimedSessionId: string, plan: ActionPlan, keys: Record<string, string>,
): Promise<LaunchResult> {
  const pendingId = pendingIdOf(claimedSessionId);
  if (!pendingId) {
    // The key was first claimed by an undebounced session.
    await deps.service.launch(claimedSessionId);
    return { status: 'duplicate', session_id: claimedSessionId, ...keys, warnings: plan.warnings };
  }
  const { rows } = await deps.db.query<{ state: string; session_id: string | null; signalled_at: string | null; debounce_key: string }>(
    'SELECT state, session_id, signalled_at, debounce_key FROM dr_pending WHERE id = $1', [pendingId],
  );
  const row = rows[0];
  if (row && row.state === 'queued' && !row.signalled_at) await signalPending(deps, orgId, row.debounce_key, pendingId);
  return {
    status: 'duplicate',
    ...(row?.session_id ? { session_id: row.session_id } : { request_id: pendingId, request_state: row?.state ?? 'queued' }),
    ...keys,
    warnings: plan.warnings,
  };
}

async function loadAgent(deps: GatewayDeps, orgId: string, definition: string): Promise<AgentRecord> {
  const name = parseDefinitionRef(definition) ?? '';
  const rec = await getHive(deps.db, orgId, 'ai_agent', name);
  if (!rec) throw badRequest(`action.definition: ${definition} does not exist`);
  if (!rec.enabled) throw conflict(`action.definition: ${definition} is disabled and cannot start a session`, 'record_disabled');
  try {
    return parseAgentRecord(rec.data, `${definition}`);
  } catch (err) {
    if (err instanceof ActionError) throw badRequest(err.message);
    throw err;
  }
}

/** Every hive://secret/ the session will need must exist and be enabled before anything starts. */
async function checkSecretRefs(deps: GatewayDeps, orgId: string, plan: ActionPlan): Promise<void> {
  const refs = [plan.anthropicSecret, ...Object.values(plan.profile.environment ?? {})].filter((v) => hiveSecretName(v) !== undefined);
  for (const ref of new Set(refs)) {
    const rec = await getHive(deps.db, orgId, 'secret', hiveSecretName(ref)!);
    if (!rec) throw badRequest(`${ref} does not exist in this organization's hive`);
    if (!rec.enabled) throw conflict(`${ref} is disabled and cannot be used`, 'record_disabled');
  }
}
