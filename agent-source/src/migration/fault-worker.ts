/**
 * The source's post-copy fault worker, main-thread side: a worker thread that owns the fault
 * channel, so a PageRequest is answered the moment it arrives instead of after whatever push batch
 * holds this thread's event loop (measured: ~10 ms at p99, most of the fault latency's tail). It
 * is the source's half of QEMU's postcopy-preempt channel; the destination's half is its fault
 * thread (agent-dest fault-thread.ts), and this worker is used exactly when the destination
 * negotiated `fault-thread` — a destination without it gets the fault channel on this thread, as
 * before. The wire is the same either way.
 *
 * Node cannot hand a socket to a worker, so the worker connects itself (fault-worker-thread.ts):
 * to the destination's fault thread (the port SetupDone named, on the data host), with the same
 * TLS identity (this agent's certificate, the destination's expected name) and the same Hello →
 * Welcome → Attach fault as ChannelSet does on this thread; a destination whose thread is gone
 * (its port refused) gets the fault channel on its main port from this thread, as before. It reads
 * the pages straight from the source's guest memory (a SharedArrayBuffer; paused from the
 * switchover on), and what it sent goes into state shared with the pusher (fault-answers.ts):
 * per-page claims the push reads without blocking (it skips what the worker answered), and the
 * worker's counters, which this side folds into the report.
 *
 * Failures: the worker's channel failing (the link, or the destination's hostile input refused
 * with a code) rejects serve() with that error, and the migration recovers as when its fault
 * channel breaks. The worker dying rejects whatever waits on it with ERR_FAULT_THREAD: the channel
 * it owned is gone with it, recovery reconnects, and ChannelSet opens the new fault channel on
 * this thread (the main-thread path) for the rest of the migration. stop() ends it; every worker
 * started is counted in liveFaultWorkers() until it has exited.
 *
 * LIVEMIG_SOURCE_FAULT_WORKER=off keeps the fault channel on the main thread (to measure both paths
 * side by side in one run).
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { MigrationError, workerEntry, type ErrorCode } from '@livemig/shared';
import type { SourceTls } from '@livemig/shared/channel';
import type { Capability } from '@livemig/shared/protocol';
import { processThreads, type GuestMemoryLayout, type ThreadHandle } from '@livemig/shared/vm';
import type { MigrationContext } from './context.ts';
import type { PostcopyPusher } from './sections/ram/postcopy-pusher.ts';

/** How the worker reaches the destination: what the main thread's connect() uses, as plain data. */
export interface FaultWorkerConfig {
  /** The destination's data host (its fault thread listens there, on the port SetupDone names). */
  host: string;
  /** This agent's name in Hello. */
  agentId: string;
  /** What to offer in Hello (the same as the main connection). @default all known */
  capabilities?: readonly Capability[] | undefined;
  /** Mutual TLS, checking the destination's name. @default plaintext */
  tls?: SourceTls | undefined;
}

export interface FaultWorkerOptions extends FaultWorkerConfig {
  /** The source VM's guest memory. */
  memory: GuestMemoryLayout;
  logger: Logger;
}

/** What the worker is started with (workerData). */
export interface FaultWorkerData {
  entry: string;
  host: string;
  agentId: string;
  capabilities: readonly Capability[] | null;
  tls: SourceTls | null;
  memory: GuestMemoryLayout;
  /** One BigInt64: bytes the worker handed to its fault channels, all of them. */
  wire: SharedArrayBuffer;
  /** Its CPU-time slot (thread-registry.ts): the report's `fault` thread. */
  thread: SharedArrayBuffer;
}

export type ToFaultWorker =
  | { type: 'connect'; id: number; migrationId: string; port: number; token: string }
  | { type: 'serve'; answers: SharedArrayBuffer; round: number }
  | { type: 'close'; id: number; error: { code: ErrorCode; message: string } | null }
  | { type: 'stop' };

export type FromFaultWorker =
  | { type: 'ready' }
  | { type: 'connected'; id: number }
  | { type: 'connect-failed'; id: number; code: ErrorCode; message: string; refused: boolean }
  | { type: 'lost'; code: ErrorCode; message: string }
  | { type: 'closed'; id: number }
  | { type: 'log'; level: 'info' | 'warn'; text: string; fields: Record<string, unknown> };

/** The worker must have loaded within this (it loads its TypeScript through tsx: hundreds of ms on a busy machine). */
const READY_TIMEOUT_MS = 20_000;
/** A worker asked to stop that has not exited by then is terminated. */
const EXIT_GRACE_MS = 2000;
/**
 * A worker that has not answered a connect (its own deadline: 10 s to Welcome) or a close by then
 * is wedged: it is terminated, and whoever waited hears ERR_FAULT_THREAD.
 */
const CONNECT_ANSWER_MS = 15_000;
const CLOSE_ANSWER_MS = 2000;
/** The fault worker's TypeScript entry (its bundle: worker-bundle.ts; a function: see vcpuWorkerEntry). */
export function faultWorkerEntry(): string {
  return new URL('./fault-worker-thread.ts', import.meta.url).href;
}

/** The environment switch that keeps the fault channel on the main thread. */
export const FAULT_WORKER_ENV = 'LIVEMIG_SOURCE_FAULT_WORKER';

const live = new Set<SourceFaultWorker>();

/** The source fault workers of this process that have not exited yet (none is left behind by a migration). */
export function liveFaultWorkers(): ReadonlySet<SourceFaultWorker> {
  return live;
}

/** False when the environment asks for the main-thread path (LIVEMIG_SOURCE_FAULT_WORKER=off). */
export function faultWorkerEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[FAULT_WORKER_ENV] !== 'off';
}

/**
 * Setup, once the main connection negotiated `fault-thread`, in a mode that runs the VM with pages
 * absent: start the fault worker beside Setup (it loads while the destination builds the VM), for
 * ChannelSet to open the fault channel in. Nothing without an address for it or when switched off.
 */
export function startFaultWorker(ctx: MigrationContext): void {
  const target = ctx.multifdTarget;
  if (!target || !faultWorkerEnabled()) return;
  const worker = SourceFaultWorker.start({
    host: target.host,
    agentId: ctx.agentName,
    // What the main connection negotiated: the fault channel negotiates the same.
    capabilities: [...ctx.channels.capabilities],
    tls: target.tls,
    memory: ctx.vm.memory.layout,
    logger: ctx.logger,
  });
  ctx.channels.useFaultWorker(worker);
}

interface Pending {
  resolve: (message: FromFaultWorker) => void;
  reject: (error: MigrationError) => void;
}

export class SourceFaultWorker {
  readonly #worker: Worker;
  readonly #thread: ThreadHandle;
  readonly #logger: Logger;
  readonly #wire: BigInt64Array;
  readonly #ready: Promise<void>;
  readonly #exited: Promise<void>;
  #alive = true;
  #stopping = false;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  /** Why the worker's current fault channel failed (sticky until a new one connects). */
  #channelFailure: MigrationError | undefined;
  /** serve() waiting for the channel to fail. */
  #serving: ((error: MigrationError) => void) | undefined;
  #death: MigrationError | undefined;

  private constructor(options: FaultWorkerOptions) {
    this.#logger = options.logger;
    const wire = new SharedArrayBuffer(8);
    this.#wire = new BigInt64Array(wire);
    // Counted in the report's threads as `fault` (where the source's cores went).
    const thread = (this.#thread = processThreads.register('fault'));
    const data: FaultWorkerData = {
      entry: workerEntry(faultWorkerEntry()),
      host: options.host,
      agentId: options.agentId,
      capabilities: options.capabilities ?? null,
      tls: options.tls ?? null,
      memory: options.memory,
      wire,
      thread: thread.slot,
    };
    this.#worker = new Worker(new URL('./fault-worker-boot.mjs', import.meta.url), { workerData: data });
    live.add(this);
    this.#exited = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        thread.ended();
        live.delete(this);
        this.#died(`it exited (code ${code})`);
        this.#logger.info({ event: 'fault-worker.exited', code }, 'the fault worker ended');
        resolve();
      });
    });
    this.#ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new MigrationError('ERR_FAULT_THREAD', `the fault worker did not start within ${READY_TIMEOUT_MS} ms`));
        void this.#worker.terminate();
      }, READY_TIMEOUT_MS);
      this.#worker.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      void this.#exited.then(() => {
        clearTimeout(timer);
        reject(this.#death ?? new MigrationError('ERR_FAULT_THREAD', 'the fault worker exited'));
      });
    });
    this.#ready.catch(() => {}); // whoever waits on it hears why
    this.#worker.on('message', (message: FromFaultWorker) => this.#onMessage(message));
    this.#worker.on('error', (error) => this.#died(`it threw: ${error.message}`));
  }

  /** Start a fault worker (it loads in the background; open() waits for it). */
  static start(options: FaultWorkerOptions): SourceFaultWorker {
    return new SourceFaultWorker(options);
  }

  /** False once the worker died or was stopped. */
  get alive(): boolean {
    return this.#alive;
  }

  /** Bytes the worker handed to its fault channels so far, headers included (all of them, also after it ended). */
  get wireBytes(): number {
    return Number(Atomics.load(this.#wire, 0));
  }

  /**
   * Open the fault channel in the worker: to the destination's fault thread at `port` on its host,
   * attached with the thread's `token`. Rejects like a connect on this thread (ERR_CONNECTION with
   * ECONNREFUSED in its cause when nobody listens there), or ERR_FAULT_THREAD if the worker is
   * dead or dies meanwhile.
   */
  async open(migrationId: string, port: number, token: string): Promise<void> {
    await this.#ready;
    const reply = await this.#request((id) => ({ type: 'connect', id, migrationId, port, token }), CONNECT_ANSWER_MS);
    if (reply.type === 'connect-failed') {
      throw new MigrationError(reply.code, `fault worker: ${reply.message}`, {
        ...(reply.refused ? { cause: Object.assign(new Error(reply.message), { code: 'ECONNREFUSED' }) } : {}),
      });
    }
    this.#channelFailure = undefined;
    this.#logger.info({ event: 'fault-worker.attached' }, "the source's fault worker owns the fault channel");
  }

  /**
   * Let the worker answer the requests on its channel from `pusher`'s pages (at the switchover,
   * and after each reconnect once the pusher is resynced). Never resolves: rejects with the
   * channel's error when it fails, ERR_FAULT_THREAD when the worker dies, the abort reason on abort.
   */
  serve(pusher: PostcopyPusher, signal: AbortSignal): Promise<never> {
    const failed = this.#death ?? this.#channelFailure;
    if (failed) return Promise.reject(failed);
    this.arm(pusher);
    return new Promise<never>((_, reject) => {
      const onAbort = (): void => fail(signal.reason as MigrationError);
      const fail = (error: MigrationError): void => {
        signal.removeEventListener('abort', onAbort);
        if (this.#serving === fail) this.#serving = undefined;
        reject(error);
      };
      // A serve() of an earlier attempt (its push completed, or failed on the main channel) ends here.
      this.#serving?.(new MigrationError('ERR_CONNECTION', 'superseded by a new attempt'));
      this.#serving = fail;
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Let the worker answer the requests on its channel from `pusher`'s pages now (idempotent): at the
   * switchover, so the first faults after the destination resumes do not wait for this thread.
   */
  arm(pusher: PostcopyPusher): void {
    this.#post({ type: 'serve', answers: pusher.answers.buffer, round: pusher.round });
  }

  /** Close the worker's fault channel (aborted with `error`, telling the peer why; else flushed). Never throws. */
  async closeChannel(error?: MigrationError): Promise<void> {
    if (!this.#alive) return;
    await this.#request(
      (id) => ({ type: 'close', id, error: error ? { code: error.code, message: error.message } : null }),
      CLOSE_ANSWER_MS,
    ).catch(() => {});
  }

  /** End the worker (its channel closed); resolves once it has exited. Never throws. */
  async stop(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#post({ type: 'stop' });
      const timer = setTimeout(() => this.terminate(), EXIT_GRACE_MS);
      void this.#exited.finally(() => clearTimeout(timer));
    }
    await this.#exited;
  }

  /** End the worker now, as a crash would (its channel dies with it). */
  terminate(): void {
    this.#thread.seal(); // a terminated thread seals nothing itself: read it while it exists
    void this.#worker.terminate();
  }

  /** Ask the worker something; no answer within `timeoutMs` terminates it (the answer is then ERR_FAULT_THREAD). */
  #request(make: (id: number) => ToFaultWorker, timeoutMs: number): Promise<FromFaultWorker> {
    if (!this.#alive) return Promise.reject(this.#death ?? new MigrationError('ERR_FAULT_THREAD', 'stopped'));
    const id = this.#nextId++;
    const timer = setTimeout(() => this.terminate(), timeoutMs);
    return new Promise<FromFaultWorker>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage(make(id));
    }).finally(() => clearTimeout(timer));
  }

  #post(message: ToFaultWorker): void {
    if (this.#alive) this.#worker.postMessage(message);
  }

  #onMessage(message: FromFaultWorker): void {
    switch (message.type) {
      case 'connected':
      case 'connect-failed':
      case 'closed':
        this.#pending.get(message.id)?.resolve(message);
        this.#pending.delete(message.id);
        return;
      case 'lost': {
        const error = new MigrationError(message.code, `fault worker: ${message.message}`);
        this.#channelFailure = error;
        this.#logger.warn(
          { event: 'fault-worker.channel-lost', err: { code: error.code, message: error.message } },
          "the source's fault worker lost its fault channel",
        );
        this.#serving?.(error);
        return;
      }
      case 'log':
        this.#logger[message.level](message.fields, message.text);
        return;
      default:
    }
  }

  #died(why: string): void {
    if (!this.#alive) return;
    this.#alive = false;
    const error = new MigrationError('ERR_FAULT_THREAD', `the source's fault worker died: ${why}`);
    this.#death = error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    if (this.#stopping) return;
    this.#logger.warn(
      { event: 'fault-worker.died', err: error },
      'the fault worker died; the fault channel goes back to the main thread',
    );
    this.#serving?.(error);
  }
}
