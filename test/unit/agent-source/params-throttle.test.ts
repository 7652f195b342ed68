/**
 * The agent's own check of the throttle knobs in a migrate request (resolveMigrateParams):
 * autoConverge with QEMU's defaults (20 % initial, +10 %, at most 99 %, trigger 50 %) or a
 * dirtyLimitBps cap, never both; each knob only with the technique it tunes; percentages in
 * QEMU's ranges; not for a pure post-copy. Every rejection is ERR_INVALID_ARGUMENT naming the knob.
 */
import { describe, expect, it } from 'vitest';
import { isMigrationError } from '@livemig/shared';
import type { MigrateParams } from '@livemig/shared/control';
import { resolveMigrateParams } from '@livemig/agent-source';

function refusal(mode: string, params: Record<string, unknown>): string {
  try {
    resolveMigrateParams(mode, params as MigrateParams);
  } catch (error) {
    if (isMigrationError(error) && error.code === 'ERR_INVALID_ARGUMENT') return error.message;
    throw error;
  }
  throw new Error(`accepted ${JSON.stringify(params)}`);
}

describe('resolveMigrateParams: auto-converge and dirty-limit', () => {
  it('none by default', () => {
    expect(resolveMigrateParams('precopy').throttle).toBeNull();
    expect(resolveMigrateParams('hybrid', { autoConverge: false, dirtyLimitBps: null }).throttle).toBeNull();
  });

  it("auto-converge takes QEMU's schedule by default, in pre-copy, hybrid and auto", () => {
    for (const mode of ['precopy', 'hybrid', 'auto']) {
      expect(resolveMigrateParams(mode, { autoConverge: true }).throttle).toEqual({
        kind: 'auto-converge',
        initialPercent: 20,
        incrementPercent: 10,
        maxPercent: 99,
        triggerThresholdPercent: 50,
      });
    }
  });

  it('auto-converge takes its knobs', () => {
    const params = {
      autoConverge: true,
      cpuThrottleInitial: 50,
      cpuThrottleIncrement: 25,
      maxCpuThrottle: 90,
      throttleTriggerThreshold: 100,
    };
    expect(resolveMigrateParams('precopy', params).throttle).toEqual({
      kind: 'auto-converge',
      initialPercent: 50,
      incrementPercent: 25,
      maxPercent: 90,
      triggerThresholdPercent: 100,
    });
  });

  it('dirty-limit: a cap in bytes/s, at most max-cpu-throttle', () => {
    expect(resolveMigrateParams('precopy', { dirtyLimitBps: 20e6 }).throttle).toEqual({
      kind: 'dirty-limit',
      limitBps: 20e6,
      maxPercent: 99,
    });
    expect(resolveMigrateParams('precopy', { dirtyLimitBps: 20e6, maxCpuThrottle: 80 }).throttle).toMatchObject({
      maxPercent: 80,
    });
  });

  it.each([
    ['both techniques', { autoConverge: true, dirtyLimitBps: 1e6 }, /give one or the other/],
    ['cpu-throttle-initial alone', { cpuThrottleInitial: 30 }, /cpu-throttle-initial applies with auto-converge only/],
    [
      'two auto-converge knobs with dirty-limit',
      { dirtyLimitBps: 1e6, cpuThrottleIncrement: 5, throttleTriggerThreshold: 60 },
      /cpu-throttle-increment, throttle-trigger-threshold apply with auto-converge only/,
    ],
    ['max-cpu-throttle alone', { maxCpuThrottle: 50 }, /max-cpu-throttle applies with auto-converge or dirty-limit/],
    [
      'initial 0',
      { autoConverge: true, cpuThrottleInitial: 0 },
      /cpu-throttle-initial must be a whole percentage in 1\.\.99/,
    ],
    ['initial 100', { autoConverge: true, cpuThrottleInitial: 100 }, /cpu-throttle-initial .* 1\.\.99, got 100/],
    ['increment 2.5', { autoConverge: true, cpuThrottleIncrement: 2.5 }, /cpu-throttle-increment .* got 2\.5/],
    ['max as a string', { autoConverge: true, maxCpuThrottle: '90' }, /max-cpu-throttle .* got 90/],
    ['threshold 0', { autoConverge: true, throttleTriggerThreshold: 0 }, /throttle-trigger-threshold .* 1\.\.100/],
    ['initial above max', { autoConverge: true, cpuThrottleInitial: 60, maxCpuThrottle: 50 }, /above max-cpu-throttle/],
    ['auto-converge as a string', { autoConverge: 'yes' }, /auto-converge must be true or false/],
    ['a zero dirty limit', { dirtyLimitBps: 0 }, /dirty-limit must be > 0/],
    ['a negative dirty limit', { dirtyLimitBps: -5 }, /dirty-limit must be > 0/],
    ['an infinite dirty limit', { dirtyLimitBps: Infinity }, /dirty-limit must be > 0/],
    ['a dirty limit as a string', { dirtyLimitBps: '20MB/s' }, /dirty-limit must be > 0 bytes\/s, got 20MB\/s/],
  ])('refuses %s', (_what, params, message) => {
    expect(refusal('precopy', params)).toMatch(message);
  });

  it('refuses either for a pure post-copy: it has no pre-copy rounds to throttle', () => {
    expect(refusal('postcopy', { autoConverge: true })).toMatch(/auto-converge throttles pre-copy rounds/);
    expect(refusal('postcopy', { dirtyLimitBps: 1e6 })).toMatch(/dirty-limit throttles pre-copy rounds/);
  });
});
