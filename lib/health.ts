/** Readiness checks, shared by the gateway's and the worker's /readyz. */
export interface CheckResult {
  name: string;
  ok: boolean;
  ms?: number;
  error?: string;
}

const CHECK_TIMEOUT_MS = 3000;

/** Runs one dependency check with a timeout; a failure is reported, not thrown. */
export async function check(name: string, fn: () => Promise<unknown>): Promise<CheckResult> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([fn(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timed out')), CHECK_TIMEOUT_MS)))]);
    return { name, ok: true, ms: Date.now() - started };
  } catch (err) {
    return { name, ok: false, error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/** The /readyz answer: 200 when every check passed, 503 otherwise, each check by name. */
export async function readiness(checks: Array<Promise<CheckResult>>): Promise<{ status: number; body: { ready: boolean; checks: Record<string, CheckResult> } }> {
  const results = await Promise.all(checks);
  const ready = results.every((c) => c.ok);
  return { status: ready ? 200 : 503, body: { ready, checks: Object.fromEntries(results.map((c) => [c.name, c])) } };
}
