// Pre-faults guest memory pages in a worker thread (see prefault.ts for why). Plain JavaScript
// on purpose: it needs no TypeScript loader, so it starts in milliseconds.
//
// workerData: { regions: SharedArrayBuffer[], regionBytes: number, pageBytes: number,
//               pages: Uint32Array (ascending page numbers), stop: Int32Array(1) (1 = stop),
//               thread: SharedArrayBuffer (thread-cpu.mjs: its id and CPU time for the report) }
import { parentPort, workerData } from 'node:worker_threads';
import { announceThread, sealThread } from './thread-cpu.mjs';

const { regions, regionBytes, pageBytes, pages, stop, thread } = workerData;
announceThread(thread);
const pagesPerRegion = regionBytes / pageBytes;
const wordsPerPage = pageBytes / 4;
const views = regions.map((sab) => new Int32Array(sab));
let done = 0;
for (; done < pages.length; done++) {
  if ((done & 1023) === 0 && Atomics.load(stop, 0) !== 0) break;
  const page = pages[done];
  // compareExchange(0 → 0) is one locked write access (so the kernel allocates the page) that
  // never changes the value, atomically: a receiver writing the same word at the same time loses
  // nothing. Not Atomics.or(…, 0): V8 does that as a load, then a CAS, and on a fresh page the load
  // maps the shared zero page and the CAS faults a second time (~0.63 s vs ~0.38 s per GiB here).
  Atomics.compareExchange(views[Math.floor(page / pagesPerRegion)], (page % pagesPerRegion) * wordsPerPage, 0, 0);
}
sealThread(thread);
parentPort.postMessage({ done });
