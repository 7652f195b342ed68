/**
 * The control channel, modelled on QMP: JSON text frames over a WebSocket.
 *
 *   client → agent   { id, command, args }
 *   agent → client   { id, return } | { id, error: { code, message } }
 *   agent → client   { event, data, timestamp }           (unsolicited, to every client)
 *
 * Commands (args → return):
 *   query-vms      {}                                  → { vms: VmInfo[] }
 *   create-vm      { name, memory, init, workload, seed, nic? } → VmInfo
 *   stop / cont    { vm } / { vm, force? }             → VmInfo
 *   migrate        { vm, to, mode?, params? }          → { migrationId }     (returns at once; follow events)
 *   query-migrate  { migrationId? }                    → MigrationInfo | null
 *   migrate-cancel { migrationId? }                    → { cancelled: boolean } (error past the point of no return)
 *   migrate-start-postcopy { migrationId? }            → { switching: true }   (hybrid: switch now, mid-round)
 *   migrate-resume { migrationId? }                    → { resuming: boolean } (post-copy: reconnect now; false: already reconnected)
 *   query-report   { migrationId }                     → MigrationReport | null
 *   digest         { vm }                              → { digest, steps, status } (pauses nothing; racy while running)
 *   destroy-vm     { vm }                              → { destroyed: true }
 * Events: MIGRATION { migrationId, status }, MIGRATION_PASS { migrationId, pass },
 *         MIGRATION_REPORT { migrationId, report }, VM_STATE { name, state }.
 */
import type { VmInfo, VmState } from '../host/vm-state.ts';
import type { MigrationReport } from '../report/types.ts';

// The hosting layer defines what a VM's state is (host/vm-state.ts); the control channel only
// describes it. Re-exported so `@livemig/shared/control` keeps offering both.
export type { VmInfo, VmState } from '../host/vm-state.ts';

/** Live figures of a migration, named as QMP's `query-migrate` names them. */
export interface MigrationInfo {
  migrationId: string;
  vm: string;
  mode: 'precopy' | 'postcopy' | 'hybrid';
  status: string;
  /** Bytes put on the wire so far. */
  transferred: number;
  /** Bytes still to send (dirty pages × page size, as of the last harvest). */
  remaining: number;
  /** Guest memory size. */
  total: number;
  /** Zero pages sent as zero records (QMP: duplicate). */
  duplicate: number;
  /** Pages sent with their bytes (QMP: normal). */
  normal: number;
  /** Pages dirtied per second, measured over the last round. */
  dirtyPagesRate: number;
  /** Megabits per second over the last round. */
  mbps: number;
  /** How many dirty-log harvests so far (QMP: dirty-sync-count). */
  dirtySyncCount: number;
  /** Expected downtime in ms if it switched over now. */
  expectedDowntime: number;
  /** Milliseconds since the migration started. */
  totalTime: number;
  setupTime: number;
  /** Set once the VM has resumed on the destination. */
  downtime: number | null;
  /** Share of guest memory sent at least once in this pass (0..1). */
  passProgress: number;
  pass: number;
}

export interface MigrateParams {
  /** @default 300 (ms) */
  downtimeLimitMs?: number;
  /** @default 30 */
  maxRounds?: number;
  /** Bytes per second; null or absent = unlimited. */
  maxBandwidthBps?: number | null;
  /** Hybrid: switch to post-copy after this many pre-copy rounds at the latest. */
  postcopyAfterRounds?: number | null;
  /** Post-copy: keep reconnecting for this long after the link broke. @default 60000 (ms) */
  recoveryTimeoutMs?: number;
  /**
   * Stop-and-copy watchdog: resume the VM here and fail (ERR_SWITCHOVER_TIMEOUT) when the
   * destination has not said Ready this long after the pause. @default max(10 × downtimeLimitMs, 2000) (ms)
   */
  switchoverTimeoutMs?: number;
}

export interface ControlCommands {
  'query-vms': { args: Record<string, never>; result: { vms: VmInfo[] } };
  'create-vm': {
    args: { name: string; memory: string | number; init?: string; workload?: string; seed?: number; nic?: string };
    result: VmInfo;
  };
  stop: { args: { vm: string }; result: VmInfo };
  cont: { args: { vm: string; force?: boolean }; result: VmInfo };
  migrate: {
    args: {
      vm: string;
      to: string;
      mode?: 'precopy' | 'postcopy' | 'hybrid';
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
  'query-migrate': { args: { migrationId?: string }; result: MigrationInfo | null };
  'migrate-cancel': { args: { migrationId?: string }; result: { cancelled: boolean } };
  'migrate-start-postcopy': { args: { migrationId?: string }; result: { switching: true } };
  'migrate-resume': { args: { migrationId?: string }; result: { resuming: boolean } };
  'query-report': { args: { migrationId: string }; result: MigrationReport | null };
  digest: { args: { vm: string }; result: { digest: string; steps: number; state: VmState } };
  'destroy-vm': { args: { vm: string }; result: { destroyed: true } };
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
