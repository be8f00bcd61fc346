import Anthropic from '@anthropic-ai/sdk';
import { ApplicationFailure } from '@temporalio/common';

/** What a model error means for the workflow: retried by policy, or the end of the session. */
export function classifyModelError(err: unknown): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof Anthropic.APIError) {
    const status = err.status;
    const message = `model API ${status ?? 'connection'} error: ${sanitize(err.message)}`;
    if (status === 401 || status === 403) {
      // Said in words first: the raw body alone leaves the user to spot "authentication_error" in JSON.
      const problem = status === 401 ? 'model API authentication failed: the credential was rejected' : 'model API permission denied for this credential';
      return ApplicationFailure.create({ type: 'ModelAuthError', message: `${problem} (${message})`, nonRetryable: true });
    }
    if (status === 400 || status === 404 || status === 413 || status === 422) {
      return ApplicationFailure.create({ type: 'ModelRequestError', message, nonRetryable: true });
    }
    // 408, 409, 429, 5xx, 529 and connection errors: transient, retried with backoff.
    return ApplicationFailure.create({
      type: 'ModelTransientError',
      message,
      nextRetryDelay: retryAfterMs(err.headers),
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return ApplicationFailure.create({ type: 'ModelTransientError', message: sanitize(message) });
}

function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = Number(headers?.get('retry-after-ms'));
  if (Number.isFinite(ms) && ms > 0) return Math.min(ms, 60_000);
  const s = Number(headers?.get('retry-after'));
  if (Number.isFinite(s) && s > 0) return Math.min(s * 1000, 60_000);
  return undefined;
}

/** A key may be echoed by a misbehaving proxy: never let one into a failure message. */
export function sanitize(text: string): string {
  return text.replace(/sk-ant-[A-Za-z0-9_-]+/g, 'sk-ant-[redacted]').slice(0, 2000);
}

export function modelClient(
  credential: { type: 'api_key' | 'oauth_token'; secret: string },
  baseURL: string | undefined,
): Anthropic {
  // Retries belong to the activity's retry policy, where they show in the Temporal UI.
  const common = { baseURL, maxRetries: 0 };
  return credential.type === 'api_key'
    ? new Anthropic({ ...common, apiKey: credential.secret, authToken: null })
    : // Claude account (OAuth) tokens are accepted by the Messages API only with this beta flag.
      new Anthropic({ ...common, apiKey: null, authToken: credential.secret, defaultHeaders: { 'anthropic-beta': OAUTH_BETA } });
}

const OAUTH_BETA = 'oauth-2025-04-20';

export const SYSTEM_PROMPT = [
  'You are a security operations agent working inside an isolated Linux sandbox.',
  'Your working directory is /workspace; files you create there persist for the session.',
  'Use the tools to investigate; report findings clearly and say what you could not verify.',
].join(' ');
