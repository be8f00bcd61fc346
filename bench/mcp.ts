/**
 * `npx tsx bench/mcp.ts`: MCP servers on the real stack, one run.
 *   1. a turn that calls one MCP tool, against the same work done directly: two
 *      model calls plus the SDK calling the same server (HTTP on this host, or
 *      stdio inside a sandbox over the same exec transport); and the call alone
 *      (its tool_use event to its tool_result event) against the SDK's call;
 *   2. session start → first model request (tools listed and offered) with 0,
 *      1 and 5 servers, HTTP and stdio, against 0 servers.
 */
import os from 'node:os';
import Anthropic from '@anthropic-ai/sdk';
import Docker from 'dockerode';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { loadConfig } from '../lib/config';
import type { SessionProfile } from '../lib/profile';
import { DockerSandboxes } from '../activities/docker-sandbox';
import { SandboxStdioTransport } from '../activities/mcp-transport';
import { TEST_KEY, type Harness } from '../test/support/harness';
import { text, toolUse } from '../test/support/fake-anthropic';
import { McpHttpTestServer } from '../test/support/mcp-http-server';
import { ensureMcpTestImage, mcpTestImage, STDIO_SERVER } from '../test/support/mcp-stdio-image';
import { percentile as pct, startBenchStack } from './stack';

const N = Number(process.env.BENCH_SAMPLES ?? 10);
const STARTS = Number(process.env.BENCH_START_SAMPLES ?? 5);
const API_KEY = 'bench-mcp-key-0123456789';

const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
const row = (name: string, ours: number[], base: number[]) => {
  const [o50, o95, b50, b95] = [pct(ours, 50), pct(ours, 95), pct(base, 50), pct(base, 95)];
  return `| ${name} | ${fmt(o50)} | ${fmt(o95)} | ${fmt(b50)} | ${fmt(b95)} | ${fmt(o50 - b50)} | ${(o50 / b50).toFixed(2)}× |`;
};

async function main() {
  const docker = new Docker();
  const base = loadConfig({ ...process.env, LOG_LEVEL: 'warn' }).runnerImage;
  const { h, stop } = await startBenchStack({ RUNNER_IMAGE: mcpTestImage() });
  const server = await McpHttpTestServer.start({ apiKey: API_KEY });
  try {
    await ensureMcpTestImage(docker, base);
    const http = { type: 'http' as const, url: server.url, headers: { 'x-api-key': API_KEY } };
    const lines = [
      `ai-sessions MCP bench — ${os.cpus().length} cores, ${N} calls, ${STARTS} starts per row, one run`,
      '',
      '| measure | ours p50 | ours p95 | baseline p50 | baseline p95 | added (p50) | ratio (p50) |',
      '|---|---|---|---|---|---|---|',
    ];
    for (const [kind, servers, tool, direct] of [
      ['HTTP', { intel: http }, 'mcp__intel__echo', () => directHttp(server.url)],
      ['stdio', { box: STDIO_SERVER }, 'mcp__box__whereami', () => directStdio(docker)],
    ] as const) {
      const r = await callLatency(h, servers, tool, direct);
      lines.push(row(`turn with one ${kind} MCP call (vs 2 model calls + SDK callTool)`, r.turn, r.directTurn));
      lines.push(row(`${kind} MCP call alone: tool_use event → tool_result event (vs SDK callTool)`, r.call, r.directCall));
    }
    // Round-robin over the server counts, so drift in the machine's load touches every row alike.
    const configs: Array<[string, NonNullable<SessionProfile['mcp_servers']>]> = [
      ['none', {}],
      ['1 HTTP server', { a: http }],
      ['5 HTTP servers', Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((n) => [n, http]))],
      ['1 stdio server', { a: STDIO_SERVER }],
      ['5 stdio servers', Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((n) => [n, STDIO_SERVER]))],
    ];
    const starts = configs.map((): number[] => []);
    for (let i = 0; i < STARTS; i++) {
      for (const [j, [, servers]] of configs.entries()) starts[j]!.push(await startToTools(h, servers));
    }
    for (const [j, [label]] of configs.entries()) {
      if (j > 0) lines.push(row(`start → tools offered, ${label} (vs none)`, starts[j]!, starts[0]!));
    }
    lines.push('', `start → tools offered with no MCP server: p50 ${fmt(pct(starts[0]!, 50))}`);
    console.log(lines.join('\n'));
  } finally {
    await server.close();
    await stop();
  }
}

type Direct = { call(): Promise<void>; close(): Promise<void> };

/** Prompt → result of a turn calling one MCP tool, against two direct model calls and a direct SDK call. */
async function callLatency(h: Harness, servers: SessionProfile['mcp_servers'], tool: string, direct: () => Promise<Direct>) {
  const ours: number[] = [];
  const base: number[] = [];
  const call: number[] = [];
  const directCall: number[] = [];
  const id = await h.startSession({ profile: { permission_mode: 'bypassPermissions', mcp_servers: servers } });
  await h.waitForEvent(id, (e) => e.type === 'system' && e.payload.subtype === 'mcp_servers');
  const model = new Anthropic({ apiKey: TEST_KEY, baseURL: h.fake.url, maxRetries: 0 });
  const sdk = await direct();
  const input = tool.endsWith('echo') ? { text: 'hi' } : {};
  for (let i = 0; i < N; i++) {
    h.fake.enqueue(toolUse(tool, input), text(`turn ${i} done`));
    const t = performance.now();
    await h.service.prompt(id, `turn ${i}`);
    await h.waitForEvent(id, (e) => e.type === 'result' && e.payload.summary === `turn ${i} done`, 60_000);
    ours.push(performance.now() - t);
    const events = await h.events(id);
    const asked = events.filter((e) => e.type === 'tool_use').at(-1)!;
    const answered = events.find((e) => e.type === 'tool_result' && e.payload.tool_use_id === asked.payload.id)!;
    call.push(Date.parse(answered.created_at) - Date.parse(asked.created_at));

    h.fake.enqueue(toolUse(tool, input), text('direct'));
    const t0 = performance.now();
    const params = { model: 'claude-sonnet-4-6', max_tokens: 1024, messages: [{ role: 'user' as const, content: 'go' }] };
    const first = await model.messages.stream(params).finalMessage();
    const c0 = performance.now();
    await sdk.call();
    directCall.push(performance.now() - c0);
    const use = first.content.find((c) => c.type === 'tool_use');
    await model.messages.stream({
      ...params,
      messages: [
        ...params.messages,
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use?.type === 'tool_use' ? use.id : '', content: 'x' }] },
      ],
    }).finalMessage();
    base.push(performance.now() - t0);
  }
  await sdk.close();
  await h.service.terminate(id, 'user_requested');
  await h.waitForEnd(id);
  return { turn: ours, directTurn: base, call, directCall };
}

async function directHttp(url: string): Promise<Direct> {
  const client = new Client({ name: 'bench', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { 'x-api-key': API_KEY } } }));
  return { call: async () => void (await client.callTool({ name: 'echo', arguments: { text: 'hi' } })), close: () => client.close() };
}

async function directStdio(docker: Docker): Promise<Direct> {
  const sandboxes = new DockerSandboxes(docker);
  const sessionId = `bench-mcp-${process.pid}`;
  const { containerId } = await sandboxes.provision({ sessionId, image: mcpTestImage(), env: {}, network: false, cpus: 1, memoryMb: 1024, pidsLimit: 256 });
  const client = new Client({ name: 'bench', version: '1' });
  await client.connect(new SandboxStdioTransport(() => sandboxes.spawn(containerId, [STDIO_SERVER.command, ...STDIO_SERVER.args], {}), 8 << 20));
  return {
    call: async () => void (await client.callTool({ name: 'whereami', arguments: {} })),
    close: async () => {
      await client.close();
      await sandboxes.destroy(sessionId);
    },
  };
}

/** Session start → the first model request, which carries the offered tools. */
async function startToTools(h: Harness, servers: NonNullable<SessionProfile['mcp_servers']>): Promise<number> {
  h.fake.reset();
  let seen = 0;
  h.fake.setResponder((req) => {
    seen = req.receivedAt;
    return text('ready');
  });
  const t = Date.now();
  const id = await h.startSession({ prompt: 'go', profile: { permission_mode: 'bypassPermissions', one_shot: true, mcp_servers: servers } });
  await h.waitForEnd(id);
  const offered = (h.fake.requests[0]?.body.tools ?? []).filter((x: { name: string }) => x.name.startsWith('mcp__')).length;
  if (Object.keys(servers).length > 0 && offered === 0) throw new Error('no MCP tool was offered: see the session events');
  h.fake.setResponder(undefined);
  return seen - t;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
