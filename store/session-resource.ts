import { sessionState, type SessionRow } from './sessions';

/**
 * The session as the API presents it (GET, lists, fork) and as org webhooks
 * deliver it: the reference's fields, then ours; `extra` adds usage figures or
 * the trigger rule.
 */
export function sessionResource(s: SessionRow, extra: Record<string, unknown> = {}) {
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    region: 'local',
    created_at: s.created_at,
    started_at: s.started_at,
    terminated_at: s.terminated_at,
    end_reason: s.end_reason,
    exit_code: s.exit_code,
    error_message: s.error_message,
    lc_auth_type: 'jwt',
    allowed_tools: s.profile.allowed_tools ?? [],
    denied_tools: s.profile.denied_tools ?? [],
    permission_mode: s.profile.permission_mode ?? 'acceptEdits',
    model: s.model,
    trigger: s.trigger,
    activity: s.activity,
    forked_from_session_id: s.forked_from_session_id,
    // Hibernated: still "Waiting" to the user (status running), with no sandbox until the next prompt.
    dormant: sessionState(s) === 'dormant',
    dormant_since: sessionState(s) === 'dormant' ? s.dormant_since : null,
    ...extra,
  };
}
