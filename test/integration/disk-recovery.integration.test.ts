/**
 * Two ways a disk could come out wrong while every digest check passed or the VM was lost, each
 * found by these tests and fixed (issue 15):
 *  - a link cut during storage post-copy: a block lost in the cut and then written whole by the
 *    destination's guest was never asked for again (DiskMissing named what was absent, not what
 *    was never received), so the destination's digest lacked it and the VM was lost; now the
 *    recovery completes and the oracle holds;
 *  - mirror: a block filtered as "not mirrored" then waited for the bandwidth cap, and a mirrored
 *    write of it meanwhile went first, its older copy after — both ledgers agreed on the stale
 *    bytes; now the oracle, taken at once after the mirror, holds.
 */
import { describe, expect, it } from 'vitest';
import { MsgType } from '@livemig/shared/protocol';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { startCuttingRelay } from '../helpers/cutting-relay.ts';
import { startDelayingRelay } from '../helpers/delaying-relay.ts';
import { diskVmSpec, migrateVm, useDiskAgents } from '../helpers/disk-agents.ts';
import { startAgent, vmArgs } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';

const disks = useDiskAgents();
const MiB = 1024 * 1024;
const BLOCK = 4096;

describe('a link cut during storage post-copy', () => {
  it('is recovered: both sides reconnect, the lost blocks are sent again, and the oracle (memory + disk) holds', async () => {
    // Reads and writes over 16 MiB: reads of absent blocks are fetched, writes make blocks present.
    const spec = diskVmSpec('disk:wss=16MiB,rate=3000,rw=50', 42, '64MiB');
    const { dest, src } = await disks.pair(spec);
    await disks.written(src, 4 * MiB);
    const [host, port] = dest.listen.split(':') as [string, string];
    let pushed = 0;
    // The third batch of blocks pushed in the background (1 MiB each): well inside the push.
    const relay = await startCuttingRelay({ host, port: Number(port) }, (direction, message) => {
      if (direction !== 'to-dest' || message.type !== MsgType.DiskBlocks || message.requestId !== 0) return 'forward';
      pushed += 1;
      return pushed === 3 ? 'cut-before' : 'forward';
    });
    disks.defer(relay.close);
    const { migrationId } = await src.request('migrate', {
      vm: 'vm',
      to: relay.address,
      mode: 'postcopy',
      params: { storage: 'postcopy', maxBandwidthBps: 2e6, recoveryTimeoutMs: 10_000 },
    });
    const report = await followMigration(src, migrationId, { progress: false });
    expect(await Promise.race([relay.cut, 'no cut happened'])).toBe('cut-before DiskBlocks to-dest');
    expectCompleted(report);
    expect(report.postcopy?.recoveries).toBeGreaterThanOrEqual(1);
    const storage = report.storage!;
    expect(storage).toMatchObject({ mode: 'postcopy', rounds: 0 });
    expect(storage.blocksResent).toBeGreaterThan(0);
    expect((storage.blocksPushed + storage.blocksFetched) * BLOCK).toBeGreaterThanOrEqual(storage.allocatedBytes);
    expect(report.verify.sections?.disk?.match).toBe(true);
    const oracle = await checkOracle(dest.control, 'vm', spec);
    expect(oracle.disk?.migratedDigest).toBe(oracle.disk?.referenceDigest);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });
});

describe('mirror against a guest writing faster than the link', () => {
  it('the disk the mirror moved is the disk the guest wrote (oracle at once, before the guest writes each block again)', async () => {
    const spec = diskVmSpec('disk:wss=1MiB,rate=400,rw=0', 43, '64MiB');
    const [dirA, dirB] = [await disks.tempDir(), await disks.tempDir()];
    const [a, b] = await Promise.all([
      startAgent('agent', [...vmArgs('vm', spec), '--disk-dir', dirA]),
      startAgent('agent', ['--disk-dir', dirB]),
    ]);
    const [clientA, clientB] = [await disks.connect(a), await disks.connect(b)];
    const toB = await startDelayingRelay(b.listen, 15);
    disks.defer(toB.close);
    await disks.written(clientA, 0.75 * MiB);
    const limits = { maxBandwidthBps: 1e6, maxRounds: 3, downtimeLimitMs: 100 };
    const mirror = await migrateVm(clientA, toB.address, 'precopy', { ...limits, storage: 'mirror' });
    expectCompleted(mirror, 'mirror');
    expect(mirror.verify.sections?.disk?.match).toBe(true);
    const oracle = await checkOracle(clientB, 'vm', spec);
    expect(oracle.disk?.migratedDigest, 'disk after mirror').toBe(oracle.disk?.referenceDigest);
    expect(oracle.migratedDigest, 'memory after mirror').toBe(oracle.referenceDigest);
  });
});
