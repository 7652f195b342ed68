// The source's post-copy fault worker's first module (fault-worker.ts starts it): it announces
// the thread for the report's CPU time per thread, then loads the TypeScript half
// (fault-worker-thread.ts) through tsx, as a worker does not inherit the main thread's loader.
//
// workerData: see FaultWorkerData in fault-worker.ts. This file reads thread and entry.
import { workerData } from 'node:worker_threads';
import { prioritizeFaultThread } from '../../../shared/src/vm/fault-priority.mjs';
import { announceThread, sealThread } from '../../../shared/src/vm/thread-cpu.mjs';

// The host reads this thread's CPU time by its id (the report's `fault` thread); the final figure
// is sealed as the thread exits (the TypeScript half ends it with process.exit()).
announceThread(workerData.thread);
process.on('exit', () => sealThread(workerData.thread));
// Ahead of the bulk work on a busy machine (fault-priority.mjs): a blocked guest waits for this thread.
prioritizeFaultThread();

// The entry is a bundle of it (shared/src/worker-bundle.ts), or the TypeScript itself through tsx.
if (/\.[cm]?ts$/.test(workerData.entry)) (await import('tsx/esm/api')).register();
await import(workerData.entry);
