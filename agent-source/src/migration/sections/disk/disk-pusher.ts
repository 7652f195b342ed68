/**
 * Storage post-copy, the source side: the VM runs on the destination without its disk; this
 * side (paused, its device drained, so the image is the disk at the stop point) sends every
 * block the destination lacks exactly once, two ways at the same time, as RAM's pusher does:
 *
 *   on demand   a DiskRequest (the guest read an absent block) is answered at once, ahead of
 *               the background push, with the request's id — it is routed to us as it arrives
 *               on the main channel, so it never waits for the push loop;
 *   background  the rest in block order, in batches, paced by the bandwidth cap, the scan going
 *               on just after the most recently requested block (a guest reading block n is
 *               likely to read n + 1 next).
 *
 * A block leaves `unsent` when it is chosen, before its read, so a request for a block already
 * on its way is not answered twice; after a reconnect the destination's DiskMissing says what
 * never arrived (resync).
 */
import type { Logger } from 'pino';
import { MsgType, type PeerChannel } from '@livemig/shared/channel';
import { readBlockList, SpanScratch, type DiskImage } from '@livemig/shared/disk';
import { MAX_DISK_BATCH_BLOCKS } from '@livemig/shared/protocol';
import type { Bitmap } from '@livemig/shared/vm';
import type { TokenBucket } from '../../token-bucket.ts';
import type { BlockSender } from './block-sender.ts';

export interface DiskPusherComponents {
  image: DiskImage;
  sender: BlockSender;
  bucket: TokenBucket;
  logger: Logger;
  signal: AbortSignal;
}

export class DiskPusher {
  readonly #c: DiskPusherComponents;
  readonly #unsent: Bitmap;
  /** pushAll reads one batch at a time (answers to DiskRequest read beside it, without one). */
  readonly #pushScratch = new SpanScratch();
  #cursor = 0;
  #unroute: (() => void) | undefined;
  /** The first failure of an answer (a read error): fails the push. */
  #failure: Error | undefined;

  constructor(components: DiskPusherComponents, absent: Bitmap) {
    this.#c = components;
    this.#unsent = absent.clone();
  }

  /** Blocks still to send. */
  get remaining(): number {
    return this.#unsent.count;
  }

  /** Answer the DiskRequests arriving on `channel` (until the next serve() or stop()). */
  serve(channel: PeerChannel): void {
    this.#unroute?.();
    this.#unroute = channel.route(MsgType.DiskRequest, (request) => {
      void this.#answer(request).catch((error: unknown) => {
        this.#failure ??= error as Error;
      });
    });
  }

  stop(): void {
    this.#unroute?.();
    this.#unroute = undefined;
  }

  /** After a reconnect: the blocks the destination still lacks become unsent again. */
  resync(missing: Bitmap): void {
    for (let n = missing.nextSet(0); n >= 0; n = missing.nextSet(n + 1)) {
      this.#unsent.set(n); // a re-send is counted when it is sent
    }
    this.#cursor = 0;
  }

  /** Push every remaining block on `channel`; resolves once all are queued. */
  async pushAll(channel: PeerChannel): Promise<void> {
    const { bucket, signal, sender } = this.#c;
    while (this.#unsent.count > 0) {
      if (signal.aborted) throw signal.reason as Error;
      if (this.#failure) throw this.#failure;
      if (channel.failure) throw channel.failure;
      const blocks = this.#take();
      if (blocks.length === 0) continue;
      const { data, release } = await sender.readPooled(blocks, this.#pushScratch);
      await bucket.take(data.length);
      if (!sender.send(blocks, data, 'push', 0, release)) await channel.drained(signal);
      // Let DiskRequests in between batches: they must never wait for the whole push.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (this.#failure) throw this.#failure;
  }

  async #answer(request: { id: number; blocks: Uint32Array }): Promise<void> {
    const fresh: number[] = [];
    for (const block of request.blocks) {
      if (block < this.#unsent.size && this.#unsent.has(block)) {
        this.#unsent.clear(block);
        fresh.push(block);
      }
    }
    const last = request.blocks[request.blocks.length - 1];
    if (last !== undefined) this.#cursor = last + 1;
    if (fresh.length === 0) return;
    const blocks = Uint32Array.from(fresh).sort();
    const data = await readBlockList(this.#c.image, blocks);
    this.#c.sender.send(blocks, data, 'fetch', request.id);
  }

  /** The next batch of unsent blocks from the cursor (wrapping once), taken out of `unsent`. */
  #take(): Uint32Array {
    const out: number[] = [];
    let n = this.#cursor < this.#unsent.size ? this.#unsent.nextSet(this.#cursor) : -1;
    if (n < 0) n = this.#unsent.nextSet(0);
    while (n >= 0 && out.length < MAX_DISK_BATCH_BLOCKS) {
      out.push(n);
      this.#unsent.clear(n);
      n = n + 1 < this.#unsent.size ? this.#unsent.nextSet(n + 1) : -1;
    }
    this.#cursor = n >= 0 ? n : 0;
    return Uint32Array.from(out);
  }
}
