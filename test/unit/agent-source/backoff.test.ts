import { describe, expect, it } from 'vitest';
import { recoveryDelayMs, RECOVERY_MAX_DELAY_MS } from '../../../agent-source/src/migration/backoff.ts';

describe('recoveryDelayMs', () => {
  it.each([
    [1, 60_000, 100],
    [2, 60_000, 200],
    [5, 60_000, 1600],
    [6, 60_000, RECOVERY_MAX_DELAY_MS],
    [50, 60_000, RECOVERY_MAX_DELAY_MS],
    [3, 150, 150], // never past the deadline
    [1, 0, null], // deadline reached: give up
    [1, -5, null],
  ] as const)('attempt %i with %i ms left → %s', (attempt, left, expected) => {
    expect(recoveryDelayMs(attempt, left)).toBe(expected);
  });
});
