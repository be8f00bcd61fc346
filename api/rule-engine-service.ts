import { randomUUID } from 'node:crypto';
import YAML from 'yaml';
import type { GatewayDeps } from './deps';
import { AppError, badRequest } from './errors';
import { launchAction } from './dr-service';
import { compileRule, parseRule, RuleError, type CompiledRule, type Rule } from '../lib/dr/rules';
import { ActionError, isDrAction, parseAction } from '../lib/dr/action';
import { listHive } from '../store/hive';
import { drVersion, listRules, recordDetection } from '../store/rules';
import { RuleIndex, recordType } from '../lib/dr/rule-index';

/** Parses a rule as written (YAML or JSON text, or an already-parsed object); every `start ai agent` action is checked too. */
export function parseRuleSource(body: unknown): { rule: Rule; source: string; enabled?: boolean } {
  let value: unknown = body;
  let source: string;
  if (typeof body === 'string') {
    source = body;
    try {
      value = YAML.parse(body);
    } catch (err) {
      throw badRequest(`rule: not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
    }
  } else {
    source = JSON.stringify(body, null, 2);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('rule: must be an object with detect and respond');
  const { enabled, ...ruleBody } = value as Record<string, unknown>;
  if (enabled !== undefined && typeof enabled !== 'boolean') throw badRequest('enabled: must be true or false');
  let rule: Rule;
  try {
    rule = parseRule(ruleBody);
    rule.respond.forEach((a, i) => {
      if (isDrAction(a)) parseAction(a, `respond[${i}]`);
    });
  } catch (err) {
    if (err instanceof RuleError || err instanceof ActionError) throw badRequest(err.message);
    throw err;
  }
  return { rule, source, enabled: enabled as boolean | undefined };
}

export interface IngestResult {
  events: number;
  matches: Array<{ event: number; rule: string; target: 'event' | 'detection' }>;
  detections: Array<{ id: string; rule: string; cat: string }>;
  sessions: Array<{ rule: string; status: string; session_id?: string; request_id?: string }>;
  errors: Array<{ event?: number; rule?: string; message: string }>;
}

/**
 * Evaluates every enabled rule of the organization against each event and
 * runs what matched: `report` records a detection (which `target: detection`
 * rules then see), `start ai agent` launches a session.
 */
export async function ingestEvents(deps: GatewayDeps, orgId: string, events: unknown[]): Promise<IngestResult> {
  const { index: rules, lookups } = await compiledRules(deps, orgId);
  const resolve = (name: string) => lookups.get(name.replace(/^(hive:\/\/)?lookup\//, ''));
  const result: IngestResult = { events: events.length, matches: [], detections: [], sessions: [], errors: [] };

  const fire = async (index: number, target: 'event' | 'detection', record: Record<string, unknown>, depth: number) => {
    for (const r of rules.candidates(target, recordType(target, record))) {
      let hit: boolean;
      try {
        hit = (r.run as CompiledRule)({ target, record }, resolve);
      } catch (err) {
        result.errors.push({ event: index, rule: r.name, message: (err as Error).message });
        continue;
      }
      if (!hit) continue;
      result.matches.push({ event: index, rule: r.name, target });
      for (const action of r.rule.respond) {
        try {
          if (action.action === 'report') {
            const detection = detectionOf(record, target, String(action.name), action);
            await recordDetection(deps.db, { id: String(detection.detect_id), orgId, ruleName: r.name, cat: String(action.name), detection });
            result.detections.push({ id: String(detection.detect_id), rule: r.name, cat: String(action.name) });
            // Detections feed rules of `target: detection`; one level, so rules cannot loop.
            if (depth === 0) await fire(index, 'detection', detection, depth + 1);
          } else if (isDrAction(action)) {
            const ctx = target === 'event'
              ? { routing: record.routing, event: record.event, detect: {} }
              : { routing: record.routing, event: (record.detect as Record<string, unknown> | undefined)?.event, detect: record };
            const launched = await launchAction(deps, orgId, { action, ...ctx, rule_name: r.name });
            result.sessions.push({ rule: r.name, status: launched.status, session_id: launched.session_id, request_id: launched.request_id });
          }
        } catch (err) {
          result.errors.push({ event: index, rule: r.name, message: err instanceof AppError ? err.message : (err as Error).message });
        }
      }
    }
  };

  for (const [i, e] of events.entries()) {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) {
      result.errors.push({ event: i, message: 'an event must be a JSON object' });
      continue;
    }
    await fire(i, 'event', e as Record<string, unknown>, 0);
  }
  return result;
}

type Compiled = { name: string; rule: Rule; run: CompiledRule };
interface OrgRules {
  version: string;
  index: RuleIndex<Compiled>;
  lookups: Map<string, Set<string>>;
}

/** Per gateway: each org's rules compiled and indexed, and its lookup lists, until its dr_version moves. */
const cache = new Map<string, OrgRules>();
const CACHED_ORGS = 1000;

async function compiledRules(deps: GatewayDeps, orgId: string): Promise<OrgRules> {
  const version = await drVersion(deps.db, orgId);
  const hit = cache.get(orgId);
  if (hit && hit.version === version) return hit;
  // Read after the version: a change that lands meanwhile moves the version again, so nothing stale is kept.
  const rules = (await listRules(deps.db, orgId, true)).map((r) => ({ name: r.name, rule: r.rule as Rule, run: compileRule(r.rule as Rule) }));
  const lookups = new Map((await listHive(deps.db, orgId, 'lookup')).filter((l) => l.enabled).map((l) => [l.name, new Set((l.data.values as string[]) ?? [])]));
  const fresh = { version, index: new RuleIndex(rules), lookups };
  cache.delete(orgId);
  if (cache.size >= CACHED_ORGS) cache.delete(cache.keys().next().value!);
  cache.set(orgId, fresh);
  return fresh;
}

/** A detection as LimaCharlie shapes it: the report's name as cat, the event under detect. */
function detectionOf(record: Record<string, unknown>, target: string, cat: string, action: Record<string, unknown>) {
  return {
    detect_id: `det_${randomUUID()}`,
    cat,
    detect: target === 'event' ? record : record.detect,
    routing: record.routing,
    ...(action.priority !== undefined ? { priority: action.priority } : {}),
    ...(action.metadata !== undefined ? { detect_mtd: action.metadata } : {}),
  };
}

/** One JSON object, a JSON array, or newline-delimited JSON objects. */
export function parseEvents(body: unknown): unknown[] {
  if (Array.isArray(body)) return body;
  if (typeof body === 'object' && body !== null) return [body];
  if (typeof body !== 'string' || body.trim() === '') throw badRequest('body: send one JSON event, or newline-delimited JSON events');
  return body.split('\n').map((line, i) => [line.trim(), i] as const).filter(([line]) => line !== '').map(([line, i]) => {
    try {
      return JSON.parse(line) as unknown;
    } catch {
      throw badRequest(`line ${i + 1}: not valid JSON`);
    }
  });
}
