/**
 * `--mode auto`: choose the technique in round 0, from measurements, with the prediction model
 * (shared/src/predict). The migration starts as hybrid, so every choice stays possible (the
 * fault channel is asked for only once post-copy or hybrid is chosen: fault-on-demand.ts), and
 * decides once it knows enough:
 *
 *   - with a link history (an earlier migration to this destination measured the link), from
 *     that link and the first SETUP_DECISION_POINTS checkpoints (125 ms) of the dirty-rate
 *     measurement taken at start: before round 0 for `--objective downtime`, which waits for
 *     them (autoDecideAtSetup), in round 0 for the others, which do not;
 *   - otherwise mid-round 0, as soon as the dirty-rate measurement taken at start is in and the round
 *     has moved at least DECIDE_AFTER_BYTES (the bandwidth is then a measurement of this link
 *     and this engine, not a guess);
 *   - at the end of round 0 at the latest, from what round 0 itself measured: its bandwidth,
 *     and the pages dirtied during it (all of them counted, no sampling) as a point on the curve.
 *
 * Then: post-copy → switch now (as migrate-start-postcopy does, mid-round); hybrid → carry on
 * (rounds, then post-copy if the rule gives up); pre-copy → carry on as pre-copy (a rule that
 * gives up stops and copies). The report keeps the inputs, every prediction and the reason.
 */
import { MB, type DirtyRateMeasurement } from '@livemig/shared/vm';
import {
  choose,
  DEFAULT_OVERHEADS,
  fitDirtyCurve,
  predictAll,
  type DirtyCurve,
  type ModelInputs,
} from '@livemig/shared/predict';
import type { AutoReport } from '@livemig/shared/report';
import type { MigrationContext } from './context.ts';
import { requestFaultChannel } from './fault-on-demand.ts';

/**
 * Without a measured post-copy to this destination: what the destination's vCPU start adds to a
 * post-copy's setup (measured here: 300-700 ms, a worker thread loading its modules).
 */
export const DEFAULT_VCPU_START_MS = 400;

/** Checkpoints of the measurement at start a decision from the link history needs (62 and 125 ms). */
export const SETUP_DECISION_POINTS = 2;

/** Bytes round 0 must have moved before its rate counts as the link's (and ≥ 20 ms of sending). */
export const DECIDE_AFTER_BYTES = 8 << 20;
const DECIDE_AFTER_MS = 20;

/** The curve from the measurement at start, with round 0's own count as one more point when given. */
export function curveFrom(
  measurement: DirtyRateMeasurement | null,
  round0: { ms: number; dirtyPages: number; pageCount: number } | undefined,
  memoryBytes: number,
): DirtyCurve {
  if (!measurement && !round0) return { rateBps: 0, wssBytes: null };
  if (!measurement) {
    return fitDirtyCurve({
      dirtyRateMBps: 0,
      standardErrorMBps: 0,
      pagesSampled: round0!.pageCount,
      pagesChanged: round0!.dirtyPages,
      windowMs: round0!.ms,
      startedAt: 0,
      memoryBytes,
    });
  }
  if (!round0) return fitDirtyCurve(measurement);
  // Round 0's count, scaled to the measurement's sample size, joins its curve in window order.
  const point = {
    windowMs: round0.ms,
    pagesChanged: (round0.dirtyPages / round0.pageCount) * measurement.pagesSampled,
  };
  const measured = measurement.curve ?? [{ windowMs: measurement.windowMs, pagesChanged: measurement.pagesChanged }];
  const curve = [...measured, point].sort((a, b) => a.windowMs - b.windowMs);
  return fitDirtyCurve({ ...measurement, curve });
}

/**
 * Before round 0, for `--objective downtime` when an earlier migration to this destination
 * measured the link (the agent's link history): wait for the first checkpoints of the
 * measurement at start (the curve's first 125 ms) and decide now — the only point where a pure
 * post-copy is still possible: a switch in round 0 must flush what round 0 has queued before
 * the pause (3–5 ms of downtime on loopback from here, 11–22 ms from round 0). The other
 * objectives decide in round 0 (autoDecide): for them the wait would cost, measured by
 * `livemig compare`, 7–9 % of a lan migration's total time whatever was chosen, and a switch
 * there loses no time and no bytes (round 0's pages are in place; the destination's vCPU starts
 * meanwhile). Without a history, nothing happens here and round 0 decides.
 */
export async function autoDecideAtSetup(ctx: MigrationContext): Promise<AutoReport | undefined> {
  const start = ctx.startDirtyRate;
  if (!ctx.params.auto || ctx.auto || !ctx.linkHint || !start || ctx.params.auto.objective !== 'downtime') {
    return ctx.auto;
  }
  await start.whenPoints(SETUP_DECISION_POINTS);
  return decideFromHistory(ctx, 'setup');
}

/** Decide from the link history and the measurement at start so far (none yet: undefined). */
function decideFromHistory(ctx: MigrationContext, where: AutoReport['decidedIn']): AutoReport | undefined {
  const hint = ctx.linkHint!;
  const measurement = ctx.startDirtyRate?.measurement ?? ctx.startDirtyRate?.soFar;
  if (!measurement) return undefined;
  const ageS = Math.max(0, (Date.now() - hint.at) / 1000);
  return decide(
    ctx,
    measurement,
    {
      bandwidthBps: hint.bandwidthBps,
      ...(hint.resendBandwidthBps === undefined ? {} : { resendBandwidthBps: hint.resendBandwidthBps }),
      rttMs: hint.rttMs,
      source: `the last migration to this destination (${hint.migrationId}, ${ageS.toFixed(0)} s ago)`,
    },
    undefined,
    where,
    true,
  );
}

/**
 * Decide if it is time (see the header); returns the decision once made. `roundEnd`: round 0
 * just ended, with its figures.
 */
export function autoDecide(
  ctx: MigrationContext,
  roundEnd?: { ms: number; bytes: number; dirtyPages: number },
): AutoReport | undefined {
  const auto = ctx.params.auto;
  if (!auto || ctx.auto || ctx.stats.rounds.length > (roundEnd ? 1 : 0)) return ctx.auto;
  const start = ctx.startDirtyRate;
  const now = performance.now();
  let bandwidthBps: number;
  let source: string;
  if (roundEnd) {
    bandwidthBps = roundEnd.ms > 0 ? (roundEnd.bytes / roundEnd.ms) * 1000 : 0;
    source = `round 0 (${(roundEnd.bytes / MB).toFixed(1)} MB in ${Math.round(roundEnd.ms)} ms)`;
  } else if (ctx.linkHint && (start?.soFar?.curve?.length ?? 0) >= SETUP_DECISION_POINTS) {
    return decideFromHistory(ctx, 'round 0');
  } else {
    if (!start?.measurement) return undefined;
    const sent = ctx.channels.main.bytesSent - ctx.stats.current.bytesAtStart;
    const ms = now - ctx.stats.current.startedAt;
    if (sent < DECIDE_AFTER_BYTES || ms < DECIDE_AFTER_MS) return undefined;
    bandwidthBps = (sent / ms) * 1000;
    source = `round 0 so far (${(sent / MB).toFixed(1)} MB in ${Math.round(ms)} ms)`;
  }
  const measurement = start?.measurement ?? null;
  const round0 = roundEnd
    ? { ms: roundEnd.ms, dirtyPages: roundEnd.dirtyPages, pageCount: ctx.vm.memory.pageCount }
    : undefined;
  return decide(
    ctx,
    measurement,
    { bandwidthBps, rttMs: ctx.setupRoundTripMs ?? 0, source },
    round0,
    roundEnd ? 'end of round 0' : 'round 0',
  );
}

/** Predict every technique from what is known now, choose for the objective, act on it, and keep it for the report. */
function decide(
  ctx: MigrationContext,
  measurement: DirtyRateMeasurement | null,
  link: ModelInputs['link'],
  round0: { ms: number; dirtyPages: number; pageCount: number } | undefined,
  where: AutoReport['decidedIn'],
  fromHistory = false,
): AutoReport {
  const auto = ctx.params.auto!;
  const { memoryBytes } = ctx.vm.spec;
  const inputs: ModelInputs = {
    memoryBytes,
    pageSize: ctx.vm.memory.pageSize,
    zeroFraction:
      measurement?.zeroPagesSampled !== undefined ? measurement.zeroPagesSampled / measurement.pagesSampled : 0,
    dirty: curveFrom(measurement, round0, memoryBytes),
    link,
    downtimeLimitMs: ctx.params.downtimeLimitMs,
    maxRounds: ctx.params.maxRounds,
    postcopyAfterRounds: null,
    overheads: { ...DEFAULT_OVERHEADS, setupMs: ctx.stats.setupMs },
    // A post-copy also waits for the destination's vCPU to start (300–700 ms here), which
    // pre-copy hides in round 0. Decided from the history (at setup, or 125 ms into round 0)
    // that start is still ahead: a switch cannot resume the VM before it. `livemig compare`
    // measured a post-copy chosen 150 ms into round 0 on lan at 1.5–1.6 s where pre-copy took
    // 1.35 s, when this was left out. Decided after the 1 s measurement, it is done.
    postcopyOverheads: {
      ...DEFAULT_OVERHEADS,
      setupMs: fromHistory
        ? Math.max(ctx.stats.setupMs, ctx.linkHint?.postcopySetupMs ?? ctx.stats.setupMs + DEFAULT_VCPU_START_MS)
        : ctx.stats.setupMs,
    },
    // The throttle this migration runs with (--auto-converge, --dirty-limit) changes what pre-copy
    // and hybrid will cost: predicted with it. The encodings are not: their figures depend on the
    // pages (compare samples them; here `--compress auto` turns itself off on pages that do not
    // compress, which priors cannot know).
    ...(ctx.params.throttle ? { options: { throttle: ctx.params.throttle } } : {}),
  };
  const choice = choose(predictAll(inputs), auto.objective, auto.maxDowntimeMs ?? undefined);
  const report: AutoReport = {
    objective: auto.objective,
    maxDowntimeMs: auto.maxDowntimeMs,
    chosen: choice.technique,
    why: choice.why,
    decidedAtMs: performance.now() - ctx.stats.startedAt,
    decidedIn: where,
    inputs,
    predictions: choice.predictions,
  };
  ctx.auto = report;
  if (choice.technique === 'postcopy') ctx.requests.postcopy = true;
  if (choice.technique === 'precopy') ctx.chooseMode('precopy');
  // Post-copy or hybrid: the destination's fault thread is needed from now (fault-on-demand.ts).
  else requestFaultChannel(ctx);
  ctx.logger.info(
    { event: 'auto.decided', chosen: choice.technique, where, why: choice.why },
    `auto: ${choice.technique}`,
  );
  return report;
}
