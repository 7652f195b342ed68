/**
 * `kv`: a UDP key-value service inside the guest, and the guest's driver for the virtual NIC
 * (nic/layout.ts) — and, on a VM with a disk, for the disk too (disk/layout.ts), through which
 * every write goes to a write-ahead log before it is acknowledged. Each step consumes one
 * datagram from the RX ring (or, with a disk, logs one); a valid kv request (kv/protocol.ts) is
 * served against a hash table in guest memory and answered with exactly one reply in the next TX
 * slot, addressed to the sender; anything else is dropped and counted.
 *
 * Flow of one step (the order of the stores is the contract with the device and the dirty log):
 *   read RX slot RX_CONSUMED → decode in place (no allocation) → GET/PUT/DEL on the table page
 *   (store, mark page) → write the reply into TX slot TX_PRODUCED (store, mark page) →
 *   Atomics.store(TX_PRODUCED + 1), mark page 0 → Atomics.store(RX_CONSUMED + 1), mark page 0.
 * After a batch that produced replies, Atomics.notify on TX_PRODUCED: the guest's kick to the
 * device, whose host side waits there with Atomics.waitAsync.
 *
 * With a disk (--disk; R_KV_WAL_BLOCKS ≠ 0) a PUT or DEL takes two steps, as the disk
 * workload's requests do (workloads/disk.ts):
 *   log     the record (kv-wal.ts: op, key, value, id, seq, checksum) into the log buffer page
 *           (mark) → a one-block write request of that page into disk ring slot AVAIL (mark) →
 *           Atomics.store(AVAIL + 1), mark the ring page → Atomics.notify(AVAIL), the kick. The
 *           request stays in its RX slot (RX_CONSUMED does not move) and R_KV_WAL_BUSY is 1.
 *   commit  runnable only once the device completed the write (USED caught up with AVAIL: the
 *           record is in the image file); reads the status from the slot, and on S_OK counts
 *           the record (R_KV_WAL_RECORDS) and serves the request exactly as above — table, reply,
 *           RX_CONSUMED. On a failed write the request is dropped unanswered and counted
 *           (R_KV_WAL_FAILED): a write that is not in the log is never acknowledged.
 * So a PUT's or DEL's reply exists in guest memory only after its log record is on the disk,
 * and every acknowledged write survives in the image (what lets the probe's `lostWrites: 0`
 * vouch for the disk too). GETs and malformed datagrams take one step and touch no disk. The
 * log is append-only from block 0, one block write per logged request (no group commit), and
 * wraps at the end of the disk (kv-wal.ts says why that is acceptable).
 *
 * Guest memory, without a disk (the layout of every kv VM before disks, byte for byte):
 *   0 .. NIC_PAGES − 1              the NIC (nic/layout.ts)
 *   NIC_PAGES ..                    the table
 * with a disk:
 *   0 .. NIC_PAGES − 1              the NIC
 *   DISK_RING_PAGE .. +2            the disk's request ring (where vm-build.ts puts it)
 *   KV_WAL_BUFFER_PAGE              the log's tail block (= the disk workload's buffer page)
 *   KV_DISK_TABLE_PAGE ..           the table
 *
 * The table: `keys` entries of 16 bytes (state u32: 0 empty, 1 live, 2 deleted; key u32; value
 * u32; spare u32), 256 per page, from its first page on. A key lives in ONE page, chosen by its
 * hash (kvTablePage), and is linearly probed inside that page only, wrapping within it — so a
 * step touches at most one table page and nextPages() can name it from the request alone. A
 * PUT of a new key into a page with 256 live entries is refused with status FULL. DEL leaves a
 * tombstone, which later PUTs reuse; probes stop at the first empty entry (an entry never goes
 * back to empty, so no key sits past one on its probe path).
 *
 * Registers: R_STEP_LO/HI count steps (one per datagram consumed, plus one per logged request);
 * R_ACC folds in every request and reply (and every log record and failed write), so a lost or
 * duplicated step shows in the registers, not only in memory; R_KV_REQUESTS (10) counts requests
 * answered; R_KV_MALFORMED (11) counts datagrams dropped as malformed. With a disk:
 * R_KV_WAL_RECORDS (12) log records written (their write completed with S_OK; the next record's
 * seq is this + 1); R_KV_WAL_BLOCKS (13) the disk's size in blocks, set at boot (0: no disk, no
 * log — the guest's copy of the capacity virtio-blk reports in config space); R_KV_WAL_BUSY (14)
 * 1 while a record's write is in flight; R_KV_WAL_FAILED (15) requests dropped because their
 * record's write failed. Without a disk 12–15 stay 0. The ring indices themselves are guest
 * memory, like virtio's.
 *
 * Determinism: a step depends only on the registers and memory — the RX ring is memory, filled
 * by the device; the disk's completion (USED, the status) is memory, written by the device —
 * never on time or on how steps are batched. pending() never offers a batch that goes past a
 * log step (its commit needs the device), and ToyVm.pause() drains the disk, so a paused VM has
 * no write in flight and its state after step N is the same however long the I/O took. The
 * guest reads its words as native-endian Int32s; the wire, slot and log formats are
 * little-endian, so create() refuses a big-endian host rather than serve garbage.
 */
import { MigrationError } from '../../errors.ts';
import { KV_MAGIC_U16LE, KV_MESSAGE_BYTES, KvOp, KvStatus } from '../../kv/protocol.ts';
import { BLOCK_SIZE } from '../disk/image.ts';
import {
  BLK_RING_PAGES,
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
import {
  NIC_PAGES,
  RING_SLOTS,
  W_RX_CONSUMED,
  W_RX_USED,
  W_TX_PRODUCED,
  W_TX_USED,
  rxSlotOffset,
  txSlotOffset,
} from '../nic/layout.ts';
import { hash32 } from '../prng.ts';
import { R_ACC, R_STEP_HI, R_STEP_LO } from '../registers.ts';
import { DISK_BUFFER_PAGE, DISK_RING_PAGE } from './disk.ts';
import { DISK_BYTES_PARAM, type WorkloadDefinition, type WorkloadParams } from './types.ts';
import { requireLittleEndian } from './endianness.ts';
import { KV_WAL_MAGIC, KV_WAL_RECORD_BYTES, KV_WAL_RECORDS_PER_BLOCK, walChecksum } from './kv-wal.ts';

/** Register: kv requests answered (valid datagrams), mod 2^32. */
export const R_KV_REQUESTS = 10;
/** Register: datagrams dropped because they were not a kv request, mod 2^32. */
export const R_KV_MALFORMED = 11;
/** Register (with a disk): write-ahead log records written — their disk write completed with S_OK — mod 2^32. */
export const R_KV_WAL_RECORDS = 12;
/** Register: the disk's size in blocks, set at boot; 0 = no disk, no log. */
export const R_KV_WAL_BLOCKS = 13;
/** Register (with a disk): 1 while a log record's write is in flight (its request waits in RX slot RX_CONSUMED). */
export const R_KV_WAL_BUSY = 14;
/** Register (with a disk): PUTs and DELs dropped unanswered because their log write failed, mod 2^32. */
export const R_KV_WAL_FAILED = 15;

/** With a disk: the page holding the log's tail block (the disk workload's buffer page, right after the ring). */
export const KV_WAL_BUFFER_PAGE = DISK_BUFFER_PAGE;
/** With a disk: the table's first page. */
export const KV_DISK_TABLE_PAGE = KV_WAL_BUFFER_PAGE + 1;

/** Table entries per guest page (16 bytes each). */
export const KV_ENTRIES_PER_PAGE = PAGE_SIZE / 16;
/** Table entry state: never used (a probe stops here). */
export const KV_ENTRY_EMPTY = 0;
/** Table entry state: holds a key and its value. */
export const KV_ENTRY_LIVE = 1;
/** Table entry state: deleted (a tombstone: probes go on past it, PUT reuses it). */
export const KV_ENTRY_DELETED = 2;

const DEFAULT_KEYS = 65536;
/** Payload length in the slot header's high half, as the guest writes it into a reply. */
const REPLY_LENGTH_BITS = KV_MESSAGE_BYTES << 16;

/** Slot status the guest writes when it places a log write: no device status, so a commit that ran early would fail, never acknowledge. */
const STATUS_NOT_COMPLETED = -1;

/**
 * The table page (absolute page number) that holds `key`, for a table of `tablePages` pages
 * starting at `firstPage` (NIC_PAGES without a disk, KV_DISK_TABLE_PAGE with one).
 */
export function kvTablePage(key: number, tablePages: number, firstPage: number = NIC_PAGES): number {
  return firstPage + (hash32(key) % tablePages);
}

/** The table's first page: after the NIC without a disk; after the disk ring and the log buffer with one. */
export function kvFirstTablePage(withDisk: boolean): number {
  return withDisk ? KV_DISK_TABLE_PAGE : NIC_PAGES;
}

/** True if the parameters are a VM's with a disk (resolveVmSpec() added DISK_BYTES_PARAM). */
const hasDisk = (params: WorkloadParams): boolean => (params[DISK_BYTES_PARAM] ?? 0) > 0;

/** The entry (0..255) of its page where the probe for `key` starts. */
export function kvProbeStart(key: number): number {
  return hash32(key) >>> 24;
}

/** The kv workload. */
export const kv: WorkloadDefinition = {
  id: 6,
  name: 'kv',
  summary:
    "a UDP key-value service (GET/PUT/DEL) on the VM's NIC; its table lives in guest memory; " +
    'with --disk, PUTs and DELs are acknowledged once logged on the disk',
  params: [
    {
      name: 'keys',
      kind: 'count',
      default: DEFAULT_KEYS,
      defaultText: String(DEFAULT_KEYS),
      description: 'table capacity in entries (a multiple of 256: one 4KiB page each); a bucket is one page',
    },
  ],
  writesPerStep: 1,
  stepsPerSecond: () => 0,
  drivesNic: true,
  drivesDisk: 'optional',
  reservedBytes: (params) => (kvFirstTablePage(hasDisk(params)) + params.keys! / KV_ENTRIES_PER_PAGE) * PAGE_SIZE,
  validate(params, memoryBytes) {
    const keys = params.keys!;
    if (!Number.isSafeInteger(keys) || keys <= 0 || keys % KV_ENTRIES_PER_PAGE !== 0) {
      throw new MigrationError(
        'ERR_INVALID_WORKLOAD',
        `kv: keys must be a positive multiple of ${KV_ENTRIES_PER_PAGE} (one table page each), got ${keys}`,
      );
    }
    const tablePages = keys / KV_ENTRIES_PER_PAGE;
    const disk = hasDisk(params);
    const needed = (kvFirstTablePage(disk) + tablePages) * PAGE_SIZE;
    if (needed > memoryBytes) {
      const parts = disk
        ? `${NIC_PAGES} NIC pages + ${BLK_RING_PAGES} disk ring pages + 1 log buffer page + ${tablePages} table pages`
        : `${NIC_PAGES} NIC pages + ${tablePages} table pages`;
      throw new MigrationError(
        'ERR_INVALID_WORKLOAD',
        `kv: ${keys} keys need ${needed} bytes (${parts})${disk ? ' with a disk' : ''}, ` +
          `more than the VM's memory (${memoryBytes} bytes)`,
      );
    }
  },
  initRegisters(regs, params) {
    // The disk's capacity, as the driver reads it from the device at boot: the log's length.
    regs[R_KV_WAL_BLOCKS] = Math.floor((params[DISK_BYTES_PARAM] ?? 0) / BLOCK_SIZE);
  },
  create({ regs, mem32, dirty, regionPageShift: shift, params }) {
    requireLittleEndian('kv');
    const mask = (1 << shift) - 1;
    const tablePages = params.keys! / KV_ENTRIES_PER_PAGE;
    // Page 0 is always in region 0: the index words are plain offsets into it.
    const idx = mem32[0]!;
    /** Word index, within its region, of byte offset b (structures never cross a page). */
    const wordOf = (b: number): number => (((b >>> 12) & mask) << 10) | ((b & 4095) >>> 2);
    /** The op of the request in the slot at word w of m, or 0 if the datagram is not one. */
    const requestOp = (m: Int32Array, w: number): number => {
      const head = m[w + 2]!;
      const op = (head >>> 16) & 0xff;
      return m[w + 1]! >>> 16 === KV_MESSAGE_BYTES &&
        (head & 0xffff) === KV_MAGIC_U16LE &&
        head >>> 24 === 0 &&
        op >= KvOp.Get &&
        op <= KvOp.Del
        ? op
        : 0;
    };
    const mark = (p: number): void => {
      dirty[p >>> 5]! |= 1 << (p & 31); // after the store: see dirty-log.ts
    };
    // The disk's ring and the log buffer (used only with a disk; the pages exist in any VM ≥ 1 MiB).
    const ringMem = mem32[DISK_RING_PAGE >>> shift]!;
    const ringBase = (DISK_RING_PAGE & mask) << 10;
    const bufMem = mem32[KV_WAL_BUFFER_PAGE >>> shift]!;
    const bufBase = (KV_WAL_BUFFER_PAGE & mask) << 10;
    /** True once every write the guest placed has completed (one at most is ever in flight). */
    const walDone = (): boolean => ((Atomics.load(ringMem, ringBase + W_USED) - ringMem[ringBase + W_AVAIL]!) | 0) >= 0;

    /**
     * The log step: record number `records` + 1 for the request at word w of m into the buffer,
     * and a write of the buffer to its block placed in the ring. Returns the record's checksum.
     */
    const logRequest = (m: Int32Array, w: number, op: number, records: number, walBlocks: number): number => {
      const n = records >>> 0; // the record's number − 1
      const slot = n % KV_WAL_RECORDS_PER_BLOCK;
      const block = Math.floor(n / KV_WAL_RECORDS_PER_BLOCK) % walBlocks;
      const seq = (n + 1) | 0;
      const key = m[w + 4]!;
      const value = m[w + 5]!;
      const id = m[w + 3]!;
      const checksum = walChecksum(seq >>> 0, op, key >>> 0, value >>> 0, id >>> 0);
      if (slot === 0) bufMem.fill(0, bufBase, bufBase + 1024); // a new block starts from zeros
      const r = bufBase + slot * (KV_WAL_RECORD_BYTES / 4);
      bufMem[r] = KV_WAL_MAGIC;
      bufMem[r + 1] = seq;
      bufMem[r + 2] = op;
      bufMem[r + 3] = key;
      bufMem[r + 4] = value;
      bufMem[r + 5] = id;
      bufMem[r + 6] = 0;
      bufMem[r + 7] = checksum;
      mark(KV_WAL_BUFFER_PAGE);
      const avail = ringMem[ringBase + W_AVAIL]!; // the guest's own word
      const offset = blkSlotOffset(DISK_RING_PAGE, avail);
      const slotPage = offset >>> 12;
      const s = mem32[slotPage >>> shift]!;
      const sw = wordOf(offset);
      s[sw + SLOT_OP / 4] = OP_WRITE;
      s[sw + SLOT_BLOCK / 4] = block;
      s[sw + SLOT_COUNT / 4] = 1;
      s[sw + SLOT_STATUS / 4] = STATUS_NOT_COMPLETED;
      s[sw + SLOT_TAG / 4] = seq;
      s[sw + SLOT_PAGES / 4] = KV_WAL_BUFFER_PAGE;
      for (let k = 1; k < 8; k++) s[sw + SLOT_PAGES / 4 + k] = 0;
      mark(slotPage);
      Atomics.store(ringMem, ringBase + W_AVAIL, (avail + 1) | 0); // publishes the slot (release)
      mark(DISK_RING_PAGE);
      Atomics.notify(ringMem, ringBase + W_AVAIL); // the kick
      return checksum;
    };
    /** The status the device completed the last placed write with. */
    const walStatus = (): number => {
      const offset = blkSlotOffset(DISK_RING_PAGE, ringMem[ringBase + W_AVAIL]! - 1);
      return mem32[(offset >>> 12) >>> shift]![wordOf(offset) + SLOT_STATUS / 4]!;
    };

    return {
      run(n) {
        let lo = regs[R_STEP_LO]!;
        let hi = regs[R_STEP_HI]!;
        let acc = regs[R_ACC]!;
        let requests = regs[R_KV_REQUESTS]!;
        let malformed = regs[R_KV_MALFORMED]!;
        const walBlocks = regs[R_KV_WAL_BLOCKS]!;
        let walBusy = regs[R_KV_WAL_BUSY]!;
        let walRecords = regs[R_KV_WAL_RECORDS]!;
        let walFailed = regs[R_KV_WAL_FAILED]!;
        const first = kvFirstTablePage(walBlocks !== 0);
        let rc = idx[W_RX_CONSUMED]!; // the guest's own words: plain reads
        let tp = idx[W_TX_PRODUCED]!;
        let replied = false;
        for (let i = 0; i < n; i++) {
          const rxOff = rxSlotOffset(rc);
          const rxMem = mem32[(rxOff >>> 12) >>> shift]!;
          const rw = wordOf(rxOff);
          const op = requestOp(rxMem, rw);
          // 0: serve the datagram; 1: logged it (it stays in RX); 2: drop it (its log write failed).
          let action = 0;
          if (walBusy !== 0) {
            walBusy = 0;
            const status = walStatus();
            if (status === S_OK) walRecords = (walRecords + 1) >>> 0;
            else {
              action = 2;
              walFailed = (walFailed + 1) >>> 0;
              acc = ((acc << 5) | (acc >>> 27)) ^ hash32((status ^ 0x5bd1e995) >>> 0);
            }
          } else if (walBlocks !== 0 && op >= KvOp.Put) {
            action = 1;
            walBusy = 1;
            acc = ((acc << 5) | (acc >>> 27)) ^ hash32(logRequest(rxMem, rw, op, walRecords, walBlocks) ^ 0x27d4eb2f);
          }
          if (action === 0 && op === 0) {
            malformed = (malformed + 1) >>> 0;
            acc = ((acc << 5) | (acc >>> 27)) ^ hash32(rxMem[rw + 1]! ^ rxMem[rw + 2]!);
          } else if (action === 0) {
            const key = rxMem[rw + 4]!;
            const value = rxMem[rw + 5]!;
            const page = kvTablePage(key, tablePages, first);
            const tMem = mem32[page >>> shift]!;
            const base = (page & mask) << 10;
            // Probe: `found` = the live entry holding key, `free` = the first reusable entry.
            let found = -1;
            let free = -1;
            for (let j = 0, e = kvProbeStart(key); j < KV_ENTRIES_PER_PAGE; j++, e = (e + 1) & 255) {
              const w = base + (e << 2);
              const state = tMem[w]!;
              if (state === KV_ENTRY_LIVE) {
                if (tMem[w + 1] === key) {
                  found = w;
                  break;
                }
              } else {
                if (free < 0) free = w;
                if (state === KV_ENTRY_EMPTY) break;
              }
            }
            let status: number = KvStatus.Ok;
            let out = value;
            if (op === KvOp.Get) {
              if (found >= 0) out = tMem[found + 2]!;
              else {
                status = KvStatus.NotFound;
                out = 0;
              }
            } else if (op === KvOp.Put) {
              if (found >= 0) {
                tMem[found + 2] = value;
                dirty[page >>> 5]! |= 1 << (page & 31); // after the store: see dirty-log.ts
              } else if (free >= 0) {
                tMem[free + 1] = key;
                tMem[free + 2] = value;
                tMem[free + 3] = 0;
                tMem[free] = KV_ENTRY_LIVE;
                dirty[page >>> 5]! |= 1 << (page & 31);
              } else status = KvStatus.Full;
            } else if (found >= 0) {
              out = tMem[found + 2]!;
              tMem[found] = KV_ENTRY_DELETED;
              dirty[page >>> 5]! |= 1 << (page & 31);
            } else {
              status = KvStatus.NotFound;
              out = 0;
            }
            // The reply: same op, id and key, to the sender's address.
            const txOff = txSlotOffset(tp);
            const txPage = txOff >>> 12;
            const txMem = mem32[txPage >>> shift]!;
            const tw = wordOf(txOff);
            txMem[tw] = rxMem[rw]!;
            txMem[tw + 1] = (rxMem[rw + 1]! & 0xffff) | REPLY_LENGTH_BITS;
            txMem[tw + 2] = KV_MAGIC_U16LE | (op << 16) | (status << 24);
            txMem[tw + 3] = rxMem[rw + 3]!;
            txMem[tw + 4] = key;
            txMem[tw + 5] = out;
            dirty[txPage >>> 5]! |= 1 << (txPage & 31);
            tp = (tp + 1) | 0;
            Atomics.store(idx, W_TX_PRODUCED, tp);
            dirty[0]! |= 1; // page 0
            replied = true;
            requests = (requests + 1) >>> 0;
            acc = ((acc << 5) | (acc >>> 27)) ^ hash32((key ^ Math.imul(out, 0x9e3779b1)) + ((op << 8) | status));
          }
          if (action !== 1) {
            rc = (rc + 1) | 0;
            Atomics.store(idx, W_RX_CONSUMED, rc);
            dirty[0]! |= 1; // page 0
          }
          lo = (lo + 1) >>> 0;
          if (lo === 0) hi = (hi + 1) >>> 0;
        }
        regs[R_STEP_LO] = lo;
        regs[R_STEP_HI] = hi;
        regs[R_ACC] = acc;
        regs[R_KV_REQUESTS] = requests;
        regs[R_KV_MALFORMED] = malformed;
        if (walBlocks !== 0) {
          regs[R_KV_WAL_BUSY] = walBusy;
          regs[R_KV_WAL_RECORDS] = walRecords;
          regs[R_KV_WAL_FAILED] = walFailed;
        }
        if (replied) Atomics.notify(idx, W_TX_PRODUCED); // the kick to the device
      },
      nextPages(out) {
        out[0] = 0;
        const rc = idx[W_RX_CONSUMED]!;
        if (Atomics.load(idx, W_RX_USED) === rc) return 1;
        const rxOff = rxSlotOffset(rc);
        const rxMem = mem32[(rxOff >>> 12) >>> shift]!;
        const rw = wordOf(rxOff);
        out[1] = rxOff >>> 12;
        const op = requestOp(rxMem, rw);
        const walBlocks = regs[R_KV_WAL_BLOCKS]!;
        const busy = regs[R_KV_WAL_BUSY] !== 0;
        if (op === 0 && !busy) return 2;
        const tablePage = kvTablePage(rxMem[rw + 4]!, tablePages, kvFirstTablePage(walBlocks !== 0));
        const txPage = txSlotOffset(idx[W_TX_PRODUCED]!) >>> 12;
        if (busy) {
          // The commit: the status in the last slot placed, then the request served as usual.
          out[2] = DISK_RING_PAGE;
          out[3] = blkSlotOffset(DISK_RING_PAGE, ringMem[ringBase + W_AVAIL]! - 1) >>> 12;
          out[4] = tablePage;
          out[5] = txPage;
          return 6;
        }
        if (walBlocks !== 0 && op >= KvOp.Put) {
          // The log step: AVAIL, the slot it names, the buffer.
          out[2] = DISK_RING_PAGE;
          out[3] = blkSlotOffset(DISK_RING_PAGE, ringMem[ringBase + W_AVAIL]!) >>> 12;
          out[4] = KV_WAL_BUFFER_PAGE;
          return 5;
        }
        out[2] = tablePage;
        out[3] = txPage;
        return 4;
      },
      pending() {
        // u32 differences: the indices are free-running and wrap at 2^32. A device that broke
        // the ring (more than RING_SLOTS filled) is clamped rather than trusted.
        const rx = (Atomics.load(idx, W_RX_USED) - idx[W_RX_CONSUMED]!) >>> 0;
        const inFlight = (idx[W_TX_PRODUCED]! - Atomics.load(idx, W_TX_USED)) >>> 0;
        const runnable = Math.min(rx, RING_SLOTS, inFlight >= RING_SLOTS ? 0 : RING_SLOTS - inFlight);
        if (runnable === 0 || regs[R_KV_WAL_BLOCKS] === 0) return runnable;
        // With a disk: a commit only once the device completed the write; otherwise up to and
        // including the next log step, whose commit must wait for the device.
        if (regs[R_KV_WAL_BUSY] !== 0) return walDone() ? 1 : 0;
        let rc = idx[W_RX_CONSUMED]!;
        for (let k = 0; k < runnable; k++, rc = (rc + 1) | 0) {
          const rxOff = rxSlotOffset(rc);
          if (requestOp(mem32[(rxOff >>> 12) >>> shift]!, wordOf(rxOff)) >= KvOp.Put) return k + 1;
        }
        return runnable;
      },
    };
  },
};
