import { compileRule, parseRule } from '../lib/dr/rules';
import { RuleIndex, recordType } from '../lib/dr/rule-index';

const rule = (detect: Record<string, unknown>) => parseRule({ detect, respond: [{ action: 'report', name: 'x' }] });
const RULES = [
  ['proc', rule({ event: 'NEW_PROCESS', op: 'contains', path: 'event/COMMAND_LINE', value: 'mimikatz' })],
  ['any-type', rule({ op: 'exists', path: 'event/FILE_PATH' })],
  ['dns-or-conn', rule({ events: ['DNS_REQUEST', 'NETWORK_CONNECTIONS'], op: 'ends with', path: 'event/DOMAIN_NAME', value: '.test' })],
  ['not-proc', rule({ event: 'NEW_PROCESS', not: true, op: 'exists', path: 'event/PARENT' })],
  ['on-detections', rule({ target: 'detection', event: 'credential', op: 'is greater than', path: 'priority', value: 3 })],
  ['any-detection', rule({ target: 'detection', op: 'exists', path: 'detect' })],
].map(([name, r]) => ({ name: name as string, rule: r as ReturnType<typeof parseRule>, run: compileRule(r as ReturnType<typeof parseRule>) }));

describe('RuleIndex', () => {
  const index = new RuleIndex(RULES);
  const names = (list: readonly { name: string }[]) => list.map((r) => r.name);

  it.each([
    ['event', 'NEW_PROCESS', ['proc', 'any-type', 'not-proc']],
    ['event', 'DNS_REQUEST', ['any-type', 'dns-or-conn']],
    ['event', 'NETWORK_CONNECTIONS', ['any-type', 'dns-or-conn']],
    ['event', 'FILE_CREATE', ['any-type']],
    ['event', undefined, ['any-type']],
    ['event', '\0any', ['any-type']],
    ['detection', 'credential', ['on-detections', 'any-detection']],
    ['detection', 'NEW_PROCESS', ['any-detection']],
  ] as const)('%s of type %j is offered to %j, in rule order', (target, type, expected) => {
    expect(names(index.candidates(target, type))).toEqual(expected);
  });

  it('finds exactly what evaluating every rule finds', () => {
    const events = [
      { routing: { event_type: 'NEW_PROCESS' }, event: { COMMAND_LINE: 'mimikatz.exe', FILE_PATH: 'C:\\m.exe' } },
      { routing: { event_type: 'NEW_PROCESS' }, event: { COMMAND_LINE: 'calc', PARENT: {} } },
      { routing: { event_type: 'DNS_REQUEST' }, event: { DOMAIN_NAME: 'evil.test' } },
      { routing: { event_type: 'FILE_CREATE' }, event: { FILE_PATH: '/tmp/x' } },
      { routing: {}, event: { FILE_PATH: '/tmp/y' } },
      { event: { DOMAIN_NAME: 'x.test' } },
    ];
    for (const record of events) {
      const all = RULES.filter((r) => r.run({ target: 'event', record })).map((r) => r.name);
      const indexed = index.candidates('event', recordType('event', record)).filter((r) => r.run({ target: 'event', record })).map((r) => r.name);
      expect(indexed).toEqual(all);
    }
    const detection = { cat: 'credential', priority: 5, detect: { event: {} } };
    const all = RULES.filter((r) => r.run({ target: 'detection', record: detection })).map((r) => r.name);
    expect(names(index.candidates('detection', recordType('detection', detection)).filter((r) => r.run({ target: 'detection', record: detection })))).toEqual(all);
    expect(all).toEqual(['on-detections', 'any-detection']);
  });
});
