/**
 * Compression off the event loop: a fixed number of worker threads (compress-worker.mjs) that
 * compress and decompress page batches with the codecs of compress.ts, so an agent's sender,
 * heartbeats and control requests never wait behind a codec.
 *
 * Flow: compress()/decompress() copy their input at once (the caller may reuse or change its
 * buffer, e.g. live guest memory or a reused receive buffer, as soon as the call returns: the
 * copy is the snapshot that gets compressed), queue the job, and hand it to the first idle
 * worker; each worker runs one job at a time and hands the result back by transferring its
 * buffer. Results resolve in completion order, which with several workers is not the order of
 * the calls: the caller keeps its own order (e.g. batch sequence numbers).
 *
 * Bounds: at most `maxQueued` jobs (and `maxQueuedBytes` of their inputs) wait for a worker;
 * past that a call rejects at once with ERR_BUFFER_OVERFLOW, and `full` / whenNotFull() let the
 * caller hold back instead (backpressure). An input over `maxBatchBytes`, or a decompression
 * that would exceed it, is refused before any copy.
 *
 * Lifetime: workers start on demand (the first job, then one more whenever all are busy, up to
 * `workers`), hold the process open only while they run a job (unref'd when idle), and end with
 * close(), which rejects the jobs not done with ERR_CANCELLED and resolves when every thread has
 * exited. A worker that dies fails its job with ERR_INTERNAL and is replaced on demand.
 *
 * Cost (measured here on 256 KiB batches of text, code and machine code, a window of two batches
 * per worker, 2 vCPUs shared with other work): the caller's thread spends ~30–40 µs per batch
 * (the copy into a reused buffer and the hand-off; a fresh buffer would cost 90–390 µs in page
 * faults), 2–6% of the codec time. Throughput with 1 / 2 workers: lz4 210–240 / 390–490 MB/s,
 * brotli q1 140–150 / 270–290 MB/s (as the synchronous codecs per worker: the hand-off is not
 * the limit). A worker's first job also pays its start (tens of ms, once).
 */
import { Worker } from 'node:worker_threads';
import { MigrationError } from '../errors.ts';
import { processThreads, type ThreadHandle } from '../vm/thread-registry.ts';
import {
  DEFAULT_BROTLI_QUALITY,
  DEFAULT_MAX_BATCH_BYTES,
  asMigrationError,
  checkCodec,
  checkExpectedLength,
  checkQuality,
  type CompressionCodec,
} from './compress.ts';

/** Options of a CompressPool. */
export interface CompressPoolOptions {
  /** Worker threads (each one job at a time). @default 1 */
  workers?: number;
  /** Codec of compress()/decompress() calls that name none. @default 'lz4' */
  codec?: CompressionCodec;
  /** Brotli quality, 0–11. @default 1 */
  brotliQuality?: number;
  /** Jobs that may wait for a worker (running ones not counted). @default 64 */
  maxQueued?: number;
  /** Input bytes that may wait for a worker. @default 64 MiB */
  maxQueuedBytes?: number;
  /** Largest input to compress, and largest length to decompress to. @default 64 MiB */
  maxBatchBytes?: number;
}

/** Bytes in and out of one direction of a CompressPool. */
export interface CodecCounters {
  /** Jobs that succeeded. */
  jobs: number;
  /** Bytes given to those jobs. */
  inputBytes: number;
  /** Bytes they produced. */
  outputBytes: number;
}

/** What a CompressPool counted. */
export interface CompressPoolStats {
  /** compress() jobs: inputBytes raw, outputBytes compressed (ratio = outputBytes / inputBytes). */
  compressed: CodecCounters;
  /** decompress() jobs: inputBytes compressed, outputBytes raw. */
  decompressed: CodecCounters;
  /** Jobs that failed (bad input, a worker lost), not counting cancelled ones. */
  failed: number;
  /** Milliseconds each worker slot spent in codec work (index = slot; a replaced worker's time stays in its slot). */
  busyMs: number[];
  /** Jobs waiting for a worker. */
  queued: number;
  /** Jobs running. */
  running: number;
  /** Worker threads alive. */
  threads: number;
}

interface Job {
  id: number;
  op: 'compress' | 'decompress';
  codec: CompressionCodec;
  /** Brotli's quality for this job (compress only). */
  quality: number;
  /** Our copy of the input (detached once handed to the worker). */
  input: Uint8Array;
  /** Its length, kept for the counters. */
  inputLength: number;
  expectedLength: number;
  resolve: (output: Uint8Array) => void;
  reject: (error: MigrationError) => void;
}

interface Slot {
  index: number;
  worker: Worker;
  job: Job | undefined;
  /** The thread's CPU-time slot (thread-registry.ts), read once more before it is terminated. */
  thread: ThreadHandle;
}

/** The worker's answer; `input` is the job's input buffer coming back for reuse. */
type Reply =
  | { id: number; output: Uint8Array; input?: Uint8Array; busyMs: number }
  | { id: number; error: { code: string; message: string }; input?: Uint8Array; busyMs: number };

/** Input buffers are reused by size class (a power of two, at least 64 KiB). */
const MIN_BUFFER_CLASS = 64 * 1024;

/** A fixed-size pool of compression worker threads. */
export class CompressPool {
  /** The most worker threads that may run (raiseWorkers() lifts it). */
  workers: number;
  /** Default codec. */
  readonly codec: CompressionCodec;
  readonly #brotliQuality: number;
  readonly #maxQueued: number;
  readonly #maxQueuedBytes: number;
  readonly #maxBatchBytes: number;
  readonly #slots: (Slot | undefined)[];
  readonly #busyMs: number[];
  readonly #queue: Job[] = [];
  readonly #exits = new Set<Promise<void>>();
  readonly #spaceWaiters: (() => void)[] = [];
  /** Input buffers back from the workers, for the next jobs (at most 2 per worker). */
  readonly #spare: ArrayBuffer[] = [];
  #queuedBytes = 0;
  #nextId = 1;
  #closed = false;
  #threads = 0;
  #failed = 0;
  readonly #compressed: CodecCounters = { jobs: 0, inputBytes: 0, outputBytes: 0 };
  readonly #decompressed: CodecCounters = { jobs: 0, inputBytes: 0, outputBytes: 0 };

  constructor(options: CompressPoolOptions = {}) {
    const workers = options.workers ?? 1;
    const maxQueued = options.maxQueued ?? 64;
    const maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_BATCH_BYTES;
    const maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    positiveInteger('workers', workers);
    positiveInteger('maxQueued', maxQueued);
    positiveInteger('maxQueuedBytes', maxQueuedBytes);
    positiveInteger('maxBatchBytes', maxBatchBytes);
    this.codec = options.codec ?? 'lz4';
    checkCodec(this.codec);
    this.#brotliQuality = checkQuality(options.brotliQuality ?? DEFAULT_BROTLI_QUALITY);
    this.workers = workers;
    this.#maxQueued = maxQueued;
    this.#maxQueuedBytes = maxQueuedBytes;
    this.#maxBatchBytes = maxBatchBytes;
    this.#slots = new Array<Slot | undefined>(workers).fill(undefined);
    this.#busyMs = new Array<number>(workers).fill(0);
  }

  /**
   * `input` compressed with `codec` in a worker (brotli at `brotliQuality`, default the pool's).
   * The result may be larger than the input: the caller compares and sends raw then. The input
   * is copied before this returns.
   * @throws (rejects) ERR_BUFFER_OVERFLOW when the queue is full, ERR_INVALID_ARGUMENT for an
   *         input over maxBatchBytes, an unknown codec or a bad quality, ERR_CANCELLED once closed
   */
  compress(
    input: Uint8Array,
    codec: CompressionCodec = this.codec,
    brotliQuality: number = this.#brotliQuality,
  ): Promise<Uint8Array> {
    try {
      checkCodec(codec);
      checkQuality(brotliQuality);
      if (input.length > this.#maxBatchBytes) {
        throw new MigrationError(
          'ERR_INVALID_ARGUMENT',
          `compress: batch of ${input.length} bytes is over ${this.#maxBatchBytes}`,
        );
      }
    } catch (error) {
      return Promise.reject(error as MigrationError);
    }
    return this.#submit('compress', codec, input, 0, brotliQuality);
  }

  /**
   * `input` (a batch from the peer) decompressed with `codec` in a worker: exactly
   * `expectedLength` bytes; never allocates more than about twice that, whatever the input says.
   * The input is copied before this returns.
   * @throws (rejects) ERR_BAD_ENCODING for input that is not a batch of exactly `expectedLength`
   *         bytes or an `expectedLength` over maxBatchBytes, ERR_BUFFER_OVERFLOW when the queue is
   *         full, ERR_INVALID_ARGUMENT for an unknown codec, ERR_CANCELLED once closed
   */
  decompress(input: Uint8Array, expectedLength: number, codec: CompressionCodec = this.codec): Promise<Uint8Array> {
    try {
      checkCodec(codec);
      checkExpectedLength(expectedLength, this.#maxBatchBytes);
      if (input.length > this.#maxBatchBytes) {
        throw new MigrationError(
          'ERR_BAD_ENCODING',
          `a compressed batch of ${input.length} bytes is over ${this.#maxBatchBytes}`,
        );
      }
    } catch (error) {
      return Promise.reject(error as MigrationError);
    }
    return this.#submit('decompress', codec, input, expectedLength, this.#brotliQuality);
  }

  /** Jobs waiting for a worker plus jobs running. */
  get pending(): number {
    return this.#queue.length + this.#running();
  }

  /** True when another call would be refused with ERR_BUFFER_OVERFLOW (unless it is small enough for the bytes bound). */
  get full(): boolean {
    return this.#queue.length >= this.#maxQueued || this.#queuedBytes >= this.#maxQueuedBytes;
  }

  /** Resolves when the queue is not full (at once if it is not), or when the pool closes. */
  whenNotFull(): Promise<void> {
    if (!this.full || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#spaceWaiters.push(resolve));
  }

  /**
   * Allow up to `n` worker threads from now on (never fewer than now): a caller that finds the
   * codec, not its link, is the bottleneck adds one. The new ones start on demand, as the first.
   */
  raiseWorkers(n: number): void {
    positiveInteger('workers', n);
    if (n <= this.workers || this.#closed) return;
    this.#slots.push(...new Array<Slot | undefined>(n - this.workers).fill(undefined));
    this.#busyMs.push(...new Array<number>(n - this.workers).fill(0));
    this.workers = n;
    this.#pump();
  }

  /** Worker threads alive now. */
  get threads(): number {
    return this.#threads;
  }

  /** The counters (a fresh object each call). */
  get stats(): CompressPoolStats {
    return {
      compressed: { ...this.#compressed },
      decompressed: { ...this.#decompressed },
      failed: this.#failed,
      busyMs: [...this.#busyMs],
      queued: this.#queue.length,
      running: this.#running(),
      threads: this.#threads,
    };
  }

  /** Ends every worker thread; jobs not done reject with ERR_CANCELLED. Resolves when all threads have exited. */
  async close(): Promise<void> {
    this.#closed = true;
    const cancelled = new MigrationError('ERR_CANCELLED', 'the compress pool was closed');
    for (const job of this.#queue.splice(0)) job.reject(cancelled);
    this.#queuedBytes = 0;
    for (const slot of this.#slots) {
      if (!slot) continue;
      this.#slots[slot.index] = undefined;
      slot.job?.reject(cancelled);
      slot.job = undefined;
      slot.thread.seal();
      void slot.worker.terminate();
    }
    this.#wakeSpaceWaiters();
    await Promise.all([...this.#exits]);
  }

  #submit(
    op: Job['op'],
    codec: CompressionCodec,
    input: Uint8Array,
    expectedLength: number,
    quality: number,
  ): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new MigrationError('ERR_CANCELLED', 'the compress pool was closed'));
    const idle = this.#idleSlot();
    if (!idle && this.#queue.length > 0 && this.full) {
      return Promise.reject(
        new MigrationError(
          'ERR_BUFFER_OVERFLOW',
          `the compress queue is full (${this.#queue.length} jobs, ${this.#queuedBytes} bytes waiting)`,
        ),
      );
    }
    // The snapshot the worker gets (its buffer is transferred, so it must be our own), in a
    // buffer that came back from an earlier job when one fits: a fresh one costs more in page
    // faults (~90–390 µs per 256 KiB here) than the copy itself (~10 µs).
    const copy = new Uint8Array(this.#buffer(input.length), 0, input.length);
    copy.set(input);
    return new Promise<Uint8Array>((resolve, reject) => {
      const job: Job = {
        id: this.#nextId++,
        op,
        codec,
        quality,
        input: copy,
        inputLength: copy.length,
        expectedLength,
        resolve,
        reject,
      };
      if (idle) this.#run(idle, job);
      else {
        this.#queue.push(job);
        this.#queuedBytes += copy.length;
      }
    });
  }

  /** An idle slot, starting a worker in a free slot if none is idle. */
  #idleSlot(): Slot | undefined {
    let free = -1;
    for (let i = 0; i < this.#slots.length; i++) {
      const slot = this.#slots[i];
      if (slot === undefined) {
        if (free < 0) free = i;
      } else if (slot.job === undefined) {
        return slot;
      }
    }
    return free < 0 ? undefined : this.#start(free);
  }

  #start(index: number): Slot {
    const thread = processThreads.register('compress');
    const worker = new Worker(new URL('./compress-worker.mjs', import.meta.url), {
      workerData: { brotliQuality: this.#brotliQuality, thread: thread.slot },
      // Plain JavaScript: no loader to inherit (tsx's would only slow the start), and no parent
      // flag (e.g. --input-type) that a worker cannot take.
      execArgv: [],
    });
    worker.unref();
    const slot: Slot = { index, worker, job: undefined, thread };
    this.#slots[index] = slot;
    this.#threads++;
    let exited!: () => void;
    const exit = new Promise<void>((resolve) => (exited = resolve));
    this.#exits.add(exit);
    worker.on('message', (reply: Reply) => this.#settle(slot, reply));
    const lost = (why: string): void => {
      if (this.#slots[index] !== slot) return;
      this.#slots[index] = undefined;
      const job = slot.job;
      slot.job = undefined;
      if (job) {
        this.#failed++;
        job.reject(new MigrationError('ERR_INTERNAL', `a compress worker ${why}`));
      }
      this.#pump(); // queued jobs go to another worker, or a new one in this slot
    };
    worker.on('error', (error) => lost(`failed: ${error.message}`));
    worker.on('exit', (code) => {
      thread.ended();
      this.#threads--;
      this.#exits.delete(exit);
      exited();
      lost(`exited (code ${code})`);
    });
    return slot;
  }

  #run(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.ref(); // a job in flight keeps the process alive until it settles
    slot.worker.postMessage(
      {
        id: job.id,
        op: job.op,
        codec: job.codec,
        input: job.input,
        expectedLength: job.expectedLength,
        brotliQuality: job.quality,
      },
      [job.input.buffer as ArrayBuffer],
    );
  }

  #settle(slot: Slot, reply: Reply): void {
    const job = slot.job;
    if (!job || job.id !== reply.id) return;
    slot.job = undefined;
    slot.worker.unref();
    this.#busyMs[slot.index]! += reply.busyMs;
    if (reply.input) this.#recycle(reply.input.buffer as ArrayBuffer);
    if ('output' in reply) {
      const counters = job.op === 'compress' ? this.#compressed : this.#decompressed;
      counters.jobs++;
      counters.inputBytes += job.inputLength;
      counters.outputBytes += reply.output.length;
      job.resolve(reply.output);
    } else {
      this.#failed++;
      job.reject(
        asMigrationError(Object.assign(new Error(reply.error.message), { code: reply.error.code }), 'ERR_INTERNAL'),
      );
    }
    this.#pump();
  }

  /** Hands queued jobs to idle (or new) workers. */
  #pump(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      const slot = this.#idleSlot();
      if (!slot) break;
      const job = this.#queue.shift()!;
      this.#queuedBytes -= job.inputLength;
      this.#run(slot, job);
    }
    if (!this.full) this.#wakeSpaceWaiters();
  }

  /** A buffer of at least `length` bytes: a spare one of the right class, or a new one. */
  #buffer(length: number): ArrayBuffer {
    const size = Math.max(MIN_BUFFER_CLASS, 2 ** Math.ceil(Math.log2(Math.max(1, length))));
    const i = this.#spare.findIndex((b) => b.byteLength === size);
    return i < 0 ? new ArrayBuffer(size) : this.#spare.splice(i, 1)[0]!;
  }

  #recycle(buffer: ArrayBuffer): void {
    if (this.#closed || buffer.byteLength === 0) return;
    if (this.#spare.length >= 2 * this.workers) this.#spare.shift();
    this.#spare.push(buffer);
  }

  #wakeSpaceWaiters(): void {
    for (const wake of this.#spaceWaiters.splice(0)) wake();
  }

  #running(): number {
    let n = 0;
    for (const slot of this.#slots) if (slot?.job) n++;
    return n;
  }
}

function positiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `compress pool: ${name} must be a positive integer, not ${value}`);
  }
}
