/**
 * The disk section: the VM's virtual disk, block by block, in one of four ways (--storage):
 *
 *   shared    nothing travels: both hosts see the same image. At the stop point (the VM paused,
 *             its device drained) the image is flushed and closed — its lock dropped —
 *             so the destination can open it; a failure before Handoff opens it here again
 *             (rollback), and after Handoff it is the destination's (keepImage: never removed
 *             here).
 *   copy      pre-copy beside RAM: round 0 sends every allocated block (holes are never read),
 *             round k the blocks written since they were sent (the image's block dirty log,
 *             harvested at each round's end as RAM's is); the stop point sends the rest.
 *   mirror    as copy for round 0; then the write-blocking mirror (mirror.ts) makes every
 *             later guest write synchronous with the destination, round 1 catches up with what
 *             was written before it started, and nothing is left to converge: pending() is
 *             only the catch-up, whatever the guest's write rate.
 *   postcopy  nothing before the switchover: DiskAbsent tells the destination which blocks it
 *             lacks (every allocated one not sent), and after the handoff disk-pusher.ts sends
 *             them, on demand first.
 *
 * This side's digest, in every mode, is the disk's live ledger (VirtualDisk.ledger: every write
 * this host made, hashed as it landed): at the stop point it is digestDisk() of the disk as it
 * stands, without reading it and without hashing what is sent. The destination's is of what it
 * received (or, shared, of the image it opened), so a block sent stale, lost or never sent shows
 * as a mismatch of the disk's contents, not only of the transfer.
 */
import type { Logger } from 'pino';
import { MigrationError } from '@livemig/shared';
import { msg, type PeerChannel } from '@livemig/shared/channel';
import type { VirtualDisk } from '@livemig/shared/disk';
import type { SetupMsg, StorageMode } from '@livemig/shared/protocol';
import type { StorageReport, SwitchoverReason, WriteLatency } from '@livemig/shared/report';
import { Bitmap, unionSorted } from '@livemig/shared/vm';
import type { TokenBucket } from '../../token-bucket.ts';
import type { OutgoingSection } from '../section.ts';
import { BlockSender, newDiskCounters } from './block-sender.ts';
import { DiskPusher } from './disk-pusher.ts';
import { DiskMirror } from './mirror.ts';
import { SharedImage } from './shared-image.ts';

export interface DiskSectionComponents {
  disk: VirtualDisk;
  storage: StorageMode;
  channel: () => PeerChannel;
  bucket: TokenBucket;
  logger: Logger;
  signal: AbortSignal;
}

const EMPTY = new Uint32Array(0);
/** Bytes per second a destination is allowed for hashing a shared image at the stop point (switchover timeout). */
const SHARED_HASH_BPS = 100e6;
const BLOCK = 4096;

export class DiskSection implements OutgoingSection {
  readonly name = 'disk';
  readonly storage: StorageMode;
  readonly #c: DiskSectionComponents;
  readonly #counters = newDiskCounters();
  readonly #sender: BlockSender;
  readonly #allocatedAtStart: number;
  readonly #latencyBefore: WriteLatency | null;
  #firstRound: Uint32Array = EMPTY;
  #dirty: Uint32Array = EMPTY;
  #round = -1;
  #rounds = 0;
  #digest: string | undefined;
  #mirror: DiskMirror | undefined;
  /** The device's write count when the migration began (latency "during" starts there). */
  #writeSeqAtStart: number;
  #pusher: DiskPusher | undefined;
  #absent: Bitmap | undefined;
  #note: string | undefined;
  /** Shared storage: write-back and the destination's pre-hash (shared-image.ts). */
  readonly #shared: SharedImage | undefined;
  /** Blocks the stop point sent (inside the downtime), once it ran. */
  #stopPointBlocks: number | undefined;

  constructor(components: DiskSectionComponents) {
    this.#c = components;
    this.storage = components.storage;
    const { disk } = components;
    this.#sender = new BlockSender(
      {
        channel: components.channel,
        image: () => disk.image,
        bucket: components.bucket,
        counters: this.#counters,
        signal: components.signal,
        skip: (block) => this.#mirror?.mirrored.has(block) ?? false,
      },
      disk.blockCount,
    );
    this.#allocatedAtStart = disk.image.allocatedBytes;
    this.#shared =
      components.storage === 'shared' ? new SharedImage(disk, components.channel, components.logger) : undefined;
    this.#writeSeqAtStart = disk.device.writeSeq;
    this.#latencyBefore = latencyOf(disk.device.writeLatenciesSince(0));
  }

  setup(setup: SetupMsg): void {
    const { disk, storage } = this.#c;
    setup.disk = { sizeBytes: disk.sizeBytes, storage };
    this.#shared?.setup();
    if (storage === 'copy' || storage === 'mirror') {
      // The first harvest clears the log: every block written from now on shows in a later one.
      disk.image.dirtyLog.harvest();
      this.#firstRound = disk.image.allocated.toPageList();
    }
  }

  get #precopies(): boolean {
    return this.storage === 'copy' || this.storage === 'mirror';
  }

  startRound(round: number): void {
    if (!this.#precopies) return;
    this.#round = round;
    this.#rounds = round + 1;
    const blocks = round === 0 ? this.#firstRound : this.#dirty;
    if (round !== 0) this.#dirty = EMPTY;
    this.#sender.begin(blocks);
  }

  async iterate(budgetBytes: number): Promise<boolean> {
    if (this.#shared) return this.#shared.iterate();
    if (!this.#precopies || this.#round < 0) return true;
    return this.#sender.sendSome(budgetBytes);
  }

  endRound(): void {
    this.#shared?.writeBack();
    if (!this.#precopies) return;
    const { disk } = this.#c;
    const harvested = disk.image.dirtyLog.harvest();
    if (this.#mirror) return; // every write since activation was mirrored: nothing to re-send
    this.#dirty = unionSorted(this.#dirty, harvested);
    if (this.storage === 'mirror' && this.#round === 0 && this.#sender.unsent.length === 0) {
      // Round 0 is done: from now on guest writes are synchronous with the destination. What was
      // written before that is in the log (marked before its write completed, so before the
      // hook could see it): harvest it once more, for the catch-up round.
      this.#mirror = new DiskMirror(this.#c.channel(), this.#counters, disk.blockCount);
      this.#mirror.activate(disk.device);
      this.#dirty = unionSorted(this.#dirty, disk.image.dirtyLog.harvest());
      this.#c.logger.info(
        { event: 'disk.mirror.active', catchUp: this.#dirty.length },
        'disk mirror active: guest writes now complete on both sides',
      );
    }
  }

  /**
   * Time the stop point may need beyond the transfer the switchover rule predicts: with shared
   * storage the destination hashes the image it opens (its allocated blocks) inside the
   * downtime — allowed at SHARED_HASH_BPS, a pace this machine beats several times over. Read
   * when the VM pauses: the blocks allocated then, not at the start (a guest that had written
   * nothing yet when the migration began would get no allowance for what it wrote since).
   */
  get stopPointAllowanceMs(): number {
    return this.storage === 'shared' ? (this.#c.disk.image.allocatedBytes / SHARED_HASH_BPS) * 1000 : 0;
  }

  /** Disk bytes this migration plans to move (the allocated blocks; none for shared storage). */
  get plannedBytes(): number {
    return this.storage === 'shared' ? 0 : this.#allocatedAtStart;
  }

  /** Bytes still to send: pre-copy's if the VM stopped now; post-copy's still to push. */
  pending(): number {
    if (this.#pusher) return this.#pusher.remaining * BLOCK;
    if (!this.#precopies || this.#digest !== undefined) return 0;
    const unsent = this.#round < 0 ? this.#firstRound : this.#sender.unsent;
    const blocks =
      unsent.length && this.#dirty.length
        ? unionSorted(unsent, this.#dirty).length
        : unsent.length + this.#dirty.length;
    return (blocks + (this.#mirror?.inFlight ?? 0)) * BLOCK;
  }

  /** Blocks pre-copy would still send (for the switchover rule's view of the disk alone). */
  get dirtyBlocks(): number {
    return this.#dirty.length;
  }

  async complete(): Promise<void> {
    const { disk } = this.#c;
    if (this.storage === 'shared') {
      const started = performance.now();
      // The last write-back, and DiskWritten: the close's own flush is then short.
      await this.#shared!.stopPoint();
      // This side's digest is the ledger its writes kept (nothing is read); the destination
      // hashes the image it opens (or only what was written since its pre-hash).
      this.#digest = disk.ledger.digest();
      await disk.detach();
      this.#note = `shared image: flushed, closed and handed over in ${(performance.now() - started).toFixed(1)} ms of the downtime; ${this.#shared!.hashNote}`;
      return;
    }
    if (this.storage === 'postcopy') {
      this.#switchToPostcopy();
      return;
    }
    // copy and mirror: the VM is paused and its device drained (mirror: every write acked).
    const unsent = this.#round < 0 ? this.#firstRound : this.#sender.unsent;
    const final = unionSorted(unionSorted(unsent, this.#dirty), disk.image.dirtyLog.harvest());
    this.#dirty = EMPTY;
    this.#stopPointBlocks = final.length;
    await this.#sender.sendAll(final);
    this.#mirror?.stop();
    this.#digest = disk.ledger.digest(); // the disk as this side wrote it; the destination's is what it received
  }

  digest(): string | undefined {
    return this.#digest;
  }

  /** Post-copy storage: the DiskAbsent message for the destination (complete() computed it). */
  absentMessage(): ReturnType<typeof msg.diskAbsent> | undefined {
    return this.#absent ? msg.diskAbsent(this.#absent.bytes()) : undefined;
  }

  /** Post-copy storage: push every absent block, answering DiskRequests first; resolves with the digest. */
  async push(channel: PeerChannel): Promise<string> {
    const pusher = this.#pusher;
    if (!pusher) throw new MigrationError('ERR_INTERNAL', 'disk push without a post-copy switchover');
    pusher.serve(channel);
    await pusher.pushAll(channel);
    // The disk as it stood at the stop point (the VM no longer writes here), against what the
    // destination received.
    this.#digest = this.#c.disk.ledger.digest();
    return this.#digest;
  }

  /** Post-copy storage recovery: the destination's DiskMissing. */
  resync(missing: Uint8Array): void {
    this.#pusher?.resync(Bitmap.fromBytes(missing, this.#c.disk.blockCount));
    this.#digest = undefined;
  }

  /** Blocks post-copy still has to send. */
  get remaining(): number {
    return this.#pusher?.remaining ?? 0;
  }

  /** Handoff was sent: the disk is the destination's now. */
  handedOver(): void {
    if (this.storage === 'shared') this.#c.disk.keepImage();
    this.#mirror?.stop();
  }

  /** The migration failed before Handoff: the VM goes on here, on its own image. */
  async rollback(): Promise<void> {
    this.#mirror?.stop();
    this.#pusher?.stop();
    this.#shared?.finish();
    await this.#c.disk.attach();
  }

  /** The migration is over (either way): nothing of ours stays hooked into the device or channel. */
  finish(): void {
    this.#mirror?.stop();
    this.#pusher?.stop();
    this.#shared?.finish();
  }

  /** The report's storage section; `reason` is the switchover's (a copy that did not converge says why). */
  report(reason?: SwitchoverReason): StorageReport {
    const { disk } = this.#c;
    const c = this.#counters;
    const during = latencyOf(disk.device.writeLatenciesSince(this.#writeSeqAtStart));
    const out: StorageReport = {
      mode: this.storage,
      sizeBytes: disk.sizeBytes,
      allocatedBytes: this.#allocatedAtStart,
      wireBytes: c.wireBytes,
      blocksCopied: c.blocksCopied,
      blocksResent: c.blocksResent,
      blocksMirrored: c.blocksMirrored,
      blocksFetched: c.blocksFetched,
      blocksPushed: c.blocksPushed,
      rounds: this.#precopies ? this.#rounds + (this.#digest !== undefined ? 1 : 0) : 0,
      writeLatencyMs: { before: this.#latencyBefore, during },
    };
    const note = this.#note ?? this.#convergenceNote(reason);
    if (note) out.note = note;
    return out;
  }

  #convergenceNote(reason: SwitchoverReason | undefined): string | undefined {
    const blocks = this.#stopPointBlocks;
    if (blocks === undefined) return undefined;
    const what = `${blocks} blocks (${((blocks * BLOCK) / 2 ** 20).toFixed(1)} MiB) went at the stop point, in the downtime`;
    if (this.storage === 'mirror') return `mirror: every guest write since round 0 was synchronous; ${what}`;
    if (reason === 'max-rounds' || reason === 'not-shrinking') {
      return `copy did not converge (${reason}): the guest writes its disk faster than the link copies it; ${what} — --storage mirror converges at any write rate`;
    }
    return `copy: ${what}`;
  }

  #switchToPostcopy(): void {
    const { disk, logger } = this.#c;
    const image = disk.image;
    image.dirtyLog.harvest(); // nothing was sent: every allocated block is absent, written or not
    const absent = new Bitmap(disk.blockCount);
    const allocated = image.allocated;
    for (let b = allocated.nextSet(0); b >= 0; b = b + 1 < disk.blockCount ? allocated.nextSet(b + 1) : -1) {
      absent.set(b);
    }
    this.#absent = absent;
    this.#pusher = new DiskPusher(
      { image, sender: this.#sender, bucket: this.#c.bucket, logger, signal: this.#c.signal },
      absent,
    );
    logger.info({ event: 'disk.postcopy', absent: absent.count }, 'disk switches to post-copy');
  }
}

/** p50 / p99 of write service times, or null when there were none. */
function latencyOf(samples: number[]): WriteLatency | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { count: samples.length, p50: at(0.5), p99: at(0.99) };
}
