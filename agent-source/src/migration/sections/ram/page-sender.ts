/**
 * Sends pre-copy rounds (and the stop-and-copy set) in batches within a byte budget: the round's
 * page list is walked from a cursor, each batch encoded (page-batch.ts), paced by the bandwidth
 * cap, backpressured by the channel. `sendSome(budget)` returns when the budget is spent or the
 * round is done, so the engine can look at a switchover request between two calls — which is
 * what lets `migrate-start-postcopy` act mid-round.
 *
 * A page read here may be written by the running vCPU at the same moment; that is fine: the
 * vCPU marks the page dirty after its store, so the next harvest sends it again. Only the
 * final, paused round must be exact.
 */
import { MigrationError } from '@livemig/shared';
import type { PeerChannel } from '@livemig/shared/channel';
import { PageKind, type PagesMeta } from '@livemig/shared/protocol';
import type { GuestMemory } from '@livemig/shared/vm';
import { encodeBatch, type BatchEncoding } from './page-batch.ts';
import type { PageCodecs } from './page-codecs.ts';
import {
  chooseEncodings,
  LINK_PROBE_BYTES,
  RAW_SAMPLES,
  recentMedian,
  TRIAL_CUT_MIN_RAW_BPS,
  trustedDelivered,
  type EncodingParams,
} from './encoding-policy.ts';
import type { MigrationStats } from '../../stats.ts';
import type { TokenBucket } from '../../token-bucket.ts';
import type { MultifdSender } from '@livemig/shared/multifd';

/**
 * Wire bytes after a change of page encoding on a slow link before the new mode's rate is timed:
 * more than the socket buffers and the relay hold of the last mode's bytes (a few MiB here).
 */
const SETTLE_WIRE_BYTES = 4 * 1024 * 1024;

/** Pages per Pages frame: 256 × 4 KiB = 1 MiB, large enough for writev to pay off, small enough to keep a frame well under the 16 MiB limit. */
export const PAGES_PER_BATCH = 256;

/** Frame overhead the bandwidth cap charges per batch (header + metadata), roughly. */
const FRAME_OVERHEAD = (pages: number): number => 16 + pages * 5;

/** Longest stretch a round may hold the event loop. */
const YIELD_EVERY_MS = 1;

export interface PageSenderComponents {
  channel: () => PeerChannel;
  memory: GuestMemory;
  stats: MigrationStats;
  bucket: TokenBucket;
  encoding: Omit<BatchEncoding, 'memory' | 'stats'>;
  /** Aborts the send between batches. */
  signal: AbortSignal;
  /** Page encodings (issue 17), with the policy's knobs; absent: raw and zero pages only. */
  codecs?: { codecs: PageCodecs; params: EncodingParams; fitsCache: boolean; onChoice?: (why: string) => void };
}

/** A batch taken from the round, its encoding under way. */
interface PendingBatch {
  batch: Uint32Array;
  encoded: Promise<{
    meta: Omit<PagesMeta, 'type' | 'round' | 'requestId' | 'pages'>;
    views: Uint8Array[];
    payloadBytes: number;
    /** How the batch was sent, for the measured stretches: 'raw', or the compression level in use. */
    mode: string;
    contentBytes: number;
  }>;
}

export class PageSender {
  readonly #c: PageSenderComponents;
  /** Pages sent at least once, to count re-sends. */
  readonly #sentOnce: Uint8Array;
  #pages: Uint32Array = new Uint32Array(0);
  #cursor = 0;
  #round = 0;
  #anySent = false;
  /**
   * The link's rate for page data: the median of the last raw stretches (recentMedian) of
   * LINK_PROBE_BYTES sent uncompressed; null before the first.
   */
  #linkBps: number | null = null;
  /** Each raw stretch's rates, wire and pages' bytes per second, newest last (RAW_SAMPLES kept). */
  readonly #rawSamples: { wire: number[]; content: number[] } = { wire: [], content: [] };
  /**
   * Pages' bytes delivered per second, as last measured over LINK_PROBE_BYTES of them, sent raw
   * (key 'raw') or through a codec: what compression is judged by, measured, not modelled — on a
   * loopback link the receiver's or sender's CPU, not the wire, sets the pace, and compressing
   * there only slows it.
   */
  readonly #delivered = new Map<string, { bps: number; at: number }>();
  /** Page bytes (content) sent so far, for how old a delivered figure is (trustedDelivered). */
  #contentSent = 0;
  /** The stretch being measured: how it is sent, wire and page bytes, and when it began. */
  /**
   * The stretch being measured: how it is sent, wire and page bytes, and when it began; `settle`:
   * wire bytes still to send before it counts (see #measure).
   */
  #window: { mode: string; bytes: number; content: number; startedAt: number; settle: number } | undefined;
  #warmedUp = false;
  /**
   * sendAll: the VM is paused (stop-and-copy, the device pages of a post-copy switch), every ms
   * is downtime. No warm-up compression there: a compress worker's first block (lz4-napi loading)
   * put 50–80 ms into a kv VM's post-copy switch, which sends its NIC's pages so.
   */
  #paused = false;
  #lastWhy = '';
  /** Parallel bulk channels (multifd.ts) and the pages they may hold unwritten; undefined: main only. */
  #multifd: { sender: MultifdSender; windowPages: number } | undefined;

  constructor(components: PageSenderComponents) {
    this.#c = components;
    this.#sentOnce = new Uint8Array(components.memory.pageCount);
  }

  /** Start sending `pages` (ascending) as round `round`. */
  begin(pages: Uint32Array, round: number): void {
    this.#pages = pages;
    this.#cursor = 0;
    this.#round = round;
    this.#window = undefined; // a round's start follows a harvest: no link time in between
    const bytesAtStart = this.#c.channel().bytesSent;
    this.#c.stats.current = {
      index: round,
      planned: pages.length,
      sent: 0,
      startedAt: performance.now(),
      bytesAtStart,
    };
  }

  /**
   * Pre-copy rounds deal raw and zero pages to these channels from now on; batches a page encoding
   * carries, and everything sendAll() sends (the VM paused), stay on the main connection.
   */
  useMultifd(sender: MultifdSender, windowPages: number): void {
    this.#multifd = { sender, windowPages };
  }

  /** Pages of the current round not sent yet. */
  get unsent(): Uint32Array {
    return this.#pages.subarray(this.#cursor);
  }

  /** True once any page was sent in this migration. */
  get anySent(): boolean {
    return this.#anySent;
  }

  /**
   * Send batches until about `budgetBytes` of page payload went out or the round is done.
   * Resolves true when the round is done (every page queued on the socket).
   */
  async sendSome(budgetBytes: number): Promise<boolean> {
    const { stats, bucket, signal } = this.#c;
    const channel = this.#c.channel();
    let spent = 0;
    let lastYield = performance.now();
    // With compression, the next batches — one per compress thread, so that every thread has a
    // block to work on — are encoded while this one waits for the link: otherwise the link idles
    // for every block's compression. Never past the end of this call: a batch encoded is in the
    // delta cache and dedup index as sent, so it is sent before the engine may look at the round
    // (and switch to post-copy) between calls.
    const ahead: PendingBatch[] = [];
    while ((this.#cursor < this.#pages.length && spent < budgetBytes) || ahead.length > 0) {
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
      if (ahead.length === 0 && this.#toChannels()) {
        spent += await this.#dealToChannels(budgetBytes - spent);
        continue;
      }
      const current = ahead.shift() ?? this.#next();
      const { meta, views, payloadBytes, mode, contentBytes } = await current.encoded;
      const compressed = mode !== 'raw';
      const wire = payloadBytes + FRAME_OVERHEAD(current.batch.length);
      while (
        compressed &&
        ahead.length < (this.#c.codecs?.codecs.compressThreads ?? 1) && // grows when the policy adds a worker
        this.#cursor < this.#pages.length &&
        spent + wire * (ahead.length + 1) < budgetBytes
      ) {
        ahead.push(this.#next());
      }
      this.#anySent = true;
      await bucket.take(wire);
      const ok = channel.sendPages({ round: this.#round, pages: current.batch, ...meta }, views);
      stats.current.sent += current.batch.length;
      spent += wire;
      if (!ok) await channel.drained(signal);
      this.#measure(wire, contentBytes, mode);
    }
    return this.#cursor >= this.#pages.length;
  }

  /** The next part of the round goes to the parallel channels: they exist, the VM runs, and no page encoding is engaged. */
  #toChannels(): boolean {
    if (this.#multifd === undefined || this.#paused) return false;
    const codecs = this.#c.codecs;
    if (codecs === undefined) return true;
    this.#decide(codecs);
    return !codecs.codecs.engaged;
  }

  /**
   * Deal up to `budgetBytes` of the round's next pages to the parallel channels (their workers read,
   * hash and send them), paced by the bandwidth cap and then by the channels themselves: resolves
   * once at most the window is still unwritten. Returns the wire bytes charged — every page as raw,
   * an upper bound (the worker sends a zero page as a record).
   */
  async #dealToChannels(budgetBytes: number): Promise<number> {
    const { sender, windowPages } = this.#multifd!;
    const { memory, stats, bucket } = this.#c;
    const pages = Math.max(1, Math.min(Math.floor(budgetBytes / memory.pageSize), windowPages));
    const end = Math.min(this.#cursor + pages, this.#pages.length);
    const part = this.#pages.subarray(this.#cursor, end);
    this.#countResends(part);
    this.#cursor = end;
    // The delta cache learns what the destination holds, as for a plain batch on the main connection.
    this.#c.codecs?.codecs.sentPlain(part);
    const wire = part.length * memory.pageSize + FRAME_OVERHEAD(part.length);
    this.#anySent = true;
    await bucket.take(wire);
    sender.sendPages(this.#round, part);
    stats.current.sent += part.length;
    await sender.room(windowPages);
    this.#measure(wire, part.length * memory.pageSize, 'raw');
    return wire;
  }

  /** Take the next batch of the round and start encoding it. */
  #next(): PendingBatch {
    const end = Math.min(this.#cursor + PAGES_PER_BATCH, this.#pages.length);
    const batch = this.#pages.subarray(this.#cursor, end);
    this.#countResends(batch);
    this.#cursor = end;
    const encoded = this.#encode(batch);
    // Awaited by sendSome; a failure while it waits its turn must not count as unhandled.
    encoded.catch(() => undefined);
    return { batch, encoded };
  }

  /** One batch, encoded as the policy says (or raw and zero, zero-copy, when nothing is engaged). */
  async #encode(batch: Uint32Array): Promise<{
    meta: Omit<PagesMeta, 'type' | 'round' | 'requestId' | 'pages'>;
    views: Uint8Array[];
    payloadBytes: number;
    mode: string;
    contentBytes: number;
  }> {
    const { memory, stats } = this.#c;
    const codecs = this.#c.codecs;
    if (codecs !== undefined) this.#decide(codecs);
    if (codecs === undefined || !codecs.codecs.engaged) {
      const { kinds, views, payloadBytes } = encodeBatch(batch, { memory, stats, ...this.#c.encoding });
      codecs?.codecs.sentPlain(batch);
      return { meta: { kinds }, views, payloadBytes, mode: 'raw', contentBytes: payloadBytes };
    }
    const level = codecs.codecs.active.compress;
    const { kinds, views, payloadBytes, deltas, refs, zcodec, zlen, rawEquivalentBytes } = await codecs.codecs.encode(
      batch,
      memory,
      {
        zeroPages: this.#c.encoding.zeroPages,
        cacheNew: this.#round >= 1 || codecs.fitsCache,
        onPageSent: this.#c.encoding.onPageSent,
      },
    );
    for (let i = 0; i < kinds.length; i++) {
      if (kinds[i] === PageKind.Zero) stats.zeroPages += 1;
      else if (kinds[i] === PageKind.Raw) stats.rawPages += 1;
    }
    stats.pagePayloadBytes += payloadBytes;
    const meta = {
      kinds,
      ...(deltas ? { deltas } : {}),
      ...(refs ? { refs } : {}),
      ...(zcodec !== undefined ? { zcodec, zlen: zlen! } : {}),
    };
    // The stretch is the policy's choice, not what this batch's pages happened to need: a batch
    // of random pages (its block not worth sending) or of zeros and references under a level
    // still measures that level. Counted as raw, such batches cut the level's stretches short
    // and made raw stretches of buffer-filling bursts: the wan measured its 12 MB/s link at 24.
    const mode = level ?? 'raw';
    return { meta, views, payloadBytes, mode, contentBytes: rawEquivalentBytes };
  }

  /** The policy's choice for the next batch, from the link and codecs as measured so far. */
  #decide(codecs: NonNullable<PageSenderComponents['codecs']>): void {
    const choice = chooseEncodings({
      params: codecs.params,
      linkBps: this.#linkBps,
      delivered: trustedDelivered(this.#delivered, this.#contentSent),
      codecs: codecs.codecs.codecFigures(),
      levels: codecs.codecs.options.compress?.codecs ?? [],
      current: codecs.codecs.active.compress,
      warmingUp: !this.#warmedUp && !this.#paused,
      round: this.#round,
      fitsCache: codecs.fitsCache,
    });
    codecs.codecs.use(choice);
    if (choice.why !== this.#lastWhy) {
      this.#lastWhy = choice.why;
      codecs.onChoice?.(choice.why);
    }
  }

  /**
   * Each batch counts towards the stretch of its mode (raw, or the compression level): once it holds
   * LINK_PROBE_BYTES of pages, its rate of pages delivered is that mode's figure, and a raw
   * stretch's wire rate is the link's. A change of mode starts a new stretch.
   */
  #measure(wireBytes: number, contentBytes: number, mode: string): void {
    const now = performance.now();
    const raw = this.#delivered.get('raw')?.bps;
    if (this.#window?.mode !== mode) {
      // After a change of mode on a slow link, the first megabytes written only push out the last
      // mode's backlog (socket buffers, the relay): timed from the change, a compression trial
      // measured that backlog draining. They are sent but not counted.
      const changed = this.#window !== undefined && raw !== undefined && raw < TRIAL_CUT_MIN_RAW_BPS;
      this.#window = { mode, bytes: 0, content: 0, startedAt: now, settle: changed ? SETTLE_WIRE_BYTES : 0 };
    }
    const w = this.#window;
    this.#contentSent += contentBytes;
    if (w.settle > 0) {
      w.settle -= wireBytes;
      w.startedAt = now;
      return;
    }
    w.bytes += wireBytes;
    w.content += contentBytes;
    const ms = now - w.startedAt;
    // A level on trial that already delivers fewer pages than raw did is cut short at a quarter
    // of the stretch: on loopback a brotli trial ran at 47 MB/s of pages where raw did 400, and
    // the full stretch cost 150 ms of a 3 s migration. Only where raw is that fast
    // (TRIAL_CUT_MIN_RAW_BPS): on a slow link the first batches of a trial measure the backlog.
    const losing =
      mode !== 'raw' &&
      raw !== undefined &&
      raw >= TRIAL_CUT_MIN_RAW_BPS &&
      w.content >= LINK_PROBE_BYTES / 4 &&
      ms > 0 &&
      (w.content / ms) * 1000 < raw;
    if ((w.content >= LINK_PROBE_BYTES || losing) && ms > 0) {
      // The migration's first stretch is a warm-up (socket buffers filling, the destination's
      // memory faulting in): it measured loopback at a third of its rate. Not counted.
      if (this.#warmedUp) {
        let bps = (w.content / ms) * 1000;
        if (mode === 'raw') {
          const { wire, content } = this.#rawSamples;
          wire.push((w.bytes / ms) * 1000);
          content.push(bps);
          if (wire.length > RAW_SAMPLES) {
            wire.shift();
            content.shift();
          }
          this.#linkBps = recentMedian(wire);
          bps = recentMedian(content);
        }
        this.#delivered.set(mode, { bps, at: this.#contentSent });
      }
      this.#warmedUp = true;
      this.#window = undefined;
    }
  }

  /** Send all of `pages` as round `round` (stop-and-copy: the VM is paused). */
  async sendAll(pages: Uint32Array, round: number): Promise<void> {
    this.begin(pages, round);
    this.#paused = true;
    try {
      while (!(await this.sendSome(Number.POSITIVE_INFINITY)));
    } finally {
      this.#paused = false;
    }
  }

  /** Whether `page` was sent at least once by this sender (post-copy counts re-sends with it). */
  wasSent(page: number): boolean {
    return this.#sentOnce[page] === 1;
  }

  #countResends(batch: Uint32Array): void {
    const { memory, stats } = this.#c;
    for (let i = 0; i < batch.length; i++) {
      const page = batch[i]!;
      if (page >= memory.pageCount) {
        throw new MigrationError('ERR_INTERNAL', `page ${page} is outside the VM (${memory.pageCount} pages)`);
      }
      if (this.#sentOnce[page]) stats.resentPages += 1;
      else this.#sentOnce[page] = 1;
    }
  }
}
