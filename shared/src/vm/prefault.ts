/**
 * Pre-faulting a destination's guest memory. The first write to a page of fresh memory costs a
 * kernel page fault — 0.4–0.7 s per GiB on this kind of machine, several times more on a
 * machine whose memory was never touched since boot (PERFORMANCE.md) — which, on the receive
 * path, would halve the migration's throughput. A worker touches the pages that are going to
 * arrive (ascending, the order round 0 sends them) while the receiver follows behind, so the
 * faults happen in parallel with the transfer instead of inside it. QEMU gets the same effect
 * from `-mem-prealloc` on the destination.
 *
 * The touch is `Atomics.compareExchange(word, 0, 0)`: one real write access that changes nothing,
 * atomically, so a receiver writing the page at the same moment is never overwritten (not
 * `Atomics.or(word, 0)`, which V8 runs as a load then a CAS: two faults per fresh page). Correctness never depends
 * on the worker finishing: a page it has not reached yet simply faults on the receive path.
 *
 * The worker holds the memory's regions while it runs, so it stops by itself when the memory is
 * released (GuestMemory.release(), i.e. the VM was destroyed): otherwise a migration that failed
 * early would go on faulting in — and keeping — the memory of a VM that no longer exists.
 */
import { Worker } from 'node:worker_threads';
import type { GuestMemory } from './guest-memory.ts';
import { processThreads } from './thread-registry.ts';

export interface Prefault {
  /** Resolves with how many pages were touched when the worker ends. */
  readonly done: Promise<number>;
  /** Pages it set out to touch. */
  readonly pages: number;
  /** performance.now() when it started, and when it ended (undefined: running); the report says how long it took. */
  readonly startedAt: number;
  readonly doneAt: number | undefined;
  /** Pages touched (known once it ended; 0 before). */
  readonly touched: number;
  /** Ask the worker to stop early (e.g. the migration failed); resolves when it has. */
  stop(): Promise<number>;
}

/** Start pre-faulting `pages` (ascending page numbers) of `memory` in a worker thread. */
export function startPrefault(memory: GuestMemory, pages: Uint32Array): Prefault {
  const stopFlag = new Int32Array(new SharedArrayBuffer(4));
  const layout = memory.layout;
  const startedAt = performance.now();
  const thread = processThreads.register('prefault');
  const worker = new Worker(new URL('./prefault-worker.mjs', import.meta.url), {
    workerData: {
      regions: layout.regions,
      regionBytes: layout.regionBytes,
      pageBytes: memory.pageSize,
      pages,
      stop: stopFlag,
      thread: thread.slot,
    },
  });
  const stopOnRelease = memory.onRelease(() => Atomics.store(stopFlag, 0, 1));
  let touched = 0;
  let doneAt: number | undefined;
  const done = new Promise<number>((resolve) => {
    const end = (): void => {
      doneAt ??= performance.now();
      thread.ended();
      resolve(touched);
    };
    worker.on('message', (message: { done: number }) => {
      touched = message.done;
      doneAt = performance.now(); // its last act: the exit event comes a little later
    });
    worker.on('error', end);
    worker.on('exit', end);
  }).finally(stopOnRelease);
  return {
    done,
    pages: pages.length,
    startedAt,
    get doneAt() {
      return doneAt;
    },
    get touched() {
      return touched;
    },
    stop: () => {
      Atomics.store(stopFlag, 0, 1);
      return done;
    },
  };
}
