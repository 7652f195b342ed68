/**
 * One outgoing migration, as an explicit state machine (status.ts):
 *
 *   setup          connect, Hello/Welcome, (post-copy, hybrid: open the fault channel too),
 *                  harvest once so the "possibly non-zero" map is exact, Setup (+ that map: the
 *                  rest is known zero and never sent) → SetupDone
 *   precopy        round 0 sends every possibly-non-zero page; round k sends what round k−1
 *                  left dirty; after each round decideSwitchover() (convergence.ts) decides;
 *                  hybrid also switches after --postcopy-after rounds or migrate-start-postcopy
 *   stopcopy       (pre-copy) pause the vCPU, final harvest, send the rest + CPU + device
 *                  state, StopCopyEnd with the source digest; the destination verifies → Ready
 *   postcopy-start (post-copy, hybrid) pause the vCPU, send CPU + device state and the map of
 *                  pages the destination lacks → Ready
 *   handoff        send Handoff (the point of no return), wait for Resumed, compute downtime
 *   postcopy       push every missing page (postcopy.ts), answer faults first on the fault
 *                  channel; StopCopyEnd with the digest; the destination verifies → Complete
 *   postcopy-paused  the link broke: reconnect with back-off (or on migrate-resume) until the
 *                  recovery timeout; the destination answers which pages it still lacks
 *
 * Ownership: until Handoff is sent, any failure — connection lost, peer error, cancel, digest
 * mismatch — resumes the VM here (if we paused it) and the destination discards its copy. After
 * Handoff, the VM is never resumed here: pre-copy — the destination may be running it;
 * post-copy — it is, and this side holds part of its memory, so losing the destination loses
 * the VM, and the report says exactly that.
 *
 * Downtime = (Resumed received − vCPU paused) − one-way delay of Resumed: the destination
 * resumes its vCPU before it sends Resumed, so Resumed's trip back is the only part of that
 * interval after the resume. The one-way delay is half the RTT of the Handoff → Resumed
 * exchange itself, less the time the destination says it held Handoff before resuming
 * (Resumed.handoffToResumeMs): a measurement taken at that very moment, on that connection.
 */
import type { Logger } from 'pino';
import { MigrationError, StateMachine, toMigrationError } from '@livemig/shared';
import { msg, MsgType, type PeerChannel } from '@livemig/shared/channel';
import type { ControlEvents, EventName, MigrationInfo } from '@livemig/shared/control';
import type { HostedVm } from '@livemig/shared/host';
import type { MigrationReport, PostcopyReport, RoundReport, SwitchoverReason } from '@livemig/shared/report';
import { Bitmap, PageDigestLedger, unionSorted } from '@livemig/shared/vm';
import { buildReport } from './build-report.ts';
import { decideSwitchover } from './convergence.ts';
import { PageSender } from './page-sender.ts';
import type { ResolvedMigrateParams } from './params.ts';
import { PostcopyPusher, serveFaults } from './postcopy.ts';
import { MigrationStats } from './stats.ts';
import { SOURCE_OWNS_VM, SOURCE_TRANSITIONS, type SourceStatus } from './status.ts';
import { TokenBucket } from './token-bucket.ts';

export interface OutgoingComponents {
  hosted: HostedVm;
  /** Opens a data connection to the destination and completes Hello/Welcome. */
  connect: (signal: AbortSignal) => Promise<PeerChannel>;
  logger: Logger;
  emit: <E extends EventName>(event: E, data: ControlEvents[E]) => void;
  setVmState: (state: HostedVm['state']) => void;
}

export interface OutgoingOptions {
  migrationId: string;
  to: string;
  params: ResolvedMigrateParams;
}

/** First and longest wait between reconnection attempts in post-copy recovery. */
const RECOVERY_FIRST_DELAY_MS = 100;
const RECOVERY_MAX_DELAY_MS = 2000;

export class OutgoingMigration {
  readonly id: string;
  readonly #c: OutgoingComponents;
  readonly #options: OutgoingOptions;
  readonly #machine = new StateMachine<SourceStatus>(SOURCE_TRANSITIONS, 'none');
  readonly #stats = new MigrationStats();
  readonly #abort = new AbortController();
  readonly #bucket: TokenBucket;
  /** The main data connection (replaced on post-copy recovery). */
  #channel: PeerChannel | undefined;
  /** Post-copy: PageRequests and their answers, never behind bulk pages. */
  #faultChannel: PeerChannel | undefined;
  /** Wire bytes of connections already closed or replaced. */
  #wireBytesEarlier = 0;
  #pausedByUs = false;
  #switchover: { reason: SwitchoverReason; expectedDowntimeMs: number } | undefined;
  #rttMs: number | undefined;
  #verify = { sourceDigest: '', destDigest: '', match: false };
  #report: MigrationReport | undefined;
  #forceSwitchover = false;
  #startPostcopy = false;
  /** Page hashes of what was sent, for the source digest (see digest.ts). */
  #digests: PageDigestLedger | undefined;
  #pageSender: PageSender | undefined;
  /** Round 0's pages: every page that may be non-zero at setup. */
  #firstRound: Uint32Array | undefined;
  /** Pages harvested dirty after the last pre-copy round, not yet sent. */
  #leftover: Uint32Array = new Uint32Array(0);
  /** When the vCPU stopped (performance.now()): the start of the downtime. */
  #pausedAt = 0;
  /** Where the VM is if the migration fails now. */
  #vmRunsOnIfFailed: NonNullable<MigrationReport['vmRunsOn']> = 'source';
  #postcopy: PostcopyReport | undefined;
  #pusher: PostcopyPusher | undefined;
  /** Post-copy: the pages the guest wrote last before the switchover, pushed before the rest. */
  #pushFirst: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  #retryNow: (() => void) | undefined;

  constructor(components: OutgoingComponents, options: OutgoingOptions) {
    this.#c = components;
    this.#options = options;
    this.id = options.migrationId;
    this.#bucket = new TokenBucket({ rateBps: options.params.maxBandwidthBps });
    this.#machine.onTransition((from, to) => {
      this.#c.logger.info({ event: 'status.change', from, to }, `migration ${from} → ${to}`);
      this.#c.emit('MIGRATION', { migrationId: this.id, status: to, vm: components.hosted.name });
    });
  }

  get status(): SourceStatus {
    return this.#machine.state;
  }

  get mode(): ResolvedMigrateParams['mode'] {
    return this.#options.params.mode;
  }

  get report(): MigrationReport | undefined {
    return this.#report;
  }

  /** True until the outcome is known. */
  get active(): boolean {
    return !this.#machine.isFinal;
  }

  /**
   * Cancel while the source still owns the VM (QMP `migrate_cancel`). Past the point of no
   * return it throws ERR_VM_STATE saying why; once over it returns false.
   */
  cancel(): boolean {
    if (!this.active || this.#abort.signal.aborted) return false;
    if (!SOURCE_OWNS_VM.has(this.status)) {
      throw new MigrationError(
        'ERR_VM_STATE',
        `cannot cancel: the migration is past the point of no return (${this.status}); ` +
          (this.mode === 'precopy'
            ? 'the destination owns the VM'
            : 'the VM runs on the destination and needs the pages still held here'),
      );
    }
    this.#abort.abort(new MigrationError('ERR_CANCELLED', 'migration cancelled by the operator'));
    return true;
  }

  /** Stop iterating at the end of the current round (used on SIGTERM: finish rather than lose the VM). */
  switchoverNow(): void {
    this.#forceSwitchover = true;
  }

  /** Hybrid: switch to post-copy at the end of the current round (QMP migrate-start-postcopy). */
  startPostcopy(): void {
    if (this.mode !== 'hybrid') {
      throw new MigrationError('ERR_VM_STATE', `migrate-start-postcopy needs --mode hybrid (this one is ${this.mode})`);
    }
    if (this.status !== 'precopy' && this.status !== 'setup') {
      throw new MigrationError('ERR_VM_STATE', `too late to switch to post-copy: the migration is ${this.status}`);
    }
    this.#startPostcopy = true;
  }

  /** Post-copy recovery: try to reconnect now instead of waiting for the next back-off. */
  resumeNow(): void {
    if (this.status !== 'postcopy-paused') {
      throw new MigrationError('ERR_VM_STATE', `nothing to resume: the migration is ${this.status}`);
    }
    this.#retryNow?.();
  }

  /** Run to the end. Never throws: the outcome is in the report. */
  async run(): Promise<MigrationReport> {
    this.#c.setVmState('migrating-out');
    let error: MigrationError | undefined;
    try {
      await this.#setup();
      if (this.mode === 'precopy') {
        await this.#precopy();
        await this.#stopAndCopy();
        await this.#handoff('stopcopy');
        this.#c.setVmState('migrated');
        await this.#closeChannels();
        this.#machine.transition('handoff', 'completed');
      } else {
        if (this.mode === 'hybrid') await this.#precopy();
        else this.#leftover = this.#firstRound!;
        const absent = await this.#postcopyStart();
        await this.#handoff('postcopy-start');
        await this.#runPostcopy(absent);
        this.#c.setVmState('migrated');
        await this.#closeChannels();
        this.#machine.transition('postcopy', 'completed');
      }
    } catch (caught) {
      error = this.#abort.signal.aborted ? toMigrationError(this.#abort.signal.reason) : toMigrationError(caught);
      await this.#fail(error);
    }
    const outcome = this.status === 'completed' ? 'completed' : this.status === 'cancelled' ? 'cancelled' : 'failed';
    const vm = this.#c.hosted.vm;
    this.#report = buildReport({
      vmName: this.#c.hosted.name,
      spec: vm.spec,
      pageSize: vm.memory.pageSize,
      pageCount: vm.memory.pageCount,
      params: this.#options.params,
      outcome,
      error,
      stats: this.#stats,
      wireBytes: this.#wireBytes(),
      rttMs: this.#rttMs,
      verify: this.#verify,
      switchover: this.#switchover,
      postcopy: this.#postcopy,
      vmRunsOn: outcome === 'completed' ? 'destination' : this.#vmRunsOnIfFailed,
      pausedAtEpochMs: this.#pausedAt > 0 ? performance.timeOrigin + this.#pausedAt : undefined,
      nic: this.#nicReport(),
    });
    this.#c.emit('MIGRATION_REPORT', { migrationId: this.id, report: this.#report });
    return this.#report;
  }

  async #setup(): Promise<void> {
    const { hosted, logger } = this.#c;
    const vm = hosted.vm;
    this.#machine.transition('none', 'setup');
    const channel = await this.#c.connect(this.#abort.signal);
    this.#channel = channel;
    // The first harvest clears the log and makes possiblyNonZero() exact from here on: every
    // page outside it is zero now, and any later store to it shows up in a later harvest.
    vm.harvestDirty();
    this.#stats.harvests += 1;
    this.#stepsAtStart = { steps: vm.steps, at: performance.now() };
    const nonZero = vm.possiblyNonZero();
    this.#digests = new PageDigestLedger(vm.memory.pageCount);
    channel.send(
      msg.setup({
        migrationId: this.id,
        mode: this.mode,
        vm: {
          name: hosted.name,
          memoryBytes: vm.spec.memoryBytes,
          pageSize: vm.memory.pageSize,
          workload: vm.spec.workload,
          init: vm.spec.init,
          seed: vm.spec.seed,
          nic: vm.spec.nic ?? '',
        },
        bitmap: nonZero.bytes(),
      }),
    );
    await channel.expect(MsgType.SetupDone, this.#abort.signal);
    if (this.mode !== 'precopy') this.#faultChannel = await this.#openFaultChannel();
    this.#stats.setupMs = this.#stats.elapsedMs;
    this.#stats.skippedZeroPages = vm.memory.pageCount - nonZero.count;
    logger.info({ event: 'setup.done', setupMs: this.#stats.setupMs, mode: this.mode }, 'destination ready for pages');
    this.#firstRound = nonZero.toPageList();
  }

  #stepsAtStart = { steps: 0, at: 0 };

  async #openFaultChannel(): Promise<PeerChannel> {
    const fault = await this.#c.connect(this.#abort.signal);
    fault.send(msg.attach(this.id, 'fault'));
    return fault;
  }

  async #precopy(): Promise<void> {
    const { hosted, logger } = this.#c;
    const channel = this.#channel!;
    const vm = hosted.vm;
    this.#machine.transition('setup', 'precopy');
    const sender = this.#sender();
    let pages = this.#firstRound!;
    const params = this.#options.params;
    for (let round = 0; ; round++) {
      const started = performance.now();
      const bytesBefore = channel.bytesSent;
      await sender.send(pages, round);
      if (!channel.send(msg.roundEnd({ round, pages: pages.length, bytes: channel.bytesSent - bytesBefore }))) {
        await channel.drained(this.#abort.signal);
      }
      const dirty = vm.harvestDirty();
      this.#stats.harvests += 1;
      const { bytes, ms } = this.#recordRound(round, pages.length, started, bytesBefore, dirty.length);
      this.#stats.pendingPages = dirty.length;
      const decision = decideSwitchover({
        roundsDone: round + 1,
        dirtyAfter: this.#stats.rounds.map((r) => r.dirtyAfter),
        pageSize: vm.memory.pageSize,
        bandwidthBps: this.#bandwidthEstimate(),
        downtimeLimitMs: params.downtimeLimitMs,
        maxRounds: params.maxRounds,
      });
      this.#stats.expectedDowntimeMs = decision.expectedDowntimeMs;
      logger.info(
        { event: 'precopy.round.end', round, pages: pages.length, bytes, ms, dirtyAfter: dirty.length, ...decision },
        `round ${round}: ${pages.length} pages, ${dirty.length} dirty after`,
      );
      this.#c.emit('MIGRATION_PASS', { migrationId: this.id, pass: round + 1 });
      const hybridSwitch =
        this.mode === 'hybrid' &&
        (this.#startPostcopy || (params.postcopyAfterRounds !== null && round + 1 >= params.postcopyAfterRounds));
      const reason =
        decision.switchover ?? (hybridSwitch ? 'postcopy' : this.#forceSwitchover ? 'max-rounds' : undefined);
      if (reason) {
        this.#switchover = { reason, expectedDowntimeMs: decision.expectedDowntimeMs };
        // Stop the VM only once the destination has this whole round: otherwise stop-and-copy
        // queues behind what is still in socket buffers and on the wire (up to megabytes — a
        // third of a second at 100 Mbit/s) and all of that counts as downtime. The VM runs
        // meanwhile; what it dirties joins the final set.
        await this.#awaitRoundAck(channel, round);
        this.#leftover = unionSorted(dirty, vm.harvestDirty());
        return;
      }
      pages = dirty;
    }
  }

  #nicReport(): MigrationReport['nic'] {
    const net = this.#c.hosted.net;
    if (!net) return undefined;
    const { ip, port, mac } = net.address;
    return { address: `${ip}:${port}`, mac, addressMode: net.mode };
  }

  /** Wait until the destination acknowledged round `round` (earlier rounds' acks are passed over). */
  async #awaitRoundAck(channel: PeerChannel, round: number): Promise<void> {
    const waitStarted = performance.now();
    for (;;) {
      const ack = await channel.expect(MsgType.RoundAck, this.#abort.signal);
      if (ack.round >= round) break;
    }
    this.#c.logger.debug(
      { event: 'precopy.round.acked', round, waitedMs: performance.now() - waitStarted },
      'destination has the whole round',
    );
  }

  /** Add a round to the stats: what it sent, how long it took, what it left dirty. */
  #recordRound(
    index: number,
    pages: number,
    started: number,
    bytesBefore: number,
    dirtyAfter: number,
  ): { bytes: number; ms: number } {
    const ms = performance.now() - started;
    const bytes = this.#channel!.bytesSent - bytesBefore;
    this.#stats.rounds.push({ index, pages, bytes, ms, bandwidthBps: ms > 0 ? (bytes / ms) * 1000 : 0, dirtyAfter });
    return { bytes, ms };
  }

  /**
   * Bandwidth for the downtime estimate: the last round's, unless that round was too small to
   * measure (under 1 MiB or 5 ms), then the best of the rounds so far.
   */
  #bandwidthEstimate(): number {
    const rounds = this.#stats.rounds;
    const last = rounds[rounds.length - 1];
    if (last && last.bytes >= 1 << 20 && last.ms >= 5) return last.bandwidthBps;
    const measured = rounds.filter((r) => r.bytes >= 1 << 20 && r.ms >= 5);
    if (measured.length) return Math.max(...measured.map((r) => r.bandwidthBps));
    return this.#options.params.maxBandwidthBps ?? 1e9;
  }

  /** Pause the vCPU (the downtime starts) and harvest what it dirtied since the last harvest. */
  async #pauseAndHarvest(): Promise<Uint32Array> {
    const vm = this.#c.hosted.vm;
    await vm.pause();
    this.#pausedByUs = true;
    this.#pausedAt = performance.now();
    this.#stats.harvests += 1;
    return vm.harvestDirty();
  }

  async #stopAndCopy(): Promise<void> {
    const { hosted, logger } = this.#c;
    const channel = this.#channel!;
    const vm = hosted.vm;
    this.#machine.transition('precopy', 'stopcopy');
    const final = unionSorted(this.#leftover, await this.#pauseAndHarvest());
    const round = this.#stats.rounds.length;
    const started = performance.now();
    const bytesBefore = channel.bytesSent;
    await this.#sender().send(final, round);
    channel.send(msg.cpuState(vm.steps, vm.exportCpuState()));
    channel.send(msg.deviceState(vm.exportDeviceState() as unknown as Record<string, unknown>));
    this.#verify.sourceDigest = this.#digests!.digest();
    channel.send(msg.stopCopyEnd(this.#verify.sourceDigest));
    const ready = await channel.expect(MsgType.Ready, this.#abort.signal);
    const { ms } = this.#recordRound(round, final.length, started, bytesBefore, 0);
    this.#stats.pendingPages = 0;
    this.#checkDigest(ready.digest);
    logger.info({ event: 'stopcopy.done', pages: final.length, ms }, 'destination verified the VM and is ready');
  }

  #checkDigest(destDigest: string): void {
    this.#verify.destDigest = destDigest;
    this.#verify.match = destDigest === this.#verify.sourceDigest;
    if (!this.#verify.match) {
      throw new MigrationError(
        'ERR_DIGEST_MISMATCH',
        `destination digest ${destDigest} ≠ source ${this.#verify.sourceDigest}`,
      );
    }
  }

  /** Post-copy switchover: pause, send the CPU, the devices and the map of absent pages. */
  async #postcopyStart(): Promise<Bitmap> {
    const { hosted, logger } = this.#c;
    const channel = this.#channel!;
    const vm = hosted.vm;
    this.#machine.transition(['setup', 'precopy'], 'postcopy-start');
    this.#switchover ??= { reason: 'postcopy', expectedDowntimeMs: 0 };
    const running = performance.now() - this.#stepsAtStart.at;
    const stepsBefore = vm.steps - this.#stepsAtStart.steps;
    const harvested = await this.#pauseAndHarvest();
    // Absent at the destination = never sent or dirtied since sent. Pure post-copy sent nothing,
    // so that is every possibly-non-zero page: the map itself, right after this last harvest
    // (word operations; this runs inside the downtime, once, so it must not loop per page).
    let absent: Bitmap;
    if (this.mode === 'postcopy') {
      absent = vm.possiblyNonZero().clone();
    } else {
      absent = new Bitmap(vm.memory.pageCount);
      for (const page of this.#leftover) absent.set(page);
      for (const page of harvested) absent.set(page);
    }
    // Pages a device writes by itself (the NIC's rings) travel now, inside the downtime (a few
    // pages): the destination's device must never write a page that is still absent there.
    const devicePages = Uint32Array.from(vm.devicePages().filter((page) => absent.has(page)));
    if (devicePages.length) {
      await this.#sender().send(devicePages, this.#stats.rounds.length);
      for (const page of devicePages) absent.clear(page);
    }
    this.#stats.pendingPages = absent.count;
    // What the guest wrote since the last harvest before this one is its working set: push it first.
    this.#pushFirst = this.mode === 'postcopy' ? harvested : unionSorted(this.#leftover, harvested);
    channel.send(msg.cpuState(vm.steps, vm.exportCpuState()));
    channel.send(msg.deviceState(vm.exportDeviceState() as unknown as Record<string, unknown>));
    channel.send(msg.postcopyStart(absent.bytes()));
    const stateSentMs = performance.now() - this.#pausedAt;
    await channel.expect(MsgType.Ready, this.#abort.signal);
    logger.debug(
      { event: 'postcopy.timing', stateSentMs, readyMs: performance.now() - this.#pausedAt },
      'post-copy switchover timing (ms after the pause)',
    );
    this.#postcopy = {
      absentAtSwitchover: absent.count,
      pagesFetchedOnDemand: 0,
      pagesPushed: 0,
      faults: 0,
      faultLatencyMs: null,
      vcpuBlockedMs: 0,
      stepsPerSecBefore: running > 0 ? (stepsBefore / running) * 1000 : 0,
      stepsPerSecDuring: 0,
      postcopyMs: 0,
      recoveries: 0,
    };
    logger.info({ event: 'postcopy.switch', absent: absent.count }, 'switching to post-copy');
    return absent;
  }

  async #handoff(from: 'stopcopy' | 'postcopy-start'): Promise<void> {
    const channel = this.#channel!;
    this.#machine.transition(from, 'handoff');
    // Point of no return: from this send on, the destination may be running the VM.
    this.#vmRunsOnIfFailed = this.mode === 'precopy' ? 'paused-on-source' : 'lost';
    // The address follows the VM: let go of it first (the socket closes synchronously), so the
    // destination can take it the moment it resumes.
    void this.#c.hosted.net?.give();
    const handoffSent = performance.now();
    channel.send(msg.handoff());
    this.#c.logger.warn({ event: 'handoff.sent' }, 'handoff sent: the destination owns the VM now');
    const resumed = await channel.expect(MsgType.Resumed);
    const sawResumed = performance.now();
    this.#rttMs = Math.max(0, sawResumed - handoffSent - resumed.handoffToResumeMs);
    this.#stats.downtimeMs = Math.max(0, sawResumed - this.#pausedAt - this.#rttMs / 2);
    this.#c.logger.info(
      { event: 'handoff.done', downtimeMs: this.#stats.downtimeMs, destHoldMs: resumed.handoffToResumeMs },
      'the VM runs on the destination',
    );
  }

  /** Post-copy: push and serve faults until the destination has every page, recovering broken links. */
  async #runPostcopy(absent: Bitmap): Promise<void> {
    const vm = this.#c.hosted.vm;
    const digests = this.#digests!;
    this.#machine.transition('handoff', 'postcopy');
    const started = performance.now();
    const pusher = new PostcopyPusher(
      {
        memory: vm.memory,
        stats: this.#stats,
        bucket: this.#bucket,
        logger: this.#c.logger,
        onPageSent: (page, bytes) => (bytes ? digests.update(page, bytes) : digests.updateZero(page)),
        sentBefore: (page) => this.#pageSender?.wasSent(page) === true,
        signal: this.#abort.signal,
      },
      absent,
      this.#stats.rounds.length,
      this.#pushFirst,
    );
    this.#pusher = pusher;
    let destStats: Record<string, unknown>;
    for (;;) {
      try {
        destStats = await this.#pushUntilComplete(pusher);
        break;
      } catch (error) {
        if (this.#abort.signal.aborted) throw error;
        await this.#recover(toMigrationError(error), pusher);
      }
    }
    this.#stats.pendingPages = 0;
    const pc = this.#postcopy!;
    pc.pagesFetchedOnDemand = pusher.fetchedOnDemand;
    pc.pagesPushed = pusher.pushed;
    pc.postcopyMs = performance.now() - started;
    pc.faults = numberOf(destStats.faults);
    pc.vcpuBlockedMs = numberOf(destStats.vcpuBlockedMs);
    pc.stepsPerSecDuring = numberOf(destStats.stepsPerSecDuring);
    const latency = destStats.faultLatencyMs as PostcopyReport['faultLatencyMs'] | undefined;
    pc.faultLatencyMs = latency ?? null;
  }

  /** One attempt: push everything on the main channel while answering faults; StopCopyEnd → Complete. */
  async #pushUntilComplete(pusher: PostcopyPusher): Promise<Record<string, unknown>> {
    const main = this.#channel!;
    const fault = this.#faultChannel!;
    const faults = serveFaults(pusher, fault, this.#abort.signal);
    const pushing = (async () => {
      await pusher.pushAll(main);
      this.#verify.sourceDigest = this.#digests!.digest();
      main.send(msg.stopCopyEnd(this.#verify.sourceDigest));
      return main.expect(MsgType.Complete, this.#abort.signal);
    })();
    faults.catch(() => {});
    pushing.catch(() => {});
    const complete = await Promise.race([
      pushing,
      faults.then(() => {
        throw new MigrationError('ERR_CONNECTION', 'the fault channel ended before the migration completed');
      }),
    ]);
    // The destination compared digests before it said Complete.
    this.#verify.destDigest = this.#verify.sourceDigest;
    this.#verify.match = true;
    return complete.stats;
  }

  /**
   * The link broke during post-copy. The VM runs on the destination and this side holds the
   * pages it lacks: reconnect (back-off, or now on migrate-resume) until the recovery timeout,
   * learn which pages are still missing, and go on. Timing out means the VM is lost.
   */
  async #recover(error: MigrationError, pusher: PostcopyPusher): Promise<void> {
    const { logger } = this.#c;
    this.#machine.transition('postcopy', 'postcopy-paused');
    logger.warn(
      { event: 'postcopy.paused', err: error, remaining: pusher.remaining },
      'link lost during post-copy: the VM on the destination blocks on missing pages; reconnecting',
    );
    await this.#closeChannels(error);
    const deadline = performance.now() + this.#options.params.recoveryTimeoutMs;
    let delay = RECOVERY_FIRST_DELAY_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        const main = await this.#c.connect(this.#abort.signal);
        this.#channel = main;
        main.send(msg.attach(this.id, 'resume'));
        const missing = await main.expect(MsgType.Missing, this.#abort.signal);
        this.#faultChannel = await this.#openFaultChannel();
        pusher.resync(Bitmap.fromBytes(missing.bitmap, this.#c.hosted.vm.memory.pageCount));
        this.#postcopy!.recoveries += 1;
        this.#machine.transition('postcopy-paused', 'postcopy');
        logger.info({ event: 'postcopy.recovered', attempt, remaining: pusher.remaining }, 'reconnected; resuming');
        return;
      } catch (attemptError) {
        await this.#closeChannels(toMigrationError(attemptError));
        const left = deadline - performance.now();
        if (left <= 0) {
          throw new MigrationError(
            'ERR_CONNECTION',
            `post-copy could not reconnect within ${this.#options.params.recoveryTimeoutMs} ms ` +
              `(${toMigrationError(attemptError).message}): the VM is lost — it was running on the destination ` +
              `with ${pusher.remaining} pages still here`,
            { cause: attemptError },
          );
        }
        logger.info({ event: 'postcopy.retry', attempt, inMs: Math.min(delay, left) }, 'reconnect failed; retrying');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(delay, left));
          this.#retryNow = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#retryNow = undefined;
        delay = Math.min(delay * 2, RECOVERY_MAX_DELAY_MS);
      }
    }
  }

  async #closeChannels(error?: MigrationError): Promise<void> {
    for (const channel of [this.#channel, this.#faultChannel]) {
      if (!channel) continue;
      this.#wireBytesEarlier += channel.bytesSent;
      if (error) channel.abort(error);
      else await channel.close();
    }
    this.#channel = undefined;
    this.#faultChannel = undefined;
  }

  #wireBytes(): number {
    return this.#wireBytesEarlier + (this.#channel?.bytesSent ?? 0) + (this.#faultChannel?.bytesSent ?? 0);
  }

  /** Roll back what the source owns, tell the peer, and record the outcome. */
  async #fail(error: MigrationError): Promise<void> {
    const { hosted, logger } = this.#c;
    const owned = SOURCE_OWNS_VM.has(this.status);
    const outcome: SourceStatus = error.code === 'ERR_CANCELLED' && owned ? 'cancelled' : 'failed';
    await this.#closeChannels(error);
    if (owned) {
      this.#vmRunsOnIfFailed = 'source';
      if (this.#pausedByUs) hosted.vm.resume();
      this.#c.setVmState('running');
      logger.warn({ event: 'migration.rollback', err: error }, `migration ${outcome}; the VM keeps running here`);
    } else if (this.mode === 'precopy') {
      this.#c.setVmState('migrated');
      logger.error(
        { event: 'migration.handoff-unconfirmed', err: error },
        'handoff was sent but the destination never confirmed: the VM stays paused here (state "migrated") and ' +
          'may be running on the destination; check it before `cont --force` here',
      );
    } else {
      this.#c.setVmState('migrated');
      logger.error(
        { event: 'migration.postcopy-lost', err: error },
        'post-copy failed after the point of no return: the VM ran on the destination with pages still here; ' +
          'it is lost unless the destination still runs it',
      );
    }
    this.#machine.transition(this.status, outcome);
  }

  /** One sender for the whole migration: it remembers what was sent, to count re-sends. */
  #sender(): PageSender {
    const digests = this.#digests!;
    this.#pageSender ??= new PageSender({
      channel: this.#channel!,
      memory: this.#c.hosted.vm.memory,
      stats: this.#stats,
      bucket: this.#bucket,
      signal: this.#abort.signal,
      onPageSent: (page, bytes) => (bytes ? digests.update(page, bytes) : digests.updateZero(page)),
    });
    return this.#pageSender;
  }

  /** The last round's bandwidth; during round 0, what it has achieved so far. */
  #liveBandwidthBps(last: RoundReport | undefined): number {
    if (last) return last.bandwidthBps;
    const sendingMs = this.#stats.elapsedMs - this.#stats.setupMs;
    return this.#stats.setupMs > 0 && sendingMs > 0 ? (this.#wireBytes() / sendingMs) * 1000 : 0;
  }

  /** Live figures for `query-migrate`. */
  info(): MigrationInfo {
    const s = this.#stats;
    const vm = this.#c.hosted.vm;
    const remainingPages = this.#pusher ? this.#pusher.remaining : s.pendingPages;
    return {
      migrationId: this.id,
      vm: this.#c.hosted.name,
      mode: this.mode,
      status: this.status,
      transferred: this.#wireBytes(),
      remaining: remainingPages * vm.memory.pageSize,
      total: vm.spec.memoryBytes,
      duplicate: s.zeroPages + s.skippedZeroPages,
      normal: s.rawPages,
      dirtyPagesRate: s.dirtyPagesRate,
      mbps: (this.#liveBandwidthBps(s.lastRound) * 8) / 1e6,
      dirtySyncCount: s.harvests,
      expectedDowntime: s.expectedDowntimeMs,
      totalTime: s.elapsedMs,
      setupTime: s.setupMs,
      downtime: s.downtimeMs,
      passProgress: s.current.planned ? s.current.sent / s.current.planned : 0,
      pass: s.current.index,
    };
  }
}

function numberOf(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}
