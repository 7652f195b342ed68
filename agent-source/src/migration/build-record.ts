/**
 * The migration record of an outgoing migration, from its context (as build-report.ts builds
 * the report from the same figures): what the source saw, for the source to sign and the
 * destination to check and countersign (@livemig/shared/security record.ts). Times are this
 * side's clock; the resume time is the pause plus the downtime measured through the
 * Handoff/Resumed exchange, never the destination's clock.
 */
import type { MigrationError } from '@livemig/shared';
import type { MigrationReport } from '@livemig/shared/report';
import { RECORD_SCHEMA, ticketIdOf, vmSpecHash, type MigrationRecord } from '@livemig/shared/security';
import type { MigrationContext } from './context.ts';
import { setupVmOf } from './phases/setup.ts';

/** The page counts, as the report and the record both give them. */
export function pageCounts(ctx: MigrationContext): MigrationReport['pages'] {
  const s = ctx.stats;
  return {
    total: ctx.vm.memory.pageCount,
    sent: s.rawPages + s.zeroPages,
    zero: s.zeroPages + s.skippedZeroPages,
    resent: s.resentPages,
    faulted: ctx.postcopy?.faults ?? 0,
  };
}

export function buildRecord(
  ctx: MigrationContext,
  outcome: MigrationRecord['outcome'],
  error: MigrationError | undefined,
): MigrationRecord {
  const { stats } = ctx;
  const pausedAt = ctx.pausedAt === undefined ? null : Math.round(performance.timeOrigin + ctx.pausedAt);
  const downtimeMs = stats.downtimeMs;
  return {
    schema: RECORD_SCHEMA,
    migrationId: ctx.id,
    vm: { name: ctx.hosted.name, specHash: vmSpecHash(setupVmOf(ctx)) },
    mode: ctx.mode,
    outcome,
    error: error?.code ?? null,
    digests: { source: { ...ctx.verify.source }, dest: { ...ctx.verify.dest } },
    bytes: { wire: ctx.channels.wireBytes, pagePayload: stats.pagePayloadBytes },
    pages: pageCounts(ctx),
    times: {
      startedAt: Math.round(performance.timeOrigin + stats.startedAt),
      pausedAt,
      resumedAt: pausedAt === null || downtimeMs === null ? null : Math.round(pausedAt + downtimeMs),
      endedAt: Date.now(),
    },
    ticketId: ticketIdOf(ctx.ticket),
    source: ctx.signer ? { name: ctx.signer.name, fingerprint: ctx.signer.fingerprint } : null,
    dest: ctx.destParty,
    operator: ctx.operator,
  };
}
