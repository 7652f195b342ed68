// Pre-faults guest memory pages in a worker thread (see prefault.ts for why). Plain JavaScript
// on purpose: it needs no TypeScript loader, so it starts in milliseconds.
//
// workerData: { regions: SharedArrayBuffer[], regionBytes: number, pageBytes: number,
//               pages: Uint32Array (ascending page numbers), stop: Int32Array(1) (1 = stop) }
import { parentPort, workerData } from 'node:worker_threads';

const { regions, regionBytes, pageBytes, pages, stop } = workerData;
const pagesPerRegion = regionBytes / pageBytes;
const wordsPerPage = pageBytes / 4;
const views = regions.map((sab) => new Int32Array(sab));
let done = 0;
for (; done < pages.length; done++) {
  if ((done & 1023) === 0 && Atomics.load(stop, 0) !== 0) break;
  const page = pages[done];
  // An atomic OR with 0 is a write access (so the kernel allocates the page) that leaves the
  // value as it is, atomically: a receiver writing the same word at the same time loses nothing.
  Atomics.or(views[Math.floor(page / pagesPerRegion)], (page % pagesPerRegion) * wordsPerPage, 0);
}
parentPort.postMessage({ done });
