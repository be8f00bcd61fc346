import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { DockerSandboxes } from '../activities/docker-sandbox';
import { runSandboxTool, type ToolLimits, type ToolOutcome } from '../activities/tools';
import { loadConfig } from '../lib/config';

/**
 * The built-in tools as they run inside a real sandbox container (no Temporal):
 * Bash through `docker exec`, the file tools through runner/toolbox.py.
 * Limits are small so truncation is easy to reach.
 */

const LIMITS: ToolLimits = { defaultTimeoutMs: 10000, maxTimeoutMs: 20000, outputLimitBytes: 2000 };

interface Case {
  name: string;
  input: Record<string, unknown>;
  /** What the tool result's content must match. */
  expect: RegExp;
  /** What it must not contain. */
  reject?: RegExp;
  isError: boolean;
  tool?: string;
  limits?: ToolLimits;
}

const sessionId = `tools-test-${randomBytes(4).toString('hex')}`;
const sandboxes = new DockerSandboxes(new Docker());
let containerId: string;

const run = (name: string, input: Record<string, unknown>, limits = LIMITS, signal?: AbortSignal) =>
  runSandboxTool(sandboxes, containerId, name, input, limits, signal);

function check(outcome: ToolOutcome, c: Pick<Case, 'expect' | 'reject' | 'isError'>): void {
  expect(outcome).toEqual({ content: expect.stringMatching(c.expect), isError: c.isError });
  if (c.reject) expect(outcome.content).not.toMatch(c.reject);
}

/** Runs a setup command through the Bash tool; it must succeed. */
async function sh(command: string): Promise<string> {
  const r = await run('Bash', { command });
  if (r.isError) throw new Error(`setup command failed: ${command}\n${r.content}`);
  return r.content;
}

async function write(file_path: string, content: string): Promise<void> {
  const r = await run('Write', { file_path, content });
  if (r.isError) throw new Error(`setup Write ${file_path} failed: ${r.content}`);
}

beforeAll(async () => {
  ({ containerId } = await sandboxes.provision({
    sessionId,
    image: loadConfig().runnerImage,
    env: {},
    network: false,
    cpus: 1,
    memoryMb: 512,
    pidsLimit: 128,
  }));
}, 60000);

afterAll(async () => {
  await sandboxes.destroy(sessionId);
}, 60000);

describe('Bash', () => {
  const cases: Case[] = [
    { name: 'returns stdout', input: { command: 'echo hello' }, expect: /^hello\n$/, isError: false },
    { name: 'includes stderr after stdout', input: { command: 'echo out; echo err >&2' }, expect: /^out\nerr\n$/, isError: false },
    { name: 'says "(no output)" when there is none', input: { command: 'true' }, expect: /^\(no output\)$/, isError: false },
    {
      name: 'a non-zero exit is an error with its code',
      input: { command: 'echo partial; exit 3' },
      expect: /^partial\n\n\[exit code 3\]$/,
      isError: true,
    },
    {
      name: 'the timeout input stops a long command',
      input: { command: 'sleep 5; echo finished', timeout: 1000 },
      expect: /\[command timed out after 1000 ms\]$/,
      reject: /finished/,
      isError: true,
    },
    {
      // maxTimeoutMs lowered for this row only, so the capped timeout fires quickly.
      name: 'a timeout above the maximum is capped to it',
      input: { command: 'sleep 30; echo finished', timeout: 600000 },
      limits: { ...LIMITS, maxTimeoutMs: 2000 },
      expect: /\[command timed out after 2000 ms\]$/,
      reject: /finished/,
      isError: true,
    },
    {
      name: 'output over the limit is cut with a marker',
      input: { command: "head -c 5000 /dev/zero | tr '\\0' a" },
      expect: /^a{2000}\n\[output truncated: 5000 bytes in all, first 2000 shown\]$/,
      isError: false,
    },
    {
      name: 'stdout and stderr share the limit',
      input: { command: "head -c 1500 /dev/zero | tr '\\0' o; head -c 1500 /dev/zero | tr '\\0' e >&2" },
      // 2,000 bytes shown in all, stdout's first. How they split depends on which pipe the engine reads first.
      expect: /^(?=[oe\n]{2001}\n\[)o+\ne+\n\[output truncated: 3000 bytes in all, first 2000 shown\]$/,
      isError: false,
    },
    {
      name: 'unicode output survives',
      input: { command: "printf 'héllo wörld — 日本語 🎉\\n'" },
      expect: /^héllo wörld — 日本語 🎉\n$/,
      isError: false,
    },
    { name: 'an empty command is refused', input: { command: '   ' }, expect: /"command" must be a non-empty string/, isError: true },
    { name: 'a missing command is refused', input: {}, expect: /"command" must be a non-empty string/, isError: true },
    { name: 'a non-string command is refused', input: { command: 42 }, expect: /"command" must be a non-empty string/, isError: true },
    { name: 'an array command is refused', input: { command: ['ls'] }, expect: /"command" must be a non-empty string/, isError: true },
    {
      name: 'a non-positive timeout is refused',
      input: { command: 'echo never', timeout: -5 },
      expect: /"timeout" must be a positive number/,
      isError: true,
    },
    {
      name: 'a string timeout is refused',
      input: { command: 'echo never', timeout: '1000' },
      expect: /"timeout" must be a positive number/,
      isError: true,
    },
    {
      name: 'a NUL byte in the command is a clean error',
      input: { command: 'echo a\0b' },
      expect: /invalid argument/,
      isError: true,
    },
  ];

  test.each(cases)('$name', async (c) => {
    check(await run('Bash', c.input, c.limits), c);
  });

  test('the abort signal stops the command and everything it started', async () => {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 500);
    try {
      const r = await run('Bash', { command: 'sleep 39 & sleep 37; echo no' }, LIMITS, ac.signal);
      check(r, { expect: /Interrupted/, reject: /no/, isError: true });
    } finally {
      clearTimeout(timer);
    }
    // Neither the foreground command nor its background child is left (pgrep finds nothing: exit 1).
    check(await run('Bash', { command: "pgrep -f '^sleep 3[79]$'" }), { expect: /^\s*\[exit code 1\]$/, isError: true });
  });

  test('an already aborted signal does not start the command', async () => {
    const ac = new AbortController();
    ac.abort();
    const r = await run('Bash', { command: 'touch aborted-marker' }, LIMITS, ac.signal);
    check(r, { expect: /Interrupted/, isError: true });
    check(await run('Bash', { command: 'ls aborted-marker' }), { expect: /No such file/, isError: true });
  });

  test('a background child holding the output pipe does not block the call', async () => {
    // Were the call to wait for the pipe to close, it would take an hour and this test would time out.
    const r = await run('Bash', { command: 'sleep 3600 & echo started' });
    check(r, { expect: /^started\n$/, isError: false });
    // The child is still running (this also shows the pgrep check above can see a live process).
    check(await run('Bash', { command: "pgrep -f '^sleep 3600$'" }), { expect: /^\d+\n$/, isError: false });
    await sh("pkill -f '^sleep 3600$'; true");
  }, 90000);
});

describe('Write', () => {
  const cases: Case[] = [
    {
      name: 'a relative path lands under /workspace',
      input: { file_path: 'w/rel.txt', content: 'one\ntwo\n' },
      expect: /^Created \/workspace\/w\/rel\.txt \(8 bytes\)$/,
      isError: false,
    },
    {
      name: 'missing parent directories are created',
      input: { file_path: '/workspace/w/a/b/c/deep.txt', content: 'deep' },
      expect: /^Created \/workspace\/w\/a\/b\/c\/deep\.txt \(4 bytes\)$/,
      isError: false,
    },
    {
      name: 'the size is counted in UTF-8 bytes',
      input: { file_path: 'w/unicode.txt', content: 'é日🎉' },
      expect: /^Created \/workspace\/w\/unicode\.txt \(9 bytes\)$/,
      isError: false,
    },
    {
      name: 'outside the writable mounts is refused (/etc)',
      input: { file_path: '/etc/x', content: 'x' },
      expect: /read-only file system|permission denied/i,
      isError: true,
    },
    {
      name: 'outside the writable mounts is refused (/usr/bin)',
      input: { file_path: '/usr/bin/x', content: 'x' },
      expect: /read-only file system|permission denied/i,
      isError: true,
    },
    {
      name: '".." cannot climb out of the workspace into a writable place',
      input: { file_path: '../etc/evil', content: 'x' },
      expect: /read-only file system|permission denied/i,
      isError: true,
    },
    { name: 'a directory is not overwritten', input: { file_path: '/workspace', content: 'x' }, expect: /is a directory/, isError: true },
    { name: 'content is required', input: { file_path: 'w/none.txt' }, expect: /missing required field 'content'/, isError: true },
    {
      name: 'content must be a string',
      input: { file_path: 'w/num.txt', content: 12 },
      expect: /field 'content' must be a string, got an integer/,
      isError: true,
    },
  ];

  test.each(cases)('$name', async (c) => {
    check(await run('Write', c.input), c);
    if (!c.isError) {
      // The bytes on disk are exactly the content written.
      const back = await run('Bash', { command: `base64 -w0 -- '${String(c.input.file_path)}'` });
      expect(Buffer.from(back.content, 'base64').toString('utf8')).toBe(c.input.content);
    }
  });
});

describe('Read', () => {
  beforeAll(async () => {
    await write('r/five.txt', 'a\nb\nc\nd\ne\n');
    await write('r/empty.txt', '');
    await sh("mkdir -p r/sub && printf 'PNG\\0\\1\\2' > r/blob.bin");
  });

  const cases: Case[] = [
    {
      name: 'numbers lines (6 wide, then a tab)',
      input: { file_path: 'r/five.txt' },
      expect: /^ {5}1\ta\n {5}2\tb\n {5}3\tc\n {5}4\td\n {5}5\te$/,
      isError: false,
    },
    {
      name: 'an absolute path reads the same file',
      input: { file_path: '/workspace/r/five.txt' },
      expect: /^ {5}1\ta\n[\s\S]* {5}5\te$/,
      isError: false,
    },
    {
      name: 'offset and limit select lines and say what is left',
      input: { file_path: 'r/five.txt', offset: 2, limit: 2 },
      expect: /^ {5}2\tb\n {5}3\tc\n\[showing lines 2-3 of 5; use offset\/limit to read more\]$/,
      isError: false,
    },
    {
      name: 'an offset past the end says so',
      input: { file_path: 'r/five.txt', offset: 9 },
      expect: /has 5 lines; offset 9 is past its end/,
      isError: false,
    },
    { name: 'an empty file says so', input: { file_path: 'r/empty.txt' }, expect: /exists but is empty/, isError: false },
    {
      name: 'a missing file is an error naming the path',
      input: { file_path: 'r/missing.txt' },
      expect: /File does not exist: \/workspace\/r\/missing\.txt/,
      isError: true,
    },
    { name: 'a directory is an error', input: { file_path: 'r/sub' }, expect: /\/workspace\/r\/sub is a directory/, isError: true },
    { name: 'a binary file is an error', input: { file_path: 'r/blob.bin' }, expect: /\/workspace\/r\/blob\.bin is a binary file/, isError: true },
    {
      name: 'a non-integer offset is refused',
      input: { file_path: 'r/five.txt', offset: 'x' },
      expect: /field 'offset' must be an integer, got a string/,
      isError: true,
    },
    { name: 'a zero limit is refused', input: { file_path: 'r/five.txt', limit: 0 }, expect: /field 'limit' must be >= 1/, isError: true },
  ];

  test.each(cases)('$name', async (c) => {
    check(await run('Read', c.input), c);
  });
});

describe('Edit', () => {
  interface EditCase extends Case {
    /** The file's content before the edit; null: no file. */
    before: string | null;
    /** The file's content after the edit (unchanged when the edit fails). */
    after: string | null;
  }
  const cases: EditCase[] = [
    {
      name: 'replaces a unique string',
      before: 'hello world\n',
      input: { old_string: 'world', new_string: 'there' },
      expect: /^Edited \/workspace\/e\/\d+\.txt: 1 replacement$/,
      isError: false,
      after: 'hello there\n',
    },
    {
      name: 'old_string not found is an error',
      before: 'hello world\n',
      input: { old_string: 'absent', new_string: 'x' },
      expect: /old_string was not found in \/workspace\/e\/\d+\.txt/,
      isError: true,
      after: 'hello world\n',
    },
    {
      name: 'several matches without replace_all is an error saying how many',
      before: 'x=1\nx=1\nx=1\n',
      input: { old_string: 'x=1', new_string: 'x=2' },
      expect: /old_string occurs 3 times/,
      isError: true,
      after: 'x=1\nx=1\nx=1\n',
    },
    {
      name: 'replace_all replaces every match and reports the count',
      before: 'x=1\nx=1\nx=1\n',
      input: { old_string: 'x=1', new_string: 'x=2', replace_all: true },
      expect: /^Edited \/workspace\/e\/\d+\.txt: 3 replacements$/,
      isError: false,
      after: 'x=2\nx=2\nx=2\n',
    },
    {
      name: 'old_string equal to new_string is an error',
      before: 'same\n',
      input: { old_string: 'same', new_string: 'same' },
      expect: /identical/,
      isError: true,
      after: 'same\n',
    },
    {
      name: 'a missing file is an error',
      before: null,
      input: { old_string: 'a', new_string: 'b' },
      expect: /File does not exist: \/workspace\/e\/\d+\.txt/,
      isError: true,
      after: null,
    },
  ];

  test.each(cases.map((c, i) => ({ ...c, file: `e/${i}.txt` })))('$name', async (c) => {
    if (c.before !== null) await write(c.file, c.before);
    check(await run('Edit', { file_path: c.file, ...c.input }), c);
    const after = await run('Bash', { command: `base64 -w0 ${c.file}` });
    if (c.after === null) expect(after.isError).toBe(true);
    else expect(Buffer.from(after.content, 'base64').toString('utf8')).toBe(c.after);
  });
});

describe('Glob', () => {
  beforeAll(async () => {
    await sh(
      'mkdir -p g/x/y && cd g && echo > old.txt && echo > x/mid.txt && echo > x/y/new.txt && echo > x/skip.md && ' +
        "touch -d '2020-01-01' old.txt && touch -d '2022-01-01' x/y/new.txt && touch -d '2021-01-01' x/mid.txt",
    );
  });

  const newestFirst = /^\/workspace\/g\/x\/y\/new\.txt\n\/workspace\/g\/x\/mid\.txt\n\/workspace\/g\/old\.txt$/;
  const cases: Case[] = [
    { name: '**/*.txt finds nested files, newest first', input: { pattern: '**/*.txt', path: 'g' }, expect: newestFirst, isError: false },
    { name: 'a literal prefix in the pattern works without path', input: { pattern: 'g/**/*.txt' }, expect: newestFirst, isError: false },
    { name: '*.txt does not descend', input: { pattern: '*.txt', path: 'g' }, expect: /^\/workspace\/g\/old\.txt$/, isError: false },
    { name: 'no match says "No files found"', input: { pattern: '**/*.nothing', path: 'g' }, expect: /^No files found$/, isError: false },
    { name: 'a missing directory is an error', input: { pattern: '*', path: 'g/none' }, expect: /Directory does not exist: \/workspace\/g\/none/, isError: true },
  ];

  test.each(cases)('$name', async (c) => {
    check(await run('Glob', c.input), c);
  });
});

describe('Grep', () => {
  beforeAll(async () => {
    await write('gr/a.py', 'import os\nprint("Hello world")\n');
    await write('gr/b.txt', 'hello there\nnothing\nHELLO again\n');
    await write('gr/c.py', 'pass\n');
    await sh("cd gr && touch -d '2020-01-01' a.py && touch -d '2021-01-01' b.txt");
  });

  const cases: Case[] = [
    { name: 'lists matching files by default', input: { pattern: 'Hello', path: 'gr' }, expect: /^\/workspace\/gr\/a\.py$/, isError: false },
    { name: 'is case-sensitive by default', input: { pattern: 'hello', path: 'gr' }, expect: /^\/workspace\/gr\/b\.txt$/, isError: false },
    {
      name: '-i ignores case (files newest first)',
      input: { pattern: 'hello', path: 'gr', '-i': true },
      expect: /^\/workspace\/gr\/b\.txt\n\/workspace\/gr\/a\.py$/,
      isError: false,
    },
    {
      name: 'content mode shows matching lines with numbers',
      input: { pattern: 'Hello|HELLO', path: 'gr', output_mode: 'content' },
      expect: /^\/workspace\/gr\/a\.py:2:print\("Hello world"\)\n\/workspace\/gr\/b\.txt:3:HELLO again$/,
      isError: false,
    },
    {
      name: 'count mode counts matching lines per file',
      input: { pattern: 'hello', path: 'gr', '-i': true, output_mode: 'count' },
      expect: /^\/workspace\/gr\/a\.py:1\n\/workspace\/gr\/b\.txt:2$/,
      isError: false,
    },
    {
      name: 'glob filters the files searched',
      input: { pattern: 'hello', path: 'gr', '-i': true, glob: '*.py' },
      expect: /^\/workspace\/gr\/a\.py$/,
      isError: false,
    },
    { name: 'no match in content mode says so', input: { pattern: 'zebra', path: 'gr', output_mode: 'content' }, expect: /^No matches found$/, isError: false },
    { name: 'an invalid regex is an error naming it', input: { pattern: '(unclosed', path: 'gr' }, expect: /invalid regex '\(unclosed'/, isError: true },
    { name: 'an unknown output_mode is an error', input: { pattern: 'x', output_mode: 'lines' }, expect: /output_mode/, isError: true },
  ];

  test.each(cases)('$name', async (c) => {
    check(await run('Grep', c.input), c);
  });
});

describe('unknown tools', () => {
  test.each(['Frobnicate', 'bash', 'AskUserQuestion'])('%s is an error', async (name) => {
    check(await run(name, { command: 'echo hi' }), { expect: new RegExp(`^Unknown tool: ${name}$`), isError: true });
  });
});

describe('hostile inputs', () => {
  const cases: Case[] = [
    {
      name: '"../../etc/passwd" from /workspace reads /etc/passwd',
      tool: 'Read',
      input: { file_path: '../../etc/passwd' },
      expect: /^ {5}1\troot:x:0:0:/,
      isError: false,
    },
    ...['Read', 'Write', 'Edit'].map((tool) => ({
      name: `a NUL byte in a ${tool} path is a clean error`,
      tool,
      input: { file_path: 'r/a\0b.txt', content: 'x', old_string: 'a', new_string: 'b' },
      expect: /must not contain NUL/,
      isError: true,
    })),
    ...['Glob', 'Grep'].map((tool) => ({
      name: `a NUL byte in a ${tool} path is a clean error`,
      tool,
      input: { pattern: 'x', path: 'g\0' },
      expect: /must not contain NUL/,
      isError: true,
    })),
    {
      name: 'a non-string path is refused',
      tool: 'Read',
      input: { file_path: 42 },
      expect: /field 'file_path' must be a string, got an integer/,
      isError: true,
    },
  ];

  test.each(cases)('$name', async (c) => {
    check(await run(c.tool!, c.input), c);
  });

  test('a 1 MB Write works and its Read is cut with a marker', async () => {
    const content = ('x'.repeat(1023) + '\n').repeat(1024);
    check(await run('Write', { file_path: 'big/1mb.txt', content }), { expect: /^Created \/workspace\/big\/1mb\.txt \(1048576 bytes\)$/, isError: false });
    expect(await sh('wc -c < big/1mb.txt')).toBe('1048576\n');
    const r = await run('Read', { file_path: 'big/1mb.txt' });
    check(r, { expect: /^ {5}1\tx{1023}\n {5}2\tx[\s\S]*\n\[output truncated: \d+ of \d+ bytes shown\]$/, isError: false });
    expect(Buffer.byteLength(r.content)).toBeLessThanOrEqual(LIMITS.outputLimitBytes + 100);
  });

  test('a Read of control characters fits the answer even at the default output limit', async () => {
    // JSON escapes each of these bytes as six (\u0001); the answer must still come back whole.
    await write('ctl/controls.txt', ('\x01'.repeat(1000) + '\n').repeat(100));
    const r = await run('Read', { file_path: 'ctl/controls.txt' }, { ...LIMITS, outputLimitBytes: 30000 });
    check(r, { expect: /^ {5}1\t\x01{1000}\n[\s\S]*\[output truncated: \d+ of \d+ bytes shown\]$/, isError: false });
  });
});
