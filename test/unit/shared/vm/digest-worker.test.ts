/**
 * The digest worker: the same value as ToyVm.digest() (digestMemory) and a PageDigestLedger of
 * every page, computed in a thread of its own at the lowest CPU priority, so the event loop keeps
 * turning meanwhile; it gives up when the memory is released, and close() fails what is pending.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { DigestWorker } from '../../../../shared/src/vm/digest-worker.ts';
import { PageDigestLedger, digestMemory } from '../../../../shared/src/vm/digest.ts';
import { GuestMemory } from '../../../../shared/src/vm/guest-memory.ts';
import { initialiseMemory } from '../../../../shared/src/vm/init.ts';
import { ToyVm } from '../../../../shared/src/vm/toy-vm.ts';
import { parseVmSpec } from '../../../../shared/src/vm/vm-spec.ts';

const MiB = 1024 * 1024;
const workers: DigestWorker[] = [];
function digestWorker(): DigestWorker {
  const worker = new DigestWorker();
  workers.push(worker);
  return worker;
}
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
});

/** The longest the event loop went without running a 1 ms timer while `work` ran. */
async function longestStall(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  try {
    await work();
    return Math.max(longest, performance.now() - last);
  } finally {
    clearInterval(timer);
  }
}

/** Nice values of this process's threads (Linux). */
/** This process's threads at nice 19, by thread id. */
function niceThreads(): Set<string> {
  const ids = readdirSync('/proc/self/task').filter((tid) => {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // Fields after "(comm)": state is field 3, nice field 19.
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) === 19;
    } catch {
      return false; // the thread ended between the listing and the read
    }
  });
  return new Set(ids);
}

describe('DigestWorker', () => {
  it('computes ToyVm.digest()’s value byte for byte, across regions and a short last region', async () => {
    const memory = GuestMemory.allocate(5 * MiB, { regionBytes: 2 * MiB });
    await initialiseMemory(memory, { kind: 'mixed', zeroFraction: 0.4 }, 11);
    const ledger = new PageDigestLedger(memory.pageCount);
    for (let n = 0; n < memory.pageCount; n++) ledger.update(n, memory.page(n));
    const worker = digestWorker();
    const digest = await worker.digest(memory);
    expect(digest).toMatch(/^[0-9a-f]{16}$/);
    expect(digest).toBe(await digestMemory(memory));
    expect(digest).toBe(ledger.digest());

    // A VM that ran: the worker and the VM agree.
    const vm = await ToyVm.boot(parseVmSpec({ memory: '4MiB', init: 'random', workload: 'uniform:rate=0', seed: 4 }));
    try {
      await vm.runSteps(50_000);
      expect(await worker.digest(vm.memory)).toBe(await vm.digest());
    } finally {
      await vm.destroy();
    }
  });

  it('hashes off the event loop: the loop stalls far less than when it hashes itself', async () => {
    const memory = GuestMemory.allocate(256 * MiB);
    await initialiseMemory(memory, { kind: 'random' }, 3);
    const worker = digestWorker();
    await worker.digest(GuestMemory.allocate(MiB)); // the thread started
    let inThread = '';
    let offThread = '';
    const stalledInThread = await longestStall(async () => (inThread = await digestMemory(memory)));
    const stalledOffThread = await longestStall(async () => (offThread = await worker.digest(memory)));
    expect(offThread).toBe(inThread);
    expect(stalledOffThread, `in thread ${stalledInThread} ms, worker ${stalledOffThread} ms`).toBeLessThan(
      stalledInThread / 3,
    );
  });

  it('runs at the lowest CPU priority (nice 19, Linux)', async () => {
    // By thread id, not by count: an earlier test's worker may still be ending meanwhile.
    const before = niceThreads();
    await digestWorker().digest(GuestMemory.allocate(MiB));
    expect([...niceThreads()].filter((tid) => !before.has(tid))).toHaveLength(1);
  });

  it('gives up when the memory is released meanwhile (ERR_VM_STATE), and serves the next digest', async () => {
    const memory = GuestMemory.allocate(64 * MiB);
    const worker = digestWorker();
    const digest = worker.digest(memory);
    memory.release();
    await expect(digest).rejects.toMatchObject({ code: 'ERR_VM_STATE' });
    await expect(worker.digest(memory)).rejects.toMatchObject({ code: 'ERR_VM_STATE' });
    const other = GuestMemory.allocate(MiB);
    expect(await worker.digest(other)).toBe(await digestMemory(other));
    expect(worker.pending).toBe(0);
  });

  it('close() fails the digests not yet answered (ERR_CANCELLED) and refuses new ones', async () => {
    const worker = digestWorker();
    const pending = expect(worker.digest(GuestMemory.allocate(64 * MiB))).rejects.toMatchObject({
      code: 'ERR_CANCELLED',
    });
    await worker.close();
    await pending;
    await expect(worker.digest(GuestMemory.allocate(MiB))).rejects.toMatchObject({ code: 'ERR_CANCELLED' });
  });
});
