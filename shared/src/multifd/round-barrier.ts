/**
 * The receiver's round barrier (multifd, issue 18): pure bookkeeping, no I/O. A pre-copy round is
 * over only when every channel has delivered its share — each channel ends each round with a marker
 * (the channel's RoundEnd) saying what its sender put on the wire, and the destination's channel
 * worker counts the same things from what it took off the wire (a tally). RoundBarrier collects
 * both per channel and says when round r is complete, and whether it is exact.
 *
 * A marker and a tally hold: pages, payload bytes, `pagesHash` (xxhash64 of the page-number
 * sequence in send order) and `contentHash` (xxhash64 of the per-page hashes in send order — the
 * same xxhash64 per page as the memory digest, digest.ts). A channel's share arrived whole and
 * once — no page lost, doubled or swapped for another — exactly when pages and pagesHash agree:
 * that is independent of the guest, and any difference is an error (ERR_BAD_PAYLOAD). Content is
 * a different matter: the sender writes views of live guest memory, so a page the vCPU stores to
 * between the sender hashing it and the kernel copying it differs (that page is dirty and goes
 * again next round; the digest ledgers end equal). So contentHash must agree only when the marker
 * says `stable` (the VM was paused for the whole round: stop-and-copy), and a difference there is
 * ERR_DIGEST_MISMATCH; in a live round it only makes the round not `exact`.
 *
 * Channels may run ahead of each other (channel 0 ends round r+1 while channel 1 is still in r), so
 * several rounds can be open; a channel's rounds must strictly increase (a second marker for a
 * round, or an older one, is refused). Rounds complete in order, since every channel delivers its
 * rounds in order.
 */
import { MigrationError } from '../errors.ts';
import { checkChannels } from './partition.ts';

/** What one channel counted for one round (the sender's marker or the receiver's tally). */
export interface ChannelCount {
  pages: number;
  /** Page payload bytes (zero pages carry none). */
  bytes: number;
  /** xxhash64 of the page numbers (u32 LE) in send order, 16 hex digits. */
  pagesHash: string;
  /** xxhash64 of the pages' xxhash64s (8 bytes each) in send order, 16 hex digits. */
  contentHash: string;
}

/** A channel's end-of-round marker, as its sender wrote it. */
export interface ChannelMarker extends ChannelCount {
  round: number;
  /** The VM was paused for the whole round here: content must match exactly. */
  stable: boolean;
}

/** Where a round stands after a marker arrived. */
export type RoundVerdict =
  | { status: 'pending'; round: number; waiting: number[] }
  | {
      status: 'complete';
      round: number;
      pages: number;
      bytes: number;
      /** Every channel's content matched what its sender hashed. */
      exact: boolean;
      /** Channels whose content did not match (a live round: their pages were written while in flight). */
      changed: number[];
    };

interface OpenRound {
  arrived: number;
  pages: number;
  bytes: number;
  changed: number[];
  seen: boolean[];
}

export class RoundBarrier {
  readonly channels: number;
  /** Last round each channel ended (−1: none yet). */
  readonly #last: number[];
  readonly #open = new Map<number, OpenRound>();

  constructor(channels: number) {
    checkChannels(channels);
    this.channels = channels;
    this.#last = new Array<number>(channels).fill(-1);
  }

  /** Rounds some channel has ended and some other has not yet. */
  get openRounds(): number[] {
    return [...this.#open.keys()].sort((a, b) => a - b);
  }

  /**
   * Channel `channel` ended `marker.round`, having received `tally`. Throws (and records nothing)
   * ERR_UNEXPECTED_MESSAGE for a channel out of range or a round not after its previous one,
   * ERR_BAD_PAYLOAD when the share did not arrive whole and once, ERR_DIGEST_MISMATCH when a stable
   * round's content differs.
   */
  arrive(channel: number, marker: ChannelMarker, tally: ChannelCount): RoundVerdict {
    if (!Number.isInteger(channel) || channel < 0 || channel >= this.channels) {
      throw new MigrationError(
        'ERR_UNEXPECTED_MESSAGE',
        `a marker from channel ${channel}: there are ${this.channels}`,
      );
    }
    const { round } = marker;
    if (!Number.isInteger(round) || round < 0 || round <= this.#last[channel]!) {
      throw new MigrationError(
        'ERR_UNEXPECTED_MESSAGE',
        `channel ${channel} ended round ${round} after round ${this.#last[channel]}: rounds must increase`,
      );
    }
    if (marker.pages !== tally.pages || marker.bytes !== tally.bytes || marker.pagesHash !== tally.pagesHash) {
      throw new MigrationError(
        'ERR_BAD_PAYLOAD',
        `channel ${channel}, round ${round}: sent ${marker.pages} pages (${marker.bytes} bytes, pages ${marker.pagesHash}), ` +
          `received ${tally.pages} (${tally.bytes} bytes, pages ${tally.pagesHash})`,
      );
    }
    const changed = marker.contentHash !== tally.contentHash;
    if (changed && marker.stable) {
      throw new MigrationError(
        'ERR_DIGEST_MISMATCH',
        `channel ${channel}, round ${round} (VM paused): content hash sent ${marker.contentHash}, received ${tally.contentHash}`,
      );
    }
    this.#last[channel] = round;
    let open = this.#open.get(round);
    if (!open) {
      open = { arrived: 0, pages: 0, bytes: 0, changed: [], seen: new Array<boolean>(this.channels).fill(false) };
      this.#open.set(round, open);
    }
    open.arrived++;
    open.pages += marker.pages;
    open.bytes += marker.bytes;
    open.seen[channel] = true;
    if (changed) open.changed.push(channel);
    if (open.arrived < this.channels) {
      const waiting = open.seen.flatMap((seen, i) => (seen ? [] : [i]));
      return { status: 'pending', round, waiting };
    }
    this.#open.delete(round);
    const sorted = open.changed.sort((a, b) => a - b);
    return {
      status: 'complete',
      round,
      pages: open.pages,
      bytes: open.bytes,
      exact: sorted.length === 0,
      changed: sorted,
    };
  }
}
