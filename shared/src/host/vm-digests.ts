/**
 * Memory digests of hosted VMs for the `digest` control command: off the event loop (a
 * DigestWorker thread, at idle priority), and at most one at a time per VM.
 *
 * A request that arrives while its VM's digest is running does not start another and is not
 * refused: it joins the *next* digest, which starts when the running one ends and answers every
 * request that arrived meanwhile. Why join rather than refuse: a client gets its digest without
 * retry logic, and a flood costs no more than one client asking in a loop. Why the next digest
 * rather than the running one: the running one began hashing before the request arrived (a
 * `stop` in between would not be reflected), while the next begins after it, so every caller
 * still gets the memory as it was once it had asked — what `digest` answered before. So however
 * many requests come in, a VM owes at most two digests (running + next), hashed one after the
 * other.
 */
import type { ToyVm } from '../vm/index.ts';
import { DigestWorker, type MemoryHasher } from '../vm/digest-worker.ts';

/** What VmDigests uses. @default a DigestWorker of its own */
export interface VmDigestsComponents {
  hasher?: MemoryHasher;
}

interface Slot {
  running: Promise<string>;
  /** The digest that starts when `running` ends, shared by everyone who asked meanwhile. */
  next?: Promise<string>;
}

export class VmDigests {
  readonly #hasher: MemoryHasher;
  readonly #slots = new WeakMap<ToyVm, Slot>();

  constructor(components: VmDigestsComponents = {}) {
    this.#hasher = components.hasher ?? new DigestWorker();
  }

  /** The memory digest of `vm` (hex, ToyVm.digest()'s value), computed after this call. */
  digest(vm: ToyVm): Promise<string> {
    const slot = this.#slots.get(vm);
    if (!slot) return this.#start(vm);
    slot.next ??= slot.running.then(
      () => this.#start(vm),
      () => this.#start(vm),
    );
    return slot.next;
  }

  /** End the worker thread; digests not yet answered fail with ERR_CANCELLED. */
  close(): Promise<void> {
    return this.#hasher.close();
  }

  #start(vm: ToyVm): Promise<string> {
    const slot: Slot = { running: this.#hasher.digest(vm.memory) };
    this.#slots.set(vm, slot);
    const done = (): void => {
      // A joiner's digest (slot.next) replaces this slot when it starts.
      if (this.#slots.get(vm) === slot && slot.next === undefined) this.#slots.delete(vm);
    };
    slot.running.then(done, done);
    return slot.running;
  }
}
