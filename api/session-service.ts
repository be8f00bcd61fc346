import { randomUUID } from 'node:crypto';
import { Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Config } from '../lib/config';
import type { Db } from '../store/db';
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
    const { db, client, config } = this.deps;
    const sessionId = p.sessionId ?? randomUUID();
    const workflowId = sessionWorkflowId(sessionId);
    const model = p.profile.model ?? config.model.defaultModel;
    const oneShot = p.profile.one_shot ?? p.trigger === 'dr';
    let initialPromptRef: string | undefined;
    await db.transaction(async (tx) => {
      await createSession(tx, this.deps.keyring, {
        id: sessionId,
        ownerType: p.ownerType,
        ownerId: p.ownerId,
        orgId: p.orgId,
        trigger: p.trigger,
        name: p.name,
        model,
        profile: p.profile,
        credentialId: p.credentialId,
        workflowId,
      });
      if (p.initialPrompt !== undefined) initialPromptRef = await putText(tx, sessionId, 'prompt', p.initialPrompt);
    });
    const input: SessionInput = {
      sessionId,
      owner: { type: p.ownerType, id: p.ownerId, ...(p.orgId ? { orgId: p.orgId } : {}) },
      trigger: p.trigger,
      credentialRef: p.credentialId,
      rules: permissionRules(p.profile, p.trigger),
      limits: {
        maxTurns: p.profile.max_turns,
        maxBudgetUsd: p.profile.max_budget_usd,
        ttlSeconds: p.profile.ttl_seconds,
        oneShot,
      },
      initialPromptRef,
      taskQueue: config.temporal.taskQueue,
      timings: { ...config.periods, toolMaxSeconds: config.tools.maxTimeoutSeconds },
    };
    await client.workflow.start('sessionWorkflow', {
      args: [input],
      workflowId,
      taskQueue: config.temporal.taskQueue,
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      workflowIdConflictPolicy: 'FAIL',
      typedSearchAttributes: [
        { key: SA_SESSION_ID, value: sessionId },
        { key: SA_OWNER, value: `${p.ownerType}:${p.ownerId}` },
        ...(p.orgId ? [{ key: SA_ORG, value: p.orgId }] : []),
        { key: SA_TRIGGER, value: p.trigger },
        { key: SA_STATUS, value: 'starting' },
      ],
    });
    return { sessionId, workflowId };
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
