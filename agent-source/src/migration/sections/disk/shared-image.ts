/**
 * The source's side of a disk on shared storage: nothing is copied, but the destination must
 * open the image the source closes and agree on its digest, and neither may cost the downtime
 * more than the writes of its last moments.
 *
 * - Write-back: the image is written back (fdatasync) while the VM runs — from setup, again at
 *   each round's end — and a round is not done until its write-back is, so closing the image at
 *   the stop point writes back only the latest writes.
 * - Pre-hash (capability `disk-prehash`): at setup the image is marked — its block dirty log
 *   cleared, the allocated blocks noted — and, once the write-back that follows has finished
 *   (every write before the mark is in the file), DiskAllocated asks the destination to hash
 *   those blocks now, from the file the source still runs on. A round is not done until it
 *   answers (DiskPrehashed). At the stop point DiskWritten names the blocks written since the
 *   mark (a write still in flight at the mark is marked after it completes, so it is among
 *   them), and only those are hashed again inside the downtime. Without the capability, or if
 *   the destination could not pre-hash, it hashes the image whole at the stop point.
 */
import type { Logger } from 'pino';
import { msg, MsgType, type PeerChannel } from '@livemig/shared/channel';
import type { VirtualDisk } from '@livemig/shared/disk';
import { MAX_DISK_WRITTEN_BLOCKS } from '@livemig/shared/protocol';

/** A few milliseconds, on a timer (a macrotask: I/O runs before it fires). */
const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

export class SharedImage {
  readonly #disk: VirtualDisk;
  readonly #channel: () => PeerChannel;
  readonly #logger: Logger;
  readonly #prehashing: boolean;
  #flushing: Promise<void> = Promise.resolve();
  #flushDone = true;
  /** The allocated blocks at the mark (bitmap bytes), until DiskAllocated carries them. */
  #marked: Uint8Array | undefined;
  #askedPrehash = false;
  #prehashed: { ms: number; outcome: 'done' | 'failed' } | undefined;
  #answer: () => void = () => {};
  /** When a round stops waiting for DiskPrehashed (set when DiskAllocated goes). */
  #answerDeadline = Number.POSITIVE_INFINITY;
  #gaveUp = false;
  /** Resolves when DiskPrehashed came. */
  readonly #answered = new Promise<void>((resolve) => (this.#answer = resolve));
  #unroute: (() => void) | undefined;
  /** Blocks DiskWritten named at the stop point. */
  rehashed = 0;

  constructor(disk: VirtualDisk, channel: () => PeerChannel, logger: Logger) {
    this.#disk = disk;
    this.#channel = channel;
    this.#logger = logger;
    this.#prehashing = channel().capabilities.has('disk-prehash');
  }

  /** Setup: mark the image (pre-hash) and start its write-back. */
  setup(): void {
    if (this.#prehashing) {
      const image = this.#disk.image;
      image.dirtyLog.harvest(); // the mark: every write completed from now on shows in the stop point's harvest
      this.#marked = image.allocated.bytes();
    }
    this.writeBack();
  }

  /**
   * One step of a round: true once the round's write-back (and the destination's pre-hash) are
   * done. Not done means it waited up to a few ms first — on a timer, so the caller's loop lets
   * I/O in (the answer it waits for comes that way) and a switchover request still acts at once.
   */
  async iterate(): Promise<boolean> {
    if (!this.#flushDone) await Promise.race([this.#flushing, tick()]);
    if (!this.#flushDone) return false;
    if (this.#marked && !this.#askedPrehash) this.#askPrehash(this.#marked);
    if (!this.#askedPrehash || this.#prehashed !== undefined) return true;
    await Promise.race([this.#answered, tick()]);
    if (this.#prehashed !== undefined) return true;
    if (performance.now() > this.#answerDeadline) {
      // A destination that does not answer does not hold the VM here for ever: switch over; it
      // finishes its pre-hash inside the downtime (bounded by the switchover timeout).
      this.#logger.warn({ event: 'disk.prehash.late' }, 'the destination has not pre-hashed the shared image in time');
      this.#answerDeadline = Number.POSITIVE_INFINITY;
      this.#gaveUp = true;
    }
    return this.#gaveUp;
  }

  /** Start a write-back of the image unless one is running. */
  writeBack(): void {
    if (!this.#flushDone || !this.#disk.attached) return;
    this.#flushDone = false;
    this.#flushing = this.#disk.image
      .flush()
      .catch((error: unknown) => this.#logger.warn({ err: error, event: 'disk.writeback' }, 'write-back failed'))
      .finally(() => (this.#flushDone = true));
  }

  /**
   * The stop point (the VM paused, its device drained): the last write-back, then DiskWritten
   * with the blocks written since the mark, if the destination was asked to pre-hash.
   */
  async stopPoint(): Promise<void> {
    await this.#flushing;
    if (!this.#askedPrehash) return;
    const written = this.#disk.image.dirtyLog.harvest();
    this.rehashed = written.length;
    const channel = this.#channel();
    for (let at = 0; at < written.length; at += MAX_DISK_WRITTEN_BLOCKS) {
      channel.send(msg.diskWritten(written.subarray(at, at + MAX_DISK_WRITTEN_BLOCKS)));
    }
  }

  /** What the report says of the destination's hashing. */
  get hashNote(): string {
    const pre = this.#prehashed;
    if (pre?.outcome === 'done') {
      return `the destination pre-hashed it while the VM ran (${(pre.ms / 1000).toFixed(1)} s) and hashed again the ${this.rehashed} blocks written since`;
    }
    if (this.#askedPrehash && !pre) return 'the destination was still pre-hashing it at the stop point';
    if (pre?.outcome === 'failed') return 'the destination could not pre-hash it and hashed it whole';
    return 'the destination hashed it whole';
  }

  /** The migration is over, either way. */
  finish(): void {
    this.#unroute?.();
    this.#unroute = undefined;
  }

  #askPrehash(bitmap: Uint8Array): void {
    const channel = this.#channel();
    this.#unroute = channel.route(MsgType.DiskPrehashed, (m) => {
      this.#prehashed = { ms: m.ms, outcome: m.outcome };
      this.#answer();
      this.#logger.info(
        { event: 'disk.prehashed', ms: m.ms, outcome: m.outcome },
        'the destination pre-hashed the shared image',
      );
    });
    this.#askedPrehash = true;
    // Reading the allocated blocks at 20 MB/s — a cold read on a slow share — and 30 s to spare.
    this.#answerDeadline = performance.now() + 30_000 + (this.#disk.image.allocatedBytes * 1000) / 20e6;
    this.#marked = undefined;
    channel.send(msg.diskAllocated(bitmap));
  }
}
