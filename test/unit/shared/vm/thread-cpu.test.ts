/**
 * A thread's CPU time (thread-cpu.mjs, thread-registry.ts): schedstat's first field parsed, and
 * read for real — in this thread and, by its announced id, for a worker that burns CPU — without
 * the worker answering anything; a worker that ends keeps its sealed figure, and one the host
 * terminates keeps the figure read just before. Linux only (elsewhere every figure is null).
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  newThreadSlot,
  ownThreadId,
  parseSchedstat,
  readThreadSlot,
  threadCpuNs,
} from '../../../../shared/src/vm/thread-cpu.mjs';
import { startPrefault } from '../../../../shared/src/vm/prefault.ts';
import { GuestMemory } from '../../../../shared/src/vm/guest-memory.ts';
import { processThreads, ThreadRegistry } from '../../../../shared/src/vm/thread-registry.ts';
import { threadsBetween } from '../../../../shared/src/report/threads.ts';

const THREAD_CPU = new URL('../../../../shared/src/vm/thread-cpu.mjs', import.meta.url).href;

describe('parseSchedstat', () => {
  it('takes the first field of "<run ns> <wait ns> <slices>"', () => {
    expect(parseSchedstat('98831797 5493291 59\n')).toBe(98_831_797);
    expect(parseSchedstat('0 0 0')).toBe(0);
  });
  it.each(['', 'abc', '1 2', '-5 1 1', '1.5 2 3', '1 2 3 4', '99999999999999999999 1 1', undefined])(
    'is null for %j',
    (text) => {
      expect(parseSchedstat(text)).toBeNull();
    },
  );
});

/**
 * A worker that announces itself in `slot`, burns `busyMs` of CPU — its own CPU time, as the
 * kernel counts it, not wall time: on a loaded machine 150 ms of wall time gave it less than 100
 * of CPU — then seals (`seal`) or just waits to be terminated; it posts 'busy-done' when it
 * stopped burning.
 */
function burner(slot: SharedArrayBuffer, busyMs: number, seal: boolean): Worker {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.module).then((t) => {
      t.announceThread(workerData.slot);
      const from = t.threadCpuNs();
      const deadline = performance.now() + 10000; // a counter that never grew fails the test, not hangs it
      let x = 0;
      while (t.threadCpuNs() - from < workerData.busyMs * 1e6 && performance.now() < deadline)
        for (let i = 0; i < 1e5; i++) x++;
      if (workerData.seal) t.sealThread(workerData.slot);
      parentPort.postMessage('busy-done');
      if (!workerData.seal) setInterval(() => {}, 1000);
    });`;
  return new Worker(code, { eval: true, workerData: { module: THREAD_CPU, slot, busyMs, seal } });
}

/**
 * The worker's first message, and its exit — both listened for from the start: when the host is
 * slow to get to the message, the worker has exited by then, and Node delivers its last messages
 * and 'exit' in one go, before a listener added after the message could be (CI hung there 60 s).
 * Either rejects if the worker throws.
 */
function watch(worker: Worker): { message: Promise<unknown>; exit: Promise<unknown> } {
  return { message: once(worker, 'message'), exit: once(worker, 'exit') };
}

describe.runIf(process.platform === 'linux')('reading threads (Linux)', () => {
  it('reads this thread’s CPU time, which grows as it runs', () => {
    expect(ownThreadId()).toBeGreaterThan(0);
    const before = threadCpuNs()!;
    // Spin until 20 ms of this thread's CPU time went by (wall time would depend on the load);
    // a counter that never grew would leave the loop by the deadline and fail below.
    const deadline = performance.now() + 10_000;
    while (threadCpuNs()! - before < 20e6 && performance.now() < deadline);
    expect(threadCpuNs()! - before).toBeGreaterThanOrEqual(20e6);
    expect(threadCpuNs(ownThreadId()!)).toBeGreaterThanOrEqual(before);
    expect(threadCpuNs(2 ** 30)).toBeNull(); // no such thread
  });

  it('reads a busy worker by its id without asking it, and keeps its sealed figure once it ended', async () => {
    const registry = new ThreadRegistry();
    const handle = registry.register('burner');
    const worker = watch(burner(handle.slot, 150, true));
    const start = registry.snapshot();
    await worker.message;
    const { tid, finalNs } = readThreadSlot(handle.slot);
    expect(tid).toBeGreaterThan(0);
    expect(finalNs).toBeGreaterThan(100e6);
    await worker.exit;
    handle.ended();
    const end = registry.snapshot();
    const side = threadsBetween(start, end);
    const burnt = side.threads.find((t) => t.name === 'burner')!;
    // Born inside the window: all of its ~150 ms (and its start) count, and never more than it was alive.
    expect(burnt.cpuMs).toBeGreaterThan(100);
    expect(burnt.cpuMs!).toBeLessThanOrEqual(burnt.wallMs * 1.05);
    expect(registry.live).toBe(0);
  });

  it('keeps the figure read just before a worker is terminated (it cannot seal)', async () => {
    const registry = new ThreadRegistry();
    const handle = registry.register('burner');
    const worker = burner(handle.slot, 100, false);
    await once(worker, 'message'); // it never exits by itself: terminate() below ends it
    handle.seal();
    const sealed = readThreadSlot(handle.slot).finalNs;
    expect(sealed).toBeNull(); // the host's reading is its own, not written into the worker's slot
    await worker.terminate();
    handle.ended();
    const cpu = registry.snapshot().threads.find((t) => t.name === 'burner')!;
    expect(cpu.cpuNs).toBeGreaterThan(80e6);
    expect(cpu.endedAt).toBeDefined();
  });

  it('a fresh slot says: no thread yet, not ended', () => {
    expect(readThreadSlot(newThreadSlot())).toEqual({ tid: null, finalNs: null });
  });

  it('the prefault worker reports its CPU time and how long it took', async () => {
    const memory = GuestMemory.allocate(8 * 1024 * 1024);
    const pages = Uint32Array.from({ length: memory.pageCount }, (_, n) => n);
    const start = processThreads.snapshot();
    const prefault = startPrefault(memory, pages);
    expect(await prefault.done).toBe(memory.pageCount);
    expect(prefault.touched).toBe(memory.pageCount);
    expect(prefault.doneAt! - prefault.startedAt).toBeGreaterThan(0);
    const side = threadsBetween(start, processThreads.snapshot());
    const thread = side.threads.find((t) => t.name === 'prefault')!;
    expect(thread.cpuMs).toBeGreaterThan(0);
    memory.release();
  });
});
