/**
 * `npm run bench`: the engine against baselines measured in the same run, on
 * the same machine, with the same runner image and the local model stand-in.
 *   1. start → sandbox ready, against a bare `docker run` with the same flags;
 *   2. one tool-using turn, against two direct model calls plus one docker exec;
 *   3. sessions per minute, sustained with a few in flight at once.
 */
import os from 'node:os';
import Anthropic from '@anthropic-ai/sdk';
import Docker from 'dockerode';
import { loadConfig } from '../lib/config';
import { TEST_KEY, type Harness } from '../test/support/harness';
import { text, toolUse } from '../test/support/fake-anthropic';
import { DockerSandboxes } from '../activities/docker-sandbox';
import { percentile as pct, startBenchStack } from './stack';

const N = Number(process.env.BENCH_SAMPLES ?? 12);
const SUSTAIN_SESSIONS = Number(process.env.BENCH_SUSTAIN_SESSIONS ?? 24);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);

const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
function row(name: string, ours: number[], base: number[]) {
  const [o50, o95, b50, b95] = [pct(ours, 50), pct(ours, 95), pct(base, 50), pct(base, 95)];
  return `| ${name} | ${fmt(o50)} | ${fmt(o95)} | ${fmt(b50)} | ${fmt(b95)} | ${(o50 / b50).toFixed(2)}× |`;
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const v = await fn();
  return [performance.now() - t, v];
}

async function main() {
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
  const docker = new Docker();
  const { h, stop } = await startBenchStack();
  try {
    const lines = [
      `ai-sessions bench — ${os.cpus().length} cores, ${N} samples, runner image ${config.runnerImage}`,
      '',
      '| measure | ours p50 | ours p95 | baseline p50 | baseline p95 | ratio (p50) |',
      '|---|---|---|---|---|---|',
      row('start → sandbox ready (vs `docker run` + start, same flags)', ...(await startLatency(h, docker, config.runnerImage))),
      row('one tool-using turn (vs 2 model calls + 1 docker exec)', ...(await turnLatency(h, docker, config.runnerImage))),
    ];
    const rate = await sustained(h);
    lines.push('', `sustained: ${rate.sessions} one-shot sessions (one Bash turn each), ${CONCURRENCY} in flight: ` +
      `${rate.perMinute.toFixed(1)} sessions/min; baseline of bare container create+exec+remove with the same concurrency: ` +
      `${rate.basePerMinute.toFixed(1)} /min (${(rate.perMinute / rate.basePerMinute).toFixed(2)}×)`);
    console.log(lines.join('\n'));
  } finally {
    await stop();
  }
}

/** What a bare sandbox costs: create and start a container with the engine's own flags. */
async function bareSandbox(docker: Docker, image: string, id: string) {
  const sandboxes = new DockerSandboxes(docker);
  const spec = { sessionId: id, image, env: {}, network: false, cpus: 1, memoryMb: 1024, pidsLimit: 256 };
  const [ms, info] = await timed(() => sandboxes.provision(spec));
  return { ms, info, destroy: () => sandboxes.destroy(id) };
}

async function startLatency(h: Harness, docker: Docker, image: string): Promise<[number[], number[]]> {
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < N; i++) {
    const b = await bareSandbox(docker, image, `bench-bare-${process.pid}-${i}`);
    base.push(b.ms);
    await b.destroy();
    const t = performance.now();
    const id = await h.startSession({ profile: { permission_mode: 'bypassPermissions' } });
    await h.waitForEvent(id, (e) => e.type === 'session_status' && e.payload.status === 'running');
    ours.push(performance.now() - t);
    await h.service.terminate(id, 'user_requested');
    await h.waitForEnd(id);
  }
  return [ours, base];
}

async function turnLatency(h: Harness, docker: Docker, image: string): Promise<[number[], number[]]> {
  const ours: number[] = [];
  const base: number[] = [];
  const id = await h.startSession({ profile: { permission_mode: 'bypassPermissions' } });
  await h.waitForEvent(id, (e) => e.type === 'session_status');
  const client = new Anthropic({ apiKey: TEST_KEY, baseURL: h.fake.url, maxRetries: 0 });
  const b = await bareSandbox(docker, image, `bench-turn-${process.pid}`);
  const sandboxes = new DockerSandboxes(docker);
  for (let i = 0; i < N; i++) {
    h.fake.enqueue(toolUse('Bash', { command: 'true' }), text(`turn ${i} done`));
    const t = performance.now();
    await h.service.prompt(id, `turn ${i}`);
    await h.waitForEvent(id, (e) => e.type === 'result' && e.payload.summary === `turn ${i} done`);
    ours.push(performance.now() - t);

    h.fake.enqueue(toolUse('Bash', { command: 'true' }), text('direct'));
    const t0 = performance.now();
    const params = { model: 'claude-sonnet-4-6', max_tokens: 1024, messages: [{ role: 'user' as const, content: 'go' }] };
    const first = await client.messages.stream(params).finalMessage();
    await sandboxes.exec(b.info.containerId, ['bash', '-c', 'true'], { maxOutputBytes: 30000 });
    const use = first.content.find((c) => c.type === 'tool_use')!;
    await client.messages
      .stream({
        ...params,
        messages: [
          ...params.messages,
          { role: 'assistant', content: first.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.type === 'tool_use' ? use.id : '', content: '' }] },
        ],
      })
      .finalMessage();
    base.push(performance.now() - t0);
  }
  await b.destroy();
  await h.service.terminate(id, 'user_requested');
  await h.waitForEnd(id);
  return [ours, base];
}

async function sustained(h: Harness) {
  h.fake.setResponder((req) =>
    req.body.messages.length === 1 ? toolUse('Bash', { command: 'echo hi' }) : text('done'),
  );
  const t = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < SUSTAIN_SESSIONS) {
      next += 1;
      const id = await h.startSession({ prompt: 'go', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
      await h.waitForEnd(id);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  const perMinute = (SUSTAIN_SESSIONS / (performance.now() - t)) * 60_000;
  h.fake.setResponder(undefined);

  const docker = new Docker();
  const sandboxes = new DockerSandboxes(docker);
  const image = h.config.runnerImage;
  let n = 0;
  const t2 = performance.now();
  const baseLane = async () => {
    while (n < SUSTAIN_SESSIONS) {
      const i = n++;
      const b = await bareSandbox(docker, image, `bench-rate-${process.pid}-${i}`);
      await sandboxes.exec(b.info.containerId, ['bash', '-c', 'echo hi'], { maxOutputBytes: 30000 });
      await b.destroy();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, baseLane));
  const basePerMinute = (SUSTAIN_SESSIONS / (performance.now() - t2)) * 60_000;
  return { sessions: SUSTAIN_SESSIONS, perMinute, basePerMinute };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
