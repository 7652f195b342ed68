/**
 * A process's OS threads as the kernel counts them (the entries of /proc/<pid>/task: its main
 * thread, libuv's and V8's pools, one per worker thread), read now, sampled in the background to
 * catch a peak between two observations (a worker that lived for a second), or waited for.
 */
import { readdirSync } from 'node:fs';
import { samplePeak, type PeakSampler } from './peak-sampler.ts';
import { waitUntil } from './wait.ts';

/** Threads of process `pid` now. */
export function threadCount(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).length;
}

/** Count the threads of `pid` every `intervalMs` until stop(); a process that is gone ends the sampling. */
export function sampleThreads(pid: number, intervalMs = 5): PeakSampler {
  return samplePeak(() => threadCount(pid), intervalMs);
}

/**
 * Wait until `pid` has exactly `expected` threads (a thread ends a little after the code that
 * ended it returned: terminate() and the join are asynchronous); fails with the count it last
 * saw after `timeoutMs`.
 */
export async function waitForThreads(pid: number, expected: number, what: string, timeoutMs = 10_000): Promise<void> {
  let last = -1;
  await waitUntil(
    () => {
      last = threadCount(pid);
      return last === expected;
    },
    { what: `${what} (${expected} threads)`, timeoutMs },
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; it had ${last} threads, expected ${expected}`);
  });
}
