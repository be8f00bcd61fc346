import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../lib/log';

/** An error with its HTTP status and a machine-readable code; one middleware turns it into a response. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const badRequest = (message: string) => new AppError(400, 'invalid_request', message);
export const unauthorized = (message = 'missing or invalid bearer token') => new AppError(401, 'unauthorized', message);
export const forbidden = (message: string) => new AppError(403, 'forbidden', message);
export const notFound = (message: string) => new AppError(404, 'not_found', message);
export const conflict = (message: string, code = 'conflict') => new AppError(409, code, message);
export const tooMany = (message: string, retryAfterSeconds: number) =>
  new AppError(429, 'rate_limited', message, { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) });

export function errorMiddleware(log: Logger) {
  return (err: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof AppError) {
      res.set(err.headers).status(err.status).json({ error: { code: err.code, message: err.message } });
      return;
    }
    // body-parser's own errors: malformed JSON, a body over the limit.
    if (err.type === 'entity.parse.failed') {
      res.status(400).json({ error: { code: 'invalid_json', message: 'request body is not valid JSON' } });
      return;
    }
    if (err.type === 'entity.too.large') {
      res.status(413).json({ error: { code: 'too_large', message: 'request body is too large' } });
      return;
    }
    log.error({ err: err.message }, 'request failed');
    res.status(500).json({ error: { code: 'internal', message: 'internal error' } });
  };
}
