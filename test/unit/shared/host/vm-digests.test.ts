/**
 * VmDigests: at most one digest per VM at a time, and a request that arrives while one runs
 * joins the next (which starts only after the running one, so it sees memory as it was once the
 * request was made). A stub hasher whose digests end when the test says so; then one real
 * worker, whose value is ToyVm.digest()'s.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { VmDigests } from '@livemig/shared/host';
import { ToyVm, parseVmSpec, type GuestMemory } from '@livemig/shared/vm';
import type { MemoryHasher } from '../../../../shared/src/vm/digest-worker.ts';

/** A hasher whose digests the test ends one by one: finish(i, value) or fail(i). */
function stubHasher() {
  const calls: { memory: GuestMemory; resolve: (digest: string) => void; reject: (error: Error) => void }[] = [];
  const hasher: MemoryHasher = {
    digest: (memory) => new Promise<string>((resolve, reject) => calls.push({ memory, resolve, reject })),
    close: async () => {},
  };
  return { hasher, calls };
}

/** A stand-in VM: VmDigests only reads its memory. */
function fakeVm(): ToyVm {
  return { memory: {} } as unknown as ToyVm;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('VmDigests', () => {
  it('runs one digest per VM at a time; requests meanwhile share the next, started after the running one', async () => {
    const { hasher, calls } = stubHasher();
    const digests = new VmDigests({ hasher });
    const vm = fakeVm();
    const first = digests.digest(vm);
    const joiners = [digests.digest(vm), digests.digest(vm), digests.digest(vm)];
    await tick();
    expect(calls).toHaveLength(1); // one running; the three wait for the next
    calls[0]!.resolve('d1');
    expect(await first).toBe('d1');
    await tick();
    expect(calls).toHaveLength(2); // the next started only now
    const late = digests.digest(vm); // arrives while the next runs: joins the one after
    calls[1]!.resolve('d2');
    expect(await Promise.all(joiners)).toEqual(['d2', 'd2', 'd2']);
    await tick();
    expect(calls).toHaveLength(3);
    calls[2]!.resolve('d3');
    expect(await late).toBe('d3');
    // Idle again: a new request starts at once.
    void digests.digest(vm);
    await tick();
    expect(calls).toHaveLength(4);
  });

  it('hashes different VMs independently', async () => {
    const { hasher, calls } = stubHasher();
    const digests = new VmDigests({ hasher });
    const [a, b] = [fakeVm(), fakeVm()];
    const both = Promise.all([digests.digest(a), digests.digest(b)]);
    await tick();
    expect(calls.map((call) => call.memory)).toEqual([a.memory, b.memory]);
    calls[1]!.resolve('b');
    calls[0]!.resolve('a');
    expect(await both).toEqual(['a', 'b']);
  });

  it('a failed digest fails only its own callers; the next one still runs', async () => {
    const { hasher, calls } = stubHasher();
    const digests = new VmDigests({ hasher });
    const vm = fakeVm();
    const first = digests.digest(vm);
    const next = digests.digest(vm);
    calls[0]!.reject(Object.assign(new Error('destroyed'), { code: 'ERR_VM_STATE' }));
    await expect(first).rejects.toMatchObject({ code: 'ERR_VM_STATE' });
    await tick();
    calls[1]!.resolve('d2');
    expect(await next).toBe('d2');
  });
});

describe('VmDigests with its worker', () => {
  let digests: VmDigests | undefined;
  let vm: ToyVm | undefined;
  afterEach(async () => {
    await digests?.close();
    await vm?.destroy();
  });

  it('answers ToyVm.digest()’s value, for every request of a burst', async () => {
    vm = await ToyVm.boot(parseVmSpec({ memory: '8MiB', init: 'random', workload: 'idle', seed: 8 }));
    digests = new VmDigests();
    const answers = await Promise.all(Array.from({ length: 20 }, () => digests!.digest(vm!)));
    expect(new Set(answers)).toEqual(new Set([await vm.digest()]));
  });
});
