/**
 * Demand paging on the destination while the VM runs with pages absent: every page that
 * arrives — on the main channel, the fault channel, or a channel that replaced one after a
 * broken link — is installed once (never over a page the guest already has), marked present
 * (waking a vCPU blocked on it), and resolves its fault; faults become PageRequests
 * (page-faults.ts). Channels may attach before post-copy starts (the fault channel joins at
 * setup): their appliers write into the same memory and the same digest ledger, and start
 * installing pages the moment post-copy does.
 *
 * With a fault thread (fault-thread.ts, capability `fault-thread`) the fault channel is the
 * thread's, not this thread's: it installs its answers itself, and this thread takes in its
 * reports — each page's hash for the ledger, touched for the next migration, the latencies. Every
 * writer claims a page before writing it (page-claims.ts), so a page arriving both ways is
 * installed once; this thread's claims on pages still absent are let go when its link breaks.
 * Should the thread die, faults come back here: the source finds the thread's port closed on its
 * reconnect and attaches its fault channel to the main listener, as without the capability.
 */
import type { Logger } from 'pino';
import { MigrationError } from '@livemig/shared';
import { msg, type PageApplier, type PeerChannel } from '@livemig/shared/channel';
import { Bitmap, CLAIM_MAIN, PageClaims, type ToyVm } from '@livemig/shared/vm';
import type { FaultThread, InstalledReport } from './fault-thread.ts';
import { FaultHandler } from './page-faults.ts';

const HASH_BYTES = 8;

export class PostcopyPaging {
  readonly #vm: ToyVm;
  readonly #logger: Logger;
  readonly #mainApplier: PageApplier;
  readonly #appliers: PageApplier[] = [];
  #faults: FaultHandler | undefined;
  #faultChannel: PeerChannel | undefined;
  readonly #onFaultLatency: ((ms: number) => void) | undefined;
  /** Who may write which absent page (this thread or the fault thread). */
  readonly claims: PageClaims;
  #thread: FaultThread | undefined;
  /** The fault channel joined the main listener although the thread lived: it is being stopped. */
  #bypassed = false;
  /** Pages the fault thread received (installed or dropped), and of those with their bytes. */
  readonly #threadReceived = { pages: 0, rawPages: 0 };
  /** Called when the last absent page arrives. */
  onAllPresent: (() => void) | undefined;

  /** `onFaultLatency` hears each fault's latency, vCPU blocked → page installed (FaultHandler). */
  constructor(vm: ToyVm, mainApplier: PageApplier, logger: Logger, onFaultLatency?: (ms: number) => void) {
    this.#vm = vm;
    this.#mainApplier = mainApplier;
    this.#logger = logger;
    this.#onFaultLatency = onFaultLatency;
    this.claims = new PageClaims(vm.memory.pageCount);
  }

  /** The fault thread owns the fault channel from now on (before post-copy starts). */
  useFaultThread(thread: FaultThread): void {
    this.#thread = thread;
    thread.onInstalled = (report) => this.#installedByThread(report);
    thread.onFailure = () => this.#faults?.activate();
  }

  /** True while a live fault thread owns the fault channel (not once the source bypassed it). */
  get faultThread(): boolean {
    return this.#thread?.alive === true && !this.#bypassed;
  }

  /** Until every report the fault thread sent so far was taken in (the ledger is complete once all pages are present). */
  async flush(): Promise<void> {
    await this.#thread?.flush();
  }

  /** A second connection's page sink: same memory, same digest ledger. */
  attachApplier(applier: PageApplier): void {
    applier.attach(this.#vm.memory, this.#mainApplier.ledger);
    this.#appliers.push(applier);
    if (this.#faults) this.#installOnArrival(applier);
  }

  /** The fault channel (again, after a reconnect): requests go there, in-flight ones are re-asked. */
  attachFaultChannel(channel: PeerChannel): void {
    this.#faultChannel = channel;
    this.#faults?.attachChannel(channel);
  }

  /** Attach fault: the channel must have negotiated `fault-channel`. */
  joinFaultChannel(channel: PeerChannel, applier: PageApplier): void {
    if (!channel.capabilities.has('fault-channel')) {
      channel.abort(new MigrationError('ERR_UNSUPPORTED', 'Attach fault, but fault-channel was not negotiated'));
      return;
    }
    if (this.faultThread) {
      this.#bypassed = true;
      // The source could not reach the thread's port: faults are this thread's from now on.
      this.#logger.warn(
        { event: 'fault-thread.bypassed' },
        'the fault channel joined the main listener; stopping the fault thread',
      );
      void this.#thread?.stop();
      this.#faults?.activate();
    }
    this.attachApplier(applier);
    this.attachFaultChannel(channel);
  }

  /** Attach resume: pages from `channel` go to this VM; tell the source which pages are still absent. */
  answerMissing(channel: PeerChannel, applier: PageApplier): void {
    this.attachApplier(applier);
    channel.send(msg.missing(this.absentPages().bytes()));
  }

  /** The link broke: requests wait for the next fault channel. */
  detachFaultChannel(): void {
    this.#faultChannel = undefined;
    this.#faults?.detachChannel();
    // This thread's connections are gone: pages they began and never finished may be installed by anyone.
    this.claims.release(CLAIM_MAIN, (n) => this.#vm.isPresent(n));
  }

  /** PostcopyStart: every page not in `absent` is present; from here on arriving pages are installed. */
  start(absent: Bitmap): void {
    this.#vm.markPresentExcept(absent);
    const onFaultLatency = this.#onFaultLatency;
    this.#faults = new FaultHandler(this.#vm, this.#logger, {
      onLatency: onFaultLatency ? (ms) => onFaultLatency(ms) : undefined,
      passive: this.faultThread,
    });
    this.#faults.start();
    if (this.#faultChannel) this.#faults.attachChannel(this.#faultChannel);
    this.#installOnArrival(this.#mainApplier);
    for (const applier of this.#appliers) this.#installOnArrival(applier);
  }

  /** Every page not present now (set = absent), for Missing. */
  absentPages(): Bitmap {
    const vm = this.#vm;
    const absent = new Bitmap(vm.memory.pageCount);
    for (let n = 0; n < vm.memory.pageCount; n++) if (!vm.isPresent(n)) absent.set(n);
    return absent;
  }

  /** What only this side measured, for Complete (and so for the source's report). */
  completeStats(resumedAt: { steps: number; at: number }): {
    stats: Record<string, unknown>;
    noticeDelayMs: ReturnType<FaultHandler['stats']>['noticeDelayMs'];
  } {
    const faults = this.#faults?.stats() ?? { faults: 0, latencyMs: null, noticeDelayMs: null, latencyHistogram: null };
    const ranMs = performance.now() - resumedAt.at;
    const stats = {
      // Every fault the vCPU raised: this thread's handler sees only those still in the fault ring
      // when its busy event loop drains it (the fault thread served the others).
      faults: Math.max(faults.faults, this.#vm.stats().faults),
      faultLatencyMs: faults.latencyMs,
      faultLatencyHistogram: faults.latencyHistogram,
      vcpuBlockedMs: this.#vm.stats().faultBlockedMs,
      stepsPerSecDuring: ranMs > 0 ? ((this.#vm.steps - resumedAt.steps) / ranMs) * 1000 : 0,
    };
    return { stats, noticeDelayMs: faults.noticeDelayMs };
  }

  /** Pages received on every connection of the migration, and of those the pages that came with their bytes. */
  received(): { pages: number; rawPages: number } {
    let { pages, rawPages } = this.#threadReceived;
    for (const applier of [this.#mainApplier, ...this.#appliers]) {
      pages += applier.pagesReceived;
      rawPages += applier.rawPagesReceived;
    }
    return { pages, rawPages };
  }

  /** Post-copy so far (query-migrate): faults, and faults whose page arrived; undefined before it started. */
  faults(): { faults: number; served: number } | undefined {
    return this.#faults ? { faults: this.#faults.faults, served: this.#faults.served } : undefined;
  }

  /** Stop listening to faults; end the fault thread (resolves once it has exited). */
  async stop(): Promise<void> {
    this.#faults?.stop();
    await this.#thread?.stop();
  }

  #installOnArrival(applier: PageApplier): void {
    const vm = this.#vm;
    const faults = this.#faults!;
    const claims = this.claims;
    const isPresent = (n: number): boolean => vm.isPresent(n);
    applier.wanted = (page) => claims.claim(page, CLAIM_MAIN, isPresent);
    applier.onPage = (page) => {
      vm.markPresent([page]);
      faults.pageArrived(page);
      if (vm.missingPages === 0) this.onAllPresent?.();
    };
  }

  /**
   * The fault thread installed these pages (present already, the vCPU woken): their hashes go
   * into the ledger, each page is marked touched (it may be non-zero when the VM leaves again),
   * and the faults it resolved are counted.
   */
  #installedByThread(report: InstalledReport): void {
    const vm = this.#vm;
    const ledger = this.#mainApplier.ledger!;
    const { pages, hashes, latencies } = report;
    for (let i = 0; i < pages.length; i++) {
      const page = pages[i]!;
      ledger.record(page, hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
      vm.memory.markTouched(page);
      this.#faults?.pageArrived(page);
    }
    for (let i = 0; i + 1 < latencies.length; i += 2) this.#faults?.recordLatency(latencies[i]!, latencies[i + 1]!);
    this.#threadReceived.pages += report.received;
    this.#threadReceived.rawPages += report.raw;
    if (pages.length === 0) return;
    vm.markPresent([]); // the last page present: the vCPU drops its presence checks
    if (vm.missingPages === 0) this.onAllPresent?.();
  }
}
