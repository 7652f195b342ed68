/**
 * The host side of the vCPU: starts the worker (vcpu-worker.ts) over the VM's shared buffers and
 * drives it through the control block — no messages on any hot path.
 *
 *   resume()      CMD = RUN, bump SEQ, notify                     (returns at once)
 *   pause()       CMD = PAUSE, bump SEQ → s, notify; await ACK ≥ s (Atomics.waitAsync)
 *                 resolves only once the worker has parked at a batch boundary: no store in
 *                 flight, registers and LIVE_STEPS written back — the stop of stop-and-copy.
 *   runSteps(n)   STOP_AT = steps + n, CMD = RUN, …; await ACK ≥ s (the worker parks by itself)
 *   steps         Atomics.load(LIVE_STEPS): live, no round trip
 *
 * Faults (post-copy) are drained from the control block's ring by an async loop parked on
 * Atomics.waitAsync(FAULT_SEQ) and handed to onFault listeners. If the worker dies, every
 * pending and later wait rejects with ERR_VCPU_CRASHED and onCrash listeners are told.
 */
import { Worker } from 'node:worker_threads';
import { MigrationError } from '../errors.ts';
import {
  BIG_LIVE_STEPS,
  BIG_STOP_AT,
  CMD_EXIT,
  CMD_PAUSE,
  CMD_RUN,
  CTL_ACK,
  CTL_ALL_PRESENT,
  CTL_CMD,
  CTL_FAULT_SEQ,
  CTL_FULL_SPEED,
  CTL_SEQ,
  CTL_STATE,
  CTL_THROTTLE_PPM,
  CTL_WAIT_PAGE,
  ControlBlock,
  F64_BLOCKED_MS,
  FAULT_RING,
  NO_STOP,
  STATE_BOOTING,
  STATE_RUNNING,
} from './control-block.ts';
import type { VcpuWorkerData } from './vcpu-worker.ts';
import { processThreads, type ThreadHandle } from './thread-registry.ts';
import { workerEntry } from '../worker-bundle.ts';

/**
 * The vCPU worker's TypeScript entry (its bundle: worker-bundle.ts) (a function, not a constant: a top-level `new URL` would stay in every bundle whose graph includes this module, and worker-bundle.ts refuses those).
 */
export function vcpuWorkerEntry(): string {
  return new URL('./vcpu-worker.ts', import.meta.url).href;
}

/** A post-copy fault: the vCPU touched an absent page and is blocked until it is installed. */
export interface PageFault {
  /** The page. */
  page: number;
  /** When the vCPU blocked, in ms on the Date.now() scale (performance.timeOrigin + now(), sub-ms). */
  time: number;
}

/** The shared buffers and workload a vCPU runs over (the control block is the vCPU's own). */
export type VcpuInit = Omit<VcpuWorkerData, 'entry' | 'kind' | 'control' | 'thread'>;

const EXIT_GRACE_MS = 2000;

// Atomics.waitAsync is in Node 20 (V8 ≥ 8.7) but only in TypeScript's ES2024 lib; the project
// targets ES2023, so type it here.
type WaitAsyncResult =
  { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (
  Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): WaitAsyncResult }
).waitAsync.bind(Atomics);

/** Host handle of one vCPU worker. */
export class Vcpu {
  readonly #ctl: ControlBlock;
  readonly #worker: Worker;
  readonly #thread: ThreadHandle;
  readonly #crashed: Promise<never>;
  readonly #faultListeners = new Set<(fault: PageFault) => void>();
  readonly #crashListeners = new Set<(error: MigrationError) => void>();
  #failure: MigrationError | undefined;
  /** Marks the vCPU failed with `error` and tells the crash listeners (once). */
  readonly #crash: (error: MigrationError) => void;
  #exiting = false;
  #exited: Promise<void>;
  #faults = 0;
  #faultsLost = 0;
  readonly #ready: Promise<void>;

  private constructor(init: VcpuInit) {
    this.#ctl = new ControlBlock();
    if (init.presence) this.#ctl.i32[CTL_ALL_PRESENT] = 0;
    // Its CPU time goes in migration reports (thread-registry.ts); it seals the figure as it exits.
    const thread = (this.#thread = processThreads.register('vcpu'));
    const workerData: VcpuWorkerData = {
      ...init,
      thread: thread.slot,
      control: this.#ctl.buffer,
      entry: workerEntry(vcpuWorkerEntry()),
      kind: 'livemig-vcpu',
    };
    this.#worker = new Worker(new URL('../worker-boot.mjs', import.meta.url), { workerData });
    let fail!: (error: MigrationError) => void;
    this.#crashed = new Promise<never>((_resolve, reject) => {
      fail = reject;
    });
    this.#crashed.catch(() => {});
    const crash = (error: MigrationError): void => {
      if (this.#failure || this.#exiting) return;
      this.#failure = error;
      fail(error);
      for (const listener of this.#crashListeners) listener(error);
    };
    this.#crash = crash;
    this.#worker.on('error', (error) => {
      crash(new MigrationError('ERR_VCPU_CRASHED', `vCPU worker failed: ${error.message}`, { cause: error }));
    });
    this.#exited = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        thread.ended();
        crash(new MigrationError('ERR_VCPU_CRASHED', `vCPU worker exited unexpectedly (code ${code})`));
        resolve();
      });
    });
    if (init.presence) void this.#watchFaults();
    this.#ready = this.#waitUp();
    this.#ready.catch(() => {}); // a death is also #failure and the crash listeners' to report
  }

  /** Starts a vCPU worker and waits until it is parked and ready (state paused). */
  static async start(init: VcpuInit): Promise<Vcpu> {
    const vcpu = Vcpu.spawn(init);
    await vcpu.ready;
    return vcpu;
  }

  /**
   * Starts a vCPU worker without waiting for it: `ready` says when it is parked and ready, or
   * rejects with why it died. Loading the worker's modules takes a few hundred milliseconds;
   * an incoming VM's build does not wait for that (the destination answers SetupDone and
   * receives meanwhile) and waits for `ready` before it says it can run the VM. Commands given
   * before then are not lost: they are state in the control block, which the worker reads first.
   */
  static spawn(init: VcpuInit): Vcpu {
    return new Vcpu(init);
  }

  /** Resolves once the worker is parked and ready; rejects with the error that killed it first. */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /**
   * The control block's buffer, for the destination's post-copy fault thread: it drains the fault
   * ring and wakes a vCPU blocked on a page it installed, as this class does, from its own thread.
   */
  get controlBuffer(): SharedArrayBuffer {
    return this.#ctl.buffer;
  }

  /** Steps executed, live (published by the worker at every batch boundary). */
  get steps(): number {
    return Number(Atomics.load(this.#ctl.big, BIG_LIVE_STEPS));
  }

  /** True while the worker is executing (not parked). */
  get executing(): boolean {
    return Atomics.load(this.#ctl.i32, CTL_STATE) === STATE_RUNNING;
  }

  /** The error that killed the worker, if it died. */
  get failure(): MigrationError | undefined {
    return this.#failure;
  }

  /** The throttle in force (fraction of wall time the vCPU may run). */
  get throttle(): number {
    return Atomics.load(this.#ctl.i32, CTL_THROTTLE_PPM) / 1e6;
  }

  /** Faults raised so far, and how many of them overflowed the ring before the host read them. */
  get faults(): { count: number; lost: number; blockedMs: number } {
    return { count: this.#faults, lost: this.#faultsLost, blockedMs: this.#ctl.f64[F64_BLOCKED_MS]! };
  }

  /** Lets the vCPU run (paced as its workload asks). */
  resume(): void {
    this.#command(CMD_RUN, NO_STOP, 0);
  }

  /** Resolves once the vCPU is parked at a batch boundary (quiesced). */
  async pause(): Promise<void> {
    await this.#waitAck(this.#command(CMD_PAUSE));
  }

  /** Runs until the step counter reaches `stopAt`, then parks; resolves when parked (early if paused meanwhile). */
  async runUntil(stopAt: number, options: { fullSpeed?: boolean } = {}): Promise<void> {
    await this.#waitAck(this.#command(CMD_RUN, BigInt(stopAt), options.fullSpeed ? 1 : 0));
  }

  /** Lets the vCPU run `fraction` (0 < fraction ≤ 1) of wall time; paced workloads slow down by the same factor. */
  setThrottle(fraction: number): void {
    if (!(fraction > 0 && fraction <= 1)) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `throttle must be in (0, 1], got ${fraction}`);
    }
    Atomics.store(this.#ctl.i32, CTL_THROTTLE_PPM, Math.max(1, Math.round(fraction * 1e6)));
    this.#wake();
  }

  /** Sets the live step counter (after the host imported registers while parked). */
  publishSteps(steps: number): void {
    Atomics.store(this.#ctl.big, BIG_LIVE_STEPS, BigInt(steps));
  }

  /** The device's interrupt: wakes a vCPU halted for want of input (a no-op for one that is busy). */
  kick(): void {
    this.#wake();
  }

  /** Tells the vCPU page p is now present: wakes it if it is blocked on exactly that page. */
  pageArrived(p: number): void {
    if (Atomics.load(this.#ctl.i32, CTL_WAIT_PAGE) === p) this.#wake();
  }

  /** Wakes the vCPU if the page it is blocked on is present now (after pages were marked in bulk). */
  wakeIfArrived(isPresent: (p: number) => boolean): void {
    const p = Atomics.load(this.#ctl.i32, CTL_WAIT_PAGE);
    if (p >= 0 && isPresent(p)) this.#wake();
  }

  /** Tells the vCPU every page is present: it switches to the path without presence checks. */
  setAllPresent(): void {
    Atomics.store(this.#ctl.i32, CTL_ALL_PRESENT, 1);
    this.#wake();
  }

  /** Calls listener for every fault; returns an unsubscribe function. */
  onFault(listener: (fault: PageFault) => void): () => void {
    this.#faultListeners.add(listener);
    return () => this.#faultListeners.delete(listener);
  }

  /**
   * The VM cannot go on (a device of it failed): stop the worker and fail the vCPU with `error`,
   * as if the worker had died — status 'crashed', waits rejected, crash listeners told.
   */
  haltWith(error: MigrationError): void {
    this.#crash(error);
    this.#thread.seal();
    void this.#worker.terminate();
  }

  /** Calls listener if the worker dies; returns an unsubscribe function. */
  onCrash(listener: (error: MigrationError) => void): () => void {
    this.#crashListeners.add(listener);
    return () => this.#crashListeners.delete(listener);
  }

  /**
   * Stops the worker (asks it to exit; terminates it if it does not within 2 s) and, once it has
   * exited — its isolate gone, and with it the worker's references to the VM's buffers — forgets
   * the fault and crash listeners.
   */
  async destroy(): Promise<void> {
    if (!this.#exiting) {
      this.#exiting = true;
      if (!this.#failure) this.#command(CMD_EXIT);
      Atomics.notify(this.#ctl.i32, CTL_FAULT_SEQ);
      const timer = setTimeout(() => {
        this.#thread.seal();
        void this.#worker.terminate();
      }, EXIT_GRACE_MS);
      void this.#exited.then(() => {
        clearTimeout(timer);
        this.#faultListeners.clear();
        this.#crashListeners.clear();
      });
    }
    await this.#exited;
  }

  #command(cmd: number, stopAt?: bigint, fullSpeed?: number): number {
    if (this.#failure) throw this.#failure;
    const { i32, big } = this.#ctl;
    if (stopAt !== undefined) Atomics.store(big, BIG_STOP_AT, stopAt);
    if (fullSpeed !== undefined) Atomics.store(i32, CTL_FULL_SPEED, fullSpeed);
    Atomics.store(i32, CTL_CMD, cmd);
    return this.#wake();
  }

  #wake(): number {
    const seq = Atomics.add(this.#ctl.i32, CTL_SEQ, 1) + 1;
    Atomics.notify(this.#ctl.i32, CTL_SEQ);
    return seq;
  }

  /** Until the worker has loaded and left STATE_BOOTING (it may be running already: see spawn). */
  async #waitUp(): Promise<void> {
    const i32 = this.#ctl.i32;
    while (Atomics.load(i32, CTL_STATE) === STATE_BOOTING) {
      if (this.#failure) throw this.#failure;
      if (this.#exiting) throw new MigrationError('ERR_VM_STATE', 'the VM was destroyed while its vCPU was starting');
      const wait = waitAsync(i32, CTL_STATE, STATE_BOOTING);
      if (wait.async) await Promise.race([wait.value, this.#crashed, this.#exited]);
    }
  }

  async #waitAck(seq: number): Promise<void> {
    const i32 = this.#ctl.i32;
    for (;;) {
      if (this.#failure) throw this.#failure;
      const ack = Atomics.load(i32, CTL_ACK);
      if (ack >= seq) return;
      if (this.#exiting) throw new MigrationError('ERR_VM_STATE', 'the VM was destroyed while waiting for its vCPU');
      const wait = waitAsync(i32, CTL_ACK, ack);
      if (wait.async) await Promise.race([wait.value, this.#crashed, this.#exited]);
    }
  }

  async #watchFaults(): Promise<void> {
    const { i32, faultPages, faultTimes } = this.#ctl;
    let seen = 0;
    while (!this.#exiting && !this.#failure) {
      const seq = Atomics.load(i32, CTL_FAULT_SEQ);
      if (seq === seen) {
        const wait = waitAsync(i32, CTL_FAULT_SEQ, seq);
        if (wait.async) await Promise.race([wait.value, this.#crashed.catch(() => {})]);
        continue;
      }
      const from = Math.max(seen, seq - FAULT_RING);
      this.#faultsLost += from - seen;
      this.#faults += seq - seen;
      for (let k = from; k < seq; k++) {
        const fault: PageFault = { page: faultPages[k % FAULT_RING]!, time: faultTimes[k % FAULT_RING]! };
        for (const listener of this.#faultListeners) {
          try {
            listener(fault);
          } catch (error) {
            setImmediate(() => {
              throw error;
            });
          }
        }
      }
      seen = seq;
    }
  }
}
