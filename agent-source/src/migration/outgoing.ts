/**
 * One outgoing pre-copy migration, as an explicit state machine (status.ts):
 *
 *   setup     connect, Hello/Welcome, harvest once (so the "possibly non-zero" map is exact),
 *             Setup (+ that map: the rest is known zero and never sent) → SetupDone
 *   precopy   round 0 sends every possibly-non-zero page; round k sends what round k−1 left
 *             dirty; after each round, decideSwitchover() (convergence.ts) picks the moment
 *   stopcopy  pause the vCPU, final harvest, send the rest + CPU + device state, StopCopyEnd
 *             with the source digest; the destination verifies and answers Ready
 *   handoff   send Handoff (the point of no return: the destination now owns the VM), wait
 *             for Resumed and compute the downtime
 *
 * Ownership: until Handoff is sent, any failure — connection lost, peer error, cancel,
 * digest mismatch — resumes the VM here (if we paused it) and the destination discards its
 * copy. After Handoff is sent, the VM is never resumed here automatically: the destination may
 * be running it. If Resumed never arrives, the report says exactly that.
 *
 * Downtime = (Resumed received − vCPU paused) − one-way delay of Resumed: the destination
 * resumes its vCPU before it sends Resumed, so Resumed's trip back is the only part of that
 * interval after the resume. The one-way delay is half the RTT of the Handoff → Resumed
 * exchange itself, less the time the destination says it held Handoff before resuming
 * (Resumed.handoffToResumeMs): a measurement taken at that very moment, on that connection.
 */
import type { Logger } from 'pino';
import { MigrationError, StateMachine, toMigrationError } from '@livemig/shared';
import type { PeerChannel } from '@livemig/shared/channel';
import { msg, MsgType } from '@livemig/shared/channel';
import type { MigrateParams, MigrationInfo, ControlEvents, EventName } from '@livemig/shared/control';
import type { HostedVm } from '@livemig/shared/host';
import { REPORT_SCHEMA, type MigrationReport, type RoundReport, type SwitchoverReason } from '@livemig/shared/report';
import { PageDigestLedger, unionSorted } from '@livemig/shared/vm';
import { decideSwitchover } from './convergence.ts';
import { PageSender } from './page-sender.ts';
import { MigrationStats } from './stats.ts';
import { SOURCE_OWNS_VM, SOURCE_TRANSITIONS, type SourceStatus } from './status.ts';
import { TokenBucket } from './token-bucket.ts';

export interface ResolvedMigrateParams {
  downtimeLimitMs: number;
  maxRounds: number;
  maxBandwidthBps: number | null;
}

export const DEFAULT_MIGRATE_PARAMS: ResolvedMigrateParams = Object.freeze({
  downtimeLimitMs: 300,
  maxRounds: 30,
  maxBandwidthBps: null,
});

/** Check and complete migrate parameters; every bad value is an ERR_INVALID_ARGUMENT naming it. */
export function resolveMigrateParams(params: MigrateParams = {}): ResolvedMigrateParams {
  const resolved = { ...DEFAULT_MIGRATE_PARAMS, ...stripUndefined(params) } as ResolvedMigrateParams;
  if (!(Number.isFinite(resolved.downtimeLimitMs) && resolved.downtimeLimitMs > 0)) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `downtime-limit must be > 0 ms, got ${resolved.downtimeLimitMs}`);
  }
  if (!(Number.isSafeInteger(resolved.maxRounds) && resolved.maxRounds >= 1 && resolved.maxRounds <= 10_000)) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `max-rounds must be a whole number in 1..10000, got ${resolved.maxRounds}`,
    );
  }
  if (resolved.maxBandwidthBps !== null && !(resolved.maxBandwidthBps > 0)) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `max-bandwidth must be > 0, got ${resolved.maxBandwidthBps}`);
  }
  return resolved;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export interface OutgoingComponents {
  hosted: HostedVm;
  /** Opens the data connection and completes Hello/Welcome. */
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

export class OutgoingMigration {
  readonly id: string;
  readonly #c: OutgoingComponents;
  readonly #options: OutgoingOptions;
  readonly #machine = new StateMachine<SourceStatus>(SOURCE_TRANSITIONS, 'none');
  readonly #stats = new MigrationStats();
  readonly #abort = new AbortController();
  #channel: PeerChannel | undefined;
  #pausedByUs = false;
  #switchover: { reason: SwitchoverReason; expectedDowntimeMs: number } | undefined;
  #rttMs: number | undefined;
  #verify = { sourceDigest: '', destDigest: '', match: false };
  #report: MigrationReport | undefined;
  #forceSwitchover = false;
  /** Page hashes of what was sent, for the source digest (see digest.ts). */
  #digests: PageDigestLedger | undefined;
  #pageSender: PageSender | undefined;
  /** Round 0's pages: every page that may be non-zero at setup. */
  #firstRound: Uint32Array | undefined;
  /** Pages harvested dirty after the last pre-copy round, not yet sent. */
  #leftover: Uint32Array = new Uint32Array(0);
  /** When the vCPU stopped (performance.now()): the start of the downtime. */
  #pausedAt = 0;
  /** Whether the source still owned the VM when the migration failed. */
  #ownedAtFailure = true;

  constructor(components: OutgoingComponents, options: OutgoingOptions) {
    this.#c = components;
    this.#options = options;
    this.id = options.migrationId;
    this.#machine.onTransition((from, to) => {
      this.#c.logger.info({ event: 'status.change', from, to }, `migration ${from} → ${to}`);
      this.#c.emit('MIGRATION', { migrationId: this.id, status: to, vm: components.hosted.name });
    });
  }

  get status(): SourceStatus {
    return this.#machine.state;
  }

  get report(): MigrationReport | undefined {
    return this.#report;
  }

  /** True until the outcome is known. */
  get active(): boolean {
    return !this.#machine.isFinal;
  }

  /**
   * Cancel if the source still owns the VM (QMP `migrate_cancel`). Returns false when it is
   * too late (Handoff sent) or already over.
   */
  cancel(): boolean {
    if (!SOURCE_OWNS_VM.has(this.status) || this.#abort.signal.aborted) return false;
    this.#abort.abort(new MigrationError('ERR_CANCELLED', 'migration cancelled by the operator'));
    return true;
  }

  /** Stop iterating at the end of the current round (used on SIGTERM: finish rather than lose the VM). */
  switchoverNow(): void {
    this.#forceSwitchover = true;
  }

  /** Run to the end. Never throws: the outcome is in the report. */
  async run(): Promise<MigrationReport> {
    this.#c.setVmState('migrating-out');
    let error: MigrationError | undefined;
    try {
      await this.#setup();
      await this.#precopy();
      await this.#stopAndCopy();
      await this.#handoff();
      this.#machine.transition('handoff', 'completed');
    } catch (caught) {
      error = this.#abort.signal.aborted ? toMigrationError(this.#abort.signal.reason) : toMigrationError(caught);
      await this.#fail(error);
    }
    this.#report = this.#buildReport(error);
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
    const nonZero = vm.possiblyNonZero();
    this.#digests = new PageDigestLedger(vm.memory.pageCount);
    channel.send(
      msg.setup({
        migrationId: this.id,
        mode: 'precopy',
        vm: {
          name: hosted.name,
          memoryBytes: vm.spec.memoryBytes,
          pageSize: vm.memory.pageSize,
          workload: vm.spec.workload,
          init: vm.spec.init,
          seed: vm.spec.seed,
        },
        bitmap: nonZero.bytes(),
      }),
    );
    await channel.expect(MsgType.SetupDone, this.#abort.signal);
    this.#stats.setupMs = this.#stats.elapsedMs;
    this.#stats.skippedZeroPages = vm.memory.pageCount - nonZero.count;
    logger.info(
      { event: 'setup.done', setupMs: this.#stats.setupMs, rttMs: this.#rttMs },
      'destination ready for pages',
    );
    this.#firstRound = nonZero.toPageList();
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
      const reason = decision.switchover ?? (this.#forceSwitchover ? 'max-rounds' : undefined);
      if (reason) {
        this.#switchover = { reason, expectedDowntimeMs: decision.expectedDowntimeMs };
        this.#leftover = dirty;
        return;
      }
      pages = dirty;
    }
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

  async #stopAndCopy(): Promise<void> {
    const { hosted, logger } = this.#c;
    const channel = this.#channel!;
    const vm = hosted.vm;
    this.#machine.transition('precopy', 'stopcopy');
    await vm.pause();
    this.#pausedByUs = true;
    this.#pausedAt = performance.now();
    const final = unionSorted(this.#leftover, vm.harvestDirty());
    this.#stats.harvests += 1;
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
    this.#verify.destDigest = ready.digest;
    this.#verify.match = ready.digest === this.#verify.sourceDigest;
    if (!this.#verify.match) {
      throw new MigrationError(
        'ERR_DIGEST_MISMATCH',
        `destination digest ${ready.digest} ≠ source ${this.#verify.sourceDigest}`,
      );
    }
    logger.info({ event: 'stopcopy.done', pages: final.length, ms }, 'destination verified the VM and is ready');
  }

  async #handoff(): Promise<void> {
    const channel = this.#channel!;
    this.#machine.transition('stopcopy', 'handoff');
    // Point of no return: from this send on, the destination may be running the VM.
    const handoffSent = performance.now();
    channel.send(msg.handoff());
    this.#c.setVmState('migrated');
    this.#c.logger.warn({ event: 'handoff.sent' }, 'handoff sent: the destination owns the VM now');
    const resumed = await channel.expect(MsgType.Resumed);
    const sawResumed = performance.now();
    this.#rttMs = Math.max(0, sawResumed - handoffSent - resumed.handoffToResumeMs);
    this.#stats.downtimeMs = Math.max(0, sawResumed - this.#pausedAt - this.#rttMs / 2);
    this.#c.logger.info(
      { event: 'handoff.done', downtimeMs: this.#stats.downtimeMs, destHoldMs: resumed.handoffToResumeMs },
      'the VM runs on the destination',
    );
    await channel.close();
  }

  /** Roll back what the source owns, tell the peer, and record the outcome. */
  async #fail(error: MigrationError): Promise<void> {
    const { hosted, logger } = this.#c;
    const owned = SOURCE_OWNS_VM.has(this.status);
    this.#ownedAtFailure = owned;
    const outcome: SourceStatus = error.code === 'ERR_CANCELLED' ? 'cancelled' : 'failed';
    this.#channel?.abort(error);
    if (owned) {
      if (this.#pausedByUs) hosted.vm.resume();
      this.#c.setVmState('running');
      logger.warn({ event: 'migration.rollback', err: error }, `migration ${outcome}; the VM keeps running here`);
    } else {
      logger.error(
        { event: 'migration.handoff-unconfirmed', err: error },
        'handoff was sent but the destination never confirmed: the VM stays paused here (state "migrated") and ' +
          'may be running on the destination; check it before `cont --force` here',
      );
    }
    this.#machine.transition(this.status, outcome === 'cancelled' && owned ? 'cancelled' : 'failed');
  }

  /** One sender for the whole migration: it remembers what was sent, to count re-sends. */
  #sender(): PageSender {
    const digests = this.#digests!;
    this.#pageSender ??= new PageSender({
      channel: this.#channel!,
      memory: this.#c.hosted.vm.memory,
      stats: this.#stats,
      bucket: new TokenBucket({ rateBps: this.#options.params.maxBandwidthBps }),
      signal: this.#abort.signal,
      onPageSent: (page, bytes) => (bytes ? digests.update(page, bytes) : digests.updateZero(page)),
    });
    return this.#pageSender;
  }

  /** The last round's bandwidth; during round 0, what it has achieved so far. */
  #liveBandwidthBps(last: RoundReport | undefined): number {
    if (last) return last.bandwidthBps;
    const sendingMs = this.#stats.elapsedMs - this.#stats.setupMs;
    return this.#channel && this.#stats.setupMs > 0 && sendingMs > 0 ? (this.#channel.bytesSent / sendingMs) * 1000 : 0;
  }

  /** Live figures for `query-migrate`. */
  info(): MigrationInfo {
    const s = this.#stats;
    const last = s.lastRound;
    const vm = this.#c.hosted.vm;
    return {
      migrationId: this.id,
      vm: this.#c.hosted.name,
      mode: 'precopy',
      status: this.status,
      transferred: this.#channel?.bytesSent ?? 0,
      remaining: s.pendingPages * vm.memory.pageSize,
      total: vm.spec.memoryBytes,
      duplicate: s.zeroPages + s.skippedZeroPages,
      normal: s.rawPages,
      dirtyPagesRate: s.dirtyPagesRate,
      mbps: (this.#liveBandwidthBps(last) * 8) / 1e6,
      dirtySyncCount: s.harvests,
      expectedDowntime: s.expectedDowntimeMs,
      totalTime: s.elapsedMs,
      setupTime: s.setupMs,
      downtime: s.downtimeMs,
      passProgress: s.current.planned ? s.current.sent / s.current.planned : 0,
      pass: s.current.index,
    };
  }

  #buildReport(error: MigrationError | undefined): MigrationReport {
    const s = this.#stats;
    const vm = this.#c.hosted.vm;
    const outcome = this.status === 'completed' ? 'completed' : this.status === 'cancelled' ? 'cancelled' : 'failed';
    const params = this.#options.params;
    return {
      schema: REPORT_SCHEMA,
      mode: 'precopy',
      outcome,
      error: error ? error.toJSON() : null,
      vm: {
        name: this.#c.hosted.name,
        memoryBytes: vm.spec.memoryBytes,
        pageSize: vm.memory.pageSize,
        workload: vm.spec.workload,
        init: vm.spec.init,
        seed: vm.spec.seed,
      },
      times: {
        totalMs: s.elapsedMs,
        downtimeMs: s.downtimeMs ?? 0,
        setupMs: s.setupMs,
        ...(this.#rttMs === undefined ? {} : { rttMs: this.#rttMs }),
      },
      bytes: { wire: this.#channel?.bytesSent ?? 0, pagePayload: s.pagePayloadBytes },
      pages: {
        total: vm.memory.pageCount,
        sent: s.rawPages + s.zeroPages,
        zero: s.zeroPages + s.skippedZeroPages,
        resent: s.resentPages,
        faulted: 0,
      },
      rounds: s.rounds,
      verify: this.#verify,
      network: null,
      ...(this.#switchover
        ? {
            switchover: {
              reason: this.#switchover.reason,
              expectedDowntimeMs: this.#switchover.expectedDowntimeMs,
              downtimeLimitMs: params.downtimeLimitMs,
              maxRounds: params.maxRounds,
              maxBandwidthBps: params.maxBandwidthBps,
            },
          }
        : {}),
      vmRunsOn: outcome === 'completed' ? 'destination' : this.#ownedAtFailure ? 'source' : 'paused-on-source',
    };
  }
}
