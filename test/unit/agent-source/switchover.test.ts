import { describe, expect, it } from 'vitest';
import type { ConvergenceDecision } from '../../../agent-source/src/migration/convergence.ts';
import { chooseExit, type ExitInput } from '../../../agent-source/src/migration/switchover.ts';

const rule = (switchover: ConvergenceDecision['switchover']): ConvergenceDecision => ({
  switchover,
  expectedDowntimeMs: 1,
});
const none = { postcopy: false, shutdown: false };
const base: ExitInput = {
  mode: 'precopy',
  decision: undefined,
  roundsDone: 1,
  postcopyAfterRounds: null,
  requested: none,
};

describe('chooseExit', () => {
  it.each([
    ['pre-copy keeps going while the rule says nothing', {}, undefined],
    ['pre-copy converged → stop-and-copy', { decision: rule('converged') }, { to: 'stopcopy', reason: 'converged' }],
    [
      'pre-copy gave up → stop-and-copy, reason kept',
      { decision: rule('max-rounds') },
      { to: 'stopcopy', reason: 'max-rounds' },
    ],
    [
      'shutdown mid-round → stop-and-copy now',
      { requested: { postcopy: false, shutdown: true } },
      { to: 'stopcopy', reason: 'shutdown' },
    ],
    [
      'shutdown beats a hybrid switch: post-copy would need this agent alive',
      { mode: 'hybrid', requested: { postcopy: true, shutdown: true } },
      { to: 'stopcopy', reason: 'shutdown' },
    ],
    [
      'hybrid asked to switch → post-copy now, mid-round',
      { mode: 'hybrid', requested: { postcopy: true, shutdown: false } },
      { to: 'postcopy', reason: 'postcopy' },
    ],
    [
      'hybrid asked to switch wins over convergence (the operator said so)',
      { mode: 'hybrid', decision: rule('converged'), requested: { postcopy: true, shutdown: false } },
      { to: 'postcopy', reason: 'postcopy' },
    ],
    [
      'hybrid at --postcopy-after → post-copy',
      { mode: 'hybrid', roundsDone: 2, postcopyAfterRounds: 2 },
      { to: 'postcopy', reason: 'postcopy' },
    ],
    [
      'hybrid before --postcopy-after keeps going',
      { mode: 'hybrid', roundsDone: 1, postcopyAfterRounds: 2 },
      undefined,
    ],
    [
      'a hybrid that converges finishes as pre-copy',
      { mode: 'hybrid', decision: rule('converged') },
      { to: 'stopcopy', reason: 'converged' },
    ],
    [
      'a hybrid with nothing dirty finishes as pre-copy',
      { mode: 'hybrid', decision: rule('nothing-dirty') },
      { to: 'stopcopy', reason: 'nothing-dirty' },
    ],
    [
      'a hybrid that does not converge switches to post-copy',
      { mode: 'hybrid', decision: rule('not-shrinking') },
      { to: 'postcopy', reason: 'not-shrinking' },
    ],
  ] as const)('%s', (_what, input, expected) => {
    expect(chooseExit({ ...base, ...input } as ExitInput)).toEqual(expected);
  });
});
