/**
 * What a migration will cost, per technique, before it runs: a pure model of livemig's own
 * engine in the spirit of Clark et al. (pre-copy rounds shrinking geometrically while the link
 * outruns the dirtying) and Akoush et al. (the dirty set as a curve of the round's length, and
 * fixed costs measured on the host). It walks the rounds the engine would run:
 *
 *   round 0 sends every page (all-zero pages as a few bytes); round i + 1 sends what the guest
 *   dirtied during round i, W(t_i) (dirty-curve.ts); t_i = bytes_i / bandwidth (the resend
 *   bandwidth after round 0, when measured apart: on loopback the engine, not the link, sets
 *   the pace, and round 0 pays for the destination's first touch of its memory).
 *   After each round the engine's own switchover rule (agent-source convergence.ts, restated
 *   here: a pure copy would tie the two packages together) decides: pending ÷ bandwidth ≤
 *   downtime-limit → converged; rounds = max-rounds → max-rounds; pending not shrinking for 3
 *   rounds (round 0 aside) → not-shrinking. Before pausing, the source waits for the last
 *   round's acknowledgement (one RTT, during which the guest dirties more).
 *
 *   downtime (stop-and-copy) = switchover + 1.5 RTT + final dirty bytes ÷ stop-and-copy rate
 *   downtime (post-copy)     = switchover + 1.5 RTT: no pages, CPU and devices only
 *   total = setup + rounds + [post-copy: every page not yet sent, pushed] + downtime + tail
 *
 * 1.5 RTT: the last page reaches the destination, Ready comes back, Handoff goes out; the
 * engine's downtime subtracts half an RTT of its own (downtime.ts) — the calibration below
 * absorbs whatever this gets wrong, since it is measured the same way. `overheads` are an
 * idle migration's figures on the same host and link (switchover = its downtime − 1.5 RTT;
 * tail = its total − setup − round 0 − downtime): calibrate once per link, predict many.
 *
 * Options (issue 17, ModelInputs.options): the page encodings change what a round costs on the
 * wire and in time (encodings.ts: compression divides the bytes by its ratio, its pages move at
 * min(codec × threads, bandwidth ÷ ratio)); a throttle changes the dirty rate (throttle.ts: a
 * round at run fraction f dirties W(f·t)) and costs the guest f of its speed. The engine's rule
 * sees what the engine measures — the pending pages' raw bytes over the last round's wire rate
 * (wire bytes ÷ its time, below the link's when the codec is the bottleneck) — and the model
 * restates that. A pure post-copy pushes raw pages and takes no throttle: options change
 * pre-copy and hybrid's rounds only. Parallel channels (channels.ts) raise the rate the rounds
 * move at where the engine, not the link, is the limit.
 */
import { dirtiedIn } from './dirty-curve.ts';
import { activeEncodings, DEFAULT_PAGE_FIGURES, PAGE_OVERHEAD_BYTES, sendCost, type SendCost } from './encodings.ts';
import { guestSpeed, nextThrottle, runFraction, throttleRising, UNTHROTTLED, type ThrottleState } from './throttle.ts';
import type { ModelInputs, Prediction, Technique } from './types.ts';
import { withChannels } from './channels.ts';

export { PAGE_OVERHEAD_BYTES };
/** Rounds whose pending set did not shrink, in a row, that end pre-copy (the engine's NOT_SHRINKING_ROUNDS). */
export const NOT_SHRINKING_ROUNDS = 3;
/** A round "shrank" when it left less than this fraction of the best before it (the model has no noise to ride). */
const SHRINK_FACTOR = 0.97;
/** Defaults when no idle migration was measured: this host's loopback figures, roughly. */
export const DEFAULT_OVERHEADS = { setupMs: 100, switchoverMs: 30, tailMs: 50 } as const;

export type Overheads = { setupMs: number; switchoverMs: number; tailMs: number };

/**
 * The calibration: an idle migration's measured figures → the model's fixed costs, so that
 * predicting that same migration gives back its total and downtime. For an idle post-copy
 * (`postcopy: true`), `round0Ms` is its push (report.postcopy.postcopyMs), and there is no
 * round acknowledgement to wait for (pre-copy's total holds one RTT for it, which predict adds).
 */
export function overheadsFromIdle(idle: {
  setupMs: number;
  downtimeMs: number;
  totalMs: number;
  round0Ms: number;
  rttMs: number;
  postcopy?: boolean;
}): Overheads {
  const switchoverMs = Math.max(0, idle.downtimeMs - 1.5 * idle.rttMs);
  const ackMs = idle.postcopy ? 0 : idle.rttMs;
  return {
    setupMs: idle.setupMs,
    switchoverMs,
    tailMs: Math.max(0, idle.totalMs - idle.setupMs - idle.round0Ms - ackMs - idle.downtimeMs),
  };
}

interface Walk {
  rounds: number;
  roundsMs: number;
  roundsBytes: number;
  /** Bytes dirty when pre-copy stops (after the last round and the ack's wait). */
  pendingBytes: number;
  switchover: Prediction['switchover'];
  /** The throttle each round ran at and its length (for the guest's slowdown). */
  throttled: { ms: number; percent: number }[];
}

function wire(bytes: number, pageSize: number): number {
  return bytes * (1 + PAGE_OVERHEAD_BYTES / pageSize);
}

/** What sending pages costs under the inputs' options on a link of `bandwidthBps` (raw pages without options). */
function sender(
  input: ModelInputs,
): (pageBytes: number, zeroPages: number, resend: boolean, bandwidthBps: number) => SendCost {
  const pages = input.pages ?? DEFAULT_PAGE_FIGURES;
  const cache = new Map<number, ReturnType<typeof activeEncodings>>();
  return (pageBytes, zeroPages, resend, bandwidthBps) => {
    let active = cache.get(bandwidthBps);
    if (!active) cache.set(bandwidthBps, (active = activeEncodings(input.options, pages, bandwidthBps)));
    return sendCost({ pageBytes, zeroPages, resend }, active, pages, input.options, input.pageSize, bandwidthBps);
  };
}

/** Walk the pre-copy rounds until the engine's rule (or, hybrid, `stopAfter` rounds) ends them. */
function walkRounds(input: ModelInputs, stopAfter: number | null): Walk {
  const { memoryBytes: M, pageSize, dirty, link } = input;
  const B0 = Math.max(1, link.bandwidthBps);
  const B = Math.max(1, link.resendBandwidthBps ?? link.bandwidthBps);
  const z = input.zeroFraction ?? 0;
  const pageCount = M / pageSize;
  const send = sender(input);
  const throttle = input.options?.throttle;
  let state: ThrottleState = UNTHROTTLED;
  let cost = send(M * (1 - z), pageCount * z, false, B0);
  let roundsMs = 0;
  let roundsBytes = 0;
  const pendingAfter: number[] = [];
  const throttled: Walk['throttled'] = [];
  for (let round = 0; ; round++) {
    const ms = cost.seconds * 1000;
    roundsMs += ms;
    roundsBytes += cost.wireBytes;
    throttled.push({ ms, percent: state.percent });
    // A guest running a fraction f of the time dirties in t what it would in f·t (throttle.ts).
    const pending = dirtiedIn(dirty, (runFraction(state.percent) * ms) / 1000, M);
    pendingAfter.push(pending);
    const ran = state;
    if (throttle) state = nextThrottle(state, { wireBytes: cost.wireBytes, dirtiedBytes: pending }, throttle, dirty);
    const done = round + 1;
    // The engine's rule divides by the last round's measured rate (bandwidth.ts): wire bytes over its time.
    // That is the link's rate unless the codec was the bottleneck (the round took longer than its wire bytes).
    const linkRate = round === 0 ? B0 : B;
    const roundRate = cost.seconds > cost.wireBytes / linkRate ? cost.wireBytes / cost.seconds : linkRate;
    const expectedMs = (wire(pending, pageSize) / roundRate) * 1000;
    // The guest dirties on while the last round's acknowledgement comes back, at the throttle just set.
    const ackWait = (ms: number) =>
      dirtiedIn(dirty, (runFraction(ran.percent) * ms + runFraction(state.percent) * input.link.rttMs) / 1000, M);
    let switchover: Prediction['switchover'] | undefined;
    if (stopAfter !== null && done >= stopAfter) switchover = 'postcopy';
    else if (pending === 0) switchover = 'nothing-dirty';
    else if (expectedMs <= input.downtimeLimitMs) switchover = 'converged';
    else if (done >= input.maxRounds) switchover = 'max-rounds';
    else if (!throttleRising(state, throttle) && notShrinking(pendingAfter)) switchover = 'not-shrinking';
    if (switchover) {
      return {
        rounds: done,
        roundsMs,
        roundsBytes,
        pendingBytes: ackWait(ms),
        switchover,
        throttled,
      };
    }
    cost = send(pending, 0, true, B);
  }
}

function notShrinking(pendingAfter: readonly number[]): boolean {
  const steady = pendingAfter.slice(1);
  if (steady.length <= NOT_SHRINKING_ROUNDS) return false;
  const best = Math.min(...steady.slice(0, steady.length - NOT_SHRINKING_ROUNDS));
  return steady.slice(-NOT_SHRINKING_ROUNDS).every((p) => p >= best * SHRINK_FACTOR);
}

/** Predict one technique. */
export function predict(technique: Technique, input: ModelInputs): Prediction {
  const pre: Overheads = { ...DEFAULT_OVERHEADS, ...input.overheads };
  const post: Overheads = { ...pre, ...input.postcopyOverheads };
  const B = Math.max(1, input.link.bandwidthBps);
  const rtt = input.link.rttMs;
  const { memoryBytes: M, pageSize } = input;
  if (technique === 'postcopy') {
    // The pusher sends raw pages, and a pure post-copy has no rounds to throttle: options change nothing.
    const o = post;
    const pauseMs = o.switchoverMs + 1.5 * rtt;
    const z = input.zeroFraction ?? 0;
    const bytes = wire(M * (1 - z), pageSize) + (M / pageSize) * z * PAGE_OVERHEAD_BYTES;
    const pushMs = (bytes / B) * 1000;
    return {
      technique,
      rounds: 0,
      totalMs: o.setupMs + pauseMs + pushMs + o.tailMs,
      downtimeMs: pauseMs,
      wireBytes: bytes,
      switchover: 'postcopy',
      faultBytes: dirtiedIn(input.dirty, pushMs / 1000, M),
      ...(input.options && Object.keys(input.options).length > 0 ? { options: input.options } : {}),
    };
  }
  const stopAfter = technique === 'hybrid' ? input.postcopyAfterRounds : null;
  // Parallel channels carry the rounds (channels.ts); the final set goes on the main connection.
  const walk = walkRounds(withChannels(input), stopAfter);
  const toPostcopy =
    technique === 'hybrid' &&
    (walk.switchover === 'postcopy' || walk.switchover === 'max-rounds' || walk.switchover === 'not-shrinking');
  // Stop-and-copy sends the final dirty set as a re-send (deltas apply), the guest paused; a
  // switch to post-copy pushes it raw, the guest running.
  const resendB = Math.max(1, input.link.resendBandwidthBps ?? B);
  const stopCopyB = Math.max(1, input.link.stopCopyBandwidthBps ?? resendB);
  const final = toPostcopy
    ? { wireBytes: wire(walk.pendingBytes, pageSize), seconds: wire(walk.pendingBytes, pageSize) / resendB }
    : sender(input)(walk.pendingBytes, 0, true, stopCopyB);
  const finalBytes = final.wireBytes;
  const finalMs = final.seconds * 1000;
  // A switch to post-copy costs what an idle post-copy's does; setup is pre-copy's (round 0 hides the vCPU's start).
  const end = toPostcopy ? post : pre;
  const pauseMs = end.switchoverMs + 1.5 * rtt;
  const downtimeMs = toPostcopy ? pauseMs : pauseMs + finalMs;
  const options = input.options;
  const hasOptions = options !== undefined && Object.keys(options).length > 0;
  const active = hasOptions ? activeEncodings(options, input.pages ?? DEFAULT_PAGE_FIGURES, B) : undefined;
  return {
    technique,
    rounds: walk.rounds,
    totalMs: pre.setupMs + walk.roundsMs + rtt + downtimeMs + (toPostcopy ? finalMs : 0) + end.tailMs,
    downtimeMs,
    wireBytes: walk.roundsBytes + finalBytes,
    switchover: walk.switchover,
    ...(toPostcopy ? { faultBytes: dirtiedIn(input.dirty, finalMs / 1000, Math.min(M, walk.pendingBytes)) } : {}),
    ...(hasOptions ? { options } : {}),
    ...(options?.throttle
      ? {
          throttle: {
            peakPercent: Math.max(0, ...walk.throttled.map((r) => r.percent)),
            throttledRounds: walk.throttled.filter((r) => r.percent > 0).length,
            guestSpeed: guestSpeed(walk.throttled),
          },
        }
      : {}),
    ...(active && options?.compress !== undefined
      ? { compression: { codec: active.codec, pageRateBps: active.pageRateBps } }
      : {}),
  };
}

/** Every technique's prediction (with the inputs' options, if any: they change pre-copy and hybrid). */
export function predictAll(input: ModelInputs): Prediction[] {
  return (['precopy', 'postcopy', 'hybrid'] as const).map((t) => predict(t, input));
}
