/**
 * Compiles a parsed rule into a predicate: paths tokenized, values case-folded and patterns
 * built once, so evaluating thousands of rules per event re-parses nothing.
 */
import { RE2JS } from 're2js';
import { compiledPatterns, regexFlags, toNumber } from './rule-parse';
import { anyLeaf, isRecord, tokenizePath, walkPath, type Visitor } from './rule-path';
import type { DetectionNode, EvaluationInput, LookupResolver, Rule, RuleTarget } from './rule-types';
import { literalPrecheck } from './regex-literal';

export type CompiledRule = (input: EvaluationInput, lookups?: LookupResolver) => boolean;

interface Ctx {
  record: Record<string, unknown>;
  target: RuleTarget;
  given: string | undefined;
  lookups: LookupResolver;
  eventType: string | undefined;
  eventTypeDone: boolean;
}
type Pred = (ctx: Ctx) => boolean;

const NO_LOOKUPS: LookupResolver = () => undefined;

/** The type the event filter compares with: routing/event_type for events, the report name (cat) for detections. */
function eventTypeOf(ctx: Ctx): string | undefined {
  if (!ctx.eventTypeDone) {
    ctx.eventTypeDone = true;
    if (ctx.given !== undefined) ctx.eventType = ctx.given;
    else if (ctx.target === 'detection') ctx.eventType = typeof ctx.record.cat === 'string' ? ctx.record.cat : undefined;
    else {
      const routing = ctx.record.routing;
      const t = isRecord(routing) ? routing.event_type : undefined;
      ctx.eventType = typeof t === 'string' ? t : undefined;
    }
  }
  return ctx.eventType;
}

export function compileRule(rule: Rule): CompiledRule {
  const target = rule.detect.target;
  const pred = compileNode(rule.detect);
  return (input, lookups = NO_LOOKUPS) => {
    if (!input || input.target !== target || !isRecord(input.record)) return false;
    const ctx: Ctx = {
      record: input.record,
      target,
      given: typeof input.eventType === 'string' ? input.eventType : undefined,
      lookups,
      eventType: undefined,
      eventTypeDone: false,
    };
    return pred(ctx);
  };
}

function compileNode(node: DetectionNode): Pred {
  const core = compileOp(node);
  const op: Pred = node.not ? (ctx) => !core(ctx) : core;
  const events = node.events;
  if (events === null) return op;
  if (events.length === 1) {
    const only = events[0];
    return (ctx) => eventTypeOf(ctx) === only && op(ctx);
  }
  const set = new Set(events);
  return (ctx) => {
    const t = eventTypeOf(ctx);
    return t !== undefined && set.has(t) && op(ctx);
  };
}

/** A scalar as the string operators see it: strings, and numbers in decimal form. */
function asText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

/** `test` applied to each text value at the path (lists expanded). */
function textOp(path: string, caseSensitive: boolean, test: (s: string) => boolean): Pred {
  const tokens = tokenizePath(path);
  const leaf = caseSensitive
    ? (v: unknown) => { const s = asText(v); return s !== undefined && test(s); }
    : (v: unknown) => { const s = asText(v); return s !== undefined && test(s.toLowerCase()); };
  const visit: Visitor = (v) => anyLeaf(v, leaf);
  return (ctx) => walkPath(ctx.record, tokens, visit);
}

function compileOp(node: DetectionNode): Pred {
  switch (node.op) {
    case 'and': {
      const preds = node.rules.map(compileNode);
      return (ctx) => {
        for (const p of preds) if (!p(ctx)) return false;
        return true;
      };
    }
    case 'or': {
      const preds = node.rules.map(compileNode);
      return (ctx) => {
        for (const p of preds) if (p(ctx)) return true;
        return false;
      };
    }
    case 'is': {
      const value = node.value;
      if (typeof value === 'number') {
        const tokens = tokenizePath(node.path);
        const visit: Visitor = (v) => anyLeaf(v, (x) => toNumber(x) === value);
        return (ctx) => walkPath(ctx.record, tokens, visit);
      }
      if (typeof value === 'boolean') {
        const tokens = tokenizePath(node.path);
        const text = String(value);
        const visit: Visitor = (v) => anyLeaf(v, (x) => x === value || (typeof x === 'string' && x.toLowerCase() === text));
        return (ctx) => walkPath(ctx.record, tokens, visit);
      }
      const want = node.caseSensitive ? value : value.toLowerCase();
      return textOp(node.path, node.caseSensitive, (s) => s === want);
    }
    case 'contains': {
      const want = node.caseSensitive ? String(node.value) : String(node.value).toLowerCase();
      const count = node.count ?? 1;
      if (count === 1) return textOp(node.path, node.caseSensitive, (s) => s.includes(want));
      return textOp(node.path, node.caseSensitive, (s) => occurrences(s, want, count) >= count);
    }
    case 'starts with': {
      const want = node.caseSensitive ? String(node.value) : String(node.value).toLowerCase();
      return textOp(node.path, node.caseSensitive, (s) => s.startsWith(want));
    }
    case 'ends with': {
      const want = node.caseSensitive ? String(node.value) : String(node.value).toLowerCase();
      return textOp(node.path, node.caseSensitive, (s) => s.endsWith(want));
    }
    case 'matches': {
      const re = compiledPatterns.get(node) ?? RE2JS.compile(node.re, regexFlags(node.caseSensitive));
      // A literal every match contains rules most values out before the (slow) regex runs.
      const precheck = literalPrecheck(node.re, node.caseSensitive);
      // The pattern carries the case folding, so values are handed over as they are.
      return textOp(node.path, true, precheck ? (s) => precheck(s) && re.test(s) : (s) => re.test(s));
    }
    case 'exists': {
      const tokens = tokenizePath(node.path);
      const visit: Visitor = node.truthy ? (v) => v !== null && v !== undefined && v !== '' : () => true;
      return (ctx) => walkPath(ctx.record, tokens, visit);
    }
    case 'is greater than':
    case 'is lower than': {
      const tokens = tokenizePath(node.path);
      const bound = node.value;
      const cmp = node.op === 'is greater than' ? (n: number) => n > bound : (n: number) => n < bound;
      const visit: Visitor = node.lengthOf
        ? (v) => (typeof v === 'string' || Array.isArray(v)) && cmp(v.length)
        : (v) => anyLeaf(v, (x) => { const n = toNumber(x); return n !== undefined && cmp(n); });
      return (ctx) => walkPath(ctx.record, tokens, visit);
    }
    case 'lookup': {
      const tokens = tokenizePath(node.path);
      const { lookup, caseSensitive } = node;
      return (ctx) => {
        const list = ctx.lookups(lookup);
        if (!list || list.size === 0) return false;
        const set = caseSensitive ? list : folded(list);
        const leaf = (v: unknown) => {
          const s = asText(v);
          return s !== undefined && set.has(caseSensitive ? s : s.toLowerCase());
        };
        return walkPath(ctx.record, tokens, (v) => anyLeaf(v, leaf));
      };
    }
  }
}

function occurrences(s: string, sub: string, enough: number): number {
  if (sub === '') return enough;
  let n = 0;
  for (let i = s.indexOf(sub); i !== -1 && n < enough; i = s.indexOf(sub, i + sub.length)) n++;
  return n;
}

/** Lower-cased copies of lookup lists, kept while the list is alive and unchanged in size. */
const foldedLists = new WeakMap<ReadonlySet<string>, { size: number; set: Set<string> }>();
function folded(list: ReadonlySet<string>): ReadonlySet<string> {
  const cached = foldedLists.get(list);
  if (cached && cached.size === list.size) return cached.set;
  const set = new Set<string>();
  for (const s of list) set.add(s.toLowerCase());
  foldedLists.set(list, { size: list.size, set });
  return set;
}
