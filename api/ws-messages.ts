import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { AppError } from './errors';
import type { FileTransfer } from './ws';
import type { RateLimiterMemory } from 'rate-limiter-flexible';
import type { RawData } from 'ws';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import { getSession } from '../store/sessions';
import type { SessionService } from './session-service';
import { answerQuestion, approveTool } from './answers';

/**
 * Client → server frames of the session socket: `{ type, payload }`.
 *
 * Replies (server frames, same envelope as every other frame):
 *   prompt                      → prompt_ack { client_message_id, queued, position }
 *   interrupt                   → interrupt_ack { interrupted }
 *   heartbeat                   → heartbeat_ack {}
 *   tool_approval_response      → tool_approval_response_ack { request_id, decision, accepted }
 *   ask_user_question_response  → ask_user_question_response_ack { request_id, accepted }
 *   upload_request              → upload_url { request_id, upload_id, url, target_path, expires_at }
 *   upload_complete             → upload_complete_ack { request_id, success, path }
 *   download_request            → download_url { request_id, url, expires_at }
 * Anything malformed gets an `error` frame and the connection stays open. Error codes:
 *   invalid_message, rate_limited, session_not_running, request_not_pending, not_supported, internal_error.
 */

export interface ClientContext {
  sessionId: string;
  db: Db;
  service: SessionService;
  config: Config;
  log: Logger;
  /** Prompts per session per window (shared by every socket of this gateway). */
  promptLimiter: RateLimiterMemory;
  /** Set once the connection is authenticated. */
  userId?: string;
  files?: FileTransfer;
  reply(type: string, payload: Record<string, unknown>): void;
  error(code: string, message: string, extra?: Record<string, unknown>): void;
}

const DECISIONS = ['y', 'n', 'session'] as const;
const MAX_ID_LENGTH = 200;

class InvalidMessage extends Error {}

function decode(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function requiredString(payload: Record<string, unknown>, field: string, type: string): string {
  const v = payload[field];
  if (typeof v !== 'string' || v.trim() === '') throw new InvalidMessage(`${type}: payload.${field} must be a non-empty string`);
  return v;
}

function optionalId(payload: Record<string, unknown>, field: string, type: string): string | undefined {
  const v = payload[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '' || v.length > MAX_ID_LENGTH) {
    throw new InvalidMessage(`${type}: payload.${field} must be a string of 1 to ${MAX_ID_LENGTH} characters`);
  }
  return v;
}

export async function handleClientMessage(ctx: ClientContext, data: RawData, isBinary: boolean): Promise<void> {
  if (isBinary) {
    ctx.error('invalid_message', 'binary frames are not accepted: send JSON text frames');
    return;
  }
  let msg: unknown;
  try {
    msg = JSON.parse(decode(data));
  } catch {
    ctx.error('invalid_message', 'the message is not valid JSON');
    return;
  }
  if (!isObject(msg) || typeof msg.type !== 'string' || msg.type === '') {
    ctx.error('invalid_message', 'a message must be a JSON object with a string "type"');
    return;
  }
  const type = msg.type;
  if (msg.payload !== undefined && msg.payload !== null && !isObject(msg.payload)) {
    ctx.error('invalid_message', `${type.slice(0, 64)}: payload must be a JSON object`);
    return;
  }
  const payload = (msg.payload ?? {}) as Record<string, unknown>;
  // Echoed on errors so a client can match them to what it sent.
  const extra: Record<string, unknown> = { in_reply_to: type.slice(0, 64) };
  if (typeof payload.request_id === 'string') extra.request_id = payload.request_id.slice(0, MAX_ID_LENGTH);
  if (typeof payload.client_message_id === 'string') extra.client_message_id = payload.client_message_id.slice(0, MAX_ID_LENGTH);

  try {
    await dispatch(ctx, type, payload, extra);
  } catch (err) {
    if (err instanceof InvalidMessage) {
      ctx.error('invalid_message', err.message, extra);
      return;
    }
    await reportFailure(ctx, err, extra);
  }
}

async function dispatch(ctx: ClientContext, type: string, payload: Record<string, unknown>, extra: Record<string, unknown>) {
  const { service, sessionId } = ctx;
  switch (type) {
    case 'heartbeat':
      ctx.reply('heartbeat_ack', {});
      return;
    case 'prompt': {
      const text = requiredString(payload, 'text', type);
      const clientMessageId = optionalId(payload, 'client_message_id', type);
      try {
        await ctx.promptLimiter.consume(sessionId);
      } catch (res) {
        if (res instanceof Error) throw res;
        const { prompts, rateWindowSeconds } = ctx.config.limits;
        ctx.error('rate_limited', `more than ${prompts} prompts in ${rateWindowSeconds} s on this session`, extra);
        return;
      }
      const r = await service.prompt(sessionId, text, clientMessageId);
      ctx.reply('prompt_ack', { client_message_id: clientMessageId ?? null, queued: r.queued, position: r.position });
      return;
    }
    case 'interrupt': {
      const r = await service.interrupt(sessionId);
      ctx.reply('interrupt_ack', { interrupted: r.interrupted });
      return;
    }
    case 'tool_approval_response': {
      const requestId = requiredString(payload, 'request_id', type);
      const decision = payload.decision;
      if (typeof decision !== 'string' || !(DECISIONS as readonly string[]).includes(decision)) {
        throw new InvalidMessage(`${type}: payload.decision must be one of y, n, session`);
      }
      const r = await approveTool(ctx, { userId: ctx.userId, sessionId, requestId, decision: decision as (typeof DECISIONS)[number], via: 'websocket' });
      ctx.reply('tool_approval_response_ack', { request_id: requestId, decision, accepted: r.accepted });
      return;
    }
    case 'ask_user_question_response': {
      const requestId = requiredString(payload, 'request_id', type);
      const answer = requiredString(payload, 'answer', type);
      const r = await answerQuestion(ctx, { userId: ctx.userId, sessionId, requestId, answer, via: 'websocket' });
      ctx.reply('ask_user_question_response_ack', { request_id: requestId, accepted: r.accepted });
      return;
    }
    case 'upload_request':
    case 'upload_complete':
    case 'download_request':
      await handleFileFrame(ctx, type, payload, extra);
      return;
    default:
      ctx.error('invalid_message', `unknown message type "${type.slice(0, 64)}"`, extra);
  }
}

/** Uploads and downloads: the same logic as the REST endpoints, answered in the reference's frames. */
async function handleFileFrame(ctx: ClientContext, type: string, payload: Record<string, unknown>, extra: Record<string, unknown>) {
  if (!ctx.files || !ctx.userId) {
    ctx.error('not_supported', `${type} is not available on this gateway`, extra);
    return;
  }
  const { request_id: _requestId, ...body } = payload;
  const ids = extra.request_id !== undefined ? { request_id: extra.request_id } : {};
  try {
    if (type === 'upload_request') {
      const t = await ctx.files.upload(ctx.userId, ctx.sessionId, body);
      ctx.reply('upload_url', { ...ids, upload_id: t.upload_id, url: t.upload_url, target_path: t.target_path, expires_at: t.expires_at });
    } else if (type === 'upload_complete') {
      const done = await ctx.files.complete(ctx.userId, ctx.sessionId, body);
      ctx.reply('upload_complete_ack', { ...ids, success: done.success, path: done.path });
    } else {
      const d = await ctx.files.download(ctx.userId, ctx.sessionId, body);
      ctx.reply('download_url', { ...ids, url: d.download_url, expires_at: d.expires_at });
    }
  } catch (err) {
    if (err instanceof AppError) ctx.error(err.code, err.message, extra);
    else await reportFailure(ctx, err, extra);
  }
}

/** A refusal from the workflow or the service, told to the client in its own terms. */
async function reportFailure(ctx: ClientContext, err: unknown, extra: Record<string, unknown>): Promise<void> {
  const cause = err instanceof WorkflowUpdateFailedError ? (err.cause as Error | undefined)?.message ?? err.message : undefined;
  const message = cause ?? (err as Error)?.message ?? String(err);
  if (/session has ended/.test(message) || err instanceof WorkflowNotFoundError) {
    ctx.error('session_not_running', 'the session has ended', extra);
    return;
  }
  if (cause !== undefined) {
    // The workflow's validator refused it: an answer to a request that is no longer open, or a bad value.
    const code = /no pending (approval|question)/.test(cause) ? 'request_not_pending' : 'invalid_message';
    ctx.error(code, cause, extra);
    return;
  }
  const session = await getSession(ctx.db, ctx.sessionId).catch(() => undefined);
  if (session?.status === 'ended') {
    ctx.error('session_not_running', 'the session has ended', extra);
    return;
  }
  ctx.log.error({ sessionId: ctx.sessionId, type: extra.in_reply_to, err: message }, 'socket message failed');
  ctx.error('internal_error', 'the message could not be handled', extra);
}
