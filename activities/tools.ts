import { randomUUID } from 'node:crypto';
import type { DockerSandboxes } from './docker-sandbox';
import { SANDBOX_FILE_TOOLS } from '../lib/tool-specs';

export interface ToolOutcome {
  content: string;
  isError: boolean;
}

export interface ToolLimits {
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  outputLimitBytes: number;
}

const TOOLBOX = '/opt/ai-sessions/toolbox.py';

/** Runs one built-in tool inside the session's sandbox. Tool failures are outcomes, not exceptions. */
export async function runSandboxTool(
  sandboxes: DockerSandboxes,
  containerId: string,
  name: string,
  input: Record<string, unknown>,
  limits: ToolLimits,
  signal?: AbortSignal,
): Promise<ToolOutcome> {
  // 'abort' listeners added to an already aborted signal never run: do not start at all.
  if (signal?.aborted) return { content: 'Interrupted by the user.', isError: true };
  if (name === 'Bash') return runBash(sandboxes, containerId, input, limits, signal);
  if ((SANDBOX_FILE_TOOLS as readonly string[]).includes(name)) {
    return runToolbox(sandboxes, containerId, name, input, limits, signal);
  }
  return { content: `Unknown tool: ${name}`, isError: true };
}

async function runBash(
  sandboxes: DockerSandboxes,
  containerId: string,
  input: Record<string, unknown>,
  limits: ToolLimits,
  signal?: AbortSignal,
): Promise<ToolOutcome> {
  if (typeof input.command !== 'string' || input.command.trim() === '') {
    return { content: 'Bash: "command" must be a non-empty string', isError: true };
  }
  if (input.timeout !== undefined && (typeof input.timeout !== 'number' || !(input.timeout > 0))) {
    return { content: 'Bash: "timeout" must be a positive number of milliseconds', isError: true };
  }
  const timeoutMs = Math.min((input.timeout as number | undefined) ?? limits.defaultTimeoutMs, limits.maxTimeoutMs);
  const execId = randomUUID();
  // `timeout` leads its own process group, so one kill reaches every child the command started.
  const script =
    'mkdir -p /tmp/.ais-exec && echo $$ > /tmp/.ais-exec/"$1" && ' +
    'exec timeout -k 2 "$2" bash -c "$3"';
  const argv = ['bash', '-c', script, 'ais-exec', execId, `${Math.ceil(timeoutMs / 1000)}s`, input.command];
  const abort = new AbortController();
  let killed: Promise<void> | undefined;
  const onAbort = () => {
    abort.abort();
    killed = killExec(sandboxes, containerId, execId);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const r = await sandboxes.exec(containerId, argv, {
      maxOutputBytes: limits.outputLimitBytes,
      signal: abort.signal,
    });
    if (signal?.aborted) return { content: 'Interrupted by the user.', isError: true };
    let content = r.stdout;
    if (r.stderr) content += (content && !content.endsWith('\n') ? '\n' : '') + r.stderr;
    if (r.truncated) content += `\n[output truncated: ${r.totalBytes} bytes in all, first ${limits.outputLimitBytes} shown]`;
    if (r.exitCode === 124) content += `\n[command timed out after ${timeoutMs} ms]`;
    else if (r.exitCode !== 0) content += `\n[exit code ${r.exitCode}]`;
    return { content: content.trim() === '' ? '(no output)' : content, isError: r.exitCode !== 0 };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // The command is dead before the activity reports back (and before any cleanup that follows).
    await killed;
  }
}

async function killExec(sandboxes: DockerSandboxes, containerId: string, execId: string): Promise<void> {
  // An abort can come while the command is still starting: wait a little for its pid file, and
  // kill the pid itself if `timeout` has not made its process group yet.
  const script =
    'f=/tmp/.ais-exec/"$1"; for _ in $(seq 20); do [ -s "$f" ] && break; sleep 0.1; done; ' +
    'pid=$(cat "$f" 2>/dev/null) && { kill -KILL -- -"$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null; }; rm -f "$f"';
  await sandboxes
    .exec(containerId, ['bash', '-c', script, 'ais-kill', execId], { maxOutputBytes: 1024 })
    .catch(() => undefined);
}

async function runToolbox(
  sandboxes: DockerSandboxes,
  containerId: string,
  name: string,
  input: Record<string, unknown>,
  limits: ToolLimits,
  signal?: AbortSignal,
): Promise<ToolOutcome> {
  const request = JSON.stringify({ tool: name, input, max_output_bytes: limits.outputLimitBytes });
  const r = await sandboxes.exec(
    containerId,
    ['timeout', '-k', '2', `${Math.ceil(limits.defaultTimeoutMs / 1000)}s`, '/usr/bin/python3', '-I', TOOLBOX],
    // The toolbox answers in JSON; leave room for its own truncation marker and escaping
    // (json.dumps turns one control-character byte into six: \u0001).
    { stdin: request, maxOutputBytes: limits.outputLimitBytes * 6 + 4096, signal },
  );
  if (signal?.aborted) return { content: 'Interrupted by the user.', isError: true };
  try {
    const parsed = JSON.parse(r.stdout) as { ok: boolean; content?: string; error?: string };
    return parsed.ok
      ? { content: parsed.content ?? '', isError: false }
      : { content: parsed.error ?? `${name} failed`, isError: true };
  } catch {
    const detail = r.exitCode === 124 ? 'timed out' : `exit code ${r.exitCode}: ${r.stderr.slice(0, 500)}`;
    return { content: `${name} failed inside the sandbox (${detail})`, isError: true };
  }
}
