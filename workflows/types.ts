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
  taskQueue: string;
  timings: SessionTimings;
}

/** What survives continue-as-new. */
export interface SessionState {
  startedAtMs: number;
  sandbox?: { containerId: string; createdAt: string; hostId: string };
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

