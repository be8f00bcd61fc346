/**
 * A cheap pre-check for `matches`: the longest run of literal text that every
 * match of an RE2 pattern must contain. A value without it cannot match, so
 * the regex (RE2JS, linear but slow) runs only on values that have it.
 *
 * Conservative on purpose, since a wrong literal would hide a detection:
 * top-level alternation, inline flags, POSIX classes and escapes it does not
 * know give no literal at all; groups, classes, anchors and classes like \d
 * end a run; an optional atom (?, *, {…}) is dropped from it.
 */
export function requiredLiteral(pattern: string): string | undefined {
  // Inline flags may turn on case folding or free spacing part-way; POSIX classes nest brackets.
  // \Q…\E quotes brackets the group scan would count.
  if (/\(\?[a-zA-Z-]/.test(pattern.replace(/\(\?(P?<|:)/g, '')) || pattern.includes('[:') || pattern.includes('\\Q')) return undefined;
  // By code point: an optional astral character must leave the run whole, not half a surrogate pair.
  const chars = Array.from(pattern);
  let best: string[] = [];
  let run: string[] = [];
  const endRun = () => {
    if (run.length > best.length) best = run;
    run = [];
  };
  let i = 0;
  while (i < chars.length) {
    const c = chars[i];
    if (c === '\\') {
      const n = chars[i + 1];
      if (n === undefined) return undefined;
      if (/[^A-Za-z0-9\s]/.test(n)) run.push(n);
      else if ('dDwWsSbBAz'.includes(n)) endRun();
      else return undefined;
      i += 2;
      continue;
    }
    if (c === '(') {
      endRun();
      const close = skipGroup(chars, i);
      if (close === undefined) return undefined;
      i = close + 1;
      continue;
    }
    if (c === '[') {
      endRun();
      const close = skipClass(chars, i);
      if (close === undefined) return undefined;
      i = close + 1;
      continue;
    }
    if (c === '|' || c === ')') return undefined;
    // A { that is not a repetition ({n}, {n,}, {n,m}) is a plain character to RE2: give up rather than guess.
    if (c === '{' && !/^\{\d+(?:,\d*)?\}/.test(chars.slice(i, i + 24).join(''))) return undefined;
    if (c === '?' || c === '*' || c === '{') {
      // The atom before may be absent: it leaves the run (a group or class before it already ended it).
      run.pop();
      endRun();
      if (c === '{') {
        const close = chars.indexOf('}', i);
        i = close === -1 ? chars.length : close + 1;
      } else i += 1;
      continue;
    }
    if (c === '+' || c === '.' || c === '^' || c === '$') {
      // a+ keeps one a, but what follows need not come right after it.
      endRun();
      i += 1;
      continue;
    }
    run.push(c);
    i += 1;
  }
  endRun();
  return best.length === 0 ? undefined : best.join('');
}

/** The index of the `)` closing the group opened at `open`, skipping escapes and classes. */
function skipGroup(p: readonly string[], open: number): number | undefined {
  let depth = 0;
  for (let i = open; i < p.length; i++) {
    const c = p[i];
    if (c === '\\') i += 1;
    else if (c === '[') {
      const close = skipClass(p, i);
      if (close === undefined) return undefined;
      i = close;
    } else if (c === '(') depth += 1;
    else if (c === ')' && --depth === 0) return i;
  }
  return undefined;
}

/** The index of the `]` closing the class opened at `open` (a `]` first in it is literal). */
function skipClass(p: readonly string[], open: number): number | undefined {
  let i = open + 1;
  if (p[i] === '^') i += 1;
  if (p[i] === ']') i += 1;
  for (; i < p.length; i++) {
    if (p[i] === '\\') i += 1;
    else if (p[i] === ']') return i;
  }
  return undefined;
}

const ASCII = /^[\x00-\x7f]*$/;

/**
 * The pre-check for a pattern, or undefined when there is none worth having.
 * Folding compares lower case, which agrees with RE2's folding only for ASCII:
 * a folded check is skipped for non-ASCII values (RE2 folds ſ to s, and K to k).
 */
export function literalPrecheck(pattern: string, caseSensitive: boolean): ((s: string) => boolean) | undefined {
  const literal = requiredLiteral(pattern);
  if (literal === undefined || Array.from(literal).length < 2) return undefined;
  if (caseSensitive) return (s) => s.includes(literal);
  if (!ASCII.test(literal)) return undefined;
  const lower = literal.toLowerCase();
  return (s) => !ASCII.test(s) || s.toLowerCase().includes(lower);
}
