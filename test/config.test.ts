import { ConfigError, loadConfig } from '../lib/config';
import { costUsd, DEFAULT_PRICES, priceFor } from '../lib/pricing';
import { parseProfile, ProfileError } from '../lib/profile';

/** Pure modules: configuration from the environment, model prices, profile validation. */

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('applies the documented defaults to an empty environment', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.periods.billingSeconds).toBe(60);
    expect(c.periods.approvalTimeoutSeconds).toBe(300);
    expect(c.periods.maxTtlSeconds).toBe(86400);
    expect(c.logLevel).toBe('info');
    expect(c.temporal.namespace).toBe('default');
    expect(c.databaseUrl).toBeUndefined();
    expect(c.model.baseURL).toBeUndefined();
  });

  it('reads values that are set, trimming optional strings and treating blank ones as unset', () => {
    const c = loadConfig({
      PORT: '9090',
      BILLING_PERIOD_SECONDS: '30',
      LOG_LEVEL: 'debug',
      TEMPORAL_NAMESPACE: 'prod',
      DATABASE_URL: '  postgresql://u@db:5432/ais  ',
      ANTHROPIC_BASE_URL: '',
    });
    expect(c.port).toBe(9090);
    expect(c.periods.billingSeconds).toBe(30);
    expect(c.logLevel).toBe('debug');
    expect(c.temporal.namespace).toBe('prod');
    expect(c.databaseUrl).toBe('postgresql://u@db:5432/ais');
    expect(c.model.baseURL).toBeUndefined();
  });

  it('accepts fractional seconds for periods', () => {
    const c = loadConfig({ BILLING_PERIOD_SECONDS: '0.5', APPROVAL_TIMEOUT_SECONDS: '2.25', SANDBOX_CHECK_SECONDS: '0.1' });
    expect(c.periods.billingSeconds).toBe(0.5);
    expect(c.periods.approvalTimeoutSeconds).toBe(2.25);
    expect(c.periods.sandboxCheckSeconds).toBe(0.1);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '80.5'],
    ['BILLING_PERIOD_SECONDS', '-1'],
    ['BILLING_PERIOD_SECONDS', '0'],
    ['APPROVAL_TIMEOUT_SECONDS', 'soon'],
    ['DATABASE_URL', 'mysql://x'],
    ['LOG_LEVEL', 'loud'],
    ['ANTHROPIC_BASE_URL', 'ftp://x'],
    ['SANDBOX_MEMORY_MB', '10'],
  ])('rejects %s=%s with a ConfigError naming the variable', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.name).toBe('ConfigError');
    expect(err.message).toContain(`${name}:`);
    // Only the bad variable is named.
    const named = err.message.split('\n').slice(1).map((l) => l.trim().split(':')[0]);
    expect(named).toEqual([name]);
  });

  it('names every bad variable at once', () => {
    const err = configError({ PORT: 'abc', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x', MAX_TTL_SECONDS: '-5' });
    for (const name of ['PORT', 'LOG_LEVEL', 'DATABASE_URL', 'MAX_TTL_SECONDS']) {
      expect(err.message).toContain(`${name}:`);
    }
  });
});

describe('payload key ids', () => {
  // Distinct bytes per key, so a message that leaked one would be caught below.
  const key = (n: number) => Buffer.alloc(32, n).toString('hex');
  const keyB64 = (n: number) => Buffer.alloc(32, n).toString('base64');

  it.each<{ what: string; env: Record<string, string>; name: string; says: RegExp }>([
    { what: 'PAYLOAD_KEY_ID taking a derived key\'s name', env: { PAYLOAD_KEY: key(1), PAYLOAD_KEY_ID: 'master-k1' }, name: 'PAYLOAD_KEY_ID', says: /master-/ },
    { what: 'PAYLOAD_KEY_ID of the derived form even without PAYLOAD_KEY', env: { PAYLOAD_KEY_ID: 'master-k9' }, name: 'PAYLOAD_KEY_ID', says: /master-/ },
    { what: 'a retired id taking a derived key\'s name', env: { PAYLOAD_KEYS_RETIRED: `master-k1:${key(2)}` }, name: 'PAYLOAD_KEYS_RETIRED', says: /master-/ },
    { what: 'a derived name among other retired ids', env: { PAYLOAD_KEYS_RETIRED: `p0:${key(2)}, master-old:${keyB64(3)}` }, name: 'PAYLOAD_KEYS_RETIRED', says: /master-/ },
    { what: 'a retired id given twice', env: { PAYLOAD_KEYS_RETIRED: `p0:${key(2)},p0:${keyB64(3)}` }, name: 'PAYLOAD_KEYS_RETIRED', says: /repeated: p0$/m },
    { what: 'the same entry given twice', env: { PAYLOAD_KEYS_RETIRED: `p0:${key(2)},p1:${key(4)},p0:${key(2)}` }, name: 'PAYLOAD_KEYS_RETIRED', says: /repeated: p0$/m },
    { what: 'a retired id equal to the current one', env: { PAYLOAD_KEY: key(1), PAYLOAD_KEY_ID: 'p2', PAYLOAD_KEYS_RETIRED: `p2:${key(2)}` }, name: 'PAYLOAD_KEYS_RETIRED', says: /PAYLOAD_KEY_ID/ },
    { what: 'a retired id equal to the default current id', env: { PAYLOAD_KEY: key(1), PAYLOAD_KEYS_RETIRED: `p1:${key(2)}` }, name: 'PAYLOAD_KEYS_RETIRED', says: /PAYLOAD_KEY_ID/ },
  ])('refuses $what, naming $name and no key', ({ env, name, says }) => {
    const err = configError(env);
    const lines = err.message.split('\n').slice(1).map((l) => l.trim());
    expect(lines.map((l) => l.split(':')[0])).toEqual([name]);
    expect(lines[0]).toMatch(says);
    for (const n of [1, 2, 3, 4]) {
      expect(err.message).not.toContain(key(n));
      expect(err.message).not.toContain(keyB64(n));
    }
  });

  it.each<{ what: string; env: Record<string, string> }>([
    { what: 'distinct ids', env: { PAYLOAD_KEY: key(1), PAYLOAD_KEY_ID: 'p2', PAYLOAD_KEYS_RETIRED: `p0:${key(2)},p1:${keyB64(3)}` } },
    // Moving from a configured key back to a derived one: the old key is retired under its id, which is no longer current.
    { what: 'a retired id equal to an unused PAYLOAD_KEY_ID', env: { PAYLOAD_KEYS_RETIRED: `p1:${key(2)}` } },
    { what: 'ids merely containing "master"', env: { PAYLOAD_KEY: key(1), PAYLOAD_KEY_ID: 'k-master-1', PAYLOAD_KEYS_RETIRED: `master:${key(2)},Master-k1:${key(3)}` } },
  ])('accepts $what', ({ env }) => {
    expect(() => loadConfig(env)).not.toThrow();
  });
});

describe('listen addresses', () => {
  // Unset stays undefined: bin/start.ts then binds loopback, api/main.ts and worker/main.ts all interfaces.
  it.each<{ env: Record<string, string>; host: string | undefined; workerHost: string | undefined }>([
    { env: {}, host: undefined, workerHost: undefined },
    { env: { HOST: '  ' }, host: undefined, workerHost: undefined },
    { env: { HOST: '127.0.0.1' }, host: '127.0.0.1', workerHost: undefined },
    { env: { HOST: '0.0.0.0', WORKER_HTTP_HOST: '10.0.0.5' }, host: '0.0.0.0', workerHost: '10.0.0.5' },
    { env: { HOST: '::1', WORKER_HTTP_HOST: '::' }, host: '::1', workerHost: '::' },
    { env: { HOST: ' gateway.internal ', WORKER_HTTP_HOST: 'localhost' }, host: 'gateway.internal', workerHost: 'localhost' },
  ])('HOST=$env.HOST WORKER_HTTP_HOST=$env.WORKER_HTTP_HOST', ({ env, host, workerHost }) => {
    const c = loadConfig(env);
    expect(c.host).toBe(host);
    expect(c.metrics.workerHost).toBe(workerHost);
  });

  it.each([
    ['HOST', 'http://0.0.0.0'],
    ['HOST', '127.0.0.1:8080'],
    ['WORKER_HTTP_HOST', 'a b'],
    ['WORKER_HTTP_HOST', '-bad-'],
  ])('rejects %s=%s', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.message).toContain(`${name}: must be an IP address or a host name`);
  });
});

describe('pricing', () => {
  const sonnet = DEFAULT_PRICES['claude-sonnet'];
  const opus4 = DEFAULT_PRICES['claude-opus-4'];
  const opus45 = DEFAULT_PRICES['claude-opus-4-5'];

  it.each([
    ['claude-sonnet-4-20250514', { input: 3, output: 15 }],
    ['claude-sonnet-4-6', { input: 3, output: 15 }],
    ['claude-3-5-haiku-20241022', { input: 0.8, output: 4 }],
    ['claude-haiku-4-5', { input: 1, output: 5 }],
    ['claude-opus-4-20250514', { input: 15, output: 75 }],
    ['claude-opus-4', { input: 15, output: 75 }],
    ['claude-opus-4-5-20251101', { input: 5, output: 25 }],
    ['claude-opus-4-5-x', { input: 5, output: 25 }],
    ['claude-opus-4-1-20250805', { input: 15, output: 75 }],
  ])('priceFor(%s) finds its family', (model, expected) => {
    expect(priceFor(model)).toMatchObject(expected);
  });

  it('lets the longest matching prefix win, and only at a "-" boundary', () => {
    expect(priceFor('claude-opus-4-5-x')).toBe(opus45);
    expect(priceFor('claude-opus-4-x')).toBe(opus4);
    expect(priceFor('claude-sonnet-4-20250514')).toBe(sonnet);
    // "claude-opus-45" is not "claude-opus-4" followed by a version part.
    expect(priceFor('claude-opus-45')).toMatchObject({ input: 15, output: 75 });
  });

  it('prices an unknown model as the most expensive family', () => {
    const maxInput = Math.max(...Object.values(DEFAULT_PRICES).map((p) => p.input));
    const maxOutput = Math.max(...Object.values(DEFAULT_PRICES).map((p) => p.output));
    for (const model of ['gpt-4o', 'claude-unknown-9', '']) {
      expect(priceFor(model)).toMatchObject({ input: maxInput, output: maxOutput });
    }
  });

  it.each([
    ['claude-sonnet-4-20250514', { input_tokens: 1_000_000, output_tokens: 0 }, 3],
    ['claude-sonnet-4-20250514', { input_tokens: 0, output_tokens: 1_000_000 }, 15],
    ['claude-sonnet-4-20250514', { input_tokens: 1000, output_tokens: 500 }, (1000 * 3 + 500 * 15) / 1e6],
    // Cache writes cost 1.25x input, cache reads 0.1x input.
    ['claude-sonnet-4-20250514', { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 1_000_000 }, 3.75],
    ['claude-sonnet-4-20250514', { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 1_000_000 }, 0.3],
    ['claude-sonnet-4-20250514', { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: null }, 0],
    [
      'claude-opus-4-5-x',
      { input_tokens: 2000, output_tokens: 1000, cache_creation_input_tokens: 4000, cache_read_input_tokens: 10_000 },
      (2000 * 5 + 1000 * 25 + 4000 * 6.25 + 10_000 * 0.5) / 1e6,
    ],
    ['mystery-model', { input_tokens: 1_000_000, output_tokens: 1_000_000 }, 90],
  ])('costUsd(%s, %j) = %d', (model, usage, expected) => {
    expect(costUsd(model as string, usage)).toBeCloseTo(expected as number, 10);
  });

  it('uses a custom table when given one', () => {
    const table = { 'my-model': { input: 2, output: 4, cacheWrite: 0, cacheRead: 0 } };
    expect(costUsd('my-model-1', { input_tokens: 500_000, output_tokens: 250_000 }, table)).toBeCloseTo(2, 10);
  });
});

describe('parseProfile', () => {
  function profileError(input: unknown): ProfileError {
    try {
      parseProfile(input);
    } catch (err) {
      expect(err).toBeInstanceOf(ProfileError);
      return err as ProfileError;
    }
    throw new Error(`parseProfile accepted ${JSON.stringify(input)}`);
  }

  it('accepts a full, valid profile unchanged', () => {
    const full = {
      allowed_tools: ['Read', 'Bash(git status:*)', 'mcp__github__search'],
      denied_tools: ['Write', 'mcp__slack'],
      permission_mode: 'acceptEdits' as const,
      model: 'claude-sonnet-4-6',
      max_turns: 20,
      max_budget_usd: 1.5,
      one_shot: true,
      ttl_seconds: 3600,
      environment: { SHARED_VALUE: 'visible-123', _X1: '' },
      mcp_servers: {
        github: { type: 'http' as const, url: 'https://mcp.example.com/github', headers: { authorization: 'Bearer x' } },
        local: { type: 'stdio' as const, command: 'node', args: ['server.js'], env: { A: 'b' } },
      },
      network_access: false,
    };
    expect(parseProfile(full)).toEqual(full);
    expect(parseProfile({})).toEqual({});
  });

  it('rejects an unknown field, naming it', () => {
    const err = profileError({ permission_mode: 'plan', allowed_tool: ['Read'] });
    expect(err.message).toContain('allowed_tool');
  });

  it('rejects a bad permission_mode', () => {
    const err = profileError({ permission_mode: 'yolo' });
    expect(err.message).toContain('permission_mode');
  });

  it.each(['Bash(git)', 'Bash(rm -rf *:*)', 'Read(/etc)', 'mcp__bad__server__x y', ''])(
    'rejects the tool pattern %j, naming it',
    (pattern) => {
      const err = profileError({ allowed_tools: ['Read', pattern] });
      expect(err.message).toContain('allowed_tools');
      expect(err.message).toContain(JSON.stringify(pattern));
    },
  );

  it('rejects a bad pattern in denied_tools too', () => {
    const err = profileError({ denied_tools: ['Bash(git)'] });
    expect(err.message).toContain('denied_tools');
    expect(err.message).toContain('"Bash(git)"');
  });

  it.each(['PATH', 'HOME', 'USER', 'LD_PRELOAD', 'PYTHONPATH', 'PYTHONHOME'])(
    'rejects the reserved environment name %s',
    (name) => {
      const err = profileError({ environment: { OK_NAME: 'x', [name]: '/tmp/evil' } });
      expect(err.message).toContain('environment');
      expect(err.message).toContain(name);
      expect(err.message).toMatch(/reserved/);
    },
  );

  it('rejects an environment name that is not an identifier', () => {
    const err = profileError({ environment: { 'BAD-NAME': 'x' } });
    expect(err.message).toContain('environment');
  });

  it('rejects an mcp server of unknown type, naming the server', () => {
    const err = profileError({ mcp_servers: { tools: { type: 'websocket', url: 'wss://x' } } });
    expect(err.message).toContain('mcp_servers.tools');
  });

  it('rejects an mcp server with extra fields or a bad url', () => {
    expect(profileError({ mcp_servers: { a: { type: 'http', url: 'not a url' } } }).message).toContain('mcp_servers.a');
    expect(profileError({ mcp_servers: { a: { type: 'stdio', command: 'x', cwd: '/' } } }).message).toContain('mcp_servers.a');
  });

  it('names every field at fault', () => {
    const err = profileError({ permission_mode: 'yolo', max_turns: 0, bogus: 1 });
    for (const name of ['permission_mode', 'max_turns', 'bogus']) expect(err.message).toContain(name);
  });
});
