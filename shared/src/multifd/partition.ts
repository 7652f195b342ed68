/**
 * Which channel carries which page of a round (multifd, issue 18): pure, no I/O.
 *
 * A round's pages (the dirty set, ascending as harvested — any list works) are cut into batches of
 * `batchPages` consecutive list entries, and the batches are dealt out to the N channels:
 *
 * - `batches` (default): batch k goes to channel k mod N — round-robin. Every channel gets the
 *   same mix of the round (zero runs, clustered dirty pages, pages of every region), so the N
 *   channels finish together even when memory is not uniform: one channel whose stripe were all
 *   zero pages would sit idle while another carried all the data, and the round (a barrier) waits
 *   for the slowest. This is how QEMU deals multifd packets out (multifd_send_pages: next channel).
 * - `stripes`: channel i gets the i-th contiguous 1/N of the list (batch-aligned). One long run per
 *   channel; kept to be measured against.
 *
 * Measured (bench/multifd-pipeline.ts, 1 GiB, loopback, N=2, medians of 3, two runs): uniform random
 * memory, batches 2607 / 1303 ms vs stripes 3794 / 1234 ms; first half zero, 1571 / 1065 vs 2381 /
 * 833 ms — no consistent winner on loopback, where both ends share the same two cores (stripes with
 * a skewed round leave fewer busy threads, which can even help there). Round-robin stays the default
 * for what loopback cannot show: with each end on its own cores and links, a round lasts as long as
 * its slowest channel, and only round-robin keeps the channels' loads equal whatever the memory.
 *
 * Within a share, pages keep the list's order, so a batch of an ascending list is one or a few runs
 * of consecutive pages: one iovec to send, one in-place read at the destination.
 *
 * The share of every channel is always produced (possibly empty): each channel ends every round
 * with its marker, so the receiver's barrier (round-barrier.ts) knows the round is over.
 */
import { MigrationError } from '../errors.ts';

/** How pages are dealt to channels. */
export type PartitionMode = 'batches' | 'stripes';

/** Largest number of parallel channels (the `--channels` range). */
export const MAX_CHANNELS = 8;
/** Pages per batch by default: 256 pages = 1 MiB, the write size the transport measured best at. */
export const DEFAULT_BATCH_PAGES = 256;
/** Largest batch a channel frame may carry (its metadata stays below 8 KiB). */
export const MAX_BATCH_PAGES = 1024;

export interface PartitionOptions {
  /** @default 'batches' */
  mode?: PartitionMode;
  /** Pages per batch (the unit dealt out), 1..MAX_BATCH_PAGES. @default 256 */
  batchPages?: number;
  /**
   * `batches`: the channel the first batch goes to — a round sent in several parts (a byte budget
   * per call) keeps dealing where the previous part stopped: `(firstChannel + batches) mod N`.
   * @default 0
   */
  firstChannel?: number;
}

/** Throws ERR_INVALID_ARGUMENT unless `channels` is an integer in 1..MAX_CHANNELS. */
export function checkChannels(channels: number): void {
  if (!Number.isInteger(channels) || channels < 1 || channels > MAX_CHANNELS) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `channels must be an integer from 1 to ${MAX_CHANNELS}, got ${channels}`,
    );
  }
}

/**
 * The round's pages split into `channels` shares (share i is channel i's, in send order). Every
 * entry of `pages` appears in exactly one share, exactly once per occurrence; a share may be empty.
 * The shares are copies (the caller may reuse `pages`).
 */
export function partitionRound(pages: Uint32Array, channels: number, options: PartitionOptions = {}): Uint32Array[] {
  checkChannels(channels);
  const batch = options.batchPages ?? DEFAULT_BATCH_PAGES;
  if (!Number.isInteger(batch) || batch < 1 || batch > MAX_BATCH_PAGES) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `batchPages must be an integer from 1 to ${MAX_BATCH_PAGES}, got ${batch}`,
    );
  }
  const batches = Math.ceil(pages.length / batch);
  const first = options.firstChannel ?? 0;
  if (!Number.isInteger(first) || first < 0 || first >= channels) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `firstChannel must be an integer from 0 to ${channels - 1}, got ${first}`,
    );
  }
  if ((options.mode ?? 'batches') === 'stripes') {
    // Channel i: batches [floor(i·B/N), floor((i+1)·B/N)) — contiguous, sizes differ by ≤ 1 batch.
    return Array.from({ length: channels }, (_, i) => {
      const from = Math.floor((i * batches) / channels) * batch;
      const to = Math.min(pages.length, Math.floor(((i + 1) * batches) / channels) * batch);
      return pages.slice(from, to);
    });
  }
  const shares = Array.from({ length: channels }, (_, channel) => {
    // Batches i, i+N, i+2N, … where i is this channel's place after `first`: all full except
    // possibly the last batch of the list.
    const i = (channel - first + channels) % channels;
    const mine = i < batches ? Math.ceil((batches - i) / channels) : 0;
    const last = mine > 0 && i + (mine - 1) * channels === batches - 1;
    return new Uint32Array(last ? (mine - 1) * batch + (pages.length - (batches - 1) * batch) : mine * batch);
  });
  const filled = new Array<number>(channels).fill(0);
  for (let k = 0; k < batches; k++) {
    const channel = (first + k) % channels;
    const part = pages.subarray(k * batch, Math.min(pages.length, (k + 1) * batch));
    shares[channel]!.set(part, filled[channel]);
    filled[channel]! += part.length;
  }
  return shares;
}
