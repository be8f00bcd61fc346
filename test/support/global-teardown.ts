import fs from 'node:fs';
import type { DevServer } from '../../infra/temporal-dev-server';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __aisTestServer?: DevServer }).__aisTestServer?.stop();
  if (process.env.TEST_TMP_DIR) fs.rmSync(process.env.TEST_TMP_DIR, { recursive: true, force: true });
}
