import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import {
  ActionError,
  isDrAction,
  parseAction,
  parseAgentRecord,
  parseDefinitionRef,
  resolveAction,
  type ActionPlan,
  type DrAction,
} from '../lib/dr/action';
import {
  dataBlock,
  extractData,
  renderTemplate,
  renderTemplateDetailed,
  validateTemplate,
  type TemplateContext,
} from '../lib/dr/templates';

const FIXTURES = path.join(__dirname, 'fixtures', 'dr');
const load = (file: string): unknown => parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8'));

const contexts = load('context.yaml') as { full: TemplateContext; sparse: TemplateContext };
const { full, sparse } = contexts;
const hive = load('ai-agent-records.yaml') as { ai_agent: Record<string, { data: unknown }> };
/** A Hive record's inner `data` object is the agent definition. */
const record = (name: string) => parseAgentRecord(hive.ai_agent[name]!.data, `ai_agent.${name}.data`);

type Rule = { respond: unknown[] };
/** The AI actions of a rule file, each parsed with the path a rule editor would show. */
function actionsOf(rule: Rule): Array<{ at: string; action: DrAction }> {
  return rule.respond.flatMap((entry, i) => (isDrAction(entry) ? [{ at: `respond[${i}]`, action: parseAction(entry, `respond[${i}]`) }] : []));
}
function planFor(file: string, ctx: TemplateContext = full): ActionPlan {
  const found = actionsOf(load(file) as Rule);
  expect(found).toHaveLength(1);
  const { action } = found[0]!;
  return resolveAction(action, ctx, action.mode === 'definition' ? record(action.agentName) : undefined);
}
function issuesOf(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof ActionError) return e.issues;
    throw e;
  }
  throw new Error('expected an ActionError');
}

const HOST = 'fin-ws-014.corp.example';
const SID = '0b6f8a52-3c1d-4e7f-9a20-6d5e4c3b2a19';
const DETECT_ID = 'c7d2a9e4-51b8-4f3a-8e6d-2b1c0a9f8e7d';
const PARENT_IMAGE = String.raw`C:\Windows\System32\cmd.exe`;

describe('renderTemplate', () => {
  it.each<[string, string]>([
    ['{{ .routing.hostname }}', HOST],
    ['{{.routing.hostname}}', HOST],
    ['{{   .detect.cat\t}}', 'exfil-tool-launched'],
    ['{{ .event.PARENT/FILE_PATH }}', PARENT_IMAGE],
    ['{{ .event.PARENT.PROCESS_ID }}', '5120'],
    ['{{ .detect.priority }}', '4'],
    ['{{ .event.PORTS }}', '[443,8443]'],
    ['{{ .event.PORTS/1 }}', '8443'],
    ['{{ .event.PARENT }}', JSON.stringify({ FILE_PATH: PARENT_IMAGE, PROCESS_ID: 5120 })],
    ['{{ .routing.hostname }}/{{ .routing.sid }}', `${HOST}/${SID}`],
    // Missing, unreachable or unsupported: empty text, never an exception.
    ['[{{ .event.TICKET_ID }}]', '[]'],
    ['[{{ .event.PARENT/FILE_PATH/DEEPER }}]', '[]'],
    ['[{{ .nothing.here }}]', '[]'],
    ['[{{ .event.constructor }}{{ .event.__proto__ }}{{ .event.toString }}]', '[]'],
    ['[{{ .event.PORTS/first }}]', '[]'],
    ['[{{ event.FILE_PATH }}]', '[]'],
    ['[{{ .routing.hostname | upper }}]', '[]'],
    ['[{{ }}]', '[]'],
    // Not placeholders at all: left as written.
    ['left {{ .routing.hostname', 'left {{ .routing.hostname'],
    ['{"a":{"b":1}} and }}', '{"a":{"b":1}} and }}'],
    ['', ''],
  ])('%j', (template, expected) => {
    expect(renderTemplate(template, full)).toBe(expected);
  });

  it.each<[string, TemplateContext, string]>([
    ['flag={{ .event.ok }} none={{ .event.gone }}', { event: { ok: false, gone: null } }, 'flag=false none='],
    ['extra root {{ .case.id }}', { case: { id: 12 } }, 'extra root 12'],
    ['{{ .event.big }}', { event: { big: 12345678901234567890n } }, '12345678901234567890'],
  ])('%j with its own context', (template, ctx, expected) => {
    expect(renderTemplate(template, ctx)).toBe(expected);
  });

  it('never throws on odd contexts', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(renderTemplate('[{{ .event }}]', { event: circular })).toBe('[]');
    expect(renderTemplate('[{{ .event.x }}]', {})).toBe('[]');
    expect(renderTemplate('[{{ .event.x }}]', { event: 'a string' })).toBe('[]');
  });

  it.each<[string, string[]]>([
    ['k-{{ .routing.sid }}', []],
    ['k-{{ .routing.nope }}-{{ .detect.cat }}', ['{{ .routing.nope }}']],
    ['{{ .event.gone }}{{ bad }}', ['{{ .event.gone }}', '{{ bad }}']],
  ])('reports the placeholders of %j that rendered empty', (template, empty) => {
    expect(renderTemplateDetailed(template, full).empty).toEqual(empty);
  });
});

describe('validateTemplate', () => {
  it.each(['', 'plain text', '{{ .a.b }}', '{{.a.B/C}}', '{{ .event.PORTS/0 }}', '{"a":{"b":1}}', 'stray }} is text'])('accepts %j', (t) => {
    expect(validateTemplate(t)).toEqual([]);
  });

  it.each<[string, string[]]>([
    ['x {{ .a', ['"{{" at offset 2 is never closed with "}}"']],
    ['{{ .a {{ .b }}', ['"{{" at offset 0 is not closed before the next "{{"']],
    ['{{ a }}', ['{{ a }} at offset 0: only field references such as {{ .event.FILE_PATH }} are supported']],
    ['{{ }}', ['{{ }} at offset 0: the expression is empty']],
    ['{{ .a..b }}', ['{{ .a..b }} at offset 0: a field reference is dot-separated names without spaces or empty parts']],
    ['{{ .a | x }}', ['{{ .a | x }} at offset 0: a field reference is dot-separated names without spaces or empty parts']],
    ['{{ .a.b/ }}', ['{{ .a.b/ }} at offset 0: a nested key written with "/" cannot be empty']],
    ['{{- .a }}', ['{{- .a }} at offset 0: only field references such as {{ .event.FILE_PATH }} are supported']],
    ['{{ .a }} {{ b }} {{ .c', [
      '{{ b }} at offset 9: only field references such as {{ .event.FILE_PATH }} are supported',
      '"{{" at offset 17 is never closed with "}}"',
    ]],
  ])('rejects %j', (t, problems) => {
    expect(validateTemplate(t)).toEqual(problems);
  });
});

describe('extractData', () => {
  it.each<[string, unknown, unknown]>([
    ['a template renders to a string', '{{ .routing.hostname }}', HOST],
    ['a templated number is text', '{{ .detect.priority }}', '4'],
    ['a missing template field is empty text', '{{ .event.TICKET_ID }}', ''],
    ['a bare path keeps its type (number)', 'detect.priority', 4],
    ['a bare path keeps its type (array)', 'event.PORTS', [443, 8443]],
    ['a bare path keeps its type (object)', 'event.PARENT', { FILE_PATH: PARENT_IMAGE, PROCESS_ID: 5120 }],
    ['a bare path walks nested keys with /', 'event.PARENT/FILE_PATH', PARENT_IMAGE],
    ['a bare path also walks with .', 'event.PARENT.PROCESS_ID', 5120],
    ['a missing bare path is null', 'event.TICKET_ID', null],
    ['a bare path through a scalar is null', 'routing.hostname/x', null],
    ['a plain word is a constant', 'cloud-sync-rule', 'cloud-sync-rule'],
    ['a dotted string with another root is a constant', 'example.com', 'example.com'],
    ['a root alone is a constant', 'event', 'event'],
    ['a malformed path is a constant', 'event.', 'event.'],
    ['a path with spaces is a constant', 'routing.host name', 'routing.host name'],
    ['a number passes through', 3, 3],
    ['a boolean passes through', true, true],
    ['null passes through', null, null],
    ['a map passes through unrendered', { inner: 'routing.sid' }, { inner: 'routing.sid' }],
    ['a list passes through', ['routing.sid'], ['routing.sid']],
  ])('%s', (_what, spec, expected) => {
    expect(extractData({ field: spec }, full)).toEqual({ field: expected });
  });

  it('keeps a "__proto__" key as a plain key', () => {
    const out = extractData(JSON.parse('{"__proto__": "routing.sid"}') as Record<string, unknown>, full);
    expect(Object.keys(out)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(JSON.stringify(out)).toBe(`{"__proto__":"${SID}"}`);
  });

  it('dataBlock is a fenced, pretty JSON block in the given key order', () => {
    expect(dataBlock({ z: 1, a: 'x', n: null, l: [1] })).toBe('```json\n{\n  "z": 1,\n  "a": "x",\n  "n": null,\n  "l": [\n    1\n  ]\n}\n```');
  });
});

const RECORD_PROMPT = 'You review possible data exfiltration.\nEstablish what left the host, where it went and under which account.';
const RECORD_DATA = {
  host: HOST, sensor: SID, category: 'exfil-tool-launched', parent_image: PARENT_IMAGE, ports: [443, 8443], ticket: null, severity_floor: 3,
};
const RECORD_PROFILE = {
  model: 'claude-sonnet-4-20250514', permission_mode: 'bypassPermissions', allowed_tools: ['Bash', 'Read', 'Grep', 'Glob'],
  denied_tools: ['Write', 'Edit'], max_turns: 60, max_budget_usd: 4, ttl_seconds: 2400, environment: { REPORT_FORMAT: 'markdown' }, one_shot: true,
};
const AUGMENTED_DATA = { ...RECORD_DATA, category: 'rule said exfil-tool-launched', trigger: 'cloud-sync-rule' };

describe('resolveAction on the documented shapes', () => {
  it.each<[string, ActionPlan]>([
    ['overview-rule.yaml', {
      prompt: 'A cloud sync utility started on a finance workstation.\nWork out what it copied and where to, and whether that was sanctioned.',
      anthropicSecret: 'hive://secret/claude-key', lcApiKeySecret: 'hive://secret/lc-org-key', profile: { one_shot: true }, data: {}, warnings: [],
    }],
    ['inline-basic.yaml', {
      prompt: 'Summarise this alert in three sentences.', anthropicSecret: 'hive://secret/claude-key', profile: { one_shot: true }, data: {}, warnings: [],
    }],
    ['inline-literal-key.yaml', {
      prompt: 'Summarise this alert.', anthropicSecret: 'sk-ant-api03-not-a-real-key', lcApiKeySecret: '11111111-2222-3333-4444-555555555555',
      lcUidSecret: 'hive://secret/lc-user-id', profile: { one_shot: true }, data: {}, warnings: [],
    }],
    ['templated-prompt.yaml', {
      name: `exfil-${HOST}`,
      prompt: String.raw`Host fin-ws-014.corp.example ran C:\Tools\sync\rclone.exe as CORP\svc-backup.
Arguments: rclone.exe copy C:\Finance remote:drop --quiet
Launched from: C:\Windows\System32\cmd.exe (pid 5120)
Ticket field that is not on this event: []`,
      anthropicSecret: 'hive://secret/claude-key', profile: { one_shot: true }, data: {}, warnings: [],
    }],
    ['data-extraction.yaml', (() => {
      const data = {
        host: HOST, sensor: SID, image: String.raw`C:\Tools\sync\rclone.exe`, args: String.raw`rclone.exe copy C:\Finance remote:drop --quiet`,
        parent_image: PARENT_IMAGE, rule_category: 'exfil-tool-launched',
      };
      return {
        prompt: `Rate the severity of this detection from 1 to 5 and justify it.\n\n${dataBlock(data)}`,
        anthropicSecret: 'hive://secret/claude-key', profile: { one_shot: true }, data, warnings: [],
      };
    })()],
    ['idempotent.yaml', {
      prompt: 'Triage this detection once.', anthropicSecret: 'hive://secret/claude-key', idempotentKey: DETECT_ID, profile: { one_shot: true }, data: {}, warnings: [],
    }],
    ['debounce-constant.yaml', {
      prompt: 'Work the next case in the queue.', anthropicSecret: 'hive://secret/claude-key', debounceKey: 'case-queue-worker', profile: { one_shot: true }, data: {}, warnings: [],
    }],
    ['debounce-templated.yaml', {
      prompt: 'Investigate this endpoint.', anthropicSecret: 'hive://secret/claude-key', debounceKey: `endpoint-${SID}`, profile: { one_shot: true }, data: {}, warnings: [],
    }],
    ['inline-profile.yaml', {
      prompt: 'Investigate, but change nothing on disk.', anthropicSecret: 'hive://secret/claude-key', data: {}, warnings: [],
      profile: {
        allowed_tools: ['Bash(limacharlie:*)', 'Read', 'Grep', 'Glob', 'WebFetch', 'mcp__intel'], denied_tools: ['Write', 'Edit', 'NotebookEdit'],
        permission_mode: 'bypassPermissions', model: 'claude-sonnet-4-20250514', max_turns: 40, max_budget_usd: 2.5, one_shot: false, ttl_seconds: 900,
        environment: { TRACE: '1', INTEL_TOKEN: 'hive://secret/intel-token' }, // the reference stays unresolved here
      },
    }],
    ['mcp-servers.yaml', {
      prompt: `Enrich the hash and the remote address with outside intel.\n\n${dataBlock({ sha256: '4e1f0c2ab9d3e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e', remote: '203.0.113.77' })}`,
      anthropicSecret: 'hive://secret/claude-key', warnings: [],
      data: { sha256: '4e1f0c2ab9d3e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e', remote: '203.0.113.77' },
      profile: {
        one_shot: true,
        mcp_servers: {
          intel: { type: 'http', url: 'https://intel.example.net/mcp', headers: { authorization: 'hive://secret/intel-bearer' } },
          geo: { type: 'http', url: 'https://geo.example.net/mcp' },
          ticketing: { type: 'stdio', command: '/opt/ticketing/bin/mcp-server', args: ['--tenant', 'corp', '--read-only'], env: { TICKET_API_KEY: 'hive://secret/ticket-api' } },
        },
      },
    }],
    ['definition-plain.yaml', {
      name: `exfil-review-${HOST}`,
      prompt: `${RECORD_PROMPT}\n\n${dataBlock(RECORD_DATA)}`,
      anthropicSecret: 'hive://secret/claude-key', lcApiKeySecret: 'hive://secret/lc-org-key', lcUidSecret: 'hive://secret/lc-user-id',
      idempotentKey: DETECT_ID, debounceKey: 'exfil-shared', profile: RECORD_PROFILE as ActionPlan['profile'], data: RECORD_DATA, warnings: [],
    }],
    ['definition-augmented.yaml', {
      name: `exfil-review-${HOST}`,
      // Record prompt, one blank line, the rule's prompt, one blank line, one block with the merged data.
      prompt: `${RECORD_PROMPT}\n\nThis trigger is about cloud sync tools: list the remote targets first.\n\n${dataBlock(AUGMENTED_DATA)}`,
      anthropicSecret: 'hive://secret/claude-key', lcApiKeySecret: 'hive://secret/lc-org-key', lcUidSecret: 'hive://secret/lc-user-id',
      idempotentKey: DETECT_ID, debounceKey: `exfil-${SID}`, profile: RECORD_PROFILE as ActionPlan['profile'], data: AUGMENTED_DATA, warnings: [],
    }],
  ])('%s', (file, expected) => {
    expect(planFor(file)).toEqual(expected);
  });

  it('accepts the older action name and keeps it', () => {
    const [entry] = actionsOf(load('overview-rule.yaml') as Rule);
    expect(entry).toMatchObject({ at: 'respond[1]', action: { action: 'start ai session', mode: 'inline' } });
  });

  it('definition mode merges rule data over record data, rule keys winning in place', () => {
    const plan = planFor('definition-augmented.yaml');
    expect(Object.keys(plan.data)).toEqual(['host', 'sensor', 'category', 'parent_image', 'ports', 'ticket', 'severity_floor', 'trigger']);
    expect(plan.data.category).toBe('rule said exfil-tool-launched');
    expect(plan.prompt.match(/```json/g)).toHaveLength(1);
  });

  it('applies record provider blocks nowhere, and says so', () => {
    const action = parseAction({ action: 'start ai agent', definition: 'hive://ai_agent/bedrock-investigator' });
    const plan = resolveAction(action, full, record('bedrock-investigator'));
    expect(plan).toEqual({
      prompt: 'Same job, billed through another provider.', anthropicSecret: 'hive://secret/placeholder-key', data: {},
      profile: { one_shot: false, mcp_servers: { tickets: { type: 'stdio', command: '/opt/tickets/mcp' } } },
      warnings: [expect.stringContaining("bedrock block is accepted but not applied"), expect.stringContaining('vertex block is accepted but not applied')],
    });
  });

  it('needs the record in definition mode and refuses one inline', () => {
    const [def] = actionsOf(load('definition-plain.yaml') as Rule);
    const [inline] = actionsOf(load('inline-basic.yaml') as Rule);
    expect(def!.action).toMatchObject({ mode: 'definition', agentName: 'exfil-investigator' });
    expect(() => resolveAction(def!.action, full)).toThrow('hive://ai_agent/exfil-investigator must be loaded');
    expect(() => resolveAction(inline!.action, full, record('exfil-investigator'))).toThrow('takes no ai_agent record');
  });
});

describe('keys whose variable part is missing are dropped, with a warning', () => {
  type Keys = Pick<ActionPlan, 'idempotentKey' | 'debounceKey'>;
  it.each<[string, Keys, RegExp[]]>([
    ['idempotent.yaml', {}, [/^idempotent_key not applied: \{\{ \.detect\.detect_id \}\} rendered empty/]],
    ['debounce-templated.yaml', {}, [/^debounce_key not applied: \{\{ \.routing\.sid \}\} rendered empty/]],
    ['debounce-constant.yaml', { debounceKey: 'case-queue-worker' }, []],
    // The rule's own key is dropped rather than falling back to the record's: the rule chose to override it.
    ['definition-augmented.yaml', {}, [/^idempotent_key not applied/, /^debounce_key not applied/]],
  ])('%s on an event lacking the field', (file, keys, warnings) => {
    const plan = planFor(file, sparse);
    expect({ idempotentKey: plan.idempotentKey, debounceKey: plan.debounceKey }).toEqual(keys);
    expect(plan.warnings).toHaveLength(warnings.length);
    warnings.forEach((w, i) => expect(plan.warnings[i]).toMatch(w));
  });

  it('a record name that renders empty leaves the session unnamed', () => {
    const rec = parseAgentRecord({ prompt: 'p', anthropic_secret: 'hive://secret/k', name: '{{ .routing.nope }}' });
    const plan = resolveAction(parseAction({ action: 'start ai agent', definition: 'hive://ai_agent/x' }), full, rec);
    expect('name' in plan).toBe(false);
    expect(plan.warnings).toEqual(['name rendered empty for this event; the session is unnamed']);
  });
});

describe('the Hive record fixture', () => {
  it('loads the inner data object as the record', () => {
    const rec = record('exfil-investigator');
    expect(rec).toMatchObject({ anthropic_secret: 'hive://secret/claude-key', data: { host: 'routing.hostname', parent_image: 'event.PARENT/FILE_PATH' } });
    expect('usr_mtd' in rec).toBe(false);
  });

  it.each<[string, string | null]>([
    ['hive://ai_agent/exfil-investigator', 'exfil-investigator'],
    ['hive://ai_agent/a.b_c-1', 'a.b_c-1'],
    ['hive://ai_agent/', null],
    ['hive://ai_agent/x/y', null],
    ['hive://secret/x', null],
    ['exfil-investigator', null],
  ])('parseDefinitionRef(%j)', (ref, name) => {
    expect(parseDefinitionRef(ref)).toBe(name);
  });
});

const PATTERN_STAR = 'invalid tool pattern "Bash(rm -rf /tmp/*:*)": the prefix may not contain shell operators';
const NOT_WITH_DEFINITION = 'not allowed with definition (the ai_agent record supplies it)';
const HIVE_FORM = 'a Hive reference must have the form hive://secret/<name>';

describe('invalid actions are refused with every fault named by its path', () => {
  const cases = load('invalid-actions.yaml') as Record<string, Rule>;
  it.each<[string, string[]]>([
    ['missing-prompt', ['respond[1].prompt: is required']],
    ['missing-anthropic-secret', ['respond[0].anthropic_secret: is required']],
    ['mistyped-secret-ref', [`respond[0].anthropic_secret: ${HIVE_FORM}`, `respond[0].lc_api_key_secret: ${HIVE_FORM}`]],
    ['not-an-anthropic-key', ['respond[0].anthropic_secret: must be hive://secret/<name> or an Anthropic API key']],
    ['uses-profile-name', ['respond[0].profile_name: saved profiles are only for user sessions; give a D&R action its settings inline under profile']],
    ['profile-and-profile-name', ['respond[0].profile_name: profile and profile_name cannot both be set']],
    ['unknown-field', ['respond[0].urgency: unknown field']],
    ['setting-outside-profile', ['respond[0].max_turns: unknown field (session settings go under profile, e.g. profile.max_turns)']],
    ['bad-permission-mode', ['respond[0].profile.permission_mode: Invalid option: expected one of "acceptEdits"|"plan"|"bypassPermissions"']],
    ['bad-tool-pattern', [`respond[0].profile.denied_tools: ${PATTERN_STAR}`]],
    ['bad-profile-values', [
      'respond[0].profile.max_turns: Too small',
      'respond[0].profile.one_shot: Invalid input: expected boolean',
      'respond[0].profile.environment.LD_PRELOAD: this environment name is reserved by the sandbox',
      'respond[0].profile.mcp_servers.feed.type: must be "http" or "stdio"',
      'respond[0].profile.mcp_servers.local.url: unknown field',
    ]],
    ['mistyped-refs-in-profile', [
      `respond[0].profile.environment.FEED_KEY: ${HIVE_FORM}`,
      `respond[0].profile.mcp_servers.feed.headers.x-token: ${HIVE_FORM}`,
      `respond[0].profile.mcp_servers.local.env.OTHER: ${HIVE_FORM}`,
    ]],
    ['definition-wrong-hive', ['respond[0].definition: must have the form hive://ai_agent/<name>']],
    ['definition-bare-name', ['respond[0].definition: must have the form hive://ai_agent/<name>']],
    ['definition-with-inline-fields', [
      `respond[0].anthropic_secret: ${NOT_WITH_DEFINITION}`,
      `respond[0].profile: ${NOT_WITH_DEFINITION}`,
      'respond[0].model: unknown field (with definition, session settings come from the ai_agent record)',
    ]],
    ['unbalanced-prompt', ['respond[0].prompt: "{{" at offset 6 is never closed with "}}"']],
    ['unbalanced-keys-and-data', [
      'respond[2].idempotent_key: "{{" at offset 0 is not closed before the next "{{"',
      'respond[2].debounce_key: "{{" at offset 5 is never closed with "}}"',
      'respond[2].data.host: "{{" at offset 0 is never closed with "}}"',
    ]],
    ['not-a-field-reference', [
      'respond[0].prompt: {{ routing.hostname }} at offset 5: only field references',
      'respond[0].prompt: {{ .event..TIME }} at offset 31: a field reference is dot-separated names',
      'respond[0].prompt: {{ }} at offset 50: the expression is empty',
    ]],
    ['empty-keys', ['respond[0].idempotent_key: cannot be empty', 'respond[0].debounce_key: cannot be empty']],
    ['wrong-action-shape', ['respond[0].data: must be a map', 'respond[0].prompt: must be a string']],
  ])('%s', (name, expected) => {
    const rule = cases[name]!;
    const i = rule.respond.findIndex(isDrAction);
    const issues = issuesOf(() => parseAction(rule.respond[i], `respond[${i}]`));
    expect(issues).toHaveLength(expected.length);
    expected.forEach((prefix) => expect(issues).toContainEqual(expect.stringMatching(new RegExp(`^${escapeRe(prefix)}`))));
  });

  it('covers every fixture case', () => {
    expect(Object.keys(cases)).toHaveLength(20);
  });

  it.each<[unknown, string, string]>([
    ['start ai agent', '', '(action): an action must be a map of fields'],
    [{ action: 'report', prompt: 'p', anthropic_secret: 'sk-ant-x' }, 'respond[3]', 'respond[3].action: must be "start ai agent"'],
    [{ prompt: 'p', anthropic_secret: 'sk-ant-x' }, '', 'action: is required'],
  ])('refuses %j', (value, prefix, message) => {
    expect(issuesOf(() => parseAction(value, prefix))).toEqual([expect.stringContaining(message)]);
  });
});

describe('invalid ai_agent records are refused with paths', () => {
  const { ai_agent: records } = load('invalid-records.yaml') as { ai_agent: Record<string, { data: unknown }> };
  it.each<[string, string[]]>([
    ['no-prompt', ['prompt: is required']],
    ['no-credentials', ['anthropic_secret: is required']],
    ['nested-profile', ['profile: unknown field (a record holds its session settings at the top level)']],
    ['unknown-and-bad-settings', ['permission_mode: Invalid option', 'network_access: unknown field', 'colour: unknown field']],
    ['bad-provider-blocks', ['bedrock: access_key_id_secret and secret_access_key_secret must be given together', 'vertex.project_id: is required']],
    ['bad-templates', ['prompt: "{{" at offset 5 is never closed', 'name: {{ hostname }} at offset 0: only field references']],
  ])('%s', (name, expected) => {
    const prefix = `ai_agent.${name}.data`;
    const issues = issuesOf(() => parseAgentRecord(records[name]!.data, prefix));
    expect(issues).toHaveLength(expected.length);
    expected.forEach((e) => expect(issues).toContainEqual(expect.stringMatching(new RegExp(`^${escapeRe(`${prefix}.${e}`)}`))));
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
