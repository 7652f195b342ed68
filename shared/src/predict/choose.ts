/**
 * `--mode auto`: the technique the model predicts best for an objective — a pure function of
 * the predictions. Rules:
 *
 *  1. With a downtime ceiling (--max-downtime), only techniques predicted under it compete; if
 *     none is, the one with the least downtime is chosen (and `why` says the ceiling cannot be met).
 *  2. Best on the objective wins: least downtime, least total time, or fewest bytes.
 *  3. Predictions within a margin of the best count as a tie (the model is not that precise:
 *     5 ms or 10 % for downtime, 5 % for time, 2 % for bytes); a tie goes to the technique that
 *     risks less — pre-copy, then hybrid, then post-copy — because a post-copy that fails after
 *     the switch has the VM's memory on two hosts (the VM is lost), while a failed pre-copy
 *     leaves it running on the source.
 */
import { formatTechnique } from './options.ts';
import type { Choice, Objective, Prediction, Technique } from './types.ts';

const SAFETY: Record<Technique, number> = { precopy: 0, hybrid: 1, postcopy: 2 };

function value(p: Prediction, objective: Objective): number {
  return objective === 'downtime' ? p.downtimeMs : objective === 'total-time' ? p.totalMs : p.wireBytes;
}

function tieMargin(best: number, objective: Objective): number {
  if (objective === 'downtime') return Math.max(5, 0.1 * best);
  return (objective === 'total-time' ? 0.05 : 0.02) * best;
}

function describe(p: Prediction): string {
  const parts = [`${Math.round(p.downtimeMs)} ms down`, `${(p.totalMs / 1000).toFixed(2)} s total`];
  parts.push(`${(p.wireBytes / 1e6).toFixed(1)} MB`);
  if (p.technique !== 'postcopy') parts.push(`${p.rounds} round${p.rounds === 1 ? '' : 's'}, ${p.switchover}`);
  if (p.throttle) parts.push(`guest at ${Math.round(p.throttle.guestSpeed * 100)} % speed`);
  const name = p.options ? formatTechnique({ base: p.technique, options: p.options }) : p.technique;
  return `${name} ${parts.join(', ')}`;
}

export function choose(predictions: readonly Prediction[], objective: Objective, maxDowntimeMs?: number): Choice {
  if (predictions.length === 0) throw new Error('choose: no predictions');
  const under =
    maxDowntimeMs === undefined ? [...predictions] : predictions.filter((p) => p.downtimeMs <= maxDowntimeMs);
  const ceilingMissed = under.length === 0;
  const pool = ceilingMissed ? [...predictions] : under;
  const goal: Objective = ceilingMissed ? 'downtime' : objective;
  const best = Math.min(...pool.map((p) => value(p, goal)));
  const tied = pool.filter((p) => value(p, goal) <= best + tieMargin(best, goal));
  const chosen = tied.sort((a, b) => SAFETY[a.technique] - SAFETY[b.technique])[0]!;
  const others = predictions.filter((p) => p !== chosen).map(describe);
  const reason = ceilingMissed
    ? `no technique is predicted under the ${maxDowntimeMs} ms downtime ceiling; the least downtime is`
    : tied.length > 1
      ? `${tied.map((p) => p.technique).join(' and ')} are predicted within the margin on ${goal}; the safer is`
      : `best predicted ${goal}:`;
  return {
    objective,
    technique: chosen.technique,
    why: `${reason} ${describe(chosen)} (vs ${others.join('; ')})`,
    predictions: [...predictions],
  };
}
