import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Messages into a running session, shared by the workflow and its callers.
 * Text travels as a reference to the store (claim check), never inline.
 */
export type ApprovalDecision = 'y' | 'n' | 'session';
export type TerminateReason = 'user_requested' | 'org_api_requested';

export interface PromptInput {
  textRef: string;
  /** The caller's id for this message; a resend with the same id is not queued twice. */
  clientMessageId?: string;
}
export const promptUpdate = defineUpdate<{ queued: boolean; position: number }, [PromptInput]>('prompt');
export const interruptUpdate = defineUpdate<{ interrupted: boolean }, []>('interrupt');
export const terminateUpdate = defineUpdate<{ terminated: boolean }, [{ reason: TerminateReason }]>('terminate');
export const approvalUpdate = defineUpdate<{ accepted: boolean }, [{ requestId: string; decision: ApprovalDecision }]>(
  'approve',
);
export const answerUpdate = defineUpdate<{ accepted: boolean }, [{ requestId: string; answerRef: string }]>('answer');

/** File transfer: ids of bytes waiting in the blob area and paths, never the bytes (workflows/files.ts). */
export interface PlaceFileInput {
  uploadId: string;
  filename: string;
}
export interface ExportFileInput {
  downloadId: string;
  path: string;
  maxBytes: number;
}
export const placeFileUpdate = defineUpdate<{ path: string; size: number }, [PlaceFileInput]>('placeFile');
export const exportFileUpdate = defineUpdate<{ path: string; size: number }, [ExportFileInput]>('exportFile');

export interface PendingRequest {
  kind: 'approval' | 'question';
  requestId: string;
  toolName: string;
  expiresAt: string;
}

export interface SessionStatus {
  status: 'starting' | 'running' | 'ended';
  activity: string;
  turns: number;
  costUsd: number;
  queuedPrompts: number;
  pending?: PendingRequest;
  endReason?: string;
}
export const statusQuery = defineQuery<SessionStatus>('status');

/** Custom search attributes, registered on the server at start, for filtering runs in the Web UI. */
export const SA_SESSION_ID = defineSearchAttributeKey('AiSessionId', SearchAttributeType.KEYWORD);
export const SA_OWNER = defineSearchAttributeKey('AiOwner', SearchAttributeType.KEYWORD);
export const SA_ORG = defineSearchAttributeKey('AiOrg', SearchAttributeType.KEYWORD);
export const SA_TRIGGER = defineSearchAttributeKey('AiTrigger', SearchAttributeType.KEYWORD);
export const SA_STATUS = defineSearchAttributeKey('AiStatus', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = { AiSessionId: 'Keyword', AiOwner: 'Keyword', AiOrg: 'Keyword', AiTrigger: 'Keyword', AiStatus: 'Keyword' } as const;

export const sessionWorkflowId = (sessionId: string) => `session-${sessionId}`;
/** The session a queued D&R request becomes: fixed in advance, so an idempotent_key can be claimed for it. */
export const pendingSessionId = (pendingId: string) => `${pendingId}-s`;
export const pendingIdOf = (sessionId: string) => (/^dbq_[0-9a-f-]{36}-s$/.test(sessionId) ? sessionId.slice(0, -2) : undefined);
export const outputDeliveryWorkflowId = (sessionId: string, round = 0) => `outputs-${sessionId}${round ? `-r${round}` : ''}`;
export const sandboxTaskQueue = (baseQueue: string, hostId: string) => `${baseQueue}.sandbox.${hostId}`;
export const SEARCH_ATTRIBUTE_KEYS = [SA_SESSION_ID, SA_OWNER, SA_ORG, SA_TRIGGER, SA_STATUS];

/** A request queued behind a debounce key: the id of its stored launch (dr_pending). */
export const debounceRequestSignal = defineSignal<[{ pendingId: string }]>('debounceRequest');
export const debounceWorkflowId = (orgId: string, keyHash: string) => `debounce-${orgId}-${keyHash}`;

/** The reaper's schedule (and the prefix of its runs' ids), one per deployment: namespace and shared queue. */
export const reaperScheduleId = (taskQueue: string) => `reaper-${taskQueue}`;
