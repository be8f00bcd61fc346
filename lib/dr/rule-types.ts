/**
 * The parsed (normalized) form of a D&R rule. Plain data: parseRule() produces it from
 * the YAML/JSON a user wrote, compileRule() turns it into a predicate.
 */

/** What a rule runs against: `target: edr` (the default) reads events, `target: detection` reads reports. */
export type RuleTarget = 'event' | 'detection';

export type LogicOp = 'and' | 'or';
export type StringOp = 'is' | 'contains' | 'starts with' | 'ends with';
export type NumericOp = 'is greater than' | 'is lower than';
export type Operator = LogicOp | StringOp | NumericOp | 'exists' | 'matches' | 'lookup';

export const OPERATORS: readonly Operator[] = Object.freeze([
  'and', 'or', 'is', 'contains', 'starts with', 'ends with', 'exists', 'matches',
  'is greater than', 'is lower than', 'lookup',
] as const);

interface NodeBase {
  /** `not: true` inverts the operator's own result (the event filter is not inverted). */
  not: boolean;
  /** Event-type filter on this node; null when absent or when it lists `*`. */
  events: string[] | null;
}

export interface LogicNode extends NodeBase {
  op: LogicOp;
  rules: DetectionNode[];
}

export interface CompareNode extends NodeBase {
  op: StringOp;
  path: string;
  value: string | number | boolean;
  caseSensitive: boolean;
  /** `contains` only: the substring must occur at least this many times (non-overlapping). */
  count?: number;
}

export interface ExistsNode extends NodeBase {
  op: 'exists';
  path: string;
  /** null and "" count as absent. */
  truthy: boolean;
}

export interface MatchesNode extends NodeBase {
  op: 'matches';
  path: string;
  /** RE2 syntax, searched (not anchored) in the value. */
  re: string;
  caseSensitive: boolean;
}

export interface NumericNode extends NodeBase {
  op: NumericOp;
  path: string;
  value: number;
  /** Compare the length of the string (or list) at path instead of its numeric value. */
  lengthOf: boolean;
}

export interface LookupNode extends NodeBase {
  op: 'lookup';
  path: string;
  /** The resource as written (`hive://lookup/NAME` or `lookup/NAME`). */
  resource: string;
  /** NAME, the key handed to the lookup resolver. */
  lookup: string;
  caseSensitive: boolean;
}

export type DetectionNode = LogicNode | CompareNode | ExistsNode | MatchesNode | NumericNode | LookupNode;

/** The root of `detect:` carries the target besides its own operator. */
export type Detection = DetectionNode & { target: RuleTarget };

export interface ReportAction {
  action: 'report';
  name: string;
  [key: string]: unknown;
}
/** Any other response action: kept as written; its own validator lives elsewhere. */
export interface OpaqueAction {
  action: string;
  [key: string]: unknown;
}
export type Action = ReportAction | OpaqueAction;

export interface Rule {
  detect: Detection;
  respond: Action[];
}

/** What a rule is evaluated against. */
export interface EvaluationInput {
  target: RuleTarget;
  /** An event `{ routing, event }` or a detection `{ cat, detect, routing, priority, ... }`. */
  record: Record<string, unknown>;
  /** Overrides the type the event filter compares with (default: routing/event_type, or cat for detections). */
  eventType?: string;
}

/** Per-organization lookup lists by name; undefined when the organization has no such lookup. */
export type LookupResolver = (name: string) => ReadonlySet<string> | undefined;

export interface RuleIssue {
  /** Where in the rule, e.g. `detect.rules[1].op`. */
  path: string;
  problem: string;
}

export class RuleError extends Error {
  readonly path: string;
  readonly problem: string;
  /** Every problem found, the first of which is this error's own. */
  readonly issues: RuleIssue[];
  constructor(issues: RuleIssue[]) {
    const first = issues[0] ?? { path: 'rule', problem: 'invalid rule' };
    super(`${first.path}: ${first.problem}`);
    this.name = 'RuleError';
    this.path = first.path;
    this.problem = first.problem;
    this.issues = issues;
  }
}

/** `at.key`, or `key` at the root. */
export function join(at: string, key: string): string {
  return at === '' ? key : `${at}.${key}`;
}

/** A short description of a value for an error message. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return `${typeof v} ${String(v)}`;
}
