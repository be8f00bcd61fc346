import WebSocket from 'ws';
import { mintToken } from '../api/auth';
import { TEST_JWT_SECRET, TEST_KEY, useHarness, type Harness } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';
import { createSession } from '../store/sessions';

type Frame = { type: string; timestamp: string; session_id: string; seq?: number; payload: Record<string, unknown> };

/**
 * The reference's "Complete Session Flow", step by step, as a client written
 * against that documentation would do it: plain fetch and the ws package,
 * nothing of ours on the client side but the base URL and the token.
 */
describe('the complete session flow of the reference', () => {
  let gateway: Awaited<ReturnType<Harness['startGateway']>>;
  const h = useHarness();
  beforeAll(async () => {
    gateway = await h.startGateway();
  });

  it('creates a session, waits for it to run, talks over the WebSocket and ends it', async () => {
    const jwt = await mintToken(TEST_JWT_SECRET, { sub: 'flow-user' });
    const baseUrl = gateway.url;
    const headers = { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' };
    expect((await fetch(`${baseUrl}/v1/register`, { method: 'POST', headers })).status).toBe(200);
    expect((await fetch(`${baseUrl}/v1/auth/claude/apikey`, { method: 'POST', headers, body: JSON.stringify({ api_key: TEST_KEY }) })).status).toBe(200);

    // 1. Create session
    const createResp = await fetch(`${baseUrl}/v1/sessions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ allowed_tools: ['Bash', 'Read', 'Write'] }),
    });
    expect(createResp.status).toBe(201);
    const { session } = (await createResp.json()) as { session: { id: string; status: string } };
    expect(session.status).toBe('starting');

    // 2. Wait for session to be running
    let status = 'starting';
    while (status === 'starting') {
      await new Promise((r) => setTimeout(r, 200));
      const resp = await fetch(`${baseUrl}/v1/sessions/${session.id}`, { headers: { Authorization: `Bearer ${jwt}` } });
      status = ((await resp.json()) as { session: { status: string } }).session.status;
    }
    expect(status).toBe('running');

    // 3. Connect via WebSocket
    const ws = new WebSocket(`${baseUrl.replace('http', 'ws')}/v1/sessions/${session.id}/ws?token=${jwt}`);
    const frames: Frame[] = [];
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('message', (data) => frames.push(JSON.parse(String(data)) as Frame));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });

    // 4. Set up heartbeat (the client sends one; the server answers)
    ws.send(JSON.stringify({ type: 'heartbeat' }));

    // 5/6. Send a prompt; the model lists the files with Bash, then answers.
    h.fake.enqueue(toolUse('Bash', { command: 'ls -la /workspace' }), text('Here are the files in the current directory.'));
    ws.send(JSON.stringify({ type: 'prompt', payload: { text: 'Hello! List the files in the current directory.' } }));
    await waitFor(() => frames.some((f) => f.type === 'result'));

    const of = (type: string) => frames.filter((f) => f.type === type);
    expect(of('user')[0].payload).toEqual({ text: 'Hello! List the files in the current directory.' });
    expect(of('tool_use')[0].payload).toMatchObject({ name: 'Bash', input: { command: 'ls -la /workspace' } });
    expect(String(of('tool_result')[0].payload.content)).toMatch(/total \d+/);
    expect(of('assistant')).toHaveLength(1);
    expect(of('assistant')[0].payload).toMatchObject({ content: [{ type: 'text', text: 'Here are the files in the current directory.' }] });
    expect(of('result')[0].payload).toMatchObject({ success: true, summary: 'Here are the files in the current directory.' });
    for (const f of frames) {
      expect(f.session_id).toBe(session.id);
      expect(Number.isNaN(Date.parse(f.timestamp))).toBe(false);
    }
    const seqs = frames.filter((f) => f.seq !== undefined).map((f) => f.seq!);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);

    // 7. Interrupt when nothing runs: acknowledged, nothing interrupted.
    ws.send(JSON.stringify({ type: 'interrupt' }));
    await waitFor(() => of('interrupt_ack').length > 0);
    expect(of('interrupt_ack')[0].payload).toEqual({ interrupted: false });

    // File transfer over the socket: upload_request → upload_url, PUT, upload_complete, download_request → download_url.
    const bytes = Buffer.from(`evidence ${'x'.repeat(5000)} end`);
    ws.send(JSON.stringify({ type: 'upload_request', payload: { request_id: 'up-1', filename: 'evidence.txt', content_type: 'text/plain', size: bytes.length } }));
    await waitFor(() => of('upload_url').length > 0);
    const ticket = of('upload_url')[0].payload as { request_id: string; url: string; target_path: string };
    expect(ticket).toMatchObject({ request_id: 'up-1', target_path: '/workspace/uploads/evidence.txt' });
    expect((await fetch(ticket.url, { method: 'PUT', body: bytes })).status).toBeLessThan(300);
    ws.send(JSON.stringify({ type: 'upload_complete', payload: { request_id: 'up-2', filename: 'evidence.txt', path: ticket.target_path } }));
    await waitFor(() => of('upload_complete_ack').length > 0 || of('error').length > 0);
    expect(of('upload_complete_ack')[0].payload).toMatchObject({ request_id: 'up-2', success: true, path: '/workspace/uploads/evidence.txt' });
    ws.send(JSON.stringify({ type: 'download_request', payload: { request_id: 'down-1', path: '/workspace/uploads/evidence.txt' } }));
    await waitFor(() => of('download_url').length > 0 || of('error').length > 0);
    const link = of('download_url')[0].payload as { request_id: string; url: string };
    expect(link.request_id).toBe('down-1');
    expect(Buffer.from(await (await fetch(link.url)).arrayBuffer()).equals(bytes)).toBe(true);
    ws.send(JSON.stringify({ type: 'download_request', payload: { request_id: 'down-2', path: '/etc/passwd' } }));
    await waitFor(() => of('error').some((f) => f.payload.request_id === 'down-2'));
    expect(of('error').find((f) => f.payload.request_id === 'down-2')!.payload.message).toMatch(/outside \/workspace/);

    // 8. Cleanup: terminating the session sends session_end and closes the socket with 4100.
    expect((await fetch(`${baseUrl}/v1/sessions/${session.id}`, { method: 'DELETE', headers })).status).toBe(200);
    expect(await closed).toBe(4100);
    expect(of('session_end')[0].payload).toMatchObject({ reason: 'user_requested' });
    const final = (await (await fetch(`${baseUrl}/v1/sessions/${session.id}`, { headers })).json()) as { session: Record<string, unknown> };
    expect(final.session).toMatchObject({ status: 'ended', end_reason: 'user_requested', exit_code: 0, error_message: null });
  });

  it('closes a connection to a session that is not running yet with 4009', async () => {
    const jwt = await mintToken(TEST_JWT_SECRET, { sub: 'flow-user' });
    // A session row still starting (no workflow behind it, so it stays that way for the test).
    await createSession(h.db, h.keyring, {
      id: 'still-starting', ownerType: 'user', ownerId: 'flow-user', trigger: 'user', model: 'm', profile: {}, workflowId: 'none',
    });
    const ws = new WebSocket(`${gateway.url.replace('http', 'ws')}/v1/sessions/still-starting/ws?token=${jwt}`);
    const code = await new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
    expect(code).toBe(4009);
  });
});

async function waitFor(check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
