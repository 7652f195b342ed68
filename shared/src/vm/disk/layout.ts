/**
 * Where the virtual disk's request ring lives in guest memory — the contract between the
 * guest's driver (guest-ring.ts; a disk workload in the vCPU worker) and the device model
 * (blk-device.ts, on the agent's event loop). Modelled on virtio-blk the way the NIC's rings are
 * on virtio-net, cut down: one ring of fixed-size request slots, served in order, and two
 * free-running u32 indices. The ring sits at a page the VM chooses (`ringPage`; the NIC has
 * pages 0–8), BLK_RING_PAGES long:
 *
 *   ringPage + 0        index words (Int32 word offsets below, each on its own 64-byte line)
 *   ringPage + 1 .. 2   RING_SLOTS request slots of SLOT_BYTES
 *
 * AVAIL counts requests the guest has placed, USED requests the device has completed (both wrap
 * at 2^32); request i lives in slot i % RING_SLOTS. The guest fills slot AVAIL, publishes
 * AVAIL + 1 (Atomics.store) and kicks (Atomics.notify on AVAIL). The device serves requests
 * [USED, AVAIL) one after another, writes each one's status into its slot, and publishes USED + 1
 * (Atomics.store, then Atomics.notify on USED and the vCPU kick): request i is complete once
 * USED − i > 0, and its status is then in its slot. The guest never has more than RING_SLOTS
 * outstanding (AVAIL − USED ≤ RING_SLOTS). Publishing with Atomics after plain slot writes is
 * the release/acquire pair that makes the slot visible before the index. Like the NIC's, the
 * ring is guest RAM: whatever the device writes there (statuses, USED, the data of a read)
 * dirties guest pages like DMA and migrates with memory.
 *
 * Slot (little-endian u32s, 52 of 64 bytes used):
 *   | op | block | count | status | tag | page[0] … page[MAX_REQUEST_BLOCKS − 1] |
 * op is OP_READ (disk → guest), OP_WRITE (guest → disk) or OP_FLUSH (block, count and pages
 * ignored); block and count say which blocks (1 ≤ count ≤ MAX_REQUEST_BLOCKS); page[k] is the
 * guest page that holds block + k (a block is a page). status is written by the device only;
 * tag is the guest's own (the device never writes it).
 *
 * Everything in a slot is untrusted input: validateRequest() checks it all before the device
 * touches the disk or guest memory, and a bad request completes with S_INVALID.
 */
import { PAGE_SIZE } from '../guest-memory.ts';

/** Pages the ring occupies from its ring page. */
export const BLK_RING_PAGES = 3;
/** Slots in the ring. */
export const BLK_RING_SLOTS = 128;
/** Bytes per slot. */
export const BLK_SLOT_BYTES = 64;
/** Most blocks one request may move (its page list fills the slot). */
export const MAX_REQUEST_BLOCKS = 8;

/** Int32 word index in the ring's first page: requests the guest has placed (guest writes; the device waits on it). */
export const W_AVAIL = 0;
/** Int32 word index in the ring's first page: requests the device has completed (device writes; the guest waits on it). */
export const W_USED = 16;

/** Request types: virtio-blk's numbers. */
export const OP_READ = 0;
export const OP_WRITE = 1;
export const OP_FLUSH = 4;

/** Completion statuses: virtio-blk's, plus S_INVALID for a request that fails validation. */
export const S_OK = 0;
/** The file system failed the read, write or flush. */
export const S_IOERR = 1;
/** Unknown op. */
export const S_UNSUPP = 2;
/** Block range, count or buffer pages out of bounds: nothing was read, written or stored. */
export const S_INVALID = 3;

/** Byte offsets inside a slot. */
export const SLOT_OP = 0;
export const SLOT_BLOCK = 4;
export const SLOT_COUNT = 8;
export const SLOT_STATUS = 12;
export const SLOT_TAG = 16;
export const SLOT_PAGES = 20;

/** A request as the guest places it. */
export interface BlkRequest {
  op: number;
  /** First block. */
  block: number;
  /** Blocks to move (1 … MAX_REQUEST_BLOCKS; ignored by a flush). */
  count: number;
  /** The guest's own cookie (returned untouched). */
  tag: number;
  /** Guest page of each block, in order (count entries). */
  pages: readonly number[];
}

/** What validateRequest() checks against. */
export interface BlkLimits {
  /** Blocks on the disk. */
  blockCount: number;
  /** Pages of guest memory. */
  pageCount: number;
  /** First page of the ring (its BLK_RING_PAGES pages are never a buffer). */
  ringPage: number;
}

/** Byte offset of slot i (any index; it wraps) from the start of guest memory, for a ring at ringPage. */
export function blkSlotOffset(ringPage: number, i: number): number {
  return (ringPage + 1) * PAGE_SIZE + ((i >>> 0) % BLK_RING_SLOTS) * BLK_SLOT_BYTES;
}

/**
 * Writes `req` into the slot at byte `at` of `view` (status cleared to S_OK; unused page entries
 * zeroed). The guest's side; pure. Writes at most MAX_REQUEST_BLOCKS page entries.
 */
export function encodeRequest(view: DataView, at: number, req: BlkRequest): void {
  view.setUint32(at + SLOT_OP, req.op >>> 0, true);
  view.setUint32(at + SLOT_BLOCK, req.block >>> 0, true);
  view.setUint32(at + SLOT_COUNT, req.count >>> 0, true);
  view.setUint32(at + SLOT_STATUS, S_OK, true);
  view.setUint32(at + SLOT_TAG, req.tag >>> 0, true);
  for (let k = 0; k < MAX_REQUEST_BLOCKS; k++) {
    view.setUint32(at + SLOT_PAGES + 4 * k, (req.pages[k] ?? 0) >>> 0, true);
  }
}

/**
 * Reads the slot at byte `at` of `view` (a copy: the guest may change the slot afterwards). At
 * most MAX_REQUEST_BLOCKS pages are read, whatever count says. Pure.
 */
export function decodeRequest(view: DataView, at: number): BlkRequest {
  const count = view.getUint32(at + SLOT_COUNT, true);
  const pages: number[] = [];
  for (let k = 0; k < Math.min(count, MAX_REQUEST_BLOCKS); k++)
    pages.push(view.getUint32(at + SLOT_PAGES + 4 * k, true));
  return {
    op: view.getUint32(at + SLOT_OP, true),
    block: view.getUint32(at + SLOT_BLOCK, true),
    count,
    tag: view.getUint32(at + SLOT_TAG, true),
    pages,
  };
}

/**
 * The status a request must complete with without being served (S_UNSUPP, S_INVALID), or
 * undefined if the device may serve it: a known op; for a read or write, 1 ≤ count ≤
 * MAX_REQUEST_BLOCKS, [block, block + count) on the disk, and every page in guest memory and
 * outside the ring. Pure.
 */
export function validateRequest(req: BlkRequest, limits: BlkLimits): number | undefined {
  if (req.op === OP_FLUSH) return undefined;
  if (req.op !== OP_READ && req.op !== OP_WRITE) return S_UNSUPP;
  if (req.count < 1 || req.count > MAX_REQUEST_BLOCKS || req.pages.length !== req.count) return S_INVALID;
  if (req.block >= limits.blockCount || req.count > limits.blockCount - req.block) return S_INVALID;
  for (const page of req.pages) {
    if (page >= limits.pageCount) return S_INVALID;
    if (page >= limits.ringPage && page < limits.ringPage + BLK_RING_PAGES) return S_INVALID;
  }
  return undefined;
}
