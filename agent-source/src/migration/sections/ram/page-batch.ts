/**
 * One batch of pages as it goes on the wire: each page classified (a zero record, when the peer
 * negotiated `zero-pages`, or its raw bytes as a view of guest memory — never copied), counted
 * in the stats and handed to the digest ledger. The pre-copy sender and the post-copy pusher
 * both build batches here, so a page is encoded and accounted for the same way whichever path
 * sends it.
 */
import { PageKind } from '@livemig/shared/protocol';
import type { GuestMemory } from '@livemig/shared/vm';
import type { MigrationStats } from '../../stats.ts';

export interface BatchEncoding {
  memory: GuestMemory;
  stats: MigrationStats;
  /** The peer understands zero records (capability `zero-pages`); otherwise zero pages go raw. */
  zeroPages: boolean;
  /** Called for every page as it is encoded (raw: its bytes; zero: null), e.g. to keep page hashes. */
  onPageSent: (page: number, bytes: Uint8Array | null) => void;
}

export interface EncodedBatch {
  kinds: Uint8Array;
  /** The raw pages' bytes, in batch order. */
  views: Uint8Array[];
  /** Raw page bytes in this batch. */
  payloadBytes: number;
}

/** Classify and account `pages` (all < memory.pageCount). */
export function encodeBatch(pages: Uint32Array, e: BatchEncoding): EncodedBatch {
  const { memory, stats } = e;
  const kinds = new Uint8Array(pages.length);
  const views: Uint8Array[] = [];
  for (let i = 0; i < pages.length; i++) {
    const page = pages[i]!;
    if (e.zeroPages && memory.isZeroPage(page)) {
      kinds[i] = PageKind.Zero;
      stats.zeroPages += 1;
      e.onPageSent(page, null);
    } else {
      const view = memory.page(page);
      views.push(view);
      stats.rawPages += 1;
      e.onPageSent(page, view);
    }
  }
  const payloadBytes = views.length * memory.pageSize;
  stats.pagePayloadBytes += payloadBytes;
  return { kinds, views, payloadBytes };
}
