/**
 * Paths into events and detections, LimaCharlie style: `/`-separated keys from the root of the
 * record (`event/COMMAND_LINE`, `routing/hostname`, `priority`), with
 *   `?`    any one key at this level,
 *   `*`    any depth: the rest of the path may start here or at any descendant
 *          (a trailing `*` reaches every value under that point),
 *   `[N]`  element N of a list,
 * and lists crossed transparently: a key applied to a list applies to each element, and a list
 * found at the end of a path offers each of its elements. A value is "at" the path if any
 * branch reaches it; operators match if any value does.
 */

export type PathToken =
  | { kind: 'key'; key: string }
  | { kind: 'any' }
  | { kind: 'deep' }
  | { kind: 'index'; index: number; key: string };

export const MAX_PATH_LENGTH = 1024;
export const MAX_PATH_TOKENS = 64;
/** How far into a record a walk goes; deeper values are treated as absent. */
export const MAX_WALK_DEPTH = 100;

const INDEX = /^\[(\d{1,9})\]$/;

/** Splits a path; empty segments are dropped, so `/text` is `text` and `/` is the record itself. */
export function tokenizePath(path: string): PathToken[] {
  const tokens: PathToken[] = [];
  for (const part of path.split('/')) {
    if (part === '') continue;
    if (part === '?') tokens.push({ kind: 'any' });
    else if (part === '*') tokens.push({ kind: 'deep' });
    else {
      const m = INDEX.exec(part);
      tokens.push(m ? { kind: 'index', index: Number(m[1]), key: part } : { kind: 'key', key: part });
    }
  }
  return tokens;
}

/** Problem with a path as written, or null. */
export function pathProblem(path: unknown): string | null {
  if (typeof path !== 'string' || path.trim() === '') return 'required: a non-empty string';
  if (path.length > MAX_PATH_LENGTH) return `longer than ${MAX_PATH_LENGTH} characters`;
  if (tokenizePath(path).length > MAX_PATH_TOKENS) return `more than ${MAX_PATH_TOKENS} segments`;
  return null;
}

const hasOwn = Object.prototype.hasOwnProperty;

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Stops (returning true) at the first value `visit` accepts. */
export type Visitor = (value: unknown) => boolean;

/**
 * Offers `visit` every value at `tokens` under `root`, stopping at the first it accepts.
 * Values found at the end of the path are offered as they are (lists included).
 */
export function walkPath(root: unknown, tokens: readonly PathToken[], visit: Visitor): boolean {
  // Fast path for plain keys through objects, the shape of nearly every rule.
  let node = root;
  let i = 0;
  while (i < tokens.length) {
    const t = tokens[i]!;
    if (t.kind !== 'key' || !isRecord(node)) break;
    if (!hasOwn.call(node, t.key)) return false;
    node = node[t.key];
    i++;
  }
  if (i === tokens.length) return visit(node);
  return walk(node, tokens, i, false, visit, i, new Map());
}

/**
 * Containers already tried at a given (token, depth-wildcard) state: trying again cannot succeed,
 * so the work stays proportional to the record's size even with several `*` in a path, or
 * shared and cyclic references in a record built in memory.
 */
type Memo = Map<object, Set<number>>;

function walk(node: unknown, tokens: readonly PathToken[], i: number, deep: boolean, visit: Visitor, depth: number, memo: Memo): boolean {
  if (depth > MAX_WALK_DEPTH) return false;
  if (typeof node === 'object' && node !== null) {
    const state = i * 2 + (deep ? 1 : 0);
    const seen = memo.get(node);
    if (seen === undefined) memo.set(node, new Set([state]));
    else if (seen.has(state)) return false;
    else seen.add(state);
  }
  if (i === tokens.length) {
    if (!deep) return visit(node);
    // Trailing `*`: every value below here, then the container itself (a list's elements
    // are offered one by one instead).
    if (Array.isArray(node)) {
      for (const el of node) if (walk(el, tokens, i, true, visit, depth + 1, memo)) return true;
      return false;
    }
    if (isRecord(node)) {
      for (const k in node) if (hasOwn.call(node, k) && walk(node[k], tokens, i, true, visit, depth + 1, memo)) return true;
    }
    return visit(node);
  }
  const t = tokens[i]!;
  if (isRecord(node)) {
    if (t.kind === 'deep') {
      if (walk(node, tokens, i + 1, true, visit, depth + 1, memo)) return true;
    } else if (t.kind === 'any') {
      for (const k in node) if (hasOwn.call(node, k) && walk(node[k], tokens, i + 1, false, visit, depth + 1, memo)) return true;
    } else if (hasOwn.call(node, t.key)) {
      if (walk(node[t.key], tokens, i + 1, false, visit, depth + 1, memo)) return true;
    }
    if (deep) {
      for (const k in node) if (hasOwn.call(node, k) && walk(node[k], tokens, i, true, visit, depth + 1, memo)) return true;
    }
    return false;
  }
  if (Array.isArray(node)) {
    if (t.kind === 'index') {
      return t.index < node.length && walk(node[t.index], tokens, i + 1, deep, visit, depth + 1, memo);
    }
    for (const el of node) if (walk(el, tokens, i, deep, visit, depth + 1, memo)) return true;
  }
  return false;
}

/** Applies `test` to a value, or to each element of a (nested) list; true at the first match. */
export function anyLeaf(value: unknown, test: (v: unknown) => boolean): boolean {
  return Array.isArray(value) ? anyInList(value, test, 0, undefined) : test(value);
}

function anyInList(list: readonly unknown[], test: (v: unknown) => boolean, depth: number, seen: Set<unknown> | undefined): boolean {
  for (const el of list) {
    if (!Array.isArray(el)) {
      if (test(el)) return true;
      continue;
    }
    if (depth >= MAX_WALK_DEPTH) continue;
    seen ??= new Set([list]);
    if (seen.has(el)) continue;
    seen.add(el);
    if (anyInList(el, test, depth + 1, seen)) return true;
  }
  return false;
}
