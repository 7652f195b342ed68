/**
 * A worker thread that computes memory digests, so that hashing all of guest memory (O(guest
 * memory): ~0.2 s per GiB) never runs on an agent's event loop, where it would stall every
 * migration, heartbeat and control request of that agent meanwhile. The worker attaches to the
 * memory's SharedArrayBuffer regions (no copy) and runs the digest's one definition,
 * digest-pages.mjs — the code digestMemory() runs — so its value is byte for byte ToyVm.digest()'s,
 * and the PageDigestLedger's a migration verifies with.
 *
 * Why a thread of its own: the VM's vCPU worker runs the guest (hashing there would stop the
 * guest for as long), and the prefault worker lives only while a migration arrives. One digest
 * worker serves every VM of a host: jobs run one after the other, so an agent spends at most
 * one core on digests however many are asked for; and the thread runs at the lowest CPU priority
 * (digest-worker.mjs), so a digest takes idle CPU only, never a migration's or a vCPU's.
 *
 * Lifetime: started on the first digest, unref'd (it never keeps a process alive), ended by
 * close(). A job holds its VM's regions only while it runs; if the memory is released meanwhile
 * (the VM was destroyed or migrated away), the job stops within a batch of pages and fails with
 * ERR_VM_STATE, so the memory is not kept alive by a digest nobody can use.
 */
import { Worker } from 'node:worker_threads';
import { MigrationError } from '../errors.ts';
import type { GuestMemory } from './guest-memory.ts';
import { processThreads, type ThreadHandle } from './thread-registry.ts';

/** What computes a memory digest off the calling thread (VmDigests takes any, tests a stub). */
export interface MemoryHasher {
  /** The memory digest of `memory` (hex, as digestMemory()). ERR_VM_STATE if it is released before the end. */
  digest(memory: GuestMemory): Promise<string>;
  /** End the thread; digests in flight fail with ERR_CANCELLED. */
  close(): Promise<void>;
}

interface Job {
  resolve: (digest: string) => void;
  reject: (error: MigrationError) => void;
  /** Stop listening for the memory's release. */
  forget: () => void;
}

type Reply = { id: number; digest: string } | { id: number; error: { stopped: boolean; message: string } };

export class DigestWorker implements MemoryHasher {
  #worker: Worker | undefined;
  /** The thread's CPU-time slot (thread-registry.ts), read once more before it is terminated. */
  #cpu: ThreadHandle | undefined;
  readonly #jobs = new Map<number, Job>();
  #nextId = 1;
  #closed = false;

  /** Digests asked for and not yet answered (running or queued in the thread). */
  get pending(): number {
    return this.#jobs.size;
  }

  digest(memory: GuestMemory): Promise<string> {
    if (this.#closed) return Promise.reject(new MigrationError('ERR_CANCELLED', 'the digest worker was closed'));
    if (memory.released) return Promise.reject(released());
    const { bytes, regionBytes, regions } = memory.layout;
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const id = this.#nextId++;
    return new Promise<string>((resolve, reject) => {
      const forget = memory.onRelease(() => Atomics.store(stop, 0, 1));
      this.#jobs.set(id, { resolve, reject, forget });
      this.#thread().postMessage({ id, bytes, regionBytes, pageBytes: memory.pageSize, regions, stop });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#failAll(new MigrationError('ERR_CANCELLED', 'the digest worker was closed'));
    this.#cpu?.seal();
    await worker?.terminate();
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const thread = processThreads.register('digest');
    const worker = new Worker(new URL('./digest-worker.mjs', import.meta.url), { workerData: { thread: thread.slot } });
    this.#cpu = thread;
    worker.unref();
    worker.on('message', (reply: Reply) => this.#settle(reply));
    const lost = (why: string): void => {
      if (this.#worker !== worker) return;
      this.#worker = undefined; // the next digest starts a new thread
      this.#failAll(new MigrationError('ERR_INTERNAL', `the digest worker ${why}`));
    };
    worker.on('error', (error) => lost(`failed: ${error.message}`));
    worker.on('exit', (code) => {
      thread.ended();
      lost(`exited (code ${code})`);
    });
    this.#worker = worker;
    return worker;
  }

  #settle(reply: Reply): void {
    const job = this.#jobs.get(reply.id);
    if (!job) return;
    this.#jobs.delete(reply.id);
    job.forget();
    if ('digest' in reply) job.resolve(reply.digest);
    else if (reply.error.stopped) job.reject(released());
    else job.reject(new MigrationError('ERR_INTERNAL', `digest failed: ${reply.error.message}`));
  }

  #failAll(error: MigrationError): void {
    for (const job of this.#jobs.values()) {
      job.forget();
      job.reject(error);
    }
    this.#jobs.clear();
  }
}

function released(): MigrationError {
  return new MigrationError('ERR_VM_STATE', 'the VM was destroyed (its memory released) before its digest was done');
}
