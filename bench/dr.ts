/**
 * `npm run bench:dr`: the D&R rule engine against baselines measured in the same run.
 *   1. Evaluation throughput with 1, 100 and 1,000 rules of mixed shapes, most not matching: in
 *      process (compiled rules vs hand-written JS predicates doing the same checks), and through
 *      POST /v1/orgs/:id/events with NDJSON (vs a bare express handler that only parses it).
 *   2. Latency from an event's arrival to its session's workflow start: Temporal's startTime
 *      (describe()) minus this process's clock just before sending. Baselines: the same one-shot
 *      session started through SessionService (no HTTP, no rules), and a bare client.workflow.start.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { compileRule, parseRule } from '../lib/dr/rules';
import { parseEvents, parseRuleSource } from '../api/rule-engine-service';
import { putRule } from '../store/rules';
import { sessionWorkflowId } from '../workflows/messages';
import { TEST_ADMIN_TOKEN, TEST_KEY, sessionContainers, type Harness } from '../test/support/harness';
import { callApi } from '../test/support/http';
import { text } from '../test/support/fake-anthropic';
import { percentile as pct, startBenchStack } from './stack';

const RULE_COUNTS = (process.env.BENCH_DR_RULES ?? '1,100,1000').split(',').map(Number);
const BATCH = Number(process.env.BENCH_DR_BATCH ?? 1000); // events per NDJSON POST, and the in-process batch
const POSTS = Number(process.env.BENCH_DR_POSTS ?? 5);
const EVAL_MS = Number(process.env.BENCH_DR_EVAL_MS ?? 1500); // least time per in-process figure (and its warm-up)
const LATENCY_SAMPLES = Number(process.env.BENCH_DR_LATENCY_SAMPLES ?? 20);

type Rec = Record<string, any>;
type Shape = [detect: object, pred: (e: Rec) => boolean];
const lc = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : '');
const is = (e: Rec, t: string) => e.routing.event_type === t;
// 25 threat-intel lookups of 400 domains each, as hive records; a rule names one of them.
const INTEL = Array.from({ length: 25 }, (_, k) => Array.from({ length: 400 }, (_, j) => `bad${j}.intel${k}.example`));
const intelSets = INTEL.map((l) => new Set(l));
const deepHas = (v: unknown, s: string): boolean => (typeof v === 'string' || typeof v === 'number' ? String(v).includes(s)
  : typeof v === 'object' && v !== null && Object.values(v).some((x) => deepHas(x, s)));

/** Rule i's detect: one of eight shapes seen in real rule sets, with values that rarely match; and JS doing the same checks. */
function ruleAndPredicate(i: number): Shape {
  const re = new RegExp(`payload${i}\\.(ps1|vbs|hta)\\b`, 'i');
  const drivers = 'c:\\windows\\system32\\drivers\\';
  const shapes: Shape[] = [
    [{ event: 'NEW_PROCESS', op: 'contains', path: 'event/COMMAND_LINE', value: `tool-${i}.exe`, 'case sensitive': false },
      (e) => is(e, 'NEW_PROCESS') && lc(e.event.COMMAND_LINE).includes(`tool-${i}.exe`)],
    [{ event: 'NEW_PROCESS', op: 'and', rules: [{ op: 'ends with', path: 'event/FILE_PATH', value: `\\dropper${i}.exe`, 'case sensitive': false },
      { op: 'contains', path: 'event/PARENT/FILE_PATH', value: 'WINWORD' }] },
    (e) => is(e, 'NEW_PROCESS') && lc(e.event.FILE_PATH).endsWith(`\\dropper${i}.exe`) && e.event.PARENT?.FILE_PATH?.includes('WINWORD')],
    [{ event: 'DNS_REQUEST', op: 'or', rules: [{ op: 'ends with', path: 'event/DOMAIN_NAME', value: `.c2-${i}.example` },
      { op: 'is', path: 'event/DOMAIN_NAME', value: `beacon${i}.example` }] },
    (e) => is(e, 'DNS_REQUEST') && (e.event.DOMAIN_NAME.endsWith(`.c2-${i}.example`) || e.event.DOMAIN_NAME === `beacon${i}.example`)],
    [{ event: 'NEW_PROCESS', op: 'matches', path: 'event/COMMAND_LINE', re: re.source }, (e) => is(e, 'NEW_PROCESS') && re.test(e.event.COMMAND_LINE)],
    [{ events: ['DNS_REQUEST'], op: 'lookup', path: 'event/DOMAIN_NAME', resource: `hive://lookup/intel-${i % 25}` },
      (e) => is(e, 'DNS_REQUEST') && intelSets[i % 25].has(e.event.DOMAIN_NAME)],
    [{ event: 'NETWORK_CONNECTIONS', op: 'and', rules: [{ op: 'is', path: 'event/NETWORK_ACTIVITY/DESTINATION/PORT', value: 4000 + i },
      { op: 'exists', path: 'event/NETWORK_ACTIVITY/IS_OUTGOING', truthy: true }] },
    (e) => is(e, 'NETWORK_CONNECTIONS') && e.event.NETWORK_ACTIVITY.some((a: Rec) => a.DESTINATION.PORT === 4000 + i) &&
      e.event.NETWORK_ACTIVITY.some((a: Rec) => a.IS_OUTGOING)],
    [{ event: 'FILE_MODIFIED', op: 'and', rules: [{ op: 'starts with', path: 'event/FILE_PATH', value: drivers, 'case sensitive': false },
      { op: 'ends with', path: 'event/FILE_PATH', value: '.sys', not: true }, { op: 'contains', path: 'event/FILE_PATH', value: `drv${i}.` },
      { op: 'is greater than', path: 'event/SIZE', value: 1_000_000 }] },
    (e) => is(e, 'FILE_MODIFIED') && lc(e.event.FILE_PATH).startsWith(drivers) && !e.event.FILE_PATH.endsWith('.sys') &&
      e.event.FILE_PATH.includes(`drv${i}.`) && e.event.SIZE > 1_000_000],
    // `*` reaches every value under event/: the costliest shape, as it is in LimaCharlie.
    [{ event: 'NEW_PROCESS', op: 'contains', path: 'event/*', value: `secret-${i}` }, (e) => is(e, 'NEW_PROCESS') && deepHas(e.event, `secret-${i}`)],
  ];
  return shapes[i % shapes.length];
}

/** A fixed batch of EDR-shaped events; about 1% carry something a rule looks for. */
function makeEvents(n: number): Rec[] {
  const cmds = ['"C:\\Windows\\system32\\svchost.exe" -k netsvcs -p', 'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe --type=renderer',
    'powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\\ops\\inventory.ps1', 'C:\\Windows\\explorer.exe', 'cmd.exe /c dir C:\\Users'];
  return Array.from({ length: n }, (_, k) => {
    const routing = { hostname: `ws-${k % 50}`, sid: `sensor-${k % 50}`, this: randomUUID(), event_time: 1_760_000_000_000 + k, tags: ['windows', 'prod'] };
    const kind = k % 20; // half processes, a quarter DNS, then connections and file writes
    if (kind < 10) {
      const cmd = k % 100 === 0 ? `C:\\Temp\\tool-${(k / 100) * 8}.exe -a` : k % 100 === 5 ? `wscript payload${((k - 5) / 100) * 8 + 3}.vbs` : cmds[k % cmds.length];
      return { routing: { ...routing, event_type: 'NEW_PROCESS' }, event: {
        COMMAND_LINE: cmd, FILE_PATH: cmd.split(' ')[0].replace(/"/g, ''), PROCESS_ID: 4000 + k, USER_NAME: 'CORP\\alice', HASH: 'e3b0c442'.repeat(8),
        PARENT: { FILE_PATH: k % 7 === 0 ? 'C:\\Program Files\\Microsoft Office\\WINWORD.EXE' : 'C:\\Windows\\explorer.exe', PROCESS_ID: 1200 } } };
    }
    if (kind < 15) {
      return { routing: { ...routing, event_type: 'DNS_REQUEST' }, event: {
        DOMAIN_NAME: k % 200 === 11 ? INTEL[(((k - 11) / 200) * 4) % 25][k % 400] : `api${k % 30}.service.example.com`, IP_ADDRESS: '10.0.0.53', DNS_TYPE: 1 } };
    }
    if (kind < 18) {
      return { routing: { ...routing, event_type: 'NETWORK_CONNECTIONS' }, event: { PROCESS_ID: 4000 + k, NETWORK_ACTIVITY: [
        { SOURCE: { IP_ADDRESS: '10.1.2.3', PORT: 50000 + (k % 1000) }, DESTINATION: { IP_ADDRESS: '93.184.216.34', PORT: 443 }, IS_OUTGOING: 1 },
        { SOURCE: { IP_ADDRESS: '10.1.2.3', PORT: 50001 }, DESTINATION: { IP_ADDRESS: '10.0.0.5', PORT: k % 300 === 17 ? 4005 : 445 }, IS_OUTGOING: 1 }] } };
    }
    return { routing: { ...routing, event_type: 'FILE_MODIFIED' }, event: { FILE_PATH: `C:\\Windows\\System32\\drivers\\${k % 60 === 18 ? `drv${((k - 18) / 60) * 8 + 6}.tmp` : 'ndis.sys'}`, SIZE: 2_000_000, PROCESS_ID: 4 } };
  });
}

/** Runs the passes in alternation, so background load hits each alike, for at least `rounds` and `minMs`: ms spent in each. */
async function alternate(passes: Array<() => unknown>, rounds: number, minMs = 0): Promise<{ ms: number[]; rounds: number }> {
  const ms = passes.map(() => 0);
  let n = 0;
  for (const t = performance.now(); n < rounds || performance.now() - t < minMs; n++) {
    for (const [i, pass] of passes.entries()) {
      const t0 = performance.now();
      await pass();
      ms[i] += performance.now() - t0;
    }
  }
  return { ms, rounds: n };
}

/** In process: the engine's compiled rules over the batch against the JS predicates, as events per second. */
async function evaluate(events: Rec[], slice: Shape[]) {
  const compiled = slice.map(([detect]) => compileRule(parseRule({ detect, respond: [{ action: 'report', name: 'r' }] })));
  const resolve = (name: string) => intelSets[Number(name.replace('intel-', ''))]; // names as ingestEvents hands them over
  const preds = slice.map(([, p]) => p);
  const passes = [
    () => { // the loop of ingestEvents: every rule on every event, a fresh input object each time
      let hits = 0;
      for (const record of events) for (const run of compiled) if (run({ target: 'event', record }, resolve)) hits++;
      return hits;
    },
    () => {
      let hits = 0;
      for (const e of events) for (const p of preds) if (p(e)) hits++;
      return hits;
    },
  ];
  const [hits, baseHits] = passes.map((p) => p());
  if (hits !== baseHits) throw new Error(`${slice.length} rules: the engine matched ${hits}, the JS predicates ${baseHits}`);
  // V8 tiers up each rule's closures on its own: 1,000 rules need 3-4 passes before their speed settles.
  await alternate(passes, 4, EVAL_MS);
  const { ms, rounds } = await alternate(passes, 3, EVAL_MS);
  const [ours, base] = ms.map((m) => (events.length * rounds) / (m / 1000));
  return { ours, base, hits };
}

async function main() {
  const t0 = performance.now();
  const progress = (what: string) => console.error(`${((performance.now() - t0) / 1000).toFixed(0)} s: ${what}`);
  // Pure evaluation first, before the stack shares this process (a long synchronous loop would also
  // stall the gateway's timers and break idle keep-alive sockets).
  const events = makeEvents(BATCH);
  const all = Array.from({ length: Math.max(...RULE_COUNTS) }, (_, i) => ruleAndPredicate(i));
  const evaluated = [];
  for (const count of RULE_COUNTS) evaluated.push(await evaluate(events, all.slice(0, count)));
  progress('evaluated in process');
  const { h, stop } = await startBenchStack({ IDEMPOTENCY_WINDOW_SECONDS: '3600' });
  const sessions: string[] = [];
  const bare = express().post('/events', express.text({ type: 'application/x-ndjson', limit: '10mb' }), (req, res) => {
    res.json({ events: parseEvents(req.body).length }); // the floor: receive and parse the NDJSON, nothing else
  }).listen(0, '127.0.0.1');
  try {
    const gw = await h.startGateway(); // stopped by h.close()
    const bareUrl = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/events`;
    const ndjson = events.map((e) => JSON.stringify(e)).join('\n');
    const k = (x: number) => Math.round(x).toLocaleString('en');
    const lines = [`ai-sessions D&R bench — ${os.cpus().length} cores, ${BATCH} events per batch, ${POSTS} POSTs per rule count, ${LATENCY_SAMPLES} launches`, '',
      '| rules | evaluator ev/s | JS predicates ev/s | ratio (time/event) | endpoint ev/s | bare express parse ev/s | ratio | matches/batch |',
      '|---|---|---|---|---|---|---|---|'];
    let latencyOrg: (Org & { rules: number }) | undefined;
    for (const [j, count] of RULE_COUNTS.entries()) {
      progress(`${count} rules: storing them, posting events`);
      const { ours, base, hits } = evaluated[j];
      const org = await newOrg(h, gw.url, `bench-${count}`, all.slice(0, count).map(([detect], i) => ({ detect, respond: [{ action: 'report', name: `r${i}` }] })));
      if (count <= 100 || !latencyOrg) latencyOrg = { ...org, rules: count }; // the largest org up to 100 rules
      const post = (url: string, token: string | undefined, ok: (b: any) => boolean) => async () => {
        const send = () => callApi(url, 'POST', '', { token, body: ndjson, contentType: 'application/x-ndjson' });
        // An in-process server busy evaluating can close an idle keep-alive socket just as it is reused: send again.
        const r = await send().catch((err: Error & { cause?: { code?: string } }) => {
          if (err.cause?.code !== 'ECONNRESET') throw err;
          return send();
        });
        if (r.status !== 200 || !ok(r.body)) throw new Error(`unexpected answer ${r.status}: ${r.raw.slice(0, 300)}`);
      };
      const passes = [
        post(`${gw.url}/v1/orgs/${org.id}/events`, org.key, (b) => b.events === BATCH && b.errors.length === 0 && b.matches.length === hits),
        post(bareUrl, undefined, (b) => b.events === BATCH),
      ];
      await alternate(passes, 1); // warm-up
      const { ms: [endpoint, parsed] } = await alternate(passes, POSTS);
      const eps = (ms: number) => (BATCH * POSTS) / (ms / 1000);
      lines.push(`| ${count} | ${k(ours)} | ${k(base)} | ${(base / ours).toFixed(1)}× | ${k(eps(endpoint))} | ${k(eps(parsed))} | ${(endpoint / parsed).toFixed(1)}× | ${hits} |`);
    }

    progress('measuring launches');
    const lat = await launchLatency(h, latencyOrg!, sessions);
    const f = (xs: number[], p: number) => `${pct(xs, p).toFixed(0)} ms`;
    const row = (name: string, xs: number[]) => `| ${name} | ${f(xs, 50)} | ${f(xs, 95)} | ${f(xs, 99)} | ${(pct(xs, 50) / pct(lat.bare, 50)).toFixed(1)}× |`;
    lines.push('', `event arrival → session workflow start (Temporal startTime), org with ${latencyOrg!.rules} rules + the launching one:`, '',
      '| path | p50 | p95 | p99 | vs bare start (p50) |', '|---|---|---|---|---|',
      row('NDJSON event → rule engine → `start ai agent` → sessionWorkflow', lat.ours),
      row('SessionService.start, same one-shot session (no HTTP, no rules)', lat.service),
      row('bare `client.workflow.start` of a trivial workflow', lat.bare));
    console.log(lines.join('\n'));
  } finally {
    bare.close();
    for (const id of sessions) {
      await h.service.terminate(id, 'user_requested').catch(() => undefined);
      for (const c of await sessionContainers(h.docker, id)) await h.docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    await stop();
  }
}

type Org = Awaited<ReturnType<typeof newOrg>>;

/**
 * An organization with the intel lookups, the model key as a hive secret, and its rules, checked as
 * PUT /rules/:name checks them but stored directly (that route re-reads every rule of the org per PUT).
 */
async function newOrg(h: Harness, url: string, name: string, rules: object[]) {
  const created = await callApi(url, 'POST', '/v1/admin/orgs', { token: TEST_ADMIN_TOKEN, body: { name } });
  const org = { id: created.body.org.id as string, key: created.body.api_key as string, url };
  const put = async (path: string, body: unknown) => {
    const res = await callApi(url, 'PUT', `/v1/orgs/${org.id}${path}`, { token: org.key, body });
    if (res.status >= 300) throw new Error(`PUT ${path}: ${res.status} ${res.raw}`);
  };
  await put('/hive/secret/anthropic-key', { data: { secret: TEST_KEY } });
  for (const [i, values] of INTEL.entries()) await put(`/hive/lookup/intel-${i}`, { data: { values } });
  for (const [i, body] of rules.entries()) {
    const { rule, source } = parseRuleSource(body);
    await putRule(h.db, { orgId: org.id, name: `r${String(i).padStart(4, '0')}`, enabled: true, source, rule });
  }
  return { ...org, put };
}

/**
 * One launch of each kind per sample, interleaved so drift hits all three alike; each session is
 * waited out before the next, so no sample queues behind another's sandbox.
 */
async function launchLatency(h: Harness, org: Org, sessions: string[]) {
  await org.put('/rules/launch', {
    detect: { event: 'NEW_PROCESS', op: 'contains', path: 'event/COMMAND_LINE', value: 'bench-launch' },
    respond: [{ action: 'start ai agent', prompt: 'Look into {{ .event.COMMAND_LINE }} on {{ .routing.hostname }}.',
      anthropic_secret: 'hive://secret/anthropic-key', idempotent_key: '{{ .routing.this }}' }], // a fresh key per event
  });
  h.fake.setResponder(() => text('Looked into it.'));
  const startedAt = async (id: string) => (await h.client.workflow.getHandle(id).describe()).startTime.getTime();
  const ended = async (id: string) => {
    sessions.push(id);
    const end = await h.waitForEnd(id);
    if (end.endReason !== 'completed') throw new Error(`session ${id} ended ${end.endReason}: ${end.errorMessage}`);
  };
  const out = { ours: [] as number[], service: [] as number[], bare: [] as number[] };
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const event = { routing: { hostname: 'ws-7', event_type: 'NEW_PROCESS', this: randomUUID() }, event: { COMMAND_LINE: `bench-launch ${i}` } };
    let t = Date.now();
    const res = await callApi(org.url, 'POST', `/v1/orgs/${org.id}/events`, { token: org.key, body: JSON.stringify(event), contentType: 'application/x-ndjson' });
    const launched = res.body.sessions?.[0];
    if (launched?.status !== 'started') throw new Error(`event ${i} started no session: ${res.raw.slice(0, 300)}`);
    out.ours.push((await startedAt(sessionWorkflowId(launched.session_id))) - t);
    await ended(launched.session_id);

    t = Date.now();
    const id = await h.startSession({ prompt: `bench-launch ${i}`, profile: { one_shot: true }, trigger: 'dr', ownerId: org.id });
    out.service.push((await startedAt(sessionWorkflowId(id))) - t);
    await ended(id);

    const workflowId = `bench-noop-${randomUUID()}`; // a type no worker polls for: only the start is measured
    t = Date.now();
    const handle = await h.client.workflow.start('benchNoop', { workflowId, taskQueue: `bench-noop-${process.pid}` });
    out.bare.push((await startedAt(workflowId)) - t);
    await handle.terminate('bench');
  }
  h.fake.setResponder(undefined);
  return out;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
