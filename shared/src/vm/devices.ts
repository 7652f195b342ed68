/**
 * The toy device set: a timer and a console, in a small SharedArrayBuffer the vCPU updates.
 * Every DEVICE_TICK_STEPS steps the timer ticks and latches the accumulator register; every
 * CONSOLE_EVERY_TICKS ticks the guest prints a line (`tick <n> acc <hex>`) to the console, a
 * 256-byte output ring. Device updates happen at fixed step counts (the vCPU never runs a batch
 * across a tick), so device state is as deterministic as memory and registers, and it is part of
 * what a migration must carry: exportState() gives a msgpack-able object, importState() checks
 * and loads one.
 */
import { MigrationError } from '../errors.ts';
import type { BlkState } from './disk/blk-device.ts';
import type { NicState } from './nic/nic-device.ts';
import { R_ACC, R_STEP_LO } from './registers.ts';

/** The timer ticks after every this many steps. */
export const DEVICE_TICK_STEPS = 4096;
/** The guest prints a console line every this many ticks. */
export const CONSOLE_EVERY_TICKS = 16;
/** Console ring size in bytes. */
export const CONSOLE_RING_BYTES = 256;
/** Device-state format version. */
export const DEVICE_STATE_VERSION = 1;

/** Exported device state (plain data: numbers and strings, msgpack-able). */
export interface DeviceState {
  version: number;
  timer: { ticks: number; latch: number };
  console: { bytesWritten: number; tail: string };
  /** The virtual NIC (MAC, address, counters), or null for a VM without one (see nic/nic-device.ts). */
  nic?: NicState | null;
  /** The virtual disk's device (ring indices, counters; see disk/blk-device.ts); absent for a VM without one. */
  disk?: BlkState;
}

// u32 word indices; 64-bit counters take two words (lo at the index, hi after it).
const W_TICKS_LO = 0;
const W_LATCH = 2;
const W_CONSOLE_LO = 3;
const RING_OFFSET = 64;

/** The devices, over shared memory. */
export class DeviceBus {
  /** The shared buffer (pass to the vCPU worker). */
  readonly buffer: SharedArrayBuffer;
  readonly #w: Uint32Array;
  readonly #ring: Uint8Array;

  /** Fresh devices, or views of existing ones (worker side). */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(RING_OFFSET + CONSOLE_RING_BYTES);
    this.#w = new Uint32Array(this.buffer, 0, RING_OFFSET / 4);
    this.#ring = new Uint8Array(this.buffer, RING_OFFSET, CONSOLE_RING_BYTES);
  }

  /** vCPU side: the timer tick that follows every DEVICE_TICK_STEPS-th step. */
  tick(regs: Uint32Array): void {
    const w = this.#w;
    const ticks = get64(w, W_TICKS_LO) + 1;
    set64(w, W_TICKS_LO, ticks);
    w[W_LATCH] = regs[R_ACC]! ^ regs[R_STEP_LO]!;
    if (ticks % CONSOLE_EVERY_TICKS === 0) {
      this.#print(`tick ${ticks} acc ${w[W_LATCH]!.toString(16).padStart(8, '0')}\n`);
    }
  }

  /** Everything the console ever printed that is still in the ring (at most 256 bytes). */
  get consoleTail(): string {
    const written = get64(this.#w, W_CONSOLE_LO);
    const n = Math.min(written, CONSOLE_RING_BYTES);
    let out = '';
    for (let i = written - n; i < written; i++) out += String.fromCharCode(this.#ring[i % CONSOLE_RING_BYTES]!);
    return out;
  }

  /** A copy of the device state (host side; the vCPU must be paused for it to be consistent). */
  exportState(): DeviceState {
    return {
      version: DEVICE_STATE_VERSION,
      timer: { ticks: get64(this.#w, W_TICKS_LO), latch: this.#w[W_LATCH]! },
      console: { bytesWritten: get64(this.#w, W_CONSOLE_LO), tail: this.consoleTail },
    };
  }

  /** Loads state from exportState() (host side, vCPU paused). Throws ERR_STATE_MISMATCH on anything malformed. */
  importState(state: unknown): void {
    const s = state as Partial<DeviceState> | null;
    const ok =
      typeof s === 'object' &&
      s !== null &&
      s.version === DEVICE_STATE_VERSION &&
      isCount(s.timer?.ticks) &&
      isCount(s.timer?.latch) &&
      s.timer.latch < 2 ** 32 &&
      isCount(s.console?.bytesWritten) &&
      typeof s.console?.tail === 'string' &&
      s.console.tail.length === Math.min(s.console.bytesWritten, CONSOLE_RING_BYTES) &&
      /^[\x20-\x7e\n]*$/.test(s.console.tail);
    if (!ok) throw new MigrationError('ERR_STATE_MISMATCH', 'device state is malformed or of another version');
    const { timer, console: con } = s as DeviceState;
    set64(this.#w, W_TICKS_LO, timer.ticks);
    this.#w[W_LATCH] = timer.latch;
    this.#ring.fill(0);
    set64(this.#w, W_CONSOLE_LO, con.bytesWritten);
    const start = con.bytesWritten - con.tail.length;
    for (let i = 0; i < con.tail.length; i++) this.#ring[(start + i) % CONSOLE_RING_BYTES] = con.tail.charCodeAt(i);
  }

  #print(text: string): void {
    let written = get64(this.#w, W_CONSOLE_LO);
    for (let i = 0; i < text.length; i++) {
      this.#ring[written % CONSOLE_RING_BYTES] = text.charCodeAt(i);
      written += 1;
    }
    set64(this.#w, W_CONSOLE_LO, written);
  }
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function get64(w: Uint32Array, lo: number): number {
  return w[lo + 1]! * 2 ** 32 + w[lo]!;
}

function set64(w: Uint32Array, lo: number, value: number): void {
  w[lo] = value >>> 0;
  w[lo + 1] = Math.floor(value / 2 ** 32);
}
