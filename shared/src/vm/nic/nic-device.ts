/**
 * The virtual NIC's device model: the host half of the rings in layout.ts, on the agent's event
 * loop (never in the vCPU worker). The guest half is the kv workload.
 *
 *   backend ──receive()──▶ RX slot RX_USED, Atomics.store(RX_USED + 1), kick() ──▶ vCPU wakes
 *   vCPU ──TX slot, Atomics.store(TX_PRODUCED + 1), Atomics.notify──▶ waitForTx() resolves
 *   backend ──transmit(send)──▶ send() each slot in [TX_USED, TX_PRODUCED), Atomics.store(TX_USED)
 *
 * Who owns what: the rings and the four indices are guest memory (they migrate as pages, and a
 * reply queued on the source goes out from whichever host runs the VM next); the device writes
 * only RX slots, RX_USED and TX_USED. Every such write is marked — data first, then the mark —
 * in `dmaLog`, the host's own dirty log: the vCPU's log has exactly one writer (dirty-log.ts),
 * and a second writer's plain read-modify-write would lose marks. The address, the MAC and the
 * counters are the device's state proper (exportState / importState).
 *
 * transmit() frees TX slots, which is new input for a guest that halted because its TX ring
 * was full, so it kicks the vCPU when it freed any while datagrams are waiting in RX.
 *
 * close() (the VM was destroyed) drops the device's views of guest memory and wakes every
 * waitForTx(): a pending Atomics.waitAsync would otherwise wait forever on a VM that will never
 * notify, and keep its memory reachable. A closed device receives nothing and sends nothing.
 */
import { MigrationError } from '../../errors.ts';
import { markDirty, type DirtyLog } from '../dirty-log.ts';
import { PAGE_SIZE, type GuestMemory } from '../guest-memory.ts';
import { untilSettledOrAborted } from '../wait.ts';
import { ipv4ToU32 } from './ipv4.ts';
import {
  NIC_PAGES,
  RING_SLOTS,
  SLOT_HEADER_BYTES,
  SLOT_PAYLOAD_BYTES,
  W_RX_CONSUMED,
  W_RX_USED,
  W_TX_PRODUCED,
  W_TX_USED,
  rxSlotOffset,
  txSlotOffset,
} from './layout.ts';

/** The NIC's network identity. */
export interface NicAddress {
  /** IPv4, dotted quad. */
  ip: string;
  /** UDP port, 1–65535. */
  port: number;
  /** "xx:xx:xx:xx:xx:xx", hex. */
  mac: string;
}

/** What the device has moved. Cumulative across migrations (they travel in NicState). */
export interface NicCounters {
  /** Datagrams put in the RX ring. */
  rxPackets: number;
  /** Payload bytes put in the RX ring. */
  rxBytes: number;
  /** Datagrams refused: ring full or larger than a slot. */
  rxDropped: number;
  /** Datagrams handed to send(). */
  txPackets: number;
  /** Payload bytes handed to send(). */
  txBytes: number;
}

/** The device's migratable state: plain numbers and strings (msgpack-able). */
/** The indices the device publishes in guest memory (u32), copied into its state as a cross-check. */
export interface NicIndices {
  rxUsed: number;
  txUsed: number;
}

export interface NicState extends NicAddress, NicCounters, NicIndices {}

/** What a NicDevice works with. */
export interface NicDeviceComponents {
  /** The VM's memory; the NIC occupies pages 0 .. NIC_PAGES − 1. */
  memory: GuestMemory;
  /** A host-only dirty log, separate from the vCPU's (one writer per bitmap). */
  dmaLog: DirtyLog;
  /** Wakes a halted vCPU (the device's interrupt). Must be cheap and safe to call at any time. */
  kick: () => void;
  /** The NIC's identity; importState() refuses state of any other. */
  address: NicAddress;
}

const STATE_KEYS = [
  'ip',
  'mac',
  'port',
  'rxBytes',
  'rxDropped',
  'rxPackets',
  'rxUsed',
  'txBytes',
  'txPackets',
  'txUsed',
] as const;
const COUNTER_KEYS = ['rxPackets', 'rxBytes', 'rxDropped', 'txPackets', 'txBytes'] as const;
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

/** The host side of the virtual NIC. */
export class NicDevice {
  /** The NIC's identity. */
  readonly address: Readonly<NicAddress>;
  readonly #dirty: Int32Array;
  readonly #kick: () => void;
  /** Page 0's words: the ring indices (a private zeroed copy once closed). */
  #idx: Int32Array;
  /** Byte and DataView views of the NIC pages, by page number (empty once closed). */
  readonly #bytes: Uint8Array[] = [];
  readonly #views: DataView[] = [];
  #closed = false;
  readonly #counters: NicCounters = { rxPackets: 0, rxBytes: 0, rxDropped: 0, txPackets: 0, txBytes: 0 };
  /** One outstanding Atomics.waitAsync on TX_PRODUCED, shared by waiters of the same value. */
  #waiter: { value: number; promise: Promise<void> } | undefined;

  constructor(components: NicDeviceComponents) {
    const { memory, dmaLog, kick, address } = components;
    if (memory.pageCount < NIC_PAGES) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `the NIC needs ${NIC_PAGES} pages, the VM has ${memory.pageCount}`,
      );
    }
    if (dmaLog.pageCount !== memory.pageCount) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `the NIC's dirty log covers ${dmaLog.pageCount} pages, the VM has ${memory.pageCount}`,
      );
    }
    ipv4ToU32(address.ip);
    if (!Number.isInteger(address.port) || address.port < 1 || address.port > 65535) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `NIC port must be 1–65535, got ${address.port}`);
    }
    if (!MAC.test(address.mac)) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `"${address.mac}" is not a MAC address (xx:xx:xx:xx:xx:xx)`);
    }
    this.address = Object.freeze({ ip: address.ip, port: address.port, mac: address.mac });
    this.#dirty = dmaLog.words;
    this.#kick = kick;
    for (let p = 0; p < NIC_PAGES; p++) {
      const page = memory.page(p);
      this.#bytes.push(page);
      this.#views.push(new DataView(page.buffer, page.byteOffset, PAGE_SIZE));
    }
    const page0 = this.#bytes[0]!;
    this.#idx = new Int32Array(page0.buffer, page0.byteOffset, PAGE_SIZE / 4);
  }

  /** True if the RX ring has a free slot (a backend holds datagrams back instead of having them dropped). */
  rxRoom(): boolean {
    if (this.#closed) return false;
    return (Atomics.load(this.#idx, W_RX_USED) - Atomics.load(this.#idx, W_RX_CONSUMED)) >>> 0 < RING_SLOTS;
  }

  /**
   * Puts one datagram from ipv4:port in the RX ring and kicks the vCPU. False (and counted in
   * rxDropped) if the ring is full or the payload is larger than a slot (SLOT_PAYLOAD_BYTES).
   * The payload is copied into guest memory before this returns.
   */
  receive(ipv4: number, port: number, payload: Uint8Array): boolean {
    if (
      !Number.isInteger(ipv4) ||
      ipv4 < 0 ||
      ipv4 > 0xffff_ffff ||
      !Number.isInteger(port) ||
      port < 0 ||
      port > 65535
    ) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `bad datagram source ${ipv4}:${port}`);
    }
    if (this.#closed) return false;
    const idx = this.#idx;
    const used = Atomics.load(idx, W_RX_USED);
    if ((used - Atomics.load(idx, W_RX_CONSUMED)) >>> 0 >= RING_SLOTS || payload.length > SLOT_PAYLOAD_BYTES) {
      this.#counters.rxDropped += 1;
      return false;
    }
    const offset = rxSlotOffset(used);
    const page = offset >>> 12;
    const at = offset & (PAGE_SIZE - 1);
    const view = this.#views[page]!;
    view.setUint32(at, ipv4, true);
    view.setUint16(at + 4, port, true);
    view.setUint16(at + 6, payload.length, true);
    this.#bytes[page]!.set(payload, at + SLOT_HEADER_BYTES);
    markDirty(this.#dirty, page); // after the data: see dirty-log.ts
    Atomics.store(idx, W_RX_USED, (used + 1) | 0); // publishes the slot (release)
    markDirty(this.#dirty, 0);
    this.#counters.rxPackets += 1;
    this.#counters.rxBytes += payload.length;
    this.#kick();
    return true;
  }

  /**
   * Hands every filled TX slot to `send` (destination ipv4:port, payload), oldest first, and
   * publishes TX_USED after each, so a throwing `send` leaves the rest (and that slot) queued.
   * The payload is a fresh copy: `send` may keep it or send it asynchronously, since the guest
   * reuses the slot as soon as TX_USED moves past it. Returns how many datagrams were sent.
   *
   * A slot whose length exceeds SLOT_PAYLOAD_BYTES is skipped unsent; if the guest claims more
   * than RING_SLOTS filled slots, the older ones were overwritten and only the last RING_SLOTS
   * are sent. The kv guest does neither; a broken guest must not crash the host.
   */
  transmit(send: (ipv4: number, port: number, payload: Uint8Array) => void): number {
    if (this.#closed) return 0;
    const idx = this.#idx;
    let used = Atomics.load(idx, W_TX_USED);
    const produced = Atomics.load(idx, W_TX_PRODUCED); // acquire: the slots below it are written
    let count = (produced - used) >>> 0;
    if (count === 0) return 0;
    if (count > RING_SLOTS) {
      used = (produced - RING_SLOTS) | 0;
      count = RING_SLOTS;
    }
    let sent = 0;
    for (let k = 0; k < count; k++) {
      const offset = txSlotOffset(used);
      const page = offset >>> 12;
      const at = offset & (PAGE_SIZE - 1);
      const view = this.#views[page]!;
      const length = view.getUint16(at + 6, true);
      if (length <= SLOT_PAYLOAD_BYTES) {
        const start = at + SLOT_HEADER_BYTES;
        send(view.getUint32(at, true), view.getUint16(at + 4, true), this.#bytes[page]!.slice(start, start + length));
        sent += 1;
        this.#counters.txPackets += 1;
        this.#counters.txBytes += length;
      }
      used = (used + 1) | 0;
      Atomics.store(idx, W_TX_USED, used);
      markDirty(this.#dirty, 0);
    }
    // A guest halted on a full TX ring with requests waiting has new room now: wake it.
    if (Atomics.load(idx, W_RX_USED) !== Atomics.load(idx, W_RX_CONSUMED)) this.#kick();
    return sent;
  }

  /** True if the guest has filled TX slots the device has not sent. */
  txPending(): boolean {
    return Atomics.load(this.#idx, W_TX_PRODUCED) !== Atomics.load(this.#idx, W_TX_USED);
  }

  /**
   * Resolves once txPending() is true (at once if it already is), waiting on the guest's
   * Atomics.notify of TX_PRODUCED with Atomics.waitAsync: no polling, no timer. Also resolves
   * (without anything pending) when `signal` aborts, or when the device is closed: callers
   * check signal.aborted (and txPending()).
   */
  async waitForTx(signal?: AbortSignal): Promise<void> {
    while (!signal?.aborted && !this.#closed) {
      const idx = this.#idx;
      const produced = Atomics.load(idx, W_TX_PRODUCED);
      if (produced !== Atomics.load(idx, W_TX_USED)) return;
      const wait = this.#waitOn(produced);
      if (!wait) continue; // TX_PRODUCED already moved
      await untilSettledOrAborted(wait, signal);
    }
  }

  /** True once close() ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Detaches the device from guest memory (ToyVm.destroy): wakes every waitForTx(), then drops
   * the views of the NIC pages. Afterwards receive() and rxRoom() say no, transmit() sends
   * nothing, and the ring indices read as zero. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.notify(this.#idx, W_TX_PRODUCED);
    this.#idx = new Int32Array(PAGE_SIZE / 4);
    this.#bytes.length = 0;
    this.#views.length = 0;
  }

  /** The device's state (plain data) for migration. */
  exportState(): NicState {
    return { ...this.address, ...this.#counters, ...this.#indices() };
  }

  /** The ring indices the device writes, as they are in guest memory now. */
  #indices(): NicIndices {
    return { rxUsed: Atomics.load(this.#idx, W_RX_USED) >>> 0, txUsed: Atomics.load(this.#idx, W_TX_USED) >>> 0 };
  }

  /**
   * Loads counters from exportState() of the same NIC (same ip, port and MAC). Checks
   * everything before changing anything; throws ERR_STATE_MISMATCH.
   */
  importState(state: unknown): void {
    if (typeof state !== 'object' || state === null || Array.isArray(state)) {
      throw new MigrationError('ERR_STATE_MISMATCH', 'NIC state is not an object');
    }
    const s = state as Record<string, unknown>;
    const keys = Object.keys(s).sort();
    if (keys.length !== STATE_KEYS.length || keys.some((k, i) => k !== STATE_KEYS[i])) {
      throw new MigrationError(
        'ERR_STATE_MISMATCH',
        `NIC state has fields [${keys.join(', ')}], expected [${STATE_KEYS.join(', ')}]`,
      );
    }
    const { ip, port, mac } = this.address;
    if (s.ip !== ip || s.port !== port || typeof s.mac !== 'string' || s.mac.toLowerCase() !== mac.toLowerCase()) {
      throw new MigrationError(
        'ERR_STATE_MISMATCH',
        `NIC state belongs to ${String(s.ip)}:${String(s.port)} (${String(s.mac)}), this NIC is ${ip}:${port} (${mac})`,
      );
    }
    for (const key of COUNTER_KEYS) {
      const value = s[key];
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
        throw new MigrationError('ERR_STATE_MISMATCH', `NIC state: ${key} must be a non-negative integer`);
      }
    }
    // The device's ring indices travel in guest memory (page 0, migrated before the device
    // state); the copy in the state must agree with it, or state and memory are from different
    // moments and the rings would be replayed or skipped.
    const here = this.#indices();
    if (s.rxUsed !== here.rxUsed || s.txUsed !== here.txUsed) {
      throw new MigrationError(
        'ERR_STATE_MISMATCH',
        `NIC state has ring indices rx ${String(s.rxUsed)} tx ${String(s.txUsed)}, guest memory has ` +
          `rx ${here.rxUsed} tx ${here.txUsed}`,
      );
    }
    for (const key of COUNTER_KEYS) this.#counters[key] = s[key] as number;
  }

  /** A copy of the counters. */
  get counters(): NicCounters {
    return { ...this.#counters };
  }

  /** An Atomics.waitAsync on TX_PRODUCED while it holds `value` (shared), or undefined if it no longer does. */
  #waitOn(value: number): Promise<void> | undefined {
    if (this.#waiter?.value === value) return this.#waiter.promise;
    const result = Atomics.waitAsync(this.#idx, W_TX_PRODUCED, value);
    if (!result.async) return undefined;
    const waiter = {
      value,
      promise: result.value.then(() => {
        if (this.#waiter === waiter) this.#waiter = undefined;
      }),
    };
    this.#waiter = waiter;
    return waiter.promise;
  }
}
