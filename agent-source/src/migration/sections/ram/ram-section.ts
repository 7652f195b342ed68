/**
 * The RAM section: guest memory, page by page.
 *
 *   setup      harvest once, so the "possibly non-zero" map is exact from here on; every page
 *              outside it is zero now and is never sent (the Setup bitmap tells the destination
 *              which pages will come, when it negotiated `setup-bitmap`)
 *   rounds     round 0 sends every possibly non-zero page; round k what was dirtied since it was
 *              sent; `iterate(budget)` walks the round within a byte budget (page-sender.ts)
 *   complete   pre-copy: the VM is paused; send the rest of the round, everything dirty and
 *              the final harvest. Post-copy: compute the map of absent pages (absent-map.ts),
 *              send the pages a device writes by itself now (the destination's NIC must never
 *              write an absent page) and arm the pusher
 *   post-copy  push every absent page once, answer requests first (postcopy-pusher.ts)
 *
 * The digest is a PageDigestLedger fed with every page as it is encoded: after the last page it
 * equals the digest of memory at the stop point, without rehashing memory in the downtime.
 */
import type { Logger } from 'pino';
import { MigrationError } from '@livemig/shared';
import type { PeerChannel } from '@livemig/shared/channel';
import type { SetupDoneMsg, SetupMsg } from '@livemig/shared/protocol';
import { Bitmap, PageDigestLedger, unionSorted, type ToyVm } from '@livemig/shared/vm';
import type { MigrationStats } from '../../stats.ts';
import { TokenBucket } from '../../token-bucket.ts';
import type { OutgoingSection } from '../section.ts';
import { absentAtSwitchover } from './absent-map.ts';
import { PageSender } from './page-sender.ts';
import { PostcopyPusher, PUSH_BATCH, serveFaults } from './postcopy-pusher.ts';
import { pacedBatchPages } from './push-pacing.ts';
import type { EncodingsReport } from '@livemig/shared/report';
import type { EncodingParams } from './encoding-policy.ts';
import { levelsFor } from './compress-levels.ts';
import { PageCodecs, type PageCodecsOptions } from './page-codecs.ts';
import { DedupIndex } from '@livemig/shared/codec';
import { HostContentRefs } from './host-content-refs.ts';
import { DecisionLog } from './decision-log.ts';
import { SharedPageHashes, type MultifdSender } from '@livemig/shared/multifd';

export interface RamSectionComponents {
  vm: ToyVm;
  channel: () => PeerChannel;
  stats: MigrationStats;
  bucket: TokenBucket;
  /** The post-copy push's own cap (--max-postcopy-bandwidth), bytes/s; null: `bucket`'s. @default null */
  postcopyRateBps?: number | null;
  logger: Logger;
  signal: AbortSignal;
  /** What the destination negotiated (`dedupHost`: references to content it holds already, dedup-host). */
  capabilities: {
    setupBitmap: boolean;
    zeroPages: boolean;
    delta: boolean;
    dedup: boolean;
    dedupHost?: boolean;
    compress: boolean;
  };
  /** The page encodings asked for (issue 17); what the destination did not negotiate stays off. */
  encodings: EncodingParams;
  /**
   * complete('postcopy') sends every page first, leaving none absent (memory pre-copy with the
   * disk in post-copy: the switchover is post-copy's only for the disk). @default false
   */
  completeAtSwitchover?: boolean;
  /**
   * Keep the page hashes (the digest) in a table parallel bulk channels' workers write too
   * (multifd: they hash the pages they send). @default false
   */
  sharedPageHashes?: boolean;
}

const EMPTY = new Uint32Array(0);

export class RamSection implements OutgoingSection {
  readonly name = 'ram';
  readonly #c: RamSectionComponents;
  readonly #ledger: PageDigestLedger;
  /** The ledger's table, shared with the multifd channel workers (sharedPageHashes). */
  readonly #pageHashes: SharedPageHashes | undefined;
  readonly #sender: PageSender;
  /** The page encodings of this migration, when any may be used. */
  readonly #codecs: PageCodecs | undefined;
  /** References to content the destination host holds (dedup on, dedup-host negotiated). */
  readonly #hostRefs: HostContentRefs | undefined;
  /** The encoding policy's choices, in order (for the report). */
  readonly #decisions = new DecisionLog(32);
  #firstRound: Uint32Array = EMPTY;
  /** Pages harvested dirty and not sent since. */
  #dirty: Uint32Array = EMPTY;
  #round = -1;
  #digest: string | undefined;
  /** Set by complete('postcopy'): what the destination lacked then, and who sends it. */
  #switched: { absent: Bitmap; pusher: PostcopyPusher } | undefined;

  constructor(components: RamSectionComponents) {
    this.#c = components;
    const { vm, stats, bucket, signal } = components;
    this.#pageHashes = components.sharedPageHashes ? new SharedPageHashes(vm.memory.pageCount) : undefined;
    this.#ledger = new PageDigestLedger(vm.memory.pageCount, this.#pageHashes?.buffer);
    const { encodings: params, capabilities: caps } = components;
    const dedup = caps.dedup && params.dedup !== 'off';
    this.#hostRefs = dedup && caps.dedupHost ? new HostContentRefs(new DedupIndex(), vm.memory) : undefined;
    const options: PageCodecsOptions = {
      delta: caps.delta && params.delta !== 'off' ? { cacheBytes: params.xbzrleCacheBytes } : null,
      dedup: dedup ? (this.#hostRefs ? { index: this.#hostRefs.index } : {}) : null,
      compress:
        caps.compress && params.compress !== 'off'
          ? {
              codecs: levelsFor(params.compress),
              workers: params.compressThreads,
              maxWorkers: params.maxCompressThreads ?? params.compressThreads,
            }
          : null,
    };
    this.#codecs = options.delta || options.dedup || options.compress ? new PageCodecs(options) : undefined;
    this.#sender = new PageSender({
      channel: components.channel,
      memory: vm.memory,
      stats,
      bucket,
      signal,
      encoding: { zeroPages: components.capabilities.zeroPages, onPageSent: this.#onPageSent },
      ...(this.#codecs
        ? {
            codecs: {
              codecs: this.#codecs,
              params,
              fitsCache: vm.memory.pageCount * vm.memory.pageSize <= params.xbzrleCacheBytes,
              onChoice: (why) => {
                this.#decisions.add(why);
                components.logger.info({ event: 'encodings', why }, `page encodings: ${why}`);
              },
            },
          }
        : {}),
    });
  }

  /** What the page encodings did, for the report; undefined when none could be used. */
  encodingsReport(): EncodingsReport | undefined {
    const report = this.#codecs?.report(this.#c.encodings, this.#decisions.lines());
    return this.#hostRefs ? this.#hostRefs.withHost(report) : report;
  }

  /** The page-hash table multifd channel workers hash into (the same digest); ERR_INTERNAL unless asked for. */
  pageHashes(): SharedPageHashes {
    if (!this.#pageHashes) throw new MigrationError('ERR_INTERNAL', 'no shared page hashes: multifd was not asked for');
    return this.#pageHashes;
  }

  /** Pre-copy rounds deal raw and zero pages to these parallel channels (page-sender.ts). */
  useMultifd(sender: MultifdSender, windowPages: number): void {
    this.#sender.useMultifd(sender, windowPages);
  }

  /** SetupDone came: the host content the destination offered, if Setup asked for it, becomes referable. */
  setupDone(done: SetupDoneMsg): void {
    this.#hostRefs?.offered(done);
  }

  /** Stop the compression threads (the migration is over, whichever way). */
  async close(): Promise<void> {
    const codecs = this.#codecs;
    if (codecs === undefined) return;
    this.#c.logger.info({ event: 'encodings.done', ...codecs.stats, cache: codecs.cacheStats, pool: codecs.poolStats });
    await codecs.close();
  }

  readonly #onPageSent = (page: number, bytes: Uint8Array | null): void => {
    if (bytes) this.#ledger.update(page, bytes);
    else this.#ledger.updateZero(page);
  };

  setup(setup: SetupMsg): void {
    const { vm, stats } = this.#c;
    // The first harvest clears the log and makes possiblyNonZero() exact from here on: every
    // page outside it is zero now, and any later store to it shows up in a later harvest.
    this.#harvest();
    const nonZero = vm.possiblyNonZero();
    if (this.#c.capabilities.setupBitmap) setup.bitmap = nonZero.bytes();
    this.#hostRefs?.ask(setup);
    stats.skippedZeroPages = vm.memory.pageCount - nonZero.count;
    this.#firstRound = nonZero.toPageList();
    this.#dirty = EMPTY;
  }

  startRound(round: number): void {
    this.#round = round;
    const pages = round === 0 ? this.#firstRound : this.#dirty;
    if (round !== 0) this.#dirty = EMPTY;
    this.#sender.begin(pages, round);
  }

  iterate(budgetBytes: number): Promise<boolean> {
    return this.#sender.sendSome(budgetBytes);
  }

  endRound(): void {
    this.#dirty = unionSorted(this.#dirty, this.#harvest());
  }

  /** Pages found dirty as of the last harvest, not yet sent (a round's `dirtyAfter`). */
  get dirtyPages(): number {
    return this.#dirty.length;
  }

  pending(): number {
    if (this.#switched) return this.#switched.pusher.remaining * this.#c.vm.memory.pageSize;
    if (this.#digest !== undefined) return 0;
    const unsent = this.#unsentOfRoundList();
    // A round cut short (a switch asked for mid-round) leaves pages that are both unsent and
    // harvested dirty since: count them once. Otherwise one of the two is empty.
    const pages =
      unsent.length && this.#dirty.length
        ? unionSorted(unsent, this.#dirty).length
        : unsent.length + this.#dirty.length;
    return pages * this.#c.vm.memory.pageSize;
  }

  /** Pages of the round in progress not sent yet. */
  get unsentOfRound(): number {
    return this.#round < 0 ? this.#firstRound.length : this.#sender.unsent.length;
  }

  async complete(how: 'precopy' | 'postcopy'): Promise<void> {
    if (how === 'precopy' || this.#c.completeAtSwitchover) {
      const final = unionSorted(unionSorted(this.#unsentOfRoundList(), this.#dirty), this.#harvest());
      this.#dirty = EMPTY;
      await this.#sender.sendAll(final, this.#round + 1);
      this.#digest = this.#ledger.digest();
    }
    if (how === 'postcopy') {
      await this.#switchToPostcopy();
      this.#digest = undefined; // final once the (here empty) push is done: the destination checks it then
    }
  }

  digest(): string | undefined {
    return this.#digest;
  }

  /** Post-copy: the map of pages absent at the destination (set = absent), for PostcopyStart. */
  absentMap(): Bitmap {
    return this.#postcopy().absent;
  }

  /** Pages absent at switchover and sent since, on demand and in the background. */
  get pusher(): PostcopyPusher | undefined {
    return this.#switched?.pusher;
  }

  /** Post-copy: push every remaining page on `channel`; resolves with the digest of everything sent, final now. */
  async push(channel: PeerChannel): Promise<string> {
    await this.#postcopy().pusher.pushAll(channel);
    this.#digest = this.#ledger.digest();
    return this.#digest;
  }

  /** Post-copy: answer the PageRequests on the fault channel until it fails (it never ends well). */
  serveFaults(faultChannel: PeerChannel, signal: AbortSignal): Promise<never> {
    return serveFaults(this.#postcopy().pusher, faultChannel, signal);
  }

  /** Post-copy recovery: the destination says which pages it still lacks. */
  resync(missing: Uint8Array): void {
    this.#postcopy().pusher.resync(Bitmap.fromBytes(missing, this.#c.vm.memory.pageCount));
    this.#digest = undefined;
  }

  #postcopy(): { absent: Bitmap; pusher: PostcopyPusher } {
    if (!this.#switched) throw new MigrationError('ERR_INTERNAL', 'RAM post-copy used before the switchover');
    return this.#switched;
  }

  async #switchToPostcopy(): Promise<void> {
    const { vm, stats } = this.#c;
    const harvested = this.#harvest();
    const nothingSent = !this.#sender.anySent;
    const absent = absentAtSwitchover({
      pageCount: vm.memory.pageCount,
      nothingSent,
      possiblyNonZero: vm.possiblyNonZero(),
      unsentOfRound: this.#unsentOfRoundList(),
      dirty: this.#dirty,
      harvested,
    });
    // Pages a device writes by itself (the NIC's rings) travel now, inside the downtime (a few
    // pages): the destination's device must never write a page that is still absent there.
    const devicePages = Uint32Array.from(vm.devicePages().filter((page) => absent.has(page)));
    if (devicePages.length) {
      await this.#sender.sendAll(devicePages, this.#round + 1);
      for (const page of devicePages) absent.clear(page);
    }
    stats.pendingPages = absent.count;
    // The destination resumes next: its pages stop being what the delta cache and index say.
    this.#codecs?.destinationRuns();
    // What the guest wrote since the last harvest before this one is its working set: push it first.
    const pushFirst = nothingSent ? harvested : unionSorted(this.#dirty, harvested);
    this.#dirty = EMPTY;
    const rate = this.#c.postcopyRateBps ?? null;
    const batchPages = pacedBatchPages(rate, vm.memory.pageSize, PUSH_BATCH);
    const pusher = new PostcopyPusher(
      {
        memory: vm.memory,
        stats,
        // Capped: its own bucket, whose burst is one paced batch (push-pacing.ts).
        bucket:
          rate === null
            ? this.#c.bucket
            : new TokenBucket({ rateBps: rate, burstBytes: batchPages * vm.memory.pageSize }),
        batchPages,
        logger: this.#c.logger,
        onPageSent: this.#onPageSent,
        sentBefore: (page) => this.#sender.wasSent(page),
        signal: this.#c.signal,
        zeroPages: this.#c.capabilities.zeroPages,
      },
      absent,
      this.#round + 1,
      pushFirst,
    );
    this.#switched = { absent, pusher };
  }

  #unsentOfRoundList(): Uint32Array {
    return this.#round < 0 ? this.#firstRound : this.#sender.unsent;
  }

  #harvest(): Uint32Array {
    this.#c.stats.harvests += 1;
    return this.#c.vm.harvestDirty();
  }
}
