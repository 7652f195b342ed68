/**
 * The report's throttle fields (issue 17, "Convergence"): per round the throttle in force and
 * the guest's steps/s, and the `throttle` block (--auto-converge, --dirty-limit) — checked by the
 * JSON schema when present — and how the text report shows them: a line saying how far the
 * throttle went and from which round, one saying what it cost the guest, and two more columns in
 * the rounds table. A report without a throttle keeps its table as before.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { formatReport, REPORT_JSON_SCHEMA, type RoundReport, type ThrottleReport } from '@livemig/shared/report';
import { sampleReport } from '../../../helpers/report.ts';

const round = (index: number, cpuThrottlePercent?: number, guestStepsPerSec?: number): RoundReport => ({
  index,
  pages: 1000,
  bytes: 4_100_000,
  ms: 250,
  bandwidthBps: 16.4e6,
  dirtyAfter: 900,
  ...(cpuThrottlePercent === undefined ? {} : { cpuThrottlePercent }),
  ...(guestStepsPerSec === undefined ? {} : { guestStepsPerSec }),
});
const ROUNDS = [round(0, 0, 10_000), round(1, 0, 10_000), round(2, 20, 8_000), round(3, 30, 7_000), round(4)];

const AUTO: ThrottleReport = {
  technique: 'auto-converge',
  maxPercent: 99,
  initialPercent: 20,
  incrementPercent: 10,
  triggerThresholdPercent: 50,
  peakPercent: 30,
  peakRound: 3,
  throttledRounds: 2,
  unthrottledStepsPerSec: 10_000,
  throttledStepsPerSec: 7_500,
  speedWhileThrottled: 0.75,
  speedDuringPrecopy: 0.875,
  throttledDirtyRateBps: 14.7e6,
  maxThrottledRoundDirtyRateBps: 14.7e6,
};
const LIMIT: ThrottleReport = {
  technique: 'dirty-limit',
  maxPercent: 99,
  dirtyLimitBps: 4e6,
  peakPercent: 91,
  peakRound: 1,
  throttledRounds: 2,
  unthrottledStepsPerSec: 10_000,
  throttledStepsPerSec: 900,
  speedWhileThrottled: 0.09,
  speedDuringPrecopy: 0.69,
  throttledDirtyRateBps: 3.5e6,
  maxThrottledRoundDirtyRateBps: 3.6e6,
};

describe('report.throttle and the rounds’ guest figures', () => {
  const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);

  it('the schema takes rounds with and without them, and either technique', () => {
    for (const report of [
      sampleReport({ rounds: ROUNDS }),
      sampleReport({ rounds: ROUNDS, throttle: AUTO }),
      sampleReport({ rounds: ROUNDS, throttle: LIMIT }),
      sampleReport({
        throttle: {
          ...LIMIT,
          peakPercent: 0,
          peakRound: null,
          throttledRounds: 0,
          throttledStepsPerSec: null,
          speedWhileThrottled: null,
          throttledDirtyRateBps: null,
          maxThrottledRoundDirtyRateBps: null,
        },
      }),
    ]) {
      expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    }
  });

  it.each([
    ['an unknown technique', { throttle: { ...AUTO, technique: 'balloon' } }],
    ['a throttle over 100 %', { throttle: { ...AUTO, peakPercent: 120 } }],
    ['a missing field', { throttle: { ...AUTO, peakRound: undefined } }],
    ['a round throttle over 100 %', { rounds: [{ ...round(0), cpuThrottlePercent: 101 }] }],
    ['negative steps/s', { rounds: [{ ...round(0), guestStepsPerSec: -1 }] }],
  ])('the schema refuses %s', (_what, overrides) => {
    const report = JSON.parse(JSON.stringify(sampleReport(overrides as never))) as unknown;
    expect(validate(report)).toBe(false);
  });

  it('auto-converge: how far and from which round, then what it cost the guest', () => {
    const text = formatReport(sampleReport({ rounds: ROUNDS, throttle: AUTO }));
    expect(text).toContain(
      '  auto-converge      throttled to 30 % by round 3 (20 % + 10 % per round dirtying > 50 % of what it sent, at most 99 %; 2 rounds throttled)\n',
    );
    expect(text).toContain(
      '  guest cost         the guest ran at 0.75× its unthrottled speed while throttled (10.0k → 7.50k steps/s), 0.88× over all of pre-copy\n',
    );
  });

  it('dirty-limit: the limit and the dirty rate it held the guest to', () => {
    const text = formatReport(sampleReport({ rounds: ROUNDS, throttle: LIMIT }));
    expect(text).toMatch(
      /\n {2}dirty-limit {8}throttled to 91 % by round 1 \(limit 4\.0 MB\/s, at most 99 %; 2 rounds throttled\); dirty rate 3\.5 MB\/s while throttled \(a round's most 3\.6 MB\/s\)\n/,
    );
    expect(text).toMatch(
      /guest cost {9}the guest ran at 0\.09× its unthrottled speed while throttled \(10\.0k → 900 steps\/s\)/,
    );
  });

  it('never throttled: says why, and no cost line', () => {
    const never = {
      ...AUTO,
      peakPercent: 0,
      peakRound: null,
      throttledRounds: 0,
      throttledStepsPerSec: null,
      speedWhileThrottled: null,
    };
    const text = formatReport(sampleReport({ rounds: ROUNDS, throttle: never }));
    expect(text).toContain(
      'auto-converge      never throttled (20 % + 10 % per round dirtying > 50 % of what it sent, at most 99 %): the rounds kept up with the link',
    );
    expect(text).not.toContain('guest cost');
  });

  it('the rounds table: the throttle and the guest speed per round (× unthrottled); the stop-and-copy set paused', () => {
    const lines = formatReport(sampleReport({ rounds: ROUNDS, throttle: AUTO })).split('\n');
    const header = lines.findIndex((line) => line.startsWith('  round '));
    expect(lines[header]).toMatch(/dirty after throttle {2}guest steps\/s$/);
    expect(lines[header + 1]).toMatch(/ 900 {6}0 % {4}10\.0k 1\.00×$/);
    expect(lines[header + 3]).toMatch(/ 900 {5}20 % {4}8\.00k 0\.80×$/);
    expect(lines[header + 5]).toMatch(/ 900 {8}– {9}paused$/);
  });

  it('without a throttle the table is as before', () => {
    const lines = formatReport(sampleReport({ rounds: ROUNDS })).split('\n');
    const header = lines.findIndex((line) => line.startsWith('  round '));
    expect(lines[header]).toBe('  round     pages        bytes       time    bandwidth   dirty after');
    expect(lines[header + 1]).toMatch(/ 900$/);
  });
});
