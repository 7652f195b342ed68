/**
 * Where an agent's cores go: the threads of this process that work for migrations — the main
 * thread, each vCPU worker, the prefault, compress and digest workers — and the CPU time each has
 * used, read from Linux's per-thread schedstat (thread-cpu.mjs) without asking the thread
 * anything: a worker announces its thread id in a small shared slot as it starts, and the host
 * reads that thread's counter by id, synchronously, whenever a snapshot is taken (~10–20 µs a
 * thread). A worker that ends by itself writes its final figure into the slot; one the host
 * terminates is read by the host just before (seal()).
 *
 * One registry per process (`processThreads`): threads are the process's, like
 * process.cpuUsage(), and the workers are started deep inside the VM and codec modules, which
 * have no migration to hand their figures to. A migration takes a snapshot when it starts and
 * one when it ends; report/threads.ts turns the two into the report's figures. Threads that ended
 * are kept (at most `maxEnded`, the oldest dropped) so a migration still sees the ones that
 * ended while it ran.
 *
 * Off Linux every figure is null.
 */
import { newThreadSlot, ownThreadId, readThreadSlot, threadCpuNs } from './thread-cpu.mjs';

/** One thread's figures at a snapshot. */
export interface ThreadReading {
  /** Unique in this process's registry (0: the main thread). */
  key: number;
  /** Its role: main, vcpu, prefault, compress, digest. */
  name: string;
  /** CPU ns since the thread started; null where unreadable (not Linux). */
  cpuNs: number | null;
  /** performance.now() when it was registered (started), and when it ended (undefined: running). */
  bornAt: number;
  endedAt: number | undefined;
}

/** Every thread's figures at one moment, and the whole process's CPU time (all threads, GC and libuv's too). */
export interface ThreadSnapshot {
  /** performance.now() of the snapshot. */
  at: number;
  /** The process's CPU ns (user + system), every thread counted. */
  processCpuNs: number;
  threads: ThreadReading[];
}

/** What the host keeps of a worker it registered. */
export interface ThreadHandle {
  /** Pass it to the worker (workerData); the worker calls announceThread(slot) and sealThread(slot). */
  readonly slot: SharedArrayBuffer;
  /** Read the thread's final figure now, before terminating it (a terminated worker cannot seal). */
  seal(): void;
  /** The worker exited: keep its last figure, stop reading it. */
  ended(): void;
}

interface Entry {
  key: number;
  name: string;
  slot: SharedArrayBuffer | undefined;
  bornAt: number;
  endedAt: number | undefined;
  /** The last figure read (kept when the thread is gone). */
  lastNs: number | null;
}

export interface ThreadRegistryOptions {
  /** Ended threads kept for snapshots. @default 64 */
  maxEnded?: number;
}

export class ThreadRegistry {
  readonly #live = new Map<number, Entry>();
  readonly #ended: Entry[] = [];
  readonly #maxEnded: number;
  /** The thread that made the registry (an agent's main thread), by id: any thread may snapshot. */
  readonly #main: Entry;
  readonly #mainTid: number | null;
  #nextKey = 1;

  constructor(options: ThreadRegistryOptions = {}) {
    this.#maxEnded = options.maxEnded ?? 64;
    this.#mainTid = ownThreadId();
    this.#main = { key: 0, name: 'main', slot: undefined, bornAt: 0, endedAt: undefined, lastNs: null };
  }

  /** A worker about to start, in role `name`: pass `slot` to it. */
  register(name: string): ThreadHandle {
    const entry: Entry = {
      key: this.#nextKey++,
      name,
      slot: newThreadSlot(),
      bornAt: performance.now(),
      endedAt: undefined,
      lastNs: null,
    };
    this.#live.set(entry.key, entry);
    return {
      slot: entry.slot!,
      seal: () => {
        this.#read(entry);
      },
      ended: () => {
        if (entry.endedAt !== undefined) return;
        this.#read(entry);
        entry.endedAt = performance.now();
        entry.slot = undefined;
        this.#live.delete(entry.key);
        this.#ended.push(entry);
        if (this.#ended.length > this.#maxEnded) this.#ended.shift();
      },
    };
  }

  /** Every thread's figures now (the main thread first), and the process's CPU time. */
  snapshot(): ThreadSnapshot {
    const { user, system } = process.cpuUsage();
    const at = performance.now();
    const threads = [this.#main, ...this.#live.values(), ...this.#ended].map((entry) => ({
      key: entry.key,
      name: entry.name,
      cpuNs: this.#read(entry),
      bornAt: entry.bornAt,
      endedAt: entry.endedAt,
    }));
    return { at, processCpuNs: (user + system) * 1000, threads };
  }

  /** Threads registered and not ended. */
  get live(): number {
    return this.#live.size;
  }

  #read(entry: Entry): number | null {
    if (entry === this.#main) {
      return this.#mainTid === null ? null : threadCpuNs(this.#mainTid);
    }
    const slot = entry.slot;
    if (slot === undefined || this.#mainTid === null) return entry.lastNs;
    const { tid, finalNs } = readThreadSlot(slot);
    // Not announced yet: the worker is still loading; what it spent so far shows once it has.
    const ns = finalNs ?? (tid === null ? (entry.lastNs ?? 0) : threadCpuNs(tid));
    if (ns !== null) entry.lastNs = Math.max(ns, entry.lastNs ?? 0);
    return entry.lastNs;
  }
}

/** This process's threads (see the file's comment for why there is one). */
export const processThreads = new ThreadRegistry();
