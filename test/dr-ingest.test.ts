import { TEST_ADMIN_TOKEN, useHarness, type Harness } from './support/harness';
import { callApi } from './support/http';
import { text } from './support/fake-anthropic';

type Gateway = Awaited<ReturnType<Harness['startGateway']>>;

const MIMIKATZ_RULE = `
detect:
  event: NEW_PROCESS
  op: contains
  path: event/COMMAND_LINE
  value: mimikatz
respond:
  - action: report
    name: credential-tool-seen
    priority: 4
  - action: start ai session
    prompt: |
      Look into {{ .event.COMMAND_LINE }} on {{ .routing.hostname }}.
    anthropic_secret: hive://secret/anthropic-key
    idempotent_key: "{{ .routing.hostname }}-mimikatz"
`;

const ESCALATION_RULE = `
detect:
  target: detection
  event: "*"
  op: is greater than
  path: priority
  value: 3
respond:
  - action: report
    name: escalated
`;

const DNS_RULE = `
detect:
  event: DNS_REQUEST
  op: lookup
  path: event/DOMAIN_NAME
  resource: hive://lookup/threat-domains
respond:
  - action: report
    name: threat-domain
`;

/** The built-in rule engine: rules over REST, events in, reports and sessions out. */
describe('rules and event intake', () => {
  const h = useHarness();
  let gw: Gateway;
  let org: { id: string; key: string };
  const call = (method: string, path: string, body?: unknown, contentType = 'application/json') =>
    callApi(gw.url, method, `/v1/orgs/${org.id}${path}`, { token: org.key, body, contentType });
  const yaml = (path: string, source: string) => call('PUT', path, source, 'application/yaml');
  const proc = (host: string, cmd: string) => ({ routing: { hostname: host, event_type: 'NEW_PROCESS' }, event: { COMMAND_LINE: cmd } });

  beforeAll(async () => {
    gw = await h.startGateway();
    const created = await fetch(`${gw.url}/v1/admin/orgs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'intake' }),
    }).then((r) => r.json() as Promise<{ org: { id: string }; api_key: string }>);
    org = { id: created.org.id, key: created.api_key };
    await call('PUT', '/hive/secret/anthropic-key', { data: { secret: 'sk-ant-intake-key' } });
    await call('PUT', '/hive/lookup/threat-domains', { data: { values: ['evil.test'] } });
  });

  it('stores rules written in YAML and refuses broken ones with the path of the error', async () => {
    expect((await yaml('/rules/mimikatz', MIMIKATZ_RULE)).status).toBe(201);
    expect((await yaml('/rules/escalate', ESCALATION_RULE)).status).toBe(201);
    expect((await yaml('/rules/dns', DNS_RULE)).status).toBe(201);
    const listed = await call('GET', '/rules');
    expect(listed.body.rules.map((r: { name: string }) => r.name)).toEqual(['dns', 'escalate', 'mimikatz']);
    expect((await call('GET', '/rules/mimikatz')).body.rule.source).toContain('start ai session');

    const cases: Array<[string, RegExp]> = [
      ['detect: [unclosed', /not valid YAML/],
      ['detect:\n  op: iz\n  path: event/X\n  value: 1\nrespond: []', /detect.op/],
      ['detect:\n  op: exists\n  path: event/X\nrespond:\n  - action: report\n  - action: start ai agent\n    prompt: p\n    anthropic_secret: hive://secret/anthropic-key\n    profile_name: nope', /respond\[(0|1)\]/],
    ];
    for (const [source, message] of cases) {
      const res = await yaml('/rules/broken', source);
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(message);
    }
    expect((await call('GET', '/rules/broken')).status).toBe(404);
  });

  it('runs matching rules over NDJSON events: reports, escalations on detections, lookups and one session per idempotent key', async () => {
    h.fake.setResponder(() => text('Looked into it.'));
    const events = [
      proc('ws-1', 'notepad.exe'),
      proc('ws-1', 'C:\\tools\\mimikatz.exe privilege::debug'),
      { routing: { hostname: 'ws-2', event_type: 'DNS_REQUEST' }, event: { DOMAIN_NAME: 'evil.test' } },
      { routing: { hostname: 'ws-2', event_type: 'DNS_REQUEST' }, event: { DOMAIN_NAME: 'fine.test' } },
      ...Array.from({ length: 20 }, () => proc('ws-1', 'mimikatz sekurlsa::logonpasswords')),
    ];
    const res = await call('POST', '/events', events.map((e) => JSON.stringify(e)).join('\n'), 'application/x-ndjson');
    expect(res.status).toBe(200);
    expect(res.body.events).toBe(24);
    expect(res.body.errors).toEqual([]);
    const byRule = (rule: string) => res.body.matches.filter((m: { rule: string }) => m.rule === rule).length;
    expect(byRule('mimikatz')).toBe(21);
    expect(byRule('escalate')).toBe(21);
    expect(byRule('dns')).toBe(1);
    // One idempotent key for ws-1: a single session, every other launch a duplicate of it.
    const ids = new Set(res.body.sessions.map((s: { session_id: string }) => s.session_id));
    expect(ids.size).toBe(1);
    const [sessionId] = ids as Set<string>;
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'completed' });
    const prompt = (await h.events(sessionId)).find((e) => e.type === 'user')!.payload.text as string;
    expect(prompt).toContain('Look into C:\\tools\\mimikatz.exe privilege::debug on ws-1.');

    const detections = await call('GET', '/detections?limit=1000');
    const cats = detections.body.detections.map((d: { cat: string }) => d.cat);
    expect(cats.filter((c: string) => c === 'credential-tool-seen')).toHaveLength(21);
    expect(cats.filter((c: string) => c === 'escalated')).toHaveLength(21);
    expect(cats.filter((c: string) => c === 'threat-domain')).toHaveLength(1);
  });

  it('skips disabled rules and reports bad lines without losing the good ones', async () => {
    expect((await call('PUT', '/rules/dns', { enabled: false, detect: { event: 'DNS_REQUEST', op: 'exists', path: 'event/DOMAIN_NAME' }, respond: [{ action: 'report', name: 'any-dns' }] })).status).toBe(200);
    const dns = { routing: { event_type: 'DNS_REQUEST' }, event: { DOMAIN_NAME: 'evil.test' } };
    const one = await call('POST', '/events', dns);
    expect(one.body.matches).toEqual([]);
    const bad = await call('POST', '/events', `${JSON.stringify(dns)}\n{not json`, 'application/x-ndjson');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/line 2/);
    const mixed = await call('POST', '/events', [dns, 'not-an-object']);
    expect(mixed.body.errors).toEqual([{ event: 1, message: 'an event must be a JSON object' }]);

    // Rules and lookups are compiled once per change: a changed lookup list counts from the next POST.
    expect((await yaml('/rules/dns', `${DNS_RULE}\nenabled: true\n`)).status).toBe(200);
    const fine = { routing: { event_type: 'DNS_REQUEST' }, event: { DOMAIN_NAME: 'fine.test' } };
    const dnsMatches = async () => (await call('POST', '/events', fine)).body.matches.filter((m: { rule: string }) => m.rule === 'dns');
    expect(await dnsMatches()).toEqual([]);
    await call('PUT', '/hive/lookup/threat-domains', { data: { values: ['evil.test', 'fine.test'] } });
    expect(await dnsMatches()).toHaveLength(1);
    await call('PUT', '/hive/lookup/threat-domains', { data: { values: ['evil.test'] }, enabled: false });
    expect(await dnsMatches()).toEqual([]);
    expect((await call('DELETE', '/rules/dns')).status).toBe(200);
    await call('PUT', '/hive/lookup/threat-domains', { data: { values: ['evil.test', 'fine.test'] } });
    expect(await dnsMatches()).toEqual([]);
  });
});
