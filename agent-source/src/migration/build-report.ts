/**
 * The report of an outgoing migration, from what it measured: one pure function, so the live
 * view (`query-migrate`) and the final report read the same figures (stats.ts) the same way.
 */
import type { MigrationError } from '@livemig/shared';
import {
  REPORT_SCHEMA,
  type MigrationReport,
  type PostcopyReport,
  type SwitchoverReason,
} from '@livemig/shared/report';
import type { VmSpec } from '@livemig/shared/vm';
import type { ResolvedMigrateParams } from './params.ts';
import type { MigrationStats } from './stats.ts';

export interface ReportInput {
  vmName: string;
  spec: VmSpec;
  pageSize: number;
  pageCount: number;
  params: ResolvedMigrateParams;
  outcome: MigrationReport['outcome'];
  error: MigrationError | undefined;
  stats: MigrationStats;
  wireBytes: number;
  rttMs: number | undefined;
  verify: MigrationReport['verify'];
  switchover: { reason: SwitchoverReason; expectedDowntimeMs: number } | undefined;
  postcopy: PostcopyReport | undefined;
  vmRunsOn: NonNullable<MigrationReport['vmRunsOn']>;
  /** When the vCPU stopped for the switchover, ms since the epoch (undefined: it never did). */
  pausedAtEpochMs: number | undefined;
  nic: MigrationReport['nic'];
}

export function buildReport(input: ReportInput): MigrationReport {
  const { stats: s, params } = input;
  return {
    schema: REPORT_SCHEMA,
    mode: params.mode,
    outcome: input.outcome,
    error: input.error ? input.error.toJSON() : null,
    vm: {
      name: input.vmName,
      memoryBytes: input.spec.memoryBytes,
      pageSize: input.pageSize,
      workload: input.spec.workload,
      init: input.spec.init,
      seed: input.spec.seed,
    },
    times: {
      totalMs: s.elapsedMs,
      downtimeMs: s.downtimeMs ?? 0,
      setupMs: s.setupMs,
      ...(input.rttMs === undefined ? {} : { rttMs: input.rttMs }),
      ...(input.pausedAtEpochMs === undefined ? {} : { pausedAt: input.pausedAtEpochMs }),
    },
    bytes: { wire: input.wireBytes, pagePayload: s.pagePayloadBytes },
    pages: {
      total: input.pageCount,
      sent: s.rawPages + s.zeroPages,
      zero: s.zeroPages + s.skippedZeroPages,
      resent: s.resentPages,
      faulted: input.postcopy?.faults ?? 0,
    },
    rounds: s.rounds,
    verify: input.verify,
    network: null,
    ...(input.switchover
      ? {
          switchover: {
            reason: input.switchover.reason,
            expectedDowntimeMs: input.switchover.expectedDowntimeMs,
            downtimeLimitMs: params.downtimeLimitMs,
            maxRounds: params.maxRounds,
            maxBandwidthBps: params.maxBandwidthBps,
          },
        }
      : {}),
    ...(input.postcopy ? { postcopy: input.postcopy } : {}),
    ...(input.nic ? { nic: input.nic } : {}),
    vmRunsOn: input.vmRunsOn,
  };
}
