/**
 * Ways a command can run other programs (or write files) that its name does
 * not show. A `Bash(find:*)` allow rule is meant to approve searching, not
 * `find -exec`, so a stage that uses one of these is not covered by a prefix
 * rule and falls through to permission_mode (an approval prompt). Deny rules
 * are unaffected. This extends the reference's "dangerous constructs fall
 * through" to the inspection commands its Default profile allows, and to
 * environment assignments, which the matcher strips before matching.
 *
 * Each check is an allow-list of what is plainly harmless; anything it does
 * not recognise is treated as an escape, so a mistake here costs a prompt.
 */

/** Assignments that only change output or verbosity; any other (LD_PRELOAD, LESSOPEN, GIT_PAGER, PATH, …) may run code. */
const HARMLESS_ENV = /^(?:DEBUG|VERBOSE|CI|NO_COLOR|FORCE_COLOR|CLICOLOR|TERM|COLUMNS|LINES|TZ|LANG|LANGUAGE|LC_[A-Z]+)$/;

/** Why the stage escapes its prefix rule, or undefined when it does not. */
export function prefixEscape(argv: readonly string[], env: readonly string[], viaXargs = false): string | undefined {
  const risky = env.find((name) => !HARMLESS_ENV.test(name));
  if (risky) return `the environment assignment ${risky}= can change what the command runs`;
  const [cmd, ...args] = argv;
  const base = (cmd ?? '').split('/').pop()!;
  // xargs adds arguments from its input, which no check here can see.
  if (viaXargs && CHECKED.has(base)) return `xargs gives ${base} arguments the rule cannot see`;
  if (base === 'find') return findEscape(args);
  if (base === 'sed') return sedEscape(args);
  if (['awk', 'gawk', 'mawk', 'nawk'].includes(base)) return awkEscape(args);
  if (['less', 'more', 'most'].includes(base)) return pagerEscape(args);
  return undefined;
}

const CHECKED = new Set(['find', 'sed', 'awk', 'gawk', 'mawk', 'nawk', 'less', 'more', 'most']);

const FIND_ACTIONS = new Set(['-exec', '-execdir', '-ok', '-okdir', '-delete', '-fprint', '-fprint0', '-fprintf', '-fls']);

function findEscape(args: readonly string[]): string | undefined {
  const action = args.find((a) => FIND_ACTIONS.has(a));
  return action && `find ${action} runs commands or writes files`;
}

function pagerEscape(args: readonly string[]): string | undefined {
  // +cmd runs a command; -k loads a lesskey file (which can set LESSOPEN); -o/-O write a log file.
  const bad = args.find((a) => a.startsWith('+') || /^-[^-]*[koO]/.test(a) || /^--(?:lesskey|log-file)/i.test(a));
  return bad && `the pager option ${bad} can run commands or write files`;
}

function awkEscape(args: readonly string[]): string | undefined {
  let program: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') { program = args[i + 1]; break; }
    if (a === '-F' || a === '-v') { i++; continue; }
    if (/^-[Fv]./.test(a)) continue;
    if (a.startsWith('-')) return `the awk option ${a} may load code`;
    program = a;
    break;
  }
  if (program === undefined) return 'awk without a program on the command line';
  // system(), pipes to and from commands, output redirection, and gawk's @load / @include.
  if (/system|[|>@]/.test(program)) return 'the awk program can run commands or write files';
  return undefined;
}

function sedEscape(args: readonly string[]): string | undefined {
  const scripts: string[] = [];
  let sandboxed = false;
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') { operands.push(...args.slice(i + 1)); break; }
    if (a === '--sandbox') sandboxed = true;
    else if (a === '-e' || a === '--expression') scripts.push(args[++i] ?? '');
    else if (a.startsWith('--expression=')) scripts.push(a.slice('--expression='.length));
    else if (/^-[nrEsuz]+$/.test(a) || ['--quiet', '--silent', '--regexp-extended', '--separate', '--unbuffered', '--null-data', '--posix', '--debug'].includes(a)) continue;
    else if (/^-[nrEsuz]*e./.test(a)) scripts.push(a.slice(a.indexOf('e') + 1));
    else if (a.startsWith('-')) return `the sed option ${a} edits files or reads a script`;
    else operands.push(a);
  }
  if (scripts.length === 0) scripts.push(operands[0] ?? '');
  if (sandboxed) return undefined;
  return scripts.every(isPlainSedScript) ? undefined : 'the sed script may run commands or write files (only p, d, q, s/// and the like run without asking; --sandbox allows more)';
}

/**
 * Whether a sed script uses only commands that print, delete or substitute:
 * addresses (numbers, $, /re/, first~step, ranges), ! and the commands
 * p P d D q Q n N g G h H x l = z, and s/re/text/ with flags g p i I m M and
 * digits. Not e, w, W, r, R, a, i, c, labels or blocks, nor an s flag e or w.
 */
export function isPlainSedScript(script: string): boolean {
  let i = 0;
  const skipBlank = () => { while (i < script.length && /[ \t]/.test(script[i]!)) i++; };
  /** Index just past the next unescaped `d` from `from`, or -1. */
  /**
   * Index just past the next unescaped `d` from `from`, or -1. In a regex
   * sed skips bracket expressions (`/[/]/` is one regex), so this does too;
   * brackets holding a backslash or a class, and `\c` (which swallows the
   * next character), are refused rather than guessed at: where this scan and
   * sed's disagree on where a part ends, a command could hide.
   */
  const past = (from: number, d: string, regex: boolean) => {
    for (let j = from; j < script.length; j++) {
      const c = script[j];
      if (c === '\\') {
        if (script[j + 1] === 'c') return -1;
        j++;
      } else if (c === '\n') return -1;
      else if (regex && c === '[') {
        let k = j + 1;
        if (script[k] === '^') k++;
        if (script[k] === ']') k++;
        while (k < script.length && script[k] !== ']') {
          if (script[k] === '\\' || script[k] === '\n' || (script[k] === '[' && ':.='.includes(script[k + 1] ?? ''))) return -1;
          k++;
        }
        if (k >= script.length) return -1;
        j = k;
      } else if (c === d) return j + 1;
    }
    return -1;
  };
  const address = () => {
    if (/\d/.test(script[i] ?? '')) {
      while (/\d/.test(script[i] ?? '')) i++;
      if (script[i] === '~') { i++; while (/\d/.test(script[i] ?? '')) i++; }
      return true;
    }
    if (script[i] === '$') { i++; return true; }
    if (script[i] === '/') {
      const end = past(i + 1, '/', true);
      if (end < 0) return false;
      i = end;
      while (script[i] === 'I' || script[i] === 'M') i++;
      return true;
    }
    return true; // no address
  };
  while (i < script.length) {
    skipBlank();
    if (script[i] === ';' || script[i] === '\n') { i++; continue; }
    if (i >= script.length) break;
    if (!address()) return false;
    if (script[i] === ',') { i++; if (!address()) return false; }
    skipBlank();
    if (script[i] === '!') { i++; skipBlank(); }
    const c = script[i];
    if (c !== undefined && 'pPdDqQnNgGhHxlz='.includes(c)) { i++; }
    else if (c === 's') {
      const d = script[i + 1];
      if (d === undefined || d === '\\' || d === '\n' || /[A-Za-z0-9 ]/.test(d)) return false;
      const mid = past(i + 2, d, true);
      if (mid < 0) return false;
      const end = past(mid, d, false);
      if (end < 0) return false;
      i = end;
      while (/[gpiImM0-9]/.test(script[i] ?? '')) i++;
    } else return false;
    skipBlank();
    if (i < script.length && script[i] !== ';' && script[i] !== '\n') return false;
  }
  return true;
}
