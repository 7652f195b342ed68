/**
 * The report of an outgoing migration, from its context: one function, so the live view
 * (`query-migrate`, live-info.ts) and the final report read the same figures the same way.
 * Unknowns are null with a reason, never a 0 standing in: a VM that never paused has no
 * downtime; a migration that ended before both sides had digests has nothing verified.
 */
import type { MigrationError } from '@livemig/shared';
import {
  REPORT_SCHEMA,
  threadsBetween,
  type EncodingsReport,
  type MigrationReport,
  type Verification,
} from '@livemig/shared/report';
import { processThreads } from '@livemig/shared/vm';
import { fitDirtyCurve } from '@livemig/shared/predict';
import { pageCounts } from './build-record.ts';
import type { MigrationContext, SideDigests } from './context.ts';
import { throttleReport } from './throttle.ts';
import { channelsReport } from './multifd.ts';

export function buildReport(
  ctx: MigrationContext,
  outcome: MigrationReport['outcome'],
  error: MigrationError | undefined,
): MigrationReport {
  const { stats: s, params, vm } = ctx;
  const downtimeMs = s.downtimeMs;
  return {
    schema: REPORT_SCHEMA,
    migrationId: ctx.id,
    agents: { source: ctx.agentName, dest: ctx.destAgentName },
    mode: ctx.mode,
    outcome,
    error: error ? error.toJSON() : null,
    vm: {
      name: ctx.hosted.name,
      memoryBytes: vm.spec.memoryBytes,
      pageSize: vm.memory.pageSize,
      workload: vm.spec.workload,
      init: vm.spec.init,
      seed: vm.spec.seed,
    },
    times: {
      startedAt: new Date(performance.timeOrigin + s.startedAt).toISOString(),
      endedAt: new Date().toISOString(),
      totalMs: s.elapsedMs,
      downtimeMs,
      ...(downtimeMs === null ? { downtimeNote: downtimeNote(ctx) } : {}),
      setupMs: s.setupMs,
      ...(ctx.rttMs === undefined ? {} : { rttMs: ctx.rttMs }),
      ...(ctx.pausedAt === undefined ? {} : { pausedAt: performance.timeOrigin + ctx.pausedAt }),
      ...(ctx.pausedAt === undefined || ctx.resumedHereAt === undefined
        ? {}
        : { pausedOnSourceMs: ctx.resumedHereAt - ctx.pausedAt }),
    },
    bytes: { wire: ctx.channels.wireBytes, pagePayload: s.pagePayloadBytes },
    pages: pageCounts(ctx),
    rounds: s.rounds,
    verify: verification(ctx.verify),
    network: null,
    security: ctx.security,
    ...(ctx.switchover
      ? {
          switchover: {
            reason: ctx.switchover.reason,
            expectedDowntimeMs: ctx.switchover.expectedDowntimeMs,
            downtimeLimitMs: params.downtimeLimitMs,
            maxRounds: params.maxRounds,
            maxBandwidthBps: params.maxBandwidthBps,
            ...(params.maxPostcopyBandwidthBps === null
              ? {}
              : { maxPostcopyBandwidthBps: params.maxPostcopyBandwidthBps }),
            switchoverTimeoutMs: ctx.switchoverTimeoutMs,
          },
        }
      : {}),
    ...(ctx.postcopy ? { postcopy: ctx.postcopy } : {}),
    ...dirtyRateReport(ctx),
    ...(ctx.auto ? { auto: ctx.auto } : {}),
    ...(params.throttle ? { throttle: throttleReport(params.throttle, s.rounds, vm.memory.pageSize) } : {}),
    ...encodingsReport(ctx),
    ...(ctx.sections ? { channels: channelsReport(ctx) } : {}),
    // Where the cores went: this side's threads since the start (live: so far), the destination's as it said.
    threads: { source: threadsBetween(ctx.threadsAtStart, processThreads.snapshot()), dest: ctx.destThreads ?? null },
    ...(ctx.destPrefault ? { prefault: ctx.destPrefault } : {}),
    ...(ctx.sections?.disk ? { storage: ctx.sections.disk.report(ctx.switchover?.reason) } : {}),
    ...nicReport(ctx),
    vmRunsOn: outcome === 'completed' ? 'destination' : ctx.vmRunsOnIfFailed,
    ...(ctx.record ? { record: ctx.record } : {}),
  };
}

/** The dirty rate measured as the migration started, with the curve fitted to it, or why there is none. */
function dirtyRateReport(ctx: MigrationContext): Pick<MigrationReport, 'dirtyRate'> {
  const start = ctx.startDirtyRate;
  if (!start) return {};
  const m = start.measurement;
  return {
    dirtyRate: {
      measurement: m,
      curve: m ? fitDirtyCurve(m) : null,
      ...(start.note === undefined ? {} : { note: start.note }),
    },
  };
}

function downtimeNote(ctx: MigrationContext): string {
  if (ctx.pausedAt === undefined) return 'the VM never paused: it ran on at the source throughout';
  return ctx.vmRunsOnIfFailed === 'source'
    ? 'the VM paused, then resumed at the source: it never ran on the destination'
    : 'the destination never confirmed that the VM resumed there';
}

/** Each side's digests as that side computed them; null where a side computed none. */
export function verification(digests: SideDigests): Verification {
  const names = [...new Set([...Object.keys(digests.source), ...Object.keys(digests.dest)])];
  const sections: NonNullable<Verification['sections']> = {};
  for (const name of names) {
    const source = digests.source[name] ?? null;
    const dest = digests.dest[name] ?? null;
    sections[name] = { source, dest, match: source !== null && source === dest };
  }
  const all = Object.values(sections);
  const compared = all.some((section) => section.source !== null && section.dest !== null);
  return {
    sourceDigest: digests.source.ram ?? null,
    destDigest: digests.dest.ram ?? null,
    match: compared ? all.every((section) => section.match) : null,
    ...(names.length ? { sections } : {}),
  };
}

function nicReport(ctx: MigrationContext): Pick<MigrationReport, 'nic'> {
  const net = ctx.hosted.net;
  if (!net) return {};
  const { ip, port, mac } = net.address;
  return { nic: { address: `${ip}:${port}`, mac, addressMode: net.mode } };
}

/** The page encodings' figures, when any could run (negotiated and not all off). */
function encodingsReport(ctx: MigrationContext): { encodings?: EncodingsReport } {
  const encodings = ctx.sections?.ram.encodingsReport();
  return encodings ? { encodings } : {};
}
