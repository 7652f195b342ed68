/**
 * The destination side of post-copy's demand paging: the vCPU touched a page that has not
 * arrived, blocked on it, and reported a fault. This turns faults into PageRequests on the fault
 * channel — one request per page not already asked for (a second fault on a page in flight just
 * waits for it, CRIU's dedup) — and measures each fault's latency, from the moment the vCPU
 * blocked to the moment the page was installed.
 *
 * On recovery (the link broke and the source reconnected) every page still in flight is asked
 * for again on the new fault channel: the answers on the broken one are lost.
 *
 * Requests in flight are bounded (MAX_INFLIGHT_PAGES, hypercore's in-flight window): past it,
 * faulted pages wait in a queue and go out as answers free the window — a guest (or a
 * re-request after recovery) can never flood the source.
 *
 * The same handler runs in either thread: on the main thread over the ToyVm, or in the fault
 * thread (fault-thread-worker.ts) over the vCPU's fault ring and the shared presence map. While
 * a fault thread owns the fault channel the main thread's handler is `passive`: it still counts
 * every fault and keeps the faulted pages not yet here (so that, should the thread die, it can
 * take over and ask for them), but asks for nothing and measures nothing itself — the thread's
 * latencies come in through `recordLatency`.
 */
import { latencyHistogram, type LatencyHistogram } from '@livemig/shared/report';
import type { PeerChannel } from '@livemig/shared/channel';
import { msg } from '@livemig/shared/channel';
import type { PageFault } from '@livemig/shared/vm';

/** Where faults come from and whether a page is here (a ToyVm; in the fault thread, its ring and presence map). */
export interface FaultSource {
  onFault(listener: (fault: PageFault) => void): () => void;
  isPresent(n: number): boolean;
}

/** The one log line a handler writes (re-requests after a reconnect): a pino Logger, or the fault thread's relay. */
export interface FaultLog {
  info(fields: Record<string, unknown>, text: string): void;
}

export interface FaultHandlerOptions {
  /** Hears each fault's latency as it is measured (the agent's metrics). */
  onLatency?: ((ms: number, noticeMs: number) => void) | undefined;
  /** A fault thread asks and measures; this one only counts and keeps track (see the header). */
  passive?: boolean;
  /** Told each PageRequest's id as it goes out (the fault thread times its answers). */
  onRequest?: ((id: number) => void) | undefined;
}

export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
}

export interface FaultStats {
  faults: number;
  /** Fault → page installed. */
  latencyMs: Percentiles | null;
  /** Fault → this thread noticed it (part of latencyMs). */
  noticeDelayMs: Percentiles | null;
  /** Every fault's latency in power-of-two µs buckets (QEMU's postcopy-latency-dist). */
  latencyHistogram: LatencyHistogram | null;
}

/** Pages asked for and not yet installed, at most. */
export const MAX_INFLIGHT_PAGES = 64;
/** Pages per PageRequest, at most. */
const PAGES_PER_REQUEST = 16;

function now(): number {
  return performance.timeOrigin + performance.now();
}

function percentiles(values: readonly number[]): Percentiles | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1]! };
}

export class FaultHandler {
  readonly #vm: FaultSource;
  readonly #logger: FaultLog;
  /** Page → when its first fault blocked the vCPU and when this thread noticed it (Date.now() scale, sub-ms). */
  readonly #inflight = new Map<number, { blockedAt: number; noticedAt: number }>();
  readonly #latencies: number[] = [];
  /** Of each latency, how much passed before this thread noticed the fault (its event loop was busy). */
  readonly #noticeDelays: number[] = [];
  #channel: PeerChannel | undefined;
  /** Pages in #inflight already asked for on the current channel. */
  readonly #asked = new Set<number>();
  #nextId = 1;
  #faults = 0;
  #unsubscribe: (() => void) | undefined;

  readonly #onLatency: ((ms: number, noticeMs: number) => void) | undefined;
  #passive: boolean;
  readonly #onRequest: ((id: number) => void) | undefined;

  constructor(vm: FaultSource, logger: FaultLog, options: FaultHandlerOptions = {}) {
    this.#vm = vm;
    this.#logger = logger;
    this.#onLatency = options.onLatency;
    this.#passive = options.passive ?? false;
    this.#onRequest = options.onRequest;
  }

  /** The fault thread is gone: from now on this handler asks for pages and measures (attachChannel next). */
  activate(): void {
    this.#passive = false;
  }

  /** A latency the fault thread measured (passive mode). */
  recordLatency(ms: number, noticeMs: number): void {
    this.#latency(ms, noticeMs);
  }

  /** Start turning faults into requests. */
  start(): void {
    this.#unsubscribe = this.#vm.onFault((fault) => {
      this.#faults += 1;
      if (this.#vm.isPresent(fault.page)) {
        // The push installed the page (and woke the vCPU) before this thread got to the fault:
        // its latency is at most until now. Counting it keeps a report from having faults but
        // no latency at all.
        const at = now();
        if (!this.#passive) this.#latency(at - fault.time, at - fault.time);
        return;
      }
      if (this.#inflight.has(fault.page)) return;
      this.#inflight.set(fault.page, { blockedAt: fault.time, noticedAt: now() });
      this.#requestMore();
    });
  }

  /** Use this fault channel (again, after a reconnect): re-ask for every page in flight. */
  attachChannel(channel: PeerChannel): void {
    this.#channel = channel;
    this.#asked.clear();
    if (this.#inflight.size > 0) {
      this.#logger.info({ event: 'postcopy.rerequest', pages: this.#inflight.size }, 're-requesting pages in flight');
      this.#requestMore();
    }
  }

  /** The link broke: requests wait until a new channel is attached. */
  detachChannel(): void {
    this.#channel = undefined;
    this.#asked.clear();
  }

  /** Faults so far: each time the vCPU touched an absent page and blocked on it (query-migrate). */
  get faults(): number {
    return this.#faults;
  }

  /** Of those, the faults resolved: their page arrived and woke the vCPU. */
  get served(): number {
    return this.#latencies.length;
  }

  /** The id of the last PageRequest sent (0: none yet): an answer names one of these. */
  get lastRequestId(): number {
    return this.#nextId - 1;
  }

  /** Pages asked for on the current channel and not yet installed. */
  get inflight(): number {
    return this.#asked.size;
  }

  /** A page was installed: if a vCPU was waiting for it, that fault is resolved. */
  pageArrived(page: number): void {
    const fault = this.#inflight.get(page);
    if (fault === undefined) return;
    this.#inflight.delete(page);
    this.#asked.delete(page);
    if (!this.#passive) this.#latency(now() - fault.blockedAt, fault.noticedAt - fault.blockedAt);
    this.#requestMore();
  }

  stop(): void {
    this.#unsubscribe?.();
  }

  stats(): FaultStats {
    return {
      faults: this.#faults,
      latencyMs: percentiles(this.#latencies),
      noticeDelayMs: percentiles(this.#noticeDelays),
      latencyHistogram: latencyHistogram(this.#latencies),
    };
  }

  /** Faulted pages not here yet (in the fault thread: whether a present page resolves one). */
  waitingFor(): IterableIterator<number> {
    return this.#inflight.keys();
  }

  #latency(ms: number, noticeMs: number): void {
    this.#latencies.push(ms);
    this.#noticeDelays.push(noticeMs);
    this.#onLatency?.(ms, noticeMs);
  }

  /** Ask for faulted pages not asked for yet on this channel, within the in-flight window. */
  #requestMore(): void {
    const channel = this.#channel;
    if (!channel || channel.failure || this.#passive) return;
    let batch: number[] = [];
    for (const page of this.#inflight.keys()) {
      if (this.#asked.size >= MAX_INFLIGHT_PAGES) break;
      if (this.#asked.has(page)) continue;
      this.#asked.add(page);
      batch.push(page);
      if (batch.length === PAGES_PER_REQUEST) {
        this.#send(channel, batch);
        batch = [];
      }
    }
    if (batch.length) this.#send(channel, batch);
  }

  #send(channel: PeerChannel, pages: number[]): void {
    try {
      const id = this.#nextId++;
      this.#onRequest?.(id);
      channel.send(msg.pageRequest(id, pages));
    } catch {
      // The channel just failed; recovery will re-request.
    }
  }
}
