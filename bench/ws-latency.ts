/**
 * Streaming latency: from the model stand-in writing a text delta to a
 * WebSocket client receiving it through the whole path (SDK stream, activity,
 * NOTIFY, gateway fan-out), with 1, 100 and 1,000 clients on one session —
 * against a bare ws server broadcasting to the same number of clients.
 */
import http from 'node:http';
import os from 'node:os';
import WebSocket, { WebSocketServer } from 'ws';
import { mintToken } from '../api/auth';
import { TEST_JWT_SECRET } from '../test/support/harness';
import { text } from '../test/support/fake-anthropic';
import { percentile, startBenchStack } from './stack';

const CLIENT_COUNTS = (process.env.BENCH_WS_CLIENTS ?? '1,100,1000').split(',').map(Number);
const PIECES = Number(process.env.BENCH_WS_PIECES ?? 40);
const PIECE_GAP_MS = 25;
const marker = (k: number) => `<${String(k).padStart(4, '0')}>`;

async function openClients(url: string, n: number, onFrame: (data: string, at: number) => void): Promise<WebSocket[]> {
  const clients: WebSocket[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = Array.from({ length: Math.min(50, n - i) }, () => {
      const ws = new WebSocket(url);
      ws.on('message', (d) => onFrame(String(d), performance.now()));
      return new Promise<WebSocket>((resolve, reject) => {
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    });
    clients.push(...(await Promise.all(batch)));
  }
  return clients;
}

async function main() {
  const { h, stop } = await startBenchStack({ WS_MESSAGES_PER_SECOND: '1000' });
  const gateway = await h.startGateway();
  const lines = [
    `ai-sessions streaming bench — ${os.cpus().length} cores, ${PIECES} text deltas ${PIECE_GAP_MS} ms apart per run`,
    '',
    '| clients | ours p50 | ours p99 | bare ws broadcast p50 | bare ws broadcast p99 | ratio (p50) |',
    '|---|---|---|---|---|---|',
  ];
  try {
    const token = await mintToken(TEST_JWT_SECRET, { sub: 'user-1' });
    const sessionId = await h.startSession({ profile: { permission_mode: 'bypassPermissions' } });
    await h.waitForEvent(sessionId, (e) => e.type === 'session_status' && e.payload.status === 'running');
    for (const n of CLIENT_COUNTS) {
      const ours = await throughGateway(h, gateway.url, token, sessionId, n);
      const base = await bareBroadcast(n);
      const f = (x: number) => `${x.toFixed(1)} ms`;
      lines.push(`| ${n} | ${f(percentile(ours, 50))} | ${f(percentile(ours, 99))} | ${f(percentile(base, 50))} | ${f(percentile(base, 99))} | ${(percentile(ours, 50) / percentile(base, 50)).toFixed(1)}× |`);
    }
    console.log(lines.join('\n'));
  } finally {
    await gateway.stop();
    await stop();
  }
}

async function throughGateway(
  h: Awaited<ReturnType<typeof startBenchStack>>['h'],
  url: string,
  token: string,
  sessionId: string,
  n: number,
): Promise<number[]> {
  const emitted = new Map<string, number>();
  const latencies: number[] = [];
  let results = 0;
  const clients = await openClients(`${url.replace('http', 'ws')}/v1/sessions/${sessionId}/ws?token=${token}`, n, (data, at) => {
    const frame = JSON.parse(data) as { type: string; payload: { text?: string } };
    if (frame.type === 'result') results += 1;
    if (frame.type !== 'assistant_delta') return;
    for (const m of frame.payload.text!.match(/<\d{4}>/g) ?? []) {
      const sent = emitted.get(m);
      if (sent !== undefined) latencies.push(at - sent);
    }
  });
  h.fake.onTextDelta = (piece) => {
    for (const m of piece.match(/<\d{4}>/g) ?? []) emitted.set(m, performance.now());
  };
  const body = Array.from({ length: PIECES }, (_, k) => marker(k)).join('');
  h.fake.enqueue(text(body, { textParts: PIECES, chunkDelayMs: PIECE_GAP_MS }));
  const resultsBefore = results;
  await h.service.prompt(sessionId, `stream to ${n} clients`);
  const deadline = Date.now() + 120_000;
  while (results < resultsBefore + n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  h.fake.onTextDelta = undefined;
  for (const c of clients) c.terminate();
  return latencies;
}

async function bareBroadcast(n: number): Promise<number[]> {
  const server = http.createServer();
  const wss = new WebSocketServer({ server });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const latencies: number[] = [];
  const sentAt = new Map<string, number>();
  const clients = await openClients(`ws://127.0.0.1:${port}`, n, (data, at) => {
    const m = JSON.parse(data).text as string;
    latencies.push(at - sentAt.get(m)!);
  });
  for (let k = 0; k < PIECES; k++) {
    const m = marker(k);
    sentAt.set(m, performance.now());
    const frame = JSON.stringify({ type: 'assistant_delta', payload: {}, text: m });
    for (const ws of wss.clients) ws.send(frame);
    await new Promise((r) => setTimeout(r, PIECE_GAP_MS));
  }
  await new Promise((r) => setTimeout(r, 500));
  for (const c of clients) c.terminate();
  wss.close();
  await new Promise((r) => server.close(r));
  return latencies;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
