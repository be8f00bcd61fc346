import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import pino from 'pino';
import { sessionContainers, useHarness } from './support/harness';
import { decodedHistoryText } from './support/history';
import { message, text, type ScriptedBlock } from './support/fake-anthropic';
import { LONG_TOOL_NAME, McpHttpTestServer, PNG_BASE64 } from './support/mcp-http-server';
import { ensureMcpTestImage, mcpTestImage, STDIO_SERVER } from './support/mcp-stdio-image';
import { loadConfig } from '../lib/config';
import { mcpResultContent, mcpToolName, MODEL_TOOL_NAME, redactor, type McpContent } from '../lib/mcp';
import { parseProfile, type SessionProfile } from '../lib/profile';
import { createOrg } from '../store/orgs';
import { putHive } from '../store/hive';
import type { StoredEvent } from '../store/events';
import { sessionWorkflowId } from '../workflows/messages';

/**
 * MCP servers on the real stack: an HTTP server written with the SDK (on this
 * host) and a Python stdio server inside the session's sandbox, called by the
 * stand-in model through the workflow, the permission check and the activities.
 */

describe('mcp_servers in a profile', () => {
  const cases: Array<{ name: string; servers: unknown; error: RegExp }> = [
    { name: 'an unknown type', servers: { vt: { type: 'websocket', url: 'http://x' } }, error: /mcp_servers\.vt\.type: must be "http" or "stdio"/ },
    { name: 'no type', servers: { vt: { url: 'http://x' } }, error: /mcp_servers\.vt\.type: must be "http" or "stdio"/ },
    { name: 'http without url', servers: { vt: { type: 'http' } }, error: /mcp_servers\.vt\.url: required when type is http/ },
    { name: 'stdio without command', servers: { t: { type: 'stdio', args: ['x'] } }, error: /mcp_servers\.t\.command: required when type is stdio/ },
    { name: 'a url that is not http(s)', servers: { vt: { type: 'http', url: 'file:///etc/passwd' } }, error: /mcp_servers\.vt\.url: url must be an http/ },
    { name: 'a field of the other type', servers: { vt: { type: 'http', url: 'http://x', command: 'y' } }, error: /mcp_servers\.vt/ },
    { name: 'a server name with a space', servers: { 'v t': { type: 'http', url: 'http://x' } }, error: /server names are letters, digits, - and single _/ },
    { name: 'a server name with a double underscore', servers: { v__t: { type: 'http', url: 'http://x' } }, error: /server names are letters, digits, - and single _/ },
    { name: 'a server name too long for mcp__<server>__<tool>', servers: { ['s'.repeat(57)]: { type: 'http', url: 'http://x' } }, error: /at most 56 characters/ },
    { name: 'a bad env name', servers: { t: { type: 'stdio', command: 'x', env: { 'A-B': '1' } } }, error: /mcp_servers\.t\.env\.A-B: environment names/ },
    { name: 'a header value with a line break', servers: { vt: { type: 'http', url: 'http://x', headers: { a: 'b\r\nc: d' } } }, error: /header values cannot hold line breaks/ },
  ];
  test.each(cases)('refuses $name, naming the field', ({ servers, error }) => {
    expect(() => parseProfile({ mcp_servers: servers })).toThrow(error);
  });

  it('accepts the reference examples (56-character server names included)', () => {
    expect(() => parseProfile({
      mcp_servers: {
        virustotal: { type: 'http', url: 'https://vt-mcp.example.com', headers: { 'x-apikey': 'hive://secret/vt-api-key' } },
        'custom-tool': { type: 'stdio', command: '/usr/bin/my-tool', args: ['--config', '/etc/my-tool.conf'], env: { API_KEY: 'hive://secret/tool-api-key' } },
        ['s'.repeat(56)]: { type: 'http', url: 'http://127.0.0.1:1/mcp' },
      },
    })).not.toThrow();
  });
});

describe('MCP tool names', () => {
  it.each<[server: string, tool: string, expected: RegExp | string]>([
    ['vt', 'scan', 'mcp__vt__scan'],
    ['threat-intel_v2', 'get__thing', 'mcp__threat-intel_v2__get__thing'],
    ['s'.repeat(56), 'x', `mcp__${'s'.repeat(56)}__x`],
    ['s'.repeat(56), 'xy', /not offered: mcp__s+__xy has 65 characters, more than the 64/],
    ['vt', 't'.repeat(57), /has 66 characters/],
    ['vt', 'files.read', /tool "files\.read" of MCP server vt is not offered: tool names may use only letters, digits, _ and -/],
    ['vt', 'a/b', /may use only letters/],
    ['vt', '', /may use only letters/],
  ])('%s + %s', (server, tool, expected) => {
    const r = mcpToolName(server, tool);
    if (typeof expected === 'string') expect(r).toEqual({ name: expected });
    else expect('problem' in r && r.problem).toMatch(expected);
  });
});

describe('MCP results as tool_result content', () => {
  const png = { type: 'image', data: 'iVBORw0K', mimeType: 'image/png' };
  it.each<[label: string, result: { content?: McpContent[]; structuredContent?: unknown }, max: number, expected: unknown[]]>([
    ['text', { content: [{ type: 'text', text: 'hi' }] }, 100, [{ type: 'text', text: 'hi' }]],
    ['an image the model takes', { content: [png] }, 100, [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0K' } }]],
    ['an image it does not', { content: [{ type: 'image', data: 'PHN2Zz4=', mimeType: 'image/svg+xml' }] }, 100,
      [{ type: 'text', text: '[image of type image/svg+xml not shown: the model takes PNG, JPEG, GIF and WebP]' }]],
    ['an image over the cap', { content: [{ type: 'text', text: 'x' }, png] }, 5, [{ type: 'text', text: 'x' }, { type: 'text', text: '[image omitted: 8 bytes of image/png is over the 5-byte result limit]' }]],
    ['an embedded text resource', { content: [{ type: 'resource', resource: { uri: 'file:///a', text: 'body' } }] }, 100, [{ type: 'text', text: 'body' }]],
    ['an embedded binary resource', { content: [{ type: 'resource', resource: { uri: 'file:///a.bin', mimeType: 'application/zip', blob: 'AAA=' } }] }, 100,
      [{ type: 'text', text: '[binary resource file:///a.bin (application/zip) not shown]' }]],
    ['a resource link', { content: [{ type: 'resource_link', uri: 'https://x/y', name: 'report' }] }, 100, [{ type: 'text', text: '[resource report https://x/y]' }]],
    ['audio', { content: [{ type: 'audio', data: 'AAA=', mimeType: 'audio/wav' }] }, 100, [{ type: 'text', text: '[audio content not shown]' }]],
    ['structured content alone', { content: [], structuredContent: { score: 3 } }, 100, [{ type: 'text', text: '{"score":3}' }]],
    ['nothing', { content: [] }, 100, [{ type: 'text', text: '(no output)' }]],
    ['text over the cap, across blocks', { content: [{ type: 'text', text: 'abc' }, { type: 'text', text: 'defgh' }] }, 5,
      [{ type: 'text', text: 'abc' }, { type: 'text', text: 'de' }, { type: 'text', text: '[output truncated: 8 bytes in all, at most 5 shown]' }]],
    ['a cut inside a character', { content: [{ type: 'text', text: 'aé' }] }, 2, [{ type: 'text', text: 'a' }, { type: 'text', text: '[output truncated: 3 bytes in all, at most 2 shown]' }]],
  ])('%s', (_label, result, max, expected) => {
    expect(mcpResultContent(result, max)).toEqual(expected);
  });

  it('masks secret values, and the long words of them, wherever they appear', () => {
    const redact = redactor(['Bearer tok-0123456789', 'abc', 'env-value-42']);
    expect(redact('auth=Bearer tok-0123456789; token tok-0123456789; env-value-42; abc')).toBe('auth=[redacted]; token [redacted]; [redacted]; abc');
  });
});

/** A port nothing listens on (it was free a moment ago). */
async function unusedPort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('MCP tools in a session', () => {
  const HEADER_SECRET = `hdr-secret-${randomBytes(8).toString('hex')}`;
  const ENV_SECRET = `env-secret-${randomBytes(8).toString('hex')}`;
  const logLines: string[] = [];
  const h = useHarness({
    env: {
      RUNNER_IMAGE: mcpTestImage(),
      MCP_CALL_TIMEOUT_SECONDS: '2',
      MCP_CONNECT_TIMEOUT_SECONDS: '5',
      MCP_RESULT_MAX_BYTES: '4096',
    },
    // Everything the workers log, at every level, to search for secrets.
    log: pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) }),
  });
  let server: McpHttpTestServer;
  let orgId: string;
  const sessions: string[] = [];

  beforeAll(async () => {
    await ensureMcpTestImage(h.docker, loadConfig().runnerImage);
    server = await McpHttpTestServer.start({ apiKey: HEADER_SECRET });
    ({ org: { id: orgId } } = await createOrg(h.db, 'mcp-tests'));
    await putHive(h.db, h.keyring, { orgId, hive: 'secret', name: 'intel-key', enabled: true, data: {}, secret: HEADER_SECRET });
  }, 600_000);
  afterAll(async () => {
    await server?.close();
  });
  afterEach(async () => {
    // A failed test must not leave its session (and container) running.
    for (const id of sessions) await h.service.terminate(id, 'user_requested').catch(() => undefined);
  });

  const intel = () => ({ type: 'http' as const, url: server.url, headers: { 'x-api-key': 'hive://secret/intel-key' } });
  const box = () => ({ ...STDIO_SERVER, env: { BOX_TOKEN: ENV_SECRET } });

  async function run(profile: SessionProfile, calls: Array<[id: string, name: string, input: unknown]>) {
    h.fake.enqueue(
      message(calls.map(([id, name, input]): ScriptedBlock => ({ type: 'tool_use', id, name, input }))),
      text('done'),
    );
    const { sessionId } = await h.service.start({
      ownerType: 'user', ownerId: 'user-1', orgId, trigger: 'user', credentialId: h.credentialId, initialPrompt: 'Use the tools',
      profile: { permission_mode: 'bypassPermissions', one_shot: true, ...profile },
    });
    sessions.push(sessionId);
    const end = await h.waitForEnd(sessionId);
    const events = await h.events(sessionId);
    const result = (id: string) => events.find((e) => e.type === 'tool_result' && e.payload.tool_use_id === id)?.payload;
    return { sessionId, end, events, result, system: (subtype: string) => events.filter((e) => e.type === 'system' && e.payload.subtype === subtype) };
  }
  const textOf = (payload: Record<string, unknown> | undefined) =>
    (payload?.content as Array<{ type: string; text?: string }>).filter((b) => b.type === 'text').map((b) => b.text).join('\n');
  const offered = (i = 0): Array<{ name: string; input_schema: any }> => h.fake.requests[i]!.body.tools;

  it('offers every server\'s tools as mcp__<server>__<tool> with their schemas, refusing names over 64 characters', async () => {
    const { end, system } = await run({ mcp_servers: { intel: intel(), box: box() } }, []);
    expect(end.endReason).toBe('completed');
    const tools = offered();
    const echo = tools.find((t) => t.name === 'mcp__intel__echo')!;
    expect(echo.input_schema).toMatchObject({ type: 'object', properties: { text: { type: 'string' } }, required: ['text'] });
    expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining([
      'Bash', 'mcp__intel__image', 'mcp__intel__fail', 'mcp__box__whereami', 'mcp__box__env_digest', 'mcp__box__crash_once',
    ]));
    for (const t of tools) expect(t.name).toMatch(MODEL_TOOL_NAME);
    expect(tools.some((t) => t.name.includes(LONG_TOOL_NAME.slice(0, 20)))).toBe(false);
    expect(system('mcp_tools_skipped')[0]!.payload).toMatchObject({ server: 'intel', message: expect.stringMatching(new RegExp(`not offered: mcp__intel__${LONG_TOOL_NAME} has ${12 + LONG_TOOL_NAME.length} characters, more than the 64`)) });
    expect(system('mcp_servers')[0]!.payload.servers).toEqual([
      { name: 'box', status: 'connected', tools: expect.arrayContaining(['mcp__box__whereami']) },
      { name: 'intel', status: 'connected', tools: expect.arrayContaining(['mcp__intel__echo']) },
    ]);
  });

  it('maps HTTP results to tool_result: text, images, isError, a timeout, a dropped connection, the size cap', async () => {
    const { end, result } = await run({ mcp_servers: { intel: intel() } }, [
      ['t_echo', 'mcp__intel__echo', { text: 'hello' }],
      ['t_image', 'mcp__intel__image', {}],
      ['t_fail', 'mcp__intel__fail', {}],
      ['t_sleep', 'mcp__intel__sleep', { seconds: 4 }],
      ['t_after', 'mcp__intel__echo', { text: 'still here' }],
      ['t_flaky', 'mcp__intel__flaky', {}],
      ['t_drop', 'mcp__intel__always_drop', {}],
      ['t_big', 'mcp__intel__big', { bytes: 10_000 }],
      ['t_header', 'mcp__intel__echo_header', {}],
      ['t_unknown', 'mcp__intel__nope', {}],
    ]);
    expect(end.endReason).toBe('completed');
    expect(result('t_echo')).toMatchObject({ is_error: false, content: [{ type: 'text', text: 'echo: hello' }] });
    expect(result('t_image')).toMatchObject({
      is_error: false,
      content: [{ type: 'text', text: 'a 1x1 image' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_BASE64 } }],
    });
    expect(result('t_fail')).toMatchObject({ is_error: true, content: [{ type: 'text', text: 'the lookup failed: no such indicator' }] });
    expect(result('t_sleep')).toMatchObject({ is_error: true });
    expect(textOf(result('t_sleep'))).toBe('sleep on MCP server intel did not answer within 2 s');
    expect(textOf(result('t_after'))).toBe('echo: still here');
    expect(result('t_flaky')).toMatchObject({ is_error: false, content: [{ type: 'text', text: 'flaky answered' }] });
    expect(server.calls.filter((c) => c === 'flaky')).toHaveLength(2);
    expect(result('t_drop')).toMatchObject({ is_error: true });
    expect(textOf(result('t_drop'))).toMatch(/^MCP server intel dropped the connection: fetch failed/);
    expect(server.calls.filter((c) => c === 'always_drop')).toHaveLength(2);
    expect(textOf(result('t_big'))).toMatch(/^b{4096}\n\[output truncated: 10000 bytes in all, at most 4096 shown\]$/);
    // The server got the secret header; what it said back is masked.
    expect(textOf(result('t_header'))).toBe('the key was [redacted]');
    expect(result('t_unknown')).toMatchObject({ is_error: true });
    expect(textOf(result('t_unknown'))).toMatch(/mcp__intel__nope is not a tool of this session's MCP servers/);

    // The model received the image as an image block, and the error as an error.
    const answers = h.fake.requests[1]!.body.messages.at(-1).content as Array<Record<string, unknown>>;
    expect(answers.find((b) => b.tool_use_id === 't_image')).toMatchObject({ content: [{ type: 'text' }, { type: 'image', source: { media_type: 'image/png' } }] });
    expect(answers.find((b) => b.tool_use_id === 't_fail')).toMatchObject({ is_error: true });
  });

  it('runs a stdio server inside the sandbox with its env, and starts it again once when it dies', async () => {
    const { sessionId, end, result } = await run({ mcp_servers: { box: box() } }, [
      ['s_where', 'mcp__box__whereami', {}],
      ['s_digest', 'mcp__box__env_digest', { name: 'BOX_TOKEN' }],
      ['s_value', 'mcp__box__env_value', { name: 'BOX_TOKEN' }],
      ['s_bash', 'Bash', { command: 'echo written-by-bash > shared.txt' }],
      ['s_read', 'mcp__box__read_workspace', { path: 'shared.txt' }],
      ['s_crash', 'mcp__box__crash_once', {}],
      ['s_fail', 'mcp__box__fail', {}],
    ]);
    expect(end.endReason).toBe('completed');
    const container = (await h.db.query<{ container_id: string }>('SELECT container_id FROM sessions WHERE id = $1', [sessionId])).rows[0]!.container_id;
    expect(textOf(result('s_where'))).toBe(`uid=1000 cwd=/workspace host=${container.slice(0, 12)}`);
    expect(textOf(result('s_digest'))).toBe(createHash('sha256').update(ENV_SECRET).digest('hex'));
    expect(textOf(result('s_value'))).toBe('[redacted]');
    expect(textOf(result('s_read'))).toBe('written-by-bash\n');
    expect(result('s_crash')).toMatchObject({ is_error: false, content: [{ type: 'text', text: 'answered after a restart' }] });
    expect(result('s_fail')).toMatchObject({ is_error: true, content: [{ type: 'text', text: expect.stringContaining('the sandbox lookup failed') }] });
    // The server lived in the sandbox, and went with it.
    expect(await sessionContainers(h.docker, sessionId)).toHaveLength(0);
  });

  it('starts without a server that fails, saying which and why, and goes on with the others', async () => {
    const closedPort = await unusedPort();
    const { end, system, result } = await run({
      mcp_servers: {
        intel: intel(),
        ghost: { type: 'stdio', command: '/opt/nowhere/server' },
        mute: { type: 'stdio', command: 'sleep', args: ['600'] },
        down: { type: 'http', url: `http://127.0.0.1:${closedPort}/mcp` },
        nokey: { type: 'http', url: server.url, headers: { 'x-api-key': 'hive://secret/not-there' } },
        wrongkey: { type: 'http', url: server.url, headers: { 'x-api-key': 'not-the-key' } },
        metadata: { type: 'http', url: 'http://169.254.169.254/mcp' },
      },
    }, [['f_echo', 'mcp__intel__echo', { text: 'works' }], ['f_ghost', 'mcp__ghost__anything', {}]]);
    expect(end.endReason).toBe('completed');
    const failed = Object.fromEntries(system('mcp_server_failed').map((e) => [e.payload.server, String(e.payload.message)]));
    expect(Object.keys(failed).sort()).toEqual(['down', 'ghost', 'metadata', 'mute', 'nokey', 'wrongkey']);
    expect(failed.metadata).toMatch(/refused: 169\.254\.169\.254 is .*metadata/);
    expect(failed.ghost).toMatch(/^MCP server ghost did not start: .*exit code 126.*\/opt\/nowhere\/server.*The session goes on without its tools\.$/);
    expect(failed.mute).toMatch(/did not answer within 5 s/);
    expect(failed.down).toMatch(/fetch failed \(connect ECONNREFUSED/);
    expect(failed.nokey).toMatch(/hive:\/\/secret\/not-there does not exist/);
    expect(failed.wrongkey).toMatch(/Error POSTing to endpoint.*x-api-key is missing or wrong/);
    expect(offered().filter((t) => t.name.startsWith('mcp__')).every((t) => t.name.startsWith('mcp__intel__'))).toBe(true);
    expect(textOf(result('f_echo'))).toBe('echo: works');
    expect(result('f_ghost')).toMatchObject({ is_error: true });
  });

  it('checks MCP calls like built-in tools: deny wins over allow across mcp__server and mcp__server__tool', async () => {
    const before = server.calls.length;
    const { end, result } = await run({
      mcp_servers: { intel: intel() },
      permission_mode: 'plan', // anything not allowed would be refused, so "allowed" below is the allow list's doing
      allowed_tools: ['mcp__intel'],
      denied_tools: ['mcp__intel__fail'],
    }, [['p_echo', 'mcp__intel__echo', { text: 'allowed' }], ['p_fail', 'mcp__intel__fail', {}]]);
    expect(end.endReason).toBe('completed');
    expect(textOf(result('p_echo'))).toBe('echo: allowed');
    expect(result('p_fail')).toMatchObject({ is_error: true, content: 'Permission denied: denied by "mcp__intel__fail"' });
    expect(server.calls.slice(before)).toEqual(['echo']);
    // A tool denied outright is not offered at all.
    expect(offered().map((t) => t.name)).toEqual(expect.arrayContaining(['mcp__intel__echo']));
    expect(offered().map((t) => t.name)).not.toContain('mcp__intel__fail');
  });

  it('falls back to the older HTTP+SSE protocol when the server answers that way', async () => {
    const { end, result } = await run({ mcp_servers: { legacy: { ...intel(), url: server.sseUrl } } }, [['l_echo', 'mcp__legacy__echo', { text: 'over sse' }]]);
    expect(end.endReason).toBe('completed');
    expect(textOf(result('l_echo'))).toBe('echo: over sse');
  });

  it('keeps header and env secrets out of events, workflow history, logs and model requests', async () => {
    expect(sessions.length).toBeGreaterThanOrEqual(5);
    const places: Array<[string, string]> = [];
    for (const id of sessions) {
      places.push([`events of ${id}`, JSON.stringify(await h.events(id) as StoredEvent[])]);
      // Payloads decrypted and read as text, or a secret inside would not show.
      places.push([`history of ${id}`, await decodedHistoryText(h, sessionWorkflowId(id))]);
    }
    places.push(['worker logs', logLines.join('\n')]);
    places.push(['model requests', JSON.stringify(h.fake.requests.map((r) => r.body))]);
    expect(logLines.length).toBeGreaterThan(0);
    for (const [where, body] of places) {
      for (const secret of [HEADER_SECRET, ENV_SECRET, Buffer.from(HEADER_SECRET).toString('base64'), Buffer.from(ENV_SECRET).toString('base64')]) {
        if (body.includes(secret)) throw new Error(`a secret value appears in the ${where}`);
      }
    }
  });
});
