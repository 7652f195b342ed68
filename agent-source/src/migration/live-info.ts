/**
 * `query-migrate`'s live figures, read from the context the way the report reads them (one
 * MigrationStats, so the live view and the report can never disagree). `remaining` is every
 * section's pending bytes — round 0 not yet sent included — not only what was last harvested.
 */
import type { MigrationInfo } from '@livemig/shared/control';
import { liveBandwidthBps } from './bandwidth.ts';
import type { MigrationContext } from './context.ts';
import { pendingBytes } from './sections/index.ts';

export function liveInfo(ctx: MigrationContext): MigrationInfo {
  const s = ctx.stats;
  const vm = ctx.vm;
  const remaining = ctx.sections ? pendingBytes(ctx.sections) : vm.spec.memoryBytes;
  const sendingMs = s.elapsedMs - s.setupMs;
  return {
    migrationId: ctx.id,
    vm: ctx.hosted.name,
    mode: ctx.mode,
    status: ctx.machine.state,
    transferred: ctx.channels.wireBytes,
    remaining,
    total: vm.spec.memoryBytes,
    duplicate: s.zeroPages + s.skippedZeroPages,
    normal: s.rawPages,
    dirtyPagesRate: s.dirtyPagesRate,
    mbps: (liveBandwidthBps(s.lastRound, ctx.channels.wireBytes, s.setupMs > 0 ? sendingMs : 0) * 8) / 1e6,
    dirtySyncCount: s.harvests,
    expectedDowntime: s.expectedDowntimeMs,
    totalTime: s.elapsedMs,
    setupTime: s.setupMs,
    downtime: s.downtimeMs,
    passProgress: s.current.planned ? s.current.sent / s.current.planned : 0,
    pass: s.current.index,
  };
}
