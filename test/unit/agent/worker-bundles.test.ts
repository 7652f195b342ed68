/**
 * The agent's worker bundles, built ahead of use (`npm ci`'s prepare script, an agent's start):
 * every worker the agent boots from a bundle gets one — none of their graphs may be refused
 * (a module using `import.meta` other than its url, filename or dirname would be) — a second
 * pass finds them current, and LIVEMIG_WORKER_BUNDLES=0 builds nothing.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { currentBundle } from '@livemig/shared';
import { prebuildWorkerBundles, workerEntries } from '../../../agent/src/worker-bundles.ts';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'livemig-prebuild-test-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('prebuildWorkerBundles', () => {
  it('bundles the vCPU, the source fault worker and the destination fault thread; then finds them current', async () => {
    const entries = workerEntries();
    expect(entries.map((e) => e.split('/').pop())).toEqual([
      'vcpu-worker.ts',
      'fault-worker-thread.ts',
      'fault-thread-worker.ts',
    ]);
    for (const entry of entries) expect(existsSync(fileURLToPath(entry)), entry).toBe(true);

    const options = { dir, env: {} };
    const first = await prebuildWorkerBundles(options);
    expect(first).toEqual({ current: [], built: entries, failed: [] });
    for (const entry of entries) expect(currentBundle(entry, options), entry).toBeDefined();
    expect(await prebuildWorkerBundles(options)).toEqual({ current: entries, built: [], failed: [] });
  }, 60_000);

  it('builds nothing with LIVEMIG_WORKER_BUNDLES=0', async () => {
    const options = { dir, env: { LIVEMIG_WORKER_BUNDLES: '0' } };
    expect(await prebuildWorkerBundles(options)).toEqual({ current: [], built: [], failed: [] });
    for (const entry of workerEntries()) expect(currentBundle(entry, options)).toBeUndefined();
  });
});
