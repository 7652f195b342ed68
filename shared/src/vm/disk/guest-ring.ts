/**
 * The guest's half of the disk's request ring (layout.ts): a driver a workload in the vCPU
 * worker (or a test standing in for one) uses to place requests and see them complete. It never
 * blocks: a workload that has nothing else to do waits on USED itself
 * (`Atomics.wait(ring.indices, W_USED, ring.used)`), the device's completion interrupt.
 *
 * Every store it makes to guest memory (the slot, AVAIL) is a guest store, so it is marked in
 * the vCPU's dirty log when one is given — data first, then the mark (dirty-log.ts).
 */
import { markDirty } from '../dirty-log.ts';
import { PAGE_SIZE, type GuestMemory } from '../guest-memory.ts';
import {
  BLK_RING_PAGES,
  BLK_RING_SLOTS,
  SLOT_STATUS,
  W_AVAIL,
  W_USED,
  blkSlotOffset,
  encodeRequest,
  type BlkRequest,
} from './layout.ts';

/** The guest side of a disk request ring at `ringPage`. */
export class GuestBlkRing {
  /** The ring's first page: AVAIL and USED (Int32 words W_AVAIL, W_USED). */
  readonly indices: Int32Array;
  readonly #memory: GuestMemory;
  readonly #ringPage: number;
  readonly #dirty: Int32Array | undefined;

  /** A driver for the ring at `ringPage` of `memory`, marking its stores in `dirty` (the vCPU's log) if given. */
  constructor(memory: GuestMemory, ringPage: number, dirty?: Int32Array) {
    this.#memory = memory;
    this.#ringPage = ringPage;
    this.#dirty = dirty;
    memory.page(ringPage + BLK_RING_PAGES - 1); // bounds check
    const page = memory.page(ringPage);
    this.indices = new Int32Array(page.buffer, page.byteOffset, PAGE_SIZE / 4);
  }

  /** Requests placed so far (u32). */
  get avail(): number {
    return Atomics.load(this.indices, W_AVAIL) >>> 0;
  }

  /** Requests completed so far (u32). */
  get used(): number {
    return Atomics.load(this.indices, W_USED) >>> 0;
  }

  /** Requests placed and not yet completed. */
  get outstanding(): number {
    return (this.avail - this.used) >>> 0;
  }

  /**
   * Places `req` in the next slot, publishes it and kicks the device. Returns the request's
   * index (u32), or undefined if the ring already holds BLK_RING_SLOTS outstanding requests.
   */
  submit(req: BlkRequest): number | undefined {
    const avail = this.avail;
    if (this.outstanding >= BLK_RING_SLOTS) return undefined;
    const offset = blkSlotOffset(this.#ringPage, avail);
    const page = offset >>> 12;
    const bytes = this.#memory.page(page);
    encodeRequest(new DataView(bytes.buffer, bytes.byteOffset, PAGE_SIZE), offset & (PAGE_SIZE - 1), req);
    if (this.#dirty) markDirty(this.#dirty, page);
    Atomics.store(this.indices, W_AVAIL, (avail + 1) | 0); // publishes the slot (release)
    if (this.#dirty) markDirty(this.#dirty, this.#ringPage);
    Atomics.notify(this.indices, W_AVAIL); // the kick
    return avail;
  }

  /** True once request `index` has completed (USED is past it; signed distance, so it survives the wrap). */
  completed(index: number): boolean {
    return ((this.used - index) | 0) > 0;
  }

  /** The status of completed request `index` (S_OK, S_IOERR, …); meaningless before completed(index). */
  status(index: number): number {
    const offset = blkSlotOffset(this.#ringPage, index);
    const bytes = this.#memory.page(offset >>> 12);
    return new DataView(bytes.buffer, bytes.byteOffset, PAGE_SIZE).getUint32(
      (offset & (PAGE_SIZE - 1)) + SLOT_STATUS,
      true,
    );
  }
}
