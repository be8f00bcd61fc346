/**
 * Parsing and validation of D&R rules: the `detect` grammar subset this engine evaluates,
 * and the outline of `respond` (each action an object with an `action` name; `report` needs a
 * `name`; the rest stay opaque). Every problem is reported with its place in the rule.
 */
import { RE2JS } from 're2js';
import { parseRespond } from './rule-respond';
import { isRecord, pathProblem } from './rule-path';
import {
  describe,
  join,
  OPERATORS,
  type Detection,
  type DetectionNode,
  type Operator,
  type Rule,
  type RuleIssue,
  type RuleTarget,
} from './rule-types';

export const MAX_RULE_DEPTH = 32;
export const MAX_RULE_NODES = 5000;
export const MAX_REGEX_LENGTH = 4096;

/** Operators of the LimaCharlie grammar this engine does not evaluate: named as such, not as typos. */
const UNSUPPORTED_OPERATORS = new Set([
  'scope', 'cidr', 'string distance', 'is older than', 'is tagged', 'is platform', 'ask ai',
  'is windows', 'is linux', 'is mac', 'is chrome', 'is net', 'is text', 'is json', 'is gcp', 'is carbon_black',
  'is 32 bit', 'is 64 bit', 'is arm',
  'is private address', 'is private ipv4 address', 'is private ipv6 address',
  'is public address', 'is public ipv4 address', 'is public ipv6 address',
]);
/** Operator parameters of that grammar this engine does not implement. */
const UNSUPPORTED_FIELDS = new Set([
  'times', 'file name', 'sub domain', 'with child', 'with descendant', 'with events', 'is stateless',
  'metadata_rules', 'rule', 'max', 'cidr', 'seconds', 'tag', 'name',
]);

const COMMON_FIELDS = ['op', 'not', 'event', 'events'];
const FIELDS: Record<Operator, readonly string[]> = {
  and: ['rules'],
  or: ['rules'],
  is: ['path', 'value', 'case sensitive'],
  contains: ['path', 'value', 'case sensitive', 'count'],
  'starts with': ['path', 'value', 'case sensitive'],
  'ends with': ['path', 'value', 'case sensitive'],
  exists: ['path', 'truthy'],
  matches: ['path', 're', 'case sensitive'],
  'is greater than': ['path', 'value', 'length of'],
  'is lower than': ['path', 'value', 'length of'],
  lookup: ['path', 'resource', 'case sensitive'],
};

const NUMERIC = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
/** A finite number, or a string holding one in decimal notation; undefined otherwise. */
export function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string') {
    const s = v.trim();
    if (s.length > 64 || !NUMERIC.test(s)) return undefined;
    const n = Number(s);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

const LOOKUP_RESOURCE = /^(?:hive:\/\/)?lookup\/([^/\s]+)$/;
/** `<<path>>` lookbacks and `[[name]]` sensor variables: value syntaxes this engine does not resolve. */
const VALUE_MODIFIER = /^(?:<<.*>>|\[\[.*\]\])$/s;
const TARGETS = new Map<unknown, RuleTarget>([['edr', 'event'], ['detection', 'detection']]);

/** Compiled patterns of parsed `matches` nodes, so compilation does not redo the work. */
export const compiledPatterns = new WeakMap<object, RE2JS>();

export function regexFlags(caseSensitive: boolean): number {
  return caseSensitive ? 0 : RE2JS.CASE_INSENSITIVE;
}

class Parser {
  readonly issues: RuleIssue[] = [];
  private nodes = 0;

  fail(path: string, problem: string): void {
    this.issues.push({ path, problem });
  }

  rule(input: unknown, at: string): Rule | undefined {
    if (!isRecord(input)) {
      this.fail(at, `a rule must be an object with "detect" and "respond", got ${describe(input)}`);
      return undefined;
    }
    for (const key of Object.keys(input)) {
      if (key !== 'detect' && key !== 'respond') this.fail(join(at, key), `unknown field ${JSON.stringify(key)} (a rule has "detect" and "respond")`);
    }
    const detect = this.detection(input.detect, join(at, 'detect'));
    const respond = parseRespond(input.respond, join(at, 'respond'), (path, problem) => this.fail(path, problem));
    return detect && respond ? { detect, respond } : undefined;
  }

  detection(input: unknown, at: string): Detection | undefined {
    if (input === undefined) {
      this.fail(at, 'required');
      return undefined;
    }
    let target: RuleTarget = 'event';
    if (isRecord(input) && input.target !== undefined) {
      const t = TARGETS.get(input.target);
      if (t === undefined) {
        this.fail(join(at, 'target'), `unsupported target ${describe(input.target)} (this engine evaluates "edr", the default, and "detection")`);
      } else target = t;
    }
    const node = this.node(input, at, 0, true);
    return node ? { ...node, target } : undefined;
  }

  node(input: unknown, at: string, depth: number, top = false): DetectionNode | undefined {
    if (depth > MAX_RULE_DEPTH) {
      this.fail(at, `nested deeper than ${MAX_RULE_DEPTH} levels`);
      return undefined;
    }
    if (++this.nodes > MAX_RULE_NODES) {
      if (this.nodes === MAX_RULE_NODES + 1) this.fail(at, `more than ${MAX_RULE_NODES} operators in one rule`);
      return undefined;
    }
    if (!isRecord(input)) {
      this.fail(at, `an operator must be an object, got ${describe(input)}`);
      return undefined;
    }
    const before = this.issues.length;
    const rawOp = input.op;
    if (rawOp === undefined) {
      this.fail(join(at, 'op'), 'required');
      return undefined;
    }
    if (typeof rawOp !== 'string') {
      this.fail(join(at, 'op'), `must be a string, got ${describe(rawOp)}`);
      return undefined;
    }
    if (!(OPERATORS as readonly string[]).includes(rawOp)) {
      let problem = `unknown operator ${JSON.stringify(rawOp)}`;
      if (rawOp === 'not') problem += ' (negate an operator with "not: true" on it)';
      else if (UNSUPPORTED_OPERATORS.has(rawOp)) problem = `operator ${JSON.stringify(rawOp)} is not supported by this engine`;
      this.fail(join(at, 'op'), problem);
      return undefined;
    }
    const op = rawOp as Operator;

    const allowed = new Set([...COMMON_FIELDS, ...FIELDS[op], ...(top ? ['target'] : [])]);
    for (const key of Object.keys(input)) {
      if (allowed.has(key)) continue;
      if (key === 'target') this.fail(join(at, key), 'only allowed at the top of "detect"');
      else if (UNSUPPORTED_FIELDS.has(key)) this.fail(join(at, key), `${JSON.stringify(key)} is not supported by this engine`);
      else if (key === 'value' && op === 'matches') this.fail(join(at, key), '"matches" takes its pattern in "re", not "value"');
      else if (Object.values(FIELDS).some((f) => f.includes(key))) this.fail(join(at, key), `does not apply to "${op}"`);
      else this.fail(join(at, key), `unknown field ${JSON.stringify(key)}`);
    }

    const not = this.bool(input, 'not', at, false);
    const events = this.events(input, at);

    let node: DetectionNode | undefined;
    switch (op) {
      case 'and':
      case 'or': {
        const list = input.rules;
        if (!Array.isArray(list) || list.length === 0) {
          this.fail(join(at, 'rules'), `"${op}" needs a non-empty list of operators in "rules"${list === undefined ? '' : `, got ${describe(list)}`}`);
          return undefined;
        }
        const rules: DetectionNode[] = [];
        list.forEach((child, i) => {
          const parsed = this.node(child, `${join(at, 'rules')}[${i}]`, depth + 1);
          if (parsed) rules.push(parsed);
        });
        node = { op, rules, not, events };
        break;
      }
      case 'is':
      case 'contains':
      case 'starts with':
      case 'ends with': {
        const path = this.path(input, at);
        const value = this.compareValue(input, op, at);
        const caseSensitive = this.bool(input, 'case sensitive', at, true);
        node = { op, path, value, caseSensitive, not, events };
        if (op === 'contains' && input.count !== undefined) {
          const c = input.count;
          if (typeof c !== 'number' || !Number.isInteger(c) || c < 1 || c > 1_000_000) this.fail(join(at, 'count'), `must be a positive integer, got ${describe(c)}`);
          else node.count = c;
        }
        break;
      }
      case 'exists':
        node = { op, path: this.path(input, at), truthy: this.bool(input, 'truthy', at, false), not, events };
        break;
      case 'matches': {
        const path = this.path(input, at);
        // The grammar's regex default is the opposite of the other string operators'.
        const caseSensitive = this.bool(input, 'case sensitive', at, false);
        const re = input.re;
        if (typeof re !== 'string' || re === '') {
          if (input.value === undefined) this.fail(join(at, 're'), `required: the regular expression as a non-empty string${re === undefined ? '' : `, got ${describe(re)}`}`);
          node = { op, path, re: '', caseSensitive, not, events };
          break;
        }
        node = { op, path, re, caseSensitive, not, events };
        if (re.length > MAX_REGEX_LENGTH) {
          this.fail(join(at, 're'), `longer than ${MAX_REGEX_LENGTH} characters`);
          break;
        }
        try {
          compiledPatterns.set(node, RE2JS.compile(re, regexFlags(caseSensitive)));
        } catch (err) {
          this.fail(join(at, 're'), `invalid regular expression: ${patternError(re) ?? (err as Error).message}`);
        }
        break;
      }
      case 'is greater than':
      case 'is lower than': {
        const path = this.path(input, at);
        const lengthOf = this.bool(input, 'length of', at, false);
        const n = toNumber(input.value);
        if (n === undefined) this.fail(join(at, 'value'), `"${op}" needs a number${input.value === undefined ? '' : `, got ${describe(input.value)}`}`);
        node = { op, path, value: n ?? 0, lengthOf, not, events };
        break;
      }
      case 'lookup': {
        const path = this.path(input, at);
        const caseSensitive = this.bool(input, 'case sensitive', at, true);
        const resource = input.resource;
        const m = typeof resource === 'string' ? LOOKUP_RESOURCE.exec(resource) : null;
        if (!m) this.fail(join(at, 'resource'), `required: "hive://lookup/NAME" or "lookup/NAME"${resource === undefined ? '' : `, got ${describe(resource)}`}`);
        node = { op, path, resource: typeof resource === 'string' ? resource : '', lookup: m?.[1] ?? '', caseSensitive, not, events };
        break;
      }
    }
    return this.issues.length === before ? node : undefined;
  }

  private path(input: Record<string, unknown>, at: string): string {
    const problem = pathProblem(input.path);
    if (problem) this.fail(join(at, 'path'), input.path === undefined ? 'required' : `${problem}, got ${describe(input.path)}`);
    return typeof input.path === 'string' ? input.path : '';
  }

  private compareValue(input: Record<string, unknown>, op: Operator, at: string): string | number | boolean {
    const v = input.value;
    const where = join(at, 'value');
    if (v === undefined) {
      this.fail(where, 'required');
      return '';
    }
    const scalar = typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) || (op === 'is' && typeof v === 'boolean');
    if (!scalar) {
      this.fail(where, `"${op}" needs a ${op === 'is' ? 'string, number or boolean' : 'string or number'}, got ${describe(v)}`);
      return '';
    }
    if (typeof v === 'string' && VALUE_MODIFIER.test(v)) {
      this.fail(where, 'lookbacks (<<path>>) and sensor variables ([[name]]) are not supported by this engine');
    }
    return op === 'is' ? v : String(v);
  }

  private bool(input: Record<string, unknown>, key: string, at: string, fallback: boolean): boolean {
    const v = input[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') {
      this.fail(join(at, key), `must be true or false, got ${describe(v)}`);
      return fallback;
    }
    return v;
  }

  private events(input: Record<string, unknown>, at: string): string[] | null {
    const { event, events } = input;
    if (event !== undefined && events !== undefined) {
      this.fail(join(at, 'events'), 'give either "event" or "events", not both');
      return null;
    }
    let list: string[];
    if (event !== undefined) {
      if (typeof event !== 'string' || event.trim() === '') {
        const hint = Array.isArray(event) ? ' (list several under "events")' : '';
        this.fail(join(at, 'event'), `must be a non-empty string${hint}, got ${describe(event)}`);
        return null;
      }
      list = [event];
    } else if (events !== undefined) {
      if (!Array.isArray(events) || events.length === 0) {
        this.fail(join(at, 'events'), `must be a non-empty list of event types, got ${describe(events)}`);
        return null;
      }
      list = [];
      events.forEach((e, i) => {
        if (typeof e !== 'string' || e.trim() === '') this.fail(`${join(at, 'events')}[${i}]`, `must be a non-empty string, got ${describe(e)}`);
        else list.push(e);
      });
    } else return null;
    return list.includes('*') ? null : [...new Set(list)];
  }
}

/** The syntax error for the pattern as written (case folding adds a prefix to the engine's message). */
function patternError(re: string): string | undefined {
  try {
    RE2JS.compile(re);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Every problem with `input` as a rule, located from `pathPrefix` (e.g. `rules[3]`). */
export function ruleIssues(input: unknown, pathPrefix = ''): { rule?: Rule; issues: RuleIssue[] } {
  const parser = new Parser();
  const rule = parser.rule(input, pathPrefix);
  if (parser.issues.length === 0 && rule) return { rule, issues: [] };
  for (const issue of parser.issues) if (issue.path === '') issue.path = 'rule';
  return { issues: parser.issues };
}
