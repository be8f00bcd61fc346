import WebSocket from 'ws';
import { mintToken } from '../api/auth';
import { listEvents } from '../store/events';
import { TEST_JWT_SECRET, useHarness } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';

type Frame = { type: string; seq?: number; payload: Record<string, unknown> };

/**
 * The gateway goes away in the middle of a turn and another one takes its
 * place: a client that reconnects with the last seq it saw gets every stored
 * event exactly once across both connections.
 */
describe('a gateway restarted mid-session', () => {
  const h = useHarness();
  const gateway = () => h.startGateway();

  it('loses and repeats nothing when the client resumes with since', async () => {
    const first = await gateway();
    const token = await mintToken(TEST_JWT_SECRET, { sub: 'user-1' });
    const sessionId = await h.startSession({ profile: { permission_mode: 'bypassPermissions' } });
    await h.waitForEvent(sessionId, (e) => e.type === 'session_status');

    const seen: Frame[] = [];
    const connect = (url: string, since?: number) => {
      const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws/sessions/${sessionId}?token=${token}${since ? `&since=${since}` : ''}`);
      ws.on('message', (d) => seen.push(JSON.parse(String(d)) as Frame));
      return new Promise<WebSocket>((resolve, reject) => {
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    };
    const ws1 = await connect(first.url);
    const closed1 = new Promise((r) => ws1.once('close', r));

    // A turn long enough that the gateway dies in the middle of it.
    h.fake.enqueue(
      toolUse('Bash', { command: 'sleep 2; echo slept' }),
      text('done after the restart', { chunkDelayMs: 50 }),
    );
    ws1.send(JSON.stringify({ type: 'prompt', payload: { text: 'work through a restart' } }));
    await waitFor(() => seen.some((f) => f.type === 'tool_use'));
    await first.stop();
    await closed1;
    const lastSeq = Math.max(...seen.filter((f) => f.seq !== undefined).map((f) => f.seq!));

    const second = await gateway();
    const ws2 = await connect(second.url, lastSeq);
    await waitFor(() => seen.some((f) => f.type === 'result'));
    ws2.close();

    const stored = (await listEvents(h.db, sessionId)).filter((e) => e.seq <= seen.find((f) => f.type === 'result')!.seq!);
    const received = seen.filter((f) => f.seq !== undefined).map((f) => f.seq);
    expect(received).toEqual(stored.map((e) => e.seq));
    expect(seen.filter((f) => f.type === 'tool_result')[0].payload.content).toContain('slept');
  });
});

async function waitFor(check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
