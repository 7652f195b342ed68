/**
 * `kv`: a UDP key-value service inside the guest, and the guest's driver for the virtual NIC
 * (nic/layout.ts). Each step consumes exactly one datagram from the RX ring; a valid kv request
 * (kv/protocol.ts) is served against a hash table in guest memory and answered with exactly one
 * reply in the next TX slot, addressed to the sender; anything else is dropped and counted.
 *
 * Flow of one step (the order of the stores is the contract with the device and the dirty log):
 *   read RX slot RX_CONSUMED → decode in place (no allocation) → GET/PUT/DEL on the table page
 *   (store, mark page) → write the reply into TX slot TX_PRODUCED (store, mark page) →
 *   Atomics.store(TX_PRODUCED + 1), mark page 0 → Atomics.store(RX_CONSUMED + 1), mark page 0.
 * After a batch that produced replies, Atomics.notify on TX_PRODUCED: the guest's kick to the
 * device, whose host side waits there with Atomics.waitAsync.
 *
 * The table: `keys` entries of 16 bytes (state u32: 0 empty, 1 live, 2 deleted; key u32; value
 * u32; spare u32), 256 per page, from page NIC_PAGES on. A key lives in ONE page, chosen by its
 * hash (kvTablePage), and is linearly probed inside that page only, wrapping within it — so a
 * step touches at most one table page and nextPages() can name it from the request alone. A
 * PUT of a new key into a page with 256 live entries is refused with status FULL. DEL leaves a
 * tombstone, which later PUTs reuse; probes stop at the first empty entry (an entry never goes
 * back to empty, so no key sits past one on its probe path).
 *
 * Registers: R_STEP_LO/HI count steps (one per datagram consumed); R_ACC folds in every request
 * and reply, so a lost or duplicated step shows in the registers, not only in memory;
 * R_KV_REQUESTS (10) counts requests answered; R_KV_MALFORMED (11) counts datagrams dropped as
 * malformed. The ring indices themselves are guest memory (page 0), like virtio's.
 *
 * Determinism: a step depends only on the registers and memory — the RX ring is memory, filled
 * by the device — never on time or on how steps are batched. The guest reads its words as
 * native-endian Int32s; the wire and slot formats are little-endian, so create() refuses a
 * big-endian host rather than serve garbage.
 */
import { MigrationError } from '../../errors.ts';
import { KV_MAGIC_U16LE, KV_MESSAGE_BYTES, KvOp, KvStatus } from '../../kv/protocol.ts';
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
import type { WorkloadDefinition } from './types.ts';
import { requireLittleEndian } from './endianness.ts';

/** Register: kv requests answered (valid datagrams), mod 2^32. */
export const R_KV_REQUESTS = 10;
/** Register: datagrams dropped because they were not a kv request, mod 2^32. */
export const R_KV_MALFORMED = 11;

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

/** The table page (absolute page number) that holds `key`, for a table of `tablePages` pages. */
export function kvTablePage(key: number, tablePages: number): number {
  return NIC_PAGES + (hash32(key) % tablePages);
}

/** The entry (0..255) of its page where the probe for `key` starts. */
export function kvProbeStart(key: number): number {
  return hash32(key) >>> 24;
}

/** The kv workload. */
export const kv: WorkloadDefinition = {
  id: 6,
  name: 'kv',
  summary: "a UDP key-value service (GET/PUT/DEL) on the VM's NIC; its table lives in guest memory",
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
  reservedBytes: (params) => (NIC_PAGES + params.keys! / KV_ENTRIES_PER_PAGE) * PAGE_SIZE,
  validate(params, memoryBytes) {
    const keys = params.keys!;
    if (!Number.isSafeInteger(keys) || keys <= 0 || keys % KV_ENTRIES_PER_PAGE !== 0) {
      throw new MigrationError(
        'ERR_INVALID_WORKLOAD',
        `kv: keys must be a positive multiple of ${KV_ENTRIES_PER_PAGE} (one table page each), got ${keys}`,
      );
    }
    const needed = (NIC_PAGES + keys / KV_ENTRIES_PER_PAGE) * PAGE_SIZE;
    if (needed > memoryBytes) {
      throw new MigrationError(
        'ERR_INVALID_WORKLOAD',
        `kv: ${keys} keys need ${needed} bytes (${NIC_PAGES} NIC pages + ${keys / KV_ENTRIES_PER_PAGE} table pages), ` +
          `more than the VM's memory (${memoryBytes} bytes)`,
      );
    }
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

    return {
      run(n) {
        let lo = regs[R_STEP_LO]!;
        let hi = regs[R_STEP_HI]!;
        let acc = regs[R_ACC]!;
        let requests = regs[R_KV_REQUESTS]!;
        let malformed = regs[R_KV_MALFORMED]!;
        let rc = idx[W_RX_CONSUMED]!; // the guest's own words: plain reads
        let tp = idx[W_TX_PRODUCED]!;
        let replied = false;
        for (let i = 0; i < n; i++) {
          const rxOff = rxSlotOffset(rc);
          const rxMem = mem32[(rxOff >>> 12) >>> shift]!;
          const rw = wordOf(rxOff);
          const op = requestOp(rxMem, rw);
          if (op === 0) {
            malformed = (malformed + 1) >>> 0;
            acc = ((acc << 5) | (acc >>> 27)) ^ hash32(rxMem[rw + 1]! ^ rxMem[rw + 2]!);
          } else {
            const key = rxMem[rw + 4]!;
            const value = rxMem[rw + 5]!;
            const page = kvTablePage(key, tablePages);
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
          rc = (rc + 1) | 0;
          Atomics.store(idx, W_RX_CONSUMED, rc);
          dirty[0]! |= 1; // page 0
          lo = (lo + 1) >>> 0;
          if (lo === 0) hi = (hi + 1) >>> 0;
        }
        regs[R_STEP_LO] = lo;
        regs[R_STEP_HI] = hi;
        regs[R_ACC] = acc;
        regs[R_KV_REQUESTS] = requests;
        regs[R_KV_MALFORMED] = malformed;
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
        if (requestOp(rxMem, rw) === 0) return 2;
        out[2] = kvTablePage(rxMem[rw + 4]!, tablePages);
        out[3] = txSlotOffset(idx[W_TX_PRODUCED]!) >>> 12;
        return 4;
      },
      pending() {
        // u32 differences: the indices are free-running and wrap at 2^32. A device that broke
        // the ring (more than RING_SLOTS filled) is clamped rather than trusted.
        const rx = (Atomics.load(idx, W_RX_USED) - idx[W_RX_CONSUMED]!) >>> 0;
        const inFlight = (idx[W_TX_PRODUCED]! - Atomics.load(idx, W_TX_USED)) >>> 0;
        return Math.min(rx, RING_SLOTS, inFlight >= RING_SLOTS ? 0 : RING_SLOTS - inFlight);
      },
    };
  },
};
