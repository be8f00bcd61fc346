import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config } from '../lib/config';
import { tooMany } from './errors';

/** The reference's per-user and per-session limits, counted in this gateway process. */
export function createRateLimits(limits: Config['limits']) {
  const window = Math.max(1, Math.round(limits.rateWindowSeconds));
  const limiter = (points: number) => new RateLimiterMemory({ points, duration: window });
  const registrations = limiter(limits.registrations);
  const sessionCreates = limiter(limits.sessionCreates);
  const prompts = limiter(limits.prompts);
  const uploads = limiter(limits.uploads);
  const take = async (l: RateLimiterMemory, key: string, what: string) => {
    try {
      await l.consume(key);
    } catch (err) {
      if (err instanceof RateLimiterRes) throw tooMany(`too many ${what}; try again later`, err.msBeforeNext / 1000);
      throw err;
    }
  };
  return {
    registration: (userId: string) => take(registrations, userId, 'registration requests'),
    sessionCreate: (userId: string) => take(sessionCreates, userId, 'session creations'),
    prompt: (sessionId: string) => take(prompts, sessionId, 'prompts for this session'),
    upload: (sessionId: string) => take(uploads, sessionId, 'uploads for this session'),
  };
}

export type RateLimits = ReturnType<typeof createRateLimits>;
