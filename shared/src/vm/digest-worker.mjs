// The digest worker thread (see digest-worker.ts): hashes guest memory over its
// SharedArrayBuffer regions — no copy — with the same code as the agent's digest
// (digest-pages.mjs). Plain JavaScript on purpose: it needs no TypeScript loader, so it starts in
// milliseconds and costs a few MiB.
//
// At start it lowers its own thread's CPU priority to the lowest (nice 19, Linux: a thread is a
// task that setpriority() takes by its id): a digest may use idle CPU, never CPU a migration or a
// vCPU wants. Elsewhere it runs at normal priority.
//
// in:  { id, bytes, regionBytes, pageBytes, regions: SharedArrayBuffer[], stop: Int32Array(1) }
// out: { id, digest } | { id, error: { stopped: boolean, message } }
// Jobs run one after the other; a job's regions are dropped when it ends.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { digestPages } from './digest-pages.mjs';
import { announceThread } from './thread-cpu.mjs';

// Its id, so the agent can read its CPU time for migration reports (thread-cpu.mjs).
announceThread(workerData?.thread);

try {
  setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 19);
} catch {
  // Not Linux (no /proc/thread-self): run at normal priority.
}

let queue = Promise.resolve();
parentPort.on('message', (job) => {
  queue = queue.then(() => run(job));
});

async function run({ id, bytes, regionBytes, pageBytes, regions, stop }) {
  const views = regions.map((region) => new Uint8Array(region));
  const pagesPerRegion = regionBytes / pageBytes;
  const page = (n) => {
    const offset = (n % pagesPerRegion) * pageBytes;
    return views[Math.floor(n / pagesPerRegion)].subarray(offset, offset + pageBytes);
  };
  try {
    const digest = await digestPages(bytes / pageBytes, page, { stopped: () => Atomics.load(stop, 0) !== 0 });
    parentPort.postMessage({ id, digest });
  } catch (error) {
    parentPort.postMessage({
      id,
      error: { stopped: error?.code === 'STOPPED', message: String(error?.message ?? error) },
    });
  }
}
