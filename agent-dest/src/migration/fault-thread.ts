/**
 * The destination's post-copy fault thread, main-thread side (capability `fault-thread`): a
 * worker that owns the fault channel, so that a fault's answer never waits behind bulk pages on
 * this thread's event loop (QEMU's postcopy-preempt channel, with its own thread). It reads the
 * vCPU's faults from the fault ring, sends the PageRequests, receives the answers and installs
 * them straight into guest memory — claiming each page first (page-claims.ts: the main thread
 * installs bulk pages into the same memory), marking it present and waking the vCPU.
 *
 * Node cannot hand a socket to a worker, so the worker listens itself: on an ephemeral port of
 * this agent's data address, TLS with this agent's certificate when the agent is secure (a client
 * certificate required, of the migration's own source), and the connection must say Attach fault
 * with the migration's id and a random token that only SetupDone carried (on the main connection,
 * encrypted when that is). Anything else is refused with a code and closed; the VM runs on.
 *
 * What the worker did comes back as messages this thread reads when it gets to them, never
 * waiting: pages installed with their hashes (the digest ledger counts each page once, hashed by
 * whichever thread installed it, before the guest could write it), and the latencies it measured.
 * flush() waits until every report sent so far has arrived (before the digest is checked).
 *
 * If the worker dies its claims are released and onFailure says why (ERR_FAULT_THREAD): the
 * source sees its fault channel close, recovers, finds the port refused and attaches its fault
 * channel to the main listener instead — today's path on this thread.
 */
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { MigrationError, workerEntry } from '@livemig/shared';
import type { TlsCredentials } from '@livemig/shared/channel';
import type { Capability } from '@livemig/shared/protocol';
import {
  CLAIM_FAULT_THREAD,
  processThreads,
  type GuestMemoryLayout,
  type PageClaims,
  type ThreadHandle,
  type ToyVm,
} from '@livemig/shared/vm';

/** Where and as whom a fault thread listens (the agent's data address and TLS material). */
/** The fault thread's TypeScript entry (its bundle: worker-bundle.ts; a function: see vcpuWorkerEntry). */
export function faultThreadEntry(): string {
  return new URL('./fault-thread-worker.ts', import.meta.url).href;
}

export interface FaultThreadConfig {
  /** The data port's host: the thread listens on an ephemeral port there. */
  host: string;
  /** This agent's id, for the fault channel's Welcome. */
  agentId: string;
  /** This agent's certificate, key and CA: present exactly when the data port is TLS. */
  tls: TlsCredentials | undefined;
  /** From accept to Attach on the thread's port. @default 5000 */
  handshakeTimeoutMs?: number;
}

export interface FaultThreadOptions {
  config: FaultThreadConfig;
  vm: ToyVm;
  claims: PageClaims;
  migrationId: string;
  /** The source's certificate name (TLS): only it may connect. */
  sourceName: string | undefined;
  /** What the main connection negotiated: the fault channel negotiates the same. */
  capabilities: readonly Capability[];
  logger: Logger;
}

/** What the worker is started with (workerData). */
export interface FaultThreadData {
  entry: string;
  host: string;
  tls: TlsCredentials | null;
  handshakeTimeoutMs: number;
  agentId: string;
  sourceName: string | null;
  token: string;
  migrationId: string;
  capabilities: readonly Capability[];
  memory: GuestMemoryLayout;
  presence: SharedArrayBuffer;
  control: SharedArrayBuffer;
  claims: SharedArrayBuffer;
  /** Its CPU-time slot (thread-registry.ts): the report's `fault` thread. */
  thread: SharedArrayBuffer;
}

/** Pages the worker installed since its last report, with what it measured. */
export interface InstalledReport {
  type: 'installed';
  pages: Uint32Array;
  /** hashPage() of each page as installed, 8 bytes each, in `pages` order. */
  hashes: Uint8Array;
  /** Pages received in Pages frames (installed or dropped) and of those with their bytes. */
  received: number;
  raw: number;
  /** Fault latencies resolved since the last report: (latency, notice delay) pairs, ms. */
  latencies: Float64Array;
}

export type FromFaultThread =
  | { type: 'listening'; port: number }
  | { type: 'listen-failed'; message: string }
  | InstalledReport
  | { type: 'channel'; event: 'attached' | 'lost'; code?: string; message?: string }
  | { type: 'refused'; code: string; message: string }
  | { type: 'log'; text: string; fields: Record<string, unknown> }
  | { type: 'flushed'; id: number };

export type ToFaultThread = { type: 'flush'; id: number } | { type: 'stop' };

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
/** The worker must be listening within this (it starts in milliseconds: plain JavaScript first). */
const LISTEN_TIMEOUT_MS = 10_000;
/** A worker asked to stop that has not exited by then is terminated. */
const EXIT_GRACE_MS = 2000;

export class FaultThread {
  readonly #worker: Worker;
  readonly #thread: ThreadHandle;
  readonly #logger: Logger;
  readonly #claims: PageClaims;
  readonly #vm: ToyVm;
  readonly token: string;
  #port = 0;
  #alive = true;
  #stopping = false;
  readonly #exited: Promise<void>;
  #nextFlush = 1;
  readonly #flushes = new Map<number, () => void>();
  /** Pages installed: hashes for the ledger, the vCPU's presence count, the fault latencies. */
  onInstalled: ((report: InstalledReport) => void) | undefined;
  /** The worker died (ERR_FAULT_THREAD); its claims were released first. */
  onFailure: ((error: MigrationError) => void) | undefined;

  private constructor(options: FaultThreadOptions) {
    const { config, vm } = options;
    const shared = vm.faultThreadBuffers();
    if (!shared) throw new MigrationError('ERR_INTERNAL', 'a fault thread for a VM that tracks no presence');
    this.#logger = options.logger;
    this.#claims = options.claims;
    this.#vm = vm;
    this.token = randomBytes(32).toString('hex');
    // Counted in the report's threads as `fault` (where the destination's cores went).
    const thread = (this.#thread = processThreads.register('fault'));
    const data: FaultThreadData = {
      entry: workerEntry(faultThreadEntry()),
      host: config.host,
      tls: config.tls ?? null,
      handshakeTimeoutMs: config.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      agentId: config.agentId,
      sourceName: options.sourceName ?? null,
      token: this.token,
      migrationId: options.migrationId,
      capabilities: options.capabilities,
      memory: shared.memory,
      presence: shared.presence,
      control: shared.control,
      claims: options.claims.buffer,
      thread: thread.slot,
    };
    this.#worker = new Worker(new URL('./fault-thread-boot.mjs', import.meta.url), { workerData: data });
    this.#worker.on('message', (message: FromFaultThread) => this.#onMessage(message));
    this.#worker.on('error', (error) => this.#died(`it threw: ${error.message}`));
    this.#exited = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        thread.ended();
        this.#died(`it exited (code ${code})`);
        this.#logger.debug({ event: 'fault-thread.exited', code }, 'the fault thread ended');
        resolve();
      });
    });
  }

  /** Start a fault thread; resolves once it listens (its port known), rejects with ERR_FAULT_THREAD if it cannot. */
  static async start(options: FaultThreadOptions): Promise<FaultThread> {
    const thread = new FaultThread(options);
    try {
      await thread.#listening();
      return thread;
    } catch (error) {
      await thread.stop();
      throw error;
    }
  }

  /** The port the thread listens on (SetupDone's faultPort). */
  get port(): number {
    return this.#port;
  }

  /** False once the worker died or was stopped. */
  get alive(): boolean {
    return this.#alive;
  }

  /** Resolves once every report the worker sent before now has been handled here. */
  flush(): Promise<void> {
    if (!this.#alive) return Promise.resolve();
    const id = this.#nextFlush++;
    return new Promise((resolve) => {
      this.#flushes.set(id, resolve);
      this.#post({ type: 'flush', id });
    });
  }

  /** End the thread (its socket and server closed); resolves once it has exited. Never throws. */
  async stop(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#post({ type: 'stop' });
      const timer = setTimeout(() => {
        this.#thread.seal(); // a terminated thread seals nothing itself: read it while it exists
        void this.#worker.terminate();
      }, EXIT_GRACE_MS);
      void this.#exited.finally(() => clearTimeout(timer));
    }
    await this.#exited;
  }

  #listening(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(`it did not listen within ${LISTEN_TIMEOUT_MS} ms`), LISTEN_TIMEOUT_MS);
      const fail = (why: string): void => {
        clearTimeout(timer);
        this.#worker.off('message', onMessage);
        reject(new MigrationError('ERR_FAULT_THREAD', `the fault thread could not start: ${why}`));
      };
      const onMessage = (message: FromFaultThread): void => {
        if (message.type === 'listening') {
          clearTimeout(timer);
          this.#worker.off('message', onMessage);
          this.#port = message.port;
          resolve();
        } else if (message.type === 'listen-failed') fail(message.message);
      };
      this.#worker.on('message', onMessage);
      void this.#exited.then(() => fail('it exited'));
    });
  }

  #post(message: ToFaultThread): void {
    if (this.#alive) this.#worker.postMessage(message);
  }

  #onMessage(message: FromFaultThread): void {
    const logger = this.#logger;
    switch (message.type) {
      case 'installed':
        this.onInstalled?.(message);
        return;
      case 'flushed':
        this.#flushes.get(message.id)?.();
        this.#flushes.delete(message.id);
        return;
      case 'channel':
        if (message.event === 'attached')
          logger.info({ event: 'fault-thread.attached' }, 'fault channel joined the fault thread');
        else {
          logger.warn(
            { event: 'fault-thread.channel-lost', err: { code: message.code, message: message.message } },
            'the fault thread lost its fault channel; it waits for the source to reconnect',
          );
        }
        return;
      case 'refused':
        logger.warn(
          { event: 'fault-thread.refused', err: { code: message.code, message: message.message } },
          'the fault thread refused a connection',
        );
        return;
      case 'log':
        logger.info(message.fields, message.text);
        return;
      default:
    }
  }

  #died(why: string): void {
    if (!this.#alive) return;
    this.#alive = false;
    for (const resolve of this.#flushes.values()) resolve();
    this.#flushes.clear();
    // Nothing writes for the thread any more: pages it claimed and never finished are free again.
    const released = this.#claims.release(CLAIM_FAULT_THREAD, (n) => this.#vm.isPresent(n));
    if (this.#stopping) return;
    const error = new MigrationError('ERR_FAULT_THREAD', `the fault thread died: ${why}`);
    this.#logger.warn(
      { event: 'fault-thread.died', err: error, released },
      'the fault thread died; faults go back to the main thread',
    );
    this.onFailure?.(error);
  }
}
