/**
 * Sends a set of pages to the destination in batches: classify each page (zero record or raw
 * bytes), hand the raw pages to the channel as views of guest memory (no copy), respect the
 * channel's backpressure and the bandwidth cap, and count everything in MigrationStats.
 *
 * A page read here may be written by the running vCPU at the same moment; that is fine: the
 * vCPU marks the page dirty after its store, so the next harvest sends it again. Only the
 * final, paused round must be exact.
 */
import { MigrationError } from '@livemig/shared';
import type { PeerChannel } from '@livemig/shared/channel';
import type { GuestMemory } from '@livemig/shared/vm';
import type { MigrationStats } from './stats.ts';
import type { TokenBucket } from './token-bucket.ts';

/** Pages per Pages frame: 256 × 4 KiB = 1 MiB, large enough for writev to pay off, small enough to keep a frame well under the 16 MiB limit. */
export const PAGES_PER_BATCH = 256;

export interface PageSenderComponents {
  channel: PeerChannel;
  memory: GuestMemory;
  stats: MigrationStats;
  bucket: TokenBucket;
  /** Called for every page as it is sent (raw: its bytes; zero: null), e.g. to keep page hashes. */
  onPageSent?: (page: number, bytes: Uint8Array | null) => void;
  /** Aborts the send between batches. */
  signal: AbortSignal;
}

/** Longest stretch a round may hold the event loop. */
const YIELD_EVERY_MS = 1;

export class PageSender {
  readonly #c: PageSenderComponents;
  /** Pages sent at least once, to count re-sends. */
  readonly #sentOnce: Uint8Array;

  constructor(components: PageSenderComponents) {
    this.#c = components;
    this.#sentOnce = new Uint8Array(components.memory.pageCount);
  }

  /** Send `pages` (ascending page numbers) as round `round`. Resolves when all are queued. */
  async send(pages: Uint32Array, round: number): Promise<void> {
    const { channel, memory, stats, bucket, signal, onPageSent } = this.#c;
    stats.current = { index: round, planned: pages.length, sent: 0 };
    let lastYield = performance.now();
    for (let start = 0; start < pages.length; start += PAGES_PER_BATCH) {
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
      const batch = pages.subarray(start, Math.min(start + PAGES_PER_BATCH, pages.length));
      const kinds = new Uint8Array(batch.length);
      const views: Uint8Array[] = [];
      for (let i = 0; i < batch.length; i++) {
        const page = batch[i]!;
        if (page >= memory.pageCount) {
          throw new MigrationError('ERR_INTERNAL', `page ${page} is outside the VM (${memory.pageCount} pages)`);
        }
        if (this.#sentOnce[page]) stats.resentPages += 1;
        else this.#sentOnce[page] = 1;
        if (memory.isZeroPage(page)) {
          kinds[i] = 1;
          stats.zeroPages += 1;
          onPageSent?.(page, null);
        } else {
          const view = memory.page(page);
          views.push(view);
          stats.rawPages += 1;
          onPageSent?.(page, view);
        }
      }
      const payloadBytes = views.length * memory.pageSize;
      await bucket.take(payloadBytes + 16 + batch.length * 5);
      const ok = channel.sendPages({ round, pages: batch, kinds }, views);
      stats.pagePayloadBytes += payloadBytes;
      stats.current.sent += batch.length;
      if (!ok) await channel.drained(signal);
    }
  }

  /** Whether `page` was sent at least once by this sender (post-copy counts re-sends with it). */
  wasSent(page: number): boolean {
    return this.#sentOnce[page] === 1;
  }
}
