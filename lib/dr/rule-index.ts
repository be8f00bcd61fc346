import type { Rule, RuleTarget } from './rule-types';

/**
 * An organization's rules grouped by what they can match: their target and
 * the event types of their top-level `event`/`events` filter. An event is
 * offered only to the rules that filter on its type or on none, in the
 * rules' own order, so thousands of rules for other event types cost nothing.
 * The compiled predicate still checks the type: this is only a shortcut.
 */
const UNTYPED = '\0any';

export class RuleIndex<T extends { rule: Rule }> {
  private readonly byTarget = new Map<RuleTarget, { typed: Map<string, number[]>; untyped: number[]; merged: Map<string, T[]> }>();

  constructor(private readonly rules: readonly T[]) {
    rules.forEach((r, i) => {
      const slot = this.slot(r.rule.detect.target);
      const events = r.rule.detect.events;
      if (events === null) slot.untyped.push(i);
      else for (const t of new Set(events)) slot.typed.set(t, [...(slot.typed.get(t) ?? []), i]);
    });
  }

  /** The rules that may match a record of this target and type, in their original order. */
  candidates(target: RuleTarget, type: string | undefined): readonly T[] {
    const slot = this.byTarget.get(target);
    if (!slot) return [];
    // Types are the sender's strings: only those some rule names get a list of their own.
    const key = type !== undefined && slot.typed.has(type) ? type : UNTYPED;
    let list = slot.merged.get(key);
    if (!list) {
      list = [...(slot.typed.get(key) ?? []), ...slot.untyped].sort((a, b) => a - b).map((i) => this.rules[i]);
      slot.merged.set(key, list);
    }
    return list;
  }

  private slot(target: RuleTarget) {
    let slot = this.byTarget.get(target);
    if (!slot) this.byTarget.set(target, (slot = { typed: new Map(), untyped: [], merged: new Map() }));
    return slot;
  }
}

/** The type a rule's event filter compares with: routing/event_type for events, the report name (cat) for detections. */
export function recordType(target: RuleTarget, record: Record<string, unknown>): string | undefined {
  if (target === 'detection') return typeof record.cat === 'string' ? record.cat : undefined;
  const routing = record.routing;
  const t = routing !== null && typeof routing === 'object' ? (routing as Record<string, unknown>).event_type : undefined;
  return typeof t === 'string' ? t : undefined;
}
