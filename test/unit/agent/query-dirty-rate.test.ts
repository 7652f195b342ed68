/**
 * The agent's `query-dirty-rate` handler (agent/src/query-dirty-rate.ts) on a real VmHost whose
 * VMs are stand-ins with real guest memory: the arguments are checked before anything else (each
 * bad one ERR_INVALID_ARGUMENT), an unknown VM is ERR_NOT_FOUND, a VM whose memory a migration
 * writes is ERR_VM_STATE, a VM migrating out is measured, a second measurement of the same VM at
 * once is ERR_BUSY, and stop() cancels one in its wait.
 */
import { describe, expect, it, vi } from 'vitest';
import type { CommandArgs } from '@livemig/shared/control';
import { VmHost, type VmState } from '@livemig/shared/host';
import { GuestMemory, type ToyVm } from '@livemig/shared/vm';
import { DirtyRateQueries } from '../../../agent/src/query-dirty-rate.ts';

const MiB = 1024 ** 2;
const code = (c: string) => expect.objectContaining({ code: c });

/** A host with VM `vm` in `state` (1 MiB of memory), and the queries on it with a wait that ends when told. */
function setup(state: VmState = 'running', arriving?: string) {
  const host = new VmHost();
  const memory = GuestMemory.allocate(MiB);
  host.adopt('vm', { memory } as unknown as ToyVm, state);
  const get = vi.spyOn(host, 'get');
  const waits: Array<() => void> = [];
  let t = 0;
  const queries = new DirtyRateQueries({
    host,
    stillArriving: () => arriving,
    measure: {
      now: () => (t += 100), // each look at the clock, 100 ms later
      wallClock: () => 1_700_000_000_000,
      sleep: (_ms, signal) =>
        new Promise<void>((resolve, reject) => {
          waits.push(resolve);
          signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
        }),
    },
  });
  /** Let the measurements waiting now go on; resolves once they have started waiting. */
  const release = () => waits.splice(0).forEach((go) => go());
  const waiting = () => vi.waitUntil(() => waits.length > 0);
  return { host, memory, get, queries, release, waiting };
}

describe('DirtyRateQueries', () => {
  it('measures a VM: the result of page sampling, with what it was of', async () => {
    const { memory, queries, release, waiting } = setup();
    const answer = queries.query({ vm: 'vm', calcTimeMs: 200 });
    await waiting();
    for (let n = 0; n < 64; n++) memory.page(n)[0] = 1; // a quarter of the VM's 256 pages
    release();
    const info = await answer;
    expect(info).toMatchObject({
      vm: 'vm',
      method: 'page-sampling',
      pagesSampled: 256, // every page of a 1 MiB VM
      pagesChanged: 64,
      memoryBytes: MiB,
      startedAt: 1_700_000_000_000,
      standardErrorMBps: 0,
    });
    expect(Object.keys(info).sort()).toEqual(
      [
        'dirtyRateMBps',
        'memoryBytes',
        'method',
        'pagesChanged',
        'pagesSampled',
        'standardErrorMBps',
        'startedAt',
        'vm',
        'windowMs',
      ].sort(),
    );
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['calc time too short', { vm: 'vm', calcTimeMs: 99 }, /calcTimeMs must be a whole number from 100 to 60000/],
    ['calc time too long', { vm: 'vm', calcTimeMs: 60_001 }, /calcTimeMs/],
    ['calc time not a number', { vm: 'vm', calcTimeMs: '1s' }, /calcTimeMs .* got "1s"/],
    ['calc time fractional', { vm: 'vm', calcTimeMs: 150.5 }, /calcTimeMs/],
    [
      'too few sample pages',
      { vm: 'vm', samplePagesPerGiB: 127 },
      /samplePagesPerGiB must be a whole number from 128 to 16384/,
    ],
    ['too many sample pages', { vm: 'vm', samplePagesPerGiB: 16_385 }, /samplePagesPerGiB/],
    ['a bad VM name', { vm: '../etc' }, /bad VM name/],
    ['no VM name', {}, /bad VM name/],
  ])('%s: ERR_INVALID_ARGUMENT before the host is asked', async (_what, args, message) => {
    const { queries, get } = setup();
    const query = queries.query(args as CommandArgs<'query-dirty-rate'>);
    await expect(query).rejects.toThrow(code('ERR_INVALID_ARGUMENT'));
    await expect(query).rejects.toThrow(message);
    expect(get).not.toHaveBeenCalled();
  });

  it("an unknown VM: the host's ERR_NOT_FOUND", async () => {
    const { queries } = setup();
    await expect(queries.query({ vm: 'nope' })).rejects.toThrow(code('ERR_NOT_FOUND'));
    await expect(queries.query({ vm: 'nope' })).rejects.toThrow(/no VM named "nope" here \(have: vm\)/);
  });

  it('a VM whose memory a migration writes: ERR_VM_STATE, saying why', async () => {
    await expect(setup('incoming').queries.query({ vm: 'vm' })).rejects.toThrow(
      /cannot measure the dirty rate of "vm": it is incoming .* as pages arrive/,
    );
    const arriving = setup('running', 'its incoming migration m1 is postcopy (pages are still on the source)');
    await expect(arriving.queries.query({ vm: 'vm' })).rejects.toThrow(code('ERR_VM_STATE'));
    await expect(arriving.queries.query({ vm: 'vm' })).rejects.toThrow(/m1 is postcopy/);
  });

  it('a VM migrating out is measured (memory is only read); one measurement per VM at a time', async () => {
    const { queries, release, waiting } = setup('migrating-out');
    const first = queries.query({ vm: 'vm' });
    await waiting();
    await expect(queries.query({ vm: 'vm' })).rejects.toThrow(code('ERR_BUSY'));
    release();
    expect(await first).toMatchObject({ vm: 'vm', pagesChanged: 0, dirtyRateMBps: 0 });
    // Over: the next one may start.
    const again = queries.query({ vm: 'vm' });
    await waiting();
    release();
    await expect(again).resolves.toMatchObject({ vm: 'vm' });
  });

  it('stop() cancels a measurement in its wait (ERR_CANCELLED), and frees the VM for none after', async () => {
    const { queries, waiting } = setup();
    const query = queries.query({ vm: 'vm' });
    await waiting();
    queries.stop('agent stopping');
    await expect(query).rejects.toThrow(code('ERR_CANCELLED'));
    await expect(query).rejects.toThrow(/agent stopping/);
    await expect(queries.query({ vm: 'vm' })).rejects.toThrow(code('ERR_CANCELLED'));
  });
});
