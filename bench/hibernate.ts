/**
 * `npx tsx bench/hibernate.ts`: hibernating and resuming a session whose
 * workspace holds 100 MB (BENCH_HIBERNATE_MB), against a baseline measured in
 * the same run on the same image and data:
 *   - hibernate: the idle timer firing → archive written, container and
 *     volumes removed, session marked dormant (from workflow history), against
 *     `tar -c` of the workspace out of a container plus `docker rm -fv`;
 *   - resume: a prompt sent → the model stand-in receiving its request (new
 *     container, workspace restored, conversation loaded), against
 *     `docker run` of the same image plus `tar -x` of the same data into it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadConfig } from '../lib/config';
import { text, toolUse } from '../test/support/fake-anthropic';
import type { Harness } from '../test/support/harness';
import { getSession } from '../store/sessions';
import { sessionWorkflowId } from '../workflows/messages';
import { percentile as pct, startBenchStack } from './stack';

const run = promisify(execFile);
const N = Number(process.env.BENCH_SAMPLES ?? 5);
const MB = Number(process.env.BENCH_HIBERNATE_MB ?? 100);
/** 100 files of 1 MB of random bytes (incompressible), plus a symlink and an executable. */
const FILL = `mkdir -p data && for i in $(seq ${MB}); do head -c 1048576 /dev/urandom > data/f$i; done && ln -s data/f1 link && printf '#!/bin/sh\\n' > run.sh && chmod 755 run.sh`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
function row(name: string, ours: number[], base: number[]) {
  const [o50, o95, b50, b95] = [pct(ours, 50), pct(ours, 95), pct(base, 50), pct(base, 95)];
  return `| ${name} | ${fmt(o50)} | ${fmt(o95)} | ${fmt(b50)} | ${fmt(b95)} | ${(o50 / b50).toFixed(2)}× |`;
}

async function main() {
  const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-bench-archives-'));
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
  const { h, stop } = await startBenchStack({ HIBERNATE_IDLE_SECONDS: '1', BLOB_DIR: blobDir });
  const ours = { hibernate: [] as number[], resume: [] as number[] };
  const phases: Record<string, number[]> = {};
  const base = { hibernate: [] as number[], resume: [] as number[] };
  try {
    for (let i = 0; i < N; i++) {
      const s = await oneSession(h);
      ours.hibernate.push(s.hibernateMs);
      ours.resume.push(s.resumeMs);
      for (const [k, v] of Object.entries(s.phases)) (phases[k] ??= []).push(v);
      const b = await baseline(config.runnerImage, blobDir, i);
      base.hibernate.push(b.hibernateMs);
      base.resume.push(b.resumeMs);
    }
    console.log([
      `ai-sessions hibernation bench — ${os.cpus().length} cores, ${N} samples, ${MB} MB workspace, runner image ${config.runnerImage}`,
      '',
      '| measure | ours p50 | ours p95 | baseline p50 | baseline p95 | ratio (p50) |',
      '|---|---|---|---|---|---|',
      row('hibernate (vs tar -c out of the container + docker rm -fv)', ours.hibernate, base.hibernate),
      row('resume: prompt → model request (vs docker run + tar -x in)', ours.resume, base.resume),
      '',
      `activities (p50, scheduled → completed): ${PHASES.filter((p) => phases[p]).map((p) => `${p} ${fmt(pct(phases[p], 50))}`).join(', ')}`,
    ].join('\n'));
  } finally {
    await stop();
    fs.rmSync(blobDir, { recursive: true, force: true });
  }
}

/** A session filled with the data, hibernated, then resumed by a prompt. */
async function oneSession(h: Harness) {
  h.fake.reset();
  h.fake.enqueue(toolUse('Bash', { command: FILL, timeout: 600000 }), text('filled'));
  const id = await h.startSession({ prompt: 'fill the workspace' });
  await h.waitForEvent(id, (e) => e.type === 'result', 300_000);
  while ((await getSession(h.db, id))?.dormant_since == null) await sleep(50);

  // From the idle timer firing to the dormant mark, as the workflow recorded them.
  const events = (await h.client.workflow.getHandle(sessionWorkflowId(id)).fetchHistory()).events ?? [];
  const at = (e: (typeof events)[number]) => Number(e.eventTime!.seconds) * 1000 + e.eventTime!.nanos! / 1e6;
  const archiveIdx = events.findIndex((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'archiveSandbox');
  const fired = events.slice(0, archiveIdx).reverse().find((e) => e.timerFiredEventAttributes)!;
  const dormantScheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'markDormant')!;
  const dormantDone = events.find((e) => e.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === dormantScheduled.eventId?.toString())!;
  const hibernateMs = at(dormantDone) - at(fired);

  h.fake.enqueue(text('back'));
  const sent = Date.now();
  await h.service.prompt(id, 'are you there?');
  while (h.fake.requests.length < 3) await sleep(5);
  const resumeMs = h.fake.requests[2].receivedAt - sent;
  await h.waitForEvent(id, (e) => e.type === 'result' && e.payload.summary === 'back', 120_000);
  await h.service.terminate(id, 'user_requested');
  await h.waitForEnd(id);
  return { hibernateMs, resumeMs, phases: await activityTimes(h, id) };
}

/** Each hibernation and resume activity's time, scheduled → completed, from the workflow history (the last of each). */
async function activityTimes(h: Harness, id: string): Promise<Record<string, number>> {
  const events = (await h.client.workflow.getHandle(sessionWorkflowId(id)).fetchHistory()).events ?? [];
  const at = (e: (typeof events)[number]) => Number(e.eventTime!.seconds) * 1000 + e.eventTime!.nanos! / 1e6;
  const out: Record<string, number> = {};
  for (const e of events) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (!name || !PHASES.includes(name)) continue;
    const done = events.find((d) => d.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === e.eventId?.toString());
    if (done) out[name] = at(done) - at(e);
  }
  return out;
}
const PHASES = ['archiveSandbox', 'cleanupSandbox', 'markDormant', 'provisionSandbox', 'restoreSandbox', 'startMcpServers', 'beginPrompt'];

/** The same data in a volume of a bare container: tar it out and remove it, then `docker run` a new one and tar it back in. */
async function baseline(image: string, dir: string, i: number) {
  const name = `ais-bench-hib-${process.pid}-${i}`;
  const flags = ['--read-only', '--network', 'none', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '-u', '1000:1000', '--tmpfs', '/tmp'];
  const tarFile = path.join(dir, `${name}.tar`);
  await run('docker', ['run', '-d', '--name', name, ...flags, '-v', `${name}:/workspace`, '-w', '/workspace', image]);
  await run('docker', ['exec', name, 'sh', '-c', FILL], { maxBuffer: 1 << 20 });
  await run('sync');
  let t = performance.now();
  await run('sh', ['-c', `docker exec ${name} tar -C /workspace -cf - . > ${tarFile} && docker rm -fv ${name} >/dev/null && docker volume rm ${name} >/dev/null`]);
  const hibernateMs = performance.now() - t;
  t = performance.now();
  await run('sh', ['-c', `docker run -d --name ${name} ${flags.join(' ')} -v ${name}:/workspace -w /workspace ${image} >/dev/null && docker exec -i ${name} tar -C /workspace -xf - < ${tarFile}`]);
  const resumeMs = performance.now() - t;
  await run('sh', ['-c', `docker rm -fv ${name} >/dev/null; docker volume rm ${name} >/dev/null; rm -f ${tarFile}`]);
  return { hibernateMs, resumeMs };
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
