/**
 * The words the host and the vCPU worker share to control the vCPU without messages
 * (postMessage costs tens of µs and cannot interrupt a running loop; Atomics can).
 *
 * Host → worker: it writes CMD / STOP_AT / THROTTLE / FULL_SPEED, then bumps SEQ and notifies it.
 * The worker only ever sleeps on SEQ (Atomics.wait with or without a timeout), so any command
 * wakes it at once, whether it is paused, pacing itself or blocked on a post-copy fault.
 * Worker → host: at a batch boundary (no store in flight) it publishes LIVE_STEPS, and when it
 * parks it writes STATE = PAUSED and ACK = the last SEQ it saw, then notifies ACK; the host
 * awaits that with Atomics.waitAsync (no polling). A pause/run request with sequence s is done
 * once ACK ≥ s.
 * Faults: the worker appends (page, time) to a ring, bumps FAULT_SEQ and notifies it; the host
 * drains the ring with Atomics.waitAsync on FAULT_SEQ. WAIT_PAGE names the page the vCPU is
 * blocked on, so installing any other page does not wake it.
 */

/** Int32 slot: the command (CMD_PAUSE | CMD_RUN | CMD_EXIT). */
export const CTL_CMD = 0;
/** Int32 slot: bumped by the host after every command change; the worker sleeps on it. */
export const CTL_SEQ = 1;
/** Int32 slot: the worker's state (STATE_*). */
export const CTL_STATE = 2;
/** Int32 slot: the last SEQ the worker acknowledged by parking (PAUSED). -1 before it started. */
export const CTL_ACK = 3;
/** Int32 slot: throttle, in millionths of wall time the vCPU may run (1e6 = unthrottled). */
export const CTL_THROTTLE_PPM = 4;
/** Int32 slot: 1 = ignore pacing and throttle (bounded runs for tests and tools). */
export const CTL_FULL_SPEED = 5;
/** Int32 slot: 1 = every page is present; the vCPU takes the path without presence checks. */
export const CTL_ALL_PRESENT = 6;
/** Int32 slot: the page the vCPU is blocked on, or -1. */
export const CTL_WAIT_PAGE = 7;
/** Int32 slot: number of faults raised so far (ring write index). */
export const CTL_FAULT_SEQ = 8;

/** BigInt64 slot: the vCPU parks when its step count reaches this. */
export const BIG_STOP_AT = 0;
/** BigInt64 slot: the step count, published at every batch boundary. */
export const BIG_LIVE_STEPS = 1;

/** Float64 slot: total ms the vCPU spent blocked on faults. */
export const F64_BLOCKED_MS = 0;

/** Fault ring capacity (the vCPU has at most one fault outstanding; the ring absorbs a slow host). */
export const FAULT_RING = 256;

/** CMD: park at the next batch boundary. */
export const CMD_PAUSE = 0;
/** CMD: run (until STOP_AT). */
export const CMD_RUN = 1;
/** CMD: leave the loop; the worker ends. */
export const CMD_EXIT = 2;

/** STATE: the worker has not parked yet. */
export const STATE_BOOTING = 0;
/** STATE: parked at a batch boundary, nothing in flight. */
export const STATE_PAUSED = 1;
/** STATE: executing (or pacing / throttling / blocked on a fault between steps). */
export const STATE_RUNNING = 2;
/** STATE: left the loop. */
export const STATE_EXITED = 3;

/** STOP_AT when no bounded run is in progress. */
export const NO_STOP = 2n ** 62n;

const INT32_BYTES = 64;
const BIG_OFFSET = 64;
const F64_OFFSET = 128;
const RING_PAGE_OFFSET = 256;
const RING_TIME_OFFSET = RING_PAGE_OFFSET + FAULT_RING * 4;
const TOTAL_BYTES = RING_TIME_OFFSET + FAULT_RING * 8;

/** Typed views of the control block; both sides build one over the same buffer. */
export class ControlBlock {
  /** The shared buffer (pass to the worker). */
  readonly buffer: SharedArrayBuffer;
  /** Int32 slots (CTL_*). */
  readonly i32: Int32Array;
  /** BigInt64 slots (BIG_*). */
  readonly big: BigInt64Array;
  /** Float64 slots (F64_*). */
  readonly f64: Float64Array;
  /** Fault ring: pages. */
  readonly faultPages: Int32Array;
  /** Fault ring: times (ms on the Date.now() scale, sub-ms precision). */
  readonly faultTimes: Float64Array;

  /** A fresh block (host), or views of an existing one (worker). */
  constructor(buffer?: SharedArrayBuffer) {
    const fresh = buffer === undefined;
    this.buffer = buffer ?? new SharedArrayBuffer(TOTAL_BYTES);
    this.i32 = new Int32Array(this.buffer, 0, INT32_BYTES / 4);
    this.big = new BigInt64Array(this.buffer, BIG_OFFSET, 8);
    this.f64 = new Float64Array(this.buffer, F64_OFFSET, 8);
    this.faultPages = new Int32Array(this.buffer, RING_PAGE_OFFSET, FAULT_RING);
    this.faultTimes = new Float64Array(this.buffer, RING_TIME_OFFSET, FAULT_RING);
    if (fresh) {
      this.i32[CTL_ACK] = -1;
      this.i32[CTL_THROTTLE_PPM] = 1_000_000;
      this.i32[CTL_ALL_PRESENT] = 1;
      this.i32[CTL_WAIT_PAGE] = -1;
      this.big[BIG_STOP_AT] = NO_STOP;
    }
  }
}
