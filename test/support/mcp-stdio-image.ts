import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type Docker from 'dockerode';

const DIR = path.join(__dirname, '..', 'fixtures', 'mcp-stdio');
const LABEL_BASE = 'ai-sessions.test.base-image';

/** How a profile starts the test image's stdio server. */
export const STDIO_SERVER = { type: 'stdio' as const, command: '/opt/mcp-test/bin/python', args: ['/opt/mcp-test/server.py'] };

/** The test image's name: named after its build files, so a change to them builds it again. */
export function mcpTestImage(): string {
  const hash = crypto.createHash('sha256');
  for (const f of fs.readdirSync(DIR).sort()) hash.update(f).update('\0').update(fs.readFileSync(path.join(DIR, f)));
  return `ai-sessions-mcp-test:${hash.digest('hex').slice(0, 12)}`;
}

/**
 * Builds the runner image plus a Python MCP stdio server (test/fixtures/mcp-stdio)
 * when it is missing or was built on another runner image. The SDK's wheels,
 * for the image's Python and machine, are downloaded by the host's pip (which
 * knows this machine's index and certificates); the build runs offline.
 */
export async function ensureMcpTestImage(docker: Docker, runnerImage: string): Promise<string> {
  const image = mcpTestImage();
  const base = await docker.getImage(runnerImage).inspect();
  const current = await docker.getImage(image).inspect().catch(() => undefined);
  if (current?.Config?.Labels?.[LABEL_BASE] === base.Id) return image;
  const context = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-mcp-image-'));
  try {
    for (const f of fs.readdirSync(DIR)) fs.copyFileSync(path.join(DIR, f), path.join(context, f));
    await downloadWheels(docker, runnerImage, path.join(context, 'wheels'));
    const src = [...fs.readdirSync(DIR), ...fs.readdirSync(path.join(context, 'wheels')).map((f) => `wheels/${f}`)];
    const stream = await docker.buildImage({ context, src }, { t: image, buildargs: { BASE: runnerImage }, labels: { [LABEL_BASE]: base.Id } });
    await followBuild(docker, stream, image);
  } finally {
    fs.rmSync(context, { recursive: true, force: true });
  }
  return image;
}

async function downloadWheels(docker: Docker, runnerImage: string, dest: string): Promise<void> {
  // The image's Python version and machine decide which binary wheels fit.
  const probe = await runIn(docker, runnerImage, ['python3', '-c', 'import sys, platform; print(f"{sys.version_info[0]}.{sys.version_info[1]} {platform.machine()}")']);
  const [version, machine] = probe.trim().split(' ');
  const abi = `cp${version!.replace('.', '')}`;
  const platforms = ['manylinux_2_28', 'manylinux_2_17', 'manylinux2014'].flatMap((p) => ['--platform', `${p}_${machine}`]);
  execFileSync('python3', ['-m', 'pip', 'download', '-q', '--dest', dest, '--only-binary=:all:', '--python-version', version!,
    '--implementation', 'cp', '--abi', abi, ...platforms, 'mcp>=1.20,<2'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
}

async function runIn(docker: Docker, image: string, cmd: string[]): Promise<string> {
  const out: Buffer[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) });
  await docker.run(image, cmd, sink, { HostConfig: { AutoRemove: true, NetworkMode: 'none' }, Tty: true });
  return Buffer.concat(out).toString('utf8');
}

async function followBuild(docker: Docker, stream: NodeJS.ReadableStream, image: string): Promise<void> {
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: Array<{ error?: string }>) => {
        const failed = err?.message ?? output.find((o) => o.error)?.error;
        if (failed) reject(new Error(`building ${image} failed: ${failed}\n${tail.join('')}`));
        else resolve();
      },
      (event: { stream?: string }) => {
        if (event.stream) tail.push(event.stream);
        if (tail.length > 30) tail.shift();
      },
    );
  });
}
