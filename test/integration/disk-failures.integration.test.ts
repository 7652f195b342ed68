/**
 * Storage migration (issue 15) under failure, between real agent processes on loopback: the
 * destination killed in the middle of the disk copy leaves the VM running on the source with its
 * disk intact and writable (the oracle — memory and disk — holds there, and every block of the
 * image reads back as the guest wrote it), and the next start of the killed agent on the same
 * disk directory removes the image it had half written, with its map, lock and mark.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { blockWord } from '../../shared/src/vm/workloads/disk.ts';
import { diskVmSpec, useDiskAgents, vmOn } from '../helpers/disk-agents.ts';
import { startAgent } from '../helpers/processes.ts';
import { expectOutcome } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

const disks = useDiskAgents();

const MiB = 1024 * 1024;
const BLOCK = 4096;

/**
 * Every block of a `disk` workload's image reads back as the guest wrote it: a hole (never
 * written) or the block's own number, a generation ≥ 1 and that generation's words. Returns the
 * blocks written.
 */
async function expectSelfDescribing(image: string): Promise<number> {
  const bytes = await fs.readFile(image);
  const words = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const bad: string[] = [];
  let written = 0;
  for (let block = 0; block < bytes.length / BLOCK; block++) {
    const w = block * (BLOCK / 4);
    const gen = words[w + 1]! >>> 0;
    if (words[w] === 0 && gen === 0 && words.subarray(w, w + BLOCK / 4).every((x) => x === 0)) continue;
    written += 1;
    let ok = words[w] === block && gen >= 1;
    for (let i = 2; i < BLOCK / 4 && ok; i++) ok = words[w + i] === blockWord(block, gen, i);
    if (!ok && bad.length < 5) bad.push(`block ${block}: word0 ${words[w]}, generation ${gen}`);
  }
  expect(bad, `blocks of ${image} that do not read back as written`).toEqual([]);
  return written;
}

describe('the destination killed in the middle of the disk copy', () => {
  it('the VM runs on at the source, disk intact and writable; the restarted destination removes its half-written image', async () => {
    // The disk busy: only writes, as fast as the device takes them, over 48 MiB.
    const spec = diskVmSpec('disk:wss=48MiB,rate=0,rw=0', 41, '64MiB');
    const { dest, src, dst, destDir } = await disks.pair(spec);
    // Enough written that the copy at 1 MB/s takes seconds.
    await disks.written(src, 4 * MiB);
    const { migrationId } = await src.request('migrate', {
      vm: 'vm',
      to: dest.listen,
      mode: 'precopy',
      params: { storage: 'copy', maxBandwidthBps: 1e6 },
    });
    const followed = followMigration(src, migrationId, { progress: false });
    // Mid disk copy: the destination's image has part of the disk.
    const incoming = await waitUntil(
      async () => {
        const vm = await vmOn(dst);
        return vm?.state === 'incoming' && (vm.disk?.allocatedBytes ?? 0) >= 1 * MiB && vm;
      },
      { what: 'the destination has written 1 MiB of the disk' },
    );
    dest.child.kill('SIGKILL');
    const report = await followed;
    expectOutcome(report, 'failed');
    expect(report.error?.code).toMatch(/^ERR_(CONNECTION|PEER_ABORTED)$/);
    expect(report.vmRunsOn).toBe('source');
    expect(report.storage).toMatchObject({ mode: 'copy', sizeBytes: 64 * MiB });
    expect(report.storage!.wireBytes).toBeGreaterThanOrEqual(1 * MiB);
    expect(report.storage!.wireBytes).toBeLessThan(report.storage!.allocatedBytes);
    expect(await dest.exited).toEqual({ code: null, signal: 'SIGKILL' });

    // The VM runs on at the source and its disk takes writes: steps and allocated bytes grow.
    const after = (await vmOn(src))!;
    expect(after.state).toBe('running');
    await waitUntil(
      async () => {
        const now = (await vmOn(src))!;
        return now.steps > after.steps && now.disk!.allocatedBytes > after.disk!.allocatedBytes;
      },
      { what: 'the VM keeps stepping and writing its disk at the source' },
    );
    const oracle = await checkOracle(src, 'vm', spec);
    expect(oracle.disk?.migratedDigest).toBe(oracle.disk?.referenceDigest);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    const written = await expectSelfDescribing(after.disk!.image);
    expect(written * BLOCK).toBeGreaterThanOrEqual(after.disk!.allocatedBytes);

    // What the killed destination left: its half-written image, and what goes with it.
    const image = incoming.disk!.image;
    expect(image).toBe(join(destDir, 'vm.img'));
    expect((await fs.readdir(destDir)).sort()).toEqual(['vm.img', 'vm.img.alloc', 'vm.img.incoming', 'vm.img.lock']);
    // Its next start on the same directory removes them before anything arrives.
    const restarted = await startAgent('dest', ['--disk-dir', destDir]);
    expect(await vmOn(await disks.connect(restarted))).toBeUndefined();
    expect(await fs.readdir(destDir)).toEqual([]);
  });
});
