import { randomUUID } from 'node:crypto';
import { Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Config } from '../lib/config';
import { imageProblem } from '../lib/runner-images';
import { badRequest } from './errors';
import type { Db, Queryable } from '../store/db';
import type { Keyring } from '../store/encryption';
import { deleteText, getSession, putText } from '../store/sessions';
import { recordSession, sessionInputFor, type NewSessionParams } from '../store/session-input';
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

export type StartSessionParams = NewSessionParams;

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
    // Before anything is stored: a session on an image the operator has not allowed is never recorded.
    const problem = imageProblem(p.profile.image, this.deps.config);
    if (problem) throw badRequest(problem);
    return recordSession(tx, this.deps.keyring, this.deps.config, { ...p, sessionId: p.sessionId ?? randomUUID() });
  }

  /**
   * Starts the workflow of a recorded session, everything read back from the
   * store. Idempotent: a workflow that already exists is left as it is.
   */
  async launch(sessionId: string): Promise<'started' | 'already-started'> {
    const { db, client, config } = this.deps;
    const { input, workflowId, searchOwner, orgId, trigger } = await sessionInputFor(db, config, sessionId);
    try {
      await client.workflow.start('sessionWorkflow', {
        args: [input],
        workflowId,
        taskQueue: config.temporal.taskQueue,
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        workflowIdConflictPolicy: 'FAIL',
        typedSearchAttributes: [
          { key: SA_SESSION_ID, value: sessionId },
          { key: SA_OWNER, value: searchOwner },
          ...(orgId ? [{ key: SA_ORG, value: orgId }] : []),
          { key: SA_TRIGGER, value: trigger },
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
