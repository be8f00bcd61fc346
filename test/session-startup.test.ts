import net from 'node:net';
import Docker from 'dockerode';
import { NativeConnection } from '@temporalio/worker';
import { startHarness, type Harness, useHarness } from './support/harness';
import { text } from './support/fake-anthropic';
import { createWorkers, type SessionWorkers } from '../worker/worker';
import { createLogger } from '../lib/log';
import { getSession } from '../store/sessions';
import { DELTAS_CHANNEL, type TextDelta } from '../store/events';

describe('session start', () => {
  describe('when the Docker engine does not answer', () => {
    let h: Harness;
    let silent: net.Server;
    const sockets = new Set<net.Socket>();
    let workers: SessionWorkers;
    let nc: NativeConnection;

    beforeAll(async () => {
      // A real endpoint that accepts connections and never replies: provisioning hangs.
      silent = net.createServer((s) => sockets.add(s));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
      h = await startHarness({ noWorker: true, env: { STARTUP_TIMEOUT_SECONDS: '3' } });
      nc = await NativeConnection.connect({ address: h.config.temporal.address! });
      const port = (silent.address() as net.AddressInfo).port;
      workers = await createWorkers({
        config: h.config,
        connection: nc,
        db: h.db,
        log: createLogger('silent'),
        keyring: h.keyring,
        docker: new Docker({ host: '127.0.0.1', port, protocol: 'http' }),
        workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! },
      });
      void workers.run();
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await workers?.shutdown();
      await nc?.close();
      await h?.close();
      await new Promise((r) => silent.close(r));
    });

    it('ends the session with startup_timeout', async () => {
      const sessionId = await h.startSession({ prompt: 'hello' });
      const outcome = await h.waitForEnd(sessionId);
      expect(outcome.endReason).toBe('startup_timeout');
      expect(outcome.errorMessage).toMatch(/not ready within 3 s/);
      const row = await getSession(h.db, sessionId);
      expect(row).toMatchObject({ status: 'ended', end_reason: 'startup_timeout', exit_code: 1 });
      const types = (await h.events(sessionId)).map((e) => e.type);
      expect(types).toEqual(['session_error', 'session_end']);
      expect(h.fake.requests).toHaveLength(0);
    });
  });

  describe('with a runner image that is not on the host', () => {
    const h = useHarness({ env: { RUNNER_IMAGE: 'ai-sessions-runner:does-not-exist' } });

    it('fails at once with a message naming the image', async () => {
      const sessionId = await h.startSession({ prompt: 'hello' });
      const outcome = await h.waitForEnd(sessionId);
      expect(outcome).toMatchObject({ endReason: 'failed' });
      expect(outcome.errorMessage).toContain('ai-sessions-runner:does-not-exist');
    });
  });

  describe('streaming', () => {
    const h = useHarness();

    it('publishes text deltas live, tagged with message, block and attempt, and stores the whole message', async () => {
      const deltas: TextDelta[] = [];
      const unlisten = await h.db.listen(DELTAS_CHANNEL, (p) => deltas.push(JSON.parse(p)));
      const words = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
      h.fake.enqueue(text(words, { chunkDelayMs: 20 }));
      const sessionId = await h.startSession({ prompt: 'talk', profile: { one_shot: true } });
      await h.waitForEnd(sessionId);
      await unlisten();
      const mine = deltas.filter((d) => d.session_id === sessionId);
      expect(mine.length).toBeGreaterThan(1);
      expect(mine.every((d) => d.message_key === 'assistant-1' && d.block_index === 0 && d.attempt === 1)).toBe(true);
      expect(mine.map((d) => d.text).join('')).toBe(words);
      const assistant = (await h.events(sessionId)).find((e) => e.type === 'assistant')!;
      expect(assistant.payload.content).toEqual([{ type: 'text', text: words }]);
    });
  });
});
