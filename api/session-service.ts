import { randomUUID } from 'node:crypto';
import { Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Config } from '../lib/config';
import type { Db, Queryable } from '../store/db';
import type { Keyring } from '../store/encryption';
import { createSession, deleteText, getSession, putText } from '../store/sessions';
import { permissionRules, type SessionProfile } from '../lib/profile';
import type { SessionInput } from '../workflows/session';
import {
  answerUpdate,
  approvalUpdate,
  interruptUpdate,
  promptUpdate,
  SA_OWNER,
  SA_ORG,
  SA_SESSION_ID,
  SA_STATUS,
  SA_TRIGGER,
  sessionWorkflowId,
  statusQuery,
  terminateUpdate,
  type ApprovalDecision,
  type TerminateReason,
} from '../workflows/messages';

export interface StartSessionParams {
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

/**
 * Starting and talking to session workflows. Text is stored first and the
 * workflow gets its id, so history holds no prompt and no secret.
 */
export class SessionService {
  constructor(
    private readonly deps: { db: Db; client: Client; config: Config; keyring: Keyring },
  ) {}

  async start(p: StartSessionParams): Promise<{ sessionId: string; workflowId: string }> {
    const prepared = await this.deps.db.transaction((tx) => this.record(tx, p));
    await this.launch(prepared.sessionId);
    return prepared;
  }

  /**
   * Stores a new session and its first prompt, inside the caller's
   * transaction; `launch` starts its workflow afterwards. Split so a caller can
   * make the record part of a larger claim (a D&R idempotent key).
   */
  async record(tx: Queryable, p: StartSessionParams): Promise<{ sessionId: string; workflowId: string }> {
    const sessionId = p.sessionId ?? randomUUID();
    const workflowId = sessionWorkflowId(sessionId);
    await createSession(tx, this.deps.keyring, {
      id: sessionId,
      ownerType: p.ownerType,
      ownerId: p.ownerId,
      orgId: p.orgId,
      trigger: p.trigger,
      name: p.name,
      ruleName: p.ruleName,
      model: p.profile.model ?? this.deps.config.model.defaultModel,
      profile: p.profile,
      credentialId: p.credentialId,
      workflowId,
    });
    if (p.initialPrompt !== undefined) await putText(tx, sessionId, 'prompt', p.initialPrompt);
    return { sessionId, workflowId };
  }

  /**
   * Starts the workflow of a recorded session, everything read back from the
   * store. Idempotent: a workflow that already exists is left as it is.
   */
  async launch(sessionId: string): Promise<'started' | 'already-started'> {
    const { db, client, config } = this.deps;
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
      taskQueue: config.temporal.taskQueue,
      timings: { ...config.periods, toolMaxSeconds: config.tools.maxTimeoutSeconds },
    };
    try {
      await client.workflow.start('sessionWorkflow', {
        args: [input],
        workflowId: row.workflow_id,
        taskQueue: config.temporal.taskQueue,
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        workflowIdConflictPolicy: 'FAIL',
        typedSearchAttributes: [
          { key: SA_SESSION_ID, value: sessionId },
          { key: SA_OWNER, value: `${row.owner_type}:${row.owner_id}` },
          ...(row.org_id ? [{ key: SA_ORG, value: row.org_id }] : []),
          { key: SA_TRIGGER, value: row.trigger },
          { key: SA_STATUS, value: 'starting' },
        ],
      });
      return 'started';
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return 'already-started';
      throw err;
    }
  }

  private handle(sessionId: string) {
    return this.deps.client.workflow.getHandle(sessionWorkflowId(sessionId));
  }

  async prompt(sessionId: string, text: string, clientMessageId?: string) {
    return this.sendText(sessionId, 'prompt', text, (textRef) =>
      this.handle(sessionId).executeUpdate(promptUpdate, { args: [{ textRef, clientMessageId }] }),
    );
  }

  async approve(sessionId: string, requestId: string, decision: ApprovalDecision) {
    return this.handle(sessionId).executeUpdate(approvalUpdate, { args: [{ requestId, decision }] });
  }

  async answer(sessionId: string, requestId: string, answer: string) {
    return this.sendText(sessionId, 'answer', answer, (answerRef) =>
      this.handle(sessionId).executeUpdate(answerUpdate, { args: [{ requestId, answerRef }] }),
    );
  }

  /** Stores the text, hands its id to the workflow, and keeps nothing if the workflow refuses it. */
  private async sendText<T>(sessionId: string, kind: string, text: string, send: (ref: string) => Promise<T>): Promise<T> {
    // An ended session's workflow is closed: say so rather than "workflow execution already completed".
    if ((await getSession(this.deps.db, sessionId))?.status === 'ended') throw new Error('session has ended');
    const ref = await putText(this.deps.db, sessionId, kind, text);
    try {
      return await send(ref);
    } catch (err) {
      // Refused (validator) or no workflow to take it. Other errors (an RPC timeout) may hide an acceptance: keep it.
      if (err instanceof WorkflowUpdateFailedError || err instanceof WorkflowNotFoundError) {
        await deleteText(this.deps.db, ref).catch(() => undefined);
      }
      throw err;
    }
  }

  async interrupt(sessionId: string) {
    return this.handle(sessionId).executeUpdate(interruptUpdate);
  }

  async terminate(sessionId: string, reason: TerminateReason) {
    return this.handle(sessionId).executeUpdate(terminateUpdate, { args: [{ reason }] });
  }

  async status(sessionId: string) {
    return this.handle(sessionId).query(statusQuery);
  }

  async waitForEnd(sessionId: string) {
    return this.handle(sessionId).result();
  }
}

export { WorkflowUpdateFailedError };
