/**
 * The migration report — a contract (ARCHITECTURE.md §6). Fields may be added; none of the
 * schema-1 fields may be renamed or dropped without bumping `schema`. Times are milliseconds,
 * sizes bytes, rates bytes per second.
 */

export const REPORT_SCHEMA = 'livemig.report/1';

import type { MigrationMode, StorageMode } from '../protocol/message-types.ts';
import type { SignedRecord } from '../security/record.ts';
import type { LatencyHistogram } from './latency-histogram.ts';
import type { PrefaultReport, ThreadsReport } from './threads.ts';
import type { DirtyCurve, ModelInputs, Objective, Prediction, Technique } from '../predict/types.ts';
import type { DirtyRateMeasurement } from '../vm/dirty-rate.ts';

export type { MigrationMode, StorageMode };
export type MigrationOutcome = 'completed' | 'failed' | 'cancelled';

/** Why pre-copy stopped iterating and switched over (the rule that fired). */
export type SwitchoverReason =
  | 'converged' // expected downtime ≤ downtime-limit
  | 'nothing-dirty'
  | 'max-rounds'
  | 'not-shrinking' // the dirty set stopped shrinking for 3 rounds
  | 'postcopy' // hybrid/post-copy switched without converging (or migrate-start-postcopy)
  | 'shutdown'; // the agent was asked to stop (SIGTERM): it switched over at once rather than lose the VM

export interface RoundReport {
  /** 0 = the full first pass. */
  index: number;
  /** Pages sent in this round (raw and zero). */
  pages: number;
  /** Bytes put on the wire for this round (frames, headers included). */
  bytes: number;
  ms: number;
  /** Measured bytes per second over this round. */
  bandwidthBps: number;
  /** Pages found dirty when the round ended (what the next round would send). */
  dirtyAfter: number;
  /**
   * Extra (pre-copy rounds; absent for the stop-and-copy set, when the VM is paused): the vCPU
   * throttle in force during the round, percent of its time taken away (QEMU's
   * cpu-throttle-percentage; 0 = none).
   */
  cpuThrottlePercent?: number;
  /** Extra (pre-copy rounds): guest steps per second over the round — what it cost the guest. */
  guestStepsPerSec?: number;
}

/**
 * Extra: the page encodings of a migration (issue 17), as asked (`mode`) and as they ran. Counters
 * are QEMU's where QEMU has them (xbzrle: cache hits, misses, overflows, pages, bytes, encoding
 * rate). `decisions` are the policy's choices in order, each with the figures it was made from.
 */
export interface EncodingsReport {
  xbzrle: {
    mode: 'auto' | 'on' | 'off';
    cacheBytes: number;
    cacheHits: number;
    cacheMisses: number;
    cacheOverflows: number;
    /** Pages sent as deltas, and the deltas' bytes. */
    pages: number;
    bytes: number;
    /** Page bytes the deltas kept off the wire. */
    bytesSaved: number;
  } | null;
  dedup: {
    mode: 'auto' | 'on' | 'off';
    /** Pages sent as references (to pages sent earlier, and to host content). */
    pages: number;
    /** Extra: content the destination host held already (`dedup-host`), when the source asked for it. */
    host?: HostDedupReport;
  } | null;
  compression: {
    mode: 'auto' | 'off' | 'lz4' | 'brotli';
    threads: number;
    /** Pages sent in compressed blocks; the blocks' input and output bytes. */
    pages: number;
    inputBytes: number;
    outputBytes: number;
    /** Blocks compressed but sent raw (they did not shrink by 5 %). */
    incompressibleBlocks: number;
    /** Time the compression threads worked, ms (one entry per thread). */
    busyMs: number[];
  } | null;
  /** Main-thread time spent encoding (snapshots, hashes, deltas), ms. */
  encodeMs: number;
  /** The policy's choices, in order: at most 32 kept, the first and the last, with a line counting those left out between. */
  decisions: string[];
}

/**
 * References to content the destination host held before the migration (capability
 * `dedup-host`): the page contents of its other VMs it snapshotted and offered at setup.
 */
export interface HostDedupReport {
  /** Contents the destination offered (their SHA-256 came in SetupDone). */
  offered: number;
  /** Of the dedup pages, those sent as references to that content. */
  pages: number;
  /** Memory the offered table held on the destination while it was needed: a page and a hash per content. */
  tableBytes: number;
  /** Time the destination took to choose and snapshot it (part of the setup), ms. */
  buildMs: number;
}

/**
 * Extra: the guest was throttled so pre-copy would converge (--auto-converge, --dirty-limit), and
 * what it cost. Speeds are guest steps per second; the baseline is the rounds that ran
 * unthrottled (round 0 always does: the controller acts at round ends).
 */
export interface ThrottleReport {
  technique: 'auto-converge' | 'dirty-limit';
  /** The most the vCPU could be throttled, percent (max-cpu-throttle). */
  maxPercent: number;
  /** auto-converge: the schedule (cpu-throttle-initial, cpu-throttle-increment, throttle-trigger-threshold), percent. */
  initialPercent?: number;
  incrementPercent?: number;
  triggerThresholdPercent?: number;
  /** dirty-limit: the cap, bytes per second. */
  dirtyLimitBps?: number;
  /** The highest throttle a round ran at, percent (0: the guest was never throttled). */
  peakPercent: number;
  /** The first round that ran at peakPercent (null: never throttled). */
  peakRound: number | null;
  /** Pre-copy rounds that ran throttled. */
  throttledRounds: number;
  /** Guest steps/s over the rounds that ran unthrottled. */
  unthrottledStepsPerSec: number | null;
  /** Guest steps/s over the rounds that ran throttled (null: none did). */
  throttledStepsPerSec: number | null;
  /** throttledStepsPerSec ÷ unthrottledStepsPerSec: the guest's speed while throttled (1 = no cost). */
  speedWhileThrottled: number | null;
  /** Steps/s over every pre-copy round ÷ unthrottledStepsPerSec: the guest's speed during pre-copy. */
  speedDuringPrecopy: number | null;
  /** The guest's dirty rate over the throttled rounds (pages dirtied × page size ÷ time), bytes/s, and the highest one round measured. */
  throttledDirtyRateBps: number | null;
  maxThrottledRoundDirtyRateBps: number | null;
}

export interface PostcopyReport {
  /** Pages absent at the destination when it resumed. */
  absentAtSwitchover: number;
  /** Pages sent because the destination faulted on them, and pushed in the background. */
  pagesFetchedOnDemand: number;
  pagesPushed: number;
  /** vCPU faults on absent pages (also pages.faulted). */
  faults: number;
  /** From the vCPU blocking on an absent page to that page being installed. */
  faultLatencyMs: { p50: number; p99: number; max: number } | null;
  /** Extra: every fault's latency in power-of-two µs buckets (QEMU 10.1's postcopy-latency-dist). */
  faultLatencyHistogram?: LatencyHistogram;
  /** Total time the vCPU spent blocked on absent pages (QEMU: postcopy-blocktime). */
  vcpuBlockedMs: number;
  /**
   * Extra: the faults were served by the destination's fault thread (capability fault-thread: a
   * worker owning the fault channel), not its main thread; false where it fell back.
   */
  faultThread?: boolean;
  /**
   * Extra: the source answered the faults from its fault worker (a thread owning its end of the
   * fault channel) to the end; false where it answered them on its main thread, or fell back to it.
   */
  sourceFaultWorker?: boolean;
  /** Extra: pages already pushed, requested again and answered on the fault channel (not counted as fetched on demand). */
  pagesAnsweredAgain?: number;
  /** Guest steps per second on the source before the switch, and on the destination during post-copy. */
  stepsPerSecBefore: number;
  stepsPerSecDuring: number;
  /** Resume → every page present. */
  postcopyMs: number;
  /** How many times the link broke and was recovered. */
  recoveries: number;
}

/** Guest write latency, host side (request taken → completion posted), ms. */
export interface WriteLatency {
  /** Writes measured. */
  count: number;
  p50: number;
  p99: number;
}

/**
 * The VM's disk and how it migrated (issue 15). Blocks are 4 KiB. `digest` holds what each side
 * computed itself over the disk at the stop point (also in `verify`, as section `disk`).
 */
export interface StorageReport {
  mode: StorageMode;
  sizeBytes: number;
  /** Blocks ever written at the start (the rest are holes: never read, never sent). */
  allocatedBytes: number;
  /** Disk block bytes sent (payload; 0 for shared). */
  wireBytes: number;
  /** Blocks sent in bulk / pre-copy rounds (the first copy of each). */
  blocksCopied: number;
  /** Blocks sent again because the guest wrote them after they were sent. */
  blocksResent: number;
  /** Mirror: guest writes forwarded synchronously (blocks). */
  blocksMirrored: number;
  /** Post-copy: blocks fetched because the guest read them while absent. */
  blocksFetched: number;
  /** Post-copy: blocks pushed in the background. */
  blocksPushed: number;
  /** Pre-copy rounds of the disk (0 for shared and postcopy). */
  rounds: number;
  /** Guest write latency before the migration (the device's recent writes) and while it ran. */
  writeLatencyMs: { before: WriteLatency | null; during: WriteLatency | null };
  /** Why the disk could not converge, or how it did (e.g. "mirror: every write since round 0 synchronous"). */
  note?: string;
}

export interface NetworkReport {
  /** The longest gap between replies a client probing every `intervalMs` saw. */
  downtimeMs: number;
  lostReplies: number;
  /** Acknowledged writes that could not be read back afterwards: must be 0. */
  lostWrites: number;
  /** Extra: the VM's address (the same before and after), and what moved it. */
  address?: string;
  addressMode?: 'loopback' | 'macvlan';
  /**
   * Extra: the longest gap that overlaps the switchover (source pause → destination resume):
   * what moving the VM and its address cost a client. `downtimeMs` can be longer when the
   * migration slowed the service down elsewhere (e.g. a busy source during round 0).
   */
  switchoverGapMs?: number;
  /** Extra: requests sent, the probe's interval, and reply latency. */
  requests?: number;
  intervalMs?: number;
  latencyMs?: { p50: number; p99: number; max: number } | null;
}

/**
 * Each side's digests, each computed by that side: never one side's value copied into the
 * other's field. `sourceDigest`/`destDigest` are memory's (the RAM section); `sections` holds
 * every section's (ram, cpu, devices). null: that side computed none (the migration failed
 * before); `match` is null when nothing was compared.
 */
export interface Verification {
  sourceDigest: string | null;
  destDigest: string | null;
  match: boolean | null;
  /** Extra: per section. */
  sections?: Record<string, { source: string | null; dest: string | null; match: boolean }>;
}

/** The data plane's protection, as the source's end of the main connection saw it. */
export interface SecurityReport {
  /** The TLS version negotiated, e.g. "1.3". */
  tls: string;
  /** The cipher suite negotiated, e.g. "TLS_AES_256_GCM_SHA384". */
  cipher: string;
  /** The source's certificate name (this side's identity). */
  sourceName: string;
  /** The name on the destination's verified certificate. */
  destName: string;
  /** The source presented a destination-issued ticket (prepare-incoming). */
  ticket: boolean;
}

/** Extra: `--mode auto`'s decision — the model's inputs as measured, every prediction, the choice and why. */
export interface AutoReport {
  objective: Objective;
  /** The downtime ceiling (--max-downtime), ms, or null. */
  maxDowntimeMs: number | null;
  chosen: Technique;
  /** One sentence: the predicted figures that decided it. */
  why: string;
  /** When it was decided, ms after the migration started, and where. */
  decidedAtMs: number;
  /** setup: before round 0, with the link as the last migration to this destination measured it. */
  decidedIn: 'setup' | 'round 0' | 'end of round 0';
  inputs: ModelInputs;
  predictions: Prediction[];
}

/** Extra: the VM's dirty rate measured as the migration started (page sampling, as QEMU's calc-dirty-rate). */
export interface StartDirtyRateReport {
  /** null: not measured (`note` says why, e.g. the VM paused before the window ended). */
  measurement: DirtyRateMeasurement | null;
  /** The curve the prediction model fits to it (shared/src/predict/dirty-curve.ts). */
  curve: DirtyCurve | null;
  note?: string;
}

export interface MigrationReport {
  schema: typeof REPORT_SCHEMA;
  /** The migration's id (as `migrate` returned it, in the agents' logs and audit records). */
  migrationId: string;
  /**
   * The agents by name: the certificate names on a secure agent, else the agent ids of the
   * handshake. `dest` is null when no connection to the destination was ever made.
   */
  agents: { source: string; dest: string | null };
  mode: MigrationMode;
  outcome: MigrationOutcome;
  error: null | { code: string; message: string };
  vm: { name?: string; memoryBytes: number; pageSize: number; workload: string; init?: string; seed?: number };
  times: {
    /** When the migrate command started it, ISO 8601 (UTC), the source's clock. */
    startedAt: string;
    /** When it ended (the report was made), ISO 8601 (UTC), the source's clock. */
    endedAt: string;
    totalMs: number;
    /**
     * Source vCPU pause → destination vCPU resume (see docs: how it is measured). null when
     * the VM never resumed on the destination (`downtimeNote` says why).
     */
    downtimeMs: number | null;
    /** Extra: why downtimeMs is null (the VM never paused; it paused but never resumed there). */
    downtimeNote?: string;
    setupMs: number;
    /** Extra: pause → `Ready` at the source (stop-and-copy incl. verification). */
    stopCopyMs?: number;
    /** Extra: the RTT used to correct the downtime, measured on the data connection. */
    rttMs?: number;
    /**
     * Extra: when the source's vCPU stopped for the switchover, ms since the epoch (the source's
     * clock), so a client's own timeline can find the switchover in it.
     */
    pausedAt?: number;
    /**
     * Extra: a migration that paused the VM and then resumed it at the source (it failed or was
     * cancelled before Handoff — e.g. the switchover watchdog fired): how long the VM was paused
     * there, pause → resume, on the source's clock.
     */
    pausedOnSourceMs?: number;
  };
  bytes: { wire: number; pagePayload: number };
  pages: { total: number; sent: number; zero: number; resent: number; faulted: number };
  rounds: RoundReport[];
  verify: Verification;
  /** What a client of the VM's service saw (a probe ran alongside), or null. */
  network: null | NetworkReport;
  /** How the data connections were secured (mutual TLS), or null: plaintext, nobody authenticated. */
  security: null | SecurityReport;
  /** Extra: the switchover rule and the limits in force. */
  switchover?: {
    reason: SwitchoverReason;
    downtimeLimitMs: number;
    maxRounds: number;
    maxBandwidthBps: number | null;
    /** Extra: post-copy's background push cap (--max-postcopy-bandwidth), when one was given. */
    maxPostcopyBandwidthBps?: number;
    expectedDowntimeMs: number;
    /** Extra: the stop-and-copy watchdog's bound in force (--switchover-timeout). */
    switchoverTimeoutMs?: number;
  };
  /** Extra: the determinism oracle, when the caller ran one (demo, tests). */
  oracle?: {
    steps: number;
    migratedDigest: string;
    referenceDigest: string;
    match: boolean;
    /** A VM with a disk: the disk digests, migrated and reference (`match` covers them too). */
    disk?: { migratedDigest: string | null; referenceDigest: string };
  };
  /**
   * Extra: where the VM runs once the migration is over. `lost`: post-copy failed after the
   * point of no return — the running state was on the destination and part of the memory here.
   */
  vmRunsOn?: 'source' | 'destination' | 'paused-on-source' | 'lost';
  /** Extra: the VM's NIC — its address, which stays the same, and how this source moves it. */
  nic?: { address: string; mac: string; addressMode: 'loopback' | 'macvlan' };
  /** Extra (post-copy and hybrid): demand paging as the destination saw it. */
  postcopy?: PostcopyReport;
  /** Extra: the VM's disk and how it migrated (a VM with a disk). */
  storage?: StorageReport;
  /** Extra: the dirty rate measured at the start (every migration from issue 16 on). */
  dirtyRate?: StartDirtyRateReport;
  /** Extra: `--mode auto` — what it chose, from which predictions (`mode` is the technique chosen). */
  auto?: AutoReport;
  /** Extra: --auto-converge or --dirty-limit — how far the guest was throttled, and what it cost. */
  throttle?: ThrottleReport;
  /** Extra: page encodings (deltas, references, compression) — what each did, when any could run. */
  encodings?: EncodingsReport;
  /** Extra: where each side's cores went — CPU time per thread over the migration (Linux; issue 18). */
  threads?: ThreadsReport;
  /** Extra: the bulk channels — parallel ones (multifd, issue 18) or the main connection alone. */
  channels?: ChannelsReport;
  /** Extra: the destination's pre-fault of arriving memory — how long it took, and whether it was off the critical path. */
  prefault?: PrefaultReport;
  /**
   * Extra: the migration record (who moved what, both sides' digests and counts) with the
   * source's signature and the destination's countersignature — or why there is none
   * (security/record.ts; the same object both agents keep in their audit logs).
   */
  record?: SignedRecord;
}

/**
 * The downtime of a migration that resumed on the destination; ERR_VM_STATE (with the report's
 * own reason) for one that did not — for callers that measured a completed migration.
 */
export function downtimeOf(report: Pick<MigrationReport, 'times' | 'outcome'>): number {
  const { downtimeMs, downtimeNote } = report.times;
  if (downtimeMs === null) {
    throw new Error(`no downtime in a ${report.outcome} migration: ${downtimeNote ?? 'the VM never resumed there'}`);
  }
  return downtimeMs;
}

/** What one bulk channel carried: pages (raw and zero), page payload bytes, bytes on the wire. */
export interface ChannelFigures {
  pages: number;
  bytes: number;
  wireBytes: number;
}

/**
 * The bulk channels of a migration (--channels, issue 18). With parallel channels (multifd),
 * pre-copy rounds dealt raw and zero pages to them; the main connection carried the rest (pages a
 * page encoding carried, the stop-and-copy set, post-copy).
 */
export interface ChannelsReport {
  /** --channels as asked. */
  asked: number;
  /** Bulk channels used: the parallel ones, or 1 (the main connection alone). */
  count: number;
  /** Why fewer were used than asked, when so. */
  note?: string;
  /** Each parallel channel's figures, channel i's at i; with one channel, the main connection's. */
  perChannel: ChannelFigures[];
  /** With parallel channels: what the main connection carried besides. */
  main?: ChannelFigures;
}
