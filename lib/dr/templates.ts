/**
 * LimaCharlie-style templates for D&R-triggered sessions: `{{ .event.X }}`,
 * `{{ .routing.hostname }}`, `{{ .detect.cat }}`. Pure and total: rendering a
 * user's template never throws, because a broken template must not stop the
 * rule from firing; validateTemplate() is what rejects it at rule-save time.
 *
 * Grammar, kept deliberately small:
 *   - `{{ .a.b/c }}`: a field reference. `.` separates segments and `/` inside a
 *     segment separates nested keys too, so `.event.PARENT/FILE_PATH` walks
 *     event → PARENT → FILE_PATH. A numeric key indexes an array.
 *   - Anything else between `{{` and `}}` (Go template pipelines, functions,
 *     trim markers) is not supported: it renders as empty text, the same as a
 *     missing field, rather than leaking template source into a prompt.
 *   - An unclosed `{{` stays literal text; a stray `}}` is plain text and not an
 *     error (as in Go templates), so prompts can quote JSON such as `{"a":{"b":1}}`.
 */

export interface TemplateContext {
  event?: unknown;
  routing?: unknown;
  detect?: unknown;
  [k: string]: unknown;
}

type Piece =
  | { kind: 'text'; text: string }
  | { kind: 'field'; source: string; keys: string[] }
  | { kind: 'bad'; source: string };

interface Scan { pieces: Piece[]; problems: string[] }

const SEGMENT = /^[^\s{}.]+$/;

/** `.event.PARENT/FILE_PATH` → ['event', 'PARENT', 'FILE_PATH'], or a reason it is not a field reference. */
function parseReference(expr: string): string[] | string {
  if (!expr.startsWith('.')) return 'only field references such as {{ .event.FILE_PATH }} are supported';
  const segments = expr.slice(1).split('.');
  if (segments.some((s) => !SEGMENT.test(s))) return 'a field reference is dot-separated names without spaces or empty parts';
  const keys = segments.flatMap((s) => s.split('/'));
  if (keys.some((k) => k === '')) return 'a nested key written with "/" cannot be empty';
  return keys;
}

function scan(template: string): Scan {
  const pieces: Piece[] = [];
  const problems: string[] = [];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{{', i);
    if (open < 0) break;
    if (open > i) pieces.push({ kind: 'text', text: template.slice(i, open) });
    const close = template.indexOf('}}', open + 2);
    const reopen = template.indexOf('{{', open + 2);
    if (close < 0) {
      problems.push(`"{{" at offset ${open} is never closed with "}}"`);
      pieces.push({ kind: 'text', text: template.slice(open) });
      i = template.length;
      break;
    }
    if (reopen >= 0 && reopen < close) {
      problems.push(`"{{" at offset ${open} is not closed before the next "{{"`);
      pieces.push({ kind: 'text', text: template.slice(open, reopen) });
      i = reopen;
      continue;
    }
    const source = template.slice(open, close + 2);
    const inner = template.slice(open + 2, close).trim();
    const keys = inner === '' ? 'the expression is empty' : parseReference(inner);
    if (typeof keys === 'string') {
      problems.push(`${source} at offset ${open}: ${keys}`);
      pieces.push({ kind: 'bad', source });
    } else pieces.push({ kind: 'field', source, keys });
    i = close + 2;
  }
  if (i < template.length) pieces.push({ kind: 'text', text: template.slice(i) });
  return { pieces, problems };
}

/** Walks own properties only, so `.event.constructor` or `__proto__` never reach the prototype chain. */
export function lookup(root: unknown, keys: readonly string[]): unknown {
  let value: unknown = root;
  for (const key of keys) {
    if (value === null || typeof value !== 'object') return undefined;
    if (Array.isArray(value)) {
      if (!/^\d+$/.test(key)) return undefined;
      value = value[Number(key)];
    } else {
      if (!Object.prototype.hasOwnProperty.call(value, key)) return undefined;
      value = (value as Record<string, unknown>)[key];
    }
  }
  return value;
}

/** Text for one value: strings as-is, scalars as text, objects and arrays as JSON, missing as ''. */
export function textOf(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (typeof value === 'object') {
    try {
      return JSON.stringify(value) ?? '';
    } catch {
      return ''; // circular or otherwise unserialisable: still never throw
    }
  }
  return '';
}

export interface Rendered {
  text: string;
  /** The `{{ … }}` placeholders that rendered as empty text (missing field, empty value or unsupported syntax). */
  empty: string[];
}

/** Renders and reports which placeholders came out empty, so callers can refuse keys that lost their variable part. */
export function renderTemplateDetailed(template: string, ctx: TemplateContext): Rendered {
  const empty: string[] = [];
  let text = '';
  for (const piece of scan(template).pieces) {
    if (piece.kind === 'text') text += piece.text;
    else {
      const value = piece.kind === 'field' ? textOf(lookup(ctx, piece.keys)) : '';
      if (value === '') empty.push(piece.source);
      text += value;
    }
  }
  return { text, empty };
}

export function renderTemplate(template: string, ctx: TemplateContext): string {
  return renderTemplateDetailed(template, ctx).text;
}

/** Problems that would make the template render other than intended; [] when it is sound. */
export function validateTemplate(template: string): string[] {
  return scan(template).problems;
}

export function isTemplate(value: string): boolean {
  return value.includes('{{');
}

/** Roots a bare data path may start from; any other dotted string (e.g. "example.com") stays a constant. */
const BARE_ROOTS = new Set(['event', 'routing', 'detect']);

/** `routing.hostname` / `event.PARENT/FILE_PATH` → keys, or null when the string is not a bare path. */
export function parseBarePath(value: string): string[] | null {
  const dot = value.indexOf('.');
  if (dot < 0 || !BARE_ROOTS.has(value.slice(0, dot))) return null;
  const keys = parseReference(value.slice(dot));
  return typeof keys === 'string' ? null : [value.slice(0, dot), ...keys];
}

/**
 * Extracts a data mapping. A string holding `{{` is a template rendered to a
 * string; a bare path rooted at event/routing/detect resolves to the raw value
 * (keeping its JSON type, missing → null); any other string is a constant, and
 * non-string values pass through unchanged.
 */
export function extractData(mapping: Record<string, unknown>, ctx: TemplateContext): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(mapping)) {
    let value: unknown = spec;
    if (typeof spec === 'string' && isTemplate(spec)) value = renderTemplate(spec, ctx);
    else if (typeof spec === 'string') {
      const keys = parseBarePath(spec);
      if (keys) value = lookup(ctx, keys) ?? null;
    }
    // defineProperty, not assignment: a data key named "__proto__" must stay a plain key.
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The fenced JSON block appended to a prompt; key order is the object's own order. */
export function dataBlock(data: Record<string, unknown>): string {
  return '```json\n' + JSON.stringify(data, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v), 2) + '\n```';
}
