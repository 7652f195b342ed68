import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { Bitmap } from '../../../../shared/src/vm/bitmap.ts';
import { diffSnapshots, runReference, snapshotVm } from '../../../../shared/src/vm/oracle.ts';
import { ToyVm } from '../../../../shared/src/vm/toy-vm.ts';
import type { PageFault } from '../../../../shared/src/vm/vcpu.ts';
import { parseVmSpec } from '../../../../shared/src/vm/vm-spec.ts';

const spec = parseVmSpec({ memory: '2MiB', init: 'random', workload: 'hotset:wss=512KiB,rate=0', seed: 21 });
const vms: ToyVm[] = [];
afterEach(async () => {
  await Promise.all(vms.splice(0).map((vm) => vm.destroy()));
});

/** A paused source at `steps`, and a post-copy destination holding its CPU and device state but no pages. */
async function handOff(steps: number): Promise<{ source: ToyVm; dest: ToyVm }> {
  const source = await ToyVm.boot(spec);
  vms.push(source);
  await source.runSteps(steps, { fullSpeed: true });
  const dest = await ToyVm.createIncoming(spec, { postcopy: true });
  vms.push(dest);
  dest.importCpuState(source.exportCpuState());
  dest.importDeviceState(source.exportDeviceState());
  return { source, dest };
}

describe('post-copy fault path', () => {
  it('blocks the vCPU on an absent page, reports the fault, resumes when it is installed, ends equal to a reference', async () => {
    const reference = await runReference(spec, 60_000);
    const { source, dest } = await handOff(30_000);
    expect(dest.missingPages).toBe(dest.memory.pageCount);

    const faults: PageFault[] = [];
    let firstFault!: (f: PageFault) => void;
    const first = new Promise<PageFault>((resolve) => (firstFault = resolve));
    let serve = false;
    dest.onFault((fault) => {
      faults.push(fault);
      if (faults.length === 1) firstFault(fault);
      if (serve) dest.installPage(fault.page, source.memory.page(fault.page));
    });

    const before = Date.now();
    const run = dest.runSteps(30_000, { fullSpeed: true });
    const fault = await first;
    expect(dest.isPresent(fault.page)).toBe(false);
    expect(fault.time).toBeGreaterThanOrEqual(before - 1);
    expect(fault.time).toBeLessThanOrEqual(Date.now() + 1);
    const blockedAt = dest.steps;
    // The assertion: a vCPU blocked on a fault makes no progress — for at least 50 ms, and for as
    // long as a VM of the same spec takes to run 30000 steps, which this one would have run were it
    // not blocked (on a loaded machine 50 ms may pass without the vCPU thread being scheduled).
    await Promise.all([sleep(50), runReference(spec, 30_000)]);
    expect(dest.steps).toBe(blockedAt);
    expect(dest.status).toBe('running');

    serve = true;
    expect(dest.installPage(fault.page, source.memory.page(fault.page))).toBe(true);
    expect(dest.installPage(fault.page, new Uint8Array(4096))).toBe(false); // present pages are never overwritten
    await run;
    expect(dest.steps).toBe(60_000);
    expect(faults.length).toBeGreaterThan(1);
    expect(new Set(faults.map((f) => f.page)).size).toBe(faults.length); // each page faults once
    expect(dest.stats().faults).toBe(faults.length);
    expect(dest.stats().faultBlockedMs).toBeGreaterThan(40);

    // The background push: every page still missing comes from the source as it was at the handoff.
    for (let n = 0; n < source.memory.pageCount; n++) dest.installPage(n, source.memory.page(n));
    expect(dest.missingPages).toBe(0);
    expect(diffSnapshots(await snapshotVm(dest), reference)).toEqual([]);
  });

  it('pause() while blocked on a fault quiesces at a step boundary; the run continues after resume', async () => {
    const reference = await runReference(spec, 40_000);
    const { source, dest } = await handOff(20_000);
    let fault!: (f: PageFault) => void;
    const faulted = new Promise<PageFault>((resolve) => (fault = resolve));
    const off = dest.onFault((f) => fault(f));
    dest.start();
    await faulted;
    off();
    await dest.pause();
    expect(dest.status).toBe('paused');
    const cpu = dest.exportCpuState(); // consistent while blocked
    expect(Buffer.from(cpu).equals(Buffer.from(source.exportCpuState()))).toBe(true);
    dest.onFault((f) => dest.installPage(f.page, source.memory.page(f.page)));
    await dest.runSteps(40_000 - dest.steps, { fullSpeed: true });
    for (let n = 0; n < source.memory.pageCount; n++) dest.installPage(n, source.memory.page(n));
    expect(diffSnapshots(await snapshotVm(dest), reference)).toEqual([]);
  });

  it('markPresentExcept marks every page but the absent ones at once, and wakes a vCPU blocked on one of them', async () => {
    const reference = await runReference(spec, 50_000);
    const { source, dest } = await handOff(25_000);
    let faulted!: (f: PageFault) => void;
    const first = new Promise<PageFault>((resolve) => (faulted = resolve));
    const off = dest.onFault((f) => faulted(f));
    const run = dest.runSteps(25_000, { fullSpeed: true });
    const blockedOn = (await first).page;
    off();
    // A hybrid's switchover: most pages arrived in the rounds; every seventh one (not the one the
    // vCPU waits for) was dirtied since and stays absent.
    const absent = new Bitmap(dest.memory.pageCount);
    for (let n = 0; n < dest.memory.pageCount; n += 7) if (n !== blockedOn) absent.set(n);
    for (let n = 0; n < dest.memory.pageCount; n++) if (!absent.has(n)) dest.memory.writePage(n, source.memory.page(n));
    dest.onFault((f) => dest.installPage(f.page, source.memory.page(f.page)));
    dest.markPresentExcept(absent);
    expect(dest.missingPages).toBe(absent.count);
    expect(dest.isPresent(blockedOn)).toBe(true);
    expect(dest.isPresent(7 === blockedOn ? 14 : 7)).toBe(false);
    // Nothing else installs the page it waits for: only markPresentExcept's wake lets the run end.
    await run;
    for (let n = 0; n < source.memory.pageCount; n++) dest.installPage(n, source.memory.page(n));
    expect(diffSnapshots(await snapshotVm(dest), reference)).toEqual([]);
  });

  it('markPresentExcept refuses an absent map of another size and marks nothing', async () => {
    const { dest } = await handOff(1_000);
    expect(() => dest.markPresentExcept(new Bitmap(dest.memory.pageCount - 1))).toThrow(
      expect.objectContaining({ code: 'ERR_PAGE_OUT_OF_RANGE' }),
    );
    expect(dest.missingPages).toBe(dest.memory.pageCount);
  });

  it('once every page is present the vCPU raises no more faults', async () => {
    const reference = await runReference(spec, 50_000);
    const { source, dest } = await handOff(25_000);
    for (let n = 0; n < source.memory.pageCount; n++) dest.memory.writePage(n, source.memory.page(n));
    dest.markAllPresent();
    expect(dest.missingPages).toBe(0);
    let faults = 0;
    dest.onFault(() => faults++);
    await dest.runSteps(25_000, { fullSpeed: true });
    expect(faults).toBe(0);
    expect(diffSnapshots(await snapshotVm(dest), reference)).toEqual([]);
  });
});
