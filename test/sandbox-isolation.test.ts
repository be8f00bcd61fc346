import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { startHarness, sessionContainers, TEST_KEY, type Harness } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';
import { DockerSandboxes, LABEL_MANAGED, LABEL_SESSION } from '../activities/docker-sandbox';
import { getSession } from '../store/sessions';

/**
 * What a session's sandbox can and cannot do, seen from inside (tool results of
 * real Bash/Read calls) and from the Docker engine (the container's settings).
 */

const LIMITS = { SANDBOX_CPUS: '0.5', SANDBOX_MEMORY_MB: '384', SANDBOX_PIDS_LIMIT: '96' };

interface ToolResult {
  content: string;
  is_error: boolean;
}

async function sessionVolumes(docker: Docker, sessionId: string) {
  const { Volumes } = await docker.listVolumes({ filters: { label: [`${LABEL_SESSION}=${sessionId}`] } });
  return Volumes ?? [];
}

/** Runs a command as root in a container straight through Docker (the engine never does this). */
async function execAsRoot(docker: Docker, containerId: string, cmd: string[]): Promise<{ exitCode: number; output: string }> {
  const exec = await docker.getContainer(containerId).exec({ Cmd: cmd, User: '0:0', AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  const sink = new PassThrough().on('data', (c: Buffer) => chunks.push(c));
  docker.modem.demuxStream(stream, sink, sink);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  const { ExitCode } = await exec.inspect();
  return { exitCode: ExitCode ?? -1, output: Buffer.concat(chunks).toString('utf8') };
}

describe('the session sandbox', () => {
  let h: Harness;
  const savedKey = process.env.ANTHROPIC_API_KEY;

  beforeAll(async () => {
    // If the engine leaked its own environment into the sandbox, this key would show up there.
    process.env.ANTHROPIC_API_KEY = TEST_KEY;
    h = await startHarness({ env: LIMITS });
  });
  afterAll(async () => {
    await h?.close();
    if (savedKey === undefined) delete process.env.ANTHROPIC_API_KEY;
    else process.env.ANTHROPIC_API_KEY = savedKey;
  });

  /** Starts an interactive session and waits until its sandbox runs. */
  async function startIdleSession(profile: Record<string, unknown> = {}): Promise<{ sessionId: string; containerId: string }> {
    const sessionId = await h.startSession({ profile: { permission_mode: 'bypassPermissions', ...profile } });
    await h.waitForEvent(sessionId, (e) => e.type === 'session_status' && e.payload.status === 'running');
    const row = await getSession(h.db, sessionId);
    return { sessionId, containerId: row!.container_id! };
  }

  /**
   * Sends one prompt whose model replies call the given tools one per turn,
   * then finish; returns each call's tool_result in order.
   */
  async function runTools(sessionId: string, calls: Array<{ name: string; input: unknown }>): Promise<ToolResult[]> {
    h.fake.reset();
    const ids = calls.map(() => `toolu_${randomUUID().replace(/-/g, '').slice(0, 20)}`);
    h.fake.enqueue(...calls.map((c, i) => toolUse(c.name, c.input, { id: ids[i] })), text('checked'));
    const before = (await h.events(sessionId)).at(-1)?.seq ?? 0;
    await h.service.prompt(sessionId, 'run the checks');
    const result = await h.waitForEvent(sessionId, (e) => e.type === 'result' && e.seq > before, 90_000);
    expect(result.payload).toMatchObject({ success: true, summary: 'checked' });
    const events = await h.events(sessionId);
    return ids.map((id) => {
      const e = events.find((x) => x.type === 'tool_result' && x.payload.tool_use_id === id);
      if (!e) throw new Error(`no tool_result for ${id}`);
      return { content: String(e.payload.content), is_error: e.payload.is_error === true };
    });
  }
  const bash = (...commands: string[]) => commands.map((command) => ({ name: 'Bash', input: { command } }));

  describe('of a session without network access', () => {
    let sessionId: string;
    let containerId: string;
    beforeAll(async () => {
      ({ sessionId, containerId } = await startIdleSession({ environment: { SHARED_VALUE: 'visible-123' } }));
    }, 120_000);

    it('has no network: no name resolution, no route out, only a loopback interface', async () => {
      const [dns, curl, ifaces, operstate] = await runTools(
        sessionId,
        bash(
          'getent hosts example.com',
          'curl -sS -m 3 http://1.1.1.1',
          'ls /sys/class/net',
          'for i in /sys/class/net/*; do echo "$(basename $i)=$(cat $i/operstate)"; done',
        ),
      );
      expect(dns.is_error).toBe(true);
      expect(dns.content).toMatch(/\[exit code [1-9]\d*\]/);
      expect(dns.content).not.toMatch(/\d+\.\d+\.\d+\.\d+/);
      expect(curl.is_error).toBe(true);
      expect(curl.content).toMatch(/curl: \(\d+\)/);
      expect(ifaces).toEqual({ content: 'lo\n', is_error: false });
      expect(operstate.content.trim().split('\n')).toEqual([expect.stringMatching(/^lo=/)]);
    });

    it('cannot write outside /workspace, /tmp and /opt/venv', async () => {
      const [etc, usr, root, writable] = await runTools(
        sessionId,
        bash(
          'touch /etc/x',
          'touch /usr/x',
          'touch /x',
          'set -e; touch /workspace/w /tmp/t /opt/venv/v; echo data > /workspace/sub.txt; cat /workspace/sub.txt; ' +
            'mkdir -p /tmp/d /opt/venv/lib/extra; echo writable-ok',
        ),
      );
      for (const r of [etc, usr, root]) {
        expect(r.is_error).toBe(true);
        expect(r.content).toMatch(/Read-only file system/);
      }
      expect(writable).toEqual({ content: 'data\nwritable-ok\n', is_error: false });
    });

    it('is read-only at the root even for root inside the container', async () => {
      const r = await execAsRoot(h.docker, containerId, ['touch', '/etc/x']);
      expect(r.exitCode).not.toBe(0);
      expect(r.output).toMatch(/Read-only file system/);
    });

    it('runs tools as an unprivileged user with no capabilities and no way to gain any', async () => {
      const [uid, sudo, status, setuid] = await runTools(
        sessionId,
        bash(
          'id -u; id -g',
          'command -v sudo || echo no-sudo',
          "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status",
          // Even a setuid binary (su) grants nothing under no-new-privileges and an empty bounding set.
          'su -c id root </dev/null 2>&1; echo "su exit $?"',
        ),
      );
      expect(uid).toEqual({ content: '1000\n1000\n', is_error: false });
      expect(sudo.content).toBe('no-sudo\n');
      const fields = Object.fromEntries(status.content.trim().split('\n').map((l) => l.split(/:\s+/)));
      expect(fields).toEqual({
        CapInh: '0000000000000000',
        CapPrm: '0000000000000000',
        CapEff: '0000000000000000',
        CapBnd: '0000000000000000',
        CapAmb: '0000000000000000',
        NoNewPrivs: '1',
      });
      expect(setuid.content).not.toMatch(/uid=0/);
      expect(setuid.content).toMatch(/su exit [1-9]/);
    });

    it('sees only the environment the profile passes: no model key, no platform variables', async () => {
      const [shared, env] = await runTools(sessionId, bash('echo "$SHARED_VALUE"', 'env'));
      expect(shared).toEqual({ content: 'visible-123\n', is_error: false });
      expect(env.is_error).toBe(false);
      expect(env.content).toContain('SHARED_VALUE=visible-123');
      expect(env.content).not.toContain('sk-ant-');
      expect(env.content).not.toMatch(/^ANTHROPIC_/m);
      const names = env.content.trim().split('\n').map((l) => l.split('=')[0]);
      // The image's own variables, what bash and Docker add, and the profile's one value.
      const expected = new Set([
        'HOME', 'VIRTUAL_ENV', 'PATH', 'LANG', 'PYTHONUNBUFFERED', 'PIP_DISABLE_PIP_VERSION_CHECK', 'XDG_CACHE_HOME',
        'HOSTNAME', 'PWD', 'SHLVL', '_', 'OLDPWD', 'SHARED_VALUE',
      ]);
      expect(names.filter((n) => !expected.has(n))).toEqual([]);
      expect(names).not.toContain('DATABASE_URL');
      expect(names).not.toContain('TEMPORAL_ADDRESS');
    });

    it('has no Docker socket inside', async () => {
      const [sock] = await runTools(
        sessionId,
        bash('for p in /var/run/docker.sock /run/docker.sock; do test -e $p && echo "found $p"; done; echo searched'),
      );
      expect(sock).toEqual({ content: 'searched\n', is_error: false });
    });

    it('is a container with a read-only root, no capabilities, the configured limits and the session label', async () => {
      const info = await h.docker.getContainer(containerId).inspect();
      const hc = info.HostConfig;
      expect(info.State.Running).toBe(true);
      expect(info.Name).toBe(`/ais-${sessionId}`);
      expect(hc.ReadonlyRootfs).toBe(true);
      expect(hc.CapDrop).toEqual(['ALL']);
      expect(hc.CapAdd ?? []).toEqual([]);
      expect(hc.Privileged).toBe(false);
      expect(hc.SecurityOpt).toContain('no-new-privileges');
      expect(hc.PidsLimit).toBe(Number(LIMITS.SANDBOX_PIDS_LIMIT));
      expect(hc.Memory).toBe(Number(LIMITS.SANDBOX_MEMORY_MB) * 1024 * 1024);
      expect(hc.MemorySwap).toBe(Number(LIMITS.SANDBOX_MEMORY_MB) * 1024 * 1024);
      expect(hc.NanoCpus).toBe(Number(LIMITS.SANDBOX_CPUS) * 1e9);
      expect(hc.NetworkMode).toBe('none');
      // Networking is disabled outright: attached to no network but "none".
      expect(Object.keys(info.NetworkSettings.Networks ?? {}).filter((n) => n !== 'none')).toEqual([]);
      expect(info.Config.User).toBe('1000:1000');
      expect(info.Config.Labels).toMatchObject({ [LABEL_SESSION]: sessionId, [LABEL_MANAGED]: 'true' });
      expect(info.Config.Env).toContain('SHARED_VALUE=visible-123');
      expect(info.Config.Env.join('\n')).not.toContain('sk-ant-');
      // Only the two session volumes and the /tmp tmpfs: no bind mount, no Docker socket.
      expect(hc.Binds ?? []).toEqual([]);
      expect(info.Mounts.map((m) => [m.Type, m.Destination]).sort()).toEqual([
        ['volume', '/opt/venv'],
        ['volume', '/workspace'],
      ]);
      expect(info.Mounts.some((m) => String(m.Source).includes('docker.sock'))).toBe(false);
      expect(Object.keys(hc.Tmpfs ?? {})).toEqual(['/tmp']);
      expect(await sessionContainers(h.docker, sessionId)).toHaveLength(1);
    });
  });

  it('with network_access: true gets a bridge interface', async () => {
    const { sessionId, containerId } = await startIdleSession({ network_access: true });
    const [ifaces] = await runTools(sessionId, bash('ls /sys/class/net'));
    expect(ifaces.is_error).toBe(false);
    expect(ifaces.content.trim().split('\n').sort()).toEqual(['eth0', 'lo']);
    const info = await h.docker.getContainer(containerId).inspect();
    expect(info.HostConfig.NetworkMode).toBe('bridge');
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    await h.service.terminate(sessionId, 'user_requested');
    expect((await h.waitForEnd(sessionId)).endReason).toBe('user_requested');
  });

  it('answers bad tool input with clear error results and keeps going', async () => {
    const { sessionId } = await startIdleSession();
    const [shadow, passwd, empty, blank, missing, huge, after] = await runTools(sessionId, [
      { name: 'Read', input: { file_path: '/etc/shadow' } },
      { name: 'Read', input: { file_path: '../../etc/passwd' } },
      { name: 'Bash', input: { command: '' } },
      { name: 'Bash', input: { command: '   ' } },
      { name: 'Read', input: { file_path: '/workspace/does-not-exist.txt' } },
      { name: 'Bash', input: { command: 'yes | head -c 200000' } },
      { name: 'Bash', input: { command: 'echo still-here' } },
    ]);
    expect(shadow.is_error).toBe(true);
    expect(shadow.content).toMatch(/Permission denied: \/etc\/shadow/);
    // A sandbox path any unprivileged user may read: a normal result.
    expect(passwd.is_error).toBe(false);
    expect(passwd.content).toMatch(/^\s+1\troot:x:0:0:/);
    expect(passwd.content).toContain('claude:x:1000:1000');
    for (const r of [empty, blank]) {
      expect(r.is_error).toBe(true);
      expect(r.content).toMatch(/command.*non-empty/);
    }
    expect(missing).toEqual({ content: 'File does not exist: /workspace/does-not-exist.txt', is_error: true });
    // Cut at the output limit with a marker that says so.
    const limit = h.config.tools.outputLimitBytes;
    expect(huge.is_error).toBe(false);
    expect(huge.content.startsWith('y\ny\ny\n')).toBe(true);
    expect(huge.content).toContain(`[output truncated: 200000 bytes in all, first ${limit} shown]`);
    expect(Buffer.byteLength(huge.content)).toBeLessThan(limit + 200);
    expect(after).toEqual({ content: 'still-here\n', is_error: false });
    // The model got the cut result, not 200 kB.
    const sizes = h.fake.requests.map((r) => JSON.stringify(r.body.messages).length);
    expect(Math.max(...sizes)).toBeLessThan(3 * limit);

    // The session still takes prompts afterwards.
    const [again] = await runTools(sessionId, bash('echo next-prompt'));
    expect(again).toEqual({ content: 'next-prompt\n', is_error: false });
    await h.service.terminate(sessionId, 'user_requested');
    expect((await h.waitForEnd(sessionId)).endReason).toBe('user_requested');
  });

  it('ends with heartbeat_stale when the sandbox vanishes, and its volumes are removed', async () => {
    const { sessionId, containerId } = await startIdleSession();
    expect(await sessionVolumes(h.docker, sessionId)).toHaveLength(2);
    await h.docker.getContainer(containerId).remove({ force: true });

    const outcome = await h.waitForEnd(sessionId);
    expect(outcome.endReason).toBe('heartbeat_stale');
    const events = await h.events(sessionId);
    expect(events.at(-1)).toMatchObject({ type: 'session_end', payload: { reason: 'heartbeat_stale', exit_code: 1 } });
    expect(events.find((e) => e.type === 'session_error')?.payload.error).toMatch(/sandbox/);
    expect(await getSession(h.db, sessionId)).toMatchObject({ status: 'ended', end_reason: 'heartbeat_stale', exit_code: 1 });
    expect(await sessionContainers(h.docker, sessionId)).toHaveLength(0);
    expect(await sessionVolumes(h.docker, sessionId)).toHaveLength(0);
  });

  describe('DockerSandboxes directly', () => {
    const sessionId = `direct-${randomUUID().slice(0, 8)}`;
    let sandboxes: DockerSandboxes;
    let containerId: string;
    const spec = () => ({
      sessionId,
      image: h.config.runnerImage,
      env: { ONLY_THIS: 'yes' },
      network: false,
      cpus: 0.25,
      memoryMb: 128,
      pidsLimit: 32,
    });
    beforeAll(async () => {
      sandboxes = new DockerSandboxes(h.docker);
      ({ containerId } = await sandboxes.provision(spec()));
    }, 120_000);
    afterAll(async () => {
      await sandboxes?.destroy(sessionId);
    });

    it('provisions idempotently and applies the spec', async () => {
      const again = await sandboxes.provision(spec());
      expect(again.containerId).toBe(containerId);
      const hc = (await h.docker.getContainer(containerId).inspect()).HostConfig;
      expect(hc).toMatchObject({ PidsLimit: 32, Memory: 128 * 1024 * 1024, NanoCpus: 0.25e9, NetworkMode: 'none', ReadonlyRootfs: true });
      expect(await sandboxes.isRunning(containerId)).toBe(true);
    });

    it('keeps stdout and stderr apart and reports the exit code', async () => {
      const r = await sandboxes.exec(containerId, ['bash', '-c', 'echo out; echo err >&2; echo $ONLY_THIS; exit 3'], { maxOutputBytes: 1000 });
      expect(r).toEqual({ exitCode: 3, stdout: 'out\nyes\n', stderr: 'err\n', totalBytes: 12, truncated: false });
    });

    it('caps output across both streams and counts what it dropped', async () => {
      const r = await sandboxes.exec(containerId, ['bash', '-c', 'head -c 50000 /dev/zero | tr "\\0" a; head -c 50000 /dev/zero | tr "\\0" b >&2'], {
        maxOutputBytes: 4096,
      });
      expect(r.exitCode).toBe(0);
      expect(r.truncated).toBe(true);
      expect(r.totalBytes).toBe(100_000);
      expect(Buffer.byteLength(r.stdout) + Buffer.byteLength(r.stderr)).toBe(4096);
    });

    it('passes stdin through', async () => {
      const r = await sandboxes.exec(containerId, ['wc', '-c'], { stdin: 'x'.repeat(70_000), maxOutputBytes: 100 });
      expect(r.stdout.trim()).toBe('70000');
    });

    it('destroys the container and its volumes, and is safe to call again', async () => {
      const other = `direct-${randomUUID().slice(0, 8)}`;
      const { containerId: id } = await sandboxes.provision({ ...spec(), sessionId: other });
      expect(await sessionVolumes(h.docker, other)).toHaveLength(2);
      expect(await sandboxes.destroy(other)).toEqual({ removed: true });
      expect(await sandboxes.isRunning(id)).toBe(false);
      expect(await sessionVolumes(h.docker, other)).toHaveLength(0);
      expect(await sandboxes.destroy(other)).toEqual({ removed: false });
      await expect(sandboxes.exec(id, ['true'], { maxOutputBytes: 10 })).rejects.toThrow(/is gone/);
    });
  });
});
