/**
 * The source side of post-copy: the VM runs on the destination, paused here, and every page the
 * destination lacks is sent exactly once, two ways at the same time:
 *
 *   on demand   a PageRequest arrives on the fault channel (its own TCP connection, so it never
 *               waits behind bulk pages); each requested page not sent yet is answered at once
 *               on that same channel, with the request's id;
 *   background  the rest is pushed on the main channel in batches: first the pages the guest
 *               wrote last before the switchover (its working set, the likeliest to be touched
 *               first after it), then in page order, the scan restarting just after the most
 *               recently requested page (pre-paging: a guest that faulted on page n is likely to
 *               want n+1 next — QEMU does the same).
 *
 * `unsent` starts as the pages absent at the destination at switchover and loses each page as it
 * is sent, so the push never sends a page twice. A request for a page already pushed means its
 * bytes are still on the way — behind megabytes of bulk in socket buffers and the destination's
 * receive path, tens of milliseconds on a busy machine (most of the fault latency tail, measured):
 * with `fault-thread` negotiated the destination installs each page exactly once whichever copy
 * wins (its per-page claims), so such a page is answered again on the fault channel, ahead of the
 * bulk (counted in `answeredAgain`, not as fetched on demand); without it, it is ignored, as a
 * second copy could land on a page the guest has written since.
 * When every needed page has been sent, the pusher is done; the destination says Complete once
 * it has installed them all. Reads come from paused memory, so what is sent is exactly the VM
 * at the stop point.
 *
 * The requests may be answered by the source's fault worker instead (fault-worker.ts: a thread
 * that owns the fault channel, so an answer never waits for this thread's event loop, busy with
 * the push). Then `answers` (fault-answers.ts) is what the two threads share: each page is claimed
 * by whichever sends it first; the push skips a page the worker answered (no second copy) and
 * records its hash in the digest ledger from the same paused memory; the worker's counters join
 * this side's figures (settle()).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { MigrationError } from '@livemig/shared';
import type { PeerChannel } from '@livemig/shared/channel';
import { messageName, MsgType } from '@livemig/shared/channel';
import type { Bitmap } from '@livemig/shared/vm';
import { type GuestMemory } from '@livemig/shared/vm';
import type { MigrationStats } from '../../stats.ts';
import type { TokenBucket } from '../../token-bucket.ts';
import { Counter, FaultAnswers, SENT_BY_FAULT_WORKER, SENT_BY_PUSHER } from './fault-answers.ts';
import { encodeBatch } from './page-batch.ts';

/** Pages per background batch (1 MiB), unpaced. */
export const PUSH_BATCH = 256;

export interface PostcopyPusherComponents {
  memory: GuestMemory;
  stats: MigrationStats;
  bucket: TokenBucket;
  logger: Logger;
  /** Keep page hashes of what is sent (the digest the destination checks at the end). */
  onPageSent: (page: number, bytes: Uint8Array | null) => void;
  /** Whether pre-copy already sent this page (so sending it now is a re-send). */
  sentBefore: (page: number) => boolean;
  signal: AbortSignal;
  /** The peer understands zero records (capability `zero-pages`). @default true */
  zeroPages?: boolean;
  /** Pages per background batch: fewer when the push is paced (push-pacing.ts). @default PUSH_BATCH */
  batchPages?: number;
}

export class PostcopyPusher {
  readonly #c: PostcopyPusherComponents;
  /** Pages the destination lacks that this thread has neither sent nor found answered by the fault worker. */
  readonly #unsent: Bitmap;
  /** The absent map and per-page claims shared with the fault worker, and its counters. */
  readonly answers: FaultAnswers;
  #cursor = 0;
  readonly round: number;
  /** Pages to push before the page-order scan (ascending), and how far that got. */
  readonly #first: Uint32Array<ArrayBufferLike>;
  #firstAt = 0;
  /** Pages this thread sent because the destination asked, and in the background. */
  #fetched = 0;
  pushed = 0;
  /** Pages this thread answered again on the fault channel (pushed already, asked for before they arrived). */
  #again = 0;
  /** Pages the worker answered first that this thread has found (and dropped from #unsent) since. */
  #foundAnswered = 0;
  /** The worker's pre-paging cursor as last seen (its change count). */
  #askedSeq = 0;
  /** The worker's counters as last folded into the stats. */
  readonly #folded = { raw: 0, zero: 0, payload: 0, again: 0 };

  constructor(
    components: PostcopyPusherComponents,
    absent: Bitmap,
    round: number,
    first: Uint32Array<ArrayBufferLike> = new Uint32Array(0),
  ) {
    this.#c = components;
    this.#unsent = absent.clone();
    this.answers = new FaultAnswers(absent.size, absent);
    this.round = round;
    this.#first = first;
  }

  /** Pages sent because the destination asked, by either thread. */
  get fetchedOnDemand(): number {
    return this.#fetched + this.answers.count(Counter.Fetched);
  }

  /** Pages pushed already and asked for before they arrived, answered again on the fault channel (either thread). */
  get answeredAgain(): number {
    return this.#again + this.answers.count(Counter.Again);
  }

  /** Pages still to send (those the worker answered and the push has not reached yet are sent). */
  get remaining(): number {
    return Math.max(0, this.#unsent.count - (this.answers.count(Counter.Fetched) - this.#foundAnswered));
  }

  /**
   * After a reconnect: the destination says which pages it still lacks. Pages sent but lost in
   * the broken connection become unsent again (they were never installed). The fault worker
   * answers nothing meanwhile (its new channel waits to be told to serve).
   */
  resync(missing: Bitmap): void {
    const answers = this.answers;
    for (let n = missing.nextSet(0); n >= 0; n = missing.nextSet(n + 1)) {
      const by = answers.sentBy(n);
      // A page the worker answered that the push had not reached yet: found now, unsent again below.
      if (by === SENT_BY_FAULT_WORKER && this.#unsent.has(n)) this.#foundAnswered += 1;
      if (!this.#unsent.has(n) || by !== 0) {
        this.#unsent.set(n);
        this.#c.stats.resentPages += 1;
      }
      answers.reset(n);
    }
    this.#cursor = 0;
  }

  /**
   * Answer a PageRequest on the fault channel from this thread (no fault worker, or it died): every
   * requested page not sent yet, at once.
   */
  answer(request: { id: number; pages: Uint32Array }, faultChannel: PeerChannel): void {
    const answerAgain = faultChannel.capabilities.has('fault-thread');
    const fresh: number[] = [];
    const again: number[] = [];
    for (const page of request.pages) {
      if (page >= this.#unsent.size) {
        throw new MigrationError('ERR_PAGE_OUT_OF_RANGE', `PageRequest for page ${page} of ${this.#unsent.size}`);
      }
      if (this.#unsent.has(page) && this.answers.claim(page, SENT_BY_PUSHER)) fresh.push(page);
      else if (answerAgain) again.push(page);
    }
    const last = request.pages[request.pages.length - 1];
    if (last !== undefined) this.#cursor = last + 1;
    if (fresh.length === 0 && again.length === 0) return;
    this.#sendBatch(Uint32Array.from([...fresh, ...again]), request.id, faultChannel);
    this.#fetched += fresh.length;
    this.#again += again.length;
  }

  /**
   * Fold what the fault worker sent so far into the stats (raw and zero pages, payload bytes,
   * pages sent again). Idempotent: only what was not folded yet is added.
   */
  settle(): void {
    const { stats } = this.#c;
    const a = this.answers;
    const now = {
      raw: a.count(Counter.RawPages),
      zero: a.count(Counter.ZeroPages),
      payload: a.count(Counter.PayloadBytes),
      again: a.count(Counter.Again),
    };
    stats.rawPages += now.raw - this.#folded.raw;
    stats.zeroPages += now.zero - this.#folded.zero;
    stats.pagePayloadBytes += now.payload - this.#folded.payload;
    stats.resentPages += now.again - this.#folded.again;
    Object.assign(this.#folded, now);
  }

  /** Push every remaining page in the background on `channel`; resolves when all are queued. */
  async pushAll(channel: PeerChannel): Promise<void> {
    const batch = new Uint32Array(this.#c.batchPages ?? PUSH_BATCH);
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const turns: number[] = [];
    try {
      await this.#pushAll(channel, batch, turns);
    } finally {
      loop.disable();
      turns.sort((a, b) => a - b);
      const q = (f: number): number => turns[Math.min(turns.length - 1, Math.floor(f * turns.length))] ?? 0;
      this.#c.logger.debug(
        {
          event: 'postcopy.push-turns',
          turns: turns.length,
          turnMs: { p50: q(0.5), p99: q(0.99), max: q(1) },
          loopDelayMs: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
        },
        'post-copy push: how long each batch held the event loop, and the loop delay',
      );
    }
  }

  async #pushAll(channel: PeerChannel, batch: Uint32Array, turns: number[]): Promise<void> {
    while (this.#unsent.count > 0) {
      const turnStart = performance.now();
      if (this.#c.signal.aborted) throw this.#c.signal.reason as Error;
      if (channel.failure) throw channel.failure;
      const count = this.#fillFromFirst(batch) || this.#fillInOrder(batch);
      if (count === 0) continue;
      await this.#c.bucket.take(count * this.#c.memory.pageSize);
      // While we waited, a PageRequest may have sent some of these: send only what nobody sent.
      const pages = this.#claim(batch.subarray(0, count));
      if (pages.length === 0) continue;
      const ok = this.#sendBatch(pages, 0, channel);
      this.pushed += pages.length;
      turns.push(performance.now() - turnStart);
      if (!ok) await channel.drained(this.#c.signal);
      // Let PageRequests in between batches: they must never wait for the whole push.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /**
   * The pages of `batch` this thread may push: still unsent here and claimed now. A page the fault
   * worker answered first is dropped from the push, and its hash goes into the ledger (the same
   * bytes: memory is paused), so the digest covers it as if this thread had sent it.
   */
  #claim(batch: Uint32Array): Uint32Array {
    const { memory, onPageSent, sentBefore, stats } = this.#c;
    const pages: number[] = [];
    for (const page of batch) {
      if (!this.#unsent.has(page)) continue;
      if (this.answers.claim(page, SENT_BY_PUSHER)) {
        pages.push(page);
        continue;
      }
      this.#unsent.clear(page);
      this.#foundAnswered += 1;
      if (sentBefore(page)) stats.resentPages += 1;
      onPageSent(page, memory.page(page));
    }
    return Uint32Array.from(pages);
  }

  /** A batch of the pages to push first that are still unsent; 0 once they are all done. */
  #fillFromFirst(batch: Uint32Array): number {
    let count = 0;
    while (this.#firstAt < this.#first.length && count < batch.length) {
      const page = this.#first[this.#firstAt++]!;
      if (page < this.#unsent.size && this.#unsent.has(page)) batch[count++] = page;
    }
    return count;
  }

  /** A batch in page order from the cursor. Only its start wraps around: within it pages ascend, so none repeats. */
  #fillInOrder(batch: Uint32Array): number {
    // The fault worker was asked for a page since the last batch: go on from there, as answer() does.
    const seq = this.answers.count(Counter.NextPageSeq);
    if (seq !== this.#askedSeq) {
      this.#askedSeq = seq;
      this.#cursor = this.answers.count(Counter.NextPage);
    }
    let count = 0;
    let n = this.#nextUnsent(this.#cursor);
    while (n >= 0 && count < batch.length) {
      batch[count++] = n;
      n = n + 1 < this.#unsent.size ? this.#unsent.nextSet(n + 1) : -1;
    }
    this.#cursor = n >= 0 ? n : 0;
    return count;
  }

  /** The next unsent page ≥ from, wrapping around once; −1 when none is left. */
  #nextUnsent(from: number): number {
    const next = from < this.#unsent.size ? this.#unsent.nextSet(from) : -1;
    return next >= 0 || from === 0 ? next : this.#unsent.nextSet(0);
  }

  #sendBatch(pages: Uint32Array, requestId: number, channel: PeerChannel): boolean {
    if (channel.failure) throw channel.failure;
    const { memory, stats, onPageSent } = this.#c;
    for (let i = 0; i < pages.length; i++) {
      const page = pages[i]!;
      // The worker answered it first (before it died) and the push had not reached it: found now.
      const byWorker = this.#unsent.has(page) && this.answers.sentBy(page) === SENT_BY_FAULT_WORKER;
      if (byWorker) this.#foundAnswered += 1;
      // A page answered again (pushed already, still on the way) is a re-send too.
      if (!this.#unsent.has(page) || byWorker || this.#c.sentBefore(page)) stats.resentPages += 1;
      this.#unsent.clear(page);
    }
    const { kinds, views } = encodeBatch(pages, { memory, stats, onPageSent, zeroPages: this.#c.zeroPages ?? true });
    return channel.sendPages({ round: this.round, requestId, pages, kinds }, views);
  }
}

/**
 * Serve the fault channel: answer each PageRequest until the channel fails (it never ends well:
 * the migration ends on the main channel's Complete, and then the source closes this one).
 */
export async function serveFaults(
  pusher: PostcopyPusher,
  faultChannel: PeerChannel,
  signal: AbortSignal,
): Promise<never> {
  for (;;) {
    const message = await faultChannel.next(signal);
    if (message.type !== MsgType.PageRequest) {
      throw new MigrationError('ERR_UNEXPECTED_MESSAGE', `${messageName(message.type)} on the fault channel`);
    }
    pusher.answer(message, faultChannel);
  }
}
