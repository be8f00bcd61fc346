/**
 * Tool permissions: the allowed_tools / denied_tools pattern grammar, the
 * hardened Bash matcher and the permission_mode fallback. Pure: the workflow
 * calls decide() for every tool_use, the API calls validatePatterns().
 */
import { prefixEscape } from './command-escapes';

export type PermissionMode = 'acceptEdits' | 'plan' | 'bypassPermissions';
export const PERMISSION_MODES: readonly PermissionMode[] = Object.freeze(['acceptEdits', 'plan', 'bypassPermissions'] as const);

export const FILE_EDIT_TOOLS: readonly string[] = Object.freeze(['Write', 'Edit', 'NotebookEdit', 'MultiEdit']);
/** Tools that change nothing outside the conversation; plan mode runs these and refuses the rest. */
export const READ_ONLY_TOOLS: readonly string[] = Object.freeze([
  'Read', 'Glob', 'Grep', 'LS', 'NotebookRead', 'TodoWrite', 'AskUserQuestion', 'BashOutput',
]);

export interface PermissionRules {
  allowed: string[];
  denied: string[];
  mode: PermissionMode;
  /** D&R exception: a D&R session whose profile set neither list nor permission_mode allows every tool. */
  allowAll?: boolean;
}
export interface ToolCall { name: string; command?: string }
export type Decision =
  | { behavior: 'allow'; reason: string }
  | { behavior: 'deny'; reason: string }
  | { behavior: 'ask'; reason: string };
export type ToolPattern =
  | { kind: 'tool'; name: string }
  | { kind: 'bash-prefix'; prefix: string }
  | { kind: 'mcp'; server: string; tool?: string };

export class PatternError extends Error {
  pattern: string;
  constructor(pattern: string, problem: string) {
    super(`invalid tool pattern ${JSON.stringify(pattern)}: ${problem}`);
    this.name = 'PatternError';
    this.pattern = pattern;
  }
}

const MAX_PATTERN_LENGTH = 512;
const TOOL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Single underscores only inside a server name, so the first "__" after it always starts the tool name.
const MCP_NAME = /^mcp__([A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*)(?:__([A-Za-z0-9_-]+))?$/;
const SCOPED_BASH = /^Bash\(([\s\S]*):\*\)$/;
// A split, unquoted stage never holds these; "*" would read as a wildcard that the literal match does not honour.
const PREFIX_FORBIDDEN = /[\n;|&<>()`'"\\*]/;
// Controls, invisible format characters and non-ASCII spaces: bash keeps them inside words, so the
// command reads differently to a person than to the shell.
const SUSPICIOUS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00a0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]/;

export function parsePattern(pattern: string): ToolPattern {
  const fail = (problem: string): never => { throw new PatternError(String(pattern), problem); };
  if (typeof pattern !== 'string') return fail('a pattern must be a string');
  if (pattern.trim() === '') return fail('a pattern cannot be empty or blank');
  if (pattern.length > MAX_PATTERN_LENGTH) return fail(`longer than ${MAX_PATTERN_LENGTH} characters`);
  if (pattern.startsWith('Bash(')) return { kind: 'bash-prefix', prefix: bashPrefix(pattern, fail) };
  if (pattern.startsWith('mcp__')) {
    const m = MCP_NAME.exec(pattern);
    if (!m) return fail('expected mcp__<server> or mcp__<server>__<tool>; server names use letters, digits, hyphens and single underscores');
    return m[2] ? { kind: 'mcp', server: m[1]!, tool: m[2] } : { kind: 'mcp', server: m[1]! };
  }
  if (TOOL_NAME.test(pattern)) return { kind: 'tool', name: pattern };
  return fail(pattern.includes('(') ? 'only Bash takes a scope, written Bash(prefix:*)' : 'tool names use only letters, digits and underscores');
}

function bashPrefix(pattern: string, fail: (problem: string) => never): string {
  const m = SCOPED_BASH.exec(pattern);
  if (!m) return fail('the only scoped form is Bash(prefix:*)');
  const prefix = m[1]!.replace(/[ \t]+/g, ' ').replace(/^ | $/g, '');
  if (prefix === '') return fail('the prefix in Bash(prefix:*) is empty');
  if (PREFIX_FORBIDDEN.test(prefix) || SUSPICIOUS.test(prefix)) {
    return fail('the prefix may not contain shell operators, quotes, backslashes, "*" or control/invisible characters; it is compared literally with the unquoted command');
  }
  return prefix;
}

export function validatePatterns(patterns: unknown): string[] {
  if (!Array.isArray(patterns)) return ['tool patterns must be an array of strings'];
  return patterns.flatMap((p: unknown, i) => {
    if (typeof p !== 'string') return [`tool pattern #${i} is not a string`];
    try {
      parsePattern(p);
      return [];
    } catch (e) {
      if (e instanceof PatternError) return [e.message];
      throw e;
    }
  });
}

interface Word { raw: string; text: string; redir: boolean; dangerous: boolean }
interface LexedStage { words: Word[]; dangerous: boolean }
/** escape: why a prefix allow rule does not cover the stage (lib/command-escapes.ts). */
interface Stage { argv: Word[]; text: string; dangerous: boolean; escape?: string }
interface Analysis { stages: Stage[]; dangerous: boolean; denyTexts: string[] }

// An optional fd is glued on by the lexer ("2>&1"); ">&1" and "<&-" are complete without a target word.
const REDIRECT = /&>>?|<<<|<<-?|<>|[<>]&(?:\d+-?|-)?|>>|>\||[<>]/y;

/** Splits like bash does at the top level: quotes, escapes, comments, redirections, stage operators. */
function lex(src: string): { stages: LexedStage[]; heredoc: boolean } {
  const stages: LexedStage[] = [];
  let words: Word[] = [], dangerous = false, heredoc = false;
  let raw = '', text = '', inWord = false, redirTarget = false, wordDangerous = false;
  const add = (r: string, t: string, risky = false) => {
    raw += r;
    text += t;
    inWord = true;
    wordDangerous ||= risky;
    dangerous ||= risky;
  };
  const endWord = () => {
    if (inWord) {
      words.push({ raw, text, redir: redirTarget, dangerous: wordDangerous });
      redirTarget = false;
    }
    raw = text = '';
    inWord = wordDangerous = false;
  };
  const endStage = () => {
    endWord();
    if (words.length > 0 || dangerous) stages.push({ words, dangerous });
    words = [];
    dangerous = redirTarget = false;
  };
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === ' ' || c === '\t') endWord();
    else if (c === '\n') endStage();
    else if (c === '#' && !inWord) {
      const nl = src.indexOf('\n', i);
      i = (nl < 0 ? src.length : nl) - 1;
    } else if (c === '\\') {
      if (src[i + 1] !== '\n') add(c + (src[i + 1] ?? ''), src[i + 1] ?? c);
      i++;
    } else if (c === "'" || c === '"' || (c === '$' && (src[i + 1] === "'" || src[i + 1] === '"'))) {
      const q = readQuoted(src, i);
      if (!q) { dangerous = true; break; } // unterminated: nothing after the quote can be trusted
      add(src.slice(i, q.end + 1), q.text, q.dangerous);
      i = q.end;
    } else if (c === '`' || c === '(' || c === ')') {
      // Substitutions and groups are not followed inside: splitting there too can only add stages, never hide one.
      add(c, c, true);
    } else if (((c === '<' || c === '>') && src[i + 1] !== '(') || (c === '&' && src[i + 1] === '>')) {
      REDIRECT.lastIndex = i;
      const op = REDIRECT.exec(src)![0];
      const fd = c !== '&' && inWord && /^\d+$/.test(raw) ? raw : ''; // "2>": the digits name the fd
      if (fd) {
        raw = text = '';
        inWord = false;
      } else endWord();
      heredoc ||= op === '<<' || op === '<<-';
      words.push({ raw: fd + op, text: fd + op, redir: true, dangerous: false });
      redirTarget = !/&(?:\d+-?|-)$/.test(op);
      i += op.length - 1;
    } else if (c === '|' || c === '&' || c === ';') endStage();
    else add(c, c);
  }
  endStage();
  return { stages, heredoc };
}

function readQuoted(src: string, i: number): { end: number; text: string; dangerous: boolean } | null {
  if (src[i] === "'") {
    const end = src.indexOf("'", i + 1);
    return end < 0 ? null : { end, text: src.slice(i + 1, end), dangerous: false };
  }
  if (src[i + 1] === "'") { // $'...' decodes backslash escapes, so $'\x72m' is rm
    let j = i + 2;
    while (j < src.length && src[j] !== "'") j += src[j] === '\\' ? 2 : 1;
    return j >= src.length ? null : { end: j, text: decodeAnsiC(src.slice(i + 2, j)), dangerous: false };
  }
  // "..." and $"...": substitutions stay live inside double quotes.
  let j = src[i] === '$' ? i + 2 : i + 1, text = '', dangerous = false;
  for (; j < src.length && src[j] !== '"'; j++) {
    const ch = src[j]!, next = src[j + 1];
    if (ch === '\\' && next !== undefined && '$`"\\\n'.includes(next)) {
      if (next !== '\n') text += next;
      j++;
      continue;
    }
    if (ch === '`' || (ch === '$' && next === '(')) dangerous = true;
    text += ch;
  }
  return j >= src.length ? null : { end: j, text, dangerous };
}

const ANSI_ESCAPE = /\\(?:x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})|U([0-9A-Fa-f]{1,8})|([0-7]{1,3})|c([\s\S])|([\s\S]))/g;
const ANSI_SIMPLE: Record<string, string> = { a: '\x07', b: '\b', e: '\x1b', E: '\x1b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

function decodeAnsiC(s: string): string {
  return s.replace(ANSI_ESCAPE, (all, x?: string, u?: string, U?: string, oct?: string, ctl?: string, ch?: string) => {
    const hex = x ?? u ?? U;
    if (hex) return parseInt(hex, 16) <= 0x10ffff ? String.fromCodePoint(parseInt(hex, 16)) : '';
    if (oct) return String.fromCharCode(parseInt(oct, 8) & 0xff);
    if (ctl) return String.fromCharCode(ctl.charCodeAt(0) & 0x1f);
    return ANSI_SIMPLE[ch!] ?? ('\\\'"?'.includes(ch!) ? ch! : all);
  });
}

const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*\+?=/;
// Reserved words that only introduce the command after them, so `then rm -rf /` is judged as rm.
const KEYWORDS = new Set(['!', 'if', 'then', 'elif', 'else', 'do', 'while', 'until', 'coproc']);
// Syntax the splitter does not model: case arms end in ")" and function bodies hide in braces.
const UNMODELLED = new Set(['case', 'function']);

interface Wrapper { flag?: RegExp; withArg?: RegExp; operand?: RegExp; endOfOptions?: boolean }
const WRAPPERS = new Map<string, Wrapper>([
  ['timeout', {
    flag: /^(?:-v|--verbose|--foreground|--preserve-status|-[sk].+|--(?:signal|kill-after)=.*)$/,
    withArg: /^(?:-[sk]|--signal|--kill-after)$/,
    operand: /^\d+(?:\.\d+)?[smhd]?$/,
    endOfOptions: true,
  }],
  ['time', { flag: /^-p$/ }],
  ['nice', { flag: /^(?:-n.+|-\d+|--adjustment=.*)$/, withArg: /^(?:-n|--adjustment)$/, endOfOptions: true }],
  ['nohup', { endOfOptions: true }],
  ['stdbuf', { flag: /^(?:-[ioe].+|--(?:input|output|error)=.*)$/, withArg: /^-[ioe]$/, endOfOptions: true }],
  ['xargs', {}], // only bare xargs: with options of its own, xargs is the command being judged
]);

/** Index just past a wrapper and its options, or `i` when words[i] is not a wrapper that can be stripped. */
function skipWrapper(words: string[], i: number): number {
  const spec = WRAPPERS.get(words[i]!);
  if (!spec) return i;
  let j = i + 1;
  for (; j < words.length && words[j]!.startsWith('-'); j++) {
    if (words[j] === '--' && spec.endOfOptions) { j++; break; }
    if (spec.withArg?.test(words[j]!)) j++;
    else if (!spec.flag?.test(words[j]!)) return i;
  }
  if (spec.operand) {
    if (!spec.operand.test(words[j] ?? '')) return i;
    j++;
  }
  return j < words.length ? j : i;
}

/** The words from the command itself on, and the names of the environment assignments stripped before it. */
function stripFront(argv: Word[]): { argv: Word[]; env: string[]; viaXargs: boolean } {
  const texts = argv.map((w) => w.text);
  const env: string[] = [];
  let viaXargs = false;
  let i = 0;
  while (i < argv.length && !argv[i]!.dangerous) {
    if (ASSIGNMENT.test(argv[i]!.raw)) { env.push(argv[i]!.raw.replace(/\+?=[\s\S]*$/, '')); i++; continue; }
    if (KEYWORDS.has(argv[i]!.raw)) { i++; continue; }
    const next = skipWrapper(texts, i);
    if (next === i) break;
    viaXargs ||= texts[i] === 'xargs';
    i = next;
  }
  return { argv: argv.slice(i), env, viaXargs };
}

// A word holding blanks got them from quoting; re-quote it so it cannot pass for several words.
const render = (w: string) => (w === '' || /[ \t\n]/.test(w) ? `'${w.replace(/'/g, `'\\''`)}'` : w);

/** Redirections keep to their stage but move behind the arguments, so `>x rm -rf /` is judged as rm. */
function finishStage(s: LexedStage): Stage {
  const { argv, env, viaXargs } = stripFront(s.words.filter((w) => !w.redir));
  const head = argv[0]?.raw ?? '';
  const dangerous = s.dangerous || head.startsWith('{') || head.startsWith('}');
  const escape = prefixEscape(argv.map((w) => w.text), env, viaXargs);
  return { argv, dangerous, escape, text: [...argv, ...s.words.filter((w) => w.redir)].map((w) => render(w.text)).join(' ') };
}

function analyze(command: string): Analysis {
  const lexed = lex(command);
  const stages = lexed.stages.map(finishStage);
  if (stages.length === 0) stages.push({ argv: [], text: '', dangerous: false });
  const unmodelled = lexed.heredoc || stages.some((s) => UNMODELLED.has(s.argv[0]?.raw ?? ''));
  const dangerous = unmodelled || SUSPICIOUS.test(command) || stages.some((s) => s.dangerous);
  const denyTexts = stages.filter((s) => !s.dangerous).map((s) => s.text);
  if (unmodelled) {
    // Heredoc bodies and unmodelled syntax can put our quote tracking out of step with bash, so deny also
    // scans a quote-blind split of the raw text; blocking too much is the safe mistake here.
    const blind = command.replace(/['"\\]/g, '').replace(/[#()`{}]/g, '\n');
    denyTexts.push(...lex(blind).stages.map((s) => finishStage(s).text));
  }
  return { stages, dangerous, denyTexts };
}

export function splitBashStages(command: string): { stages: string[]; dangerous: boolean } {
  const { stages, dangerous } = analyze(command);
  return { stages: stages.map((s) => s.text), dangerous };
}

const prefixMatches = (prefix: string, stage: string) => stage === prefix || stage.startsWith(`${prefix} `);

function matchesTool(p: ToolPattern, name: string): boolean {
  if (p.kind === 'tool') return p.name === name;
  if (p.kind === 'bash-prefix') return false;
  const server = `mcp__${p.server}`;
  return p.tool === undefined ? name === server || name.startsWith(`${server}__`) : name === `${server}__${p.tool}`;
}

type Compiled = Array<[source: string, pattern: ToolPattern | null]>;

function tryParse(pattern: string): ToolPattern | null {
  try {
    return parsePattern(pattern);
  } catch (e) {
    if (e instanceof PatternError) return null;
    throw e;
  }
}

export function decide(rules: PermissionRules, call: ToolCall): Decision {
  const bash = call.name === 'Bash' ? analyze(call.command ?? '') : undefined;
  const denied: Compiled = rules.denied.map((p) => [p, tryParse(p)]);
  for (const [source, p] of denied) {
    // A deny rule we cannot read may have been meant for this very call.
    if (!p) return { behavior: 'deny', reason: `denied_tools entry ${JSON.stringify(source)} is not a valid pattern; every call is refused until it is fixed` };
    const hit = p.kind === 'bash-prefix' ? bash?.denyTexts.some((t) => prefixMatches(p.prefix, t)) : matchesTool(p, call.name);
    if (hit) return { behavior: 'deny', reason: `denied by ${JSON.stringify(source)}` };
  }
  // Bash(prefix:*) denies cannot be checked against a command we could not analyse, so blanket approvals step aside.
  const unverified = bash?.dangerous === true && denied.some(([, p]) => p?.kind === 'bash-prefix');
  if (!unverified) {
    if (rules.allowAll) return { behavior: 'allow', reason: 'allowed: this D&R session has no tool restrictions' };
    const reason = allowedBy(rules.allowed.map((p) => [p, tryParse(p)]), call.name, bash);
    if (reason) return { behavior: 'allow', reason };
  }
  return fallback(rules.mode, call.name, bash?.dangerous === true);
}

function allowedBy(allowed: Compiled, name: string, bash: Analysis | undefined): string | null {
  const whole = allowed.find(([, p]) => p !== null && matchesTool(p, name));
  if (whole) return `allowed by ${JSON.stringify(whole[0])}`;
  if (!bash || bash.dangerous) return null;
  const used = new Set<string>();
  for (const stage of bash.stages) {
    const hit = allowed.find(([, p]) => p?.kind === 'bash-prefix' && prefixMatches(p.prefix, stage.text));
    if (!hit || stage.escape) return null;
    used.add(JSON.stringify(hit[0]));
  }
  return `allowed by ${[...used].join(', ')}`;
}

function fallback(mode: PermissionMode, name: string, unverifiable: boolean): Decision {
  switch (mode) {
    case 'bypassPermissions':
      return { behavior: 'allow', reason: 'permission_mode bypassPermissions approves calls no rule decided' };
    case 'acceptEdits':
      return FILE_EDIT_TOOLS.includes(name)
        ? { behavior: 'allow', reason: 'permission_mode acceptEdits approves file edits' }
        : { behavior: 'ask', reason: `permission_mode acceptEdits asks before ${name}${unverifiable ? ' (the command uses shell constructs the matcher cannot check)' : ''}` };
    case 'plan':
      return READ_ONLY_TOOLS.includes(name)
        ? { behavior: 'allow', reason: 'permission_mode plan permits read-only tools' }
        : { behavior: 'deny', reason: `the session is in plan (read-only) mode, which does not permit ${name}` };
    default:
      return { behavior: 'ask', reason: `unknown permission_mode ${JSON.stringify(mode)}` };
  }
}

// Commands whose first word says nothing about what they will run: remember their literal words, not the name.
const RUNNERS = new Set(['env', 'sudo', 'doas', 'su', 'sh', 'bash', 'zsh', 'dash', 'ksh', 'eval', 'exec', 'command', 'builtin', 'xargs', 'timeout', 'nice', 'nohup', 'stdbuf', 'time', 'watch', 'busybox']);
const isPlainWord = (w: string) => w !== '' && !/[\s$?[\]*{}]/.test(w) && !PREFIX_FORBIDDEN.test(w) && !SUSPICIOUS.test(w);

/** The pattern a "session" answer remembers, or '' when no pattern would be safe (decide ignores ''). */
export function sessionPatternFor(call: ToolCall): string {
  if (call.name !== 'Bash') return tryParse(call.name) ? call.name : '';
  const { stages } = analyze(call.command ?? '');
  const words: string[] = [];
  for (const w of stages[0]!.argv) {
    if (!isPlainWord(w.text)) break;
    words.push(w.text);
  }
  const head = words[0];
  if (head === undefined) return '';
  // Stages running different commands: keep only the first stage's literal words; the others still prompt.
  const sameHead = !RUNNERS.has(head) && stages.every((s) => s.argv[0]?.text === head);
  if (sameHead) words.length = 1;
  while (words.length > 1 && words.join(' ').length > MAX_PATTERN_LENGTH - 8) words.pop();
  const pattern = `Bash(${words.join(' ')}:*)`;
  return tryParse(pattern) ? pattern : '';
}
