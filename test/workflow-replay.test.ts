import fs from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';

/**
 * Histories recorded by earlier versions of the session and reaper workflows
 * (payloads decrypted, so no key is needed) replay through today's code
 * without a nondeterminism error: a running session survives a worker upgrade. A change
 * that alters the commands a recorded run issued must be guarded with
 * patched(), or this fails.
 *
 * Each file names what its run did; to add one, record a decoded history
 * (test/support/history.ts) and write History.encode(...) to a .binpb here.
 */
const DIR = path.join(__dirname, 'fixtures', 'histories');
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.binpb')).sort();

describe('replay of recorded workflow histories', () => {
  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(6);
  });

  it.each(files)('%s replays on the current workflow code', async (file) => {
    const history = temporal.api.history.v1.History.decode(fs.readFileSync(path.join(DIR, file)));
    expect(history.events.length).toBeGreaterThan(10);
    await Worker.runReplayHistory({ workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! } }, history, path.basename(file, '.binpb'));
  });
});
