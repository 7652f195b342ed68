/**
 * The stop-and-copy watchdog's bound: its default is a pure function of the downtime limit —
 * max(10 × limit, 2 s) — resolved with the other migrate params, and a bound that contradicts the
 * downtime limit (or is no number) is refused before anything starts.
 */
import { describe, expect, it } from 'vitest';
import {
  defaultSwitchoverTimeoutMs,
  DEFAULT_MIGRATE_PARAMS,
  MIN_DEFAULT_SWITCHOVER_TIMEOUT_MS,
  resolveMigrateParams,
} from '@livemig/agent-source';

describe('defaultSwitchoverTimeoutMs', () => {
  it.each([
    [1, 2000],
    [100, 2000],
    [200, 2000],
    [250, 2500],
    [300, 3000],
    [5000, 50_000],
  ])('downtime limit %d ms → %d ms', (limit, expected) => {
    expect(defaultSwitchoverTimeoutMs(limit)).toBe(expected);
  });

  it('is never below the floor, and grows with the limit', () => {
    for (let limit = 1; limit <= 10_000; limit += 37) {
      const timeout = defaultSwitchoverTimeoutMs(limit);
      expect(timeout).toBeGreaterThanOrEqual(MIN_DEFAULT_SWITCHOVER_TIMEOUT_MS);
      expect(timeout).toBeGreaterThanOrEqual(10 * limit);
      expect(defaultSwitchoverTimeoutMs(limit + 37)).toBeGreaterThanOrEqual(timeout);
    }
  });
});

describe('resolveMigrateParams: switchoverTimeoutMs', () => {
  it('defaults from the downtime limit given, or from the default one', () => {
    expect(resolveMigrateParams('precopy').switchoverTimeoutMs).toBe(
      defaultSwitchoverTimeoutMs(DEFAULT_MIGRATE_PARAMS.downtimeLimitMs),
    );
    expect(resolveMigrateParams('precopy', { downtimeLimitMs: 500 }).switchoverTimeoutMs).toBe(5000);
    expect(
      resolveMigrateParams('hybrid', { downtimeLimitMs: 50, switchoverTimeoutMs: undefined }).switchoverTimeoutMs,
    ).toBe(2000);
  });

  it('takes an explicit bound as it is', () => {
    expect(resolveMigrateParams('postcopy', { switchoverTimeoutMs: 750 }).switchoverTimeoutMs).toBe(750);
    expect(
      resolveMigrateParams('precopy', { downtimeLimitMs: 400, switchoverTimeoutMs: 400 }).switchoverTimeoutMs,
    ).toBe(400);
  });

  it.each([
    ['below the downtime limit', { downtimeLimitMs: 300, switchoverTimeoutMs: 299 }],
    ['zero', { switchoverTimeoutMs: 0 }],
    ['negative', { switchoverTimeoutMs: -5 }],
    ['not a number', { switchoverTimeoutMs: Number.NaN }],
    ['infinite', { switchoverTimeoutMs: Number.POSITIVE_INFINITY }],
  ])('refuses a bound %s (ERR_INVALID_ARGUMENT naming it)', (_, params) => {
    expect(() => resolveMigrateParams('precopy', params)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/switchover-timeout/) }),
    );
  });
});
