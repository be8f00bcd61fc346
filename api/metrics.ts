import { Gauge, Registry } from 'prom-client';
import type { Db } from '../store/db';
import { countSessionsByState } from '../store/sessions';

const WAITING = { waiting_approval: 'approval', waiting_answer: 'question' } as const;

/**
 * The gateway's gauges, read at scrape time: sessions by state and pending
 * approvals from the store (shared by every gateway, so each reports the same
 * totals), and this gateway's own WebSocket clients.
 */
export function gatewayRegistry(p: { db: Db; wsClients: () => number }): Registry {
  const registry = new Registry();
  new Gauge({
    name: 'ai_sessions_sessions',
    help: 'Sessions in the store by state (starting, running, dormant, ended; deleted records excluded)',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      for (const [state, n] of await countSessionsByState(p.db)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'ai_sessions_approvals_pending',
    help: 'Running sessions waiting for a person, by kind (approval: a tool call; question: AskUserQuestion)',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      const { rows } = await p.db.query<{ activity: keyof typeof WAITING; n: string }>(
        `SELECT activity, count(*) AS n FROM sessions WHERE status = 'running' AND activity = ANY($1) GROUP BY activity`,
        [Object.keys(WAITING)],
      );
      for (const [activity, kind] of Object.entries(WAITING)) this.set({ kind }, Number(rows.find((r) => r.activity === activity)?.n ?? 0));
    },
  });
  new Gauge({
    name: 'ai_sessions_ws_clients',
    help: 'WebSocket clients connected to this gateway',
    registers: [registry],
    collect() {
      this.set(p.wsClients());
    },
  });
  return registry;
}
