import type { PermissionRules } from '../lib/permissions';
import type { EndReason } from '../lib/end-reasons';

export interface SessionTimings {
  billingSeconds: number;
  approvalTimeoutSeconds: number;
  startupTimeoutSeconds: number;
  maxTtlSeconds: number;
  sandboxCheckSeconds: number;
  modelCallTimeoutSeconds: number;
  /** How soon a silent activity counts as lost (a killed worker): short in tests. */
  heartbeatSeconds: number;
  /** The longest a tool may run (Bash's maximum timeout). */
  toolMaxSeconds: number;
  /** Idle this long, a user session hibernates; 0 or absent (a run started before hibernation existed) never. */
  hibernateIdleSeconds?: number;
}

/** Workflow input: policy and references only. Prompts, profile secrets and keys stay in the store. */
export interface SessionInput {
  sessionId: string;
  owner: { type: 'user' | 'org'; id: string; orgId?: string };
  trigger: 'user' | 'dr';
  /** The stored model credential the activities decrypt; never the key itself. */
  credentialRef: string;
  rules: PermissionRules;
  limits: { maxTurns?: number; maxBudgetUsd?: number; ttlSeconds?: number; oneShot: boolean };
  initialPromptRef?: string;
  /** A fork of an archived session: its copy of the source's archive goes into the first sandbox. */
  restoreWorkspace?: boolean;
  taskQueue: string;
  timings: SessionTimings;
}

/** What survives continue-as-new. */
export interface SessionState {
  startedAtMs: number;
  /** billingStart: where period 0 would have begun, so a resumed sandbox's periods continue the numbering. */
  sandbox?: { containerId: string; createdAt: string; hostId: string; billingStart?: string };
  /** Hibernated: no sandbox, the workspace in the archive store until the next prompt. */
  dormant?: boolean;
  /** The next sandbox gets the session's archive unpacked into it (after hibernation, or a fork's first). */
  restorePending?: boolean;
  billedThrough: number;
  turns: number;
  costUsd: number;
  promptCount: number;
  queue: Array<{ textRef: string; promptKey: string }>;
  sessionPatterns: string[];
  recentClientMessageIds: string[];
}

export interface SessionOutcome {
  endReason: EndReason;
  errorMessage?: string;
}

