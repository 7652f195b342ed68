// Worker threads do not inherit tsx's loader, so every worker starts here: register tsx in
// this thread, then import the TypeScript entry named in workerData.entry (a file: URL).
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
