/** mustNotSkip (test/helpers/prerequisites.ts): only CI as root turns a missing prerequisite into a failure. */
import { describe, expect, it } from 'vitest';
import { mustNotSkip } from '../../helpers/prerequisites.ts';

describe('mustNotSkip', () => {
  it.each([
    [{ CI: 'true' }, 0, true],
    [{ CI: '1' }, 0, true],
    [{ CI: 'woodpecker' }, 0, true],
    [{ CI: 'true' }, 1000, false],
    [{}, 0, false],
    [{ CI: '' }, 0, false],
    [{ CI: 'false' }, 0, false],
    [{ CI: '0' }, 0, false],
  ] as const)('CI=%j, uid %s → %s', (env, uid, expected) => {
    expect(mustNotSkip(env, uid)).toBe(expected);
  });
});
