import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  compileRule,
  evaluate,
  MAX_RULE_DEPTH,
  MAX_RULE_NODES,
  parseRule,
  RuleError,
  validateRule,
  type EvaluationInput,
  type LookupResolver,
  type Rule,
} from '../lib/dr/rules';

type Obj = Record<string, unknown>;

const LISTS: Record<string, ReadonlySet<string>> = {
  'bad-domains': new Set(['evil.example', 'c2.badcorp.test', 'MixedCase.Example']),
  'bad-hashes': new Set(['aa11', 'bb22']),
  empty: new Set(),
};
const lookups: LookupResolver = (name) => LISTS[name];

const rule = (detect: Obj, respond: unknown[] = []): Rule => parseRule({ detect, respond });
const ev = (event: unknown, eventType = 'NEW_PROCESS', routing: Obj = {}): Obj => ({
  routing: { hostname: 'ws-01', sid: 'sid-1', event_type: eventType, ...routing },
  event,
});
const onEvent = (detect: Obj, record: Obj, extra: Partial<EvaluationInput> = {}): boolean =>
  evaluate(rule(detect), { target: 'event', record, ...extra }, lookups);

const PROC = {
  FILE_PATH: 'C:\\Windows\\System32\\cmd.exe',
  COMMAND_LINE: 'cmd.exe /c whoami && whoami /all',
  PROCESS_ID: 4242,
  PID_TEXT: '4242',
  SCORE: 7.5,
  NEGATIVE: -3,
  ELEVATED: true,
  NOTHING: null,
  EMPTY: '',
  USER_NAME: 'CORP\\Alice',
  PARENT: { FILE_PATH: 'C:\\Windows\\explorer.exe', PROCESS_ID: 100 },
  TAGS: ['alpha', 'Beta', 42],
};

describe('every operator', () => {
  it.each<[string, Obj, boolean]>([
    ['is: equal string', { op: 'is', path: 'event/FILE_PATH', value: 'C:\\Windows\\System32\\cmd.exe' }, true],
    ['is: substring is not equality', { op: 'is', path: 'event/FILE_PATH', value: 'cmd.exe' }, false],
    ['is: number to number', { op: 'is', path: 'event/PROCESS_ID', value: 4242 }, true],
    ['is: number to numeric string', { op: 'is', path: 'event/PID_TEXT', value: 4242 }, true],
    ['is: string to number', { op: 'is', path: 'event/PROCESS_ID', value: '4242' }, true],
    ['is: other number', { op: 'is', path: 'event/PROCESS_ID', value: 4243 }, false],
    ['is: float', { op: 'is', path: 'event/SCORE', value: 7.5 }, true],
    ['is: boolean', { op: 'is', path: 'event/ELEVATED', value: true }, true],
    ['is: other boolean', { op: 'is', path: 'event/ELEVATED', value: false }, false],
    ['is: empty string', { op: 'is', path: 'event/EMPTY', value: '' }, true],
    ['is: null is not ""', { op: 'is', path: 'event/NOTHING', value: '' }, false],
    ['is: an object is not a string', { op: 'is', path: 'event/PARENT', value: 'x' }, false],
    ['contains: present', { op: 'contains', path: 'event/COMMAND_LINE', value: 'whoami' }, true],
    ['contains: absent', { op: 'contains', path: 'event/COMMAND_LINE', value: 'net user' }, false],
    ['contains: count met', { op: 'contains', path: 'event/COMMAND_LINE', value: 'whoami', count: 2 }, true],
    ['contains: count not met', { op: 'contains', path: 'event/COMMAND_LINE', value: 'whoami', count: 3 }, false],
    ['contains: number value against a number', { op: 'contains', path: 'event/PROCESS_ID', value: 24 }, true],
    ['starts with: prefix', { op: 'starts with', path: 'event/FILE_PATH', value: 'C:\\Windows\\' }, true],
    ['starts with: not a prefix', { op: 'starts with', path: 'event/FILE_PATH', value: 'cmd' }, false],
    ['ends with: suffix', { op: 'ends with', path: 'event/FILE_PATH', value: '\\cmd.exe' }, true],
    ['ends with: not a suffix', { op: 'ends with', path: 'event/FILE_PATH', value: 'C:' }, false],
    ['exists: present', { op: 'exists', path: 'event/PARENT' }, true],
    ['exists: absent', { op: 'exists', path: 'event/GRANDPARENT' }, false],
    ['exists: null is present', { op: 'exists', path: 'event/NOTHING' }, true],
    ['exists truthy: null is absent', { op: 'exists', path: 'event/NOTHING', truthy: true }, false],
    ['exists truthy: "" is absent', { op: 'exists', path: 'event/EMPTY', truthy: true }, false],
    ['exists truthy: a value', { op: 'exists', path: 'event/PARENT/PROCESS_ID', truthy: true }, true],
    ['matches: searched, not anchored', { op: 'matches', path: 'event/COMMAND_LINE', re: 'who(ami)? /all' }, true],
    ['matches: anchored pattern', { op: 'matches', path: 'event/COMMAND_LINE', re: '^whoami' }, false],
    ['matches: no match', { op: 'matches', path: 'event/COMMAND_LINE', re: 'net\\s+user' }, false],
    ['matches: a regex over a path', { op: 'matches', path: 'event/FILE_PATH', re: '.*\\\\system32\\\\.*\\.exe' }, true],
    ['matches: number rendered as text', { op: 'matches', path: 'event/PROCESS_ID', re: '^42+$' }, false],
    ['matches: number rendered as text (match)', { op: 'matches', path: 'event/PROCESS_ID', re: '^4242$' }, true],
    ['is greater than: number', { op: 'is greater than', path: 'event/PROCESS_ID', value: 4000 }, true],
    ['is greater than: equal is not greater', { op: 'is greater than', path: 'event/PROCESS_ID', value: 4242 }, false],
    ['is greater than: numeric string in the event', { op: 'is greater than', path: 'event/PID_TEXT', value: 4000 }, true],
    ['is greater than: numeric string in the rule', { op: 'is greater than', path: 'event/PROCESS_ID', value: '4000' }, true],
    ['is greater than: non-numeric text never compares', { op: 'is greater than', path: 'event/FILE_PATH', value: 0 }, false],
    ['is greater than: float', { op: 'is greater than', path: 'event/SCORE', value: 7.25 }, true],
    ['is greater than: boolean never compares', { op: 'is greater than', path: 'event/ELEVATED', value: 0 }, false],
    ['is lower than: number', { op: 'is lower than', path: 'event/PROCESS_ID', value: 5000 }, true],
    ['is lower than: negative', { op: 'is lower than', path: 'event/NEGATIVE', value: -2 }, true],
    ['is lower than: not lower', { op: 'is lower than', path: 'event/PROCESS_ID', value: 10 }, false],
    ['is greater than, length of: long command line', { op: 'is greater than', path: 'event/COMMAND_LINE', value: 20, 'length of': true }, true],
    ['is lower than, length of: short', { op: 'is lower than', path: 'event/COMMAND_LINE', value: 20, 'length of': true }, false],
    ['is lower than, length of: a list', { op: 'is lower than', path: 'event/TAGS', value: 4, 'length of': true }, true],
    ['lookup: listed', { op: 'lookup', path: 'event/DOMAIN', resource: 'hive://lookup/bad-domains' }, true],
    ['and: all hold', { op: 'and', rules: [{ op: 'contains', path: 'event/COMMAND_LINE', value: 'whoami' }, { op: 'exists', path: 'event/PARENT' }] }, true],
    ['and: one fails', { op: 'and', rules: [{ op: 'contains', path: 'event/COMMAND_LINE', value: 'whoami' }, { op: 'exists', path: 'event/NOPE' }] }, false],
    ['or: one holds', { op: 'or', rules: [{ op: 'exists', path: 'event/NOPE' }, { op: 'ends with', path: 'event/FILE_PATH', value: 'cmd.exe' }] }, true],
    ['or: none holds', { op: 'or', rules: [{ op: 'exists', path: 'event/NOPE' }, { op: 'is', path: 'event/PROCESS_ID', value: 1 }] }, false],
  ])('%s', (_name, detect, expected) => {
    expect(onEvent({ event: 'NEW_PROCESS', ...detect }, ev({ ...PROC, DOMAIN: 'evil.example' }))).toBe(expected);
  });
});

describe('not: true inverts the operator', () => {
  const record = ev(PROC);
  it.each<[string, Obj]>([
    ['is', { op: 'is', path: 'event/PROCESS_ID', value: 4242 }],
    ['contains', { op: 'contains', path: 'event/COMMAND_LINE', value: 'whoami' }],
    ['starts with', { op: 'starts with', path: 'event/FILE_PATH', value: 'C:' }],
    ['ends with', { op: 'ends with', path: 'event/FILE_PATH', value: '.exe' }],
    ['exists', { op: 'exists', path: 'event/PARENT' }],
    ['matches', { op: 'matches', path: 'event/COMMAND_LINE', re: 'cmd' }],
    ['is greater than', { op: 'is greater than', path: 'event/PROCESS_ID', value: 1 }],
    ['is lower than', { op: 'is lower than', path: 'event/PROCESS_ID', value: 99999 }],
    ['lookup', { op: 'lookup', path: 'routing/hostname', resource: 'lookup/hosts' }],
    ['and', { op: 'and', rules: [{ op: 'exists', path: 'event/PARENT' }, { op: 'exists', path: 'routing/sid' }] }],
    ['or', { op: 'or', rules: [{ op: 'exists', path: 'event/NOPE' }, { op: 'exists', path: 'routing/sid' }] }],
  ])('%s', (_name, detect) => {
    const hosts: LookupResolver = (n) => (n === 'hosts' ? new Set(['ws-01']) : undefined);
    const input: EvaluationInput = { target: 'event', record };
    expect(evaluate(rule(detect), input, hosts)).toBe(true);
    expect(evaluate(rule({ ...detect, not: true }), input, hosts)).toBe(false);
    expect(evaluate(rule({ ...detect, not: false }), input, hosts)).toBe(true);
  });

  it('a missing path is false, so its negation is true', () => {
    expect(onEvent({ op: 'contains', path: 'event/NOPE', value: 'x' }, record)).toBe(false);
    expect(onEvent({ op: 'contains', path: 'event/NOPE', value: 'x', not: true }, record)).toBe(true);
    expect(onEvent({ op: 'exists', path: 'event/NOPE', not: true }, record)).toBe(true);
  });

  it('inside and/or, and on an or ("none of these")', () => {
    const detect = {
      op: 'and',
      rules: [
        { op: 'ends with', path: 'event/FILE_PATH', value: 'cmd.exe' },
        { op: 'or', not: true, rules: [{ op: 'contains', path: 'event/COMMAND_LINE', value: 'net ' }, { op: 'contains', path: 'event/COMMAND_LINE', value: 'reg ' }] },
      ],
    };
    expect(onEvent(detect, record)).toBe(true);
    expect(onEvent(detect, ev({ ...PROC, COMMAND_LINE: 'cmd /c net user' }))).toBe(false);
  });

  it('does not invert the event filter', () => {
    const detect = { event: 'NEW_PROCESS', op: 'contains', path: 'event/COMMAND_LINE', value: 'zzz', not: true };
    expect(onEvent(detect, record)).toBe(true);
    expect(onEvent(detect, ev(PROC, 'DNS_REQUEST'))).toBe(false);
  });
});

describe('case sensitivity', () => {
  const record = ev({ USER_NAME: 'CORP\\Alice', DOMAIN: 'Evil.Example', HOST: 'mixedcase.example' });
  // string operators and lookup: sensitive unless `case sensitive: false`; matches: the reverse.
  it.each<[string, boolean | undefined, Obj, boolean]>([
    ['is', undefined, { op: 'is', path: 'event/USER_NAME', value: 'corp\\alice' }, false],
    ['is', true, { op: 'is', path: 'event/USER_NAME', value: 'corp\\alice' }, false],
    ['is', false, { op: 'is', path: 'event/USER_NAME', value: 'corp\\alice' }, true],
    ['is (same case)', true, { op: 'is', path: 'event/USER_NAME', value: 'CORP\\Alice' }, true],
    ['contains', undefined, { op: 'contains', path: 'event/USER_NAME', value: 'ALICE' }, false],
    ['contains', false, { op: 'contains', path: 'event/USER_NAME', value: 'ALICE' }, true],
    ['contains count', false, { op: 'contains', path: 'event/DOMAIN', value: 'e', count: 2 }, true],
    ['contains count', undefined, { op: 'contains', path: 'event/DOMAIN', value: 'e', count: 2 }, false],
    ['starts with', undefined, { op: 'starts with', path: 'event/USER_NAME', value: 'corp' }, false],
    ['starts with', false, { op: 'starts with', path: 'event/USER_NAME', value: 'corp' }, true],
    ['ends with', undefined, { op: 'ends with', path: 'event/USER_NAME', value: 'ALICE' }, false],
    ['ends with', false, { op: 'ends with', path: 'event/USER_NAME', value: 'ALICE' }, true],
    ['lookup (event upper, list lower)', undefined, { op: 'lookup', path: 'event/DOMAIN', resource: 'lookup/bad-domains' }, false],
    ['lookup (event upper, list lower)', false, { op: 'lookup', path: 'event/DOMAIN', resource: 'lookup/bad-domains' }, true],
    ['lookup (event lower, list mixed)', undefined, { op: 'lookup', path: 'event/HOST', resource: 'lookup/bad-domains' }, false],
    ['lookup (event lower, list mixed)', false, { op: 'lookup', path: 'event/HOST', resource: 'lookup/bad-domains' }, true],
    ['matches', undefined, { op: 'matches', path: 'event/USER_NAME', re: 'alice$' }, true],
    ['matches', false, { op: 'matches', path: 'event/USER_NAME', re: 'alice$' }, true],
    ['matches', true, { op: 'matches', path: 'event/USER_NAME', re: 'alice$' }, false],
    ['matches (same case)', true, { op: 'matches', path: 'event/USER_NAME', re: 'Alice$' }, true],
  ])('%s, case sensitive: %s', (_name, cs, detect, expected) => {
    const d = cs === undefined ? detect : { ...detect, 'case sensitive': cs };
    expect(onEvent(d, record)).toBe(expected);
  });
});

describe('paths', () => {
  const record: Obj = {
    routing: { hostname: 'ws-01', event_type: 'NETWORK_CONNECTIONS', tags: ['vip', 'finance'] },
    event: {
      PARENT: { FILE_PATH: 'C:\\Windows\\explorer.exe', PARENT: { FILE_PATH: 'C:\\Windows\\userinit.exe' } },
      NETWORK_ACTIVITY: [
        { SOURCE: { IP_ADDRESS: '10.0.0.5', PORT: 50000 }, DESTINATION: { IP_ADDRESS: '8.8.8.8', PORT: 53 } },
        { SOURCE: { IP_ADDRESS: '10.0.0.5', PORT: 50001 }, DESTINATION: { IP_ADDRESS: '192.0.2.9', PORT: 445 } },
      ],
      MATRIX: [['a', 'b'], ['c', ['deep-in-list']]],
      HASHES: { md5: 'aa11', sha1: 'cc33' },
      EMPTY_LIST: [],
    },
  };
  it.each<[string, Obj, boolean]>([
    ['nested keys', { op: 'ends with', path: 'event/PARENT/FILE_PATH', value: 'explorer.exe' }, true],
    ['routing', { op: 'is', path: 'routing/hostname', value: 'ws-01' }, true],
    ['leading and doubled slashes are ignored', { op: 'is', path: '/routing//hostname', value: 'ws-01' }, true],
    ['a list of scalars: any element', { op: 'is', path: 'routing/tags', value: 'finance' }, true],
    ['a list of scalars: no element', { op: 'is', path: 'routing/tags', value: 'hr' }, false],
    ['keys through a list of objects', { op: 'is', path: 'event/NETWORK_ACTIVITY/DESTINATION/PORT', value: 445 }, true],
    ['keys through a list of objects (none)', { op: 'is', path: 'event/NETWORK_ACTIVITY/DESTINATION/PORT', value: 22 }, false],
    ['list index', { op: 'is', path: 'event/NETWORK_ACTIVITY/[1]/DESTINATION/PORT', value: 445 }, true],
    ['list index (other element)', { op: 'is', path: 'event/NETWORK_ACTIVITY/[0]/DESTINATION/PORT', value: 445 }, false],
    ['list index out of range', { op: 'exists', path: 'event/NETWORK_ACTIVITY/[7]' }, false],
    ['nested lists are flattened', { op: 'is', path: 'event/MATRIX', value: 'deep-in-list' }, true],
    ['? is one level: any key', { op: 'is', path: 'event/NETWORK_ACTIVITY/?/IP_ADDRESS', value: '192.0.2.9' }, true],
    ['? is one level: not two', { op: 'is', path: 'event/?/FILE_PATH', value: 'C:\\Windows\\userinit.exe' }, false],
    ['? finds the direct child', { op: 'is', path: 'event/?/FILE_PATH', value: 'C:\\Windows\\explorer.exe' }, true],
    ['* reaches any depth', { op: 'is', path: 'event/*/FILE_PATH', value: 'C:\\Windows\\userinit.exe' }, true],
    ['* also matches at zero depth', { op: 'is', path: 'event/PARENT/*/FILE_PATH', value: 'C:\\Windows\\explorer.exe' }, true],
    ['* through lists', { op: 'is', path: '*/PORT', value: 53 }, true],
    ['trailing * tests every value below', { op: 'contains', path: 'event/*', value: 'userinit' }, true],
    ['trailing * (no value contains it)', { op: 'contains', path: 'event/*', value: 'lsass' }, false],
    ['trailing * under a key', { op: 'is', path: 'event/HASHES/*', value: 'cc33' }, true],
    ['exists with trailing * on an object', { op: 'exists', path: 'event/HASHES/*' }, true],
    ['exists with trailing * on a missing key', { op: 'exists', path: 'event/NOPE/*' }, false],
    ['exists on an empty list', { op: 'exists', path: 'event/EMPTY_LIST' }, true],
    ['a key on a scalar', { op: 'exists', path: 'routing/hostname/x' }, false],
    ['inherited properties are not keys', { op: 'exists', path: 'event/constructor' }, false],
    ['__proto__ is not a key', { op: 'exists', path: 'event/__proto__' }, false],
    ['toString is not a key', { op: 'exists', path: 'routing/hostname/toString' }, false],
    ['"/" is the record itself', { op: 'exists', path: '/' }, true],
    ['lookup through ?', { op: 'lookup', path: 'event/HASHES/?', resource: 'lookup/bad-hashes' }, true],
  ])('%s', (_name, detect, expected) => {
    expect(onEvent(detect, record)).toBe(expected);
  });

  it('lists anywhere on the way (JSON keys that are own properties only)', () => {
    const hostile = JSON.parse('{"routing":{"event_type":"X"},"event":{"__proto__":{"polluted":"yes"},"A":[{"B":[{"C":"found"}]}]}}') as Obj;
    expect(onEvent({ op: 'is', path: 'event/A/B/C', value: 'found' }, hostile)).toBe(true);
    expect(onEvent({ op: 'is', path: 'event/__proto__/polluted', value: 'yes' }, hostile)).toBe(true);
    expect(({} as Obj).polluted).toBeUndefined();
  });
});

describe('event filter and target', () => {
  const proc = ev({ COMMAND_LINE: 'x' }, 'NEW_PROCESS');
  const dns = ev({ DOMAIN_NAME: 'x' }, 'DNS_REQUEST');
  const exists = { op: 'exists', path: 'routing/sid' };
  const detection: Obj = { cat: 'suspicious-thing', detect_id: 'd-1', priority: 5, routing: { sid: 'sid-1', event_type: 'NEW_PROCESS' }, detect: proc };

  it.each<[string, Obj, EvaluationInput, boolean]>([
    ['event: matching type', { event: 'NEW_PROCESS', ...exists }, { target: 'event', record: proc }, true],
    ['event: other type', { event: 'NEW_PROCESS', ...exists }, { target: 'event', record: dns }, false],
    ['event: "*"', { event: '*', ...exists }, { target: 'event', record: dns }, true],
    ['no filter', exists, { target: 'event', record: dns }, true],
    ['events: listed', { events: ['DNS_REQUEST', 'NEW_PROCESS'], ...exists }, { target: 'event', record: dns }, true],
    ['events: not listed', { events: ['FILE_CREATE', 'NEW_PROCESS'], ...exists }, { target: 'event', record: dns }, false],
    ['events with "*"', { events: ['FILE_CREATE', '*'], ...exists }, { target: 'event', record: dns }, true],
    ['event type is case-sensitive', { event: 'new_process', ...exists }, { target: 'event', record: proc }, false],
    ['no routing/event_type', { event: 'NEW_PROCESS', ...exists }, { target: 'event', record: { routing: { sid: 's' }, event: {} } }, false],
    ['eventType given by the caller wins', { event: 'DNS_REQUEST', ...exists }, { target: 'event', record: proc, eventType: 'DNS_REQUEST' }, true],
    ['filter on a nested operator', { op: 'or', rules: [{ event: 'DNS_REQUEST', op: 'exists', path: 'event/DOMAIN_NAME' }, { event: 'NEW_PROCESS', op: 'exists', path: 'event/COMMAND_LINE' }] }, { target: 'event', record: proc }, true],
    ['filter on a nested operator (wrong pairing)', { op: 'or', rules: [{ event: 'DNS_REQUEST', op: 'exists', path: 'event/COMMAND_LINE' }, { event: 'NEW_PROCESS', op: 'exists', path: 'event/DOMAIN_NAME' }] }, { target: 'event', record: proc }, false],
    ['edr rule, detection input', exists, { target: 'detection', record: detection }, false],
    ['target: edr written out', { target: 'edr', ...exists }, { target: 'event', record: proc }, true],
    ['detection rule, detection input', { target: 'detection', op: 'is', path: 'priority', value: 5 }, { target: 'detection', record: detection }, true],
    ['detection rule, event input', { target: 'detection', op: 'exists', path: 'routing/sid' }, { target: 'event', record: proc }, false],
    ['detection: event filters on the report name (cat)', { target: 'detection', event: 'suspicious-thing', ...exists }, { target: 'detection', record: detection }, true],
    ['detection: other report name', { target: 'detection', event: 'other-report', ...exists }, { target: 'detection', record: detection }, false],
    ['detection: not on the event type', { target: 'detection', event: 'NEW_PROCESS', ...exists }, { target: 'detection', record: detection }, false],
    ['detection: paths from the top of the detection', { target: 'detection', op: 'is', path: 'detect/event/COMMAND_LINE', value: 'x' }, { target: 'detection', record: detection }, true],
    ['detection: cat', { target: 'detection', op: 'is', path: 'cat', value: 'suspicious-thing' }, { target: 'detection', record: detection }, true],
  ])('%s', (_name, detect, input, expected) => {
    expect(evaluate(rule(detect), input, lookups)).toBe(expected);
  });
});

describe('lookup', () => {
  const record = ev({ DOMAIN_NAME: 'evil.example', HASH: 'bb22', PORT: 8080 }, 'DNS_REQUEST');
  it.each<[string, Obj, LookupResolver, boolean]>([
    ['hive://lookup/NAME', { op: 'lookup', path: 'event/DOMAIN_NAME', resource: 'hive://lookup/bad-domains' }, lookups, true],
    ['lookup/NAME', { op: 'lookup', path: 'event/DOMAIN_NAME', resource: 'lookup/bad-domains' }, lookups, true],
    ['the value must be in that list', { op: 'lookup', path: 'event/DOMAIN_NAME', resource: 'lookup/bad-hashes' }, lookups, false],
    ['an empty list', { op: 'lookup', path: 'event/DOMAIN_NAME', resource: 'lookup/empty' }, lookups, false],
    ['a list the organization does not have', { op: 'lookup', path: 'event/DOMAIN_NAME', resource: 'lookup/nope' }, lookups, false],
    ['no resolver at all', { op: 'lookup', path: 'event/DOMAIN_NAME', resource: 'lookup/bad-domains' }, () => undefined, false],
    ['a missing path', { op: 'lookup', path: 'event/NOPE', resource: 'lookup/bad-domains' }, lookups, false],
    ['numbers are looked up as text', { op: 'lookup', path: 'event/PORT', resource: 'lookup/ports' }, (n) => (n === 'ports' ? new Set(['8080']) : undefined), true],
    ['a resolver per organization', { op: 'lookup', path: 'event/HASH', resource: 'lookup/bad-hashes' }, (n) => (n === 'bad-hashes' ? new Set(['zz']) : undefined), false],
  ])('%s', (_name, detect, resolver, expected) => {
    expect(evaluate(rule({ event: 'DNS_REQUEST', ...detect }), { target: 'event', record }, resolver)).toBe(expected);
  });

  it('is asked for the list by name only', () => {
    const asked: string[] = [];
    evaluate(rule({ op: 'lookup', path: 'event/HASH', resource: 'hive://lookup/bad-hashes' }), { target: 'event', record }, (n) => {
      asked.push(n);
      return undefined;
    });
    expect(asked).toEqual(['bad-hashes']);
  });

  it('case folding follows a list that grows', () => {
    const list = new Set(['a.example']);
    const r = rule({ op: 'lookup', path: 'event/D', resource: 'lookup/l', 'case sensitive': false });
    const run = (d: string) => evaluate(r, { target: 'event', record: ev({ D: d }) }, () => list);
    expect(run('B.EXAMPLE')).toBe(false);
    list.add('b.example');
    expect(run('B.EXAMPLE')).toBe(true);
  });
});

describe('hostile and edge inputs', () => {
  it('catastrophic-backtracking patterns evaluate (linear-time engine)', () => {
    const long = `${'a'.repeat(50_000)}!`;
    for (const re of ['(a+)+$', '(a|aa)+$', '(a*)*b', '^(a|a?)+$', '(.*a){12}$']) {
      const r = rule({ op: 'matches', path: 'event/X', re });
      expect(evaluate(r, { target: 'event', record: ev({ X: long }) })).toBe(false);
    }
    expect(evaluate(rule({ op: 'matches', path: 'event/X', re: '(a+)+!$' }), { target: 'event', record: ev({ X: long }) })).toBe(true);
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['a string', 'NEW_PROCESS mimikatz'],
    ['a number', 42],
    ['a list', [{ event: { X: 'mimikatz' } }]],
    ['undefined', undefined],
  ])('a record that is %s matches nothing, even negated', (_name, record) => {
    for (const detect of [{ op: 'exists', path: '/' }, { op: 'contains', path: 'event/X', value: 'mimikatz', not: true }]) {
      expect(evaluate(rule(detect), { target: 'event', record: record as Obj })).toBe(false);
    }
  });

  it('malformed evaluation input is a non-match, not a crash', () => {
    const fn = compileRule(rule({ op: 'exists', path: 'routing' }));
    expect(fn(undefined as unknown as EvaluationInput)).toBe(false);
    expect(fn({ target: 'event' } as EvaluationInput)).toBe(false);
    expect(fn({ target: 'bogus', record: {} } as unknown as EvaluationInput)).toBe(false);
  });

  it('deeply nested rules up to the limit, and refused beyond it', () => {
    const nest = (levels: number): Obj => {
      let node: Obj = { op: 'is', path: 'event/X', value: 'y' };
      for (let i = 0; i < levels; i++) node = { op: i % 2 ? 'and' : 'or', rules: [node] };
      return node;
    };
    expect(onEvent(nest(MAX_RULE_DEPTH), ev({ X: 'y' }))).toBe(true);
    expect(() => rule(nest(MAX_RULE_DEPTH + 1))).toThrow(/nested deeper than/);
    expect(() => rule(nest(10_000))).toThrow(RuleError);
  });

  it('refuses rules with too many operators', () => {
    const rules = Array.from({ length: MAX_RULE_NODES + 1 }, (_, i) => ({ op: 'is', path: 'event/X', value: `v${i}` }));
    expect(() => rule({ op: 'or', rules })).toThrow(`more than ${MAX_RULE_NODES} operators`);
    expect(onEvent({ op: 'or', rules: rules.slice(0, MAX_RULE_NODES - 1) }, ev({ X: `v${MAX_RULE_NODES - 2}` }))).toBe(true);
  });

  it('several wildcards in one path stay proportional to the record', () => {
    const tree = (depth: number): Obj => (depth === 0 ? { LEAF: 'x' } : { A: tree(depth - 1), B: tree(depth - 1), L: [tree(depth - 1)] });
    const record = ev(tree(8));
    expect(onEvent({ op: 'is', path: 'event/*/A/*/?/*/B/*/MISSING', value: 'x' }, record)).toBe(false);
    expect(onEvent({ op: 'is', path: 'event/*/A/*/?/*/B/*/LEAF', value: 'x' }, record)).toBe(true);
  });

  it('deeply nested and cyclic records end the walk', () => {
    let deep: Obj = { X: 'bottom' };
    for (let i = 0; i < 5000; i++) deep = { N: deep };
    expect(onEvent({ op: 'is', path: 'event/*/X', value: 'bottom' }, ev(deep))).toBe(false);
    expect(onEvent({ op: 'is', path: 'event/N/N/*/X', value: 'bottom' }, ev(deep))).toBe(false);
    let shallow: Obj = { X: 'bottom' };
    for (let i = 0; i < 20; i++) shallow = { N: shallow };
    expect(onEvent({ op: 'is', path: 'event/*/X', value: 'bottom' }, ev(shallow))).toBe(true);

    const cyclic: Obj = { X: 'loop' };
    cyclic.SELF = cyclic;
    cyclic.LIST = [cyclic];
    expect(onEvent({ op: 'contains', path: 'event/*', value: 'never' }, ev(cyclic))).toBe(false);
    expect(onEvent({ op: 'is', path: 'event/SELF/SELF/LIST/X', value: 'loop' }, ev(cyclic))).toBe(true);
  });

  it('wide records and long values', () => {
    const wide: Obj = {};
    for (let i = 0; i < 20_000; i++) wide[`K${i}`] = `value-${i}`;
    expect(onEvent({ op: 'is', path: 'event/?', value: 'value-19999' }, ev(wide))).toBe(true);
    const big = 'x'.repeat(1_000_000);
    expect(onEvent({ op: 'contains', path: 'event/X', value: 'needle' }, ev({ X: `${big}needle` }))).toBe(true);
    expect(onEvent({ op: 'matches', path: 'event/X', re: 'x{5}needle$' }, ev({ X: `${big}needle` }))).toBe(true);
  });

  it('unicode case folding', () => {
    expect(onEvent({ op: 'is', path: 'event/X', value: 'ÉCOLE', 'case sensitive': false }, ev({ X: 'école' }))).toBe(true);
    expect(onEvent({ op: 'matches', path: 'event/X', re: '^ÉCOLE$' }, ev({ X: 'école' }))).toBe(true);
  });
});

describe('malformed rules are refused with the place of the problem', () => {
  const ok = { op: 'is', path: 'event/X', value: 'y' };
  it.each<[string, unknown, string]>([
    ['unknown operator', { detect: { op: 'and', rules: [ok, { op: 'iz', path: 'event/X', value: 'y' }] }, respond: [] }, 'detect.rules[1].op: unknown operator "iz"'],
    ['op: not is not an operator', { detect: { op: 'not', rules: [ok] }, respond: [] }, 'detect.op: unknown operator "not" (negate an operator with "not: true" on it)'],
    ['a grammar operator this engine lacks', { detect: { op: 'cidr', path: 'event/IP', cidr: '10.0.0.0/8' }, respond: [] }, 'detect.op: operator "cidr" is not supported by this engine'],
    ['missing op', { detect: { path: 'event/X', value: 'y' }, respond: [] }, 'detect.op: required'],
    ['op not a string', { detect: { op: 5 }, respond: [] }, 'detect.op: must be a string, got number 5'],
    ['missing path', { detect: { op: 'contains', value: 'y' }, respond: [] }, 'detect.path: required'],
    ['empty path', { detect: { op: 'exists', path: '  ' }, respond: [] }, 'detect.path: required: a non-empty string, got "  "'],
    ['path not a string', { detect: { op: 'exists', path: ['event', 'X'] }, respond: [] }, 'detect.path: required: a non-empty string, got a list'],
    ['bad regex', { detect: { op: 'or', rules: [ok, { op: 'matches', path: 'event/X', re: '(unclosed' }] }, respond: [] }, 'detect.rules[1].re: invalid regular expression: error parsing regexp: missing closing ): `(unclosed`'],
    ['backreference (not RE2)', { detect: { op: 'matches', path: 'event/X', re: '(a)\\1' }, respond: [] }, 'detect.re: invalid regular expression'],
    ['lookahead (not RE2)', { detect: { op: 'matches', path: 'event/X', re: 'a(?=b)' }, respond: [] }, 'detect.re: invalid regular expression'],
    ['matches given value instead of re', { detect: { op: 'matches', path: 'event/X', value: 'a.*' }, respond: [] }, 'detect.value: "matches" takes its pattern in "re", not "value"'],
    ['matches without re', { detect: { op: 'matches', path: 'event/X' }, respond: [] }, 'detect.re: required'],
    ['regex too long', { detect: { op: 'matches', path: 'event/X', re: 'a'.repeat(5000) }, respond: [] }, 'detect.re: longer than'],
    ['and without rules', { detect: { op: 'and' }, respond: [] }, 'detect.rules: "and" needs a non-empty list of operators in "rules"'],
    ['or with empty rules', { detect: { op: 'or', rules: [] }, respond: [] }, 'detect.rules: "or" needs a non-empty list'],
    ['rules not a list', { detect: { op: 'and', rules: ok }, respond: [] }, 'detect.rules: "and" needs a non-empty list of operators in "rules", got an object'],
    ['a rule that is not an object', { detect: { op: 'and', rules: [ok, 'is x'] }, respond: [] }, 'detect.rules[1]: an operator must be an object, got "is x"'],
    ['numeric op with text', { detect: { op: 'is greater than', path: 'priority', value: 'high' }, respond: [] }, 'detect.value: "is greater than" needs a number, got "high"'],
    ['numeric op with an object', { detect: { op: 'is lower than', path: 'priority', value: { n: 1 } }, respond: [] }, 'detect.value: "is lower than" needs a number, got an object'],
    ['numeric op with a boolean', { detect: { op: 'is lower than', path: 'priority', value: true }, respond: [] }, 'detect.value: "is lower than" needs a number, got boolean true'],
    ['numeric op without value', { detect: { op: 'is greater than', path: 'priority' }, respond: [] }, 'detect.value: "is greater than" needs a number'],
    ['contains with a list value', { detect: { op: 'contains', path: 'event/X', value: ['a', 'b'] }, respond: [] }, 'detect.value: "contains" needs a string or number, got a list'],
    ['is with null', { detect: { op: 'is', path: 'event/X', value: null }, respond: [] }, 'detect.value: "is" needs a string, number or boolean, got null'],
    ['missing value', { detect: { op: 'ends with', path: 'event/X' }, respond: [] }, 'detect.value: required'],
    ['lookback value', { detect: { op: 'is', path: 'event/X', value: '<<event/Y>>' }, respond: [] }, 'detect.value: lookbacks'],
    ['case sensitive not a boolean', { detect: { op: 'is', path: 'event/X', value: 'y', 'case sensitive': 'no' }, respond: [] }, 'detect.case sensitive: must be true or false, got "no"'],
    ['not not a boolean', { detect: { op: 'is', path: 'event/X', value: 'y', not: 1 }, respond: [] }, 'detect.not: must be true or false, got number 1'],
    ['count of zero', { detect: { op: 'contains', path: 'event/X', value: 'y', count: 0 }, respond: [] }, 'detect.count: must be a positive integer, got number 0'],
    ['event as a list', { detect: { event: ['A', 'B'], ...ok }, respond: [] }, 'detect.event: must be a non-empty string (list several under "events"), got a list'],
    ['event and events', { detect: { event: 'A', events: ['B'], ...ok }, respond: [] }, 'detect.events: give either "event" or "events", not both'],
    ['events entry not a string', { detect: { events: ['A', 3], ...ok }, respond: [] }, 'detect.events[1]: must be a non-empty string, got number 3'],
    ['unknown target', { detect: { target: 'billing', ...ok }, respond: [] }, 'detect.target: unsupported target "billing"'],
    ['a target named like an Object property', { detect: { target: 'constructor', ...ok }, respond: [] }, 'detect.target: unsupported target "constructor"'],
    ['target below the top', { detect: { op: 'and', rules: [{ target: 'detection', ...ok }] }, respond: [] }, 'detect.rules[0].target: only allowed at the top of "detect"'],
    ['a grammar field this engine lacks', { detect: { ...ok, 'file name': true }, respond: [] }, 'detect.file name: "file name" is not supported by this engine'],
    ['a field of another operator', { detect: { ...ok, re: 'x' }, respond: [] }, 'detect.re: does not apply to "is"'],
    ['a misspelt field', { detect: { op: 'is', path: 'event/X', valeu: 'y' }, respond: [] }, 'detect.valeu: unknown field "valeu"'],
    ['lookup without resource', { detect: { op: 'lookup', path: 'event/D' }, respond: [] }, 'detect.resource: required: "hive://lookup/NAME" or "lookup/NAME"'],
    ['lookup with another resource', { detect: { op: 'lookup', path: 'event/D', resource: 'hive://secret/x' }, respond: [] }, 'detect.resource: required: "hive://lookup/NAME" or "lookup/NAME", got "hive://secret/x"'],
    ['missing detect', { respond: [] }, 'detect: required'],
    ['detect not an object', { detect: 'NEW_PROCESS', respond: [] }, 'detect: an operator must be an object, got "NEW_PROCESS"'],
    ['missing respond', { detect: ok }, 'respond: required: a list of response actions'],
    ['respond not a list', { detect: ok, respond: { action: 'report', name: 'x' } }, 'respond: must be a list of response actions, got an object'],
    ['action not an object', { detect: ok, respond: ['report'] }, 'respond[0]: a response action must be an object, got "report"'],
    ['action without a name', { detect: ok, respond: [{ name: 'x' }] }, 'respond[0].action: required'],
    ['action name not a string', { detect: ok, respond: [{ action: 7 }] }, 'respond[0].action: must be a non-empty string, got number 7'],
    ['report without name', { detect: ok, respond: [{ action: 'report', name: 'a' }, { action: 'report' }] }, 'respond[1].name: "report" needs a non-empty string name'],
    ['report with an empty name', { detect: ok, respond: [{ action: 'report', name: '' }] }, 'respond[0].name: "report" needs a non-empty string name, got ""'],
    ['unknown top-level field', { detect: ok, respond: [], respnd: [] }, 'respnd: unknown field "respnd"'],
    ['not an object', 'detect: {}', 'rule: a rule must be an object with "detect" and "respond", got "detect: {}"'],
    ['null', null, 'rule: a rule must be an object with "detect" and "respond", got null'],
  ])('%s', (_name, input, message) => {
    let thrown: unknown;
    try {
      parseRule(input);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(RuleError);
    expect((thrown as RuleError).message.startsWith(message)).toBe(true);
    expect(validateRule(input)).toContainEqual(expect.stringContaining(message));
  });

  it('names the path from the prefix given', () => {
    const bad = { detect: { op: 'and', rules: [{ op: 'iz' }] }, respond: [] };
    expect(() => parseRule(bad, 'rules[3]')).toThrow('rules[3].detect.rules[0].op: unknown operator "iz"');
    expect(validateRule(bad, 'hive.my-rule')).toEqual(['hive.my-rule.detect.rules[0].op: unknown operator "iz"']);
    expect(validateRule('x', 'rules[3]')[0]).toMatch(/^rules\[3\]: a rule must be an object/);
  });

  it('reports every problem at once, and none for a valid rule', () => {
    const issues = validateRule({
      detect: { op: 'and', rules: [{ op: 'iz' }, { op: 'matches', path: 'x', re: '(' }, { op: 'is greater than', path: 'p', value: 'x' }] },
      respond: [{ action: 'report' }],
    });
    expect(issues).toEqual([
      'detect.rules[0].op: unknown operator "iz"',
      expect.stringMatching(/^detect\.rules\[1\]\.re: invalid regular expression/),
      'detect.rules[2].value: "is greater than" needs a number, got "x"',
      'respond[0].name: "report" needs a non-empty string name',
    ]);
    expect(validateRule({ detect: { event: 'NEW_PROCESS', ...ok }, respond: [{ action: 'report', name: 'r' }] })).toEqual([]);
    const err = (() => { try { parseRule({ detect: { op: 'iz' }, respond: 'x' }); } catch (e) { return e as RuleError; } })();
    expect(err?.path).toBe('detect.op');
    expect(err?.issues).toHaveLength(2);
  });
});

describe('parsed form', () => {
  it('normalizes detection and keeps response actions as written', () => {
    const r = parseRule({
      detect: { target: 'detection', event: '*', op: 'is greater than', path: 'priority', value: '3' },
      respond: [
        { action: 'report', name: 'escalate', priority: 4 },
        { action: 'start ai agent', definition: 'hive://ai_agent/x', debounce_key: 'k-{{ .routing.sid }}' },
        { action: 'some future action', anything: { nested: [1, 2] } },
      ],
    });
    expect(r.detect).toEqual({ target: 'detection', events: null, op: 'is greater than', path: 'priority', value: 3, lengthOf: false, not: false });
    expect(r.respond).toEqual([
      { action: 'report', name: 'escalate', priority: 4 },
      { action: 'start ai agent', definition: 'hive://ai_agent/x', debounce_key: 'k-{{ .routing.sid }}' },
      { action: 'some future action', anything: { nested: [1, 2] } },
    ]);
    const m = parseRule({ detect: { events: ['A', 'B', 'A'], op: 'matches', path: 'p', re: 'x' }, respond: [] }).detect;
    expect(m).toMatchObject({ target: 'event', events: ['A', 'B'], caseSensitive: false, re: 'x' });
    const l = parseRule({ detect: { op: 'lookup', path: 'p', resource: 'hive://lookup/my.list-1' }, respond: [] }).detect;
    expect(l).toMatchObject({ lookup: 'my.list-1', caseSensitive: true });
  });

  it('is plain data: a JSON round trip parses and evaluates the same', () => {
    const r = rule({ event: 'NEW_PROCESS', op: 'matches', path: 'event/COMMAND_LINE', re: 'who' });
    const copy = JSON.parse(JSON.stringify(r)) as Rule;
    const input: EvaluationInput = { target: 'event', record: ev(PROC) };
    expect(evaluate(copy, input)).toBe(true);
    expect(evaluate(r, input)).toBe(true);
  });
});

describe('compileRule', () => {
  it('compiles once and evaluates many records', () => {
    const fn = compileRule(rule({ event: 'NEW_PROCESS', op: 'contains', path: 'event/COMMAND_LINE', value: 'whoami', 'case sensitive': false }));
    const results = ['WHOAMI', 'whoami /priv', 'dir', ''].map((c) => fn({ target: 'event', record: ev({ COMMAND_LINE: c }) }));
    expect(results).toEqual([true, true, false, false]);
  });

  it('thousands of rules against one event', () => {
    const fns = Array.from({ length: 5000 }, (_, i) =>
      compileRule(rule({
        event: i % 2 ? 'NEW_PROCESS' : 'DNS_REQUEST',
        op: 'or',
        rules: [
          { op: 'contains', path: 'event/COMMAND_LINE', value: `tool-${i}` },
          { op: 'matches', path: 'event/FILE_PATH', re: `\\\\bin${i}\\.exe$` },
          { op: 'lookup', path: 'event/HASH', resource: `lookup/list-${i % 7}` },
        ],
      })));
    const record = ev({ COMMAND_LINE: 'run tool-4001 now', FILE_PATH: 'C:\\x\\bin33.exe', HASH: 'h' });
    const hits = fns.filter((fn) => fn({ target: 'event', record }, () => undefined)).map((_, i) => i);
    expect(hits).toHaveLength(2);
  });
});

describe('fixtures shaped like the reference rules', () => {
  const dir = path.join(__dirname, 'fixtures', 'dr-rules');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

  interface Case { name: string; target: EvaluationInput['target']; record: Obj }
  interface Fixture { rule: unknown; lookups?: Record<string, string[]>; match: Case[]; non_match: Case[] }
  const load = (file: string) => parseYaml(fs.readFileSync(path.join(dir, file), 'utf8')) as Fixture;

  it('has the four shapes', () => {
    expect(files).toEqual(['credential-tool-cmdline.yaml', 'dns-threat-lookup.yaml', 'encoded-powershell.yaml', 'high-priority-detection.yaml']);
  });

  describe.each(files)('%s', (file) => {
    const fixture = load(file);
    const lists = new Map(Object.entries(fixture.lookups ?? {}).map(([k, v]) => [k, new Set(v)]));
    const resolver: LookupResolver = (name) => lists.get(name);

    it('parses, with its response actions intact', () => {
      expect(validateRule(fixture.rule)).toEqual([]);
      const r = parseRule(fixture.rule);
      expect(r.respond).toEqual((fixture.rule as { respond: unknown }).respond);
    });
    it.each(fixture.match.map((c) => [c.name, c] as const))('matches: %s', (_n, c) => {
      expect(evaluate(parseRule(fixture.rule), { target: c.target, record: c.record }, resolver)).toBe(true);
    });
    it.each(fixture.non_match.map((c) => [c.name, c] as const))('does not match: %s', (_n, c) => {
      expect(evaluate(parseRule(fixture.rule), { target: c.target, record: c.record }, resolver)).toBe(false);
    });
  });
});
