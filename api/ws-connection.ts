import type http from 'node:http';
import { randomUUID } from 'node:crypto';
import { WebSocket, type RawData } from 'ws';
import type { RateLimiterMemory } from 'rate-limiter-flexible';
import { listEvents, type StoredEvent, type TextDelta } from '../store/events';
import { getSession } from '../store/sessions';
import { bearerToken } from './auth';
import { handleClientMessage, type ClientContext } from './ws-messages';
import { orgForKey } from '../store/orgs';
import { latestRequestEvent, replayBounds, sessionEndEvent } from './ws-replay';
import type { SocketDeps } from './ws';

/** Above this many unsent bytes the socket waits for the client to read before sending more. */
const SOFT_BUFFER_BYTES = 1024 * 1024;
/** Beyond this the client is not keeping up: close rather than buffer without bound. */
const HARD_BUFFER_BYTES = 4 * 1024 * 1024;
const MAX_QUEUED_TASKS = 10_000;
const PAGE = 500;
/** A close handshake the client does not finish in this time ends with the TCP connection. */
const CLOSE_GRACE_MS = 2000;
/** A session marked ended whose session_end is not stored yet: wait this long before closing anyway. */
const END_WAIT_MS = 10_000;
const STATUS_QUERY_TIMEOUT_MS = 5000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Limiters {
  /** Messages per connection per second. */
  messages: RateLimiterMemory;
  /** Prompts per session per window. */
  prompts: RateLimiterMemory;
}

export interface Registry {
  add(s: SessionSocket): void;
  remove(s: SessionSocket): void;
}

/** One client connection to one session. Everything it sends goes through one queue, in order. */
export class SessionSocket {
  readonly id = randomUUID();
  lastActivity = Date.now();
  private lastSeq = 0;
  /** Replay done: live frames (deltas) may go out. */
  private live = false;
  private closing = false;
  private closed = false;
  private endSent = false;
  private out: Promise<void> = Promise.resolve();
  private queued = 0;
  /** The queued, not yet started, read of new events; notifications extend it rather than queue more. */
  private pendingFlush?: { upTo: number };
  private readyResolve!: (ok: boolean) => void;
  private readonly ready = new Promise<boolean>((r) => (this.readyResolve = r));
  private inbound: Promise<void> = Promise.resolve();
  private readonly closedPromise: Promise<void>;
  private readonly client: ClientContext;

  constructor(
    private readonly ws: WebSocket,
    readonly sessionId: string,
    private readonly deps: SocketDeps,
    private readonly limiters: Limiters,
    private readonly registry: Registry,
    private readonly subscribe: () => Promise<unknown>,
    /** 'org': authenticated by an org API key, read-only. */
    private readonly mode: 'owner' | 'org' = 'owner',
  ) {
    this.client = {
      sessionId,
      db: deps.db,
      service: deps.service,
      config: deps.config,
      log: deps.log,
      promptLimiter: limiters.prompts,
      files: deps.files,
      reply: (type, payload) => this.send(type, payload),
      error: (code, message, extra) => this.send('error', { code, message, ...extra }),
    };
    this.closedPromise = new Promise((resolve) => ws.once('close', () => resolve()));
    ws.on('close', (code) => {
      this.closed = this.closing = true;
      this.readyResolve(false);
      this.registry.remove(this);
      deps.log.debug({ sessionId, code }, 'session socket closed');
    });
    // Protocol errors (a message over maxPayload: the library closes with 1009) end up in 'close'.
    ws.on('error', (err) => deps.log.debug({ sessionId, err: err.message }, 'session socket error'));
    ws.on('pong', () => (this.lastActivity = Date.now()));
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
  }

  async start(req: http.IncomingMessage, url: URL): Promise<void> {
    this.enqueue(() => this.setup(req, url));
    await this.out;
  }

  private async setup(req: http.IncomingMessage, url: URL) {
    const { db, auth, log, config } = this.deps;
    // The path only: a `?token=` must never reach a log line.
    const refuse = (code: number, reason: string) => {
      log.info({ sessionId: this.sessionId, path: url.pathname, code, reason }, 'session socket refused');
      this.closeWith(code, reason);
    };
    const token = bearerToken(req.headers, url);
    if (!token) return refuse(4001, 'missing token');
    const owner = this.mode === 'org'
      ? await orgForKey(db, token).then((orgId) => orgId && { type: 'org', id: orgId })
      : await auth.verify(token).then((p) => ({ type: 'user', id: p.userId }), () => undefined);
    if (!owner) return refuse(4001, 'invalid token');
    if (owner.type === 'user') this.client.userId = owner.id;
    const sinceRaw = url.searchParams.get('since');
    let since: number | undefined;
    if (sinceRaw !== null) {
      since = /^\d{1,15}$/.test(sinceRaw) ? Number(sinceRaw) : undefined;
      if (since === undefined) {
        this.send('error', { code: 'invalid_message', message: 'since must be a non-negative integer (an event seq)' });
        return refuse(1008, 'invalid since');
      }
    }
    const session = await getSession(db, this.sessionId);
    if (!session || session.deleted_at) return refuse(4004, 'session not found');
    if (session.owner_type !== owner.type || session.owner_id !== owner.id) {
      return refuse(4003, 'session belongs to another owner');
    }
    // As the reference has it, a connection is for a running session: poll GET until then.
    if (session.status === 'starting') return refuse(4009, 'session is not running yet');
    await this.subscribe();
    if (this.closing) return;
    // Registered before reading, so nothing committed after the read is missed.
    this.registry.add(this);
    log.info({ sessionId: this.sessionId, owner: `${owner.type}:${owner.id}`, path: url.pathname, since }, 'session socket attached');

    const bounds = await replayBounds(db, this.sessionId, config.ws.replaySeconds);
    const start = since !== undefined ? Math.min(since, bounds.last) : bounds.first !== null ? bounds.first - 1 : bounds.last;
    // A late joiner sees the open approval or question even when it is older than the window.
    if (since === undefined && session.status !== 'ended') {
      const request = await this.openRequestBefore(start);
      if (request) await this.sendEvent(request);
    }
    this.lastSeq = Math.max(this.lastSeq, start);
    await this.flush(Infinity);
    if (session.status === 'ended' && !this.endSent && !this.closing) {
      // The session_end is sent even when outside the window (or before `since`), then 4100.
      const end = await sessionEndEvent(db, this.sessionId);
      if (end) await this.sendEvent(end);
      else setTimeout(() => this.enqueue(() => this.sendStoredEndOrClose()), END_WAIT_MS).unref();
    }
    this.live = !this.closing;
    this.readyResolve(this.live);
  }

  private async openRequestBefore(seq: number): Promise<StoredEvent | undefined> {
    const request = await latestRequestEvent(this.deps.db, this.sessionId, seq);
    if (!request) return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const status = await Promise.race([
        this.deps.service.status(this.sessionId),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('status query timed out')), STATUS_QUERY_TIMEOUT_MS))),
      ]);
      return status.pending?.requestId === request.payload.request_id ? request : undefined;
    } catch (err) {
      this.deps.log.warn({ sessionId: this.sessionId, err: (err as Error).message }, 'no status for the pending request replay');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  private async sendStoredEndOrClose() {
    if (this.endSent) return;
    const end = await sessionEndEvent(this.deps.db, this.sessionId);
    if (end) await this.sendEvent(end);
    else this.closeWith(4100, 'session ended');
  }

  /** A stored event was committed: read what follows the last one sent, up to it. */
  notify(seq: number) {
    if (!Number.isFinite(seq) || seq <= this.lastSeq) return;
    if (this.pendingFlush) {
      this.pendingFlush.upTo = Math.max(this.pendingFlush.upTo, seq);
      return;
    }
    const flush = { upTo: seq };
    this.pendingFlush = flush;
    this.enqueue(async () => {
      if (this.pendingFlush === flush) this.pendingFlush = undefined;
      await this.flush(flush.upTo);
    });
  }

  delta(d: TextDelta) {
    if (!this.live) return; // During replay: the complete assistant event comes anyway.
    // Events notified after this delta are read after it is sent, so text never trails its message.
    this.pendingFlush = undefined;
    const payload = { message_key: d.message_key, block_index: d.block_index, attempt: d.attempt, text: d.text };
    this.enqueue(async () => {
      this.send('assistant_delta', payload);
      await this.drain();
    });
  }

  ping() {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.ping();
    if (this.live && !this.pendingFlush) this.notify(Infinity);
  }

  /** Sends the stored events after lastSeq with seq <= upTo, in order. */
  private async flush(upTo: number) {
    for (;;) {
      const rows = await listEvents(this.deps.db, this.sessionId, { afterSeq: this.lastSeq, limit: PAGE });
      for (const e of rows) {
        if (e.seq > upTo || this.closing) return;
        await this.sendEvent(e);
      }
      if (rows.length < PAGE) return;
    }
  }

  private async sendEvent(e: StoredEvent) {
    if (this.closing) return;
    this.frame({ type: e.type, timestamp: e.created_at, session_id: this.sessionId, seq: e.seq, payload: e.payload });
    this.lastSeq = Math.max(this.lastSeq, e.seq);
    if (e.type === 'session_end') {
      this.endSent = true;
      this.closeWith(4100, 'session ended');
      return;
    }
    await this.drain();
  }

  private send(type: string, payload: Record<string, unknown>) {
    this.frame({ type, timestamp: new Date().toISOString(), session_id: this.sessionId, payload });
  }

  private frame(f: Record<string, unknown>) {
    if (this.ws.readyState !== WebSocket.OPEN || this.closing) return;
    this.ws.send(JSON.stringify(f));
  }

  /** Backpressure: wait while the client is behind; a client that stays behind is closed (4101). */
  private async drain() {
    const started = Date.now();
    while (!this.closing && this.ws.bufferedAmount > SOFT_BUFFER_BYTES) {
      if (this.ws.bufferedAmount > HARD_BUFFER_BYTES || Date.now() - started > this.deps.config.ws.idleSeconds * 1000) {
        this.closeWith(4101, 'client too slow');
        return;
      }
      await sleep(25);
    }
  }

  private enqueue(task: () => Promise<void>) {
    if (this.closing) return;
    if (++this.queued > MAX_QUEUED_TASKS) {
      this.closeWith(4101, 'client too slow');
      return;
    }
    this.out = this.out
      .then(async () => {
        this.queued -= 1;
        if (!this.closing) await task();
      })
      .catch((err: Error) => {
        if (this.closing) return;
        this.deps.log.error({ sessionId: this.sessionId, err: err.message }, 'session socket failed');
        this.closeWith(4500, 'internal error');
      });
  }

  private onMessage(data: RawData, isBinary: boolean) {
    this.lastActivity = Date.now();
    // Counted on arrival; handled in arrival order once the replay is done.
    const allowed = this.limiters.messages.consume(this.id).then(
      () => true,
      (res: unknown) => {
        if (res instanceof Error) throw res;
        return false;
      },
    );
    this.inbound = this.inbound
      .then(async () => {
        if (!(await this.ready) || this.closing) return;
        if (!(await allowed)) {
          this.client.error('rate_limited', `more than ${this.deps.config.ws.messagesPerSecond} messages per second`);
          return;
        }
        if (this.mode === 'org' && !isHeartbeat(data)) {
          this.client.error('read_only', 'the org endpoint is read-only: it accepts heartbeats only');
          return;
        }
        await handleClientMessage(this.client, data, isBinary);
      })
      .catch((err: Error) => {
        this.deps.log.error({ sessionId: this.sessionId, err: err.message }, 'session socket message failed');
        this.client.error('internal_error', 'the message could not be handled');
      });
  }

  closeWith(code: number, reason: string) {
    if (this.closing) return;
    this.closing = true;
    this.readyResolve(false);
    this.ws.close(code, reason);
    // A client that never answers the close frame (a dead peer) is cut off.
    const timer = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    timer.unref();
    void this.closedPromise.then(() => clearTimeout(timer));
  }

  async shutdown() {
    if (!this.closed) {
      this.closeWith(1001, 'gateway shutting down');
      await this.closedPromise;
    }
    await this.out.catch(() => undefined);
    await this.inbound.catch(() => undefined);
  }
}

function isHeartbeat(data: unknown): boolean {
  try {
    return (JSON.parse(String(data)) as { type?: unknown }).type === 'heartbeat';
  } catch {
    return false;
  }
}
