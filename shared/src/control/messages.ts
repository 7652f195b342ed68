/**
 * The control channel, modelled on QMP: JSON text frames over a WebSocket.
 *
 *   client → agent   { id, command, args }
 *   agent → client   { id, return } | { id, error: { code, message } }
 *   agent → client   { event, data, timestamp }           (unsolicited, to every client)
 *
 * Commands (args → return):
 *   query-vms      {}                                  → { vms: VmInfo[] }
 *   create-vm      { name, memory, init, workload, seed, nic?, disk? } → VmInfo
 *   stop / cont    { vm } / { vm, force? }             → VmInfo
 *   migrate        { vm, to, mode?, params? }          → { migrationId }     (returns at once; follow events)
 *   query-migrate  { migrationId? }                    → MigrationInfo | IncomingInfo | null
 *                  (that migration, outgoing or incoming; without an id the newest in progress,
 *                   else the newest that ended: see `direction`)
 *   migrate-cancel { migrationId? }                    → { cancelled: boolean } (error past the point of no return)
 *   migrate-start-postcopy { migrationId? }            → { switching: true }   (hybrid: switch now, mid-round)
 *   migrate-resume { migrationId? }                    → { resuming: boolean } (post-copy: reconnect now; false: already reconnected)
 *   query-report   { migrationId }                     → MigrationReport | null
 *   digest         { vm }                              → { digest, steps, status, disk? } (pauses nothing; racy while running; disk only when paused)
 *   query-dirty-rate { vm, calcTimeMs?, samplePagesPerGiB? } → DirtyRateInfo
 *                  (QMP calc-dirty-rate + query-dirty-rate, page-sampling: replies after the window;
 *                   reads memory only, so it may run while the VM migrates out)
 *   destroy-vm     { vm }                              → { destroyed: true }
 * Events: MIGRATION { migrationId, status }, MIGRATION_PASS { migrationId, pass },
 *         MIGRATION_REPORT { migrationId, report }, VM_STATE { name, state }.
 */
import type { Objective } from '../predict/types.ts';
import type { VmInfo, VmState } from '../host/vm-state.ts';
import type { MigrationReport } from '../report/types.ts';
import type { StorageMode } from '../protocol/message-types.ts';

// The hosting layer defines what a VM's state is (host/vm-state.ts); the control channel only
// describes it. Re-exported so `@livemig/shared/control` keeps offering both.
export type { VmInfo, VmState } from '../host/vm-state.ts';

/**
 * Live figures of an outgoing migration, named as QMP's `query-migrate` names them (libvirt's
 * `virsh domjobinfo` names in parentheses where they differ). A figure nobody knows yet is
 * null — never 0, which would be a claim ("no downtime", "nothing dirty").
 */
export interface MigrationInfo {
  /** This side sends the VM (an agent that receives one answers with IncomingInfo). */
  direction: 'outgoing';
  migrationId: string;
  vm: string;
  mode: 'precopy' | 'postcopy' | 'hybrid';
  status: string;
  /** When it started, ms since the epoch on the agent's clock. */
  startedAt: number;
  /** Bytes put on the wire so far, on every connection of the migration. */
  transferred: number;
  /**
   * Bytes still to send (libvirt: memory remaining), in page bytes (pages × page size, a zero
   * page counted whole) plus the CPU and device state not sent yet:
   * - before the first harvest (connecting): guest memory size, an upper bound;
   * - pre-copy: the pages of the round in progress not sent yet, plus the pages known dirty —
   *   found by the last harvest of the dirty log and not sent since (a page in both counts
   *   once). Pages the guest dirtied since that harvest are not known until the next one, so
   *   while the guest writes this is a lower bound of what the last round will carry;
   * - stop-and-copy: what the final round has not sent yet;
   * - post-copy: the pages the destination lacked at the switchover not sent yet;
   * - 0 once everything went.
   */
  remaining: number;
  /** Guest memory size. */
  total: number;
  /** Zero pages sent as zero records (QMP: duplicate). */
  duplicate: number;
  /** Pages sent with their bytes (QMP: normal). */
  normal: number;
  /** Pages dirtied per second over the last pre-copy round; null until a round has ended. */
  dirtyPagesRate: number | null;
  /**
   * Megabits per second on the wire: over the round in progress once it has moved 1 MiB over
   * 5 ms (less is timer and socket-buffer noise), else over the last round that did (post-copy:
   * since the switchover); null until there is such a measurement.
   */
  mbps: number | null;
  /** How many dirty-log harvests so far (QMP: dirty-sync-count). */
  dirtySyncCount: number;
  /**
   * Expected downtime in ms if it switched over now: the switchover rule's estimate at the end of
   * the last round; null before a round ended.
   */
  expectedDowntime: number | null;
  /** Milliseconds since the migration started (libvirt: time elapsed); frozen at the end. */
  totalTime: number;
  setupTime: number;
  /** Set once the VM has resumed on the destination. */
  downtime: number | null;
  /**
   * The ETA in ms (libvirt: time remaining): `remaining` ÷ the rate memory went out at — pages
   * sent per second in the round in progress once it sent 1 MiB over 5 ms, else in the last
   * round that did; post-copy: absent pages ÷ the pages per second pushed and fetched since the
   * switchover. Pre-copy does not count what the guest dirties meanwhile (later rounds), so with
   * a busy guest it is a lower bound. Null while unknown: no measurement yet, post-copy paused
   * on a broken link, failed or cancelled; 0 once completed.
   */
  timeRemaining: number | null;
  /**
   * The throttle the VM's vCPU is under now (QMP: cpu-throttle-percentage), percent of its time
   * taken away: --auto-converge or --dirty-limit during pre-copy; 0 when none, and once the
   * migration paused or ended (the throttle is lifted then).
   */
  cpuThrottlePercentage: number;
  /** Share of this pass's pages sent so far (0..1): pre-copy rounds and stop-and-copy. */
  passProgress: number;
  pass: number;
  /** Post-copy, from the switchover on (the VM runs on the destination); null before and in pre-copy. */
  postcopy: {
    /** Guest pages in all. */
    pages: number;
    /**
     * Pages the destination has, or that are on the wire to it: every page but the absent ones
     * not sent yet (this side cannot see a page land; the destination's query-migrate can).
     */
    present: number;
    /** Pages the destination lacked at the switchover. */
    absentAtSwitchover: number;
    /** Absent pages sent because the destination faulted on them (faults served). */
    fetchedOnDemand: number;
    /** Absent pages sent by the background push. */
    pushed: number;
  } | null;
}

/**
 * Live figures of an incoming migration (the destination's `query-migrate`): what arrived so
 * far, counted on every data connection of the migration. The one that ended last keeps its
 * final figures.
 */
export interface IncomingInfo {
  /** This side receives the VM. */
  direction: 'incoming';
  migrationId: string;
  vm: string;
  mode: 'precopy' | 'postcopy' | 'hybrid';
  /** none, setup, receiving, ready, running, postcopy, postcopy-paused, completed, failed. */
  status: string;
  /** When its Setup arrived, ms since the epoch on the agent's clock. */
  startedAt: number;
  /** Milliseconds since its Setup arrived; frozen at the end. */
  totalTime: number;
  /** Pages received (with their bytes or as zero records); a page sent again in a later round counts again. */
  pagesReceived: number;
  /** Page bytes received: pages that came with their bytes × page size (zero records carry none). */
  bytesReceived: number;
  /** Guest memory size. */
  total: number;
  /** Post-copy, from the source's PostcopyStart on (the VM runs here with pages absent); null before and in pre-copy. */
  postcopy: {
    /** Guest pages in all. */
    pages: number;
    /** Pages installed here (present before the switchover, or arrived since). */
    present: number;
    /** Times the vCPU touched an absent page and blocked on it. */
    faults: number;
    /** Of those, faults whose page arrived and woke the vCPU. */
    faultsServed: number;
  } | null;
}

/**
 * A VM's dirty rate measured by page sampling (`query-dirty-rate`; QMP `calc-dirty-rate` then
 * `query-dirty-rate`, mode page-sampling): a sample of pages hashed, hashed again after the
 * window, the fraction that changed scaled to all of memory. Distinct pages: a page written twice
 * in the window counts once, so it is a lower bound of the write traffic (shared/src/vm/dirty-rate.ts).
 */
export interface DirtyRateInfo {
  vm: string;
  /** Distinct bytes dirtied per second, MB/s (10^6 bytes; QEMU's dirty-rate is MiB/s). */
  dirtyRateMBps: number;
  /** The standard error of dirtyRateMBps from sampling (0 when every page was sampled). */
  standardErrorMBps: number;
  /** Pages hashed, twice each. */
  pagesSampled: number;
  /** Of those, pages whose bytes changed in the window. */
  pagesChanged: number;
  /** The window measured between the two hash passes, ms. */
  windowMs: number;
  /** When the first hash pass began, ms since the epoch on the agent's clock. */
  startedAt: number;
  /** Guest memory size, bytes. */
  memoryBytes: number;
  /** With checkpoints: the curve of pages changed against window length, shortest first. */
  curve?: { windowMs: number; pagesChanged: number }[];
  /** With checkpoints: sampled pages that were all zero. */
  zeroPagesSampled?: number;
  method: 'page-sampling';
}

export interface MigrateParams {
  /** @default 300 (ms) */
  downtimeLimitMs?: number;
  /** @default 30 */
  maxRounds?: number;
  /** Bytes per second; null or absent = unlimited. */
  maxBandwidthBps?: number | null;
  /** The post-copy background push's cap, bytes per second (QEMU's max-postcopy-bandwidth); null or absent = max-bandwidth alone. */
  maxPostcopyBandwidthBps?: number | null;
  /** Hybrid: switch to post-copy after this many pre-copy rounds at the latest. */
  postcopyAfterRounds?: number | null;
  /** Post-copy: keep reconnecting for this long after the link broke. @default 60000 (ms) */
  recoveryTimeoutMs?: number;
  /**
   * Stop-and-copy watchdog: resume the VM here and fail (ERR_SWITCHOVER_TIMEOUT) when the
   * destination has not said Ready this long after the pause. @default max(10 × downtimeLimitMs, 2000) (ms)
   */
  switchoverTimeoutMs?: number;
  /** How a VM's disk migrates (a VM without a disk ignores it). @default 'copy' */
  storage?: StorageMode;
  /** `mode: 'auto'`: what the choice optimises (shared/src/predict/choose.ts). @default 'downtime' */
  objective?: Objective;
  /** `mode: 'auto'`: only techniques predicted to keep the downtime under this (ms) compete. */
  maxDowntimeMs?: number;
  /**
   * QEMU's auto-converge: when the guest dirties memory faster than pre-copy sends it, throttle
   * its vCPU — cpuThrottleInitial, then +cpuThrottleIncrement per round, up to maxCpuThrottle.
   * The throttle is lifted when the VM stops here (switchover) or the migration ends. @default false
   */
  autoConverge?: boolean;
  /** auto-converge: the first throttle, percent of the vCPU's time taken away (1..99). @default 20 */
  cpuThrottleInitial?: number;
  /** auto-converge: added per round that still outruns the link, percent (1..99). @default 10 */
  cpuThrottleIncrement?: number;
  /** auto-converge and dirty-limit: the most the vCPU is throttled, percent (1..99). @default 99 */
  maxCpuThrottle?: number;
  /**
   * auto-converge: a round outruns the link when the bytes the guest dirtied during it exceed
   * this percentage of the bytes sent during it (1..100). @default 50
   */
  throttleTriggerThreshold?: number;
  /**
   * QEMU's dirty-limit: cap the guest's dirty rate at this many bytes per second (distinct pages
   * dirtied during a round × page size ÷ its duration) by throttling its vCPU, re-derived every
   * round. null or absent: no cap. Not with autoConverge.
   */
  dirtyLimitBps?: number | null;
  /** XBZRLE deltas of re-sent pages (QEMU's xbzrle capability). @default 'off' */
  xbzrle?: 'auto' | 'on' | 'off';
  /** The source's cache of sent pages for deltas, bytes (QEMU's xbzrle-cache-size). @default 64 MiB */
  xbzrleCacheBytes?: number;
  /** References to pages the destination already holds with the same content. @default 'off' */
  dedup?: 'auto' | 'on' | 'off';
  /** Page compression: a codec, off, or chosen per batch from measurements. @default 'auto' */
  compress?: 'auto' | 'off' | 'lz4' | 'brotli';
  /** Worker threads compressing. @default 1 */
  compressThreads?: number;
  /**
   * Bulk channels (1..8): above 1, pre-copy pages also travel over that many parallel
   * connections, each with a worker thread on both ends (multifd). @default the agent's DEFAULT_CHANNELS
   */
  channels?: number;
}

export interface ControlCommands {
  'query-vms': { args: Record<string, never>; result: { vms: VmInfo[] } };
  'create-vm': {
    args: {
      name: string;
      memory: string | number;
      init?: string;
      workload?: string;
      seed?: number;
      nic?: string;
      /** Disk size ("64MiB" or bytes); absent = no disk. */
      disk?: string | number;
    };
    result: VmInfo;
  };
  stop: { args: { vm: string }; result: VmInfo };
  cont: { args: { vm: string; force?: boolean }; result: VmInfo };
  migrate: {
    args: {
      vm: string;
      to: string;
      /** auto: the technique the prediction model picks for params.objective, decided in round 0. */
      mode?: 'precopy' | 'postcopy' | 'hybrid' | 'auto';
      params?: MigrateParams;
      /** The destination's single-use ticket (its `prepare-incoming`). */
      ticket?: string;
      /** The name the destination's certificate must carry (secure agents). */
      destName?: string;
    };
    result: { migrationId: string };
  };
  /** On the destination: a single-use ticket for VM `vm` from the source whose certificate is named `from`. */
  'prepare-incoming': {
    args: { vm: string; from: string; ttlMs?: number };
    result: { ticket: string; vm: string; from: string; expiresAt: number };
  };
  /**
   * An outgoing migration (MigrationInfo) or an incoming one (IncomingInfo), told apart by
   * `direction`: the one with this id; without an id the newest in progress — outgoing first
   * when this agent sends one VM and receives another — else the newest that ended; null when
   * there was none.
   */
  'query-migrate': { args: { migrationId?: string }; result: MigrationInfo | IncomingInfo | null };
  'migrate-cancel': { args: { migrationId?: string }; result: { cancelled: boolean } };
  'migrate-start-postcopy': { args: { migrationId?: string }; result: { switching: true } };
  'migrate-resume': { args: { migrationId?: string }; result: { resuming: boolean } };
  'query-report': { args: { migrationId: string }; result: MigrationReport | null };
  /** `disk`: the disk digest, for a paused VM with a disk. */
  digest: { args: { vm: string }; result: { digest: string; steps: number; state: VmState; disk?: string } };
  'destroy-vm': { args: { vm: string }; result: { destroyed: true } };
  /**
   * Measure `vm`'s dirty rate over `calcTimeMs` (100..60000, default 1000) from
   * `samplePagesPerGiB` sampled pages per GiB (128..16384, default 512; at least 256 pages, at most
   * all); answers once the window is over. ERR_INVALID_ARGUMENT outside those bounds, ERR_NOT_FOUND
   * for an unknown VM, ERR_BUSY while another measurement of the same VM runs.
   */
  'query-dirty-rate': {
    /** checkpoints (0..6, default 0): also the curve at 1/2, 1/4, … of the window (DirtyRateMeasurement.curve). */
    args: { vm: string; calcTimeMs?: number; samplePagesPerGiB?: number; checkpoints?: number };
    result: DirtyRateInfo;
  };
}

export type CommandName = keyof ControlCommands;
export type CommandArgs<C extends CommandName> = ControlCommands[C]['args'];
export type CommandResult<C extends CommandName> = ControlCommands[C]['result'];

export interface ControlEvents {
  MIGRATION: { migrationId: string; status: string; vm: string };
  MIGRATION_PASS: { migrationId: string; pass: number };
  MIGRATION_REPORT: { migrationId: string; report: MigrationReport };
  VM_STATE: { name: string; state: VmState };
}

export type EventName = keyof ControlEvents;

/** Every event name, for clients that follow them all (`livemig events`); the type keeps it complete. */
export const EVENT_NAMES = Object.keys({
  MIGRATION: true,
  MIGRATION_PASS: true,
  MIGRATION_REPORT: true,
  VM_STATE: true,
} satisfies Record<EventName, true>) as EventName[];

export interface ControlRequest {
  id: number;
  command: string;
  args?: unknown;
}

export type ControlResponse =
  { id: number; return: unknown } | { id: number; error: { code: string; message: string } };

export interface ControlEvent {
  event: string;
  data: unknown;
  /** Milliseconds since the epoch on the agent's clock. */
  timestamp: number;
}
