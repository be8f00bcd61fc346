import { randomUUID } from 'node:crypto';
import { openDb, type Db } from '../store/db';
import { createSession } from '../store/sessions';
import { appendEvent, DELTAS_CHANNEL, EVENTS_CHANNEL, listEvents, publishDelta } from '../store/events';
import { appendMessage, getMessage, loadConversation } from '../store/conversation';
import { billedPeriods, modelUsageFor, recordBillingPeriods, recordModelUsage } from '../store/metering';
import { sessionUsage } from '../store/usage';
import { freshPostgres } from './support/harness';
import { loadKeyring } from '../store/encryption';

const { keyring } = loadKeyring({ masterKey: 'ab'.repeat(32), masterKeyId: 'test' }, '/nonexistent-data-dir');

/** The store on both backends: PGlite in memory and a throwaway PostgreSQL database. */

const until = async (check: () => boolean, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe.each(['pglite', 'postgres'] as const)('the store on %s', (kind) => {
  let db: Db;
  let pg: { url: string; drop(): Promise<void> } | undefined;

  beforeAll(async () => {
    if (kind === 'postgres') {
      pg = await freshPostgres();
      db = await openDb({ databaseUrl: pg.url });
    } else {
      db = await openDb({ pgliteDir: 'memory' });
    }
    expect(db.kind).toBe(kind);
  });
  afterAll(async () => {
    await db?.close();
    await pg?.drop();
  });

  async function newSession(): Promise<string> {
    const id = randomUUID();
    await createSession(db, keyring, {
      id,
      ownerType: 'user',
      ownerId: 'user-1',
      trigger: 'user',
      model: 'claude-sonnet-4-6',
      profile: {},
      workflowId: `session-${id}`,
    });
    return id;
  }

  describe('migrations', () => {
    it('record one row per migration file', async () => {
      const { rows } = await db.query<{ name: string; n: string }>(
        'SELECT name, count(*) AS n FROM schema_migrations GROUP BY name ORDER BY name',
      );
      expect(rows.map((r) => r.name)).toContain('001_sessions.sql');
      for (const r of rows) expect(Number(r.n)).toBe(1);
    });

    if (kind === 'postgres') {
      it('apply only once when the same database is opened again, also concurrently', async () => {
        const before = (await db.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name')).rows;
        const sid = await newSession();
        const more = await Promise.all([openDb({ databaseUrl: pg!.url }), openDb({ databaseUrl: pg!.url })]);
        try {
          const after = (await more[0].query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name')).rows;
          expect(after).toEqual(before);
          // Nothing was recreated: data written before is still there.
          const { rows } = await more[1].query<{ id: string }>('SELECT id FROM sessions WHERE id = $1', [sid]);
          expect(rows).toHaveLength(1);
        } finally {
          for (const d of more) await d.close();
        }
      });
    }
  });

  describe('appendEvent', () => {
    it('numbers events 1..n with no gaps and keeps their payloads', async () => {
      const sid = await newSession();
      for (let i = 0; i < 5; i++) {
        const r = await appendEvent(db, { sessionId: sid, key: `k${i}`, type: 'system', payload: { i } });
        expect(r).toEqual({ seq: i + 1, inserted: true });
      }
      const events = await listEvents(db, sid);
      expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(events.map((e) => e.payload.i)).toEqual([0, 1, 2, 3, 4]);
      expect((await listEvents(db, sid, { afterSeq: 3 })).map((e) => e.seq)).toEqual([4, 5]);
      expect((await listEvents(db, sid, { afterSeq: 1, limit: 2 })).map((e) => e.seq)).toEqual([2, 3]);
    });

    it('stores an event once per key: a retry gets the same seq back', async () => {
      const sid = await newSession();
      await appendEvent(db, { sessionId: sid, key: 'a', type: 'user', payload: { text: 'hi' } });
      const first = await appendEvent(db, { sessionId: sid, key: 'b', type: 'assistant', payload: { v: 1 } });
      const again = await appendEvent(db, { sessionId: sid, key: 'b', type: 'assistant', payload: { v: 2 } });
      expect(first).toEqual({ seq: 2, inserted: true });
      expect(again).toEqual({ seq: 2, inserted: false });
      const events = await listEvents(db, sid);
      expect(events).toHaveLength(2);
      expect(events[1].payload).toEqual({ v: 1 });
      // The counter did not move either: the next event is 3.
      expect(await appendEvent(db, { sessionId: sid, key: 'c', type: 'result', payload: {} })).toEqual({ seq: 3, inserted: true });
    });

    it('hands out exactly 1..50 to 50 concurrent appends', async () => {
      const sid = await newSession();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => appendEvent(db, { sessionId: sid, key: `c${i}`, type: 'system', payload: { i } })),
      );
      const seqs = results.map((r) => r.seq).sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(results.every((r) => r.inserted)).toBe(true);
      const events = await listEvents(db, sid);
      expect(events.map((e) => e.seq)).toEqual(seqs);
      // Each stored event carries the payload of the call that got its seq.
      for (const r of results) expect(events[r.seq - 1].payload.i).toBe(results.indexOf(r));
    });

    it('gives concurrent retries of the same key one row', async () => {
      const sid = await newSession();
      const results = await Promise.all(
        Array.from({ length: 10 }, () => appendEvent(db, { sessionId: sid, key: 'same', type: 'system', payload: {} })),
      );
      expect(new Set(results.map((r) => r.seq))).toEqual(new Set([1]));
      expect(results.filter((r) => r.inserted)).toHaveLength(1);
      expect(await listEvents(db, sid)).toHaveLength(1);
    });

    it('throws for a session that does not exist, and stores nothing', async () => {
      const missing = randomUUID();
      await expect(appendEvent(db, { sessionId: missing, key: 'x', type: 'system', payload: {} })).rejects.toThrow(
        /does not exist/,
      );
      expect(await listEvents(db, missing)).toEqual([]);
    });
  });

  describe('notifications', () => {
    it('announces each committed event on session_events, and nothing for a rolled-back one', async () => {
      const sid = await newSession();
      const received: Array<Record<string, unknown>> = [];
      const unlisten = await db.listen(EVENTS_CHANNEL, (payload) => {
        const p = JSON.parse(payload) as Record<string, unknown>;
        if (p.session_id === sid) received.push(p);
      });
      try {
        // A deferred check that fails at COMMIT, after appendEvent has issued its NOTIFY.
        await db.query(`CREATE OR REPLACE FUNCTION ais_test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF NEW.payload ? 'poison' THEN RAISE EXCEPTION 'poisoned event'; END IF;
            RETURN NULL;
          END $$`);
        await db.query('DROP TRIGGER IF EXISTS ais_test_poison ON session_events');
        await db.query(`CREATE CONSTRAINT TRIGGER ais_test_poison AFTER INSERT ON session_events
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ais_test_poison()`);

        await appendEvent(db, { sessionId: sid, key: 'one', type: 'user', payload: { text: 'a' } });
        await expect(
          appendEvent(db, { sessionId: sid, key: 'bad', type: 'system', payload: { poison: true } }),
        ).rejects.toThrow(/poisoned/);
        await appendEvent(db, { sessionId: sid, key: 'two', type: 'assistant', payload: { text: 'b' } });
        await appendEvent(db, { sessionId: sid, key: 'two', type: 'assistant', payload: { text: 'b' } }); // a retry: no new event

        await until(() => received.length >= 2);
        // A marker event after everything else: when it arrives, nothing else is in flight.
        await appendEvent(db, { sessionId: sid, key: 'three', type: 'result', payload: {} });
        await until(() => received.length >= 3);
        expect(received).toEqual([
          expect.objectContaining({ session_id: sid, seq: 1 }),
          expect.objectContaining({ session_id: sid, seq: 2 }),
          expect.objectContaining({ session_id: sid, seq: 3 }),
        ]);
        // The rolled-back event took no number.
        expect((await listEvents(db, sid)).map((e) => [e.seq, e.type])).toEqual([
          [1, 'user'],
          [2, 'assistant'],
          [3, 'result'],
        ]);
      } finally {
        await db.query('DROP TRIGGER IF EXISTS ais_test_poison ON session_events');
        await unlisten();
      }
    });

    it('stops delivering to a handler once it unsubscribes', async () => {
      const sid = await newSession();
      const a: unknown[] = [];
      const b: unknown[] = [];
      const unA = await db.listen(EVENTS_CHANNEL, (p) => JSON.parse(p).session_id === sid && a.push(p));
      const unB = await db.listen(EVENTS_CHANNEL, (p) => JSON.parse(p).session_id === sid && b.push(p));
      try {
        await appendEvent(db, { sessionId: sid, key: '1', type: 'system', payload: {} });
        await until(() => a.length === 1 && b.length === 1);
        await unA();
        await appendEvent(db, { sessionId: sid, key: '2', type: 'system', payload: {} });
        await until(() => b.length === 2);
        expect(a).toHaveLength(1);
      } finally {
        await unB();
      }
    });

    it('serves several subscriptions made at once and still closes', async () => {
      // A second connection to the same store, subscribing to both channels concurrently from the start.
      const other = kind === 'postgres' ? await openDb({ databaseUrl: pg!.url }) : db;
      const sid = await newSession();
      const got: string[] = [];
      const unsubs = await Promise.all([
        other.listen(EVENTS_CHANNEL, (p) => JSON.parse(p).session_id === sid && got.push('events-1')),
        other.listen(DELTAS_CHANNEL, (p) => JSON.parse(p).session_id === sid && got.push('deltas')),
        other.listen(EVENTS_CHANNEL, (p) => JSON.parse(p).session_id === sid && got.push('events-2')),
      ]);
      try {
        await appendEvent(db, { sessionId: sid, key: 'e', type: 'system', payload: {} });
        await publishDelta(db, { session_id: sid, message_key: 'assistant-1', block_index: 0, attempt: 1, text: 'x' });
        await until(() => got.length === 3);
        expect(got.sort()).toEqual(['deltas', 'events-1', 'events-2']);
      } finally {
        for (const u of unsubs) await u();
        // Resolves: no connection is left checked out.
        if (other !== db) await other.close();
      }
    });

    if (kind === 'postgres') {
      it('survives the listening connection being dropped, and listens again on the next subscription', async () => {
        const other = await openDb({ databaseUrl: pg!.url });
        const sid = await newSession();
        const got: number[] = [];
        try {
          await other.listen(EVENTS_CHANNEL, (p) => {
            const e = JSON.parse(p);
            if (e.session_id === sid) got.push(e.seq);
          });
          await appendEvent(db, { sessionId: sid, key: '1', type: 'system', payload: {} });
          await until(() => got.length === 1);
          // The server drops the listener's connection (as on a restart or a failover).
          const { rows } = await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()) t`,
          );
          expect(rows[0].n).toBeGreaterThanOrEqual(1);
          // The process is still here; subscribing again (after the drop is noticed) restores delivery.
          const deadline = Date.now() + 60_000;
          for (let attempt = 1; got.length < 2 && Date.now() < deadline; attempt++) {
            await other.listen(EVENTS_CHANNEL, () => undefined).catch(() => undefined);
            await appendEvent(db, { sessionId: sid, key: `again-${attempt}`, type: 'system', payload: {} });
            await until(() => got.length >= 2, 2000).catch(() => undefined);
          }
          expect(got[0]).toBe(1);
          expect(got.length).toBeGreaterThanOrEqual(2);
          expect(got.at(-1)).toBeGreaterThan(1);
        } finally {
          await other.close();
        }
      });
    }

    it('publishes text deltas on session_deltas, split below the NOTIFY cap and reassembling exactly', async () => {
      const sid = await newSession();
      const parts: Array<{ session_id: string; message_key: string; block_index: number; attempt: number; text: string }> = [];
      const sizes: number[] = [];
      const unlisten = await db.listen(DELTAS_CHANNEL, (payload) => {
        const p = JSON.parse(payload);
        if (p.session_id !== sid) return;
        parts.push(p);
        sizes.push(Buffer.byteLength(payload, 'utf8'));
      });
      try {
        await publishDelta(db, { session_id: sid, message_key: 'assistant-1', block_index: 0, attempt: 1, text: 'Hello' });
        await until(() => parts.length === 1);
        expect(parts[0]).toEqual({ session_id: sid, message_key: 'assistant-1', block_index: 0, attempt: 1, text: 'Hello' });

        // Long text of 1-, 2-, 3- and 4-byte characters, quotes, backslashes and control characters
        // (which JSON escapes to six bytes each): every NOTIFY must stay under 8000 bytes.
        const samples = [
          'a'.repeat(20_000),
          '日本語のテキスト'.repeat(1500),
          '😀🎉'.repeat(3000),
          '"\\\u0001\n'.repeat(4000),
          'Ωé'.repeat(5000) + 'x😀'.repeat(2000),
        ];
        for (const [i, text] of samples.entries()) {
          parts.length = 0;
          sizes.length = 0;
          await publishDelta(db, { session_id: sid, message_key: `assistant-${i + 2}`, block_index: 1, attempt: 2, text });
          await until(() => parts.map((p) => p.text).join('').length >= text.length);
          expect(parts.length).toBeGreaterThan(1);
          expect(Math.max(...sizes)).toBeLessThan(8000);
          expect(parts.map((p) => p.text).join('')).toBe(text);
          for (const p of parts) {
            expect(p).toMatchObject({ message_key: `assistant-${i + 2}`, block_index: 1, attempt: 2 });
            // No part starts or ends inside a surrogate pair.
            expect(p.text).toBe(Buffer.from(p.text, 'utf8').toString('utf8'));
          }
        }
      } finally {
        await unlisten();
      }
    });
  });

  describe('conversation', () => {
    it('stores a message once per key', async () => {
      const sid = await newSession();
      const first = await appendMessage(db, { sessionId: sid, key: 'user-p1', role: 'user', content: [{ type: 'text', text: 'hi' }] });
      const again = await appendMessage(db, { sessionId: sid, key: 'user-p1', role: 'user', content: [{ type: 'text', text: 'changed' }] });
      expect(first).toEqual({ position: 1, inserted: true });
      expect(again).toEqual({ position: 1, inserted: false });
      expect(await getMessage(db, sid, 'user-p1')).toEqual({
        key: 'user-p1',
        role: 'user',
        content: [{ type: 'text', text: 'hi' }],
        position: 1,
      });
      expect(await getMessage(db, sid, 'nope')).toBeUndefined();
      const second = await appendMessage(db, { sessionId: sid, key: 'assistant-1', role: 'assistant', content: [{ type: 'text', text: 'yo' }] });
      expect(second).toEqual({ position: 2, inserted: true });
      await expect(
        appendMessage(db, { sessionId: randomUUID(), key: 'k', role: 'user', content: [] }),
      ).rejects.toThrow(/does not exist/);
    });

    it('merges consecutive pieces of one role and puts tool results first in a user message', async () => {
      const sid = await newSession();
      const add = (key: string, role: 'user' | 'assistant', content: Array<Record<string, unknown>>) =>
        appendMessage(db, { sessionId: sid, key, role, content: content as never });
      await add('user-p1', 'user', [{ type: 'text', text: 'list files' }]);
      await add('assistant-1', 'assistant', [
        { type: 'text', text: 'Running two tools' },
        { type: 'tool_use', id: 'tu_1', name: 'Bash', input: { command: 'ls' } },
        { type: 'tool_use', id: 'tu_2', name: 'Read', input: { file_path: 'a' } },
      ]);
      // A prompt queued while the tools ran, stored before the results.
      await add('user-p2', 'user', [{ type: 'text', text: 'also check b' }]);
      await add('tool_result-tu_1', 'user', [{ type: 'tool_result', tool_use_id: 'tu_1', content: 'a\nb', is_error: false }]);
      await add('tool_result-tu_2', 'user', [{ type: 'tool_result', tool_use_id: 'tu_2', content: 'x', is_error: false }]);
      await add('assistant-2', 'assistant', [{ type: 'text', text: 'Done.' }]);

      const conv = await loadConversation(db, sid);
      expect(conv.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
      expect(conv[2].content).toEqual([
        { type: 'tool_result', tool_use_id: 'tu_1', content: 'a\nb', is_error: false },
        { type: 'tool_result', tool_use_id: 'tu_2', content: 'x', is_error: false },
        { type: 'text', text: 'also check b' },
      ]);
      expect(conv[1].content).toHaveLength(3);
      expect(conv[3].content).toEqual([{ type: 'text', text: 'Done.' }]);
    });

    it('answers a tool_use left without a result with an error tool_result', async () => {
      const sid = await newSession();
      const add = (key: string, role: 'user' | 'assistant', content: Array<Record<string, unknown>>) =>
        appendMessage(db, { sessionId: sid, key, role, content: content as never });
      await add('user-p1', 'user', [{ type: 'text', text: 'go' }]);
      await add('assistant-1', 'assistant', [
        { type: 'tool_use', id: 'tu_a', name: 'Bash', input: { command: 'sleep 100' } },
        { type: 'tool_use', id: 'tu_b', name: 'Bash', input: { command: 'true' } },
      ]);
      await add('tool_result-tu_b', 'user', [{ type: 'tool_result', tool_use_id: 'tu_b', content: 'ok', is_error: false }]);
      // The turn was interrupted; the next prompt arrives.
      await add('user-p2', 'user', [{ type: 'text', text: 'never mind' }]);
      await add('assistant-2', 'assistant', [{ type: 'tool_use', id: 'tu_c', name: 'Bash', input: { command: 'ls' } }]);

      const conv = await loadConversation(db, sid);
      expect(conv.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user']);
      const results = conv[2].content.filter((b) => b.type === 'tool_result');
      expect(conv[2].content.slice(0, 2).every((b) => b.type === 'tool_result')).toBe(true);
      expect(conv[2].content.at(-1)).toEqual({ type: 'text', text: 'never mind' });
      expect(results.find((b) => b.tool_use_id === 'tu_b')).toMatchObject({ is_error: false, content: 'ok' });
      expect(results.find((b) => b.tool_use_id === 'tu_a')).toMatchObject({ is_error: true, content: expect.any(String) });
      // The last assistant message had no answer at all: a user message is added for it.
      expect(conv[4].content).toEqual([expect.objectContaining({ type: 'tool_result', tool_use_id: 'tu_c', is_error: true })]);
      // Loading is read-only: the store is unchanged.
      const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM conversation_messages WHERE session_id = $1', [sid]);
      expect(Number(rows[0].n)).toBe(5);
    });

    it('returns an empty conversation for a new session', async () => {
      expect(await loadConversation(db, await newSession())).toEqual([]);
    });
  });

  describe('metering', () => {
    const startedAt = '2025-01-01T00:00:00.000Z';

    it('records billing periods idempotently and without gaps', async () => {
      const sid = await newSession();
      const rec = (fromIndex: number, toIndex: number) =>
        recordBillingPeriods(db, { sessionId: sid, sandboxStartedAt: startedAt, periodSeconds: 60, fromIndex, toIndex });
      expect(await rec(0, 2)).toBe(3);
      expect(await rec(0, 2)).toBe(0);
      expect(await rec(1, 4)).toBe(2);
      expect(await rec(5, 4)).toBe(0);
      expect(await billedPeriods(db, sid)).toEqual([0, 1, 2, 3, 4]);
      const { rows } = await db.query<{ period_index: number; period_start: Date | string; period_seconds: number }>(
        'SELECT period_index, period_start, period_seconds FROM billing_periods WHERE session_id = $1 ORDER BY period_index',
        [sid],
      );
      expect(rows.map((r) => new Date(r.period_start).toISOString())).toEqual([
        '2025-01-01T00:00:00.000Z',
        '2025-01-01T00:01:00.000Z',
        '2025-01-01T00:02:00.000Z',
        '2025-01-01T00:03:00.000Z',
        '2025-01-01T00:04:00.000Z',
      ]);
      expect(rows.every((r) => Number(r.period_seconds) === 60)).toBe(true);
    });

    it('counts each period once when two workers record overlapping ranges at the same time', async () => {
      const sid = await newSession();
      const rec = (fromIndex: number, toIndex: number) =>
        recordBillingPeriods(db, { sessionId: sid, sandboxStartedAt: startedAt, periodSeconds: 0.5, fromIndex, toIndex });
      // "Worker A" ticks 0..k in steps while "worker B" (a replay after a crash) records wide overlapping ranges.
      const a = Array.from({ length: 20 }, (_, i) => rec(Math.max(0, i * 5 - 3), i * 5 + 4));
      const b = Array.from({ length: 10 }, (_, i) => rec(i * 10, i * 10 + 12));
      const counts = await Promise.all([...a, ...b]);
      const periods = await billedPeriods(db, sid);
      expect(periods).toEqual(Array.from({ length: 103 }, (_, i) => i));
      expect(counts.reduce((x, y) => x + y, 0)).toBe(103);
      const { rows } = await db.query<{ period_start: Date | string }>(
        'SELECT period_start FROM billing_periods WHERE session_id = $1 AND period_index = 3',
        [sid],
      );
      expect(new Date(rows[0].period_start).toISOString()).toBe('2025-01-01T00:00:01.500Z');
    });

    it('records model usage once per call key and sums a session', async () => {
      const sid = await newSession();
      const other = await newSession();
      const usage = (callKey: string, over: Partial<Parameters<typeof recordModelUsage>[1]> = {}) => ({
        sessionId: sid,
        callKey,
        model: 'claude-sonnet-4-6',
        inputTokens: 100,
        outputTokens: 50,
        cacheCreationInputTokens: 10,
        cacheReadInputTokens: 5,
        costUsd: 0.25,
        ...over,
      });
      expect(await sessionUsage(db, sid)).toMatchObject({ input_tokens: 0, output_tokens: 0, cost_usd: 0, model_calls: 0 });
      expect(await recordModelUsage(db, usage('assistant-1'))).toBe(true);
      expect(await recordModelUsage(db, usage('assistant-1', { inputTokens: 999, costUsd: 9 }))).toBe(false);
      const both = await Promise.all([
        recordModelUsage(db, usage('assistant-2', { inputTokens: 1000, outputTokens: 200, costUsd: 0.5 })),
        recordModelUsage(db, usage('assistant-2', { inputTokens: 1000, outputTokens: 200, costUsd: 0.5 })),
      ]);
      expect(both.filter(Boolean)).toHaveLength(1);
      await recordModelUsage(db, usage('assistant-1', { sessionId: other, costUsd: 100 }));

      const totals = await sessionUsage(db, sid);
      expect(totals.model_calls).toBe(2);
      // Input counts cache writes and reads too.
      expect(totals.input_tokens).toBe(100 + 10 + 5 + 1000 + 10 + 5);
      expect(totals).toMatchObject({ cache_creation_input_tokens: 20, cache_read_input_tokens: 10, output_tokens: 250 });
      expect(totals.cost_usd).toBeCloseTo(0.75, 10);
      // One call as recorded, the first write winning.
      expect(await modelUsageFor(db, sid, 'assistant-1')).toEqual({
        inputTokens: 115, cacheCreationInputTokens: 10, cacheReadInputTokens: 5, outputTokens: 50, costUsd: 0.25,
      });
      expect(await modelUsageFor(db, sid, 'assistant-9')).toEqual({ inputTokens: 0, cacheCreationInputTokens: 0, cacheReadInputTokens: 0, outputTokens: 0, costUsd: 0 });
    });
  });
});
