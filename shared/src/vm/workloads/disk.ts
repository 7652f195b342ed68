/**
 * `disk`: the guest's driver for the virtual disk (disk/layout.ts) and a verifier of what it
 * reads back. Writes and reads blocks 0 .. wss/4096 − 1 at random, `rate` requests per second,
 * `rw` percent of them reads. Every written block is self-describing: word 0 is its block
 * number, word 1 its generation (how many times the guest wrote it), every other word
 * blockWord(block, generation, i). The guest keeps each block's last acknowledged generation in
 * a table in guest memory, so a read can check the whole block: a lost write (an older
 * generation), a block that went stale or to another place, a hole where data should be, or an
 * I/O error each add one to R_DISK_MISMATCH. The guest counts its own losses.
 *
 * Guest memory (pages after the NIC's, whether or not the VM has a NIC):
 *   DISK_RING_PAGE .. +2     the request ring (BLK_RING_PAGES)
 *   DISK_BUFFER_PAGE         the one data buffer (a request moves one block)
 *   DISK_TABLE_PAGE ..       generations, one u32 per block of the working set
 *
 * Steps alternate: a *submit* step draws the request from the step counter (prng.ts), fills
 * the buffer (a write) and places the request; a *complete* step consumes its completion
 * (checks a read, records a write's generation). Determinism — why step counting never depends
 * on I/O timing: a complete step is runnable only once the device has completed the request
 * (pending() is 0 until then, and the vCPU halts until the device's kick, as kv does for an
 * empty RX ring), and what it does depends only on guest memory the device has finished
 * writing. So the guest's state after step N is the same however long the I/O took; the one
 * timing-dependent thing is whether a request placed by step N has completed yet when the VM
 * pauses, and ToyVm.pause() drains the device (as QEMU drains block jobs when a VM stops), so a
 * paused VM never has a request in flight.
 *
 * Registers: R_DISK_MISMATCH (10) blocks that did not read back as written, plus failed
 * requests; R_DISK_BUSY (11) 1 while a request is in flight; R_DISK_REQ (12) the request in
 * flight (block, bit 31 = read); R_DISK_GEN (13) the generation being written; R_ACC folds in
 * every completion.
 */
import { MigrationError } from '../../errors.ts';
import { BLOCK_SIZE, MAX_DISK_BYTES } from '../disk/image.ts';
import {
  BLK_RING_PAGES,
  OP_READ,
  OP_WRITE,
  SLOT_BLOCK,
  SLOT_COUNT,
  SLOT_OP,
  SLOT_PAGES,
  SLOT_STATUS,
  SLOT_TAG,
  S_OK,
  W_AVAIL,
  W_USED,
  blkSlotOffset,
} from '../disk/layout.ts';
import { PAGE_SIZE } from '../guest-memory.ts';
import { NIC_PAGES } from '../nic/layout.ts';
import { below, hash32, stepHash } from '../prng.ts';
import { R_ACC, R_KEY, R_STEP_HI, R_STEP_LO } from '../registers.ts';
import { rateParam } from './params.ts';
import type { WorkloadDefinition } from './types.ts';
import { requireLittleEndian } from './endianness.ts';

/** Register: blocks that did not read back as last written, plus requests that failed, mod 2^32. */
export const R_DISK_MISMATCH = 10;
/** Register: 1 while the guest's request is in flight. */
export const R_DISK_BUSY = 11;
/** Register: the request in flight: its block, bit 31 set for a read. */
export const R_DISK_REQ = 12;
/** Register: the generation the request in flight writes. */
export const R_DISK_GEN = 13;

/** First page of the disk's request ring: right after the NIC's pages. */
export const DISK_RING_PAGE = NIC_PAGES;
/** The guest's data buffer. */
export const DISK_BUFFER_PAGE = DISK_RING_PAGE + BLK_RING_PAGES;
/** First page of the generation table. */
export const DISK_TABLE_PAGE = DISK_BUFFER_PAGE + 1;

const DEFAULT_WSS = 16 * 1024 * 1024;
const READ_BIT = 0x80000000;

/** Word i (≥ 2) of generation `gen` of `block`: what a read must find there. */
export function blockWord(block: number, gen: number, i: number): number {
  return hash32((Math.imul(block, 0x9e3779b1) ^ Math.imul(gen, 0x85ebca6b)) + i) | 0;
}

/** Guest pages the disk workload owns from page 0 (ring, buffer, table) for a working set of `wss` bytes. */
export function diskReservedPages(wss: number): number {
  return DISK_TABLE_PAGE + Math.ceil(((wss / BLOCK_SIZE) * 4) / PAGE_SIZE);
}

/** The disk workload. */
export const disk: WorkloadDefinition = {
  id: 7,
  name: 'disk',
  summary: "writes and reads back blocks of the VM's disk (--disk); the guest counts blocks that read back wrong",
  params: [
    {
      name: 'wss',
      kind: 'size',
      default: DEFAULT_WSS,
      defaultText: '16MiB',
      description: "the disk's working set: blocks 0 .. wss/4KiB − 1 are written and read (≤ --disk)",
    },
    { ...rateParam(1000), description: 'disk requests per second, paced by wall clock (0 = as fast as it can)' },
    {
      name: 'rw',
      kind: 'count',
      default: 50,
      defaultText: '50',
      description: 'the read share in percent (0..100)',
    },
  ],
  writesPerStep: 1,
  // Two steps per request (submit, complete).
  stepsPerSecond: (params) => params.rate! * 2,
  drivesDisk: true,
  reservedBytes: (params) => diskReservedPages(params.wss!) * PAGE_SIZE,
  validate(params, memoryBytes) {
    const wss = params.wss!;
    if (wss < BLOCK_SIZE || wss % BLOCK_SIZE !== 0 || wss > MAX_DISK_BYTES) {
      throw new MigrationError(
        'ERR_INVALID_WORKLOAD',
        `disk: wss must be a positive multiple of 4KiB, got ${wss} bytes`,
      );
    }
    if (params.rw! > 100) {
      throw new MigrationError(
        'ERR_INVALID_WORKLOAD',
        `disk: rw is the read share in percent (0..100), got ${params.rw}`,
      );
    }
    const needed = diskReservedPages(wss) * PAGE_SIZE;
    if (needed > memoryBytes) {
      throw new MigrationError(
        'ERR_INVALID_WORKLOAD',
        `disk: a working set of ${wss} bytes needs ${needed} bytes of guest memory (ring, buffer, generation table), ` +
          `more than the VM's memory (${memoryBytes} bytes)`,
      );
    }
  },
  create({ regs, mem32, dirty, regionPageShift: shift, params }) {
    requireLittleEndian('disk');
    const mask = (1 << shift) - 1;
    const blocks = params.wss! / BLOCK_SIZE;
    const readShare = params.rw!;
    /** The Int32Array holding page p and the word index of its first word. */
    const memOf = (p: number): Int32Array => mem32[p >>> shift]!;
    const base = (p: number): number => (p & mask) << 10;
    const mark = (p: number): void => {
      dirty[p >>> 5]! |= 1 << (p & 31); // after the store: see dirty-log.ts
    };
    const idxMem = memOf(DISK_RING_PAGE);
    const idxBase = base(DISK_RING_PAGE);
    const bufMem = memOf(DISK_BUFFER_PAGE);
    const bufBase = base(DISK_BUFFER_PAGE);
    const tablePage = (block: number): number => DISK_TABLE_PAGE + (block >>> 10);
    const genWord = (block: number): number => base(tablePage(block)) + (block & 1023);

    const submit = (lo: number, hi: number, key: number): void => {
      const r = stepHash(lo, hi, key);
      const block = below(r, blocks);
      const read = below(hash32(r ^ 0x2545f491), 100) < readShare;
      if (!read) {
        let gen = (memOf(tablePage(block))[genWord(block)]! + 1) >>> 0;
        if (gen === 0) gen = 1; // 0 means "never written"
        bufMem[bufBase] = block;
        bufMem[bufBase + 1] = gen;
        for (let i = 2; i < 1024; i++) bufMem[bufBase + i] = blockWord(block, gen, i);
        mark(DISK_BUFFER_PAGE);
        regs[R_DISK_GEN] = gen;
      }
      const avail = idxMem[idxBase + W_AVAIL]!; // the guest's own word
      const offset = blkSlotOffset(DISK_RING_PAGE, avail);
      const slotPage = offset >>> 12;
      const m = memOf(slotPage);
      const w = base(slotPage) + ((offset & (PAGE_SIZE - 1)) >>> 2);
      m[w + SLOT_OP / 4] = read ? OP_READ : OP_WRITE;
      m[w + SLOT_BLOCK / 4] = block;
      m[w + SLOT_COUNT / 4] = 1;
      m[w + SLOT_STATUS / 4] = S_OK;
      m[w + SLOT_TAG / 4] = avail;
      m[w + SLOT_PAGES / 4] = DISK_BUFFER_PAGE;
      for (let k = 1; k < 8; k++) m[w + SLOT_PAGES / 4 + k] = 0;
      mark(slotPage);
      regs[R_DISK_REQ] = (block | (read ? READ_BIT : 0)) >>> 0;
      regs[R_DISK_BUSY] = 1;
      Atomics.store(idxMem, idxBase + W_AVAIL, (avail + 1) | 0); // publishes the slot (release)
      mark(DISK_RING_PAGE);
      Atomics.notify(idxMem, idxBase + W_AVAIL); // the kick
    };

    /** Consumes the completion; returns the value folded into the accumulator. */
    const complete = (): number => {
      const index = (idxMem[idxBase + W_AVAIL]! - 1) | 0;
      const offset = blkSlotOffset(DISK_RING_PAGE, index);
      const slotPage = offset >>> 12;
      const status = memOf(slotPage)[base(slotPage) + ((offset & (PAGE_SIZE - 1)) >>> 2) + SLOT_STATUS / 4]!;
      const req = regs[R_DISK_REQ]!;
      const block = req & ~READ_BIT;
      const tMem = memOf(tablePage(block));
      regs[R_DISK_BUSY] = 0;
      let bad = status !== S_OK;
      if (!bad && (req & READ_BIT) === 0) {
        tMem[genWord(block)] = regs[R_DISK_GEN]!;
        mark(tablePage(block));
      } else if (!bad) {
        const gen = tMem[genWord(block)]! >>> 0;
        if (gen === 0) {
          for (let i = 0; i < 1024 && !bad; i++) bad = bufMem[bufBase + i] !== 0;
        } else {
          bad = bufMem[bufBase] !== block || bufMem[bufBase + 1]! >>> 0 !== gen;
          for (let i = 2; i < 1024 && !bad; i++) bad = bufMem[bufBase + i] !== blockWord(block, gen, i);
        }
      }
      if (bad) regs[R_DISK_MISMATCH] = (regs[R_DISK_MISMATCH]! + 1) >>> 0;
      return hash32(req ^ status ^ (bad ? 0x5bd1e995 : 0));
    };

    const completed = (): boolean => ((Atomics.load(idxMem, idxBase + W_USED) - idxMem[idxBase + W_AVAIL]!) | 0) >= 0;

    return {
      run(n) {
        let lo = regs[R_STEP_LO]!;
        let hi = regs[R_STEP_HI]!;
        let acc = regs[R_ACC]!;
        const key = regs[R_KEY]!;
        for (let i = 0; i < n; i++) {
          if (regs[R_DISK_BUSY] === 0) submit(lo, hi, key);
          else acc = ((acc << 5) | (acc >>> 27)) ^ complete();
          lo = (lo + 1) >>> 0;
          if (lo === 0) hi = (hi + 1) >>> 0;
        }
        regs[R_STEP_LO] = lo;
        regs[R_STEP_HI] = hi;
        regs[R_ACC] = acc;
      },
      nextPages(out) {
        out[0] = DISK_RING_PAGE;
        out[1] = blkSlotOffset(DISK_RING_PAGE, idxMem[idxBase + W_AVAIL]! - regs[R_DISK_BUSY]!) >>> 12;
        out[2] = DISK_BUFFER_PAGE;
        const block =
          regs[R_DISK_BUSY] === 0
            ? below(stepHash(regs[R_STEP_LO]!, regs[R_STEP_HI]!, regs[R_KEY]!), blocks)
            : regs[R_DISK_REQ]! & ~READ_BIT;
        out[3] = tablePage(block);
        return 4;
      },
      pending() {
        // One step at a time: a submit whenever idle; a complete only once the device is done.
        return regs[R_DISK_BUSY] === 0 || completed() ? 1 : 0;
      },
    };
  },
};
