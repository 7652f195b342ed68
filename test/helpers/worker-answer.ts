import type { Worker } from 'node:worker_threads';

/** The first message `worker` posts (rejects on its error), then the worker terminated either way. */
export async function firstMessageThenTerminate<T = unknown>(worker: Worker): Promise<T> {
  try {
    return await new Promise<T>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  } finally {
    await worker.terminate();
  }
}
