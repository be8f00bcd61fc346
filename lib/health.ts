import type { RequestHandler } from 'express';
import type { Logger } from './log';
import { bearerToken, tokenMatcher } from './token-match';

/** One dependency check of /readyz (the gateway's and the worker's). */
export interface CheckResult {
  name: string;
  ok: boolean;
  ms?: number;
  /** A fixed code, safe for anyone to see. */
  code?: 'timeout' | 'unavailable';
  /** The dependency's own error text: user names, addresses, socket paths. Operators only. */
  error?: string;
}

const CHECK_TIMEOUT_MS = 3000;

class CheckTimeout extends Error {
  constructor() {
    super('timed out');
  }
}

/** Runs one dependency check with a timeout; a failure is reported, not thrown. */
export async function check(name: string, fn: () => Promise<unknown>): Promise<CheckResult> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([fn(), new Promise((_, reject) => (timer = setTimeout(() => reject(new CheckTimeout()), CHECK_TIMEOUT_MS)))]);
    return { name, ok: true, ms: Date.now() - started };
  } catch (err) {
    return { name, ok: false, ms: Date.now() - started, code: err instanceof CheckTimeout ? 'timeout' : 'unavailable', error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * GET /readyz: 200 when every check passed, 503 otherwise, each check by
 * name. Anyone gets ok and a fixed code per check; the error text is logged,
 * and shown only to a caller with the metrics token (when one is set).
 */
export function readyzHandler(p: { token?: string; log: Logger; checks: () => Array<Promise<CheckResult>> }): RequestHandler {
  const isOperator = tokenMatcher(p.token);
  return async (req, res) => {
    const results = await Promise.all(p.checks());
    for (const c of results) if (!c.ok) p.log.warn({ check: c.name, code: c.code, error: c.error }, 'readiness check failed');
    const detailed = isOperator(bearerToken(req.headers));
    const shown = (c: CheckResult) => (detailed ? c : c.ok ? { ok: true } : { ok: false, code: c.code });
    const ready = results.every((c) => c.ok);
    res.status(ready ? 200 : 503).json({ ready, checks: Object.fromEntries(results.map((c) => [c.name, shown(c)])) });
  };
}
