/**
 * N channel workers of one side of a multifd migration, as one unit (multifd-sender.ts and
 * multifd-receiver.ts build on it): start them, route their messages, wait for a message from
 * each with a deadline, and fail as one — the first worker that fails (or exits unasked) is the
 * pool's error, every other worker is stopped, and every wait rejects with that error. stop()
 * resolves only when every worker thread has exited (a worker that does not exit in time is
 * terminated), so nothing is left behind whichever way a migration ends.
 */
import { Worker } from 'node:worker_threads';
import { ERROR_CODES, MigrationError, type ErrorCode } from '../errors.ts';
import { processThreads, type ThreadRegistry } from '../vm/thread-registry.ts';

/** A worker's message: every one has a type; `failed` carries a code. */
export interface WorkerMessage {
  type: string;
  code?: string;
  message?: string;
}

/** A worker asked to stop that has not exited by then is terminated. */
const EXIT_GRACE_MS = 2000;

export class ChannelPool<In extends WorkerMessage> {
  readonly #workers: Worker[];
  readonly #exited: Promise<void>[];
  /** Per worker: it said `stopped` (it touches guest memory no more) or exited. */
  readonly #quiet: Promise<void>[];
  #error: MigrationError | undefined;
  #stopping = false;
  readonly #waiters = new Set<(error: MigrationError) => void>();
  /** Called with each worker's messages other than `failed` (index = channel). */
  onMessage: ((index: number, message: In) => void) | undefined;
  /** Called once, with the pool's first error (after every worker was asked to stop). */
  onFailure: ((error: MigrationError) => void) | undefined;

  constructor(
    script: URL,
    data: (index: number, thread: SharedArrayBuffer) => object,
    count: number,
    name: string,
    threads: ThreadRegistry = processThreads,
  ) {
    this.#workers = [];
    this.#exited = [];
    this.#quiet = [];
    for (let i = 0; i < count; i++) {
      const handle = threads.register(`${name}-${i}`);
      const worker = new Worker(script, { workerData: data(i, handle.slot) });
      this.#workers.push(worker);
      worker.on('message', (message: In) => {
        if (message.type === 'failed') this.fail(toError(message));
        else this.onMessage?.(i, message);
      });
      worker.on('error', (error) =>
        this.fail(new MigrationError('ERR_INTERNAL', `channel ${i}'s worker threw: ${error.message}`)),
      );
      const exited = new Promise<void>((resolve) => {
        worker.once('exit', (code) => {
          handle.ended();
          if (!this.#stopping)
            this.fail(new MigrationError('ERR_CONNECTION', `channel ${i}'s worker exited (code ${code})`));
          resolve();
        });
      });
      this.#exited.push(exited);
      this.#quiet.push(
        Promise.race([
          exited,
          new Promise<void>((resolve) => {
            const onStopped = (message: In): void => {
              if (message.type !== 'stopped') return;
              worker.off('message', onStopped);
              resolve();
            };
            worker.on('message', onStopped);
          }),
        ]),
      );
    }
  }

  get size(): number {
    return this.#workers.length;
  }

  /** The pool's first error, if it failed. */
  get error(): MigrationError | undefined {
    return this.#error;
  }

  post(index: number, message: object, transfer: ArrayBuffer[] = []): void {
    if (this.#error || this.#stopping) return;
    this.#workers[index]!.postMessage(message, transfer);
  }

  /**
   * Resolves once `done()` returns true (asked after every message from any worker), rejects with
   * the pool's error, or ERR_TIMEOUT naming `what` after `timeoutMs`.
   */
  waitUntil(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const finish = (error?: MigrationError): void => {
        clearTimeout(timer);
        this.#waiters.delete(onError);
        for (const worker of this.#workers) worker.off('message', onMessage);
        if (error) reject(error);
        else resolve();
      };
      const onError = (error: MigrationError): void => finish(error);
      // After the pool's own listener (registered first) has handled the message.
      const onMessage = (): void => {
        if (!this.#error && done()) finish();
      };
      const timer = setTimeout(
        () => finish(new MigrationError('ERR_TIMEOUT', `${what}: not within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#waiters.add(onError);
      for (const worker of this.#workers) worker.on('message', onMessage);
    });
  }

  /** Fail the pool with `error` (the first one wins): stop every worker, reject every wait. */
  fail(error: MigrationError): void {
    if (this.#error || this.#stopping) return;
    this.#error = error;
    for (const waiter of [...this.#waiters]) waiter(error);
    this.onFailure?.(error);
    void this.stop();
  }

  /**
   * Ask every worker to stop; resolves once each said it stopped (its socket closed: it writes no
   * more into guest memory) or exited — sooner than stop(), which waits for the threads to end.
   * Never throws.
   */
  async quiesce(): Promise<void> {
    this.#askToStop();
    await Promise.all(this.#quiet);
  }

  /** Stop every worker; resolves once all have exited. Never throws. */
  async stop(): Promise<void> {
    this.#askToStop();
    await Promise.all(this.#exited);
  }

  #askToStop(): void {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#workers.forEach((worker, i) => {
        worker.postMessage({ type: 'stop' });
        const timer = setTimeout(() => void worker.terminate(), EXIT_GRACE_MS);
        void this.#exited[i]!.then(() => clearTimeout(timer));
      });
    }
  }
}

function toError(message: WorkerMessage): MigrationError {
  const code =
    typeof message.code === 'string' && message.code in ERROR_CODES ? (message.code as ErrorCode) : 'ERR_CONNECTION';
  return new MigrationError(code, message.message ?? 'a channel failed');
}
