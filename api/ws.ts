import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import { DELTAS_CHANNEL, EVENTS_CHANNEL, type TextDelta } from '../store/events';
import type { Authenticator } from './auth';
import type { SessionService } from './session-service';
import { SessionSocket, type Limiters, type Registry } from './ws-connection';

/**
 * The session WebSocket (api-reference "WebSocket Protocol"): replay of stored
 * events, then live ones, in seq order, each once; streamed text as
 * `assistant_delta` frames (not stored, no seq); client messages in ws-messages.ts.
 *
 * Close codes: 4001 bad or missing token, 4003 not the owner (org-owned sessions
 * too, for now), 4004 no such session, 4100 session ended (after its session_end
 * frame), 4101 connection reset — used for an idle client (no pong, no message for
 * config.ws.idleSeconds) and a client too slow to read; it may reconnect with
 * `?since=<last seq>` — 4500 internal error, 1008 an invalid `?since`, 1009 a
 * message over config.ws.maxMessageBytes (the ws library), 1001 gateway shutdown.
 */

export interface SocketDeps {
  db: Db;
  service: SessionService;
  config: Config;
  log: Logger;
  auth: Authenticator;
  /** File transfer (api/files.ts) for the upload and download frames; absent means not offered. */
  files?: FileTransfer;
}

export interface FileTransfer {
  upload(userId: string, sessionId: string, body: unknown): Promise<{ upload_url: string; upload_id: string; target_path: string; expires_at: string }>;
  complete(userId: string, sessionId: string, body: unknown): Promise<{ success: true; path: string }>;
  download(userId: string, sessionId: string, body: unknown): Promise<{ download_url: string; expires_at: string }>;
}

/** Owner endpoints (a user's JWT, interactive) and the org endpoint (an org API key, read-only, as cli.md has it). */
const SESSION_PATHS: Array<[RegExp, 'owner' | 'org']> = [
  [/^\/v1\/sessions\/([^/]+)\/ws$/, 'owner'],
  [/^\/v1\/ws\/sessions\/([^/]+)$/, 'owner'],
  [/^\/v1\/ws\/org\/sessions\/([^/]+)$/, 'org'],
];

function sessionIdOf(pathname: string): { sessionId: string; mode: 'owner' | 'org' } | undefined {
  for (const [re, mode] of SESSION_PATHS) {
    const m = re.exec(pathname);
    if (m) {
      try {
        return { sessionId: decodeURIComponent(m[1]), mode };
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function refuse(socket: Duplex, status: number, text: string) {
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export function attachSessionSockets(server: http.Server, deps: SocketDeps): { close(): Promise<void>; clients(): number } {
  const { db, config, log } = deps;
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.ws.maxMessageBytes, clientTracking: false });
  const sockets = new Set<SessionSocket>();
  const bySession = new Map<string, Set<SessionSocket>>();
  const limiters: Limiters = {
    messages: new RateLimiterMemory({ points: config.ws.messagesPerSecond, duration: 1 }),
    prompts: new RateLimiterMemory({ points: config.limits.prompts, duration: config.limits.rateWindowSeconds }),
  };
  let closed = false;

  // One LISTEN per channel for the whole gateway, fanned out by session id.
  const forSession = (sessionId: unknown) => (typeof sessionId === 'string' ? bySession.get(sessionId) : undefined) ?? [];
  const onEvent = (raw: string) => {
    try {
      const n = JSON.parse(raw) as { session_id?: string; seq?: number };
      for (const s of forSession(n.session_id)) s.notify(Number(n.seq));
    } catch {
      log.warn('unreadable event notification');
    }
  };
  const onDelta = (raw: string) => {
    try {
      const d = JSON.parse(raw) as TextDelta;
      for (const s of forSession(d.session_id)) s.delta(d);
    } catch {
      log.warn('unreadable delta notification');
    }
  };
  let subscription: Promise<Array<() => Promise<void>>> | undefined;
  const subscribe = () => {
    if (closed) return Promise.reject(new Error('the socket gateway is closed'));
    subscription ??= (async () => {
      const settled = await Promise.allSettled([db.listen(EVENTS_CHANNEL, onEvent), db.listen(DELTAS_CHANNEL, onDelta)]);
      const ok = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        // Keep no half subscription: the next connection tries both again.
        await Promise.all(ok.map((u) => u().catch(() => undefined)));
        subscription = undefined;
        throw failed.reason;
      }
      return ok;
    })();
    return subscription;
  };
  subscribe().catch((err) => log.error({ err: (err as Error).message }, 'socket gateway could not LISTEN; will retry'));

  const registry: Registry = {
    add(s: SessionSocket) {
      let set = bySession.get(s.sessionId);
      if (!set) bySession.set(s.sessionId, (set = new Set()));
      set.add(s);
    },
    remove(s: SessionSocket) {
      sockets.delete(s);
      const set = bySession.get(s.sessionId);
      set?.delete(s);
      if (set?.size === 0) bySession.delete(s.sessionId);
    },
  };

  const pingMs = config.ws.pingSeconds * 1000;
  const idleMs = config.ws.idleSeconds * 1000;
  // Pings keep proxies from dropping the connection; each tick also re-reads the store in case a
  // notification was lost (a dropped LISTEN connection), so a socket never stalls for long.
  const pinger = setInterval(() => {
    for (const s of sockets) s.ping();
  }, pingMs);
  const idleCheck = setInterval(() => {
    const now = Date.now();
    for (const s of sockets) if (now - s.lastActivity > idleMs) s.closeWith(4101, 'idle timeout');
  }, Math.max(50, idleMs / 4));

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://gateway.invalid');
    } catch {
      return refuse(socket, 400, 'Bad Request');
    }
    const target = sessionIdOf(url.pathname);
    if (closed) return refuse(socket, 503, 'Service Unavailable');
    if (target === undefined) return refuse(socket, 404, 'Not Found');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const s = new SessionSocket(ws, target.sessionId, deps, limiters, registry, subscribe, target.mode);
      sockets.add(s);
      s.start(req, url).catch(() => undefined);
    });
  };
  server.on('upgrade', onUpgrade);

  let closing: Promise<void> | undefined;
  return {
    clients: () => sockets.size,
    close() {
      closing ??= (async () => {
        closed = true;
        clearInterval(pinger);
        clearInterval(idleCheck);
        server.off('upgrade', onUpgrade);
        await Promise.all([...sockets].map((s) => s.shutdown()));
        const unsubscribe = await subscription?.catch(() => []);
        await Promise.all((unsubscribe ?? []).map((u) => u().catch(() => undefined)));
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      })();
      return closing;
    },
  };
}
