// Worker threads do not inherit tsx's loader, so a worker running TypeScript starts here and
// imports workerData.entry (a file: URL): a plain-JavaScript bundle of it (worker-bundle.ts), or
// the TypeScript entry itself after registering tsx in this thread (no bundle built yet).
import { workerData } from 'node:worker_threads';

if (/\.[cm]?ts$/.test(workerData.entry)) (await import('tsx/esm/api')).register();
await import(workerData.entry);
