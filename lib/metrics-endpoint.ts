import type { RequestHandler } from 'express';
import type { Registry } from 'prom-client';
import { processRegistry, startProcessMetrics } from './metrics';
import { bearerToken, tokenMatcher } from './token-match';

/**
 * GET /metrics: the process's metrics, the given registries and any extra
 * exposition text (the Temporal SDK's), as one scrape. With a token set it
 * must come as the bearer token; without one the endpoint is open, as it holds
 * aggregates only (counts, latencies by model, tool and state).
 */
export function metricsHandler(p: {
  token?: string;
  registries: () => Registry[];
  extra?: () => Promise<string>;
}): RequestHandler {
  startProcessMetrics();
  const matches = tokenMatcher(p.token);
  return async (req, res) => {
    if (p.token && !matches(bearerToken(req.headers))) {
      res.status(401).json({ error: { code: 'unauthorized', message: 'missing or invalid metrics token' } });
      return;
    }
    const parts = await Promise.all([processRegistry, ...p.registries()].map((r) => r.metrics()));
    if (p.extra) parts.push(await p.extra());
    res.type(processRegistry.contentType).send(parts.filter(Boolean).join('\n'));
  };
}

/**
 * The text of a Prometheus endpoint on this host (the Temporal SDK's exporter),
 * or a comment saying why not: one missing source must not fail the whole scrape.
 */
export async function scrapeText(url: string): Promise<string> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return `# ${url}: HTTP ${res.status}\n`;
    return await res.text();
  } catch (err) {
    return `# ${url}: ${(err as Error).message}\n`;
  }
}
