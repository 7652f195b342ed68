/**
 * The dirty-rate estimator (shared/src/vm/dirty-rate.ts): its pure parts with exact numbers —
 * options and their bounds, how many pages, which pages (uniform, distinct, seeded), the rate and
 * its standard error — then measureDirtyRate on memory changed by hand during a fake wait, and on
 * a real ToyVm whose vCPU runs a workload, against the truth its own dirty log gives over the
 * same window.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  choosePages,
  countChanged,
  DIRTY_RATE_LIMITS,
  estimateDirtyRate,
  hashSamples,
  measureDirtyRate,
  rateUpperBound95,
  resolveDirtyRateOptions,
  samplePageCount,
  type DirtyRateMeasurement,
} from '../../../../shared/src/vm/dirty-rate.ts';
import { GuestMemory, PAGE_SIZE } from '../../../../shared/src/vm/guest-memory.ts';
import { ToyVm } from '../../../../shared/src/vm/toy-vm.ts';
import { parseVmSpec } from '../../../../shared/src/vm/vm-spec.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const code = (c: string) => expect.objectContaining({ code: c });

describe('resolveDirtyRateOptions', () => {
  it("defaults to QEMU's: 1 s, 512 pages per GiB", () => {
    expect(resolveDirtyRateOptions()).toEqual({ calcTimeMs: 1000, samplePagesPerGiB: 512, checkpoints: 0 });
    expect(resolveDirtyRateOptions({ calcTimeMs: 100, samplePagesPerGiB: 128 })).toEqual({
      calcTimeMs: 100,
      samplePagesPerGiB: 128,
      checkpoints: 0,
    });
    expect(resolveDirtyRateOptions({ calcTimeMs: 60_000, samplePagesPerGiB: 16_384, checkpoints: 6 })).toEqual({
      calcTimeMs: 60_000,
      samplePagesPerGiB: 16_384,
      checkpoints: 6,
    });
    expect(() => resolveDirtyRateOptions({ checkpoints: 7 })).toThrow(code('ERR_INVALID_ARGUMENT'));
  });

  it.each([
    [{ calcTimeMs: 99 }, /calcTimeMs must be a whole number from 100 to 60000 \(ms\), got 99/],
    [{ calcTimeMs: 60_001 }, /calcTimeMs .* got 60001/],
    [{ calcTimeMs: 1000.5 }, /calcTimeMs .* got 1000\.5/],
    [{ calcTimeMs: '1s' }, /calcTimeMs .* got "1s"/],
    [{ calcTimeMs: Number.NaN }, /calcTimeMs .* got NaN/],
    [
      { samplePagesPerGiB: 127 },
      /samplePagesPerGiB must be a whole number from 128 to 16384 \(pages per GiB\), got 127/,
    ],
    [{ samplePagesPerGiB: 16_385 }, /samplePagesPerGiB .* got 16385/],
    [{ samplePagesPerGiB: true }, /samplePagesPerGiB .* got true/],
  ])('refuses %j with ERR_INVALID_ARGUMENT', (options, message) => {
    expect(() => resolveDirtyRateOptions(options)).toThrow(code('ERR_INVALID_ARGUMENT'));
    expect(() => resolveDirtyRateOptions(options)).toThrow(message);
  });
});

describe('samplePageCount', () => {
  it('is samplePagesPerGiB per GiB, at least 256 pages, at most every page', () => {
    expect(samplePageCount(GiB, GiB / PAGE_SIZE, 512)).toBe(512);
    expect(samplePageCount(16 * GiB, (16 * GiB) / PAGE_SIZE, 16_384)).toBe(262_144);
    expect(samplePageCount(64 * MiB, (64 * MiB) / PAGE_SIZE, 512)).toBe(DIRTY_RATE_LIMITS.minSamplePages);
    expect(samplePageCount(64 * MiB, (64 * MiB) / PAGE_SIZE, 16_384)).toBe(1024);
    expect(samplePageCount(MiB, MiB / PAGE_SIZE, 16_384)).toBe(256); // every page of a 1 MiB VM
    // The engine's own measurement may ask for more (start-dirty-rate.ts), still at most every page.
    expect(samplePageCount(16 * MiB, (16 * MiB) / PAGE_SIZE, 16_384, 2048)).toBe(2048);
    expect(samplePageCount(4 * MiB, (4 * MiB) / PAGE_SIZE, 16_384, 2048)).toBe(1024);
    expect(samplePageCount(100 * PAGE_SIZE, 100, 512)).toBe(100);
  });
});

describe('choosePages', () => {
  it('draws distinct pages within the VM, ascending, the same for the same seed', () => {
    const pages = choosePages(16_384, 1024, 7);
    expect(pages).toHaveLength(1024);
    expect(new Set(pages).size).toBe(1024);
    for (let i = 1; i < pages.length; i++) expect(pages[i]!).toBeGreaterThan(pages[i - 1]!);
    expect(pages[pages.length - 1]!).toBeLessThan(16_384);
    expect(choosePages(16_384, 1024, 7)).toEqual(pages);
    expect(choosePages(16_384, 1024, 8)).not.toEqual(pages);
  });

  it('all pages, none, and a count that does not fit', () => {
    expect(Array.from(choosePages(300, 300, 1))).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(choosePages(300, 0, 1)).toHaveLength(0);
    expect(() => choosePages(300, 301, 1)).toThrow(code('ERR_INVALID_ARGUMENT'));
  });

  it('is uniform: over 400 seeds every page of 1024 is drawn about as often (the first and last too)', () => {
    const pageCount = 1024;
    const counts = new Array<number>(pageCount).fill(0);
    for (let seed = 0; seed < 400; seed++) for (const page of choosePages(pageCount, 256, seed)) counts[page]!++;
    // Each page: 400 draws of probability 1/4 → mean 100, standard deviation √75 ≈ 8.7.
    expect(Math.min(...counts)).toBeGreaterThan(100 - 45);
    expect(Math.max(...counts)).toBeLessThan(100 + 45);
    // Chi-square with 1023 degrees of freedom: mean 1023, sd ≈ 45; 1300 is > 6 sd out.
    const chi2 = counts.reduce((sum, c) => sum + (c - 100) ** 2 / 75, 0);
    expect(chi2).toBeLessThan(1300);
  });
});

describe('hashSamples and countChanged', () => {
  it('sees a page whose bytes changed, once however often it was written, and not one written with the same bytes', () => {
    const memory = GuestMemory.allocate(MiB);
    const pages = Uint32Array.from([0, 5, 9, 255]);
    const before = new Uint8Array(pages.length * 8);
    const after = new Uint8Array(pages.length * 8);
    hashSamples(memory, pages, before);
    memory.page(5)[17] = 1;
    memory.page(5)[18] = 2; // twice: still one page
    memory.page(9)[0] = 0; // the same byte again: not a change
    memory.page(255)[4095] = 9;
    memory.page(6)[0] = 1; // not sampled
    hashSamples(memory, pages, after);
    expect(countChanged(before, after)).toBe(2);
    expect(countChanged(before, before)).toBe(0);
    expect(() => countChanged(before, after.subarray(8))).toThrow(code('ERR_INVALID_ARGUMENT'));
  });
});

describe('estimateDirtyRate', () => {
  it('scales the changed fraction to all of memory over the window, with its standard error', () => {
    const estimate = estimateDirtyRate({
      memoryBytes: GiB,
      pageCount: GiB / PAGE_SIZE,
      pagesSampled: 512,
      pagesChanged: 128,
      windowMs: 1000,
    });
    expect(estimate.dirtyRateMBps).toBeCloseTo(268.435456, 9); // a quarter of 1073.741824 MB in 1 s
    // √(¼·¾/512 · (262144−512)/262143) of 1073.741824 MB/s
    expect(estimate.standardErrorMBps).toBeCloseTo(Math.sqrt((0.1875 / 512) * (261_632 / 262_143)) * 1073.741824, 9);
    expect(estimate).toMatchObject({ pagesSampled: 512, pagesChanged: 128, windowMs: 1000 });
    // Twice the window, half the rate.
    const longer = estimateDirtyRate({
      memoryBytes: GiB,
      pageCount: 262_144,
      pagesSampled: 512,
      pagesChanged: 128,
      windowMs: 2000,
    });
    expect(longer.dirtyRateMBps).toBeCloseTo(134.217728, 9);
  });

  it('has no sampling error when every page was sampled, and a 0 rate when none changed', () => {
    const all = estimateDirtyRate({
      memoryBytes: MiB,
      pageCount: 256,
      pagesSampled: 256,
      pagesChanged: 64,
      windowMs: 500,
    });
    expect(all.dirtyRateMBps).toBeCloseTo((0.25 * MiB) / 1e6 / 0.5, 12);
    expect(all.standardErrorMBps).toBe(0);
    const none = estimateDirtyRate({
      memoryBytes: GiB,
      pageCount: 262_144,
      pagesSampled: 512,
      pagesChanged: 0,
      windowMs: 1000,
    });
    expect(none).toMatchObject({ dirtyRateMBps: 0, standardErrorMBps: 0 });
    // The rule of three: below 3/512 of 1073.741824 MB per second at 95%.
    expect(rateUpperBound95({ pagesSampled: 512, memoryBytes: GiB, windowMs: 1000 })).toBeCloseTo(6.291456, 9);
  });

  it.each([
    { pagesSampled: 0, pagesChanged: 0, windowMs: 1000 },
    { pagesSampled: 10, pagesChanged: 11, windowMs: 1000 },
    { pagesSampled: 300, pagesChanged: 1, windowMs: 1000 },
    { pagesSampled: 10, pagesChanged: 1, windowMs: 0 },
  ])('refuses impossible inputs: %j', (input) => {
    expect(() => estimateDirtyRate({ memoryBytes: MiB, pageCount: 256, ...input })).toThrow(
      code('ERR_INVALID_ARGUMENT'),
    );
  });
});

describe('measureDirtyRate on memory written during the wait', () => {
  /** A clock that moves only when told: each pass takes 2 ms, the sleep what it was asked. */
  function fakeClock(): { now: () => number; advance: (ms: number) => void } {
    let t = 1000;
    return { now: () => t, advance: (ms) => (t += ms) };
  }

  it('counts the sampled pages written in the window and scales them; the window is middle to middle', async () => {
    const memory = GuestMemory.allocate(4 * MiB); // 1024 pages; 256 sampled
    const clock = fakeClock();
    const slept: number[] = [];
    let reads = 0;
    const counting = {
      bytes: memory.bytes,
      pageCount: memory.pageCount,
      page: (n: number) => {
        if (++reads % 256 === 0) clock.advance(2); // each pass of 256 pages takes 2 ms
        return memory.page(n);
      },
    };
    const measured = await measureDirtyRate(
      counting,
      { calcTimeMs: 500 },
      {
        seed: 42,
        now: clock.now,
        wallClock: () => 1_700_000_000_000,
        sleep: async (ms) => {
          slept.push(ms);
          clock.advance(ms);
          // The guest writes the first half of memory, some pages twice.
          for (let n = 0; n < 512; n++) memory.page(n)[n % PAGE_SIZE] = 1;
          for (let n = 0; n < 512; n += 2) memory.page(n)[0] = 7;
        },
      },
    );
    const sampled = choosePages(1024, 256, 42);
    const inFirstHalf = sampled.filter((n) => n < 512).length;
    expect(slept).toEqual([498]); // 500 ms middle to middle, less the first pass's 2 ms
    expect(measured).toEqual({
      dirtyRateMBps: ((inFirstHalf / 256) * 4 * MiB) / 1e6 / 0.5,
      standardErrorMBps: expect.any(Number) as number,
      pagesSampled: 256,
      pagesChanged: inFirstHalf,
      windowMs: 500,
      startedAt: 1_700_000_000_000,
      memoryBytes: 4 * MiB,
    } satisfies DirtyRateMeasurement);
    expect(measured.standardErrorMBps).toBeGreaterThan(0);
  });

  it('with checkpoints: the curve at 1/8, 1/4, 1/2 and all of the window, counted against the first pass', async () => {
    const memory = GuestMemory.allocate(MiB); // 256 pages: all sampled (the fewest a sample has)
    const clock = fakeClock();
    const slept: number[] = [];
    let written = 0;
    const measured = await measureDirtyRate(
      memory,
      { calcTimeMs: 800, samplePagesPerGiB: 16_384, checkpoints: 3 },
      {
        seed: 1,
        now: clock.now,
        sleep: async (ms) => {
          slept.push(ms);
          clock.advance(ms);
          // The guest writes 25 pages it never wrote before per wait.
          for (let i = 0; i < 25; i++, written++) memory.page(written)[7] = 1;
        },
      },
    );
    // Passes take no time on this clock: each wait ends at the next checkpoint.
    expect(slept).toEqual([100, 100, 200, 400]);
    expect(measured.curve).toEqual([
      { windowMs: 100, pagesChanged: 25 },
      { windowMs: 200, pagesChanged: 50 },
      { windowMs: 400, pagesChanged: 75 },
      { windowMs: 800, pagesChanged: 100 },
    ]);
    expect(measured).toMatchObject({ pagesSampled: 256, pagesChanged: 100, windowMs: 800, zeroPagesSampled: 256 });
  });

  it('keepPartial: cancelled after a checkpoint, the curve so far is the measurement; before one, ERR_CANCELLED', async () => {
    const memory = GuestMemory.allocate(MiB);
    const stop = new AbortController();
    let waits = 0;
    const sleep = async (_ms: number, signal?: AbortSignal): Promise<void> => {
      memory.page(waits)[0] = 9;
      if (++waits === 3) stop.abort('the VM paused');
      if (signal?.aborted) throw new Error('aborted');
    };
    const partial = await measureDirtyRate(
      memory,
      { calcTimeMs: 1000, checkpoints: 4, samplePagesPerGiB: 16_384 },
      { signal: stop.signal, sleep, keepPartial: true },
    );
    expect(partial.curve).toHaveLength(2);
    expect(partial.pagesChanged).toBe(partial.curve![1]!.pagesChanged);
    expect(partial.windowMs).toBe(partial.curve![1]!.windowMs);

    const early = new AbortController();
    early.abort('the VM paused');
    await expect(
      measureDirtyRate(memory, { checkpoints: 4 }, { signal: early.signal, keepPartial: true }),
    ).rejects.toThrow(code('ERR_CANCELLED'));
  });

  it('a paused guest: nothing changed, rate 0', async () => {
    const memory = GuestMemory.allocate(MiB);
    const measured = await measureDirtyRate(memory, { calcTimeMs: 100 }, { sleep: async () => {} });
    expect(measured).toMatchObject({ dirtyRateMBps: 0, pagesChanged: 0, pagesSampled: 256 });
  });

  it('ERR_CANCELLED when aborted in the wait, ERR_VM_STATE when the memory was released meanwhile', async () => {
    const stop = new AbortController();
    const waiting = measureDirtyRate(
      GuestMemory.allocate(MiB),
      { calcTimeMs: 60_000 },
      {
        signal: stop.signal,
        onFirstPass: () => queueMicrotask(() => stop.abort('the agent stops')),
      },
    );
    await expect(waiting).rejects.toThrow(code('ERR_CANCELLED'));
    await expect(waiting).rejects.toThrow(/cancelled: the agent stops/);

    const memory = GuestMemory.allocate(MiB);
    const released = measureDirtyRate(memory, {}, { sleep: async () => memory.release() });
    await expect(released).rejects.toThrow(code('ERR_VM_STATE'));
    await expect(released).rejects.toThrow(/destroyed or migrated away during the dirty-rate measurement/);
  });
});

describe('measureDirtyRate on a running ToyVm, against its own dirty log over the same window', () => {
  const vms: ToyVm[] = [];
  afterEach(async () => {
    await Promise.all(vms.splice(0).map((vm) => vm.destroy()));
  });

  /**
   * Measure `workload` on a 64 MiB VM sampling 1024 pages (16384 per GiB) over 1 s, with the dirty
   * log harvested just before the first pass and just after the second: the truth is the distinct
   * pages it names over that interval, as a rate.
   */
  async function measureAgainstTruth(workload: string, seed: number) {
    const vm = await ToyVm.boot(parseVmSpec({ memory: '64MiB', init: 'zero', workload, seed: 5 }));
    vms.push(vm);
    vm.start();
    await new Promise((resolve) => setTimeout(resolve, 200)); // past the vCPU's start
    vm.harvestDirty();
    const from = performance.now();
    const measured = await measureDirtyRate(vm.memory, { calcTimeMs: 1000, samplePagesPerGiB: 16_384 }, { seed });
    const dirty = vm.harvestDirty();
    const truthMBps = (dirty.length * PAGE_SIZE) / 1e6 / ((performance.now() - from) / 1000);
    // Every sampled page that changed is one the dirty log names (no false positives).
    const dirtySet = new Set(dirty);
    const sampledDirty = choosePages(vm.memory.pageCount, measured.pagesSampled, seed).filter((n) => dirtySet.has(n));
    return { measured, truthMBps, sampledDirty: sampledDirty.length, dirtyPages: dirty.length };
  }

  // The tolerance: 4 standard errors of the estimate (sampling), plus 3% of the truth for the edges
  // of the window (the log is harvested a pass's time before and after the hashes).
  const within = (m: DirtyRateMeasurement, truth: number): number => 4 * m.standardErrorMBps + 0.03 * truth;

  it.each([
    ['uniform:rate=8000', 11],
    ['hotset:wss=8MiB,rate=20000', 12],
  ])('%s (seed %i): the estimate is within 4 standard errors + 3 percent of the truth', async (workload, seed) => {
    const { measured, truthMBps, sampledDirty, dirtyPages } = await measureAgainstTruth(workload, seed);
    console.log(
      `${workload}: estimate ${measured.dirtyRateMBps.toFixed(2)} ± ${measured.standardErrorMBps.toFixed(2)} MB/s ` +
        `(${measured.pagesChanged}/${measured.pagesSampled} changed, ${measured.windowMs.toFixed(1)} ms), ` +
        `truth ${truthMBps.toFixed(2)} MB/s (${dirtyPages} pages dirty)`,
    );
    expect(dirtyPages).toBeGreaterThan(500); // the guest ran
    expect(measured.pagesSampled).toBe(1024);
    // Middle to middle: a second pass faster than the first (a warm JIT) ends the window a little early.
    expect(measured.windowMs).toBeGreaterThan(950);
    expect(measured.windowMs).toBeLessThan(1500);
    expect(measured.pagesChanged).toBeLessThanOrEqual(sampledDirty);
    expect(Math.abs(measured.dirtyRateMBps - truthMBps)).toBeLessThanOrEqual(within(measured, truthMBps));
  });

  it('a paused VM reports 0', async () => {
    const vm = await ToyVm.boot(
      parseVmSpec({ memory: '16MiB', init: 'random', workload: 'uniform:rate=8000', seed: 5 }),
    );
    vms.push(vm);
    const measured = await measureDirtyRate(vm.memory, { calcTimeMs: 100 });
    expect(measured).toMatchObject({ dirtyRateMBps: 0, pagesChanged: 0, pagesSampled: 256 });
  });
});
