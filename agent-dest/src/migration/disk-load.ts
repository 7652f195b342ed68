/**
 * The disk's load side on the destination, one object per storage mode's needs:
 *
 *   copy, mirror  DiskBlocks are written into this side's new image in the order they came
 *                 (one at a time: two positional writes of one block in flight at once would
 *                 land in either order), each block hashed into this side's BlockDigestLedger
 *                 from the bytes received; a DiskBlocks with an ackId is acknowledged (DiskAck)
 *                 once written — a mirrored guest write completes on the source only then.
 *   shared        no block arrives. With `disk-prehash`, while the VM still runs on the source,
 *                 DiskAllocated names the blocks allocated at the source's mark and they are
 *                 hashed here from the image file (read-only, no lock) in the background; at
 *                 the stop point (prepare) the image the source has just closed is opened —
 *                 taking its lock — and only the blocks written since the mark (DiskWritten)
 *                 are hashed again. Without it (or if the pre-hash failed) the image is hashed
 *                 whole at the stop point, inside the downtime. A discarded copy keeps the
 *                 image (it is the source's VM's again).
 *   postcopy      DiskAbsent says which blocks are missing; the VM resumes with them absent and
 *                 the device's hooks hold a guest read of an absent block until it arrives
 *                 (DiskRequest, answered ahead of the push), while a guest write makes its
 *                 blocks present without a fetch (whole blocks: nothing old is needed) — and
 *                 the pushed copy that comes later is hashed but not written over it. Received
 *                 blocks are hashed all the same, so the ledger is the disk at the stop point,
 *                 as the source's is.
 *
 * Hostile input: block numbers are range-checked by the decoder against the disk Setup
 * announced and again here (a resumed channel's decoder never saw Setup); the payload length is
 * exactly the blocks' (message-spec.ts).
 */
import type { Logger } from 'pino';
import { MigrationError } from '@livemig/shared';
import { msg, type PeerChannel } from '@livemig/shared/channel';
import {
  BLOCK_SIZE,
  BlockDigestLedger,
  blockHashes,
  hashBlocksInto,
  ImageFileReader,
  ledgerOf,
  type VirtualDisk,
} from '@livemig/shared/disk';
import type { DiskBlocksMsg, StorageMode } from '@livemig/shared/protocol';
import { Bitmap } from '@livemig/shared/vm';

export class DiskLoad {
  readonly storage: StorageMode;
  readonly #disk: VirtualDisk;
  readonly #channel: () => PeerChannel;
  readonly #logger: Logger;
  readonly #ledger: BlockDigestLedger;
  /** Shared storage: the digest of the opened image. */
  #sharedDigest: string | undefined;
  /** Shared storage: the pre-hash of the image (undefined when it failed or was stopped). */
  #prehash: Promise<BlockDigestLedger | undefined> | undefined;
  #prehashAbort: AbortController | undefined;
  /** Shared storage: blocks written on the source since its mark (DiskWritten). */
  #writtenSince: Bitmap | undefined;
  /** Post-copy: blocks not present here (set = absent: the guest may not read them yet), once DiskAbsent came. */
  #absent: Bitmap | undefined;
  /**
   * Post-copy: blocks absent at the switchover whose copy has not been received. Not the same as
   * #absent: a block the guest wrote whole is present without being received, and the digest —
   * the disk at the stop point, as the source's is — needs its copy all the same (DiskMissing
   * after a reconnect asks for these, and post-copy ends only once none is left).
   */
  #unreceived: Bitmap | undefined;
  /** Post-copy: reads waiting for blocks, by block. */
  readonly #waiters = new Map<number, (() => void)[]>();
  /** Post-copy: blocks asked for and not arrived yet (asked once). */
  readonly #requested = new Set<number>();
  #nextRequestId = 1;
  /** The write of received blocks in progress (a guest write waits for it: same block, one order). */
  #writing: Promise<void> = Promise.resolve();
  blocksReceived = 0;
  /** Called once every absent block is here. */
  onAllPresent: (() => void) | undefined;

  constructor(disk: VirtualDisk, storage: StorageMode, channel: () => PeerChannel, logger: Logger) {
    this.#disk = disk;
    this.storage = storage;
    this.#channel = channel;
    this.#logger = logger;
    this.#ledger = new BlockDigestLedger(disk.blockCount);
  }

  /** Blocks absent at the switchover not received yet (post-copy), else 0. */
  get missing(): number {
    return this.#unreceived?.count ?? 0;
  }

  /** DiskBlocks: hash, write (what is still wanted here), acknowledge if asked. */
  async apply(message: DiskBlocksMsg): Promise<void> {
    const { blocks, data } = message;
    if (this.storage === 'shared') {
      throw new MigrationError('ERR_UNEXPECTED_MESSAGE', 'DiskBlocks for a disk on shared storage');
    }
    for (let i = 0; i < blocks.length; i++) {
      if (blocks[i]! >= this.#disk.blockCount) {
        throw new MigrationError(
          'ERR_BLOCK_OUT_OF_RANGE',
          `DiskBlocks: block ${blocks[i]} of ${this.#disk.blockCount}`,
        );
      }
    }
    // Hashed once: what was received (this side's digest) and the disk's live ledger share them.
    const hashes = blockHashes(data);
    for (let i = 0; i < blocks.length; i++) this.#ledger.setHash(blocks[i]!, hashes, i);
    this.blocksReceived += blocks.length;
    const write = this.#write(blocks, data, hashes);
    this.#writing = write.catch(() => undefined);
    await write;
    const unreceived = this.#unreceived;
    if (unreceived && unreceived.count > 0) {
      for (const block of blocks) unreceived.clear(block);
      if (unreceived.count === 0) this.onAllPresent?.();
    }
    if (message.ackId !== 0) this.#channel().send(msg.diskAck(message.ackId));
  }

  /** Post-copy: the blocks absent here (DiskAbsent, before PostcopyStart). */
  setAbsent(bitmap: Uint8Array): void {
    if (this.storage !== 'postcopy') {
      throw new MigrationError('ERR_UNEXPECTED_MESSAGE', `DiskAbsent for a disk migrated by ${this.storage}`);
    }
    if (this.#absent) throw new MigrationError('ERR_UNEXPECTED_MESSAGE', 'DiskAbsent came twice');
    this.#absent = Bitmap.fromBytes(bitmap, this.#disk.blockCount);
    this.#unreceived = this.#absent.clone();
    this.#disk.device.setHooks({
      beforeRead: (first, count) => this.#present(first, count),
      beforeWrite: (first, count) => this.#overwrite(first, count),
    });
  }

  /**
   * Post-copy, for DiskMissing after a reconnect: what was never received (lost in the broken
   * link, or not sent yet) — including blocks the guest has written since, whose copy the digest
   * still needs. Reads waiting on the old link's requests are answered by the push that follows.
   */
  missingBitmap(): Uint8Array {
    this.#requested.clear();
    return (this.#unreceived ?? new Bitmap(this.#disk.blockCount)).bytes();
  }

  /**
   * Shared storage, while the VM still runs on the source (DiskAllocated): hash the blocks
   * `bitmap` names, reading the image file the source holds, in the background; then
   * DiskPrehashed. The stop point re-hashes only what the source wrote since (DiskWritten).
   * A failure is not fatal: it is logged, and the stop point hashes the image whole.
   */
  prehash(bitmap: Uint8Array): void {
    if (this.storage !== 'shared') {
      throw new MigrationError('ERR_UNEXPECTED_MESSAGE', `DiskAllocated for a disk migrated by ${this.storage}`);
    }
    const allocated = Bitmap.fromBytes(bitmap, this.#disk.blockCount);
    const started = performance.now();
    const ledger = new BlockDigestLedger(this.#disk.blockCount);
    const abort = new AbortController();
    this.#prehashAbort = abort;
    this.#prehash = (async (): Promise<BlockDigestLedger | undefined> => {
      let reader: ImageFileReader | undefined;
      try {
        reader = await ImageFileReader.open(this.#disk.path, this.#disk.blockCount);
        await hashBlocksInto(ledger, reader, allocated, abort.signal);
        const ms = performance.now() - started;
        this.#logger.info({ event: 'disk.prehash.done', ms, blocks: allocated.count }, 'pre-hashed the shared image');
        this.#channel().send(msg.diskPrehashed(ms, 'done'));
        return ledger;
      } catch (error) {
        if (abort.signal.aborted) return undefined;
        this.#logger.warn(
          { err: error, event: 'disk.prehash.failed' },
          'pre-hash failed: the stop point hashes the image',
        );
        try {
          this.#channel().send(msg.diskPrehashed(performance.now() - started, 'failed'));
        } catch {
          // the channel failed: the migration fails with it
        }
        return undefined;
      } finally {
        await reader?.close().catch(() => undefined);
      }
    })();
  }

  /** Shared storage, at the stop point: blocks the source wrote since its mark (DiskWritten). */
  written(blocks: Uint32Array): void {
    if (this.storage !== 'shared') {
      throw new MigrationError('ERR_UNEXPECTED_MESSAGE', `DiskWritten for a disk migrated by ${this.storage}`);
    }
    this.#writtenSince ??= new Bitmap(this.#disk.blockCount);
    for (const block of blocks) this.#writtenSince.set(block);
  }

  /**
   * The stop point: shared storage opens the image now (the source closed it) and takes its
   * digest — the pre-hash plus the blocks written since, or, without a pre-hash, the image whole.
   */
  async prepare(): Promise<void> {
    if (this.storage !== 'shared') return;
    const started = performance.now();
    await this.#disk.attach();
    const openedMs = performance.now() - started;
    const image = this.#disk.image;
    const pre = this.#prehash ? await this.#prehash : undefined;
    let ledger: BlockDigestLedger;
    if (pre) {
      ledger = pre;
      await hashBlocksInto(ledger, image, this.#writtenSince ?? new Bitmap(this.#disk.blockCount));
    } else {
      ledger = await ledgerOf(image);
    }
    this.#disk.adoptLedger(ledger);
    this.#sharedDigest = ledger.digest();
    this.#logger.info(
      {
        event: 'disk.shared.opened',
        ms: performance.now() - started,
        openedMs,
        map: image.allocationSource, // 'scan': the map was not closed cleanly
        prehashed: pre !== undefined,
        rehashedBlocks: pre ? (this.#writtenSince?.count ?? 0) : image.allocated.count,
        image: this.#disk.path,
      },
      'opened the shared disk image',
    );
  }

  /** The copy here is being discarded: a shared image is the source's VM's again. */
  discarding(): void {
    this.#prehashAbort?.abort();
    if (this.storage === 'shared') this.#disk.keepImage();
  }

  /** Every block is here: unhook the device. */
  finish(): void {
    this.#disk.device.setHooks({});
  }

  /** This side's digest: of the opened image (shared), else of every block received. */
  digest(): string | undefined {
    return this.storage === 'shared' ? this.#sharedDigest : this.#ledger.digest();
  }

  /**
   * Write one message's blocks: runs of consecutive blocks still wanted here, in one synchronous
   * pass of positional writes (DiskImage.writeRunsSync: a few microseconds each into the page
   * cache, where a promise per run cost tens — the destination's event loop was the copy's
   * bottleneck on a guest that wrote at random). Messages stay in order: each waits for the
   * previous one's writes, and a guest write of the same block waits for them (#overwrite).
   */
  async #write(blocks: Uint32Array, data: Uint8Array, hashes: Uint8Array): Promise<void> {
    await this.#writing;
    const absent = this.#absent;
    const runs: { first: number; data: Uint8Array; from: number; to: number }[] = [];
    for (let i = 0; i < blocks.length;) {
      if (absent && !absent.has(blocks[i]!)) {
        i += 1; // post-copy: the guest wrote it meanwhile (or it came twice): theirs stands
        continue;
      }
      let j = i + 1;
      while (j < blocks.length && blocks[j] === blocks[j - 1]! + 1 && (!absent || absent.has(blocks[j]!))) j += 1;
      runs.push({ first: blocks[i]!, data: data.subarray(i * BLOCK_SIZE, j * BLOCK_SIZE), from: i, to: j });
      i = j;
    }
    this.#disk.image.writeRunsSync(runs);
    for (const run of runs) this.#disk.written(run.first, run.to - run.from, hashes, run.from);
    if (absent) for (const run of runs) for (let k = run.from; k < run.to; k++) this.#arrived(blocks[k]!);
  }

  /** A block is present here now (received, or written whole by the guest): wake its readers. */
  #arrived(block: number): void {
    const absent = this.#absent!;
    if (!absent.has(block)) return;
    absent.clear(block);
    this.#requested.delete(block);
    const waiting = this.#waiters.get(block);
    this.#waiters.delete(block);
    for (const wake of waiting ?? []) wake();
  }

  /** Before a guest read: resolves once blocks [first, first + count) are all here, asking for those absent. */
  async #present(first: number, count: number): Promise<void> {
    const absent = this.#absent!;
    const wanted: number[] = [];
    const waits: Promise<void>[] = [];
    for (let b = first; b < first + count; b++) {
      if (!absent.has(b)) continue;
      waits.push(new Promise<void>((resolve) => this.#waiters.set(b, [...(this.#waiters.get(b) ?? []), resolve])));
      if (!this.#requested.has(b)) {
        this.#requested.add(b);
        wanted.push(b);
      }
    }
    if (wanted.length) {
      try {
        this.#channel().send(msg.diskRequest(this.#nextRequestId++, wanted));
      } catch {
        // The link is down: the request is asked again after the reconnect (missingBitmap).
      }
    }
    await Promise.all(waits);
  }

  /** Before a guest write of whole blocks: they are the guest's from now on; a received write of them in flight finishes first. */
  async #overwrite(first: number, count: number): Promise<void> {
    for (let b = first; b < first + count; b++) this.#arrived(b);
    await this.#writing;
  }
}
