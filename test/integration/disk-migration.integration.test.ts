/**
 * Storage migration (issue 15) between real agent processes: a VM whose guest writes and reads
 * back its disk (the `disk` workload: every block self-describing, a stale or lost block counted
 * by the guest itself in a register) migrates with each storage mode beside each memory mode, and
 * the determinism oracle — memory and disk digests of the migrated VM against a never-migrated
 * reference at the same step — holds; the report's storage figures are the disk's own.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ControlClient } from '@livemig/shared/control';
import { KNOWN_CAPABILITIES } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { startAgent, stopAll, vmArgs, type AgentProcess } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';
import { ask } from '../helpers/plain-agents.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { vmOn } from '../helpers/disk-agents.ts';
import { waitUntil } from '../helpers/wait.ts';

const dirs: string[] = [];
/** The disk directories of the shared pairs: they outlive each test, and go after the last. */
const pairDirs: string[] = [];
const removeAll = (list: string[]): Promise<unknown> =>
  Promise.all(list.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
afterEach(async () => {
  await stopAll();
  await removeAll(dirs);
});
afterAll(() => removeAll(pairDirs));

const MiB = 1024 * 1024;

async function migrate(
  source: AgentProcess,
  to: string,
  mode: 'precopy' | 'postcopy' | 'hybrid',
  params: Record<string, unknown>,
  vm = 'vm',
): Promise<MigrationReport> {
  const client = await ControlClient.connect(source.control);
  try {
    const { migrationId } = await client.request('migrate', { vm, to, mode, params });
    return await followMigration(client, migrationId, { progress: false });
  } finally {
    client.close();
  }
}

/** Wait until `vm`'s guest has written some of its disk. */
function written(client: ControlClient, vm: string): Promise<unknown> {
  return waitUntil(async () => ((await vmOn(client, vm))?.disk?.allocatedBytes ?? 0) > 0, {
    what: `${vm}'s guest writes its disk`,
  });
}

async function tempDir(list = dirs): Promise<string> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'livemig-disk-mig-'));
  list.push(dir);
  return dir;
}

const STORAGE = ['copy', 'mirror', 'shared', 'postcopy'] as const;
const MODES = ['precopy', 'hybrid', 'postcopy'] as const;

describe.each(STORAGE)('--storage %s', (storage) => {
  // One pair of agents for the three memory modes (an agent's start is ~1 s of the two cores):
  // each test boots its own VM, named after its mode, on the source, and it is destroyed on both
  // after it. Shared storage: one directory for both agents (the NAS); else one each.
  const pair = useSharedPair({
    start: async () => {
      const shared = storage === 'shared' ? await tempDir(pairDirs) : undefined;
      const sourceDir = shared ?? (await tempDir(pairDirs));
      const destDir = shared ?? (await tempDir(pairDirs));
      return Promise.all([
        startAgent('source', ['--disk-dir', sourceDir], { kept: true }),
        startAgent('dest', ['--disk-dir', destDir], { kept: true }),
      ]);
    },
    ask,
  });

  it.each(MODES)(
    'with --mode %s: the oracle holds for memory and disk, and the report says what moved',
    async (mode) => {
      const spec = parseVmSpec({
        memory: '32MiB',
        init: 'random',
        workload: 'disk:wss=4MiB,rate=3000,rw=50',
        seed: 15,
        disk: '64MiB',
      });
      const vm = `vm-${mode}`;
      const [source, dest] = await pair.boot(vm, spec);
      // The shared disk's allowance counts what the guest has written (below): let it write first.
      await ask(source, (client) => written(client, vm));
      const report = await migrate(
        source,
        dest.listen,
        mode,
        { storage, ...(mode === 'hybrid' ? { postcopyAfterRounds: 1 } : {}) },
        vm,
      );
      expectCompleted(report);
      expect(report.storage).toMatchObject({ mode: storage, sizeBytes: 64 * MiB });
      expect(report.verify.sections?.disk?.match).toBe(true);
      if (storage === 'shared') {
        expect(report.storage?.wireBytes).toBe(0);
        // The default switchover timeout (max(10 × 300 ms, 2 s)) grows by the time allowed for the
        // destination to hash the image it opens.
        expect(report.switchover?.switchoverTimeoutMs).toBeGreaterThan(3000);
        if (mode === 'postcopy') {
          // No pre-copy round to pre-hash in: the destination hashes the image at the stop point.
          expect(report.storage?.note).toMatch(/the destination hashed it whole/);
        } else {
          // Pre-hashed while the VM ran; inside the downtime only what the guest wrote since.
          const since = /pre-hashed it while the VM ran \(.*\) and hashed again the (\d+) blocks written since/.exec(
            report.storage?.note ?? '',
          );
          expect(since, report.storage?.note).not.toBeNull();
          expect(Number(since![1])).toBeGreaterThan(0); // the guest kept writing
        }
      } else expect(report.storage?.wireBytes).toBeGreaterThan(0);
      const oracle = await checkOracle(dest.control, vm, spec);
      expect(oracle.disk?.migratedDigest).toBe(oracle.disk?.referenceDigest);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    },
  );
});

describe('--storage shared against a destination without disk-prehash', () => {
  it('falls back to hashing the image whole at the stop point, and the oracle holds', async () => {
    const spec = parseVmSpec({
      memory: '32MiB',
      init: 'random',
      workload: 'disk:wss=4MiB,rate=3000,rw=50',
      seed: 16,
      disk: '64MiB',
    });
    const shared = await tempDir();
    const offered = Object.keys(KNOWN_CAPABILITIES).filter((c) => c !== 'disk-prehash');
    const [source, dest] = await Promise.all([
      startAgent('source', [...vmArgs('vm', spec), '--disk-dir', shared]),
      startAgent('dest', ['--disk-dir', shared, '--capabilities', offered.join(',')]),
    ]);
    const report = await migrate(source, dest.listen, 'precopy', { storage: 'shared' });
    expectCompleted(report);
    expect(report.storage?.note).toMatch(/the destination hashed it whole/);
    expect(report.verify.sections?.disk?.match).toBe(true);
    const oracle = await checkOracle(dest.control, 'vm', spec);
    expect(oracle.disk?.migratedDigest).toBe(oracle.disk?.referenceDigest);
  });
});
