/**
 * Sends disk blocks — a pre-copy round's list, or the stop point's rest — in DiskBlocks of up to
 * MAX_DISK_BATCH_BLOCKS, within a byte budget per call (as PageSender does for pages), paced by
 * the bandwidth cap and backpressured by the channel. Each batch's blocks are read from the
 * image (positional reads, one per contiguous run), then filtered by `skip` (a mirror drops a
 * block the guest wrote — and mirrored — while the read was in flight: its newer bytes went
 * ahead) and sent. Nothing is hashed here: this side's digest is its disk's live ledger (every
 * write this host made, hashed as it landed), the destination's that of what it received.
 *
 * A block read here may be written by the running guest at the same moment; that is fine: the
 * image marks it dirty after the write is in the file, so the next harvest sends it again. Only
 * the stop point's set, read with the VM paused and its device drained, must be exact.
 */
import { msg, type PeerChannel } from '@livemig/shared/channel';
import { BLOCK_SIZE, readBlockList, SpanScratch, type DiskImage } from '@livemig/shared/disk';
import { MAX_DISK_BATCH_BLOCKS } from '@livemig/shared/protocol';
import type { StorageReport } from '@livemig/shared/report';
import { Bitmap } from '@livemig/shared/vm';
import type { TokenBucket } from '../../token-bucket.ts';
import { BufferPool } from './buffer-pool.ts';

/** Payload buffers kept for reuse: what backpressure lets be in flight (4 MiB high-water mark), and some. */
const POOLED_BUFFERS = 8;

/** Frame overhead the bandwidth cap charges per batch (header + metadata), roughly. */
const FRAME_OVERHEAD = (blocks: number): number => 32 + blocks * 4;

/** The disk's figures for the report, as it names them (StorageReport). */
export type DiskCounters = Pick<
  StorageReport,
  'wireBytes' | 'blocksCopied' | 'blocksResent' | 'blocksMirrored' | 'blocksFetched' | 'blocksPushed'
>;

export function newDiskCounters(): DiskCounters {
  return { wireBytes: 0, blocksCopied: 0, blocksResent: 0, blocksMirrored: 0, blocksFetched: 0, blocksPushed: 0 };
}

export interface BlockSenderComponents {
  channel: () => PeerChannel;
  image: () => DiskImage;
  bucket: TokenBucket;
  counters: DiskCounters;
  signal: AbortSignal;
  /** Blocks not to send after all (read, then found superseded). @default none */
  skip?: (block: number) => boolean;
}

export class BlockSender {
  readonly #c: BlockSenderComponents;
  /** Blocks sent at least once, to count re-sends. */
  readonly #sentOnce: Bitmap;
  #blocks: Uint32Array = new Uint32Array(0);
  #cursor = 0;
  /** sendSome reads one batch at a time: its spans share one buffer. */
  readonly #scratch = new SpanScratch();
  /** Payload buffers, back once the channel wrote them (a few are in flight under backpressure). */
  readonly #pool = new BufferPool(MAX_DISK_BATCH_BLOCKS * BLOCK_SIZE, POOLED_BUFFERS);

  constructor(components: BlockSenderComponents, blockCount: number) {
    this.#c = components;
    this.#sentOnce = new Bitmap(blockCount);
  }

  /** Start sending `blocks` (ascending). */
  begin(blocks: Uint32Array): void {
    this.#blocks = blocks;
    this.#cursor = 0;
  }

  /** Blocks of the current list not sent yet. */
  get unsent(): Uint32Array {
    return this.#blocks.subarray(this.#cursor);
  }

  /** Whether `block` was ever sent by this sender. */
  wasSent(block: number): boolean {
    return this.#sentOnce.has(block);
  }

  /** Send batches until about `budgetBytes` went out or the list is done; true when done. */
  async sendSome(budgetBytes: number): Promise<boolean> {
    const { signal, bucket } = this.#c;
    let spent = 0;
    while (this.#cursor < this.#blocks.length && spent < budgetBytes) {
      if (signal.aborted) throw signal.reason as Error;
      const end = Math.min(this.#cursor + MAX_DISK_BATCH_BLOCKS, this.#blocks.length);
      const batch = this.#blocks.slice(this.#cursor, end);
      this.#cursor = end;
      // Paced before the read, never between the filter and the send: a block the guest writes
      // (and a mirror sends) while we wait must not be followed by our older copy of it.
      const cost = batch.length * BLOCK_SIZE + FRAME_OVERHEAD(batch.length);
      await bucket.take(cost);
      spent += cost;
      const { data, release } = await this.readPooled(batch, this.#scratch);
      const { blocks, bytes } = this.#keep(batch, data); // no await from here to the send
      if (bytes !== data) release(); // filtered into a buffer of its own (or nothing left)
      if (blocks.length === 0) continue;
      if (!this.send(blocks, bytes, 'copy', 0, bytes === data ? release : undefined)) {
        await this.#c.channel().drained(signal);
      }
    }
    return this.#cursor >= this.#blocks.length;
  }

  /**
   * Read `blocks` (at most a message's worth) into a pooled buffer; `release` gives it back —
   * pass it to send() as its onWritten, or call it if the bytes are not sent.
   */
  async readPooled(blocks: Uint32Array, scratch: SpanScratch): Promise<{ data: Uint8Array; release: () => void }> {
    const buffer = blocks.length <= MAX_DISK_BATCH_BLOCKS ? this.#pool.take() : undefined;
    const data = await readBlockList(this.#c.image(), blocks, { scratch, ...(buffer ? { into: buffer } : {}) });
    return { data, release: buffer ? () => this.#pool.give(buffer) : () => {} };
  }

  /** Send all of `blocks` (the VM is paused). */
  async sendAll(blocks: Uint32Array): Promise<void> {
    this.begin(blocks);
    while (!(await this.sendSome(Number.POSITIVE_INFINITY)));
  }

  /**
   * Put `blocks` (their bytes in `data`) on the wire — and in the counters — as a pre-copy `copy`,
   * a post-copy `push`, or a `fetch` answering DiskRequest `requestId`. Returns the channel's
   * backpressure flag.
   */
  send(
    blocks: Uint32Array,
    data: Uint8Array,
    kind: 'copy' | 'push' | 'fetch' = 'copy',
    requestId = 0,
    onWritten?: () => void,
  ): boolean {
    const { counters } = this.#c;
    const channel = this.#c.channel();
    if (channel.failure) throw channel.failure;
    for (let i = 0; i < blocks.length; i++) {
      const block = blocks[i]!;
      if (this.#sentOnce.has(block)) counters.blocksResent += 1;
      else this.#sentOnce.set(block);
    }
    if (kind === 'copy') counters.blocksCopied += blocks.length;
    else if (kind === 'push') counters.blocksPushed += blocks.length;
    else counters.blocksFetched += blocks.length;
    counters.wireBytes += data.length;
    return channel.send(msg.diskBlocks({ blocks, data, requestId }), onWritten);
  }

  /** The blocks of a batch still to send, and their bytes. */
  #keep(batch: Uint32Array, data: Uint8Array): { blocks: Uint32Array; bytes: Uint8Array } {
    const skip = this.#c.skip;
    if (!skip) return { blocks: batch, bytes: data };
    const kept: number[] = [];
    for (let i = 0; i < batch.length; i++) if (!skip(batch[i]!)) kept.push(i);
    if (kept.length === batch.length) return { blocks: batch, bytes: data };
    const bytes = new Uint8Array(kept.length * BLOCK_SIZE);
    kept.forEach((i, k) => bytes.set(data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE), k * BLOCK_SIZE));
    return { blocks: Uint32Array.from(kept, (i) => batch[i]!), bytes };
  }
}
