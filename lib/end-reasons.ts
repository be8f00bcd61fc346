/** Why a session ended: the reference's reasons plus the two limits it leaves unnamed. */
export const END_REASONS = [
  'completed',
  'failed',
  'job_completed',
  'user_requested',
  'org_api_requested',
  'max_duration_exceeded',
  'startup_timeout',
  'heartbeat_stale',
  'max_turns_reached',
  'max_budget_exceeded',
] as const;
export type EndReason = (typeof END_REASONS)[number];
