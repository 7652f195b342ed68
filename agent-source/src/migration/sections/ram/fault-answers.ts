/**
 * What the source sent of each absent page during post-copy, shared between the two threads that
 * send pages: the main thread (the background push, and faults while no fault worker runs) and
 * the source's fault worker (fault-worker-thread.ts: answers PageRequests on the fault channel
 * without waiting for the main thread's event loop). One SharedArrayBuffer holds
 *
 *   counters  what the worker answered (pages fresh and again, raw, zero, payload bytes), written
 *             by the worker only, read by the main thread for the report — each figure counted
 *             by the thread that did the work, readable after that thread is gone
 *   absent    the pages the destination lacked at the switchover (set again for the pages a
 *             reconnect finds missing), written by the main thread only while the worker
 *             answers nothing (before it is told to serve, and between a reconnect and its resync)
 *   claims    one byte per page: who sent it first since it became absent, 0 = nobody. Taken with
 *             Atomics.compareExchange(0 → owner) before a page goes on any wire, so a page is sent
 *             once whichever thread gets there first; the other thread's claim fails and it skips
 *             the page (the push) or answers it again (a fault: the first copy is still on its way)
 *
 * The pages are read from paused guest memory (the source's vCPU is paused from the switchover on,
 * in post-copy and hybrid alike, and the pages a device writes by itself travel before it, never
 * absent), so whichever thread sends a page sends the same bytes.
 */
import { Bitmap } from '@livemig/shared/vm';

/** Who holds a page's claim. */
export const SENT_BY_PUSHER = 1;
export const SENT_BY_FAULT_WORKER = 2;
export type FaultSender = typeof SENT_BY_PUSHER | typeof SENT_BY_FAULT_WORKER;

/** The worker's counters (BigInt64 slots at the start of the buffer). */
export const enum Counter {
  /** Pages absent and not sent yet, answered on demand. */
  Fetched = 0,
  /** Pages sent already (or never absent) answered again: the first copy was still on its way. */
  Again = 1,
  RawPages = 2,
  ZeroPages = 3,
  PayloadBytes = 4,
  Requests = 5,
  /** The last page the worker was asked for, plus one (the push's pre-paging cursor), and a change count. */
  NextPage = 6,
  NextPageSeq = 7,
}
const COUNTERS = 8;
const COUNTER_BYTES = COUNTERS * 8;

export class FaultAnswers {
  readonly pageCount: number;
  /** Pass this to the fault worker; `new FaultAnswers(pageCount, buffer)` there sees the same state. */
  readonly buffer: SharedArrayBuffer;
  /** Pages absent at the destination (see the header for who may write it when). */
  readonly absent: Bitmap;
  readonly #claims: Uint8Array;
  readonly #counters: BigInt64Array;

  /** Fresh state for `absent` (copied), or a view of an existing buffer (the worker's side). */
  constructor(pageCount: number, from: Bitmap | SharedArrayBuffer) {
    this.pageCount = pageCount;
    const words = Math.ceil(pageCount / 32);
    this.buffer =
      from instanceof SharedArrayBuffer ? from : new SharedArrayBuffer(COUNTER_BYTES + words * 4 + pageCount);
    this.#counters = new BigInt64Array(this.buffer, 0, COUNTERS);
    this.absent = new Bitmap(pageCount, new Uint32Array(this.buffer, COUNTER_BYTES, words));
    this.#claims = new Uint8Array(this.buffer, COUNTER_BYTES + words * 4, pageCount);
    if (from instanceof Bitmap) this.absent.words.set(from.words);
  }

  /** Claim page n for `by`: true when it is theirs to send now (nobody sent it since it became absent). */
  claim(n: number, by: FaultSender): boolean {
    return Atomics.compareExchange(this.#claims, n, 0, by) === 0;
  }

  /** Who sent page n first since it became absent (0: nobody). */
  sentBy(n: number): number {
    return Atomics.load(this.#claims, n);
  }

  /** A reconnect found page n missing at the destination: it is absent and unsent again (main thread, worker held). */
  reset(n: number): void {
    this.absent.set(n);
    Atomics.store(this.#claims, n, 0);
  }

  add(counter: Counter, n: number): void {
    if (n !== 0) Atomics.add(this.#counters, counter, BigInt(n));
  }

  count(counter: Counter): number {
    return Number(Atomics.load(this.#counters, counter));
  }

  /** The worker was asked for page `last`: the push may go on from the next one (pre-paging). */
  asked(last: number): void {
    Atomics.store(this.#counters, Counter.NextPage, BigInt(last + 1));
    Atomics.add(this.#counters, Counter.NextPageSeq, 1n);
  }
}
