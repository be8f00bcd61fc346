/**
 * D&R rule engine: parse, validate, compile and evaluate `{ detect, respond }` rules written
 * in (a subset of) LimaCharlie's detection grammar. Pure: no I/O; lookup lists come from the
 * caller at evaluation time.
 *
 * Semantics, following LimaCharlie's published grammar:
 * - Operators: and, or (with `rules`), is, contains (optional `count`), starts with, ends with,
 *   exists (optional `truthy`), matches (RE2 pattern in `re`, searched, linear time),
 *   is greater than / is lower than (numeric; numeric strings count; optional `length of`),
 *   lookup (`resource: hive://lookup/NAME` or `lookup/NAME`). `not: true` on any operator
 *   inverts it; there is no `op: not`.
 * - Case: string operators and lookup are case-sensitive unless `case sensitive: false`;
 *   `matches` is the exception and folds case unless `case sensitive: true`.
 * - `event: TYPE` / `events: [..]` filter on routing/event_type (for `target: detection`, on the
 *   report name in `cat`); `*` means any. Allowed on nested operators too, where they add a
 *   condition that `not` does not invert.
 * - Paths: see rule-path.ts. A missing path makes an operator false (so `not` makes it true).
 * - A record that is not an object matches nothing.
 */
import { compileRule, type CompiledRule } from './rule-compile';
import { ruleIssues } from './rule-parse';
import { RuleError, type EvaluationInput, type LookupResolver, type Rule } from './rule-types';

export {
  OPERATORS,
  RuleError,
  type Action,
  type CompareNode,
  type Detection,
  type DetectionNode,
  type EvaluationInput,
  type ExistsNode,
  type LogicNode,
  type LogicOp,
  type LookupNode,
  type LookupResolver,
  type MatchesNode,
  type NumericNode,
  type NumericOp,
  type OpaqueAction,
  type Operator,
  type ReportAction,
  type Rule,
  type RuleIssue,
  type RuleTarget,
  type StringOp,
} from './rule-types';
export { compileRule, type CompiledRule } from './rule-compile';
export { MAX_REGEX_LENGTH, MAX_RULE_DEPTH, MAX_RULE_NODES } from './rule-parse';
export { MAX_PATH_LENGTH, MAX_PATH_TOKENS, MAX_WALK_DEPTH, tokenizePath, walkPath, type PathToken } from './rule-path';

/** The rule in normalized form; throws RuleError naming the place of the (first) problem. */
export function parseRule(input: unknown, pathPrefix = ''): Rule {
  const { rule, issues } = ruleIssues(input, pathPrefix);
  if (!rule || issues.length > 0) throw new RuleError(issues);
  return rule;
}

/** Every problem with the rule as `path: problem` messages; empty when it is valid. */
export function validateRule(input: unknown, pathPrefix = ''): string[] {
  return ruleIssues(input, pathPrefix).issues.map((i) => `${i.path}: ${i.problem}`);
}

const compiled = new WeakMap<Rule, CompiledRule>();

/** Evaluates a parsed rule (compiled once per rule object and cached). */
export function evaluate(rule: Rule, input: EvaluationInput, lookups?: LookupResolver): boolean {
  let fn = compiled.get(rule);
  if (!fn) {
    fn = compileRule(rule);
    compiled.set(rule, fn);
  }
  return fn(input, lookups);
}
