/**
 * Sends pre-copy rounds (and the stop-and-copy set) in batches within a byte budget: the round's
 * page list is walked from a cursor, each batch encoded (page-batch.ts), paced by the bandwidth
 * cap, backpressured by the channel. `sendSome(budget)` returns when the budget is spent or the
 * round is done, so the engine can look at a switchover request between two calls — which is
 * what lets `migrate-start-postcopy` act mid-round.
 *
 * A page read here may be written by the running vCPU at the same moment; that is fine: the
 * vCPU marks the page dirty after its store, so the next harvest sends it again. Only the
 * final, paused round must be exact.
 */
import { MigrationError } from '@livemig/shared';
import type { PeerChannel } from '@livemig/shared/channel';
import type { GuestMemory } from '@livemig/shared/vm';
import { encodeBatch, type BatchEncoding } from './page-batch.ts';
import type { MigrationStats } from '../../stats.ts';
import type { TokenBucket } from '../../token-bucket.ts';

/** Pages per Pages frame: 256 × 4 KiB = 1 MiB, large enough for writev to pay off, small enough to keep a frame well under the 16 MiB limit. */
export const PAGES_PER_BATCH = 256;

/** Frame overhead the bandwidth cap charges per batch (header + metadata), roughly. */
const FRAME_OVERHEAD = (pages: number): number => 16 + pages * 5;

/** Longest stretch a round may hold the event loop. */
const YIELD_EVERY_MS = 1;

export interface PageSenderComponents {
  channel: () => PeerChannel;
  memory: GuestMemory;
  stats: MigrationStats;
  bucket: TokenBucket;
  encoding: Omit<BatchEncoding, 'memory' | 'stats'>;
  /** Aborts the send between batches. */
  signal: AbortSignal;
}

export class PageSender {
  readonly #c: PageSenderComponents;
  /** Pages sent at least once, to count re-sends. */
  readonly #sentOnce: Uint8Array;
  #pages: Uint32Array = new Uint32Array(0);
  #cursor = 0;
  #round = 0;
  #anySent = false;

  constructor(components: PageSenderComponents) {
    this.#c = components;
    this.#sentOnce = new Uint8Array(components.memory.pageCount);
  }

  /** Start sending `pages` (ascending) as round `round`. */
  begin(pages: Uint32Array, round: number): void {
    this.#pages = pages;
    this.#cursor = 0;
    this.#round = round;
    const bytesAtStart = this.#c.channel().bytesSent;
    this.#c.stats.current = {
      index: round,
      planned: pages.length,
      sent: 0,
      startedAt: performance.now(),
      bytesAtStart,
    };
  }

  /** Pages of the current round not sent yet. */
  get unsent(): Uint32Array {
    return this.#pages.subarray(this.#cursor);
  }

  /** True once any page was sent in this migration. */
  get anySent(): boolean {
    return this.#anySent;
  }

  /**
   * Send batches until about `budgetBytes` of page payload went out or the round is done.
   * Resolves true when the round is done (every page queued on the socket).
   */
  async sendSome(budgetBytes: number): Promise<boolean> {
    const { memory, stats, bucket, signal } = this.#c;
    const channel = this.#c.channel();
    let spent = 0;
    let lastYield = performance.now();
    while (this.#cursor < this.#pages.length && spent < budgetBytes) {
      // On a fast link the socket never pushes back, so nothing here would wait for I/O and a
      // round would hold the event loop from start to end — and the same loop serves this
      // host's VMs (their NICs: a kv VM's clients would see the whole round as an outage) and
      // the control channel. Give it a turn every millisecond.
      if (performance.now() - lastYield >= YIELD_EVERY_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
      if (signal.aborted) throw signal.reason as Error;
      if (channel.failure) throw channel.failure;
      const end = Math.min(this.#cursor + PAGES_PER_BATCH, this.#pages.length);
      const batch = this.#pages.subarray(this.#cursor, end);
      this.#countResends(batch);
      const { kinds, views, payloadBytes } = encodeBatch(batch, { memory, stats, ...this.#c.encoding });
      this.#cursor = end;
      this.#anySent = true;
      await bucket.take(payloadBytes + FRAME_OVERHEAD(batch.length));
      const ok = channel.sendPages({ round: this.#round, pages: batch, kinds }, views);
      stats.current.sent += batch.length;
      spent += payloadBytes + FRAME_OVERHEAD(batch.length);
      if (!ok) await channel.drained(signal);
    }
    return this.#cursor >= this.#pages.length;
  }

  /** Send all of `pages` as round `round` (stop-and-copy: the VM is paused). */
  async sendAll(pages: Uint32Array, round: number): Promise<void> {
    this.begin(pages, round);
    while (!(await this.sendSome(Number.POSITIVE_INFINITY)));
  }

  /** Whether `page` was sent at least once by this sender (post-copy counts re-sends with it). */
  wasSent(page: number): boolean {
    return this.#sentOnce[page] === 1;
  }

  #countResends(batch: Uint32Array): void {
    const { memory, stats } = this.#c;
    for (let i = 0; i < batch.length; i++) {
      const page = batch[i]!;
      if (page >= memory.pageCount) {
        throw new MigrationError('ERR_INTERNAL', `page ${page} is outside the VM (${memory.pageCount} pages)`);
      }
      if (this.#sentOnce[page]) stats.resentPages += 1;
      else this.#sentOnce[page] = 1;
    }
  }
}
