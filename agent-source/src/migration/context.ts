/**
 * Everything one outgoing migration knows, in one object the phases share (instead of a class
 * with optional fields read with `!`): who it is, its knobs, the VM, the connections, the
 * sections, the figures, and the outcome as it becomes known. Phases (phases/*.ts) are
 * functions over this context; the driver (outgoing.ts) owns its lifetime.
 */
import type { StartDirtyRate } from './start-dirty-rate.ts';
import type { LinkSample } from './link-history.ts';
import type { AutoReport } from '@livemig/shared/report';
import type { Logger } from 'pino';
import { MigrationError, StateMachine } from '@livemig/shared';
import type { ControlEvents, EventName } from '@livemig/shared/control';
import type { HostedVm } from '@livemig/shared/host';
import type {
  MigrationReport,
  PostcopyReport,
  PrefaultReport,
  SecurityReport,
  SideThreads,
  SwitchoverReason,
} from '@livemig/shared/report';
import type { RecordOperator, RecordParty, SignedRecord, Signer } from '@livemig/shared/security';
import { processThreads, type ToyVm } from '@livemig/shared/vm';
import { ChannelSet, type Connect } from './channels.ts';
import type { ChannelTotals, MultifdSender } from '@livemig/shared/multifd';
import type { ResolvedMigrateParams } from './params.ts';
import type { SectionSet } from './sections/index.ts';
import { MigrationStats } from './stats.ts';
import { SOURCE_TRANSITIONS, type SourceStatus } from './status.ts';
import { runFraction, throttlePercentOf, UNTHROTTLED, type ThrottleState } from './throttle.ts';
import { TokenBucket } from './token-bucket.ts';
import { armSwitchoverWatchdog } from './watchdog.ts';

export interface OutgoingComponents {
  hosted: HostedVm;
  /** Opens a data connection to the destination and completes Hello/Welcome. */
  connect: Connect;
  logger: Logger;
  emit: <E extends EventName>(event: E, data: ControlEvents[E]) => void;
  setVmState: (state: HostedVm['state']) => void;
  /** This agent's key: the migration record is signed with it. @default none: the record is unsigned */
  signer?: Signer;
  /** Keep the record once the migration ended (the audit log, fsynced), before the report is out. */
  keepRecord?: (signed: SignedRecord) => Promise<void>;
  /**
   * Where the destination's parallel bulk channels are reached (multifd.ts): the data host, and the
   * TLS material with the destination's expected name (absent: plaintext). @default none: one channel
   */
  multifdTarget?: MultifdTarget;
}

/** How a source's channel workers reach the destination (its data host; TLS as the main connection). */
export interface MultifdTarget {
  host: string;
  tls?: { ca: string; cert: string; key: string; expectName: string };
}

export interface OutgoingOptions {
  migrationId: string;
  to: string;
  params: ResolvedMigrateParams;
  /** The destination's single-use ticket, presented in Setup. @default "" (none) */
  ticket?: string;
  /** This agent's certificate name, when it speaks mutual TLS (for the report). */
  sourceName?: string;
  /** This agent's name for the report: its certificate name, else its agent id. */
  agentName: string;
  /** Who asked for the migration (the verified control caller), for the record. @default null */
  operator?: RecordOperator | null;
  /** The link to this destination as an earlier migration measured it (--mode auto decides before round 0 with it). */
  linkHint?: LinkSample;
}

/** What the operator or the agent asked for while the migration runs; read between batches. */
export interface Requests {
  /** Hybrid: switch to post-copy now (migrate-start-postcopy). */
  postcopy: boolean;
  /** The agent is stopping: switch over now rather than lose the VM. */
  shutdown: boolean;
}

/** The verification record: each side's digests, each computed by that side. */
export interface SideDigests {
  source: Record<string, string>;
  dest: Record<string, string>;
}

export class MigrationContext {
  readonly id: string;
  readonly params: ResolvedMigrateParams;
  readonly ticket: string;
  readonly sourceName: string | undefined;
  readonly agentName: string;
  /** The destination's name (certificate, else handshake agent id), once connected. */
  destAgentName: string | null = null;
  readonly hosted: HostedVm;
  readonly vm: ToyVm;
  readonly logger: Logger;
  readonly emit: OutgoingComponents['emit'];
  readonly setVmState: OutgoingComponents['setVmState'];
  readonly signer: Signer | undefined;
  readonly keepRecord: OutgoingComponents['keepRecord'];
  readonly operator: RecordOperator | null;
  /** The destination's verified certificate, once the main connection is open (null: plaintext). */
  destParty: RecordParty | null = null;
  /** The migration record with its signatures, once the migration ended. */
  record: SignedRecord | undefined;
  readonly machine = new StateMachine<SourceStatus>(SOURCE_TRANSITIONS, 'none');
  readonly stats = new MigrationStats();
  readonly abort = new AbortController();
  readonly bucket: TokenBucket;
  readonly channels: ChannelSet;
  readonly requests: Requests = { postcopy: false, shutdown: false };
  readonly verify: SideDigests = { source: {}, dest: {} };
  /** Set once setup has built them. */
  sections: SectionSet | undefined;
  switchover: { reason: SwitchoverReason; expectedDowntimeMs: number } | undefined;
  /** performance.now() when we paused the vCPU for the switchover (the downtime's start). */
  pausedAt: number | undefined;
  /** performance.now() when rollback resumed the vCPU here (a failure before Handoff). */
  resumedHereAt: number | undefined;
  /** Disarms the stop-and-copy watchdog armed at the pause (watchdog.ts). */
  #disarmWatchdog: (() => void) | undefined;
  /**
   * The switchover timeout fixed at the pause: a shared disk's allowance follows what the guest
   * has written by then, and the report states the bound that was in force.
   */
  #armedTimeoutMs: number | undefined;
  rttMs: number | undefined;
  /** How the main connection was secured, once it is open (null: plaintext). */
  security: SecurityReport | null = null;
  /** Where the VM is if the migration fails now. */
  vmRunsOnIfFailed: NonNullable<MigrationReport['vmRunsOn']> = 'source';
  postcopy: PostcopyReport | undefined;
  /** Guest progress when the migration started (for steps/s before post-copy). */
  readonly stepsAtStart: { steps: number; at: number };
  /** Set while recovery waits between attempts: cuts the wait short (migrate-resume). */
  retryNow: (() => void) | undefined;
  /** The dirty-rate measurement taken as the migration starts (start-dirty-rate.ts). */
  startDirtyRate: StartDirtyRate | undefined;
  /** Setup → SetupDone, ms: an upper bound of the data connection's RTT, known before round 0. */
  setupRoundTripMs: number | undefined;
  /** --mode auto: what it chose and why, once decided (auto.ts). */
  auto: AutoReport | undefined;
  readonly linkHint: LinkSample | undefined;
  /** The mode in force: the params' until --mode auto chooses (chooseMode). */
  #mode: ResolvedMigrateParams['mode'];
  /** auto-converge / dirty-limit: the throttle the controller set (throttle.ts), in force until lifted. */
  throttle: ThrottleState = UNTHROTTLED;
  /** This process's threads as the migration started, for the report's CPU time per thread (thread-registry.ts). */
  readonly threadsAtStart = processThreads.snapshot();
  /** The destination's own figures, once its final statistics came and passed the checks (dest-figures.ts). */
  destThreads: SideThreads | undefined;
  destPrefault: PrefaultReport | undefined;
  /** Where parallel bulk channels would connect (OutgoingComponents.multifdTarget). */
  readonly multifdTarget: MultifdTarget | undefined;
  /** The parallel bulk channels, once attached (multifd.ts); undefined: the main connection only. */
  multifd: MultifdSender | undefined;
  /** What the channels had written as of the last round's end, already in `stats` (multifd.ts). */
  multifdCounted: ChannelTotals[] = [];
  /** Why no parallel channels run although --channels asked for them (the report's channels.note). */
  multifdNote: string | undefined;

  constructor(components: OutgoingComponents, options: OutgoingOptions) {
    this.id = options.migrationId;
    this.params = options.params;
    this.ticket = options.ticket ?? '';
    this.sourceName = options.sourceName;
    this.agentName = options.agentName;
    this.hosted = components.hosted;
    this.vm = components.hosted.vm;
    this.logger = components.logger;
    this.emit = components.emit;
    this.setVmState = components.setVmState;
    this.signer = components.signer;
    this.keepRecord = components.keepRecord;
    this.multifdTarget = components.multifdTarget;
    this.operator = options.operator ?? null;
    this.bucket = new TokenBucket({ rateBps: options.params.maxBandwidthBps });
    this.channels = new ChannelSet(components.connect, this.abort.signal, this.id);
    this.stepsAtStart = { steps: this.vm.steps, at: performance.now() };
    this.#mode = options.params.mode;
    this.linkHint = options.linkHint;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get mode(): ResolvedMigrateParams['mode'] {
    return this.#mode;
  }

  /**
   * --mode auto chose pre-copy: from now on a switchover rule that gives up stops and copies
   * instead of switching to post-copy. The destination was set up for hybrid, which includes
   * a pre-copy switchover.
   */
  chooseMode(mode: 'precopy'): void {
    this.#mode = mode;
  }

  /**
   * The stop-and-copy watchdog's bound: --switchover-timeout as given; its default grows by what
   * a section must do inside the downtime that no link speed predicts (a shared disk hashed
   * whole by the destination as it opens it).
   */
  get switchoverTimeoutMs(): number {
    return this.#armedTimeoutMs ?? this.#switchoverTimeoutNow();
  }

  #switchoverTimeoutNow(): number {
    const { switchoverTimeoutMs, switchoverTimeoutGiven } = this.params;
    return switchoverTimeoutGiven
      ? switchoverTimeoutMs
      : switchoverTimeoutMs + (this.sections?.disk?.stopPointAllowanceMs ?? 0);
  }

  /** The sections; ERR_INTERNAL before setup built them. */
  get s(): SectionSet {
    if (!this.sections) throw new MigrationError('ERR_INTERNAL', 'sections used before setup');
    return this.sections;
  }

  /** Pause the vCPU: the downtime starts, and the switchover watchdog with it. */
  async pause(): Promise<void> {
    this.startDirtyRate?.cancel('the VM paused for the switchover');
    await this.vm.pause();
    this.pausedAt = performance.now();
    this.#armedTimeoutMs = this.#switchoverTimeoutNow();
    this.#disarmWatchdog = armSwitchoverWatchdog(this);
    // Whatever follows — the VM resumed on the destination (a new vCPU, never throttled) or
    // here by a rollback — it runs at full speed: the throttle served the rounds only.
    this.liftThrottle('the VM paused for the switchover');
  }

  /** Throttle the vCPU (auto-converge, dirty-limit) for the rounds that follow. */
  setThrottle(next: ThrottleState, round: number): void {
    const before = this.throttle.percent;
    this.throttle = next;
    if (next.percent === before) return;
    this.vm.setThrottle(runFraction(next.percent));
    this.logger.info(
      { event: 'throttle.set', round, from: before, to: next.percent },
      `vCPU throttled to ${next.percent} % after round ${round}`,
    );
  }

  /**
   * Let the vCPU run at full speed again: at the switchover's pause, at a rollback before the VM
   * resumes here, and at the end whatever happened. Idempotent; a VM already destroyed (the
   * agent stopping) has nothing to lift.
   */
  liftThrottle(why: string): void {
    if (this.throttle.percent !== 0) {
      this.logger.info({ event: 'throttle.lifted', from: this.throttle.percent, why }, `vCPU unthrottled: ${why}`);
    }
    this.throttle = { ...this.throttle, percent: 0 };
    try {
      if (this.vm.throttle !== 1) this.vm.setThrottle(1);
    } catch (error) {
      this.logger.debug({ event: 'throttle.lift.skipped', err: error }, 'no vCPU to unthrottle');
    }
  }

  /** The throttle the vCPU is under now (QMP cpu-throttle-percentage), read from the vCPU itself. */
  get cpuThrottlePercent(): number {
    return throttlePercentOf(this.vm.throttle);
  }

  /** Handoff is about to be sent, or the migration failed: the watchdog has nothing left to guard. */
  disarmWatchdog(): void {
    this.#disarmWatchdog?.();
    this.#disarmWatchdog = undefined;
  }

  /** When the vCPU paused for the switchover; ERR_INTERNAL if it has not. */
  get pausedSince(): number {
    if (this.pausedAt === undefined) throw new MigrationError('ERR_INTERNAL', 'the VM has not been paused');
    return this.pausedAt;
  }
}
