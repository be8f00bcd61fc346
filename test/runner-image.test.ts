import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { DockerSandboxes } from '../activities/docker-sandbox';
import { LABEL_RUNNER_VERSION } from '../infra/runner-image';
import { mintToken } from '../api/auth';
import { SessionService } from '../api/session-service';
import { loadConfig } from '../lib/config';
import { imageProblem } from '../lib/runner-images';
import { sessionContainers, TEST_ADMIN_TOKEN, TEST_JWT_SECRET, useHarness, type Harness } from './support/harness';
import { callApi } from './support/http';
import { text, toolUse } from './support/fake-anthropic';

/**
 * The runner image (runner/Dockerfile) and which images sessions may run on.
 * The image is the one the suite's global setup builds, run with the real
 * sandbox flags: read-only root, no network, no capabilities, user claude.
 */

const suffix = randomBytes(4).toString('hex');

describe('the runner image', () => {
  const config = loadConfig();
  const docker = new Docker();
  const sandboxes = new DockerSandboxes(docker);
  const sessionId = `runner-image-${suffix}`;
  let containerId: string;
  const exec = (argv: string[], stdin?: string) => sandboxes.exec(containerId, argv, { maxOutputBytes: 20000, stdin });

  beforeAll(async () => {
    ({ containerId } = await sandboxes.provision({
      sessionId, image: config.runnerImage, env: {}, network: false, cpus: 1, memoryMb: 512, pidsLimit: 128,
    }));
  }, 60_000);
  afterAll(async () => {
    await sandboxes.destroy(sessionId);
  }, 60_000);

  // [what, argv, what its stdout and stderr together must show]
  const TOOLS: Array<[string, string[], RegExp]> = [
    ['bash', ['bash', '--version'], /GNU bash, version 5\./],
    ['coreutils', ['ls', '--version'], /GNU coreutils/],
    ['git', ['git', '--version'], /^git version 2\./],
    ['curl', ['curl', '--version'], /^curl \d/],
    ['wget', ['wget', '--version'], /GNU Wget/],
    ['jq', ['jq', '--version'], /^jq-1\./],
    ['python3', ['python3', '--version'], /^Python 3\./],
    ['pip, the one in /opt/venv', ['pip', '--version'], /from \/opt\/venv\//],
    ['pipx', ['pipx', '--version'], /^\d+\.\d+/],
    ['tree', ['tree', '--version'], /^tree v\d/],
    ['less', ['less', '--version'], /^less \d+/],
    ['unzip', ['unzip', '-v'], /^UnZip \d/],
    ['xz', ['xz', '--version'], /XZ Utils/],
    ['file', ['file', '--version'], /^file-5\./],
    ['binutils strings', ['strings', '--version'], /GNU Binutils/],
    ['binutils objdump', ['objdump', '--version'], /GNU Binutils/],
    ['binutils readelf', ['readelf', '--version'], /GNU Binutils/],
    ['whois', ['whois', '--version'], /^Version \d/],
    ['dnsutils dig', ['dig', '-v'], /DiG 9\./],
    ['dnsutils nslookup', ['nslookup', '-version'], /nslookup 9\./],
    ['dnsutils host', ['host', '-V'], /host 9\./],
    ['yara', ['yara', '--version'], /^4\.\d/],
    ['xxd', ['xxd', '-v'], /^xxd /],
    ['groff', ['groff', '--version'], /GNU groff/],
    ['mmdblookup', ['mmdblookup', '--version'], /mmdblookup version \d/],
    ['tini', ['tini', '--version'], /tini version/],
  ];

  it.each(TOOLS)('%s answers as the claude user', async (_what, argv, shows) => {
    const r = await exec(argv);
    expect({ exitCode: r.exitCode, output: `${r.stdout}${r.stderr}`.trim() }).toEqual({ exitCode: 0, output: expect.stringMatching(shows) });
  });

  it('runs tools as claude, at home in /workspace, under a read-only root', async () => {
    const r = await exec(['bash', '-c', 'id -un; echo "$HOME"; pwd; touch /usr/local/probe 2>&1 || true']);
    expect(r.stdout).toMatch(/^claude\n\/workspace\n\/workspace\n.*Read-only file system/);
    expect((await docker.getContainer(containerId).inspect()).HostConfig.ReadonlyRootfs).toBe(true);
  });

  it('carries the project version label', async () => {
    const labels = (await docker.getImage(config.runnerImage).inspect()).Config.Labels;
    expect(labels[LABEL_RUNNER_VERSION]).toBe(config.version);
  });

  it('pip installs into /opt/venv (from a wheel made here: the sandbox has no network)', async () => {
    // A minimal pure-Python wheel with a console script, written with the standard library.
    const makeWheel = String.raw`
import base64, hashlib, zipfile
files = {
    'aisdemo/__init__.py': 'VALUE = 42\ndef main():\n    print("hello from aisdemo")\n',
    'aisdemo-1.0.dist-info/METADATA': 'Metadata-Version: 2.1\nName: aisdemo\nVersion: 1.0\n',
    'aisdemo-1.0.dist-info/WHEEL': 'Wheel-Version: 1.0\nGenerator: ai-sessions-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
    'aisdemo-1.0.dist-info/entry_points.txt': '[console_scripts]\naisdemo-hello = aisdemo:main\n',
}
digest = lambda b: 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()
files['aisdemo-1.0.dist-info/RECORD'] = ''.join(f'{n},{digest(c.encode())},{len(c.encode())}\n' for n, c in files.items()) + 'aisdemo-1.0.dist-info/RECORD,,\n'
with zipfile.ZipFile('/tmp/aisdemo-1.0-py3-none-any.whl', 'w') as z:
    for n, c in files.items():
        z.writestr(n, c)
`;
    expect(await exec(['python3', '-'], makeWheel)).toMatchObject({ exitCode: 0 });
    const install = await exec(['pip', 'install', '--no-index', '/tmp/aisdemo-1.0-py3-none-any.whl']);
    expect({ exitCode: install.exitCode, stdout: install.stdout }).toEqual({ exitCode: 0, stdout: expect.stringContaining('Successfully installed aisdemo-1.0') });
    const used = await exec(['bash', '-c', 'python -c "import aisdemo; print(aisdemo.__file__, aisdemo.VALUE)" && aisdemo-hello && command -v aisdemo-hello']);
    expect(used).toMatchObject({
      exitCode: 0,
      stdout: expect.stringMatching(/^\/opt\/venv\/lib\/python3\.\d+\/site-packages\/aisdemo\/__init__\.py 42\nhello from aisdemo\n\/opt\/venv\/bin\/aisdemo-hello\n$/),
    });
  });
});

describe('image allow-list rules', () => {
  const policy = { runnerImage: 'ai-sessions-runner:1.2.3', runnerImageAllowlist: ['tools:2', 'registry.example:5000/team/tools@sha256:' + 'a'.repeat(64)] };
  const cases: Array<[string, string | undefined, { runnerImageAllowlist: string[] } | undefined, RegExp | undefined]> = [
    ['no image: the default', undefined, undefined, undefined],
    ['the default image, with an empty allow-list', 'ai-sessions-runner:1.2.3', { runnerImageAllowlist: [] }, undefined],
    ['a listed image', 'tools:2', undefined, undefined],
    ['a listed image by digest', `registry.example:5000/team/tools@sha256:${'a'.repeat(64)}`, undefined, undefined],
    ['an unlisted image', 'ubuntu:24.04', undefined, /^image: ubuntu:24\.04 is not an allowed runner image; allowed: ai-sessions-runner:1\.2\.3, tools:2, registry/],
    ['a listed name with another tag', 'tools:3', undefined, /^image: tools:3 is not an allowed/],
    ['a listed name without its tag', 'tools', undefined, /^image: tools is not an allowed/],
  ];
  it.each(cases)('%s', (_what, image, override, problem) => {
    const result = imageProblem(image, { ...policy, ...override });
    if (problem) expect(result).toMatch(problem);
    else expect(result).toBeUndefined();
  });

  it('reads RUNNER_IMAGE_ALLOWLIST as comma-separated refs and names bad ones', () => {
    expect(loadConfig({ RUNNER_IMAGE_ALLOWLIST: ' a:1, localhost:5000/b/c:2 ,,' }).runnerImageAllowlist).toEqual(['a:1', 'localhost:5000/b/c:2']);
    expect(loadConfig({}).runnerImageAllowlist).toEqual([]);
    expect(() => loadConfig({ RUNNER_IMAGE_ALLOWLIST: 'a:1,Not An Image' })).toThrow(/RUNNER_IMAGE_ALLOWLIST: not image references .*: Not An Image/);
  });
});

describe('sessions on an allowed image', () => {
  const ALT = `ai-sessions-runner-alt:${suffix}`;
  const MISSING = `ai-sessions-runner-missing:${suffix}`;
  const DROPPED = `ai-sessions-runner-dropped:${suffix}`;
  const h = useHarness({ env: { RUNNER_IMAGE_ALLOWLIST: `${ALT},${MISSING}` } });
  let gw: Awaited<ReturnType<Harness['startGateway']>>;
  let user: string;
  const api = (method: string, path: string, body?: unknown, token = user, url = gw.url) => callApi(url, method, path, { token, body });
  const sessionCount = async () => Number((await h.db.query<{ n: string }>('SELECT count(*) AS n FROM sessions')).rows[0].n);

  beforeAll(async () => {
    // The runner image under a second name: an "other" image that is really on this host.
    const [repo, tag] = ALT.split(':');
    await h.docker.getImage(h.config.runnerImage).tag({ repo, tag });
    gw = await h.startGateway();
    user = await mintToken(TEST_JWT_SECRET, { sub: `img-${suffix}`, email: `img-${suffix}@example.com` });
    expect((await api('POST', '/v1/register')).status).toBe(200);
    expect((await api('POST', '/v1/auth/claude/apikey', { api_key: `sk-ant-api03-${randomBytes(20).toString('hex')}` })).status).toBe(200);
  });
  afterAll(async () => {
    await h.docker.getImage(ALT).remove().catch(() => undefined);
  });

  // [what, the answer's status, the image (read once the harness is up), what the error says]
  const profiles: Array<[string, number, () => string, RegExp | undefined]> = [
    ['the default image', 201, () => h.config.runnerImage, undefined],
    ['an allow-listed image', 201, () => ALT, undefined],
    ['an image outside the allow-list', 400, () => 'ubuntu:24.04', /^image: ubuntu:24\.04 is not an allowed runner image; allowed: ai-sessions-runner:.*ai-sessions-runner-alt/],
    ['something that is no image reference', 400, () => 'Not An Image', /^image: must be an image reference/],
  ];
  it.each(profiles)('a user profile naming %s: %d', async (_what, status, image, message) => {
    const r = await api('POST', '/v1/profiles', { name: `p-${randomBytes(3).toString('hex')}`, image: image() });
    expect(r.status).toBe(status);
    if (message) expect(r.body.error.message).toMatch(message);
    else {
      expect(r.body.profile.image).toBe(image());
      await api('DELETE', `/v1/profiles/${r.body.profile.id}`);
    }
  });

  it('an update to an image outside the allow-list is refused and changes nothing', async () => {
    const created = await api('POST', '/v1/profiles', { name: `upd-${suffix}`, image: ALT, model: 'claude-sonnet-4-6' });
    const r = await api('PUT', `/v1/profiles/${created.body.profile.id}`, { image: 'ubuntu:24.04', model: 'claude-opus-4-1' });
    expect(r).toMatchObject({ status: 400, body: { error: { message: expect.stringMatching(/^image: ubuntu:24\.04 is not an allowed/) } } });
    expect((await api('GET', `/v1/profiles/${created.body.profile.id}`)).body.profile).toMatchObject({ image: ALT, model: 'claude-sonnet-4-6' });
    await api('DELETE', `/v1/profiles/${created.body.profile.id}`);
  });

  it('a session is refused, and nothing recorded, once its profile image leaves the allow-list', async () => {
    const p = await api('POST', '/v1/profiles', { name: `narrowed-${suffix}`, image: ALT });
    const narrower = await h.startGateway({ RUNNER_IMAGE_ALLOWLIST: MISSING });
    const before = await sessionCount();
    const r = await api('POST', '/v1/sessions', { profile_id: p.body.profile.id }, user, narrower.url);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toBe(`image: ${ALT} is not an allowed runner image; allowed: ${h.config.runnerImage}, ${MISSING}`);
    await expect(h.startSession({ profile: { image: 'ubuntu:24.04' } })).rejects.toThrow(/^image: ubuntu:24\.04 is not an allowed runner image/);
    expect(await sessionCount()).toBe(before);
    await api('DELETE', `/v1/profiles/${p.body.profile.id}`);
  });

  it('D&R actions and ai_agent records are checked before anything starts', async () => {
    const created = await callApi(gw.url, 'POST', '/v1/admin/orgs', { token: TEST_ADMIN_TOKEN, body: { name: `img-${suffix}` } });
    const org = { id: created.body.org.id as string, key: created.body.api_key as string };
    const before = await sessionCount();
    const inline = await api('POST', `/v1/orgs/${org.id}/dr/start`, {
      action: { action: 'start ai agent', prompt: 'look', anthropic_secret: 'sk-ant-literal-key-0123', profile: { image: 'ubuntu:24.04' } },
    }, org.key);
    expect(inline.status).toBe(400);
    expect(inline.body.error.message).toMatch(/^action\.profile\.image: ubuntu:24\.04 is not an allowed runner image; allowed: /);
    await api('PUT', `/v1/orgs/${org.id}/hive/ai_agent/triage`, { data: { prompt: 'look', anthropic_secret: 'sk-ant-literal-key-0123', image: 'ubuntu:24.04' } }, org.key);
    const definition = await api('POST', `/v1/orgs/${org.id}/dr/start`, { action: { action: 'start ai agent', definition: 'hive://ai_agent/triage' } }, org.key);
    expect(definition.status).toBe(400);
    expect(definition.body.error.message).toMatch(/^hive:\/\/ai_agent\/triage\.image: ubuntu:24\.04 is not an allowed runner image/);
    expect(await sessionCount()).toBe(before);
    // A rule that would launch on a disallowed image is refused when saved, and nothing is stored.
    const rule = await api('PUT', `/v1/orgs/${org.id}/rules/bad-image`, {
      detect: { op: 'exists', path: 'event/X' },
      respond: [{ action: 'report', name: 'x' }, { action: 'start ai agent', prompt: 'p', anthropic_secret: 'sk-ant-literal-key-0123', profile: { image: 'ubuntu:24.04' } }],
    }, org.key);
    expect(rule.status).toBe(400);
    expect(rule.body.error.message).toMatch(/^respond\[1\]\.profile\.image: ubuntu:24\.04 is not an allowed runner image/);
    expect((await api('GET', `/v1/orgs/${org.id}/rules/bad-image`, undefined, org.key)).status).toBe(404);
  });

  it('starts a session on an allowed image other than the default', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'id -un; yara --version' }), text('done'));
    const sessionId = await h.startSession({ prompt: 'check', profile: { image: ALT, permission_mode: 'bypassPermissions' } });
    const result = await h.waitForEvent(sessionId, (e) => e.type === 'tool_result');
    expect(result.payload).toMatchObject({ is_error: false, content: expect.stringMatching(/^claude\n4\.\d/) });
    expect((await sessionContainers(h.docker, sessionId)).map((c) => c.Image)).toEqual([ALT]);
    await h.service.terminate(sessionId, 'user_requested');
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'user_requested' });
  });

  it('fails at once, naming the image, when an allowed image is not on the Docker host', async () => {
    const sessionId = await h.startSession({ prompt: 'hello', profile: { image: MISSING } });
    const outcome = await h.waitForEnd(sessionId);
    expect(outcome).toMatchObject({ endReason: 'failed', errorMessage: expect.stringContaining(`the runner image ${MISSING} is not on this Docker host`) });
    expect(h.fake.requests).toHaveLength(0);
  });

  it('the worker re-checks: an image dropped from its allow-list after the session was accepted does not run', async () => {
    // A gateway whose configuration still allowed the image when the session was recorded.
    const wider = new SessionService({
      db: h.db, client: h.client, keyring: h.keyring,
      config: loadConfig({ ...h.env, RUNNER_IMAGE_ALLOWLIST: `${ALT},${MISSING},${DROPPED}` }),
    });
    const { sessionId } = await wider.start({
      ownerType: 'user', ownerId: 'user-1', trigger: 'user', profile: { image: DROPPED }, credentialId: h.credentialId, initialPrompt: 'hello',
    });
    const outcome = await h.waitForEnd(sessionId);
    expect(outcome).toMatchObject({ endReason: 'failed', errorMessage: expect.stringContaining(`image: ${DROPPED} is not an allowed runner image`) });
    expect(await sessionContainers(h.docker, sessionId)).toHaveLength(0);
  });
});
