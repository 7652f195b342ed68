/**
 * The vCPU's fault ring and wake-up word, seen from a host thread other than the one that owns
 * the Vcpu: the destination's post-copy fault thread reads the faults the vCPU raises and wakes
 * it when a page it installed is the one the vCPU blocks on — without a message through the main
 * thread, whose event loop is busy with bulk pages. Vcpu (vcpu.ts) keeps reading the same ring
 * for its own listeners: a ring has any number of readers, each with its own position.
 */
import { CTL_FAULT_SEQ, CTL_SEQ, CTL_WAIT_PAGE, ControlBlock, FAULT_RING } from './control-block.ts';

export class FaultRing {
  readonly #ctl: ControlBlock;
  #seen: number;
  /** The wake-up word when the ring was last drained. */
  #seqSeen: number;
  /** The pending wait on each word (one at a time: a wait nobody notifies would otherwise pile up). */
  readonly #waits = new Map<number, Promise<unknown>>();

  /** Read faults raised from now on (`fromStart`: every fault since the vCPU started). */
  constructor(control: SharedArrayBuffer, fromStart = false) {
    this.#ctl = new ControlBlock(control);
    this.#seen = fromStart ? 0 : Atomics.load(this.#ctl.i32, CTL_FAULT_SEQ);
    this.#seqSeen = Atomics.load(this.#ctl.i32, CTL_SEQ);
  }

  /** Calls `fault(page, time)` for each fault raised since the last drain; returns how many overflowed the ring. */
  drain(fault: (page: number, time: number) => void): number {
    const { i32, faultPages, faultTimes } = this.#ctl;
    this.#seqSeen = Atomics.load(i32, CTL_SEQ);
    const seq = Atomics.load(i32, CTL_FAULT_SEQ);
    const from = Math.max(this.#seen, seq - FAULT_RING);
    const lost = from - this.#seen;
    for (let k = from; k < seq; k++) fault(faultPages[k % FAULT_RING]!, faultTimes[k % FAULT_RING]!);
    this.#seen = seq;
    return lost;
  }

  /**
   * Resolves when the vCPU raised a fault or was woken (a page arrived, a command) since the last
   * drain; at once if it already was.
   */
  changed(): Promise<unknown> {
    return Promise.race([this.#changeOf(CTL_FAULT_SEQ), this.#changeOf(CTL_SEQ)]);
  }

  /** Page p is present now: wake the vCPU if it is blocked on exactly that page (Vcpu.pageArrived). */
  pageArrived(p: number): void {
    const i32 = this.#ctl.i32;
    if (Atomics.load(i32, CTL_WAIT_PAGE) !== p) return;
    Atomics.add(i32, CTL_SEQ, 1);
    Atomics.notify(i32, CTL_SEQ);
  }

  #changeOf(index: number): Promise<unknown> {
    const pending = this.#waits.get(index);
    if (pending) return pending;
    const i32 = this.#ctl.i32;
    const seen = index === CTL_FAULT_SEQ ? this.#seen : this.#seqSeen;
    const wait = Atomics.waitAsync(i32, index, seen);
    if (!wait.async) return Promise.resolve();
    const promise = wait.value.finally(() => this.#waits.delete(index));
    this.#waits.set(index, promise);
    return promise;
  }
}
