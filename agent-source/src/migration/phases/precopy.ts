/**
 * Pre-copy rounds. Each round every section sends what it has dirty, within a byte budget per
 * call, so between two calls the engine sees a request (migrate-start-postcopy, shutdown) and
 * acts on it at once, mid-round. At a round's end: RoundEnd, sync the dirty logs, sum what is
 * pending, and let the switchover rule and switchover.ts choose. Before stopping the VM the
 * source waits for the destination's RoundAck of the last round: otherwise stop-and-copy
 * queues behind what is still in socket buffers and on the wire (up to megabytes — a third of a
 * second at 100 Mbit/s), and all of that would count as downtime.
 *
 * Each round records what it cost the guest: the throttle in force and the guest's steps/s over
 * it. With --auto-converge or --dirty-limit the controller (throttle.ts) sets the throttle for
 * the next round from what this one measured; it is lifted at the pause (context.ts).
 */
import { msg, MsgType, type PeerChannel } from '@livemig/shared/channel';
import { fitDirtyCurve, type DirtyCurve } from '@livemig/shared/predict';
import type { DirtyRateMeasurement } from '@livemig/shared/vm';
import { autoDecide } from '../auto.ts';
import { bandwidthEstimate } from '../bandwidth.ts';
import type { MigrationContext } from '../context.ts';
import { decideSwitchover, expectedDowntimeMs, type ConvergenceDecision } from '../convergence.ts';
import { endRound, iterateAll, pendingBytes, startRound } from '../sections/index.ts';
import { chooseExit, type Exit } from '../switchover.ts';
import { channelFailureCause, endMultifdRound } from '../multifd.ts';
import { nextThrottle, throttleRising, type RoundMeasure, type ThrottleState } from '../throttle.ts';

/** Payload bytes a section may send before the engine looks at requests again (~4 ms at 1 GB/s). */
export const ITERATE_BUDGET_BYTES = 4 << 20;

export async function precopyPhase(ctx: MigrationContext): Promise<Exit['to']> {
  try {
    return await precopyRounds(ctx);
  } catch (caught) {
    // A parallel channel's failure may be the echo of the destination ending the migration: its
    // reason comes on the main connection (multifd.ts).
    throw await channelFailureCause(ctx, caught);
  }
}

async function precopyRounds(ctx: MigrationContext): Promise<Exit['to']> {
  const { logger, stats } = ctx;
  const sections = ctx.s;
  const main = ctx.channels.main;
  ctx.machine.transition('setup', 'precopy');
  const pendingAfter: number[] = [];
  for (let round = 0; ; round++) {
    // Parallel channels: the previous round must have arrived whole on every channel (the
    // destination's barrier, then its RoundAck) before any page of this one goes — a page sent in
    // both rounds, on two channels, must never land in the wrong order (multifd.ts).
    if (ctx.multifd && round > 0) await awaitRoundAck(ctx, main, round - 1);
    const requestedFirst = exitOnRequest(ctx, round);
    if (requestedFirst) {
      // A switch to post-copy before a round: an empty round, acknowledged, before the pause —
      // the destination acknowledges only once its vCPU is ready, which must not fall in the
      // downtime (a pure post-copy waits for it at setup instead).
      if (requestedFirst.to === 'postcopy' && round === 0) {
        await endMultifdRound(ctx, round);
        if (!main.send(msg.roundEnd({ round, pages: 0, bytes: 0 }))) await main.drained(ctx.signal);
        await awaitRoundAck(ctx, main, round);
      }
      return decided(ctx, requestedFirst);
    }
    const started = performance.now();
    const bytesBefore = main.bytesSent;
    const channelBytesBefore = ctx.multifd?.wireBytes ?? 0;
    const stepsBefore = ctx.vm.steps;
    const throttleInForce = ctx.throttle.percent;
    startRound(sections, round);
    let cut: Exit | undefined;
    while (!(await iterateAll(sections, ITERATE_BUDGET_BYTES))) {
      if (round === 0) autoDecide(ctx);
      cut = exitOnRequest(ctx, round);
      // A switch to post-copy waits for the fault channel still opening (fault-on-demand.ts):
      // the round's pages go on meanwhile instead of the link standing idle.
      if (cut?.to === 'postcopy' && ctx.channels.faultPending) cut = undefined;
      if (cut) break;
    }
    const pages = stats.current.sent;
    // A round cut short for a shutdown gets no RoundEnd: the switch happens now. One cut short
    // for post-copy gets one, and the pause waits for its ack (below), as a round's end does:
    // otherwise the CPU state queues behind what round 0 still has in socket buffers and on the
    // wire (a 200-650 ms downtime on loopback, measured, instead of ~20 ms).
    // With parallel channels every round is flushed: their share of it may still be in flight, and
    // nothing may be sent after it before the destination's barrier says it arrived.
    const flush = !cut || cut.to === 'postcopy' || ctx.multifd !== undefined;
    if (flush) await endMultifdRound(ctx, round);
    const roundBytes = (): number => main.bytesSent - bytesBefore + (ctx.multifd?.wireBytes ?? 0) - channelBytesBefore;
    if (flush && !main.send(msg.roundEnd({ round, pages, bytes: roundBytes() }))) {
      await main.drained(ctx.signal);
    }
    // dirty-limit's model, fitted before the harvest: the pages the guest dirties between the
    // harvest and the next throttle count in the next round, at the wrong throttle.
    const model = cut ? null : dirtyModel(ctx);
    endRound(sections);
    const ms = performance.now() - started;
    const guestSteps = ctx.vm.steps - stepsBefore;
    const bytes = roundBytes();
    const dirtyAfter = sections.ram.dirtyPages;
    stats.rounds.push({
      index: round,
      pages,
      bytes,
      ms,
      bandwidthBps: ms > 0 ? (bytes / ms) * 1000 : 0,
      dirtyAfter,
      cpuThrottlePercent: throttleInForce,
      guestStepsPerSec: ms > 0 ? (guestSteps / ms) * 1000 : 0,
    });
    // The throttle for the next round, set at once (a switchover's pause lifts it anyway).
    const throttle = cut
      ? ctx.throttle
      : throttleAfterRound(ctx, round, model, {
          transferredBytes: bytes,
          dirtiedBytes: dirtyAfter * ctx.vm.memory.pageSize,
          ms,
          percent: throttleInForce,
        });
    stats.pendingPages = dirtyAfter + sections.ram.unsentOfRound;
    ctx.emit('MIGRATION_PASS', { migrationId: ctx.id, pass: round + 1 });
    if (cut) {
      logger.info({ event: 'precopy.round.cut', round, pages, reason: cut.reason }, `round ${round} cut short`);
      if (flush) await awaitRoundAck(ctx, main, round);
      return decided(ctx, cut);
    }
    pendingAfter.push(pendingBytes(sections));
    if (round === 0) autoDecide(ctx, { ms, bytes, dirtyPages: dirtyAfter });
    const decision = ruleAfterRound(ctx, round, pendingAfter, throttleRising(throttle, ctx.params.throttle));
    stats.expectedDowntimeMs = decision.expectedDowntimeMs;
    logger.info(
      {
        event: 'precopy.round.end',
        round,
        pages,
        bytes,
        ms,
        dirtyAfter,
        cpuThrottlePercent: throttleInForce,
        guestSteps,
        ...decision,
      },
      `round ${round}: ${pages} pages, ${dirtyAfter} dirty after`,
    );
    const exit = chooseExit({ ...exitInput(ctx, round + 1), decision });
    if (exit) {
      // The VM runs while we wait for the ack; what it dirties meanwhile joins the final set.
      await awaitRoundAck(ctx, main, round);
      endRound(sections);
      return decided(ctx, exit, decision.expectedDowntimeMs);
    }
  }
}

/**
 * Set the throttle for the round after `round` from what it measured (unchanged without
 * --auto-converge/--dirty-limit), and return it.
 */
function throttleAfterRound(
  ctx: MigrationContext,
  round: number,
  model: DirtyCurve | null,
  measure: RoundMeasure,
): ThrottleState {
  const settings = ctx.params.throttle;
  if (!settings) return ctx.throttle;
  const next = nextThrottle(ctx.throttle, measure, settings, model);
  ctx.setThrottle(next, round);
  return next;
}

/**
 * dirty-limit's model of the guest (throttle.ts): the dirty rate measured as the migration
 * started, fitted to the prediction model's curve — its working set and slope; null without
 * dirty-limit or a measurement.
 */
function dirtyModel(ctx: MigrationContext): DirtyCurve | null {
  if (ctx.params.throttle?.kind !== 'dirty-limit') return null;
  const start = ctx.startDirtyRate?.measurement ?? ctx.startDirtyRate?.soFar;
  return start ? fitOf(start) : null;
}

/** Fits by measurement (a fit takes ~8 ms; the measurement changes only at its checkpoints). A memo, keyed weakly. */
const FITS = new WeakMap<DirtyRateMeasurement, DirtyCurve>();
function fitOf(m: DirtyRateMeasurement): DirtyCurve {
  let fit = FITS.get(m);
  if (!fit) FITS.set(m, (fit = fitDirtyCurve(m)));
  return fit;
}

/** The switchover rule after round `round`, from what was pending after each round so far and the measured bandwidth. */
export function ruleAfterRound(
  ctx: MigrationContext,
  round: number,
  pendingAfter: readonly number[],
  throttleRising = false,
): ConvergenceDecision {
  const { stats, params } = ctx;
  return decideSwitchover({
    roundsDone: round + 1,
    pendingBytesAfter: pendingAfter,
    bandwidthBps: bandwidthEstimate(stats.rounds, params.maxBandwidthBps),
    downtimeLimitMs: params.downtimeLimitMs,
    maxRounds: params.maxRounds,
    throttleRising,
  });
}

function exitInput(ctx: MigrationContext, roundsDone: number): Parameters<typeof chooseExit>[0] {
  return {
    mode: ctx.mode,
    decision: undefined,
    roundsDone,
    postcopyAfterRounds: ctx.params.postcopyAfterRounds,
    requested: ctx.requests,
  };
}

/** A switch the operator or the agent asked for, acted on now (mid-round or before one). */
function exitOnRequest(ctx: MigrationContext, roundsDone: number): Exit | undefined {
  if (!ctx.requests.postcopy && !ctx.requests.shutdown) return undefined;
  return chooseExit(exitInput(ctx, roundsDone));
}

/** Record the switchover; a switch before the rule ran estimates its downtime from what is pending now. */
function decided(ctx: MigrationContext, exit: Exit, expected?: number): Exit['to'] {
  const bandwidth = bandwidthEstimate(ctx.stats.rounds, ctx.params.maxBandwidthBps);
  const expectedMs = expected ?? expectedDowntimeMs(pendingBytes(ctx.s), bandwidth);
  ctx.stats.expectedDowntimeMs = expectedMs;
  ctx.switchover = { reason: exit.reason, expectedDowntimeMs: expectedMs };
  return exit.to;
}

/** Wait until the destination acknowledged round `round` (earlier rounds' acks are passed over). */
async function awaitRoundAck(ctx: MigrationContext, channel: PeerChannel, round: number): Promise<void> {
  const waitStarted = performance.now();
  for (;;) {
    const ack = await channel.expect(MsgType.RoundAck, ctx.signal);
    if (ack.round >= round) break;
  }
  ctx.logger.debug(
    { event: 'precopy.round.acked', round, waitedMs: performance.now() - waitStarted },
    'destination has the whole round',
  );
}
